"""Compile schemas once into fast validator closures.

Two dialects share one compiler:

* ``json`` -- the JSON Schema subset used by the bundled Kubernetes definitions and by this
  project's DynamoGraphDeployment schemas (draft 2020-12: ``type`` lists, ``$ref``,
  ``additionalProperties: false`` for strict objects).
* ``structural`` -- a CRD's ``openAPIV3Schema`` with the apiserver's semantics: unspecified
  fields are pruned (reported as unknown) unless ``x-kubernetes-preserve-unknown-fields``,
  ``nullable``, ``x-kubernetes-int-or-string``, ``x-kubernetes-embedded-resource``, defaults
  satisfy ``required``, ``x-kubernetes-list-type`` uniqueness.

An unsupported keyword is a compile error, never silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import referencing

from recipe_harness.static.schema.cel import apply_defaults, compile_validations
from recipe_harness.static.schema.cel import evaluate as evaluate_rules

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class Violation:
    """One schema violation at a document path (message without the path)."""

    path: PathT
    code: str
    message: str
    key: bool = False  # position is the key of ``path`` (unknown fields)
    hint: str = ""


Check = Callable[[Any, PathT, list[Violation]], None]

CEL = "cel"  # Violation code of a failed x-kubernetes-validations rule
CEL_UNSUPPORTED = "cel-unsupported"  # a rule using a function no offline library provides

JSON = "json"
STRUCTURAL = "structural"
_VALUE_ONLY = "structural-value"  # allOf/anyOf/oneOf/not branches of a structural schema

QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
OBJECT_META_REF = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")

_ANNOTATIONS = {"description", "title", "default", "examples", "example", "$comment", "deprecated",
                "readOnly", "writeOnly", "externalDocs", "$schema", "$id", "$defs", "definitions",
                "discriminator", "fields-to-discriminateBy", "x-rh-moved"}
_JSON_KEYWORDS = {"type", "$ref", "properties", "additionalProperties", "required", "items", "enum", "const",
                  "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                  "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems", "minProperties",
                  "maxProperties", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"}
_STRUCTURAL_KEYWORDS = (_JSON_KEYWORDS - {"const", "if", "then", "else", "$ref"}) | {"nullable"}


class SchemaCompileError(Exception):
    """A schema that cannot be compiled (unsupported keyword, bad value); ``where`` is a JSON path."""

    def __init__(self, message: str, where: tuple = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def describe(value: Any) -> str:
    """Short human form of a value for messages."""
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:56] + '..."'
    return repr(value)


_ARTICLE = {"object": "a map", "array": "a list", "string": "a string", "integer": "an integer",
            "number": "a number", "boolean": "a boolean", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(types: frozenset[str], value: Any) -> bool:
    t = _json_type(value)
    return t in types or (t == "integer" and "number" in types)


def type_violation(path: PathT, types: frozenset[str] | set[str], value: Any) -> Violation:
    expected = sorted(t for t in types if t != "null") or ["null"]
    hint = ""
    if isinstance(value, (dict, list)) or ("object" in expected or "array" in expected):
        want = " or ".join(_ARTICLE.get(t, t) for t in expected)
        message = f"got {describe(value) if isinstance(value, (dict, list)) else describe(value) + ' (' + _json_type(value) + ')'} where {want} belongs"
        if isinstance(value, list) and expected == ["object"]:
            hint = "this field is a map (key: value entries), not a list (- items)"
        elif isinstance(value, dict) and expected == ["array"]:
            hint = "this field is a list: start each entry with '- '"
    else:
        message = f"{describe(value)} is not of type {' or '.join(expected)}"
        if isinstance(value, str) and set(expected) & {"integer", "number"}:
            try:
                float(value)
                hint = f"remove the quotes: write {value}, not \"{value}\""
            except ValueError:
                pass
        elif not isinstance(value, str) and value is not None and expected == ["string"]:
            hint = f"quote the value: \"{describe(value)}\" (YAML reads it as {_ARTICLE.get(_json_type(value), 'a value')})"
    return Violation(path, "type", message, hint=hint)


def suggest(word: str, candidates: list[str] | set[str] | tuple[str, ...], cutoff: float = 0.6) -> str | None:
    """The closest valid name: exact match ignoring case first, then difflib."""
    cands = [c for c in candidates if isinstance(c, str)]
    lower = {c.lower(): c for c in cands}
    if word.lower() in lower:
        return lower[word.lower()]
    hits = difflib.get_close_matches(word, cands, n=1, cutoff=cutoff)
    return hits[0] if hits else None


def _quantity_check(value: Any, path: PathT, out: list[Violation]) -> None:
    if isinstance(value, str) and not QUANTITY_RE.fullmatch(value):
        out.append(Violation(path, "format", f"{describe(value)} is not a valid quantity",
                             hint="quantities look like 500m, 2, 16Gi, 1.5G (no spaces)"))


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _format_check(fmt: str) -> Check | None:
    if fmt in _INT_RANGES:
        lo, hi = _INT_RANGES[fmt]

        def int_range(value: Any, path: PathT, out: list[Violation]) -> None:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not lo <= value <= hi:
                out.append(Violation(path, "format", f"{describe(value)} is out of range for {fmt}"))
        return int_range
    if fmt == "byte":
        def b64(value: Any, path: PathT, out: list[Violation]) -> None:
            if isinstance(value, str):
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    out.append(Violation(path, "format", f"{describe(value)} is not valid base64",
                                         hint="Secret 'data' values are base64; put plain text under 'stringData'"))
        return b64
    regex = {"date-time": _DATE_TIME_RE, "date": _DATE_RE, "uuid": _UUID_RE}.get(fmt)
    if regex is not None:
        def matches(value: Any, path: PathT, out: list[Violation]) -> None:
            if isinstance(value, str) and not regex.match(value):
                out.append(Violation(path, "format", f"{describe(value)} is not a valid {fmt}"))
        return matches
    return None  # other formats are annotations (the apiserver ignores unknown formats too)


class _Cell:
    __slots__ = ("fn",)

    def __init__(self) -> None:
        self.fn: Check | None = None


def _noop(value: Any, path: PathT, out: list[Violation]) -> None:
    return None


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Compiler:
    """Compiles schema dicts (resolving ``$ref`` through a :class:`referencing.Registry`) into checks.

    Compiled checks are cached per schema object, so shared definitions compile once.
    ``object_meta`` is the check used for the implicit ``metadata`` of embedded resources.
    """

    def __init__(self, registry: referencing.Registry) -> None:
        self.registry = registry
        self._cache: dict[tuple[int, str], tuple[Any, _Cell]] = {}

    # -- entry points -------------------------------------------------------------------------
    def compile_uri(self, uri: str, dialect: str = JSON) -> Check:
        resolver = self.registry.resolver()
        resolved = resolver.lookup(uri)
        return self.compile(resolved.contents, resolved.resolver, dialect, ())

    def compile(self, schema: Any, resolver: referencing._core.Resolver, dialect: str, where: tuple) -> Check:
        if schema is True or schema == {}:
            return _noop
        if schema is False:
            def never(value: Any, path: PathT, out: list[Violation]) -> None:
                out.append(Violation(path, "false", "no value is allowed here"))
            return never
        if not isinstance(schema, dict):
            raise SchemaCompileError(f"a schema must be a map, got {describe(schema)}", where)
        key = (id(schema), dialect)
        hit = self._cache.get(key)
        if hit is not None:
            cell = hit[1]
            if cell.fn is not None:
                return cell.fn
            return lambda v, p, o: cell.fn(v, p, o)  # type: ignore[misc]  # recursive reference
        cell = _Cell()
        self._cache[key] = (schema, cell)
        try:
            cell.fn = self._build(schema, resolver, dialect, where)
        except BaseException:
            del self._cache[key]
            raise
        return cell.fn

    # -- builder ------------------------------------------------------------------------------
    def _build(self, s: dict, resolver: Any, dialect: str, where: tuple) -> Check:
        structural = dialect in (STRUCTURAL, _VALUE_ONLY)
        allowed = _STRUCTURAL_KEYWORDS if structural else _JSON_KEYWORDS
        for kw in s:
            if kw in allowed or kw in _ANNOTATIONS or (isinstance(kw, str) and kw.startswith("x-")):
                continue
            if structural and kw == "$ref":
                raise SchemaCompileError("$ref is not allowed in a CRD schema", where + (kw,))
            raise SchemaCompileError(f"unsupported schema keyword {kw!r}", where + (kw,))

        checks: list[Check] = []
        preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
        int_or_string = bool(s.get("x-kubernetes-int-or-string"))
        embedded = bool(s.get("x-kubernetes-embedded-resource"))

        # type / nullability
        raw_type = s.get("type")
        types: frozenset[str] | None = None
        nullable = False
        if structural:
            if raw_type is not None and not isinstance(raw_type, str):
                raise SchemaCompileError("'type' must be a single string in a CRD schema", where)
            nullable = bool(s.get("nullable"))
            if int_or_string:
                types = frozenset({"integer", "string"})
            elif raw_type:
                types = frozenset({raw_type})
        elif raw_type is not None:
            types = frozenset([raw_type] if isinstance(raw_type, str) else raw_type)
            nullable = "null" in types
        valid_types = {"object", "array", "string", "integer", "number", "boolean", "null"}
        if types is not None and not types <= valid_types:
            raise SchemaCompileError(f"unknown type {sorted(types - valid_types)}", where)

        ref = s.get("$ref")
        if ref is not None:
            resolved = resolver.lookup(ref)
            target = self.compile(resolved.contents, resolved.resolver, JSON, where + ("$ref",))
            checks.append(target)
            if ref.endswith("/" + QUANTITY_DEF):
                checks.append(_quantity_check)

        if "enum" in s:
            checks.append(self._enum(s["enum"], where))
        if "const" in s:
            const = s["const"]

            def const_check(value: Any, path: PathT, out: list[Violation]) -> None:
                if value != const or type(value) is not type(const):
                    out.append(Violation(path, "const", f"{describe(value)} must be {describe(const)}"))
            checks.append(const_check)

        obj = self._object(s, resolver, dialect, where, preserve, embedded)
        if obj is not None:
            checks.append(obj)
        arr = self._array(s, resolver, dialect, where)
        if arr is not None:
            checks.append(arr)
        checks.extend(self._scalar(s, structural, where))
        checks.extend(self._combinators(s, resolver, dialect, where))

        type_set = types
        if type_set is not None and nullable:
            type_set = type_set | {"null"}
        check = self._assemble(type_set, nullable, structural, checks)
        if "x-kubernetes-validations" in s and dialect != _VALUE_ONLY:
            check = self._with_cel(check, s, types, where)
        return check

    @staticmethod
    def _with_cel(inner: Check, s: dict, types: frozenset[str] | None, where: tuple) -> Check:
        """``inner`` followed by the node's CEL rules (compiled here, once per schema node)."""
        try:
            rules = compile_validations(s["x-kubernetes-validations"])
        except ValueError as exc:
            raise SchemaCompileError(str(exc), where + ("x-kubernetes-validations",)) from None
        props = s.get("properties") if isinstance(s.get("properties"), dict) else None

        def cel_check(value: Any, path: PathT, out: list[Violation]) -> None:
            before = len(out)
            inner(value, path, out)
            if value is None or len(out) > before or (types is not None and not _type_ok(types, value)):
                return  # schema errors below are reported instead; the apiserver does not run rules on them
            for f in evaluate_rules(rules, apply_defaults(value, props), path):
                code = CEL_UNSUPPORTED if f.unsupported else CEL
                message = f"rule {f.rule.rule!r} cannot be evaluated offline: {f.message}" if f.unsupported else f.message
                out.append(Violation(f.path, code, message, key=True))
        return cel_check

    @staticmethod
    def _assemble(types: frozenset[str] | None, nullable: bool, structural: bool, checks: list[Check]) -> Check:
        n = len(checks)
        first = checks[0] if n else None
        if types is None:
            if n == 0:
                return _noop
            if n == 1:
                assert first is not None
                if not structural or nullable:
                    return first

            def untyped(value: Any, path: PathT, out: list[Violation]) -> None:
                if value is None and structural and not nullable:
                    return  # the apiserver prunes nulls of non-nullable fields
                for c in checks:
                    c(value, path, out)
            return untyped
        allows_null = "null" in types

        def typed(value: Any, path: PathT, out: list[Violation]) -> None:
            if value is None:
                if allows_null:
                    return
                if structural:
                    return  # pruned, reported by the parent object
                out.append(type_violation(path, types, value))
                return
            t = _json_type(value)
            if t not in types and not (t == "integer" and "number" in types):
                out.append(type_violation(path, types, value))
                return
            for c in checks:
                c(value, path, out)
        return typed

    def _enum(self, values: Any, where: tuple) -> Check:
        if not isinstance(values, list):
            raise SchemaCompileError("'enum' must be a list", where)
        canon = {_canon(v) for v in values}
        shown = ", ".join(describe(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        names = [v for v in values if isinstance(v, str)]

        def enum_check(value: Any, path: PathT, out: list[Violation]) -> None:
            if value is None or _canon(value) in canon:
                return
            message = f"{describe(value)} is not one of {shown}"
            if isinstance(value, str):
                close = suggest(value, names)
                if close is not None:
                    message += f' (did you mean "{close}"?)'
            out.append(Violation(path, "enum", message))
        return enum_check

    def _object(self, s: dict, resolver: Any, dialect: str, where: tuple, preserve: bool, embedded: bool) -> Check | None:
        props_s = s.get("properties")
        addl_s = s.get("additionalProperties")
        required = s.get("required") or []
        structural = dialect == STRUCTURAL
        value_only = dialect == _VALUE_ONLY
        is_object = s.get("type") == "object" or (isinstance(s.get("type"), list) and "object" in s["type"])
        if props_s is None and addl_s is None and not required and "minProperties" not in s \
                and "maxProperties" not in s and not (structural and (is_object or embedded)):
            return None
        if props_s is not None and not isinstance(props_s, dict):
            raise SchemaCompileError("'properties' must be a map", where)
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise SchemaCompileError("'required' must be a list of strings", where)
        child = dialect
        props: dict[str, Check] = {}
        for name, sub in (props_s or {}).items():
            props[name] = self.compile(sub, resolver, child, where + ("properties", name))
        defaults = {name for name, sub in (props_s or {}).items() if isinstance(sub, dict) and "default" in sub}
        nullable_props = {name for name, sub in (props_s or {}).items()
                          if isinstance(sub, dict) and (sub.get("nullable") or
                                                        (isinstance(sub.get("type"), list) and "null" in sub["type"]))}
        if embedded and structural:
            for name in ("apiVersion", "kind"):
                props.setdefault(name, self.compile({"type": "string", "minLength": 1}, resolver, STRUCTURAL, where))
            required = [*required, *(r for r in ("apiVersion", "kind") if r not in required)]
            props["metadata"] = self.compile({"$ref": OBJECT_META_REF}, resolver, JSON, where)
        addl: Check | None = None
        unknown = False
        if isinstance(addl_s, dict):
            addl = self.compile(addl_s, resolver, child, where + ("additionalProperties",))
        elif addl_s is True:
            addl = _noop
        elif addl_s is False:
            unknown = not value_only
        elif addl_s is not None:
            raise SchemaCompileError("'additionalProperties' must be a boolean or a schema", where)
        if structural and addl_s is None and not preserve:
            unknown = True  # structural schemas prune every unspecified field
        if preserve:
            unknown = False
            addl = addl or _noop
        known = sorted(props)
        moved: dict[str, str] = s.get("x-rh-moved") or {}
        prune_null = structural or dialect == JSON  # every schema here describes an apiserver object
        min_p, max_p = s.get("minProperties"), s.get("maxProperties")

        def obj_check(value: Any, path: PathT, out: list[Violation]) -> None:
            if not isinstance(value, dict):
                return
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                c = props.get(key)
                if c is not None:
                    if v is None and prune_null and key not in nullable_props:
                        out.append(Violation(path + (key,), "null", "null value for a non-nullable field",
                                             key=True, hint="the apiserver drops it; remove the key or give a value"))
                        continue
                    c(v, path + (key,), out)
                elif addl is not None:
                    addl(v, path + (key,), out)
                elif unknown:
                    out.append(unknown_violation(path, key, known, moved))
            for r in required:
                present = r in value and not (prune_null and value[r] is None and r not in nullable_props)
                if not present and r not in defaults:
                    out.append(Violation(path, "required", f'missing required field "{r}"'))
            if min_p is not None and len(value) < min_p:
                out.append(Violation(path, "size", f"has {len(value)} entries, fewer than the minimum of {min_p}"))
            if max_p is not None and len(value) > max_p:
                out.append(Violation(path, "size", f"has {len(value)} entries, more than the maximum of {max_p}"))
        return obj_check

    def _array(self, s: dict, resolver: Any, dialect: str, where: tuple) -> Check | None:
        items_s = s.get("items")
        min_i, max_i = s.get("minItems"), s.get("maxItems")
        unique = bool(s.get("uniqueItems"))
        list_type = s.get("x-kubernetes-list-type") if dialect == STRUCTURAL else None
        map_keys = s.get("x-kubernetes-list-map-keys") or []
        if items_s is None and min_i is None and max_i is None and not unique and list_type not in ("set", "map"):
            return None
        if isinstance(items_s, list):
            raise SchemaCompileError("tuple-form 'items' is not supported", where)
        item = self.compile(items_s, resolver, dialect, where + ("items",)) if items_s is not None else None

        def arr_check(value: Any, path: PathT, out: list[Violation]) -> None:
            if not isinstance(value, list):
                return
            if item is not None:
                for i, v in enumerate(value):
                    item(v, path + (i,), out)
            n = len(value)
            if min_i is not None and n < min_i:
                out.append(Violation(path, "size", f"has {n} items, fewer than the minimum of {min_i}"))
            if max_i is not None and n > max_i:
                out.append(Violation(path, "size", f"has {n} items, more than the maximum of {max_i}"))
            if unique or list_type in ("set", "map"):
                seen: dict[str, int] = {}
                for i, v in enumerate(value):
                    if list_type == "map" and isinstance(v, dict) and map_keys:
                        ident = _canon([v.get(k) for k in map_keys])
                        label = ", ".join(f"{k}={describe(v.get(k))}" for k in map_keys)
                    else:
                        ident, label = _canon(v), describe(v)
                    if ident in seen:
                        out.append(Violation(path + (i,), "unique",
                                             f"duplicate entry ({label}), same as item {seen[ident]}"))
                    else:
                        seen[ident] = i
        return arr_check

    def _scalar(self, s: dict, structural: bool, where: tuple) -> list[Check]:
        checks: list[Check] = []
        lo, hi = s.get("minimum"), s.get("maximum")
        ex_lo, ex_hi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if structural or isinstance(ex_lo, bool) or isinstance(ex_hi, bool):
            lo_strict, hi_strict = ex_lo is True, ex_hi is True
        else:
            lo_strict = hi_strict = False
            if isinstance(ex_lo, (int, float)):
                lo, lo_strict = ex_lo, True
            if isinstance(ex_hi, (int, float)):
                hi, hi_strict = ex_hi, True
        if lo is not None or hi is not None:
            def bounds(value: Any, path: PathT, out: list[Violation]) -> None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return
                if lo is not None and (value <= lo if lo_strict else value < lo):
                    out.append(Violation(path, "range", f"{describe(value)} is less than {'or equal to ' if lo_strict else ''}the minimum of {lo}"))
                if hi is not None and (value >= hi if hi_strict else value > hi):
                    out.append(Violation(path, "range", f"{describe(value)} is greater than {'or equal to ' if hi_strict else ''}the maximum of {hi}"))
            checks.append(bounds)
        mult = s.get("multipleOf")
        if mult is not None:
            def multiple(value: Any, path: PathT, out: list[Violation]) -> None:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    q = value / mult
                    if not math.isclose(q, round(q)):
                        out.append(Violation(path, "range", f"{describe(value)} is not a multiple of {mult}"))
            checks.append(multiple)
        min_l, max_l = s.get("minLength"), s.get("maxLength")
        if min_l is not None or max_l is not None:
            def length(value: Any, path: PathT, out: list[Violation]) -> None:
                if not isinstance(value, str):
                    return
                if min_l is not None and len(value) < min_l:
                    out.append(Violation(path, "length", f"{describe(value)} is shorter than {min_l} character(s)"))
                if max_l is not None and len(value) > max_l:
                    out.append(Violation(path, "length", f"{describe(value)} is longer than {max_l} character(s)"))
            checks.append(length)
        pattern = s.get("pattern")
        if pattern is not None:
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                raise SchemaCompileError(f"invalid pattern {pattern!r}: {exc}", where) from None

            def pat(value: Any, path: PathT, out: list[Violation]) -> None:
                if isinstance(value, str) and not rx.search(value):
                    out.append(Violation(path, "pattern", f"{describe(value)} does not match the pattern {pattern}"))
            checks.append(pat)
        fmt = s.get("format")
        if isinstance(fmt, str):
            fc = _format_check(fmt)
            if fc is not None:
                checks.append(fc)
        return checks

    def _combinators(self, s: dict, resolver: Any, dialect: str, where: tuple) -> list[Check]:
        checks: list[Check] = []
        branch_dialect = _VALUE_ONLY if dialect in (STRUCTURAL, _VALUE_ONLY) else dialect
        for kw in ("allOf", "anyOf", "oneOf"):
            if kw not in s:
                continue
            subs = s[kw]
            if not isinstance(subs, list) or not subs:
                raise SchemaCompileError(f"'{kw}' must be a non-empty list", where)
            branches = [self.compile(b, resolver, branch_dialect, where + (kw, i)) for i, b in enumerate(subs)]
            checks.append(_combinator(kw, branches, subs))
        if "not" in s:
            inner = self.compile(s["not"], resolver, branch_dialect, where + ("not",))

            def not_check(value: Any, path: PathT, out: list[Violation]) -> None:
                tmp: list[Violation] = []
                inner(value, path, tmp)
                if not tmp:
                    out.append(Violation(path, "not", f"{describe(value)} matches a form that is not allowed here"))
            checks.append(not_check)
        if "if" in s:
            cond = self.compile(s["if"], resolver, dialect, where + ("if",))
            then = self.compile(s["then"], resolver, dialect, where + ("then",)) if "then" in s else _noop
            other = self.compile(s["else"], resolver, dialect, where + ("else",)) if "else" in s else _noop

            def if_check(value: Any, path: PathT, out: list[Violation]) -> None:
                tmp: list[Violation] = []
                cond(value, path, tmp)
                (other if tmp else then)(value, path, out)
            checks.append(if_check)
        return checks


def unknown_violation(path: PathT, key: str, known: list[str], moved: dict[str, str]) -> Violation:
    where = format_path(path) or "the document root"
    message = f'unknown field "{key}" in {where}'
    note = moved.get(key)
    close = None if note else suggest(key, known)
    if note:
        message += f" ({note})"
    elif close is not None:
        message += f' (did you mean "{close}"?)'
    message += "; the apiserver would silently drop it"
    hint = "kubectl apply --validate=strict rejects it; with other clients (Helm, Argo CD, client libraries) it is pruned without an error"
    return Violation(path + (key,), "unknown", message, key=True, hint=hint)


def _combinator(kw: str, branches: list[Check], subs: list[Any]) -> Check:
    if kw == "allOf":
        def all_of(value: Any, path: PathT, out: list[Violation]) -> None:
            for b in branches:
                b(value, path, out)
        return all_of

    def some_of(value: Any, path: PathT, out: list[Violation]) -> None:
        results: list[list[Violation]] = []
        passed = 0
        for b in branches:
            tmp: list[Violation] = []
            b(value, path, tmp)
            results.append(tmp)
            passed += not tmp
        if kw == "anyOf" and passed:
            return
        if kw == "oneOf" and (passed == 1 or (value is None and passed)):
            return
        if passed > 1:
            out.append(Violation(path, "oneOf", f"{describe(value)} matches more than one of the allowed forms"))
            return
        typed = [r for r in results if not (len(r) == 1 and r[0].code == "type" and r[0].path == path)]
        if not typed:
            types: set[str] = set()
            for sub in subs:
                t = sub.get("type") if isinstance(sub, dict) else None
                types.update([t] if isinstance(t, str) else (t or []))
            out.append(type_violation(path, types or {"string"}, value))
        elif len(typed) == 1:
            out.extend(typed[0])
        else:
            out.append(Violation(path, kw, f"{describe(value)} does not match any of the allowed forms"))
    return some_of


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: PathT) -> str:
    """``spec.services.Frontend.replicas``, ``spec.components[0].name``, ``metadata.labels["a/b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.match(part):
            out += ("." if out else "") + part
        else:
            out += f"[{json.dumps(part)}]"
    return out
