"""Fail-fast analysis: read pods, Jobs, PVCs, events and the DGD, name what will never become ready.

Pure functions over API objects (plain dicts), so they are tested on recorded shapes and the
watch loop only has to call them on every change.

Each :class:`Failure` is *terminal* (it cannot heal: the image does not exist, the container was
OOM-killed, the storage class is missing, the operator refused the spec) and fails the wait at
once, or it names the *grace* it is allowed (:class:`Tolerance`): real clusters retry pulls,
restart containers, provision volumes and re-run reconciles, and a signal that clears within its
grace is not a failure. The DGD controller, for one, sets ``status.state: failed`` whenever a
reconcile returns an error -- a write conflict, a webhook not serving yet -- and the next good
reconcile clears it (ai-dynamo/dynamo ``deploy/operator/internal/controller/
dynamographdeployment_controller.go``: the deferred status update sets ``DGDStateFailed`` on any
``err``); only ``ValidationFailed`` is final there ("Don't requeue - user must fix the spec").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Waiting reasons that do not heal by themselves.
FATAL_WAITING = {
    "ErrImageNeverPull": "imagePullPolicy Never and the image is not on the node",
    "InvalidImageName": "the image reference is not valid",
    "CreateContainerConfigError": "a referenced Secret/ConfigMap key is missing",
}
# Pull failures: terminal when the registry says the image is not there or not ours to pull,
# otherwise (timeouts, rate limits, a registry hiccup) retried by the kubelet with back-off.
PULL_WAITING = ("ErrImagePull", "ImagePullBackOff")
PULL_HINT = "the image cannot be pulled (wrong name/tag, private registry without imagePullSecrets)"
_PULL_TERMINAL = re.compile(r"not found|manifest unknown|repository does not exist|no such image|"
                            r"invalid reference format|unauthorized|authentication required|access denied|"
                            r"pull access denied|403 forbidden|denied:", re.I)
CRASH_HINT = "the container keeps exiting"
# The runtime could not start the container: terminal when its command or files do not exist.
START_WAITING = ("CreateContainerError", "RunContainerError", "StartError")
_START_TERMINAL = re.compile(r"executable file not found|no such file or directory|exec format error|"
                             r"permission denied", re.I)
TERMINATED_FATAL = {"OOMKilled": "the container ran out of memory; raise its memory limit"}
# Exit code 2 is the usage-error code of Python's argparse (and of shells): the engine rejected its
# command line (an unknown flag, a bad value), which no restart fixes.
USAGE_EXIT_CODE = 2
# FailedScheduling messages that only say a volume is not bound yet: allowed the PVC grace. A
# generic ephemeral volume's claim is made by the ephemeral volume controller after the pod
# (kubernetes pkg/scheduler/framework/plugins/volumebinding/volume_binding.go: "waiting for
# ephemeral volume controller to create the persistentvolumeclaim %q").
PVC_SCHEDULING = ("unbound immediate persistentvolumeclaims", "waiting for first consumer",
                  "persistentvolumeclaim is being deleted", "unbound persistentvolumeclaims",
                  "waiting for ephemeral volume controller to create the persistentvolumeclaim")
TRANSIENT_SCHEDULING = PVC_SCHEDULING
# PVC events that say a claim will not bind: ProvisioningFailed (the PV controller:
# 'storageclass.storage.k8s.io "x" not found', or a provisioner's error) and FailedBinding
# ("no persistent volumes available for this claim and no storage class is set").
PVC_EVENTS = ("ProvisioningFailed", "FailedBinding")
_PVC_TERMINAL = re.compile(r"storageclass\S* \"[^\"]*\" not found|no storage class is set", re.I)
DGD_TERMINAL_REASONS = ("ValidationFailed",)
# FailedCreate: a controller (ReplicaSet, Job, StatefulSet, LeaderWorkerSet, PodClique ...) could not
# create a pod and says so on itself (kubernetes pkg/controller/controller_utils.go
# FailedCreatePodReason, "Error creating: <the apiserver's error>"); the pod never exists. Checked
# in this order: a ServiceAccount not made yet (a fresh namespace's "default" comes a moment after
# it) is retried by the controller and is no failure; an exhausted ResourceQuota may free up;
# Pod Security, an admission webhook's denial and any other "forbidden" do not change by retrying.
# Grove (the operator's default for graphs when the grove.io API is served) says the same on the
# PodClique with its own reason (ai-dynamo/grove operator/internal/constants/constants.go
# ReasonPodCreateFailed; podclique/components/pod: "Error creating pod <name>: <err>").
CREATE_FAILED_REASONS = ("FailedCreate", "PodCreateFailed")
_CREATE_TRANSIENT = re.compile(r"error looking up service account|serviceaccounts? \"[^\"]*\" not found", re.I)
_CREATE_QUOTA = re.compile(r"exceeded quota", re.I)
_CREATE_REFUSED = (
    (re.compile(r"violates PodSecurity", re.I),
     "Pod Security admission refused its pods: the namespace's level (label pod-security.kubernetes.io/enforce, "
     "else the cluster default) forbids what the message names; drop that from the recipe or deploy into a "
     "namespace whose level allows it (--cache-namespace NS labelled pod-security.kubernetes.io/enforce=privileged)"),
    (re.compile(r"admission webhook .*denied the request", re.I),
     "an admission webhook (a policy engine such as Kyverno or Gatekeeper) denied its pods; change the recipe "
     "to meet the policy the message names or ask the cluster's admins for an exception"),
    (re.compile(r"\bforbidden\b", re.I),
     "the apiserver refused to create its pods (a LimitRange or another admission rule); fix what the "
     "message names"),
)
# FailedMount: the kubelet cannot mount a volume, and the pod waits in ContainerCreating. When the
# ConfigMap or Secret a volume names does not exist, its configmap/secret plugin says so with the
# kubelet object manager's NotFound (pkg/volume/configmap/configmap.go, pkg/volume/secret/secret.go
# SetUpAt; singular resource names: 'configmap "x" not found'), or a key the volume lists is not in
# it ("configmap references non-existent config key: k"); the kubelet retries, so the target
# confirms with the API that the object is still missing (:func:`missing_config`). Other mount
# failures (a slow attach, a CSI driver's error) may heal and are left to --deploy-timeout.
_MOUNT_MISSING = re.compile(r'\b(configmap|secret) "([^"]+)" not found|references non-existent (config|secret) key',
                            re.I)
MOUNT_HINT = ("the pod mounts a {kind} that does not exist in the run's namespace: ship it in the recipe's deploy "
              "file (the harness applies every document of it before the DGD, as kubectl apply -f does) or fix "
              "the name the DGD's volumes give")
# A ReadWriteOnce volume attached to another node: the attach/detach controller reports it once per
# pod (kubernetes pkg/controller/volume/attachdetach/reconciler/reconciler.go reportMultiAttachError,
# "Multi-Attach error for volume ... Volume is already exclusively attached to one node and can't be
# attached to another") and the pod waits in ContainerCreating until the other pod lets go.
_MULTI_ATTACH = re.compile(r"Multi-Attach error", re.I)
MULTI_ATTACH_HINT = ("a ReadWriteOnce volume is in use by a pod on another node: give the model-cache PVC a "
                     "ReadWriteMany storage class (RH312), or keep the pods that share it on one node")
# CreateContainerConfigError that clears by itself: a kubelet that has just started cannot build
# service env vars yet (pkg/kubelet/kubelet_pods.go getServiceEnvVarMap).
_CONFIG_TRANSIENT = re.compile(r"services have not yet been read at least once", re.I)
QUOTA_HINT = ("the namespace's ResourceQuota is used up; it may free up as other workloads end (allowed "
              "--unschedulable-grace), else raise the quota or ask for less (kubectl describe resourcequota)")

GRACE_IMAGE_PULL = "image-pull"
GRACE_PVC = "pvc"
GRACE_UNSCHEDULABLE = "unschedulable"
GRACE_DGD_FAILED = "dgd-failed"
GRACE_AUTOSCALER = "autoscaler"


@dataclass(frozen=True)
class Tolerance:
    """How long signals that may heal are allowed to last before they fail a wait, and how many
    restarts a crashing container may have; each has a command-line option."""

    max_restarts: int = 3              # --max-restarts
    image_pull_grace: float = 300.0    # --image-pull-grace
    pvc_grace: float = 120.0           # --pvc-bind-timeout
    unschedulable_grace: float = 0.0   # --unschedulable-grace
    dgd_failed_grace: float = 120.0    # --dgd-failed-grace
    autoscaler_wait: float = 60.0      # --autoscaler-wait

    def grace(self, kind: str) -> float:
        return {GRACE_IMAGE_PULL: self.image_pull_grace, GRACE_PVC: self.pvc_grace,
                GRACE_UNSCHEDULABLE: self.unschedulable_grace, GRACE_DGD_FAILED: self.dgd_failed_grace,
                GRACE_AUTOSCALER: max(self.autoscaler_wait, self.unschedulable_grace)}.get(kind, 0.0)

    OPTIONS = {GRACE_IMAGE_PULL: "--image-pull-grace", GRACE_PVC: "--pvc-bind-timeout",
               GRACE_UNSCHEDULABLE: "--unschedulable-grace", GRACE_DGD_FAILED: "--dgd-failed-grace",
               GRACE_AUTOSCALER: "--autoscaler-wait"}


@dataclass(frozen=True)
class Failure:
    reason: str          # CrashLoopBackOff | ImagePullBackOff | OOMKilled | Unschedulable | BackoffLimitExceeded | DGDFailed
    kind: str            # Pod | Job | DynamoGraphDeployment
    name: str
    container: str = ""
    message: str = ""
    hint: str = ""
    grace: str = ""      # "" terminal: fails at once; else the Tolerance grace it is allowed

    @property
    def terminal(self) -> bool:
        return not self.grace

    @property
    def key(self) -> tuple[str, str, str, str]:
        # ErrImagePull and ImagePullBackOff alternate on one container: one grace for both
        return (self.kind, self.name, self.container, self.grace or self.reason)

    def describe(self) -> str:
        where = f"{self.kind.lower()} {self.name}"
        if self.container:
            where += f" container {self.container}"
        text = f"{where}: {self.reason}"
        if self.message:
            text += f": {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def _name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or "?"


def _terminated_text(term: dict[str, Any]) -> str:
    parts = []
    if term.get("exitCode") is not None:
        parts.append(f"exit code {term.get('exitCode')}")
    if term.get("message"):
        parts.append(str(term["message"]).strip()[:300])
    return ", ".join(parts)


def _pull_failure(name: str, cname: str, reason: str, message: str) -> Failure:
    terminal = bool(_PULL_TERMINAL.search(message))
    return Failure(reason, "Pod", name, cname, message, PULL_HINT, "" if terminal else GRACE_IMAGE_PULL)


def pod_failures(pod: dict[str, Any], tolerance: Tolerance | None = None) -> list[Failure]:
    """Containers (init containers too) of one pod that will not become ready by themselves,
    or that may still heal (with the grace they are allowed)."""
    tol = tolerance or Tolerance()
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    status = pod.get("status") or {}
    name = _name(pod)
    out: list[Failure] = []
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    for cs in statuses:
        cname = cs.get("name", "?")
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        msg = str(waiting.get("message") or "").strip()[:400]
        if reason in FATAL_WAITING:
            if not _CONFIG_TRANSIENT.search(msg):
                out.append(Failure(reason, "Pod", name, cname, msg, FATAL_WAITING[reason]))
            continue
        if reason in PULL_WAITING:
            out.append(_pull_failure(name, cname, reason, msg))
            continue
        if reason in START_WAITING and _START_TERMINAL.search(msg):
            out.append(Failure(reason, "Pod", name, cname, msg, "the container's command or working directory "
                               "does not exist in its image"))
            continue
        if reason == "CrashLoopBackOff":
            term = last.get("terminated") or {}
            detail = _terminated_text(term)
            restarts = int(cs.get("restartCount") or 0)
            if term.get("reason") in TERMINATED_FATAL:
                out.append(Failure(term["reason"], "Pod", name, cname, detail, TERMINATED_FATAL[term["reason"]]))
                continue
            if term.get("exitCode") == USAGE_EXIT_CODE:
                out.append(Failure("CrashLoopBackOff", "Pod", name, cname, f"{detail}, restarted {restarts} times",
                                   "exit code 2: the program rejected its command line (an unknown flag or a "
                                   "bad value); see the last log lines"))
                continue
            if restarts > tol.max_restarts:
                text = ", ".join(p for p in (detail, f"restarted {restarts} times (limit --max-restarts "
                                                     f"{tol.max_restarts})", msg) if p)
                out.append(Failure(reason, "Pod", name, cname, text, CRASH_HINT))
            continue
        for term in (state.get("terminated") or {}, last.get("terminated") or {}):
            if term.get("reason") in TERMINATED_FATAL:
                out.append(Failure(term["reason"], "Pod", name, cname, _terminated_text(term),
                                   TERMINATED_FATAL[term["reason"]]))
                break
    if status.get("phase") == "Failed" and not out and status.get("reason") and controller_of(pod) is None:
        # a bare pod; one with a controller is replaced by it (see replaced_pod_note)
        out.append(Failure(str(status["reason"]), "Pod", name, "", str(status.get("message") or "")[:400]))
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            msg = str(cond.get("message") or "")
            out.append(_unschedulable(name, msg))
    return out


class Recreations:
    """Pods a controller deletes and makes again under the same name after a container exits: a
    LeaderWorkerSet restarts its whole group that way (``RecreateGroupOnPodRestart``, its default,
    which the Dynamo operator keeps: kubernetes-sigs/lws pkg/controllers/pod_controller.go
    ``handleRestartPolicy``), so each new pod starts at restartCount 0 and a crashing engine never
    shows ``CrashLoopBackOff``. Fed every pod state the wait sees, it counts per pod name the
    incarnations replaced after a container exited with an error (or restarted), and judges them as
    restarts: past ``--max-restarts`` they fail, exit code 2 (a rejected command line) at once."""

    def __init__(self) -> None:
        self._pods: dict[str, dict[str, Any]] = {}

    def observe(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or meta.get("creationTimestamp") or "")
        if not uid:
            return
        rec = self._pods.setdefault(_name(pod), {"uids": [], "crashed": set(), "last": "", "container": "",
                                                 "usage": False})
        if uid not in rec["uids"]:
            rec["uids"].append(uid)
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            for term in ((cs.get("state") or {}).get("terminated") or {}, (cs.get("lastState") or {}).get("terminated") or {}):
                if term.get("exitCode") not in (None, 0):
                    rec["crashed"].add(uid)
                    rec["last"], rec["container"] = _terminated_text(term), str(cs.get("name") or "")
                    rec["usage"] = rec["usage"] or term.get("exitCode") == USAGE_EXIT_CODE
            if int(cs.get("restartCount") or 0) > 0:
                rec["crashed"].add(uid)

    def failures(self, tolerance: Tolerance | None = None) -> list[Failure]:
        tol = tolerance or Tolerance()
        out: list[Failure] = []
        for name, rec in self._pods.items():
            replaced = sum(1 for uid in rec["uids"][:-1] if uid in rec["crashed"])
            if not replaced or (replaced <= tol.max_restarts and not rec["usage"]):
                continue
            text = ", ".join(p for p in (rec["last"], f"pod recreated {replaced} times after its container exited "
                                         f"(limit --max-restarts {tol.max_restarts})") if p)
            hint = ("exit code 2: the program rejected its command line (an unknown flag or a bad value); see the "
                    "last log lines" if rec["usage"] else CRASH_HINT + "; its controller recreates the pod (and a "
                    "LeaderWorkerSet its whole group) each time")
            out.append(Failure("CrashLoopBackOff", "Pod", name, rec["container"], text, hint))
        return out


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true`` (ReplicaSet, Job, StatefulSet, LeaderWorkerSet,
    PodClique ...), if any."""
    return next((o for o in (obj.get("metadata") or {}).get("ownerReferences") or [] if o.get("controller")), None)


def replaced_pod_note(pod: dict[str, Any]) -> str:
    """For a pod that ``Failed`` with a ``status.reason`` (Evicted, UnexpectedAdmissionError,
    OutOf<resource>, Terminated by node shutdown) and has a controller: one line saying so. Its
    controller replaces it (a ReplicaSet counts only active pods; a Job within its backoffLimit
    makes a new one), so it is information, not a failure; the owner's state is what is judged."""
    status = pod.get("status") or {}
    owner = controller_of(pod)
    if status.get("phase") != "Failed" or not status.get("reason") or owner is None:
        return ""
    text = f"pod {_name(pod)} {status['reason']}"
    if status.get("message"):
        text += f": {str(status['message']).strip()[:200]}"
    return text + f" (its {str(owner.get('kind') or 'controller').lower()} {owner.get('name') or '?'} replaces it)"


def _unschedulable(pod: str, message: str) -> Failure:
    if _transient_scheduling(message):
        return Failure("Unschedulable", "Pod", pod, "", message[:600],
                       "its PersistentVolumeClaim is not bound: see the PVC's events (storage class, provisioner)",
                       GRACE_PVC)
    return Failure("Unschedulable", "Pod", pod, "", message[:600],
                   "no node has the requested GPUs/CPU/memory or matches its selectors/tolerations",
                   GRACE_UNSCHEDULABLE)


def _transient_scheduling(message: str) -> bool:
    low = message.lower()
    return any(t in low for t in TRANSIENT_SCHEDULING)


def event_failures(event: dict[str, Any]) -> list[Failure]:
    """What warning events say: pods no node can take (``FailedScheduling``), images the registry
    does not have (``Failed`` to pull), PVCs that will not bind (``ProvisioningFailed``,
    ``FailedBinding``), pods a controller of any kind could not create (``FailedCreate``)."""
    if event.get("type") != "Warning":
        return []
    involved = event.get("involvedObject") or event.get("regarding") or {}
    kind = involved.get("kind")
    name = involved.get("name") or "?"
    msg = str(event.get("message") or event.get("note") or "")
    reason = event.get("reason")
    if kind == "Pod" and reason == "FailedScheduling":
        return [_unschedulable(name, msg)]
    if kind == "Pod" and reason == "Failed" and "pull" in msg.lower() and _PULL_TERMINAL.search(msg):
        fieldpath = str(involved.get("fieldPath") or "")
        m = re.search(r"containers\{([^}]*)\}", fieldpath)
        return [Failure("ErrImagePull", "Pod", name, m.group(1) if m else "", msg[:600], PULL_HINT)]
    if reason in CREATE_FAILED_REASONS:
        return _failed_create(str(kind or "?"), name, msg)
    if kind == "Pod" and reason == "FailedAttachVolume" and _MULTI_ATTACH.search(msg):
        return [Failure("MultiAttach", "Pod", name, "", msg[:600], MULTI_ATTACH_HINT, GRACE_PVC)]
    if kind == "Pod" and reason == "FailedMount" and _MOUNT_MISSING.search(msg):
        ref = missing_config(msg)
        return [Failure("FailedMount", "Pod", name, "", msg[:600],
                        MOUNT_HINT.format(kind="Secret" if ref and ref[0] == "secret" else "ConfigMap"))]
    if kind == "PersistentVolumeClaim" and reason in PVC_EVENTS:
        terminal = bool(_PVC_TERMINAL.search(msg))
        return [Failure(str(reason), "PersistentVolumeClaim", name, "", msg[:600],
                        "the claim cannot be bound: name an existing storage class (kubectl get storageclass) "
                        "or mark one as the default", "" if terminal else GRACE_PVC)]
    return []


# Events outlive what they report: the apiserver keeps them for its --event-ttl (1 h by default)
# whatever became of the object since, and a cache namespace holds those of earlier runs. Only
# events last seen since the wait began count. Their times are written by the component that
# reported them (scheduler, kubelet, controller-manager) with its own clock, in whole seconds for
# core/v1 ``lastTimestamp``, and compared with this machine's clock: the margin absorbs the
# truncation and the drift of NTP-synchronised clocks, and is far shorter than the gap between
# two runs' waits.
EVENT_CLOCK_SKEW = timedelta(seconds=10)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def event_last_seen(event: dict[str, Any]) -> datetime | None:
    """When an event last happened: the latest of core/v1 ``lastTimestamp`` / ``eventTime`` /
    ``series.lastObservedTime`` and events.k8s.io/v1 ``deprecatedLastTimestamp`` /
    ``eventTime`` / ``series.lastObservedTime``; the object's ``creationTimestamp`` when none is set."""
    series = event.get("series") or {}
    times = [t for t in (_time(event.get("lastTimestamp")), _time(event.get("deprecatedLastTimestamp")),
                         _time(event.get("eventTime")), _time(series.get("lastObservedTime"))) if t is not None]
    if times:
        return max(times)
    return _time((event.get("metadata") or {}).get("creationTimestamp"))


def event_fresh(event: dict[str, Any], since: datetime | None) -> bool:
    """Whether ``event`` happened at or after ``since`` (less :data:`EVENT_CLOCK_SKEW`); an event
    without any time counts as fresh."""
    if since is None:
        return True
    seen = event_last_seen(event)
    return seen is None or seen >= since - EVENT_CLOCK_SKEW


def _scheduled(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) or any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or [])


def _container_started(pod: dict[str, Any], container: str | None = None) -> bool:
    """Whether ``container`` (any container, init containers included, when ``None``) has started."""
    status = pod.get("status") or {}
    for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
        if container is None or cs.get("name") == container:
            state = cs.get("state") or {}
            if state.get("running") or state.get("terminated") or cs.get("imageID"):
                return True
            if container is not None:
                return False
    return False


# Node autoscalers say on an unschedulable pod whether they add a node for it: the cluster-autoscaler
# records a Normal ``TriggeredScaleUp`` ("pod triggered scale-up: [{<group> 1->2 (max: 4)}]") or
# ``NotTriggerScaleUp`` ("pod didn't trigger scale-up: ...") (cluster-autoscaler, core/scaleup and
# processors/status/eventing_scale_up_processor.go); Karpenter (and EKS Auto Mode) records a Normal
# ``Nominated`` ("Pod should schedule on: nodeclaim/<name>") once it has launched a node claim for it.
SCALE_UP_EVENTS = ("TriggeredScaleUp", "Nominated")
NO_SCALE_UP_EVENTS = ("NotTriggerScaleUp",)


def autoscaler_verdicts(events: Any, since: datetime | None) -> dict[str, tuple[bool, str]]:
    """For each pod an autoscaler has spoken of since ``since``: whether its latest word is that it
    adds a node (``True``) or will not (``False``), and what it said."""
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    never = datetime.min.replace(tzinfo=UTC)
    for ev in events:
        if ev.get("reason") not in SCALE_UP_EVENTS + NO_SCALE_UP_EVENTS or not event_fresh(ev, since):
            continue
        involved = ev.get("involvedObject") or ev.get("regarding") or {}
        if involved.get("kind") != "Pod" or not involved.get("name"):
            continue
        when = event_last_seen(ev) or never
        name = str(involved["name"])
        if name not in latest or when >= latest[name][0]:
            latest[name] = (when, ev)
    return {name: (ev.get("reason") in SCALE_UP_EVENTS, str(ev.get("message") or ev.get("note") or ev.get("reason")))
            for name, (_, ev) in latest.items()}


AUTOSCALER_HINT = ("the cluster runs a node autoscaler ({autoscaler}), which has not said within --autoscaler-wait "
                   "that it adds a node for the pod: no node group can supply the GPUs/CPU/memory or selectors asked "
                   "for; see its status (kubectl -n kube-system get configmap cluster-autoscaler-status -o yaml) or "
                   "Karpenter's NodePools and logs")


def missing_config(message: str) -> tuple[str, str] | None:
    """The ConfigMap or Secret a ``FailedMount`` message says does not exist, as (``configmap`` |
    ``secret``, name); ``None`` when it names none (a missing key)."""
    m = _MOUNT_MISSING.search(message)
    if m is None or m.group(1) is None:
        return None
    return m.group(1).lower(), m.group(2)


def contradicted(failure: Failure, pods: dict[str, dict[str, Any]],
                 pvcs: dict[str, dict[str, Any] | None], event: dict[str, Any] | None = None) -> bool:
    """Whether the current state of the object an event-based ``failure`` names says it is over:
    the pod has been scheduled since (``PodScheduled=True``), the container whose image would not
    pull has started, the claim is ``Bound``, the controller that could not create a pod created
    one after the ``event`` was last seen. ``pods`` and ``pvcs`` map names to current objects."""
    if failure.reason == "FailedCreate":  # (Grove's PodCreateFailed too: its pods are owned by the PodClique)
        last = event_last_seen(event or {})
        for made in pods.values():
            owner = controller_of(made) or {}
            created = _time((made.get("metadata") or {}).get("creationTimestamp"))
            if (owner.get("kind"), owner.get("name")) == (failure.kind, failure.name) and created is not None \
                    and (last is None or created > last):
                return True
        return False
    if failure.kind == "Pod":
        pod = pods.get(failure.name)
        if pod is None:
            return False
        if failure.reason == "Unschedulable":
            return _scheduled(pod)
        if failure.reason in ("FailedMount", "MultiAttach"):  # mounted since: a container got past ContainerCreating
            return _container_started(pod)
        if failure.reason == "ErrImagePull" and failure.container:
            return _container_started(pod, failure.container)
        return False
    if failure.kind == "PersistentVolumeClaim":
        pvc = pvcs.get(failure.name)
        return pvc is not None and ((pvc.get("status") or {}).get("phase") == "Bound")
    return False


def _true(job: dict[str, Any], *types: str) -> dict[str, Any] | None:
    for t in types:
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == t and cond.get("status") == "True":
                return cond
    return None


def _failed_create(kind: str, name: str, msg: str) -> list[Failure]:
    if _CREATE_TRANSIENT.search(msg):
        return []
    if _CREATE_QUOTA.search(msg):
        return [Failure("FailedCreate", kind, name, "", msg[:600], QUOTA_HINT, GRACE_UNSCHEDULABLE)]
    for pattern, hint in _CREATE_REFUSED:
        if pattern.search(msg):
            return [Failure("FailedCreate", kind, name, "", msg[:600], hint)]
    return []  # the controller retries other errors (a timeout, a conflict)


def job_failure(job: dict[str, Any]) -> Failure | None:
    """A Job that has failed (backoff limit exhausted, deadline exceeded, a pod failure policy):
    condition ``Failed``, or ``FailureTarget``, which the Job controller of Kubernetes 1.31+ sets
    first and turns into ``Failed`` only once every pod has terminated (a pod's grace period
    can be long). https://kubernetes.io/docs/concepts/workloads/controllers/job/ "Terminal Job
    conditions"."""
    cond = _true(job, "Failed", "FailureTarget")
    if cond is None:
        return None
    reason = cond.get("reason") or "JobFailed"
    hint = ("its pods failed more often than backoffLimit allows; see their logs"
            if reason == "BackoffLimitExceeded" else "")
    return Failure(reason, "Job", _name(job), "", str(cond.get("message") or "")[:400], hint)


def job_succeeded(job: dict[str, Any]) -> bool:
    """``Complete``, or ``SuccessCriteriaMet`` (set before ``Complete`` by Kubernetes 1.31+)."""
    if _true(job, "Complete", "SuccessCriteriaMet") is not None:
        return True
    status = job.get("status") or {}
    completions = (job.get("spec") or {}).get("completions") or 1
    return int(status.get("succeeded") or 0) >= int(completions) and not status.get("active")


OPERATOR_FINALIZER = "nvidia.com/finalizer"
"""Added by the Dynamo operator's first reconcile of a DGD (``finalizerName``,
deploy/operator/internal/controller_common/finalizer.go; ``HandleFinalizer`` runs before anything else)."""


def dgd_picked_up(dgd: dict[str, Any] | None) -> bool:
    """Has an operator reconciled the DGD at all: its finalizer, or a status beyond the CRD's default
    ``state: initializing`` (a condition, ``observedGeneration``, any other state)?"""
    if dgd is None:
        return False
    if OPERATOR_FINALIZER in ((dgd.get("metadata") or {}).get("finalizers") or []):
        return True
    status = dgd.get("status") or {}
    if status.get("conditions") or status.get("observedGeneration"):
        return True
    return str(status.get("state") or "initializing").lower() != "initializing"


def dgd_ready(dgd: dict[str, Any]) -> bool:
    """Ready condition ``True`` and ``status.state`` ``successful`` -- of the current spec: when the
    operator writes ``status.observedGeneration`` (newer operators, only after a reconcile without
    error: the deferred status write in dynamographdeployment_controller.go), it must have reached
    ``metadata.generation``; a status from an older generation says nothing about this one."""
    status = dgd.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not (ready and str(status.get("state") or "").lower() == "successful"):
        return False
    observed = status.get("observedGeneration")
    generation = (dgd.get("metadata") or {}).get("generation")
    if observed is None or generation is None:
        return True
    try:
        return int(observed) >= int(generation)
    except (TypeError, ValueError):
        return False


# Reconcile errors that no later reconcile clears: the operator looks for a multinode orchestrator
# once, at start-up (deploy/operator main.go: LWS counts only with Volcano; Grove when its API group
# is served), and fails every DGD with a multinode service without one (dynamographdeployment
# controller: "no multinode orchestrator available", Ready reason no_multinode_orchestrator_available).
DGD_TERMINAL_MESSAGES = (
    (re.compile(r"no.multinode.orchestrator.available", re.I),
     "the Dynamo operator found no multinode orchestrator when it started (Grove, or LeaderWorkerSet together "
     "with Volcano) and fails every DGD with multinode services: install Grove, or LWS and Volcano, then restart "
     "the operator (it looks only at start-up); or deploy a recipe without multinode"),
)


def dgd_failure(dgd: dict[str, Any]) -> Failure | None:
    """``status.state: failed``: final when the operator refused the spec (``ValidationFailed``) or
    hit an error only a change to the cluster clears (:data:`DGD_TERMINAL_MESSAGES`, said on a
    condition whatever the state), else allowed the ``dgd-failed`` grace (the next good reconcile
    clears it)."""
    status = dgd.get("status") or {}
    conds = [c for c in status.get("conditions") or [] if c.get("status") != "True"]
    msgs = [f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}".strip()
            for c in conds]
    for pattern, why in DGD_TERMINAL_MESSAGES:
        if any(pattern.search(m) for m in msgs):
            return Failure("DGDFailed", "DynamoGraphDeployment", _name(dgd), "", "; ".join(msgs)[:600], why)
    if str(status.get("state") or "").lower() != "failed":
        return None
    ready: dict[str, Any] = next((c for c in conds if c.get("type") == "Ready"), {})
    terminal = ready.get("reason") in DGD_TERMINAL_REASONS
    hint = ("the operator refused the spec; fix the DGD" if terminal else
            "the operator's reconcile keeps failing; see the DGD's status and the operator's logs")
    return Failure("DGDFailed", "DynamoGraphDeployment", _name(dgd), "", "; ".join(msgs)[:600], hint,
                   "" if terminal else GRACE_DGD_FAILED)


def dgd_progress(dgd: dict[str, Any]) -> str:
    """One line on where the DGD stands, for timeouts and logs."""
    status = dgd.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    text = f"state={status.get('state') or '-'}"
    if ready:
        text += f" Ready={ready.get('status')} {ready.get('reason') or ''} {ready.get('message') or ''}".rstrip()
    return text


def pod_summary(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    parts = [f"{_name(pod)} phase={status.get('phase') or '-'}"]
    if status.get("reason"):
        parts.append(f"reason={status['reason']}")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        label = next(iter(state), "-")
        reason = (state.get(label) or {}).get("reason") if label != "-" else ""
        parts.append(f"{cs.get('name')}={label}{'/' + reason if reason else ''} ready={cs.get('ready')}")
    return " ".join(parts)
