"""Every recipe in ``recipes/`` with ``--twin mocker``, end to end through the emulated cluster.

The Kubernetes target deploys the recipe's GPU-free twin (model-cache PVC and Job, HF token
Secret, DGD by server-side apply) into the emulator; the emulated operator makes the pods and
Services; the emulated kubelet runs each Dynamo container's own command line
(``python3 -m dynamo.frontend ...`` / ``python3 -m dynamo.mocker ...``) as a local process with
the tiny model; the smoke checks go through the target's port-forward to the real frontend;
teardown deletes the namespace, the operator's finalizer is honoured, and no namespace and no
process is left behind.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, PODS, EmulatedCluster, FakeCluster  # noqa: E402
from kube_kubelet import MARKER, ProcessKubelet  # noqa: E402

from recipe_harness.deploy.kubernetes.namespace import MANAGED_BY, MANAGED_BY_KEY  # noqa: E402
from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget  # noqa: E402
from recipe_harness.deploy.procs import processes_with_env  # noqa: E402
from recipe_harness.deploy.tinymodel import tiny_model_dir  # noqa: E402
from recipe_harness.exercise import smoke  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
CHECKS = ("models", "chat", "stream", "concurrency")
RECIPE_IDS = [r.id for r in discover(RECIPES).recipes]

pytestmark = [
    pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)"),
    pytest.mark.timeout(600),
]


def _load(recipe_id: str) -> LoadedRecipe:
    return LoadedRecipe.load(next(r for r in discover(RECIPES).recipes if r.id == recipe_id))


def _harness_namespaces(cluster: EmulatedCluster) -> list[str]:
    return [n["metadata"]["name"] for n in cluster.items(NAMESPACES)
            if (n["metadata"].get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY]


@contextlib.contextmanager
def twin_cluster(max_processes: int = 4) -> Iterator[tuple[EmulatedCluster, ProcessKubelet, KubernetesTarget]]:
    """An emulated cluster with the Dynamo platform, a default storage class and a kubelet running the
    twins' real processes, and a ``--twin mocker`` target on it; closed with no process left."""
    cluster = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    kubelet = ProcessKubelet(DYNAMO_PY, tiny_model_dir(), max_processes=max_processes, max_per_component=2)
    try:
        cluster.call(lambda: FakeCluster(cluster.emu, kubelet=kubelet, storage_classes=["standard"], platform=True,
                                         delete_after=0.5))
        options = KubeOptions(twin="mocker", deploy_timeout=180, job_timeout=60, http_timeout=90, delete_timeout=60,
                              watch_timeout=5)
        yield cluster, kubelet, KubernetesTarget(options, kube=cluster.kube())
    finally:
        cluster.close()
    assert processes_with_env(MARKER, kubelet.marker) == []


@pytest.mark.parametrize("recipe_id", RECIPE_IDS)
def test_recipe_twin_deploys_serves_and_tears_down(recipe_id, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = _load(recipe_id)
    with twin_cluster() as (cluster, kubelet, target):
        with target.deploy(recipe, tmp_path / "work") as endpoint:
            ns = target.namespace_of(recipe.id)
            for check in CHECKS:
                result = smoke.run(check, endpoint)
                assert result is not None
            running = [p for p in cluster.items(PODS, ns) if (ns, p["metadata"]["name"]) in kubelet.containers]
            roles = {p["metadata"]["labels"].get("nvidia.com/dynamo-component-type") for p in running}
            assert "frontend" in roles and "worker" in roles, [p["metadata"]["name"] for p in running]
            crashed = [c.pod for c in kubelet.containers.values() if c.restarts]
            assert crashed == [], f"containers restarted: {crashed}"
        assert _harness_namespaces(cluster) == []
        assert cluster.get(NAMESPACES, None, ns) is None
        assert processes_with_env(MARKER, kubelet.marker) == []
    assert not kubelet.root.exists()


def _fits(recipe_id: str, per_component: int = 2, total: int = 5) -> bool:
    """Every pod of the graph gets a process under the kubelet's caps (two cores): beyond them pods
    are stand-ins without a process, whose metrics no check can read."""
    dep = _load(recipe_id).deployment
    return dep is not None and all(s.replicas <= per_component for s in dep.services) \
        and sum(s.replicas for s in dep.services) <= total


DISAGG_IDS = [rid for rid in RECIPE_IDS
              if (dep := _load(rid).deployment) is not None and dep.is_disaggregated and _fits(rid)]


@pytest.mark.parametrize("recipe_id", DISAGG_IDS)
def test_disaggregation_and_kv_routing_are_checked_on_the_cluster(recipe_id, tmp_path, monkeypatch):
    """The worker pods' ``system`` ports reached through their own port-forwards: prefill and decode
    both serve, and (KV router, two prefill workers) a shared prefix stays on one worker, as on the
    local target."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = _load(recipe_id)
    # every worker pod of the checks needs its process: a frontend and two pods of each role
    with twin_cluster(max_processes=5) as (cluster, kubelet, target):
        with target.deploy(recipe, tmp_path / "work") as endpoint:
            assert endpoint.disaggregated
            with_metrics = {c.role for c in endpoint.components if c.metrics_url}
            assert {"prefill", "decode"} <= with_metrics, endpoint.components
            result = smoke.run("disagg", endpoint)
            assert result.metrics["prefill_served"] > 0 and result.metrics["decode_served"] > 0, result.metrics
            routed = [c for c in endpoint.components if c.role == "prefill" and c.metrics_url]
            prefill_pods = sum(s.replicas for s in recipe.deployment.services if s.role == "prefill")
            assert len(routed) == prefill_pods, endpoint.components  # every prefill pod has its forward
            if endpoint.router_mode == "kv" and len(routed) >= 2:
                kv = smoke.run("kv-routing", endpoint)
                assert max(kv.metrics["per_worker"].values()) >= kv.metrics["requests"], kv.metrics
        assert _harness_namespaces(cluster) == []


UPSTREAM = ROOT / "fixtures" / "upstream-patterns"
UPSTREAM_RECIPES = [(root.name, r.id) for root in sorted(UPSTREAM.iterdir()) if root.is_dir()
                    for r in discover(root).recipes]


@pytest.mark.parametrize("root_name,recipe_id", UPSTREAM_RECIPES, ids=[f"{a}:{b}" for a, b in UPSTREAM_RECIPES])
def test_upstream_layouts_deploy_serve_or_skip_with_the_reason(root_name, recipe_id, tmp_path, monkeypatch):
    """Recipes written the way upstream writes them (``sh -c`` wrappers, ``componentType: main``,
    decode-labelled aggregated workers, frontend sidecars with an endpoint picker)."""
    from recipe_harness.deploy import DeploySkip

    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = LoadedRecipe.load(next(r for r in discover(UPSTREAM / root_name).recipes if r.id == recipe_id))
    with twin_cluster() as (cluster, kubelet, target):
        try:
            with target.deploy(recipe, tmp_path / "work") as endpoint:
                for check in ("models", "chat", "stream"):
                    smoke.run(check, endpoint)
        except DeploySkip as exc:  # a graph that needs what the emulated cluster lacks says what
            assert "Gateway API Inference Extension" in str(exc), exc
        assert _harness_namespaces(cluster) == []
