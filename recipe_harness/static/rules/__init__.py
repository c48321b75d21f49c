"""The rule registry: every conformance rule has an id, a check group, a severity, a one-line doc
and a fix hint. Rules are plain functions ``(LoadedRecipe) -> Iterable[Finding]``.

Rule modules register themselves on import with :func:`rule`; :func:`all_rules` imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from recipe_harness.findings import Finding, Severity
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.suppressions import CHECK as SUPPRESSIONS_CHECK

CheckFn = Callable[[LoadedRecipe], Iterable[Finding]]

CHECK_YAML = "yaml"
CHECK_SCHEMA = "schema"

RULE_MODULES = ("structure", "markers", "gpu", "gpu_memory", "storage", "model_identity", "wiring", "images", "bench_fit", "perf_config", "hygiene",
                "suppressed")
"""Modules of this package holding rules, in check order; each registers its rules on import."""


@dataclass(frozen=True)
class Rule:
    id: str
    check: str          # the static check (suite test) it belongs to: "structure", "gpu", "storage" ...
    doc: str            # one line: what it requires
    hint: str           # how to fix a finding
    severity: Severity
    fn: CheckFn | None = None

    def run(self, recipe: LoadedRecipe) -> list[Finding]:
        if self.fn is None:
            return []
        out: list[Finding] = []
        for f in self.fn(recipe):
            if f.rule != self.id:
                raise AssertionError(f"rule {self.id} produced a finding of {f.rule}")
            out.append(f)
        return out


_REGISTRY: dict[str, Rule] = {}
_loaded = False


def rule(id: str, check: str, doc: str, hint: str, severity: Severity = Severity.ERROR) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as rule ``id``."""

    def deco(fn: CheckFn) -> CheckFn:
        if id in _REGISTRY and _REGISTRY[id].fn is not fn:
            raise ValueError(f"rule id {id} registered twice")
        _REGISTRY[id] = Rule(id, check, doc.strip(), hint.strip(), severity, fn)
        return fn

    return deco


def describe(id: str, check: str, doc: str, hint: str, severity: Severity = Severity.ERROR) -> None:
    """Register a rule checked elsewhere (loading, discovery, schema) so it is documented with the rest."""
    _REGISTRY.setdefault(id, Rule(id, check, doc.strip(), hint.strip(), severity, None))


def all_rules() -> dict[str, Rule]:
    global _loaded
    if not _loaded:
        for name in RULE_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True
    return dict(sorted(_REGISTRY.items()))


def suppressible(rule_id: str) -> bool:
    """Whether a suppression may name ``rule_id``: a rule with a check function (loading and schema findings
    are not), other than the suppression checks themselves."""
    r = all_rules().get(rule_id)
    return r is not None and r.fn is not None and r.check != SUPPRESSIONS_CHECK


def rules_for(check: str) -> list[Rule]:
    return [r for r in all_rules().values() if r.check == check and r.fn is not None]


def rule_checks() -> list[str]:
    """Names of the static checks that rules belong to, in registration order."""
    seen: dict[str, None] = {}
    for r in all_rules().values():
        if r.fn is not None:
            seen.setdefault(r.check, None)
    return list(seen)


def static_checks() -> list[str]:
    """Names of the static checks, in the order they run: reading the files, the schemas, then the rule groups."""
    return [CHECK_YAML, CHECK_SCHEMA, *rule_checks()]


def make(rule_id: str, file: str, line: int, col: int, message: str, *, recipe: str = "") -> Finding:
    """A finding of a registered rule, carrying its severity and hint."""
    r = _REGISTRY[rule_id]
    return Finding(file=file, line=line, col=col, rule=rule_id, message=message, severity=r.severity,
                   hint=r.hint, recipe=recipe)
