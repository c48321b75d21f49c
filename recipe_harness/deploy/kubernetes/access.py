"""Reaching a deployed recipe on a cluster: which port serves the OpenAI API, the port-forwards to
it and to every worker's metrics, the :class:`~recipe_harness.deploy.Endpoint` they make, and
the recipes a cluster cannot run at all.

What the Dynamo operator creates (ai-dynamo/dynamo ``deploy/operator``), which this follows:

- Services (``internal/dynamo/graph.go`` ``GenerateComponentService``, called from
  ``internal/controller/dynamographdeployment_controller.go`` only "if k8s discovery is enabled
  [...] else only for the frontend component"): the frontend's Service has the single port
  ``http`` 8000 (targetPort: the container port named ``http``); a worker's, when it exists,
  has the single port ``system`` 9090; an EPP's ``grpc`` 9002. Names are
  ``<dgd>-<lowercased component>`` with dots turned into hyphens; the selector is the pods'
  component type, Dynamo namespace and component labels.
- Pod labels (``graph.go`` ``generateLabels``): ``nvidia.com/dynamo-graph-deployment-name=<dgd>``
  and ``nvidia.com/dynamo-component=<component name as written>``.
- A worker's main container (``internal/dynamo/component_worker.go``) gets the container port
  ``system`` 9090 and ``DYN_SYSTEM_ENABLED=true``, ``DYN_SYSTEM_PORT=9090``: the runtime's system
  server, serving ``/metrics`` (``dynamo_component_requests_total`` per endpoint) for that pod.
- A ``frontendSidecar`` (``graph.go`` ``generateFrontendSidecar``) is a container named
  ``sidecar-frontend`` (v1alpha1; v1beta1 names it in ``frontendSidecar``) built from the
  frontend defaults (``internal/dynamo/component_frontend.go``: container port ``http`` 8000,
  ``DYN_HTTP_PORT=8000``) with the recipe's args. No Service exposes it: the API is forwarded
  to a ready pod of the worker, on the port the sidecar listens on (``--http-port``, else
  ``DYN_HTTP_PORT``; ``dynamo/frontend/frontend_args.py``).
- An ``epp`` component makes the operator create an ``InferencePool``
  (``inference.networking.k8s.io/v1``, ``internal/dynamo/epp/inference_pool.go``) in every
  reconcile: without the Gateway API Inference Extension CRDs the graph never becomes ready.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_harness.deploy import Component, Endpoint
from recipe_harness.deploy.kubernetes.client import ApiError, Kube, KubeError, Unreachable
from recipe_harness.deploy.kubernetes.portforward import (
    Backend,
    PodTarget,
    PortForward,
    ServiceTarget,
    container_port,
    pick_pod,
    pod_ready,
    ready_pods,
)
from recipe_harness.deploy.kubernetes.resources import POD, Resolver, UnknownKind
from recipe_harness.deploy.twin import has_prefill_worker, run_role
from recipe_harness.model import (
    ROLE_DECODE,
    ROLE_FRONTEND,
    ROLE_PREFILL,
    SIDECAR_CONTAINER,
    Service,
    flag_value,
    split_argv,
)
from recipe_harness.model.backends import engine_config, frontend_config, router_mode
from recipe_harness.model.bundle import LoadedRecipe

DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"
HTTP_PORT = 8000                      # consts.DynamoServicePort, port name "http"
SYSTEM_PORT_NAME = "system"           # consts.DynamoSystemPortName (9090)
MAIN_CONTAINER = "main"
EPP_TYPE = "epp"
GAIE_GROUPS = ("inference.networking.k8s.io", "inference.networking.x-k8s.io")
GAIE_KINDS = ("InferencePool", "InferenceModel")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}"

_PLACEHOLDER_TAG = re.compile(r"^(?:my[-_]?tag|tag|your[-_].*|<[^>]*>|\$\{?\w*\}?|\$\(\w*\)|x+|changeme|"
                              r"replace[-_]?me|todo|tbd|version|release)$", re.I)
_PLACEHOLDER_REF = re.compile(r"(?:^|[/.])(?:my|your)[-_](?:registry|org|repo|project|image)|<|>|\$\{|\$\(", re.I)


def resource_name(dgd: str, component: str) -> str:
    """``<dgd>-<lowercased component>``, dots replaced (``graph.go``: Service names are DNS-1035)."""
    return f"{dgd}-{component.lower()}".replace(".", "-")


# -- the API -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SidecarTarget:
    """A ready pod of ``labels``, on the HTTP port its ``container`` (a frontend sidecar) listens on."""

    labels: dict[str, str]
    container: str
    default_port: int
    what: str = ""

    def resolve(self, kube: Kube, namespace: str, avoid: frozenset[str] = frozenset()) -> Backend:
        ready = ready_pods(kube, namespace, self.labels)
        if not ready:
            raise Unreachable(f"no ready pod of {self.what or self.labels} to reach its frontend "
                              f"sidecar {self.container}")
        pod = pick_pod(ready, avoid)
        name = pod["metadata"]["name"]
        spec = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == self.container),
                    None)
        if spec is None:
            have = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
            raise Unreachable(f"pod {name} has no frontend sidecar container {self.container!r} "
                              f"(its containers: {', '.join(map(str, have))})")
        return Backend(name, sidecar_http_port(spec, self.default_port))

    def describe(self) -> str:
        return f"{self.what} container {self.container}"


def sidecar_http_port(container: dict[str, Any], default: int) -> int:
    """The port a frontend container listens on: ``--http-port``, else ``DYN_HTTP_PORT``, else ``default``."""
    argv = split_argv(container.get("command") or [], container.get("args") or [])
    value = flag_value(argv, "--http-port")
    if not value:
        value = next((str(e.get("value")) for e in container.get("env") or []
                      if e.get("name") == "DYN_HTTP_PORT" and e.get("value") is not None), None)
    return int(value) if value and value.isdigit() else default


@dataclass(frozen=True)
class ApiService:
    """Where the OpenAI API is served: through the frontend's Service, or (``container`` set) on a
    frontend sidecar container of a ready pod of ``component``, which no Service exposes."""

    name: str                       # <dgd>-<component>: the frontend's Service, or the sidecar owner's name
    port: int                       # the Service's port, or the sidecar's HTTP port
    frontend: Service
    note: str = ""
    component: str = ""             # the DGD service whose pods serve the API
    container: str | None = None    # the frontend sidecar container

    @property
    def via_service(self) -> bool:
        return self.container is None

    def target(self, dgd: str) -> ServiceTarget | SidecarTarget:
        if self.container is None:
            return ServiceTarget(self.name, self.port)
        return SidecarTarget({DGD_LABEL: dgd, COMPONENT_LABEL: self.component}, self.container, self.port,
                             what=f"{self.component} ({dgd})")


def api_service(recipe: LoadedRecipe) -> ApiService | None:
    """The Frontend service's Service (``<dgd>-<frontend>``, port ``http`` 8000) or, with no Frontend
    service, the frontend sidecar of the first worker service that runs one, on the port its args
    (or env) give, 8000 by default."""
    dep = recipe.deployment
    if dep is None:
        return None
    front = dep.frontend
    if front is not None:
        return ApiService(resource_name(dep.name, front.name), HTTP_PORT, front, component=front.name)
    owners = dep.sidecar_frontends
    if not owners or owners[0].frontend_sidecar is None:
        return None
    owner, side = owners[0], owners[0].frontend_sidecar
    container = side.name.partition("/")[2] or SIDECAR_CONTAINER
    port = frontend_config(recipe, side).http_port or HTTP_PORT
    return ApiService(resource_name(dep.name, owner.name), port, side, component=owner.name, container=container,
                      note=f"API through the frontend sidecar of {owner.name} (container {container}, port {port}, "
                           f"of one ready pod of {owner.replicas}; no Service exposes it)")


# -- what a cluster cannot run -------------------------------------------------------------------


def _images(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            where = f"{path}.{k}" if path else str(k)
            if k == "image" and isinstance(v, str):
                yield where, v
            else:
                yield from _images(v, where)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _images(v, f"{path}[{i}]")


def placeholder_image(image: str) -> bool:
    """An image reference written to be filled in (``...:my-tag``, ``<registry>/x``, ``${TAG}``)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return bool((tag is not None and _PLACEHOLDER_TAG.match(tag)) or _PLACEHOLDER_REF.search(ref))


def _served_gaie_kinds(kube: Kube) -> set[str] | None:
    """GAIE kinds the cluster serves: from API discovery, else from the CRD objects; ``None`` if
    neither can be read."""
    found: set[str] = set()
    known = False
    try:
        groups = (kube.get("/apis") or {}).get("groups") or []
        known = True
        for group in groups:
            if group.get("name") not in GAIE_GROUPS:
                continue
            for version in group.get("versions") or []:
                listing = kube.get(f"/apis/{group['name']}/{version.get('version')}") or {}
                found |= {r.get("kind") for r in listing.get("resources") or [] if r.get("kind") in GAIE_KINDS}
    except ApiError:
        pass
    if found:
        return found
    for group in GAIE_GROUPS:
        for kind in GAIE_KINDS:
            try:
                crd = kube.get_or_none(CRD_PATH.format(plural=kind.lower() + "s", group=group))
            except ApiError:
                continue
            known = True
            if crd and any(v.get("served") for v in (crd.get("spec") or {}).get("versions") or []):
                found.add(kind)
    return found if known else None


def unsupported(recipe: LoadedRecipe, manifests: Any, kube: Kube) -> str | None:
    """Why this cluster cannot run the recipe as the harness would apply it (``manifests``: the
    target's Manifests, twin or not), or ``None``. Checked before anything is created; the
    target raises :class:`~recipe_harness.deploy.DeploySkip` with it."""
    deploy_file = recipe.recipe.deploy_file
    bodies = [("deploy", manifests.dgd), *(("deploy", b) for b in manifests.companions),
              *(("model-cache", b) for b in manifests.model_cache), *(("perf", b) for b in manifests.perf)]
    for what, body in bodies:
        for path, image in _images(body):
            if placeholder_image(image):
                name = ((body.get("metadata") or {}).get("name")) if isinstance(body, dict) else None
                return (f"{recipe.id}: image {image!r} at {path} of {body.get('kind')} {name} ({what} manifests, "
                        f"{deploy_file if what == 'deploy' else 'recipe'}) is a placeholder to fill in; no cluster "
                        "can pull it. Replace it with a published image and tag (e.g. the Dynamo release the "
                        "other images use) to deploy this recipe")
    missing_kind = _unserved_companion(manifests.companions, kube)
    if missing_kind:
        return f"{recipe.id}: {deploy_file} creates {missing_kind}"
    dep = recipe.deployment
    epp = [s.name for s in (dep.services if dep else []) if s.component_type == EPP_TYPE]
    kinds = sorted({str(b.get("kind")) for _, b in bodies[1:] if isinstance(b, dict) and b.get("kind") in GAIE_KINDS})
    if not epp and not kinds:
        return None
    served = _served_gaie_kinds(kube)
    if served is None:
        return None  # neither discovery nor the CRDs are readable: let the deploy show what happens
    needed = (["InferencePool"] if epp else []) + [k for k in kinds if k != "InferencePool" or not epp]
    missing = [k for k in needed if k not in served]
    if not missing:
        return None
    why = (f"its endpoint picker (component {', '.join(epp)}) makes the Dynamo operator create an InferencePool "
           "(inference.networking.k8s.io/v1) in every reconcile" if epp else f"its manifests create {', '.join(kinds)}")
    return (f"{recipe.id}: the graph needs the Gateway API Inference Extension ({why}), and this cluster serves no "
            f"{', '.join(missing)} ({' or '.join(GAIE_GROUPS)}). Install the GAIE CRDs (and a Gateway) to run "
            f"this recipe; its frontend sidecars are checked on the local target")


def _unserved_companion(bodies: list[dict[str, Any]], kube: Kube) -> str | None:
    """The first object of the deploy file besides the DGD the run cannot make, said as ``Kind
    name: why``: its kind is not served (a ComputeDomain without NVIDIA's DRA driver ...), or it is
    cluster-scoped and not on the cluster yet (the harness makes objects only in the run's
    namespace; one that exists is used as it is). ``None`` when all can be made or discovery
    cannot tell (the apply will show what happens)."""
    resolver = Resolver(kube)
    for body in bodies:
        if body.get("kind") in GAIE_KINDS:
            continue  # the GAIE check below says more
        name = (body.get("metadata") or {}).get("name")
        try:
            rtype = resolver.resolve(str(body.get("apiVersion") or ""), str(body.get("kind")))
            if not rtype.namespaced and kube.get_or_none(rtype.path(None, str(name))) is None:
                return (f"{body.get('kind')} {name}, which is cluster-scoped: the harness makes objects only in "
                        "the run's namespace; create it on the cluster first (kubectl apply) and run again")
        except UnknownKind as exc:
            return f"{body.get('kind')} {name}: {exc}"
        except KubeError:
            return None
    return None


# -- forwards, components, endpoint --------------------------------------------------------------


def system_port(pod: dict[str, Any]) -> int | None:
    """The worker's system (metrics) port: container port ``system`` of its main container, else
    ``DYN_SYSTEM_PORT`` of its env; ``None`` when the pod declares neither."""
    containers = (pod.get("spec") or {}).get("containers") or []
    main = next((c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0] if containers else None)
    if main is None:
        return None
    try:
        return container_port(pod, SYSTEM_PORT_NAME, main.get("name"))
    except KubeError:
        pass
    env = {e.get("name"): e.get("value") for e in main.get("env") or []}
    if str(env.get("DYN_SYSTEM_ENABLED", "true")).lower() in ("false", "0"):
        return None
    value = str(env.get("DYN_SYSTEM_PORT") or "")
    return int(value) if value.isdigit() and int(value) > 0 else None


@dataclass
class Access:
    """The port-forwards to a deployed recipe: the API and each ready worker pod's system port."""

    api: ApiService
    forward: PortForward
    metrics: dict[str, PortForward] = field(default_factory=dict)   # pod -> forward to its system port
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.forward.url

    def close(self) -> None:
        for fwd in [self.forward, *self.metrics.values()]:
            fwd.close()

    def endpoint(self, recipe: LoadedRecipe, namespace: str, diag_dir: Path | None) -> Endpoint:
        dep = recipe.deployment
        assert dep is not None
        engines = [(w, engine_config(recipe, w)) for w in dep.workers]
        served = next((cfg.served_name for _, cfg in engines if cfg.served_name), None) or ""
        has_prefill = has_prefill_worker(engines)
        roles = {run_role(w, cfg, has_prefill) for w, cfg in engines}
        notes = [f"namespace: {namespace}"] + ([self.api.note] if self.api.note else []) + self.notes
        return Endpoint(base_url=self.url, model=served, target="kubernetes", recipe_id=recipe.id,
                        components=list(self.components), logs_dir=diag_dir,
                        router_mode=router_mode(recipe, self.api.frontend),
                        router_kv_events=frontend_config(recipe, self.api.frontend).router_kv_events,
                        disaggregated=bool(roles & {ROLE_PREFILL, ROLE_DECODE}), notes=notes)


def open_access(kube: Kube, recipe: LoadedRecipe, namespace: str, dgd: str | None = None) -> Access:
    """Forward the API (:func:`api_service`) and, to each ready worker pod, its system port; every
    pod of the graph becomes a :class:`Component` with its role, workers and the forwarded
    frontend with a ``metrics_url``. Close the returned :class:`Access` at teardown."""
    dep = recipe.deployment
    api = api_service(recipe)
    if dep is None or api is None:
        raise Unreachable(f"{recipe.id}: the DGD has no frontend service (and no worker with a "
                          "frontendSidecar) to port-forward to")
    dgd = dgd or dep.name
    forward = PortForward(kube, namespace, api.target(dgd)).start()
    access = Access(api, forward)
    try:
        _components(access, kube, recipe, namespace, dgd)
    except BaseException:
        access.close()
        raise
    return access


# Pods of a multinode worker that are not its leader run the engine's other ranks, not Dynamo's
# runtime, and serve no system port: vLLM's `ray start --block` or `--headless` ranks, TRT-LLM's
# sshd for mpirun (deploy/operator/internal/dynamo backend_vllm.go, backend_trtllm.go). The operator
# runs them as LeaderWorkerSet pods with a worker index above 0, or as Grove's worker clique
# "<service>-wkr" (graph.go expandRolesForService) whose pods carry its name.
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
GROVE_CLIQUE = "grove.io/podclique"
GROVE_WORKER_SUFFIX = "-wkr"


def multinode_rank(pod: dict[str, Any]) -> bool:
    """Whether ``pod`` is a non-leader pod of a multinode worker (see above)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    index = labels.get(LWS_WORKER_INDEX)
    return (index is not None and str(index) != "0") or str(labels.get(GROVE_CLIQUE, "")).endswith(GROVE_WORKER_SUFFIX)


def _components(access: Access, kube: Kube, recipe: LoadedRecipe, namespace: str, dgd: str) -> None:
    dep = recipe.deployment
    assert dep is not None and access.forward.backend is not None
    api_pod = access.forward.backend.pod
    try:
        pods = (kube.get(POD.path(namespace), labelSelector=f"{DGD_LABEL}={dgd}") or {}).get("items") or []
    except ApiError as exc:
        access.notes.append(f"pods of {dgd} not listed ({exc}); no worker metrics")
        pods = []
    engines = [(w, engine_config(recipe, w)) for w in dep.workers]
    has_prefill = has_prefill_worker(engines)
    by_name = {s.name.lower(): s for s in dep.services}
    ranks: list[str] = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        label = str(((pod.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL, ""))
        svc = by_name.get(label.lower())
        role = svc.role if svc else "other"
        if svc is not None and svc.is_worker:
            role = run_role(svc, engine_config(recipe, svc), has_prefill)
        comp = Component(name=name, role=role, service=svc.name if svc else label)
        if svc is not None and svc.is_worker and multinode_rank(pod):
            ranks.append(name)
        elif svc is not None and svc.is_worker and pod_ready(pod):
            port = system_port(pod)
            if port is None:
                access.notes.append(f"{name}: no system port (container port {SYSTEM_PORT_NAME} or DYN_SYSTEM_PORT); "
                                    "its metrics are not read")
            else:
                fwd = PortForward(kube, namespace, PodTarget(name, port)).start()
                access.metrics[name] = fwd
                comp.metrics_url = f"{fwd.url}/metrics"
        if role == ROLE_FRONTEND and access.api.via_service and name == api_pod:
            comp.metrics_url = f"{access.url}/metrics"
        access.components.append(comp)
    if ranks:
        access.notes.append(f"{len(ranks)} pod(s) of multinode workers run engine ranks, not Dynamo's runtime: no "
                            f"metrics read from {', '.join(ranks[:4])}{' ...' if len(ranks) > 4 else ''}")
    if not access.api.via_service:
        access.components.append(Component(name=f"{api_pod}/{access.api.container}", role=ROLE_FRONTEND,
                                           service=access.api.frontend.name, metrics_url=f"{access.url}/metrics"))
