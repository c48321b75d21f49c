"""Fail fast on what cannot heal, tolerate what can: pod, PVC, event and DGD shapes as the kubelet,
the scheduler, the PV controller and the Dynamo operator write them, and the waits of the target."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import EVENTS, JOBS, PODS, running_pod  # noqa: E402
from test_kubernetes_target import (  # noqa: E402,F401 -- fixtures
    DGD_RES,
    cluster,
    fake,
    frontend,
    harness_namespaces,
    recipe,
    target_for,
)

from recipe_harness.deploy import DeployError  # noqa: E402
from recipe_harness.deploy.kubernetes import analysis  # noqa: E402
from recipe_harness.deploy.kubernetes.analysis import Failure, Tolerance  # noqa: E402
from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget  # noqa: E402


def pod(*, waiting: dict | None = None, last: dict | None = None, restarts: int = 0, conditions=None) -> dict:
    cs = {"name": "main", "ready": False, "restartCount": restarts,
          "state": {"waiting": waiting} if waiting else {"running": {}}}
    if last:
        cs["lastState"] = {"terminated": last}
    return {"metadata": {"name": "p-0"},
            "status": {"phase": "Pending" if waiting else "Running", "containerStatuses": [cs],
                       "conditions": conditions or []}}


def warning(kind: str, name: str, reason: str, message: str, **involved) -> dict:
    return {"type": "Warning", "reason": reason, "message": message, "metadata": {"name": f"{name}.1"},
            "involvedObject": {"kind": kind, "name": name, **involved}}


# -- pods -------------------------------------------------------------------------------------------


def test_a_crash_loop_within_max_restarts_is_tolerated_past_it_fails():
    crashing = {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}
    assert analysis.pod_failures(pod(waiting=crashing, last={"exitCode": 1}, restarts=3), Tolerance(max_restarts=3)) == []
    [f] = analysis.pod_failures(pod(waiting=crashing, last={"exitCode": 1}, restarts=4), Tolerance(max_restarts=3))
    assert f.reason == "CrashLoopBackOff" and f.terminal
    assert "restarted 4 times (limit --max-restarts 3)" in f.message and "exit code 1" in f.message


def _incarnation(uid: str, exit_code: int | None, restarts: int = 0) -> dict:
    cs = {"name": "main", "restartCount": restarts, "state": {"running": {}}}
    if exit_code is not None:
        cs["lastState"] = {"terminated": {"reason": "Error", "exitCode": exit_code, "message": "NCCL error"}}
    return {"metadata": {"name": "g-worker-0", "uid": uid}, "status": {"phase": "Running", "containerStatuses": [cs]}}


def test_a_pod_recreated_under_its_name_after_each_crash_counts_as_restarts():
    """A LeaderWorkerSet recreates its group at a container restart: restartCount starts at 0 each time."""
    seen = analysis.Recreations()
    for i in range(4):  # 3 crashed incarnations replaced, the 4th running: within --max-restarts 3
        seen.observe(_incarnation(f"u{i}", None))
        seen.observe(_incarnation(f"u{i}", 1, restarts=1))
    seen.observe(_incarnation("u4", None))
    assert seen.failures(Tolerance(max_restarts=4)) == []
    [f] = seen.failures(Tolerance(max_restarts=3))
    assert (f.reason, f.name, f.container, f.terminal) == ("CrashLoopBackOff", "g-worker-0", "main", True)
    assert "exit code 1, NCCL error, pod recreated 4 times after its container exited (limit --max-restarts 3)" \
        in f.describe() and "LeaderWorkerSet" in f.hint


def test_a_pod_recreated_after_a_usage_error_fails_at_once_and_a_restart_in_place_is_not_a_recreation():
    seen = analysis.Recreations()
    seen.observe(_incarnation("u0", 2, restarts=1))
    seen.observe(_incarnation("u1", None))
    [f] = seen.failures(Tolerance(max_restarts=3))
    assert "rejected its command line" in f.hint
    in_place = analysis.Recreations()
    for restarts in range(1, 6):  # the same pod restarting: pod_failures judges it (CrashLoopBackOff)
        in_place.observe(_incarnation("u0", 1, restarts=restarts))
    assert in_place.failures(Tolerance(max_restarts=3)) == []


def test_a_group_that_is_recreated_after_each_crash_fails_the_deploy(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "GroupRestart:VllmWorker")
    cluster.call(setattr, fake, "failure_after", 0.1)
    with pytest.raises(DeployError) as info:
        with target_for(cluster, deploy_timeout=120, max_restarts=2).deploy(recipe, tmp_path / "w"):
            pass
    text = str(info.value)
    assert "pod tiny-agg-vllmworker-0" in text and "CrashLoopBackOff" in text and "NCCL error" in text
    assert "pod recreated 3 times after its container exited (limit --max-restarts 2)" in text
    assert "not Ready within" not in text


def test_a_usage_error_exit_code_is_terminal_at_the_first_restart():
    [f] = analysis.pod_failures(pod(waiting={"reason": "CrashLoopBackOff"}, last={"exitCode": 2}, restarts=1))
    assert f.terminal and "command line" in f.hint


def test_a_command_missing_from_the_image_is_terminal():
    msg = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create '
           'failed: unable to start container process: exec: "python3": executable file not found in $PATH')
    [f] = analysis.pod_failures(pod(waiting={"reason": "CreateContainerError", "message": msg}))
    assert f.terminal and f.reason == "CreateContainerError"
    assert analysis.pod_failures(pod(waiting={"reason": "CreateContainerError",
                                             "message": "context deadline exceeded"})) == []


def test_oom_killed_is_terminal_at_once():
    [f] = analysis.pod_failures(pod(last={"reason": "OOMKilled", "exitCode": 137}, restarts=1))
    assert f.reason == "OOMKilled" and f.terminal


@pytest.mark.parametrize("message", [
    'rpc error: code = NotFound desc = failed to pull and unpack image "nvcr.io/nvidia/ai-dynamo/x:0": '
    'failed to resolve reference "nvcr.io/nvidia/ai-dynamo/x:0": nvcr.io/nvidia/ai-dynamo/x:0: not found',
    'failed to pull and unpack image "docker.io/library/nope:1": pull access denied, repository does not exist '
    "or may require authorization: server message: insufficient_scope: authorization failed",
    'failed to resolve reference "nvcr.io/nvidia/private:1": unexpected status: 401 Unauthorized',
])
def test_err_image_pull_for_an_image_that_is_not_there_is_terminal(message):
    [f] = analysis.pod_failures(pod(waiting={"reason": "ErrImagePull", "message": message}))
    assert f.terminal and f.reason == "ErrImagePull" and f.container == "main"


@pytest.mark.parametrize("reason,message", [
    ("ImagePullBackOff", 'Back-off pulling image "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1"'),
    ("ErrImagePull", "rpc error: code = Unknown desc = failed to pull: net/http: TLS handshake timeout"),
    ("ErrImagePull", "toomanyrequests: You have reached your pull rate limit"),
])
def test_pull_failures_that_can_heal_get_the_image_pull_grace(reason, message):
    [f] = analysis.pod_failures(pod(waiting={"reason": reason, "message": message}))
    assert not f.terminal and f.grace == analysis.GRACE_IMAGE_PULL
    # ErrImagePull and ImagePullBackOff alternate: one grace for the container, not one per reason
    assert f.key == ("Pod", "p-0", "main", analysis.GRACE_IMAGE_PULL)


def test_a_pull_failure_event_naming_a_missing_image_is_terminal_with_its_container():
    ev = warning("Pod", "p-0", "Failed", 'Failed to pull image "nvcr.io/x:0": rpc error: code = NotFound desc = '
                 'failed to resolve reference "nvcr.io/x:0": not found', fieldPath="spec.containers{main}")
    [f] = analysis.event_failures(ev)
    assert f.terminal and f.container == "main" and "not found" in f.message


def test_unschedulable_for_an_unbound_claim_gets_the_pvc_grace_other_reasons_the_unschedulable_grace():
    msg = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes..."
    [f] = analysis.event_failures(warning("Pod", "dl-x", "FailedScheduling", msg))
    assert f.grace == analysis.GRACE_PVC
    [g] = analysis.event_failures(warning("Pod", "dl-x", "FailedScheduling", "0/3 nodes: 3 Insufficient nvidia.com/gpu."))
    assert g.grace == analysis.GRACE_UNSCHEDULABLE


# -- PVCs -------------------------------------------------------------------------------------------


def test_a_claim_naming_a_missing_storage_class_is_terminal():
    ev = warning("PersistentVolumeClaim", "model-cache", "ProvisioningFailed",
                 'storageclass.storage.k8s.io "fast-rwx" not found')
    [f] = analysis.event_failures(ev)
    assert f.terminal and f.kind == "PersistentVolumeClaim" and "fast-rwx" in f.message


def test_no_class_and_no_default_is_terminal_a_provisioner_error_gets_the_pvc_grace():
    [f] = analysis.event_failures(warning("PersistentVolumeClaim", "c", "FailedBinding",
                                          "no persistent volumes available for this claim and no storage class is set"))
    assert f.terminal
    [g] = analysis.event_failures(warning("PersistentVolumeClaim", "c", "ProvisioningFailed",
                                          "failed to provision volume: rpc error: code = DeadlineExceeded"))
    assert g.grace == analysis.GRACE_PVC


# -- the DGD ----------------------------------------------------------------------------------------


def dgd(state: str, reason: str, message: str = "") -> dict:
    return {"metadata": {"name": "g"}, "status": {"state": state, "conditions": [
        {"type": "Ready", "status": "False", "reason": reason, "message": message}]}}


def test_dgd_failed_from_a_reconcile_error_gets_a_grace_validation_failed_is_final():
    # the controller's deferred status update: any reconcile error -> state failed (reason of the step)
    f = analysis.dgd_failure(dgd("failed", "failed_to_reconcile_the_resources",
                                 'Operation cannot be fulfilled on deployments.apps "g-frontend": '
                                 "the object has been modified; please apply your changes to the latest version"))
    assert f is not None and f.grace == analysis.GRACE_DGD_FAILED
    v = analysis.dgd_failure(dgd("failed", "ValidationFailed", "Validation failed: spec.services: at most one frontend"))
    assert v is not None and v.terminal
    assert analysis.dgd_failure(dgd("pending", "some_resources_are_not_ready")) is None


@pytest.mark.parametrize("state", ["failed", "pending"])
def test_no_multinode_orchestrator_is_final_whatever_the_state(state):
    """The operator looks for Grove or LWS + Volcano at start-up only: no reconcile clears it."""
    f = analysis.dgd_failure(dgd(state, "no_multinode_orchestrator_available", "no multinode orchestrator available"))
    assert f is not None and f.terminal and "restart the operator" in f.hint
    older = analysis.dgd_failure(dgd("failed", "failed_to_reconcile_the_resources",
                                     "failed to reconcile Dynamo components deployments: no multinode orchestrator "
                                     "available"))
    assert older is not None and older.terminal


def test_a_signal_that_clears_is_forgotten_and_starts_a_new_grace_when_it_returns():
    target = KubernetesTarget(KubeOptions(dgd_failed_grace=0.2), kube=object())  # type: ignore[arg-type]
    seen: dict = {}
    failed = Failure("DGDFailed", "DynamoGraphDeployment", "g", grace=analysis.GRACE_DGD_FAILED)
    assert target._fatal([failed], seen) is None
    time.sleep(0.25)
    assert target._fatal([], seen) is None and seen == {}       # cleared by a good reconcile
    assert target._fatal([failed], seen) is None                # back again: a new grace
    time.sleep(0.25)
    assert target._fatal([failed], seen) is failed              # persisted past it


# -- the target's waits against the emulator ---------------------------------------------------------


def test_a_transient_failed_state_that_clears_within_its_grace_is_not_a_failure(cluster, fake, recipe, tmp_path,
                                                                                monkeypatch):
    """The operator flips state to failed on a write conflict and back on the next reconcile."""
    monkeypatch.setenv("HF_TOKEN", "x")
    states: list[str] = []
    cluster.call(setattr, fake, "transient_failed", 2)
    cluster.call(cluster.emu.hooks.append, lambda t, res, obj: states.append((obj.get("status") or {}).get("state", ""))
                 if res == DGD_RES else None)
    with target_for(cluster, deploy_timeout=60, dgd_failed_grace=30).deploy(recipe, tmp_path / "w") as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")
    assert "failed" in states and states.index("failed") < states.index("successful")
    assert harness_namespaces(cluster) == []


def test_a_claim_that_cannot_bind_fails_the_download_at_once_with_the_event(cluster, recipe, tmp_path, monkeypatch):
    """No operator needed: the PV controller reports the missing class, the scheduler keeps the
    download pod Pending; the wait ends on the event, not at --download-timeout."""
    monkeypatch.setenv("HF_TOKEN", "x")

    def pv_controller_and_scheduler(type_: str, res, obj: dict) -> None:
        if type_ != "ADDED":
            return
        ns = obj["metadata"].get("namespace")
        if res == ("", "v1", "persistentvolumeclaims"):
            cluster.emu.put(EVENTS, warning("PersistentVolumeClaim", obj["metadata"]["name"], "ProvisioningFailed",
                                            'storageclass.storage.k8s.io "fast-rwx" not found')
                            | {"metadata": {"name": "model-cache.pf", "namespace": ns}})
        elif res == JOBS:
            p = running_pod("model-download-abcde", ns, {"job-name": obj["metadata"]["name"]}, ["model-download"])
            p["status"] = {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]}
            cluster.emu.put(PODS, p)

    cluster.call(cluster.emu.hooks.append, pv_controller_and_scheduler)
    target = target_for(cluster)
    target.options.job_timeout = 120
    with pytest.raises(DeployError) as info:
        with target.deploy(recipe, tmp_path / "w"):
            pass
    text = str(info.value)
    assert "persistentvolumeclaim model-cache: ProvisioningFailed" in text and '"fast-rwx" not found' in text
    assert "did not complete within" not in text
    assert harness_namespaces(cluster) == []


# -- preflight gates every deploy ---------------------------------------------------------------------

from test_kubernetes_watch_preflight import _class, _install_dynamo, _node  # noqa: E402

from recipe_harness.deploy import DeploySkip  # noqa: E402


def test_a_cluster_without_the_dynamo_crd_fails_the_deploy_before_anything_is_created(cluster, fake, recipe,
                                                                                      tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    with pytest.raises(DeployError, match=r"preflight failed; nothing was deployed:\n  crd: fail: CRD "
                                          r"dynamographdeployments.nvidia.com is not installed"):
        with target_for(cluster, preflight=True).deploy(recipe, tmp_path / "w"):
            pass
    assert harness_namespaces(cluster) == []
    assert cluster.items(("", "v1", "namespaces")) == []  # not even a namespace was made


def test_missing_gpus_or_storage_skip_the_deploy_and_fail_it_under_require_hardware(cluster, fake, recipe,
                                                                                   tmp_path, monkeypatch):
    """The recipe's PVC names storage class fast-rwx and its worker 1 GPU: neither is on the cluster,
    so nothing is deployed (before, the PVC waited for the whole download timeout)."""
    monkeypatch.setenv("HF_TOKEN", "x")
    _install_dynamo(cluster)
    with pytest.raises(DeploySkip, match=r"missing on this cluster: gpus: missing: needs 2 GPUs.*storage: missing: "
                                         r"storage class 'fast-rwx' does not exist"):
        with target_for(cluster, preflight=True).deploy(recipe, tmp_path / "w"):
            pass
    with pytest.raises(DeployError, match=r"missing on this cluster \(--require-hardware\)"):
        with target_for(cluster, preflight=True, require_hardware=True).deploy(recipe, tmp_path / "w"):
            pass
    assert harness_namespaces(cluster) == []


def test_a_cluster_that_has_what_the_recipe_needs_deploys(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    _install_dynamo(cluster)
    cluster.put(("", "v1", "nodes"), _node("gpu-1", "NVIDIA-H100-80GB-HBM3", 8))
    cluster.put(("storage.k8s.io", "v1", "storageclasses"), _class("fast-rwx"))
    with target_for(cluster, preflight=True).deploy(recipe, tmp_path / "w") as endpoint:
        assert any(n.startswith("time limits: model-cache PVC bind 120s (--pvc-bind-timeout)") for n in endpoint.notes)
    assert harness_namespaces(cluster) == []


# -- cleanup: no exception type skips it; interrupts delete first -------------------------------------


def test_an_exception_that_is_not_an_api_error_still_deletes_the_namespace(cluster, fake, recipe, tmp_path,
                                                                          monkeypatch):
    """The client's ApiValueError (what a swapped call_api raised) escaped the cleanup path."""
    from kubernetes.client.exceptions import ApiValueError

    from recipe_harness.deploy.kubernetes import diagnostics

    monkeypatch.setenv("HF_TOKEN", "x")

    def broken(*args, **kwargs):
        raise ApiValueError("Missing the required parameter `name`")

    monkeypatch.setattr(diagnostics, "collect", broken)
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        pass
    assert harness_namespaces(cluster) == []


def test_an_interrupt_requests_the_deletion_first_and_bounds_diagnostics(cluster, fake, recipe, tmp_path,
                                                                        monkeypatch):
    from recipe_harness.deploy.kubernetes import diagnostics

    monkeypatch.setenv("HF_TOKEN", "x")
    order: list[str] = []
    real_collect = diagnostics.collect

    def slow_collect(kube, ns, out_dir, **kw):
        gone = cluster.get(("", "v1", "namespaces"), None, ns)
        order.append("diagnostics:" + ("terminating" if gone is None or gone["status"]["phase"] == "Terminating"
                                       else "active"))
        return real_collect(kube, ns, out_dir, **kw)

    monkeypatch.setattr(diagnostics, "collect", slow_collect)
    target = target_for(cluster, interrupt_budget=3)
    with pytest.raises(KeyboardInterrupt):
        with target.deploy(recipe, tmp_path / "w"):
            raise KeyboardInterrupt
    assert order == ["diagnostics:terminating"]
    assert harness_namespaces(cluster) == []


def test_an_interrupt_during_teardown_still_deletes_the_namespace_then_propagates(cluster, fake, recipe, tmp_path,
                                                                                 monkeypatch):
    """Ctrl-C pressed again while diagnostics are being saved."""
    from recipe_harness.deploy.kubernetes import diagnostics

    monkeypatch.setenv("HF_TOKEN", "x")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(diagnostics, "collect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with target_for(cluster, interrupt_budget=3).deploy(recipe, tmp_path / "w"):
            pass
    deadline = time.monotonic() + 10
    while harness_namespaces(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness_namespaces(cluster) == []


# -- model caches that outlive runs ------------------------------------------------------------------


def test_a_cache_namespace_keeps_the_model_and_downloads_it_once(cluster, fake, recipe, tmp_path, monkeypatch):
    from recipe_harness.deploy.kubernetes.cache import cache_key

    monkeypatch.setenv("HF_TOKEN", "x")
    downloads: list[str] = []
    cluster.call(cluster.emu.hooks.append,
                 lambda t, res, obj: downloads.append(obj["metadata"]["name"]) if t == "ADDED" and res == JOBS else None)
    for run in range(2):
        with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / f"w{run}"):
            assert cluster.get(DGD_RES, "model-cache-qwen", "tiny-agg") is not None
        # the run's own objects are gone, the cache stays
        assert cluster.get(DGD_RES, "model-cache-qwen", "tiny-agg") is None
        assert cluster.get(JOBS, "model-cache-qwen", "model-download") is None
        assert cluster.get(("", "v1", "secrets"), "model-cache-qwen", "hf-token-secret") is None
        pvc = cluster.get(("", "v1", "persistentvolumeclaims"), "model-cache-qwen", "model-cache")
        assert pvc is not None
        key = cache_key(recipe.model_cache_documents[1].body)
        assert pvc["metadata"]["annotations"][key.annotation] == "Qwen/Qwen3-0.6B@main"
    assert downloads == ["model-download"]  # the second run found the model in the cache
    ns = cluster.get(("", "v1", "namespaces"), None, "model-cache-qwen")
    assert ns["metadata"]["labels"] == {"recipe-harness/cache": "true"}  # never taken for a run's namespace
    assert harness_namespaces(cluster) == []


# -- events outlive what they report ----------------------------------------------------------------


def _ago(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")


def test_an_event_counts_only_when_last_seen_since_the_wait_began_in_either_events_api():
    from datetime import UTC, datetime, timedelta
    since = datetime.now(UTC) - timedelta(minutes=1)
    core = warning("Pod", "p-0", "FailedScheduling", "0/3 nodes: 3 Insufficient nvidia.com/gpu.")
    assert analysis.event_fresh(core | {"lastTimestamp": _ago(5)}, since)
    assert not analysis.event_fresh(core | {"lastTimestamp": _ago(3600), "firstTimestamp": _ago(3600)}, since)
    # a repeating event: the series' last observation is what counts, not when it began
    assert analysis.event_fresh(core | {"eventTime": _ago(3600).replace("Z", ".000000Z"),
                                        "series": {"count": 40, "lastObservedTime": _ago(2)}}, since)
    # events.k8s.io/v1: regarding/note, deprecatedLastTimestamp
    new_api = {"type": "Warning", "reason": "FailedScheduling", "note": "x", "regarding": {"kind": "Pod", "name": "p"},
               "metadata": {"name": "p.1", "creationTimestamp": _ago(3600)}, "deprecatedLastTimestamp": _ago(3600)}
    assert not analysis.event_fresh(new_api, since)
    assert not analysis.event_fresh({"metadata": {"creationTimestamp": _ago(3600)}}, since)  # no time but its own
    # within the clock-skew margin of the wait's start
    assert analysis.event_fresh(core | {"lastTimestamp": _ago(65)}, since)


def test_an_event_contradicted_by_the_objects_current_state_is_dropped():
    unsched = Failure("Unschedulable", "Pod", "p-0", grace=analysis.GRACE_PVC)
    pending = {"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    placed = {"spec": {"nodeName": "n"}, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}
    assert not analysis.contradicted(unsched, {"p-0": pending}, {})
    assert analysis.contradicted(unsched, {"p-0": placed}, {})
    claim = Failure("ProvisioningFailed", "PersistentVolumeClaim", "c", grace=analysis.GRACE_PVC)
    assert not analysis.contradicted(claim, {}, {"c": {"status": {"phase": "Pending"}}})
    assert analysis.contradicted(claim, {}, {"c": {"status": {"phase": "Bound"}}})


def test_a_pod_placed_after_a_scale_up_is_not_failed_by_its_earlier_failed_scheduling_event(cluster, fake, recipe,
                                                                                          tmp_path, monkeypatch):
    """The scheduler reports FailedScheduling, the autoscaler adds a node, the pod runs; the event
    stays for an hour. Before, it kept the failure alive past --unschedulable-grace."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "ScaleUp:VllmWorker")
    cluster.call(setattr, fake, "ready_after", 2.0)
    with target_for(cluster, deploy_timeout=60, unschedulable_grace=1.0).deploy(recipe, tmp_path / "w"):
        assert any(e["reason"] == "FailedScheduling" for e in cluster.items(EVENTS))  # the event is still there
    assert harness_namespaces(cluster) == []


def test_a_previous_runs_events_in_a_cache_namespace_do_not_fail_a_new_run(cluster, fake, recipe, tmp_path,
                                                                          monkeypatch):
    """A pod of an earlier run (same name prefix) could not be scheduled an hour ago; its event
    is still kept by the apiserver."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.namespace("model-cache-qwen", labels={"recipe-harness/cache": "true"})
    old = warning("Pod", "tiny-agg-vllmworker-0-x7k2p", "FailedScheduling",
                  "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    old |= {"metadata": {"name": "tiny-agg-vllmworker-0-x7k2p.17f", "namespace": "model-cache-qwen"},
            "firstTimestamp": _ago(3000), "lastTimestamp": _ago(2900), "count": 3}
    cluster.put(EVENTS, old)
    with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / "w") as endpoint:
        assert endpoint.model


# -- Jobs: terminal conditions of Kubernetes 1.31+ ----------------------------------------------------


def test_failure_target_is_a_failed_job_success_criteria_met_a_succeeded_one():
    job = {"metadata": {"name": "dl"}, "status": {"active": 0, "terminating": 2, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]}}
    f = analysis.job_failure(job)
    assert f is not None and f.reason == "BackoffLimitExceeded" and f.terminal and "backoff limit" in f.message
    done = {"metadata": {"name": "dl"}, "spec": {"completions": 4}, "status": {"active": 2, "succeeded": 1,
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "SuccessPolicy"}]}}
    assert analysis.job_succeeded(done) and analysis.job_failure(done) is None


def test_a_job_past_its_deadline_fails_at_failure_target_not_when_its_pods_are_gone(cluster, fake, recipe, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(lambda: fake.job_outcome.update({"model-download": "deadline"}))
    cluster.call(setattr, fake, "job_terminate_after", 3600.0)
    target = target_for(cluster)
    target.options.job_timeout = 10
    with pytest.raises(DeployError) as info:
        with target.deploy(recipe, tmp_path / "w"):
            pass
    text = str(info.value)
    assert "job model-download: DeadlineExceeded: Job was active longer than specified deadline" in text
    assert "did not complete within" not in text
    assert harness_namespaces(cluster) == []


# -- failed pods their controller replaces -------------------------------------------------------------


def _evicted(owner: dict | None) -> dict:
    meta = {"name": "w-0"} | ({"ownerReferences": [owner]} if owner else {})
    return {"metadata": meta, "status": {"phase": "Failed", "reason": "Evicted",
                                         "message": "The node was low on resource: memory.",
                                         "containerStatuses": [{"name": "main", "state": {"terminated": {
                                             "exitCode": 137, "reason": "Error"}}}]}}


@pytest.mark.parametrize("reason", ["Evicted", "UnexpectedAdmissionError", "OutOfnvidia.com/gpu", "Terminated"])
def test_a_failed_pod_with_a_controller_is_information_a_bare_one_is_terminal(reason):
    owned = _evicted({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w-7d9f5c8b4", "controller": True})
    owned["status"]["reason"] = reason
    assert analysis.pod_failures(owned) == []
    assert analysis.replaced_pod_note(owned).startswith(f"pod w-0 {reason}: The node was low")
    assert "replicaset w-7d9f5c8b4 replaces it" in analysis.replaced_pod_note(owned)
    assert f"reason={reason}" in analysis.pod_summary(owned)
    bare = _evicted(None)
    bare["status"]["reason"] = reason
    [f] = analysis.pod_failures(bare)
    assert f.terminal and f.reason == reason and analysis.replaced_pod_note(bare) == ""
    # an owner that is not its controller does not replace it
    assert analysis.pod_failures(_evicted({"kind": "ConfigMap", "name": "x"}))


def test_an_evicted_worker_replaced_by_its_replicaset_does_not_fail_the_deploy(cluster, fake, recipe, tmp_path,
                                                                              monkeypatch, capfd):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "Evicted:VllmWorker")
    target = target_for(cluster, deploy_timeout=60)
    with target.deploy(recipe, tmp_path / "w"):
        pods = cluster.items(PODS, target.namespace_of(recipe.id))
        workers = {p["metadata"]["name"]: p["status"] for p in pods
                   if p["metadata"]["name"].startswith("tiny-agg-vllmworker-0")}
        assert [s.get("reason") for s in workers.values()].count("Evicted") == 1 and len(workers) == 2
    assert "pod tiny-agg-vllmworker-0 Evicted: The node was low on resource: memory" in capfd.readouterr().err
    assert harness_namespaces(cluster) == []


def test_an_evicted_download_pod_the_job_replaces_does_not_fail_the_download(cluster, fake, recipe, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(lambda: fake.job_outcome.update({"model-download": "evicted"}))
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        job = cluster.get(JOBS, target.namespace_of(recipe.id), "model-download")
        assert job["status"]["failed"] == 1 and job["status"]["succeeded"] == 1


# -- pods the apiserver refuses to create ---------------------------------------------------------------


@pytest.mark.parametrize("kind,message,terminal,hint", [
    ("ReplicaSet", 'Error creating: pods "w-7d9f5c8b4-" is forbidden: violates PodSecurity "baseline:latest": '
     'non-default capabilities (container "main" must not include "IPC_LOCK" in securityContext.capabilities.add)',
     True, "pod-security.kubernetes.io/enforce"),
    ("LeaderWorkerSet", 'Error creating: admission webhook "validate.kyverno.svc-fail" denied the request: '
     "policy Pod/rh/w-0 for resource violation: disallow-host-path", True, "admission webhook"),
    ("Job", 'Error creating: pods "dl-" is forbidden: maximum cpu usage per Container is 2, but limit is 4',
     True, "LimitRange"),
    ("PodClique", 'Error creating: pods "w-0-" is forbidden: exceeded quota: gpu-quota, requested: '
     "requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=8, limited: requests.nvidia.com/gpu=8",
     False, "ResourceQuota"),
])
def test_failed_create_from_any_controller_is_a_failure_naming_object_reason_and_remedy(kind, message, terminal,
                                                                                       hint):
    [f] = analysis.event_failures(warning(kind, "w", "FailedCreate", message))
    assert (f.kind, f.name, f.reason, f.terminal) == (kind, "w", "FailedCreate", terminal)
    assert f.describe().startswith(f"{kind.lower()} w: FailedCreate: Error creating:") and hint in f.describe()
    if not terminal:
        assert f.grace == analysis.GRACE_UNSCHEDULABLE


def test_grove_pod_create_failed_on_a_podclique_is_judged_as_failed_create():
    """Grove's PodClique controller says it with its own reason (ReasonPodCreateFailed)."""
    msg = ('Error creating pod g-0-vllmworker-abc12: pods "g-0-vllmworker-abc12" is forbidden: violates PodSecurity '
           '"baseline:latest": hostPath volumes (volume "dev")')
    [f] = analysis.event_failures(warning("PodClique", "g-0-vllmworker", "PodCreateFailed", msg))
    assert (f.kind, f.name, f.reason, f.terminal) == ("PodClique", "g-0-vllmworker", "FailedCreate", True)
    owner = {"kind": "PodClique", "name": "g-0-vllmworker", "controller": True}
    made = {"metadata": {"name": "p", "creationTimestamp": _ago(1), "ownerReferences": [owner]}}
    assert analysis.contradicted(f, {"p": made}, {}, {"lastTimestamp": _ago(20)})


def test_a_read_write_once_volume_attached_elsewhere_gets_the_pvc_grace_and_ends_when_the_pod_starts():
    msg = ('Multi-Attach error for volume "pvc-1" Volume is already exclusively attached to one node and can\'t be '
           "attached to another")
    [f] = analysis.event_failures(warning("Pod", "w-0", "FailedAttachVolume", msg))
    assert (f.reason, f.grace) == ("MultiAttach", analysis.GRACE_PVC) and "ReadWriteMany" in f.hint
    creating = {"metadata": {"name": "w-0"}, "status": {"containerStatuses": [
        {"name": "main", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    started = {"metadata": {"name": "w-0"}, "status": {"containerStatuses": [
        {"name": "main", "state": {"running": {}}, "imageID": "sha256:1"}]}}
    assert not analysis.contradicted(f, {"w-0": creating}, {})
    assert analysis.contradicted(f, {"w-0": started}, {})
    assert analysis.event_failures(warning("Pod", "w-0", "FailedAttachVolume", "AttachVolume.Attach failed for "
                                           "volume \"pvc-1\" : rpc error: code = DeadlineExceeded")) == []


def test_failed_create_for_a_service_account_not_made_yet_is_retried_not_a_failure():
    msg = ('Error creating: pods "w-7d9f5c8b4-" is forbidden: error looking up service account rh-x/default: '
           'serviceaccount "default" not found')
    assert analysis.event_failures(warning("ReplicaSet", "w", "FailedCreate", msg)) == []


def test_failed_create_is_over_once_the_controller_has_created_a_pod_since():
    f = Failure("FailedCreate", "ReplicaSet", "w-1", grace=analysis.GRACE_UNSCHEDULABLE)
    ev = {"lastTimestamp": _ago(30)}
    owner = {"kind": "ReplicaSet", "name": "w-1", "controller": True}
    before = {"metadata": {"name": "a", "creationTimestamp": _ago(60), "ownerReferences": [owner]}}
    after = {"metadata": {"name": "b", "creationTimestamp": _ago(5), "ownerReferences": [owner]}}
    assert not analysis.contradicted(f, {"a": before}, {}, ev)
    assert analysis.contradicted(f, {"a": before, "b": after}, {}, ev)


@pytest.fixture
def ipc_lock_recipe(tmp_path: Path):
    from test_kubernetes_target import write_tiny_recipes

    from recipe_harness.load.discovery import discover
    from recipe_harness.model.bundle import LoadedRecipe
    root = write_tiny_recipes(tmp_path / "recipes-ipc")
    deploy = root / "tiny" / "vllm" / "agg" / "deploy.yaml"
    deploy.write_text(deploy.read_text().replace(
        "          command: [python3, -m, dynamo.vllm]\n",
        "          command: [python3, -m, dynamo.vllm]\n          securityContext: {capabilities: {add: [IPC_LOCK]}}\n"))
    return LoadedRecipe.load(discover(root).recipes[0])


def test_pods_pod_security_refuses_fail_the_deploy_at_once_naming_the_replicaset(cluster, fake, ipc_lock_recipe,
                                                                                tmp_path, monkeypatch):
    """The ReplicaSet cannot create the worker pods (IPC_LOCK under Pod Security baseline): no pod
    ever exists, only the owner's FailedCreate event says why. Before, the wait ran out."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "pod_security_default", "baseline")
    with pytest.raises(DeployError) as info:
        with target_for(cluster, deploy_timeout=20).deploy(ipc_lock_recipe, tmp_path / "w"):
            pass
    text = str(info.value)
    assert ('replicaset tiny-agg-vllmworker-7d9f5c8b4: FailedCreate: Error creating: pods "tiny-agg-vllmworker-'
            '7d9f5c8b4-" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container '
            '"main" must not include "IPC_LOCK"') in text
    assert "pod-security.kubernetes.io/enforce=privileged" in text and "not Ready within" not in text
    assert harness_namespaces(cluster) == []


def test_a_generic_ephemeral_volumes_claim_not_made_yet_gets_the_pvc_grace():
    msg = ('0/2 nodes are available: waiting for ephemeral volume controller to create the persistentvolumeclaim '
           '"tiny-agg-vllmworker-0-scratch". preemption: 0/2 nodes are available: 2 Preemption is not helpful.')
    [f] = analysis.event_failures(warning("Pod", "tiny-agg-vllmworker-0", "FailedScheduling", msg))
    assert f.grace == analysis.GRACE_PVC and "PersistentVolumeClaim is not bound" in f.hint
    [g] = analysis.pod_failures(pod(conditions=[{"type": "PodScheduled", "status": "False",
                                                 "reason": "Unschedulable", "message": msg}]))
    assert g.grace == analysis.GRACE_PVC


# -- node autoscalers --------------------------------------------------------------------------------


def _normal(name: str, reason: str, message: str, ago: float, *, api: str = "core") -> dict:
    if api == "core":   # core/v1, as the cluster-autoscaler's recorder writes it
        return {"type": "Normal", "reason": reason, "message": message, "lastTimestamp": _ago(ago),
                "metadata": {"name": f"{name}.{reason}"}, "involvedObject": {"kind": "Pod", "name": name}}
    # events.k8s.io/v1, as Karpenter's recorder writes it
    return {"type": "Normal", "reason": reason, "note": message, "eventTime": _ago(ago),
            "metadata": {"name": f"{name}.{reason}"}, "regarding": {"kind": "Pod", "name": name}}


def test_a_pod_an_autoscaler_adds_a_node_for_is_waiting_not_failed():
    from datetime import UTC, datetime, timedelta
    since = datetime.now(UTC) - timedelta(minutes=5)
    events = [
        _normal("a-0", "TriggeredScaleUp", "pod triggered scale-up: [{gpu 1->2 (max: 4)}]", 60),
        _normal("b-0", "Nominated", "Pod should schedule on: nodeclaim/gpu-x7k2q", 30, api="events.k8s.io"),
        # the autoscaler took it back: the node group hit its maximum
        _normal("c-0", "TriggeredScaleUp", "pod triggered scale-up: [{gpu 3->4 (max: 4)}]", 120),
        _normal("c-0", "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached", 20),
        # an earlier run's scale-up, before this wait began
        _normal("d-0", "TriggeredScaleUp", "pod triggered scale-up: [{gpu 0->1 (max: 4)}]", 3600),
        {**_normal("e-0", "TriggeredScaleUp", "x", 10), "involvedObject": {"kind": "Job", "name": "e-0"}},
    ]
    assert analysis.autoscaler_verdicts(events, since) == {
        "a-0": (True, "pod triggered scale-up: [{gpu 1->2 (max: 4)}]"),
        "b-0": (True, "Pod should schedule on: nodeclaim/gpu-x7k2q"),
        "c-0": (False, "pod didn't trigger scale-up: 1 max node group size reached")}


CONFIGMAPS = ("", "v1", "configmaps")


def _cluster_autoscaler(cluster) -> None:
    """What the cluster-autoscaler writes at start (its --write-status-configmap default)."""
    cluster.namespace("kube-system")
    cluster.put(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
                             "data": {"status": "autoscalerStatus: Running\nnodeGroups:\n- name: gpu-nodes\n"}})


def test_an_autoscaled_cluster_deploys_with_no_unschedulable_grace(cluster, fake, recipe, tmp_path, monkeypatch,
                                                                   capfd):
    """The worker's pod is unschedulable until the cluster-autoscaler's node joins. With the default
    --unschedulable-grace of 0 s this failed at once; the pod now waits (--autoscaler-wait) for the
    autoscaler's word, then for its node."""
    monkeypatch.setenv("HF_TOKEN", "x")
    _cluster_autoscaler(cluster)
    cluster.call(setattr, fake, "dgd_outcome", "ScaleUp:VllmWorker")
    cluster.call(setattr, fake, "failure_after", 1.0)
    with target_for(cluster, deploy_timeout=60).deploy(recipe, tmp_path / "w") as endpoint:
        assert endpoint.model
    assert "waiting for a node the autoscaler is adding (pod triggered scale-up" in capfd.readouterr().err
    assert harness_namespaces(cluster) == []


def test_an_autoscaler_that_will_not_add_a_node_fails_the_pod_with_its_reason(cluster, fake, recipe, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    _cluster_autoscaler(cluster)
    cluster.call(setattr, fake, "dgd_outcome", "NoScaleUp:VllmWorker")
    with pytest.raises(DeployError) as err:
        with target_for(cluster, deploy_timeout=60).deploy(recipe, tmp_path / "w"):
            pass
    assert "Unschedulable" in str(err.value)
    assert "autoscaler: pod didn't trigger scale-up: 1 max node group size reached" in str(err.value)
    assert harness_namespaces(cluster) == []


def test_an_autoscaler_that_stays_silent_fails_the_pod_after_autoscaler_wait(cluster, fake, recipe, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    _cluster_autoscaler(cluster)
    cluster.call(setattr, fake, "dgd_outcome", "Unschedulable:VllmWorker")
    with pytest.raises(DeployError) as err:
        with target_for(cluster, deploy_timeout=60, autoscaler_wait=1.0).deploy(recipe, tmp_path / "w"):
            pass
    assert "--autoscaler-wait" in str(err.value) and "cluster-autoscaler" in str(err.value)
    assert harness_namespaces(cluster) == []


def test_without_a_node_autoscaler_an_unschedulable_pod_still_fails_at_once(cluster, fake, recipe, tmp_path,
                                                                           monkeypatch):
    """No status ConfigMap, no karpenter.sh API: as before, --unschedulable-grace (0 s) applies, even
    when a scale-up event shows up later."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "ScaleUp:VllmWorker")
    cluster.call(setattr, fake, "autoscaler_notice", 5.0)
    with pytest.raises(DeployError, match="Unschedulable.*--unschedulable-grace"):
        with target_for(cluster, deploy_timeout=60).deploy(recipe, tmp_path / "w"):
            pass
    assert harness_namespaces(cluster) == []


def test_the_node_autoscaler_is_found_by_what_each_one_leaves_in_the_api(cluster):
    from recipe_harness.deploy.kubernetes.preflight import node_autoscaler

    kube = target_for(cluster).kube
    assert node_autoscaler(kube) is None
    cluster.put(("apiextensions.k8s.io", "v1", "customresourcedefinitions"), {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "nodepools.karpenter.sh"},
        "spec": {"group": "karpenter.sh", "names": {"plural": "nodepools", "kind": "NodePool"}, "scope": "Cluster",
                 "versions": [{"name": "v1", "served": True, "storage": True}]}})
    assert node_autoscaler(kube) == "Karpenter"
    _cluster_autoscaler(cluster)
    assert node_autoscaler(kube) == "cluster-autoscaler"


# -- a cache namespace shared across runs ------------------------------------------------------------


def test_a_cache_namespace_run_ends_only_when_its_graphs_pods_are_gone(cluster, fake, recipe, tmp_path, monkeypatch):
    """Deleted pods keep their GPUs while they terminate (60 s grace in the operator's pods); the next
    run in the same namespace (the perf module after the smoke module) needs them."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "pod_grace", 4.0)
    with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / "w"):
        pass
    left = [p["metadata"]["name"] for p in cluster.items(PODS)
            if (p["metadata"].get("labels") or {}).get("nvidia.com/dynamo-graph-deployment-name") == "tiny-agg"]
    assert left == []


def test_the_cache_key_is_every_download_with_its_arguments():
    from recipe_harness.deploy.kubernetes.cache import cache_key

    def job(script: str) -> dict:
        return {"spec": {"template": {"spec": {"containers": [{"name": "d", "command": ["sh", "-c"], "args": [script]}]}}}}

    full = cache_key(job("pip install hf && hf download Qwen/Qwen3-32B"))
    tokenizer = cache_key(job('pip install hf && hf download Qwen/Qwen3-32B --include "*.json" "tokenizer*"'))
    assert full.value == tokenizer.value == "Qwen/Qwen3-32B@main"  # the same model, what the annotation says
    assert full.digest != tokenizer.digest                        # but not the same download
    one = cache_key(job("set -e\nhf download nvidia/DeepSeek-R1-FP4 --local-dir /m/fp4\n"))
    two = cache_key(job("set -e\nhf download nvidia/DeepSeek-R1-FP4 --local-dir /m/fp4\nhf download deepseek-ai/DeepSeek-R1"))
    assert one.digest != two.digest
    assert cache_key(job("hf   download  Qwen/Qwen3-32B")).digest == full.digest  # spacing is not a new download


def test_a_kept_claim_that_does_not_fit_the_recipe_fails_before_anything_runs(cluster, fake, recipe, tmp_path,
                                                                               monkeypatch):
    """A PVC's access modes and class cannot change: a twin's 1Gi ReadWriteOnce claim left in the cache
    namespace would leave the real recipe with no room for its weights."""
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.namespace("model-cache-qwen", {"recipe-harness/cache": "true"})
    cluster.put(("", "v1", "persistentvolumeclaims"), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "model-cache", "namespace": "model-cache-qwen"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}})
    with pytest.raises(DeployError) as info:
        with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / "w"):
            pass
    text = str(info.value)
    assert "cache namespace model-cache-qwen holds PVC model-cache" in text
    assert "access modes ['ReadWriteOnce'] (asks ['ReadWriteMany'])" in text and "size 1Gi (asks 10Gi)" in text
    assert "storage class None (asks 'fast-rwx')" in text and "kubectl -n model-cache-qwen delete pvc model-cache" in text
    assert cluster.get(JOBS, "model-cache-qwen", "model-download") is None
    assert cluster.get(DGD_RES, "model-cache-qwen", "tiny-agg") is None


def test_a_secret_already_in_the_cache_namespace_is_used_and_kept(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)  # not needed: the namespace has the Secret
    cluster.namespace("model-cache-qwen", {"recipe-harness/cache": "true"})
    mine = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token-secret", "namespace": "model-cache-qwen"},
            "stringData": {"HF_TOKEN": "hf_owner"}}
    cluster.put(("", "v1", "secrets"), mine)
    with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / "w"):
        pass
    assert cluster.get(("", "v1", "secrets"), "model-cache-qwen", "hf-token-secret")["stringData"] == {"HF_TOKEN": "hf_owner"}


def test_a_download_job_another_run_replaces_fails_the_wait_instead_of_hanging(cluster, fake, recipe, tmp_path,
                                                                             monkeypatch):
    import copy
    import threading

    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(lambda: fake.job_outcome.update({"model-download": "ImagePullBackOff"}))  # stays active

    def other_run() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            job = next((j for j in cluster.items(JOBS) if j["metadata"]["name"] == "model-download"), None)
            if job is not None:
                time.sleep(0.5)
                again = copy.deepcopy(job)
                for key in ("uid", "resourceVersion", "creationTimestamp"):
                    again["metadata"].pop(key, None)
                again.pop("status", None)
                ns = job["metadata"]["namespace"]
                cluster.call(cluster.emu.remove, JOBS, ns, "model-download")
                cluster.put(JOBS, again)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=other_run)
    thread.start()
    with pytest.raises(DeployError) as info:
        with target_for(cluster, cache_namespace="model-cache-qwen", image_pull_grace=600).deploy(recipe,
                                                                                                tmp_path / "w"):
            pass
    thread.join()
    import re
    assert re.search(r"model-cache Job model-download was (deleted|replaced) while this run waited for it", str(info.value))
    assert "one run per cache namespace at a time" in str(info.value)


def test_what_a_run_makes_in_a_cache_namespace_carries_its_stamp_and_the_cache_does_not(cluster, fake, recipe,
                                                                                        tmp_path, monkeypatch):
    """So that `recipe-harness clean --cache-namespace` finds what a killed run left (tests/test_clean_cli.py)."""
    import os
    import socket

    from recipe_harness.deploy.kubernetes.namespace import list_cache_runs

    monkeypatch.setenv("HF_TOKEN", "x")
    with target_for(cluster, cache_namespace="model-cache-qwen").deploy(recipe, tmp_path / "w"):
        [(run, objs)] = list_cache_runs(cluster.kube(), "model-cache-qwen").items()
        kinds = sorted(o["kind"] for _, o in objs)
        assert kinds == ["DynamoGraphDeployment", "Job", "Secret"], kinds
        for _, obj in objs:
            annotations = obj["metadata"]["annotations"]
            assert annotations["recipe-harness/owner"] == f"{socket.gethostname()}/{os.getpid()}"
            assert annotations["recipe-harness/recipe"] == "tiny/vllm/agg"
        pvc = cluster.get(("", "v1", "persistentvolumeclaims"), "model-cache-qwen", "model-cache")
        assert "recipe-harness/run" not in (pvc["metadata"].get("labels") or {})
    assert list_cache_runs(cluster.kube(), "model-cache-qwen") == {}
