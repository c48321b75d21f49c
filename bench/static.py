#!/usr/bin/env python3
"""Static-stage benchmarks, measured side by side in one run on this machine.

    .venv/bin/python bench/static.py [--recipes recipes] [--corpus-size 500] [--repeat 3]

Prints:
1. schema validation of the same documents: this harness's Validator vs check-jsonschema
   (goal: >= 3x faster) -- delegated to bench/schema_bench.py;
2. the static suite (`pytest suites -m static`) on recipes/, wall time including pytest start-up
   (goal: < 3 s);
3. the same on a generated corpus of N recipes (copies of the collection under new model names;
   goal for 500: < 20 s);
4. `recipe-harness check` on both, for comparison.
Times are the best of --repeat runs (noisy machines); ratios are against the goals.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def best_of(repeat: int, cmd: list[str], cwd: Path = ROOT) -> tuple[float, int]:
    best, code = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        code = proc.returncode
    return best, code


def make_corpus(src: Path, dest: Path, size: int) -> int:
    """Copy the collection's model folders under new names until it holds ``size`` recipes."""
    models = [p for p in sorted(src.iterdir()) if p.is_dir()]
    per_model = {m: len(list(m.rglob("deploy.yaml"))) for m in models}
    count, i = 0, 0
    while count < size:
        for m in models:
            if count >= size or per_model[m] == 0:
                continue
            shutil.copytree(m, dest / f"{m.name}-{i:03d}", symlinks=True)
            count += per_model[m]
        i += 1
    return count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=str(ROOT / "recipes"))
    ap.add_argument("--corpus-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    recipes = Path(args.recipes)

    print("== 1. schema validation: harness vs check-jsonschema")
    schema_bench = ROOT / "bench" / "schema_bench.py"
    if schema_bench.exists():
        subprocess.run([PY, str(schema_bench)], cwd=ROOT)
    else:
        print("bench/schema_bench.py missing")

    suite = [PY, "-m", "pytest", "suites", "-m", "static", "-q", "-p", "no:cacheprovider", "--recipes-root"]
    check = [PY, "-m", "recipe_harness.cli", "check", "--format", "json"]
    n_recipes = len(list(recipes.rglob("deploy.yaml")))
    t_suite, code = best_of(args.repeat, suite + [str(recipes)])
    t_check, _ = best_of(args.repeat, check + [str(recipes)])
    print(f"\n== 2. static suite on {recipes} ({n_recipes} recipes)")
    print(f"pytest suites -m static: {t_suite:6.2f} s (exit {code})   goal < 3 s: {t_suite / 3.0:.2f}x of budget")
    print(f"recipe-harness check:    {t_check:6.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "recipes"
        corpus.mkdir()
        n = make_corpus(recipes, corpus, args.corpus_size)
        t_big, code = best_of(1, suite + [str(corpus)])
        t_big_check, _ = best_of(1, check + [str(corpus)])
        print(f"\n== 3. generated corpus ({n} recipes)")
        print(f"pytest suites -m static: {t_big:6.2f} s (exit {code})   goal < 20 s: {t_big / 20.0:.2f}x of budget"
              f"   ({t_big / n * 1000:.1f} ms/recipe)")
        print(f"recipe-harness check:    {t_big_check:6.2f} s   ({t_big_check / n * 1000:.1f} ms/recipe)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
