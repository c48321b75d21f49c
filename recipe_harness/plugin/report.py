"""Reports in ``--report-dir``: junit.xml (pytest), report.html (pytest-html, self-contained),
summary.json (schema: ``schemas/summary.schema.json``) and summary.md.

Every harness test id is ``<recipe-id>::<check>``; a test adds findings, metrics and images to
its entry with the ``record`` fixture.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..findings import Finding
from ..report import CheckEntry, Summary
from .options import harness_of

RECORD_KEY = pytest.StashKey["Record"]()
SUMMARY_KEY = pytest.StashKey[Summary]()


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
    if not report_dir or hasattr(config, "workerinput"):
        return
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(out / "junit.xml")
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(out / "report.html")
        config.option.self_contained_html = True


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
    if rec is not None and report.when == "call" and rec.images:
        _attach_images(item, report, rec)
    summary = item.config.stash[SUMMARY_KEY]
    recipe_id, check = ids
    if summary.target is None and {"deployed", "endpoint"} & set(getattr(item, "fixturenames", ())):
        summary.target = item.config.getoption("--target", default=None)
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown" and report.passed:
        return
    entry = summary.entry(recipe_id, check, path=_recipe_path(item, recipe_id))
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


def _attach_images(item: pytest.Item, report: pytest.TestReport, rec: Record) -> None:
    html = item.config.pluginmanager.getplugin("html")
    if html is None:
        return
    from pytest_html import extras

    current = getattr(report, "extras", [])
    for title, path in rec.images:
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError:
            continue
        current.append(extras.png(data, name=title))
    report.extras = current


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report) -> None:
    report.title = "recipe-harness report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix, summary, postfix, session) -> None:
    data = session.config.stash.get(SUMMARY_KEY, None)
    if data is not None and data.recipes:
        prefix.append(data.to_html())


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


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    report_dir = config.getoption("--report-dir", default=None)
    if report_dir:
        terminalreporter.write_sep("-", f"recipe-harness reports in {report_dir}/ (summary.md, summary.json, report.html, junit.xml)")


__all__ = ["CheckEntry", "Record", "record"]
