"""The predict check of one recipe on one hardware profile: its estimates, the gate, the report fields.

:func:`predict_all` plans every (recipe, profile) case, sends all their estimates to the model in
one batch (:func:`.aic.estimate`) and returns a :class:`PredictOutcome` per case, or the reason it
was skipped. ``failures`` are reasons to fail: a model that does not fit in the GPUs (the model's
memory estimate), a sweep concurrency the deployment cannot hold (the KV cache of its batch does
not fit), a limit the prediction misses by more than the tolerance. ``warnings`` are limits within
the tolerance, and regressions against a predicted baseline (:mod:`.baseline`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipe_harness.exercise.predict import baseline as bl
from recipe_harness.exercise.predict.aic import AIC_VERSION, EstimateResult, estimate
from recipe_harness.exercise.predict.gate import FAIL, NOT_MODELLED, WARN, gate
from recipe_harness.exercise.predict.outcome import PredictOutcome
from recipe_harness.exercise.predict.plan import PredictPlan, PredictSkip, plan
from recipe_harness.exercise.predict.plot import sweep_plot
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe


@dataclass
class PredictSettings:
    python: Path
    tolerance: float = 0.20
    timeout_s: float = 300.0
    workers: int = 2
    aliases: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None          # plots go here (none: no plots)
    cache: Path | None = None            # answers of the model kept between runs (none: no cache)
    baseline_dir: Path | None = None     # predicted baselines to compare with (:mod:`.baseline`)
    update_baseline: bool = False        # store this run's predictions into baseline_dir
    baseline_ref: str | None = None      # the "before" is the recipe predicted as it was at this git REF


def _fmt(v: float | None, nd: int = 1) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def judge(p: PredictPlan, results: list[EstimateResult], tolerance: float) -> PredictOutcome:
    out = PredictOutcome(p, results, notes=list(p.notes))
    where = f"{Path(p.thresholds_file).name}"
    sweep = []
    for point, res in zip(p.points, results, strict=True):
        row: dict[str, Any] = {"concurrency": point.concurrency, "batch": point.batch, "ok": res.ok}
        if res.ok:
            row.update(ttftMs=res.ttft_ms, itlMs=res.tpot_ms, e2eMs=res.request_latency_ms,
                       outputTokensPerSPerGpu=res.tokens_per_s_per_gpu, tokensPerSPerUser=res.tokens_per_s_per_user,
                       requestsPerS=res.seq_per_s, gpus=res.num_gpus, memoryGiB=res.memory_gb)
            for w in res.warnings:
                out.warnings.append(f"c{point.concurrency}: {w}")
        else:
            row.update(error=res.error, errorKind=res.error_kind, maxBatch=res.max_batch)
            if res.error_kind == "oom":
                out.failures.append(f"{p.model} does not fit in the GPU memory of {p.system.label} "
                                    f"({p.system.memory_gib:.0f} GiB) with {'; '.join(w.describe() for w in p.workers)}"
                                    f" (the model's memory estimate: {res.error})")
            elif res.error_kind == "kv":
                serving = next(w for w in p.workers if w.mode in ("agg", "decode"))
                held = (res.max_batch or 0) * serving.engines * serving.attention_dp
                out.failures.append(
                    f"concurrency {point.concurrency} cannot be held on {p.hardware.id}: the KV cache of "
                    f"{serving.service} fits at most {res.max_batch} sequences of {p.isl}+{p.osl} tokens per engine "
                    f"rank ({held} in all, {point.batch} needed per rank); lower the concurrency in "
                    f"{Path(p.perf_file).name} or add {serving.service} replicas / parallelism")
            else:
                out.failures.append(f"c{point.concurrency}: the model could not estimate this configuration: "
                                    f"{res.error}")
        sweep.append(row)
    op_res = results[-1] if results else None
    if op_res is not None and op_res.ok:
        out.verdicts = gate(p.hardware.limits, op_res, p.isl, p.gpus, tolerance)
        for v in out.verdicts:
            if v.verdict == FAIL:
                out.failures.append(
                    f"{v.describe()} at c{p.operating_point.concurrency} on {p.hardware.id}: past the limit "
                    f"({where}:{v.limit.line}) by more than the model tolerance {tolerance:.0%}; either the recipe "
                    f"misses it or the limit is tighter than the model says is possible")
            elif v.verdict == WARN:
                out.warnings.append(f"{v.describe()} at c{p.operating_point.concurrency}: within the "
                                    f"model tolerance {tolerance:.0%} of the limit ({where}:{v.limit.line})")
        skipped = [v.limit.metric for v in out.verdicts if v.verdict == NOT_MODELLED]
        if skipped:
            out.notes.append(f"not modelled: {', '.join(skipped)}")
    first = next((r for r in results if r.backend_version), None)
    verdict = "fail" if out.failures else "warn" if out.warnings else "pass"
    out.metrics = {
        "prediction": {
            "model": "aiconfigurator", "modelVersion": _model_version(),
            "system": p.system.name, "hardwareProfile": p.hardware.id, "backend": p.backend,
            "backendVersion": first.backend_version if first else None,
            "backendVersionSource": first.version_source if first else "",
            "dynamoVersion": p.dynamo_version, "modelId": p.model, "modelledAs": p.modelled_as,
            "mode": p.mode, "isl": p.isl, "osl": p.osl, "gpus": p.gpus,
            "workers": [w.describe() for w in p.workers], "sources": p.sources, "tolerance": tolerance,
            "operatingPoint": f"c{p.operating_point.concurrency}", "sweep": sweep,
            "limits": [v.to_dict() for v in out.verdicts], "verdict": verdict,
            "impossibleLimits": [v.limit.metric for v in out.verdicts if v.verdict == FAIL],
        },
    }
    op = sweep[-1] if sweep else {}
    out.metrics["table"] = {
        "hw": p.hardware.id, "point": f"c{p.operating_point.concurrency}",
        "TTFT ms": _fmt(op.get("ttftMs")), "ITL ms": _fmt(op.get("itlMs"), 2),
        "tok/s/GPU": _fmt(op.get("outputTokensPerSPerGpu")), "verdict": verdict,
    }
    return out


def _model_version() -> str:
    return AIC_VERSION


Case = tuple[LoadedRecipe, str]


def predict_all(cases: Iterable[Case], settings: PredictSettings) -> dict[tuple[str, str], PredictOutcome | str]:
    """Outcome (or skip reason) per (recipe id, profile id); one batch of estimates for all of them (with
    ``settings.baseline_ref``, the recipes as they were at REF too). Raises :class:`.baseline.BaselineError`."""
    cases = list(cases)
    with ExitStack() as stack:
        tree = stack.enter_context(bl.RefTree(settings.baseline_ref)) if settings.baseline_ref else None
        plans: dict[tuple[str, str], PredictPlan | str] = {}
        before: dict[tuple[str, str], PredictPlan | str] = {}
        for loaded, profile_id in cases:
            try:
                plans[(loaded.id, profile_id)] = plan(loaded, profile_id, aliases=settings.aliases)
            except PredictSkip as exc:
                plans[(loaded.id, profile_id)] = str(exc)
            if tree is not None and isinstance(plans[(loaded.id, profile_id)], PredictPlan):
                before[(loaded.id, profile_id)] = _plan_at_ref(tree, loaded, profile_id, settings)
        every = [*plans.values(), *before.values()]
        requests = [pt.request for p in every if isinstance(p, PredictPlan) for pt in p.points]
        results = estimate(requests, settings.python, timeout_s=settings.timeout_s, workers=settings.workers,
                           cache=settings.cache)
    out: dict[tuple[str, str], PredictOutcome | str] = {}
    for key, p in plans.items():
        if isinstance(p, str):
            out[key] = p
            continue
        res = [results[pt.request.key] for pt in p.points]
        if all(not r.ok and r.error_kind in ("model", "system") for r in res):
            out[key] = f"{res[0].error} (model {p.model})" if res[0].error_kind == "model" else res[0].error
            continue
        outcome = judge(p, res, settings.tolerance)
        _compare(outcome, before.get(key), results, settings)
        if settings.out_dir is not None:
            _plot(outcome, settings.out_dir)
        out[key] = outcome
    return out


def _plan_at_ref(tree: bl.RefTree, loaded: LoadedRecipe, profile_id: str, settings: PredictSettings) -> PredictPlan | str:
    """The plan of the recipe as it was at the REF (its estimate keys prefixed ``ref|``), or why there is none."""
    root = tree.root_for(loaded.recipe.root)
    found = discover(root) if root is not None and root.is_dir() else None
    recipe = next((r for r in found.recipes if r.id == loaded.id), None) if found else None
    if recipe is None:
        return f"{loaded.id} did not exist at {tree.ref}"
    try:
        p = plan(LoadedRecipe.load(recipe, {}), profile_id, aliases=settings.aliases)
    except PredictSkip as exc:
        return f"at {tree.ref} not predicted: {exc}"
    return replace(p, points=[replace(pt, request=replace(pt.request, key=f"ref|{pt.request.key}")) for pt in p.points])


def _compare(outcome: PredictOutcome, before: PredictPlan | str | None, results: dict[str, EstimateResult],
             settings: PredictSettings) -> None:
    """Compare ``outcome`` with its "before" (the REF's plan, else the stored baseline) and store it when asked."""
    p = outcome.plan
    after = bl.snapshot(outcome)
    if settings.baseline_ref:
        if isinstance(before, str):
            outcome.notes.append(f"no before/after: {before}")
        elif before is not None:
            then = judge(before, [results[pt.request.key] for pt in before.points], settings.tolerance)
            bl.attach(outcome, bl.compare(bl.snapshot(then), after, source=f"at {settings.baseline_ref}",
                                          tolerance=settings.tolerance))
    elif settings.baseline_dir is not None:
        stored = bl.load(settings.baseline_dir, p.recipe_id, p.hardware.id)
        where = bl.path_of(settings.baseline_dir, p.recipe_id, p.hardware.id)
        if stored is not None:
            bl.attach(outcome, bl.compare(stored, after, source=str(where), tolerance=settings.tolerance))
        elif not settings.update_baseline:
            outcome.notes.append(f"no predicted baseline {where} (a new recipe or profile; --update-baseline "
                                 "stores one)")
            outcome.metrics["prediction"]["baseline"] = {"status": "missing", "source": str(where)}
    if settings.update_baseline and settings.baseline_dir is not None:
        written = bl.store(settings.baseline_dir, outcome)
        outcome.notes.append(f"predicted baseline stored: {written}")
        outcome.metrics["prediction"].setdefault("baseline", {"status": "updated", "source": str(written)})


def _plot(outcome: PredictOutcome, out_dir: Path) -> None:
    p = outcome.plan
    pts = [(f"c{pt.concurrency}", r.ttft_ms, r.tpot_ms, r.tokens_per_s_per_gpu)
           for pt, r in zip(p.points, outcome.results, strict=True)
           if r.ok and r.ttft_ms is not None and r.tpot_ms is not None and r.tokens_per_s_per_gpu is not None]
    path = out_dir / p.recipe_id / f"predict-{p.hardware.id}.png"
    title = (f"{p.recipe_id} on {p.hardware.id}: predicted ({p.backend}, {p.modelled_as}, ISL/OSL {p.isl}/{p.osl})")
    made = sweep_plot(pts, p.hardware.limits, path, title=title)
    if made is not None:
        outcome.images.append((f"predicted sweep on {p.hardware.id}", made))
