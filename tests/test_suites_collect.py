"""One way to collect the conformance suites: the test modules of the installed package
(``recipe_harness/suites``), run by ``recipe-harness test`` and by the README's pytest command."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT_S = 300.0
SUITES_IMPORT = re.compile(r"^\s*(from recipe_harness\.suites\b|import recipe_harness\.suites\b)", re.M)


def readme_pytest_command() -> list[str]:
    text = README.read_text()
    section = text.split("## Running the suites with pytest", 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert block, "README.md: no bash block under 'Running the suites with pytest'"
    return shlex.split(block.group(1))


def test_readme_command_collects_the_package_suites(tmp_path: Path):
    argv = readme_pytest_command()
    assert argv[:3] == [".venv/bin/python", "-m", "pytest"], argv
    args = argv[3:]
    args[args.index("--recipes-root") + 1] = str(ROOT / "recipes")
    args[args.index("--report-dir") + 1] = str(tmp_path / "reports")
    # from another directory: nothing in the working tree is needed to collect them
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::test_" in line]
    assert "recipe_harness/suites/test_static.py::test_static[mocker-tiny/mocker/agg::schema]" in ids, proc.stdout
    assert all(i.startswith("recipe_harness/suites/test_static.py::test_static[") for i in ids), ids


def test_no_copies_of_the_suites_outside_the_package():
    copies = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
              if not p.relative_to(ROOT).parts[0].startswith(".")
              and p.relative_to(ROOT).parts[0] not in ("recipe_harness", "tests", "build")
              and SUITES_IMPORT.search(p.read_text(errors="replace"))]
    assert copies == [], f"{copies}: collect the suites with `pytest --pyargs recipe_harness.suites` instead"


def test_suites_and_plugin_need_no_assertion_rewriting():
    """`recipe-harness test` runs pytest with --assert=plain (no module recompiled for rewriting at each start):
    a suite or plugin module that used a bare ``assert`` for a test outcome would lose its message."""
    from recipe_harness.cli import _parser, pytest_args

    found = []
    for folder in ("suites", "plugin"):
        for path in sorted((ROOT / "recipe_harness" / folder).glob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert found == [], f"{found}: fail with pytest.fail(message, pytrace=False), or drop --assert=plain in cli.pytest_args"
    assert "--assert=plain" in pytest_args(_parser().parse_args(["test", "--suite", "static"]))


STATIC_SESSION_MODULES = """
import sys
from recipe_harness.cli import main
code = main(["test", "--suite", "static", "--recipes-root", sys.argv[1], "--report-dir", sys.argv[2], "--", "-q"])
heavy = [m for m in ("kubernetes", "httpx", "anyio", "recipe_harness.deploy.kubernetes.client",
                     "recipe_harness.exercise.perf.check", "recipe_harness.exercise.predict.check",
                     "recipe_harness.qualify.bundle") if m in sys.modules]
print("HEAVY", heavy, "EXIT", code)
"""


def test_a_static_session_imports_no_deploy_perf_or_predict_module(tmp_path: Path):
    """The plugin loads the Kubernetes client, the perf and predict modules when a test needs them: a static run
    starts without them (each costs a noticeable share of a short run's start)."""
    recipes = tmp_path / "recipes"
    shutil.copytree(ROOT / "recipes" / "mocker-tiny", recipes / "mocker-tiny")
    proc = subprocess.run([sys.executable, "-c", STATIC_SESSION_MODULES, str(recipes), str(tmp_path / "reports")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert "HEAVY [] EXIT 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
