#!/usr/bin/env python3
"""Predict suite benchmark: the whole collection as a user runs it, and where the time goes.

    .venv/bin/python bench/predict_bench.py [--recipes recipes] [--repeat 1]

Prints, measured in one run:
1. the predict suite on the collection through the console script
   (`recipe-harness test --suite predict`: pytest start-up, plans, the model's batch, gates, plots,
   summary), cold (empty estimate cache) and warm (the cold run's cache). Goal: < 60 s;
2. the model's batch alone (every estimate of the collection, one process per (system, backend) group
   shard, ``workers`` 1 and 2), with the number of estimates and of (system, backend) pairs;
3. the load average before each, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.exercise.predict.aic import estimate, find_python  # noqa: E402
from recipe_harness.exercise.predict.plan import PredictSkip, plan, profile_ids  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def suite(recipes: Path, cache: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "recipe-harness"), "test", "--suite", "predict",
                               "--recipes-root", str(recipes), "--report-dir", tmp], capture_output=True, text=True,
                              cwd=ROOT, env=dict(os.environ, RECIPE_HARNESS_PREDICT_CACHE=cache))
        wall = time.monotonic() - started
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    outcomes: dict[str, int] = {}
    for r in summary["recipes"].values():
        for name, c in r["checks"].items():
            if name.startswith("predict"):
                outcomes[c["outcome"]] = outcomes.get(c["outcome"], 0) + 1
    outcomes["exit"] = proc.returncode
    return wall, outcomes


def batch(recipes: Path, workers: int) -> tuple[float, int, int]:
    requests = []
    for r in discover(recipes).recipes:
        loaded = LoadedRecipe.load(r, {})
        for pid in profile_ids(loaded):
            try:
                requests += [pt.request for pt in plan(loaded, pid).points]
            except PredictSkip:
                continue
    python = find_python(None, [ROOT])
    started = time.monotonic()
    estimate(requests, python, workers=workers, timeout_s=900)
    return time.monotonic() - started, len(requests), len({(q.system, q.backend) for q in requests})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", default=str(ROOT / "recipes"))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    recipes = Path(args.recipes)
    for i in range(args.repeat):
        print(f"[{i + 1}] load {_load()}")
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("cold (no cache)", "warm (cache of the cold run)"):
                wall, outcomes = suite(recipes, cache)
                print(f"  suite {kind} (recipe-harness test --suite predict): {wall:.1f} s, outcomes {outcomes} "
                      f"(goal < 60 s: {'ok' if wall < 60 else 'MISSED'})")
                print(f"  load {_load()}")
        for workers in (2, 1):
            print(f"  load {_load()}")
            seconds, n, pairs = batch(recipes, workers)
            print(f"  model batch, {workers} process(es): {seconds:.1f} s for {n} estimates over {pairs} "
                  f"(system, backend) pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
