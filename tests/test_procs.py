"""tests/procs.run: a test's timeout ends the whole process tree it started, SIGTERM first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.procs import run


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}           # exited; waiting for whoever reaps orphans


def test_a_finished_command_is_returned_like_subprocess_run():
    proc = run(["bash", "-c", "read x; echo out-$x; echo err >&2; exit 3"], input="7\n", timeout=30,
               capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out-7\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        run(["false"], timeout=30, check=True)


def test_a_timeout_ends_the_grandchildren_too(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired) as err:
        run(["bash", "-c", f"sleep 300 & echo $! > {pidfile}; echo started; wait"], timeout=1, grace=5,
            capture_output=True, text=True)
    assert err.value.output == "started\n"
    assert _gone(int(pidfile.read_text()))


def test_the_group_gets_sigterm_first_so_the_command_can_clean_up(tmp_path):
    done = tmp_path / "cleaned"
    with pytest.raises(subprocess.TimeoutExpired):
        run(["bash", "-c", f"trap 'echo yes > {done}; exit 0' TERM; sleep 300 & wait"], timeout=1, grace=30)
    assert done.read_text() == "yes\n"


def test_what_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run(["bash", "-c", f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"], timeout=1, grace=0.5)
    assert _gone(int(pidfile.read_text()))
