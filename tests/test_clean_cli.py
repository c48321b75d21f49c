"""``recipe-harness clean`` through the console script, against the Kubernetes API emulation
(tests/kube_emulator.py): options on the subparser, runs in progress kept, runs that are over deleted,
other namespaces never touched, exit codes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, EmulatedCluster  # noqa: E402

from recipe_harness.cli_clean import judge, parse_duration  # noqa: E402
from recipe_harness.deploy.kubernetes.namespace import (  # noqa: E402
    MANAGED_BY,
    MANAGED_BY_KEY,
    OWNER_ANNOTATION,
    RECIPE_ANNOTATION,
    RUN_KEY,
    STARTED_ANNOTATION,
)

CLI = Path(sys.executable).parent / "recipe-harness"
HOST = socket.gethostname()


@pytest.fixture
def cluster():
    c = EmulatedCluster(namespace_finalize_delay=0.05, watch_timeout_cap=5.0)
    yield c
    c.close()


@pytest.fixture
def kubeconfig(cluster: EmulatedCluster, tmp_path: Path) -> Path:
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def harness_ns(cluster: EmulatedCluster, name: str, *, owner: str, age: timedelta = timedelta(0),
               recipe: str = "mocker-tiny/mocker/agg") -> None:
    cluster.put(NAMESPACES, {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {MANAGED_BY_KEY: MANAGED_BY, RUN_KEY: "0123abcd"},
                     "annotations": {RECIPE_ANNOTATION: recipe, OWNER_ANNOTATION: owner,
                                     STARTED_ANNOTATION: _stamp(datetime.now(UTC) - age)}},
        "status": {"phase": "Active"}})


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def names(cluster: EmulatedCluster) -> set[str]:
    return {n["metadata"]["name"] for n in cluster.items(NAMESPACES)}


def clean(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), "clean", "--kubeconfig", str(kubeconfig), "--wait", "10", *args],
                          capture_output=True, text=True, timeout=120)


def line_of(out: str, name: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f" {name}" in ln or ln.startswith(name)]
    return line


@pytest.fixture
def runs(cluster: EmulatedCluster) -> dict[str, str]:
    """One namespace of each kind: run over (owner gone), in progress here, young elsewhere, old elsewhere,
    and two that are not the harness's."""
    out = {
        "gone": f"{HOST}/{dead_pid()}",
        "live": f"{HOST}/{os.getpid()}",
        "young": "ci-runner-7.example/4242",
        "old": "ci-runner-7.example/4343",
    }
    harness_ns(cluster, "rh-gone-aaaaaa", owner=out["gone"], age=timedelta(minutes=5))
    harness_ns(cluster, "rh-live-bbbbbb", owner=out["live"])
    harness_ns(cluster, "rh-young-cccccc", owner=out["young"], age=timedelta(minutes=30))
    harness_ns(cluster, "rh-old-dddddd", owner=out["old"], age=timedelta(hours=3))
    cluster.namespace("someone-elses")
    cluster.namespace("rh-looks-like-ours", labels={MANAGED_BY_KEY: "helm"})
    return out


ALL_NAMES = {"rh-gone-aaaaaa", "rh-live-bbbbbb", "rh-young-cccccc", "rh-old-dddddd", "someone-elses",
             "rh-looks-like-ours"}


def test_help_exits_0_and_lists_the_options() -> None:
    done = subprocess.run([str(CLI), "clean", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--kubeconfig", "--context", "--namespace-prefix", "--older-than", "--all", "--dry-run",
                   "--wait", "--cache-namespace"):
        assert option in done.stdout
    assert "default: 24h" in done.stdout


def test_dry_run_lists_what_and_why_and_deletes_nothing(cluster, kubeconfig, runs) -> None:
    done = clean(kubeconfig, "--dry-run", "--older-than", "2h")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert line_of(out, "rh-gone-aaaaaa").startswith("would delete")
    assert f"owner {runs['gone']} is gone" in line_of(out, "rh-gone-aaaaaa")
    assert "[mocker-tiny/mocker/agg]" in line_of(out, "rh-gone-aaaaaa")
    assert line_of(out, "rh-old-dddddd").startswith("would delete")
    assert "older than --older-than 2h" in line_of(out, "rh-old-dddddd")
    assert line_of(out, "rh-live-bbbbbb").startswith("kept")
    assert line_of(out, "rh-young-cccccc").startswith("kept")
    assert "2 would be deleted, 2 kept (--dry-run: nothing deleted)" in out
    assert names(cluster) == ALL_NAMES


def test_default_deletes_only_runs_whose_owner_is_gone(cluster, kubeconfig, runs) -> None:
    done = clean(kubeconfig)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert line_of(out, "rh-gone-aaaaaa").startswith("deleted")
    live = line_of(out, "rh-live-bbbbbb")
    assert live.startswith("kept") and f"owner {runs['live']} is running on this host" in live
    young = line_of(out, "rh-young-cccccc")
    assert young.startswith("kept") and "runs on another host" in young and "under --older-than 24h" in young
    assert line_of(out, "rh-old-dddddd").startswith("kept")
    assert "someone-elses" not in out and "rh-looks-like-ours" not in out
    assert "1 deleted, 3 kept, 0 failed" in out
    assert names(cluster) == ALL_NAMES - {"rh-gone-aaaaaa"}


def test_older_than_deletes_old_runs_elsewhere(cluster, kubeconfig, runs) -> None:
    done = clean(kubeconfig, "--older-than", "2h")
    assert done.returncode == 0, done.stdout + done.stderr
    old = line_of(done.stdout, "rh-old-dddddd")
    assert old.startswith("deleted") and "older than --older-than 2h" in old
    assert line_of(done.stdout, "rh-young-cccccc").startswith("kept")
    assert line_of(done.stdout, "rh-live-bbbbbb").startswith("kept")
    assert names(cluster) == ALL_NAMES - {"rh-gone-aaaaaa", "rh-old-dddddd"}
    done = clean(kubeconfig, "--older-than", "20m")
    assert done.returncode == 0, done.stdout + done.stderr
    assert line_of(done.stdout, "rh-young-cccccc").startswith("deleted")
    assert names(cluster) == {"rh-live-bbbbbb", "someone-elses", "rh-looks-like-ours"}


def test_all_deletes_every_harness_namespace_and_nothing_else(cluster, kubeconfig, runs) -> None:
    done = clean(kubeconfig, "--all")
    assert done.returncode == 0, done.stdout + done.stderr
    assert line_of(done.stdout, "rh-live-bbbbbb").startswith("deleted")
    assert "4 deleted, 0 kept, 0 failed" in done.stdout
    assert names(cluster) == {"someone-elses", "rh-looks-like-ours"}


def test_namespace_prefix_selects(cluster, kubeconfig, runs) -> None:
    harness_ns(cluster, "ci-gone-ffffff", owner=f"{HOST}/{dead_pid()}")
    done = clean(kubeconfig, "--all", "--namespace-prefix", "ci")
    assert done.returncode == 0, done.stdout + done.stderr
    assert names(cluster) == ALL_NAMES


def test_a_namespace_that_cannot_be_deleted_exits_1(cluster, kubeconfig, runs) -> None:
    fault = cluster.call(cluster.emu.inject, "DELETE", r"/api/v1/namespaces/rh-gone-aaaaaa$", 403, times=10)
    done = clean(kubeconfig)
    assert done.returncode == 1, done.stdout + done.stderr
    assert line_of(done.stdout, "rh-gone-aaaaaa").startswith("failed")
    assert "0 deleted, 3 kept, 1 failed" in done.stdout
    assert fault.hits >= 1
    assert "rh-gone-aaaaaa" in names(cluster)


@pytest.mark.parametrize("value", ["5x", "2 hours", "-1h", "0m", ""])
def test_a_bad_older_than_is_a_usage_error(cluster, kubeconfig, runs, value) -> None:
    done = clean(kubeconfig, "--older-than", value)
    assert done.returncode == 2
    assert "--older-than" in done.stderr and "usage: recipe-harness clean" in done.stderr
    assert names(cluster) == ALL_NAMES


def test_an_unreadable_kubeconfig_is_exit_2(tmp_path) -> None:
    done = subprocess.run([str(CLI), "clean", "--kubeconfig", str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot load kubeconfig" in done.stderr


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
                                               ("45s", 45), ("1.5h", 5400)])
def test_durations(text, seconds) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_a_reused_pid_is_not_the_owner() -> None:
    now = datetime.now(UTC)
    ns = {"metadata": {"name": "rh-x-000000", "annotations": {OWNER_ANNOTATION: f"{HOST}/1234",
                                                               STARTED_ANNOTATION: _stamp(now - timedelta(hours=1))}}}
    common = dict(now=now, older_than=timedelta(days=1), everything=False, host=HOST, alive=lambda pid: True)
    kept = judge(ns, proc_started=lambda pid: now - timedelta(hours=2), **common)
    assert not kept.delete and "is running on this host" in kept.why
    # a run in progress here is kept whatever its age
    assert not judge(ns, proc_started=lambda pid: now - timedelta(hours=2),
                     **{**common, "older_than": timedelta(minutes=1)}).delete
    over = judge(ns, proc_started=lambda pid: now - timedelta(minutes=5), **common)
    assert over.delete and "started after the run" in over.why


# -- runs left in a cache namespace -------------------------------------------------------------------

CACHE_NS = "model-cache-qwen"
DGDS = ("nvidia.com", "v1alpha1", "dynamographdeployments")
SECRETS, PVCS, CONFIGMAPS, JOBS = ("", "v1", "secrets"), ("", "v1", "persistentvolumeclaims"), ("", "v1", "configmaps"), \
    ("batch", "v1", "jobs")


def stamped(kind: str, name: str, run: str, owner: str, age: timedelta = timedelta(minutes=5)) -> dict:
    api = {"DynamoGraphDeployment": "nvidia.com/v1alpha1", "Job": "batch/v1"}.get(kind, "v1")
    return {"apiVersion": api, "kind": kind, "metadata": {
        "name": name, "namespace": CACHE_NS, "labels": {MANAGED_BY_KEY: MANAGED_BY, RUN_KEY: run},
        "annotations": {RECIPE_ANNOTATION: "qwen3-32b/vllm/agg", OWNER_ANNOTATION: owner,
                        STARTED_ANNOTATION: _stamp(datetime.now(UTC) - age)}}}


@pytest.fixture
def cache_runs(cluster: EmulatedCluster) -> None:
    """A cache namespace holding a killed run (DGD, Job, Secret), a run in progress here, the cache PVC
    and a ConfigMap that is not the harness's."""
    cluster.namespace(CACHE_NS, labels={"recipe-harness/cache": "true"})
    gone = f"{HOST}/{dead_pid()}"
    cluster.put(DGDS, stamped("DynamoGraphDeployment", "qwen-agg", "dead0001", gone))
    cluster.put(JOBS, stamped("Job", "model-download", "dead0001", gone))
    cluster.put(SECRETS, stamped("Secret", "hf-token-secret", "dead0001", gone))
    cluster.put(DGDS, stamped("DynamoGraphDeployment", "llama-agg", "live0001", f"{HOST}/{os.getpid()}",
                              age=timedelta(0)))
    cluster.put(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": "model-cache", "namespace": CACHE_NS}, "spec": {}})
    cluster.put(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "team-config",
                                                                                  "namespace": CACHE_NS}})


def test_cache_namespace_runs_that_are_over_are_deleted_and_the_cache_kept(cluster, kubeconfig, cache_runs) -> None:
    dry = clean(kubeconfig, "--cache-namespace", CACHE_NS, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete  {CACHE_NS}/run-dead0001 [qwen3-32b/vllm/agg]: owner {HOST}/" in dry.stdout
    assert "(DynamoGraphDeployment qwen-agg, Job model-download, Secret hf-token-secret)" in dry.stdout
    assert cluster.get(DGDS, CACHE_NS, "qwen-agg") is not None
    done = clean(kubeconfig, "--cache-namespace", CACHE_NS)
    assert done.returncode == 0, done.stderr
    assert line_of(done.stdout, f"{CACHE_NS}/run-dead0001").startswith("deleted")
    assert line_of(done.stdout, f"{CACHE_NS}/run-live0001").startswith("kept") and "running on this host" in done.stdout
    assert done.stdout.rstrip().endswith("recipe-harness clean: 1 deleted, 1 kept, 0 failed")
    assert cluster.get(DGDS, CACHE_NS, "qwen-agg") is None and cluster.get(JOBS, CACHE_NS, "model-download") is None
    assert cluster.get(SECRETS, CACHE_NS, "hf-token-secret") is None
    assert cluster.get(DGDS, CACHE_NS, "llama-agg") is not None
    assert cluster.get(PVCS, CACHE_NS, "model-cache") is not None            # the cache
    assert cluster.get(CONFIGMAPS, CACHE_NS, "team-config") is not None      # not the harness's
    assert CACHE_NS in names(cluster)


def test_a_cache_namespace_without_runs_says_so(cluster, kubeconfig) -> None:
    cluster.namespace(CACHE_NS)
    done = clean(kubeconfig, "--cache-namespace", CACHE_NS)
    assert done.returncode == 0 and f"no harness runs in {CACHE_NS}" in done.stdout
