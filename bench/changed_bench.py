#!/usr/bin/env python3
"""Changed-only runs, measured on this machine.

    .venv/bin/python bench/changed_bench.py [--corpus-size 500] [--repeat 3]

Prints:
1. `recipe-harness check --changed-since HEAD` with one changed recipe in a generated tree of N recipes
   (bench/static.py's corpus, committed to a temporary git repository), wall time through the console
   script (goal for 500: < 2 s), beside `check` of the whole tree;
2. the steps of .github/workflows/recipes.yml after the install step, run locally in order as a script on
   a clone of this repository with one changed recipe (mocker-tiny/mocker/agg), per step and in all
   (goal: < 60 s).
Times are the best of --repeat runs for 1, one run for 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "recipe-harness")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from static import make_corpus  # noqa: E402  (bench/static.py, beside this file)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@example.com", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=git_env(),
                          timeout=300).stdout


def timed(cmd: list[str], cwd: Path, repeat: int = 1, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    best, code, err = float("inf"), 0, ""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
        best = min(best, time.perf_counter() - start)
        code, err = proc.returncode, proc.stderr
    return best, code, err


def bench_check(size: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rh-changed-") as tmp:
        repo = Path(tmp)
        count = make_corpus(ROOT / "recipes", repo / "recipes", size)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "corpus")
        target = next(iter(sorted((repo / "recipes").glob("mocker-tiny-*/mocker/agg/perf.yaml"))))
        target.write_text(target.read_text() + "# changed\n")
        t_changed, code, err = timed([CLI, "check", "--changed-since", "HEAD"], repo, repeat)
        selected = next((line for line in err.splitlines() if "recipes selected" in line), "?")
        t_all, code_all, _ = timed([CLI, "check", "--format", "json"], repo, repeat)
        print(f"== 1. check --changed-since HEAD, one changed recipe in {count} recipes")
        print(f"   {selected.strip()}")
        print(f"check --changed-since: {t_changed:6.2f} s (exit {code})   goal < 2 s: {t_changed / 2.0:.2f}x of budget")
        print(f"check (whole tree):    {t_all:6.2f} s (exit {code_all})   changed-only is {t_all / t_changed:.1f}x faster")


def bench_workflow() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "recipes.yml").read_text())
    steps = [s for s in workflow["jobs"]["changed-recipes"]["steps"] if "run" in s and "bootstrap.py" not in s["run"]]
    with tempfile.TemporaryDirectory(prefix="rh-workflow-") as tmp:
        clone = Path(tmp) / "clone"
        git(Path(tmp), "clone", "-q", str(ROOT), str(clone))
        head = git(ROOT, "rev-parse", "HEAD").strip()
        git(clone, "update-ref", "refs/remotes/origin/main", head)
        git(clone, "checkout", "-q", "-B", "pr", head)
        for v in (".venv", ".venv-dynamo", ".venv-aiperf"):
            if (ROOT / v).is_dir():
                (clone / v).symlink_to(ROOT / v)
        perf = clone / "recipes/mocker-tiny/mocker/agg/perf.yaml"
        perf.write_text(perf.read_text() + "# changed\n")
        git(clone, "commit", "-qam", "one changed recipe")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(BASE_REF="main", GITHUB_STEP_SUMMARY=str(Path(tmp) / "summary.md"), CI="true")
        print("\n== 2. recipes.yml run steps after install, one changed recipe (mocker-tiny/mocker/agg)")
        total = 0.0
        for s in steps:
            t, code, _ = timed(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]], clone, env=env)
            total += t
            print(f"{s['name']:<45} {t:6.2f} s (exit {code})")
        print(f"{'all steps':<45} {total:6.2f} s   goal < 60 s: {total / 60.0:.2f}x of budget")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-workflow", action="store_true")
    args = ap.parse_args()
    bench_check(args.corpus_size, args.repeat)
    if not args.skip_workflow:
        bench_workflow()
    return 0


if __name__ == "__main__":
    sys.exit(main())
