#!/usr/bin/env python3
"""What pytest alone costs for as many tests as the static suite has, with no plugin of the harness.

    .venv/bin/python bench/pytest_floor.py [--tests 6000] [--runs 3]

Writes a test module of N parametrised tests that do nothing, with the static suite's shape (an indirect
parameter and a second function fixture), and times it from a fresh process as `recipe-harness test`
runs pytest (--assert=plain, the harness's test-only plugins off), without reports, with junit.xml and
report.html (pytest-html, self-contained), and with both reports under pytest-xdist ``-n 2``. Medians of
wall and CPU time (user + system of the children). The static suite on a corpus cannot be faster than
the line with both reports, whatever its checks cost (bench/static_bench.py measures the suite).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_MODULE = '''
import pytest

@pytest.fixture
def case(request):
    return request.param

@pytest.fixture
def record(request):
    return lambda **kw: None

@pytest.mark.parametrize("case", [f"model-{{i // 12:03d}}/vllm/agg::check-{{i % 12}}" for i in range({n})],
                         indirect=True)
def test_static(case, record):
    record(findings=[])
'''

BASE = ["-q", "-p", "no:cacheprovider", "-p", "no:recipe_harness", "-p", "no:kmock", "-p", "no:asyncio",
        "-p", "no:anyio", "--assert=plain"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=6000, help="tests in the module (the static suite: 12 a recipe)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pytest-floor-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "test_floor.py").write_text(TEST_MODULE.format(n=args.tests))
        reports = ["--junitxml", str(tmp / "junit.xml"), "--html", str(tmp / "report.html"), "--self-contained-html"]
        variants = {
            "no reports": [],
            "junit.xml + report.html": reports,
            "both reports, -n 2": [*reports, "-n", "2"],
        }
        print(f"{args.tests} tests that do nothing; {args.runs} run(s) each\n")
        print(f"{'':28s}{'wall s':>9s}{'cpu s':>9s}")
        for name, extra in variants.items():
            walls, cpus = [], []
            for _ in range(args.runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "pytest", *BASE, *extra, "test_floor.py"], cwd=tmp,
                                      capture_output=True, text=True)
                walls.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
                if proc.returncode != 0:
                    sys.exit(f"pytest {' '.join(extra)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            print(f"{name:28s}{statistics.median(walls):9.2f}{statistics.median(cpus):9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
