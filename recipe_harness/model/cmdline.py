"""One reader of container command lines: the words of every command, and where each is written.

A container runs ``command`` + ``args``: a program and its words, or a shell (``sh``, ``bash``,
``/bin/sh`` ...) with any options (``-c``, ``-lc``, ``-euo pipefail -c``) and a script. Scripts are
parsed with tree-sitter-bash (nothing is run): every simple command is found, in pipelines, ``&&``
lists, ``if``/``elif``/``else``, ``for``/``while`` bodies, ``case`` arms, functions, subshells and
``{ }`` groups; redirections and here-document bodies are not words. Each word keeps its text as
written and its exact file position (line, col), through YAML list items and block scalars alike
(:mod:`recipe_harness.load.scalars`).

On top of the words: :func:`flag_value` / :func:`flag_hits` read ``--flag value`` and
``--flag=value`` (a negative number is a value, not a missing one), and :func:`unquote` removes
quotes the way the shell does, leaving expansions as written. The symbolic expander
(:mod:`recipe_harness.model.shell`) walks the same parse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

import tree_sitter
import tree_sitter_bash

from recipe_harness.load.manifests import Document, PathT
from recipe_harness.load.scalars import ScalarMap, line_col, line_starts, scalar_map

Source = tuple[str, int, int]

MAX_SCRIPT_CHARS = 256 * 1024

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh"})
"""Programs that run a script (compared by base name: ``/bin/sh``, ``/usr/bin/bash`` ...)."""


class ShellSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


# --------------------------------------------------------------------------- shell invocations


def is_shell(word: str) -> bool:
    return PurePosixPath(word).name in SHELLS


_LONG_WITH_ARG = {"--rcfile", "--init-file"}


@dataclass(frozen=True)
class ShellCall:
    """``shell [options] -c SCRIPT [$0 args...]`` (``command_string``) or ``shell [options] FILE [args...]``."""

    index: int              # of the script (or script file) in the argv
    command_string: bool


def shell_call(argv: Sequence[str]) -> ShellCall | None:
    """How ``argv`` runs a shell: the index of its ``-c`` script or script file; ``None`` when it runs no
    shell script (not a shell, or a shell reading stdin). Options may come in any cluster: ``-c``,
    ``-lc``, ``-ec``, ``-euo pipefail -c``, ``-o pipefail -c``, ``+x -c``, ``--login -c``."""
    if not argv or not is_shell(argv[0]):
        return None
    k = 1
    command_string = False
    while k < len(argv):
        w = argv[k]
        if w == "--":
            k += 1
            break
        if w.startswith("--") and len(w) > 2:
            k += 2 if w in _LONG_WITH_ARG else 1
            continue
        if len(w) < 2 or w[0] not in "-+":
            break
        letters = w[1:]
        if w[0] == "-" and "c" in letters:
            command_string = True
        k += 1 + letters.count("o") + letters.count("O")   # -o NAME, -O SHOPT take the next word
    if k >= len(argv):
        return None
    return ShellCall(k, command_string)


# --------------------------------------------------------------------------- the parse


@dataclass(frozen=True)
class Word:
    raw: str          # as written, quotes included
    line: int         # 1-based line and column of its first character in the script
    col: int = 1
    offset: int = 0   # of its first character in the script


@dataclass
class Simple:
    """A simple command: its assignments, name and arguments (redirections left out)."""

    words: list[Word]
    line: int


@dataclass
class Block:
    kind: str                         # "seq" | "for" | "loop" | "if" | "case" | "func"
    line: int
    body: list[Node] = field(default_factory=list)
    var: str = ""                     # for: loop variable; func: name
    items: list[Word] = field(default_factory=list)   # for: the words after `in`
    header: str = ""


Node = Simple | Block


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


_REDIRECTS = {"file_redirect", "heredoc_redirect", "herestring_redirect"}
_SKIP = {"comment", "test_command", "heredoc_body"}


class _Reader:
    """Turns the tree-sitter tree of one script into :class:`Simple` / :class:`Block` nodes."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.data = script.encode("utf-8", errors="surrogatepass")
        self.ascii = len(self.data) == len(script)
        self.starts = line_starts(script)

    def offset(self, byte: int) -> int:
        return byte if self.ascii else len(self.data[:byte].decode("utf-8", errors="replace"))

    def word(self, node: tree_sitter.Node) -> Word:
        start, end = self.offset(node.start_byte), self.offset(node.end_byte)
        line, col = line_col(self.starts, start)
        return Word(self.script[start:end], line, col, start)

    def line(self, node: tree_sitter.Node) -> int:
        return line_col(self.starts, self.offset(node.start_byte))[0]

    def statements(self, node: tree_sitter.Node) -> list[Node]:
        out: list[Node] = []
        for child in node.named_children:
            out.extend(self.statement(child))
        return out

    def statement(self, n: tree_sitter.Node) -> list[Node]:
        t = n.type
        if t == "command":
            words = [self.word(c) for c in n.named_children if c.type not in _REDIRECTS and c.type != "comment"]
            return [Simple(words, self.line(n))] if words else []
        if t in ("variable_assignment", "variable_assignments", "declaration_command", "unset_command"):
            nodes = n.named_children if t == "variable_assignments" else [n] if t == "variable_assignment" \
                else n.children
            return [Simple([self.word(c) for c in nodes if c.type != "comment"], self.line(n))]
        if t == "redirected_statement":
            body = n.child_by_field_name("body")
            return self.statement(body) if body is not None else []
        if t in ("pipeline", "list", "negated_command", "program"):
            return self.statements(n)
        if t in ("subshell", "compound_statement"):
            return [Block("seq", self.line(n), self.statements(n))]
        if t == "if_statement":
            return [Block("if", self.line(n), self.statements(n))]
        if t in ("elif_clause", "else_clause", "do_group"):
            return self.statements(n)
        if t in ("while_statement", "until_statement"):
            return [Block("loop", self.line(n), self.statements(n))]
        if t == "c_style_for_statement":
            body = n.child_by_field_name("body")
            return [Block("loop", self.line(n), self.statements(body) if body else [], header="for (( ))")]
        if t in ("for_statement", "select_statement"):
            return [self.for_loop(n)]
        if t == "case_statement":
            arms: list[Simple | Block] = []
            for item in n.named_children:
                if item.type == "case_item":
                    for k, c in enumerate(item.children):
                        if c.is_named and item.field_name_for_child(k) != "value":
                            arms.extend(self.statement(c))
            return [Block("case", self.line(n), arms)]
        if t == "function_definition":
            name = n.child_by_field_name("name")
            body_node = n.child_by_field_name("body")
            statements = self.statements(body_node) if body_node is not None else []
            return [Block("func", self.line(n), statements, var=self.word(name).raw if name else "")]
        if t == "ERROR":   # read in a tolerant parse only (a strict one raised)
            return self.statements(n)
        return []   # comments, [ tests ], (( arithmetic )) and other forms that run no program

    def for_loop(self, n: tree_sitter.Node) -> Block:
        var = n.child_by_field_name("variable")
        name = self.word(var).raw if var is not None else ""
        items = [self.word(c) for c in n.children_by_field_name("value")]
        has_in = any(c.type == "in" for c in n.children)
        if not has_in:
            items = [Word('"$@"', self.line(n))]
        body_node = n.child_by_field_name("body")
        body = self.statements(body_node) if body_node is not None else []
        header = f"for {name} in {' '.join(w.raw for w in items)}"
        return Block("for", self.line(n), body, var=name, items=items, header=header)

    def error(self, n: tree_sitter.Node) -> str:
        text = self.word(n).raw.lstrip()
        if text.startswith('"') or '"' in text.split("\n", 1)[0] and text.count('"') % 2:
            return "unterminated double quote"
        if text.startswith("'") or text.count("'") % 2:
            return "unterminated single quote"
        return f"cannot parse {text.splitlines()[0][:40]!r}" if text else "syntax error"


def _first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The first node that does not parse, or that the parser had to invent (an unclosed ``done``, ``)``)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_missing or n.type == "ERROR":
            return n
        if n.has_error:
            stack.extend(reversed(n.children))
    return None


def parse(script: str, *, strict: bool = True) -> list[Node]:
    """The commands of ``script``. ``strict``: raise :class:`ShellSyntaxError` where it does not parse;
    otherwise read what parses and skip the rest."""
    if len(script) > MAX_SCRIPT_CHARS:
        raise ShellSyntaxError(f"script longer than {MAX_SCRIPT_CHARS} characters", 1)
    reader = _Reader(script)
    root = _parser().parse(reader.data).root_node
    if strict and root.has_error:
        bad = _first_error(root)
        if bad is not None and bad.is_missing:
            raise ShellSyntaxError(f"missing {bad.type!r}", reader.line(bad))
        if bad is not None:
            raise ShellSyntaxError(reader.error(bad), reader.line(bad))
    return reader.statements(root)


def simple_commands(nodes: list[Node]) -> list[Simple]:
    """Every simple command of ``nodes`` in the order written (function bodies and every branch included)."""
    out: list[Simple] = []
    for node in nodes:
        if isinstance(node, Simple):
            out.append(node)
        else:
            out.extend(simple_commands(node.body))
    return out


def script_words(script: str) -> list[Word]:
    """The words of every command of ``script`` in the order written, what does not parse left out."""
    try:
        nodes = parse(script, strict=False)
    except ShellSyntaxError:
        return []
    return [w for cmd in simple_commands(nodes) for w in cmd.words]


# --------------------------------------------------------------------------- quotes and skipping


def skip_balanced(s: str, i: int, open_: str, close: str) -> int:
    """Index just past the ``close`` matching an already-consumed ``open_`` at depth 1."""
    depth = 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and open_ == "(":
            j = s.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"':
            i = skip_dquote(s, i + 1)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def skip_dquote(s: str, i: int) -> int:
    """Index just past the closing double quote (``i`` is just after the opening one)."""
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "$" and i + 1 < n and s[i + 1] in "({":
            i = skip_balanced(s, i + 2, s[i + 1], ")" if s[i + 1] == "(" else "}")
            continue
        if c == "`":
            j = s.find("`", i + 1)
            i = n if j < 0 else j + 1
            continue
        i += 1
    raise ShellSyntaxError("unterminated double quote", s.count("\n", 0, n) + 1)


_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v",
           "\\": "\\", "'": "'", '"': '"', "?": "?"}


def _dollar_end(s: str, i: int) -> int:
    """End of the ``$...`` expansion at ``s[i]`` (copied as written by :func:`unquote`)."""
    if s.startswith("$(", i):
        return skip_balanced(s, i + 2, "(", ")")
    if s.startswith("${", i):
        return skip_balanced(s, i + 2, "{", "}")
    m = re.match(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])?", s[i:])
    return i + (m.end() if m else 1)


def unquote(raw: str) -> str:
    """``raw`` after the shell's quote removal, expansions (``$X``, ``$(cmd)``, backticks) kept as written."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            j = raw.find("'", i + 1)
            j = n if j < 0 else j
            out.append(raw[i + 1:j])
            i = j + 1
        elif c == "$" and raw.startswith("$'", i):
            i += 2
            while i < n and raw[i] != "'":
                if raw[i] == "\\" and i + 1 < n:
                    out.append(_ANSI_C.get(raw[i + 1], "\\" + raw[i + 1]))
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            i += 1
        elif c == '"':
            try:
                end = skip_dquote(raw, i + 1) - 1
            except ShellSyntaxError:
                end = n
            k = i + 1
            while k < end:
                if raw[k] == "\\" and k + 1 < end and raw[k + 1] in '$`"\\\n':
                    out.append("" if raw[k + 1] == "\n" else raw[k + 1])
                    k += 2
                elif raw[k] == "$":
                    j = min(_dollar_end(raw, k), end)
                    out.append(raw[k:j])
                    k = j
                else:
                    out.append(raw[k])
                    k += 1
            i = end + 1
        elif c == "\\":
            if i + 1 < n and raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
        elif c == "$":
            j = _dollar_end(raw, i)
            out.append(raw[i:j])
            i = j
        elif c == "`":
            j = raw.find("`", i + 1)
            j = n if j < 0 else j + 1
            out.append(raw[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------- flags

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_FLAG_EQ = re.compile(r"^(--?[A-Za-z0-9][\w.-]*)=(.*)$", re.S)


def is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text))


def is_option(word: str) -> bool:
    """``-x`` / ``--x``: an option, not a value (``-`` and negative numbers such as ``-1`` are values)."""
    return len(word) > 1 and word[0] == "-" and not is_number(word)


def split_option(word: str) -> tuple[str, str | None]:
    """``--x=v`` -> (``--x``, ``v``); any other word -> (word, ``None``)."""
    m = _FLAG_EQ.match(word)
    return (m.group(1), m.group(2)) if m else (word, None)


def flag_hits(words: Sequence[str], names: Sequence[str]) -> list[tuple[int, str]]:
    """Every ``--x v`` / ``--x=v`` of ``names``: (index of the option word, its value); a bare flag (followed
    by another option or by nothing) has the value ``""``."""
    wanted = set(names)
    out: list[tuple[int, str]] = []
    for i, word in enumerate(words):
        m = _FLAG_EQ.match(word)
        if m and m.group(1) in wanted:
            out.append((i, m.group(2)))
        elif word in wanted:
            nxt = words[i + 1] if i + 1 < len(words) else None
            out.append((i, nxt if nxt is not None and not is_option(nxt) else ""))
    return out


def flag_value(argv: Sequence[str], *names: str, default: str | None = None) -> str | None:
    """Last value of any of ``names`` in ``argv``; ``""`` if present without a value; ``default`` if absent."""
    hits = flag_hits(argv, names)
    return hits[-1][1] if hits else default


# --------------------------------------------------------------------------- container command lines


@dataclass(frozen=True)
class Arg:
    """One word a container's program receives, and where it is written."""

    text: str                # quotes removed, expansions as written
    src: Source              # (file, line, col) of its first character
    raw: str = ""            # as written in a shell script (quotes included); "" for a YAML list item
    in_script: bool = False  # from a ``sh -c`` script (shell syntax) rather than a list item


def split_script(script: str) -> list[str]:
    """Words of every command of a shell script, quotes removed (what does not parse is left out)."""
    return [unquote(w.raw) for w in script_words(script)]


def split_argv(command: list[Any], args: list[Any]) -> list[str]:
    """Command + args as words; a ``sh -c`` script is split (never run) into the words of its commands."""
    words = [str(w) for w in (command or [])] + [str(a) for a in (args or [])]
    call = shell_call(words)
    if call is None or not call.command_string:
        return words
    return split_script(words[call.index])


def script_map(doc: Document, path: PathT, value: str) -> ScalarMap:
    """Positions of the characters of the string at ``path`` of ``doc``."""
    return scalar_map(doc.file, *doc.pos(path), value)


def container_args(doc: Document, container: PathT) -> list[Arg]:
    """The words of a container's ``command`` + ``args``, each with its file position; a ``sh -c`` script
    gives the words of its commands (the shell and its options are not words of the program)."""
    items: list[tuple[str, PathT]] = []
    for key in ("command", "args"):
        value = doc.get(*container, key)
        if isinstance(value, list):
            items.extend((str(v), tuple(container) + (key, i)) for i, v in enumerate(value))
    call = shell_call([t for t, _ in items])
    if call is None or not call.command_string:
        return [Arg(t, (doc.file, *doc.pos(p))) for t, p in items]
    script, path = items[call.index]
    where = script_map(doc, path, script)
    return [Arg(unquote(w.raw), (doc.file, *where.at(w.offset)), w.raw, True) for w in script_words(script)]
