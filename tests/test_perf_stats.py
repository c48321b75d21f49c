"""Perf statistics: sample counts, bootstrap intervals, the interval-aware gate, trials pooled,
sample sizes of a scaled run, and a profile's minimum. Synthetic data and real aiperf exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recipe_harness.deploy import Endpoint
from recipe_harness.exercise.perf import check, stats
from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfile, scale_points
from recipe_harness.exercise.perf.results import PointResult, Records, parse_export
from recipe_harness.exercise.perf.stats import Estimate
from recipe_harness.exercise.perf.thresholds import Limit, gate, judge, load_thresholds
from tests import procs

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "fixtures" / "perf" / "exports"

THRESHOLDS = """\
schemaVersion: 1
profiles:
  cpu-mocker:
    gpus: 1
    {minimum}
    limits:
      ttft_p50: {{max: 1000, unit: ms}}
      ttft_p99: {{max: 5000, unit: ms}}
      output_tokens_per_s_per_gpu: {{min: 1, unit: tokens/s/gpu}}
      error_rate: {{max: 0, unit: ratio}}
"""


def thresholds(tmp_path: Path, minimum: str = ""):
    path = tmp_path / "thresholds.yaml"
    path.write_text(THRESHOLDS.format(minimum=minimum or "description: cpu"))
    return load_thresholds(path)


def result(ttft: list[float], *, tokens: int = 16, errors: int = 0, duration_s: float = 10.0) -> PointResult:
    """A point as aiperf would report it: per-request records and the aggregates."""
    n = len(ttft)
    e2e = [t + 100.0 for t in ttft]
    rec = Records(ttft=list(ttft), itl=[6.0] * n, e2e=e2e, errors=errors, tokens=[float(tokens)] * n,
                  token_latency=e2e)
    tput = n * tokens / duration_s
    return PointResult(concurrency=8, request_rate=None, ttft=None, itl=None, e2e=None, output_tokens_per_s=tput,
                       input_tokens_per_s=None, total_tokens_per_s=None, requests_per_s=n / duration_s,
                       goodput_requests_per_s=None, good_request_fraction=None, ok_requests=n, error_requests=errors,
                       duration_s=duration_s, records=rec)


def lat(seed: int, n: int, scale: float = 100.0) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(np.log(scale), 0.3, n))


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """The figures are the report's business (and take seconds): not drawn here."""
    monkeypatch.setattr(check, "_plots", lambda *a, **k: None)


def summarise(tmp_path: Path, results: list[PointResult], minimum: str = "") -> check.PerfOutcome:
    t = thresholds(tmp_path, minimum)
    profile = PerfProfile(file="perf.yaml", line=1, streaming=True, points=[PerfPoint(concurrency=8, request_count=4)])
    plan = check.PerfPlan("m/b/agg", profile, t, t.profiles["cpu-mocker"])
    settings = check.PerfSettings(aiperf=Path("aiperf"), out_dir=tmp_path / "out")
    out = check.PerfOutcome()
    check._summarise(plan, Endpoint("http://127.0.0.1:1", "m", "local", "m/b/agg"), settings, profile.points,
                     scale_points(profile.points)[1], {}, {0: results}, out, 1.0, False)
    return out


# --------------------------------------------------------------------------- sample counts


def test_samples_each_percentile_needs():
    assert {p: stats.min_samples(p) for p in ("p50", "p90", "p95", "p99", "avg")} == {
        "p50": 20, "p90": 20, "p95": 20, "p99": 100, "avg": 20}
    assert stats.metric_min_samples("ttft_p99") == 100 and stats.metric_min_samples("itl_p90") == 20


def test_p99_from_4_requests_is_never_a_pass(tmp_path):
    """The scaled run of mocker-tiny sent 4 requests at a point: its p99 (= the max) passed a 5 s limit."""
    out = summarise(tmp_path, [result([50.0, 60.0, 70.0, 80.0])])
    limits = {v["metric"]: v for v in out.metrics["limits"]}
    assert limits["ttft_p99"]["status"] == "insufficient samples" and not limits["ttft_p99"]["passed"]
    assert limits["ttft_p99"]["samples"] == 4 and limits["ttft_p99"]["minSamples"] == 100
    assert limits["ttft_p50"]["status"] == "insufficient samples"
    assert out.metrics["verdict"] == "inconclusive" and out.failures == []
    assert any("ttft_p99" in text and "p99 needs at least 100" in text and "--perf-scale" in text
               for text in out.inconclusive)
    assert "insufficient samples" in out.metrics["table"]["TTFT p99 ms"]
    assert out.metrics["statistics"]["insufficient"] == ["output_tokens_per_s_per_gpu", "ttft_p50", "ttft_p99"]
    # the same with enough requests passes
    out = summarise(tmp_path, [result(lat(1, 120))])
    assert out.metrics["verdict"] == "pass" and out.inconclusive == []


def test_p99_of_a_real_6_request_export_is_insufficient():
    r = parse_export(EXPORTS / "ok", concurrency=2)
    est = check.estimate([r], "ttft_p99")
    assert est.samples == 6 and not est.sufficient
    assert est.value == pytest.approx(np.percentile(r.records.ttft, 99))
    assert est.value == pytest.approx(r.ttft.p99, rel=1e-6)       # the same percentile aiperf reports
    assert judge(Limit("ttft_p99", "max", 1e9, "ms", "max 1e9 ms"), est).status == "insufficient samples"


# --------------------------------------------------------------------------- intervals


def test_bootstrap_is_reproducible_and_brackets_the_value():
    data = [lat(3, 200)]
    a, b = stats.percentile_estimate(data, "p90"), stats.percentile_estimate(data, "p90")
    assert a == b and a.low < a.value < a.high and a.samples == 200
    other = stats.percentile_estimate(data, "p90", seed=1)
    assert (other.low, other.high) != (a.low, a.high)


def test_intervals_cover_the_true_percentile():
    """95% intervals of p50 and p90 of a lognormal, 40 fixed-seed samples of 200: most cover the truth."""
    true = {"p50": 100.0, "p90": 100.0 * np.exp(0.3 * 1.2815516)}
    for stat, value in true.items():
        hits = 0
        for seed in range(40):
            e = stats.percentile_estimate([lat(100 + seed, 200)], stat)
            hits += e.low <= value <= e.high
        assert hits >= 34, (stat, hits)


def test_trials_are_pooled_not_a_median_of_medians():
    fast, slow = lat(5, 100, 100.0), lat(6, 100, 300.0)
    pooled = check.estimate([result(fast), result(slow)], "ttft_p50")
    assert pooled.samples == 200 and pooled.trials == 2
    assert pooled.value == pytest.approx(np.percentile(fast + slow, 50))
    # two-level bootstrap: trials that disagree widen the interval beyond one run of 200 requests
    one_run = stats.percentile_estimate([fast + slow], "p50")
    assert (pooled.high - pooled.low) > 2 * (one_run.high - one_run.low)
    same = check.estimate([result(fast), result(lat(7, 100, 100.0))], "ttft_p50")
    assert same.high - same.low < pooled.high - pooled.low


def test_throughput_interval_from_the_requests():
    r = result(lat(8, 100), tokens=16, duration_s=10.0)
    est = check.estimate([r], "output_tokens_per_s_per_gpu", gpus=2)
    assert est.value == pytest.approx(80.0) and est.low < 80.0 < est.high and est.samples == 100


def test_wilson_interval():
    e = stats.wilson(0, 100)
    assert (e.value, e.low) == (0.0, 0.0) and e.high == pytest.approx(0.037, abs=1e-3)
    e = stats.wilson(5, 100)
    assert e.low == pytest.approx(0.0215, abs=1e-3) and e.high == pytest.approx(0.1118, abs=1e-3)


# --------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(("low", "high", "bound", "status"), [
    (80, 95, "max", "pass"),            # the whole interval under the limit
    (90, 110, "max", "inconclusive"),   # the limit inside the interval: not failed, not passed
    (101, 120, "max", "fail"),          # the whole interval past the limit
    (101, 120, "min", "pass"),
    (90, 110, "min", "inconclusive"),
    (80, 99, "min", "fail"),
])
def test_a_limit_fails_only_when_the_interval_lies_past_it(low, high, bound, status):
    limit = Limit("ttft_p50", bound, 100.0, "ms", f"{bound} 100 ms")
    v = judge(limit, Estimate((low + high) / 2, low, high, 200, 20))
    assert v.status == status and v.passed == (status == "pass")
    if status == "inconclusive":
        assert "interval contains the limit" in v.why and "--perf-trials" in v.why


def test_error_rate_gate():
    zero = Limit("error_rate", "max", 0.0, "ratio", "max 0 ratio")
    assert judge(zero, stats.wilson(0, 100)).status == "pass"
    assert judge(zero, stats.wilson(1, 100)).status == "fail"
    one_pct = Limit("error_rate", "max", 0.01, "ratio", "max 0.01 ratio")
    assert judge(one_pct, stats.wilson(2, 100)).status == "inconclusive"
    assert judge(one_pct, stats.wilson(30, 100)).status == "fail"


def test_gate_without_measurement_fails(tmp_path):
    hw = thresholds(tmp_path).profiles["cpu-mocker"]
    assert {v.status for v in gate(hw, lambda m: None)} == {"fail"}


# --------------------------------------------------------------------------- sample sizes and minimum


def test_scaled_operating_point_gets_the_samples_its_gate_needs(tmp_path):
    hw = thresholds(tmp_path).profiles["cpu-mocker"]
    assert hw.samples_needed() == 100
    recipe = [PerfPoint(concurrency=c, request_count=160) for c in (4, 8, 16)]
    points, scaling = scale_points(recipe, 0.05, 8)
    assert [p.request_count for p in points] == [4, 4, 8]
    raised, note = check.ensure_samples(points, scaling, hw, trials=1)
    assert [p.request_count for p in raised] == [4, 4, 100] and "100 requests x 1 trial" in note
    raised, _ = check.ensure_samples(points, scaling, hw, trials=2)
    assert raised[-1].request_count == 50                          # pooled over the trials
    # never more than the recipe itself sends: then the report says what it cannot support
    small = [PerfPoint(concurrency=8, request_count=60)]
    points, scaling = scale_points(small, 0.05, 8)
    raised, note = check.ensure_samples(points, scaling, hw, trials=1)
    assert raised[-1].request_count == 60 and "sends only 60" in note and "insufficient samples" in note
    # a run as written is not changed
    points, scaling = scale_points(recipe, 1.0, None)
    assert check.ensure_samples(points, scaling, hw, trials=1) == (points, None)


def test_profile_minimum_parsed_and_enforced(tmp_path):
    t = thresholds(tmp_path, "minimum: {requests: 200, duration: {value: 30, unit: s}}")
    hw = t.profiles["cpu-mocker"]
    assert (hw.minimum.requests, hw.minimum.duration_s, hw.minimum.line) == (200, 30.0, 5)
    assert hw.samples_needed() == 200
    out = summarise(tmp_path, [result(lat(9, 150))], "minimum: {requests: 200}")
    limits = {v["metric"]: v["status"] for v in out.metrics["limits"]}
    assert limits["ttft_p50"] == "insufficient samples" and limits["error_rate"] == "pass"
    assert out.metrics["operatingPoint"]["belowMinimum"] == "the point sent 150 requests, the cpu-mocker minimum is 200"
    out = summarise(tmp_path, [result(lat(9, 150), duration_s=5.0)], "minimum: {duration: {value: 10, unit: s}}")
    assert "ran 5 s, the cpu-mocker minimum is 10 s" in out.metrics["operatingPoint"]["belowMinimum"]
    out = summarise(tmp_path, [result(lat(9, 150), duration_s=12.0)], "minimum: {duration: {value: 10, unit: s}}")
    assert out.metrics["verdict"] == "pass" and out.metrics["operatingPoint"]["belowMinimum"] is None


def test_minimum_schema_findings(tmp_path):
    from recipe_harness.exercise.perf.thresholds import ThresholdsError

    with pytest.raises(ThresholdsError) as exc:
        thresholds(tmp_path, "minimum: {requests: 0, queries: 5}")
    assert {f.rule for f in exc.value.findings} == {"RH401"} and len(exc.value.findings) == 2


def test_summary_fields_for_reports(tmp_path):
    """What summary.json carries per limit and per value, for summary.md and report.html."""
    out = summarise(tmp_path, [result(lat(10, 120))])
    row = next(v for v in out.metrics["limits"] if v["metric"] == "ttft_p99")
    assert {"value", "low", "high", "samples", "minSamples", "status", "passed", "why"} <= set(row)
    value = out.metrics["operatingPoint"]["values"]["ttft_p99"]
    assert {"value", "low", "high", "samples", "minSamples", "sufficient", "trials", "confidence",
            "method"} <= set(value)
    s = out.metrics["statistics"]
    assert s["confidence"] == 0.95 and s["seed"] == stats.SEED and s["minSamples"]["p99"] == 100
    assert out.metrics["sweep"][0]["values"]["ttft_p99"]["samples"] == 120


def test_perf_metrics_follow_the_summary_schema(tmp_path):
    import json

    import jsonschema

    schema = json.loads((ROOT / "schemas" / "summary.schema.json").read_text())
    perf = {"$ref": "#/$defs/perfMetrics", "$defs": schema["$defs"]}
    for results in ([result([50.0, 60.0, 70.0, 80.0])], [result(lat(11, 120))]):
        jsonschema.validate(summarise(tmp_path, results).metrics, perf)
    bad = summarise(tmp_path, [result(lat(11, 120))]).metrics
    bad["limits"][0]["status"] = "probably fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, perf)


def test_rh407_percentile_needs_and_duration(tmp_path):
    """RH407 on a copy of its fixture: an operating point too small for p99, a point shorter than the minimum."""
    import shutil

    from recipe_harness.load.discovery import discover
    from recipe_harness.model.bundle import LoadedRecipe
    from recipe_harness.static.rules.perf_config import perf_meets_minimum

    root = tmp_path / "recipes"
    shutil.copytree(ROOT / "fixtures" / "perf" / "rules" / "RH407" / "recipes", root)
    agg = root / "llama-3-70b" / "vllm" / "agg"
    t = (agg / "thresholds.yaml").read_text().replace("    minimum: {requests: 1024, duration: {value: 600, unit: s}}\n", "")
    (agg / "thresholds.yaml").write_text(t)
    perf = (agg / "perf.yaml").read_text()

    def found() -> list[str]:
        recipe = discover(root).recipes[0]
        return [f.message for f in perf_meets_minimum(LoadedRecipe.load(recipe))]

    assert found() == []                                        # 640 requests: p99 has its 100
    (agg / "perf.yaml").write_text(perf.replace("--request-count 640", "--request-count 50"))
    messages = found()
    assert len(messages) == 3 and all("the operating point c64 sends 50 requests but ttft_p99 needs 100, "
                                      "itl_p99 needs 100" in m for m in messages)   # h200, h100, cpu-mocker
    (agg / "thresholds.yaml").write_text(t.replace("    gpus: 4\n", "    gpus: 4\n    minimum: {duration: {value: 600, unit: s}}\n", 1))
    (agg / "perf.yaml").write_text(perf.replace("--request-count 640", "--benchmark-duration 300"))
    assert found() == ["h200-sxm: points c16, c32, c64 run 300 s, the profile's minimum is 600 s (thresholds.yaml:10)"]


def test_perf_inconclusive_option_through_the_console_script(tmp_path):
    exe = ROOT / ".venv" / "bin" / "recipe-harness"
    if not exe.exists():
        pytest.skip(f"{exe} missing (run python3 bootstrap.py)")
    (tmp_path / "recipes").mkdir()
    proc = procs.run([str(exe), "test", "--suite", "perf", "--recipes-root", str(tmp_path / "recipes"),
                      "--report-dir", str(tmp_path / "out"), "--", "--perf-inconclusive", "maybe"],
                     capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--perf-inconclusive: invalid choice: 'maybe' (choose from 'fail', 'skip')" in proc.stdout + proc.stderr


def test_run_noise_widens_bootstrap_intervals_only():
    est = stats.percentile_estimate([lat(12, 200)], "p50")
    wide = stats.with_run_noise(est, 0.10)
    assert wide.low == pytest.approx(est.low - 0.1 * est.value) and wide.high == pytest.approx(est.high + 0.1 * est.value)
    assert wide.value == est.value and wide.run_noise == 0.10 and wide.to_dict()["runNoise"] == 0.10
    errors = stats.wilson(1, 100)
    assert stats.with_run_noise(errors, 0.10) == errors               # a count of what happened: no run noise
    settings = check.PerfSettings(aiperf=Path("aiperf"), out_dir=Path("."))
    assert (settings.noise_for("local"), settings.noise_for("kubernetes")) == (0.10, 0.0)
    assert check.PerfSettings(aiperf=Path("a"), out_dir=Path("."), run_noise=0.02).noise_for("local") == 0.02
