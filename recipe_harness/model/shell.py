"""Read the shell scripts of Kubernetes manifests without running them.

A Job usually runs ``/bin/sh -c <script>``: install a tool, wait for the model, then call
``aiperf profile ...`` or ``hf download ...`` -- directly, from a shell function, in a ``for`` loop,
or inside a ``tmux send-keys "..."`` string. :func:`find_invocations` walks such a script
symbolically and returns every call of the programs asked for, with its arguments expanded as far
as the script's own assignments and the container's environment allow, and the script position of
each argument's word. :func:`scripts` finds what the containers of manifests run (``sh -c``
scripts, scripts mounted from ConfigMaps, plain command + args) and :meth:`Script.invocations`
places the calls at file positions.

Nothing is ever executed: command substitutions (``$(date +%s)``, backticks) stay unresolved,
arithmetic (``$((10*concurrency))``) is evaluated on integers only, ``while`` bodies are read
once, every ``if`` branch is read, and the walk has a step budget and a depth limit.
"""

from __future__ import annotations

import ast
import fnmatch
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import PurePosixPath

from recipe_harness.load.manifests import Document, PathT
from recipe_harness.model.backends import _file_lines

MAX_STEPS = 20_000
MAX_DEPTH = 32
MAX_LOOP_ITEMS = 256
MAX_SCRIPT_CHARS = 256 * 1024

UNRESOLVED_OPEN, UNRESOLVED_CLOSE = "\u27e8", "\u27e9"   # ⟨ ⟩ mark text that could not be resolved


class ShellSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Word:
    raw: str          # as written, quotes included
    line: int         # 1-based line and column of its first character in the script
    col: int = 1


@dataclass(frozen=True)
class Op:
    text: str         # ; \n && || | & ( ) or a redirection operator
    line: int


Token = Word | Op

_REDIRS = ("<<<", "<<-", "<<", ">>", ">&", "<&", "&>", ">|", "<>", ">", "<")


def _skip_balanced(s: str, i: int, open_: str, close: str) -> int:
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
            i = _skip_dquote(s, i + 1)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_dquote(s: str, i: int) -> int:
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
            i = _skip_balanced(s, i + 2, s[i + 1], ")" if s[i + 1] == "(" else "}")
            continue
        if c == "`":
            j = s.find("`", i + 1)
            i = n if j < 0 else j + 1
            continue
        i += 1
    raise ShellSyntaxError("unterminated double quote", s.count("\n", 0, n) + 1)


def tokenize(script: str) -> list[Token]:
    """Words and operators; comments, line continuations and here-document bodies are dropped."""
    if len(script) > MAX_SCRIPT_CHARS:
        raise ShellSyntaxError(f"script longer than {MAX_SCRIPT_CHARS} characters", 1)
    s = script
    n = len(s)
    i = 0
    line = 1
    tokens: list[Token] = []
    pending_heredocs: list[tuple[str, bool]] = []
    word_start: int | None = None
    word_line = 1

    def end_word(j: int) -> None:
        nonlocal word_start
        if word_start is not None:
            tokens.append(Word(s[word_start:j], word_line, word_start - s.rfind("\n", 0, word_start)))
            word_start = None

    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] == "\n":
            # line continuation: joins words only when inside one
            if word_start is not None:
                end_word(i)
            i += 2
            line += 1
            continue
        if c in " \t\r":
            end_word(i)
            i += 1
            continue
        if c == "\n":
            end_word(i)
            tokens.append(Op("\n", line))
            i += 1
            line += 1
            if pending_heredocs:
                i, line = _skip_heredocs(s, i, line, pending_heredocs)
                pending_heredocs = []
            continue
        if c == "#" and word_start is None:
            j = s.find("\n", i)
            i = n if j < 0 else j
            continue
        if word_start is None and c in ";&|()<>":
            op = None
            for cand in ("&&", "||", ";;", "|&", *_REDIRS, ";", "&", "|", "(", ")"):
                if s.startswith(cand, i):
                    op = cand
                    break
            assert op is not None
            tokens.append(Op(op, line))
            i += len(op)
            if op in ("<<", "<<-"):
                # the delimiter word follows; remember it to skip the body after this line
                k = i
                while k < n and s[k] in " \t":
                    k += 1
                m = re.match(r"""(['"]?)([A-Za-z0-9_.-]+)\1""", s[k:])
                if m:
                    pending_heredocs.append((m.group(2), op == "<<-"))
                    tokens.append(Word(m.group(0), line, k - s.rfind("\n", 0, k)))
                    i = k + m.end()
            continue
        if word_start is not None and c in ";&|()<>":
            # operators end a word, except redirections glued to a digit (2>&1) or $( ... )
            if c in "<>" and s[word_start:i].isdigit():
                word_start = None
                continue
            end_word(i)
            continue
        if word_start is None:
            word_start, word_line = i, line
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated single quote", line)
            line += s.count("\n", i, j)
            i = j + 1
            continue
        if c == '"':
            try:
                j = _skip_dquote(s, i + 1)
            except ShellSyntaxError:
                raise ShellSyntaxError("unterminated double quote", line) from None
            line += s.count("\n", i, j)
            i = j
            continue
        if c == "$" and i + 1 < n and s[i + 1] in "({":
            j = _skip_balanced(s, i + 2, s[i + 1], ")" if s[i + 1] == "(" else "}")
            line += s.count("\n", i, j)
            i = j
            continue
        if c == "`":
            j = s.find("`", i + 1)
            j = n if j < 0 else j + 1
            line += s.count("\n", i, j)
            i = j
            continue
        i += 1
    end_word(n)
    return tokens


def _skip_heredocs(s: str, i: int, line: int, docs: list[tuple[str, bool]]) -> tuple[int, int]:
    n = len(s)
    for delim, _strip_tabs in docs:
        while i < n:
            j = s.find("\n", i)
            text = s[i:] if j < 0 else s[i:j]
            i = n if j < 0 else j + 1
            line += 1
            if text.strip() == delim:
                break
    return i, line


# --------------------------------------------------------------------------- parsing


@dataclass
class Simple:
    words: list[Word]
    line: int


@dataclass
class Block:
    kind: str                         # "seq" | "for" | "loop" | "if" | "func" | "case"
    line: int
    body: list[Node] = field(default_factory=list)
    var: str = ""                     # for: loop variable; func: name
    items: list[Word] = field(default_factory=list)   # for: the words after `in`
    header: str = ""


Node = Simple | Block

_SEPARATORS = {";", "\n", "&&", "||", "|", "&", "|&"}


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def word_is(self, tok: Token | None, *texts: str) -> bool:
        return isinstance(tok, Word) and tok.raw in texts

    def skip_separators(self) -> None:
        while isinstance(self.peek(), Op) and self.peek().text in _SEPARATORS:  # type: ignore[union-attr]  # peek() again: the token isinstance checked
            self.i += 1

    def parse_list(self, terminators: tuple[str, ...]) -> list[Node]:
        nodes: list[Node] = []
        while True:
            self.skip_separators()
            tok = self.peek()
            if tok is None:
                if terminators:
                    raise ShellSyntaxError(f"missing {' or '.join(terminators)}", self.t[-1].line if self.t else 1)
                return nodes
            if self.word_is(tok, *terminators) or (isinstance(tok, Op) and tok.text in terminators):
                return nodes
            nodes.append(self.parse_command())

    def expect(self, *texts: str) -> Token:
        self.skip_separators()
        tok = self.peek()
        if tok is None or not (self.word_is(tok, *texts) or (isinstance(tok, Op) and tok.text in texts)):
            line = tok.line if tok is not None else (self.t[-1].line if self.t else 1)
            raise ShellSyntaxError(f"expected {' or '.join(texts)}", line)
        self.i += 1
        return tok

    def parse_command(self) -> Node:
        tok = self.peek()
        assert tok is not None
        if isinstance(tok, Word):
            if tok.raw == "for":
                return self.parse_for()
            if tok.raw in ("while", "until"):
                self.i += 1
                cond = self.parse_list(("do",))
                self.expect("do")
                body = self.parse_list(("done",))
                self.expect("done")
                return Block("loop", tok.line, cond + body)
            if tok.raw == "if":
                return self.parse_if()
            if tok.raw == "case":
                return self.parse_case()
            if tok.raw == "{":
                self.i += 1
                body = self.parse_list(("}",))
                self.expect("}")
                return Block("seq", tok.line, body)
            if tok.raw == "function":
                self.i += 1
                name = self.peek()
                if not isinstance(name, Word):
                    raise ShellSyntaxError("function name expected", tok.line)
                self.i += 1
                if isinstance(self.peek(), Op) and self.peek().text == "(":  # type: ignore[union-attr]  # peek() again: the token isinstance checked
                    self.i += 1
                    self.expect(")")
                return self.parse_func_body(name.raw, tok.line)
            nxt = self.t[self.i + 1] if self.i + 1 < len(self.t) else None
            nxt2 = self.t[self.i + 2] if self.i + 2 < len(self.t) else None
            if isinstance(nxt, Op) and nxt.text == "(" and isinstance(nxt2, Op) and nxt2.text == ")":
                self.i += 3
                return self.parse_func_body(tok.raw, tok.line)
        if isinstance(tok, Op) and tok.text == "(":
            self.i += 1
            body = self.parse_list((")",))
            self.expect(")")
            return Block("seq", tok.line, body)
        return self.parse_simple()

    def parse_func_body(self, name: str, line: int) -> Block:
        self.skip_separators()
        tok = self.peek()
        if self.word_is(tok, "{"):
            self.i += 1
            body = self.parse_list(("}",))
            self.expect("}")
        elif isinstance(tok, Op) and tok.text == "(":
            self.i += 1
            body = self.parse_list((")",))
            self.expect(")")
        else:
            raise ShellSyntaxError(f"function {name}: body expected", line)
        return Block("func", line, body, var=name)

    def parse_for(self) -> Block:
        start = self.peek()
        assert start is not None
        self.i += 1
        var = self.peek()
        if isinstance(var, Op) and var.text == "(":
            # for (( ... )): arithmetic loop, read once without binding
            depth = 0
            while self.peek() is not None:
                tok = self.peek()
                self.i += 1
                if isinstance(tok, Op) and tok.text == "(":
                    depth += 1
                elif isinstance(tok, Op) and tok.text == ")":
                    depth -= 1
                    if depth <= 0 and isinstance(self.peek(), Op) and self.peek().text == ")":  # type: ignore[union-attr]  # peek() again: the token isinstance checked
                        self.i += 1
                        break
            self.expect("do")
            body = self.parse_list(("done",))
            self.expect("done")
            return Block("loop", start.line, body, header="for (( ))")
        if not isinstance(var, Word):
            raise ShellSyntaxError("for: variable name expected", start.line)
        self.i += 1
        items: list[Word] = []
        tok = self.peek()
        if self.word_is(tok, "in"):
            self.i += 1
            while isinstance(self.peek(), Word) and not self.word_is(self.peek(), "do"):
                items.append(self.peek())  # type: ignore[arg-type]  # the Word the loop condition checked
                self.i += 1
        else:
            items = [Word('"$@"', start.line)]
        self.expect("do")
        body = self.parse_list(("done",))
        self.expect("done")
        header = f"for {var.raw} in {' '.join(w.raw for w in items)}"
        return Block("for", start.line, body, var=var.raw, items=items, header=header)

    def parse_if(self) -> Block:
        start = self.peek()
        assert start is not None
        self.i += 1
        body: list[Node] = []
        body += self.parse_list(("then",))
        self.expect("then")
        while True:
            body += self.parse_list(("elif", "else", "fi"))
            tok = self.expect("elif", "else", "fi")
            if isinstance(tok, Word) and tok.raw == "fi":
                break
            if isinstance(tok, Word) and tok.raw == "elif":
                body += self.parse_list(("then",))
                self.expect("then")
        return Block("if", start.line, body)

    def parse_case(self) -> Block:
        start = self.peek()
        assert start is not None
        depth = 0
        while self.peek() is not None:
            tok = self.peek()
            self.i += 1
            if self.word_is(tok, "case"):
                depth += 1
            elif self.word_is(tok, "esac"):
                depth -= 1
                if depth == 0:
                    return Block("case", start.line)
        raise ShellSyntaxError("case without esac", start.line)

    def parse_simple(self) -> Simple:
        words: list[Word] = []
        line = self.peek().line  # type: ignore[union-attr]  # called on a command's first token, never at the end
        while True:
            tok = self.peek()
            if tok is None:
                break
            if isinstance(tok, Op):
                if tok.text in _REDIRS:
                    self.i += 1
                    if isinstance(self.peek(), Word):
                        self.i += 1   # the redirection target
                    continue
                if tok.text in ("(", ")") and words:
                    break
                if tok.text in _SEPARATORS or tok.text in ("(", ")", ";;"):
                    break
            else:
                if not words and tok.raw in ("then", "do", "done", "fi", "else", "elif", "}", "esac"):
                    break
                words.append(tok)
            self.i += 1
        if not words:
            tok = self.peek()
            if isinstance(tok, Word):
                raise ShellSyntaxError(f"unexpected {tok.raw!r}", tok.line)
            if tok is not None:
                self.i += 1  # a stray operator: step over it
        return Simple(words, line)


def parse(script: str) -> list[Node]:
    return _Parser(tokenize(script)).parse_list(())


# --------------------------------------------------------------------------- expansion

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PLAIN = re.compile(r"[^'\"\\$`]+")       # runs of characters a word keeps as they are
_PLAIN_DQUOTED = re.compile(r"[^\\$`]*")  # the same inside double quotes
_ASSIGN = re.compile(rf"^({_NAME})(\+?=)(.*)$", re.S)


def unresolved(text: str) -> str:
    return f"{UNRESOLVED_OPEN}{text}{UNRESOLVED_CLOSE}"


def is_resolved(value: str) -> bool:
    return UNRESOLVED_OPEN not in value


class _Budget:
    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ShellSyntaxError("script too complex to read (step budget exhausted)", 0)


_ARITH_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}


def arithmetic(expr: str, lookup) -> int | None:
    """Evaluate a ``$(( ))`` expression on integers; ``None`` when it uses anything unknown."""
    text = re.sub(rf"\$\{{({_NAME})\}}|\$({_NAME})", lambda m: m.group(1) or m.group(2), expr)
    text = text.replace("/", "//").replace("////", "//")
    try:
        tree = ast.parse(text.strip() or "0", mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> int | None:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            value = lookup(node.id)
            if value is None or not is_resolved(value):
                return None
            value = value.strip() or "0"
            return int(value) if re.fullmatch(r"-?\d+", value) else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None:
                return None
            if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and b == 0:
                return None
            if abs(a) > 10**12 or abs(b) > 10**12:
                return None
            return _ARITH_OPS[type(node.op)](a, b)
        return None

    return ev(tree)


def _strip_pattern(value: str, pattern: str, op: str) -> str:
    """``${v#p}`` ``${v##p}`` ``${v%p}`` ``${v%%p}`` with glob patterns."""
    n = len(value)
    if op in ("#", "##"):
        rng = range(0, n + 1) if op == "#" else range(n, -1, -1)
        for k in rng:
            if fnmatch.fnmatchcase(value[:k], pattern):
                return value[k:]
    else:
        rng = range(n, -1, -1) if op == "%" else range(0, n + 1)
        for k in rng:
            if fnmatch.fnmatchcase(value[k:], pattern):
                return value[:k]
    return value


Programs = Mapping[str, "str | None"]
"""The calls to find: program name (a trailing ``*`` matches any ending: ``python*``) -> the subcommand
that must follow it (``aiperf`` -> ``profile``), or ``None``."""

AIPERF_PROFILE: Programs = {"aiperf": "profile"}
_NOT_SCRIPTS = {"echo", "printf", ":"}    # their string arguments are text, not scripts to read


class _Matcher:
    def __init__(self, programs: Programs) -> None:
        self.items = [(name.rstrip("*"), name.endswith("*"), sub) for name, sub in programs.items()]
        alternatives = [re.escape(name) + (r"\S*" if prefix else "") + (rf"\s+{re.escape(sub)}\b" if sub else r"\s")
                        for name, prefix, sub in self.items]
        self.mention = re.compile(rf"(^|[\s/;&|])(?:{'|'.join(alternatives)})")

    def match(self, fields: list[str]) -> tuple[int, int] | None:
        """(index of the program, index of its first argument) of the first call in ``fields``."""
        for idx, f in enumerate(fields):
            base = f.rsplit("/", 1)[-1]
            for name, prefix, sub in self.items:
                if base == name or (prefix and base.startswith(name)):
                    if sub is None:
                        return idx, idx + 1
                    if idx + 1 < len(fields) and fields[idx + 1] == sub:
                        return idx, idx + 2
        return None


@dataclass
class Invocation:
    """One call of a program (``aiperf profile`` by default) found in a script."""

    args: list[str]                  # the words after the program (and its subcommand), expanded
    line: int                        # 1-based line and column of the command's first word
    context: tuple[str, ...] = ()    # enclosing loops/functions, outermost first
    bindings: dict[str, str] = field(default_factory=dict)   # loop variables at this call
    col: int = 1
    program: str = ""                # the program as called (``aiperf``, ``/usr/local/bin/hf``)
    positions: list[tuple[int, int]] = field(default_factory=list)   # (line, col) of the word of each arg


@dataclass
class _Frame:
    positional: list[str]
    local: dict[str, str] = field(default_factory=dict)


class Walker:
    def __init__(self, env: dict[str, str], *, steps: int = MAX_STEPS, programs: Programs = AIPERF_PROFILE) -> None:
        self.vars: dict[str, str] = dict(env)
        self.functions: dict[str, Block] = {}
        self.frames: list[_Frame] = [_Frame([])]
        self.budget = _Budget(steps)
        self.programs = _Matcher(programs)
        self.found: list[Invocation] = []
        self.context: list[str] = []
        self.loop_vars: dict[str, str] = {}
        self.line_offset = 0      # where a script passed as a string starts in the outer script
        self.col_offset = 0

    def position(self, word: Word) -> tuple[int, int]:
        """(line, col) of ``word`` in the outermost script."""
        return word.line + self.line_offset, word.col + (self.col_offset if word.line == 1 else 0)

    # variables -------------------------------------------------------------
    def lookup(self, name: str) -> str | None:
        for frame in reversed(self.frames):
            if name in frame.local:
                return frame.local[name]
        return self.vars.get(name)

    def assign(self, name: str, value: str, *, local: bool = False) -> None:
        if local and len(self.frames) > 1:
            self.frames[-1].local[name] = value
            return
        for frame in reversed(self.frames[1:]):
            if name in frame.local:
                frame.local[name] = value
                return
        self.vars[name] = value

    # expansion -------------------------------------------------------------
    def expand(self, raw: str) -> list[str]:
        """Fields of one word after parameter, arithmetic and quote processing (no globbing)."""
        fields: list[str] = []
        current: list[str] = []
        has_field = False
        s = raw
        n = len(s)
        i = 0

        def split_into(text: str) -> None:
            nonlocal has_field
            parts = [text] if UNRESOLVED_OPEN in text else re.split(r"[ \t\n]+", text)
            for k, part in enumerate(parts):
                if k > 0:
                    if has_field or current:
                        fields.append("".join(current))
                    current.clear()
                    has_field = False
                if part:
                    current.append(part)
                    has_field = True

        while i < n:
            self.budget.spend()
            c = s[i]
            if c == "'":
                j = s.find("'", i + 1)
                j = n if j < 0 else j
                current.append(s[i + 1:j])
                has_field = True
                i = j + 1
            elif c == '"':
                j = _skip_dquote(s, i + 1)
                current.append(self._expand_dquoted(s[i + 1:j - 1]))
                has_field = True
                i = j
            elif c == "\\":
                if i + 1 < n:
                    current.append(s[i + 1])
                    has_field = True
                i += 2
            elif c == "$":
                value, i, array = self._dollar(s, i)
                if array:
                    continue
                split_into(value)
            elif c == "`":
                j = s.find("`", i + 1)
                j = n if j < 0 else j
                current.append(unresolved(s[i:j + 1]))
                has_field = True
                i = j + 1
            else:
                j = _PLAIN.match(s, i).end()    # type: ignore[union-attr]  # s[i] is none of the characters it stops at
                current.append(s[i:j])
                has_field = True
                i = j
        if has_field or current:
            fields.append("".join(current))
        return fields

    def expand_one(self, raw: str) -> str:
        return " ".join(self.expand(raw))

    def _expand_dquoted(self, s: str) -> str:
        out: list[str] = []
        i = 0
        n = len(s)
        while i < n:
            self.budget.spend()
            c = s[i]
            if c == "\\" and i + 1 < n and s[i + 1] in '$`"\\\n':
                out.append(s[i + 1] if s[i + 1] != "\n" else "")
                i += 2
            elif c == "$":
                value, i, _array = self._dollar(s, i)
                out.append(value)
            elif c == "`":
                j = s.find("`", i + 1)
                j = n if j < 0 else j
                out.append(unresolved(s[i:j + 1]))
                i = j + 1
            else:
                j = _PLAIN_DQUOTED.match(s, i + 1).end()    # type: ignore[union-attr]  # [^...]* matches everywhere
                out.append(s[i:j])
                i = j
        return "".join(out)

    def _dollar(self, s: str, i: int) -> tuple[str, int, bool]:
        """Expand the ``$...`` at ``s[i]``: (value, next index, is-an-array-expansion)."""
        n = len(s)
        if i + 1 >= n:
            return "$", i + 1, False
        c = s[i + 1]
        if s.startswith("$((", i):
            j = _skip_balanced(s, i + 2, "(", ")")
            inner = s[i + 3:j - 2] if s[j - 2:j] == "))" else s[i + 3:j - 1]
            value = arithmetic(inner, self._lookup_expanded)
            return (str(value) if value is not None else unresolved(s[i:j])), j, False
        if c == "(":
            j = _skip_balanced(s, i + 2, "(", ")")
            return unresolved(s[i:j]), j, False
        if c == "{":
            j = _skip_balanced(s, i + 2, "{", "}")
            text, array = self._brace(s[i + 2:j - 1], s[i:j])
            return text, j, array
        m = re.match(_NAME, s[i + 1:])
        if m:
            name = m.group(0)
            return self._var(name, "$" + name), i + 1 + m.end(), False
        if c.isdigit():
            return self._positional(int(c)), i + 2, False
        if c in "@*":
            return " ".join(self.frames[-1].positional), i + 2, False
        if c == "#":
            return str(len(self.frames[-1].positional)), i + 2, False
        if c in "?$!-":
            return unresolved("$" + c), i + 2, False
        return "$", i + 1, False

    def _lookup_expanded(self, name: str) -> str | None:
        if name.isdigit():
            return self._positional(int(name))
        return self.lookup(name)

    def _positional(self, k: int) -> str:
        if k == 0:
            return "sh"
        pos = self.frames[-1].positional
        return pos[k - 1] if k - 1 < len(pos) else unresolved(f"${k}")

    def _var(self, name: str, text: str) -> str:
        value = self.lookup(name)
        return unresolved(text) if value is None else value

    def _brace(self, inner: str, text: str) -> tuple[str, bool]:
        if re.fullmatch(rf"{_NAME}\[[@*]\]", inner):
            return "", True     # "${arr[@]}": arrays are not tracked; expands to no words
        if inner.startswith("#") and re.fullmatch(_NAME, inner[1:]):
            value = self.lookup(inner[1:])
            return (str(len(value)) if value is not None and is_resolved(value) else unresolved(text)), False
        m = re.match(rf"({_NAME}|\d+)(.*)$", inner, re.S)
        if not m:
            return unresolved(text), False
        name, rest = m.group(1), m.group(2)
        value = self._positional(int(name)) if name.isdigit() else self.lookup(name)
        if value is not None and name.isdigit() and not is_resolved(value):
            value = None
        if not rest:
            return (unresolved(text) if value is None else value), False
        op = re.match(r":?[-=?+]|##?|%%?", rest)
        if not op:
            return unresolved(text), False
        word = self._expand_dquoted(rest[op.end():])
        kind = op.group(0)
        if kind in (":-", "-", ":=", "="):
            if value is None or (kind.startswith(":") and value == ""):
                if kind in (":=", "=") and not name.isdigit():
                    self.assign(name, word)
                return word, False
            return value, False
        if kind in (":?", "?"):
            return (unresolved(text) if value is None else value), False
        if kind in (":+", "+"):
            return ("" if value is None or (kind == ":+" and value == "") else word), False
        if value is None:
            return unresolved(text), False
        return _strip_pattern(value, word, kind), False

    def context_functions(self) -> set[str]:
        """Functions being called right now (recursion is not followed)."""
        return {c[:-2] for c in self.context if c.endswith("()")}

    # walking ---------------------------------------------------------------
    def walk(self, nodes: list[Node], depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ShellSyntaxError("nesting too deep", nodes[0].line if nodes else 0)
        for node in nodes:
            self.budget.spend()
            if isinstance(node, Simple):
                self.simple(node, depth)
            elif node.kind == "func":
                self.functions[node.var] = node
            elif node.kind == "for":
                values: list[str] = []
                for w in node.items:
                    values.extend(self.expand(w.raw))
                if not values:
                    values = [unresolved(node.header)]
                previous = self.lookup(node.var)
                self.context.append(node.header)
                for value in values[:MAX_LOOP_ITEMS]:
                    self.assign(node.var, value)
                    saved = dict(self.loop_vars)
                    self.loop_vars[node.var] = value
                    self.walk(node.body, depth + 1)
                    self.loop_vars = saved
                self.context.pop()
                if previous is not None:
                    self.assign(node.var, previous)
            elif node.kind in ("loop", "if", "seq"):
                if node.header:
                    self.context.append(node.header)
                self.walk(node.body, depth + 1)
                if node.header:
                    self.context.pop()

    def simple(self, node: Simple, depth: int) -> None:
        words = node.words
        k = 0
        assignments: list[tuple[str, str]] = []
        while k < len(words):
            m = _ASSIGN.match(words[k].raw)
            if not m:
                break
            assignments.append((m.group(1), self.expand_one(m.group(3)) if m.group(3) else ""))
            k += 1
        if k == len(words):
            for name, value in assignments:
                self.assign(name, value)
            return
        fields: list[str] = []
        positions: list[tuple[int, int]] = []
        for w in words[k:]:
            expanded = self.expand(w.raw)
            fields.extend(expanded)
            positions.extend([self.position(w)] * len(expanded))
        if not fields:
            return
        cmd = fields[0]
        if cmd in ("export", "local", "declare", "typeset", "readonly"):
            for f in fields[1:]:
                m = _ASSIGN.match(f)
                if m:
                    self.assign(m.group(1), m.group(3), local=cmd in ("local", "declare", "typeset"))
            return
        if cmd in self.functions and cmd not in self.context_functions():
            fn = self.functions[cmd]
            self.frames.append(_Frame(fields[1:]))
            self.context.append(f"{cmd}()")
            try:
                self.walk(fn.body, depth + 1)
            finally:
                self.context.pop()
                self.frames.pop()
            return
        hit = self.programs.match(fields)
        if hit is not None:
            idx, start = hit
            line, col = self.position(words[k])
            self.found.append(Invocation(fields[start:], line, tuple(self.context), dict(self.loop_vars), col,
                                         fields[idx], positions[start:]))
            return
        if cmd in _NOT_SCRIPTS:
            return
        # a script passed as a string: bash -c "...", tmux send-keys "...", ssh host "..."
        for f, (line, col) in zip(fields[1:], positions[1:]):
            if self.programs.mention.search(f):
                self.nested(f, line, col, depth)

    def nested(self, script: str, line: int, col: int, depth: int) -> None:
        try:
            nodes = parse(script)
        except ShellSyntaxError:
            return
        saved = self.line_offset, self.col_offset
        self.line_offset, self.col_offset = line - 1, col
        try:
            self.walk(nodes, depth + 1)
        finally:
            self.line_offset, self.col_offset = saved


def find_invocations(script: str, env: dict[str, str] | None = None,
                     programs: Programs = AIPERF_PROFILE) -> list[Invocation]:
    """Every call of ``programs`` in ``script`` (raises :class:`ShellSyntaxError`)."""
    walker = Walker(env or {}, programs=programs)
    walker.walk(parse(script))
    return walker.found


def kubernetes_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of container command/args (``$$`` escapes)."""
    def repl(m: re.Match[str]) -> str:
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        name = m.group(1)
        return env[name] if name in env and is_resolved(env[name]) else m.group(0)

    return re.sub(rf"\$?\$\(({_NAME})\)", repl, text)


def iter_unresolved(value: str) -> Iterator[str]:
    yield from re.findall(f"{UNRESOLVED_OPEN}(.*?){UNRESOLVED_CLOSE}", value, re.S)


def as_written(value: str) -> str:
    """``value`` with its unresolved parts shown as the script writes them (``$X``, ``$(date)``)."""
    return value.replace(UNRESOLVED_OPEN, "").replace(UNRESOLVED_CLOSE, "")


# --------------------------------------------------------------------------- what the containers of manifests run

SHELLS = {"sh", "bash", "dash", "zsh", "ash", "ksh"}
_TEMPLATE_SPEC = ("spec", "template", "spec")
_POD_SPECS: dict[str, PathT] = {
    "Pod": ("spec",), "CronJob": ("spec", "jobTemplate", *_TEMPLATE_SPEC),
    **{kind: _TEMPLATE_SPEC for kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")},
}


def pod_spec_path(doc: Document) -> PathT | None:
    """Document path of the pod spec of a workload (Pod, Job, CronJob, Deployment ...), else ``None``."""
    return _POD_SPECS.get(doc.kind or "")


def container_env(container: dict) -> dict[str, str]:
    """A container's literal env, dependent ``$(VAR)`` values expanded as Kubernetes does (``valueFrom``
    entries are the cluster's to resolve: they stay unset here)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        value = item.get("value")
        if value is None and "valueFrom" in item:
            continue
        env[item["name"]] = "" if value is None else str(value)
    for name, value in list(env.items()):
        env[name] = kubernetes_expand(value, env)
    return env


@dataclass
class Container:
    doc: Document
    path: PathT            # document path of the container
    pod_spec: PathT        # document path of its pod spec

    @property
    def spec(self) -> dict:
        value = self.doc.get(*self.path)
        return value if isinstance(value, dict) else {}

    @property
    def volumes(self) -> dict[str, dict]:
        vols = self.doc.get(*self.pod_spec, "volumes") or []
        return {v["name"]: v for v in vols if isinstance(v, dict) and isinstance(v.get("name"), str)}

    @cached_property
    def env(self) -> dict[str, str]:
        return container_env(self.spec)


def containers(doc: Document, *, init: bool = False) -> list[Container]:
    """The containers of a workload document (its init containers first, with ``init``)."""
    spec = pod_spec_path(doc)
    if spec is None:
        return []
    return [Container(doc, spec + (key, i), spec)
            for key in (("initContainers", "containers") if init else ("containers",))
            for i, c in enumerate(doc.get(*spec, key) or []) if isinstance(c, dict)]


@dataclass
class Script:
    """What a container runs, located in its manifest: a ``sh -c`` script, a script mounted from a ConfigMap,
    or -- with ``argv`` -- its plain command and args, each word with its document path."""

    doc: Document                  # where the text is written (the workload, or the ConfigMap of a mounted script)
    path: PathT                    # document path of the text (of the first word, for ``argv``)
    env: dict[str, str]
    container: Container | None    # None: a ConfigMap script no container is known to run
    text: str = ""
    argv: list[tuple[str, PathT]] | None = None

    @cached_property
    def _origin(self) -> tuple[int, int, bool]:
        """(file line, file column) of the script's line 1, column 1, and whether it is a block scalar."""
        line, col = self.doc.pos(self.path)
        lines = _file_lines(self.doc.file)
        rest = lines[line - 1][col - 1:] if 0 < line <= len(lines) else ""
        if re.match(r"[|>][-+0-9]*\s*(#.*)?$", rest):
            body = next((t for t in lines[line:] if t.strip()), "")
            return line + 1, len(body) - len(body.lstrip()) + 1, True
        return line, col + (rest[:1] in ("'", '"')), False

    def at(self, line: int, col: int = 1) -> tuple[int, int]:
        """File (line, col) of a (line, col) of the script text."""
        first, first_col, block = self._origin
        return first + line - 1, first_col + col - 1 if block or line == 1 else col

    def invocations(self, programs: Programs = AIPERF_PROFILE) -> list[Invocation]:
        """The calls of ``programs`` it makes, at file positions (raises :class:`ShellSyntaxError`, whose line
        :meth:`at` places in the file)."""
        if self.argv is not None:
            words = [w for w, _ in self.argv]
            hit = _Matcher(programs).match(words)
            if hit is None:
                return []
            positions = [self.doc.pos(p) for _, p in self.argv]
            (line, col), (idx, start) = positions[0], hit
            return [Invocation(words[start:], line, col=col, program=words[idx], positions=positions[start:])]
        out = []
        for inv in find_invocations(self.text, self.env, programs):
            line, col = self.at(inv.line, inv.col)
            out.append(replace(inv, line=line, col=col, positions=[self.at(*p) for p in inv.positions]))
        return out


def scripts(documents: list[Document], *, unmounted: str | None = None) -> list[Script]:
    """What the containers of ``documents`` run (init containers first), and with ``unmounted`` the ConfigMap
    scripts of ``documents`` that mention it but that no container is known to run."""
    config_maps = {str(d.name): d for d in documents if d.kind == "ConfigMap" and isinstance(d.get("data"), dict)}
    out: list[Script] = []
    for doc in documents:
        for c in containers(doc, init=True):
            script = _container_script(c, config_maps)
            if script is not None:
                out.append(script)
    if unmounted:
        used = {(str(s.doc.name), s.path) for s in out}
        for name, doc in config_maps.items():
            for key, value in doc.get("data").items():
                if (name, ("data", key)) not in used and isinstance(value, str) and unmounted in value:
                    out.append(Script(doc, ("data", key), {}, None, value))
    return out


def _container_script(c: Container, config_maps: dict[str, Document]) -> Script | None:
    items = [(kubernetes_expand(str(v), c.env), c.path + (key, i))
             for key in ("command", "args") if isinstance(c.spec.get(key), list)
             for i, v in enumerate(c.spec[key])]
    if not items:
        return None
    argv = [w for w, _ in items]
    if PurePosixPath(argv[0]).name not in SHELLS:
        return Script(c.doc, items[0][1], c.env, c, argv=items)
    k = 1
    while k < len(argv) and argv[k][:1] in "-+" and "c" not in argv[k][1:] and argv[k] != "--":
        k += 2 if argv[k].endswith("o") else 1   # -o pipefail, -euo pipefail
    if k < len(argv) and argv[k].startswith("-") and "c" in argv[k][1:]:
        return Script(c.doc, items[k + 1][1], c.env, c, argv[k + 1]) if k + 1 < len(argv) else None
    if k < len(argv):
        # `bash /scripts/run.sh`: a script file, from a ConfigMap of the manifest if one is mounted there
        found = _mounted(argv[k], c, config_maps)
        if found is not None:
            return Script(found[0], ("data", found[1]), c.env, c, str(found[0].get("data", found[1])))
    return None


def _mounted(path: str, c: Container, config_maps: dict[str, Document]) -> tuple[Document, str] | None:
    """The ConfigMap document and key a container sees at ``path``, if one is mounted there."""
    for mount in c.spec.get("volumeMounts") or []:
        if not isinstance(mount, dict):
            continue
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        if not mount_path or not path.startswith(mount_path + "/"):
            continue
        cm = (c.volumes.get(mount.get("name", "")) or {}).get("configMap") or {}
        doc = config_maps.get(str(cm.get("name")))
        key = path[len(mount_path) + 1:]
        if doc is not None and key in doc.get("data"):
            return doc, key
    return None
