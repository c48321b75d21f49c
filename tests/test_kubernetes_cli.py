"""The Kubernetes target through the console script: its options reach the target, preflight
gates the deploys, and every run leaves no namespace behind (emulated cluster, real CLI)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, EmulatedCluster, FakeCluster  # noqa: E402
from test_kubernetes_target import cluster, write_tiny_recipes  # noqa: E402,F401 -- cluster: a fixture

from recipe_harness.deploy.kubernetes.namespace import MANAGED_BY, MANAGED_BY_KEY  # noqa: E402
from tests import procs

CLI = Path(sys.executable).with_name("recipe-harness")


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    return write_tiny_recipes(tmp_path / "recipes", perf=False)


def run(cluster: EmulatedCluster, recipes: Path, tmp_path: Path, *pytest_args: str) -> tuple[int, str, dict]:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}
    env["HF_TOKEN"] = "hf_cli_test"
    proc = procs.run([str(CLI), "test", "--target", "kubernetes", "--suite", "smoke", "--recipes-root",
                      str(recipes), "--report-dir", str(report), "--", "--kubeconfig", str(kubeconfig),
                      "-k", "smoke-models", "-p", "no:cacheprovider", *pytest_args],
                     capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    summary = json.loads((report / "summary.json").read_text()) if (report / "summary.json").is_file() else {}
    return proc.returncode, proc.stdout + proc.stderr, summary


def harness_namespaces(cluster: EmulatedCluster) -> list[str]:
    return [n["metadata"]["name"] for n in cluster.items(NAMESPACES)
            if (n["metadata"].get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY]


def models_check(summary: dict) -> dict:
    return summary["recipes"]["tiny/vllm/agg"]["checks"]["smoke-models"]


def test_missing_gpus_skip_the_smoke_checks_and_fail_them_under_require_hardware(cluster, recipes, tmp_path):
    cluster.call(lambda: FakeCluster(cluster.emu, platform=True, storage_classes=["fast-rwx"]))
    code, out, summary = run(cluster, recipes, tmp_path)
    assert code == 0, out
    check = models_check(summary)
    assert check["outcome"] == "skipped", check
    assert "missing on this cluster: gpus: missing: needs 2 GPUs" in json.dumps(check), check
    code, out, summary = run(cluster, recipes, tmp_path, "--require-hardware")
    assert code == 1, out
    assert models_check(summary)["outcome"] == "error"  # a deploy failure is a fixture error
    assert "(--require-hardware)" in out
    assert harness_namespaces(cluster) == []
    assert [n["metadata"]["name"] for n in cluster.items(NAMESPACES)] == ["dynamo-system"]  # nothing was created


def test_tolerance_and_time_limit_options_reach_the_target(cluster, recipes, tmp_path):
    """The scenario's worker crash-loops with 3 restarts (exit code 1): within --max-restarts 5 it is
    tolerated until --deploy-timeout; past --max-restarts 2 it fails at once, naming the limit."""
    cluster.call(lambda: FakeCluster(cluster.emu, platform=True, dgd_outcome="CrashLoopBackOff:VllmWorker"))
    code, out, summary = run(cluster, recipes, tmp_path, "--no-preflight", "--max-restarts", "2")
    assert code == 1, out
    assert "restarted 3 times (limit --max-restarts 2)" in out
    code, out, summary = run(cluster, recipes, tmp_path, "--no-preflight", "--max-restarts", "5",
                             "--deploy-timeout", "3")
    assert code == 1, out
    assert "not Ready within 3s (--deploy-timeout)" in out and "CrashLoopBackOff" in out
    assert harness_namespaces(cluster) == []


def test_autoscaler_and_operator_pickup_options_reach_the_target(cluster, recipes, tmp_path):
    """--autoscaler-wait and --operator-pickup-timeout through the console script: a cluster-autoscaler
    that stays silent fails the pod after --autoscaler-wait; with no operator running the deploy fails
    after --operator-pickup-timeout."""
    from test_kubernetes_failfast import _cluster_autoscaler

    fake = cluster.call(lambda: FakeCluster(cluster.emu, platform=True, dgd_outcome="Unschedulable:VllmWorker"))
    _cluster_autoscaler(cluster)
    code, out, _ = run(cluster, recipes, tmp_path, "--no-preflight", "--autoscaler-wait", "1")
    assert code == 1, out
    assert "limit 1s --autoscaler-wait" in out and "node autoscaler (cluster-autoscaler)" in out, out
    cluster.call(setattr, fake, "operator_down", True)
    code, out, _ = run(cluster, recipes, tmp_path, "--no-preflight", "--operator-pickup-timeout", "1")
    assert code == 1, out
    assert "no Dynamo operator reconciles namespace" in out and "after 1s (--operator-pickup-timeout)" in out, out
    assert harness_namespaces(cluster) == []


def test_the_whole_user_path_on_a_cluster_preflight_and_smoke_of_a_twin(tmp_path):
    """`recipe-harness test --target kubernetes --suite preflight --suite smoke -- --twin mocker` on the
    emulated cluster whose kubelet runs the twin's real Dynamo frontend and mocker processes."""
    from test_kube_e2e_twin import DYNAMO_PY, RECIPES, twin_cluster

    if not DYNAMO_PY.exists():
        pytest.skip(f"{DYNAMO_PY} missing (run `recipe-harness setup`)")
    with twin_cluster() as (cluster, _kubelet, _target):
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        report = tmp_path / "report"
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HF_TOKEN")}
        proc = procs.run([str(CLI), "test", "--target", "kubernetes", "--suite", "preflight", "--suite", "smoke",
                          "--recipes-root", str(RECIPES), "--recipe", "mocker-tiny/mocker/agg",
                          "--report-dir", str(report), "--", "--twin", "mocker", "--kubeconfig", str(kubeconfig),
                          "--deploy-timeout", "180", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        checks = json.loads((report / "summary.json").read_text())["recipes"]["mocker-tiny/mocker/agg"]["checks"]
        outcomes = {name: c["outcome"] for name, c in checks.items()}
        assert outcomes["preflight"] == "passed"
        for name in ("smoke-models", "smoke-chat", "smoke-completions", "smoke-stream", "smoke-concurrency",
                     "smoke-bad-request"):
            assert outcomes[name] == "passed", (name, outcomes)
        assert "time limits:" in json.dumps(checks["smoke-models"])
        assert harness_namespaces(cluster) == []
