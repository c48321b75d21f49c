"""``nvidia.com/v1alpha1`` DynamoGraphDeployment: ``spec.services`` is a map of services."""

from __future__ import annotations

from typing import Any

from recipe_harness.load.manifests import Document
from recipe_harness.model.cmdline import split_argv
from recipe_harness.model.deployment import (
    PVC,
    ROLE_DECODE,
    ROLE_FRONTEND,
    ROLE_OTHER,
    ROLE_PLANNER,
    ROLE_PREFILL,
    ROLE_WORKER,
    SIDECAR_CONTAINER,
    Deployment,
    EnvVar,
    Mount,
    Service,
    as_int,
)

_ROLE_BY_TYPE = {"frontend": ROLE_FRONTEND, "planner": ROLE_PLANNER, "worker": ROLE_WORKER,
                 "prefill": ROLE_PREFILL, "decode": ROLE_DECODE}


def role_of(component_type: str, sub_component_type: str, name: str) -> str:
    ctype = (component_type or "").lower()
    sub = (sub_component_type or "").lower()
    if ctype == "worker" or ctype in ("prefill", "decode"):
        if sub in ("prefill", "decode"):
            return sub
        if ctype in ("prefill", "decode"):
            return ctype
        return ROLE_WORKER
    if ctype in _ROLE_BY_TYPE:
        return _ROLE_BY_TYPE[ctype]
    lname = name.lower()
    if ctype == "main":  # the operator's older name for a worker component
        if sub in ("prefill", "decode"):
            return sub
        return ROLE_PREFILL if "prefill" in lname else ROLE_DECODE if "decode" in lname else ROLE_WORKER
    if not ctype:
        if "frontend" in lname:
            return ROLE_FRONTEND
        if "prefill" in lname:
            return ROLE_PREFILL
        if "decode" in lname:
            return ROLE_DECODE
        if "worker" in lname:
            return ROLE_WORKER
    return ROLE_OTHER


def env_list(items: Any, base: tuple) -> list[EnvVar]:
    out: list[EnvVar] = []
    if not isinstance(items, list):
        return out
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        value_from = v if isinstance(v := item.get("valueFrom"), dict) else {}
        skr = v if isinstance(v := value_from.get("secretKeyRef"), dict) else {}
        cmr = v if isinstance(v := value_from.get("configMapKeyRef"), dict) else {}
        value = item.get("value")
        out.append(EnvVar(name=item["name"], value=None if value is None else str(value),
                          secret=skr.get("name"), secret_key=skr.get("key"), config_map=cmr.get("name"),
                          path=base + (i,)))
    return out


def container_into(svc: Service, container: Any, base: tuple) -> None:
    """Fill image/command/args/env/mounts/resources of ``svc`` from a Kubernetes container map."""
    if not isinstance(container, dict):
        return
    svc.image = container.get("image") if isinstance(container.get("image"), str) else svc.image
    command = v if isinstance(v := container.get("command"), list) else []
    args = v if isinstance(v := container.get("args"), list) else []
    svc.command, svc.args = [str(c) for c in command], [str(a) for a in args]
    svc.argv = split_argv(command, args)
    svc.args_path = base + (("args",) if args else ("command",) if command else ())
    svc.env.extend(env_list(container.get("env"), base + ("env",)))
    for item in container.get("envFrom") or []:
        if isinstance(item, dict):
            if isinstance(item.get("secretRef"), dict) and item["secretRef"].get("name"):
                svc.env_from_secrets.append(item["secretRef"]["name"])
            if isinstance(item.get("configMapRef"), dict) and item["configMapRef"].get("name"):
                svc.env_from_config_maps.append(item["configMapRef"]["name"])
    if isinstance(container.get("workingDir"), str):
        svc.working_dir = container["workingDir"]
    for i, vm in enumerate(container.get("volumeMounts") or []):
        if isinstance(vm, dict) and isinstance(vm.get("name"), str):
            svc.mounts.append(Mount(name=vm["name"], mount_path=str(vm.get("mountPath", "")),
                                    path=base + ("volumeMounts", i)))
    if isinstance(container.get("resources"), dict) and not svc.resources:
        svc.resources = container["resources"]


def pod_volumes_into(svc: Service, pod_spec: Any) -> None:
    if not isinstance(pod_spec, dict):
        return
    for vol in pod_spec.get("volumes") or []:
        if isinstance(vol, dict) and isinstance(vol.get("name"), str):
            svc.volumes[vol["name"]] = vol
    for m in svc.mounts:
        vol = svc.volumes.get(m.name)
        if m.pvc is None and isinstance(vol, dict) and isinstance(vol.get("persistentVolumeClaim"), dict):
            m.pvc = vol["persistentVolumeClaim"].get("claimName")


def gpu_count(resources: Any) -> int:
    """GPUs asked for: DGD ``resources.limits.gpu`` or a pod's ``nvidia.com/gpu``."""
    if not isinstance(resources, dict):
        return 0
    best = 0
    for section in ("limits", "requests"):
        res = resources.get(section)
        if isinstance(res, dict):
            for key in ("gpu", "nvidia.com/gpu"):
                if key in res:
                    best = max(best, as_int(res[key]))
            if best:
                return best
    return best


def new_deployment(doc: Document, env_key: str) -> tuple[Deployment, dict]:
    """The version-independent part of a DGD (metadata, backendFramework, graph-wide env) and its spec."""
    body = doc.body
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    dep = Deployment(
        name=str(meta.get("name") or ""),
        api_version=doc.api_version or "",
        document=doc,
        namespace=meta.get("namespace"),
        framework=spec.get("backendFramework"),
        annotations=v if isinstance(v := meta.get("annotations"), dict) else {},
        env=env_list(spec.get(env_key), ("spec", env_key)),
    )
    return dep, spec


def frontend_sidecar(owner: Service, spec: Any, base: tuple, graph_env: list[EnvVar]) -> Service | None:
    """The ``frontendSidecar`` map (image, args, envFromSecret, envs) of a service, as a frontend Service."""
    if not isinstance(spec, dict):
        return None
    side = Service(name=f"{owner.name}/{SIDECAR_CONTAINER}", role=ROLE_FRONTEND, component_type="frontend",
                   replicas=owner.replicas, path=base, raw=spec)
    side.image = spec.get("image") if isinstance(spec.get("image"), str) else None
    args = v if isinstance(v := spec.get("args"), list) else []
    side.args = [str(a) for a in args]
    side.argv = split_argv([], args)
    side.args_path = base + ("args",) if args else ()
    side.env = [*graph_env, *env_list(spec.get("envs"), base + ("envs",))]
    if isinstance(spec.get("envFromSecret"), str):
        side.env_from_secrets.append(spec["envFromSecret"])
    return side


def normalise(doc: Document) -> Deployment:
    dep, spec = new_deployment(doc, "envs")
    for i, pvc in enumerate(spec.get("pvcs") or []):
        if isinstance(pvc, dict) and isinstance(pvc.get("name"), str):
            dep.pvcs.append(PVC(name=pvc["name"], create=bool(pvc.get("create", False)), size=pvc.get("size"),
                                storage_class=pvc.get("storageClass"), access_mode=pvc.get("volumeAccessMode"),
                                path=("spec", "pvcs", i)))
    services = spec.get("services")
    if not isinstance(services, dict):
        return dep
    for name, raw in services.items():
        if not isinstance(raw, dict):
            continue
        name = str(name)
        base = ("spec", "services", name)
        svc = Service(
            name=name,
            role=role_of(str(raw.get("componentType") or ""), str(raw.get("subComponentType") or ""), name),
            component_type=str(raw.get("componentType") or ""),
            sub_component_type=str(raw.get("subComponentType") or ""),
            replicas=as_int(raw.get("replicas"), 1) if raw.get("replicas") is not None else 1,
            resources=v if isinstance(v := raw.get("resources"), dict) else {},
            path=base,
            raw=raw,
        )
        svc.gpus = gpu_count(svc.resources)
        multinode = raw.get("multinode")
        if isinstance(multinode, dict):
            svc.node_count = max(1, as_int(multinode.get("nodeCount"), 1))
        shm = raw.get("sharedMemory")
        if isinstance(shm, dict) and not shm.get("disabled"):
            svc.shared_memory = str(shm.get("size")) if shm.get("size") is not None else None
        if isinstance(raw.get("envFromSecret"), str):
            svc.env_from_secrets.append(raw["envFromSecret"])
        svc.env.extend(dep.env)
        svc.env.extend(env_list(raw.get("envs"), base + ("envs",)))
        for i, vm in enumerate(raw.get("volumeMounts") or []):
            if isinstance(vm, dict) and isinstance(vm.get("name"), str):
                svc.mounts.append(Mount(name=vm["name"], mount_path=str(vm.get("mountPoint") or vm.get("mountPath") or ""),
                                        pvc=vm["name"], path=base + ("volumeMounts", i)))
        extra = v if isinstance(v := raw.get("extraPodSpec"), dict) else {}
        main = extra.get("mainContainer")
        container_into(svc, main, base + ("extraPodSpec", "mainContainer"))
        if not svc.gpus and isinstance(main, dict):
            svc.gpus = gpu_count(main.get("resources"))
        pod_volumes_into(svc, extra)
        svc.frontend_sidecar = frontend_sidecar(svc, raw.get("frontendSidecar"), base + ("frontendSidecar",), dep.env)
        dep.services.append(svc)
    return dep
