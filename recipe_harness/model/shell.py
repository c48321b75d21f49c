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
arithmetic (``$((10*concurrency))``) is evaluated as bash does on 64-bit integers, ``while`` bodies
are read once, every ``if`` branch and ``case`` arm is read, and the walk has a step budget and a depth
limit. The script is parsed by :mod:`recipe_harness.model.cmdline` (tree-sitter-bash).
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from recipe_harness.load.manifests import Document, PathT
from recipe_harness.load.scalars import ScalarMap
from recipe_harness.model.cmdline import (  # noqa: F401 -- the parse the walker reads, re-exported
    SHELLS,
    Block,
    Node,
    ShellSyntaxError,
    Simple,
    Word,
    is_shell,
    parse,
    script_map,
    shell_call,
    skip_balanced,
    skip_dquote,
)

MAX_STEPS = 20_000
MAX_DEPTH = 32
MAX_LOOP_ITEMS = 256
INVOCATIONS_CACHE_SIZE = 1024     # distinct (script, env, programs) read once a process (find_invocations)

UNRESOLVED_OPEN, UNRESOLVED_CLOSE = "\u27e8", "\u27e9"   # ⟨ ⟩ mark text that could not be resolved


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


_INT64 = 1 << 64


def _wrap(v: int) -> int:
    """Bash arithmetic is on signed 64-bit integers: results wrap around."""
    v &= _INT64 - 1
    return v - _INT64 if v >= 1 << 63 else v


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_ARITH_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+#[0-9A-Za-z@_]+|\d+)|([A-Za-z_][A-Za-z0-9_]*)|"
                          r"(\*\*=|<<=|>>=|&&|\|\||==|!=|<=|>=|<<|>>|\*\*|\+\+|--|[-+*/%&^|]=|[-+*/%<>&^|!~?:,()=]))")
# binary operators by precedence, loosest first (bash(1), ARITHMETIC EVALUATION)
_BINARY: list[dict[str, Any]] = [
    {"||": lambda a, b: int(bool(a) or bool(b))},
    {"&&": lambda a, b: int(bool(a) and bool(b))},
    {"|": operator.or_},
    {"^": operator.xor},
    {"&": operator.and_},
    {"==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b)},
    {"<": lambda a, b: int(a < b), ">": lambda a, b: int(a > b), "<=": lambda a, b: int(a <= b),
     ">=": lambda a, b: int(a >= b)},
    {"<<": lambda a, b: a << (b & 63), ">>": lambda a, b: a >> (b & 63)},
    {"+": operator.add, "-": operator.sub},
    {"*": operator.mul, "/": _trunc_div, "%": lambda a, b: a - b * _trunc_div(a, b)},
]


class _Unknown(Exception):
    """The expression uses something not known here (a variable, an assignment, a division by zero)."""


class _Arith:
    """Bash's ``$(( ))`` on 64-bit integers: C-style truncating ``/`` and ``%``, ``**``, shifts, bitwise and
    logical operators, comparisons, ``?:`` and ``,``. Assignments (``=``, ``+=``, ``++``) are not
    evaluated (they would change the script's variables): such an expression is unknown."""

    def __init__(self, text: str, lookup) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _ARITH_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _Unknown(text[pos:])
            kind = "num" if m.group(1) else "name" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex or 0)))
            pos = m.end()
        self.i = 0
        self.lookup = lookup
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) and self.tokens[self.i][0] == "op" else None

    def take(self, op: str) -> None:
        if self.peek() != op:
            raise _Unknown(op)
        self.i += 1

    def run(self) -> int:
        if not self.tokens:
            return 0
        value = self.comma()
        if self.i != len(self.tokens):
            raise _Unknown("trailing")
        return value

    def comma(self) -> int:
        value = self.ternary()
        while self.peek() == ",":
            self.i += 1
            value = self.ternary()
        return value

    def ternary(self) -> int:
        cond = self.binary(0)
        if self.peek() in ("=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|=", "**="):
            raise _Unknown("assignment")
        if self.peek() != "?":
            return cond
        self.i += 1
        yes = self.comma()
        self.take(":")
        no = self.ternary()
        return yes if cond else no

    def binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self.power()
        ops = _BINARY[level]
        value = self.binary(level + 1)
        while (op := self.peek()) is not None and op in ops:
            self.i += 1
            right = self.binary(level + 1)
            if op in ("/", "%") and right == 0:
                raise _Unknown("division by 0")
            value = _wrap(ops[op](value, right))
        return value

    def power(self) -> int:
        base = self.unary()
        if self.peek() == "**":
            self.i += 1
            exp = self.power()   # right associative
            if exp < 0:
                raise _Unknown("negative exponent")
            return _wrap(pow(base, exp, _INT64))
        return base

    def unary(self) -> int:
        op = self.peek()
        if op in ("-", "+", "!", "~"):
            self.i += 1
            v = self.unary()
            return {"-": lambda: _wrap(-v), "+": lambda: v, "!": lambda: int(not v), "~": lambda: ~v}[op]()
        if op in ("++", "--"):
            raise _Unknown("assignment")
        return self.primary()

    def primary(self) -> int:
        if self.i >= len(self.tokens):
            raise _Unknown("end")
        kind, text = self.tokens[self.i]
        self.i += 1
        if kind == "op" and text == "(":
            value = self.comma()
            self.take(")")
            return value
        if kind == "num":
            return _wrap(_number(text))
        if kind == "name":
            if self.peek() in ("++", "--"):
                raise _Unknown("assignment")
            return self.variable(text)
        raise _Unknown(text)

    def variable(self, name: str) -> int:
        value = self.lookup(name)
        if value is None or not is_resolved(value):
            raise _Unknown(name)
        value = value.strip()
        if not value:
            return 0
        self.depth += 1
        if self.depth > 16:
            raise _Unknown("recursion")
        try:    # a variable's value is itself an expression
            return _Arith(value, self.lookup).run()
        finally:
            self.depth -= 1


def _number(text: str) -> int:
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)
    if "#" in text:
        base_text, digits = text.split("#", 1)
        base = int(base_text)
        if not 2 <= base <= 64:
            raise _Unknown(text)
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@_"
        value = 0
        for ch in digits:
            d = alphabet.index(ch.lower() if base <= 36 else ch)
            if d >= base:
                raise _Unknown(text)
            value = value * base + d
        return value
    if len(text) > 1 and text[0] == "0":
        try:
            return int(text, 8)
        except ValueError:
            raise _Unknown(text) from None
    return int(text)


def arithmetic(expr: str, lookup) -> int | None:
    """Evaluate a ``$(( ))`` expression as bash does; ``None`` when it uses anything unknown (an unset or
    unresolved variable, an assignment, a division by zero, a syntax bash would reject)."""
    text = re.sub(rf"\$\{{({_NAME})\}}|\$({_NAME})", lambda m: m.group(1) or m.group(2), expr)
    try:
        return _Arith(text, lookup).run()
    except (_Unknown, ValueError, RecursionError):
        return None


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
                j = skip_dquote(s, i + 1)
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
                plain = _PLAIN.match(s, i)      # the branches above took every special character
                j = plain.end() if plain else i + 1
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
                plain = _PLAIN_DQUOTED.match(s, i + 1)   # `*`: it always matches
                j = plain.end() if plain else i + 1
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
            j = skip_balanced(s, i + 2, "(", ")")
            inner = s[i + 3:j - 2] if s[j - 2:j] == "))" else s[i + 3:j - 1]
            value = arithmetic(inner, self._lookup_expanded)
            return (str(value) if value is not None else unresolved(s[i:j])), j, False
        if c == "(":
            j = skip_balanced(s, i + 2, "(", ")")
            return unresolved(s[i:j]), j, False
        if c == "{":
            j = skip_balanced(s, i + 2, "{", "}")
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
            empty = value is None or (kind.startswith(":") and value == "")
            if empty:
                if kind in (":=", "=") and not name.isdigit():
                    self.assign(name, word)
                return word, False
            return value or "", False  # not empty: a set value
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
            elif node.kind in ("loop", "if", "case", "seq"):
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
    """Every call of ``programs`` in ``script`` (raises :class:`ShellSyntaxError`). Read once per (text, env,
    programs): the perf profile and the rules read the same scripts, and recipes share their perf and
    download scripts; each call gets its own copies."""
    found = _find_invocations(script, tuple((env or {}).items()), tuple(programs.items()))
    return [replace(inv, args=list(inv.args), bindings=dict(inv.bindings), positions=list(inv.positions))
            for inv in found]


@functools.lru_cache(maxsize=INVOCATIONS_CACHE_SIZE)
def _find_invocations(script: str, env: tuple[tuple[str, str], ...],
                      programs: tuple[tuple[str, str | None], ...]) -> tuple[Invocation, ...]:
    walker = Walker(dict(env), programs=dict(programs))
    walker.walk(parse(script))
    return tuple(walker.found)


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
    def _where(self) -> ScalarMap:
        value = self.doc.get(*self.path)
        return script_map(self.doc, self.path, value if isinstance(value, str) else self.text)

    def at(self, line: int, col: int = 1) -> tuple[int, int]:
        """File (line, col) of a (line, col) of the script text."""
        return self._where.at_line_col(self.text, line, col)

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
    call = shell_call(argv)
    if call is None:
        return None if is_shell(argv[0]) else Script(c.doc, items[0][1], c.env, c, argv=items)
    if call.command_string:
        return Script(c.doc, items[call.index][1], c.env, c, argv[call.index])
    # `bash /scripts/run.sh`: a script file, from a ConfigMap of the manifest if one is mounted there
    found = _mounted(argv[call.index], c, config_maps)
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
        cm = (c.volumes.get(str(mount.get("name"))) or {}).get("configMap") or {}
        doc = config_maps.get(str(cm.get("name")))
        key = path[len(mount_path) + 1:]
        if doc is not None and key in doc.get("data"):
            return doc, key
    return None
