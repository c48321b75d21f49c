"""The import contracts of pyproject.toml ``[tool.importlinter]`` hold on the package, and each kind
of contract catches the import it forbids (run on a copy of the package with one bad import added).

``lint-imports`` reads the package from its working directory (it puts it first on ``sys.path``), so
a copy in a temporary directory is checked instead of the installed one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
TIMEOUT_S = 120.0


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS}: missing; install the test extra (pip install -e '.[test]')"
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_contracts_kept_on_the_package():
    proc = lint_imports(ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Contracts: {len(contracts())} kept, 0 broken." in out, out


def test_no_contract_ignores_an_import():
    """A tie the layers do not allow is fixed by moving code to where the layers say it belongs."""
    assert {cid: c["ignore_imports"] for cid, c in contracts().items() if c.get("ignore_imports")} == {}


def test_every_top_level_module_has_a_layer():
    pipeline = contracts()["pipeline"]
    assert pipeline["type"] == "layers" and pipeline["exhaustive"] is True
    listed = {name.strip().strip("()") for layer in pipeline["layers"] for name in layer.split("|")}
    present = {p.stem for p in (ROOT / "recipe_harness").glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in (ROOT / "recipe_harness").iterdir() if (p / "__init__.py").is_file()}
    assert present - listed - set(pipeline["exhaustive_ignores"]) == set()


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "recipe_harness", tmp_path / "recipe_harness",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


# (module file, import added at its end, the broken contract's id, the import it reports)
BAD_IMPORTS = [
    pytest.param("deploy/local.py", "from recipe_harness.plugin import options as _up", "pipeline",
                 "recipe_harness.deploy.local -> recipe_harness.plugin.options", id="target-imports-plugin"),
    pytest.param("load/manifests.py", "from recipe_harness.static.rules import all_rules as _up", "pipeline",
                 "recipe_harness.load.manifests -> recipe_harness.static.rules", id="parser-imports-rules"),
    pytest.param("exercise/smoke.py", "from recipe_harness.deploy import local as _sideways", "pipeline",
                 "recipe_harness.exercise.smoke -> recipe_harness.deploy.local", id="independent-stages"),
    pytest.param("deploy/twin.py", "from recipe_harness.deploy import local as _up", "deploy",
                 "recipe_harness.deploy.twin -> recipe_harness.deploy.local", id="twin-imports-its-target"),
    pytest.param("exercise/predict/gate.py", "from recipe_harness.exercise.predict import check as _circle",
                 "no-circles", ".gate -> .check", id="circle-in-predict"),
    pytest.param("exercise/perf/check.py", "import pytest as _pytest_up", "deploy-without-pytest",
                 "recipe_harness.exercise.perf.check -> pytest", id="perf-imports-pytest"),
    pytest.param("plugin/static.py", "from recipe_harness.report.html import render as _private", "report-html-private",
                 "recipe_harness.plugin.static -> recipe_harness.report.html.render", id="report-html-elsewhere"),
]


@pytest.mark.parametrize(("module", "line", "contract", "reported"), BAD_IMPORTS)
def test_bad_import_breaks_its_contract(package_copy: Path, module: str, line: str, contract: str, reported: str):
    path = package_copy / "recipe_harness" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401\n")
    proc = lint_imports(package_copy)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{contracts()[contract]['name']} BROKEN" in " ".join(out.split()), out
    assert reported in out, out
