"""CEL validation rules (``x-kubernetes-validations``) of a schema node, evaluated as the apiserver does.

A CustomResourceDefinition puts ``x-kubernetes-validations: [{rule, message, fieldPath, ...}]`` on
schema nodes; the apiserver evaluates each rule with ``self`` bound to the value at that node and
rejects the object with the rule's ``message`` (``<path>: Invalid value: <message>``) when the rule
is false or fails to evaluate (``k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel``).

Rules are compiled once per rule text and process (:func:`compile_rule`) with the
``common-expression-language`` bindings (the Rust ``cel`` crate), plus the functions of the
cel-go extension libraries the apiserver enables that the crate lacks: the strings library
(``lowerAscii``, ``upperAscii``, ``trim``, ``indexOf`` ...) and Kubernetes' quantity and lists
libraries (``quantity()``, ``isQuantity()``, ``isGreaterThan`` ...:
``k8s.io/apiserver/pkg/cel/library/quantity.go``, ``lists.go``).

Only the native extension module ``cel.cel`` is loaded: the ``cel`` package's ``__init__`` also
imports its command-line REPL (typer, prompt_toolkit, pygments), which costs about a second at
every start of the harness.

What the apiserver does and this module copies:

* defaults of the node's properties are applied before rules run (structural defaulting
  happens before validation);
* a rule runs only on a value of the node's type, and not when the node has schema errors
  below it (the type errors are what is reported then);
* transition rules (those using ``oldSelf``) do not run on create, unless
  ``optionalOldSelf: true``, where ``oldSelf`` is an empty optional;
* ``messageExpression`` is evaluated for the message, falling back to ``message``, then to
  ``failed rule: <rule>``; ``fieldPath`` moves the error to a field below the node.

A rule that uses a function none of these libraries provide is not guessed at: it is reported
once as a note (RH207) by the caller, never as a violation.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_cel() -> ModuleType:
    """The native module of ``common-expression-language`` (``cel.cel``), without the package's REPL."""
    if "cel.cel" in sys.modules:
        return sys.modules["cel.cel"]
    spec = importlib.util.find_spec("cel")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        for so in sorted(Path(folder).glob("cel.*")):
            if so.suffix in (".so", ".pyd"):
                ext = importlib.util.spec_from_file_location("cel.cel", so)
                if ext is not None and ext.loader is not None:
                    module = importlib.util.module_from_spec(ext)
                    ext.loader.exec_module(module)
                    # a PyO3 module initialises process-wide state (its logger) once: keep it where a
                    # re-import of this module finds it instead of initialising it again
                    sys.modules["cel.cel"] = module
                    return module
    import cel  # noqa: PLC0415  # an unusual install layout: the whole package

    return cel


cel = _load_cel()

PathT = tuple[str | int, ...]

_UNDEFINED = "Undefined variable or function"
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# quantity suffixes, k8s.io/apimachinery/pkg/api/resource/suffix.go
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


class CelUnsupported(Exception):
    """A rule that cannot be evaluated offline (a function no library here provides)."""


def parse_quantity(text: Any) -> float:
    """The value of a Kubernetes quantity (``500m``, ``16Gi``, ``1e3``); ``ValueError`` if it is not one."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, (int, float)):
        return float(text)
    m = _QUANTITY_RE.match(str(text).strip())
    if m is None:
        raise ValueError(f"{text!r} is not a quantity")
    number, exponent, suffix = m.groups()
    if exponent:
        return float(number + exponent)
    return float(number) * (_BINARY.get(suffix or "") or _DECIMAL[suffix or ""])


def _is_quantity(text: Any) -> bool:
    try:
        parse_quantity(text)
        return True
    except ValueError:
        return False


def _k8s_functions() -> dict[str, Callable[..., Any]]:
    """cel-go's strings extension and Kubernetes' quantity and lists libraries (a quantity is its value
    as a double); method calls ``x.f(a)`` reach them as ``f(x, a)``."""
    return {
        "lowerAscii": lambda s: s.translate(_LOWER),
        "upperAscii": lambda s: s.translate(_UPPER),
        "trim": lambda s: s.strip(),
        "indexOf": lambda s, sub, *start: s.find(sub, *start) if isinstance(s, str) else list(s).index(sub),
        "lastIndexOf": lambda s, sub: s.rfind(sub),
        "replace": lambda s, old, new, *n: s.replace(old, new, *n),
        "split": lambda s, sep, *n: s.split(sep, *(m - 1 for m in n if m >= 0)),
        "substring": lambda s, a, *b: s[a:b[0]] if b else s[a:],
        "join": lambda xs, sep="": sep.join(xs),
        "quantity": parse_quantity,
        "isQuantity": _is_quantity,
        "isGreaterThan": lambda a, b: float(a) > float(b),
        "isLessThan": lambda a, b: float(a) < float(b),
        "compareTo": lambda a, b: (float(a) > float(b)) - (float(a) < float(b)),
        "asApproximateFloat": float,
        "asInteger": lambda a: int(float(a)),
        "isInteger": lambda a: float(a).is_integer(),
        "sign": lambda a: (float(a) > 0) - (float(a) < 0),
        # lists library, k8s.io/apiserver/pkg/cel/library/lists.go
        "isSorted": lambda xs: list(xs) == sorted(xs),
    }


@dataclass(frozen=True)
class CelRule:
    """One entry of ``x-kubernetes-validations``, compiled."""

    rule: str
    message: str
    program: Any  # cel.Program
    message_program: Any = None
    field_path: PathT = ()
    transition: bool = False
    optional_old_self: bool = False

    def shown_message(self) -> str:
        return self.message or f"failed rule: {self.rule}"


@dataclass(frozen=True)
class CelFailure:
    """A rule that is false (``error`` empty) or that failed to evaluate."""

    rule: CelRule
    path: PathT
    message: str
    unsupported: bool = False


@functools.lru_cache(maxsize=4096)
def compile_rule(rule: str) -> Any:
    """The compiled program of a rule text; each text is compiled once per process.

    Raises ``ValueError`` with the parser's message for a rule that does not parse.
    """
    return cel.compile(rule)


_FIELD_PATH_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['([^']*)'\]|\[(\d+)\]")


def parse_field_path(text: str) -> PathT:
    """``.spec.replicas`` / ``['a.b'].c`` / ``.items[0]`` as a path tuple; ``ValueError`` if malformed."""
    out: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _FIELD_PATH_RE.match(text, pos)
        if m is None:
            raise ValueError(f"fieldPath {text!r} is not a JSON path such as .spec.field or ['key']")
        name, quoted, index = m.groups()
        out.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = m.end()
    return tuple(out)


def compile_validations(entries: Any) -> list[CelRule]:
    """The ``x-kubernetes-validations`` list of a schema node, compiled; ``ValueError`` says what is wrong."""
    if not isinstance(entries, list):
        raise ValueError("x-kubernetes-validations must be a list of {rule, message}")
    rules: list[CelRule] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("rule"), str) or not entry["rule"].strip():
            raise ValueError(f"x-kubernetes-validations[{i}] needs a rule (a CEL expression)")
        try:
            program = compile_rule(entry["rule"])
            message_program = compile_rule(entry["messageExpression"]) if entry.get("messageExpression") else None
        except ValueError as exc:
            raise ValueError(f"x-kubernetes-validations[{i}]: {exc}") from None
        field_path = parse_field_path(entry["fieldPath"]) if entry.get("fieldPath") else ()
        rules.append(CelRule(rule=entry["rule"], message=str(entry.get("message") or ""), program=program,
                             message_program=message_program, field_path=field_path,
                             transition="oldSelf" in program.variables(),
                             optional_old_self=bool(entry.get("optionalOldSelf"))))
    return rules


class _Env(threading.local):
    """One evaluation context per thread (``cel.Context`` is not thread-safe), functions added once."""

    def __init__(self) -> None:
        self.ctx = cel.Context()
        for name, fn in _k8s_functions().items():
            self.ctx.add_function(name, fn)


_ENV = _Env()


def _plain(value: Any) -> Any:
    """YAML values as CEL sees JSON: map keys are strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _run(program: Any, value: Any, old_self: bool) -> Any:
    ctx = _ENV.ctx
    ctx.add_variable("self", value)
    if old_self:
        ctx.add_variable("oldSelf", cel.OptionalValue.none())
    return program.execute(ctx)


def evaluate(rules: list[CelRule], value: Any, path: PathT) -> list[CelFailure]:
    """Evaluate compiled rules with ``self`` = ``value`` (the node at ``path``); the failures."""
    failures: list[CelFailure] = []
    plain = _plain(value)
    for r in rules:
        if r.transition and not r.optional_old_self:
            continue  # transition rules run on update only
        try:
            ok = _run(r.program, plain, r.transition)
        except Exception as exc:  # the bindings raise KeyError, TypeError, RuntimeError, ValueError
            text = str(exc.args[0]) if exc.args else type(exc).__name__
            if _UNDEFINED in text:
                failures.append(CelFailure(r, path, text, unsupported=True))
            else:
                shown = f"no such key: {text}" if isinstance(exc, KeyError) else text
                failures.append(CelFailure(r, path + r.field_path, f"{shown} evaluating rule: {r.shown_message()}"))
            continue
        if ok is True:
            continue
        if ok is not False:
            failures.append(CelFailure(r, path, f"rule {r.rule!r} gave {ok!r}, not a boolean"))
            continue
        message = r.shown_message()
        if r.message_program is not None:
            try:
                shown = _run(r.message_program, plain, r.transition)
                if isinstance(shown, str) and shown.strip():
                    message = shown
            except Exception:  # the apiserver falls back to message when messageExpression fails
                pass
        failures.append(CelFailure(r, path + r.field_path, message))
    return failures


def apply_defaults(value: Any, properties: dict[str, Any] | None) -> Any:
    """``value`` with the ``default`` of each absent property filled in (a copy, one level)."""
    if not isinstance(value, dict) or not properties:
        return value
    missing = {k: sub["default"] for k, sub in properties.items()
               if isinstance(sub, dict) and "default" in sub and k not in value}
    return {**value, **missing} if missing else value
