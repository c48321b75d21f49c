"""Watch resume/relist/backoff and preflight checks against the emulated API."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import EmulatedCluster  # noqa: E402

from recipe_harness.deploy.kubernetes.preflight import FAIL, MISSING, OK, preflight, requirements  # noqa: E402
from recipe_harness.deploy.kubernetes.watch import WatchSet  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

CM = ("", "v1", "configmaps")
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture
def cluster():
    c = EmulatedCluster(watch_timeout_cap=1.0)
    c.namespace("w")
    yield c
    c.close()


def _cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "w"}}


def _collect(ws: WatchSet, want: set[str], seconds: float = 15.0) -> set[str]:
    for _ in ws.events(time.monotonic() + seconds):
        if want <= {k.split("/")[1] for k in ws.objects["cm"]}:
            break
    return {k.split("/")[1] for k in ws.objects["cm"]}


def test_watch_resumes_from_resource_version_after_drops_and_timeouts(cluster):
    cluster.put(CM, _cm("before"))
    with WatchSet(cluster.kube(), timeout_seconds=1) as ws:
        watcher = ws.add("cm", "/api/v1/namespaces/w/configmaps")

        def churn():
            for i in range(6):
                time.sleep(0.25)
                cluster.call(cluster.emu.drop_watches)
                cluster.put(CM, _cm(f"c{i}"))  # written while no stream is open
            time.sleep(1.3)  # past the server-side timeoutSeconds
            cluster.put(CM, _cm("after-timeout"))

        threading.Thread(target=churn, daemon=True).start()
        names = _collect(ws, {"before", "after-timeout", *(f"c{i}" for i in range(6))})
    assert names == {"before", "after-timeout", *(f"c{i}" for i in range(6))}
    assert watcher.stats.resumes >= 6 and watcher.stats.lists == 1  # resumed, never listed again
    resumed_from = [rv for res, ns, rv in cluster.emu.watches_opened if res == CM]
    assert all(rv not in (None, "", "0") for rv in resumed_from)


def test_watch_relists_on_410_expired(cluster):
    with WatchSet(cluster.kube(), timeout_seconds=1) as ws:
        watcher = ws.add("cm", "/api/v1/namespaces/w/configmaps")

        def expire():
            time.sleep(0.3)
            # the reconnect is held off for 0.5 s; meanwhile history moves on and is compacted,
            # so the resume from the last seen resourceVersion gets a 410 Expired event
            cluster.call(cluster.emu.inject, "GET", r"/configmaps$", 503, times=1, retry_after=0.5)
            cluster.call(cluster.emu.drop_watches)
            cluster.put(CM, _cm("missed-while-away"))
            cluster.call(cluster.emu.compact)
            cluster.put(CM, _cm("later"))

        threading.Thread(target=expire, daemon=True).start()
        names = _collect(ws, {"missed-while-away", "later"})
    assert names == {"missed-while-away", "later"}
    assert watcher.stats.relists >= 1


def test_watch_expired_before_seen_relists(cluster):
    kube = cluster.kube()
    with WatchSet(kube, timeout_seconds=1) as ws:
        watcher = ws.add("cm", "/api/v1/namespaces/w/configmaps")
        time.sleep(0.3)
        cluster.call(cluster.emu.inject, "GET", r"/configmaps$", 410, times=1, reason="Expired")
        cluster.call(cluster.emu.drop_watches)
        time.sleep(0.2)
        cluster.put(CM, _cm("x"))
        names = _collect(ws, {"x"})
    assert names == {"x"}
    assert watcher.stats.relists >= 1


def test_watch_backs_off_on_429_and_500(cluster):
    fault = cluster.call(cluster.emu.inject, "GET", r"/configmaps$", 429, times=3, retry_after=0.05)
    fault500 = cluster.call(cluster.emu.inject, "GET", r"/configmaps$", 500, times=2)
    cluster.put(CM, _cm("a"))
    with WatchSet(cluster.kube(attempts=2), timeout_seconds=1) as ws:
        watcher = ws.add("cm", "/api/v1/namespaces/w/configmaps")
        assert _collect(ws, {"a"}) == {"a"}
    assert fault.hits == 3 and fault500.hits == 2
    assert watcher.stats.retries >= 1


def test_watch_403_is_reported_not_retried(cluster):
    cluster.call(cluster.emu.inject, "GET", r"/configmaps$", 403, times=100, message="configmaps is forbidden")
    from recipe_harness.deploy.kubernetes.client import ApiError

    with WatchSet(cluster.kube(), timeout_seconds=1) as ws:
        ws.add("cm", "/api/v1/namespaces/w/configmaps")
        with pytest.raises(ApiError, match="configmaps is forbidden"):
            for _ in ws.events(time.monotonic() + 10):
                pass


# -- preflight ---------------------------------------------------------------------------------

CRD = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def _recipe(rid: str) -> LoadedRecipe:
    found = [r for r in discover(RECIPES).recipes if r.id == rid]
    if not found:
        pytest.skip(f"recipe {rid} not in {RECIPES}")
    return LoadedRecipe.load(found[0])


def _install_dynamo(cluster: EmulatedCluster, ready: bool = True) -> None:
    cluster.put(CRD, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                      "metadata": {"name": "dynamographdeployments.nvidia.com"},
                      "spec": {"versions": [{"name": "v1alpha1", "served": True, "storage": True},
                                            {"name": "v1beta1", "served": True, "storage": False}]}})
    cluster.namespace("dynamo-system")
    cluster.put(("apps", "v1", "deployments"), {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dynamo-platform-dynamo-operator-controller-manager", "namespace": "dynamo-system",
                     "labels": {"app.kubernetes.io/part-of": "dynamo-operator"}},
        "status": {"readyReplicas": 1 if ready else 0}})


def _node(name: str, product: str, gpus: int, **extra: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64", **extra}}}


def _class(name: str, default: bool = False) -> dict:
    ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name, "annotations": ann}}


def test_preflight_empty_cluster_fails_on_crd(cluster):
    report = preflight(cluster.kube(), _recipe("llama-3-70b/vllm/agg"))
    status = {c.name: c.status for c in report.checks}
    assert status["api"] == OK and status["crd"] == FAIL and status["operator"] == FAIL
    assert "not installed" in next(c.message for c in report.checks if c.name == "crd")


def test_preflight_reports_served_versions_and_missing_hardware(cluster):
    _install_dynamo(cluster)
    report = preflight(cluster.kube(), _recipe("llama-3-70b/vllm/agg"))
    checks = {c.name: c for c in report.checks}
    assert checks["crd"].status == OK and checks["crd"].details["served_versions"] == ["v1alpha1", "v1beta1"]
    assert checks["operator"].status == OK
    assert checks["gpus"].status == MISSING and checks["gpus"].details["needed"] == 4
    assert checks["storage"].status == MISSING and "your-rwx-storage-class" in checks["storage"].message
    assert not report.failed


def test_preflight_passes_with_matching_gpus_and_storage(cluster):
    _install_dynamo(cluster)
    req = requirements(_recipe("llama-3-70b/vllm/agg"))
    product = req.gpu_product or "H100"
    cluster.put(("", "v1", "nodes"), _node("gpu-1", f"NVIDIA-{product}-80GB-HBM3", 8))
    cluster.put(("", "v1", "nodes"), _node("gpu-2", "NVIDIA-A10G", 8))
    cluster.put(("storage.k8s.io", "v1", "storageclasses"), _class("your-rwx-storage-class"))
    report = preflight(cluster.kube(), _recipe("llama-3-70b/vllm/agg"))
    checks = {c.name: c for c in report.checks}
    assert checks["gpus"].status == OK, checks["gpus"].message
    assert checks["gpus"].details["allocatable"] == (8 if req.gpu_product else 16)
    assert checks["storage"].status == OK
    assert not report.missing and not report.failed


def test_preflight_rdma_resources(cluster):
    _install_dynamo(cluster)
    recipe = _recipe("qwen3-32b/vllm/disagg-kv-router")
    req = requirements(recipe)
    assert req.rdma == {"rdma/ib": 2}
    product = req.gpu_product or "H100"
    for i in range(3):
        cluster.put(("", "v1", "nodes"), _node(f"n{i}", f"NVIDIA-{product}", 8))
    checks = {c.name: c for c in preflight(cluster.kube(), recipe).checks}
    assert checks["rdma"].status == MISSING and "rdma/ib" in checks["rdma"].message
    cluster.put(("", "v1", "nodes"), _node("n0", f"NVIDIA-{product}", 8, **{"rdma/ib": "8"}))
    checks = {c.name: c for c in preflight(cluster.kube(), recipe).checks}
    assert checks["rdma"].status == OK


def test_preflight_of_the_mocker_twin_needs_no_gpus_but_a_default_class(cluster):
    _install_dynamo(cluster)
    recipe = _recipe("llama-3-70b/vllm/agg")
    checks = {c.name: c for c in preflight(cluster.kube(), recipe, twin=True).checks}
    assert checks["gpus"].status == OK and checks["storage"].status == MISSING
    cluster.put(("storage.k8s.io", "v1", "storageclasses"), _class("standard", default=True))
    checks = {c.name: c for c in preflight(cluster.kube(), recipe, twin=True).checks}
    assert checks["storage"].status == OK


def test_preflight_operator_not_ready(cluster):
    _install_dynamo(cluster, ready=False)
    checks = {c.name: c for c in preflight(cluster.kube(), _recipe("llama-3-70b/vllm/agg")).checks}
    assert checks["operator"].status == FAIL and "not ready" in checks["operator"].message


def test_preflight_without_gpu_feature_discovery_counts_gpus_and_says_the_product_is_unverified(cluster):
    """A cluster without GPU feature discovery labels no product; its GPUs still count."""
    _install_dynamo(cluster)
    recipe = _recipe("llama-3-70b/vllm/agg")
    node = _node("gpu-1", "x", 8)
    del node["metadata"]["labels"]["nvidia.com/gpu.product"]
    cluster.put(("", "v1", "nodes"), node)
    checks = {c.name: c for c in preflight(cluster.kube(), recipe).checks}
    assert checks["gpus"].status == OK, checks["gpus"].message
    if requirements(recipe).gpu_product:
        assert "not verified" in checks["gpus"].message and checks["gpus"].details["product_verified"] is False


def test_preflight_crd_unreadable_for_rbac_is_unknown_not_a_failure(cluster):
    _install_dynamo(cluster)
    cluster.call(cluster.emu.inject, "GET", r"/customresourcedefinitions/", 403, times=5)
    checks = {c.name: c for c in preflight(cluster.kube(), _recipe("llama-3-70b/vllm/agg")).checks}
    assert checks["crd"].status == "unknown" and "RBAC" in checks["crd"].message
