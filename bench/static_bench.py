#!/usr/bin/env python3
"""`recipe-harness check` and the static suite on a generated corpus, optionally side by side with another revision.

    .venv/bin/python bench/static_bench.py [--corpus-size 500] [--runs 3] [--base REV]

Generates a corpus of N recipes (bench/static.py's copies of recipes/ under new model names) in a temporary
folder, then times, as a user runs them from a fresh process:

- ``recipe-harness check --format json CORPUS`` (goal: well under the suite);
- ``recipe-harness test --suite static --recipes-root CORPUS --report-dir ...`` (goal: < 10 s), which
  writes junit.xml, report.html, summary.json/md and findings.sarif.

Each command runs --runs times and the median is printed, wall time and CPU time (user + system of the
child, steadier than wall time on a shared machine). With ``--base REV`` the same commands also run on a
``git worktree`` of REV (its code selected with PYTHONPATH), alternating base and this tree run by run,
and the ratios base/this are printed; the two trees must report the same findings and the same test ids
and outcomes, or the bench says where they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from static import make_corpus  # noqa: E402  (bench/static.py, beside this file)

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def median(self) -> tuple[float, float]:
        return statistics.median(self.wall), statistics.median(self.cpu)


def run(cmd: list[str], code_dir: Path, cwd: Path, into: Timings) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    into.wall.append(wall)
    into.cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} (PYTHONPATH={code_dir}) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def commands(corpus: Path, report_dir: Path) -> dict[str, list[str]]:
    cli = [PY, "-m", "recipe_harness.cli"]
    return {
        "check": cli + ["check", "--format", "json", str(corpus)],
        "static suite": cli + ["test", "--suite", "static", "--recipes-root", str(corpus),
                               "--report-dir", str(report_dir), "--", "-q"],
    }


def junit_outcomes(path: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        state = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        module = (case.get("classname") or "").rpartition(".")[2]  # its package path depends on the rootdir
        out[f"{module}::{case.get('name')}"] = state
    return out


def compare(name: str, a: object, b: object) -> None:
    if a == b:
        print(f"  same {name}")
        return
    print(f"  DIFFERENT {name}")
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        for k in keys[:10]:
            print(f"    {k}: {a.get(k)!r} != {b.get(k)!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-size", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3, help="runs of each command on each tree (median printed)")
    ap.add_argument("--base", metavar="REV", help="also run REV's code (a temporary git worktree), alternating")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="static-bench-") as tmp_s:
        tmp = Path(tmp_s)
        corpus = tmp / "recipes"
        corpus.mkdir()
        n = make_corpus(ROOT / "recipes", corpus, args.corpus_size)
        trees = {"this": ROOT}
        if args.base:
            base = tmp / "base"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT, check=True)
            trees = {"base": base, "this": ROOT}
        print(f"corpus: {n} recipes; {args.runs} run(s) per command and tree"
              + (f"; base = {args.base} ({_rev(ROOT, args.base)})" if args.base else "")
              + ("; bytecode caching off (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))
        try:
            times = {(t, c): Timings() for t in trees for c in ("check", "static suite")}
            outputs: dict[tuple[str, str], object] = {}
            for i in range(args.runs):
                for tree, code in trees.items():  # alternating: base, this, base, this ...
                    report_dir = tmp / f"reports-{tree}"
                    for name, cmd in commands(corpus, report_dir).items():
                        proc = run(cmd, code, tmp, times[(tree, name)])
                        if i == 0:
                            outputs[(tree, name)] = (json.loads(proc.stdout) if name == "check"
                                                     else junit_outcomes(report_dir / "junit.xml"))
            print(f"\n{'':14s}{'tree':6s}{'wall s':>9s}{'cpu s':>9s}   (median of {args.runs})")
            for name in ("check", "static suite"):
                for tree in trees:
                    wall, cpu = times[(tree, name)].median()
                    print(f"{name:14s}{tree:6s}{wall:9.2f}{cpu:9.2f}")
                if args.base:
                    (bw, bc), (tw, tc) = times[("base", name)].median(), times[("this", name)].median()
                    print(f"{name:14s}ratio base/this: wall {bw / tw:.2f}x, cpu {bc / tc:.2f}x"
                          f"   (per run, wall: {_ratios(times[('base', name)].wall, times[('this', name)].wall)})")
            goal_suite = times[("this", "static suite")].median()[0]
            print(f"\nstatic suite {goal_suite:.2f} s wall: goal < 10 s {'met' if goal_suite < 10 else 'NOT met'}")
            if args.base:
                print("\nbase and this tree report:")
                compare("check findings", outputs[("base", "check")], outputs[("this", "check")])
                compare("static suite test ids and outcomes", outputs[("base", "static suite")],
                        outputs[("this", "static suite")])
        finally:
            if args.base:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "base")], cwd=ROOT, check=False)
    return 0


def _rev(root: Path, rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=root, capture_output=True, text=True).stdout.strip()


def _ratios(base: list[float], this: list[float]) -> str:
    return ", ".join(f"{b / t:.2f}" for b, t in zip(base, this))


if __name__ == "__main__":
    sys.exit(main())
