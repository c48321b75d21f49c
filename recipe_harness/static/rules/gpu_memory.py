"""GPU memory fit (RH304): the weights, one sequence of the maximum model length and the perf concurrency's
KV cache fit the GPUs of every hardware profile the recipe declares.

The GPUs are the profiles of ``thresholds.yaml`` that name a GPU system (:mod:`recipe_harness.exercise.predict.systems`,
memory per GPU as AIConfigurator's system files give it); the model's weights and KV cache per token come
from :mod:`recipe_harness.exercise.predict.models` (lower bounds); parallelism from the engine config reader, in the
terms :func:`recipe_harness.exercise.predict.plan.to_worker` uses. Every estimate errs towards fitting: weights are a
lower bound split evenly over the engine's GPUs, the memory the engine may use is the whole fraction it is
given (vLLM ``--gpu-memory-utilization``, default 0.9; SGLang ``--mem-fraction-static``, 0.95 taken when
unset; TensorRT-LLM all of it), activations and CUDA graphs are left out, and an in-flight request holds
at least its prompt. A finding is a recipe that cannot work, not one that might be tight: the predict
suite's model (its memory estimate includes activations) is the finer check.

- weights: vLLM and SGLang fail at start-up (``CUDA out of memory`` while loading), TensorRT-LLM too;
- one sequence of the maximum model length: vLLM refuses to start when it cannot hold one
  (``vllm/v1/core/kv_cache_utils.py`` ``check_enough_kv_cache_memory``); the others reject or evict;
- the perf concurrency: the requests a deployment cannot hold queue or are preempted, so the benchmark
  measures the queue.
"""

from __future__ import annotations

from collections.abc import Iterator

from recipe_harness.exercise.predict.models import spec_of
from recipe_harness.exercise.predict.plan import PredictSkip, thresholds_of, to_worker
from recipe_harness.exercise.predict.systems import GIB, GpuSystem, UnmappedProfile, system_of
from recipe_harness.findings import Finding
from recipe_harness.model import Service
from recipe_harness.model.backends import EngineConfig
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.cmdline import flag_hits
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import effective_mode, emit, known, service_at, workers
from recipe_harness.static.rules.scripts import aiperf_runs

_FRACTION_FLAGS = {"vllm": ("--gpu-memory-utilization", 0.9), "sglang": ("--mem-fraction-static", 0.95)}


def _fraction(cfg: EngineConfig) -> float:
    flag, default = _FRACTION_FLAGS.get(cfg.backend, ("", 1.0))
    value = default
    for _, raw in flag_hits(cfg.argv, (flag,)):
        try:
            value = float(raw)
        except ValueError:
            pass
    return min(max(value, 0.0), 1.0)


def _systems(recipe: LoadedRecipe) -> list[tuple[str, GpuSystem]]:
    try:
        profiles = thresholds_of(recipe).profiles
    except PredictSkip:
        return []
    out = []
    for pid in profiles:
        try:
            out.append((pid, system_of(pid)))
        except UnmappedProfile:
            continue
    return out


def _gb(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


@rule("RH304", "gpu",
      "On every GPU hardware profile of thresholds.yaml, each worker's share of the model weights fits its GPUs, one "
      "sequence of its maximum model length fits the KV cache left, and the perf concurrency's prompts fit the KV "
      "cache of the serving workers.",
      "raise tensor/pipeline/expert parallelism or the memory fraction, use a quantised checkpoint or a GPU with more "
      "memory, lower the maximum model length, or lower the perf concurrency / add replicas")
def memory_fits(recipe: LoadedRecipe) -> Iterator[Finding]:
    systems = _systems(recipe)
    if not systems or recipe.deployment is None:
        return
    engines: list[tuple[Service, EngineConfig]] = [(s, c) for s, c in workers(recipe)
                                                   if known(c) and c.backend != "mocker"]
    runs = [r for r in aiperf_runs(recipe) if r.concurrency and r.concurrency.ints and r.isl and r.isl.ints]
    for pid, system in systems:
        capacity, serving, broken = 0.0, [], False
        for svc, cfg in engines:
            spec = spec_of(cfg.model)
            if spec is None:
                broken = True           # unknown model: no capacity to compare the concurrency with
                continue
            w = to_worker(svc, cfg)
            fraction = _fraction(cfg)
            usable = system.memory_bytes * fraction
            weights = spec.weights_bytes / max(w.gpus, 1)
            where = cfg.sources.get("model") or service_at(recipe.deployment, svc)
            if weights > usable:
                yield emit("RH304", recipe, where,
                           f"{svc.name}: {spec.repo} needs at least {_gb(weights)} of weights per GPU "
                           f"({spec.params_b:g}B parameters x {spec.weight_bytes:g} bytes over {w.gpus} GPUs: "
                           f"{w.describe()}) but a {system.label} of profile {pid} gives it {_gb(usable)} "
                           f"({_gb(system.memory_bytes)} x {fraction:g}); the engine runs out of memory loading it")
                broken = True
                continue
            free = usable - weights
            per_token = spec.kv_bytes_per_token(w.tp, w.pp)
            if cfg.max_model_len and per_token * cfg.max_model_len > free:
                yield emit("RH304", recipe, cfg.sources.get("max_model_len", where),
                           f"{svc.name}: one sequence of the maximum model length {cfg.max_model_len} needs "
                           f"{_gb(per_token * cfg.max_model_len)} of KV cache per GPU but at most {_gb(free)} is left "
                           f"after the weights on a {system.label} (profile {pid}); the engine refuses to start")
                broken = True
            if effective_mode(svc, cfg) in ("agg", "decode"):
                ranks = w.engines * w.attention_dp
                capacity += free / per_token * ranks
                serving.append(f"{svc.name} {ranks}x {int(free / per_token):,} tokens")
        if broken or not serving:
            continue
        for run in runs:
            if run.concurrency is None or run.isl is None:  # left out of runs above
                continue
            peak, isl = max(run.concurrency.ints), max(run.isl.ints)
            need = peak * isl
            if need > capacity:
                yield emit("RH304", recipe, run.concurrency.src,
                           f"perf concurrency {peak} keeps at least {peak} x {isl} = {need:,} prompt tokens in the KV "
                           f"cache but the serving workers hold at most {int(capacity):,} on {system.label} (profile "
                           f"{pid}: {', '.join(serving)}); the rest queue or are preempted")
