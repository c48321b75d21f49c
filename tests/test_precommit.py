"""The pre-commit hook (``.pre-commit-hooks.yaml``) for real: ``pre-commit try-repo`` of this repository and a
``git commit`` through an installed hook, in a temporary recipes repository, offline (``language: system``
runs the installed console script). A broken recipe blocks with ``path:line:col: RULE message``; a good
one passes; files of no recipe are skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOOK = "recipe-harness-check"


def env(tmp: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    e.update(PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}", PRE_COMMIT_HOME=str(tmp / "pre-commit-home"),
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
             GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return e


def run(cwd: Path, tmp: Path, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env=env(tmp), timeout=timeout)


@pytest.fixture
def recipes_repo(tmp_path) -> Path:
    repo = tmp_path / "recipes-repo"
    shutil.copytree(REPO / "recipes" / "mocker-tiny", repo / "recipes" / "mocker-tiny")
    (repo / "recipes" / "README.md").write_text("# recipes\n")
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "recipes"]):
        assert run(repo, tmp_path, *argv).returncode == 0
    return repo


def try_repo(repo: Path, tmp: Path) -> subprocess.CompletedProcess:
    return run(repo, tmp, str(BIN / "pre-commit"), "try-repo", str(REPO), HOOK, "--verbose")


def break_replicas(repo: Path) -> Path:
    deploy = repo / "recipes/mocker-tiny/mocker/agg/deploy.yaml"
    deploy.write_text(deploy.read_text().replace("      replicas: 1\n", "      replica: 1\n", 1))
    return deploy


def test_hook_definition_is_offline_and_serial():
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == HOOK and hook["language"] == "system" and hook["require_serial"] is True
    assert hook["entry"].split()[:2] == ["recipe-harness", "check"]


def test_try_repo_blocks_a_broken_recipe_with_its_finding(recipes_repo, tmp_path):
    break_replicas(recipes_repo)
    assert run(recipes_repo, tmp_path, "git", "add", "-A").returncode == 0
    result = try_repo(recipes_repo, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "recipes/mocker-tiny/mocker/agg/deploy.yaml:22:7: RH203 unknown field \"replica\"" in out, out
    assert "Failed" in out


def test_try_repo_passes_a_good_change_and_skips_files_of_no_recipe(recipes_repo, tmp_path):
    perf = recipes_repo / "recipes/mocker-tiny/mocker/agg/perf.yaml"
    perf.write_text(perf.read_text() + "# a comment\n")
    (recipes_repo / "recipes" / "README.md").write_text("# recipes, edited\n")
    assert run(recipes_repo, tmp_path, "git", "add", "-A").returncode == 0
    result = try_repo(recipes_repo, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 recipes checked: 0 errors" in out and "recipes/README.md: part of no recipe, not checked" in out


def test_installed_hook_blocks_the_commit(recipes_repo, tmp_path):
    head = run(REPO, tmp_path, "git", "rev-parse", "HEAD").stdout.strip()
    shown = run(REPO, tmp_path, "git", "show", f"{head}:.pre-commit-hooks.yaml")
    if shown.returncode != 0:
        pytest.skip("the hook file is not committed yet: try-repo covers the working tree")
    config = {"repos": [{"repo": str(REPO), "rev": head, "hooks": [{"id": HOOK}]}]}
    (recipes_repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    assert run(recipes_repo, tmp_path, str(BIN / "pre-commit"), "install").returncode == 0
    run(recipes_repo, tmp_path, "git", "add", ".pre-commit-config.yaml")
    assert run(recipes_repo, tmp_path, "git", "commit", "-q", "-m", "hooks").returncode == 0
    before = run(recipes_repo, tmp_path, "git", "rev-parse", "HEAD").stdout
    break_replicas(recipes_repo)
    run(recipes_repo, tmp_path, "git", "add", "-A")
    commit = run(recipes_repo, tmp_path, "git", "commit", "-m", "break it")
    out = commit.stdout + commit.stderr
    assert commit.returncode == 1, out
    assert "deploy.yaml:22:7: RH203 " in out
    assert run(recipes_repo, tmp_path, "git", "rev-parse", "HEAD").stdout == before  # nothing committed
