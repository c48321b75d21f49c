"""The ``kubernetes`` deploy target: one namespace per recipe run, the recipe's own manifests,
watches that fail fast, port-forward to the frontend, diagnostics, and guaranteed cleanup."""

from __future__ import annotations

import copy
import functools
import os
import secrets as _secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from recipe_harness.deploy import DeployError, DeploySkip, Endpoint
from recipe_harness.deploy.kubernetes import analysis, cache, diagnostics, perf_artifacts
from recipe_harness.deploy.kubernetes.access import Access, api_service, open_access, unsupported
from recipe_harness.deploy.kubernetes.analysis import Failure
from recipe_harness.deploy.kubernetes.client import MERGE_PATCH, ApiError, Backoff, Kube, KubeError, poll
from recipe_harness.deploy.kubernetes.manifests import Manifests, companions, referenced_secrets
from recipe_harness.deploy.kubernetes.namespace import (
    REGISTRY,
    NamespaceBudgetError,
    OperatorSkipsNamespace,
    create_namespace,
    delete_namespace,
    delete_objects,
    label_budget_problems,
    operator_skip_problem,
    run_metadata,
    why_terminating,
)
from recipe_harness.deploy.kubernetes.preflight import PreflightReport, node_autoscaler, preflight
from recipe_harness.deploy.kubernetes.resources import (
    CONFIGMAP,
    EVENT,
    JOB,
    NAMESPACE,
    POD,
    PVC,
    SECRET,
    Resolver,
    ResourceType,
    dgd_type,
    pod_claims,
)
from recipe_harness.deploy.kubernetes.twin import TwinOptions, mocker_twin
from recipe_harness.deploy.kubernetes.watch import WatchSet
from recipe_harness.model.bundle import LoadedRecipe

DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"
JOB_LABELS = ("batch.kubernetes.io/job-name", "job-name")
HELPER_LABEL = "recipe-harness/helper"
HF_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
HF_TOKEN_KEY = "HF_TOKEN"


@dataclass
class KubeOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace_prefix: str = "rh"
    keep: bool = False
    twin: str | None = None                 # "mocker"
    twin_image: str | None = None
    hf_token_secret: str | None = None      # [namespace/]name of an existing Secret to copy
    require_hardware: bool = False
    deploy_timeout: float = 1800.0          # DGD Ready
    operator_pickup_timeout: float = 120.0  # the operator's finalizer or a status on the DGD (0: never checked)
    job_timeout: float = 3600.0             # model download
    perf_timeout: float = 7200.0
    delete_timeout: float = 300.0
    http_timeout: float = 120.0             # frontend answering through the port-forward
    watch_timeout: int = 60                 # server-side timeoutSeconds of one watch stream
    unschedulable_grace: float = 0.0        # seconds a pod may stay unschedulable
    autoscaler_wait: float = 60.0           # seconds an unschedulable pod waits for a node autoscaler's word
    max_restarts: int = 3                   # restarts a crashing container is allowed
    image_pull_grace: float = 300.0         # seconds a pull may keep failing for a cause that can heal
    pvc_bind_timeout: float = 120.0         # seconds a PVC may stay unbound
    dgd_failed_grace: float = 120.0         # seconds a DGD may stay in state failed before it counts
    preflight: bool = True                  # gate each deploy on the cluster's preflight checks
    cache_namespace: str | None = None      # keep model caches between runs in this namespace
    interrupt_budget: float = 5.0           # seconds cleanup may take after Ctrl-C/SIGTERM
    diagnostics_timeout: float = 60.0       # seconds diagnostics collection may take
    progress_every: float = 30.0            # seconds between progress lines while waiting
    helper_image: str = "busybox:1.36"

    @property
    def tolerance(self) -> analysis.Tolerance:
        return analysis.Tolerance(max_restarts=self.max_restarts, image_pull_grace=self.image_pull_grace,
                                  pvc_grace=self.pvc_bind_timeout, unschedulable_grace=self.unschedulable_grace,
                                  dgd_failed_grace=self.dgd_failed_grace, autoscaler_wait=self.autoscaler_wait)

    def limits(self) -> dict[str, str]:
        """Every phase's time limit, with the option that sets it (named in errors and the report)."""
        return {"model-cache PVC bind": f"{self.pvc_bind_timeout:g}s (--pvc-bind-timeout)",
                "model download": f"{self.job_timeout:g}s (--download-timeout)",
                "DGD Ready": f"{self.deploy_timeout:g}s (--deploy-timeout)",
                "frontend answering": f"{self.http_timeout:g}s (--http-timeout)",
                "perf Job": f"{self.perf_timeout:g}s (--perf-job-timeout)",
                "namespace deletion": f"{self.delete_timeout:g}s (--delete-timeout)"}


def _stamped(body: dict[str, Any], stamp: dict[str, dict[str, str]] | None) -> dict[str, Any]:
    """A copy of ``body`` carrying the labels and annotations of ``stamp`` (a run's, in a cache
    namespace, so that ``recipe-harness clean --cache-namespace`` finds what a killed run left)."""
    body = copy.deepcopy(body)
    meta = body.setdefault("metadata", {})
    for key, values in (stamp or {}).items():
        meta[key] = {**(meta.get(key) or {}), **values}
    return body


def _log(message: str) -> None:
    print(f"[recipe-harness kubernetes] {message}", file=sys.stderr, flush=True)


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, options: KubeOptions | None = None, kube: Kube | None = None) -> None:
        self.options = options or KubeOptions()
        self._kube = kube
        self.namespaces: dict[str, str] = {}       # recipe id -> namespace of its current run
        self._created: dict[str, list[str]] = {}   # recipe id -> object paths the run created
        self._stamps: dict[str, dict[str, dict[str, str]] | None] = {}  # recipe id -> its run labels (cache ns)
        self._preflights: dict[str, PreflightReport] = {}
        self.last_failure_s: float | None = None   # time from a fatal state appearing to the failure

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            try:
                self._kube = Kube.connect(self.options.kubeconfig, self.options.context)
            except KubeError as exc:
                raise DeployError(str(exc)) from exc
        return self._kube

    # -- manifests ------------------------------------------------------------------------

    def manifests(self, recipe: LoadedRecipe) -> Manifests:
        dep = recipe.deployment
        if dep is None:
            raise DeployError(f"{recipe.id}: no DynamoGraphDeployment in {recipe.recipe.deploy_file}")
        if self.options.twin == "mocker":
            return mocker_twin(recipe, TwinOptions(image=self.options.twin_image))
        return Manifests(copy.deepcopy(dep.document.body),
                         [copy.deepcopy(d.body) for d in recipe.model_cache_documents if isinstance(d.body, dict)],
                         [copy.deepcopy(d.body) for d in recipe.perf_documents if isinstance(d.body, dict)],
                         companions=copy.deepcopy(companions(recipe)))

    def apply(self, namespace: str, body: dict[str, Any], resolver: Resolver,
              stamp: dict[str, dict[str, str]] | None = None) -> ResourceType:
        """Server-side apply of one manifest into ``namespace`` (namespaced kinds only), with the
        run's labels and annotations (``stamp``, :func:`~.namespace.run_metadata`) where given."""
        body = _stamped(body, stamp)
        body.pop("status", None)
        meta = body.setdefault("metadata", {})
        rtype = resolver.resolve(body.get("apiVersion", ""), body.get("kind", ""))
        if not rtype.namespaced:
            raise DeployError(f"{body.get('kind')} {meta.get('name')} is cluster-scoped; the harness only creates "
                              "objects inside the namespace of the run")
        meta["namespace"] = namespace
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            meta.pop(key, None)
        self.kube.apply(rtype.path(namespace, meta["name"]), body)
        return rtype

    def _secrets(self, namespace: str, manifests: Manifests, stamp: dict[str, dict[str, str]] | None = None) -> list[str]:
        """Make the Secrets the manifests read (the HF token); the names of those made. In a cache
        namespace one that is there already is the namespace owner's: used as it is, never
        overwritten or deleted."""
        names = referenced_secrets(manifests)
        if self.options.cache_namespace:
            kept = [n for n in names if self.kube.get_or_none(SECRET.path(namespace, n)) is not None]
            for name in kept:
                _log(f"Secret {name} is already in cache namespace {namespace}: used as it is")
            names = [n for n in names if n not in kept]
        if not names:
            return []
        data: dict[str, str] | None = None
        string_data: dict[str, str] | None = None
        source = self.options.hf_token_secret
        if source:
            src_ns, _, src_name = source.rpartition("/")
            src_ns = src_ns or self._context_namespace()
            try:
                found = self.kube.get(SECRET.path(src_ns, src_name))
            except KubeError as exc:
                raise DeployError(f"--hf-token-secret {source}: cannot read it: {exc}") from exc
            data = dict(found.get("data") or {})
        else:
            token = next((os.environ[k] for k in HF_TOKEN_ENV if os.environ.get(k)), None)
            if token is None and self.options.twin != "mocker":
                raise DeployError(f"the recipe reads Secret(s) {', '.join(names)} (HF token); set HF_TOKEN in the "
                                  "environment or pass --hf-token-secret [NAMESPACE/]NAME")
            string_data = {HF_TOKEN_KEY: token or ""}
        for name in names:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                    "metadata": {"name": name, "namespace": namespace}}
            if data is not None:
                body["data"] = data
            else:
                body["stringData"] = string_data
            self.kube.apply(SECRET.path(namespace, name), _stamped(body, stamp))
        return names

    def _context_namespace(self) -> str:
        try:
            from kubernetes import config as k8s_config
            _, current = k8s_config.list_kube_config_contexts(self.options.kubeconfig)
            return (current.get("context") or {}).get("namespace") or "default"
        except Exception:  # noqa: BLE001 -- no kubeconfig: in-cluster or default
            return "default"

    # -- waiting --------------------------------------------------------------------------

    def _fatal(self, failures: list[Failure], seen: dict[tuple, float]) -> Failure | None:
        """The first failure that is terminal or has outlasted its grace. A signal that clears is
        forgotten, so one that comes back starts a new grace."""
        now = time.monotonic()
        current = {f.key for f in failures}
        for key in [k for k in seen if k not in current]:
            del seen[key]
        tolerance = self.options.tolerance
        for f in failures:
            first = seen.setdefault(f.key, now)
            if f.terminal or now - first >= tolerance.grace(f.grace):
                return f
        return None

    def _fail(self, failure: Failure, namespace: str, diag_dir: Path | None,
              seen: dict[tuple, float] | None = None) -> DeployError:
        text = failure.describe()
        if not failure.terminal and seen is not None and failure.key in seen:
            option = analysis.Tolerance.OPTIONS.get(failure.grace, "")
            text += (f" [lasted {time.monotonic() - seen[failure.key]:.0f}s, limit "
                     f"{self.options.tolerance.grace(failure.grace):g}s {option}]")
        if failure.kind == "Pod" and failure.container:
            try:
                logs = diagnostics.last_log_lines(self.kube, namespace, failure.name, failure.container)
            except Exception:  # noqa: BLE001 -- the failure is what matters; logs are a bonus
                logs = ""
            if logs:
                text += "\n  last log lines:\n    " + "\n    ".join(logs.splitlines()[-20:])
        if diag_dir is not None:
            text += f"\n  diagnostics: {diag_dir}"
        return DeployError(text)

    def _progress(self, what: str, started: float, limit: float, option: str, state: str,
                  last: list[float]) -> None:
        now = time.monotonic()
        if now - last[0] >= self.options.progress_every:
            last[0] = now
            _log(f"waiting for {what}: {now - started:.0f}s of {limit:g}s ({option}); {state}")

    @functools.cached_property
    def _node_autoscaler(self) -> str | None:
        """The cluster's node autoscaler, looked up once, when a pod is first unschedulable."""
        return node_autoscaler(self.kube)

    def _awaiting_nodes(self, failures: list[Failure], ws: WatchSet, since: datetime,
                        noted: set[str]) -> list[Failure]:
        """Unschedulable pods on a cluster that adds nodes. A pod an autoscaler is adding a node for
        (its ``TriggeredScaleUp`` or ``Nominated`` event) waits for it within the phase's time limit
        (said once per pod); one it will not add a node for fails after ``--unschedulable-grace``
        with what it said; while it has not spoken, a cluster running one (cluster-autoscaler,
        Karpenter) gives the pod ``--autoscaler-wait`` to hear from it."""
        kept = []
        verdicts: dict[str, tuple[bool, str]] | None = None
        for f in failures:
            if not (f.kind == "Pod" and f.reason == "Unschedulable" and f.grace == analysis.GRACE_UNSCHEDULABLE):
                kept.append(f)
                continue
            if verdicts is None:
                verdicts = analysis.autoscaler_verdicts(ws.objects["events"].values(), since)
            coming, said = verdicts.get(f.name, (None, ""))
            if coming:
                note = f"pod {f.name}: waiting for a node the autoscaler is adding ({said[:200]})"
                if note not in noted:
                    noted.add(note)
                    _log(note)
                continue
            if coming is False:
                kept.append(replace(f, message=f"{f.message}; autoscaler: {said[:300]}"))
            elif self.options.autoscaler_wait > 0 and (autoscaler := self._node_autoscaler) is not None:
                kept.append(replace(f, grace=analysis.GRACE_AUTOSCALER,
                                    hint=analysis.AUTOSCALER_HINT.format(autoscaler=autoscaler)))
            else:
                kept.append(f)
        return kept

    @staticmethod
    def _note_replaced(pods: Any, noted: set[str]) -> None:
        """Say once per pod that it failed and its controller replaces it (evicted ...)."""
        for pod in pods:
            note = analysis.replaced_pod_note(pod)
            if note and note not in noted:
                noted.add(note)
                _log(note)

    def wait_jobs(self, namespace: str, names: list[str], timeout: float, *, what: str = "Job",
                  diag_dir: Path | None = None, option: str = "--download-timeout") -> dict[str, dict[str, Any]]:
        """Wait until every Job in ``names`` completes; fail fast on failures of them, their pods and
        the PVCs they mount."""
        started = time.monotonic()
        since = datetime.now(UTC)
        deadline = started + timeout
        seen: dict[tuple, float] = {}
        noted: set[str] = set()
        last = [started]
        jobs: dict[str, dict[str, Any] | None] = {n: None for n in names}
        uids: dict[str, str] = {}  # the Job each name was when first seen: one that goes or changes was not ours to wait for
        done: dict[str, dict[str, Any]] = {}
        with WatchSet(self.kube, self.options.watch_timeout) as ws:
            ws.add("jobs", JOB.path(namespace))
            ws.add("pods", POD.path(namespace))
            ws.add("events", EVENT.path(namespace))
            for _ in ws.events(deadline):
                jobs = {n: ws.objects["jobs"].get(f"{namespace}/{n}") for n in names}
                for n, job in list(jobs.items()):
                    if job is None and n in done:  # finished, then removed (ttlSecondsAfterFinished)
                        jobs[n] = job = done[n]
                    elif job is not None and analysis.job_succeeded(job):
                        done[n] = job
                    uid = ((job or {}).get("metadata") or {}).get("uid")
                    if n in uids and uid != uids[n]:
                        raise DeployError(
                            f"{what} {n} was {'deleted' if job is None else 'replaced'} while this run waited for it: "
                            f"another run using namespace {namespace} (two runs sharing a --cache-namespace replace "
                            "each other's Jobs), or someone deleted it; run again, one run per cache namespace at a time"
                            + (f"\n  diagnostics: {diag_dir}" if diag_dir else ""))
                    if uid and n not in uids:
                        uids[n] = uid
                failures: list[Failure] = []
                for job in jobs.values():
                    if job is not None and (f := analysis.job_failure(job)) is not None:
                        failures.append(f)
                job_pods = {k: p for k, p in ws.objects["pods"].items()
                            if any(((p.get("metadata") or {}).get("labels") or {}).get(lbl) in names for lbl in JOB_LABELS)}
                for pod in job_pods.values():
                    failures += [f for f in analysis.pod_failures(pod, self.options.tolerance)
                                 if f.reason not in analysis.TERMINATED_FATAL]
                pod_names = {(p.get("metadata") or {}).get("name") for p in job_pods.values()}
                claims = {c for j in jobs.values() if j for c in cache.claims_of(j)}
                failures += self._event_failures(ws, namespace, since, pod_names, claims, owners=set(names))
                failures = self._awaiting_nodes(failures, ws, since, noted)
                self._note_replaced(job_pods.values(), noted)
                fatal = self._fatal(failures, seen)
                if fatal is not None:
                    raise self._fail(fatal, namespace, diag_dir, seen)
                if all(j is not None and analysis.job_succeeded(j) for j in jobs.values()):
                    return {n: j for n, j in jobs.items() if j is not None}
                self._progress(f"{what} {', '.join(names)}", started, timeout, option,
                               "; ".join(analysis.pod_summary(p) for p in job_pods.values()) or "no pod yet", last)
            states = ", ".join(f"{n}: {(j or {}).get('status') or 'not created'}" for n, j in jobs.items())
        raise DeployError(f"{what} {', '.join(names)} did not complete within {timeout:.0f}s ({option}) ({states})"
                          + (f"\n  diagnostics: {diag_dir}" if diag_dir else ""))

    def _event_failures(self, ws: WatchSet, namespace: str, since: datetime, pod_names: set, claims: set,
                        prefix: str | None = None, owners: set | None = None) -> list[Failure]:
        """Failures that warning events report about the wait's pods, claims and pod owners (a
        ``FailedCreate`` on any controller of the run; in a shared cache namespace only on the
        Jobs in ``owners`` or objects named with ``prefix``): only events seen since the wait
        began (``since``, wall clock), and none the object's current state contradicts (the pod
        was scheduled since, the claim is Bound -- read from the API --, the controller has
        created a pod since)."""
        found: list[tuple[Failure, dict[str, Any]]] = []
        shared = bool(self.options.cache_namespace)
        for ev in ws.objects["events"].values():
            if not analysis.event_fresh(ev, since):
                continue
            for f in analysis.event_failures(ev):
                if f.reason == "FailedCreate":
                    if not shared or f.name in (owners or set()) or (prefix and f.name.startswith(prefix)):
                        found.append((f, ev))
                elif f.kind == "PersistentVolumeClaim" and f.name in claims:
                    found.append((f, ev))
                elif f.kind == "Pod" and (f.name in pod_names or (prefix and f.name.startswith(prefix))):
                    found.append((f, ev))
        if not found:
            return []
        pods = {str((p.get("metadata") or {}).get("name")): p for p in ws.objects["pods"].values()}
        pvcs: dict[str, dict[str, Any] | None] = {}
        for name in {f.name for f, _ in found if f.kind == "PersistentVolumeClaim"}:
            try:
                pvcs[name] = self.kube.get_or_none(PVC.path(namespace, name))
            except KubeError:
                pvcs[name] = None  # unreadable: the event stands
        return [f for f, ev in found if not analysis.contradicted(f, pods, pvcs, ev)
                and not (f.reason == "FailedMount" and self._config_exists(namespace, f.message))]

    def _config_exists(self, namespace: str, message: str) -> bool:
        """Whether the ConfigMap or Secret a ``FailedMount`` says is missing exists now (the kubelet
        mounts it at its next try); ``False`` when the API cannot tell (unreadable: the kubelet's
        word stands)."""
        ref = analysis.missing_config(message)
        if ref is None:
            return False
        rtype = CONFIGMAP if ref[0] == "configmap" else SECRET
        try:
            return self.kube.get_or_none(rtype.path(namespace, ref[1])) is not None
        except KubeError:
            return False

    def wait_dgd(self, namespace: str, rtype: ResourceType, name: str, timeout: float,
                 diag_dir: Path | None = None) -> dict[str, Any]:
        """Wait for the DGD's Ready condition and state ``successful`` (what the operator's own
        e2e tests wait for); fail fast on terminal signals of its pods and PVCs, and on a
        ``failed`` state that is final or outlasts ``--dgd-failed-grace``; and when no operator
        picks the DGD up (no finalizer, no status) within ``--operator-pickup-timeout``."""
        started = time.monotonic()
        pickup = self.options.operator_pickup_timeout
        since = datetime.now(UTC)
        deadline = started + timeout
        seen: dict[tuple, float] = {}
        noted: set[str] = set()
        last = [started]
        key = f"{namespace}/{name}"
        dgd: dict[str, Any] | None = None
        recreated = analysis.Recreations()
        with WatchSet(self.kube, self.options.watch_timeout) as ws:
            ws.add("dgd", rtype.path(namespace), {"fieldSelector": f"metadata.name={name}"})
            ws.add("pods", POD.path(namespace), {"labelSelector": f"{DGD_LABEL}={name}"})
            ws.add("events", EVENT.path(namespace))
            for _ in ws.events(deadline):
                dgd = ws.objects["dgd"].get(key)
                failures: list[Failure] = []
                if dgd is not None and (f := analysis.dgd_failure(dgd)) is not None:
                    failures.append(f)
                pods = ws.objects["pods"]
                for pod in pods.values():
                    failures += analysis.pod_failures(pod, self.options.tolerance)
                    recreated.observe(pod)
                failures += recreated.failures(self.options.tolerance)
                pod_names = {(p.get("metadata") or {}).get("name") for p in pods.values()}
                claims = {c for p in pods.values() for c in pod_claims(p)}
                failures += self._event_failures(ws, namespace, since, pod_names, claims, prefix=f"{name}-")
                failures = self._awaiting_nodes(failures, ws, since, noted)
                self._note_replaced(pods.values(), noted)
                fatal = self._fatal(failures, seen)
                if fatal is not None:
                    self.last_failure_s = time.monotonic() - seen[fatal.key]
                    raise self._fail(fatal, namespace, diag_dir, seen)
                if dgd is not None and analysis.dgd_ready(dgd):
                    return dgd
                if pickup > 0 and dgd is not None and time.monotonic() - started >= pickup \
                        and not analysis.dgd_picked_up(dgd):
                    raise DeployError(self._not_reconciled(namespace, name, dgd, pickup)
                                      + (f"\n  diagnostics: {diag_dir}" if diag_dir else ""))
                self._progress(f"DynamoGraphDeployment {name}", started, timeout, "--deploy-timeout",
                               f"{analysis.dgd_progress(dgd or {})}; {len(pods)} pods", last)
            pods_text = "; ".join(analysis.pod_summary(p) for p in ws.objects["pods"].values()) or "no pods"
        raise DeployError(f"DynamoGraphDeployment {name} not Ready within {timeout:.0f}s (--deploy-timeout) "
                          f"({analysis.dgd_progress(dgd or {})}; pods: {pods_text})"
                          + (f"\n  diagnostics: {diag_dir}" if diag_dir else ""))

    @staticmethod
    def _not_reconciled(namespace: str, name: str, dgd: dict[str, Any], pickup: float) -> str:
        """Why no Dynamo operator has touched the DGD, and what to do about it."""
        return (f"no Dynamo operator reconciles namespace {namespace}: DynamoGraphDeployment {name} has neither "
                f"the operator's finalizer {analysis.OPERATOR_FINALIZER} nor a status written by it "
                f"({analysis.dgd_progress(dgd)}) after "
                f"{pickup:g}s (--operator-pickup-timeout). Likely causes: the operator is namespace-restricted "
                "(chart value namespaceRestriction.enabled) and watches only its own namespace; a cluster-wide "
                f"operator excludes namespace {namespace}; the namespace name contains 'ephemeral' (the operator "
                "skips those); or the operator is down. What to do: find the operator "
                "(kubectl get deploy -A -l app.kubernetes.io/part-of=dynamo-operator), read its logs and check "
                "whether it is namespace-restricted (helm get values: namespaceRestriction); deploy into the namespace a restricted operator watches "
                "(--cache-namespace NS) or install a cluster-wide operator; start it if it is down")

    def _wait_http(self, url: str, model: str | None, timeout: float) -> None:
        last = ""

        def listed(client: httpx.Client) -> bool:
            nonlocal last
            try:
                resp = client.get(url + "/v1/models")
            except (httpx.HTTPError, OSError) as exc:
                last = str(exc) or type(exc).__name__
                return False
            if resp.status_code == 200 and (not model or model in resp.text):
                return True
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            return False

        with httpx.Client(timeout=5.0, trust_env=False) as client:  # 127.0.0.1: no proxy
            if poll(lambda: listed(client), bool, timeout, 1.0):
                return
        raise DeployError(f"the frontend did not list model {model} through the port-forward within "
                          f"{timeout:.0f}s (--http-timeout): {last}")

    # -- deploy ---------------------------------------------------------------------------

    def gate(self, recipe: LoadedRecipe) -> PreflightReport | None:
        """Preflight before anything is created: a cluster without the CRD or operator fails the
        deploy (it would wait for nothing); missing GPUs, RDMA or storage classes skip it (fail
        it under ``--require-hardware``). Cached per recipe for the session."""
        if not self.options.preflight:
            return None
        report = self._preflights.get(recipe.id)
        if report is None:
            report = preflight(self.kube, recipe, twin=self.options.twin == "mocker")
            self._preflights[recipe.id] = report
        if report.failed:
            raise DeployError("preflight failed; nothing was deployed:\n  "
                              + "\n  ".join(c.line() for c in report.failed)
                              + "\n  (--no-preflight deploys anyway)")
        if report.missing:
            text = "; ".join(c.line() for c in report.missing)
            if self.options.require_hardware:
                raise DeployError(f"missing on this cluster (--require-hardware): {text}")
            raise DeploySkip(f"missing on this cluster: {text}")
        return report

    def _namespace(self, recipe: LoadedRecipe, dgd_name: str, components: list[str]) -> str:
        kube = self.kube
        if self.options.cache_namespace:
            ns = self.options.cache_namespace
            problems = label_budget_problems(ns, dgd_name, components)
            skipped = operator_skip_problem(ns, "--cache-namespace")
            if skipped:
                problems.append(skipped)
            if problems:
                raise DeployError(f"{recipe.id}: --cache-namespace {ns}: the Dynamo operator could not create "
                                  "its objects there:\n  " + "\n  ".join(problems))
            try:
                if kube.get_or_none(NAMESPACE.path(name=ns)) is None:
                    try:
                        kube.request("POST", NAMESPACE.path(), body={
                            "apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": ns, "labels": {cache.CACHE_LABEL: "true"}}})
                    except ApiError as exc:
                        if exc.status != 409:  # 409: made meanwhile (or by a retried POST whose answer was lost)
                            raise
                existing = kube.get_or_none(dgd_type(recipe.deployment.api_version).path(ns, dgd_name)) \
                    if recipe.deployment else None
            except KubeError as exc:
                raise DeployError(f"--cache-namespace {ns}: {exc}") from exc
            if existing is not None:
                raise DeployError(f"{recipe.id}: DynamoGraphDeployment {dgd_name} already exists in --cache-namespace "
                                  f"{ns} (another run, or one that was killed); wait for it, or delete what runs that "
                                  f"are over left there: recipe-harness clean --cache-namespace {ns} (or kubectl -n "
                                  f"{ns} delete dgd {dgd_name})")
            return ns
        try:
            return create_namespace(kube, self.options.namespace_prefix, recipe.id, _secrets.token_hex(4),
                                    dgd_name=dgd_name, components=components).name
        except (NamespaceBudgetError, OperatorSkipsNamespace) as exc:
            raise DeployError(str(exc)) from exc
        except KubeError as exc:
            raise DeployError(f"cannot create the run's namespace: {exc}") from exc

    def _model_cache(self, ns: str, manifests: Manifests, resolver: Resolver, diag_dir: Path,
                     created: list[str], stamp: dict[str, dict[str, str]] | None = None) -> None:
        """PVCs first, then the download Jobs; in a cache namespace existing PVCs are kept and a
        Job whose download they already hold is not run again."""
        kube = self.kube
        pvcs = [b for b in manifests.model_cache if b.get("kind") == "PersistentVolumeClaim"]
        jobs = [b for b in manifests.model_cache if b.get("kind") == "Job"]
        others = [b for b in manifests.model_cache if b.get("kind") not in ("PersistentVolumeClaim", "Job")]
        shared = bool(self.options.cache_namespace)
        for body in pvcs:
            kept = kube.get_or_none(PVC.path(ns, body["metadata"]["name"])) if shared else None
            if kept is not None:
                mismatch = cache.claim_mismatch(kept, body)
                if mismatch:
                    name = body["metadata"]["name"]
                    raise DeployError(
                        f"cache namespace {ns} holds PVC {name}, made by an earlier run, and this recipe asks for it "
                        f"otherwise: {mismatch}. A PVC's access modes and storage class cannot change, and it only "
                        f"grows where its class allows: delete it (kubectl -n {ns} delete pvc {name}; the model "
                        "cached on it goes too) or give this recipe another --cache-namespace")
                continue
            self.apply(ns, body, resolver)
        for body in others:
            created.append(self.apply(ns, body, resolver, stamp).path(ns, body["metadata"]["name"]))
        if shared:
            current = {c: kube.get_or_none(PVC.path(ns, c)) for j in jobs for c in cache.claims_of(j)}
            for job in [j for j in jobs if cache.is_cached(j, current)]:
                key = cache.cache_key(job)
                _log(f"model cache in {ns}: {key.value} already downloaded; Job {job['metadata']['name']} not run")
            jobs = [j for j in jobs if not cache.is_cached(j, current)]
            for job in jobs:
                self._replace_job(ns, job["metadata"]["name"])
        for body in jobs:
            path = self.apply(ns, body, resolver, stamp).path(ns, body["metadata"]["name"])
            if shared:
                created.append(path)
        if jobs:
            self.wait_jobs(ns, [b["metadata"]["name"] for b in jobs], self.options.job_timeout,
                           what="model-cache Job", diag_dir=diag_dir)
        if shared:
            for job in jobs:
                for claim in cache.claims_of(job):
                    kube.request("PATCH", PVC.path(ns, claim), body=cache.mark(job), content_type=MERGE_PATCH)

    @contextmanager
    def deploy(self, recipe: LoadedRecipe, workdir: Path | None = None) -> Iterator[Endpoint]:
        manifests = self.manifests(recipe)
        dep = recipe.deployment
        assert dep is not None
        api = api_service(recipe)
        if api is None:
            raise DeployError(f"{recipe.id}: the DGD has no frontend service (and no worker with a "
                              "frontendSidecar) to port-forward to")
        diag_dir = (workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="rh-kubernetes-"))) / "kubernetes"
        kube = self.kube
        try:
            skip = unsupported(recipe, manifests, kube)
        except KubeError as exc:
            raise DeployError(f"{recipe.id}: {exc}") from exc
        if skip:
            raise DeploySkip(skip)
        try:
            self.gate(recipe)
        except KubeError as exc:
            raise DeployError(f"{recipe.id}: preflight: {exc}") from exc
        rtype = dgd_type(manifests.dgd.get("apiVersion", dep.api_version))
        dgd_name = manifests.dgd["metadata"]["name"]
        ns = self._namespace(recipe, dgd_name, [s.name for s in dep.services])
        shared = bool(self.options.cache_namespace)
        if not self.options.keep and not shared:
            REGISTRY.add(kube, ns, self.options.delete_timeout)
        self.namespaces[recipe.id] = ns
        created: list[str] = []
        self._created[recipe.id] = created
        # in a cache namespace the run's objects carry its labels (a run namespace carries them itself)
        stamp = run_metadata(recipe.id, _secrets.token_hex(4)) if shared else None
        self._stamps[recipe.id] = stamp
        _log(f"{recipe.id}: namespace {ns}" + (f" ({'; '.join(manifests.notes)})" if manifests.notes else ""))
        forward: Access | None = None
        interrupted = False
        try:
            try:
                resolver = Resolver(kube)
                for body in manifests.companions:  # kubectl apply -f deploy.yaml: ConfigMaps ... before the DGD
                    kind = resolver.resolve(body.get("apiVersion", ""), body.get("kind", ""))
                    if not kind.namespaced:  # the cluster's own (unsupported() checked it exists): used as it is
                        _log(f"{recipe.id}: {body.get('kind')} {body['metadata']['name']} is cluster-scoped: the "
                             "cluster's is used, not made by the harness")
                        continue
                    path = kind.path(ns, body["metadata"]["name"])
                    new = not shared or kube.get_or_none(path) is None  # in a cache namespace: delete only what we made
                    self.apply(ns, body, resolver, stamp if new else None)
                    if new:
                        created.append(path)
                created += [SECRET.path(ns, n) for n in self._secrets(ns, manifests, stamp)]
                self._model_cache(ns, manifests, resolver, diag_dir, created, stamp)
                created.append(self.apply(ns, manifests.dgd, resolver, stamp).path(ns, dgd_name))
                self.wait_dgd(ns, rtype, dgd_name, self.options.deploy_timeout, diag_dir)
                forward = open_access(kube, recipe, ns, dgd_name)
                endpoint = forward.endpoint(recipe, ns, diag_dir)
                endpoint.notes.append("time limits: " + ", ".join(f"{k} {v}" for k, v in self.options.limits().items()))
                self._wait_http(forward.url, endpoint.model, self.options.http_timeout)
            except KubeError as exc:
                raise DeployError(f"{recipe.id}: {exc}\n  diagnostics: {diag_dir}") from exc
            yield endpoint
        except (KeyboardInterrupt, SystemExit):
            interrupted = True
            raise
        finally:
            self._teardown(recipe.id, ns, forward, diag_dir, rtype, dgd_name, interrupted)

    def _teardown(self, recipe_id: str, ns: str, forward: Access | None, diag_dir: Path, rtype: ResourceType,
                  dgd_name: str, interrupted: bool) -> None:
        """Close the forwards, save diagnostics, delete what the run made. Each step catches every
        exception type, so none can skip the deletion. After Ctrl-C/SIGTERM (a CI cancel sends
        SIGKILL about 10 s later) -- also one that arrives during teardown -- the deletion is
        requested first and diagnostics get only what is left of ``--interrupt-budget``; the
        interrupt is raised again once the deletion is requested."""
        started = time.monotonic()
        budget = self.options.interrupt_budget
        pending: BaseException | None = None
        deletion_requested = False

        def quick() -> Kube:
            return Kube(self.kube.api_client, backoff=Backoff(attempts=2, base=0.2, cap=1.0),
                        request_timeout=max(1.0, min(5.0, budget / 3)))

        def request_deletion() -> None:
            nonlocal deletion_requested
            if not deletion_requested and not self.options.keep:
                deletion_requested = True
                self._delete_run(quick(), recipe_id, ns, wait=0.0)

        if interrupted:
            request_deletion()
        if forward is not None:
            try:
                forward.close()
            except (KeyboardInterrupt, SystemExit) as exc:
                pending, interrupted = exc, True
                request_deletion()
            except Exception as exc:  # noqa: BLE001
                _log(f"closing the port-forwards of {ns}: {type(exc).__name__}: {exc}")
        try:
            deadline = started + (max(0.0, budget - 2.0) if interrupted else self.options.diagnostics_timeout)
            diagnostics.collect(quick() if interrupted else self.kube, ns, diag_dir, dgd=rtype, dgd_name=dgd_name,
                                deadline=deadline)
        except (KeyboardInterrupt, SystemExit) as exc:
            pending, interrupted = exc, True
            _log(f"diagnostics of {ns} interrupted")
            request_deletion()
        except Exception as exc:  # noqa: BLE001 -- diagnostics are best effort, never a reason to keep a namespace
            _log(f"diagnostics of {ns} incomplete: {type(exc).__name__}: {exc}")
        if self.options.keep:
            _log(f"--keep: namespace {ns} kept; delete it with `recipe-harness clean` or kubectl delete ns {ns}")
        elif interrupted:
            request_deletion()
            self._delete_run(quick(), recipe_id, ns, wait=max(0.0, started + budget - time.monotonic()), explain=False)
        else:
            self._delete_run(self.kube, recipe_id, ns, wait=self.options.delete_timeout)
        if pending is not None:
            raise pending

    def _delete_run(self, kube: Kube, recipe_id: str, ns: str, wait: float, *, explain: bool = True) -> None:
        """Delete the run's namespace (or, in a cache namespace, what the run created there). A namespace
        still there after ``wait`` is reported (with what holds it unless ``explain`` is off: after an
        interrupt no more requests are spent) and not waited for again at exit."""
        try:
            if self.options.cache_namespace:
                # Foreground: an object goes only after what it owns, so the DGD only after its pods
                # have ended (they keep their GPUs for their grace period, 60 s by the operator's
                # default, and the next run in this namespace needs them); the DGD's pods are then
                # waited for by label as well, whatever made them (Deployments, LWS, Grove)
                created = self._created.get(recipe_id, [])
                graphs = [path.rsplit("/", 1)[1] for path in created if "/dynamographdeployments/" in path]

                def graph_pods() -> list[str]:
                    return [f"pods of {g}" for g in graphs
                            if (kube.get(POD.path(ns), labelSelector=f"{DGD_LABEL}={g}") or {}).get("items")]

                still = delete_objects(kube, list(reversed(created)), wait=wait if wait > 0 else None, also=graph_pods)
                if still:
                    _log(f"{recipe_id}: still in cache namespace {ns} after {wait:.0f}s (--delete-timeout): "
                         f"{', '.join(still[:5])}")
                return
            if delete_namespace(kube, ns, wait=wait):
                REGISTRY.discard(ns)
            elif wait > 0:
                why = why_terminating(kube, ns) if explain else f"namespace {ns} is still Terminating"
                _log(f"namespace {ns} still terminating after {wait:.0f}s (--delete-timeout): {why}")
                REGISTRY.mark_stuck(ns, why)  # reported: the exit does not wait for it again
            else:
                _log(f"namespace {ns}: deletion requested")
                REGISTRY.discard(ns)  # Terminating: the apiserver finishes it without us
        except BaseException as exc:  # noqa: BLE001 -- left registered: drained at exit or by `recipe-harness clean`
            _log(f"could not delete namespace {ns}: {type(exc).__name__}: {exc}; run `recipe-harness clean`")
            if isinstance(exc, KeyboardInterrupt):
                raise

    # -- perf -----------------------------------------------------------------------------

    def namespace_of(self, recipe_id: str) -> str:
        return self.namespaces[recipe_id]

    def run_perf_job(self, recipe: LoadedRecipe, namespace: str, artifacts_dir: Path) -> Path:
        """Run the recipe's perf Job in ``namespace`` and bring aiperf's artifacts to ``artifacts_dir``.

        Returns ``artifacts_dir``, holding the Job's logs (``<job>.log``) and every
        ``profile_export_aiperf.json``/``.csv`` the Job wrote since it started, under their
        paths on the PVC (e.g. ``opt/models/perf/<dgd>/<time>/concurrency_16/profile_export_aiperf.json``).
        """
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        docs = self.manifests(recipe).perf
        jobs = [d for d in docs if d.get("kind") == "Job"]
        if not jobs:
            raise DeployError(f"{recipe.id}: no perf Job manifest (perf.yaml with a batch/v1 Job)")
        resolver = Resolver(self.kube)
        started = time.time()
        try:
            for body in docs:
                if body.get("kind") == "Job":
                    self._replace_job(namespace, body["metadata"]["name"])
                rtype = self.apply(namespace, body, resolver, self._stamps.get(recipe.id))
                created = self._created.setdefault(recipe.id, [])
                if rtype.path(namespace, body["metadata"]["name"]) not in created:
                    created.append(rtype.path(namespace, body["metadata"]["name"]))
            names = [j["metadata"]["name"] for j in jobs]
            self.wait_jobs(namespace, names, self.options.perf_timeout, what="perf Job", diag_dir=artifacts_dir,
                           option="--perf-job-timeout")
            found: list[Path] = []
            for job in jobs:
                log_text = self._job_logs(namespace, job["metadata"]["name"])
                (artifacts_dir / f"{job['metadata']['name']}.log").write_text(log_text, encoding="utf-8")
                found += perf_artifacts.extract(log_text, artifacts_dir)
                if not found:
                    found += self._collect_from_pvc(namespace, job, started, artifacts_dir)
        except KubeError as exc:
            raise DeployError(f"{recipe.id}: perf Job: {exc}") from exc
        if not found:
            raise DeployError(f"{recipe.id}: the perf Job finished but no {perf_artifacts.PATTERN} was found "
                              f"(logs in {artifacts_dir})")
        return artifacts_dir

    def _replace_job(self, namespace: str, name: str) -> None:
        """Delete the Job ``name`` (and its pods) and wait, up to ``--delete-timeout``, until it is gone:
        a Job applied while the old one is still being deleted vanishes with it."""
        path = JOB.path(namespace, name)
        if not self.kube.delete(path, propagation="Foreground"):
            return
        wait = self.options.delete_timeout
        left = poll(lambda: self.kube.get_or_none(path), lambda job: job is None, wait, 0.5)
        if left is None:
            return
        meta = left.get("metadata") or {}
        raise DeployError(
            f"Job {name} in namespace {namespace} is still being deleted after {wait:g}s (--delete-timeout; "
            f"deletionTimestamp {meta.get('deletionTimestamp') or '-'}, finalizers "
            f"{', '.join(meta.get('finalizers') or []) or 'none'}); a new Job of that name cannot be created "
            f"until it is gone. See what holds it: kubectl -n {namespace} get job {name} -o yaml and its pods "
            f"(kubectl -n {namespace} get pods -l job-name={name}); run again once it is gone, or raise "
            "--delete-timeout")

    def _job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        items = (self.kube.get(POD.path(namespace), labelSelector=f"job-name={job}") or {}).get("items") or []
        return sorted(items, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")

    def _job_logs(self, namespace: str, job: str) -> str:
        out = []
        for pod in self._job_pods(namespace, job):
            for c in (pod.get("spec") or {}).get("containers") or []:
                try:
                    out.append(self.kube.text(POD.path(namespace, pod["metadata"]["name"], "log"),
                                              query={"container": c["name"], "limitBytes": 50_000_000}))
                except KubeError as exc:
                    out.append(f"could not read logs of {pod['metadata']['name']}/{c['name']}: {exc}\n")
        return "".join(out)

    def _collect_from_pvc(self, namespace: str, job: dict[str, Any], started: float, dest: Path) -> list[Path]:
        volumes, mounts = perf_artifacts.pvc_mounts(job)
        job_name = job["metadata"]["name"]
        if not mounts:
            raise DeployError(f"perf Job {job_name} mounts no PVC and its logs hold no artifacts block")
        pods = self._job_pods(namespace, job_name)
        node = next(((p.get("spec") or {}).get("nodeName") for p in reversed(pods)
                     if (p.get("spec") or {}).get("nodeName")), None)
        name = f"{job_name[:40]}-collect-{_secrets.token_hex(3)}"
        pod = perf_artifacts.helper_pod(name, self.options.helper_image, volumes, mounts,
                                        perf_artifacts.minutes_since(started), node, {HELPER_LABEL: "perf-artifacts"})
        path = POD.path(namespace, name)
        self.kube.apply(path, dict(pod, metadata=dict(pod["metadata"], namespace=namespace)))
        try:
            self._wait_pod_done(namespace, name, timeout=300.0)
            log_text = self.kube.text(POD.path(namespace, name, "log"), query={"container": "collect"})
        finally:
            self.kube.delete(path)
        if perf_artifacts.NONE in log_text:
            raise DeployError(f"perf Job {job_name}: no {perf_artifacts.PATTERN} written under "
                              f"{', '.join(m['mountPath'] for m in mounts)} since it started")
        return perf_artifacts.extract(log_text, dest)

    def _wait_pod_done(self, namespace: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[tuple, float] = {}
        with WatchSet(self.kube, self.options.watch_timeout) as ws:
            ws.add("pods", POD.path(namespace), {"fieldSelector": f"metadata.name={name}"})
            for _ in ws.events(deadline):
                pod = ws.objects["pods"].get(f"{namespace}/{name}")
                if pod is None:
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    return
                fatal = self._fatal(analysis.pod_failures(pod, self.options.tolerance), seen)
                if fatal is not None:
                    raise self._fail(fatal, namespace, None)
        raise DeployError(f"helper pod {name} did not finish within {timeout:.0f}s")
