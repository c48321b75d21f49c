"""Fail-fast analysis: read pods, Jobs, events and the DGD, name what will never become ready.

Pure functions over API objects (plain dicts), so they are tested on recorded shapes and the
watch loop only has to call them on every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Waiting reasons that do not heal by themselves.
FATAL_WAITING = {
    "ImagePullBackOff": "the image cannot be pulled (wrong name/tag, private registry without imagePullSecrets)",
    "ErrImageNeverPull": "imagePullPolicy Never and the image is not on the node",
    "InvalidImageName": "the image reference is not valid",
    "CrashLoopBackOff": "the container keeps exiting",
    "CreateContainerConfigError": "a referenced Secret/ConfigMap key is missing",
}
TERMINATED_FATAL = {"OOMKilled": "the container ran out of memory; raise its memory limit"}
# FailedScheduling messages that only say a volume is still being provisioned.
TRANSIENT_SCHEDULING = ("unbound immediate persistentvolumeclaims", "waiting for first consumer",
                        "persistentvolumeclaim is being deleted")


@dataclass(frozen=True)
class Failure:
    reason: str          # CrashLoopBackOff | ImagePullBackOff | OOMKilled | Unschedulable | BackoffLimitExceeded | DGDFailed
    kind: str            # Pod | Job | DynamoGraphDeployment
    name: str
    container: str = ""
    message: str = ""
    hint: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.name, self.container, self.reason)

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


def pod_failures(pod: dict[str, Any]) -> list[Failure]:
    """Containers (init containers too) of one pod that will not become ready by themselves."""
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
        if reason in FATAL_WAITING:
            msg = str(waiting.get("message") or "").strip()[:400]
            term = last.get("terminated") or {}
            if reason == "CrashLoopBackOff":
                detail = _terminated_text(term)
                restarts = cs.get("restartCount")
                if term.get("reason") in TERMINATED_FATAL:
                    out.append(Failure(term["reason"], "Pod", name, cname, detail, TERMINATED_FATAL[term["reason"]]))
                    continue
                msg = ", ".join(p for p in (detail, f"restarted {restarts} times" if restarts else "", msg) if p)
            out.append(Failure(reason, "Pod", name, cname, msg, FATAL_WAITING[reason]))
            continue
        for term in (state.get("terminated") or {}, last.get("terminated") or {}):
            if term.get("reason") in TERMINATED_FATAL:
                out.append(Failure(term["reason"], "Pod", name, cname, _terminated_text(term),
                                   TERMINATED_FATAL[term["reason"]]))
                break
    if status.get("phase") == "Failed" and not out and status.get("reason"):
        out.append(Failure(str(status["reason"]), "Pod", name, "", str(status.get("message") or "")[:400]))
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            msg = str(cond.get("message") or "")
            if not _transient_scheduling(msg):
                out.append(Failure("Unschedulable", "Pod", name, "", msg[:600],
                                   "no node has the requested GPUs/CPU/memory or matches its selectors/tolerations"))
    return out


def _transient_scheduling(message: str) -> bool:
    low = message.lower()
    return any(t in low for t in TRANSIENT_SCHEDULING)


def event_failures(event: dict[str, Any]) -> list[Failure]:
    """``FailedScheduling`` warnings name pods that no node can take."""
    if event.get("reason") != "FailedScheduling" or event.get("type") != "Warning":
        return []
    involved = event.get("involvedObject") or event.get("regarding") or {}
    if involved.get("kind") != "Pod":
        return []
    msg = str(event.get("message") or event.get("note") or "")
    if _transient_scheduling(msg):
        return []
    return [Failure("Unschedulable", "Pod", involved.get("name") or "?", "", msg[:600],
                    "no node has the requested GPUs/CPU/memory or matches its selectors/tolerations")]


def job_failure(job: dict[str, Any]) -> Failure | None:
    """A Job whose ``Failed`` condition is set (backoff limit exhausted, deadline exceeded)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            reason = cond.get("reason") or "JobFailed"
            hint = ("its pods failed more often than backoffLimit allows; see their logs"
                    if reason == "BackoffLimitExceeded" else "")
            return Failure(reason, "Job", _name(job), "", str(cond.get("message") or "")[:400], hint)
    return None


def job_succeeded(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Complete" and cond.get("status") == "True":
            return True
    completions = (job.get("spec") or {}).get("completions") or 1
    return int(status.get("succeeded") or 0) >= int(completions) and not status.get("active")


def dgd_ready(dgd: dict[str, Any]) -> bool:
    """Ready condition ``True`` and ``status.state`` ``successful``."""
    status = dgd.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and str(status.get("state") or "").lower() == "successful"


def dgd_failure(dgd: dict[str, Any]) -> Failure | None:
    status = dgd.get("status") or {}
    if str(status.get("state") or "").lower() != "failed":
        return None
    msgs = [f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}".strip()
            for c in status.get("conditions") or [] if c.get("status") != "True"]
    return Failure("DGDFailed", "DynamoGraphDeployment", _name(dgd), "", "; ".join(msgs)[:600],
                   "the operator gave up on this graph; see its status and the operator's logs")


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
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        label = next(iter(state), "-")
        reason = (state.get(label) or {}).get("reason") if label != "-" else ""
        parts.append(f"{cs.get('name')}={label}{'/' + reason if reason else ''} ready={cs.get('ready')}")
    return " ".join(parts)
