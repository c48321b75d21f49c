"""What the recipe's Jobs run: the ``hf download`` of the model-download Job and the ``aiperf profile``
runs of the perf Job, read by :mod:`recipe_harness.model.shell` (never executed).

Each value keeps the file position of the word it was written in. A command that runs several times (in a
``for`` loop, or a function called more than once) is one run whose settings hold every value it takes.
Unresolved parts of a value read as written (``$MODEL``); a script the shell reader cannot read gives no
runs (the perf-config rules report it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recipe_harness.exercise.perf.profile import perf_documents
from recipe_harness.load.manifests import Document
from recipe_harness.model.backends import Source
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.cmdline import flag_hits, is_option
from recipe_harness.model.shell import (
    AIPERF_PROFILE,
    Container,
    Invocation,
    Programs,
    Script,
    ShellSyntaxError,
    as_written,
    scripts,
)


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
class _Call:
    """One invocation found in a script, its args as written and each arg's file position."""

    script: Script
    inv: Invocation
    args: list[str]

    @classmethod
    def of(cls, script: Script, inv: Invocation) -> _Call:
        return cls(script, inv, [as_written(a) for a in inv.args])

    @property
    def container(self) -> Container:
        assert self.script.container is not None, "scripts() gives container scripts only"
        return self.script.container

    @property
    def src(self) -> Source:
        return (self.script.doc.file, self.inv.line, self.inv.col)

    def src_of(self, i: int) -> Source:
        return (self.script.doc.file, *self.inv.positions[i])

    def flags(self, *names: str) -> list[tuple[str, Source]]:
        """Every ``--x v`` / ``--x=v`` of ``names``: value and position of the option (``""`` for a bare flag)."""
        return [(value, self.src_of(i)) for i, value in flag_hits(self.args, names)]

    def flag(self, *names: str) -> tuple[str, Source] | None:
        """The last of ``names``."""
        found = self.flags(*names)
        return found[-1] if found else None


def _calls(documents: list[Document], programs: Programs) -> list[_Call]:
    out: list[_Call] = []
    for script in scripts(documents):
        try:
            out += [_Call.of(script, inv) for inv in script.invocations(programs)]
        except ShellSyntaxError:
            continue
    return out


def _setting(hits: list[tuple[str, Source] | None]) -> Setting | None:
    """One setting from the values a command takes each time it runs (no value and bare flags dropped)."""
    found = [h for h in hits if h is not None and h[0] != ""]
    return Setting(list(dict.fromkeys(v for v, _ in found)), found[0][1]) if found else None


# --------------------------------------------------------------------------- aiperf


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


_ISL = ("--isl", "--synthetic-input-tokens-mean", "--prompt-input-tokens-mean")
_OSL = ("--osl", "--output-tokens-mean", "--prompt-output-tokens-mean")


def _osl(call: _Call) -> tuple[str, Source] | None:
    hit = call.flag(*_OSL)
    if hit is not None and hit[0] != "":
        return hit
    max_tokens = [(v.split(":", 1)[1], src) for v, src in call.flags("--extra-inputs")
                  if v.startswith(("max_tokens:", "max_completion_tokens:"))]
    return max_tokens[-1] if max_tokens else hit


def _aiperf_run(calls: list[_Call]) -> AiperfRun:
    """The run of one ``aiperf profile`` command, from every time it runs."""
    first = calls[0]
    run = AiperfRun(first.container, first.src)
    run.model = _setting([c.flag("--model", "-m", "--model-names") for c in calls])
    run.tokenizer = _setting([c.flag("--tokenizer") for c in calls])
    urls = [[hit for hit in c.flags("--url", "-u") if hit[0]] for c in calls]
    run.urls = [s for k in range(max(map(len, urls))) if (s := _setting([u[k] if k < len(u) else None for u in urls]))]
    run.isl = _setting([c.flag(*_ISL) for c in calls])
    run.osl = _setting([_osl(c) for c in calls])
    run.concurrency = _setting([c.flag("--concurrency") for c in calls])
    run.input_file = _setting([c.flag("--input-file") for c in calls])
    return run


def aiperf_runs(recipe: LoadedRecipe) -> list[AiperfRun]:
    """Every ``aiperf profile`` the recipe's perf manifests run (cached per recipe)."""
    cache = recipe.__dict__.setdefault("_scripts_cache", {})
    if "aiperf" not in cache:
        commands: dict[tuple[int, int, int], list[_Call]] = {}
        for call in _calls(perf_documents(recipe), AIPERF_PROFILE):
            commands.setdefault((id(call.script), call.inv.line, call.inv.col), []).append(call)
        cache["aiperf"] = [_aiperf_run(calls) for calls in commands.values()]
    return cache["aiperf"]


# --------------------------------------------------------------------------- model download


@dataclass
class Download:
    container: Container
    repo: str
    src: Source
    local_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cache_dir: str | None = None   # --cache-dir: the hub cache used instead of $HF_HOME/hub


_DOWNLOADERS: Programs = {"hf": "download", "huggingface-cli": "download", "python*": None}
_VALUED = {"--local-dir", "--revision", "--cache-dir", "--include", "--exclude", "--repo-type", "--token",
           "--max-workers"}


def _download(call: _Call) -> Download | None:
    c = call.container
    if call.inv.program.rsplit("/", 1)[-1].startswith("python"):
        text = " ".join(call.args)
        m = re.search(r"snapshot_download\(\s*(?:repo_id\s*=\s*)?['\"]([^'\"]+)['\"]", text)
        if not m:
            return None
        ld = re.search(r"local_dir\s*=\s*['\"]([^'\"]+)['\"]", text)
        return Download(c, m.group(1), call.src, ld.group(1) if ld else None, c.env)
    # flags that take a value are not positionals: drop the words that follow them
    skip = {i + 1 for i, a in enumerate(call.args) if a in _VALUED}
    repos = [i for i, a in enumerate(call.args) if i not in skip and not is_option(a)]
    if not repos:
        return None
    local, cache_dir = call.flag("--local-dir"), call.flag("--cache-dir")
    return Download(c, call.args[repos[0]], call.src_of(repos[0]), local[0] if local else None, c.env,
                    cache_dir[0] if cache_dir else None)


def downloads(recipe: LoadedRecipe) -> list[Download]:
    """``hf download <repo>`` / ``huggingface-cli download`` / ``snapshot_download`` of the model-cache Jobs."""
    cache = recipe.__dict__.setdefault("_scripts_cache", {})
    if "downloads" not in cache:
        jobs = [d for d in recipe.model_cache_documents if d.kind == "Job"]
        found = [d for d in map(_download, _calls(jobs, _DOWNLOADERS)) if d is not None]
        cache["downloads"] = [d for i, d in enumerate(found) if d not in found[:i]]
    return cache["downloads"]
