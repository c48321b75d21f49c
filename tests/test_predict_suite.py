"""RH304 (GPU memory fit) and the predict suite, through the console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import procs

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "recipe-harness"
AIC_PYTHON = REPO / ".venv-aic" / "bin" / "python"


def _check(root: Path) -> list[str]:
    proc = subprocess.run([str(CLI), "check", str(root), "--no-hints"], capture_output=True, text=True, timeout=120)
    return [line for line in proc.stdout.splitlines() if " RH304 " in line]


def _copy(tmp_path: Path, model: str) -> Path:
    root = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes" / model, root / model)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_rh304_weights_that_cannot_fit_are_an_error_at_the_model_line(tmp_path: Path) -> None:
    root = _copy(tmp_path, "qwen3-235b-a22b-fp8")
    deploy = root / "qwen3-235b-a22b-fp8" / "trtllm" / "agg" / "deploy.yaml"
    assert _check(root) == []
    # TP4 x EP4 -> TP2 x EP2: 235 GB of FP8 weights over 2 H100s (80 GiB each)
    _edit(deploy, '- --tensor-parallel-size\n            - "4"\n            - --expert-parallel-size\n            - "4"',
          '- --tensor-parallel-size\n            - "2"\n            - --expert-parallel-size\n            - "2"')
    found = _check(root)
    model_line = next(i for i, line in enumerate(deploy.read_text().splitlines(), 1) if line.strip() == "- --model")
    assert len(found) == 1 and "profile h100-sxm" in found[0], found     # fits the 141 GiB of an H200
    assert found[0].startswith(f"{deploy}:{model_line}:"), found
    assert "needs at least 109.4 GiB of weights per GPU" in found[0] and "gives it 80.0 GiB" in found[0]


def test_rh304_a_max_model_len_and_a_concurrency_that_cannot_fit(tmp_path: Path) -> None:
    root = _copy(tmp_path, "qwen3-32b")
    deploy = root / "qwen3-32b" / "vllm" / "disagg-kv-router" / "deploy.yaml"
    perf = root / "qwen3-32b" / "vllm" / "disagg-kv-router" / "perf.yaml"
    assert _check(root) == []
    _edit(perf, "for CONCURRENCY in 32 64 128;", "for CONCURRENCY in 32 64 256;")
    found = _check(root)
    line = next(i for i, t in enumerate(perf.read_text().splitlines(), 1) if "--concurrency" in t)
    assert len(found) == 1 and "perf concurrency 256 keeps at least 256 x 12000" in found[0], found
    assert f"perf.yaml:{line}:" in found[0]
    # 1M tokens of context on TP2: Qwen3-32B's KV cache takes 128 KiB a token on each GPU
    text = deploy.read_text().replace('- --max-model-len\n            - "131072"', '- --max-model-len\n            - "1048576"')
    deploy.write_text(text)
    found = _check(root)
    assert any("maximum model length 1048576" in f and "refuses to start" in f for f in found), found


needs_aic = pytest.mark.skipif(not AIC_PYTHON.is_file(), reason="no .venv-aic: run python3 bootstrap.py")


@needs_aic
def test_predict_suite_through_the_console_script_writes_predictions_to_the_summary(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = procs.run([str(CLI), "test", "--suite", "predict", "--recipes-root", str(REPO / "recipes"),
                      "--recipe", "llama-3-70b/*", "--recipe", "mocker-tiny/mocker/agg", "--report-dir",
                      str(reports), "--", "--hardware-profile", "h200-sxm"],
                     capture_output=True, text=True, timeout=300, cwd=REPO,
                     env=dict(os.environ, RECIPE_HARNESS_PREDICT_CACHE="off"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    checks = summary["recipes"]["llama-3-70b/vllm/agg"]["checks"]
    assert {"predict-h200-sxm", "predict-h100-sxm", "predict-cpu-mocker"} <= set(checks)
    h200 = checks["predict-h200-sxm"]
    assert h200["outcome"] == "passed"
    pred = h200["metrics"]["prediction"]
    assert pred["system"] == "h200_sxm" and pred["operatingPoint"] == "c64" and len(pred["sweep"]) == 3
    assert pred["sweep"][-1]["itlMs"] > pred["sweep"][0]["itlMs"] > 0
    assert h200["metrics"]["table"]["verdict"] == "pass"
    assert any(a.endswith("predict-h200-sxm.png") and Path(a).is_file() for a in h200["artifacts"])
    assert checks["predict-cpu-mocker"]["outcome"] == "skipped"
    assert "CPU profile" in checks["predict-cpu-mocker"]["message"]
    mocker = summary["recipes"]["mocker-tiny/mocker/agg"]["checks"]["predict-cpu-mocker"]
    assert mocker["outcome"] == "skipped"
    assert "predict" in (reports / "summary.md").read_text()


@needs_aic
def test_predict_profile_keeps_that_profile_and_says_why_a_recipe_has_none(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = procs.run([str(CLI), "test", "--suite", "predict", "--recipes-root", str(REPO / "recipes"),
                      "--recipe", "llama-3-70b/vllm/agg", "--recipe", "mocker-tiny/mocker/agg", "--report-dir",
                      str(reports), "--", "--predict-profile", "h200-sxm", "-p", "no:cacheprovider"],
                     capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recipes = json.loads((reports / "summary.json").read_text())["recipes"]
    assert list(recipes["llama-3-70b/vllm/agg"]["checks"]) == ["predict-h200-sxm"]
    assert recipes["llama-3-70b/vllm/agg"]["checks"]["predict-h200-sxm"]["outcome"] == "passed"
    mocker = recipes["mocker-tiny/mocker/agg"]["checks"]
    assert list(mocker) == ["predict"] and mocker["predict"]["outcome"] == "skipped"
    assert "no hardware profile h200-sxm (--predict-profile)" in mocker["predict"]["message"]
