"""Findings as GitHub Actions workflow commands: ``::error file=F,line=L,col=C,title=RH300::message``.

Errors print as ``::error``, warnings as ``::warning``, notes as ``::notice`` (only when asked for).
Escaping follows the runner's rules (actions/toolkit ``packages/core/src/command.ts``): in the
message ``%``, CR and LF become ``%25``, ``%0D``, ``%0A``; in property values ``:`` and ``,`` are
escaped too. A finding about a whole file (line 0) gets no line or column.
"""

from __future__ import annotations

from collections.abc import Iterable

from recipe_harness.findings import Finding, Severity, display_path

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_command(f: Finding, *, hints: bool = True, relative_to: str | None = None) -> str:
    props = [f"file={escape_property(display_path(f.file, relative_to))}"]
    if f.line > 0:
        props.append(f"line={f.line}")
        if f.col > 0:
            props.append(f"col={f.col}")
    props.append(f"title={escape_property(f.rule)}")
    message = f"{f.rule} {f.message}"
    if hints and f.hint:
        message += f"\nhint: {f.hint}"
    return f"::{COMMAND[f.severity]} {','.join(props)}::{escape_data(message)}"


def github_commands(findings: Iterable[Finding], *, notes: bool = False, hints: bool = True,
                    relative_to: str | None = None) -> list[str]:
    return [github_command(f, hints=hints, relative_to=relative_to) for f in findings
            if notes or f.severity is not Severity.INFO]
