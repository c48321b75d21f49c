"""Reports in ``--report-dir``: junit.xml (pytest), report.html (pytest-html, self-contained),
summary.json (schema: ``schemas/summary.schema.json``), summary.md and findings.sarif (SARIF 2.1.0).

Every harness test id is ``<recipe-id>::<check>``; a test adds findings, metrics and images to
its entry with the ``record`` fixture. At the end of the session the summary block of
:mod:`recipe_harness.report.html` (verdicts, findings, perf table, plots, one section per recipe)
is written under the title of pytest-html's report.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recipe_harness.findings import Finding, display_path
from recipe_harness.plugin.options import harness_of
from recipe_harness.report import html as report_html
from recipe_harness.report.html import Image, SuppressionRow
from recipe_harness.report.output.sarif import write_sarif
from recipe_harness.report.summary import CheckEntry, Summary, group_of
from recipe_harness.static import suppressions as sup

RECORD_KEY = pytest.StashKey["Record"]()
SUMMARY_KEY = pytest.StashKey[Summary]()
IMAGES_KEY = pytest.StashKey[dict[tuple[str, str], list[tuple[str, Path]]]]()
HTML_PATH_KEY = pytest.StashKey[Path]()


@dataclass
class Record:
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    images: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-report", "recipe-harness: reports")
    group.addoption("--report-dir", metavar="DIR", default=None,
                    help="write junit.xml, report.html, summary.json and summary.md here")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    report_dir = config.getoption("--report-dir", default=None)
    summary = Summary(recipes_root=str(harness_of(config).recipes_root))
    config.stash[SUMMARY_KEY] = summary
    if hasattr(config, "workerinput"):
        return
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(out / "junit.xml")
        if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
            config.option.htmlpath = str(out / "report.html")
            config.option.self_contained_html = True
    if getattr(config.option, "htmlpath", None):   # as pytest-html resolves it (basereport.BaseReport)
        config.stash[HTML_PATH_KEY] = Path.cwd() / Path(os.path.expandvars(config.option.htmlpath)).expanduser()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., Record]:
    """``record(findings=..., metrics=..., artifacts=..., images=[(title, png)], note=...)``."""
    rec = request.node.stash.setdefault(RECORD_KEY, Record())

    def add(*, findings=(), metrics=None, artifacts=(), images=(), note: str | None = None) -> Record:
        rec.findings.extend(findings)
        rec.metrics.update(metrics or {})
        rec.artifacts.extend(str(a) for a in artifacts)
        rec.images.extend((str(t), Path(p)) for t, p in images)
        if note:
            rec.notes.append(note)
        return rec

    return add


def split_id(item: pytest.Item) -> tuple[str, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "::" not in callspec.id:
        return None
    recipe_id, _, check = callspec.id.rpartition("::")
    return recipe_id, check


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    ids = split_id(item)
    if ids is None:
        return
    rec = item.stash.get(RECORD_KEY, None)
    summary = item.config.stash[SUMMARY_KEY]
    recipe_id, check = ids
    if summary.target is None and {"deployed", "endpoint"} & set(getattr(item, "fixturenames", ())):
        summary.target = item.config.getoption("--target", default=None)
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown" and report.passed:
        return
    path = "" if recipe_id in summary.recipes else _recipe_path(item, recipe_id)  # the recipe's first report only
    entry = summary.entry(recipe_id, check, path=path)
    if report.when == "call" or entry.outcome in ("", "passed"):
        entry.outcome = "error" if (report.when != "call" and report.failed) else report.outcome
        if report.when == "call":
            entry.duration_s = round(report.duration, 3)
        if report.skipped:
            entry.message = _skip_reason(report)
        elif report.failed:
            entry.message = _short(report.longreprtext)
    if rec is not None:
        entry.findings = list(rec.findings)
        entry.metrics = dict(rec.metrics)
        entry.artifacts = list(rec.artifacts) + [str(p) for _, p in rec.images]
        entry.notes = list(rec.notes)
        item.config.stash.setdefault(IMAGES_KEY, {})[(recipe_id, check)] = list(rec.images)


def _recipe_path(item: pytest.Item, recipe_id: str) -> str:
    harness = harness_of(item.config)
    for r in harness.recipes:
        if r.id == recipe_id:
            try:
                return r.deploy_file.relative_to(harness.recipes_root).as_posix()
            except ValueError:
                return str(r.deploy_file)
    return ""


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def _short(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 20] + "\n... (truncated)"


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report) -> None:
    report.title = "recipe-harness report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix, summary, postfix, session) -> None:
    data = session.config.stash.get(SUMMARY_KEY, None)
    if data is not None and data.recipes and HTML_PATH_KEY in session.config.stash:
        prefix.append('<p><a href="#rh-summary">Results by recipe</a> are at the top of this page.</p>')


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SUMMARY_KEY].started = time.time()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    report_dir = config.getoption("--report-dir", default=None)
    if not report_dir or hasattr(config, "workerinput"):
        return
    summary = config.stash[SUMMARY_KEY]
    summary.finished = time.time()
    summary.exit_status = int(exitstatus)
    out = Path(report_dir)
    summary.write(out)
    write_sarif(out / "findings.sarif", [f for r in summary.recipes.values() for c in r.checks.values() for f in c.findings])


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest-html wrote report.html (in its ``pytest_sessionfinish``): the summary block on top."""
    path = config.stash.get(HTML_PATH_KEY, None)
    summary = config.stash.get(SUMMARY_KEY, None)
    if path is None or summary is None or hasattr(config, "workerinput") or not path.is_file():
        return
    if not summary.started or path.stat().st_mtime < summary.started:
        return      # pytest-html did not write it in this session (a usage error): an older run's file
    try:
        block = report_html.render(summary.to_dict(), html_dir=path.parent, images=_images(config),
                                   suppressions=_suppressions(config, summary))
        report_html.write_into(path, block)
    except (report_html.InjectError, OSError, ValueError) as exc:
        print(f"recipe-harness: the summary could not be written into {path}: {exc}; "
              "summary.md and summary.json have the same results", file=sys.stderr)


def _images(config: pytest.Config) -> dict[tuple[str, str], list[Any]]:
    return {key: [Image(title, p) for title, p in imgs] for key, imgs in config.stash.get(IMAGES_KEY, {}).items()}


def _suppressions(config: pytest.Config, summary: Summary) -> dict[str, list[Any]]:
    """The suppressions of the recipes whose static checks ran (``.recipe-harness.yaml``)."""
    out: dict[str, list[Any]] = {}
    for recipe in harness_of(config).recipes:
        entry = summary.recipes.get(recipe.id)
        if entry is None or recipe.suppressions_file is None or not any(group_of(n) == "static" for n in entry.checks):
            continue
        loaded = sup.load(recipe.suppressions_file)
        rows = [SuppressionRow(s.rule, s.reason, _display(s.file), s.line, s.col) for s in loaded.entries if s.valid]
        if rows:
            out[recipe.id] = rows
    return out


def _display(file: str) -> str:
    return display_path(file)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    report_dir = config.getoption("--report-dir", default=None)
    if report_dir:
        terminalreporter.write_sep("-", f"recipe-harness reports in {report_dir}/ (summary.md, summary.json, report.html, junit.xml, findings.sarif)")


__all__ = ["CheckEntry", "Record", "record"]
