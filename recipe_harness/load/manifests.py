"""Safe, bounded YAML loading with a position for every node.

Nothing in a recipe is ever executed: only the YAML core tags are constructed, aliases are
expanded under a node budget ("billion laughs" stops in milliseconds), files are size-bounded,
duplicate keys are errors, and undecodable or binary files become findings, never exceptions.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_harness.findings import Finding

try:  # the C composer is ~10x faster; fall back to pure Python where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]  # the pure-Python loader, another class



def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's parser where it is installed (the same data, parsed ~10x faster);
    for YAML held in a manifest's strings (engine configs in ConfigMaps, JSON arguments). Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader


MAX_FILE_BYTES = 2 * 1024 * 1024
"""Largest manifest read (2 MiB; the largest real recipe is ~20 KB)."""

MAX_NODES = 200_000
"""Most YAML nodes constructed for one file, aliases counted each time they are expanded."""

MAX_DEPTH = 200

RULE_IO = "RH001"
RULE_SYNTAX = "RH002"
RULE_DUPLICATE_KEY = "RH003"
RULE_LIMIT = "RH004"
RULE_ENCODING = "RH005"
RULE_TAG = "RH006"
RULE_SHAPE = "RH007"

PathT = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    _STR,
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:binary",
}
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """One YAML document of a manifest file."""

    file: str
    index: int
    body: Any
    positions: dict[PathT, tuple[int, int]] = field(repr=False, default_factory=dict)
    start_line: int = 1

    @property
    def kind(self) -> str | None:
        return self.body.get("kind") if isinstance(self.body, dict) else None

    @property
    def api_version(self) -> str | None:
        return self.body.get("apiVersion") if isinstance(self.body, dict) else None

    @property
    def name(self) -> str | None:
        if not isinstance(self.body, dict):
            return None
        meta = self.body.get("metadata")
        return meta.get("name") if isinstance(meta, dict) else None

    @property
    def group(self) -> str:
        api = self.api_version or ""
        return api.split("/", 1)[0] if "/" in api else ""

    def pos(self, path: PathT = ()) -> tuple[int, int]:
        """(line, col) of the node at ``path``; the nearest existing ancestor if it is absent."""
        path = tuple(path)
        while path:
            hit = self.positions.get(path)
            if hit is not None:
                return hit
            path = path[:-1]
        return self.positions.get((), (self.start_line, 1))

    def key_pos(self, path: PathT) -> tuple[int, int]:
        """(line, col) of the *key* of the mapping entry at ``path`` (falls back to :meth:`pos`)."""
        hit = self.positions.get(("<key>",) + tuple(path))
        return hit if hit is not None else self.pos(path)

    def get(self, *path: str | int, default: Any = None) -> Any:
        node = self.body
        for part in path:
            if isinstance(node, dict) and isinstance(part, str):
                node = node.get(part, default)
            elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
                node = node[part]
            else:
                return default
        return node

    def finding(self, rule: str, message: str, path: PathT = (), *, key: bool = False, **kw: Any) -> Finding:
        line, col = self.key_pos(path) if key else self.pos(path)
        return Finding(file=self.file, line=line, col=col, rule=rule, message=message, **kw)


@dataclass
class LoadResult:
    file: str
    documents: list[Document]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings


class _Abort(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


_scalar_constructor = yaml.constructor.SafeConstructor()


class _Builder:
    """Turns a composed node graph into plain Python data, recording positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.findings: list[Finding] = []

    def _fail(self, node: yaml.Node, rule: str, message: str, hint: str = "") -> _Abort:
        mark = node.start_mark
        return _Abort(Finding(self.file, mark.line + 1, mark.column + 1, rule, message, hint=hint))

    def build(self, node: yaml.Node, positions: dict[PathT, tuple[int, int]]) -> Any:
        return self._node(node, (), positions, 0, set())

    def _node(self, node: yaml.Node, path: PathT, positions: dict, depth: int, active: set[int]) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._fail(
                node,
                RULE_LIMIT,
                f"document expands to more than {MAX_NODES} nodes (alias bomb or oversized manifest)",
                hint="remove YAML aliases that expand recursively; split very large files",
            )
        if depth > MAX_DEPTH:
            raise self._fail(node, RULE_LIMIT, f"nesting deeper than {MAX_DEPTH} levels")
        positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if id(node) in active:
            raise self._fail(node, RULE_LIMIT, "recursive YAML alias refers to itself")
        active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    raise self._fail(node, RULE_TAG, f"tag {node.tag!r} is not allowed in a manifest")
                return [self._node(child, path + (i,), positions, depth + 1, active) for i, child in enumerate(node.value)]
            if node.tag != _MAP or not isinstance(node, yaml.MappingNode):
                raise self._fail(node, RULE_TAG, f"tag {node.tag!r} is not allowed in a manifest",
                                 hint="recipes use plain YAML: remove language-specific tags")
            return self._mapping(node, path, positions, depth, active)
        finally:
            active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathT, positions: dict, depth: int, active: set[int]) -> dict:
        result: dict[Any, Any] = {}
        seen: dict[Any, yaml.Node] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    data = self._node(src, path, {}, depth + 1, active)
                    if not isinstance(data, dict):
                        raise self._fail(src, RULE_SHAPE, "merge key '<<' needs a mapping")
                    for k, v in data.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._fail(key_node, RULE_SHAPE, "mapping keys must be plain scalars")
            key = self._scalar(key_node)
            if isinstance(key, float) and math.isnan(key):
                key = "nan"
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise self._fail(
                    key_node,
                    RULE_DUPLICATE_KEY,
                    f"duplicate key {key!r} (first defined on line {first})",
                    hint="Kubernetes keeps only the last value; delete one of them",
                )
            seen[key] = key_node
            child = path + (key,)
            positions[("<key>",) + child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self._node(value_node, child, positions, depth + 1, active)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            raise self._fail(node, RULE_TAG, f"tag {tag!r} is not allowed in a manifest",
                             hint="recipes use plain YAML: remove language-specific tags")
        if tag == _STR:
            return node.value
        if tag == "tag:yaml.org,2002:timestamp":
            return node.value  # the apiserver sees timestamps as strings
        if tag == "tag:yaml.org,2002:binary":
            try:
                base64.b64decode(node.value, validate=False)
            except ValueError:
                raise self._fail(node, RULE_SYNTAX, "invalid !!binary value") from None
            return node.value
        try:
            return _scalar_constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self._fail(node, RULE_SYNTAX, f"invalid {tag.rsplit(':', 1)[-1]} scalar: {exc}") from None


_NUL = b"\x00"


def _decode(file: str, raw: bytes) -> tuple[str | None, Finding | None]:
    if _NUL in raw[:8192] or _NUL in raw:
        return None, Finding(file, 0, 0, RULE_ENCODING, "binary file (contains NUL bytes), not a YAML manifest",
                             hint="remove the file from the recipe or rename it to a non-YAML extension")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Finding(file, line, col, RULE_ENCODING,
                             f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                             hint="save the file as UTF-8")


def _syntax_finding(file: str, exc: yaml.YAMLError, text: str) -> Finding:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    hint = ""
    if "\t" in text and "tab" in str(problem).lower() or (mark is not None and _line(text, line).startswith("\t")):
        hint = "YAML forbids tabs for indentation; indent with spaces"
        if "tab" not in message:
            message += "; the line is indented with a tab"
    return Finding(file, line, col, RULE_SYNTAX, message, hint=hint)


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def loads(text: str, file: str = "<string>") -> LoadResult:
    """Parse YAML text (all documents). Never raises for bad input."""
    documents: list[Document] = []
    builder = _Builder(file)
    try:
        loader = _Loader(text)
        try:
            index = 0
            while loader.check_node():
                node = loader.get_node()
                if node is None:  # pragma: no cover
                    continue
                positions: dict[PathT, tuple[int, int]] = {}
                body = builder.build(node, positions)
                documents.append(Document(file, index, body, positions, node.start_mark.line + 1))
                index += 1
        finally:
            loader.dispose()
    except _Abort as abort:
        return LoadResult(file, documents, [abort.finding])
    except yaml.YAMLError as exc:
        return LoadResult(file, documents, [_syntax_finding(file, exc, text)])
    except RecursionError:
        return LoadResult(file, documents, [Finding(file, 0, 0, RULE_LIMIT, "YAML nesting too deep to parse")])
    return LoadResult(file, documents, [])


def _read(path: str | Path, max_bytes: int) -> bytes | LoadResult:
    """The file's bytes, or the result reporting why it cannot be a manifest (unreadable, too large)."""
    file = str(path)
    try:
        p = Path(path)
        size = p.stat().st_size
        if size > max_bytes:
            return LoadResult(file, [], [Finding(
                file, 0, 0, RULE_LIMIT,
                f"file is {size / 1048576:.1f} MiB, larger than the {max_bytes / 1048576:.0f} MiB limit for a manifest",
                hint="recipes hold small manifests; move data out of the recipe")])
        with p.open("rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        return LoadResult(file, [], [Finding(file, 0, 0, RULE_IO, f"cannot read file: {exc.strerror or exc}")])


def _load_bytes(file: str, raw: bytes) -> LoadResult:
    text, problem = _decode(file, raw)
    if problem is not None:
        return LoadResult(file, [], [problem])
    assert text is not None
    return loads(text, file)


def load_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> LoadResult:
    """Load every document of a manifest file, bounded in size; never raises for bad input."""
    raw = _read(path, max_bytes)
    return raw if isinstance(raw, LoadResult) else _load_bytes(str(path), raw)


_SHARED: dict[tuple[str, bytes], LoadResult] = {}
_SHARED_MAX = 4096


def load_file_shared(path: str | Path) -> LoadResult:
    """:func:`load_file`, parsed once per (path, content) in this process, for a file several checks of a
    recipe read (its thresholds.yaml). The file is read each call, so an edited file is parsed again; the
    result is shared between the callers, which must not modify it."""
    raw = _read(path, MAX_FILE_BYTES)
    if isinstance(raw, LoadResult):
        return raw
    key = (str(path), raw)
    hit = _SHARED.get(key)
    if hit is None:
        if len(_SHARED) >= _SHARED_MAX:
            del _SHARED[next(iter(_SHARED))]  # the oldest entry
        hit = _SHARED[key] = _load_bytes(str(path), raw)
    return hit


DGD_KIND = "DynamoGraphDeployment"
_DGD_RE = re.compile(rb"^\s*kind:\s*[\"']?DynamoGraphDeployment[\"']?\s*(#.*)?$", re.MULTILINE)


def mentions_dgd(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> bool:
    """Cheap pre-scan: does this file look like it holds a DynamoGraphDeployment?"""
    try:
        with path.open("rb") as fh:
            head = fh.read(max_bytes)
    except OSError:
        return False
    return bool(_DGD_RE.search(head))
