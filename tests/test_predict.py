"""Predicted performance: the plan read from recipes, the gate, the adapter's failure paths (with a stand-in
model), and through the console script with the real model (``.venv-aic``) a recipe edited to half its
tensor parallelism or double its concurrency."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.exercise.perf.thresholds import Limit
from recipe_harness.exercise.predict.aic import AicUnavailable, EstimateRequest, EstimateResult, Role, estimate
from recipe_harness.exercise.predict.gate import FAIL, PASS, WARN, judge, predicted
from recipe_harness.exercise.predict.plan import PredictSkip, dynamo_version, plan
from recipe_harness.exercise.predict.systems import UnmappedProfile, system_of
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from tests import procs

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "recipe-harness"
AIC_PYTHON = REPO / ".venv-aic" / "bin" / "python"


def _loaded(root: Path, rid: str) -> LoadedRecipe:
    d = discover(root)
    return LoadedRecipe.load(next(r for r in d.recipes if r.id == rid), {})


# --------------------------------------------------------------------------- plan


def test_plan_reads_parallelism_roles_workload_and_version_from_the_recipe() -> None:
    p = plan(_loaded(REPO / "recipes", "deepseek-r1/sglang/disagg-8gpu"), "h200-sxm")
    assert (p.system.name, p.backend, p.mode, p.dynamo_version) == ("h200_sxm", "sglang", "disagg", "1.6.1")
    prefill, decode = sorted(p.workers, key=lambda w: w.mode, reverse=True)
    assert (prefill.mode, prefill.tp, prefill.attention_dp, prefill.moe_ep) == ("prefill", 8, 1, 8)
    # SGLang --enable-dp-attention with TP8 DP8: eight attention ranks of one GPU, experts split 8 ways
    assert (decode.mode, decode.tp, decode.attention_dp, decode.moe_ep, decode.gpus) == ("decode", 1, 8, 8, 8)
    assert (p.isl, p.osl, [pt.concurrency for pt in p.points]) == (1024, 1024, [64, 128, 256])
    # concurrency 256 over one decode engine of 8 attention ranks
    assert p.operating_point.batch == 32 and p.operating_point.request.decode.batch_size == 32
    assert any("ISL/OSL = 1024/1024" in s and "perf.yaml" in s for s in p.sources)


def test_plan_uses_the_architecture_twin_of_a_checkpoint_the_model_does_not_bundle() -> None:
    p = plan(_loaded(REPO / "recipes", "llama-3-70b/vllm/agg"), "h100-sxm")
    assert p.model == "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"
    assert p.modelled_as == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert any("modelled as nvidia/Llama-3.1-70B-Instruct-FP8" in s for s in p.sources)
    assert plan(_loaded(REPO / "recipes", "llama-3-70b/vllm/agg"), "h100-sxm",
                aliases={"RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic": "meta-llama/Meta-Llama-3.1-70B"}
                ).modelled_as == "meta-llama/Meta-Llama-3.1-70B"


@pytest.mark.parametrize(("rid", "profile", "reason"), [
    ("mocker-tiny/mocker/agg", "cpu-mocker", "CPU profile"),
    ("llama-3-70b/vllm/agg", "a100-typo-x", "has no profile"),
])
def test_plan_skips_with_the_reason(rid: str, profile: str, reason: str) -> None:
    with pytest.raises(PredictSkip, match=reason):
        plan(_loaded(REPO / "recipes", rid), profile)


def test_profile_ids_map_to_systems_and_unknown_ones_say_so() -> None:
    assert system_of("h200-sxm").name == "h200_sxm" and system_of("B200").name == "b200_sxm"
    assert system_of("gb200").gpus_per_node == 4
    with pytest.raises(UnmappedProfile, match="names no GPU system"):
        system_of("tpu-v5")
    assert dynamo_version("nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1") == "1.6.1"
    assert dynamo_version("nvcr.io/nvidia/ai-dynamo/vllm-runtime:latest") is None


# --------------------------------------------------------------------------- gate


def _limit(metric: str, bound: str, value: float) -> Limit:
    return Limit(metric, bound, value, "ms" if metric != "output_tokens_per_s_per_gpu" else "tokens/s/gpu", "", 3)


def test_gate_pass_within_tolerance_is_a_warning_past_it_a_failure() -> None:
    itl = _limit("itl_p50", "max", 60.0)
    assert judge(itl, 40.0, 0.2).verdict == PASS
    assert judge(itl, 50.0, 0.2).verdict == WARN     # 17 % under the limit: the model cannot tell
    assert judge(itl, 65.0, 0.2).verdict == WARN
    assert judge(itl, 74.0, 0.2).verdict == FAIL     # 23 % past it
    tput = _limit("output_tokens_per_s_per_gpu", "min", 100.0)
    assert judge(tput, 130.0, 0.2).verdict == PASS and judge(tput, 70.0, 0.2).verdict == FAIL
    res = EstimateResult("k", True, ttft_ms=500.0, tpot_ms=20.0, seq_per_s=2.0, tokens_per_s_per_gpu=300.0, num_gpus=4)
    assert predicted("ttft_p99", res, 1000, 4) == 500.0 and predicted("tpot_avg", res, 1000, 4) == 20.0
    assert predicted("input_tokens_per_s_per_gpu", res, 1000, 4) == 500.0
    assert predicted("error_rate", res, 1000, 4) is None


# --------------------------------------------------------------------------- adapter, with a stand-in model


def _stub(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "python"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    script.chmod(0o755)
    return script


def test_adapter_reports_a_runner_that_fails_with_its_stderr(tmp_path: Path) -> None:
    python = _stub(tmp_path, "sys.stderr.write('ModuleNotFoundError: aiconfigurator\\n'); sys.exit(3)")
    req = EstimateRequest("a", "Qwen/Qwen3-32B", "h200_sxm", "vllm", 100, 10, agg=Role())
    with pytest.raises(AicUnavailable, match="exited with 3: ModuleNotFoundError: aiconfigurator"):
        estimate([req], python, workers=1)


def test_adapter_shards_by_system_and_backend_and_collects_every_result(tmp_path: Path) -> None:
    python = _stub(tmp_path, "reqs = json.load(sys.stdin)['requests']\n"
                             "print(json.dumps({'results': [{'key': r['key'], 'ok': True, 'ttft_ms': len(reqs)} "
                             "for r in reqs]}))")
    reqs = [EstimateRequest(f"{s}{i}", "m/x", s, "vllm", 100, 10, agg=Role()) for s in ("h100_sxm", "h200_sxm")
            for i in range(3)]
    out = estimate(reqs, python, workers=2)
    assert sorted(out) == sorted(r.key for r in reqs)
    assert {r.ttft_ms for r in out.values()} == {3}    # two processes of three requests each


def test_cli_without_the_model_environment_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([str(CLI), "predict", str(REPO / "recipes" / "llama-3-70b"), "--aic-python",
                           str(tmp_path / "missing" / "python")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "recipe-harness setup --only aic" in proc.stderr


# --------------------------------------------------------------------------- the real model through the CLI


needs_aic = pytest.mark.skipif(not AIC_PYTHON.is_file(), reason="no .venv-aic: run python3 bootstrap.py")


@needs_aic
def test_cli_half_tp_and_double_concurrency_show_the_change_and_fail_where_limits_are_crossed(tmp_path: Path) -> None:
    root = tmp_path / "recipes"
    for name in ("llama-3-70b", "llama-half-tp", "llama-double-c"):
        shutil.copytree(REPO / "recipes" / "llama-3-70b", root / name)
    deploy = root / "llama-half-tp" / "vllm" / "agg" / "deploy.yaml"
    text = deploy.read_text()
    assert '- --tensor-parallel-size\n            - "4"' in text
    deploy.write_text(text.replace('- --tensor-parallel-size\n            - "4"', '- --tensor-parallel-size\n            - "2"'))
    perf = root / "llama-double-c" / "vllm" / "agg" / "perf.yaml"
    assert "for CONCURRENCY in 16 32 64;" in perf.read_text()
    perf.write_text(perf.read_text().replace("for CONCURRENCY in 16 32 64;", "for CONCURRENCY in 32 64 128;"))
    plots = tmp_path / "plots"
    env = dict(os.environ, RECIPE_HARNESS_PREDICT_CACHE=str(tmp_path / "cache"))
    argv = [str(CLI), "predict", str(root), "--hardware-profile", "h200-sxm", "--format", "json", "--plots", str(plots)]
    proc = procs.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    cases = {c["recipe"]: c for c in json.loads(proc.stdout)["cases"]}
    # a second run answers from the cache (one file per distinct estimate: the base recipe and the doubled
    # one share c32 and c64, so 9 points are 7 estimates): the same predictions
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 7
    again = procs.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert [c["sweep"] for c in json.loads(again.stdout)["cases"]] == [c["sweep"] for c in cases.values()]
    base, half, double = (cases[f"{n}/vllm/agg"] for n in ("llama-3-70b", "llama-half-tp", "llama-double-c"))
    op = {n: c["sweep"][-1] for n, c in (("base", base), ("half", half), ("double", double))}
    assert base["outcome"] == "passed" and base["gpus"] == 4 and half["gpus"] == 2
    assert base["backendVersion"] and "Dynamo 1.6.1" in base["backendVersionSource"]
    # half the tensor parallelism: slower tokens for each user, higher time to first token
    assert op["half"]["itlMs"] > op["base"]["itlMs"] * 1.2 and op["half"]["ttftMs"] > op["base"]["ttftMs"]
    # double the concurrency: the operating point moves to c128, ITL past itl_p50 <= 60 ms by more than 20 %
    assert op["double"]["concurrency"] == 128 and op["double"]["itlMs"] > op["base"]["itlMs"]
    assert double["outcome"] == "failed" and "itl_p50" in double["impossibleLimits"]
    assert any("itl_p50 <= 60 ms" in f and "thresholds.yaml:14" in f for f in double["failures"])
    assert all(Path(p).stat().st_size > 1000 for c in cases.values() for p in c["plots"])
