"""aiperf exports (real ones, from fixtures/perf/make_exports.py), thresholds, the gate and baselines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recipe_harness.exercise.perf import baseline as bl
from recipe_harness.exercise.perf.results import ResultError, parse_export
from recipe_harness.exercise.perf.stats import Estimate
from recipe_harness.exercise.perf.thresholds import ThresholdsError, gate, load_thresholds

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "fixtures" / "perf" / "exports"
RECIPE_THRESHOLDS = sorted((ROOT / "recipes").glob("**/thresholds.yaml"))


def profiling_lines(path: Path) -> list[dict]:
    items = [json.loads(ln) for ln in path.read_text().splitlines()]
    return [i for i in items if i["metadata"].get("benchmark_phase") == "profiling"]


def test_successful_export():
    r = parse_export(EXPORTS / "ok", concurrency=2)
    raw = json.loads((EXPORTS / "ok" / "profile_export_aiperf.json").read_text())
    assert (r.ok_requests, r.error_requests, r.error_rate) == (6, 0, 0.0)
    assert r.ttft.p50 == pytest.approx(raw["time_to_first_token"]["p50"])
    assert r.ttft.p99 >= r.ttft.p50 > 0 and r.itl.p99 >= r.itl.p50 > 0 and r.e2e.p50 > r.ttft.p50
    assert r.output_tokens_per_s == pytest.approx(raw["output_token_throughput"]["avg"])
    assert r.good_request_fraction == 1.0 and r.goodput_requests_per_s == pytest.approx(r.requests_per_s)
    # per-request records: the warm-up request is left out
    assert len(r.records.ttft) == len(profiling_lines(EXPORTS / "ok" / "profile_export.jsonl")) == 6
    assert min(r.records.ttft) == pytest.approx(raw["time_to_first_token"]["min"])
    assert r.metric("ttft_p99") == r.ttft.p99
    assert r.metric("e2e_p50") == r.e2e.p50
    assert r.metric("output_tokens_per_s_per_gpu", gpus=4) == pytest.approx(r.output_tokens_per_s / 4)
    with pytest.raises(KeyError):
        r.metric("ttft_p42")


def test_export_with_server_errors():
    r = parse_export(EXPORTS / "errors", concurrency=2)
    assert (r.ok_requests, r.error_requests) == (3, 3)
    assert r.error_rate == 0.5 and r.metric("error_rate") == 0.5
    assert any("404" in e for e in r.error_summary)
    assert r.records.errors == 3 and len(r.records.ttft) == 3


def test_missing_or_incomplete_exports_are_clear_errors(tmp_path):
    with pytest.raises(ResultError, match="wrote no profile_export_aiperf.json"):
        parse_export(tmp_path)
    shutil.copy(EXPORTS / "ok" / "profile_export_aiperf.json", tmp_path)
    data = json.loads((tmp_path / "profile_export_aiperf.json").read_text())
    del data["time_to_first_token"]
    (tmp_path / "profile_export_aiperf.json").write_text(json.dumps(data))
    with pytest.raises(ResultError, match="lacks time_to_first_token.*streaming"):
        parse_export(tmp_path)
    assert parse_export(tmp_path, streaming=False).ttft is None
    (tmp_path / "profile_export_aiperf.json").write_text("{not json")
    with pytest.raises(ResultError, match="cannot read"):
        parse_export(tmp_path)


# --------------------------------------------------------------------------- thresholds and gate


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    return path


GOOD = """\
schemaVersion: 1
profiles:
  h200-sxm:
    description: 8x H200
    gpus: 8
    slo: {ttft: {value: 2, unit: s}, itl: {value: 50, unit: ms}, tpot: {value: 40, unit: ms}}
    limits:
      ttft_p50: {max: 0.6, unit: s}
      itl_p99: {max: 60, unit: ms}
      output_tokens_per_s_per_gpu: {min: 400, unit: tokens/s/gpu}
      error_rate: {max: 0.01, unit: ratio}
"""


def test_thresholds_units_and_goodput_slo(tmp_path):
    t = load_thresholds(write(tmp_path, GOOD))
    hw = t.profiles["h200-sxm"]
    assert hw.gpus == 8
    limits = {lim.metric: lim for lim in hw.limits}
    assert (limits["ttft_p50"].value, limits["ttft_p50"].unit, limits["ttft_p50"].line) == (600.0, "ms", 8)
    assert limits["output_tokens_per_s_per_gpu"].bound == "min"
    # ITL and TPOT are the same aiperf metric: the tighter SLO wins
    assert hw.goodput_slo() == {"time_to_first_token": 2000.0, "inter_token_latency": 40.0}


def test_invalid_thresholds_are_findings_at_their_lines(tmp_path):
    text = GOOD.replace("itl_p99: {max: 60, unit: ms}", "itl_p99: {max: 60, min: 1, unit: ms}") \
               .replace("error_rate: {max: 0.01, unit: ratio}", "error_pct: {max: 1, unit: ratio}") \
               .replace("ttft_p50: {max: 0.6, unit: s}", "ttft_p50: {max: 0.6, unit: minutes}")
    with pytest.raises(ThresholdsError) as exc:
        load_thresholds(write(tmp_path, text))
    found = [(f.rule, f.line, f.message) for f in exc.value.findings]
    assert [(rule, line) for rule, line, _ in found] == [("RH401", 8), ("RH401", 9), ("RH401", 11)]
    assert "unit 'minutes'" in found[0][2]
    assert "exactly one of min or max" in found[1][2]
    assert "unknown metric 'error_pct'" in found[2][2]


def test_thresholds_edited_in_the_same_process_are_read_again(tmp_path):
    """The file is parsed once per content and a valid body validated once: an edit is never missed, and a
    copy of a valid file elsewhere is valid with its own positions."""
    path = write(tmp_path, GOOD)
    assert load_thresholds(path).profiles["h200-sxm"].gpus == 8
    path.write_text(GOOD.replace("error_rate: {max: 0.01, unit: ratio}", "error_pct: {max: 1, unit: ratio}"))
    with pytest.raises(ThresholdsError, match="unknown metric 'error_pct'"):
        load_thresholds(path)
    path.write_text(GOOD.replace("gpus: 8", "gpus: 4"))
    assert load_thresholds(path).profiles["h200-sxm"].gpus == 4
    other = tmp_path / "other"
    other.mkdir()
    moved = write(other, "\n\n" + GOOD)   # the same body two lines lower
    limits = {lim.metric: lim for lim in load_thresholds(moved).profiles["h200-sxm"].limits}
    assert limits["ttft_p50"].line == 10


@pytest.mark.skipif(not RECIPE_THRESHOLDS, reason="no recipes/**/thresholds.yaml in this checkout")
@pytest.mark.parametrize("path", RECIPE_THRESHOLDS, ids=lambda p: str(p.relative_to(ROOT / "recipes").parent))
def test_recipe_thresholds_load(path):
    t = load_thresholds(path)
    assert "cpu-mocker" in t.profiles
    assert all(p.limits for p in t.profiles.values())


def test_gate_on_a_real_export(tmp_path):
    r = parse_export(EXPORTS / "ok")
    loose = GOOD.replace("max: 0.6, unit: s", "max: 60, unit: s").replace("min: 400", "min: 1")
    hw = load_thresholds(write(tmp_path, loose)).profiles["h200-sxm"]
    verdicts = gate(hw, lambda m: r.metric(m, hw.gpus))
    # bare numbers carry no sample count: percentiles are never a pass, run-wide values are judged as they are
    assert {v.limit.metric: v.status for v in verdicts} == {
        "ttft_p50": "insufficient samples", "itl_p99": "insufficient samples",
        "output_tokens_per_s_per_gpu": "pass", "error_rate": "pass"}, [v.describe() for v in verdicts]
    strict = loose.replace("max: 60, unit: s", "max: 0.001, unit: ms")
    hw = load_thresholds(write(tmp_path, strict)).profiles["h200-sxm"]
    ttft = next(v for v in gate(hw, lambda m: r.metric(m, hw.gpus)) if v.limit.metric == "ttft_p50")
    assert not ttft.passed and "INSUFFICIENT SAMPLES" in ttft.describe() and "<= 0.001" in ttft.describe()
    errors = parse_export(EXPORTS / "errors")
    failed = [v.limit.metric for v in gate(hw, lambda m: errors.metric(m, hw.gpus)) if v.status == "fail"]
    assert "error_rate" in failed


def test_gate_fails_a_metric_that_was_not_measured(tmp_path):
    hw = load_thresholds(write(tmp_path, GOOD)).profiles["h200-sxm"]
    verdicts = gate(hw, lambda m: None)
    assert not any(v.passed for v in verdicts)
    assert "not measured" in verdicts[0].describe()


# --------------------------------------------------------------------------- baselines


def est(value: float, low: float, high: float, samples: int = 200) -> Estimate:
    return Estimate(value, low, high, samples, 100)


def base_with(**metrics: Estimate) -> bl.Baseline:
    return bl.new("m/b/agg", "cpu-mocker", "fp", 3, metrics, {})


def test_regression_needs_more_than_tolerance_and_separate_intervals():
    base = base_with(ttft_p99=est(100.0, 95.0, 105.0))
    assert bl.compare({"ttft_p99": est(109.0, 106.0, 112.0)}, base, tolerance=0.10)[0].status == "same"
    c = bl.compare({"ttft_p99": est(111.0, 107.0, 115.0)}, base, tolerance=0.10)[0]
    assert c.regressed and "REGRESSION" in c.describe() and "intervals separate" in c.describe()
    assert bl.compare({"ttft_p99": est(50.0, 45.0, 55.0)}, base)[0].status == "improved"     # faster is fine


def test_overlapping_intervals_are_inconclusive_not_a_regression():
    # 30% worse, but the intervals overlap: noise cannot be ruled out
    base = base_with(ttft_p99=est(100.0, 90.0, 110.0))
    c = bl.compare({"ttft_p99": est(130.0, 105.0, 155.0)}, base, tolerance=0.10)[0]
    assert c.status == "inconclusive" and not c.regressed and "run more requests or trials" in c.describe()
    # too few samples for p99 on either side: not compared at all
    few = bl.compare({"ttft_p99": Estimate(500.0, 400.0, 600.0, 4, 100)}, base)[0]
    assert few.status == "insufficient samples" and not few.regressed


def test_throughput_regresses_downwards():
    base = base_with(output_tokens_per_s_per_gpu=est(1000.0, 980.0, 1020.0))
    assert bl.compare({"output_tokens_per_s_per_gpu": est(850.0, 830.0, 870.0)}, base)[0].regressed
    assert not bl.compare({"output_tokens_per_s_per_gpu": est(2000.0, 1900.0, 2100.0)}, base)[0].regressed


def test_baseline_files_round_trip(tmp_path):
    path = bl.baseline_file(tmp_path, "mocker-tiny/mocker/agg", "cpu-mocker")
    assert path == tmp_path / "mocker-tiny" / "mocker" / "agg" / "cpu-mocker.json"
    assert bl.load(path) is None
    bl.save(path, base_with(ttft_p99=est(2.0, 1.0, 3.0)))
    back = bl.load(path)
    assert back.metrics["ttft_p99"] == est(2.0, 1.0, 3.0)
    assert list(path.parent.iterdir()) == [path]       # no temporary files left
    path.write_text('{"schemaVersion": 1, "metrics": {}}')
    with pytest.raises(bl.OldBaseline, match="no confidence intervals.*--update-baseline"):
        bl.load(path)
    path.write_text('{"schemaVersion": 99}')
    with pytest.raises(ValueError, match="--update-baseline"):
        bl.load(path)
    assert bl.baseline_file(tmp_path, "../../etc/x", "p") == tmp_path / "etc" / "x" / "p.json"


def test_summary_of_a_run_with_server_errors(tmp_path):
    """The check's verdicts on a real export where half the requests got a 404: the error-rate failure
    lists the server's errors; plots are made; metrics carry the sweep and the limits."""
    from recipe_harness.deploy import Endpoint
    from recipe_harness.exercise.perf import check
    from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfile, Scaling

    thresholds = load_thresholds(write(tmp_path, GOOD.replace("min: 400", "min: 1")))
    profile = PerfProfile(file="perf.yaml", line=1, streaming=True, points=[PerfPoint(concurrency=2, request_count=6)])
    plan = check.PerfPlan("m/b/agg", profile, thresholds, thresholds.profiles["h200-sxm"])
    settings = check.PerfSettings(aiperf=Path("aiperf"), out_dir=tmp_path / "out")
    out = check.PerfOutcome()
    result = parse_export(EXPORTS / "errors", concurrency=2)
    check._summarise(plan, Endpoint("http://127.0.0.1:1", "m", "local", "m/b/agg"), settings, profile.points,
                     Scaling(), {}, {0: [result]}, out, 1.0, False)
    assert len(out.failures) == 1
    assert "error_rate = 0.5 ratio (limit <= 0.01) FAILED" in out.failures[0]
    assert "3 of 6 requests failed" in out.failures[0] and "404 Not Found" in out.failures[0]
    assert out.metrics["requests"] == {"total": 6, "errors": 3, "errorRate": 0.5}
    assert out.metrics["verdict"] == "fail" and out.metrics["table"]["errors"] == "3/6"
    assert [title.split(": ", 1)[1] for title, _ in out.images] == [
        "throughput vs latency (h200-sxm)", "TTFT distribution (h200-sxm)", "ITL distribution (h200-sxm)"]
    assert all(png.read_bytes().startswith(b"\x89PNG") for _, png in out.images)
