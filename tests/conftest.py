"""Session-wide set-up of the harness's own tests.

pytester's in-process runs put ``sys.modules`` back as it was after each run, so a module first
imported inside one is imported again by the next. The CEL evaluator's native (PyO3) module
must be initialised once per process: import it here, before any in-process run.
"""

import recipe_harness.static.schema.cel  # noqa: F401
