"""The recipe's benchmark as a typed :class:`PerfProfile`, read from its perf manifest.

A perf manifest is a Job (or Pod, CronJob) whose container runs ``aiperf profile`` -- as its
command and args, or from a shell script (``sh -c``, possibly a ConfigMap-mounted script) that
loops over concurrencies. The script is read by :mod:`recipe_harness.model.shell`, never run. Invocations whose
artifact dir says ``warmup`` (or, next to invocations that keep artifacts, keep none) are the
recipe's warm-up; the others form the sweep, one :class:`PerfPoint` per concurrency.

Options that describe the workload are kept (typed, or passed through when known to be safe);
options that describe the environment (URL, tokenizer path, artifact dir, UI, worker counts)
are replaced by the harness; anything else is listed in :attr:`PerfProfile.ignored`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from recipe_harness.load.manifests import Document
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.cmdline import is_option, split_option
from recipe_harness.model.shell import Invocation, ShellSyntaxError, is_resolved, iter_unresolved, scripts

MIN_REQUESTS = 4
"""A scaled point still sends at least this many requests (or the recipe's count, if smaller)."""


class PerfProfileError(Exception):
    """The perf manifest has no aiperf invocation the harness can reproduce."""

    def __init__(self, message: str, file: str = "", line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: " if self.file else ""


# option -> (field, kind); kind: flag | value | multi
_TYPED: dict[str, tuple[str, str]] = {}


def _opt(field_name: str, kind: str, *names: str) -> None:
    for n in names:
        _TYPED[n] = (field_name, kind)


_opt("model", "value", "--model", "--model-names", "-m")
_opt("tokenizer", "value", "--tokenizer")
_opt("url", "value", "--url", "-u")
_opt("endpoint_type", "value", "--endpoint-type")
_opt("endpoint_path", "value", "--endpoint", "--custom-endpoint")
_opt("streaming", "flag", "--streaming")
_opt("isl", "value", "--synthetic-input-tokens-mean", "--prompt-input-tokens-mean", "--isl")
_opt("isl_stddev", "value", "--synthetic-input-tokens-stddev", "--prompt-input-tokens-stddev", "--isl-stddev")
_opt("osl", "value", "--output-tokens-mean", "--prompt-output-tokens-mean", "--osl")
_opt("osl_stddev", "value", "--output-tokens-stddev", "--prompt-output-tokens-stddev", "--osl-stddev")
_opt("concurrency", "value", "--concurrency")
_opt("request_rate", "value", "--request-rate")
_opt("request_count", "value", "--request-count", "--num-requests")
_opt("warmup_request_count", "value", "--warmup-request-count", "--num-warmup-requests")
_opt("benchmark_duration", "value", "--benchmark-duration")
_opt("random_seed", "value", "--random-seed")
_opt("num_dataset_entries", "value", "--num-dataset-entries", "--num-prompts")
_opt("conversation_num", "value", "--conversation-num", "--num-conversations", "--num-sessions")
_opt("extra_inputs", "multi", "--extra-inputs")
_opt("headers", "multi", "--header", "-H")
_opt("goodput", "value", "--goodput")
_opt("input_file", "value", "--input-file")
_opt("custom_dataset_type", "value", "--custom-dataset-type")
_opt("public_dataset", "value", "--public-dataset")
_opt("fixed_schedule", "flag", "--fixed-schedule")
_opt("config", "value", "--config", "-f")
_opt("artifact_dir", "value", "--artifact-dir", "--output-artifact-dir")
_opt("request_timeout_s", "value", "--request-timeout-seconds")

# Workload options passed through verbatim (value-taking unless listed in _PASS_FLAGS).
_PASS_VALUES = {
    "--prompt-input-tokens-block-size", "--synthetic-input-tokens-block-size", "--isl-block-size",
    "--prompt-prefix-pool-size", "--prefix-prompt-pool-size", "--num-prefix-prompts",
    "--prompt-prefix-length", "--prefix-prompt-length", "--shared-system-prompt-length",
    "--user-context-prompt-length", "--seq-dist", "--sequence-distribution", "--random-range-ratio",
    "--random-corpus-style", "--prompt-corpus", "--arrival-pattern", "--request-rate-mode",
    "--arrival-smoothness", "--vllm-burstiness", "--conversation-turn-mean", "--session-turns-mean",
    "--conversation-turn-stddev", "--session-turns-stddev", "--conversation-turn-delay-mean",
    "--session-turn-delay-mean", "--conversation-turn-delay-stddev", "--session-turn-delay-stddev",
    "--benchmark-grace-period", "--concurrency-ramp-duration", "--request-rate-ramp-duration",
    "--prefill-concurrency", "--warmup-concurrency", "--warmup-duration", "--endpoint-type-override",
    "--system-prompt", "--connection-reuse-strategy", "--dataset-sampling-strategy",
}
_PASS_FLAGS = {"--use-server-token-count", "--use-legacy-max-tokens", "--apply-chat-template", "--per-chunk-usage"}

# Environment options the harness sets itself (value-taking unless listed in _ENV_FLAGS).
_ENV_VALUES = {
    "--ui", "--ui-type", "--workers-max", "--max-workers", "--record-processors",
    "--record-processor-service-count", "--wait-for-model-timeout", "--wait-for-model-mode",
    "--wait-for-model-interval", "--tokenizer-revision", "--export-level", "--profile-export-level",
    "--profile-export-prefix", "--profile-export-file", "--log-level", "--zmq-host", "--zmq-ipc-path",
    "--api-port", "--api-host", "--server-metrics-formats", "--slice-duration", "--stats-interval",
    "--otel-url", "--mlflow-tracking-uri", "--wandb-project", "--api-key",
}
_ENV_FLAGS = {
    "--tokenizer-trust-remote-code", "--no-server-metrics", "--no-gpu-telemetry", "--export-http-trace",
    "--show-trace-timing", "--verbose", "-v", "--extra-verbose", "-vv", "--no-auto-plot", "--auto-plot",
    "--export-outputs-json",
}
_ENV_MULTI = {"--server-metrics", "--gpu-telemetry"}   # optional values


@dataclass(frozen=True)
class PerfPoint:
    """One aiperf run of the sweep."""

    concurrency: int | None = None
    request_rate: float | None = None
    request_count: int | None = None
    warmup_request_count: int | None = None
    benchmark_duration: float | None = None
    line: int = 0

    @property
    def label(self) -> str:
        if self.concurrency is not None:
            return f"c{self.concurrency}"
        return f"r{self.request_rate:g}" if self.request_rate is not None else "c1"

    def default_request_count(self) -> int:
        """aiperf's own default when ``--request-count`` is not given."""
        return max(10, 2 * (self.concurrency or 1))


@dataclass
class PerfProfile:
    """What the recipe benchmarks: workload shape and sweep."""

    file: str
    line: int
    points: list[PerfPoint] = field(default_factory=list)
    model: str | None = None
    tokenizer: str | None = None
    endpoint_type: str = "chat"
    endpoint_path: str | None = None
    streaming: bool = False
    isl: int | None = None
    isl_stddev: float | None = None
    osl: int | None = None
    osl_stddev: float | None = None
    random_seed: int | None = None
    num_dataset_entries: int | None = None
    conversation_num: int | None = None
    extra_inputs: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    goodput: dict[str, float] = field(default_factory=dict)
    request_timeout_s: float | None = None
    input_file: str | None = None
    custom_dataset_type: str | None = None
    public_dataset: str | None = None
    passthrough: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warmup_invocations: int = 0

    @property
    def concurrencies(self) -> list[int]:
        return [p.concurrency for p in self.points if p.concurrency is not None]

    @property
    def trace_replay(self) -> str | None:
        """Why the workload cannot be synthesised here (a trace or dataset file), else ``None``."""
        if self.input_file or self.custom_dataset_type:
            return f"replays the dataset file {self.input_file or '?'} ({self.custom_dataset_type or 'custom'})"
        if self.public_dataset:
            return f"uses the public dataset {self.public_dataset}"
        return None

    def describe(self) -> str:
        parts = [f"{self.endpoint_type}{' streaming' if self.streaming else ''}"]
        if self.isl is not None or self.osl is not None:
            parts.append(f"ISL/OSL {self.isl if self.isl is not None else '?'}/{self.osl if self.osl is not None else '?'}")
        sweep = ", ".join(f"{p.label} x{p.request_count if p.request_count is not None else p.default_request_count()}"
                          for p in self.points)
        parts.append(f"sweep {sweep}")
        return "; ".join(parts)


# --------------------------------------------------------------------------- argument parsing


@dataclass
class _Parsed:
    values: dict[str, Any] = field(default_factory=dict)   # True (flag), str (value) or list[str] (multi)
    passthrough: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)


def _take(args: list[str], i: int, inline: str | None) -> tuple[str | None, int]:
    """The value of the option at ``args[i]`` (``--opt=value`` or the next word) and the new index."""
    if inline is not None:
        return inline, i
    if i + 1 < len(args):
        return args[i + 1], i + 1
    return None, i


def _parse_args(args: list[str]) -> _Parsed:
    out = _Parsed()
    i = 0
    while i < len(args):
        arg = args[i]
        arg, inline = split_option(arg)
        if arg in _TYPED:
            name, kind = _TYPED[arg]
            if kind == "flag":
                out.values[name] = True
            else:
                value, i = _take(args, i, inline)
                if value is not None and kind == "multi":
                    out.values.setdefault(name, [])
                    out.values[name].append(value)
                elif value is not None:
                    out.values[name] = value
        elif arg in _PASS_FLAGS:
            out.passthrough.append(arg)
        elif arg in _PASS_VALUES:
            value, i = _take(args, i, inline)
            out.passthrough += [arg] + ([value] if value is not None else [])
        elif arg in _ENV_FLAGS:
            out.environment.append(arg)
        elif arg in _ENV_VALUES:
            value, i = _take(args, i, inline)
            out.environment += [arg] + ([value] if value is not None else [])
        elif arg in _ENV_MULTI:
            while i + 1 < len(args) and not is_option(args[i + 1]):
                i += 1
            out.environment.append(arg)
        elif arg.startswith("-"):
            if inline is None and i + 1 < len(args) and not is_option(args[i + 1]):
                i += 1
                out.ignored.append(f"{arg} {args[i]}")
            else:
                out.ignored.append(arg if inline is None else f"{arg}={inline}")
        else:
            out.ignored.append(arg)
        i += 1
    return out


def _int(value: object, option: str, inv_line: int, file: str) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not is_resolved(text):
        raise PerfProfileError(f"{option} {text!r} cannot be resolved without running the script "
                               f"(unknown: {', '.join(iter_unresolved(text))})", file, inv_line)
    try:
        number = float(text)
    except ValueError:
        raise PerfProfileError(f"{option} {text!r} is not a number", file, inv_line) from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise PerfProfileError(f"{option} {text!r} is not a whole number >= 0", file, inv_line)
    return int(number)


def _int_or_unknown(value: object, option: str, inv_line: int, file: str) -> int | None:
    """Like :func:`_int`, but a value only the running script could know is ``None``."""
    if value is not None and not is_resolved(str(value).strip()):
        return None
    return _int(value, option, inv_line, file)


def _float(value: object, option: str, inv_line: int, file: str) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    if not is_resolved(text):
        raise PerfProfileError(f"{option} {text!r} cannot be resolved without running the script", file, inv_line)
    try:
        number = float(text)
    except ValueError:
        raise PerfProfileError(f"{option} {text!r} is not a number", file, inv_line) from None
    if not math.isfinite(number) or number < 0:
        raise PerfProfileError(f"{option} {text!r} is not a number >= 0", file, inv_line)
    return number


def parse_goodput(text: str) -> dict[str, float]:
    """``"time_to_first_token:1000 inter_token_latency:30"`` -> {tag: value}."""
    out: dict[str, float] = {}
    for part in text.replace(",", " ").split():
        if ":" not in part:
            raise ValueError(f"goodput SLO {part!r} is not KEY:VALUE")
        key, _, value = part.partition(":")
        out[key.strip()] = float(value)
    return out


_WORKLOAD_FIELDS = ("endpoint_type", "endpoint_path", "streaming", "isl", "isl_stddev", "osl", "osl_stddev",
                    "random_seed", "extra_inputs", "goodput", "input_file", "custom_dataset_type")


def _is_warmup(parsed: _Parsed, others_keep_artifacts: bool) -> bool:
    artifact = str(parsed.values.get("artifact_dir") or "")
    if "warmup" in artifact.lower() or "warm-up" in artifact.lower():
        return True
    return not artifact and others_keep_artifacts


def profile_from_documents(documents: list[Document], file: str = "") -> PerfProfile:
    """The :class:`PerfProfile` of a recipe's perf manifest (raises :class:`PerfProfileError`)."""
    if not documents:
        raise PerfProfileError("the recipe has no perf manifest", file)
    file = file or documents[0].file
    found: list[tuple[Invocation, int, str]] = []
    for script in scripts(documents, unmounted="aiperf"):
        try:
            invocations = script.invocations()
        except ShellSyntaxError as exc:
            raise PerfProfileError(f"cannot read the perf script: {exc}", script.doc.file,
                                   script.at(max(exc.line, 1))[0]) from None
        found += [(inv, inv.line, script.doc.file) for inv in invocations]
    if not found:
        raise PerfProfileError("no `aiperf profile` invocation found in the perf manifest "
                               "(container command/args, its shell script, or a mounted ConfigMap script)", file,
                               documents[0].pos()[0])
    parsed = [(_parse_args(inv.args), line, f, inv) for inv, line, f in found]
    for p, line, f, _inv in parsed:
        if "config" in p.values:
            raise PerfProfileError(f"aiperf runs from a config file ({p.values['config']}); "
                                   "the harness reproduces command-line profiles only", f, line)
    keeps = [bool(p.values.get("artifact_dir")) for p, *_ in parsed]
    main: list[tuple[_Parsed, int, str, Invocation]] = []
    warmup_runs: list[tuple[_Parsed, int, str, Invocation]] = []
    for k, item in enumerate(parsed):
        others = any(keeps[:k] + keeps[k + 1:])
        if len(parsed) > 1 and _is_warmup(item[0], others):
            warmup_runs.append(item)
        else:
            main.append(item)
    if not main:
        main, warmup_runs = parsed[-1:], parsed[:-1]
    warmups = len(warmup_runs)
    first, line, f, _ = main[0]
    v = first.values
    prof = PerfProfile(file=f, line=line, warmup_invocations=warmups)
    prof.model = _plain(v.get("model"))
    prof.tokenizer = _plain(v.get("tokenizer"))
    prof.endpoint_type = str(v.get("endpoint_type") or "chat")
    prof.endpoint_path = _plain(v.get("endpoint_path"))
    prof.streaming = bool(v.get("streaming"))
    prof.isl = _int(v.get("isl"), "--synthetic-input-tokens-mean", line, f)
    prof.isl_stddev = _float(v.get("isl_stddev"), "--synthetic-input-tokens-stddev", line, f)
    prof.osl = _int(v.get("osl"), "--output-tokens-mean", line, f)
    prof.osl_stddev = _float(v.get("osl_stddev"), "--output-tokens-stddev", line, f)
    prof.random_seed = _int(v.get("random_seed"), "--random-seed", line, f)
    prof.num_dataset_entries = _int(v.get("num_dataset_entries"), "--num-dataset-entries", line, f)
    prof.conversation_num = _int(v.get("conversation_num"), "--conversation-num", line, f)
    prof.request_timeout_s = _float(v.get("request_timeout_s"), "--request-timeout-seconds", line, f)
    prof.extra_inputs = [str(x) for x in v.get("extra_inputs") or []]
    prof.headers = [str(x) for x in v.get("headers") or []]
    for value in prof.extra_inputs + prof.headers:
        if not is_resolved(value):
            raise PerfProfileError(f"--extra-inputs/--header value {value!r} cannot be resolved without running "
                                   "the script", f, line)
    if v.get("goodput"):
        try:
            prof.goodput = parse_goodput(str(v["goodput"]))
        except ValueError as exc:
            raise PerfProfileError(f"--goodput: {exc}", f, line) from None
    prof.input_file = _plain(v.get("input_file"))
    prof.custom_dataset_type = _plain(v.get("custom_dataset_type"))
    prof.public_dataset = _plain(v.get("public_dataset"))
    prof.passthrough = list(first.passthrough)
    prof.ignored = list(dict.fromkeys(x for p, *_ in main for x in p.ignored))
    # a trace replay is never rerun by the harness (it is skipped, RH403): a request count the
    # script computes from the trace file, e.g. $(wc -l < trace.jsonl), is simply unknown
    count = _int_or_unknown if prof.trace_replay else _int
    for p, pline, pf, _inv in main:
        diffs = [name for name in _WORKLOAD_FIELDS if p.values.get(name) != v.get(name)]
        if diffs:
            prof.notes.append(f"invocation at line {pline} differs in {', '.join(diffs)}; "
                              f"the workload of line {line} is used for every point")
        point = PerfPoint(
            concurrency=_int(p.values.get("concurrency"), "--concurrency", pline, pf),
            request_rate=_float(p.values.get("request_rate"), "--request-rate", pline, pf),
            request_count=count(p.values.get("request_count"), "--request-count", pline, pf),
            warmup_request_count=_int(p.values.get("warmup_request_count"), "--warmup-request-count", pline, pf),
            benchmark_duration=_float(p.values.get("benchmark_duration"), "--benchmark-duration", pline, pf),
            line=pline,
        )
        if point.concurrency is None and point.request_rate is None:
            point = replace(point, concurrency=1)
        if point.concurrency == 0:
            raise PerfProfileError("--concurrency 0", pf, pline)
        if any(q.concurrency == point.concurrency and q.request_rate == point.request_rate for q in prof.points):
            continue
        prof.points.append(point)
    if warmup_runs and prof.points and prof.points[0].warmup_request_count is None:
        # the recipe's separate warm-up run becomes aiperf warm-up requests before the first point
        wp, wline, wf, _ = warmup_runs[0]
        warmup = _int(wp.values.get("request_count"), "--request-count", wline, wf)
        if warmup is None:
            warmup = PerfPoint(concurrency=_int(wp.values.get("concurrency"), "--concurrency", wline, wf)).default_request_count()
        prof.points[0] = replace(prof.points[0], warmup_request_count=warmup)
        prof.notes.append(f"the warm-up run at line {wline} is reproduced as {warmup} warm-up requests")
    return prof


def perf_documents(recipe: LoadedRecipe) -> list[Document]:
    """A recipe's perf manifests plus the ConfigMaps of its folder (scripts they may mount)."""
    docs = list(recipe.perf_documents)
    for path in getattr(recipe.recipe, "extra_files", ()):
        docs += [d for d in recipe.documents(path) if d.kind == "ConfigMap"]
    return docs


def profile_of(recipe: LoadedRecipe) -> PerfProfile:
    """The profile of a loaded recipe, read from :func:`perf_documents`."""
    first = str(recipe.recipe.perf_files[0]) if recipe.recipe.perf_files else ""
    if not recipe.perf_documents:
        raise PerfProfileError("the recipe has no perf manifest", first)
    return profile_from_documents(perf_documents(recipe), first)


def _plain(value: object) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class Scaling:
    """How a profile was shrunk for this target (``factor`` 1 and no cap: run as written)."""

    factor: float = 1.0
    max_concurrency: int | None = None
    concurrency_factor: float = 1.0
    original: tuple[PerfPoint, ...] = ()

    @property
    def scaled(self) -> bool:
        return self.factor != 1.0 or self.concurrency_factor != 1.0

    def describe(self, points: list[PerfPoint]) -> str:
        if not self.scaled:
            return "profile run as written (not scaled)"
        before = ", ".join(f"{p.label} x{p.request_count if p.request_count is not None else p.default_request_count()}"
                           for p in self.original)
        after = ", ".join(f"{p.label} x{p.request_count}" for p in points)
        text = f"scaled: request counts x{self.factor:g}"
        if self.concurrency_factor != 1.0:
            text += f", concurrency x{self.concurrency_factor:.3g} (cap {self.max_concurrency})"
        return f"{text}; recipe [{before}] -> run [{after}]"

    def to_dict(self, points: list[PerfPoint]) -> dict:
        return {
            "scaled": self.scaled,
            "requestFactor": self.factor,
            "concurrencyFactor": round(self.concurrency_factor, 6),
            "maxConcurrency": self.max_concurrency,
            "recipe": [_point_dict(p) for p in self.original],
            "run": [_point_dict(p) for p in points],
        }


def _point_dict(p: PerfPoint) -> dict:
    return {"concurrency": p.concurrency, "requestRate": p.request_rate,
            "requestCount": p.request_count if p.request_count is not None else p.default_request_count(),
            "warmupRequestCount": p.warmup_request_count or 0}


def scale_points(points: list[PerfPoint], factor: float = 1.0,
                 max_concurrency: int | None = None) -> tuple[list[PerfPoint], Scaling]:
    """Shrink a sweep: request counts by ``factor``; when the largest concurrency exceeds
    ``max_concurrency`` every concurrency (and its request count) is scaled by the same ratio, so
    the sweep keeps its shape. Each point keeps at least one request per concurrent stream."""
    if factor <= 0:
        raise ValueError("scale factor must be > 0")
    top = max((p.concurrency or 1 for p in points), default=1)
    cf = 1.0
    if max_concurrency is not None and top > max_concurrency:
        cf = max_concurrency / top
    out: list[PerfPoint] = []
    for p in points:
        c = None if p.concurrency is None else max(1, round(p.concurrency * cf))
        rate = None if p.request_rate is None else p.request_rate * cf
        count = p.request_count if p.request_count is not None else p.default_request_count()
        n = max(c or 1, min(MIN_REQUESTS, count), math.ceil(count * factor * cf - 1e-9))
        warm = p.warmup_request_count or 0
        w = 0 if warm == 0 else max(1, min(warm, math.ceil(warm * factor * cf - 1e-9)))
        dur = None if p.benchmark_duration is None else max(1.0, p.benchmark_duration * factor)
        q = PerfPoint(concurrency=c, request_rate=rate, request_count=n, warmup_request_count=w,
                      benchmark_duration=dur, line=p.line)
        if any(o.concurrency == q.concurrency and o.request_rate == q.request_rate for o in out):
            continue
        out.append(q)
    if factor == 1.0 and cf == 1.0:
        out = [replace(p, request_count=p.request_count if p.request_count is not None else p.default_request_count(),
                       warmup_request_count=p.warmup_request_count or 0) for p in points]
    return out, Scaling(factor=factor, max_concurrency=max_concurrency, concurrency_factor=cf,
                        original=tuple(points))
