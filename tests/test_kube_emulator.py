"""The emulator behaves like the kube-apiserver and the Dynamo operator it stands for.

Every test talks HTTP to the emulator through the harness's raw client (:class:`Kube`) or the
kubernetes client, never through the Kubernetes target, and checks one modelled behaviour
against what the apiserver or the operator does (sources cited in kube_apiserver_rules.py,
kube_operator_model.py, kube_kubelet.py and kube_emulator.py).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import kube_operator_model as op  # noqa: E402
from kube_emulator import (  # noqa: E402
    EVENTS,
    JOBS,
    NAMESPACES,
    PODS,
    PVCS,
    SERVICES,
    UNBOUND_MESSAGE,
    EmulatedCluster,
    FakeCluster,
)

from recipe_harness.deploy.kubernetes.client import ApiError  # noqa: E402
from recipe_harness.deploy.procs import processes_with_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
needs_dynamo = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")
DGD = ("nvidia.com", "v1alpha1", "dynamographdeployments")
DGD_PATH = "/apis/nvidia.com/v1alpha1/namespaces/{ns}/dynamographdeployments/{name}"
WAIT = 20.0


@pytest.fixture
def cluster():
    c = EmulatedCluster(namespace_finalize_delay=0.05, watch_timeout_cap=2.0)
    yield c
    c.close()


def operator(cluster: EmulatedCluster, **kw) -> FakeCluster:
    return cluster.call(lambda: FakeCluster(cluster.emu, ready_after=0.05, **kw))


def wait_for(what: str, probe, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout:g}s (last: {last!r})")


def graph(name: str = "g", **services) -> dict:
    services = services or {
        "Frontend": {"componentType": "frontend", "replicas": 1,
                     "extraPodSpec": {"mainContainer": {"image": "img", "command": ["python3", "-m", "dynamo.frontend"],
                                                        "args": ["--http-port", "8000"]}}},
        "VllmDecodeWorker": {"componentType": "worker", "subComponentType": "decode", "replicas": 2,
                             "envFromSecret": "hf-token-secret",
                             "extraPodSpec": {"mainContainer": {"image": "img", "command": ["python3", "-m", "dynamo.vllm"],
                                                                "args": ["--model", "Qwen/Qwen3-0.6B"]}}}}
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"backendFramework": "vllm", "services": services}}


def apply_dgd(kube, ns: str, body: dict, *, secret: bool = True):
    """Apply a DGD as a user does: with ``secret``, the Secret its workers read (hf-token-secret) first."""
    if secret:
        kube.apply(f"/api/v1/namespaces/{ns}/secrets/hf-token-secret",
                   {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token-secret"},
                    "stringData": {"HF_TOKEN": "x"}})
    return kube.apply(DGD_PATH.format(ns=ns, name=body["metadata"]["name"]), body)


def states(cluster: EmulatedCluster, ns: str, name: str) -> list[tuple]:
    """Every (state, Ready reason, message) the DGD went through, from the watch history."""
    out: list[tuple] = []
    for _, res, _, obj in cluster.call(lambda: list(cluster.emu.history)):
        if res == DGD and obj["metadata"].get("namespace") == ns and obj["metadata"]["name"] == name:
            status = obj.get("status") or {}
            cond = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            entry = (status.get("state"), cond.get("reason"), cond.get("message"))
            if not out or out[-1] != entry:
                out.append(entry)
    return out


def invalid(exc: pytest.ExceptionInfo) -> str:
    assert exc.value.status == 422 and exc.value.reason == "Invalid", exc.value
    return exc.value.api_message


# -- admission: names and labels ----------------------------------------------------------------------


def test_namespace_names_are_dns1123_labels_of_at_most_63(cluster):
    kube = cluster.kube()
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "Bad_Name"}})
    assert invalid(exc) == (
        'Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label must '
        "consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
        "character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    long = "a" * 64
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": long}})
    assert invalid(exc) == f'Namespace "{long}" is invalid: metadata.name: Invalid value: "{long}": must be no more ' \
                           "than 63 characters"
    assert cluster.items(NAMESPACES) == []
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "a" * 63}})
    assert [n["metadata"]["name"] for n in cluster.items(NAMESPACES)] == ["a" * 63]


def test_service_names_are_dns1035_labels_and_pod_names_dns1123_subdomains(cluster):
    kube = cluster.kube()
    cluster.namespace("ns")
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces/ns/services", body={"metadata": {"name": "1-frontend"}})
    assert "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic " \
           "character" in invalid(exc)
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces/ns/services", body={"metadata": {"name": "qwen3-0.6b"}})
    assert invalid(exc).startswith('Service "qwen3-0.6b" is invalid: metadata.name')
    kube.request("POST", "/api/v1/namespaces/ns/pods", body={"metadata": {"name": "qwen3-0.6b-0"}})  # a subdomain
    assert cluster.get(PODS, "ns", "qwen3-0.6b-0") is not None


def test_label_values_longer_than_63_or_off_the_regex_are_rejected_with_every_cause(cluster):
    kube = cluster.kube()
    cluster.namespace("ns")
    value = "x" * 64
    body = {"metadata": {"name": "p", "labels": {"nvidia.com/dynamo-namespace": value, "ok": "fine", "bad": "-x"}}}
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces/ns/pods", body=body)
    message = invalid(exc)
    assert message.startswith('Pod "p" is invalid: [metadata.labels: Invalid value: "-x": a valid label must be an '
                              "empty string or consist of alphanumeric characters")
    assert f'metadata.labels: Invalid value: "{value}": must be no more than 63 characters' in message
    assert cluster.get(PODS, "ns", "p") is None


def test_status_details_carry_one_cause_per_field_error(cluster):
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    api = k8s_client.CoreV1Api(k8s_client.ApiClient(cluster.client_configuration()))
    with pytest.raises(ApiException) as exc:
        api.create_namespace({"metadata": {"name": "UPPER", "labels": {"k": "v" * 70}}})
    import json
    status = json.loads(exc.value.body)
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["name"] == "UPPER" and status["details"]["kind"] == "Namespace"
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.name", "metadata.labels"]
    assert {c["reason"] for c in status["details"]["causes"]} == {"FieldValueInvalid"}


# -- admission: the DGD CRD's schema and CEL rules -------------------------------------------------


def test_dgd_pvc_with_create_needs_size_storage_class_and_access_mode(cluster):
    kube = cluster.kube()
    cluster.namespace("ns")
    body = graph()
    body["spec"]["pvcs"] = [{"name": "model-cache", "create": True, "size": "10Gi"}]
    with pytest.raises(ApiError) as exc:
        apply_dgd(kube, "ns", body)
    assert invalid(exc) == ('DynamoGraphDeployment.nvidia.com "g" is invalid: spec.pvcs[0]: Invalid value: When '
                            "create is true, size, storageClass, and volumeAccessMode are required")
    body["spec"]["pvcs"] = [{"name": "model-cache", "create": True, "size": "10Gi", "storageClass": "standard",
                             "volumeAccessMode": "ReadWriteOnce"}, {"name": "existing", "create": False}]
    apply_dgd(kube, "ns", body)
    assert cluster.get(DGD, "ns", "g")["status"] == {"state": "initializing"}  # no operator here: the CRD default


@pytest.mark.parametrize(("shm", "ok"), [({}, False), ({"disabled": False}, False), ({"size": "0"}, False),
                                         ({"size": "1Gi"}, True), ({"disabled": True}, True)])
def test_dgd_shared_memory_needs_a_size_unless_disabled(cluster, shm, ok):
    kube = cluster.kube()
    cluster.namespace("ns")
    body = graph()
    body["spec"]["services"]["VllmDecodeWorker"]["sharedMemory"] = shm
    if ok:
        apply_dgd(kube, "ns", body)
        return
    with pytest.raises(ApiError) as exc:
        apply_dgd(kube, "ns", body)
    assert invalid(exc) == ('DynamoGraphDeployment.nvidia.com "g" is invalid: spec.services[VllmDecodeWorker]'
                            ".sharedMemory: Invalid value: size is required when disabled is false")


def test_dgd_structural_schema_types_required_fields_and_enums(cluster):
    kube = cluster.kube()
    cluster.namespace("ns")
    body = graph()
    body["spec"]["backendFramework"] = "tensorrt"
    body["spec"]["services"]["Frontend"]["replicas"] = "one"
    body["spec"]["pvcs"] = [{"create": False}]
    with pytest.raises(ApiError) as exc:
        apply_dgd(kube, "ns", body)
    message = invalid(exc)
    assert 'spec.backendFramework: Unsupported value: "tensorrt": supported values: "sglang", "vllm", "trtllm"' in message
    assert 'spec.services.Frontend.replicas: Invalid value: "string": spec.services.Frontend.replicas in body must ' \
           'be of type integer: "string"' in message
    assert "spec.pvcs[0].name: Required value" in message
    beta = {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": {"name": "b"},
            "spec": {"components": [{"name": "front", "type": "gateway"}, {"type": "worker"}]}}
    with pytest.raises(ApiError) as exc:
        kube.apply("/apis/nvidia.com/v1beta1/namespaces/ns/dynamographdeployments/b", beta)
    message = invalid(exc)
    assert 'spec.components[0].type: Unsupported value: "gateway"' in message
    assert "spec.components[1].name: Required value" in message


# -- what the operator creates ------------------------------------------------------------------------


def test_pods_wait_for_the_secret_they_read_and_start_once_it_exists(cluster):
    """The kubelet (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables) keeps a container whose
    envFrom Secret is missing in CreateContainerConfigError and retries; the Secret made later
    starts it."""
    operator(cluster)
    kube = cluster.kube()
    cluster.namespace("team-a")
    apply_dgd(kube, "team-a", graph("g"), secret=False)

    def waiting() -> list:
        pod = cluster.get(PODS, "team-a", "g-vllmdecodeworker-0") or {}
        return [cs["state"].get("waiting") for cs in (pod.get("status") or {}).get("containerStatuses") or []]

    wait_for("CreateContainerConfigError", lambda: waiting() == [
        {"reason": "CreateContainerConfigError", "message": 'secret "hf-token-secret" not found'}])
    events = [e["message"] for e in kube.get("/api/v1/namespaces/team-a/events")["items"] if e["reason"] == "Failed"]
    assert 'Error: secret "hf-token-secret" not found' in events
    assert (cluster.get(DGD, "team-a", "g")["status"] or {}).get("state") != "successful"
    apply_dgd(kube, "team-a", graph("g"))
    wait_for("successful", lambda: (cluster.get(DGD, "team-a", "g")["status"] or {}).get("state") == "successful")


def test_a_configmap_volume_that_does_not_exist_keeps_the_pod_creating_with_failedmount(cluster):
    operator(cluster)
    kube = cluster.kube()
    cluster.namespace("team-a")
    body = graph("g")
    extra = body["spec"]["services"]["VllmDecodeWorker"]["extraPodSpec"]
    extra["volumes"] = [{"name": "cfg", "configMap": {"name": "engine"}}]
    apply_dgd(kube, "team-a", body)
    wait_for("FailedMount", lambda: any(
        e["reason"] == "FailedMount" and e["involvedObject"]["name"] == "g-vllmdecodeworker-0"
        for e in kube.get("/api/v1/namespaces/team-a/events")["items"]))
    [event] = [e for e in kube.get("/api/v1/namespaces/team-a/events")["items"]
               if e["reason"] == "FailedMount" and e["involvedObject"]["name"] == "g-vllmdecodeworker-0"]
    assert event["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "engine" not found'
    pod = cluster.get(PODS, "team-a", "g-vllmdecodeworker-0")
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert {"name": "cfg", "configMap": {"name": "engine"}} in pod["spec"]["volumes"]  # extraPodSpec merged in
    kube.apply("/api/v1/namespaces/team-a/configmaps/engine",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "engine"}, "data": {"a": "b"}})
    wait_for("successful", lambda: (cluster.get(DGD, "team-a", "g")["status"] or {}).get("state") == "successful")


def test_operator_pods_labels_ports_env_and_services_with_kubernetes_discovery(cluster):
    operator(cluster)
    kube = cluster.kube()
    cluster.namespace("team-a")
    apply_dgd(kube, "team-a", graph("my.graph"))
    wait_for("successful", lambda: (cluster.get(DGD, "team-a", "my.graph")["status"] or {}).get("state") == "successful")
    pods = {p["metadata"]["name"]: p for p in kube.get("/api/v1/namespaces/team-a/pods")["items"]}
    assert sorted(pods) == ["my.graph-frontend-0", "my.graph-vllmdecodeworker-0", "my.graph-vllmdecodeworker-1"]
    worker = pods["my.graph-vllmdecodeworker-1"]
    assert worker["metadata"]["labels"] == {
        "nvidia.com/selector": "my.graph-vllmdecodeworker", "nvidia.com/dynamo-graph-deployment-name": "my.graph",
        "nvidia.com/dynamo-namespace": "team-a-my-graph", "nvidia.com/dynamo-component": "VllmDecodeWorker",
        "nvidia.com/dynamo-component-type": "worker", "nvidia.com/dynamo-sub-component-type": "decode",
        "nvidia.com/dynamo-discovery-backend": "kubernetes", "nvidia.com/dynamo-discovery-enabled": "true"}
    main = worker["spec"]["containers"][0]
    assert main["name"] == "main" and main["command"] == ["python3", "-m", "dynamo.vllm"]
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [("system", 9090), ("nixl", 19090)]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["DYN_NAMESPACE"] == "team-a-my-graph" and env["DYN_SYSTEM_PORT"] == "9090"
    assert env["DYN_PARENT_DGD_K8S_NAME"] == "my.graph" and env["DYN_DISCOVERY_BACKEND"] == "kubernetes"
    assert main["envFrom"] == [{"secretRef": {"name": "hf-token-secret"}}]
    assert {"name": "shared-memory", "mountPath": "/dev/shm"} in main["volumeMounts"]
    assert worker["spec"]["terminationGracePeriodSeconds"] == 60
    front = pods["my.graph-frontend-0"]["spec"]["containers"][0]
    assert [(p["name"], p["containerPort"]) for p in front["ports"]] == [("http", 8000)]
    front_env = {e["name"]: e.get("value") for e in front["env"]}
    assert front_env["DYNAMO_PORT"] == "8000" and front_env["DYN_NAMESPACE_PREFIX"] == "team-a-my-graph"
    services = {s["metadata"]["name"]: s["spec"] for s in kube.get("/api/v1/namespaces/team-a/services")["items"]}
    assert sorted(services) == ["my-graph-frontend", "my-graph-vllmdecodeworker"]  # dots become dashes
    assert services["my-graph-frontend"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http",
                                                       "protocol": "TCP"}]
    assert services["my-graph-vllmdecodeworker"]["ports"] == [{"name": "system", "port": 9090,
                                                               "targetPort": "system", "protocol": "TCP"}]
    assert services["my-graph-frontend"]["selector"] == {"nvidia.com/dynamo-component-type": "frontend",
                                                         "nvidia.com/dynamo-namespace": "team-a-my-graph",
                                                         "nvidia.com/dynamo-component": "Frontend"}
    dgd = cluster.get(DGD, "team-a", "my.graph")
    assert dgd["metadata"]["finalizers"] == ["nvidia.com/finalizer"]


def test_without_kubernetes_discovery_only_the_frontend_gets_a_service(cluster):
    operator(cluster, k8s_discovery=False)
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph())
    wait_for("pods", lambda: len(cluster.items(PODS, "ns")) == 3)
    assert [s["metadata"]["name"] for s in cluster.items(SERVICES, "ns")] == ["g-frontend"]
    env = {e["name"] for e in cluster.get(PODS, "ns", "g-vllmdecodeworker-0")["spec"]["containers"][0]["env"]}
    assert "DYN_DISCOVERY_BACKEND" not in env


def test_epp_component_gets_a_grpc_9002_service():
    comp = op.Component("Epp", "epp", 1, {})
    svc = op.service(comp, "g", "ns", discovery=False)
    assert svc["spec"]["ports"] == [{"name": "grpc", "port": 9002, "targetPort": 9002, "protocol": "TCP",
                                     "appProtocol": "http2"}]
    assert op.service(op.Component("W", "worker", 1, {}), "g", "ns", discovery=False) is None


def test_status_goes_initializing_pending_successful_with_the_controller_s_reasons(cluster):
    operator(cluster)
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph())
    wait_for("successful", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "successful")
    seen = states(cluster, "ns", "g")
    assert seen[0] == ("initializing", None, None)
    assert seen[1] == ("pending", "some_resources_are_not_ready",
                       "Resources not ready: g-frontend: Component deployment not ready - Available condition not "
                       "true; g-vllmdecodeworker: Component deployment not ready - Available condition not true")
    assert seen[-1] == ("successful", "all_resources_are_ready", "All resources are ready")
    assert "failed" not in [s[0] for s in seen]


def test_a_transient_reconcile_error_sets_failed_and_the_next_good_reconcile_clears_it(cluster):
    fake = operator(cluster, transient_failed=2, transient_retry=0.05)
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph())
    wait_for("successful", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "successful")
    seen = states(cluster, "ns", "g")
    conflict = ('Operation cannot be fulfilled on dynamographdeployments.nvidia.com "g": the object has been '
                "modified; please apply your changes to the latest version and try again")
    assert seen[1] == ("failed", "failed_to_handle_the_finalizer", conflict)
    assert [s[0] for s in seen][-1] == "successful" and fake.reconciles >= 3


def test_a_dynamo_namespace_label_over_63_fails_every_reconcile_and_never_gets_ready(cluster):
    fake = operator(cluster, transient_retry=0.05)
    ns = "rh-" + "n" * 40
    cluster.namespace(ns)
    apply_dgd(cluster.kube(), ns, graph("qwen3-32b-disagg-router"))
    wait_for("failed", lambda: (cluster.get(DGD, ns, "qwen3-32b-disagg-router")["status"] or {}).get("state") == "failed")
    wait_for("retried", lambda: fake.reconciles >= 3)
    state, reason, message = states(cluster, ns, "qwen3-32b-disagg-router")[-1]
    value = f"{ns}-qwen3-32b-disagg-router"
    assert (state, reason) == ("failed", "failed_to_reconcile_the_resources")
    assert message.startswith("failed to reconcile Dynamo components deployments: failed to sync the "
                              'DynamoComponentDeployment: DynamoComponentDeployment.nvidia.com "qwen3-32b-disagg-router-')
    assert f'metadata.labels: Invalid value: "{value}": must be no more than 63 characters' in message
    assert cluster.items(PODS, ns) == []
    assert "successful" not in [s[0] for s in states(cluster, ns, "qwen3-32b-disagg-router")]


def test_a_dgd_naming_a_claim_that_does_not_exist_fails_until_it_exists(cluster):
    operator(cluster, transient_retry=0.05)
    cluster.namespace("ns")
    body = graph()
    body["spec"]["pvcs"] = [{"name": "model-cache", "create": False}]
    apply_dgd(cluster.kube(), "ns", body)
    wait_for("failed", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "failed")
    assert states(cluster, "ns", "g")[-1][2] == \
        'failed to reconcile top-level PVCs: persistentvolumeclaims "model-cache" not found'
    cluster.kube().apply("/api/v1/namespaces/ns/persistentvolumeclaims/model-cache", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "model-cache"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for("successful", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "successful")


def test_a_persistent_reconcile_error_keeps_failed_with_the_operator_s_reason(cluster):
    operator(cluster, dgd_outcome="failed", transient_retry=0.05)
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph())
    wait_for("failed", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "failed")
    state, reason, message = states(cluster, "ns", "g")[-1]
    assert (state, reason) == ("failed", "failed_to_reconcile_the_resources")
    assert message.startswith("failed to reconcile Dynamo components deployments: Internal error occurred: failed "
                              'calling webhook "validate.kyverno.svc-fail"')


# -- deletion ------------------------------------------------------------------------------------------


def test_namespace_deletion_waits_for_the_dgd_finalizer(cluster):
    operator(cluster, delete_after=0.5)
    kube = cluster.kube()
    cluster.namespace("ns")
    apply_dgd(kube, "ns", graph())
    wait_for("successful", lambda: (cluster.get(DGD, "ns", "g")["status"] or {}).get("state") == "successful")
    kube.delete("/api/v1/namespaces/ns")
    namespace = cluster.get(NAMESPACES, None, "ns")
    assert namespace["status"]["phase"] == "Terminating"
    dgd = wait_for("deletionTimestamp", lambda: (d := cluster.get(DGD, "ns", "g")) and
                   d["metadata"].get("deletionTimestamp") and d)
    assert dgd["metadata"]["finalizers"] == ["nvidia.com/finalizer"]
    conditions = wait_for("conditions", lambda: (cluster.get(NAMESPACES, None, "ns") or {}).get("status", {})
                          .get("conditions"))
    assert any(c["message"] == "Some content in the namespace has finalizers remaining: nvidia.com/finalizer in 1 "
                               "resource instances" for c in conditions)
    with pytest.raises(ApiError) as exc:
        kube.request("POST", "/api/v1/namespaces/ns/configmaps", body={"metadata": {"name": "late"}})
    assert exc.value.status == 403 and "being terminated" in exc.value.api_message
    wait_for("namespace gone", lambda: cluster.get(NAMESPACES, None, "ns") is None)
    assert cluster.items(PODS, "ns") == [] and cluster.items(DGD, "ns") == []


def test_a_stuck_operator_leaves_the_namespace_terminating(cluster):
    fake = operator(cluster, delete_after=0.05)
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph())
    wait_for("finalizer", lambda: cluster.get(DGD, "ns", "g")["metadata"].get("finalizers"))
    cluster.call(setattr, fake, "operator_stuck", True)
    cluster.kube().delete("/api/v1/namespaces/ns")
    wait_for("pods deleted", lambda: cluster.items(PODS, "ns") == [])
    time.sleep(0.5)  # several namespace-controller passes
    assert cluster.get(NAMESPACES, None, "ns")["status"]["phase"] == "Terminating"
    assert cluster.get(DGD, "ns", "g")["metadata"]["deletionTimestamp"]


def test_deleting_an_object_with_a_finalizer_waits_for_its_removal(cluster):
    kube = cluster.kube()
    cluster.namespace("ns")
    kube.request("POST", "/api/v1/namespaces/ns/configmaps",
                 body={"metadata": {"name": "cm", "finalizers": ["example.com/hold"]}})
    kube.delete("/api/v1/namespaces/ns/configmaps/cm")
    held = kube.get("/api/v1/namespaces/ns/configmaps/cm")
    assert held["metadata"]["deletionTimestamp"]
    kube.request("PATCH", "/api/v1/namespaces/ns/configmaps/cm", body={"metadata": {"finalizers": None}},
                 content_type="application/merge-patch+json")
    assert kube.get_or_none("/api/v1/namespaces/ns/configmaps/cm") is None


# -- PV controller and scheduler -------------------------------------------------------------------


def _claim(name: str, cls: str | None = None) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if cls:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def test_claims_bind_to_an_existing_or_default_class_and_stay_pending_without_one(cluster):
    operator(cluster, storage_classes=["standard"])
    kube = cluster.kube()
    cluster.namespace("ns")
    for name, cls in (("default", None), ("named", "standard"), ("missing", "fast-rwx")):
        kube.apply(f"/api/v1/namespaces/ns/persistentvolumeclaims/{name}", _claim(name, cls))
    wait_for("bound", lambda: all((cluster.get(PVCS, "ns", n).get("status") or {}).get("phase") == "Bound"
                                  for n in ("default", "named")))
    assert cluster.get(PVCS, "ns", "default")["spec"]["storageClassName"] == "standard"
    event = wait_for("event", lambda: [e for e in cluster.items(EVENTS, "ns") if e["reason"] == "ProvisioningFailed"])
    assert event[0]["message"] == 'storageclass.storage.k8s.io "fast-rwx" not found'
    assert event[0]["involvedObject"] == {"kind": "PersistentVolumeClaim", "name": "missing", "namespace": "ns"}
    assert cluster.get(PVCS, "ns", "missing")["status"]["phase"] == "Pending"


def test_a_job_whose_claim_is_unbound_never_starts(cluster):
    operator(cluster, storage_classes=["standard"])
    kube = cluster.kube()
    cluster.namespace("ns")
    kube.apply("/api/v1/namespaces/ns/persistentvolumeclaims/model-cache", _claim("model-cache", "fast-rwx"))
    kube.apply("/apis/batch/v1/namespaces/ns/jobs/model-download", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "model-download"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "dl", "image": "x"}],
                                       "volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "model-cache"}}]}}}})
    pod = wait_for("pod", lambda: [p for p in cluster.items(PODS, "ns") if p["metadata"]["name"].startswith("model-")])[0]
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    assert pod["status"]["conditions"] == [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": UNBOUND_MESSAGE}]
    assert "pod has unbound immediate PersistentVolumeClaims" in UNBOUND_MESSAGE
    assert any(e["reason"] == "FailedScheduling" and e["message"] == UNBOUND_MESSAGE for e in cluster.items(EVENTS, "ns"))
    assert not (cluster.get(JOBS, "ns", "model-download")["status"] or {}).get("succeeded")


# -- port-forward ------------------------------------------------------------------------------------


class _Echo:
    """A TCP server that answers each line with ``<tag>:<line>``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag.encode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.addr = self.sock.getsockname()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(self.tag + b":" + data)

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


def test_several_port_forwards_at_once_each_to_its_pod_port(cluster):
    from kubernetes import client as k8s_client
    from kubernetes.stream import portforward

    servers = {("p0", 8000): _Echo("p0-8000"), ("p0", 9090): _Echo("p0-9090"), ("p1", 8000): _Echo("p1-8000")}
    try:
        cluster.namespace("ns")
        for (pod, port), server in servers.items():
            cluster.call(cluster.emu.pod_ports.__setitem__, ("ns", pod, port), server.addr)
        core = k8s_client.CoreV1Api(k8s_client.ApiClient(cluster.client_configuration()))
        streams = []
        for i in range(8):  # all open at the same time
            pod = f"p{i % 2}"
            ports = "8000,9090" if pod == "p0" else "8000"
            streams.append((pod, portforward(core.connect_get_namespaced_pod_portforward, pod, "ns", ports=ports)))
        assert cluster.call(lambda: cluster.emu.open_streams) == 8
        for i, (pod, pf) in enumerate(streams):
            for port in ((8000, 9090) if pod == "p0" else (8000,)):
                sock = pf.socket(port)
                sock.setblocking(True)
                sock.sendall(f"hello {i}\n".encode())
                assert sock.recv(100) == f"{pod}-{port}:hello {i}\n".encode()
        missing = portforward(core.connect_get_namespaced_pod_portforward, "p1", "ns", ports="9090")
        missing.socket(9090).setblocking(True)
        wait_for("error channel", lambda: missing.error(9090))
        assert "pod p1 does not listen on port 9090" in missing.error(9090)
        for _, pf in streams + [("p1", missing)]:
            pf.close()
        wait_for("streams closed", lambda: cluster.call(lambda: cluster.emu.open_streams) == 0)
        assert cluster.call(lambda: cluster.emu.max_streams) >= 8
    finally:
        for server in servers.values():
            server.close()


# -- the kubelet running the real container command -------------------------------------------------


@needs_dynamo
def test_kubelet_runs_the_container_command_and_a_bad_flag_crash_loops_with_its_log(cluster):
    from kube_kubelet import MARKER, ProcessKubelet

    from recipe_harness.deploy.tinymodel import tiny_model_dir

    kubelet = ProcessKubelet(DYNAMO_PY, tiny_model_dir(), max_processes=2, backoff_start=30.0)
    operator(cluster, kubelet=kubelet)
    services = {"Worker": {"componentType": "worker", "replicas": 1, "extraPodSpec": {"mainContainer": {
        "image": "nvcr.io/nvidia/ai-dynamo/dynamo-planner:1.6.1", "command": ["python3", "-m", "dynamo.mocker"],
        "args": ["--model-path", "Qwen/Qwen3-0.6B", "--no-such-flag", "3"]}}}}
    cluster.namespace("ns")
    apply_dgd(cluster.kube(), "ns", graph(**services))
    pod = wait_for("CrashLoopBackOff", lambda: (p := cluster.get(PODS, "ns", "g-worker-0")) and (
        (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {}).get("reason")
        == "CrashLoopBackOff") and p, timeout=60)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 2
    log = cluster.kube().text("/api/v1/namespaces/ns/pods/g-worker-0/log", query={"container": "main",
                                                                                   "previous": "true"})
    assert "unrecognized arguments: --no-such-flag 3" in log
    assert kubelet.started == [("ns", "g-worker-0")]
    cluster.kube().delete("/api/v1/namespaces/ns")
    wait_for("namespace gone", lambda: cluster.get(NAMESPACES, None, "ns") is None)
    assert processes_with_env(MARKER, kubelet.marker) == []
