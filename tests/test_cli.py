"""The recipe-harness CLI: output format, exit codes, never a traceback on user input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.cli import _find_root, main
from tests import procs

FIXTURES = Path(__file__).parent.parent / "fixtures"
CORPUS = FIXTURES / "bad-input"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recipe_harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_structure_finding_is_printed_as_path_line_col_rule(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    code = main(["check", "fixtures/structure/RH104/recipes", "--no-hints"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert ("fixtures/structure/RH104/recipes/tiny/vllm/agg/deploy.yaml:1:1: "
            "RH104 no model-download Job in the model-cache folder") in out


def test_json_format(capsys):
    tree = FIXTURES / "structure" / "RH107" / "recipes"
    assert main(["check", str(tree), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["recipes"] == ["tiny/vllm/agg"]
    rh107 = [f for f in data["findings"] if f["rule"] == "RH107"]
    assert rh107 and rh107[0]["file"].endswith("tiny/README.md") and rh107[0]["line"] == 1
    assert data["summary"]["errors"] >= 1


def test_usage_errors_exit_2():
    assert run_cli("check", "/no/such/path").returncode == 2
    assert run_cli("check", "--format", "yaml").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    result = run_cli("check", "--crd", "/no/such/crd.yaml", str(FIXTURES / "structure" / "good" / "recipes"))
    assert result.returncode == 2 and "no such file" in result.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml"))
def test_bad_input_never_crashes(tmp_path, name):
    """Every corpus file, as a recipe's deploy.yaml, gives findings or a clean result, never a traceback."""
    recipe = tmp_path / "recipes" / "bad" / "vllm" / "agg"
    recipe.mkdir(parents=True)
    shutil.copy(CORPUS / name, recipe / "deploy.yaml")
    result = run_cli("check", str(tmp_path / "recipes"))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    if name != "empty.yaml":
        assert result.returncode == 1


def test_symlink_loop_and_huge_file_in_a_tree(tmp_path):
    root = tmp_path / "recipes"
    recipe = root / "m" / "vllm" / "agg"
    recipe.mkdir(parents=True)
    shutil.copy(FIXTURES / "structure/good/recipes/tiny/vllm/agg/deploy.yaml", recipe / "deploy.yaml")
    (root / "m" / "loop").symlink_to(root / "m")
    with (recipe / "perf.yaml").open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    result = run_cli("check", str(root), "--no-hints")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert "RH004 file is 50.0 MiB" in result.stdout


def test_find_root_of_a_recipe_folder_and_file():
    tree = FIXTURES / "structure" / "good" / "recipes"
    assert _find_root(tree / "tiny" / "vllm" / "agg") == tree.absolute()
    assert _find_root(tree / "tiny" / "vllm" / "agg" / "deploy.yaml") == tree.absolute()


def test_check_a_single_recipe_file_selects_only_it(capsys):
    tree = FIXTURES / "structure" / "RH105" / "recipes"
    assert main(["check", str(tree / "tiny/vllm/agg/deploy.yaml"), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["recipes"] == ["tiny/vllm/agg"]


def test_list_and_rules(capsys):
    assert main(["list", "--recipes-root", str(FIXTURES / "structure" / "good" / "recipes")]) == 0
    assert capsys.readouterr().out.split() == ["tiny/vllm/agg"]
    assert main(["rules", "--format", "json"]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"RH002", "RH003", "RH101", "RH106"} <= set(rules)
    assert all(r["doc"] for r in rules.values())


def test_test_command_runs_from_outside_the_repository(tmp_path):
    """`recipe-harness test --recipes-root ../other/recipes` from any folder: static + local deploy + smoke."""
    other = tmp_path / "other" / "recipes"
    shutil.copytree(FIXTURES.parent / "recipes" / "mocker-tiny", other / "mocker-tiny")
    work = tmp_path / "work"
    work.mkdir()
    exe = Path(sys.executable).with_name("recipe-harness")
    result = procs.run([str(exe), "test", "--recipes-root", "../other/recipes", "--recipe", "mocker-tiny/mocker/agg"],
                       cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads((work / "reports" / "summary.json").read_text())
    checks = summary["recipes"]["mocker-tiny/mocker/agg"]["checks"]
    assert summary["target"] == "local"
    assert checks["schema"]["outcome"] == "passed"
    assert checks["smoke-chat"]["outcome"] == "passed"
    assert checks["smoke-disagg"]["outcome"] == "skipped"
    assert (work / "reports" / "report.html").is_file() and (work / "reports" / "junit.xml").is_file()


def test_test_command_in_a_repository_whose_pytest_configuration_is_not_the_harness_s(tmp_path):
    """Upstream layout: `recipes/` beside the Dynamo repository's pyproject.toml, whose pytest table (addopts
    --mypy, --strict-markers, warnings as errors) must not configure the harness's run; the test ids and junit
    classnames are the package's, wherever the recipes tree is."""
    repo = tmp_path / "dynamo"
    shutil.copytree(FIXTURES.parent / "recipes" / "mocker-tiny", repo / "recipes" / "mocker-tiny")
    shutil.copy(FIXTURES / "upstream-patterns" / "dynamo-pyproject.toml", repo / "pyproject.toml")
    work = tmp_path / "work"
    work.mkdir()
    exe = Path(sys.executable).with_name("recipe-harness")
    result = subprocess.run([str(exe), "test", "--recipes-root", "../dynamo/recipes", "--suite", "static",
                             "--report-dir", "r", "--", "-rA"], cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    junit = (work / "r" / "junit.xml").read_text()
    assert 'classname="recipe_harness.suites.test_static" name="test_static[mocker-tiny/mocker/agg::schema]"' in junit
    assert 'classname="test_static"' not in junit
    summary = json.loads((work / "r" / "summary.json").read_text())
    assert summary["recipes"]["mocker-tiny/mocker/agg"]["checks"]["schema"]["outcome"] == "passed"


def test_test_command_with_a_typo_in_the_root_is_a_usage_error(tmp_path):
    exe = Path(sys.executable).with_name("recipe-harness")
    result = subprocess.run([str(exe), "test", "--recipes-root", str(tmp_path / "nope")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_findings_outside_every_recipe_are_printed(tmp_path, capsys):
    root = tmp_path / "recipes"
    shutil.copytree(FIXTURES / "structure" / "good" / "recipes", root)
    (root / "tiny" / "vllm" / "raw").mkdir()
    (root / "tiny" / "vllm" / "raw" / "deploy.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert main(["check", str(root), "-v", "--no-hints"]) == 0  # a note does not fail the check
    assert f"{root / 'tiny/vllm/raw/deploy.yaml'}:1:1: RH013 holds no DynamoGraphDeployment: not checked as a recipe" \
        in capsys.readouterr().out


def test_output_piped_into_a_reader_that_stops_early_is_no_traceback(tmp_path):
    """`recipe-harness check --format sarif | head` must not end in a BrokenPipeError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("recipe-harness")
    root = Path(__file__).resolve().parent.parent / "recipes"
    proc = subprocess.run(f"'{cli}' check '{root}' --format sarif | head -c 10", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("{")


def test_test_collects_only_the_modules_of_the_chosen_suites(tmp_path):
    """`--suite static` collects recipe_harness/suites/test_static.py alone: the other suites' tests are never
    parametrised (each loads every recipe) only to be deselected; the ids are those of the whole package, also
    run from a folder that does not hold the package (ids relative to the rootdir)."""
    shutil.copytree(Path(__file__).parent.parent / "recipes" / "mocker-tiny", tmp_path / "recipes" / "mocker-tiny")
    opts = ["--recipes-root", "recipes", "--report-dir", "r"]

    def ids(proc: subprocess.CompletedProcess) -> list[str]:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # the test names: plain pytest's node ids start from its rootdir (here the recipes tree), the CLI's from the
    # package's parent
        return [line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::test_" in line]

    package = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "recipe_harness.suites", *opts, "-m", "static",
                              "-p", "no:cacheprovider", "--collect-only", "-q"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    static = run_cli("test", *opts, "--suite", "static", "--", "--collect-only", "-q", cwd=tmp_path)
    assert ids(static) == ids(package) and "test_static[mocker-tiny/mocker/agg::schema]" in static.stdout
    assert "deselected" in package.stdout and "deselected" not in static.stdout, static.stdout
    both = run_cli("test", *opts, "--suite", "static", "--suite", "smoke", "--", "--collect-only", "-q", cwd=tmp_path)
    assert [i for i in ids(both) if "test_static" in i] == ids(static)
    assert any("test_smoke" in i for i in ids(both)) and "deselected" not in both.stdout


# what each command imports: the console script's start stays free of the heavy libraries only some
# subcommands need (numpy: predict, qualify and the perf/GPU rules; kubernetes: clean, qualify, the
# Kubernetes target; matplotlib: plots)
_IMPORTED = """
import contextlib, io, sys
from recipe_harness.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(("args", "absent"), [
    pytest.param(["--help"], {"numpy", "matplotlib", "kubernetes", "pytest"}, id="help"),
    pytest.param(["list", "--recipes-root", "recipes"], {"numpy", "matplotlib", "kubernetes", "pytest"}, id="list"),
    pytest.param(["new", "tiny/vllm/agg", "--recipes-root", "{tmp}/recipes"], {"numpy", "matplotlib", "kubernetes", "pytest"},
                 id="new"),
    pytest.param(["check", "recipes"], {"matplotlib", "kubernetes", "pytest"}, id="check"),
])
def test_console_script_start_imports_only_what_the_command_needs(args: list[str], absent: set[str], tmp_path: Path):
    root = Path(__file__).resolve().parent.parent
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-c", _IMPORTED, *argv], cwd=root, capture_output=True, text=True,
                          timeout=120, check=True)
    imported = set(proc.stdout.split())
    assert "recipe_harness" in imported
    assert imported & absent == set(), f"recipe-harness {' '.join(args)} imports {sorted(imported & absent)}"
