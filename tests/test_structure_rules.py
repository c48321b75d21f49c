"""Structure rules: each fixture tree breaks one rule; the suite and the API report exactly it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.checks import StaticChecker

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "structure"
EXPECTED = yaml.safe_load((FIXTURES / "expected.yaml").read_text())


def structure_findings(tree: Path):
    d = discover(tree / "recipes")
    checker = StaticChecker(discovery=d)
    return [f for r in d.recipes for f in checker.run(LoadedRecipe.load(r), "structure")]


def test_good_tree_is_clean():
    assert structure_findings(FIXTURES / "good") == []


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_fixture_breaks_exactly_its_rule(case):
    rule, rel, line = EXPECTED[case]
    findings = structure_findings(FIXTURES / case)
    assert [(f.rule, Path(f.file).relative_to(FIXTURES / case / "recipes").as_posix(), f.line) for f in findings] == [
        (rule, rel, line)
    ]
    assert findings[0].hint, "every rule carries a fix hint"


@pytest.mark.parametrize("case", ["RH103", "RH106"])
def test_suite_fails_the_structure_check_with_the_finding(pytester, case):
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_static import *\n")
    report = pytester.path / "out"
    result = pytester.runpytest(
        "--recipes-root", str(FIXTURES / case / "recipes"), "-p", "no:cacheprovider", "--report-dir", str(report),
    )
    rule, rel, line = EXPECTED[case]
    result.stdout.fnmatch_lines([f"*{rel}:{line}:1: {rule} *", "*FAILED*test_static?tiny/vllm/agg::structure*"])
    summary = json.loads((report / "summary.json").read_text())
    check = summary["recipes"]["tiny/vllm/agg"]["checks"]["structure"]
    assert check["outcome"] == "failed"
    assert [(f["rule"], f["line"]) for f in check["findings"]] == [(rule, line)]
