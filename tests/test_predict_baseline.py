"""Predicted baselines: a change's predicted before/after and plan change, through the console script (stored
baselines, the recipe as it was at a git REF with --changed-since, the pytest suite's report) and the
comparison itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.exercise.predict.baseline import compare, plan_changes
from tests import procs

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "recipe-harness"
AIC_PYTHON = REPO / ".venv-aic" / "bin" / "python"
TP4 = '- --tensor-parallel-size\n            - "4"'
TP2 = '- --tensor-parallel-size\n            - "2"'

needs_aic = pytest.mark.skipif(not AIC_PYTHON.is_file(), reason="no .venv-aic: run python3 bootstrap.py")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One estimate cache for the module: the same points are predicted by several tests."""
    return tmp_path_factory.mktemp("predict-cache")


def _run(argv: list[str], cache: Path, tmp: Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    (tmp / "tmpdir").mkdir(exist_ok=True)
    env = dict(os.environ, RECIPE_HARNESS_PREDICT_CACHE=str(cache), TMPDIR=str(tmp / "tmpdir"))
    return procs.run([str(CLI), *argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def _half_tp(recipe_dir: Path) -> None:
    deploy = recipe_dir / "vllm" / "agg" / "deploy.yaml"
    text = deploy.read_text()
    assert TP4 in text
    deploy.write_text(text.replace(TP4, TP2))


def _cases(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    return {c["recipe"]: c for c in json.loads(proc.stdout)["cases"]}


# --------------------------------------------------------------------------- the comparison, no model


def _snap(tp: int, itl: float, tps: float, mode: str = "decode") -> dict:
    return {"hardwareProfile": "h200-sxm",
            "plan": {"model": "Qwen/Qwen3-32B", "isl": 4000, "osl": 500, "gpus": 2 + tp,
                     "workers": [{"service": "P", "mode": "prefill", "engines": 1, "tp": 2, "pp": 1, "attentionDp": 1,
                                  "moeTp": 2, "moeEp": 1},
                                 {"service": "D", "mode": mode, "engines": 1, "tp": tp, "pp": 1, "attentionDp": 1,
                                  "moeTp": tp, "moeEp": 1}]},
            "sweep": [{"concurrency": 32, "ttftMs": 296.0, "itlMs": itl, "outputTokensPerSPerGpu": tps}]}


def test_compare_gives_ratios_the_plan_change_and_regressions_past_the_tolerance_in_both_directions() -> None:
    c = compare(_snap(4, 17.7, 438.0), _snap(2, 35.1, 300.0), source="base.json", tolerance=0.2)
    assert c.plan_changes == ["decode TP 4 -> 2", "GPUs 6 -> 4"]      # MoE TP of a dense model is TP again: not listed
    itl = next(p for p in c.points if p.metric == "ITL")
    assert (itl.before, itl.after, round(itl.ratio, 2)) == (17.7, 35.1, 1.98)
    # ITL up by x1.98 (latency: higher is worse), tokens/s/GPU down to x0.68 (throughput: lower is worse), TTFT same
    assert sorted(r.metric for r in c.regressions) == ["ITL", "tokens/s/GPU"]
    assert any("predicted ITL on h200-sxm at c32 moves from 17.70 ms to 35.10 ms (x1.98)" in w
               and w.endswith("plan: decode TP 4 -> 2, GPUs 6 -> 4") for w in c.warnings())
    # within the tolerance: no regression; better throughput is never one
    assert compare(_snap(4, 17.7, 438.0), _snap(4, 20.0, 900.0), source="b", tolerance=0.2).regressions == []
    assert plan_changes(_snap(4, 1, 1)["plan"], _snap(4, 1, 1, mode="agg")["plan"]) == [
        "decode worker D removed", "agg worker D added"]


# --------------------------------------------------------------------------- the real model through the CLI


@needs_aic
def test_cli_stored_baseline_then_half_tp_shows_before_after_and_plan_change(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "recipes"
    for name in ("llama-3-70b", "llama-same"):
        shutil.copytree(REPO / "recipes" / "llama-3-70b", root / name)
    base = tmp_path / "baselines"
    common = ["predict", str(root), "--hardware-profile", "h200-sxm", "--baseline-dir", str(base)]
    stored = _run([*common, "--update-baseline", "--format", "json"], cache, tmp_path)
    assert stored.returncode == 0, stored.stderr[-2000:]
    f = base / "llama-3-70b" / "vllm" / "agg" / "h200-sxm.json"
    data = json.loads(f.read_text())
    assert data["plan"]["workers"][0]["tp"] == 4 and data["plan"]["gpus"] == 4
    assert [p["concurrency"] for p in data["sweep"]] == [16, 32, 64]
    assert all(p["itlMs"] > 0 and p["ttftMs"] > 0 and p["outputTokensPerSPerGpu"] > 0 for p in data["sweep"])
    assert (base / "llama-same" / "vllm" / "agg" / "h200-sxm.json").is_file()

    _half_tp(root / "llama-3-70b")
    proc = _run([*common, "--format", "json"], cache, tmp_path)
    # the regression is a warning, not a failure: itl_p50 <= 60 ms stays within the tolerance, so exit 0
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = _cases(proc)
    half, same = cases["llama-3-70b/vllm/agg"], cases["llama-same/vllm/agg"]
    b = half["baseline"]
    assert b["status"] == "regressed" and b["source"] == str(f)
    assert b["planChanges"] == ["agg TP 4 -> 2", "GPUs 4 -> 2"]
    itl = {p["concurrency"]: p for p in b["points"] if p["metric"] == "ITL"}
    assert set(itl) == {16, 32, 64}
    assert itl[64]["before"] == pytest.approx(data["sweep"][-1]["itlMs"], rel=1e-3)
    assert itl[64]["after"] == pytest.approx(half["sweep"][-1]["itlMs"], rel=1e-3)
    assert itl[64]["ratio"] > 1.2 and itl[64]["regressed"]
    assert any(w.startswith("regression against the predicted baseline") and "predicted ITL on h200-sxm at c64 "
               "moves from" in w and "plan: agg TP 4 -> 2" in w for w in half["warnings"])
    assert {c["metric"] for c in b["comparisons"]} >= {"itl_p50", "ttft_p50", "output_tokens_per_s_per_gpu"}
    # the untouched copy: ratio 1.0 everywhere, no plan change, no warning
    s = same["baseline"]
    assert s["status"] == "compared" and s["planChanges"] == [] and s["regressions"] == []
    assert len(s["points"]) == 9 and all(p["ratio"] == 1.0 for p in s["points"])
    assert not any("regression" in w for w in same["warnings"])

    text = _run(common, cache, tmp_path)
    assert text.returncode == 0
    assert "plan: agg TP 4 -> 2, GPUs 4 -> 2" in text.stdout
    assert "plan: unchanged" in text.stdout and "(x1.00)" in text.stdout

    # the pytest suite through the console script: the before/after reaches summary.json and summary.md
    report = tmp_path / "report"
    suite = _run(["test", "--suite", "predict", "--recipes-root", str(root), "--report-dir", str(report), "--",
                  "--predict-baseline-dir", str(base), "-k", "h200"], cache, tmp_path)
    assert suite.returncode == 0, suite.stdout[-2000:]
    summary = json.loads((report / "summary.json").read_text())
    checks = {rid: r["checks"]["predict-h200-sxm"] for rid, r in summary["recipes"].items()}
    assert checks["llama-3-70b/vllm/agg"]["metrics"]["prediction"]["baseline"]["planChanges"][0] == "agg TP 4 -> 2"
    assert "agg TP 4 -> 2" in (report / "summary.md").read_text()
    assert "vs baseline +" in (report / "report.html").read_text()
    assert list((tmp_path / "tmpdir").iterdir()) == []


@needs_aic
def test_cli_baseline_ref_predicts_the_changed_recipes_as_they_were(tmp_path: Path, cache: Path) -> None:
    repo = tmp_path / "repo"
    for name in ("llama-3-70b", "llama-other"):
        shutil.copytree(REPO / "recipes" / "llama-3-70b", repo / "recipes" / name)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "recipes"]):
        subprocess.run([*git, *argv], check=True, capture_output=True, timeout=60)
    _half_tp(repo / "recipes" / "llama-3-70b")
    shutil.copytree(REPO / "recipes" / "llama-3-70b", repo / "recipes" / "llama-new")   # untracked: not at HEAD
    proc = _run(["predict", "recipes", "--hardware-profile", "h200-sxm", "--changed-since", "HEAD",
                 "--baseline-ref", "HEAD", "--format", "json"], cache, tmp_path, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = _cases(proc)
    # --changed-since: only the touched recipes are predicted and compared
    assert set(cases) == {"llama-3-70b/vllm/agg", "llama-new/vllm/agg"}
    b = cases["llama-3-70b/vllm/agg"]["baseline"]
    assert b["source"] == "at HEAD" and b["planChanges"] == ["agg TP 4 -> 2", "GPUs 4 -> 2"]
    assert b["status"] == "regressed"
    assert next(p for p in b["points"] if p["metric"] == "ITL" and p["concurrency"] == 64)["ratio"] > 1.2
    new = cases["llama-new/vllm/agg"]
    assert "baseline" not in new and any("did not exist at HEAD" in n for n in new["notes"])
    assert list((tmp_path / "tmpdir").iterdir()) == []       # the checkout at REF is removed


def test_cli_baseline_usage_errors(tmp_path: Path) -> None:
    recipes = str(REPO / "recipes" / "llama-3-70b")
    proc = _run(["predict", recipes, "--update-baseline", "--aic-python", sys.executable], tmp_path / "c", tmp_path)
    assert proc.returncode == 2 and "--update-baseline needs --baseline-dir" in proc.stderr
    proc = _run(["predict", recipes, "--baseline-ref", "no-such-ref-x", "--aic-python", sys.executable],
                tmp_path / "c", tmp_path)
    assert proc.returncode == 2 and "--baseline-ref no-such-ref-x: no such commit" in proc.stderr
