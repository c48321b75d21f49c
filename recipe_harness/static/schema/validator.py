"""Validate manifest documents: core kinds, DynamoGraphDeployment, and kinds of ``--crd`` files."""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import referencing
import referencing.jsonschema

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.manifests import DGD_KIND, Document
from recipe_harness.load.render.envsubst import placeholders
from recipe_harness.static.schema.compiler import (
    CEL,
    CEL_UNSUPPORTED,
    JSON,
    STRUCTURAL,
    Check,
    Compiler,
    SchemaCompileError,
    Violation,
    format_path,
    suggest,
)
from recipe_harness.static.schema.crd import CRDKind, SchemaConfigError, load_crd_file
from recipe_harness.static.schema.k8s import (
    DERIVED_URI,
    K8S_DEFS_URI,
    KubeCatalog,
    UnknownKubernetesVersion,
    derived_document,
    load_definitions,
    normalise_version,
)

DEFAULT_K8S_VERSION = "1.33"
"""Kubernetes version whose OpenAPI schemas validate core kinds unless another is selected."""

RULE_CORE = "RH201"
RULE_DGD = "RH202"
RULE_UNKNOWN_FIELD = "RH203"
RULE_NOT_VALIDATED = "RH204"
RULE_API_VERSION = "RH205"
RULE_SHAPE = "RH206"
RULE_CRD = "RH207"
RULE_TEMPLATE = "RH208"

RULES: dict[str, str] = {
    RULE_CORE: "Kubernetes object violates the OpenAPI schema of its kind (pinned Kubernetes version, or its --crd)",
    RULE_DGD: "DynamoGraphDeployment violates the nvidia.com/v1alpha1 or v1beta1 schema",
    RULE_UNKNOWN_FIELD: "unknown field: the apiserver prunes it silently, so the setting does nothing",
    RULE_NOT_VALIDATED: "kind not validated: no schema is known for it (info; an error with strict kinds)",
    RULE_API_VERSION: "wrong or unknown apiVersion for a known kind (e.g. apps/v1 Job, nvidia.com/v1 DGD)",
    RULE_SHAPE: "document is not a map, or its apiVersion/kind is missing or invalid",
    RULE_CRD: "a CEL rule (x-kubernetes-validations) of a schema uses a function that cannot be evaluated offline",
    RULE_TEMPLATE: "a ${VAR} template variable that nothing declares is left in a manifest value (envsubst not run)",
}

DGD_GROUP = "nvidia.com"
DGD_VERSIONS = ("v1alpha1", "v1beta1")
DGD_API_VERSIONS = tuple(f"{DGD_GROUP}/{v}" for v in DGD_VERSIONS)
DGD_SCHEMA_URIS = {f"{DGD_GROUP}/{v}": f"https://recipe-harness.local/schemas/dgd-{v}.schema.json"
                   for v in DGD_VERSIONS}
OTHER_DYNAMO_KINDS = frozenset({"DynamoGraphDeploymentRequest", "DynamoComponentDeployment", "DynamoModel",
                                "DynamoGraphDeploymentScalingAdapter", "DynamoCheckpoint", "DynamoWorkerMetadata"})
_OBJECT_META = K8S_DEFS_URI + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@dataclass(frozen=True)
class SchemaOptions:
    kubernetes_version: str = DEFAULT_K8S_VERSION
    crd_files: tuple[Path, ...] = ()
    strict_kinds: bool = False


def load_dgd_schema(version: str) -> dict[str, Any]:
    """This project's JSON Schema of a DGD version (``"v1alpha1"`` or ``"v1beta1"``)."""
    ref = importlib.resources.files("recipe_harness").joinpath("data", "schemas", f"dgd-{version}.schema.json")
    with ref.open("rb") as fh:
        return json.load(fh)


def _resource(contents: dict[str, Any]) -> referencing.Resource:
    return referencing.Resource.from_contents(contents, default_specification=referencing.jsonschema.DRAFT202012)


@functools.cache
def registry_for(kubernetes_version: str) -> referencing.Registry:
    """Every schema this module uses, registered locally (no retrieval: an unknown URI is an error)."""
    version = normalise_version(kubernetes_version)
    resources = [(K8S_DEFS_URI, _resource(load_definitions(version))),
                 (DERIVED_URI, _resource(derived_document(version)))]
    for api, uri in DGD_SCHEMA_URIS.items():
        resources.append((uri, _resource(load_dgd_schema(api.split("/")[1]))))
    return referencing.Registry().with_resources(resources)


@functools.cache
def _builtins(kubernetes_version: str) -> tuple[KubeCatalog, Compiler]:
    version = normalise_version(kubernetes_version)
    return KubeCatalog.build(version), Compiler(registry_for(version))


def bundled_schema(api_version: str, kind: str, kubernetes_version: str = DEFAULT_K8S_VERSION) -> dict[str, Any]:
    """A self-contained JSON Schema (draft 2020-12) for a built-in kind or a DGD version.

    Every referenced definition is inlined under ``$defs``, so any JSON Schema tool can use the
    file offline (the benchmark feeds it to check-jsonschema).
    """
    version = normalise_version(kubernetes_version)
    k8s_defs = load_definitions(version)["$defs"]
    derived = derived_document(version)["$defs"]

    def rewrite(node: Any, local_prefix: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str):
                    if v.startswith(K8S_DEFS_URI + "#/$defs/"):
                        v = "#/$defs/" + v.split("#/$defs/", 1)[1]
                    elif v.startswith(DERIVED_URI + "#/$defs/"):
                        v = "#/$defs/rh.derived." + v.split("#/$defs/", 1)[1]
                    elif v.startswith("#/$defs/") and local_prefix:
                        v = "#/$defs/" + local_prefix + v[len("#/$defs/"):]
                    out[k] = v
                elif k in ("$id", "$schema") and local_prefix:
                    continue
                else:
                    out[k] = rewrite(v, local_prefix)
            return out
        if isinstance(node, list):
            return [rewrite(v, local_prefix) for v in node]
        return node

    defs: dict[str, Any] = dict(k8s_defs)
    for name, sub in derived.items():
        defs["rh.derived." + name] = rewrite(sub, "rh.derived.")
    if kind == DGD_KIND and api_version in DGD_SCHEMA_URIS:
        schema = load_dgd_schema(api_version.split("/")[1])
        for name, sub in schema.pop("$defs").items():
            defs["rh.dgd." + name] = rewrite(sub, "rh.dgd.")
        root = rewrite(schema, "rh.dgd.")
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    else:
        catalog, _ = _builtins(version)
        name = catalog.definition(api_version, kind)
        if name is None:
            raise KeyError(f"no built-in schema for {kind} {api_version} in Kubernetes {version}")
        root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/$defs/{name}"}
    root["$defs"] = defs
    return root


_CRD_CACHE: dict[tuple, list[tuple[CRDKind, dict[str, Check]]]] = {}
"""Compiled ``--crd`` files of this process (see :meth:`Validator._load_crd`)."""


@dataclass
class _Target:
    """What a document is validated against."""

    check: Check
    rule: str
    label: str
    crd: CRDKind | None = None
    version: str = ""


class Validator:
    """Validates documents; build once per run (compiled checks are cached per (apiVersion, kind))."""

    def __init__(self, options: SchemaOptions = SchemaOptions()) -> None:
        self.options = options
        try:
            self.kubernetes_version = normalise_version(options.kubernetes_version)
        except UnknownKubernetesVersion as exc:
            raise SchemaConfigError(str(exc)) from None
        self.catalog, self._compiler = _builtins(self.kubernetes_version)
        self._crds: dict[tuple[str, str], CRDKind] = {}
        self._crd_checks: dict[tuple[str, str, str], Check] = {}
        for path in options.crd_files:
            for crd, checks in self._load_crd(Path(path)):
                self._crds[(crd.group, crd.kind)] = crd
                for name, check in checks.items():
                    self._crd_checks[(crd.group, crd.kind, name)] = check
        self._targets: dict[tuple[str, str], _Target] = {}
        self._cel_noted: set[str] = set()

    # -- compilation --------------------------------------------------------------------------
    def _load_crd(self, path: Path) -> list[tuple[CRDKind, dict[str, Check]]]:
        """The CRDs of a ``--crd`` file with their compiled checks, read and compiled once per process.

        Keyed by the file's resolved path, size and modification time and the Kubernetes version
        (whose definitions the CRD's embedded ObjectMeta is checked against), so a Validator per
        recipes root or per path costs a dictionary lookup after the first.
        """
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns, self.kubernetes_version)
        except OSError as exc:
            raise SchemaConfigError(f"{path}: cannot read CRD file: {exc.strerror or exc}") from None
        hit = _CRD_CACHE.get(key)
        if hit is None:
            hit = [(crd, {name: self._compile_crd(crd, name) for name in crd.versions}) for crd in load_crd_file(path)]
            _CRD_CACHE[key] = hit
        return hit

    def _compile_crd(self, crd: CRDKind, version: str) -> Check:
        schema = dict(crd.versions[version].schema)
        props = dict(schema.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        schema["properties"] = props
        meta = self._compiler.compile({"$ref": _OBJECT_META}, self._compiler.registry.resolver(), JSON, ())
        props_no_meta = {k: v for k, v in props.items() if k != "metadata"}
        schema["properties"] = props_no_meta
        try:
            body = self._compiler.compile(schema, self._compiler.registry.resolver(), STRUCTURAL, ())
        except SchemaCompileError as exc:
            shown = format_path(exc.where) or "openAPIV3Schema"
            raise SchemaConfigError(f"{crd.where(version, exc.where)}: {crd.kind} {version}: schema at {shown}: {exc.message}") from None

        def root_check(value: Any, path: tuple, out: list[Violation]) -> None:
            if isinstance(value, dict) and "metadata" in value:
                meta(value["metadata"], path + ("metadata",), out)
                value = {k: v for k, v in value.items() if k != "metadata"}
            body(value, path, out)
        return root_check

    def _target(self, api_version: str, kind: str, group: str) -> _Target | None:
        key = (api_version, kind)
        hit = self._targets.get(key)
        if hit is not None:
            return hit
        version = api_version.split("/", 1)[1] if "/" in api_version else api_version
        crd = self._crds.get((group, kind))
        target: _Target | None = None
        if crd is not None:
            check = self._crd_checks.get((group, kind, version))
            if check is not None and version in crd.served:
                rule = RULE_DGD if kind == DGD_KIND and group == DGD_GROUP else RULE_CORE
                target = _Target(check, rule, f"CRD {Path(crd.file).name}", crd, version)
        elif kind == DGD_KIND and api_version in DGD_SCHEMA_URIS:
            target = _Target(self._compiler.compile_uri(DGD_SCHEMA_URIS[api_version]), RULE_DGD, "built-in")
        else:
            name = self.catalog.definition(api_version, kind)
            if name is not None:
                check = self._compiler.compile_uri(f"{K8S_DEFS_URI}#/$defs/{name}")
                target = _Target(check, RULE_CORE, f"Kubernetes {self.kubernetes_version}")
        if target is not None:
            self._targets[key] = target
        return target

    # -- validation ---------------------------------------------------------------------------
    def validate(self, doc: Document) -> list[Finding]:
        """Schema findings of one document; a ``${VAR}`` template variable is reported once at its value
        (RH208), never also as a type, enum or format error of the field it stands in for."""
        holes = placeholders(doc.body, doc.kind) if isinstance(doc.body, dict) and doc.kind != "List" else []
        findings = self._validate(doc, frozenset(h.path for h in holes))
        for h in holes:
            findings.append(doc.finding(
                RULE_TEMPLATE, f"{format_path(h.path) or 'value'}: template variable ${{{h.name}}} is not substituted",
                h.path, hint="declare it (an env file NAME=value, a .envsubst-matrix.yaml, a README table of variables) "
                             "so the harness renders the file, or run envsubst before kubectl apply"))
        findings.sort(key=lambda f: (f.line, f.col))
        return findings

    def _validate(self, doc: Document, holes: frozenset = frozenset()) -> list[Finding]:
        body = doc.body
        if body is None:
            return []  # an empty document (e.g. a trailing '---') is skipped by kubectl too
        if not isinstance(body, dict):
            shape = "a list" if isinstance(body, list) else f"a scalar ({json.dumps(body, default=str)[:40]})"
            return [doc.finding(RULE_SHAPE, f"document is {shape}, not a map with apiVersion and kind",
                                hint="each YAML document must be one Kubernetes object; separate objects with '---'")]
        api_version, kind = body.get("apiVersion"), body.get("kind")
        missing = self._missing_type_meta(doc, api_version, kind)
        if missing:
            return missing
        assert isinstance(api_version, str) and isinstance(kind, str)
        if kind == "List" and api_version == "v1" and isinstance(body.get("items"), list):
            return [f for i in range(len(body["items"])) for f in self.validate(_list_item(doc, i))]
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        target = self._target(api_version, kind, group)
        if target is None:
            return self._no_schema(doc, api_version, kind, group)
        out: list[Violation] = []
        target.check(body, (), out)
        if holes:
            out = [v for v in out if v.path not in holes or v.code in ("unknown", "null")]
        findings = []
        for v in out:
            if v.code == CEL_UNSUPPORTED:
                if v.message in self._cel_noted:
                    continue
                self._cel_noted.add(v.message)
                findings.append(doc.finding(
                    RULE_CRD, f"{kind} {api_version} ({target.label}): {v.message}", v.path, key=True,
                    severity=Severity.INFO,
                    hint="the apiserver evaluates it at admission; this note is given once per rule and run"))
            else:
                findings.append(self._to_finding(doc, v, target.rule))
        findings += self._name_check(doc, target.rule)
        findings.sort(key=lambda f: (f.line, f.col))
        return findings

    def _missing_type_meta(self, doc: Document, api_version: Any, kind: Any) -> list[Finding]:
        findings = []
        keys = [k for k in doc.body if isinstance(k, str)]
        for field_name, value in (("apiVersion", api_version), ("kind", kind)):
            if value is None:
                typo = next((k for k in keys if k != field_name and suggest(k, [field_name], cutoff=0.8) == field_name), None)
                if typo is not None:
                    findings.append(doc.finding(RULE_SHAPE, f'missing {field_name}: found "{typo}" (did you mean "{field_name}"?)',
                                                (typo,), key=True))
                    continue
                hint = ""
                if field_name == "apiVersion" and isinstance(kind, str):
                    apis = self._known_api_versions(kind)
                    if apis:
                        hint = f"{kind} is served as {' or '.join(apis)}: add 'apiVersion: {apis[0]}'"
                findings.append(doc.finding(RULE_SHAPE, f"missing {field_name}", hint=hint or
                                            f"every Kubernetes object needs '{field_name}:' at the top level"))
            elif not isinstance(value, str) or not value:
                findings.append(doc.finding(RULE_SHAPE, f"{field_name} must be a non-empty string, got {json.dumps(value, default=str)}",
                                            (field_name,)))
        return findings

    def _known_api_versions(self, kind: str) -> list[str]:
        crds = [c for (g, k), c in self._crds.items() if k == kind]
        if crds:
            return crds[0].api_versions()
        if kind == DGD_KIND:
            return list(DGD_API_VERSIONS)
        return self.catalog.api_versions(kind)

    def _no_schema(self, doc: Document, api_version: str, kind: str, group: str) -> list[Finding]:
        crd = self._crds.get((group, kind))
        if crd is not None:
            served = ", ".join(crd.served) or "none"
            return [doc.finding(RULE_API_VERSION,
                                f'version "{api_version.split("/", 1)[-1]}" of {kind} is not served by its CRD '
                                f'({Path(crd.file).name}); served versions: {served}', ("apiVersion",),
                                hint=f"use apiVersion: {crd.api_versions()[0]}" if crd.served else "")]
        apis = self._known_api_versions(kind)
        if apis:
            return [doc.finding(RULE_API_VERSION,
                                f'apiVersion "{api_version}" does not serve {kind}; use {" or ".join(apis)}',
                                ("apiVersion",), hint=f"apiVersion: {apis[0]}")]
        if api_version in DGD_API_VERSIONS:  # the group serves other Dynamo kinds (DGDR, DCD ...) too
            close = suggest(kind, [DGD_KIND], cutoff=0.8)
            if close is not None and kind not in OTHER_DYNAMO_KINDS and abs(len(kind) - len(DGD_KIND)) <= 2:
                return [doc.finding(RULE_SHAPE, f'kind "{kind}" is not a known kind (did you mean "{close}"?)', ("kind",))]
        elif api_version in self.catalog.api_version_set:
            close = suggest(kind, self.catalog.kinds_for(api_version))
            return [doc.finding(RULE_SHAPE, f'kind "{kind}" does not exist in {api_version}'
                                + (f' (did you mean "{close}"?)' if close else ""), ("kind",))]
        close_kind = suggest(kind, list(self.catalog.by_kind) + [DGD_KIND])
        if close_kind is not None and close_kind != kind and close_kind.lower() == kind.lower():
            return [doc.finding(RULE_SHAPE, f'kind "{kind}" is not a known kind (did you mean "{close_kind}"?)', ("kind",))]
        severity = Severity.ERROR if self.options.strict_kinds else Severity.INFO
        return [doc.finding(RULE_NOT_VALIDATED, f"{kind} ({api_version}) is not validated: no schema is known for it",
                            ("kind",), severity=severity,
                            hint="pass its CustomResourceDefinition with --crd FILE to validate it")]

    @staticmethod
    def _name_check(doc: Document, rule: str) -> list[Finding]:
        meta = doc.body.get("metadata")
        if isinstance(meta, dict) and (meta.get("name") or meta.get("generateName")):
            return []
        path: tuple = ("metadata",) if isinstance(meta, dict) else ()
        return [doc.finding(rule, "metadata.name is required", path, key=bool(path),
                            hint="kubectl apply needs a name for every object")]

    @staticmethod
    def _to_finding(doc: Document, v: Violation, rule: str) -> Finding:
        if v.code in ("unknown", "null"):
            rule = RULE_UNKNOWN_FIELD
        shown = format_path(v.path)
        message = v.message if v.code == "unknown" else (f"{shown}: {v.message}" if shown else v.message)
        if v.code == "null":
            message = f"{shown}: null value for a non-nullable field; the apiserver would silently drop it"
        severity = Severity.WARNING if v.code == "null" else Severity.ERROR
        key = v.key or (v.code == "required" and bool(v.path))
        hint = v.hint
        if v.code == CEL and not hint:
            hint = "a rule of the CRD (x-kubernetes-validations): the apiserver rejects the object with this message"
        return doc.finding(rule, message, v.path, key=key, hint=hint, severity=severity)


def _list_item(doc: Document, index: int) -> Document:
    """Item ``index`` of a ``kind: List`` document as a document of its own (positions kept)."""
    prefix = ("items", index)
    positions: dict = {}
    for key, value in doc.positions.items():
        if key[:2] == prefix:
            positions[key[2:]] = value
        elif key[:1] == ("<key>",) and key[1:3] == prefix:
            positions[("<key>",) + key[3:]] = value
    item = doc.body["items"][index]
    return Document(doc.file, doc.index, item, positions, doc.pos(prefix)[0])
