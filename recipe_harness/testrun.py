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
    # pytest takes the rootdir and its configuration file from the paths on its command line, and it counts
    # option values among them: `--recipes-root ../dynamo/recipes` made the recipes tree the rootdir (test ids
    # `../../<root>/test_static.py::...`) and the Dynamo repository's pyproject.toml the configuration, whose
    # addopts (--mypy), strict markers and warning filters stopped the run. Both are the package's own.
    config = ["-c", str(Path(__file__).parent / "data" / "pytest.ini"), "--rootdir", str(Path(__file__).parent.parent)]
    out = [*config, "--pyargs", "recipe_harness.suites", *ignore, "-m", " or ".join(suites),
           "--report-dir", args.report_dir,
           "-p", "no:cacheprovider", "--target", args.target,
           # test-only plugins of the harness's own tests; the suites need none of them (no async tests)
           "-p", "no:kmock", "-p", "no:asyncio", "-p", "no:anyio",
           # the suites fail with messages (pytest.fail), never a bare assert (tests/test_suites_collect.py checks):
           # rewriting would only recompile every harness module at each start (a pytest11 plugin's whole
           # distribution is marked for rewriting)
           "--assert=plain"]
    if args.recipes_root:
        out += ["--recipes-root", args.recipes_root]
    for pat in args.recipe:
        out += ["--recipe", pat]
    if args.changed_since:
        out += ["--changed-since", args.changed_since]
    if args.strict:
        out.append("--strict-rules")
    return out + extra
