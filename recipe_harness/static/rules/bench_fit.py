"""Benchmark fit (RH350-RH359): the perf profile is one the deployment can serve."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_harness.findings import Finding
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import effective_mode, emit, known, workers
from recipe_harness.static.rules.scripts import aiperf_runs


@rule("RH350", "bench-fit",
      "The perf profile's input + output tokens fit the maximum model length of every aggregated and decode "
      "worker (the input + 1 token for prefill workers).",
      "lower the perf ISL/OSL or raise --max-model-len / --context-length / max_seq_len on the workers")
def lengths_fit(recipe: LoadedRecipe) -> Iterator[Finding]:
    limits = [(s, c) for s, c in workers(recipe) if known(c) and c.max_model_len]
    if not limits:
        return
    for run in aiperf_runs(recipe):
        if run.isl is None or run.osl is None or not run.isl.ints or not run.osl.ints:
            continue
        isl, osl = max(run.isl.ints), max(run.osl.ints)
        for svc, cfg in limits:
            # a prefill worker computes the prompt and one token; the decode side holds the whole sequence
            prefill = effective_mode(svc, cfg) == "prefill"
            need = isl + 1 if prefill else isl + osl
            if cfg.max_model_len is not None and need > cfg.max_model_len:  # never None in limits
                _, line, _ = cfg.sources.get("max_model_len", ("", 0, 0))
                what = f"{isl} input tokens (+1 generated)" if prefill else f"{isl} input + {osl} output = {need} tokens"
                yield emit("RH350", recipe, run.isl.src,
                           f"perf sends {what} but {svc.name} accepts at most {cfg.max_model_len} "
                           f"(deploy line {line}); requests fail")
                break


@rule("RH351", "bench-fit",
      "The perf concurrency is one the deployment can hold: at most max sequences per engine x workers "
      "(decode or aggregated workers).",
      "lower the perf --concurrency or raise --max-num-seqs / --max-running-requests / max_batch_size or replicas")
def concurrency_fits(recipe: LoadedRecipe) -> Iterator[Finding]:
    serving = [(s, c) for s, c in workers(recipe) if known(c) and effective_mode(s, c) in ("agg", "decode")]
    if not serving or any(c.max_concurrency is None for _, c in serving):
        return  # engine defaults depend on GPU memory; only explicit limits are checked
    capacity = sum((c.max_concurrency or 0) * s.replicas for s, c in serving)  # none is None (above)
    for run in aiperf_runs(recipe):
        if run.concurrency is None or not run.concurrency.ints:
            continue
        peak = max(run.concurrency.ints)
        if peak > capacity:
            parts = " + ".join(f"{s.name} {c.max_concurrency}x{s.replicas}" for s, c in serving)
            yield emit("RH351", recipe, run.concurrency.src,
                       f"perf runs concurrency {peak} but the deployment holds {capacity} sequences at once "
                       f"({parts}); the rest queue and the benchmark measures the queue")
