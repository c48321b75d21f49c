"""Changed-only selection: the recipes whose files changed since a git REF, and why.

``--changed-since REF`` compares the merge base of REF and ``HEAD`` with the work tree: committed,
staged and unstaged changes and untracked files (``.gitignore`` respected), like chart-testing's
``ct lint`` on a pull request. A changed file selects

- the recipe it belongs to (a file of the recipe's folder, its deploy file, perf manifest,
  thresholds, kustomization, suppressions, README);
- every recipe of a folder it is shared at: a model-level file (``model-cache/``, the model
  README, a model-level ``perf/``) selects every recipe of the model, a backend-level README every
  recipe below that folder;
- every recipe that uses it from elsewhere: a kustomization's ``resources``/``components``/
  ``patches``/generator files (followed through nested kustomizations), or a ConfigMap that a
  recipe references by name (``configMapRef``, ``configMapKeyRef``, a ``configMap`` volume).

A recipe deleted since REF is reported, not an error. Not a git repository, an unknown REF or no
merge base: :class:`ChangedSinceError` (a usage error, exit 2).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.load.discovery import KUSTOMIZATION_NAMES, MODEL_CACHE_DIRS, Recipe
from recipe_harness.load.manifests import loads, mentions_dgd

GIT_TIMEOUT_S = 60.0
"""Time limit of each git command (a diff of a large tree takes well under a second)."""

YAML_SUFFIXES = (".yaml", ".yml")
_CONFIGMAP_KEYS = ("configMap", "configMapRef", "configMapKeyRef")
_KUSTOMIZE_FILE_KEYS = ("resources", "bases", "components", "patchesStrategicMerge", "crds", "configurations")


class ChangedSinceError(Exception):
    """``--changed-since`` cannot be answered: not a git work tree, unknown REF, no merge base."""


@dataclass(frozen=True)
class Change:
    path: Path          # absolute
    status: str         # A added, M modified, D deleted, T type change, ? untracked


@dataclass
class Selection:
    """What ``--changed-since REF`` selected, and why."""

    ref: str
    base: str                                                    # merge-base commit
    changes: list[Change] = field(default_factory=list)          # below the recipes root
    reasons: dict[str, list[str]] = field(default_factory=dict)  # recipe id -> why it is selected
    deleted: list[str] = field(default_factory=list)             # recipe ids deleted since REF
    unused: list[Path] = field(default_factory=list)             # changed files no recipe uses

    @property
    def ids(self) -> list[str]:
        return sorted(self.reasons)

    def describe(self, root: Path) -> list[str]:
        """Lines saying what was selected and why (paths relative to the working directory)."""
        out = [f"changed since {self.ref} (merge base {self.base[:12]}): {len(self.changes)} files under "
               f"{_show(root)}, {len(self.reasons)} recipes selected"]
        for rid in self.ids:
            out.append(f"  {rid}: " + "; ".join(self.reasons[rid]))
        out.extend(f"  {rid}: deleted since {self.ref}, nothing to check" for rid in self.deleted)
        out.extend(f"  {_show(p)}: part of no selected recipe" for p in self.unused)
        return out

    def to_dict(self, root: Path) -> dict:
        return {"ref": self.ref, "base": self.base,
                "files": [{"path": _show(c.path), "status": c.status} for c in self.changes],
                "selected": {rid: self.reasons[rid] for rid in self.ids},
                "deleted": list(self.deleted), "unused": [_show(p) for p in self.unused]}


def _show(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- git


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except FileNotFoundError:
        raise ChangedSinceError("--changed-since needs git on PATH") from None
    except subprocess.TimeoutExpired:
        raise ChangedSinceError(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S:.0f} s in {cwd}") from None
    if check and proc.returncode != 0:
        raise ChangedSinceError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc


def git_changes(root: Path, ref: str) -> tuple[str, list[Change]]:
    """(merge base of ``ref`` and HEAD, changed files below ``root`` from it to the work tree)."""
    root = root.resolve()
    if not root.is_dir():
        raise ChangedSinceError(f"recipes root {root} is not a folder")
    top = _git(root, "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise ChangedSinceError(f"--changed-since {ref}: {root} is not in a git work tree; run it in a clone of the "
                                "recipes repository, or drop --changed-since to check everything")
    toplevel = Path(top.stdout.strip()).resolve()
    known = _git(toplevel, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if known.returncode != 0:
        raise ChangedSinceError(f"--changed-since {ref}: no such commit, branch or tag in {toplevel}; give one "
                                "that exists (in CI: fetch it, e.g. actions/checkout with fetch-depth: 0, or "
                                "git fetch origin main)")
    merge = _git(toplevel, "merge-base", known.stdout.strip(), "HEAD", check=False)
    if merge.returncode != 0:
        raise ChangedSinceError(f"--changed-since {ref}: {ref} and HEAD have no common commit in {toplevel} (a "
                                "shallow clone?); fetch more history (fetch-depth: 0) or pass a commit of HEAD's history")
    base = merge.stdout.strip()
    spec = root.relative_to(toplevel).as_posix() if root != toplevel else "."
    changes: dict[Path, Change] = {}
    diff = _git(toplevel, "diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", base, "--", spec)
    parts = diff.stdout.split("\0")
    for i in range(0, len(parts) - 1, 2):
        status, rel = parts[i], parts[i + 1]
        path = toplevel / rel
        changes[path] = Change(path, status[:1])
    others = _git(toplevel, "ls-files", "--others", "--exclude-standard", "-z", "--", spec)
    for rel in others.stdout.split("\0"):
        if rel:
            path = toplevel / rel
            changes.setdefault(path, Change(path, "?"))
    return base, [changes[p] for p in sorted(changes)]


def _old_text(root: Path, base: str, path: Path) -> str:
    """The file's text at ``base`` (for deleted files), or "" when git cannot show it."""
    top = Path(_git(root, "rev-parse", "--show-toplevel").stdout.strip()).resolve()
    proc = _git(top, "show", f"{base}:{path.relative_to(top).as_posix()}", check=False)
    return proc.stdout if proc.returncode == 0 else ""


# --------------------------------------------------------------------------- what uses a file


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _kustomize_deps(kustomization: Path, seen: set[Path] | None = None) -> set[Path]:
    """Files and folders a kustomization reads (local paths only; remote bases are skipped)."""
    seen = set() if seen is None else seen
    if kustomization in seen:
        return set()
    seen.add(kustomization)
    try:
        result = loads(kustomization.read_text(encoding="utf-8", errors="replace"), str(kustomization))
    except OSError:
        return set()
    refs: list[str] = []
    for doc in result.documents:
        body = doc.body if isinstance(doc.body, dict) else {}
        for key in _KUSTOMIZE_FILE_KEYS:
            refs += [r for r in body.get(key) or [] if isinstance(r, str)]
        for key in ("patches", "patchesJson6902"):
            refs += [e["path"] for e in body.get(key) or [] if isinstance(e, dict) and isinstance(e.get("path"), str)]
        for key in ("configMapGenerator", "secretGenerator"):
            for gen in body.get(key) or []:
                if isinstance(gen, dict):
                    for sub in ("files", "envs"):
                        refs += [f.rpartition("=")[2] for f in gen.get(sub) or [] if isinstance(f, str)]
                    if isinstance(gen.get("env"), str):
                        refs.append(gen["env"])
    out: set[Path] = set()
    for ref in refs:
        if "://" in ref or ref.startswith(("github.com/", "git@")) or "\n" in ref:
            continue
        target = Path(os.path.normpath(kustomization.parent / ref))
        out.add(target)
        if target.is_dir():
            for name in KUSTOMIZATION_NAMES:
                if (target / name).is_file():
                    out |= _kustomize_deps(target / name, seen)
    return out


def _configmap_refs(node: object, out: set[str]) -> set[str]:
    """Names of ConfigMaps a manifest refers to (envFrom, valueFrom, volumes, projected sources)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CONFIGMAP_KEYS and isinstance(value, dict) and isinstance(value.get("name"), str):
                out.add(value["name"])
            _configmap_refs(value, out)
    elif isinstance(node, list):
        for item in node:
            _configmap_refs(item, out)
    return out


def _configmaps_defined(text: str, file: str) -> set[str]:
    if "ConfigMap" not in text:
        return set()
    return {d.name for d in loads(text, file).documents if d.kind == "ConfigMap" and isinstance(d.name, str)}


@dataclass
class _Index:
    """The recipes of a tree by folder and by model folder."""

    root: Path
    recipes: list[Recipe]
    dirs: dict[Path, list[Recipe]] = field(default_factory=dict)
    models: dict[Path, list[Recipe]] = field(default_factory=dict)
    _kustom: dict[str, set[Path]] | None = None

    def __post_init__(self) -> None:
        for r in self.recipes:
            self.dirs.setdefault(r.dir.absolute(), []).append(r)
            self.models.setdefault(r.model_dir.absolute(), []).append(r)

    def kustomize_deps(self) -> dict[str, set[Path]]:
        if self._kustom is None:
            self._kustom = {r.id: _kustomize_deps(r.kustomization.absolute()) for r in self.recipes if r.kustomization}
        return self._kustom

    def owners(self, path: Path) -> tuple[list[Recipe], str]:
        """Recipes a file belongs to (its recipe folder's, or the folder it is shared at), and why."""
        for folder in [path.parent, *path.parent.parents]:
            if folder in self.dirs:  # the deepest recipe folder holding the file
                return list(self.dirs[folder]), "a file of the recipe:"
            if folder in self.models or folder == self.root or folder == folder.parent:
                break
        model_dir = next((m for m in [path.parent, *path.parent.parents] if m in self.models), None)
        if model_dir is None:
            return [], ""
        scope = path.parent  # shared within the model: the nearest folder above it holding recipes
        while True:
            below = [r for r in self.models[model_dir] if _inside(r.dir.absolute(), scope)]
            if below:
                if scope == model_dir:
                    cache = any(part in MODEL_CACHE_DIRS for part in path.relative_to(model_dir).parts[:-1])
                    return below, f"{'model-cache' if cache else 'model-level'} file of {model_dir.name}:"
                return below, f"shared file of {_show(scope)}/:"
            if scope == model_dir:
                return [], ""
            scope = scope.parent


@dataclass(frozen=True)
class Scope:
    """The changes since REF and the model folders whose recipes they can select."""

    base: str
    changes: list[Change]
    models: list[str]


def scope(root: Path, ref: str) -> Scope:
    """Changes since ``ref`` and the top-level folders of ``root`` to discover: those the changes are in,
    those whose kustomizations read a changed file, those that name a ConfigMap a changed file defines
    (found with ``git ls-files``/``git grep``, so a large tree is not walked)."""
    base, changes = git_changes(root, ref)
    real_root = root.resolve()
    models: set[str] = set()
    for c in changes:
        parts = c.path.relative_to(real_root).parts
        if len(parts) > 1:
            models.add(parts[0])
    if changes:
        top = Path(_git(real_root, "rev-parse", "--show-toplevel").stdout.strip()).resolve()
        spec = real_root.relative_to(top).as_posix() if real_root != top else "."
        listed = _git(top, "ls-files", "-co", "--exclude-standard", "-z", "--",
                      *(f":(glob){spec}/**/{n}" if spec != "." else f":(glob)**/{n}" for n in KUSTOMIZATION_NAMES))
        changed = [c.path for c in changes]
        for rel in filter(None, listed.stdout.split("\0")):
            kfile = top / rel
            parts = kfile.relative_to(real_root).parts
            if len(parts) > 1 and parts[0] not in models:
                deps = _kustomize_deps(kfile)
                if any(_inside(p, d) for p in changed for d in deps):
                    models.add(parts[0])
        names: set[str] = set()
        for c in changes:
            if c.path.suffix in YAML_SUFFIXES:
                text = _old_text(root, base, c.path) if c.status == "D" else _read(c.path)
                names |= _configmaps_defined(text, str(c.path))
        if names:
            args = [a for n in sorted(names) for a in ("-e", n)]
            found = _git(top, "grep", "-l", "-z", "-w", "--untracked", "-F", *args, "--", spec, check=False)
            for rel in filter(None, found.stdout.split("\0")):
                parts = (top / rel).relative_to(real_root).parts
                if len(parts) > 1:
                    models.add(parts[0])
    return Scope(base, changes, sorted(models))


def select(root: Path, recipes: list[Recipe], ref: str, found: Scope | None = None) -> Selection:
    """The recipes of ``recipes`` (all of ``root``'s, or those of ``found.models``) that changes since
    ``ref`` touch, with the reasons."""
    root_abs = root.absolute()
    found = found or scope(root, ref)
    base, changes = found.base, found.changes
    real_root = root.resolve()  # git reports real paths; the recipes carry paths below the root as given
    changes = [Change(root_abs / c.path.relative_to(real_root), c.status) for c in changes]
    sel = Selection(ref=ref, base=base, changes=changes)
    index = _Index(root_abs, recipes)

    def add(recipe: Recipe, why: str) -> None:
        reasons = sel.reasons.setdefault(recipe.id, [])
        if why not in reasons:
            reasons.append(why)

    # recipes deleted since REF: a deleted DGD file whose folder holds no recipe now
    old_text: dict[Path, str] = {}
    deleted_dirs: set[Path] = set()
    for change in changes:
        if change.status == "D" and change.path.suffix in YAML_SUFFIXES:
            old_text[change.path] = text = _old_text(root, base, change.path)
            if "DynamoGraphDeployment" in text and not _holds_dgd(change.path.parent) \
                    and not any(m.name in MODEL_CACHE_DIRS for m in change.path.parents):
                sel.deleted.append(_deleted_id(root_abs, change.path))
                deleted_dirs.add(change.path.parent)

    for change in changes:
        path, used = change.path, False
        if any(_inside(path, d) for d in deleted_dirs):
            continue  # a file of a deleted recipe
        owners, why = index.owners(path)
        for r in owners:
            add(r, f"{why} {_show(path)} {_verb(change.status)}")
            used = True
        for rid, deps in index.kustomize_deps().items():  # kustomizations that read it, nested ones too
            if any(_inside(path, d) for d in deps):
                for r in index.recipes:
                    if r.id == rid:
                        add(r, f"its kustomization uses {_show(path)}, {_verb(change.status)}")
                used = True
        if path.suffix in YAML_SUFFIXES:  # ConfigMaps it defines (or defined) that recipes refer to by name
            text = old_text[path] if path in old_text else _read(path)
            names = _configmaps_defined(text, str(path))
            for r in _configmap_users(index.recipes, names, exclude=path) if names else []:
                add(r, f"uses ConfigMap {', '.join(sorted(names & _refs_of(r)))} of {_show(path)}, "
                       f"{_verb(change.status)}")
                used = True
        if not used:
            sel.unused.append(path)
    return sel


def _verb(status: str) -> str:
    return {"A": "added", "D": "deleted", "?": "added, untracked", "T": "type changed"}.get(status, "changed")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _refs_of(recipe: Recipe) -> set[str]:
    names: set[str] = set()
    for f in (recipe.deploy_file, *recipe.extra_files, *recipe.perf_files):
        for doc in loads(_read(f), str(f)).documents:
            _configmap_refs(doc.body, names)
    return names


def _configmap_users(recipes: list[Recipe], names: set[str], exclude: Path) -> list[Recipe]:
    pattern = re.compile("|".join(rf"\b{re.escape(n)}\b" for n in sorted(names)))
    out = []
    for r in recipes:
        files = (r.deploy_file, *r.extra_files, *r.perf_files)
        if any(f.absolute() == exclude for f in files):
            continue  # the recipe's own ConfigMap: selected as its file already
        if any(pattern.search(_read(f)) for f in files) and names & _refs_of(r):
            out.append(r)
    return out


def _holds_dgd(folder: Path) -> bool:
    """Does the folder (still) hold a DGD file? (The recipe of a deleted file may be filtered out, not gone.)"""
    try:
        return any(p.suffix in YAML_SUFFIXES and p.is_file() and mentions_dgd(p) for p in folder.iterdir())
    except OSError:
        return False


def _deleted_id(root: Path, path: Path) -> str:
    rel = path.parent.relative_to(root)
    return rel.as_posix() if path.stem == "deploy" else (rel / path.stem).as_posix()


def owners_of(root: Path, recipes: list[Recipe], path: Path) -> tuple[list[Recipe], str]:
    """The recipes a file of the tree belongs to, and why (as for a change of it): its recipe folder's,
    the folder's where it is shared (model-level, backend-level), the kustomizations that read it."""
    index = _Index(root.absolute(), recipes)
    path = path.absolute()
    found, why = index.owners(path)
    out = {r.id: r for r in found}
    for rid, deps in index.kustomize_deps().items():
        if any(_inside(path, d) for d in deps):
            out.update({r.id: r for r in recipes if r.id == rid})
            why = why or "read by its kustomization:"
    return list(out.values()), why
