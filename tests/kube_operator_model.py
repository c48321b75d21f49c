"""What the Dynamo operator makes of a DynamoGraphDeployment, as pure functions.

Every rule here is read from ai-dynamo/dynamo ``deploy/operator`` (the component pathway: DGD ->
one DynamoComponentDeployment per service -> Deployment -> pods):

- names: ``GetDynamoComponentName`` = ``<dgd>-<lowercase service>`` (internal/dynamo/graph.go);
- the Dynamo namespace ``<k8s-namespace>-<dgd name with dots as dashes>``
  (``ComputeDynamoNamespace``, api/v1alpha1/dynamocomponentdeployment_types.go);
- labels (``generateLabels`` in internal/dynamo/graph.go; keys in internal/consts/consts.go):
  ``nvidia.com/selector``, ``nvidia.com/dynamo-graph-deployment-name``,
  ``nvidia.com/dynamo-namespace``, ``nvidia.com/dynamo-component-type``,
  ``nvidia.com/dynamo-component`` (the service's own name), plus the discovery labels when
  Kubernetes discovery is on;
- the base container per component type (internal/dynamo/component_common.go,
  component_frontend.go, component_worker.go): container ``main``; env ``DYN_NAMESPACE``,
  ``DYN_COMPONENT``, ``DYN_PARENT_DGD_K8S_NAME``, ``DYN_PARENT_DGD_K8S_NAMESPACE``, ``POD_*``,
  ``DYN_DISCOVERY_BACKEND=kubernetes``; the frontend gets port ``http`` 8000 with ``DYNAMO_PORT``,
  ``DYN_HTTP_PORT`` and ``DYN_NAMESPACE_PREFIX``; workers get ports ``system`` 9090 and ``nixl``
  19090 with ``DYN_SYSTEM_ENABLED``, ``DYN_SYSTEM_PORT=9090``,
  ``DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS``; ``terminationGracePeriodSeconds: 60``;
- ``/dev/shm``: an 8Gi memory-backed emptyDir unless ``sharedMemory.disabled``
  (consts ``DefaultSharedMemorySize``);
- Services (``GenerateComponentService``, internal/dynamo/graph.go, and the controller loop in
  internal/controller/dynamographdeployment_controller.go): the frontend always, port ``http``
  8000 -> container port named ``http``; other components only when Kubernetes discovery is on,
  port ``system`` 9090 -> ``system``; EPP ``grpc`` 9002 (appProtocol http2); selector
  component-type + dynamo-namespace + component;
- status (``Reconcile`` and ``checkResourcesReadiness`` in dynamographdeployment_controller.go,
  ``DynamoComponentDeploymentStatus.IsReady`` in api/v1alpha1): ``pending`` /
  ``some_resources_are_not_ready`` / ``Resources not ready: <dcd>: Component deployment not ready
  - Available condition not true; ...`` (resources sorted by name), ``successful`` /
  ``all_resources_are_ready`` / ``All resources are ready``; any reconcile error sets
  ``failed`` with the error as message until a reconcile succeeds; ``status.observedGeneration``
  is set to ``metadata.generation`` only by a reconcile without error (the deferred status write);
- the finalizer ``nvidia.com/finalizer`` (internal/controller_common/finalizer.go).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

FINALIZER = "nvidia.com/finalizer"
SELECTOR = "nvidia.com/selector"
DGD_NAME = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT = "nvidia.com/dynamo-component"
COMPONENT_TYPE = "nvidia.com/dynamo-component-type"
SUB_COMPONENT_TYPE = "nvidia.com/dynamo-sub-component-type"
DYNAMO_NAMESPACE = "nvidia.com/dynamo-namespace"
DISCOVERY_BACKEND = "nvidia.com/dynamo-discovery-backend"
DISCOVERY_ENABLED = "nvidia.com/dynamo-discovery-enabled"
HTTP_PORT, SYSTEM_PORT, NIXL_PORT, EPP_PORT = 8000, 9090, 19090, 9002
SHM_SIZE = "8Gi"
WORKER_TYPES = ("worker", "prefill", "decode", "main")
NOT_AVAILABLE = "Component deployment not ready - Available condition not true"
READY_REASON, READY_MESSAGE = "all_resources_are_ready", "All resources are ready"
PENDING_REASON = "some_resources_are_not_ready"
RECONCILE_FAILED = "failed_to_reconcile_the_resources"


@dataclass
class Component:
    """One service (v1alpha1) or component (v1beta1) of a DGD, as the operator reads it."""

    name: str
    type: str
    replicas: int
    main: dict[str, Any]
    sub_type: str = ""
    envs: list[dict[str, Any]] = field(default_factory=list)
    env_from_secret: str | None = None
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    shared_memory: dict[str, Any] | None = None
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    pod: dict[str, Any] = field(default_factory=dict)  # extraPodSpec's PodSpec fields (volumes, tolerations ...)

    @property
    def is_worker(self) -> bool:
        return self.type in WORKER_TYPES


def components(dgd: dict[str, Any]) -> list[Component]:
    spec = dgd.get("spec") or {}
    out: list[Component] = []
    if isinstance(spec.get("services"), dict):
        for name, svc in spec["services"].items():
            svc = svc or {}
            extra = svc.get("extraPodSpec") or {}
            sidecars = []
            side = svc.get("frontendSidecar")
            if isinstance(side, dict):
                sidecars.append({"name": "sidecar-frontend", "image": side.get("image"),
                                 "command": ["python3"], "args": side.get("args") or ["-m", "dynamo.frontend"],
                                 "env": list(side.get("envs") or []),
                                 "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]})
            out.append(Component(name, svc.get("componentType") or "", int(svc.get("replicas", 1)),
                                 copy.deepcopy(extra.get("mainContainer") or {}), svc.get("subComponentType") or "",
                                 list(svc.get("envs") or []) + list(spec.get("envs") or []), svc.get("envFromSecret"),
                                 list(svc.get("volumeMounts") or []), svc.get("sharedMemory"), sidecars,
                                 {k: copy.deepcopy(v) for k, v in extra.items() if k != "mainContainer"}))
    else:
        for comp in spec.get("components") or []:
            pod = ((comp.get("podTemplate") or {}).get("spec") or {})
            containers = [c for c in pod.get("containers") or [] if isinstance(c, dict)]
            main = next((c for c in containers if c.get("name") == "main"), containers[0] if containers else {})
            rest = [copy.deepcopy(c) for c in containers if c is not main]
            shm = comp.get("sharedMemorySize")
            out.append(Component(comp["name"], comp.get("type") or "", int(comp.get("replicas", 1)),
                                 copy.deepcopy(main), envs=list(spec.get("env") or []),
                                 shared_memory={"size": shm} if shm else None, sidecars=rest,
                                 pod={k: copy.deepcopy(v) for k, v in pod.items() if k != "containers"}))
    return out


def component_name(dgd_name: str, component: str) -> str:
    return f"{dgd_name}-{component.lower()}"


def dynamo_namespace(k8s_namespace: str, dgd_name: str) -> str:
    return f"{k8s_namespace}-{dgd_name.replace('.', '-')}"


def pod_labels(dgd_name: str, k8s_namespace: str, comp: Component, discovery: bool) -> dict[str, str]:
    labels = {SELECTOR: component_name(dgd_name, comp.name), DGD_NAME: dgd_name,
              DYNAMO_NAMESPACE: dynamo_namespace(k8s_namespace, dgd_name), COMPONENT: comp.name}
    if comp.type:
        labels[COMPONENT_TYPE] = comp.type
    if comp.sub_type:
        labels[SUB_COMPONENT_TYPE] = comp.sub_type
    if discovery:
        labels[DISCOVERY_BACKEND] = "kubernetes"
        labels[DISCOVERY_ENABLED] = "true"
    return labels


def base_env(comp: Component, dgd_name: str, k8s_namespace: str, discovery: bool) -> list[dict[str, Any]]:
    dyn_ns = dynamo_namespace(k8s_namespace, dgd_name)
    env: list[dict[str, Any]] = [
        {"name": "DYN_NAMESPACE", "value": dyn_ns}, {"name": "DYN_COMPONENT", "value": comp.type},
        {"name": "DYN_PARENT_DGD_K8S_NAME", "value": dgd_name},
        {"name": "DYN_PARENT_DGD_K8S_NAMESPACE", "value": k8s_namespace},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]
    if discovery:
        env.append({"name": "DYN_DISCOVERY_BACKEND", "value": "kubernetes"})
    if comp.type == "frontend":
        env += [{"name": "DYNAMO_PORT", "value": str(HTTP_PORT)}, {"name": "DYN_HTTP_PORT", "value": str(HTTP_PORT)},
                {"name": "DYN_NAMESPACE_PREFIX", "value": dyn_ns}]
    elif comp.is_worker:
        env += [{"name": "DYN_SYSTEM_ENABLED", "value": "true"},
                {"name": "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "value": '["generate"]'},
                {"name": "DYN_SYSTEM_PORT", "value": str(SYSTEM_PORT)},
                {"name": "DYN_HEALTH_CHECK_ENABLED", "value": "false"}]
    return env


def base_ports(comp: Component) -> list[dict[str, Any]]:
    if comp.type == "frontend":
        return [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    if comp.is_worker:
        return [{"name": "system", "containerPort": SYSTEM_PORT, "protocol": "TCP"},
                {"name": "nixl", "containerPort": NIXL_PORT, "protocol": "TCP"}]
    if comp.type == "epp":
        return [{"name": "grpc", "containerPort": EPP_PORT, "protocol": "TCP"}]
    return []


def _merge_env(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``MergeEnvs``: later lists override earlier ones by name; sorted by name."""
    merged: dict[str, dict[str, Any]] = {}
    for env in lists:
        for e in env or []:
            if isinstance(e, dict) and "name" in e:
                merged[e["name"]] = e
    return [merged[k] for k in sorted(merged)]


def pod_spec(comp: Component, dgd_name: str, k8s_namespace: str, discovery: bool) -> dict[str, Any]:
    """The pod the operator's Deployment runs for one replica of ``comp`` (``GenerateBasePodSpec``,
    deploy/operator/internal/dynamo/graph.go: the component's ``extraPodSpec`` PodSpec fields are
    merged in first (``mergo.Merge(&podSpec, ExtraPodSpec.PodSpec, mergo.WithOverride)``), then the
    main container, the PVC and shared-memory volumes are appended)."""
    main = copy.deepcopy(comp.main)
    container: dict[str, Any] = {"name": "main", "command": ["/bin/sh", "-c"]}
    if comp.type == "frontend":
        container.update(command=["python3"], args=["-m", "dynamo.frontend"])
    container.update({k: v for k, v in main.items() if k not in ("env", "name")})
    container["name"] = "main"
    container["env"] = _merge_env(base_env(comp, dgd_name, k8s_namespace, discovery), main.get("env") or [],
                                  comp.envs)
    container.setdefault("ports", base_ports(comp))
    if comp.env_from_secret:
        container.setdefault("envFrom", []).append({"secretRef": {"name": comp.env_from_secret}})
    extra = comp.pod
    volumes: list[dict[str, Any]] = [copy.deepcopy(v) for v in extra.get("volumes") or [] if isinstance(v, dict)]
    mounts = list(container.get("volumeMounts") or [])
    for vm in comp.volume_mounts:
        if isinstance(vm, dict) and vm.get("name"):
            volumes.append({"name": vm["name"], "persistentVolumeClaim": {"claimName": vm["name"]}})
            mounts.append({"name": vm["name"], "mountPath": vm.get("mountPoint") or f"/{vm['name']}"})
    shm = comp.shared_memory or {}
    if not shm.get("disabled"):
        volumes.append({"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": shm.get("size") or SHM_SIZE}})
        mounts.append({"name": "shared-memory", "mountPath": "/dev/shm"})
    if mounts:
        container["volumeMounts"] = mounts
    containers = [copy.deepcopy(c) for c in extra.get("containers") or [] if isinstance(c, dict)] + [container]
    for side in comp.sidecars:
        side = copy.deepcopy(side)
        side["env"] = _merge_env(base_env(Component(side["name"], "frontend", 1, {}), dgd_name, k8s_namespace,
                                          discovery), side.get("env") or [])
        containers.append(side)
    base = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 60, "securityContext": {"fsGroup": 1000}}
    base.update({k: copy.deepcopy(v) for k, v in extra.items() if k not in ("containers", "volumes")})
    return {"containers": containers, "volumes": volumes, **base}


def service(comp: Component, dgd_name: str, k8s_namespace: str, discovery: bool) -> dict[str, Any] | None:
    """The component's Service, or ``None`` when the operator makes none (EPP: always, from
    ``reconcileEPPResources`` / internal/dynamo/epp/service.go)."""
    if comp.type not in ("frontend", "epp") and not discovery:
        return None
    if comp.type == "frontend":
        port = {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}
    elif comp.type == "epp":
        port = {"name": "grpc", "port": EPP_PORT, "targetPort": EPP_PORT, "protocol": "TCP", "appProtocol": "http2"}
    else:
        port = {"name": "system", "port": SYSTEM_PORT, "targetPort": "system", "protocol": "TCP"}
    labels = {}
    if discovery:
        labels = {DISCOVERY_BACKEND: "kubernetes", DISCOVERY_ENABLED: "true"}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": component_name(dgd_name, comp.name).replace(".", "-"), "namespace": k8s_namespace,
                         "labels": labels},
            "spec": {"type": "ClusterIP",
                     "selector": {COMPONENT_TYPE: comp.type, DYNAMO_NAMESPACE: dynamo_namespace(k8s_namespace, dgd_name),
                                  COMPONENT: comp.name},
                     "ports": [port]}}


def ready_condition(not_ready: list[str]) -> tuple[str, dict[str, Any]]:
    """``checkResourcesReadiness``: state and the ``Ready`` condition for the DCDs not yet available."""
    if not not_ready:
        return "successful", {"type": "Ready", "status": "True", "reason": READY_REASON, "message": READY_MESSAGE}
    reasons = "; ".join(f"{name}: {NOT_AVAILABLE}" for name in sorted(not_ready))
    return "pending", {"type": "Ready", "status": "False", "reason": PENDING_REASON,
                       "message": f"Resources not ready: {reasons}"}


def failed_condition(reason: str, message: str) -> dict[str, Any]:
    """The deferred status write of ``Reconcile`` after an error: ``state: failed``, Ready False."""
    return {"type": "Ready", "status": "False", "reason": reason, "message": message}


def conflict_message(plural_group: str, name: str) -> str:
    """The apiserver's optimistic-concurrency error (``apierrors.NewConflict``) the operator reports."""
    return (f'Operation cannot be fulfilled on {plural_group} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again")
