#!/usr/bin/env python3
"""Kubernetes target interrupts: time from SIGTERM / SIGINT to the run's process exiting, and the
state of its namespace then (deleted or Terminating), against the emulated API with an operator
that takes ``--finalizer-delay`` seconds to remove its DGD finalizer. A CI cancel sends SIGKILL
about 10 s after SIGTERM: the goal is an exit well inside that, with the deletion requested.

    .venv/bin/python bench/kube_interrupt.py [--runs 3] [--finalizer-delay 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_kubernetes_target as t  # noqa: E402  (the tiny recipe, the interrupted-run script)
from kube_emulator import NAMESPACES, PODS, EmulatedCluster, FakeCluster  # noqa: E402


def one(sig: signal.Signals, delay: float, server: ThreadingHTTPServer) -> tuple[float, str]:
    tmp = Path(tempfile.mkdtemp())
    root = t.write_tiny_recipes(tmp / "recipes", perf=False)
    cluster = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    try:
        cluster.call(lambda: FakeCluster(cluster.emu, frontend_addr=server.server_address, pvc_dirs={},
                                         dgd_outcome="never", delete_after=delay))
        script = tmp / "run.py"
        script.write_text(t.INTERRUPTED)
        kubeconfig = cluster.write_kubeconfig(tmp / "kubeconfig")
        proc = subprocess.Popen([sys.executable, str(script), str(kubeconfig), str(root), str(tmp / "w")],
                                env=dict(os.environ, HF_TOKEN="x"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [p for p in cluster.items(PODS)
                                                   if p["metadata"]["name"].startswith("tiny-agg-")]:
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(60)
        took = time.monotonic() - sent
        states = [(n["status"] or {}).get("phase", "?") for n in cluster.items(NAMESPACES)
                  if (n["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "recipe-harness"]
        return took, ", ".join(states) or "deleted"
    finally:
        cluster.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--finalizer-delay", type=float, default=5.0)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), t._Frontend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        results = [one(sig, args.finalizer_delay, server) for _ in range(args.runs)]
        times = [r[0] for r in results]
        print(f"{sig.name}: exit after median {statistics.median(times):.2f}s max {max(times):.2f}s "
              f"(SIGKILL comes at ~10 s: {max(times) / 10:.2f}x); namespace then: {sorted({r[1] for r in results})}")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
