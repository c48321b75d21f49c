"""mypy finds no error in the package (pyproject.toml ``[tool.mypy]``), and catches the errors it is
configured for (run on a copy of the package with one bad line added); the lint env and the test
extra pin the same mypy.

mypy reads ``[tool.mypy]`` from the working directory's pyproject.toml and checks
``recipe_harness`` from there, so a copy in a temporary directory is checked instead of the
installed package. The package's own run keeps mypy's cache in the git-ignored ``.mypy_cache`` (a
cold run took 40 s on 2 shared cores, a warm one 2 s; mypy re-checks every module whose source or
options changed); the copy's run gets its own cache.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MYPY = Path(sys.executable).parent / "mypy"
TIMEOUT_S = 600.0

pytestmark = pytest.mark.skipif(not MYPY.is_file(), reason=f"{MYPY}: mypy is not installed here; install the "
                                                          "test extra (pip install -e '.[test]') to type-check")


def mypy(cwd: Path, cache: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """mypy with the configuration of ``cwd``'s pyproject.toml, on its ``files`` (default: the package)."""
    return subprocess.run([str(MYPY), "--cache-dir", str(cache), "--no-error-summary", "--hide-error-context",
                           "--no-pretty", "--show-error-codes", *files],
                          cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stdout.splitlines() if ": error: " in line]


def test_package_has_no_type_errors():
    proc = mypy(ROOT, ROOT / ".mypy_cache")
    found = errors(proc)
    assert found == [] and proc.returncode == 0, "\n".join(found) or proc.stdout + proc.stderr


def test_every_type_ignore_names_its_error_code():
    bare = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "recipe_harness").rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"#\s*type:\s*ignore(?!\[)", line)]
    assert bare == []


def _pin(requirements: list[str], name: str) -> str | None:
    return next((r.strip() for r in requirements if re.match(rf"{re.escape(name)}\s*==", r.strip(), re.I)), None)


@pytest.mark.parametrize("name", ["mypy", "types-PyYAML"])
def test_lint_env_and_test_extra_pin_the_same_version(name: str):
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    lint = ini["testenv:lint"]
    assert "mypy" in lint["commands"].split()
    pinned = _pin(extra, name)
    assert pinned is not None, f"pyproject.toml: the test extra pins no {name}"
    assert _pin(lint["deps"].splitlines(), name) == pinned


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typed")
    shutil.copytree(ROOT / "recipe_harness", root / "recipe_harness",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


# (what the line gets wrong, the error code mypy must report); each line is added to the end of
# recipe_harness/report/summary.py, a module outside every target's and model's reach
BAD_LINES = {
    "arg-type": "def _typing_bad() -> int:\n    return len(1)",
    "union-attr": "def _typing_bad(x: str | None) -> str:\n    return x.strip()",
    "unused-ignore": "_TYPING_BAD: int = 1  # type: ignore[assignment]",
    "ignore-without-code": "_TYPING_BAD: int = ''  # type: ignore",
    "comparison-overlap": "def _typing_bad(x: int) -> bool:\n    return x == 'a'",
}


def test_configured_checks_catch_their_errors(package_copy: Path, tmp_path: Path):
    """One mypy run over the changed module of the copy (with the package's configuration), one bad
    line per configured check: each is reported at its own line with its own code."""
    path = package_copy / "recipe_harness" / "report" / "summary.py"
    text = path.read_text(encoding="utf-8")
    lines: dict[str, int] = {}
    for code, bad in BAD_LINES.items():
        text += "\n\n"
        lines[code] = text.count("\n") + bad.count("\n") + 1
        text += bad + "\n"
    path.write_text(text, encoding="utf-8")
    where = "recipe_harness/report/summary.py"
    found = errors(mypy(package_copy, tmp_path / "cache", where))
    for code, line in lines.items():
        assert any(e.startswith(f"{where}:{line}: error: ") and e.endswith(f"[{code}]") for e in found), \
            (code, line, found)
