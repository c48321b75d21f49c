"""The pull-request workflow ``.github/workflows/recipes.yml`` and the composite ``action.yml``: what they
pin and wire together, and the workflow's run steps executed locally, in order, as a runner would, on a
clone with one changed recipe (a clean change passes; a broken one fails the check step with an
annotation while the later steps still report). actionlint and zizmor run on every workflow in
tests/test_workflows.py; zizmor audits action.yml here."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_workflows import SHA, zizmor

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "recipes.yml"
ACTION = REPO / "action.yml"
VENVS = (".venv", ".venv-dynamo", ".venv-aiperf")


def job() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["changed-recipes"]


def step(name: str) -> dict:
    found = [s for s in job()["steps"] if s.get("name") == name]
    assert len(found) == 1, f"recipes.yml: one step named {name!r} expected"
    return found[0]


def test_least_privilege_and_pinned_actions():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"] == {}
    assert job()["permissions"] == {"contents": "read", "security-events": "write"}
    uses = [s["uses"] for s in job()["steps"] if "uses" in s]
    assert len(uses) == 4 and all(SHA.match(u) for u in uses), uses
    checkout = job()["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}


def test_the_steps_are_wired_together():
    assert step("install")["run"].strip() == "python3 bootstrap.py"
    assert "python3 bootstrap.py" in (REPO / "README.md").read_text()  # the README's install command
    check = step("check changed recipes")["run"]
    sarif = re.search(r"--sarif (\S+)", check).group(1)
    assert '--changed-since "origin/${BASE_REF}"' in check and "--format github" in check
    upload = step("upload SARIF to code scanning")
    assert upload["with"]["sarif_file"] == sarif and upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert "!cancelled()" in upload["if"]
    test = step("test changed recipes on the local target")["run"]
    assert '--changed-since "origin/${BASE_REF}"' in test and "--report-dir reports" in test
    assert '>> "$GITHUB_STEP_SUMMARY"' in step("job summary")["run"]
    assert step("reports")["with"]["path"] == "reports/"
    for name in ("test changed recipes on the local target", "job summary", "reports"):
        assert step(name)["if"] == "${{ !cancelled() }}", name  # they report even when the check failed
    assert "${{" not in "".join(s.get("run", "") for s in job()["steps"])  # no expression expanded into a script


def test_composite_action_passes_zizmor_and_expands_no_input_into_scripts():
    result = zizmor(ACTION)
    assert result.returncode == 0, result.stdout + result.stderr
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert all("${{" not in s.get("run", "") for s in steps)
    assert all(SHA.match(s["uses"]) for s in steps if "uses" in s)
    assert {"recipes-root", "changed-since", "suites", "report-dir"} <= set(action["inputs"])
    assert any('bootstrap.py"' in s.get("run", "") for s in steps)


# -- the run steps, locally --------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env,
                          timeout=120).stdout


def run_steps(clone: Path, summary: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every run step but the install, in order, with GitHub's shell (bash -eo pipefail) and env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(BASE_REF="main", GITHUB_STEP_SUMMARY=str(summary), GITHUB_ACTIONS="true", CI="true")
    out = {}
    for s in job()["steps"]:
        if "run" not in s or "bootstrap.py" in s["run"]:
            continue
        out[s["name"]] = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]],
                                        cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    return out


@pytest.fixture
def clone(tmp_path) -> Path:
    """A clone of this repository on a branch of the main it came from, with the installed environments."""
    if not all((REPO / v).is_dir() for v in VENVS[:2]):
        pytest.fail(f"run python3 bootstrap.py first: {', '.join(VENVS[:2])} are needed")
    dest = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-hardlinks", str(REPO), str(dest))
    head = git(REPO, "rev-parse", "HEAD").strip()
    git(dest, "update-ref", "refs/remotes/origin/main", head)  # the base branch, whatever REPO has checked out
    git(dest, "checkout", "-q", "-B", "pr", head)
    for v in VENVS:
        if (REPO / v).is_dir():
            (dest / v).symlink_to(REPO / v)
    return dest


def test_workflow_steps_pass_a_clean_change_and_report_it(clone, tmp_path):
    perf = clone / "recipes/mocker-tiny/mocker/agg/perf.yaml"
    perf.write_text(perf.read_text() + "# tuned\n")
    git(clone, "commit", "-qam", "tune the benchmark")
    summary = tmp_path / "step-summary.md"
    results = run_steps(clone, summary)
    for name, r in results.items():
        assert r.returncode == 0, f"{name}:\n{r.stdout}\n{r.stderr}"
    check = results["check changed recipes"]
    assert "mocker-tiny/mocker/agg: a file of the recipe" in check.stderr and "::error" not in check.stdout
    sarif = json.loads((clone / "reports" / "check.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []
    text = summary.read_text()
    assert "mocker-tiny/mocker/agg" in text and "mocker-tiny/mocker/disagg-kv-router" not in text
    junit = (clone / "reports" / "junit.xml").read_text()
    assert "mocker-tiny/mocker/agg::smoke-chat" in junit and "qwen3-32b" not in junit


def test_workflow_steps_annotate_a_broken_change_and_still_report(clone, tmp_path):
    deploy = clone / "recipes/mocker-tiny/mocker/agg/deploy.yaml"
    deploy.write_text(deploy.read_text().replace("      replicas: 1\n", "      replica: 1\n", 1))
    git(clone, "commit", "-qam", "a typo")
    summary = tmp_path / "step-summary.md"
    results = run_steps(clone, summary)
    check = results["check changed recipes"]
    assert check.returncode == 1
    assert ("::error file=recipes/mocker-tiny/mocker/agg/deploy.yaml,line=22,col=7,title=RH203::RH203 unknown field "
            '"replica"') in check.stdout
    sarif = json.loads((clone / "reports" / "check.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["RH203"]
    assert results["test changed recipes on the local target"].returncode == 1
    assert results["job summary"].returncode == 0 and "mocker-tiny/mocker/agg" in summary.read_text()


def test_no_recipe_changed_passes_and_says_so(clone, tmp_path):
    (clone / "NOTES.txt").write_text("not a recipe\n")
    git(clone, "add", "NOTES.txt")
    git(clone, "commit", "-qm", "notes")
    summary = tmp_path / "step-summary.md"
    results = run_steps(clone, summary)
    assert all(r.returncode == 0 for r in results.values()), {n: r.stderr for n, r in results.items()}
    assert "No recipe changed since origin/main" in summary.read_text()
