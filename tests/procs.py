"""Running the console script (or any command that starts a process tree) from a test.

``subprocess.run(..., timeout=T)`` kills only its own child when ``T`` runs out: the Dynamo
frontends, mockers, aiperf workers and pytest processes that the child started keep running, and
keep loading the machine for every test after it. :func:`run` puts the command in its own process
group and, on a timeout, ends the whole group the way a user's Ctrl-C would: SIGTERM first (the
harness then tears down what it deployed), SIGKILL for what is left after ``grace`` seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _alive_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting to be reaped do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:  # state, ppid, pgrp
            return True
    return False


def _wait_group_gone(pgid: int, bound: float) -> None:
    """Signals are delivered asynchronously: wait (at most ``bound`` s) until the group has exited."""
    end = time.monotonic() + bound
    while _alive_in_group(pgid) and time.monotonic() < end:
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def run(argv: Sequence[str | os.PathLike[str]], *, timeout: float, grace: float = 30.0,
        input: str | bytes | None = None, capture_output: bool = False, check: bool = False,
        **popen_kw: Any) -> subprocess.CompletedProcess:
    """Like :func:`subprocess.run`, in a new session. A timeout is a hang guard: when it runs out
    the whole process group is ended (SIGTERM, then SIGKILL after ``grace`` s) and
    :class:`subprocess.TimeoutExpired` is raised with the output so far."""
    if capture_output:
        popen_kw["stdout"] = popen_kw["stderr"] = subprocess.PIPE
    if input is not None:
        popen_kw["stdin"] = subprocess.PIPE
    proc = subprocess.Popen(list(argv), start_new_session=True, **popen_kw)
    pgid = proc.pid                          # start_new_session: the child leads its own group
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            out, err = proc.communicate()
        _signal_group(pgid, signal.SIGKILL)  # what the leader left behind when it exited
        _wait_group_gone(pgid, grace)
        raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
    except BaseException:                    # KeyboardInterrupt, or pytest-timeout's signal
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
        raise
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        completed.check_returncode()
    return completed
