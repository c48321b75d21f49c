"""``--changed-since REF``: which recipes a change selects, and why, through the console script.

Each test clones a small recipes repository (a copy of ``recipes/`` plus a shared Kustomize
component and a shared ConfigMap, as upstream's ``recipes/addons/kustomize/`` layout does), changes
files the way a pull request would (committed, staged, untracked, deleted) and reads
``check --changed-since origin/main --format json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "recipe-harness")
ALL_DEEPSEEK = ["deepseek-r1/sglang/disagg-16gpu", "deepseek-r1/sglang/disagg-8gpu",
                "deepseek-r1/trtllm/disagg/wide_ep/gb200", "deepseek-r1/vllm/disagg"]

COMPONENT = """\
# A Kustomize Component shared by recipes (upstream: recipes/addons/kustomize/<provider>/)
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
  - target:
      group: nvidia.com
      kind: DynamoGraphDeployment
    patch: |-
      - op: add
        path: /spec/envs/-
        value: {name: FI_PROVIDER, value: efa}
"""

RECIPE_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deploy.yaml
components:
  - ../../../addons/kustomize/efa
"""

SHARED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared-engine-env
data:
  VLLM_LOGGING_LEVEL: INFO
"""


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=git_env(),
                          timeout=60).stdout


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, env=git_env(), timeout=120)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("origin")
    shutil.copytree(REPO / "recipes", src / "recipes")
    (src / "recipes" / "addons" / "kustomize" / "efa").mkdir(parents=True)
    (src / "recipes" / "addons" / "kustomize" / "efa" / "kustomization.yaml").write_text(COMPONENT)
    (src / "recipes" / "mocker-tiny" / "mocker" / "agg" / "kustomization.yaml").write_text(RECIPE_KUSTOMIZATION)
    (src / "recipes" / "shared").mkdir()
    (src / "recipes" / "shared" / "engine-env.yaml").write_text(SHARED_CONFIGMAP)
    deploy = src / "recipes" / "llama-3-70b" / "vllm" / "agg" / "deploy.yaml"
    dgd = yaml.safe_load(deploy.read_text())
    worker = next(s for s in dgd["spec"]["services"].values() if s.get("componentType") == "worker")
    worker["extraPodSpec"]["mainContainer"]["envFrom"] = [{"configMapRef": {"name": "shared-engine-env"}}]
    deploy.write_text(yaml.safe_dump(dgd, sort_keys=False))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "recipes")
    return src


@pytest.fixture
def clone(origin, tmp_path) -> Path:
    dest = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(dest))
    git(dest, "checkout", "-q", "-b", "pr")
    return dest


def changed(clone: Path, *extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    result = cli(clone, "check", "--changed-since", "origin/main", "--format", "json", *extra)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (sel,) = json.loads(result.stdout)["changed"]
    return sel, result


def append(path: Path, text: str = "# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_a_recipe_file_selects_only_its_recipe_and_says_why(clone):
    append(clone / "recipes/qwen3-32b/vllm/disagg-kv-router/perf.yaml")
    sel, result = changed(clone)
    assert list(sel["selected"]) == ["qwen3-32b/vllm/disagg-kv-router"]
    assert json.loads(result.stdout)["recipes"] == ["qwen3-32b/vllm/disagg-kv-router"]
    why = sel["selected"]["qwen3-32b/vllm/disagg-kv-router"]
    assert why == ["a file of the recipe: recipes/qwen3-32b/vllm/disagg-kv-router/perf.yaml changed"]
    assert "qwen3-32b/vllm/disagg-kv-router: a file of the recipe" in result.stderr
    assert "1 recipes selected" in result.stderr


@pytest.mark.parametrize("rel, kind", [
    ("recipes/deepseek-r1/model-cache/model-download.yaml", "model-cache file of deepseek-r1"),
    ("recipes/deepseek-r1/README.md", "model-level file of deepseek-r1"),
    ("recipes/deepseek-r1/perf/perf.yaml", "model-level file of deepseek-r1"),
], ids=["model-cache", "model-readme", "model-perf"])
def test_a_model_level_file_selects_every_recipe_of_the_model(clone, rel, kind):
    path = clone / rel
    if path.exists():
        append(path)
    else:  # a new model-level perf/ folder
        path.parent.mkdir(parents=True)
        path.write_text((clone / "recipes/deepseek-r1/vllm/disagg/perf.yaml").read_text())
    sel, _ = changed(clone)
    assert sorted(sel["selected"]) == ALL_DEEPSEEK
    assert all(why[0].startswith(kind) for why in sel["selected"].values()), sel["selected"]


def test_a_backend_level_file_selects_the_recipes_below_it(clone):
    (clone / "recipes/deepseek-r1/sglang/README.md").write_text("# SGLang notes\n")
    sel, _ = changed(clone)
    assert sorted(sel["selected"]) == ["deepseek-r1/sglang/disagg-16gpu", "deepseek-r1/sglang/disagg-8gpu"]
    assert sel["selected"]["deepseek-r1/sglang/disagg-8gpu"][0].startswith("shared file of recipes/deepseek-r1/sglang/")


def test_a_shared_kustomize_component_selects_the_recipes_that_use_it(clone):
    append(clone / "recipes/addons/kustomize/efa/kustomization.yaml")
    sel, result = changed(clone)
    assert list(sel["selected"]) == ["mocker-tiny/mocker/agg"], result.stderr
    assert sel["selected"]["mocker-tiny/mocker/agg"] == [
        "its kustomization uses recipes/addons/kustomize/efa/kustomization.yaml, changed"]
    assert sel["unused"] == []


def test_a_shared_configmap_selects_the_recipes_that_reference_it(clone):
    append(clone / "recipes/shared/engine-env.yaml", "  VLLM_USE_V1: '1'\n")
    sel, _ = changed(clone)
    assert list(sel["selected"]) == ["llama-3-70b/vllm/agg"]
    assert sel["selected"]["llama-3-70b/vllm/agg"] == [
        "uses ConfigMap shared-engine-env of recipes/shared/engine-env.yaml, changed"]


def test_a_deleted_recipe_is_reported_not_an_error(clone):
    git(clone, "rm", "-rq", "recipes/gpt-oss-120b/trtllm/agg")
    git(clone, "commit", "-q", "-m", "drop a recipe")
    sel, result = changed(clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sel["deleted"] == ["gpt-oss-120b/trtllm/agg"] and sel["selected"] == {}
    assert "gpt-oss-120b/trtllm/agg: deleted since origin/main, nothing to check" in result.stderr
    assert json.loads(result.stdout)["summary"]["recipes"] == 0


def test_committed_staged_unstaged_and_untracked_changes_all_count(clone):
    append(clone / "recipes/qwen3-32b/vllm/disagg-kv-router/perf.yaml")
    git(clone, "commit", "-qam", "committed")
    append(clone / "recipes/llama-3-70b/vllm/agg/thresholds.yaml")
    git(clone, "add", "recipes/llama-3-70b/vllm/agg/thresholds.yaml")                 # staged
    append(clone / "recipes/gpt-oss-120b/trtllm/agg/perf.yaml")                        # unstaged
    new = clone / "recipes/mocker-tiny/mocker/agg-copy"
    shutil.copytree(clone / "recipes/mocker-tiny/mocker/agg", new)                      # untracked
    (new / "kustomization.yaml").unlink()
    sel, _ = changed(clone)
    assert sorted(sel["selected"]) == ["gpt-oss-120b/trtllm/agg", "llama-3-70b/vllm/agg", "mocker-tiny/mocker/agg-copy",
                                       "qwen3-32b/vllm/disagg-kv-router"]
    statuses = {f["path"]: f["status"] for f in sel["files"]}
    assert statuses["recipes/mocker-tiny/mocker/agg-copy/deploy.yaml"] == "?"
    assert statuses["recipes/llama-3-70b/vllm/agg/thresholds.yaml"] == "M"


def test_an_ignored_file_is_not_a_change(clone):
    (clone / ".gitignore").write_text("*.log\n")
    (clone / "recipes/qwen3-32b/vllm/disagg-kv-router/run.log").write_text("noise\n")
    sel, _ = changed(clone)
    assert sel["selected"] == {} and sel["files"] == []


def test_a_file_of_no_recipe_is_listed_and_selects_nothing(clone):
    append(clone / "recipes/README.md")
    sel, result = changed(clone)
    assert sel["selected"] == {} and sel["unused"] == ["recipes/README.md"]
    assert "recipes/README.md: part of no selected recipe" in result.stderr
    assert result.returncode == 0


def test_changed_since_combines_with_recipe_globs(clone):
    append(clone / "recipes/deepseek-r1/README.md")
    sel, result = changed(clone, "--recipe", "deepseek-r1/vllm/*")
    assert list(sel["selected"]) == ["deepseek-r1/vllm/disagg"]


def test_a_broken_changed_recipe_fails_with_its_finding(clone):
    path = clone / "recipes/qwen3-32b/vllm/disagg-kv-router/deploy.yaml"
    path.write_text(path.read_text().replace("replicas:", "replica:", 1))
    result = cli(clone, "check", "--changed-since", "origin/main")
    assert result.returncode == 1
    assert "recipes/qwen3-32b/vllm/disagg-kv-router/deploy.yaml:" in result.stdout and " RH203 " in result.stdout
    assert "1 recipes checked" in result.stderr


def test_unknown_ref_and_no_git_are_usage_errors(clone, tmp_path):
    result = cli(clone, "check", "--changed-since", "no-such-branch")
    assert result.returncode == 2
    assert "--changed-since no-such-branch: no such commit, branch or tag" in result.stderr
    plain = tmp_path / "plain"
    shutil.copytree(clone / "recipes" / "mocker-tiny", plain / "recipes" / "mocker-tiny")
    result = cli(plain, "check", "--changed-since", "main")
    assert result.returncode == 2
    assert "is not in a git work tree" in result.stderr and "Traceback" not in result.stderr
    result = cli(plain, "test", "--changed-since", "main", "--suite", "static")
    assert result.returncode == 2 and "is not in a git work tree" in result.stderr


def test_test_command_runs_only_the_changed_recipes(clone):
    append(clone / "recipes/mocker-tiny/model-cache/model-cache.yaml")
    result = cli(clone, "test", "--changed-since", "origin/main", "--suite", "static", "--report-dir",
                 str(clone / "reports"), "--", "--collect-only")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    ids = set(re.findall(r"\[([^\]]+)::[\w-]+\]", out))
    assert ids == {"mocker-tiny/mocker/agg", "mocker-tiny/mocker/disagg-kv-router"}, out
    assert "mocker-tiny/mocker/agg: model-cache file of mocker-tiny" in out  # the pytest header says why


def test_test_command_with_nothing_changed_passes_without_running(clone):
    result = cli(clone, "test", "--changed-since", "origin/main", "--report-dir", str(clone / "reports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no recipe changed since origin/main: nothing to test" in result.stderr
    assert "0 recipes selected" in result.stderr


def test_list_prints_the_changed_ids(clone):
    append(clone / "recipes/llama-3-70b/README.md")
    result = cli(clone, "list", "--changed-since", "origin/main")
    assert result.returncode == 0 and result.stdout.split() == ["llama-3-70b/vllm/agg"]
