"""What to ask the performance model about one recipe on one hardware profile, read from the recipe itself.

- engine, parallelism, replicas and roles: each worker's :func:`~recipe_harness.model.backends.engine_config`
  (the reader the GPU rules use) and the DGD's replicas;
- Dynamo release: the worker image tag (``vllm-runtime:1.6.1``), turned into the engine version by
  the model (:mod:`.aic`);
- model: the repo id the workers load, or the bundled model of the same architecture
  (:data:`.models.ALIASES`, ``--predict-model-alias``);
- workload: ISL, OSL and the concurrency sweep of the perf manifest, through
  :func:`~recipe_harness.exercise.perf.profile.profile_of`;
- GPU system: the hardware profile id of ``thresholds.yaml`` (:mod:`.systems`).

Every number is recorded with where it came from (:attr:`PredictPlan.sources`). Parallelism is
turned into the model's terms: with attention data parallelism (SGLang ``--enable-dp-attention``,
TensorRT-LLM ``enable_attention_dp``, vLLM data parallel with expert parallel) the attention runs
``DP`` ranks of ``TP/DP`` GPUs (vLLM: ``TP``) and the experts are split ``EP`` ways; plain data
parallelism of a dense model is that many more independent engines. The batch of a point is its
concurrency spread over the serving engines (aggregated, or decode when disaggregated), capped at
the engine's ``max_num_seqs``; prefill engines run one prompt at a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.exercise.perf.profile import PerfProfileError, profile_of
from recipe_harness.exercise.perf.thresholds import HardwareProfile, Thresholds, ThresholdsError, load_thresholds
from recipe_harness.exercise.predict.aic import EstimateRequest, Role
from recipe_harness.exercise.predict.models import ALIASES
from recipe_harness.exercise.predict.systems import GpuSystem, UnmappedProfile, system_of
from recipe_harness.model import Service
from recipe_harness.model.backends import EngineConfig, engine_config
from recipe_harness.model.bundle import LoadedRecipe

_SERVING = ("agg", "decode")
_DYNAMO_TAG = re.compile(r":(\d+\.\d+\.\d+(?:\.post\d+)?)(?:[-@].*)?$")


class PredictSkip(Exception):
    """Nothing to predict for this recipe on this profile (the message says exactly why)."""


@dataclass(frozen=True)
class Worker:
    """One worker service in the model's terms."""

    service: str
    mode: str                   # agg | prefill | decode
    engines: int                # independent engines: replicas x plain data-parallel ranks
    tp: int
    pp: int
    attention_dp: int
    moe_tp: int
    moe_ep: int
    max_num_seqs: int | None    # per attention-DP rank
    gpus: int                   # per engine

    def role(self, batch: int) -> Role:
        return Role(tp=self.tp, pp=self.pp, attention_dp=self.attention_dp, moe_tp=self.moe_tp, moe_ep=self.moe_ep,
                    batch_size=batch, workers=self.engines)

    def describe(self) -> str:
        par = f"TP{self.tp}" + (f" PP{self.pp}" if self.pp > 1 else "") + \
            (f" attention-DP{self.attention_dp}" if self.attention_dp > 1 else "") + \
            (f" EP{self.moe_ep}" if self.moe_ep > 1 else "")
        return f"{self.service} ({self.mode}) {self.engines}x {par}"


@dataclass(frozen=True)
class Point:
    concurrency: int
    batch: int                  # per serving engine rank (decode when disaggregated)
    request: EstimateRequest
    capped: bool = False        # the batch was capped at max_num_seqs (the rest queue)


@dataclass
class PredictPlan:
    recipe_id: str
    hardware: HardwareProfile
    thresholds_file: str
    system: GpuSystem
    backend: str
    model: str                  # as the workers load it
    modelled_as: str            # the model's bundled model
    dynamo_version: str | None
    mode: str                   # agg | disagg
    workers: list[Worker]
    isl: int
    osl: int
    points: list[Point]
    perf_file: str
    sources: list[str] = field(default_factory=list)     # "what = value (file:line)"
    notes: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> int:
        return sum(w.engines * w.gpus for w in self.workers)

    @property
    def operating_point(self) -> Point:
        """The sweep's last point (its highest load), where the perf suite gates too."""
        return self.points[-1]


def _where(src: tuple[str, int, int] | None) -> str:
    if not src or not src[0]:
        return "default"
    try:
        name = Path(src[0]).name
    except (TypeError, ValueError):
        name = str(src[0])
    return f"{name}:{src[1]}"


def thresholds_of(loaded: LoadedRecipe) -> Thresholds:
    """The recipe's thresholds (raises :class:`PredictSkip` without a file, with its findings when invalid)."""
    path = getattr(loaded.recipe, "thresholds_file", None)
    if not path:
        raise PredictSkip("no thresholds.yaml: no hardware profile to predict for")
    try:
        return load_thresholds(Path(path))
    except ThresholdsError as exc:
        raise PredictSkip(f"thresholds.yaml unusable (see the perf-config check): {exc}") from None


def profile_ids(loaded: LoadedRecipe) -> list[str]:
    """The hardware profile ids of the recipe's thresholds (empty without a usable file)."""
    try:
        return list(thresholds_of(loaded).profiles)
    except PredictSkip:
        return []


def _workers(loaded: LoadedRecipe) -> list[tuple[Service, EngineConfig]]:
    dep = loaded.deployment
    if dep is None:
        return []
    out = []
    for svc in dep.services:
        if svc.is_worker or svc.python_module in ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm", "dynamo.mocker"):
            out.append((svc, engine_config(loaded, svc)))
    return out


def _mode(svc: Service, cfg: EngineConfig) -> str:
    return cfg.disaggregation_mode or (svc.role if svc.role in ("prefill", "decode") else "agg")


def to_worker(svc: Service, cfg: EngineConfig) -> Worker:
    tp, pp, dp, ep = cfg.tensor_parallel, cfg.pipeline_parallel, cfg.data_parallel, cfg.expert_parallel
    moe_ep = ep if ep > 1 else 1
    if cfg.attention_dp or (cfg.backend == "vllm" and ep > 1 and dp > 1):
        attn_tp = tp if cfg.backend == "vllm" else max(1, tp // max(dp, 1))
        attn_dp, engines = dp, svc.replicas
    else:
        attn_tp, attn_dp = tp, 1
        engines = svc.replicas * (dp if cfg.backend in ("vllm", "sglang") else 1)
    width = attn_tp * attn_dp
    moe_tp = max(1, width // moe_ep)
    per_rank = cfg.max_num_seqs
    if per_rank is not None and cfg.backend == "sglang" and attn_dp > 1:
        per_rank = max(1, per_rank // attn_dp)       # SGLang's --max-running-requests is per engine
    return Worker(svc.name, _mode(svc, cfg), engines, attn_tp, pp, attn_dp, moe_tp, moe_ep, per_rank,
                  width * pp)


def dynamo_version(image: str | None) -> str | None:
    m = _DYNAMO_TAG.search(image or "")
    return m.group(1) if m else None


def plan(loaded: LoadedRecipe, profile_id: str, *, aliases: dict[str, str] | None = None) -> PredictPlan:
    """The estimates for ``loaded`` on hardware profile ``profile_id`` (raises :class:`PredictSkip`)."""
    thresholds = thresholds_of(loaded)
    hw = thresholds.profiles.get(profile_id)
    if hw is None:
        raise PredictSkip(f"thresholds.yaml has no profile {profile_id!r} (it has {', '.join(thresholds.profiles)})")
    try:
        system = system_of(profile_id)
    except UnmappedProfile as exc:
        raise PredictSkip(str(exc)) from None
    if loaded.deployment is None:
        raise PredictSkip("no loadable DynamoGraphDeployment (see the structure check)")
    pairs = _workers(loaded)
    if not pairs:
        raise PredictSkip("the deployment runs no inference engine")
    backends = {c.backend for _, c in pairs}
    if backends & {"mocker"}:
        raise PredictSkip("the workers run the Dynamo mocker, not a GPU engine: nothing for a GPU model to predict")
    if len(backends) != 1 or not backends <= {"vllm", "sglang", "trtllm"}:
        raise PredictSkip(f"engines {', '.join(sorted(backends))}: the model predicts one of vllm, sglang, trtllm")
    backend = backends.pop()
    workers = [to_worker(s, c) for s, c in pairs]
    modes = sorted({w.mode for w in workers})
    if modes == ["agg"] and len(workers) == 1:
        mode = "agg"
    elif modes == ["decode", "prefill"] and len(workers) == 2:
        mode = "disagg"
    else:
        raise PredictSkip("the model predicts one aggregated worker service, or one prefill and one decode service; "
                          f"this deployment has {', '.join(w.describe() for w in workers)}")
    models = {c.model for _, c in pairs}
    if len(models) != 1 or not next(iter(models)):
        raise PredictSkip(f"the workers load {', '.join(sorted(m or '?' for m in models))}: one model id is needed")
    model = next(iter(models)) or ""
    if model.startswith("/") or model.startswith("."):
        raise PredictSkip(f"the workers load the local path {model}; the model is found by its Hugging Face repo id")
    table = {k.lower(): v for k, v in (aliases or {}).items()}
    modelled_as, why = model, ""
    if model.lower() in table:
        modelled_as, why = table[model.lower()], "--predict-model-alias"
    elif model.lower() in ALIASES:
        modelled_as, why = ALIASES[model.lower()]
    images = {s.image for s, _ in pairs if s.image}
    version = next((v for v in map(dynamo_version, sorted(images)) if v), None)

    try:
        prof = profile_of(loaded)
    except PerfProfileError as exc:
        raise PredictSkip(f"no workload to predict: {exc.where()}{exc.message}") from None
    if prof.trace_replay:
        raise PredictSkip(f"the perf manifest {prof.trace_replay}: the model needs synthetic ISL/OSL")
    if prof.isl is None or prof.osl is None:
        raise PredictSkip("the perf manifest sets no synthetic ISL/OSL (--synthetic-input-tokens-mean, "
                          "--output-tokens-mean)")
    concurrencies = prof.concurrencies
    if not concurrencies:
        raise PredictSkip("the perf sweep sets no --concurrency (request-rate sweeps are not modelled)")

    sources = [f"GPU system = {system.name} ({system.label}, {system.memory_gib:.0f} GiB) "
               f"(thresholds.yaml:{hw.line} profile {profile_id})",
               f"backend = {backend} (engine module of the workers)",
               f"Dynamo release = {version or 'unknown'} (image {', '.join(sorted(images)) or '?'})",
               f"model = {model}" + (f", modelled as {modelled_as} ({why})" if modelled_as != model else ""),
               f"ISL/OSL = {prof.isl}/{prof.osl}, concurrency sweep {concurrencies} "
               f"({Path(prof.file).name}:{prof.line})"]
    for (svc, cfg), w in zip(pairs, workers, strict=True):
        keys = ("tensor_parallel", "pipeline_parallel", "data_parallel", "expert_parallel", "max_num_seqs")
        found = ", ".join(f"{k} {getattr(cfg, k)} ({_where(cfg.sources.get(k))})" for k in keys
                          if k in cfg.sources)
        sources.append(f"{w.describe()} = {svc.replicas} replicas; engine: {found or 'defaults'}"
                       + ("; attention data parallel" if cfg.attention_dp else ""))

    serving = [w for w in workers if w.mode in _SERVING]
    prefill = next((w for w in workers if w.mode == "prefill"), None)
    ranks = sum(w.engines * w.attention_dp for w in serving)
    notes: list[str] = []
    points: list[Point] = []
    for c in concurrencies:
        batch = max(1, math.ceil(c / ranks))
        cap = serving[0].max_num_seqs
        capped = cap is not None and batch > cap
        if cap is not None and capped:
            batch = cap
            notes.append(f"c{c}: {math.ceil(c / ranks)} sequences per engine rank exceed max_num_seqs {cap}; "
                         f"predicted at {cap} (the rest queue, see RH351)")
        key = f"{loaded.id}|{profile_id}|c{c}"
        if mode == "agg":
            req = EstimateRequest(key, modelled_as, system.name, backend, prof.isl, prof.osl, mode="agg",
                                  agg=serving[0].role(batch), dynamo_version=version)
        else:
            assert prefill is not None
            req = EstimateRequest(key, modelled_as, system.name, backend, prof.isl, prof.osl, mode="disagg",
                                  prefill=prefill.role(1), decode=serving[0].role(batch), dynamo_version=version)
        points.append(Point(c, batch, req, capped))
    return PredictPlan(loaded.id, hw, thresholds.file, system, backend, model, modelled_as, version, mode, workers,
                       prof.isl, prof.osl, points, prof.file, sources, notes)
