"""What the recipe's Jobs run: the ``hf download`` of the model-download Job and the ``aiperf profile``
runs of the perf Job, read from their command lines and shell scripts (never executed).

Scripts are read the way a shell would expand them, loosely: env values, ``NAME=value`` assignments,
``for X in a b c`` loops (X takes every value), shell functions called with positional arguments and
``$(( ))`` arithmetic. Each word keeps the file position it was written at.
"""

from __future__ import annotations

import ast
import operator
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..backends import Source, _Locator
from ..bundle import LoadedRecipe
from ..manifests import Document, PathT

_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/sh"}
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*|[0-9])(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]))")
_ARITH = re.compile(r"\$\(\((.*?)\)\)")
_SEPARATORS = {";", "&&", "||", "&", "|", ";;"}
_KEYWORDS = {"do", "then", "else", "{", "}", "done", "fi", "esac"}


@dataclass
class Word:
    text: str
    src: Source


@dataclass
class Command:
    """One executed command: each word with every value it can take (loop variables give several)."""

    words: list[list[str]]
    srcs: list[Source]

    @property
    def head(self) -> str:
        return self.words[0][0] if self.words and self.words[0] else ""

    def flag(self, *names: str) -> tuple[list[str], Source] | None:
        """Values of the last of ``names`` (``--x v``, ``--x=v``); ``[""]`` for a bare flag."""
        found = None
        for i, variants in enumerate(self.words):
            text = variants[0]
            for name in names:
                if text == name:
                    nxt = self.words[i + 1] if i + 1 < len(self.words) else None
                    if nxt is not None and not (nxt[0].startswith("-") and not _number(nxt[0])):
                        found = (nxt, self.srcs[i])
                    else:
                        found = ([""], self.srcs[i])
                elif text.startswith(name + "="):
                    found = ([v[len(name) + 1:] for v in variants], self.srcs[i])
        return found

    def all_flags(self, *names: str) -> list[tuple[list[str], Source]]:
        out = []
        for i, variants in enumerate(self.words):
            if variants[0] in names and i + 1 < len(self.words):
                out.append((self.words[i + 1], self.srcs[i]))
            else:
                for name in names:
                    if variants[0].startswith(name + "="):
                        out.append(([v[len(name) + 1:] for v in variants], self.srcs[i]))
        return out

    def positionals(self, start: int = 1) -> list[tuple[list[str], Source]]:
        return [(w, s) for w, s in zip(self.words[start:], self.srcs[start:]) if not w[0].startswith("-")]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- parsing


def _split_line(line: str) -> list[str]:
    line = _ARITH.sub(lambda m: "$((" + m.group(1).replace(" ", "") + "))", line)  # one word, as in the shell
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError:
        return line.split()


def _script_commands(script: str, doc: Document, path: PathT) -> list[list[Word]]:
    """Logical commands of a script, in text order, each word positioned in the file."""
    loc = _Locator(doc, path)
    text = re.sub(r"\\\n", " ", script)
    commands: list[list[Word]] = []
    heredoc: str | None = None
    for line in text.splitlines():
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
        current: list[Word] = []
        for token in _split_line(line):
            if token in _SEPARATORS:
                if current:
                    commands.append(current)
                current = []
                continue
            current.append(Word(token, loc.find(token.split("=", 1)[0] if token.startswith("-") else token)))
        if current:
            commands.append(current)
    return commands


def container_commands(doc: Document, container: PathT) -> list[list[Word]]:
    """The commands a container runs: its argv, or the commands of its ``sh -c`` script."""
    items: list[tuple[str, PathT]] = []
    for key in ("command", "args"):
        value = doc.get(*container, key)
        if isinstance(value, list):
            items.extend((str(v), tuple(container) + (key, i)) for i, v in enumerate(value))
    for i, (text, _) in enumerate(items):
        if text in _SHELLS and i + 1 < len(items) and items[i + 1][0].startswith("-") and "c" in items[i + 1][0]:
            out: list[list[Word]] = []
            for script, spath in items[i + 2:]:
                out.extend(_script_commands(script, doc, spath))
            return out
    if not items:
        return []
    return [[Word(t, (doc.file, *doc.pos(p))) for t, p in items]]


# --------------------------------------------------------------------------- interpretation


_OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                         ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv, ast.Mod: operator.mod}


def _arith(expr: str) -> int | None:
    try:
        tree = ast.parse(expr.replace("/", "//"), mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError("not arithmetic")

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError):
        return None


class Shell:
    """Expands and 'runs' commands: records them, never executes anything."""

    def __init__(self, env: dict[str, str]) -> None:
        self.vars: dict[str, list[str]] = {k: [v] for k, v in env.items()}
        self.funcs: dict[str, list[list[Word]]] = {}
        self.executed: list[Command] = []

    def expand(self, text: str, positional: list[list[str]]) -> list[str]:
        multi: tuple[str, list[str]] | None = None
        for m in _VAR.finditer(text):
            name = m.group(1) or m.group(3)
            values = self._lookup(name, positional)
            if values is not None and len(values) > 1:
                multi = (name, values)
                break
        variants = multi[1] if multi else [None]
        out = []
        for choice in variants:
            def sub(m: re.Match[str], choice: str | None = choice) -> str:
                name = m.group(1) or m.group(3)
                if multi and name == multi[0]:
                    return choice or ""
                values = self._lookup(name, positional)
                if values:
                    return values[0]
                if m.group(2) is not None:
                    return m.group(2)
                return m.group(0)

            word = _ARITH.sub(lambda a: self._arith(a, positional), text)
            out.append(_VAR.sub(sub, word))
        return out

    def _arith(self, match: re.Match[str], positional: list[list[str]]) -> str:
        def name(m: re.Match[str]) -> str:
            values = self._lookup(m.group(1) or m.group(2), positional)
            return values[0] if values else m.group(0)

        expr = re.sub(r"\$\{?([0-9])\}?|\$?\{?([A-Za-z_][A-Za-z0-9_]*)\}?", name, match.group(1))
        value = _arith(expr)
        return str(value) if value is not None else match.group(0)

    def _lookup(self, name: str, positional: list[list[str]]) -> list[str] | None:
        if name.isdigit():
            i = int(name)
            return positional[i - 1] if 0 < i <= len(positional) else None
        return self.vars.get(name)

    def run(self, commands: list[list[Word]], positional: list[list[str]] | None = None, depth: int = 0) -> None:
        positional = positional or []
        i = 0
        while i < len(commands):
            words = commands[i]
            i += 1
            while words and words[0].text in _KEYWORDS:
                words = words[1:]
            if not words:
                continue
            head = words[0].text
            # function definition: name() {  ...  }   (or: function name {)
            fname = None
            if head.endswith("()") and len(head) > 2:
                fname = head[:-2]
            elif len(words) > 1 and words[1].text == "()":
                fname = head
            elif head == "function" and len(words) > 1:
                fname = words[1].text.rstrip("()")
            if fname:
                body: list[list[Word]] = []
                level = 1
                rest = [w for w in words[1:] if w.text not in ("()", "{", fname)]
                if rest:
                    body.append(rest)
                while i < len(commands) and level:
                    cmd = commands[i]
                    i += 1
                    if cmd and cmd[0].text == "}":
                        level -= 1
                        if level == 0:
                            break
                    if any(w.text == "{" for w in cmd[-1:]):
                        level += 1
                    body.append(cmd)
                self.funcs[fname] = body
                continue
            if head == "for" and len(words) >= 3 and words[2].text == "in":
                values: list[str] = []
                for w in words[3:]:
                    if w.text == "do":
                        break
                    values.extend(self.expand(w.text, positional))
                self.vars[words[1].text] = values or [""]
                continue
            if head in ("export", "local", "readonly", "declare"):
                words = [w for w in words[1:] if not w.text.startswith("-")]
                if not words:
                    continue
                head = words[0].text
            if _ASSIGN.match(head):
                for w in words:
                    m = _ASSIGN.match(w.text)
                    if not m:
                        break
                    self.vars[m.group(1)] = self.expand(m.group(2), positional)
                continue
            if head in ("exec", "time", "nohup") and len(words) > 1:
                words = words[1:]
                head = words[0].text
            if head in self.funcs and depth < 5:
                args = [self.expand(w.text, positional) for w in words[1:]]
                self.run(self.funcs[head], args, depth + 1)
                continue
            self.executed.append(Command([self.expand(w.text, positional) for w in words], [w.src for w in words]))


def literal_env(doc: Document, container: PathT) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in doc.get(*container, "env") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item.get("value") is not None:
            out[item["name"]] = str(item["value"])
    return out


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

    def commands(self) -> list[Command]:
        shell = Shell(literal_env(self.doc, self.path))
        shell.run(container_commands(self.doc, self.path))
        return shell.executed


def pod_spec_path(doc: Document) -> PathT | None:
    kind = doc.kind
    if kind == "Pod":
        return ("spec",)
    if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return ("spec", "template", "spec")
    if kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template", "spec")
    return None


def containers(doc: Document, *, init: bool = False) -> list[Container]:
    spec = pod_spec_path(doc)
    if spec is None:
        return []
    out = []
    for key in ("initContainers", "containers") if init else ("containers",):
        for i, c in enumerate(doc.get(*spec, key) or []):
            if isinstance(c, dict):
                out.append(Container(doc, spec + (key, i), spec))
    return out


# --------------------------------------------------------------------------- aiperf


@dataclass
class Setting:
    values: list[str]
    src: Source

    @property
    def ints(self) -> list[int]:
        out = []
        for v in self.values:
            for part in v.split(","):
                try:
                    out.append(int(float(part.strip().strip("'\""))))
                except ValueError:
                    continue
        return out

    @property
    def text(self) -> str:
        return self.values[0] if self.values else ""


@dataclass
class AiperfRun:
    container: Container
    src: Source
    model: Setting | None = None
    tokenizer: Setting | None = None
    urls: list[Setting] = field(default_factory=list)
    isl: Setting | None = None
    osl: Setting | None = None
    concurrency: Setting | None = None
    input_file: Setting | None = None


def _setting(cmd: Command, *names: str) -> Setting | None:
    hit = cmd.flag(*names)
    return Setting(hit[0], hit[1]) if hit is not None and hit[0] != [""] else None


def aiperf_runs(recipe: LoadedRecipe) -> list[AiperfRun]:
    """Every ``aiperf profile`` the recipe's perf manifests run (cached per recipe)."""
    cache = recipe.__dict__.setdefault("_scripts_cache", {})
    if "aiperf" in cache:
        return cache["aiperf"]
    runs: list[AiperfRun] = []
    for doc in recipe.perf_documents:
        for c in containers(doc):
            for cmd in c.commands():
                heads = [w[0] for w in cmd.words[:4]]
                if not any(h == "aiperf" or h.endswith("/aiperf") for h in heads) or "profile" not in heads:
                    continue
                run = AiperfRun(c, cmd.srcs[0])
                run.model = _setting(cmd, "--model", "-m", "--model-names")
                run.tokenizer = _setting(cmd, "--tokenizer")
                run.urls = [Setting(v, s) for v, s in cmd.all_flags("--url", "-u")]
                run.isl = _setting(cmd, "--isl", "--synthetic-input-tokens-mean", "--prompt-input-tokens-mean")
                run.osl = _setting(cmd, "--osl", "--output-tokens-mean", "--prompt-output-tokens-mean")
                if run.osl is None:
                    for values, src in cmd.all_flags("--extra-inputs"):
                        for v in values:
                            if v.startswith(("max_tokens:", "max_completion_tokens:")):
                                run.osl = Setting([v.split(":", 1)[1]], src)
                run.concurrency = _setting(cmd, "--concurrency")
                run.input_file = _setting(cmd, "--input-file")
                runs.append(run)
    cache["aiperf"] = runs
    return runs


# --------------------------------------------------------------------------- model download


@dataclass
class Download:
    container: Container
    repo: str
    src: Source
    local_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cache_dir: str | None = None   # --cache-dir: the hub cache used instead of $HF_HOME/hub


_HF_CLI = {"hf", "huggingface-cli"}


def downloads(recipe: LoadedRecipe) -> list[Download]:
    """``hf download <repo>`` / ``huggingface-cli download`` / ``snapshot_download`` of the model-cache Jobs."""
    cache = recipe.__dict__.setdefault("_scripts_cache", {})
    if "downloads" in cache:
        return cache["downloads"]
    out: list[Download] = []
    for doc in recipe.model_cache_documents:
        if doc.kind != "Job":
            continue
        for c in containers(doc, init=True):
            env = literal_env(doc, c.path)
            for cmd in c.commands():
                heads = [w[0] for w in cmd.words]
                if heads and heads[0].rsplit("/", 1)[-1] in _HF_CLI and len(heads) > 1 and heads[1] == "download":
                    # flags that take a value are not positionals: drop words that follow them
                    valued = {"--local-dir", "--revision", "--cache-dir", "--include", "--exclude", "--repo-type",
                              "--token", "--max-workers"}
                    skip = {i + 1 for i, h in enumerate(heads) if h in valued}
                    repos = [(w, s) for i, (w, s) in enumerate(zip(cmd.words, cmd.srcs)) if i >= 2 and i not in skip
                             and not w[0].startswith("-")]
                    if not repos:
                        continue
                    local = cmd.flag("--local-dir")
                    cache_dir = cmd.flag("--cache-dir")
                    out.append(Download(c, repos[0][0][0], repos[0][1], local[0][0] if local else None, env,
                                        cache_dir[0][0] if cache_dir else None))
                elif heads and heads[0].startswith("python"):
                    text = " ".join(heads)
                    m = re.search(r"snapshot_download\(\s*(?:repo_id\s*=\s*)?['\"]([^'\"]+)['\"]", text)
                    if m:
                        ld = re.search(r"local_dir\s*=\s*['\"]([^'\"]+)['\"]", text)
                        out.append(Download(c, m.group(1), cmd.srcs[0], ld.group(1) if ld else None, env))
    cache["downloads"] = out
    return out
