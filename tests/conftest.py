"""Session-wide set-up of the harness's own tests.

pytester's in-process runs put ``sys.modules`` back as it was after each run, so a module first
imported inside one is imported again by the next. The CEL evaluator's native (PyO3) module
must be initialised once per process: import it here, before any in-process run.
"""

import recipe_harness.static.schema.cel  # noqa: F401

import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets its own temporary directory (``TMPDIR``, inherited by the
    Dynamo, aiperf and CLI processes it starts), so tests that check what a run leaves in the temp dir
    see their own worker's files only."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        base = Path(tempfile.gettempdir()) / f"rh-tests-{os.getpid()}-{worker}"
        base.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(base)
        tempfile.tempdir = None
