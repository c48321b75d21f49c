"""Helpers shared by the semantic rules (RH3xx): positions, workers with their engines, PVCs."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TypeGuard

from recipe_harness.findings import Finding
from recipe_harness.load.manifests import Document, PathT
from recipe_harness.model import Deployment, Service
from recipe_harness.model.backends import BACKENDS, EngineConfig, Source, engine_config
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import make


def emit(rule_id: str, recipe: LoadedRecipe, src: Source, message: str) -> Finding:
    file, line, col = src
    return make(rule_id, file, line, col, message, recipe=recipe.id)


def at(doc: Document, path: PathT, *, key: bool = False) -> Source:
    line, col = doc.key_pos(path) if key else doc.pos(path)
    return (doc.file, line, col)


def service_at(dep: Deployment, svc: Service, *sub: str | int, key: bool = False) -> Source:
    """Position of ``sub`` below the service node (the service's key when ``sub`` is empty)."""
    if not sub:
        return at(dep.document, svc.path, key=True)
    return at(dep.document, svc.path + tuple(sub), key=key)


def workers(recipe: LoadedRecipe) -> list[tuple[Service, EngineConfig]]:
    """Services that run an inference engine, with their engine settings."""
    dep = recipe.deployment
    if dep is None:
        return []
    out = []
    for svc in dep.services:
        if svc.is_worker:
            out.append((svc, engine_config(recipe, svc)))
        elif svc.python_module in ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm", "dynamo.mocker"):
            out.append((svc, engine_config(recipe, svc)))
    return out


def known(cfg: EngineConfig) -> bool:
    return cfg.backend in BACKENDS


def effective_mode(svc: Service, cfg: EngineConfig) -> str:
    """prefill | decode | agg: the engine flag when known, else the DGD role."""
    if cfg.disaggregation_mode:
        return cfg.disaggregation_mode
    if svc.role in ("prefill", "decode") and not known(cfg):
        return svc.role
    return "agg"


# --------------------------------------------------------------------------- PVCs and paths


@dataclass
class PVCInfo:
    name: str
    doc: Document | None = None           # the PersistentVolumeClaim manifest, when the recipe has it
    access_modes: tuple[str, ...] = ()
    created_by_dgd: bool = False

    def source(self) -> Source | None:
        if self.doc is None:
            return None
        path: PathT = ("spec", "accessModes") if self.doc.get("spec", "accessModes") is not None else ()
        return at(self.doc, path)


def pvcs(recipe: LoadedRecipe) -> dict[str, PVCInfo]:
    """PVCs the recipe creates: PersistentVolumeClaim manifests and DGD ``pvcs`` with ``create: true``."""
    cache = recipe.__dict__.setdefault("_rules_cache", {})
    if "pvcs" in cache:
        return cache["pvcs"]
    out: dict[str, PVCInfo] = {}
    for doc in recipe.documents():
        if doc.kind == "PersistentVolumeClaim" and isinstance(doc.name, str):
            modes = doc.get("spec", "accessModes")
            out.setdefault(doc.name, PVCInfo(doc.name, doc, tuple(str(m) for m in modes) if isinstance(modes, list) else ()))
    dep = recipe.deployment
    if dep is not None:
        for p in dep.pvcs:
            if p.create:
                info = out.setdefault(p.name, PVCInfo(p.name))
                info.created_by_dgd = True
                if p.access_mode and not info.access_modes:
                    info.access_modes = (p.access_mode,)
    cache["pvcs"] = out
    return out


def pvc_mount_of(svc: Service, path: str) -> tuple[str, str] | None:
    """(PVC name, path inside the PVC) of an absolute container ``path``, when a PVC is mounted above it."""
    best: tuple[int, str, str] | None = None
    for m in svc.mounts:
        if not m.pvc:
            continue
        mp = m.mount_path.rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/") or mp == "/":
            rel = posixpath.relpath(path, mp) if path != mp else "."
            if best is None or len(mp) > best[0]:
                best = (len(mp), m.pvc, rel)
    return (best[1], best[2]) if best else None


def hf_hub_dir(env: dict[str, str], home: str = "/root") -> str:
    """Where huggingface_hub keeps repositories: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return env[name].rstrip("/")
    if env.get("HF_HOME"):
        return env["HF_HOME"].rstrip("/") + "/hub"
    return f"{home}/.cache/huggingface/hub"


_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_repo_id(text: str | None) -> TypeGuard[str]:
    """``org/name`` as on the Hugging Face hub (not an absolute or relative path)."""
    return bool(text and not text.startswith((".", "/", "~")) and _REPO.match(text))


def hub_folder(repo: str) -> str:
    """The hub cache folder of a repo: ``models--org--name``."""
    return "models--" + repo.replace("/", "--")
