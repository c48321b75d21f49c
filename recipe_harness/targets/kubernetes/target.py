"""The ``kubernetes`` deploy target: one namespace per recipe run, the recipe's own manifests,
watches that fail fast, port-forward to the frontend, diagnostics, and guaranteed cleanup."""

from __future__ import annotations

import copy
import os
import secrets as _secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bundle import LoadedRecipe
from .. import DeployError, DeploySkip, Endpoint
from . import analysis, diagnostics, perf_artifacts
from .access import Access, api_service, open_access, unsupported
from .analysis import Failure
from .client import ApiError, Kube
from .namespace import REGISTRY, create_namespace, delete_namespace
from .resources import EVENT, JOB, POD, SECRET, Resolver, ResourceType, dgd_type, walk_maps
from .watch import WatchSet

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
    job_timeout: float = 3600.0             # model download
    perf_timeout: float = 7200.0
    delete_timeout: float = 300.0
    http_timeout: float = 120.0             # frontend answering through the port-forward
    watch_timeout: int = 60                 # server-side timeoutSeconds of one watch stream
    unschedulable_grace: float = 0.0        # seconds a pod may stay unschedulable (autoscaling clusters)
    helper_image: str = "busybox:1.36"


@dataclass
class Manifests:
    dgd: dict[str, Any]
    model_cache: list[dict[str, Any]] = field(default_factory=list)
    perf: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(f"[recipe-harness kubernetes] {message}", file=sys.stderr, flush=True)


def referenced_secrets(manifests: Manifests) -> list[str]:
    """Secrets the manifests read env from (``envFromSecret``, ``secretRef``, ``secretKeyRef``)."""
    names: set[str] = set()
    for body in [manifests.dgd, *manifests.model_cache, *manifests.perf]:
        for node in walk_maps(body):
            if isinstance(node.get("envFromSecret"), str):
                names.add(node["envFromSecret"])
            for key in ("secretRef", "secretKeyRef"):
                ref = node.get(key)
                if isinstance(ref, dict) and isinstance(ref.get("name"), str):
                    names.add(ref["name"])
    return sorted(names)


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, options: KubeOptions | None = None, kube: Kube | None = None) -> None:
        self.options = options or KubeOptions()
        self._kube = kube
        self.namespaces: dict[str, str] = {}       # recipe id -> namespace of its current run
        self.last_failure_s: float | None = None   # time from a fatal state appearing to the failure

    @classmethod
    def from_pytest_config(cls, config: Any) -> KubernetesTarget:
        from ...plugin.kube import kube_options
        return cls(kube_options(config))

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            try:
                self._kube = Kube.connect(self.options.kubeconfig, self.options.context)
            except ApiError as exc:
                raise DeployError(str(exc)) from exc
        return self._kube

    # -- manifests ------------------------------------------------------------------------

    def manifests(self, recipe: LoadedRecipe) -> Manifests:
        dep = recipe.deployment
        if dep is None:
            raise DeployError(f"{recipe.id}: no DynamoGraphDeployment in {recipe.recipe.deploy_file}")
        if self.options.twin == "mocker":
            from ...twin_k8s import TwinOptions, mocker_twin
            twin = mocker_twin(recipe, TwinOptions(image=self.options.twin_image))
            return Manifests(twin.dgd, twin.model_cache, twin.perf, twin.notes)
        return Manifests(copy.deepcopy(dep.document.body),
                         [copy.deepcopy(d.body) for d in recipe.model_cache_documents if isinstance(d.body, dict)],
                         [copy.deepcopy(d.body) for d in recipe.perf_documents if isinstance(d.body, dict)])

    def apply(self, namespace: str, body: dict[str, Any], resolver: Resolver) -> ResourceType:
        """Server-side apply of one manifest into ``namespace`` (namespaced kinds only)."""
        body = copy.deepcopy(body)
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

    def _secrets(self, namespace: str, manifests: Manifests) -> list[str]:
        names = referenced_secrets(manifests)
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
            except ApiError as exc:
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
            self.kube.apply(SECRET.path(namespace, name), body)
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
        now = time.monotonic()
        for f in failures:
            first = seen.setdefault(f.key, now)
            grace = self.options.unschedulable_grace if f.reason == "Unschedulable" else 0.0
            if now - first >= grace:
                return f
        return None

    def _fail(self, failure: Failure, namespace: str, diag_dir: Path | None) -> DeployError:
        text = failure.describe()
        if failure.kind == "Pod" and failure.container:
            logs = diagnostics.last_log_lines(self.kube, namespace, failure.name, failure.container)
            if logs:
                text += "\n  last log lines:\n    " + "\n    ".join(logs.splitlines()[-20:])
        if diag_dir is not None:
            text += f"\n  diagnostics: {diag_dir}"
        return DeployError(text)

    def wait_jobs(self, namespace: str, names: list[str], timeout: float, *, what: str = "Job",
                  diag_dir: Path | None = None) -> dict[str, dict[str, Any]]:
        """Wait until every Job in ``names`` completes; fail fast on failures of them or their pods."""
        deadline = time.monotonic() + timeout
        seen: dict[tuple, float] = {}
        with WatchSet(self.kube, self.options.watch_timeout) as ws:
            ws.add("jobs", JOB.path(namespace))
            ws.add("pods", POD.path(namespace))
            ws.add("events", EVENT.path(namespace))
            for _ in ws.events(deadline):
                jobs = {n: ws.objects["jobs"].get(f"{namespace}/{n}") for n in names}
                failures: list[Failure] = []
                for job in jobs.values():
                    if job is not None and (f := analysis.job_failure(job)) is not None:
                        failures.append(f)
                job_pods = {k: p for k, p in ws.objects["pods"].items()
                            if any(((p.get("metadata") or {}).get("labels") or {}).get(lbl) in names for lbl in JOB_LABELS)}
                for pod in job_pods.values():
                    failures += [f for f in analysis.pod_failures(pod) if f.reason not in analysis.TERMINATED_FATAL]
                pod_names = {(p.get("metadata") or {}).get("name") for p in job_pods.values()}
                for ev in ws.objects["events"].values():
                    failures += [f for f in analysis.event_failures(ev) if f.name in pod_names]
                fatal = self._fatal(failures, seen)
                if fatal is not None:
                    raise self._fail(fatal, namespace, diag_dir)
                if all(j is not None and analysis.job_succeeded(j) for j in jobs.values()):
                    return {n: j for n, j in jobs.items() if j is not None}
            states = ", ".join(f"{n}: {(j or {}).get('status') or 'not created'}" for n, j in jobs.items())
        raise DeployError(f"{what} {', '.join(names)} did not complete within {timeout:.0f}s ({states})")

    def wait_dgd(self, namespace: str, rtype: ResourceType, name: str, timeout: float,
                 diag_dir: Path | None = None) -> dict[str, Any]:
        """Wait for the DGD's Ready condition (and state ``successful``); fail fast on its pods."""
        deadline = time.monotonic() + timeout
        seen: dict[tuple, float] = {}
        key = f"{namespace}/{name}"
        dgd: dict[str, Any] | None = None
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
                    failures += analysis.pod_failures(pod)
                pod_names = {(p.get("metadata") or {}).get("name") for p in pods.values()}
                for ev in ws.objects["events"].values():
                    failures += [f for f in analysis.event_failures(ev)
                                 if f.name in pod_names or f.name.startswith(f"{name}-")]
                fatal = self._fatal(failures, seen)
                if fatal is not None:
                    first = seen[fatal.key]
                    self.last_failure_s = time.monotonic() - first
                    raise self._fail(fatal, namespace, diag_dir)
                if dgd is not None and analysis.dgd_ready(dgd):
                    return dgd
            pods_text = "; ".join(analysis.pod_summary(p) for p in ws.objects["pods"].values()) or "no pods"
        raise DeployError(f"DynamoGraphDeployment {name} not Ready within {timeout:.0f}s "
                          f"({analysis.dgd_progress(dgd or {})}; pods: {pods_text})"
                          + (f"\n  diagnostics: {diag_dir}" if diag_dir else ""))

    def _wait_http(self, url: str, model: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:  # noqa: S310 -- 127.0.0.1
                    body = resp.read().decode("utf-8", "replace")
                    if resp.status == 200 and (not model or model in body):
                        return
                    last = f"HTTP {resp.status}: {body[:200]}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(1.0)
        raise DeployError(f"the frontend did not list model {model} through the port-forward within "
                          f"{timeout:.0f}s: {last}")

    # -- deploy ---------------------------------------------------------------------------

    @contextmanager
    def deploy(self, recipe: LoadedRecipe, workdir: Path) -> Iterator[Endpoint]:
        manifests = self.manifests(recipe)
        dep = recipe.deployment
        assert dep is not None
        api = api_service(recipe)
        if api is None:
            raise DeployError(f"{recipe.id}: the DGD has no frontend service (and no worker with a "
                              "frontendSidecar) to port-forward to")
        diag_dir = Path(workdir) / "kubernetes"
        kube = self.kube
        skip = unsupported(recipe, manifests, kube)
        if skip:
            raise DeploySkip(skip)
        run_id = _secrets.token_hex(4)
        try:
            ns = create_namespace(kube, self.options.namespace_prefix, recipe.id, run_id).name
        except ApiError as exc:
            raise DeployError(f"cannot create the run's namespace: {exc}") from exc
        if not self.options.keep:
            REGISTRY.add(kube, ns, self.options.delete_timeout)
        self.namespaces[recipe.id] = ns
        _log(f"{recipe.id}: namespace {ns}" + (f" ({'; '.join(manifests.notes)})" if manifests.notes else ""))
        rtype = dgd_type(manifests.dgd.get("apiVersion", dep.api_version))
        dgd_name = manifests.dgd["metadata"]["name"]
        forward: Access | None = None
        try:
            try:
                resolver = Resolver(kube)
                self._secrets(ns, manifests)
                cache = sorted(manifests.model_cache, key=lambda d: d.get("kind") != "PersistentVolumeClaim")
                for body in cache:
                    self.apply(ns, body, resolver)
                jobs = [b["metadata"]["name"] for b in cache if b.get("kind") == "Job"]
                if jobs:
                    self.wait_jobs(ns, jobs, self.options.job_timeout, what="model-cache Job", diag_dir=diag_dir)
                self.apply(ns, manifests.dgd, resolver)
                self.wait_dgd(ns, rtype, dgd_name, self.options.deploy_timeout, diag_dir)
                forward = open_access(kube, recipe, ns, dgd_name)
                endpoint = forward.endpoint(recipe, ns, diag_dir)
                self._wait_http(forward.url, endpoint.model, self.options.http_timeout)
            except ApiError as exc:
                raise DeployError(f"{recipe.id}: {exc}\n  diagnostics: {diag_dir}") from exc
            yield endpoint
        finally:
            if forward is not None:
                forward.close()
            try:
                diagnostics.collect(kube, ns, diag_dir, dgd=rtype, dgd_name=dgd_name)
            except (ApiError, OSError) as exc:
                _log(f"diagnostics of {ns} incomplete: {exc}")
            if self.options.keep:
                _log(f"--keep: namespace {ns} kept; delete it with `recipe-harness clean` or kubectl delete ns {ns}")
            else:
                try:
                    if delete_namespace(kube, ns, wait=self.options.delete_timeout):
                        REGISTRY.discard(ns)
                    else:
                        _log(f"namespace {ns} still terminating after {self.options.delete_timeout:.0f}s")
                except ApiError as exc:
                    _log(f"could not delete namespace {ns}: {exc}")

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
                self.apply(namespace, body, resolver)
            names = [j["metadata"]["name"] for j in jobs]
            self.wait_jobs(namespace, names, self.options.perf_timeout, what="perf Job", diag_dir=artifacts_dir)
            found: list[Path] = []
            for job in jobs:
                log_text = self._job_logs(namespace, job["metadata"]["name"])
                (artifacts_dir / f"{job['metadata']['name']}.log").write_text(log_text, encoding="utf-8")
                found += perf_artifacts.extract(log_text, artifacts_dir)
                if not found:
                    found += self._collect_from_pvc(namespace, job, started, artifacts_dir)
        except ApiError as exc:
            raise DeployError(f"{recipe.id}: perf Job: {exc}") from exc
        if not found:
            raise DeployError(f"{recipe.id}: the perf Job finished but no {perf_artifacts.PATTERN} was found "
                              f"(logs in {artifacts_dir})")
        return artifacts_dir

    def _replace_job(self, namespace: str, name: str) -> None:
        path = JOB.path(namespace, name)
        if self.kube.delete(path, propagation="Foreground"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.kube.get_or_none(path) is not None:
                time.sleep(0.5)

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
                except ApiError as exc:
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
                fatal = self._fatal(analysis.pod_failures(pod), seen)
                if fatal is not None:
                    raise self._fail(fatal, namespace, None)
        raise DeployError(f"helper pod {name} did not finish within {timeout:.0f}s")
