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

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, PODS, EmulatedCluster, FakeCluster  # noqa: E402
from kube_kubelet import MARKER, ProcessKubelet  # noqa: E402

from recipe_harness import smoke  # noqa: E402
from recipe_harness.bundle import LoadedRecipe  # noqa: E402
from recipe_harness.discovery import discover  # noqa: E402
from recipe_harness.procs import processes_with_env  # noqa: E402
from recipe_harness.targets.kubernetes.namespace import MANAGED_BY, MANAGED_BY_KEY  # noqa: E402
from recipe_harness.targets.kubernetes.target import KubeOptions, KubernetesTarget  # noqa: E402
from recipe_harness.tinymodel import tiny_model_dir  # noqa: E402

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


@pytest.mark.parametrize("recipe_id", RECIPE_IDS)
def test_recipe_twin_deploys_serves_and_tears_down(recipe_id, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = _load(recipe_id)
    cluster = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    kubelet = ProcessKubelet(DYNAMO_PY, tiny_model_dir(), max_processes=4, max_per_component=2)
    try:
        cluster.call(lambda: FakeCluster(cluster.emu, kubelet=kubelet, storage_classes=["standard"], platform=True,
                                         delete_after=0.5))
        options = KubeOptions(twin="mocker", deploy_timeout=180, job_timeout=60, http_timeout=90, delete_timeout=60,
                              watch_timeout=5)
        target = KubernetesTarget(options, kube=cluster.kube())
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
    finally:
        cluster.close()
    assert processes_with_env(MARKER, kubelet.marker) == []
    assert not kubelet.root.exists()
