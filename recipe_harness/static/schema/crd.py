"""Load ``apiextensions.k8s.io/v1`` CustomResourceDefinitions given with ``--crd FILE``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_harness.load.manifests import Document, load_file
from recipe_harness.static.schema.compiler import format_path


class SchemaConfigError(Exception):
    """A schema input (``--crd`` file, Kubernetes version) that cannot be used; the message says what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class CRDVersion:
    name: str
    served: bool
    schema: dict[str, Any]
    has_cel: bool = False


@dataclass
class CRDKind:
    """One custom kind: ``group``/``kind`` and its versions with their ``openAPIV3Schema``."""

    group: str
    kind: str
    file: str
    line: int
    versions: dict[str, CRDVersion] = field(default_factory=dict)
    document: Document | None = field(default=None, repr=False)
    schema_paths: dict[str, tuple] = field(default_factory=dict, repr=False)

    def where(self, version: str, path: tuple) -> str:
        """``file:line`` of a node of a version's ``openAPIV3Schema``."""
        if self.document is None:
            return f"{self.file}:{self.line}"
        return _where(self.document, self.schema_paths.get(version, ()) + tuple(path))

    @property
    def served(self) -> list[str]:
        return [v.name for v in self.versions.values() if v.served]

    def api_versions(self) -> list[str]:
        return [f"{self.group}/{v}" for v in self.served]


_STRUCTURAL_EXEMPT = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def _where(doc: Document, path: tuple) -> str:
    line, _ = doc.key_pos(path) if path else doc.pos(path)
    return f"{doc.file}:{line}"


def _structural_problems(node: Any, path: tuple, *, typed_required: bool) -> list[tuple[tuple, str]]:
    """Rules the apiserver enforces on a v1 CRD schema (structural schema), as (path, problem)."""
    problems: list[tuple[tuple, str]] = []
    if not isinstance(node, dict):
        return [(path, "a schema node must be a map")]
    if "$ref" in node:
        problems.append((path, "$ref is not allowed in a CRD schema"))
    if typed_required and not node.get("type") and not any(node.get(k) for k in _STRUCTURAL_EXEMPT):
        problems.append((path, "missing 'type' (structural schemas need a type on every field unless "
                               "x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields is set)"))
    props = node.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            problems += _structural_problems(sub, path + ("properties", name), typed_required=True)
    addl = node.get("additionalProperties")
    if isinstance(addl, dict):
        problems += _structural_problems(addl, path + ("additionalProperties",), typed_required=True)
    if isinstance(node.get("items"), dict):
        problems += _structural_problems(node["items"], path + ("items",), typed_required=True)
    for kw in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(kw) or []):
            problems += _structural_problems(sub, path + (kw, i), typed_required=False)
    if isinstance(node.get("not"), dict):
        problems += _structural_problems(node["not"], path + ("not",), typed_required=False)
    return problems


def _has_cel(node: Any) -> bool:
    if isinstance(node, dict):
        return "x-kubernetes-validations" in node or any(_has_cel(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_cel(v) for v in node)
    return False


def load_crd_file(path: str | Path) -> list[CRDKind]:
    """All CRDs of a YAML file (several documents allowed); raises :class:`SchemaConfigError`."""
    result = load_file(path)
    if result.findings:
        f = result.findings[0]
        raise SchemaConfigError(f"{f.file}:{f.line}: cannot read CRD file: {f.message}")
    kinds: list[CRDKind] = []
    for doc in result.documents:
        if doc.body is None:
            continue
        if not isinstance(doc.body, dict):
            raise SchemaConfigError(f"{_where(doc, ())}: a CRD document must be a map")
        if doc.kind != "CustomResourceDefinition":
            continue
        if doc.api_version != "apiextensions.k8s.io/v1":
            raise SchemaConfigError(
                f"{_where(doc, ('apiVersion',))}: apiVersion {doc.api_version!r} is not supported; "
                "CRDs must be apiextensions.k8s.io/v1 (v1beta1 CRDs were removed in Kubernetes 1.22)")
        kinds.append(_parse_crd(doc))
    if not kinds:
        raise SchemaConfigError(f"{path}:1: no apiextensions.k8s.io/v1 CustomResourceDefinition in the file")
    return kinds


def _parse_crd(doc: Document) -> CRDKind:
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise SchemaConfigError(f"{_where(doc, ('spec',))}: CRD {doc.name!r} has no spec map")
    group = spec.get("group")
    kind = doc.get("spec", "names", "kind")
    if not isinstance(group, str) or not group:
        raise SchemaConfigError(f"{_where(doc, ('spec',))}: CRD {doc.name!r} is missing spec.group")
    if not isinstance(kind, str) or not kind:
        raise SchemaConfigError(f"{_where(doc, ('spec', 'names'))}: CRD {doc.name!r} is missing spec.names.kind")
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise SchemaConfigError(f"{_where(doc, ('spec',))}: CRD {doc.name!r} has no spec.versions list")
    crd = CRDKind(group=group, kind=kind, file=doc.file, line=doc.pos(())[0], document=doc)
    for i, ver in enumerate(versions):
        base = ("spec", "versions", i)
        if not isinstance(ver, dict) or not isinstance(ver.get("name"), str):
            raise SchemaConfigError(f"{_where(doc, base)}: spec.versions[{i}] needs a name")
        schema = doc.get(*base, "schema", "openAPIV3Schema")
        if not isinstance(schema, dict):
            raise SchemaConfigError(
                f"{_where(doc, base)}: version {ver['name']!r} of {kind} has no schema.openAPIV3Schema "
                "(required for apiextensions.k8s.io/v1)")
        root = base + ("schema", "openAPIV3Schema")
        problems = _structural_problems(schema, (), typed_required=True)
        if problems:
            where, problem = problems[0]
            shown = format_path(where) or "openAPIV3Schema"
            raise SchemaConfigError(f"{_where(doc, root + where)}: {kind} {ver['name']}: schema at {shown}: {problem}")
        crd.schema_paths[ver["name"]] = root
        crd.versions[ver["name"]] = CRDVersion(name=ver["name"], served=bool(ver.get("served", False)),
                                               schema=schema, has_cel=_has_cel(schema))
    return crd
