"""The one currency of static checks: a :class:`Finding` at a file position."""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


@dataclass(frozen=True, order=True)
class Finding:
    """One problem found in a recipe.

    ``line`` and ``col`` are 1-based; 0 means "the whole file".
    """

    file: str
    line: int
    col: int
    rule: str
    message: str
    severity: Severity = Severity.ERROR
    hint: str = ""
    recipe: str = field(default="", compare=False)

    def format(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """``path:line:col: RULE-ID message`` -- the stable text form."""
        path = display_path(self.file, relative_to)
        text = f"{path}:{self.line}:{self.col}: {self.rule} {self.message}"
        if self.severity is Severity.WARNING:
            text += " [warning]"
        return text

    def to_dict(self) -> dict:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def display_path(file: str | os.PathLike[str], relative_to: str | os.PathLike[str] | None = None) -> str:
    """``file`` relative to ``relative_to`` (default: the working directory) when it lies below it."""
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    absolute = Path(file).absolute()
    try:
        return absolute.relative_to(base.absolute()).as_posix()
    except ValueError:
        return str(file)
