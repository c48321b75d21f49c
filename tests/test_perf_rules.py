"""Perf configuration rules (RH40x): each fires on its fixture at the right file and line; the recipes
collection is clean."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import recipe_harness.static.rules as rules_pkg
from recipe_harness.findings import Severity
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "perf" / "rules"
PERF = "llama-3-70b/vllm/agg/perf.yaml"
THRESHOLDS = "llama-3-70b/vllm/agg/thresholds.yaml"

# case -> (file relative to the fixture's recipes/, line(s), severity, text in the first message)
EXPECTED = {
    "RH401": (THRESHOLDS, 13, Severity.ERROR, "unknown metric 'ttft_p77'"),
    "RH402": (PERF, 16, Severity.ERROR, "--concurrency"),
    "RH403": (PERF, 22, Severity.WARNING, "conversation_trace.jsonl"),
    "RH404": (PERF, 1, Severity.WARNING, "without thresholds.yaml"),
    "RH405": (THRESHOLDS, (12, 23, 33), Severity.ERROR, "h200-sxm: ttft_p50, ttft_p99, itl_p50, itl_p99 limits"),
    "RH406": (THRESHOLDS, 9, Severity.WARNING, "gpus is 8 but the deployment requests 4 GPUs"),
    "RH407": (PERF, 29, Severity.ERROR, "points c16, c32, c64 send 640 requests, the profile's minimum is 1024"),
}


@pytest.fixture(scope="module")
def perf_rules():
    """The RH40x rules; registered for this module only until perf_config is one of RULE_MODULES."""
    module = "recipe_harness.static.rules.perf_config"
    listed = "perf_config" in rules_pkg.RULE_MODULES
    rules_pkg.all_rules()                 # the registry as the rest of the suite knows it
    before = dict(rules_pkg._REGISTRY)
    __import__(module)
    yield rules_pkg.rules_for("perf-config")
    if not listed:
        rules_pkg._REGISTRY.clear()
        rules_pkg._REGISTRY.update(before)
        sys.modules.pop(module, None)


def findings(root: Path, rules) -> list:
    out = []
    for recipe in discover(root).recipes:
        loaded = LoadedRecipe.load(recipe)
        out += [f for r in rules for f in r.run(loaded)]
    return out


def test_every_perf_rule_has_a_fixture(perf_rules):
    assert sorted(r.id for r in perf_rules) == sorted(EXPECTED)
    assert all(r.doc and r.hint for r in perf_rules)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_rule_fires_on_its_fixture(case, perf_rules):
    rel, lines, severity, text = EXPECTED[case]
    lines = lines if isinstance(lines, tuple) else (lines,)
    root = FIXTURES / case / "recipes"
    found = findings(root, perf_rules)
    assert [(f.rule, Path(f.file).relative_to(root).as_posix(), f.line) for f in found] == [
        (case, rel, line) for line in lines]
    assert found[0].severity is severity and text in found[0].message and found[0].col >= 1
    assert found[0].recipe == "llama-3-70b/vllm/agg"


def test_recipes_collection_is_clean(perf_rules):
    if not (REPO / "recipes").is_dir():
        pytest.skip("no recipes/ in this checkout")
    assert [f.format() for f in findings(REPO / "recipes", perf_rules)] == []
