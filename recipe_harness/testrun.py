"""The pytest command line of ``recipe-harness test``, which ``recipe-harness qualify`` runs too: the
suites package, the selected suites and recipes, the target and where the reports go."""

from __future__ import annotations

import argparse
from pathlib import Path

SUITES = ("static", "smoke", "perf", "preflight", "predict")  # recipe_harness/suites/test_<suite>.py, marked <suite>


def pytest_args(args: argparse.Namespace) -> list[str]:
    suites = args.suite or ["static", "smoke"]
    extra = [a for a in (args.pytest_args or []) if a != "--"]
    # each suite is one module (recipe_harness/suites/test_<suite>.py, marked <suite>): the others are not
    # collected, so their tests are neither parametrised nor deselected. The package stays the argument, so
    # the test ids do not depend on where it is installed.
    folder = Path(__file__).parent / "suites"
    ignore = [f"--ignore={folder / f'test_{s}.py'}" for s in SUITES if s not in suites]
    out = ["--pyargs", "recipe_harness.suites", *ignore, "-m", " or ".join(suites), "--report-dir", args.report_dir,
           "-p", "no:cacheprovider", "--target", args.target,
           # test-only plugins of the harness's own tests; the suites need neither
           "-p", "no:kmock", "-p", "no:asyncio"]
    if args.recipes_root:
        out += ["--recipes-root", args.recipes_root]
    for pat in args.recipe:
        out += ["--recipe", pat]
    if args.changed_since:
        out += ["--changed-since", args.changed_since]
    if args.strict:
        out.append("--strict-rules")
    return out + extra
