#!/usr/bin/env python3
"""Perf suite benchmarks on this machine (real Dynamo frontend + mocker on the local target, real aiperf).

    .venv/bin/python bench/perf_bench.py [--recipes recipes] [--repeat 3] [--skip-suite]

Prints, measured side by side in one run:
1. harness-driven aiperf vs raw aiperf: the same aiperf command line (one point of mocker-tiny/mocker/agg's
   scaled sweep) against the same running deployment, alternating raw and harness runs; the harness run
   is the whole perf check of that point (run, parse, gate, plots). Goal: ratio <= 1.05;
2. a full perf run of each mocker-tiny recipe on the local target, as a user runs it
   (`pytest --pyargs recipe_harness.suites.test_perf --recipe <id>`: pytest start-up, deploy, the scaled sweep, gate,
   plots, report, teardown). Goal: <= 60 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.deploy.local import LocalTarget, default_roots  # noqa: E402
from recipe_harness.exercise.perf import check  # noqa: E402
from recipe_harness.exercise.perf.profile import scale_points  # noqa: E402
from recipe_harness.exercise.perf.runner import RunTarget, build_argv, find_aiperf  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

AGG = "mocker-tiny/mocker/agg"


def overhead(recipes: Path, repeat: int) -> None:
    recipe = next(r for r in discover(recipes).recipes if r.id == AGG)
    loaded = LoadedRecipe.load(recipe)
    aiperf = find_aiperf(None, [ROOT])
    plan = check.plan(loaded, "cpu-mocker")
    # one point, the top of the sweep, so both sides run exactly one aiperf process with the same arguments
    plan.profile.points = plan.profile.points[-1:]
    target = LocalTarget(search_roots=[ROOT, *default_roots()])
    work = Path(tempfile.mkdtemp(prefix="perf-bench-"))
    raw_s: list[float] = []
    harness_s: list[float] = []
    with target.deploy(loaded) as endpoint:
        settings = check.PerfSettings(aiperf=aiperf, out_dir=work, scale=check.DEFAULT_LOCAL_SCALE, max_concurrency=8,
                                      cpu_count=os.cpu_count() or 2)
        scale, cap = settings.for_target(endpoint.target)
        run_points, scaling = scale_points(plan.profile.points, scale, cap)
        rt = RunTarget(endpoint.base_url, endpoint.model, check.tokenizer_for(plan.profile, endpoint),
                       local=True, timeout_s=settings.timeout_s)
        slo = plan.hardware.goodput_slo()
        print(f"[1] {AGG} on {endpoint.base_url}: point {run_points[0].label} x{run_points[0].request_count}; "
              f"{repeat} alternating runs each")
        for i in range(repeat):
            adir = work / f"raw-{i}"
            argv = build_argv(aiperf, plan.profile, run_points[0], rt, adir, goodput=slo, scaled=scaling.scaled)
            t0 = time.monotonic()
            with open(work / f"raw-{i}.out", "wb") as out:
                rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode
            raw_s.append(time.monotonic() - t0)
            assert rc == 0, f"raw aiperf failed ({work / f'raw-{i}.out'})"
            settings.out_dir = work / f"harness-{i}"
            t0 = time.monotonic()
            outcome = check.run(plan, endpoint, settings)
            harness_s.append(time.monotonic() - t0)
            assert outcome.passed, outcome.failures
            same = [a.replace(str(settings.out_dir / "trial-1" / run_points[0].label), str(adir))
                    for a in outcome.runs[0].argv]
            assert same == argv, "harness and raw aiperf must run the same command line"
            print(f"    run {i + 1}: raw {raw_s[-1]:6.2f} s   harness {harness_s[-1]:6.2f} s "
                  f"(aiperf itself {outcome.runs[0].wall_s:6.2f} s)")
    raw, har = statistics.median(raw_s), statistics.median(harness_s)
    print(f"    median: raw aiperf {raw:.2f} s, harness-driven {har:.2f} s -> ratio {har / raw:.3f} (goal <= 1.05)")


def full_runs(recipes: Path) -> None:
    ids = [r.id for r in discover(recipes).recipes if r.id.startswith("mocker-tiny/")]
    print(f"[2] full perf run per mocker-tiny recipe on the local target ({len(ids)} recipes)")
    for rid in ids:
        out = Path(tempfile.mkdtemp(prefix="perf-bench-suite-"))
        argv = [sys.executable, "-m", "pytest", "--pyargs", "recipe_harness.suites.test_perf", "--recipes-root", str(recipes),
                "--recipe", rid, "--target", "local", "--report-dir", str(out), "-p", "no:cacheprovider", "-q"]
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT)
        wall = time.monotonic() - t0
        summary = json.loads((out / "summary.json").read_text())
        entry = summary["recipes"][rid]["checks"]["perf"]
        m = entry.get("metrics", {})
        print(f"    {rid:40s} {entry['outcome']:7s} wall {wall:5.1f} s (goal <= 60)  test {entry['durationSeconds']:5.1f} s  "
              f"aiperf {m.get('aiperfRuns')} runs {m.get('aiperfSeconds', 0):5.1f} s  {m.get('table', {}).get('point', '')} "
              f"{m.get('table', {}).get('tok/s/GPU', '')} tok/s/GPU  rc={proc.returncode}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", type=Path, default=ROOT / "recipes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-suite", action="store_true")
    args = ap.parse_args()
    overhead(args.recipes, args.repeat)
    if not args.skip_suite:
        full_runs(args.recipes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
