"""Repeated perf runs on the local target, recorded by ``bench/perf_flip_bench.py --record``: the
operating point (c8) of mocker-tiny/mocker/agg, real Dynamo frontend + mocker, real aiperf.

- ``rep-1`` .. ``rep-5``: the same run (100 requests) five times: the intervals overlap and no rerun
  is a regression against the first;
- ``slow``: the mocker's ``--speedup-ratio`` halved: a regression against the stored baseline;
- ``few``: the 8 requests the plain 0.05 scaling sends: its p99 is never a pass.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from recipe_harness.deploy import Endpoint
from recipe_harness.exercise.perf import baseline as bl
from recipe_harness.exercise.perf import check
from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfile, scale_points
from recipe_harness.exercise.perf.results import PointResult, parse_export
from recipe_harness.exercise.perf.thresholds import gate, load_thresholds

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "fixtures" / "perf" / "repeat" / "mocker-tiny_mocker_agg"
THRESHOLDS = ROOT / "recipes" / "mocker-tiny" / "mocker" / "agg" / "thresholds.yaml"
GATED = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "output_tokens_per_s_per_gpu")
REPS = [f"rep-{i}" for i in range(1, 6)]


def run(name: str) -> PointResult:
    return parse_export(RUNS / name, concurrency=8)


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    monkeypatch.setattr(check, "_plots", lambda *a, **k: None)


def summarise(tmp_path: Path, results: list[PointResult], **settings) -> check.PerfOutcome:
    t = load_thresholds(THRESHOLDS)
    profile = PerfProfile(file="perf.yaml", line=1, streaming=True, isl=512, osl=128,
                          points=[PerfPoint(concurrency=8, request_count=len(results[0].records.ttft))])
    plan = check.PerfPlan("mocker-tiny/mocker/agg", profile, t, t.profiles["cpu-mocker"])
    s = check.PerfSettings(aiperf=Path("aiperf"), out_dir=tmp_path / "out", **settings)
    out = check.PerfOutcome()
    check._summarise(plan, Endpoint("http://127.0.0.1:1", "tiny", "local", plan.recipe_id), s, profile.points,
                     scale_points(profile.points)[1], {}, {0: results}, out, 1.0, False)
    return out


def test_recorded_runs_are_what_they_say():
    assert [len(run(n).records.ttft) for n in REPS] == [100] * 5
    assert len(run("slow").records.ttft) == 100 and len(run("few").records.ttft) == 8


def test_the_same_run_repeated_gives_overlapping_intervals():
    """With the local target's run-to-run noise in the interval, every pair of the five reruns overlaps;
    a run's bootstrap alone (its requests only) does not cover what changes between runs."""
    bootstrap_only_apart = 0
    for metric in GATED:
        ests = [check.estimate([run(n)], metric, 1, check.DEFAULT_LOCAL_RUN_NOISE) for n in REPS]
        assert all(e.sufficient and e.has_interval for e in ests), metric
        apart = [(a, b) for (a, ea), (b, eb) in itertools.combinations(zip(REPS, ests, strict=True), 2)
                 if not ea.overlaps(eb)]
        assert apart == [], f"{metric}: intervals of {apart} do not overlap"
        narrow = [check.estimate([run(n)], metric) for n in REPS]
        bootstrap_only_apart += sum(1 for a, b in itertools.combinations(narrow, 2) if not a.overlaps(b))
    assert bootstrap_only_apart > 0


def test_a_rerun_at_the_same_speed_is_not_a_regression(tmp_path):
    base_dir = tmp_path / "baselines"
    out = summarise(tmp_path, [run("rep-1")], baseline_dir=base_dir, update_baseline=True)
    assert out.metrics["baseline"]["status"] == "updated"
    for name in REPS[1:]:
        out = summarise(tmp_path, [run(name)], baseline_dir=base_dir)
        info = out.metrics["baseline"]
        assert info["status"] == "compared", (name, info)
        assert [c["metric"] for c in info["comparisons"] if c["regressed"]] == [], name
        assert out.failures == [] and out.metrics["verdict"] == "pass", (name, out.failures)


def test_a_halved_mocker_speedup_is_a_regression(tmp_path):
    base_dir = tmp_path / "baselines"
    summarise(tmp_path, [run("rep-1")], baseline_dir=base_dir, update_baseline=True)
    out = summarise(tmp_path, [run("slow")], baseline_dir=base_dir)
    info = out.metrics["baseline"]
    regressed = {c["metric"] for c in info["comparisons"] if c["regressed"]}
    assert info["status"] == "regressed" and out.metrics["verdict"] == "fail"
    assert {"itl_p50", "output_tokens_per_s_per_gpu"} <= regressed
    assert all(c["separated"] for c in info["comparisons"] if c["regressed"])
    assert any("regression against baseline" in f and "itl_p50" in f for f in out.failures)


def test_p99_of_the_plain_scaled_run_is_never_a_pass(tmp_path):
    few = run("few")
    # aiperf's own p99 of 8 requests is well under the 5 s limit: before, that was a pass
    assert few.metric("ttft_p99") < 5000
    hw = load_thresholds(THRESHOLDS).profiles["cpu-mocker"]
    status = {v.limit.metric: v.status for v in gate(hw, lambda m: check.estimate([few], m, hw.gpus))}
    assert status["ttft_p99"] == status["itl_p99"] == "insufficient samples"
    out = summarise(tmp_path, [few])
    assert out.metrics["verdict"] == "inconclusive" and not any(
        v["passed"] for v in out.metrics["limits"] if v["metric"].endswith("_p99"))


def test_trials_pooled_from_repeated_runs(tmp_path):
    """Two recorded runs as two trials: 200 requests pooled, an interval that spans both."""
    a, b = run("rep-1"), run("rep-2")
    pooled = check.estimate([a, b], "ttft_p99")
    assert pooled.samples == 200 and pooled.trials == 2
    one = [check.estimate([r], "ttft_p99") for r in (a, b)]
    assert pooled.low <= max(e.value for e in one) and pooled.high >= min(e.value for e in one)
    out = summarise(tmp_path, [a, b], trials=2)
    assert out.metrics["operatingPoint"]["values"]["ttft_p99"]["trials"] == 2
    assert out.metrics["verdict"] == "pass"


def test_baseline_comparison_is_reproducible(tmp_path):
    """The fixed seed: the same records give byte-identical intervals in two reports."""
    first = summarise(tmp_path, [run("rep-3")]).metrics["limits"]
    second = summarise(tmp_path, [run("rep-3")]).metrics["limits"]
    assert first == second
    assert bl.SCHEMA_VERSION == 2
