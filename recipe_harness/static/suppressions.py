"""Per-recipe suppressions: ``.recipe-harness.yaml`` in the recipe folder (or a parent up to the model
folder) lists rules to skip, each with a reason::

    suppress:
      - rule: RH312
        reason: "perf-cache is only mounted by the benchmark Job"

Only rules with a check function (structure and semantic rules) can be suppressed; loading and schema
findings cannot. A suppression without a reason suppresses nothing. Reasonless, unknown and unused
suppressions are findings of the ``suppressions`` check (RH390-RH392).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.findings import Finding
from recipe_harness.load.manifests import load_file
from recipe_harness.model.bundle import LoadedRecipe

CHECK = "suppressions"
_RULE_ID = re.compile(r"^RH\d{3}$")


@dataclass
class Suppression:
    rule: str
    reason: str
    file: str
    line: int
    col: int

    @property
    def valid(self) -> bool:
        return bool(self.reason.strip())


@dataclass
class SuppressionFile:
    path: Path
    entries: list[Suppression] = field(default_factory=list)
    problems: list[tuple[str, int, int]] = field(default_factory=list)  # (message, line, col)


_CACHE: dict[tuple[str, int, int], SuppressionFile] = {}


def load(path: Path) -> SuppressionFile:
    """Parse a suppressions file (cached by path, modification time and size)."""
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = (str(path), 0, 0)
    if key in _CACHE:
        return _CACHE[key]
    out = SuppressionFile(path)
    result = load_file(path)
    if result.findings:
        f = result.findings[0]
        out.problems.append((f"cannot read suppressions: {f.message}", f.line or 1, f.col or 1))
    elif len(result.documents) != 1 or not isinstance(result.documents[0].body, dict):
        out.problems.append(("suppressions file must be one YAML mapping with a `suppress:` list", 1, 1))
    else:
        doc = result.documents[0]
        items = doc.body.get("suppress")
        unknown_keys = sorted(str(k) for k in doc.body if k != "suppress")
        if unknown_keys:
            line, col = doc.key_pos((unknown_keys[0],))
            out.problems.append((f"unknown key {unknown_keys[0]!r} (only `suppress:` is read)", line, col))
        if not isinstance(items, list):
            line, col = doc.pos(("suppress",))
            out.problems.append(("`suppress:` must be a list of {rule: RHnnn, reason: ...} entries", line, col))
            items = []
        for i, item in enumerate(items):
            line, col = doc.pos(("suppress", i))
            if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
                out.problems.append(("suppression entry needs `rule: RHnnn`", line, col))
                continue
            reason = item.get("reason")
            out.entries.append(Suppression(item["rule"].strip(), reason.strip() if isinstance(reason, str) else "",
                                           str(path), line, col))
    _CACHE[key] = out
    return out


def for_recipe(recipe: LoadedRecipe) -> SuppressionFile | None:
    path = recipe.recipe.suppressions_file
    return load(path) if path is not None else None


def active(recipe: LoadedRecipe, suppressible: Callable[[str], bool]) -> dict[str, Suppression]:
    """Rule id -> the suppression that skips it (entries with a reason for rules ``suppressible`` accepts:
    the rule registry's :func:`~recipe_harness.static.rules.suppressible`)."""
    sf = for_recipe(recipe)
    if sf is None:
        return {}
    return {s.rule: s for s in sf.entries if s.valid and _RULE_ID.match(s.rule) and suppressible(s.rule)}


def apply(recipe: LoadedRecipe, check: str, findings: list[Finding],
          suppressible: Callable[[str], bool]) -> list[Finding]:
    """Drop the findings of suppressed rules (the suppressions check itself is never suppressed)."""
    if check == CHECK or not findings:
        return findings
    skip = active(recipe, suppressible)
    if not skip:
        return findings
    return [f for f in findings if f.rule not in skip]
