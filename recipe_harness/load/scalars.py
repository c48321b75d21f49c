"""Where each character of a YAML string scalar is written in its file.

A manifest position (:meth:`~recipe_harness.load.manifests.Document.pos`) is where a scalar starts; a
shell script in ``args`` or a ConfigMap is one scalar, and a word of it is reported at its own line and
column. :func:`scalar_map` reads the scalar's source again -- plain, single- or double-quoted, literal
``|`` or folded ``>`` -- and records the file position of every character of its value. The reading is
checked against the value PyYAML built; when they differ (a style this reader does not follow) every
character is placed at the scalar's start, as before.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

Pos = tuple[int, int]


@lru_cache(maxsize=256)
def file_lines(file: str) -> tuple[str, ...]:
    """The lines of ``file`` (empty when it cannot be read)."""
    try:
        return tuple(Path(file).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


@dataclass(frozen=True)
class ScalarMap:
    """File (line, col) of each character of a scalar's value, and one past its end."""

    start: Pos
    chars: tuple[Pos, ...] = ()
    exact: bool = False          # False: the source was not followed, every offset gives ``start``

    def at(self, offset: int) -> Pos:
        if not self.exact:
            return self.start
        return self.chars[max(0, min(offset, len(self.chars) - 1))]

    def at_line_col(self, text: str, line: int, col: int = 1) -> Pos:
        """File position of (line, col) of ``text`` (the value), both 1-based (a line past the end: the last)."""
        starts = _text_line_starts(text)
        return self.at(starts[min(max(line - 1, 0), len(starts) - 1)] + col - 1)


@lru_cache(maxsize=64)
def _text_line_starts(text: str) -> tuple[int, ...]:
    """:func:`line_starts` of a script, kept for the positions of its next words (each word's line was
    found by scanning the text from its start: quadratic in a script's length)."""
    return tuple(line_starts(text))


_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r",
            "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028",
            "P": "\u2029"}
_HEX = {"x": 2, "u": 4, "U": 8}
_BLOCK_HEADER = re.compile(r"([|>])([1-9]?)([-+]?)([1-9]?)\s*(#.*)?$")


@lru_cache(maxsize=1024)
def scalar_map(file: str, line: int, col: int, value: str) -> ScalarMap:
    """The positions of ``value``, a string scalar that starts at ``line``, ``col`` of ``file`` (read once a
    process, like the file's lines: the perf profile and the rules map the same scripts)."""
    start = (line, col)
    lines = file_lines(file)
    if not 0 < line <= len(lines):
        return ScalarMap(start)
    first = lines[line - 1][col - 1:]
    header = _BLOCK_HEADER.match(first)
    if header:
        got = _block(lines, line, header.group(1) == ">", int(header.group(2) or header.group(4) or 0))
    elif first.startswith('"'):
        got = _double(lines, line, col)
    elif first.startswith("'"):
        got = _single(lines, line, col)
    else:
        got = _plain(lines, line, col, value)
    if got is None:
        return ScalarMap(start)
    text, chars = got
    if header:   # chomping only changes the trailing line breaks
        if text.rstrip("\n") != value.rstrip("\n"):
            return ScalarMap(start)
        end = chars[len(text.rstrip("\n"))] if len(text.rstrip("\n")) < len(chars) else chars[-1]
        keep = len(value.rstrip("\n"))
        chars = chars[:keep] + [end] * (len(value) - keep + 1)
    elif text != value:
        return ScalarMap(start)
    else:
        chars = chars + [chars[-1] if chars else start]
    return ScalarMap(start, tuple(chars[:len(value) + 1]), True)


def _fold(out: list[str], pos: list[Pos], breaks: list[Pos]) -> None:
    """A line break in a flow scalar: one space, or a newline per empty line that follows it."""
    if len(breaks) == 1:
        out.append(" ")
        pos.append(breaks[0])
    else:
        for at in breaks[1:]:
            out.append("\n")
            pos.append(at)


def _line_break(lines: tuple[str, ...], ln: int, end_col: int, out: list[str], pos: list[Pos]
                ) -> tuple[int, str, int] | None:
    """A flow scalar continued after line ``ln`` (its break at ``end_col``): fold the break and the empty
    lines after it into ``out``; the next line's number, text and first non-blank index, or ``None`` at
    the end of the file."""
    breaks = [(ln, end_col)]
    ln += 1
    while ln <= len(lines) and not lines[ln - 1].strip():
        breaks.append((ln, 1))
        ln += 1
    if ln > len(lines):
        return None
    text = lines[ln - 1]
    _fold(out, pos, breaks)
    return ln, text, len(text) - len(text.lstrip(" \t"))


def _quoted(lines: tuple[str, ...], line: int, col: int, double: bool) -> tuple[str, list[Pos]] | None:
    out: list[str] = []
    pos: list[Pos] = []
    ln, i = line, col   # col is 1-based: the opening quote
    text = lines[ln - 1]
    while True:
        if i >= len(text):                              # a line break inside the scalar
            while out and out[-1] in " \t" and pos[-1][0] == ln:
                out.pop()
                pos.pop()
            nxt = _line_break(lines, ln, len(text) + 1, out, pos)
            if nxt is None:
                return None
            ln, text, i = nxt
            continue
        c = text[i]
        if double and c == "\\":
            if i + 1 >= len(text):                       # escaped line break: joins the lines
                ln += 1
                if ln > len(lines):
                    return None
                text = lines[ln - 1]
                i = len(text) - len(text.lstrip(" \t"))
                continue
            e = text[i + 1]
            if e in _HEX:
                digits = text[i + 2:i + 2 + _HEX[e]]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    return None
                pos.append((ln, i + 1))
                i += 2 + _HEX[e]
                continue
            if e not in _ESCAPES:
                return None
            out.append(_ESCAPES[e])
            pos.append((ln, i + 1))
            i += 2
            continue
        if c == ('"' if double else "'"):
            if not double and text[i + 1:i + 2] == "'":
                out.append("'")
                pos.append((ln, i + 1))
                i += 2
                continue
            return "".join(out), pos
        out.append(c)
        pos.append((ln, i + 1))
        i += 1


def _double(lines: tuple[str, ...], line: int, col: int) -> tuple[str, list[Pos]] | None:
    return _quoted(lines, line, col, True)


def _single(lines: tuple[str, ...], line: int, col: int) -> tuple[str, list[Pos]] | None:
    return _quoted(lines, line, col, False)


def _plain(lines: tuple[str, ...], line: int, col: int, value: str) -> tuple[str, list[Pos]] | None:
    """A plain scalar, read as far as ``value`` goes (where it ends depends on the context around it)."""
    out: list[str] = []
    pos: list[Pos] = []
    ln = line
    text = lines[ln - 1]
    i = col - 1
    k = 0
    while k < len(value):
        if i < len(text) and text[i] == value[k]:
            out.append(text[i])
            pos.append((ln, i + 1))
            i += 1
            k += 1
            continue
        if text[i:].strip() and not text[i:].lstrip().startswith("#"):
            return None
        nxt = _line_break(lines, ln, len(text.rstrip()) + 1, out, pos)   # continued on the next line(s)
        if nxt is None:
            return None
        ln, text, i = nxt
        k = len(out)
        if "".join(out) != value[:k]:
            return None
    return "".join(out), pos


def _block(lines: tuple[str, ...], line: int, folded: bool, explicit: int) -> tuple[str, list[Pos]] | None:
    body = lines[line:]
    if explicit:
        parent = len(lines[line - 1]) - len(lines[line - 1].lstrip(" "))
        indent = parent + explicit
    else:
        first = next((t for t in body if t.strip()), None)
        if first is None:
            return "", []
        indent = len(first) - len(first.lstrip(" "))
        if indent == 0:
            return None
    content: list[tuple[int, str]] = []               # (file line, text after the indentation)
    for k, t in enumerate(body):
        if t.strip() and len(t) - len(t.lstrip(" ")) < indent:
            break
        content.append((line + 1 + k, t[indent:] if len(t) > indent else ""))
    out: list[str] = []
    pos: list[Pos] = []
    prev_kind = ""                                    # "", "text", "more" (more indented) -- for folding
    pending: list[Pos] = []                           # line breaks not yet written (folded scalars)
    for ln, t in content:
        if not folded:
            out.extend(t)
            pos.extend((ln, indent + j + 1) for j in range(len(t)))
            out.append("\n")
            pos.append((ln, indent + len(t) + 1))
            continue
        if not t:
            pending.append((ln, 1))
            continue
        kind = "more" if t[0] in " \t" else "text"
        if prev_kind:
            first_break, empties = pending[0], pending[1:]
            if prev_kind == "text" and kind == "text" and not empties:
                out.append(" ")
                pos.append(first_break)
            else:
                for at in (pending if (prev_kind == "more" or kind == "more") else empties):
                    out.append("\n")
                    pos.append(at)
        else:
            for at in pending:                         # leading empty lines
                out.append("\n")
                pos.append(at)
        pending = []
        out.extend(t)
        pos.extend((ln, indent + j + 1) for j in range(len(t)))
        pending.append((ln, indent + len(t) + 1))
        prev_kind = kind
    if folded:
        for at in pending:
            out.append("\n")
            pos.append(at)
    return "".join(out), pos


def line_starts(text: str) -> list[int]:
    """Offsets of the first character of each line of ``text``."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def line_col(starts: list[int], offset: int) -> Pos:
    """1-based (line, col) of ``offset`` given :func:`line_starts`."""
    k = bisect_right(starts, offset) - 1
    return k + 1, offset - starts[k] + 1
