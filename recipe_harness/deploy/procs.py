"""Process supervision for local deployments: start, wait ready, fail fast, always clean up.

Every process starts in its own session (so its whole process group can be signalled), writes
stdout and stderr to its own log file, carries the run's marker in its environment
(:data:`MARKER_ENV`) and dies with the harness if the harness is killed outright (Linux
parent-death signal). :meth:`Supervisor.stop` sends SIGTERM to every group, waits a grace period,
then SIGKILLs what is left; an ``atexit`` hook stops supervisors that are still running when the
interpreter exits, and :func:`sigterm_as_interrupt` turns SIGTERM into ``KeyboardInterrupt`` so
``finally`` blocks and pytest teardowns run on SIGTERM as they do on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from recipe_harness.endpoint import DeployError

MARKER_ENV = "RECIPE_HARNESS_RUN"
TAIL_LINES = 25
T = TypeVar("T")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PR_SET_PDEATHSIG = 1


class NotReady(Exception):
    """Raised by a readiness probe: the reason the deployment is not ready yet."""


@dataclass
class ProcSpec:
    name: str                       # e.g. "Frontend", "VllmDecodeWorker-1"
    argv: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)   # the complete environment
    role: str = ""
    service: str = ""


@dataclass
class Proc:
    spec: ProcSpec
    popen: subprocess.Popen
    started: float
    log_start: int = 0              # where this process's output begins in its (appended) log file

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        return self.popen.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        return log_tail(self.spec.log_file, lines)

    def output(self, limit: int = 256 * 1024) -> str:
        """What this process has written so far (its first ``limit`` bytes), without colour codes;
        earlier processes' output in the same log file is not part of it."""
        try:
            with open(self.spec.log_file, "rb") as f:
                f.seek(self.log_start)
                data = f.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return ""
        return _ANSI.sub("", data)


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, without terminal colour codes."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    text = _ANSI.sub("", data).rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else "(log is empty)"


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_LIVE: set[Supervisor] = set()
_LIVE_LOCK = threading.Lock()


class Supervisor:
    """Owns the processes of one deployment. Use as a context manager: leaving it stops them all."""

    def __init__(self, marker: str, *, grace: float = 5.0) -> None:
        self.marker = marker
        self.grace = grace
        self.procs: list[Proc] = []
        self._stopped = False

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, spec: ProcSpec) -> Proc:
        if self._stopped:
            raise DeployError("supervisor already stopped")
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(spec.env)
        env[MARKER_ENV] = self.marker
        with open(spec.log_file, "ab") as log:
            log_start = log.tell()
            log.write(f"$ {' '.join(spec.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                spec.argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_child_setup if os.name == "posix" else None,
            )
        proc = Proc(spec, popen, time.monotonic(), log_start)
        self.procs.append(proc)
        with _LIVE_LOCK:
            _LIVE.add(self)
        return proc

    def dead(self) -> Proc | None:
        """The first process that has exited, if any."""
        for proc in self.procs:
            if proc.returncode() is not None:
                return proc
        return None

    def check(self) -> None:
        """Raise :class:`DeployError` with the log tail of the first process that has exited."""
        proc = self.dead()
        if proc is not None:
            code = proc.returncode()
            raise DeployError(
                f"{proc.name} ({proc.spec.role or 'process'}, pid {proc.pid}) {_exit_reason(code or 0)} "
                f"after {time.monotonic() - proc.started:.1f}s; last lines of {proc.spec.log_file}:\n"
                f"{proc.tail()}"
            )

    def wait_until(self, probe: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
        """Call ``probe`` until it stops raising :class:`NotReady`; fail fast when a process exits.

        Raises :class:`DeployError` when a process exits (its log tail) or when ``timeout``
        seconds pass (the last reason and every process's log tail).
        """
        last = "not probed yet"
        try:
            for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                                    retry=retry_if_exception_type(NotReady), reraise=False):
                with attempt:
                    self.check()
                    try:
                        return probe()
                    except NotReady as exc:
                        last = str(exc)
                        raise
        except RetryError:
            self.check()
            tails = "\n".join(f"--- {p.name} ({p.spec.log_file}):\n{p.tail(10)}" for p in self.procs)
            raise DeployError(
                f"{what} not ready within {timeout:g}s (raise it with --deploy-timeout): {last}\n{tails}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after the grace period, reap all.

        Idempotent; if it is interrupted (a second Ctrl-C), the ``atexit`` hook runs it again."""
        if self._stopped:
            return
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            _signal_group(proc, signal.SIGKILL)  # stragglers, and children the leader left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        self._stopped = True
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _signal_group(proc: Proc, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the process leads its own session, so its pgid is its pid
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for sup in live:
        sup.stop()


def _raise_interrupt(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises ``KeyboardInterrupt`` (so cleanup runs) instead of killing
    the interpreter outright. Only in the main thread, and only if SIGTERM has no handler yet."""
    installed = False
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _raise_interrupt)
                installed = True
    try:
        yield
    finally:
        if installed:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


def processes_with_env(name: str, value: str | None = None, *, prefix: bool = False) -> list[int]:
    """Pids of live processes whose environment has ``name`` (set to ``value``, or to a value
    starting with ``value`` when ``prefix``; any value when ``value`` is None).

    Reads ``/proc/<pid>/environ``; processes of other users are not readable and are skipped.
    """
    needle = b"\0" + f"{name}=".encode()
    if value is not None:
        needle += value.encode() + (b"" if prefix else b"\0")
    out: list[int] = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                data = b"\0" + f.read()
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and needle in data:
            out.append(int(entry.name))
    return out


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (``bind`` to port 0, outgoing connections)."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port(host: str = "127.0.0.1", *, below: int | None = None) -> int:
    """A TCP port free right now on ``host``, picked at random under ``below`` and under the
    kernel's ephemeral range.

    Between this check and the moment the program it is for binds the port, another program may
    take it. Outside the ephemeral range, only another program that also picks ports itself can:
    the kernel never hands these ports out for ``bind`` to port 0 or for outgoing connections.
    Callers still handle a lost port (see :mod:`recipe_harness.deploy.local`). With no room
    under the ephemeral range, the kernel's own pick. (Dynamo reads ``DYN_SYSTEM_PORT`` as a
    signed 16-bit number, so system ports pass ``below=32768``.)
    """
    import random
    import socket

    def try_bind(port: int) -> int | None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return None
            return s.getsockname()[1]

    top = min(below or 65536, ephemeral_ports()[0])
    if top < 2048:  # the ephemeral range starts at the bottom: nothing is outside it
        if below is None:
            return try_bind(0) or 0
        top = below
    rng = random.SystemRandom()
    for _ in range(200):
        port = try_bind(rng.randrange(max(1024, top // 2), top))
        if port:
            return port
    raise OSError(f"no free TCP port below {top} on {host}")
