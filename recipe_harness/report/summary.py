"""summary.json and summary.md: the machine- and PR-readable results of a run.

The JSON layout is versioned and described by ``schemas/summary.schema.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_harness import __version__
from recipe_harness.findings import Finding

SCHEMA_VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "error")
_ICON = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "💥", "": "·"}


@dataclass
class CheckEntry:
    outcome: str = ""
    duration_s: float = 0.0
    message: str = ""
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "outcome": self.outcome or "error",
            "durationSeconds": self.duration_s,
            "findings": [
                {"rule": f.rule, "severity": f.severity.value, "file": f.file, "line": f.line, "col": f.col,
                 "message": f.message, "hint": f.hint}
                for f in self.findings
            ],
        }
        if self.message:
            data["message"] = self.message
        if self.metrics:
            data["metrics"] = self.metrics
        if self.artifacts:
            data["artifacts"] = self.artifacts
        if self.notes:
            data["notes"] = self.notes
        return data


@dataclass
class RecipeEntry:
    path: str = ""
    checks: dict[str, CheckEntry] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        outcomes = {c.outcome or "error" for c in self.checks.values()}
        for o in ("error", "failed", "passed"):
            if o in outcomes:
                return o
        return "skipped"


@dataclass
class Summary:
    recipes_root: str = ""
    recipes: dict[str, RecipeEntry] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    exit_status: int = 0
    target: str | None = None

    def entry(self, recipe_id: str, check: str, path: str = "") -> CheckEntry:
        recipe = self.recipes.setdefault(recipe_id, RecipeEntry(path=path))
        if path and not recipe.path:
            recipe.path = path
        return recipe.checks.setdefault(check, CheckEntry())

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        findings = 0
        for r in self.recipes.values():
            for c in r.checks.values():
                counts[c.outcome or "error"] += 1
                findings += len(c.findings)
        return {"recipes": len(self.recipes), "checks": sum(counts.values()), **counts, "findings": findings}

    def to_dict(self) -> dict[str, Any]:
        created = _dt.datetime.fromtimestamp(self.finished or self.started or 0, _dt.UTC)
        return {
            "schemaVersion": SCHEMA_VERSION,
            "tool": {"name": "recipe-harness", "version": __version__},
            "created": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "recipesRoot": self.recipes_root,
            "target": self.target,
            "exitStatus": self.exit_status,
            "durationSeconds": round(max(0.0, self.finished - self.started), 3),
            "totals": self.totals(),
            "recipes": {
                rid: {"path": r.path, "outcome": r.outcome,
                      "checks": {name: c.to_dict() for name, c in sorted(r.checks.items(), key=_check_order)}}
                for rid, r in sorted(self.recipes.items())
            },
        }

    def checks(self) -> list[str]:
        names: dict[str, None] = {}
        for r in self.recipes.values():
            for name in r.checks:
                names.setdefault(name, None)
        return [n for n, _ in sorted(((n, None) for n in names), key=_check_order)]

    def to_markdown(self, *, max_findings: int = 50) -> str:
        totals = self.totals()
        checks = self.checks()
        lines = [
            "## recipe-harness summary",
            "",
            f"{totals['recipes']} recipes, {totals['checks']} checks: "
            f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped, "
            f"{totals['error']} errors; {totals['findings']} findings.",
            "",
        ]
        present = {group_of(c) for c in checks}
        groups = [g for g in SUITES if g in present]
        if groups:
            lines.append("| Recipe | " + " | ".join(groups) + " |")
            lines.append("|---|" + "---|" * len(groups))
            for rid, r in sorted(self.recipes.items()):
                cells = [_group_cell({n: c for n, c in r.checks.items() if group_of(n) == g}) for g in groups]
                lines.append(f"| `{rid}` | " + " | ".join(cells) + " |")
            lines.append("")
        metric_rows = [(rid, name, c.metrics) for rid, r in sorted(self.recipes.items())
                       for name, c in r.checks.items() if c.metrics and isinstance(c.metrics.get("table"), dict)]
        if metric_rows:
            cols = list(dict.fromkeys(k for _, _, m in metric_rows for k in m["table"]))
            lines.append("| Recipe | Check | " + " | ".join(cols) + " |")
            lines.append("|---|---|" + "---|" * len(cols))
            for rid, name, m in metric_rows:
                lines.append(f"| `{rid}` | {name} | " + " | ".join(str(m["table"].get(c, "")) for c in cols) + " |")
            lines.append("")
        shown = 0
        problems = []
        for rid, r in sorted(self.recipes.items()):
            for name, c in r.checks.items():
                if c.outcome in ("failed", "error"):
                    for f in c.findings:
                        problems.append(f"- `{rid}::{name}` {_rel(f.file)}:{f.line}:{f.col}: **{f.rule}** {f.message}")
                    if not c.findings and c.message:
                        first = c.message.strip().splitlines()[-1][:300]
                        problems.append(f"- `{rid}::{name}` {first}")
        if problems:
            lines.append("### Failures")
            lines.append("")
            for p in problems:
                if shown >= max_findings:
                    lines.append(f"- ... and {len(problems) - shown} more (see summary.json)")
                    break
                lines.append(p)
                shown += 1
            lines.append("")
        return "\n".join(lines)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / "summary.json", json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        _atomic_write(out / "summary.md", self.to_markdown() + "\n")


_ORDER = ["yaml", "schema", "structure"]
GROUPS = ("smoke", "perf", "preflight", "predict")
SUITES = ("static", "preflight", "smoke", "perf", "predict")   # column order


def group_of(check: str) -> str:
    """The suite a check belongs to: ``smoke-*`` checks, ``perf``, ``preflight``, ``predict``; the rest is
    static (``perf-config`` is a static check of the perf manifest)."""
    return next((g for g in GROUPS if check == g or check.startswith(g + ":") or
                 (g in ("smoke", "predict") and check.startswith(g + "-"))), "static")


def _group_status(checks: dict[str, CheckEntry]) -> tuple[str, str]:
    """(status, text) of a suite's checks for one recipe: failed names, or passed/skipped counts."""
    if not checks:
        return "", ""
    bad = [n for n, c in checks.items() if c.outcome in ("failed", "error")]
    skipped = sum(1 for c in checks.values() if c.outcome == "skipped")
    passed = sum(1 for c in checks.values() if c.outcome == "passed")
    if bad:
        return "failed", ", ".join(bad)
    if not passed:
        return "skipped", "skipped"
    return "passed", f"{passed}" + (f" ({skipped} skipped)" if skipped else "")


def _group_cell(checks: dict[str, CheckEntry]) -> str:
    status, text = _group_status(checks)
    return f"{_ICON[status]} {text}".strip() if status != "skipped" else f"{_ICON[status]} skipped"


def _check_order(item) -> tuple[int, str]:
    name = item[0]
    base = name.split(":", 1)[0]
    return (_ORDER.index(base) if base in _ORDER else len(_ORDER), name)


def _rel(file: str) -> str:
    try:
        return os.path.relpath(file) if os.path.isabs(file) else file
    except ValueError:  # pragma: no cover
        return file


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
