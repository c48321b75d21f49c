"""An emulated kubelet that runs a pod's real container command as a local process.

For the emulator's twin runs: a container whose command is ``python3 -m dynamo.frontend`` or
``python3 -m dynamo.mocker`` runs exactly those argv words with the Dynamo side environment's
interpreter, so a flag the mocker does not accept makes the container exit and the pod go into
``CrashLoopBackOff`` with the process's output as its log, as on a cluster. What a pod would get
from the cluster is emulated locally and nothing else is changed:

- the pod's network namespace: every container port (and a ``--http-port`` in the args, and the
  ports in ``DYN_HTTP_PORT`` / ``DYN_SYSTEM_PORT``) becomes a free loopback port, recorded in the
  emulator's ``pod_ports`` so port-forwards reach it;
- Kubernetes discovery (``DYN_DISCOVERY_BACKEND=kubernetes`` from the operator) becomes file
  discovery in one folder per namespace, with the TCP request plane and the ZMQ event plane;
  ``DYN_NAMESPACE`` / ``DYN_NAMESPACE_PREFIX`` stay as the operator set them, so the frontend
  sees only its own graph's workers;
- the model: ``--model-path <anything>`` is the tiny offline model folder.

Readiness follows the operator's probes (``/health`` on the ``http`` port for the frontend,
on the ``system`` port for workers: internal/dynamo/component_frontend.go,
component_worker.go). A container that exits is restarted after the kubelet's back-off (10 s,
doubling, capped at 300 s: kubernetes ``pkg/kubelet/kuberuntime`` ``backOffPeriod`` /
``MaxContainerBackOff``); meanwhile the pod shows ``CrashLoopBackOff`` with ``lastState``
``terminated`` and its previous log. At most ``max_processes`` run at once (the machine has two
cores), ``max_per_component`` of one component: further replicas run no process and stay
Running as stand-ins, said in their log.
Deleting a pod or its namespace, and :meth:`ProcessKubelet.close`, kill the process groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recipe_harness.deploy.procs import free_port

MARKER = "RECIPE_HARNESS_KUBELET"
RUNNABLE = (("-m", "dynamo.frontend"), ("-m", "dynamo.mocker"))
LOOPBACK = "127.0.0.1"
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
SYSTEM_PORT_LIMIT = 32768  # DYN_SYSTEM_PORT is read as an i16
_EMULATED_ENV = {
    "DYN_DISCOVERY_BACKEND": "file", "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq",
    "DYN_TCP_RPC_HOST": LOOPBACK, "DYN_TCP_RESPONSE_STREAM_HOST": LOOPBACK, "DYN_EVENT_PLANE_HOST": LOOPBACK,
    "DYN_SYSTEM_HOST": LOOPBACK, "DYN_HTTP_HOST": LOOPBACK, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def command_words(container: dict[str, Any]) -> list[str]:
    """The argv the container runs: its command and args, or, for ``sh -c "<one simple command>"``
    (upstream recipes often wrap the engine so), that command's words; a script with more than one
    command, a pipe or an expansion stays as written (and is not run)."""
    words = [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
    # a YAML block scalar (``|``) ends the script with a newline: still one command
    if len(words) == 3 and os.path.basename(words[0]) in ("sh", "bash") and words[1] == "-c" \
            and not any(ch in words[2].strip() for ch in ";&|$`<>\n"):
        return shlex.split(words[2])
    return words


def runnable(container: dict[str, Any]) -> bool:
    words = command_words(container)
    return len(words) >= 3 and os.path.basename(str(words[0])).startswith("python") \
        and tuple(words[1:3]) in RUNNABLE


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class Container:
    ns: str
    pod: str
    uid: str
    spec: dict[str, Any]
    log: Path
    ports: dict[int, int]                     # container port -> loopback port
    probe_port: int | None
    component: str | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None
    restarts: int = 0
    ready: bool = False
    restart_at: float | None = None
    deleted: bool = False


@dataclass
class ProcessKubelet:
    """Runs Dynamo containers of DGD pods as processes; see the module docstring."""

    python: Path
    model_dir: Path
    max_processes: int = 4
    max_per_component: int = 2
    backoff_start: float = BACKOFF_START
    probe_interval: float = 0.3
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rh-kubelet-")))
    containers: dict[tuple[str, str], Container] = field(default_factory=dict)
    started: list[tuple[str, str]] = field(default_factory=list)   # every (ns, pod) that got a process
    _emu: Any = None
    _task: asyncio.Task | None = None

    # -- pod lifecycle (called in the emulator's loop) -------------------------------------------

    def live(self) -> int:
        return sum(1 for c in self.containers.values() if c.popen is not None and c.popen.poll() is None)

    def admit(self, emu: Any, pod: dict[str, Any]) -> bool:
        """Take a pod whose main container is runnable; ``False``: not ours or over the cap."""
        main = (pod["spec"].get("containers") or [{}])[0]
        component = (pod["metadata"].get("labels") or {}).get("nvidia.com/dynamo-component")
        same = sum(1 for c in self.containers.values() if c.component == component and c.ns == pod["metadata"]["namespace"])
        if not runnable(main) or len(self.containers) >= self.max_processes or same >= self.max_per_component:
            return False
        self._emu = emu
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        ports: dict[int, int] = {}
        for port in main.get("ports") or []:
            ports[int(port["containerPort"])] = free_port(below=SYSTEM_PORT_LIMIT)
        args = list(main.get("args") or [])
        for i, word in enumerate(args[:-1]):
            if word == "--http-port" and str(args[i + 1]).isdigit():
                ports.setdefault(int(args[i + 1]), free_port(below=SYSTEM_PORT_LIMIT))
        env_in = {e["name"]: str(e.get("value", "")) for e in main.get("env") or [] if "valueFrom" not in e}
        for key in ("DYN_HTTP_PORT", "DYN_SYSTEM_PORT"):
            if env_in.get(key, "").isdigit():
                ports.setdefault(int(env_in[key]), free_port(below=SYSTEM_PORT_LIMIT))
        probe = next((p for p in main.get("ports") or [] if p.get("name") in ("http", "system")), None)
        log_dir = self.root / ns / name
        log_dir.mkdir(parents=True, exist_ok=True)
        c = Container(ns, name, pod["metadata"].get("uid", ""), main, log_dir / "main.log", ports,
                      ports.get(int(probe["containerPort"])) if probe else None, component)
        c.argv = self._argv(main, ports)
        c.env = self._env(c, env_in, pod)
        self.containers[(ns, name)] = c
        for cport, hport in ports.items():
            emu.pod_ports[(ns, name, cport)] = (LOOPBACK, hport)
        emu.log_files[(ns, name, "main", False)] = c.log
        self._spawn(c)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._monitor())
        return True

    def _argv(self, main: dict[str, Any], ports: dict[int, int]) -> list[str]:
        words = command_words(main)
        words[0] = str(self.python)
        for i in range(1, len(words) - 1):
            if words[i] == "--model-path":
                words[i + 1] = str(self.model_dir)
            elif words[i] == "--http-port" and words[i + 1].isdigit():
                words[i + 1] = str(ports[int(words[i + 1])])
        return words

    def _env(self, c: Container, env_in: dict[str, str], pod: dict[str, Any]) -> dict[str, str]:
        kv = self.root / c.ns / "_discovery"
        tmp = self.root / c.ns / c.pod / "tmp"
        kv.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL") if k in os.environ}
        env.update(env_in)
        env.update({"POD_NAME": c.pod, "POD_NAMESPACE": c.ns, "POD_UID": c.uid})
        env.update(_EMULATED_ENV)
        env.update({"DYN_FILE_KV": str(kv), "TMPDIR": str(tmp), MARKER: self.marker})
        for key in ("DYN_HTTP_PORT", "DYN_SYSTEM_PORT"):
            if env.get(key, "").isdigit():
                env[key] = str(c.ports[int(env[key])])
        return env

    def _spawn(self, c: Container) -> None:
        with open(c.log, "ab") as log:
            c.popen = subprocess.Popen(c.argv, env=c.env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_child_setup,
                                       cwd=str(c.log.parent))
        c.ready, c.restart_at = False, None
        self.started.append((c.ns, c.pod))
        self._status(c, {"running": {"startedAt": _now()}})

    def _status(self, c: Container, state: dict[str, Any], last: dict[str, Any] | None = None) -> None:
        from kube_emulator import PODS  # the emulator imports this module
        pod = self._emu.get(PODS, c.ns, c.pod)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        pod = {**pod, "status": dict(pod.get("status") or {})}
        cs = {"name": "main", "image": c.spec.get("image", ""), "ready": c.ready, "restartCount": c.restarts,
              "started": "running" in state, "state": state}
        if last:
            cs["lastState"] = last
        ready = "True" if c.ready else "False"
        pod["status"] = {"phase": "Running", "podIP": LOOPBACK, "startTime": pod["status"].get("startTime", _now()),
                         "conditions": [{"type": "PodScheduled", "status": "True"},
                                        {"type": "Initialized", "status": "True"},
                                        {"type": "ContainersReady", "status": ready},
                                        {"type": "Ready", "status": ready}],
                         "containerStatuses": [cs]}
        self._emu.put(PODS, pod, create=False)

    # -- monitoring -------------------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            for c in list(self.containers.values()):
                if c.deleted:
                    continue
                if c.popen is None:
                    if c.restart_at is not None and time.monotonic() >= c.restart_at:
                        self._spawn(c)
                    continue
                code = c.popen.poll()
                if code is not None:
                    self._crashed(c, code)
                elif not c.ready and c.probe_port and await _http_ok(c.probe_port, "/health"):
                    c.ready = True
                    self._status(c, {"running": {"startedAt": _now()}})

    def _crashed(self, c: Container, code: int) -> None:
        c.popen = None
        c.restarts += 1
        c.ready = False
        previous = c.log.with_name("main.previous.log")
        shutil.copyfile(c.log, previous)
        c.log.write_bytes(b"")
        self._emu.log_files[(c.ns, c.pod, "main", True)] = previous
        delay = min(self.backoff_start * 2 ** (c.restarts - 1), BACKOFF_MAX)
        c.restart_at = time.monotonic() + delay
        reason = "Completed" if code == 0 else ("OOMKilled" if code == -signal.SIGKILL else "Error")
        self._status(c, {"waiting": {"reason": "CrashLoopBackOff",
                                     "message": f"back-off {delay:g}s restarting failed container=main "
                                                f"pod={c.pod}_{c.ns}({c.uid})"}},
                     {"terminated": {"exitCode": code if code >= 0 else 128 - code, "reason": reason,
                                     "finishedAt": _now()}})

    # -- teardown ----------------------------------------------------------------------------------

    def stop_pod(self, ns: str, name: str) -> None:
        self._stop([(ns, name)])

    def stop_namespace(self, ns: str) -> None:
        self._stop([k for k in self.containers if k[0] == ns])
        shutil.rmtree(self.root / ns, ignore_errors=True)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._stop(list(self.containers))
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop(self, keys: list[tuple[str, str]]) -> None:
        popens = []
        for key in keys:
            c = self.containers.pop(key, None)
            if c is not None:
                c.deleted = True
                popens.append(c.popen)
        _kill(popens)


def _kill(popens: list[subprocess.Popen | None], grace: float = 3.0) -> None:
    """SIGTERM every process group, SIGKILL what is left after ``grace`` seconds; reap them all."""
    live = [p for p in popens if p is not None and p.poll() is None]
    for popen in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for popen in live:
        try:
            popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(5)


async def _http_ok(port: int, path: str, timeout: float = 1.0) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.split()[1:2] == [b"200"]
    except (OSError, TimeoutError, IndexError):
        return False
    finally:
        writer.close()
