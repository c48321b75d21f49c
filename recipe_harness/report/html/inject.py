"""Write the summary block into the ``report.html`` pytest-html produced, right under its title.

pytest-html (4.x, ``pytest_html/resources/index.jinja2``) renders the title, a "Report generated"
line, then an environment table and the test list that its JavaScript fills in. The block goes
before the environment header, so it is the first screen and reads without JavaScript. The file
is replaced atomically; a second run of this step replaces the block it wrote before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

BEGIN = "<!-- recipe-harness summary -->"
END = "<!-- /recipe-harness summary -->"
_ANCHORS = ('<div id="environment-header">', "<h2>Environment</h2>")
_PREVIOUS = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)


class InjectError(Exception):
    """The file is not a report this step can write into (the message says why)."""


def insert(html: str, block: str) -> str:
    """``html`` with ``block`` under the title (before the environment header, else after ``<body>``)."""
    wrapped = f"{BEGIN}\n{block}\n{END}"
    html = _PREVIOUS.sub("", html)
    for anchor in _ANCHORS:
        at = html.find(anchor)
        if at >= 0:
            return html[:at] + wrapped + "\n" + html[at:]
    m = re.search(r"<body[^>]*>", html)
    if m is None:
        raise InjectError("no <body> element")
    return html[: m.end()] + "\n" + wrapped + html[m.end():]


def write_into(path: Path, block: str) -> None:
    """Insert ``block`` into the report at ``path`` in place."""
    try:
        html = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InjectError(f"cannot read {path}: {exc}") from None
    text = insert(html, block)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
