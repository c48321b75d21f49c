"""Find recipes in a recipes tree.

A recipe is one ``DynamoGraphDeployment`` manifest file plus what belongs to it: the model
folder's model-cache manifests (``model-cache/`` or ``model_cache/``), its perf manifest
(``perf.yaml`` beside it, or a model-level ``perf/`` folder), its ``thresholds.yaml`` and the
READMEs from the recipe folder up to the model folder. Works on the seed layout
``<model>/<backend>/<mode>/deploy.yaml``, on nested modes (``deepseek-r1/trtllm/disagg/wide_ep/gb200``)
and on trees with several DGD files in one folder (each its own recipe, the id gets the file stem).
``*.template.yaml`` files (copy-and-fill templates with placeholders) are not recipes.

A ``${VAR}`` template whose variables are all declared (env file, matrix file, README table:
:mod:`recipe_harness.load.render.envsubst`) is checked through its renderings (one per matrix
combination, ids ``<recipe>/<values>``); with undeclared variables it is checked as it is and each
placeholder is reported once (RH208).

Kustomize (:mod:`recipe_harness.load.render.kustomize`): files of a ``kind: Component`` folder and the
patches kustomizations apply are never recipes; every overlay is rendered with ``kubectl kustomize``.
An overlay with committed rendered output (``deploy-<variant>.yaml``) is checked through that file,
which must equal a fresh rendering (RH014); an overlay without one is checked from its rendering as a
recipe variant whose id is the overlay's path; an overlay that does not render is RH015.

Symlinks are never followed outside the root; they are reported.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.manifests import load_file, mentions_dgd
from recipe_harness.load.render import envsubst, kustomize

RULE_SYMLINK = "RH010"
RULE_NO_RECIPES = "RH011"
RULE_ROOT = "RH012"
RULE_NOT_A_RECIPE = "RH013"
RULE_RENDER_STALE = "RH014"
RULE_RENDER_FAILED = "RH015"

YAML_SUFFIXES = (".yaml", ".yml")
MODEL_CACHE_DIRS = ("model-cache", "model_cache")
PERF_DIRS = ("perf",)
DEPLOY_STEMS = ("deploy",)
TEMPLATE_SUFFIX = ".template"
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv"}
THRESHOLDS_NAMES = ("thresholds.yaml", "thresholds.yml")
SUPPRESSIONS_NAME = ".recipe-harness.yaml"


@dataclass(frozen=True)
class Recipe:
    """One recipe: a DGD manifest and the files that belong to it."""

    id: str
    root: Path
    deploy_file: Path
    model: str
    model_dir: Path
    model_cache_files: tuple[Path, ...] = ()
    perf_files: tuple[Path, ...] = ()
    readmes: tuple[Path, ...] = ()
    thresholds_file: Path | None = None
    kustomization: Path | None = None
    suppressions_file: Path | None = None
    extra_files: tuple[Path, ...] = ()  # other manifests of the recipe folder (ConfigMaps ...)
    rendered_from: Path | None = None   # the template file or kustomize overlay deploy_file was rendered from

    @property
    def origin(self) -> Path:
        """The source in the tree: the deploy file, or the template or overlay it was rendered from."""
        return self.rendered_from or self.deploy_file

    @property
    def dir(self) -> Path:
        return self.deploy_file.parent

    @property
    def backend(self) -> str:
        parts = self.id.split("/")
        return parts[1] if len(parts) > 2 else ""

    @property
    def mode(self) -> str:
        parts = self.id.split("/")
        return "/".join(parts[2:]) if len(parts) > 2 else (parts[1] if len(parts) > 1 else "")

    @property
    def files(self) -> tuple[Path, ...]:
        """Every manifest of the recipe (DGD first)."""
        return (self.deploy_file, *self.extra_files, *self.model_cache_files, *self.perf_files)


@dataclass
class Discovery:
    root: Path
    recipes: list[Recipe] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _yaml_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
    except OSError:
        return []


def _walk(root: Path, findings: list[Finding], start: list[Path] | None = None) -> list[Path]:
    """All YAML files under ``root``; symlinks leaving the root (or looping) are reported, not followed."""
    real_root = root.resolve()
    out: list[Path] = []
    stack = [root] if start is None else [p for p in start if p.is_dir() and not p.is_symlink()]
    seen_dirs: set[Path] = set()
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            findings.append(Finding(str(folder), 0, 0, RULE_ROOT, f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    findings.append(Finding(str(path), 0, 0, RULE_SYMLINK,
                                            "broken or looping symlink, not followed",
                                            hint="remove the link or point it at a file inside the recipes tree"))
                    continue
                if not target.is_relative_to(real_root):
                    findings.append(Finding(str(path), 0, 0, RULE_SYMLINK,
                                            f"symlink leaves the recipes root (-> {target}), not followed",
                                            hint="copy the file into the recipes tree instead of linking outside it"))
                    continue
                if target.is_dir():
                    if target in seen_dirs:
                        continue
                    seen_dirs.add(target)
                    stack.append(path)
                elif path.suffix in YAML_SUFFIXES:
                    out.append(path)
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name in SKIP_DIRS or entry.name.startswith("."):
                    continue
                real = path.resolve()
                if real in seen_dirs:
                    continue
                seen_dirs.add(real)
                stack.append(path)
            elif entry.is_file(follow_symlinks=False) and path.suffix in YAML_SUFFIXES:
                out.append(path)
    return sorted(out)


def _model_cache_files(model_dir: Path) -> tuple[Path, ...]:
    files: list[Path] = []
    for name in MODEL_CACHE_DIRS:
        files.extend(_yaml_files(model_dir / name))
    return tuple(files)


def _perf_files(recipe_dir: Path, stem: str, model_dir: Path, root: Path, single: bool) -> tuple[Path, ...]:
    candidates = [recipe_dir / f"perf{s}" for s in YAML_SUFFIXES]
    if not single:
        candidates = [recipe_dir / f"perf-{stem}{s}" for s in YAML_SUFFIXES] + [recipe_dir / f"{stem}-perf{s}" for s in YAML_SUFFIXES] + candidates
    for c in candidates:
        if c.is_file() and c.resolve().is_relative_to(root.resolve()):
            return (c,)
    # a perf/ folder in the recipe folder or any ancestor up to the model folder
    folder = recipe_dir
    while True:
        for name in PERF_DIRS:
            found = _yaml_files(folder / name)
            if found:
                return tuple(found)
        if folder == model_dir or folder == folder.parent:
            break
        folder = folder.parent
    return ()


def _upwards(recipe_dir: Path, model_dir: Path, names: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    folder = recipe_dir
    while True:
        for n in names:
            if (folder / n).is_file():
                out.append(folder / n)
        if folder == model_dir or folder == folder.parent:
            break
        folder = folder.parent
    return out


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml")
RENDER_INPUTS = (".envsubst-matrix.yaml", ".kustomize-matrix.yaml")  # inputs of rendering, not manifests


def _kustomize_patches(kustomizations) -> set[Path]:
    """Files that kustomizations apply as patches: partial DGDs, not recipes of their own."""
    out: set[Path] = set()
    for k in kustomizations:
        for doc in load_file(k).documents:
            body = doc.body if isinstance(doc.body, dict) else {}
            refs = [e.get("path") if isinstance(e, dict) else None
                    for key in ("patches", "patchesJson6902") for e in body.get(key) or []]
            refs += [e for e in body.get("patchesStrategicMerge") or [] if isinstance(e, str)]
            out.update(Path(os.path.normpath(k.parent / r)) for r in refs if isinstance(r, str) and "\n" not in r)
    return out


def _is_template(path: Path) -> bool:
    """``deploy.template.yaml``: a file to copy and fill in, not one to apply."""
    return path.stem.endswith(TEMPLATE_SUFFIX)


def _is_model_cache(path: Path, root: Path) -> bool:
    return any(part in MODEL_CACHE_DIRS for part in path.relative_to(root).parts[:-1])


def discover(root: str | os.PathLike[str], patterns: list[str] | tuple[str, ...] = (), *,
             render: bool = True, within: list[str] | None = None) -> Discovery:
    """Find every recipe under ``root``; ``patterns`` are globs on recipe ids (any may match).

    ``render=False`` leaves kustomize overlays unrendered (no ``kubectl`` runs, no RH014/RH015).
    ``within``: only these top-level folders (model folders) of the root are walked, for
    ``--changed-since`` on large trees (:func:`.changed.scope` says which)."""
    root_path = Path(root)
    result = Discovery(root_path)
    if not root_path.is_dir():
        result.findings.append(Finding(str(root_path), 0, 0, RULE_ROOT,
                                       "recipes root is not a folder",
                                       hint="pass --recipes-root DIR pointing at the folder that holds <model>/ folders"))
        return result
    yaml_files = _walk(root_path, result.findings, None if within is None else [root_path / m for m in within])
    patches = _kustomize_patches(p for p in yaml_files if p.name in KUSTOMIZATION_NAMES)
    ktree = kustomize.Tree.scan(yaml_files)
    component_dirs = ktree.component_dirs()
    patches |= {p for p in yaml_files if p.parent in component_dirs}  # a Component's files are never recipes
    # a kustomization is never a recipe, even one whose patches target kind: DynamoGraphDeployment
    candidates = [p for p in yaml_files if not _is_model_cache(p, root_path) and p not in patches and not _is_template(p)
                  and p.name not in KUSTOMIZATION_NAMES]
    dgd_files = [p for p in candidates if mentions_dgd(p)]
    for p in candidates:
        if p.stem in DEPLOY_STEMS and p not in dgd_files:
            result.findings.append(Finding(
                str(p), 1, 1, RULE_NOT_A_RECIPE, "holds no DynamoGraphDeployment: not checked as a recipe",
                severity=Severity.INFO,
                hint="a recipe's deploy.yaml holds a DynamoGraphDeployment; other workloads are not checked"))
    by_dir: dict[Path, list[Path]] = {}
    for p in dgd_files:
        by_dir.setdefault(p.parent, []).append(p)
    not_extra = {*THRESHOLDS_NAMES, SUPPRESSIONS_NAME, *KUSTOMIZATION_NAMES, *RENDER_INPUTS}
    for folder, files in sorted(by_dir.items()):
        rel_dir = folder.relative_to(root_path)
        single = len(files) == 1 and files[0].stem in DEPLOY_STEMS
        model = rel_dir.parts[0] if rel_dir.parts else files[0].stem
        model_dir = root_path / model if rel_dir.parts else root_path
        for file in files:
            rid = rel_dir.as_posix() if single else (rel_dir / file.stem).as_posix().lstrip("./")
            if rid in ("", "."):
                rid = file.stem
            thresholds = next((folder / n for n in THRESHOLDS_NAMES if (folder / n).is_file()), None)
            kustom = next((folder / n for n in (*KUSTOMIZATION_NAMES, "Kustomization") if (folder / n).is_file()), None)
            perf = _perf_files(folder, file.stem, model_dir, root_path, single)
            extra = tuple(p for p in _yaml_files(folder)
                          if p not in files and p not in perf and p.name not in not_extra and not _is_template(p)
                          and not p.name.startswith(("perf", "thresholds")))
            supp = _upwards(folder, model_dir, (SUPPRESSIONS_NAME,))
            readmes = list(reversed(_upwards(folder, model_dir, ("README.md", "README.rst", "README"))))
            rendered = envsubst.render_declared(root_path, file, folder, model_dir) if render else []
            for slug, out in rendered:  # a ${VAR} template whose variables are declared: its renderings
                result.recipes.append(Recipe(
                    id=f"{rid}/{slug}" if slug else rid, root=root_path, deploy_file=out, model=model,
                    model_dir=model_dir, model_cache_files=_model_cache_files(model_dir), perf_files=perf,
                    extra_files=extra, readmes=tuple(readmes), thresholds_file=thresholds, kustomization=kustom,
                    suppressions_file=supp[0] if supp else None, rendered_from=file))
            if rendered:
                continue
            recipe = Recipe(
                id=rid,
                root=root_path,
                deploy_file=file,
                model=model,
                model_dir=model_dir,
                model_cache_files=_model_cache_files(model_dir),
                perf_files=perf,
                extra_files=extra,
                readmes=tuple(readmes),
                thresholds_file=thresholds,
                kustomization=kustom,
                suppressions_file=supp[0] if supp else None,
            )
            result.recipes.append(recipe)
    if render:
        _overlays(root_path, ktree, yaml_files, patches, result)
    result.recipes.sort(key=lambda r: r.id)
    if patterns:
        result.recipes = [r for r in result.recipes if any(_match(r.id, pat) for pat in patterns)]
    return result


def _match(recipe_id: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    return fnmatch.fnmatchcase(recipe_id, pattern) or recipe_id.startswith(pattern + "/") or recipe_id == pattern


def _overlays(root: Path, ktree, yaml_files: list[Path], excluded: set[Path], result: Discovery) -> None:
    """Render every kustomize overlay: check committed output is current, add the others as recipe variants."""
    for k in ktree.overlays():
        overlay = k.dir
        rendered = kustomize.render(overlay)
        rel = overlay.relative_to(root).as_posix()
        if not rendered.ok:
            result.findings.append(Finding(
                str(k.file), 1, 1, RULE_RENDER_FAILED, f"kustomize overlay {rel} does not render: {rendered.error}",
                hint="run `kubectl kustomize " + rel + "` and fix what it reports (paths of resources, "
                     "components and patches)"))
            continue
        recipe_dir = kustomize.recipe_dir_of(overlay)
        candidates = [p for p in yaml_files if p.parent == recipe_dir and p not in excluded]
        committed = kustomize.committed_output(overlay, root, candidates)
        if committed is not None:
            diff = kustomize.compare(rendered.text, committed)
            if diff is not None:
                result.findings.append(Finding(
                    str(committed), 1, 1, RULE_RENDER_STALE,
                    f"{committed.name} is out of date with kustomize overlay {rel}: {diff}",
                    hint=f"regenerate it: kubectl kustomize {rel} > {committed.relative_to(root).as_posix()} "
                         "(keep its header comment), and commit both"))
            continue
        if "DynamoGraphDeployment" not in rendered.text:
            continue
        deploy = kustomize.write_variant(root, overlay, rendered)
        model = rel.split("/", 1)[0]
        model_dir = root / model
        folder = recipe_dir if recipe_dir.is_relative_to(root) else overlay
        thresholds = next((folder / n for n in THRESHOLDS_NAMES if (folder / n).is_file()), None)
        supp = _upwards(folder, model_dir, (SUPPRESSIONS_NAME,))
        result.recipes.append(Recipe(
            id=rel,
            root=root,
            deploy_file=deploy,
            model=model,
            model_dir=model_dir,
            model_cache_files=_model_cache_files(model_dir),
            perf_files=_perf_files(folder, "deploy", model_dir, root, True),
            readmes=tuple(reversed(_upwards(folder, model_dir, ("README.md", "README.rst", "README")))),
            thresholds_file=thresholds,
            kustomization=k.file,
            suppressions_file=supp[0] if supp else None,
            rendered_from=overlay,
        ))
