"""Perf configuration (RH400-RH409): thresholds.yaml is valid, and the perf manifest holds a
benchmark the perf suite can reproduce and gate -- checked statically, before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from recipe_harness.exercise.perf.profile import PerfProfile, PerfProfileError, profile_of
from recipe_harness.exercise.perf.stats import metric_min_samples
from recipe_harness.exercise.perf.thresholds import Thresholds, ThresholdsError, from_document, validate_document
from recipe_harness.findings import Finding, Severity
from recipe_harness.load.manifests import Document, load_file_shared
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import make, rule

CHECK = "perf-config"
_CPU_PROFILES = ("cpu", "mocker")


def _thresholds(recipe: LoadedRecipe) -> tuple[Thresholds | None, Document | None]:
    """(thresholds, its document) when the file loads and is schema-valid."""
    path = recipe.recipe.thresholds_file
    if path is None:
        return None, None
    result = load_file_shared(path)
    if result.findings or len(result.documents) != 1:
        return None, None
    doc = result.documents[0]
    try:
        return from_document(doc), doc
    except ThresholdsError:
        return None, doc


def _profile_or_error(recipe: LoadedRecipe) -> PerfProfile | PerfProfileError:
    """:func:`profile_of` the recipe, read once for the rules of this check (cached per recipe)."""
    cache = recipe.__dict__.setdefault("_perf_config_cache", {})
    if "profile" not in cache:
        try:
            cache["profile"] = profile_of(recipe)
        except PerfProfileError as exc:
            cache["profile"] = exc
    return cache["profile"]


def _profile(recipe: LoadedRecipe) -> PerfProfile | None:
    if not recipe.recipe.perf_files:
        return None
    found = _profile_or_error(recipe)
    return None if isinstance(found, PerfProfileError) else found


@rule("RH401", CHECK, "thresholds.yaml is valid against schemas/thresholds.schema.json (metric names, units, "
      "exactly one of min/max per limit).",
      "fix the entry at the position given, e.g. `ttft_p99: {max: 2500, unit: ms}`; see schemas/thresholds.schema.json")
def thresholds_valid(recipe: LoadedRecipe) -> Iterator[Finding]:
    path = recipe.recipe.thresholds_file
    if path is None:
        return
    result = load_file_shared(path)
    for f in result.findings:   # unreadable or invalid YAML: reported here, the file is not a manifest
        yield make("RH401", f.file, f.line, f.col, f"thresholds: {f.message}", recipe=recipe.id)
    if result.findings:
        return
    if len(result.documents) != 1:
        yield make("RH401", str(path), 1, 1, f"thresholds: expected one YAML document, found {len(result.documents)}",
                   recipe=recipe.id)
        return
    for f in validate_document(result.documents[0]):
        yield make("RH401", f.file, f.line, f.col, f.message, recipe=recipe.id)


@rule("RH402", CHECK, "The perf manifest holds an `aiperf profile` invocation the perf suite can reproduce "
      "(found in the container command/args or its shell script, with values that resolve without running it).",
      "call `aiperf profile` from the Job's command/args or its `sh -c` script with literal or env-derived values; "
      "config-file (--config) and computed ($(...)) concurrencies cannot be reproduced")
def perf_invocation(recipe: LoadedRecipe) -> Iterator[Finding]:
    if not recipe.recipe.perf_files or any(recipe.results[p].findings for p in recipe.recipe.perf_files
                                           if p in recipe.results):
        return   # no perf manifest, or one the yaml check already reports
    exc = _profile_or_error(recipe)
    if isinstance(exc, PerfProfileError):
        yield make("RH402", exc.file or str(recipe.recipe.perf_files[0]), exc.line, exc.col or (1 if exc.line else 0),
                   exc.message, recipe=recipe.id)


@rule("RH403", CHECK, "The perf workload is synthetic (ISL/OSL); a trace or dataset file cannot be replayed by the "
      "perf suite, which then skips the recipe.",
      "benchmark synthetic prompts shaped like the trace (--synthetic-input-tokens-mean/--output-tokens-mean) or "
      "accept that the perf suite skips this recipe", Severity.WARNING)
def perf_synthetic(recipe: LoadedRecipe) -> Iterator[Finding]:
    profile = _profile(recipe)
    if profile is not None and profile.trace_replay:
        yield make("RH403", profile.file, profile.line, 1, f"perf manifest {profile.trace_replay}", recipe=recipe.id)


@rule("RH404", CHECK, "A recipe with a perf manifest has a thresholds.yaml, and one with thresholds.yaml has a perf "
      "manifest: otherwise the perf suite has nothing to gate (or nothing to run) and skips it.",
      "add thresholds.yaml next to deploy.yaml (see schemas/thresholds.schema.json), or perf.yaml for its limits",
      Severity.WARNING)
def perf_and_thresholds_pair(recipe: LoadedRecipe) -> Iterator[Finding]:
    r = recipe.recipe
    if r.perf_files and r.thresholds_file is None:
        yield make("RH404", str(r.perf_files[0]), 1, 1,
                   f"perf manifest without thresholds.yaml in {r.dir.name}/: the perf suite skips {r.id}",
                   recipe=recipe.id)
    elif r.thresholds_file is not None and not r.perf_files:
        yield make("RH404", str(r.thresholds_file), 1, 1,
                   "thresholds.yaml without a perf manifest (perf.yaml): its limits are never checked",
                   recipe=recipe.id)


@rule("RH405", CHECK, "Latency limits (TTFT, ITL, TPOT) need a streaming benchmark: without --streaming aiperf does "
      "not measure them and the gate fails.",
      "add --streaming to the aiperf invocation, or gate on e2e_* latencies instead")
def latency_needs_streaming(recipe: LoadedRecipe) -> Iterator[Finding]:
    profile = _profile(recipe)
    thresholds, _ = _thresholds(recipe)
    if profile is None or thresholds is None or profile.streaming:
        return
    for hw in thresholds.profiles.values():
        streamed = [lim for lim in hw.limits if lim.metric.split("_")[0] in ("ttft", "itl", "tpot")]
        if streamed:
            yield make("RH405", thresholds.file, streamed[0].line, 1,
                       f"{hw.id}: {', '.join(lim.metric for lim in streamed)} limits, but the perf run "
                       f"(perf manifest line {profile.line}) is not streaming", recipe=recipe.id)


@rule("RH406", CHECK, "A GPU hardware profile's `gpus` matches the GPUs the DynamoGraphDeployment requests, so "
      "per-GPU throughput divides by the right number.",
      "set `gpus` to the total GPUs of the deployment (replicas x GPUs per replica x nodes)", Severity.WARNING)
def gpus_match(recipe: LoadedRecipe) -> Iterator[Finding]:
    thresholds, doc = _thresholds(recipe)
    dep = recipe.deployment
    if thresholds is None or doc is None or dep is None or not dep.total_gpus:
        return
    for hw in thresholds.profiles.values():
        if any(word in hw.id for word in _CPU_PROFILES):
            continue
        if hw.gpus != dep.total_gpus:
            line, col = doc.pos(("profiles", hw.id, "gpus"))
            yield make("RH406", thresholds.file, line, col,
                       f"{hw.id}: gpus is {hw.gpus} but the deployment requests {dep.total_gpus} GPUs",
                       recipe=recipe.id)


@rule("RH407", CHECK, "The perf manifest can meet its hardware profile's own minimum: every point sends at least "
      "`minimum.requests` requests (and runs `minimum.duration` when it runs for a fixed time), and the operating "
      "point, the last of the sweep, sends the samples each limited percentile needs (100 for p99, 20 for p50, p90, "
      "p95); otherwise the gate can only ever report insufficient samples.",
      "raise the point's --request-count (or --benchmark-duration) in the perf manifest, or lower the profile's "
      "`minimum` / gate on a percentile the count supports (e.g. p90 instead of p99) in thresholds.yaml")
def perf_meets_minimum(recipe: LoadedRecipe) -> Iterator[Finding]:
    profile = _profile(recipe)
    thresholds, _ = _thresholds(recipe)
    if profile is None or thresholds is None or profile.trace_replay or not profile.points:
        return
    for hw in thresholds.profiles.values():
        m, where = hw.minimum, f"{Path(thresholds.file).name}:{hw.minimum.line or hw.line}"
        few = [(p, p.request_count if p.request_count is not None else p.default_request_count())
               for p in profile.points if p.benchmark_duration is None]
        few = [(p, n) for p, n in few if m.requests and n < m.requests]
        brief = [p for p in profile.points if p.benchmark_duration is not None and m.duration_s
                 and p.benchmark_duration < m.duration_s]
        if few:
            yield make("RH407", profile.file, few[0][0].line or profile.line, 1,
                       f"{hw.id}: {_points(few)} the profile's minimum is {m.requests} requests ({where})",
                       recipe=recipe.id)
        if brief:
            yield make("RH407", profile.file, brief[0].line or profile.line, 1,
                       f"{hw.id}: point{'s' if len(brief) > 1 else ''} {', '.join(p.label for p in brief)} "
                       f"run{'' if len(brief) > 1 else 's'} {brief[0].benchmark_duration:g} s, the profile's minimum "
                       f"is {m.duration_s:g} s ({where})", recipe=recipe.id)
        op = profile.points[-1]
        if op.benchmark_duration is not None:
            continue
        count = op.request_count if op.request_count is not None else op.default_request_count()
        short = [(lim, metric_min_samples(lim.metric)) for lim in hw.limits
                 if lim.metric != "error_rate" and metric_min_samples(lim.metric) > count]
        if short:
            yield make("RH407", profile.file, op.line or profile.line, 1,
                       f"{hw.id}: the operating point {op.label} sends {count} requests but "
                       + ", ".join(f"{lim.metric} needs {n}" for lim, n in short)
                       + f" ({Path(thresholds.file).name}:{short[0][0].line}); it can only be reported as "
                       "insufficient samples", recipe=recipe.id)


def _points(few: list) -> str:
    counts = sorted({n for _, n in few})
    labels = ", ".join(p.label for p, _ in few)
    sends = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"point{'s' if len(few) > 1 else ''} {labels} send{'' if len(few) > 1 else 's'} {sends} requests,"
