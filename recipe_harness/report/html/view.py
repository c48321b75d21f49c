"""What the top of ``report.html`` shows, read from a run's summary (the ``summary.json`` data).

Everything here is built from :meth:`recipe_harness.report.summary.Summary.to_dict` output (or a recorded
``summary.json``) plus what only the live session knows: the images a check recorded and the
suppressions a recipe declares. Perf metrics are read generically: a limit row is shown with every
field it carries (value, limit, margin, ``n``, intervals, verdicts ...), so new fields appear
without a change here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from recipe_harness.report.summary import SUITES as SUITE_ORDER
from recipe_harness.report.summary import group_of

OUTCOME_RANK = {"error": 0, "failed": 1, "passed": 3, "skipped": 4, "": 5}
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2, "suppressed": 3}
MAX_ARTIFACT_FILES = 8         # files listed per artifact folder (the rest is counted)
# files to open first in a folder: aiperf's exports and output, Kubernetes diagnostics
# (recipe_harness/deploy/kubernetes/diagnostics.py), then logs
FIRST_FILES = ("profile_export_aiperf.json", "profile_export_aiperf.csv", "profile_export.jsonl", "aiperf.out",
               "CUT.txt", "dgd.json", "events.txt", "pods.txt")
# where a run puts a recipe's files under the report folder: process logs (local target),
# diagnostics (kubernetes target), aiperf runs and plots (perf)
RECIPE_FOLDERS = ("logs", "kubernetes", "perf")


@dataclass(frozen=True)
class Image:
    title: str
    path: Path


@dataclass(frozen=True)
class SuppressionRow:
    """A suppression a recipe declares (``.recipe-harness.yaml``): its rule is not reported."""

    rule: str
    reason: str
    file: str
    line: int
    col: int = 0


@dataclass
class FindingRow:
    recipe: str
    check: str
    rule: str
    severity: str
    file: str
    line: int
    col: int
    message: str
    hint: str = ""
    suppression: str = ""

    @property
    def location(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.col}" if self.col else f"{self.file}:{self.line}"


@dataclass
class CheckView:
    name: str
    group: str
    outcome: str
    duration_s: float
    message: str
    findings: list[FindingRow]
    metrics: dict[str, Any]
    artifacts: list[str]
    notes: list[str]
    images: list[Image] = field(default_factory=list)


@dataclass
class SuiteVerdict:
    status: str        # passed | failed | skipped ("" when the suite did not run)
    detail: str        # failed check names, or passed/skipped counts


@dataclass
class Link:
    text: str
    href: str | None   # None: the file is outside the report folder (shown, not linked)


@dataclass
class Folder:
    """An artifact (a folder or a file) and the files in it worth opening first."""

    link: Link
    files: list[Link] = field(default_factory=list)
    more: int = 0      # files in the folder not listed


@dataclass
class RecipeView:
    id: str
    path: str
    outcome: str
    checks: list[CheckView]
    suites: dict[str, SuiteVerdict]
    suppressions: list[SuppressionRow] = field(default_factory=list)
    links: dict[str, list[Folder]] = field(default_factory=dict)   # "logs" / "aiperf exports" / "files"

    @property
    def findings(self) -> list[FindingRow]:
        return [f for c in self.checks for f in c.findings]

    def suppression_rows(self) -> list[FindingRow]:
        return [FindingRow(self.id, "suppressions", s.rule, "suppressed", s.file, s.line, s.col,
                           f"{s.rule} is not reported for this recipe", suppression=s.reason)
                for s in self.suppressions]


@dataclass
class RunView:
    recipes: list[RecipeView]          # failures first
    totals: dict[str, int]
    target: str | None
    exit_status: int | None
    duration_s: float | None
    suites: list[str]                  # suites present, in SUITE_ORDER

    @property
    def outcome(self) -> str:
        if any(r.outcome in ("error", "failed") for r in self.recipes):
            return "failed"
        if self.exit_status not in (None, 0, 5):
            return "failed"
        return "passed" if any(r.outcome == "passed" for r in self.recipes) else "skipped"

    def findings(self) -> list[FindingRow]:
        rows = [f for r in self.recipes for f in (*r.findings, *r.suppression_rows())]
        return sorted(rows, key=lambda f: (SEVERITY_RANK.get(f.severity, 9), f.recipe, f.file, f.line, f.col, f.rule))

    def perf_checks(self) -> list[tuple[RecipeView, CheckView]]:
        return [(r, c) for r in self.recipes for c in r.checks if c.group == "perf" and c.name == "perf"]


def anchor(recipe_id: str) -> str:
    """The fragment that opens a recipe's section: ``#qwen3-32b/vllm/disagg-kv-router``."""
    return "#" + quote(recipe_id, safe="/-_.~")


def build(summary: dict[str, Any], *, html_dir: Path | None = None,
          images: dict[tuple[str, str], list[Image]] | None = None,
          suppressions: dict[str, list[SuppressionRow]] | None = None) -> RunView:
    """The run as the report shows it. ``html_dir`` is the folder of ``report.html``: artifacts below
    it are linked relative to it (so the folder opens as a CI artifact); others are shown as paths."""
    images = images or {}
    suppressions = suppressions or {}
    recipes = []
    for rid, data in summary.get("recipes", {}).items():
        checks = []
        for name, c in data.get("checks", {}).items():
            found = [FindingRow(rid, name, f["rule"], f.get("severity", "error"), _display(f.get("file", "")),
                                int(f.get("line") or 0), int(f.get("col") or 0), f.get("message", ""),
                                f.get("hint") or "") for f in c.get("findings", [])]
            arts = [str(a) for a in c.get("artifacts", [])]
            imgs = images.get((rid, name))
            if imgs is None:    # a recorded summary: its PNG artifacts
                imgs = [Image(Path(a).stem, Path(a)) for a in arts if a.lower().endswith(".png")]
            checks.append(CheckView(name, group_of(name), c.get("outcome") or "error",
                                    float(c.get("durationSeconds") or 0.0), c.get("message", ""), found,
                                    dict(c.get("metrics") or {}), arts, list(c.get("notes", [])), list(imgs)))
        checks.sort(key=lambda c: (OUTCOME_RANK.get(c.outcome, 9), SUITE_ORDER.index(c.group), c.name))
        suites = {s: _suite_verdict([c for c in checks if c.group == s]) for s in SUITE_ORDER}
        recipe = RecipeView(rid, data.get("path", ""), data.get("outcome") or _worst(checks), checks,
                            {s: v for s, v in suites.items() if v.status},
                            list(suppressions.get(rid, [])))
        recipe.links = _links(checks, html_dir, rid)
        recipes.append(recipe)
    recipes.sort(key=lambda r: (OUTCOME_RANK.get(r.outcome, 9), r.id))
    present = [s for s in SUITE_ORDER if any(s in r.suites for r in recipes)]
    return RunView(recipes, dict(summary.get("totals", {})), summary.get("target"),
                   summary.get("exitStatus"), summary.get("durationSeconds"), present)


def _worst(checks: list[CheckView]) -> str:
    outcomes = {c.outcome for c in checks}
    return next((o for o in ("error", "failed", "passed") if o in outcomes), "skipped")


def _suite_verdict(checks: list[CheckView]) -> SuiteVerdict:
    if not checks:
        return SuiteVerdict("", "")
    bad = [c.name for c in checks if c.outcome in ("failed", "error")]
    passed = sum(1 for c in checks if c.outcome == "passed")
    skipped = sum(1 for c in checks if c.outcome == "skipped")
    if bad:
        return SuiteVerdict("failed", ", ".join(bad))
    if not passed:
        return SuiteVerdict("skipped", "skipped")
    return SuiteVerdict("passed", f"{passed} passed" + (f", {skipped} skipped" if skipped else ""))


def _display(file: str) -> str:
    """A finding's file relative to the working directory when it lies below it."""
    if not file or not os.path.isabs(file):
        return file
    try:
        rel = os.path.relpath(file)
    except ValueError:  # pragma: no cover - other drive on Windows
        return file
    return file if rel.startswith("..") else rel


def _kind(path: Path) -> str:
    """``logs`` (process logs, pod diagnostics), ``aiperf exports`` or ``files``; ``path`` is relative to
    the report folder when it lies inside it, so the folder's own name does not count."""
    parts = path.parts
    if "logs" in parts[:2] or "kubernetes" in parts:
        return "logs"
    if "perf" in parts[:1] or any(p.startswith("trial-") for p in parts) or path.name.startswith("profile_export"):
        return "aiperf exports"
    return "files"


def _links(checks: list[CheckView], html_dir: Path | None, recipe_id: str) -> dict[str, list[Folder]]:
    """The logs and aiperf exports the checks name (images are shown inline instead), and the recipe's
    folders in the report folder that no check names (a deployment that failed records no artifacts,
    but its logs and diagnostics are there). Each folder with the files to open first: aiperf's
    exports and output, diagnostics, logs; hidden files and deep copies last."""
    named = [a for c in checks for a in c.artifacts if not a.lower().endswith(".png")]
    if html_dir is not None:
        covered = [Path(a).resolve() for a in named]
        for top in RECIPE_FOLDERS:
            folder = (html_dir / top / recipe_id).resolve()
            if folder.is_dir() and not any(folder == p or folder in p.parents or p in folder.parents for p in covered):
                named.append(str(folder))
    out: dict[str, list[Folder]] = {}
    seen: set[str] = set()
    for a in named:
        if a not in seen:
            seen.add(a)
            path = Path(a)
            rel = _relative(path, html_dir)
            folders = out.setdefault(_kind(Path(rel) if rel else path), [])
            if rel is None:
                folders.append(Folder(Link(a, None)))
            elif not path.is_dir():
                folders.append(Folder(Link(rel, rel if path.exists() else None)))
            else:
                files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: _file_rank(p, path))
                listed = [Link(p.relative_to(path).as_posix(), _relative(p, html_dir)) for p in files[:MAX_ARTIFACT_FILES]]
                folders.append(Folder(Link(rel + "/", rel + "/"), listed, max(0, len(files) - MAX_ARTIFACT_FILES)))
    return out


def _file_rank(p: Path, top: Path) -> tuple[int, int, int, str]:
    """Hidden files and aiperf's per-phase copies last; the files of FIRST_FILES first, then logs."""
    rel = p.relative_to(top)
    aside = any(part.startswith(".") for part in rel.parts) or "phases" in rel.parts
    first = FIRST_FILES.index(p.name) if p.name in FIRST_FILES else len(FIRST_FILES)
    return (int(aside), first, int(p.suffix != ".log"), rel.as_posix())


def _relative(path: Path, html_dir: Path | None) -> str | None:
    """``path`` relative to the report's folder, when it lies inside it."""
    if html_dir is None:
        return None
    try:
        return path.resolve().relative_to(html_dir.resolve()).as_posix()
    except (ValueError, OSError):
        return None
