"""Reports of a suite run: junit.xml, self-contained report.html, summary.json (valid against its
schema) and summary.md."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "fixtures" / "structure"
SCHEMA = json.loads((ROOT / "schemas" / "summary.schema.json").read_text())


@pytest.fixture
def run_suite(pytester):
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_static import *\n")

    def run(tree: Path, *args: str):
        out = pytester.path / "reports"
        result = pytester.runpytest("--recipes-root", str(tree), "-p", "no:cacheprovider", "--report-dir", str(out), *args)
        return result, out

    return run


def test_reports_are_written_and_valid(run_suite):
    result, out = run_suite(FIXTURES / "RH107" / "recipes")
    assert {p.name for p in out.iterdir()} >= {"junit.xml", "report.html", "summary.json", "summary.md"}

    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    recipe = summary["recipes"]["tiny/vllm/agg"]
    assert recipe["path"] == "tiny/vllm/agg/deploy.yaml"
    assert recipe["outcome"] == "failed"
    assert recipe["checks"]["yaml"]["outcome"] == "passed"
    structure = recipe["checks"]["structure"]
    assert structure["outcome"] == "failed"
    assert [(f["rule"], f["line"]) for f in structure["findings"]] == [("RH107", 1)]
    outcomes = result.parseoutcomes()
    assert summary["totals"]["failed"] == outcomes.get("failed", 0)
    assert summary["totals"]["passed"] == outcomes.get("passed", 0)
    assert summary["target"] is None

    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    names = {c.get("name") for c in cases}
    assert "test_static[tiny/vllm/agg::structure]" in names

    html = (out / "report.html").read_text()
    assert "tiny/vllm/agg::structure" in html
    assert not re.search(r'<(link|script)[^>]+(href|src)="(?!data:)[^"]+"', html), "report.html must be self-contained"

    md = (out / "summary.md").read_text()
    assert "| `tiny/vllm/agg` |" in md
    assert "**RH107**" in md


def test_clean_tree_passes_every_static_check(run_suite):
    result, out = run_suite(FIXTURES / "good" / "recipes")
    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    failed = {name: c["findings"] for name, c in summary["recipes"]["tiny/vllm/agg"]["checks"].items()
              if c["outcome"] != "passed"}
    assert failed == {}
    assert result.ret == 0


def test_no_recipes_is_a_usage_error_never_a_green_run(run_suite, tmp_path):
    result, _ = run_suite(tmp_path / "missing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: no recipes selected (--recipes-root*missing)*recipes root is not a folder*"])
    result, _ = run_suite(FIXTURES / "good" / "recipes", "--recipe", "nope/*")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: no recipes selected*--recipe nope/*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_suite_columns_of_summary_md():
    from recipe_harness.report.summary import Summary, group_of

    assert [group_of(c) for c in ("yaml", "perf-config", "smoke-chat", "perf", "preflight", "bench-fit")] == [
        "static", "static", "smoke", "perf", "preflight", "static"]
    s = Summary()
    for check, outcome in [("yaml", "passed"), ("perf-config", "passed"), ("smoke-chat", "passed"),
                           ("smoke-disagg", "skipped"), ("perf", "failed")]:
        s.entry("m/vllm/agg", check).outcome = outcome
    assert "| `m/vllm/agg` | ✅ 2 | ✅ 1 (1 skipped) | ❌ perf |" in s.to_markdown()
