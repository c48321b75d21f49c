"""The kubernetes target against a real HTTP emulation of the Kubernetes API (tests/kube_emulator.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import JOBS, NAMESPACES, PODS, SERVICES, EmulatedCluster, FakeCluster  # noqa: E402

from recipe_harness.deploy import DeployError  # noqa: E402
from recipe_harness.deploy.kubernetes.namespace import MANAGED_BY_KEY  # noqa: E402
from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

MODEL = "Qwen/Qwen3-0.6B"
DGD_RES = ("nvidia.com", "v1alpha1", "dynamographdeployments")

DEPLOY = f"""
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: tiny-agg
spec:
  backendFramework: vllm
  pvcs:
    - name: model-cache
      create: false
  services:
    Frontend:
      componentType: frontend
      replicas: 1
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
          command: [python3, -m, dynamo.frontend]
          args: [--http-port, "8000", --router-mode, kv]
    VllmWorker:
      componentType: worker
      replicas: 2
      envFromSecret: hf-token-secret
      volumeMounts:
        - name: model-cache
          mountPoint: /opt/models
      resources:
        limits: {{gpu: "1"}}
        requests: {{gpu: "1"}}
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
          command: [python3, -m, dynamo.vllm]
          args: [--model, {MODEL}, --max-model-len, "4096"]
"""
CACHE = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: model-cache}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 10Gi}}
  storageClassName: fast-rwx
---
apiVersion: batch/v1
kind: Job
metadata: {name: model-download}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: model-download
          image: python:3.12-slim
          command: [/bin/sh, -c]
          args: ["pip install huggingface_hub && hf download Qwen/Qwen3-0.6B"]
          env:
            - name: HF_TOKEN
              valueFrom: {secretKeyRef: {name: hf-token-secret, key: HF_TOKEN}}
          volumeMounts: [{name: model-cache, mountPath: /opt/models}]
      volumes:
        - name: model-cache
          persistentVolumeClaim: {claimName: model-cache}
"""
PERF = """
apiVersion: batch/v1
kind: Job
metadata: {name: tiny-agg-perf}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: perf
          image: python:3.12-slim
          command: [/bin/bash, -c]
          args: ["aiperf profile --url http://tiny-agg-frontend:8000 --request-count 100 --artifact-dir /opt/models/perf/tiny-agg/run1"]
          volumeMounts: [{name: model-cache, mountPath: /opt/models}]
      volumes:
        - name: model-cache
          persistentVolumeClaim: {claimName: model-cache}
"""


def write_tiny_recipes(root: Path, *, perf: bool = True) -> Path:
    """A recipes root holding ``tiny/vllm/agg`` (DEPLOY, CACHE and, with ``perf``, PERF)."""
    (root / "tiny" / "vllm" / "agg").mkdir(parents=True)
    (root / "tiny" / "model-cache").mkdir()
    (root / "tiny" / "vllm" / "agg" / "deploy.yaml").write_text(DEPLOY)
    if perf:
        (root / "tiny" / "vllm" / "agg" / "perf.yaml").write_text(PERF)
    (root / "tiny" / "model-cache" / "cache.yaml").write_text(CACHE)
    return root


@pytest.fixture
def recipe(tmp_path: Path) -> LoadedRecipe:
    recipes = discover(write_tiny_recipes(tmp_path / "recipes")).recipes
    assert [r.id for r in recipes] == ["tiny/vllm/agg"]
    return LoadedRecipe.load(recipes[0])


class _Frontend(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def frontend():
    """A TCP server standing in for the frontend pod's container (port-forward target)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Frontend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def cluster():
    c = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    yield c
    c.close()


@pytest.fixture
def fake(cluster: EmulatedCluster, frontend, tmp_path: Path) -> FakeCluster:
    pvc = tmp_path / "pvc-model-cache"
    pvc.mkdir()
    return cluster.call(lambda: FakeCluster(cluster.emu, frontend_addr=frontend, pvc_dirs={"model-cache": pvc}))


def target_for(cluster: EmulatedCluster, **kw) -> KubernetesTarget:
    # preflight gating has its own tests (test_kubernetes_failfast.py); these start from a cluster without the CRD
    opts = KubeOptions(deploy_timeout=kw.pop("deploy_timeout", 60), job_timeout=30, http_timeout=10,
                       preflight=kw.pop("preflight", False),
                       delete_timeout=10, watch_timeout=5, **kw)
    return KubernetesTarget(opts, kube=cluster.kube())


def harness_namespaces(cluster: EmulatedCluster) -> list[dict]:
    return [n for n in cluster.items(NAMESPACES) if (n["metadata"].get("labels") or {}).get(MANAGED_BY_KEY) == "recipe-harness"]


def test_deploy_serves_through_port_forward_and_cleans_up(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "work") as endpoint:
        ns = target.namespace_of(recipe.id)
        with urllib.request.urlopen(endpoint.base_url + "/v1/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == MODEL
        assert endpoint.model == MODEL and endpoint.target == "kubernetes"
        assert endpoint.router_mode == "kv"
        assert sorted(c.service for c in endpoint.components) == ["Frontend", "VllmWorker", "VllmWorker"]
        # labelled namespace, Secret from the environment, objects by server-side apply
        labels = cluster.get(NAMESPACES, None, ns)["metadata"]["labels"]
        assert labels[MANAGED_BY_KEY] == "recipe-harness"
        secret = cluster.get(("", "v1", "secrets"), ns, "hf-token-secret")
        assert secret["stringData"] == {"HF_TOKEN": "hf_secret_value_123"}
        dgd = cluster.get(DGD_RES, ns, "tiny-agg")
        assert dgd["metadata"]["managedFields"][0]["manager"] == "recipe-harness"
        assert cluster.get(JOBS, ns, "model-download")["status"]["succeeded"] == 1
        assert cluster.emu.portforwards and cluster.emu.portforwards[0][1] == "tiny-agg-frontend-0"
    assert cluster.get(NAMESPACES, None, ns) is None
    assert harness_namespaces(cluster) == []
    diag = tmp_path / "work" / "kubernetes"
    for name in ("events.txt", "pods.json", "pods.txt", "dgd.json", "jobs.json"):
        assert (diag / name).is_file(), name
    assert (diag / "logs" / "tiny-agg-vllmworker-0" / "main.log").read_text() == "VllmWorker replica 0 started\n"
    assert json.loads((diag / "dgd.json").read_text())["status"]["state"] == "successful"
    every_file = "".join(p.read_text() for p in diag.rglob("*") if p.is_file())
    assert "hf_secret_value_123" not in every_file


# The scenario's CrashLoopBackOff has restarted 3 times (exit code 1) and its ImagePullBackOff names no
# cause: both may heal, so they fail once past --max-restarts / --image-pull-grace.
TOLERANCE = {"CrashLoopBackOff": {"max_restarts": 2}, "ImagePullBackOff": {"image_pull_grace": 0.5}}


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ImagePullBackOff", "OOMKilled", "Unschedulable"])
def test_pod_failures_fail_fast_naming_pod_container_reason(cluster, fake, recipe, tmp_path, monkeypatch, reason):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", f"{reason}:VllmWorker")
    target = target_for(cluster, deploy_timeout=120, **TOLERANCE.get(reason, {}))
    with pytest.raises(DeployError) as info:
        with target.deploy(recipe, tmp_path / "work"):
            pass
    text = str(info.value)
    assert "pod tiny-agg-vllmworker-0" in text and reason in text
    if reason != "Unschedulable":
        assert "container main" in text
    else:
        assert "Insufficient nvidia.com/gpu" in text
    if reason == "CrashLoopBackOff":
        assert "unknown quantization fp5" in text and "exit code 1" in text
    assert "not Ready within" not in text  # failed fast, not at the timeout
    assert harness_namespaces(cluster) == []
    assert (tmp_path / "work" / "kubernetes" / "events.txt").is_file()


def test_dgd_failed_state_that_persists_past_its_grace_fails(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "failed")
    with pytest.raises(DeployError, match=r"DGDFailed: Ready=False failed_to_reconcile_the_resources: .*limit 0.5s --dgd-failed-grace"):
        with target_for(cluster, deploy_timeout=120, dgd_failed_grace=0.5).deploy(recipe, tmp_path / "w"):
            pass


def test_no_multinode_orchestrator_fails_at_once_without_the_grace(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "failed")
    cluster.call(setattr, fake, "failure_message",
                 "failed to reconcile Dynamo components deployments: no multinode orchestrator available")
    with pytest.raises(DeployError, match=r"DGDFailed: .*no multinode orchestrator available .*restart the operator"):
        with target_for(cluster, deploy_timeout=120, dgd_failed_grace=600).deploy(recipe, tmp_path / "w"):
            pass


def test_model_download_backoff_exhausted(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(lambda: fake.job_outcome.update({"model-download": "fail"}))
    with pytest.raises(DeployError, match="job model-download: BackoffLimitExceeded"):
        with target_for(cluster).deploy(recipe, tmp_path / "w"):
            pass
    assert harness_namespaces(cluster) == []


def test_timeout_names_dgd_state_and_pods(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "dgd_outcome", "never")
    with pytest.raises(DeployError, match=r"not Ready within 1s \(--deploy-timeout\) \(state=pending Ready=False "
                       r"some_resources_are_not_ready Resources not ready: tiny-agg-frontend"):
        with target_for(cluster, deploy_timeout=1).deploy(recipe, tmp_path / "w"):
            pass


def test_missing_hf_token_is_a_clear_error_and_creates_nothing_lasting(cluster, fake, recipe, tmp_path, monkeypatch):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DeployError, match="set HF_TOKEN in the environment or pass --hf-token-secret"):
        with target_for(cluster).deploy(recipe, tmp_path / "w"):
            pass
    assert harness_namespaces(cluster) == []


def test_hf_token_secret_is_copied(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    cluster.namespace("secrets-home")
    cluster.put(("", "v1", "secrets"), {"apiVersion": "v1", "kind": "Secret",
                                        "metadata": {"name": "my-hf", "namespace": "secrets-home"},
                                        "data": {"HF_TOKEN": "aGZfeHl6"}})
    target = target_for(cluster, hf_token_secret="secrets-home/my-hf")
    with target.deploy(recipe, tmp_path / "w"):
        ns = target.namespace_of(recipe.id)
        assert cluster.get(("", "v1", "secrets"), ns, "hf-token-secret")["data"] == {"HF_TOKEN": "aGZfeHl6"}


def test_rbac_403_names_what_is_missing(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(cluster.emu.inject, "POST", r"^/api/v1/namespaces$", 403, times=5,
                 message='namespaces is forbidden: User "ci" cannot create resource "namespaces"')
    with pytest.raises(DeployError) as info:
        with target_for(cluster).deploy(recipe, tmp_path / "w"):
            pass
    assert 'cannot create resource "namespaces"' in str(info.value)
    assert "lacks RBAC permission" in str(info.value)
    assert cluster.items(NAMESPACES) == []


def test_transient_429_and_500_are_retried_with_backoff(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    emu = cluster.emu
    f429 = cluster.call(emu.inject, "POST", r"^/api/v1/namespaces$", 429, times=2, retry_after=0.1)
    f500 = cluster.call(emu.inject, "PATCH", r"/dynamographdeployments/tiny-agg$", 500, times=1)
    fwatch = cluster.call(emu.inject, "GET", r"/pods$", 503, times=1)
    with target_for(cluster).deploy(recipe, tmp_path / "w") as endpoint:
        assert endpoint.model == MODEL
    assert (f429.hits, f500.hits, fwatch.hits) == (2, 1, 1)


def test_namespace_name_conflict_409_gets_a_new_name(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    fault = cluster.call(cluster.emu.inject, "POST", r"^/api/v1/namespaces$", 409, times=1)
    with target_for(cluster).deploy(recipe, tmp_path / "w") as endpoint:
        assert endpoint.model == MODEL
    assert fault.hits == 1


def test_run_perf_job_collects_aiperf_artifacts_from_the_pvc(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    export = {"output_token_throughput": {"unit": "tokens/sec", "avg": 1234.5}}

    def aiperf_writes(job):
        out = fake.pvc_dirs["model-cache"] / "perf" / "tiny-agg" / "run1"
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile_export_aiperf.json").write_text(json.dumps(export))
        (out / "profile_export_aiperf.csv").write_text("Metric,avg\n")
        (out / "inputs.json").write_text("{}")  # large aiperf files stay on the PVC
        return "aiperf: done\n"

    cluster.call(lambda: fake.job_effects.update({"tiny-agg-perf": aiperf_writes}))
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        ns = target.namespace_of(recipe.id)
        out = target.run_perf_job(recipe, ns, tmp_path / "artifacts")
        found = sorted(p.relative_to(out).as_posix() for p in out.rglob("profile_export_aiperf.*"))
        assert len(found) == 2 and all("perf/tiny-agg/run1/" in f for f in found)
        got = json.loads(next(out.rglob("profile_export_aiperf.json")).read_text())
        assert got == export
        assert not list(out.rglob("inputs.json"))
        assert (out / "tiny-agg-perf.log").read_text() == "aiperf: done\n"
        helpers = [p for p in cluster.items(PODS, ns) if "collect" in p["metadata"]["name"]]
        assert helpers == []  # the helper pod is deleted again
        # a second run replaces the Job (Jobs are immutable)
        out2 = target.run_perf_job(recipe, ns, tmp_path / "artifacts2")
        assert list(out2.rglob("profile_export_aiperf.json"))


def test_run_perf_job_fails_when_nothing_was_written(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        with pytest.raises(DeployError, match="no profile_export_aiperf"):
            target.run_perf_job(recipe, target.namespace_of(recipe.id), tmp_path / "a")


def test_mocker_twin_deploys_without_gpus(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    target = target_for(cluster, twin="mocker")
    with target.deploy(recipe, tmp_path / "w") as endpoint:
        ns = target.namespace_of(recipe.id)
        dgd = cluster.get(DGD_RES, ns, "tiny-agg")
        worker = dgd["spec"]["services"]["VllmWorker"]
        assert worker["replicas"] == 2
        assert worker["extraPodSpec"]["mainContainer"]["command"] == ["python3", "-m", "dynamo.mocker"]
        assert "gpu" not in json.dumps(worker["resources"])
        assert cluster.get(("", "v1", "persistentvolumeclaims"), ns, "model-cache")["spec"].get("storageClassName") is None
        assert endpoint.model == MODEL
        assert cluster.get(SERVICES, ns, "tiny-agg-frontend") is not None


INTERRUPTED = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    from recipe_harness.model.bundle import LoadedRecipe
    from recipe_harness.load.discovery import discover
    from recipe_harness.plugin.kube import _sigterm_to_interrupt
    from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    recipe = LoadedRecipe.load(discover(sys.argv[2]).recipes[0])
    target = KubernetesTarget(KubeOptions(kubeconfig=sys.argv[1], deploy_timeout=120, delete_timeout=10, watch_timeout=5,
                                          preflight=False))
    with target.deploy(recipe, Path(sys.argv[3])):
        pass
""")


def _start_interrupted(cluster, recipe, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(INTERRUPTED)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    env = dict(os.environ, HF_TOKEN="x")
    proc = subprocess.Popen([sys.executable, str(script), str(kubeconfig), str(recipe.recipe.root), str(tmp_path / "w")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = [p for p in cluster.items(PODS) if p["metadata"]["name"].startswith("tiny-agg-")]
        if pods:
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never got its DGD pods: " + proc.communicate()[0].decode()[-2000:])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupted_run_deletes_its_namespace(cluster, fake, recipe, tmp_path, sig):
    cluster.call(setattr, fake, "dgd_outcome", "never")
    proc = _start_interrupted(cluster, recipe, tmp_path)
    assert len(harness_namespaces(cluster)) == 1
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode != 0, out
    assert harness_namespaces(cluster) == [], out


def test_killed_run_is_found_by_label_and_cleaned(cluster, fake, recipe, tmp_path):
    from recipe_harness.cli_clean import clean

    cluster.call(setattr, fake, "dgd_outcome", "never")
    cluster.namespace("someone-elses")
    cluster.namespace("looks-like-ours", labels={"app.kubernetes.io/managed-by": "helm"})
    proc = _start_interrupted(cluster, recipe, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    left = harness_namespaces(cluster)
    assert len(left) == 1
    assert clean(["--dry-run"], kube=cluster.kube()) == 0
    assert len(harness_namespaces(cluster)) == 1
    assert clean(["--wait", "10"], kube=cluster.kube()) == 0
    assert harness_namespaces(cluster) == []
    names = {n["metadata"]["name"] for n in cluster.items(NAMESPACES)}
    assert names == {"someone-elses", "looks-like-ours"}


def test_delete_refuses_namespaces_the_harness_did_not_create(cluster):
    from recipe_harness.deploy.kubernetes.namespace import NotHarnessNamespace, delete_namespace

    cluster.namespace("production")
    with pytest.raises(NotHarnessNamespace, match="deletes only its own namespaces"):
        delete_namespace(cluster.kube(), "production", wait=1)
    assert cluster.get(NAMESPACES, None, "production") is not None


def test_kubeconfig_and_context_are_used(cluster, tmp_path):
    from recipe_harness.deploy.kubernetes.client import Kube

    kubeconfig = cluster.write_kubeconfig(tmp_path / "kc")
    data = yaml.safe_load(kubeconfig.read_text())
    data["contexts"].append({"name": "other", "context": {"cluster": "emulated", "user": "tester"}})
    data["current-context"] = "missing-ctx"
    kubeconfig.write_text(yaml.safe_dump(data))
    kube = Kube.connect(str(kubeconfig), "other")
    assert kube.get("/version")["major"] == "1"
    last = cluster.call(lambda: cluster.emu._requests[-1])
    assert last.headers.get("Authorization") == "Bearer emulated-token"


def test_diagnostics_save_the_status_of_the_workloads_the_operator_made(cluster, tmp_path):
    """LeaderWorkerSets and Grove's PodCliques say why pods are missing; kinds not served are left out."""
    from recipe_harness.deploy.kubernetes import diagnostics

    cluster.namespace("rh-diag")
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": "g-decode", "namespace": "rh-diag"},
           "status": {"readyReplicas": 0, "conditions": [{"type": "Progressing", "status": "True",
                                                          "reason": "GroupsProgressing"}]}}
    cluster.put(("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"), lws)
    written = diagnostics.collect(cluster.kube(), "rh-diag", tmp_path)
    data = json.loads((tmp_path / "workloads.json").read_text())
    assert data["leaderworkersets"] == [{"name": "g-decode", "status": lws["status"]}]
    assert "deployments" not in data and tmp_path / "workloads.json" in written
