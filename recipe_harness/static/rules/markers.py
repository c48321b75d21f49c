"""RH109: no fill-in marker is left. ``recipe-harness new`` writes ``FILL-IN(what to supply)`` for
every value the contributor must still give (the model, GPUs, hardware, measured limits); a recipe
is not done until none is left in its files: manifests, thresholds, kustomization, READMEs.

A marker is a plain YAML scalar (no quotes, no ``: `` or ``,`` inside), so replacing the whole
``FILL-IN(...)`` by a number gives a number and by a name gives a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from recipe_harness.findings import Finding
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import make, rule

MARKER_RE = re.compile(r"FILL-IN\(([^()\n]*)\)")


def marker(what: str) -> str:
    """The marker for a value still to supply; ``what`` says what (no parentheses, colons or commas)."""
    if re.search(r"[():,\n]", what):
        raise ValueError(f"marker text {what!r} must not hold parentheses, colons, commas or newlines")
    return f"FILL-IN({what})"


def markers_in(text: str) -> Iterator[tuple[int, int, str]]:
    """(line, column, what) of every marker in ``text``, 1-based."""
    for number, line in enumerate(text.splitlines(), start=1):
        for m in MARKER_RE.finditer(line):
            yield number, m.start() + 1, m.group(1).strip()


def _files(recipe: LoadedRecipe) -> list[Path]:
    r = recipe.recipe
    extra = [p for p in (r.thresholds_file, r.kustomization, r.suppressions_file) if p is not None]
    return list(dict.fromkeys([*r.files, *extra, *r.readmes]))


@rule("RH109", "structure", "No FILL-IN(...) marker of `recipe-harness new` is left in the recipe's files.",
      "replace each FILL-IN(...) with the value it asks for (a number replaces it whole, without quotes)")
def fill_in_markers(recipe: LoadedRecipe) -> Iterator[Finding]:
    for path in _files(recipe):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # unreadable files are reported by the yaml check
        for line, col, what in markers_in(text):
            yield make("RH109", str(path), line, col, f"fill-in marker left: {what or 'a value'}", recipe=recipe.id)
