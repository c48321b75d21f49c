"""The perf suite end to end: a pytest session runs ``test_perf`` on mocker-tiny recipes deployed on the
local target (real Dynamo frontend + mocker) with real aiperf; summary.json, summary.md and
report.html carry the results, failures carry their reasons, and skipped recipes are never deployed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import perf_stack
import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
TINY = RECIPES / "mocker-tiny"
AGG = "mocker-tiny/mocker/agg"
SUMMARY_SCHEMA = json.loads((ROOT / "schemas" / "summary.schema.json").read_text())

pytestmark = pytest.mark.skipif(perf_stack.available() is not None or not TINY.is_dir(),
                                reason=perf_stack.available() or "recipes/mocker-tiny missing")


@pytest.fixture
def suite(pytester, monkeypatch):
    """Run the perf suite in a fresh pytest session on the local target (real frontend + mocker)."""
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_perf import *\n")
    monkeypatch.setenv("RECIPE_HARNESS_AIPERF", str(perf_stack.AIPERF))

    def run(root: Path, *args: str):
        out = pytester.path / "reports"
        shutil.rmtree(out, ignore_errors=True)
        result = pytester.runpytest_subprocess("--recipes-root", str(root), "-p", "no:cacheprovider", "--report-dir", str(out),
                                    "--target", "local", *args)
        summary = json.loads((out / "summary.json").read_text())
        deployed = sorted(str(p.relative_to(out / "logs")) for p in (out / "logs").glob("*/*/*")) \
            if (out / "logs").is_dir() else []
        return result, summary, out, deployed

    return run


def copy_tiny(tmp_path: Path) -> Path:
    """mocker-tiny with its throughput floor lowered: these runs cap the sweep at concurrency 1; and
    16 output tokens instead of 128, so the 100 requests its p99 limits need take seconds."""
    root = tmp_path / "recipes"
    shutil.copytree(TINY, root / "mocker-tiny")
    thresholds = root / AGG / "thresholds.yaml"
    text = thresholds.read_text()
    assert "output_tokens_per_s_per_gpu: {min: 200," in text
    thresholds.write_text(text.replace("output_tokens_per_s_per_gpu: {min: 200,", "output_tokens_per_s_per_gpu: {min: 1,"))
    perf = root / AGG / "perf.yaml"
    text = perf.read_text()
    assert "--output-tokens-mean 128" in text and "min_tokens:128" in text
    perf.write_text(text.replace("--output-tokens-mean 128", "--output-tokens-mean 16").replace("min_tokens:128", "min_tokens:16"))
    return root


def aiperf_scratch() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("aiperf_mmap_*")}


def test_perf_run_reports_metrics_plots_and_verdicts(suite):
    scratch_before = aiperf_scratch()
    result, summary, out, deployed = suite(RECIPES, "--recipe", AGG)
    result.assert_outcomes(passed=1)
    assert aiperf_scratch() == scratch_before, "aiperf's scratch folders must not be left in the temp dir"
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    check = summary["recipes"][AGG]["checks"]["perf"]
    assert check["outcome"] == "passed" and deployed == [AGG]
    m = check["metrics"]
    assert m["hardwareProfile"] == "cpu-mocker" and m["target"] == "local" and m["verdict"] == "pass"
    # the recipe's sweep c4/c8/c16 x160, scaled to this machine, and said so
    assert m["profile"]["summary"].endswith("sweep c4 x160, c8 x160, c16 x160")
    assert m["scaling"]["scaled"] and m["scaling"]["requestFactor"] == 0.05
    assert [p["concurrency"] for p in m["scaling"]["recipe"]] == [4, 8, 16]
    run_points = [p["concurrency"] for p in m["scaling"]["run"]]
    assert run_points == sorted(run_points) and len(m["sweep"]) == len(run_points) == m["aiperfRuns"]
    assert any(n.startswith("scaled: request counts x0.05") for n in check["notes"])
    op = m["operatingPoint"]["values"]
    assert 0 < op["ttft_p50"]["median"] <= op["ttft_p99"]["median"]
    assert 0 < op["itl_p50"]["median"] <= op["itl_p99"]["median"]
    assert op["output_tokens_per_s_per_gpu"]["median"] > 0 and op["error_rate"]["median"] == 0
    assert op["goodput_fraction"]["median"] > 0           # the thresholds' SLO went to aiperf --goodput
    assert m["goodputSlo"] == {"time_to_first_token": 1000.0, "inter_token_latency": 50.0}
    limits = {v["metric"]: v for v in m["limits"]}
    assert set(limits) == {"ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "output_tokens_per_s_per_gpu", "error_rate"}
    assert all(v["passed"] and v["value"] is not None for v in limits.values())
    assert limits["ttft_p99"]["value"] == op["ttft_p99"]["value"]
    # p99 rests on the 100 requests it needs, with its interval (the operating point was raised to 100)
    assert op["ttft_p99"]["samples"] >= 100 and op["ttft_p99"]["sufficient"]
    assert op["ttft_p99"]["low"] <= op["ttft_p99"]["value"] <= op["ttft_p99"]["high"]
    assert limits["ttft_p99"]["status"] == "pass" and limits["ttft_p99"]["low"] == op["ttft_p99"]["low"]
    assert m["requests"]["errors"] == 0 and m["requests"]["total"] == sum(p["requestCount"] for p in m["scaling"]["run"])
    # artifacts of every aiperf run are kept under the report dir
    top = out / "perf" / AGG / "cpu-mocker" / "trial-1" / m["operatingPoint"]["point"]
    assert (top / "profile_export_aiperf.json").is_file() and (top / "aiperf.out").is_file()
    assert str(top) in check["artifacts"]
    # summary.md row and embedded images
    md = (out / "summary.md").read_text()
    cell = r"[\d.]+ \([\d.]+-[\d.]+\) n=\d+"          # value (95% interval) n=samples
    assert re.search(rf"\| `{AGG}` \| perf \| cpu-mocker \| c\d+ \| {cell} \| {cell} \| {cell} \| 0/\d+ \| x0.05 \| off \| pass \|",
                     md), md
    html = (out / "report.html").read_text()
    assert len(re.findall(r"data:image/png;base64,", html)) >= 3
    assert "throughput vs latency" in html and "TTFT distribution" in html and "ITL distribution" in html
    assert not re.search(r'<(img|link|script)[^>]+(href|src)="(?!data:)[^"]+"', html)


def test_baselines_trials_and_limits(suite, tmp_path):
    root = copy_tiny(tmp_path)
    baselines = tmp_path / "baselines"
    quick = ("--recipe", AGG, "--perf-max-concurrency", "1")   # one aiperf run per session

    result, summary, _, _ = suite(root, *quick, "--perf-trials", "2", "--baseline-dir", str(baselines),
                                  "--update-baseline")
    result.assert_outcomes(passed=1)
    metrics = summary["recipes"][AGG]["checks"]["perf"]["metrics"]
    assert metrics["baseline"]["status"] == "updated" and metrics["aiperfRuns"] == 2
    stored = baselines / "mocker-tiny" / "mocker" / "agg" / "cpu-mocker.json"
    data = json.loads(stored.read_text())
    ttft = data["metrics"]["ttft_p99"]
    # the two trials' requests are pooled: 100 for p99, 50 a trial
    assert data["trials"] == 2 and ttft["trials"] == 2 and ttft["samples"] == 100 and ttft["sufficient"]
    assert ttft["low"] <= ttft["value"] <= ttft["high"]

    # a baseline 10x faster than this machine, and a limit nobody meets: both are reasons to fail
    for key in ("value", "low", "high"):
        data["metrics"]["output_tokens_per_s_per_gpu"][key] *= 10
    stored.write_text(json.dumps(data))
    thresholds = root / AGG / "thresholds.yaml"
    thresholds.write_text(thresholds.read_text().replace("ttft_p50: {max: 1000, unit: ms}",
                                                         "ttft_p50: {max: 0.001, unit: ms}"))
    result, summary, _, _ = suite(root, *quick, "--baseline-dir", str(baselines))
    result.assert_outcomes(failed=1)
    check = summary["recipes"][AGG]["checks"]["perf"]
    assert check["metrics"]["verdict"] == "fail" and check["metrics"]["baseline"]["status"] == "regressed"
    regressed = [c["metric"] for c in check["metrics"]["baseline"]["comparisons"] if c["regressed"]]
    assert "output_tokens_per_s_per_gpu" in regressed
    message = check["message"]
    assert "regression against baseline" in message and "output_tokens_per_s_per_gpu" in message
    # the limit failure names the metric, its value, the limit and the thresholds line
    assert re.search(r"cpu-mocker limit: ttft_p50 = [\d.]+ ms \(limit <= 0.001\) FAILED \[.*thresholds.yaml:\d+\]", message)
    assert [v["metric"] for v in check["metrics"]["limits"] if not v["passed"]] == ["ttft_p50"]


def test_aiperf_timeout_fails_with_its_command_and_output(suite, tmp_path):
    root = copy_tiny(tmp_path)
    result, summary, _, _ = suite(root, "--recipe", AGG, "--perf-max-concurrency", "1", "--perf-timeout", "3")
    result.assert_outcomes(failed=1)
    check = summary["recipes"][AGG]["checks"]["perf"]
    message = check["message"]
    assert "aiperf failed at c1 (trial 1/1): aiperf did not finish within 3 s; its process group was killed" in message
    assert "command: " in message and "--concurrency 1" in message and "output (" in message
    assert check["metrics"]["verdict"] == "fail" and check["metrics"]["limits"] == []


def test_skips_and_errors_cost_no_deployment(suite, tmp_path):
    root = tmp_path / "recipes"
    deploy = (TINY / "mocker" / "agg" / "deploy.yaml").read_text()
    perf = (TINY / "mocker" / "agg" / "perf.yaml").read_text()
    thresholds = (TINY / "mocker" / "agg" / "thresholds.yaml").read_text()
    cases = {
        "no-perf": {"thresholds.yaml": thresholds},
        "no-thresholds": {"perf.yaml": perf},
        "other-hardware": {"perf.yaml": perf, "thresholds.yaml": thresholds.replace("cpu-mocker:", "h200-sxm:")},
        "trace": {"perf.yaml": (ROOT / "fixtures" / "perf" / "manifests" / "tmux-trace.yaml").read_text(),
                  "thresholds.yaml": thresholds},
        "unreadable": {"perf.yaml": (ROOT / "fixtures" / "perf" / "broken" / "unresolved.yaml").read_text(),
                       "thresholds.yaml": thresholds},
        "bad-thresholds": {"perf.yaml": perf, "thresholds.yaml": thresholds.replace("gpus: 1", "gpus: 0")},
    }
    for mode, files in cases.items():
        folder = root / "tiny" / "mocker" / mode
        folder.mkdir(parents=True)
        (folder / "deploy.yaml").write_text(deploy)
        for name, text in files.items():
            (folder / name).write_text(text)
    result, summary, out, deployed = suite(root)
    result.assert_outcomes(skipped=4, errors=2)
    assert deployed == [], "a recipe with nothing to benchmark must not be deployed"
    checks = {rid.split("/")[-1]: r["checks"]["perf"] for rid, r in summary["recipes"].items()}
    assert "has no perf manifest" in checks["no-perf"]["message"]
    assert "has no thresholds.yaml" in checks["no-thresholds"]["message"]
    assert "no limits for hardware profile 'cpu-mocker' (it has: h200-sxm)" in checks["other-hardware"]["message"]
    assert "replays the dataset file /perf-cache/traces/conversation_trace.jsonl" in checks["trace"]["message"]
    assert checks["unreadable"]["outcome"] == "error"
    assert re.search(r"perf.yaml:\d+:\d+: --concurrency .* cannot be resolved", checks["unreadable"]["message"])
    assert checks["bad-thresholds"]["outcome"] == "error"
    assert "RH401" in checks["bad-thresholds"]["message"] and "gpus" in checks["bad-thresholds"]["message"]


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:          # stat field 5: process group id
            members.append(int(stat.parent.name))
    return members


def test_runner_timeout_kills_the_whole_process_group(tmp_path):
    from recipe_harness.deploy.tinymodel import tiny_model_dir
    from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfile
    from recipe_harness.exercise.perf.runner import RunTarget, build_argv, run_aiperf

    profile = PerfProfile(file="x", line=1, streaming=True, isl=16, osl=4)
    target = RunTarget(url=f"http://127.0.0.1:{perf_stack.free_port()}", model="m", tokenizer=str(tiny_model_dir()))
    argv = build_argv(perf_stack.AIPERF, profile, PerfPoint(concurrency=1, request_count=2), target, tmp_path / "a")
    ran = run_aiperf(argv, tmp_path / "a", timeout_s=2)
    assert ran.timed_out and not ran.ok and 2 <= ran.wall_s < 30
    assert "did not finish within 2 s" in ran.describe_failure()
    assert ran.pid and _group_members(ran.pid) == []


def test_kubernetes_target_needs_a_hardware_profile(suite):
    result, summary, _, deployed = suite(RECIPES, "--recipe", AGG, "--target", "kubernetes")
    result.assert_outcomes(skipped=1)
    assert deployed == []
    assert "no hardware profile for target 'kubernetes': pass --hardware-profile" in \
        summary["recipes"][AGG]["checks"]["perf"]["message"]


def _aiperf_leaders(needle: str) -> list[int]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "aiperf" in text and " profile " in text and needle in text:
            out.append(int(cmdline.parent.name))
    return out


def test_interrupt_kills_aiperf_and_leaves_nothing_behind(tmp_path):
    """Ctrl-C while aiperf runs: pytest stops, and aiperf's whole process group is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "reports"
    env = dict(os.environ, RECIPE_HARNESS_AIPERF=str(perf_stack.AIPERF))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--pyargs", "recipe_harness.suites.test_perf", "--recipes-root",
                             str(RECIPES), "--recipe", AGG, "--target", "local", "--report-dir", str(out),
                             "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        leaders: list[int] = []
        while not leaders and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            leaders = _aiperf_leaders(str(out / "perf"))
        assert leaders, "aiperf never started"
        time.sleep(1.0)                                  # aiperf is now starting its services
        os.kill(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2 and "KeyboardInterrupt" in output, output
    assert all(_group_members(pgid) == [] for pgid in leaders), "aiperf processes outlived the interrupt"
    assert _aiperf_leaders(str(out / "perf")) == []
