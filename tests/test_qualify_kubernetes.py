"""``recipe-harness qualify --target kubernetes`` against the emulated apiserver with GPU nodes: the system
facts come from the cluster (version, nodes' GPU feature discovery labels, operator, storage classes),
and a profile that does not match the GPUs found is not qualified, with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import EmulatedCluster, FakeCluster  # noqa: E402
from test_kubernetes_target import CACHE, DEPLOY  # noqa: E402

from recipe_harness.qualify.facts import hardware_match, node_facts  # noqa: E402
from tests import procs

CLI = Path(sys.executable).with_name("recipe-harness")
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
        "nvidia.com/cuda.driver-version.major": "570", "nvidia.com/cuda.driver-version.minor": "124",
        "nvidia.com/cuda.driver-version.rev": "06"}


@pytest.fixture
def cluster():
    c = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    yield c
    c.close()


def gpu_node(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **labels}},
            "status": {"allocatable": {"cpu": "64", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": "8"},
                       "nodeInfo": {"kubeletVersion": "v1.33.1"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def qualify(cluster: EmulatedCluster, tmp_path: Path, profile: str) -> tuple[subprocess.CompletedProcess, dict]:
    root = tmp_path / "recipes"
    (root / "tiny" / "vllm" / "agg").mkdir(parents=True)
    (root / "tiny" / "model-cache").mkdir()
    (root / "tiny" / "vllm" / "agg" / "deploy.yaml").write_text(DEPLOY)
    (root / "tiny" / "model-cache" / "cache.yaml").write_text(CACHE)
    (root / "tiny" / "vllm" / "agg" / "thresholds.yaml").write_text(
        "schemaVersion: 1\nprofiles:\n  h200-sxm:\n    gpus: 1\n    limits:\n      ttft_p99: {max: 500, unit: ms}\n")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    out = tmp_path / "bundle"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTEST_ADDOPTS")}
    env["HF_TOKEN"] = "hf_qualify_test"
    # only preflight runs here (no engine to deploy): enough for the facts and the hardware verdict
    proc = procs.run([str(CLI), "qualify", "--target", "kubernetes", "--hardware-profile", profile,
                      "--recipes-root", str(root), "--kubeconfig", str(kubeconfig), "--perf-trials", "1",
                      "--out", str(out), "--", "-k", "preflight", "-p", "no:cacheprovider"],
                     capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    data = json.loads((out / "qualification.json").read_text()) if (out / "qualification.json").is_file() else {}
    return proc, data


def test_h200_profile_on_h100_nodes_is_not_qualified_with_the_reason(cluster, tmp_path):
    def setup():
        fake = FakeCluster(cluster.emu, platform=True, storage_classes=["fast-rwx"])
        cluster.emu.put(("", "v1", "nodes"), gpu_node("gpu-1", H100))
        return fake
    cluster.call(setup)
    proc, data = qualify(cluster, tmp_path, "h200-sxm")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = data["recipes"]["tiny/vllm/agg"]
    assert rec["verdict"] == "not qualified"
    assert rec["reasons"][0] == ("hardware: profile h200-sxm needs H200 GPUs; the cluster's nodes have "
                                 "NVIDIA-H100-80GB-HBM3")
    assert rec["checks"]["preflight"]["outcome"] == "passed"  # the GPUs are there, just not the profile's
    assert any(r.startswith("perf did not run") for r in rec["reasons"])
    system = data["system"]
    nodes = {n["name"]: n for n in system["nodes"]}
    assert nodes["gpu-1"] == {"name": "gpu-1", "gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpuCount": "8",
                              "driver": "570.124.06", "kubelet": "v1.33.1"}
    assert nodes["node-1"]["gpuProduct"] == "unknown" and nodes["node-1"]["driver"] == "unknown"
    assert system["kubernetesVersion"] != "unknown"
    assert system["operator"][0]["name"] == "dynamo-system/dynamo-platform-dynamo-operator-controller-manager"
    assert [c["name"] for c in system["storageClasses"]] == ["fast-rwx"] and system["storageClasses"][0]["default"]
    assert "needs H200 GPUs" in (tmp_path / "bundle" / "qualification.md").read_text()
    v = subprocess.run([str(CLI), "qualify", "verify", str(tmp_path / "bundle")], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout


def test_hardware_match_rules():
    k8s = {"target": "kubernetes", "gpus": ["NVIDIA-H200"]}
    assert hardware_match("h200-sxm", k8s)["matched"]
    assert not hardware_match("b200", k8s)["matched"]
    assert "no node says its GPU product" in hardware_match("h200-sxm", {"target": "kubernetes", "gpus": []})["why"]
    assert hardware_match("cpu-mocker", {"target": "local", "gpus": []})["matched"]
    assert "local target has none" in hardware_match("h100-sxm", {"target": "local", "gpus": []})["why"]
    assert "qualifies the local target only" in hardware_match("cpu-mocker", k8s)["why"]
    # a GB200 node is not a B200 node
    assert not hardware_match("b200", {"target": "kubernetes", "gpus": ["NVIDIA-GB200"]})["matched"]
    assert node_facts({"metadata": {"name": "n"}, "status": {}})["gpuCount"] == "unknown"


def test_pulled_image_digests_come_from_pod_status(tmp_path):
    from recipe_harness.qualify.facts import pulled_images

    d = tmp_path / "kubernetes" / "tiny" / "vllm" / "agg"
    d.mkdir(parents=True)
    (d / "pods.json").write_text(json.dumps([{"metadata": {"name": "agg-worker-0"}, "status": {"containerStatuses": [
        {"name": "main", "image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1",
         "imageID": "nvcr.io/nvidia/ai-dynamo/vllm-runtime@sha256:" + "a" * 64}]}}]))
    got = pulled_images(tmp_path, ["tiny/vllm/agg", "not/run/here"])
    assert got == {"tiny/vllm/agg": [{"pod": "agg-worker-0", "container": "main",
                                      "image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1",
                                      "imageID": "nvcr.io/nvidia/ai-dynamo/vllm-runtime@sha256:" + "a" * 64}]}
