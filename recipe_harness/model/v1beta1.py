"""``nvidia.com/v1beta1`` DynamoGraphDeployment: ``spec.components`` is a list of components, each
with a ``name``, a ``type`` and a Kubernetes ``podTemplate`` whose container named ``main`` runs
the engine. Graph-level environment is ``spec.env``; there is no ``spec.pvcs`` (claims are pod
volumes) and no component-level ``resources``/``envs`` (they live on the main container)."""

from __future__ import annotations

from recipe_harness.load.manifests import Document
from recipe_harness.model.deployment import PVC, ROLE_FRONTEND, Deployment, Mount, Service, as_int
from recipe_harness.model.v1alpha1 import container_into, gpu_count, new_deployment, pod_volumes_into, role_of

MAIN_CONTAINER = "main"


def _pod_template(raw: dict, base: tuple) -> tuple[dict, tuple]:
    """The component's pod template, or (multinode roles) the leader role's."""
    template = raw.get("podTemplate")
    if isinstance(template, dict):
        return template, base + ("podTemplate",)
    roles = v if isinstance(v := raw.get("roles"), list) else []
    ordered = sorted(range(len(roles)), key=lambda i: 0 if isinstance(roles[i], dict) and roles[i].get("name") == "leader" else 1)
    for i in ordered:
        role = roles[i]
        if isinstance(role, dict) and isinstance(role.get("podTemplate"), dict):
            return role["podTemplate"], base + ("roles", i, "podTemplate")
    return {}, base + ("podTemplate",)


def _main_container(pod_spec: dict) -> tuple[int, dict] | tuple[None, None]:
    containers = v if isinstance(v := pod_spec.get("containers"), list) else []
    for i, c in enumerate(containers):
        if isinstance(c, dict) and c.get("name") == MAIN_CONTAINER:
            return i, c
    for i, c in enumerate(containers):
        if isinstance(c, dict):
            return i, c
    return None, None


def _frontend_sidecar(owner: Service, name: object, pod_spec: dict, tpath: tuple,
                      graph_env: list) -> Service | None:
    """The podTemplate container ``frontendSidecar`` names, as a frontend Service."""
    if not isinstance(name, str) or not name:
        return None
    containers = v if isinstance(v := pod_spec.get("containers"), list) else []
    side = Service(name=f"{owner.name}/{name}", role=ROLE_FRONTEND, component_type="frontend",
                   replicas=owner.replicas, path=owner.path + ("frontendSidecar",), raw={})
    side.env.extend(graph_env)
    for i, c in enumerate(containers):
        if isinstance(c, dict) and c.get("name") == name:
            side.raw = c
            container_into(side, c, tpath + ("spec", "containers", i))
            side.path = tpath + ("spec", "containers", i)
            break
    return side


def _claims(pod_spec: dict, base: tuple) -> list[tuple[str, tuple]]:
    out = []
    for i, vol in enumerate(pod_spec.get("volumes") or []):
        if isinstance(vol, dict) and isinstance(vol.get("persistentVolumeClaim"), dict):
            claim = vol["persistentVolumeClaim"].get("claimName")
            if isinstance(claim, str) and claim:
                out.append((claim, base + ("volumes", i)))
    return out


def normalise(doc: Document) -> Deployment:
    dep, spec = new_deployment(doc, "env")
    components = spec.get("components")
    if not isinstance(components, list):
        return dep
    claims_seen: set[str] = set()
    for idx, raw in enumerate(components):
        if not isinstance(raw, dict):
            continue
        name = str(raw.get("name") or f"component-{idx}")
        base = ("spec", "components", idx)
        ctype = str(raw.get("type") or "")
        svc = Service(name=name, role=role_of(ctype, "", name), component_type=ctype,
                      replicas=as_int(raw.get("replicas"), 1) if raw.get("replicas") is not None else 1,
                      path=base, raw=raw)
        multinode = raw.get("multinode")
        if isinstance(multinode, dict):
            svc.node_count = max(1, as_int(multinode.get("nodeCount"), 2))
        shm = raw.get("sharedMemorySize")
        if shm is not None and str(shm).strip() not in ("0", ""):
            svc.shared_memory = str(shm)
        svc.env.extend(dep.env)
        template, tpath = _pod_template(raw, base)
        pod_spec = v if isinstance(v := template.get("spec"), dict) else {}
        ci, main = _main_container(pod_spec)
        if main is not None:
            container_into(svc, main, tpath + ("spec", "containers", ci))
            svc.gpus = gpu_count(main.get("resources"))
        cache = raw.get("compilationCache")
        if isinstance(cache, dict) and isinstance(cache.get("pvcName"), str):
            svc.mounts.append(Mount(name=cache["pvcName"], mount_path=str(cache.get("mountPath") or ""),
                                    pvc=cache["pvcName"], path=base + ("compilationCache",)))
        pod_volumes_into(svc, pod_spec)
        svc.frontend_sidecar = _frontend_sidecar(svc, raw.get("frontendSidecar"), pod_spec, tpath, dep.env)
        claims = _claims(pod_spec, tpath + ("spec",))
        if isinstance(cache, dict) and isinstance(cache.get("pvcName"), str):
            claims.append((cache["pvcName"], base + ("compilationCache",)))
        for claim, path in claims:
            if claim not in claims_seen:
                claims_seen.add(claim)
                dep.pvcs.append(PVC(name=claim, create=False, path=path))
        dep.services.append(svc)
    return dep

