#!/usr/bin/env python3
"""Local target benchmarks on this machine (real Dynamo frontend + mocker processes).

    .venv/bin/python bench/local_bench.py [--recipes recipes] [--repeat 3] [--skip-suite]

Prints:
1. ready time per recipe: from deploy() to the endpoint serving every worker (goal <= 10 s), and
   teardown time (best of --repeat);
2. the whole static + smoke run over the collection (`recipe-harness test`, wall time including
   pytest start-up; goal <= 120 s);
3. time from a worker's death to the failure of the request in flight: with the watchdog the
   smoke checks use, side by side with the same request without it (goal <= 10 s);
4. processes left behind (goal 0): after a run, after a killed worker, after Ctrl-C (SIGINT) and
   SIGTERM of the pytest process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.deploy import DeployError  # noqa: E402
from recipe_harness.deploy.local import LocalTarget  # noqa: E402
from recipe_harness.deploy.procs import MARKER_ENV, processes_with_env  # noqa: E402
from recipe_harness.exercise import smoke  # noqa: E402
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402

TAG = "RH_BENCH_TAG"
FIXTURES = ROOT / "fixtures" / "local"


def ready_times(recipes_root: Path, repeat: int) -> list[tuple[str, float, float, int]]:
    target = LocalTarget()
    rows = []
    for recipe in discover(recipes_root).recipes:
        loaded = LoadedRecipe.load(recipe)
        best_ready, best_down, procs = float("inf"), float("inf"), 0
        for _ in range(repeat):
            start = time.perf_counter()
            with target.deploy(loaded) as ep:
                ready = time.perf_counter() - start
                procs = len(ep.components)
                down_start = time.perf_counter()
            best_ready = min(best_ready, ready)
            best_down = min(best_down, time.perf_counter() - down_start)
        rows.append((recipe.id, best_ready, best_down, procs))
    return rows


def suite_run(recipes_root: Path) -> tuple[float, int, str]:
    report = Path(tempfile.mkdtemp(prefix="rh-bench-report-"))
    exe = Path(sys.executable).with_name("recipe-harness")
    cmd = [str(exe), "test", "--recipes-root", str(recipes_root), "--report-dir", str(report)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    last = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line]
    shutil.rmtree(report, ignore_errors=True)
    return wall, proc.returncode, (last[-1].strip("= ") if last else proc.stdout[-300:])


def death_to_failure(repeat: int) -> tuple[dict[str, float | None], dict[str, float | None], int]:
    """Seconds from SIGKILL of a worker to the end of (a) the streaming requests in flight (the
    first to end) and (b) a chat request sent right after the kill, with the watchdog the smoke
    checks use (best of ``repeat``) and without it (one run). None: did not end within 30 s."""
    recipe = LoadedRecipe.load(next(r for r in discover(FIXTURES / "ok").recipes if r.id == "tiny/mocker/agg"))
    target = LocalTarget()

    def one(watchdog: bool) -> tuple[dict[str, float | None], int]:
        with target.deploy(recipe) as ep:
            dep = target.deployment(ep)
            marker = dep.supervisor.marker
            victim = next(p for p in dep.supervisor.procs if p.name == "MockerWorker-0")
            body = {"model": ep.model, "messages": [{"role": "user", "content": "go"}], "max_tokens": 1_000_000,
                    "stream": True}
            dog = (lambda: target.check(ep)) if watchdog else None
            ended: list[float] = []
            with smoke.SmokeClient(ep, watchdog=dog, timeout=30) as client:
                def stream() -> None:
                    try:
                        client.stream("/v1/chat/completions", body)  # ends with an error event or raises
                    except (DeployError, smoke.SmokeFailure):
                        pass
                    ended.append(time.perf_counter())

                threads = [threading.Thread(target=stream, daemon=True) for _ in range(2)]  # one per worker
                for t in threads:
                    t.start()
                time.sleep(0.5)
                killed = time.perf_counter()
                os.killpg(victim.pid, signal.SIGKILL)
                deadline = killed + 30
                while not ended and time.perf_counter() < deadline:
                    time.sleep(0.01)
                in_flight = (min(ended) - killed) if ended else None
                t0 = time.perf_counter()
                try:
                    smoke.check_chat(client)
                    after = None  # served by the surviving worker: the death goes unnoticed
                except (DeployError, smoke.SmokeFailure):
                    after = time.perf_counter() - t0
        return {"in-flight": in_flight, "next request": after}, len(processes_with_env(MARKER_ENV, marker))

    best: dict[str, float | None] = {}
    left = 0
    for _ in range(repeat):
        got, n = one(True)
        left = max(left, n)
        for k, v in got.items():
            if v is not None:
                best[k] = min(best.get(k) or v, v)
            else:
                best.setdefault(k, None)
    plain, n = one(False)
    return best, plain, max(left, n)


def leftovers_after_pytest(sig: signal.Signals | None) -> tuple[int, int]:
    """Processes and run folders left after a pytest run of the smoke suite (ended by ``sig`` if given)."""
    tag = uuid.uuid4().hex
    work = Path(tempfile.mkdtemp(prefix="rh-bench-"))
    (work / "tmp").mkdir()
    shutil.copytree(FIXTURES / "ok" / "tiny" / "mocker" / "agg", work / "recipes" / "tiny" / "mocker" / "agg")
    ready = work / "ready"
    (work / "test_hang.py").write_text(
        "import os, time\nfrom pathlib import Path\n\ndef test_hang(deployed):\n"
        "    Path(os.environ['RH_READY_FILE']).write_text('x')\n    time.sleep(300)\n")
    args = ["test_hang.py"] if sig else ["--pyargs", "recipe_harness.suites.test_smoke"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "--recipes-root",
         str(work / "recipes")], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, TAG: tag, "TMPDIR": str(work / "tmp"), "RH_READY_FILE": str(ready)})
    try:
        if sig:
            deadline = time.monotonic() + 60
            while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            proc.send_signal(sig)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = len(processes_with_env(TAG, tag))
    dirs = len(list((work / "tmp").glob("recipe-harness-*")))
    shutil.rmtree(work, ignore_errors=True)
    return left, dirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=str(ROOT / "recipes"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-suite", action="store_true")
    args = parser.parse_args()
    root = Path(args.recipes)
    print(f"local target bench on {os.cpu_count()} CPUs ({root})\n")

    print("1. ready time per recipe (goal <= 10 s), best of", args.repeat)
    rows = ready_times(root, args.repeat)
    for rid, ready, down, procs in rows:
        print(f"   {rid:45s} ready {ready:5.2f} s  teardown {down:4.2f} s  {procs} processes  "
              f"({ready / 10:.2f} of goal)")
    worst = max(r[1] for r in rows)
    print(f"   worst ready {worst:.2f} s: {'OK' if worst <= 10 else 'OVER GOAL'}\n")

    if not args.skip_suite:
        wall, code, line = suite_run(root)
        print(f"2. static + smoke over the collection (recipe-harness test): {wall:.1f} s, exit {code} "
              f"({wall / 120:.2f} of the 120 s goal) -- {line}\n")

    best, plain, left_kill = death_to_failure(args.repeat)

    def fmt(v: float | None, none: str) -> str:
        return f"{v:.2f} s" if v is not None else none

    print("3. worker death (SIGKILL) -> failure (goal <= 10 s)")
    for key in best:
        print(f"   {key:13s} with the watchdog {fmt(best[key], 'no failure'):>10s};  without it "
              f"{fmt(plain.get(key), 'no failure: served by the other worker / hangs')}")
    print()

    print("4. processes left behind (goal 0)")
    left, dirs = leftovers_after_pytest(None)
    print(f"   after a smoke run:          {left} processes, {dirs} run folders")
    print(f"   after a killed worker:      {left_kill} processes")
    for sig in (signal.SIGINT, signal.SIGTERM):
        left, dirs = leftovers_after_pytest(sig)
        print(f"   after {sig.name:7s} of pytest:   {left} processes, {dirs} run folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
