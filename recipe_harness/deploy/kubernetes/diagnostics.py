"""Save what explains a deployment's state to the report dir: events, pod status, the last
log lines of every container (and of its previous run), Jobs, the DGD status and the status of
the workloads the operator made from it.

Secrets are never read, so nothing here can leak a token.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from recipe_harness.deploy.kubernetes.analysis import pod_summary
from recipe_harness.deploy.kubernetes.client import ApiError, Kube
from recipe_harness.deploy.kubernetes.resources import DEPLOYMENT, EVENT, JOB, POD, ResourceType

LOG_TAIL_LINES = 200
# What the operator runs a graph's services as: Deployments (one node a replica), LeaderWorkerSets
# and their StatefulSets (multinode without Grove), Grove's PodCliqueSets, PodCliques and scaling
# groups (deploy/operator/internal/dynamo graph.go, grove.go). Their status says why pods are
# missing or not ready, which the pods alone cannot; kinds the cluster does not serve are left out.
WORKLOADS = (DEPLOYMENT, ResourceType("apps", "v1", "statefulsets"),
             ResourceType("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
             ResourceType("grove.io", "v1alpha1", "podcliquesets"), ResourceType("grove.io", "v1alpha1", "podcliques"),
             ResourceType("grove.io", "v1alpha1", "podcliquescalinggroups"))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120] or "_"


def _event_line(ev: dict[str, Any]) -> str:
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    when = ev.get("lastTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp") or ""
    count = ev.get("count") or 1
    return (f"{when} {ev.get('type', '')} {ev.get('reason', '')} {obj.get('kind', '')}/{obj.get('name', '')}"
            f" x{count}: {ev.get('message') or ev.get('note') or ''}")


def pod_logs(kube: Kube, namespace: str, pod: str, container: str, *, previous: bool = False,
             tail: int = LOG_TAIL_LINES) -> str:
    query: dict[str, Any] = {"container": container, "tailLines": tail}
    if previous:
        query["previous"] = "true"
    return kube.text(POD.path(namespace, pod, "log"), query=query)


def last_log_lines(kube: Kube, namespace: str, pod: str, container: str, lines: int = 20) -> str:
    """The last lines a container wrote (its previous run if it restarted); ``""`` if none."""
    for previous in (True, False):
        try:
            text = pod_logs(kube, namespace, pod, container, previous=previous, tail=lines)
        except ApiError:
            continue
        if text.strip():
            return text.rstrip()
    return ""


def collect(kube: Kube, namespace: str, out_dir: Path, *, dgd: ResourceType | None = None,
            dgd_name: str | None = None, deadline: float | None = None) -> list[Path]:
    """Write diagnostics of ``namespace`` under ``out_dir``; returns the files written.

    Every part is best effort: an API error is written into the file it would have filled. At
    ``deadline`` (``time.monotonic()``) collection stops where it is and says so in ``CUT.txt``;
    the most telling parts (DGD status, events, pods) come first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def late() -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            (out_dir / "CUT.txt").write_text("diagnostics stopped at their time limit; what is here is partial\n")
            return True
        return False

    def dump(name: str, data: Any) -> None:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2, sort_keys=True),
                        encoding="utf-8")
        written.append(path)

    if dgd is not None and dgd_name:
        try:
            obj = kube.get_or_none(dgd.path(namespace, dgd_name))
            dump("dgd.json", obj if obj is not None else {"missing": dgd_name})
        except ApiError as exc:
            dump("dgd.txt", f"could not read the DGD: {exc}\n")
    if late():
        return written
    try:
        events = (kube.get(EVENT.path(namespace)) or {}).get("items") or []
        events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        dump("events.json", events)
        dump("events.txt", "\n".join(_event_line(e) for e in events) + "\n")
    except ApiError as exc:
        dump("events.txt", f"could not list events: {exc}\n")

    if late():
        return written
    pods: list[dict[str, Any]] = []
    try:
        pods = (kube.get(POD.path(namespace)) or {}).get("items") or []
        dump("pods.json", [{"metadata": p.get("metadata"), "spec": {"nodeName": (p.get("spec") or {}).get("nodeName")},
                            "status": p.get("status")} for p in pods])
        dump("pods.txt", "\n".join(pod_summary(p) for p in pods) + "\n")
    except ApiError as exc:
        dump("pods.txt", f"could not list pods: {exc}\n")

    for pod in pods:
        pname = (pod.get("metadata") or {}).get("name") or "?"
        status = pod.get("status") or {}
        for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
            cname = cs.get("name") or "?"
            runs = [False] + ([True] if int(cs.get("restartCount") or 0) > 0 else [])
            for previous in runs:
                if late():
                    return written
                suffix = ".previous.log" if previous else ".log"
                try:
                    text = pod_logs(kube, namespace, pname, cname, previous=previous)
                except ApiError as exc:
                    text = f"could not read logs: {exc}\n"
                dump(f"logs/{_safe(pname)}/{_safe(cname)}{suffix}", text)

    if late():
        return written
    try:
        jobs = (kube.get(JOB.path(namespace)) or {}).get("items") or []
        dump("jobs.json", [{"metadata": {"name": (j.get("metadata") or {}).get("name")}, "status": j.get("status")}
                           for j in jobs])
    except ApiError as exc:
        dump("jobs.txt", f"could not list jobs: {exc}\n")

    workloads: dict[str, Any] = {}
    for rtype in WORKLOADS:
        if late():
            break
        try:
            items = (kube.get(rtype.path(namespace)) or {}).get("items") or []
        except ApiError as exc:
            if exc.status != 404:  # 404: the cluster does not serve the kind
                workloads[rtype.plural] = f"could not list: {exc}"
            continue
        if items:
            workloads[rtype.plural] = [{"name": (i.get("metadata") or {}).get("name"), "status": i.get("status")}
                                       for i in items]
    if workloads:
        dump("workloads.json", workloads)
    return written
