"""The top of ``report.html``: what a release manager or reviewer reads first.

- :mod:`.view`    the run as the report shows it, read from the summary data (``summary.json``)
- :mod:`.perf`    the perf table, generic over the fields of each limit row
- :mod:`.render`  the static HTML block (no JavaScript, images inline)
- :mod:`.inject`  writing the block into the file pytest-html produced

It reads results only; nothing upstream imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recipe_harness.report.html.inject import InjectError, insert, write_into
from recipe_harness.report.html.render import block
from recipe_harness.report.html.view import Image, RunView, SuppressionRow, anchor, build


def render(summary: dict[str, Any], *, html_dir: Path | None = None,
           images: dict[tuple[str, str], list[Image]] | None = None,
           suppressions: dict[str, list[SuppressionRow]] | None = None) -> str:
    """The HTML block of a run's summary (``Summary.to_dict()`` or a recorded ``summary.json``)."""
    return block(build(summary, html_dir=html_dir, images=images, suppressions=suppressions))


__all__ = ["Image", "InjectError", "RunView", "SuppressionRow", "anchor", "build", "insert", "render", "write_into"]
