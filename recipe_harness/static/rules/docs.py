"""docs/rules.md, generated from the rule registry: ``python -m recipe_harness.static.rules.docs > docs/rules.md``."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from recipe_harness.static.rules import all_rules, static_checks

HEADER = """\
# Rules

Every finding of `recipe-harness check` and of the static suite carries one of these rule ids, printed as
`path:line:col: RULE-ID message`. Each static check is one test per recipe, `<recipe-id>::<check>`.

Errors fail their check. Warnings are reported and fail only with `--strict` (`--strict-rules` in pytest);
notes (info) never fail.
A recipe may skip a rule that does not apply to it in `.recipe-harness.yaml` in its folder (or a parent
folder up to the model folder), each entry with a reason:

```yaml
suppress:
  - rule: RH312
    reason: "single-node cluster: every pod runs on the node that holds the volume"
```

Loading (RH0xx) and schema (RH2xx) findings cannot be suppressed; unused, reasonless and unknown
suppressions are findings themselves (RH390-RH392).

This file is generated from the rule registry (`python -m recipe_harness.static.rules.docs > docs/rules.md`);
a test keeps it current.
"""


@dataclass(frozen=True)
class Row:
    id: str
    check: str
    severity: str
    doc: str
    hint: str


def rows() -> list[Row]:
    out = [Row(r.id, r.check, r.severity.value, r.doc, r.hint) for r in all_rules().values()]
    known = {r.id for r in out}
    # lazy: the schema package takes ~0.2 s to import, and the console script imports this module at start
    from recipe_harness.static.schema import RULES as SCHEMA_RULES  # documented by the schema stage

    notes = {"RH204", "RH207"}  # kinds without a schema, CEL rules: notes unless --strict-kinds
    out += [Row(rid, "schema", "info" if rid in notes else "error", str(doc), "")
            for rid, doc in SCHEMA_RULES.items() if rid not in known]
    return sorted(out, key=lambda r: r.id)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole of docs/rules.md."""
    all_rows = rows()
    order = {c: i for i, c in enumerate(static_checks())}
    checks = sorted({r.check for r in all_rows}, key=lambda c: (order.get(c, len(order)), c))
    parts = [HEADER]
    parts.append("| Check | Rules |\n|---|---|")
    for check in checks:
        ids = [r.id for r in all_rows if r.check == check]
        parts.append(f"| `{check}` | {ids[0]}-{ids[-1]} ({len(ids)}) |" if len(ids) > 1 else f"| `{check}` | {ids[0]} |")
    for check in checks:
        parts.append(f"\n## `{check}`\n")
        parts.append("| Rule | Severity | Requires | How to fix |\n|---|---|---|---|")
        for r in all_rows:
            if r.check == check:
                parts.append(f"| {r.id} | {r.severity} | {_cell(r.doc)} | {_cell(r.hint)} |")
    return "\n".join(parts) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
