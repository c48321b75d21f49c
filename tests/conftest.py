"""Session-wide set-up of the harness's own tests.

pytester's in-process runs put ``sys.modules`` back as it was after each run, so a module first
imported inside one is imported again by the next. The CEL evaluator's native (PyO3) module
must be initialised once per process: import it here, before any in-process run.
"""

import os
import shutil
import tempfile
from pathlib import Path

import recipe_harness.static.schema.cel  # noqa: F401

_WORKER_TMP: list[Path] = []


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets its own temporary directory (``TMPDIR``, inherited by the
    Dynamo, aiperf and CLI processes it starts), so tests that check what a run leaves in the temp dir
    see their own worker's files only. Only xdist's workers (``config.workerinput``) do this: a pytest
    that a test starts inherits the variables but is not a worker. The path stays short: aiperf's ZMQ
    IPC sockets live under it (107 characters at most)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    base = Path(tempfile.gettempdir()) / f"rh-{workerinput['workerid']}-{os.getpid()}"
    base.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(base)
    tempfile.tempdir = None
    _WORKER_TMP.append(base)


def pytest_unconfigure(config) -> None:
    for base in _WORKER_TMP:
        shutil.rmtree(base, ignore_errors=True)
