"""A real Dynamo frontend + mocker on loopback for the perf tests and bench (file discovery,
TCP request plane, the harness's tiny model). Every process runs in its own session and the whole
group is killed on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
AIPERF = ROOT / ".venv-aiperf" / "bin" / "aiperf"
MODEL_NAME = "tiny"


def available() -> str | None:
    """Why the stack cannot run here, or ``None``."""
    if not DYNAMO_PY.exists():
        return f"{DYNAMO_PY} missing (run `recipe-harness setup`)"
    if not AIPERF.exists():
        return f"{AIPERF} missing (run `recipe-harness setup`)"
    return None


def free_port() -> int:
    """A free port below the kernel's ephemeral range: no other program's bind to port 0 or outgoing
    connection takes it before the frontend binds it."""
    from recipe_harness.deploy.procs import free_port as pick

    return pick()


@dataclass
class Stack:
    base_url: str
    model: str
    model_dir: Path
    logs: Path


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            pass
        return


def _ready(url: str, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as resp:
            return model in resp.read().decode()
    except OSError:
        return False


@contextlib.contextmanager
def mocker_stack(*, timeout_s: float = 120.0, extra_mocker_args: tuple[str, ...] = ()) -> Iterator[Stack]:
    from recipe_harness.deploy.tinymodel import tiny_model_dir

    model_dir = tiny_model_dir()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="perf-stack-"))
    env = dict(os.environ, DYN_FILE_KV=str(work / "kv"), PYTHONUNBUFFERED="1")
    common = ["--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]
    procs: list[subprocess.Popen] = []
    try:
        for name, args in (
            ("frontend", ["-m", "dynamo.frontend", "--http-port", str(port), *common]),
            ("mocker", ["-m", "dynamo.mocker", "--model-path", str(model_dir), "--model-name", MODEL_NAME,
                        *common, *extra_mocker_args]),
        ):
            log = (work / f"{name}.log").open("wb")
            procs.append(subprocess.Popen([str(DYNAMO_PY), *args], stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while not _ready(url, MODEL_NAME):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in work.glob("*.log"))
                raise RuntimeError(f"frontend + mocker did not serve {MODEL_NAME!r} within {timeout_s:g} s\n{logs}")
            time.sleep(0.5)
        yield Stack(url, MODEL_NAME, model_dir, work)
    finally:
        for p in reversed(procs):
            _stop(p)
