"""``recipe-harness new``: the scaffold's markers are RH109 errors in ``check`` until filled in; filled in,
GPU recipes pass ``check`` and a mocker recipe passes the local smoke; it never overwrites. All through
the console script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import procs

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "recipe-harness")
MARKER = re.compile(r"FILL-IN\(([^()\n]*)\)")
GPU_RECIPES = ["qwen3-8b/vllm/agg", "qwen3-8b/vllm/disagg-kv-router", "qwen3-8b/sglang/agg", "qwen3-8b/sglang/disagg",
               "qwen3-8b/trtllm/agg", "qwen3-8b/trtllm/disagg-kv-router"]

# what a contributor would write for each marker (GPUs per worker pod: 2)
VALUES = {
    "Hugging Face repo id such as Qwen/Qwen3-8B": "Qwen/Qwen3-8B",
    "GPUs per worker pod": "2",
    "tensor parallel size = GPUs per worker pod": "2",
    "GPUs in all = GPUs per worker pod": "2",
    "GPUs in all = twice the GPUs per worker pod": "4",
    "GPU type and nodes such as 8x H100 SXM on one node": "H100 SXM 80GB on one node",
    "hardware and Dynamo release it ran on": "H100 SXM 80GB nodes with Dynamo 1.6.1",
    "where it ran such as local target": "the local target, CPU only",
    "the services and why this topology": "a frontend and its workers",
    "measured TTFT and ITL and throughput with their conditions or not yet measured": "not yet measured",
    "storage for the weights such as 200Gi": "100Gi",
    "hardware profile id such as h100-sxm": "h100-sxm",
    "GPUs and nodes such as 8x H100 SXM 80GB on one node": "H100 SXM 80GB on one node",
    "TTFT p99 limit in ms": "2000",
    "ITL p99 limit in ms": "50",
    "output tokens per second per GPU at least": "100",
}


def cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return procs.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def fill(folder: Path, values: dict[str, str] = VALUES) -> int:
    """Replace every marker under ``folder`` as a contributor would; returns how many."""
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text()
        unknown = [w for w in MARKER.findall(text) if w not in values]
        assert not unknown, f"{path}: no value for markers {unknown}"
        new, n = MARKER.subn(lambda m: values[m.group(1)], text)
        path.write_text(new)
        count += n
    return count


def printed_markers(stdout: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"^  (\S+):(\d+): ", stdout, re.MULTILINE)]


def rh109(stdout: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"^(\S+):(\d+):\d+: RH109 ", stdout, re.MULTILINE)]


@pytest.fixture
def tree(tmp_path) -> Path:
    (tmp_path / "recipes").mkdir()
    return tmp_path


def test_gpu_scaffolds_fail_check_on_every_marker_then_pass_once_filled(tree):
    printed: list[tuple[str, int]] = []
    for rid in GPU_RECIPES:
        result = cli(tree, "new", rid)
        assert result.returncode == 0, result.stderr
        assert f"wrote recipes/{rid}/deploy.yaml" in result.stdout
        printed += printed_markers(result.stdout)
    assert (tree / "recipes/qwen3-8b/model-cache/model-download.yaml").is_file()
    check = cli(tree, "check", "recipes", "--no-hints")
    assert check.returncode == 1
    # every marker `new` listed is an RH109 error at that line, and there is no RH109 without a marker
    assert set(rh109(check.stdout)) == set(printed) and len(printed) > 20
    filled = fill(tree / "recipes")
    assert filled >= len(set(printed))
    check = cli(tree, "check", "recipes", "--no-hints")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "6 recipes checked: 0 errors, 0 warnings" in check.stderr


def test_options_fill_what_they_can(tree):
    result = cli(tree, "new", "llama-8b/vllm/agg", "--gpus", "4", "--tp", "4", "--model-id", "meta-llama/Llama-3.1-8B")
    assert result.returncode == 0, result.stderr
    deploy = (tree / "recipes/llama-8b/vllm/agg/deploy.yaml").read_text()
    assert 'gpu: "4"' in deploy and "- --tensor-parallel-size\n            - \"4\"" in deploy
    assert "meta-llama/Llama-3.1-8B" in deploy and "FILL-IN(" not in deploy
    assert "| 4 |" in (tree / "recipes/llama-8b/README.md").read_text()
    whats = {w for w, _ in [(m.split(": ", 1)[1], 0) for m in result.stdout.splitlines() if m.startswith("  recipes/")]}
    assert not any("Hugging Face" in w or "GPUs per worker" in w for w in whats), whats


def test_mocker_scaffold_filled_in_passes_check_and_the_local_smoke(tree):
    result = cli(tree, "new", "tiny-mock/mocker/agg")
    assert result.returncode == 0, result.stderr
    assert fill(tree / "recipes", VALUES | {"Hugging Face repo id such as Qwen/Qwen3-8B": "Qwen/Qwen3-0.6B"}) > 0
    check = cli(tree, "check", "recipes")
    assert check.returncode == 0, check.stdout + check.stderr
    smoke = cli(tree, "test", "--recipes-root", "recipes", "--report-dir", str(tree / "reports"), "--",
                f"--dynamo-python={REPO / '.venv-dynamo/bin/python'}", timeout=300)
    out = smoke.stdout + smoke.stderr
    assert smoke.returncode == 0, out
    assert re.search(r"\d+ passed", out) and "failed" not in out
    assert "tiny-mock/mocker/agg::smoke-chat" in (tree / "reports" / "junit.xml").read_text()


def test_new_recipe_of_an_existing_model_reuses_its_cache_and_appends_a_readme_section(tree):
    shutil.copytree(REPO / "recipes" / "mocker-tiny", tree / "recipes" / "mocker-tiny")
    readme = tree / "recipes/mocker-tiny/README.md"
    before = readme.read_text()
    result = cli(tree, "new", "mocker-tiny/mocker/agg-kv")
    assert result.returncode == 0, result.stderr
    assert "model-cache" not in result.stdout.split("values to fill in")[0]  # no model-cache written
    assert "appended recipes/mocker-tiny/README.md" in result.stdout
    deploy = (tree / "recipes/mocker-tiny/mocker/agg-kv/deploy.yaml").read_text()
    assert "- name: model-cache\n      create: false" in deploy and "Qwen/Qwen3-0.6B" in deploy  # from model-cache/
    assert "--router-mode, kv]" in deploy
    after = readme.read_text()
    assert after.startswith(before) and "## `mocker-tiny/mocker/agg-kv`" in after


def test_from_copies_a_recipe_renamed(tree):
    shutil.copytree(REPO / "recipes" / "qwen3-32b", tree / "recipes" / "qwen3-32b")
    result = cli(tree, "new", "qwen3-32b/vllm/disagg-copy", "--from", "qwen3-32b/vllm/disagg-kv-router")
    assert result.returncode == 0, result.stderr
    deploy = (tree / "recipes/qwen3-32b/vllm/disagg-copy/deploy.yaml").read_text()
    assert "name: qwen3-32b-vllm-disagg-copy" in deploy and "Copied from qwen3-32b/vllm/disagg-kv-router" in deploy
    perf = (tree / "recipes/qwen3-32b/vllm/disagg-copy/perf.yaml").read_text()
    assert "http://qwen3-32b-vllm-disagg-copy-frontend:8000" in perf
    check = cli(tree, "check", "recipes/qwen3-32b/vllm/disagg-copy", "--no-hints")
    rules = set(re.findall(r": (RH\d+) ", check.stdout))
    assert rules == {"RH109"}, check.stdout  # only the README section's markers are left
    missing = cli(tree, "new", "qwen3-32b/vllm/x", "--from", "qwen3-32b/vllm/nope")
    assert missing.returncode == 2 and "--from qwen3-32b/vllm/nope: no such recipe" in missing.stderr


def test_new_refuses_to_overwrite(tree):
    assert cli(tree, "new", "m/vllm/agg").returncode == 0
    deploy = tree / "recipes/m/vllm/agg/deploy.yaml"
    deploy.write_text("# mine\n")
    readme = (tree / "recipes/m/README.md").read_text()
    again = cli(tree, "new", "m/vllm/agg")
    assert again.returncode == 2, again.stderr
    assert "refusing to overwrite recipes/m/vllm/agg/deploy.yaml" in again.stderr
    assert deploy.read_text() == "# mine\n" and (tree / "recipes/m/README.md").read_text() == readme


@pytest.mark.parametrize("args, message", [
    (["new", "qwen3"], "give <model>/<backend>/<mode>"),
    (["new", "qwen3/tensorflow/agg"], "backend 'tensorflow' is not one of vllm, sglang, trtllm, mocker"),
    (["new", "Qwen3/vllm/agg"], "must be lower-case letters"),
    (["new", "m/mocker/agg", "--gpus", "2"], "the mocker backend runs on CPU"),
    (["new", "m/vllm/agg", "--model-id", "not a repo"], "give a Hugging Face repo id"),
    (["new", "m/vllm/agg", "--gpus", "0"], "--gpus 0: give a positive number"),
])
def test_bad_input_is_a_usage_error_and_writes_nothing(tree, args, message):
    result = cli(tree, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list((tree / "recipes").iterdir()) == []


def test_new_help_through_the_console_script(tree):
    result = cli(tree, "new", "--help")
    assert result.returncode == 0
    for option in ("--from", "--gpus", "--tp", "--model-id", "MODEL/BACKEND/MODE", "RH109"):
        assert option in result.stdout
