"""Storage (RH310-RH319): every claim and mounted ConfigMap resolves, shared claims are ReadWriteMany,
and the workers read the model where the download Job writes it."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from recipe_harness.findings import Finding
from recipe_harness.load.manifests import Document
from recipe_harness.model import Service
from recipe_harness.model.backends import config_maps, service_env
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.shell import Container, pod_spec_path
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import (
    at,
    emit,
    hf_hub_dir,
    hub_folder,
    is_repo_id,
    known,
    pvc_mount_of,
    pvcs,
    service_at,
    workers,
)
from recipe_harness.static.rules.scripts import downloads


def _documented(recipe: LoadedRecipe, name: str, *, prefix: str = r"pvc",
                about: str = r"pvc|persistentvolumeclaim|claim") -> bool:
    """The README names ``name`` as a prerequisite: quoted or after ``prefix`` (``pvc/NAME``), on a
    line about its kind (``about``: PVCs and claims unless told otherwise)."""
    pattern = re.compile(r"[`'\"]" + re.escape(name) + r"[`'\"]|" + prefix + r"[/ ]" + re.escape(name) + r"\b", re.I)
    return any(pattern.search(line) and re.search(about, line, re.I)
               for text in recipe.readme_texts.values() for line in text.splitlines())


def _claim_refs(recipe: LoadedRecipe) -> Iterator[tuple[str, Document, tuple]]:
    """(claim name, document, path) of every PVC a manifest of the recipe refers to."""
    dep = recipe.deployment
    if dep is not None:
        for p in dep.pvcs:
            if not p.create:
                yield p.name, dep.document, p.path + ("name",)
        for svc in dep.services:
            for vname, vol in svc.volumes.items():
                claim = vol.get("persistentVolumeClaim") if isinstance(vol, dict) else None
                if isinstance(claim, dict) and isinstance(claim.get("claimName"), str):
                    path = svc.path
                    for base in (("extraPodSpec",), ("podTemplate", "spec")):  # v1alpha1, v1beta1
                        vols = dep.document.get(*svc.path, *base, "volumes") or []
                        idx = next((i for i, v in enumerate(vols) if isinstance(v, dict) and v.get("name") == vname),
                                   None)
                        if idx is not None:
                            path = svc.path + base + ("volumes", idx, "persistentVolumeClaim", "claimName")
                            break
                    yield claim["claimName"], dep.document, path
    for doc in recipe.documents():
        if doc.kind == "DynamoGraphDeployment":
            continue
        spec_path = pod_spec_path(doc)
        if spec_path is None:
            continue
        for i, vol in enumerate(doc.get(*spec_path, "volumes") or []):
            claim = vol.get("persistentVolumeClaim") if isinstance(vol, dict) else None
            if isinstance(claim, dict) and isinstance(claim.get("claimName"), str):
                yield claim["claimName"], doc, spec_path + ("volumes", i, "persistentVolumeClaim", "claimName")


@rule("RH310", "storage",
      "Every PVC the manifests refer to (DGD pvcs, claimName of pod volumes, Jobs) is created by the recipe "
      "or documented in its README as a prerequisite.",
      "add the PersistentVolumeClaim to <model>/model-cache/, set `create: true` in the DGD's pvcs, or name the "
      "claim as a prerequisite in the README")
def claims_resolve(recipe: LoadedRecipe) -> Iterator[Finding]:
    created = pvcs(recipe)
    missing: dict[str, list[tuple[Document, tuple]]] = {}
    for name, doc, path in _claim_refs(recipe):
        if name not in created:
            missing.setdefault(name, []).append((doc, path))
    have = ", ".join(sorted(created)) or "none"
    for name, refs in missing.items():
        if _documented(recipe, name):
            continue
        doc, path = refs[0]
        more = f" (referenced {len(refs)} times)" if len(refs) > 1 else ""
        yield emit("RH310", recipe, at(doc, path),
                   f"PVC {name!r} is not created by the recipe (its PVCs: {have}) nor documented as a "
                   f"prerequisite{more}")


def _config_map_refs(body: object, path: tuple = ()) -> Iterator[tuple[str, tuple]]:
    """(name, path of the name) of every ConfigMap a manifest mounts (``volumes[].configMap``,
    projected sources) or reads env from (``configMapRef``, ``configMapKeyRef``), optional ones
    aside: the kubelet waits for these (``FailedMount``, ``CreateContainerConfigError``)."""
    if isinstance(body, dict):
        for key in ("configMap", "configMapRef", "configMapKeyRef"):
            ref = body.get(key)
            if isinstance(ref, dict) and isinstance(ref.get("name"), str) and not ref.get("optional"):
                yield ref["name"], path + (key, "name")
        for k, v in body.items():
            yield from _config_map_refs(v, path + (k,))
    elif isinstance(body, list):
        for i, v in enumerate(body):
            yield from _config_map_refs(v, path + (i,))


@rule("RH314", "storage",
      "Every ConfigMap a workload of the recipe mounts or reads env from is shipped with the recipe (its "
      "manifests or a YAML file beside the deploy file) or documented in its README as a prerequisite.",
      "add the ConfigMap to the deploy file (kubectl apply -f applies it with the DGD) or a YAML file beside it, "
      "fix the name, mark the reference optional, or name the ConfigMap as a prerequisite in the README")
def config_maps_resolve(recipe: LoadedRecipe) -> Iterator[Finding]:
    shipped = config_maps(recipe)
    have = ", ".join(sorted(shipped)) or "none"
    seen: set[str] = set()
    for doc in recipe.documents():
        if doc.kind != "DynamoGraphDeployment" and pod_spec_path(doc) is None:
            continue
        for name, path in _config_map_refs(doc.body):
            if name in shipped or name in seen or _documented(recipe, name, prefix=r"configmaps?", about=r"config ?map"):
                continue
            seen.add(name)
            yield emit("RH314", recipe, at(doc, path),
                       f"ConfigMap {name!r} is not shipped with the recipe (its ConfigMaps: {have}) nor documented "
                       "as a prerequisite: the pods wait for it in ContainerCreating (FailedMount)")


@rule("RH311", "storage",
      "Every DGD service volumeMount names a PVC declared in the DGD's spec.pvcs.",
      "add `- name: <claim>` (create: false for an existing claim) to spec.pvcs, or fix the mount's name")
def mounts_declared(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:
        return
    declared = {p.name for p in dep.pvcs}
    for svc in dep.services:
        for m in svc.mounts:
            if len(m.path) > len(svc.path) and m.path[len(svc.path)] == "volumeMounts" and m.name not in declared:
                yield emit("RH311", recipe, at(dep.document, m.path + ("name",)),
                           f"{svc.name} mounts {m.name!r}, which spec.pvcs does not declare "
                           f"(declared: {', '.join(sorted(declared)) or 'none'})")


@rule("RH312", "storage",
      "A PVC mounted by more than one pod of the deployment (replicas, multinode, several services) is ReadWriteMany.",
      "set accessModes: [ReadWriteMany] with a storage class that supports it (NFS, Lustre, CephFS, EFS ...)")
def shared_claims_rwx(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:
        return
    mounters: dict[str, list[tuple[Service, int]]] = {}
    for svc in dep.services:
        names = {m.pvc for m in svc.mounts if m.pvc}
        for name in names:
            mounters.setdefault(name, []).append((svc, svc.replicas * svc.node_count))
    for name, info in sorted(pvcs(recipe).items()):
        users = mounters.get(name, [])
        pods = sum(n for _, n in users)
        if pods <= 1 or not info.access_modes or "ReadWriteMany" in info.access_modes:
            continue
        if set(info.access_modes) == {"ReadOnlyMany"}:
            continue
        src = info.source() or at(dep.document, next((p.path for p in dep.pvcs if p.name == name), ()))
        who = ", ".join(f"{s.name} ({n} pod{'s' if n > 1 else ''})" for s, n in users)
        yield emit("RH312", recipe, src,
                   f"PVC {name!r} is {'/'.join(info.access_modes)} but {pods} pods of {dep.name} mount it: {who}")


# --------------------------------------------------------------------------- model location


def _job_location(c: Container, path: str) -> tuple[str, str] | None:
    """(claim, path inside it) of ``path`` in a Job container."""
    volumes = c.volumes
    best: tuple[int, str, str] | None = None
    for vm in c.spec.get("volumeMounts") or []:
        if not isinstance(vm, dict):
            continue
        mp = str(vm.get("mountPath", "")).rstrip("/") or "/"
        vol = volumes.get(str(vm.get("name")))
        claim = vol.get("persistentVolumeClaim", {}).get("claimName") if isinstance(vol, dict) else None
        if not claim:
            continue
        if path == mp or path.startswith(mp + "/") or mp == "/":
            rel = posixpath.normpath(posixpath.join(str(vm.get("subPath") or "."), posixpath.relpath(path, mp)))
            if best is None or len(mp) > best[0]:
                best = (len(mp), str(claim), rel)
    return (best[1], best[2]) if best else None


def _svc_location(svc: Service, path: str) -> tuple[str, str] | None:
    hit = pvc_mount_of(svc, path)
    return (hit[0], posixpath.normpath(hit[1])) if hit else None


def _fmt(loc: tuple[str, str] | None) -> str:
    return f"PVC {loc[0]}:/{loc[1].lstrip('./')}" if loc else "no PVC"


@rule("RH313", "storage",
      "Workers read the model where the model-download Job writes it: the same PVC and Hugging Face cache "
      "folder for a repo id, the Job's --local-dir for a local path.",
      "mount the model-cache PVC in the workers and give them the Job's HF_HOME (or load the path the Job's "
      "--local-dir writes)")
def model_where_downloaded(recipe: LoadedRecipe) -> Iterator[Finding]:
    dls = downloads(recipe)
    if not dls:
        return
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    reported: set[str] = set()
    for svc, cfg in workers(recipe):
        if not known(cfg) or cfg.backend == "mocker" or not cfg.model or svc.name in reported:
            continue
        src = cfg.sources.get("model") or service_at(dep, svc)
        env = service_env(svc)
        if is_repo_id(cfg.model):
            mine = [d for d in dls if d.repo == cfg.model]
            if not mine:
                continue  # a different checkpoint: reported by the model identity rules
            hub = hf_hub_dir(env)
            here = _svc_location(svc, hub)
            there_known = [loc for d in mine if d.local_dir is None
                           and (loc := _job_location(d.container, d.cache_dir or hf_hub_dir(d.env))) is not None]
            if here is not None and here in there_known:
                continue
            if not there_known:
                continue  # the Job writes outside any PVC: nothing to compare
            reported.add(svc.name)
            detail = f"its Hugging Face cache {hub} is on {_fmt(here)}"
            yield emit("RH313", recipe, src,
                       f"{svc.name} loads {cfg.model} but {detail}; {mine[0].container.doc.name} downloads it to "
                       f"{_fmt(there_known[0])}/{hub_folder(cfg.model)}")
        elif cfg.model.startswith("/"):
            here = _svc_location(svc, cfg.model)
            wrote = []
            for d in dls:
                if d.local_dir:
                    loc = _job_location(d.container, d.local_dir)
                    if loc:
                        wrote.append((loc, d))
                else:
                    job_hub = _job_location(d.container, d.cache_dir or hf_hub_dir(d.env))
                    if job_hub and here and here[0] == job_hub[0] and \
                            posixpath.normpath(here[1]).startswith(posixpath.join(job_hub[1], hub_folder(d.repo))):
                        wrote.append((here, d))
            if here is not None and any(loc == here for loc, _ in wrote):
                continue
            reported.add(svc.name)
            targets = ", ".join(sorted({_fmt(loc) for loc, _ in wrote})) or "only the Hugging Face cache"
            yield emit("RH313", recipe, src,
                       f"{svc.name} loads {cfg.model} ({_fmt(here)}) but no model-download Job writes there "
                       f"(they write: {targets})")
