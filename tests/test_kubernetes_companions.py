"""The objects a deploy file holds besides the DGD (engine-config ConfigMaps, a ComputeDomain), and
pods that wait for a ConfigMap or Secret, on the emulated cluster (tests/kube_emulator.py: its
kubelet keeps such pods ContainerCreating with ``FailedMount`` until what they mount exists)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import CONFIGMAPS, DGD_LABEL, EVENTS, PODS, event  # noqa: E402
from test_kubernetes_target import CACHE, DEPLOY, cluster, fake, frontend, harness_namespaces, target_for  # noqa: E402,F401 -- fixtures: the emulated cluster and its frontend

from recipe_harness.deploy import DeployError, DeploySkip  # noqa: E402
from recipe_harness.deploy.kubernetes import analysis  # noqa: E402
from recipe_harness.deploy.kubernetes.manifests import companions, referenced_config_maps  # noqa: E402
from recipe_harness.deploy.kubernetes.twin import mocker_twin  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

ENGINE_CM = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: engine-config}
data:
  engine.yaml: |
    max_num_tokens: 4096
"""
COMPUTE_DOMAIN = """\
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: tiny-domain}
spec:
  numNodes: 1
  channel: {resourceClaimTemplate: {name: tiny-domain-channel}}
"""


def mounting(config_map: str) -> str:
    """The tiny DGD whose worker mounts ``config_map`` at /config (as upstream TRT-LLM recipes do)."""
    doc = yaml.safe_load(DEPLOY)
    worker = doc["spec"]["services"]["VllmWorker"]["extraPodSpec"]
    worker["volumes"] = [{"name": "engine-config", "configMap": {"name": config_map}}]
    worker["mainContainer"]["volumeMounts"] = [{"name": "engine-config", "mountPath": "/config"}]
    return yaml.safe_dump(doc, sort_keys=False)


def make_recipe(root: Path, deploy: str, beside: dict[str, str] | None = None) -> LoadedRecipe:
    folder = root / "tiny" / "vllm" / "agg"
    folder.mkdir(parents=True)
    (root / "tiny" / "model-cache").mkdir()
    (root / "tiny" / "model-cache" / "cache.yaml").write_text(CACHE)
    (folder / "deploy.yaml").write_text(deploy)
    for name, text in (beside or {}).items():
        (folder / name).write_text(text)
    [found] = discover(root).recipes
    return LoadedRecipe.load(found)


@pytest.fixture(autouse=True)
def hf_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")


# -- what is applied ---------------------------------------------------------------------------------


def test_companions_are_the_deploy_files_other_documents_then_configmaps_beside_it(tmp_path):
    recipe = make_recipe(tmp_path, ENGINE_CM.replace("engine-config", "first") + "---\n" + COMPUTE_DOMAIN + "---\n"
                         + mounting("engine-config"), {"configmap.yaml": ENGINE_CM, "unused.yaml": ENGINE_CM.replace(
                             "engine-config", "not-mounted")})
    assert [(b["kind"], b["metadata"]["name"]) for b in companions(recipe)] == [
        ("ConfigMap", "first"), ("ComputeDomain", "tiny-domain"), ("ConfigMap", "engine-config")]
    assert referenced_config_maps(recipe.dgd_documents[0].body) == ["engine-config"]
    twin = mocker_twin(recipe)
    assert [(b["kind"], b["metadata"]["name"]) for b in twin.companions] == [
        ("ConfigMap", "first"), ("ConfigMap", "engine-config")]
    assert "ComputeDomain tiny-domain: left out (the twin's pods claim no GPUs)" in twin.notes


@pytest.mark.parametrize("where", ["deploy-file", "beside"])
def test_a_mounted_configmap_the_recipe_ships_is_applied_and_the_graph_comes_up(cluster, fake, tmp_path, where):
    """Before, only the DGD was applied: the worker pods waited for engine-config until --deploy-timeout."""
    deploy = ENGINE_CM + "---\n" + mounting("engine-config") if where == "deploy-file" else mounting("engine-config")
    recipe = make_recipe(tmp_path / "recipes", deploy, {"engine-config.yaml": ENGINE_CM} if where == "beside" else None)
    target = target_for(cluster, deploy_timeout=30)
    with target.deploy(recipe, tmp_path / "work"):
        ns = target.namespace_of(recipe.id)
        assert cluster.get(CONFIGMAPS, ns, "engine-config")["data"]["engine.yaml"] == "max_num_tokens: 4096\n"
        pods = [p for p in cluster.items(PODS) if p["metadata"]["namespace"] == ns
                and (p["metadata"].get("labels") or {}).get(DGD_LABEL) == "tiny-agg"]
        assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
    assert harness_namespaces(cluster) == []


def test_a_mounted_configmap_nothing_provides_fails_fast_naming_it(cluster, fake, tmp_path):
    recipe = make_recipe(tmp_path / "recipes", mounting("engine-config"))
    target = target_for(cluster, deploy_timeout=120)
    with pytest.raises(DeployError) as info, target.deploy(recipe, tmp_path / "work"):
        pass
    text = str(info.value)
    assert "FailedMount" in text and 'configmap "engine-config" not found' in text
    assert "ship it in the recipe's deploy file" in text
    assert "not Ready within" not in text  # at the first FailedMount, not at --deploy-timeout
    assert harness_namespaces(cluster) == []


def test_a_failedmount_for_a_configmap_that_exists_now_is_no_failure(cluster, fake, tmp_path):
    """The kubelet's word is checked with the API: the ConfigMap exists (made after the kubelet's
    last try), so the pod mounts it at the next one."""
    recipe = make_recipe(tmp_path / "recipes", ENGINE_CM + "---\n" + mounting("engine-config"))
    cluster.call(setattr, fake, "ready_after", 3.0)
    target = target_for(cluster, deploy_timeout=30)

    def stale_event() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pods = [p for p in cluster.items(PODS) if p["metadata"]["name"] == "tiny-agg-vllmworker-0"]
            if pods:
                ns = pods[0]["metadata"]["namespace"]
                cluster.call(cluster.emu.put, EVENTS, event(
                    ns, "Pod", "tiny-agg-vllmworker-0", "Warning", "FailedMount",
                    'MountVolume.SetUp failed for volume "engine-config" : configmap "engine-config" not found',
                    "kubelet"))
                return
            time.sleep(0.05)

    import threading
    injector = threading.Thread(target=stale_event)
    injector.start()
    with target.deploy(recipe, tmp_path / "work"):
        pass
    injector.join()


def test_a_kind_the_cluster_does_not_serve_skips_before_anything_is_made(cluster, fake, tmp_path):
    recipe = make_recipe(tmp_path / "recipes", COMPUTE_DOMAIN + "---\n" + DEPLOY)
    with pytest.raises(DeploySkip) as info, target_for(cluster).deploy(recipe, tmp_path / "work"):
        pass
    assert "creates ComputeDomain tiny-domain: the cluster serves no kind ComputeDomain in " \
           "resource.nvidia.com/v1beta1; install the CRD or operator that provides it" in str(info.value)
    assert harness_namespaces(cluster) == []


def test_the_twin_leaves_the_compute_domain_out_and_keeps_the_configmaps(cluster, fake, tmp_path):
    recipe = make_recipe(tmp_path / "recipes", ENGINE_CM + "---\n" + COMPUTE_DOMAIN + "---\n"
                         + mounting("engine-config"))
    target = target_for(cluster, twin="mocker", deploy_timeout=30)
    with target.deploy(recipe, tmp_path / "work"):
        ns = target.namespace_of(recipe.id)
        assert cluster.get(CONFIGMAPS, ns, "engine-config") is not None
        assert cluster.get(("resource.nvidia.com", "v1beta1", "computedomains"), ns, "tiny-domain") is None


STORAGE_CLASS = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast-rwx}
provisioner: nfs.csi.k8s.io
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: dynamo}\n"


def test_a_cluster_scoped_object_of_the_deploy_file_is_used_if_there_else_the_recipe_is_skipped(cluster, fake,
                                                                                                 tmp_path):
    """The harness makes objects only in the run's namespace; a Namespace document is left out."""
    recipe = make_recipe(tmp_path / "recipes", NAMESPACE + "---\n" + STORAGE_CLASS + "---\n" + DEPLOY)
    assert [b["kind"] for b in companions(recipe)] == ["StorageClass"]
    with pytest.raises(DeploySkip) as info, target_for(cluster).deploy(recipe, tmp_path / "work"):
        pass
    assert "creates StorageClass fast-rwx, which is cluster-scoped: the harness makes objects only in the run's " \
           "namespace; create it on the cluster first" in str(info.value)
    assert harness_namespaces(cluster) == []
    cluster.put(("storage.k8s.io", "v1", "storageclasses"), yaml.safe_load(STORAGE_CLASS))
    with target_for(cluster).deploy(recipe, tmp_path / "work"):
        pass
    assert cluster.get(("storage.k8s.io", "v1", "storageclasses"), None, "fast-rwx")["provisioner"] == "nfs.csi.k8s.io"


# -- the analysis, on recorded shapes -----------------------------------------------------------------


def _event(message: str, reason: str = "FailedMount") -> dict:
    return {"type": "Warning", "reason": reason, "message": message,
            "involvedObject": {"kind": "Pod", "name": "p-0"}}


@pytest.mark.parametrize("message, ref", [
    ('MountVolume.SetUp failed for volume "cfg" : configmap "engine" not found', ("configmap", "engine")),
    ('MountVolume.SetUp failed for volume "keys" : secret "mpirun-ssh-key-x" not found', ("secret", "mpirun-ssh-key-x")),
    ('MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: engine.yaml', None),
])
def test_failedmount_of_a_missing_configmap_or_secret_is_a_failure(message, ref):
    [failure] = analysis.event_failures(_event(message))
    assert (failure.reason, failure.kind, failure.name, failure.grace) == ("FailedMount", "Pod", "p-0", "")
    assert analysis.missing_config(message) == ref
    assert ("Secret" if ref and ref[0] == "secret" else "ConfigMap") in failure.hint


@pytest.mark.parametrize("message", [
    "Unable to attach or mount volumes: unmounted volumes=[model-cache], unattached volumes=[], failed to process "
    "volumes=[]: timed out waiting for the condition",
    'MountVolume.SetUp failed for volume "pvc-1" : rpc error: code = Internal desc = mount failed: exit status 32',
])
def test_other_mount_failures_may_heal_and_are_left_to_the_deploy_timeout(message):
    assert analysis.event_failures(_event(message)) == []


def test_a_failedmount_is_over_once_a_container_of_the_pod_has_started():
    [failure] = analysis.event_failures(_event('MountVolume.SetUp failed for volume "c" : configmap "e" not found'))
    waiting = {"metadata": {"name": "p-0"}, "status": {"containerStatuses": [
        {"name": "main", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    running = {"metadata": {"name": "p-0"}, "status": {"containerStatuses": [
        {"name": "main", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}
    assert not analysis.contradicted(failure, {"p-0": waiting}, {})
    assert analysis.contradicted(failure, {"p-0": running}, {})


def _waiting(reason: str, message: str) -> dict:
    return {"metadata": {"name": "p-0"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "main", "state": {"waiting": {"reason": reason, "message": message}}}]}}


def test_create_container_config_error_fails_unless_the_kubelet_is_only_starting_up():
    [failure] = analysis.pod_failures(_waiting("CreateContainerConfigError", 'secret "hf-token-secret" not found'))
    assert failure.reason == "CreateContainerConfigError" and failure.grace == ""
    assert analysis.pod_failures(_waiting(
        "CreateContainerConfigError", "services have not yet been read at least once, cannot construct envvars")) == []
