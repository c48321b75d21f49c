"""``nvidia.com/v1beta1`` DynamoGraphDeployment: ``spec.components`` is a list with ``name``,
``type`` and a Kubernetes ``podTemplate``."""

from __future__ import annotations

from ..manifests import Document
from . import PVC, Deployment, Service, as_int
from .v1alpha1 import container_into, env_list, gpu_count, pod_volumes_into, role_of


def _main_container(pod_spec: dict) -> tuple[int, dict] | tuple[None, None]:
    containers = pod_spec.get("containers") if isinstance(pod_spec.get("containers"), list) else []
    for i, c in enumerate(containers):
        if isinstance(c, dict) and c.get("name") == "main":
            return i, c
    for i, c in enumerate(containers):
        if isinstance(c, dict):
            return i, c
    return None, None


def normalise(doc: Document) -> Deployment:
    body = doc.body
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    dep = Deployment(
        name=str(meta.get("name") or ""),
        api_version=doc.api_version or "",
        document=doc,
        namespace=meta.get("namespace"),
        framework=spec.get("backendFramework"),
        annotations=meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {},
        env=env_list(spec.get("envs") or spec.get("env"), ("spec", "envs" if "envs" in spec else "env")),
    )
    for i, pvc in enumerate(spec.get("pvcs") or []):
        if isinstance(pvc, dict) and isinstance(pvc.get("name"), str):
            dep.pvcs.append(PVC(name=pvc["name"], create=bool(pvc.get("create", False)), size=pvc.get("size"),
                                storage_class=pvc.get("storageClass"), access_mode=pvc.get("volumeAccessMode"),
                                path=("spec", "pvcs", i)))
    components = spec.get("components")
    if not isinstance(components, list):
        return dep
    for idx, raw in enumerate(components):
        if not isinstance(raw, dict):
            continue
        name = str(raw.get("name") or f"component-{idx}")
        base = ("spec", "components", idx)
        ctype = str(raw.get("type") or raw.get("componentType") or "")
        sub = str(raw.get("subComponentType") or "")
        svc = Service(name=name, role=role_of(ctype, sub, name), component_type=ctype, sub_component_type=sub,
                      replicas=as_int(raw.get("replicas"), 1) if raw.get("replicas") is not None else 1,
                      resources=raw.get("resources") if isinstance(raw.get("resources"), dict) else {},
                      path=base, raw=raw)
        multinode = raw.get("multinode")
        if isinstance(multinode, dict):
            svc.node_count = max(1, as_int(multinode.get("nodeCount"), 1))
        svc.env.extend(dep.env)
        template = raw.get("podTemplate") if isinstance(raw.get("podTemplate"), dict) else {}
        pod_spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
        ci, main = _main_container(pod_spec)
        if main is not None:
            container_into(svc, main, base + ("podTemplate", "spec", "containers", ci))
        svc.gpus = gpu_count(svc.resources) or (gpu_count(main.get("resources")) if main else 0)
        pod_volumes_into(svc, pod_spec)
        dep.services.append(svc)
    return dep
