#!/usr/bin/env python3
"""Do perf verdicts hold up on a rerun? Real Dynamo frontend + mocker on the local target, real aiperf.

    .venv/bin/python bench/perf_flip_bench.py [--recipe mocker-tiny/mocker/agg ...] [--repeat 5] [--record DIR]

For each recipe, the operating point of its scaled sweep (the point the gate judges) runs, alternating:
- *before*: the request count the plain scaling gives (``--perf-scale`` 0.05: 8 requests at c8) judged
  the way the perf check judged before intervals: aiperf's percentile against the limit, and a
  regression when the value is worse than the baseline's by more than 10 % (one trial: no spread);
- *after*: the count :func:`recipe_harness.exercise.perf.check.ensure_samples` picks (100 at c8, so p99 has
  the samples it needs), judged by :func:`recipe_harness.exercise.perf.thresholds.gate` and
  :func:`recipe_harness.exercise.perf.baseline.compare` on bootstrap intervals widened by the local target's
  run-to-run noise (``--perf-run-noise`` default 0.10).

``--repeat`` runs of each at the recipe's speed; the first run of each is the baseline of the
others. Then the recipe is deployed again with the mocker's ``--speedup-ratio`` halved and each
side runs once more. Printed, per side: how many reruns flipped a verdict (pass on the first run,
fail on a rerun, or the reverse; inconclusive is not a flip), false regressions at the same speed,
whether the slowdown was detected, and whether the after-side intervals of all repetitions overlap.
Two kinds of verdicts are counted: the recipe's own limits, and a *tight* limit per gated metric
set 15 % past the first run's value (a limit near the measured value, as a release gate is).

``--record DIR`` keeps trimmed exports of the after-side runs (rep-1..rep-N, slow) and of one
before-side run (few) for ``tests/test_perf_repeat.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.deploy.local import LocalTarget, default_roots  # noqa: E402
from recipe_harness.exercise.perf import baseline as bl  # noqa: E402
from recipe_harness.exercise.perf import check  # noqa: E402
from recipe_harness.exercise.perf.profile import scale_points  # noqa: E402
from recipe_harness.exercise.perf.results import RECORDS_FILE, SUMMARY_FILE, PointResult, parse_export  # noqa: E402
from recipe_harness.exercise.perf.runner import RunTarget, build_argv, find_aiperf, run_aiperf  # noqa: E402
from recipe_harness.exercise.perf.thresholds import HardwareProfile, Limit, gate  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

GATED = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "output_tokens_per_s_per_gpu")
OLD_TOLERANCE = 0.10
TIGHT = 1.15


def trim_records(src: Path, dst: Path) -> None:
    """Keep what the perf check reads of each record (the fixture stays small)."""
    keep_metrics = ("time_to_first_token", "inter_token_latency", "request_latency", "output_sequence_length")
    with src.open() as fin, dst.open("w") as fout:
        for line in fin:
            item = json.loads(line)
            out = {"metadata": {"benchmark_phase": item.get("metadata", {}).get("benchmark_phase")},
                   "metrics": {k: v for k, v in (item.get("metrics") or {}).items() if k in keep_metrics}}
            if item.get("error"):
                out["error"] = item["error"]
            fout.write(json.dumps(out, separators=(",", ":")) + "\n")


SUMMARY_KEYS = ("aiperf_version", "was_cancelled", "request_count", "error_request_count", "error_summary",
                "good_request_count", "good_request_fraction", "time_to_first_token", "inter_token_latency",
                "request_latency", "output_token_throughput", "input_token_throughput", "total_token_throughput",
                "request_throughput", "goodput", "benchmark_duration")


def trim_summary(src: Path, dst: Path) -> None:
    """Keep the aggregates :func:`recipe_harness.exercise.perf.results.parse_export` reads."""
    data = json.loads(src.read_text())
    dst.write_text(json.dumps({k: data[k] for k in SUMMARY_KEYS if k in data}, indent=1) + "\n")


def old_verdicts(res: PointResult, hw: HardwareProfile) -> dict[str, str]:
    """The pre-interval gate: aiperf's aggregate value against the limit."""
    out = {}
    for lim in hw.limits:
        v = res.metric(lim.metric, hw.gpus)
        out[lim.metric] = "fail" if v is None or not lim.holds(v) else "pass"
    return out


def old_regressions(res: PointResult, base: PointResult, gpus: int) -> dict[str, str]:
    out = {}
    for m in GATED:
        now, then = res.metric(m, gpus), base.metric(m, gpus)
        worse = (then - now) if bl.higher_is_better(m) else (now - then)
        out[m] = "fail" if worse > OLD_TOLERANCE * abs(then) else "pass"
    return out


NOISE = check.DEFAULT_LOCAL_RUN_NOISE


def new_verdicts(res: PointResult, hw: HardwareProfile) -> dict[str, str]:
    return {v.limit.metric: v.status for v in gate(hw, lambda m: check.estimate([res], m, hw.gpus, NOISE))}


def new_regressions(res: PointResult, base: PointResult, gpus: int) -> dict[str, str]:
    now = {m: check.estimate([res], m, gpus, NOISE) for m in GATED}
    then = bl.new("x", "x", "x", 1, {m: check.estimate([base], m, gpus, NOISE) for m in GATED}, {})
    return {c.metric: ("fail" if c.regressed else "pass" if c.status in ("same", "improved") else c.status)
            for c in bl.compare({k: v for k, v in now.items() if v}, then)}


def tight_profile(hw: HardwareProfile, first: dict[str, float]) -> HardwareProfile:
    limits = []
    for m in GATED:
        lower = bl.higher_is_better(m)
        value = first[m] / TIGHT if lower else first[m] * TIGHT
        limits.append(Limit(m, "min" if lower else "max", value, "x", f"tight {value:g}"))
    return replace(hw, limits=limits)


def flips(first: dict[str, str], later: list[dict[str, str]]) -> tuple[int, int, int]:
    """(reruns with a pass<->fail flip, flipped verdicts, inconclusive/insufficient verdicts)."""
    runs = verdicts = unsure = 0
    for v in later:
        n = sum(1 for k, s in v.items() if {s, first.get(k)} == {"pass", "fail"})
        runs += n > 0
        verdicts += n
        unsure += sum(1 for s in v.values() if s not in ("pass", "fail"))
    return runs, verdicts, unsure


def run_point(aiperf: Path, plan, point, rt, slo, scaled: bool, adir: Path) -> tuple[PointResult, float]:
    argv = build_argv(aiperf, plan.profile, point, rt, adir, goodput=slo, scaled=scaled)
    ran = run_aiperf(argv, adir, 900.0)
    if not ran.ok:
        raise SystemExit(ran.describe_failure())
    return parse_export(adir, concurrency=point.concurrency, streaming=plan.profile.streaming), ran.wall_s


def slowed_copy(recipe_dir: Path, work: Path) -> Path:
    """The recipes tree with the mocker's --speedup-ratio halved in deploy.yaml."""
    model_root = recipe_dir.parents[1]
    dst = work / "slow-recipes" / model_root.name
    shutil.copytree(model_root, dst)
    deploy = dst / recipe_dir.relative_to(model_root) / "deploy.yaml"
    text = deploy.read_text()
    needle = '- --speedup-ratio\n            - "1.0"'
    if needle not in text:
        raise SystemExit(f"{deploy}: no `--speedup-ratio \"1.0\"` to halve")
    deploy.write_text(text.replace(needle, '- --speedup-ratio\n            - "0.5"'))
    return work / "slow-recipes"


def bench(recipes: Path, rid: str, repeat: int, record: Path | None) -> dict:
    aiperf = find_aiperf(None, [ROOT])
    target = LocalTarget(search_roots=[ROOT, *default_roots()])
    work = Path(tempfile.mkdtemp(prefix="perf-flip-"))
    sides: dict[str, dict] = {"before": {"runs": []}, "after": {"runs": []}}
    try:
        for speed, root in (("same", recipes), ("slow", None)):
            if root is None:
                recipe = next(r for r in discover(recipes).recipes if r.id == rid)
                root = slowed_copy(recipe.dir, work)
            recipe = next(r for r in discover(root).recipes if r.id == rid)
            loaded = LoadedRecipe.load(recipe)
            plan = check.plan(loaded, "cpu-mocker")
            settings = check.PerfSettings(aiperf=aiperf, out_dir=work, cpu_count=os.cpu_count() or 2)
            with target.deploy(loaded) as endpoint:
                scale, cap = settings.for_target(endpoint.target)
                points, scaling = scale_points(plan.profile.points, scale, cap)
                raised, _ = check.ensure_samples(points, scaling, plan.hardware, 1)
                before_pt, after_pt = points[-1], raised[-1]
                rt = RunTarget(endpoint.base_url, endpoint.model, check.tokenizer_for(plan.profile, endpoint),
                               local=True, timeout_s=900.0)
                slo = plan.hardware.goodput_slo()
                n = repeat if speed == "same" else 1
                for i in range(n):
                    for side, pt in (("before", before_pt), ("after", after_pt)):
                        adir = work / speed / side / f"run-{i + 1}"
                        res, wall = run_point(aiperf, plan, pt, rt, slo, scaling.scaled, adir)
                        sides[side]["runs"].append((speed, res, wall, adir))
                        print(f"    {rid} {speed:4s} {side:6s} run {i + 1}: {pt.label} x{pt.request_count} "
                              f"aiperf {wall:5.1f} s  ttft_p99 {res.metric('ttft_p99'):.1f} ms  "
                              f"tok/s {res.metric('output_tokens_per_s_per_gpu'):.0f}", flush=True)
        hw = plan.hardware
        report: dict = {"recipe": rid}
        for side in ("before", "after"):
            runs = sides[side]["runs"]
            same = [r for s, r, _, _ in runs if s == "same"]
            slow = [r for s, r, _, _ in runs if s == "slow"]
            verdict = old_verdicts if side == "before" else new_verdicts
            regress = old_regressions if side == "before" else new_regressions
            own = [verdict(r, hw) for r in same]
            first_vals = {m: same[0].metric(m, hw.gpus) if side == "before" else
                          check.estimate([same[0]], m, hw.gpus).value for m in GATED}
            tight = tight_profile(hw, first_vals)
            tight_v = [verdict(r, tight) for r in same]
            reg_same = [regress(r, same[0], hw.gpus) for r in same[1:]]
            reg_slow = [regress(r, same[0], hw.gpus) for r in slow]
            report[side] = {
                "requests": same[0].total_requests,
                "aiperfSeconds": round(sum(w for _, _, w, _ in runs) / len(runs), 2),
                "ownLimitFlips": flips(own[0], own[1:]),
                "tightLimitFlips": flips(tight_v[0], tight_v[1:]),
                "falseRegressions": sum(1 for v in reg_same if "fail" in v.values()),
                "falseRegressionVerdicts": sum(1 for v in reg_same for s in v.values() if s == "fail"),
                "slowdownDetected": [m for v in reg_slow for m, s in v.items() if s == "fail"],
                "slowdownRatio": {m: round(slow[0].metric(m, hw.gpus) / same[0].metric(m, hw.gpus), 2) for m in GATED},
                "p99Verdicts": sorted({v["ttft_p99"] for v in own}),
            }
            if side == "after":
                for key, noise in (("overlapBootstrapOnly", 0.0), ("overlapWithRunNoise", NOISE)):
                    ests = {m: [check.estimate([r], m, hw.gpus, noise) for r in same] for m in GATED}
                    report[side][key] = {m: sum(1 for i, a in enumerate(es) for b in es[i + 1:] if not a.overlaps(b))
                                         for m, es in ests.items()}
        if record is not None:
            dest = record / rid.replace("/", "_")
            shutil.rmtree(dest, ignore_errors=True)
            picks = [(f"rep-{i + 1}", d) for i, (s, _, _, d) in enumerate(
                [x for x in sides["after"]["runs"] if x[0] == "same"])]
            picks += [("slow", d) for s, _, _, d in sides["after"]["runs"] if s == "slow"]
            picks += [("few", sides["before"]["runs"][0][3])]
            for name, d in picks:
                (dest / name).mkdir(parents=True)
                trim_summary(d / SUMMARY_FILE, dest / name / SUMMARY_FILE)
                trim_records(d / RECORDS_FILE, dest / name / RECORDS_FILE)
            print(f"    recorded {len(picks)} runs in {dest}")
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", type=Path, default=ROOT / "recipes")
    ap.add_argument("--recipe", action="append", default=None,
                    help="recipe id (repeatable; default both mocker-tiny recipes)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    ids = args.recipe or ["mocker-tiny/mocker/agg", "mocker-tiny/mocker/disagg-kv-router"]
    t0 = time.monotonic()
    reports = [bench(args.recipes, rid, args.repeat, args.record) for rid in ids]
    print(f"\nrepetitions {args.repeat} per side per recipe; wall {time.monotonic() - t0:.0f} s")
    for rep in reports:
        print(f"{rep['recipe']}")
        for side in ("before", "after"):
            r = rep[side]
            runs, verdicts, unsure = r["ownLimitFlips"]
            truns, tverdicts, tunsure = r["tightLimitFlips"]
            print(f"  {side:6s} n={r['requests']:3d}  aiperf {r['aiperfSeconds']:5.1f} s/run  "
                  f"own limits: {runs}/{args.repeat - 1} reruns flipped ({verdicts} verdicts, {unsure} not established)  "
                  f"tight limits: {truns}/{args.repeat - 1} reruns flipped ({tverdicts} verdicts, {tunsure} not established)  "
                  f"false regressions: {r['falseRegressions']}/{args.repeat - 1} reruns ({r['falseRegressionVerdicts']} metrics)  "
                  f"slowdown x{r['slowdownRatio']} detected on {r['slowdownDetected'] or 'nothing'}  "
                  f"p99 verdicts {r['p99Verdicts']}"
                  + (f"\n         pairs of reruns whose intervals do not overlap (of {args.repeat * (args.repeat - 1) // 2}): "
                     f"bootstrap only {r['overlapBootstrapOnly']}; with run noise {NOISE:g}: {r['overlapWithRunNoise']}"
                     if "overlapBootstrapOnly" in r else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
