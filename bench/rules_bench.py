#!/usr/bin/env python3
"""Cost of the semantic rules (RH3xx), measured side by side in one run on this machine.

    .venv/bin/python bench/rules_bench.py [--recipes recipes] [--repeat 5] [--corpus-size 200]

Prints:
1. the whole static suite over the recipes (`pytest suites -m static`), wall time including pytest
   start-up (goal: < 3 s), next to pytest start-up + collection alone (`--co`);
2. the rules alone, in process: discover + load + every semantic check over all recipes, with the
   rule modules already imported (warm) and in a fresh interpreter (cold, imports included);
3. the rules alone on a generated corpus of N recipes (copies of the collection), per recipe.
Times are the best of --repeat runs.
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
SEMANTIC = ("gpu", "storage", "model", "wiring", "images", "bench-fit", "hygiene", "suppressions")
GOAL_SUITE_S = 3.0


def best_of(repeat: int, cmd: list[str]) -> tuple[float, int, str]:
    best, code, out = float("inf"), 0, ""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        best = min(best, time.perf_counter() - start)
        code, out = proc.returncode, proc.stdout
    return best, code, out


def rules_only(root: Path) -> tuple[float, int, int]:
    """(seconds, recipes, findings) of discover + load + the semantic checks, in this process."""
    from recipe_harness.load.discovery import discover
    from recipe_harness.model.bundle import LoadedRecipe
    from recipe_harness.static.checks import StaticChecker

    start = time.perf_counter()
    d = discover(root)
    checker = StaticChecker(discovery=d)
    cache: dict = {}
    n = 0
    for recipe in d.recipes:
        loaded = LoadedRecipe.load(recipe, cache)
        for check in SEMANTIC:
            n += len(checker.run(loaded, check))
    return time.perf_counter() - start, len(d.recipes), n


def load_only(root: Path) -> float:
    from recipe_harness.load.discovery import discover
    from recipe_harness.model.bundle import LoadedRecipe

    start = time.perf_counter()
    cache: dict = {}
    for recipe in discover(root).recipes:
        LoadedRecipe.load(recipe, cache)
    return time.perf_counter() - start


def make_corpus(src: Path, dest: Path, size: int) -> int:
    models = [p for p in sorted(src.iterdir()) if p.is_dir() and any(p.rglob("deploy.yaml"))]
    count, i = 0, 0
    while count < size and models:
        for m in models:
            if count >= size:
                break
            shutil.copytree(m, dest / f"{m.name}-{i:03d}", symlinks=True)
            count += len(list(m.rglob("deploy.yaml")))
        i += 1
    return count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=str(ROOT / "recipes"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--corpus-size", type=int, default=200)
    args = ap.parse_args()
    recipes = Path(args.recipes).resolve()

    suite = [PY, "-m", "pytest", "suites", "-m", "static", "-q", "-p", "no:cacheprovider", "--recipes-root",
             str(recipes)]
    t_suite, code, out = best_of(args.repeat, suite)
    t_collect, _, _ = best_of(args.repeat, suite + ["--co"])
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"== 1. static suite over {recipes}")
    print(f"pytest suites -m static (all checks): {t_suite:6.2f} s  exit {code}  [{summary}]")
    print(f"pytest start-up + collection (--co):  {t_collect:6.2f} s")
    print(f"goal < {GOAL_SUITE_S:.0f} s: {t_suite / GOAL_SUITE_S:.2f}x of budget")

    cold_cmd = [PY, "-c", "import sys, time; t = time.perf_counter(); sys.path.insert(0, 'bench'); "
                "import rules_bench as b; s, n, f = b.rules_only(__import__('pathlib').Path(sys.argv[1])); "
                "print(time.perf_counter() - t)", str(recipes)]
    t_cold = min(float(subprocess.run(cold_cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
                       .stdout.strip() or "nan") for _ in range(args.repeat))
    rules_only(recipes)  # import the rule modules and backends once
    warm = [rules_only(recipes) for _ in range(args.repeat)]
    t_warm, n_recipes, n_findings = min(warm)
    t_load = min(load_only(recipes) for _ in range(args.repeat))
    print(f"\n== 2. rules alone ({len(SEMANTIC)} semantic checks, {n_recipes} recipes, {n_findings} findings)")
    print(f"discover + load + rules, warm:        {t_warm * 1000:8.1f} ms  "
          f"({t_warm / max(n_recipes, 1) * 1000:.2f} ms per recipe)")
    print(f"  of which discover + load:           {t_load * 1000:8.1f} ms")
    print(f"  rules only:                         {(t_warm - t_load) * 1000:8.1f} ms")
    print(f"cold (fresh interpreter, imports):    {t_cold * 1000:8.1f} ms")
    print(f"rules' share of the suite wall time:  {t_warm / t_suite * 100:6.1f} %")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "recipes"
        corpus.mkdir()
        n = make_corpus(recipes, corpus, args.corpus_size)
        t_corpus, n_c, f_c = min(rules_only(corpus) for _ in range(max(1, args.repeat // 2)))
        print(f"\n== 3. rules alone on a corpus of {n_c} recipes (copies of the collection, {n} deploy files)")
        print(f"discover + load + rules:              {t_corpus:8.2f} s  "
              f"({t_corpus / max(n_c, 1) * 1000:.2f} ms per recipe, {f_c} findings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
