#!/usr/bin/env python3
"""Kubernetes target fail-fast: time from a worker pod showing a terminal failure in the emulated
API (tests/kube_emulator.py, a real HTTP API server on loopback) to DeployError reaching the
caller -- diagnostics saved and the namespace deleted included. Goal: <= 10 s.

Terminal failures: OOMKilled; a crash loop past --max-restarts (the scenario's container has
restarted 3 times; the limit is set to 2); an unschedulable pod (no node has the GPUs); a pod made
again under its name after each crash, as a LeaderWorkerSet group is (limit 2: the third
recreation fails it; timed from its last crash, so the time includes the recreation, 1 s here);
a worker that mounts a ConfigMap nothing provides (the kubelet's FailedMount, confirmed with the API).

    .venv/bin/python bench/kube_failfast.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_kubernetes_target as t  # noqa: E402  (fixtures: the tiny recipe and a fake frontend)
from kube_emulator import EmulatedCluster, FakeCluster  # noqa: E402
from test_kubernetes_companions import mounting  # noqa: E402  (the tiny DGD with a worker mounting a ConfigMap)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("HF_TOKEN", "hf_bench_placeholder")
    server = ThreadingHTTPServer(("127.0.0.1", 0), t._Frontend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scenarios = [("OOMKilled", {}), ("CrashLoopBackOff", {"max_restarts": 2}), ("Unschedulable", {}),
                 ("GroupRestart", {"max_restarts": 2}), ("FailedMount", {})]
    for reason, options in scenarios:
        rc = run(reason, options, args.runs, server)
        if rc:
            server.shutdown()
            return rc
    server.shutdown()
    return 0


def run(reason: str, options: dict, runs: int, server: ThreadingHTTPServer) -> int:
    delays, namespaces_left = [], 0
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp())
        root = t.write_tiny_recipes(tmp / "recipes", perf=False)
        outcome = f"{reason}:VllmWorker"
        if reason == "FailedMount":
            (root / "tiny" / "vllm" / "agg" / "deploy.yaml").write_text(mounting("engine-config"))
            outcome = "ready"
        recipe = t.LoadedRecipe.load(t.discover(root).recipes[0])
        cluster = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
        fake = cluster.call(lambda c=cluster, o=outcome: FakeCluster(c.emu, frontend_addr=server.server_address,
                                                                     pvc_dirs={}, dgd_outcome=o, failure_after=1.0))
        target = t.target_for(cluster, deploy_timeout=600, **options)
        try:
            with target.deploy(recipe, tmp / "work"):
                pass
        except t.DeployError:
            delays.append(time.monotonic() - fake.failed_at)
        namespaces_left += len(t.harness_namespaces(cluster))
        cluster.close()
    if not delays:
        print(f"{reason} -> DeployError: no run failed")
        return 1
    print(f"{reason:16} -> DeployError: runs={len(delays)}/{runs} "
          f"median={statistics.median(delays):.3f}s max={max(delays):.3f}s (goal <= 10 s: "
          f"{max(delays) / 10:.2f}x of budget); harness namespaces left: {namespaces_left} (goal 0)")
    return 0 if len(delays) == runs and namespaces_left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
