"""``${VAR}`` templates: manifests meant to go through ``envsubst`` before ``kubectl apply``.

A template variable is ``${NAME}`` (or ``${NAME:-default}``) in a manifest value that Kubernetes or the
harness reads as it is: an image, a node selector, a name, a count. The same text inside a container's
``command``/``args`` or a ConfigMap's data is a shell expansion at run time and is left alone (so are
YAML comments). Unbraced ``$NAME`` is not taken for one: kubectl users write ``${NAME}`` for envsubst.

Variables are *declared* by, from the recipe folder up to the model folder:

* an env file (``*.env``, ``.env``): ``NAME=value`` lines, ``export`` allowed, ``#`` comments;
* a matrix file (``.envsubst-matrix.yaml``): ``matrix: {NAME: [value, ...]}``, every combination a variant;
* a README: a table with a ``Variable`` (or ``Name``) column and a ``Value`` (or ``Default``/``Example``)
  column, or ``export NAME=value`` lines in its code blocks.

A file whose variables are all declared is rendered (textual substitution, as envsubst does; values never
span lines, so line numbers stay those of the template) and checked as the recipe; otherwise each
placeholder is reported once, at its line, as a template variable (RH208) and not as a type error of the
field it fills.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_harness.load.render.kustomize import cache_dir

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
MATRIX_NAME = ".envsubst-matrix.yaml"
MAX_VARIANTS = 16
_SCRIPT_KEYS = {"command", "args"}          # container fields a shell reads at run time
_SCRIPT_KINDS = {"ConfigMap", "Secret"}     # data a program reads at run time
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_README_EXPORT = re.compile(r"^\s*(?:\$\s*)?export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)")


@dataclass(frozen=True)
class Placeholder:
    name: str
    path: tuple
    default: str | None = None


def placeholders(body: Any, kind: str | None = None) -> list[Placeholder]:
    """Template variables in a document's values (not in commands, args or ConfigMap data), in document order."""
    if kind in _SCRIPT_KINDS:
        return []
    out: list[Placeholder] = []

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in _SCRIPT_KEYS and isinstance(v, list):
                    continue
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))
        elif isinstance(node, str):
            for m in VAR_RE.finditer(node):
                out.append(Placeholder(m.group(1), path, m.group(2)))

    walk(body, ())
    return out


def names_in_text(text: str) -> list[str]:
    """Variables a template file uses outside comment lines, in order of first use."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in VAR_RE.finditer(line):
            if m.group(2) is None:
                seen.setdefault(m.group(1), None)
    return list(seen)


def has_template_text(text: str) -> bool:
    return any(not ln.lstrip().startswith("#") and VAR_RE.search(ln) for ln in text.splitlines())


@dataclass
class Declarations:
    """Values declared for template variables; several values of one variable come from a matrix."""

    values: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str, source: str) -> None:
        if name not in self.values:  # the innermost declaration wins
            self.values[name] = [value]
            self.sources[name] = source

    def combinations(self, names: list[str]) -> Iterator[dict[str, str]]:
        """Every assignment of the given (declared) names, at most :data:`MAX_VARIANTS`."""
        lists = [self.values[n] for n in names]
        for combo in itertools.islice(itertools.product(*lists), MAX_VARIANTS):
            yield dict(zip(names, combo))


def _env_file(path: Path, into: Declarations) -> None:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            into.add(m.group(1), value, path.name)


def _matrix_file(path: Path, into: Declarations) -> None:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError:
        return
    matrix = body.get("matrix") if isinstance(body, dict) else None
    if not isinstance(matrix, dict):
        return
    for name, values in matrix.items():
        if isinstance(name, str) and name not in into.values:
            vals = [str(v) for v in (values if isinstance(values, list) else [values]) if v is not None]
            if vals:
                into.values[name] = vals
                into.sources[name] = path.name


def _readme(path: Path, into: Declarations) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _README_EXPORT.match(line)
        if m:
            into.add(m.group(1), m.group(2).strip("'\""), path.name)
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        lowered = [c.lower() for c in cells]
        name_col = next((j for j, c in enumerate(lowered) if c in ("variable", "name", "env var", "variable name")), None)
        value_col = next((j for j, c in enumerate(lowered) if c in ("value", "default", "example")), None)
        if name_col is None or value_col is None:
            continue
        for row in lines[i + 2:]:
            if not row.lstrip().startswith("|"):
                break
            rc = [c.strip() for c in row.strip().strip("|").split("|")]
            if len(rc) <= max(name_col, value_col):
                continue
            name = rc[name_col].strip("`$ {}")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                into.add(name, rc[value_col].strip("`"), path.name)


def declarations(folder: Path, model_dir: Path) -> Declarations:
    """Variables declared from ``folder`` up to ``model_dir`` (innermost first)."""
    out = Declarations()
    current = folder
    while True:
        try:
            entries = sorted(current.iterdir())
        except OSError:
            entries = []
        for p in entries:
            if not p.is_file():
                continue
            if p.name == ".env" or p.suffix == ".env":
                _env_file(p, out)
            elif p.name == MATRIX_NAME:
                _matrix_file(p, out)
        for p in entries:
            if p.is_file() and p.name.lower() in ("readme.md", "readme"):
                _readme(p, out)
        if current == model_dir or current == current.parent:
            break
        current = current.parent
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    """envsubst: ``${NAME}`` of a declared name becomes its value; ``${NAME:-default}`` its value or default."""
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in values:
            return values[name]
        return default if default is not None else m.group(0)

    return VAR_RE.sub(repl, text)


def variant_slug(assignment: dict[str, str], matrix_names: list[str]) -> str:
    """A path-like suffix naming a matrix combination (``gke-h200``)."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", assignment[n]).strip("-").lower() for n in matrix_names]
    return "-".join(p for p in parts if p) or "default"


def write_rendered(root: Path, template: Path, text: str, slug: str | None) -> Path:
    """A rendering of ``template`` under the harness cache, at a path that mirrors the template's."""
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    try:
        rel = template.relative_to(root)
    except ValueError:
        rel = Path(template.name)
    out = cache_dir().parent / "envsubst" / tag / rel.parent / (slug or "") / rel.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def render_declared(root: Path, template: Path, folder: Path, model_dir: Path) -> list[tuple[str | None, Path]]:
    """Renderings of a template whose variables are all declared, as (variant slug or None, file); ``[]`` when
    the file is no template or a variable is not declared (then RH208 reports the placeholders)."""
    try:
        text = template.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if not has_template_text(text):
        return []
    try:  # the variables of values Kubernetes reads, not of commands, args or comments
        bodies = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []
    names = list(dict.fromkeys(p.name for b in bodies for p in placeholders(b, b.get("kind")) if p.default is None))
    decls = declarations(folder, model_dir)
    if not names or any(n not in decls.values for n in names):
        return []
    matrix = [n for n in names if len(decls.values[n]) > 1]
    out: list[tuple[str | None, Path]] = []
    for assignment in decls.combinations(names):
        slug = variant_slug(assignment, matrix) if matrix else None
        out.append((slug, write_rendered(root, template, substitute(text, assignment), slug)))
    return out
