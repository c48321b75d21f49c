"""The perf check of one deployed recipe: plan (before deploying), run, gate, compare, plot.

:func:`plan` decides from the recipe alone whether there is anything to run: no perf manifest or
no thresholds for the chosen hardware profile is a *skip* with that reason; a perf manifest the
harness cannot read or a thresholds file that is invalid is an *error*. :func:`run` then runs the
(scaled) sweep ``trials`` times against the endpoint and returns a :class:`PerfOutcome` whose
``failures`` are the reasons to fail the test.

Gating: latency and throughput limits apply at the *operating point*, the last point of the sweep
(the recipe's highest load), on :class:`~.stats.Estimate` values: the requests of all trials
pooled, with a bootstrap confidence interval (see :mod:`.stats` and :func:`.thresholds.judge`);
``error_rate`` applies to every request of the run. A limit is failed only when its interval lies
past it; an interval containing it, or a percentile from too few samples, makes the check
*inconclusive* (a skip by default, a failure with ``--perf-inconclusive fail``), never a pass.

Sample sizes on a scaled run: the operating point sends at least what its gated percentiles need
(:meth:`.thresholds.HardwareProfile.samples_needed`: 100 for p99, 20 for p50/p90/p95, and the
profile's ``minimum.requests``), split over the trials, but never more than the recipe itself sends;
the other points of the sweep only draw the curve and keep the scaled counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from recipe_harness.endpoint import Endpoint
from recipe_harness.exercise.perf import baseline as bl
from recipe_harness.exercise.perf import plots, stats
from recipe_harness.exercise.perf.profile import (
    PerfPoint,
    PerfProfile,
    PerfProfileError,
    Scaling,
    profile_of,
    scale_points,
)
from recipe_harness.exercise.perf.results import (
    LATENCY_TAGS,
    Aggregate,
    PointResult,
    ResultError,
    aggregate,
    parse_export,
)
from recipe_harness.exercise.perf.runner import AiperfRun, RunTarget, build_argv, run_aiperf
from recipe_harness.exercise.perf.stats import Estimate
from recipe_harness.exercise.perf.thresholds import (
    ADVICE,
    INCONCLUSIVE,
    INSUFFICIENT,
    HardwareProfile,
    Thresholds,
    ThresholdsError,
    Verdict,
    gate,
    load_thresholds,
    overall,
)
from recipe_harness.model.bundle import LoadedRecipe

TRACKED = ("ttft_p50", "ttft_p90", "ttft_p99", "itl_p50", "itl_p90", "itl_p99", "e2e_p50", "e2e_p99",
           "output_tokens_per_s_per_gpu", "output_tokens_per_s", "requests_per_s", "goodput_requests_per_s",
           "goodput_fraction")
RUN_WIDE = ("error_rate",)
DEFAULT_LOCAL_SCALE = 0.05
DEFAULT_LOCAL_RUN_NOISE = 0.10
LOCAL_CONCURRENCY_PER_CPU = 4


class PerfSkip(Exception):
    """Nothing to run for this recipe on this hardware profile (the message says why)."""


class PerfPlanError(Exception):
    """The recipe's perf files are unusable; ``where`` is ``path:line:col: ``."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}{message}")


@dataclass
class PerfPlan:
    recipe_id: str
    profile: PerfProfile
    thresholds: Thresholds
    hardware: HardwareProfile


def plan(recipe: LoadedRecipe, hardware_profile: str) -> PerfPlan:
    """What to run for ``recipe`` on ``hardware_profile`` (raises :class:`PerfSkip` / :class:`PerfPlanError`)."""
    r = recipe.recipe
    if not r.perf_files:
        raise PerfSkip(f"{r.id} has no perf manifest (perf.yaml), so there is no benchmark to run")
    if r.thresholds_file is None:
        raise PerfSkip(f"{r.id} has no thresholds.yaml next to {r.deploy_file.name}, so no limits to gate on")
    try:
        thresholds = load_thresholds(r.thresholds_file)
    except ThresholdsError as exc:
        raise PerfPlanError("invalid thresholds:\n" + "\n".join(f.format() for f in exc.findings)) from None
    hardware = thresholds.profiles.get(hardware_profile)
    if hardware is None:
        known = ", ".join(sorted(thresholds.profiles)) or "none"
        raise PerfSkip(f"{r.thresholds_file.name} of {r.id} has no limits for hardware profile "
                       f"{hardware_profile!r} (it has: {known}); pick one with --hardware-profile")
    load_errors = [f for p in r.perf_files if p in recipe.results for f in recipe.results[p].findings]
    if load_errors:
        raise PerfPlanError("perf manifest cannot be loaded:\n" + "\n".join(f.format() for f in load_errors))
    try:
        profile = profile_of(recipe)
    except PerfProfileError as exc:
        raise PerfPlanError(exc.message, exc.where()) from None
    why = profile.trace_replay
    if why:
        raise PerfSkip(f"the perf manifest {why}, which the harness cannot reproduce (line {profile.line})")
    return PerfPlan(r.id, profile, thresholds, hardware)


@dataclass
class PerfSettings:
    aiperf: Path
    out_dir: Path
    scale: float | None = None              # None: 0.05 on the local target, 1.0 elsewhere
    max_concurrency: int | None = None      # None: 4 per CPU on the local target, no cap elsewhere
    trials: int = 1
    timeout_s: float = 900.0
    baseline_dir: Path | None = None
    update_baseline: bool = False
    tolerance: float = 0.10
    cpu_count: int = 2
    run_noise: float | None = None          # None: 0.10 on the local target, 0 elsewhere
    inconclusive: str = "skip"              # skip | fail: what an inconclusive check does to the test

    def noise_for(self, target: str) -> float:
        """Relative run-to-run noise added to every bootstrap interval (see :mod:`.stats`)."""
        if self.run_noise is not None:
            return self.run_noise
        return DEFAULT_LOCAL_RUN_NOISE if target == "local" else 0.0

    def for_target(self, target: str) -> tuple[float, int | None]:
        local = target == "local"
        scale = self.scale if self.scale is not None else (DEFAULT_LOCAL_SCALE if local else 1.0)
        cap = self.max_concurrency
        if cap is None and local:
            cap = LOCAL_CONCURRENCY_PER_CPU * max(1, self.cpu_count)
        return scale, cap


@dataclass
class PerfOutcome:
    metrics: dict = field(default_factory=dict)
    images: list[tuple[str, Path]] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)     # limits not established (not failed)
    runs: list[AiperfRun] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def tokenizer_for(profile: PerfProfile, endpoint: Endpoint) -> str:
    if endpoint.tokenizer_dir is not None:
        return str(endpoint.tokenizer_dir)
    if profile.tokenizer and not profile.tokenizer.startswith("/"):
        return profile.tokenizer          # a hub id the client can fetch
    return endpoint.model


def _point_values(results: list[PointResult], gpus: int) -> dict[str, Aggregate]:
    """Per-trial values of each tracked metric: median and spread over trials (the curve, and the
    per-trial view next to each estimate)."""
    out: dict[str, Aggregate] = {}
    for name in TRACKED:
        agg = aggregate([r.metric(name, gpus) for r in results])
        if agg is not None:
            out[name] = agg
    return out


def estimate(results: list[PointResult], metric: str, gpus: int = 1, run_noise: float = 0.0) -> Estimate | None:
    """The estimate of ``metric`` at one point over its trials (requests pooled, see :mod:`.stats`),
    its interval widened by the target's relative run-to-run noise."""
    return stats.with_run_noise(_estimate(results, metric, gpus), run_noise)


def _estimate(results: list[PointResult], metric: str, gpus: int) -> Estimate | None:
    if not results:
        return None
    kind, _, stat = metric.partition("_")
    if kind in LATENCY_TAGS and stats.quantile(stat) is not None or (kind in LATENCY_TAGS and stat in
                                                                       ("avg", "min", "max", "std")):
        attr = "itl" if kind == "tpot" else kind
        groups = [getattr(r.records, attr) for r in results if r.records is not None]
        if any(groups):
            return stats.percentile_estimate(groups, stat)
        stat_of = [r.latency(kind) for r in results]
        agg = aggregate([s.get(stat) if s else None for s in stat_of])
        return stats.point(agg.median if agg else None, sum(s.count for s in stat_of if s), stat)
    if metric == "error_rate":
        return stats.wilson(sum(r.error_requests for r in results), sum(r.total_requests for r in results),
                            trials=len(results))
    if metric == "goodput_fraction":
        ok = sum(r.ok_requests for r in results)
        good = sum(round((r.good_request_fraction or 0.0) * r.ok_requests) for r in results
                   if r.good_request_fraction is not None)
        known = any(r.good_request_fraction is not None for r in results)
        return stats.wilson(good, ok, min_samples_=stats.MIN_SAMPLES_FLOOR, trials=len(results)) if known else None
    measured = [r.metric(metric, gpus) for r in results]
    recs = [r.records for r in results if r.records is not None and r.records.tokens]
    if metric.endswith("tokens_per_s_per_gpu") or metric in ("output_tokens_per_s", "requests_per_s"):
        tokens = [([1.0] * len(x.tokens) if metric == "requests_per_s" else x.tokens) for x in recs]
        return stats.rate_estimate(measured, tokens, [x.token_latency for x in recs])
    agg = aggregate(measured)
    return stats.point(agg.median if agg else None, sum(r.ok_requests for r in results))


def _point_estimates(results: list[PointResult], gpus: int, extra: tuple[str, ...] = (),
                     run_noise: float = 0.0) -> dict[str, Estimate]:
    out: dict[str, Estimate] = {}
    for name in dict.fromkeys((*TRACKED, *extra)):
        if name == "error_rate":
            continue
        est = estimate(results, name, gpus, run_noise)
        if est is not None:
            out[name] = est
    return out


def _values_dict(values: dict[str, Aggregate], estimates: dict[str, Estimate]) -> dict:
    """Per metric: the per-trial median/spread/values and the estimate (value, low, high, samples ...)."""
    out = {}
    for k in sorted(set(values) | set(estimates)):
        entry = values[k].to_dict() if k in values else {}
        if k in estimates:
            entry.update(estimates[k].to_dict())
        out[k] = entry
    return out


def ensure_samples(points: list[PerfPoint], scaling: Scaling, hw: HardwareProfile, trials: int) -> tuple[
        list[PerfPoint], str | None]:
    """Raise a scaled operating point's request count to what its gate needs (split over trials),
    never above the recipe's own count; returns the points and a note saying what was chosen."""
    if not points or not scaling.scaled:
        return points, None
    op = points[-1]
    if op.request_count is None or op.benchmark_duration is not None:
        return points, None
    original = scaling.original[-1] if scaling.original else op
    recipe_count = original.request_count if original.request_count is not None else original.default_request_count()
    needed = hw.samples_needed()
    per_trial = min(recipe_count, max(op.request_count, math.ceil(needed / max(trials, 1))))
    gated = sorted({lim.metric for lim in hw.limits if lim.metric != "error_rate"})
    if per_trial * trials < needed:
        return points[:-1] + [replace(op, request_count=per_trial)], (
            f"sample sizes: the operating point {op.label} needs {needed} requests for its gate ({', '.join(gated)}) "
            f"but the recipe sends only {recipe_count} per trial; percentiles it cannot support are reported as "
            "insufficient samples")
    if per_trial == op.request_count:
        return points, (f"sample sizes: the operating point {op.label} sends {per_trial} requests x {trials} trial(s), "
                        f"enough for its gate ({', '.join(gated)}: {needed} needed)")
    return points[:-1] + [replace(op, request_count=per_trial)], (
        f"sample sizes: the operating point {op.label} sends {per_trial} requests x {trials} trial(s) instead of "
        f"{op.request_count} scaled, so every gated percentile has enough samples ({', '.join(gated)}: {needed} needed); "
        "the other points keep the scaled counts (they only draw the curve)")


def run(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings) -> PerfOutcome:
    out = PerfOutcome()
    prof, hw = plan_.profile, plan_.hardware
    scale, cap = settings.for_target(endpoint.target)
    points, scaling = scale_points(prof.points, scale, cap)
    points, sample_note = ensure_samples(points, scaling, hw, settings.trials)
    slo = hw.goodput_slo() or dict(prof.goodput)
    target = RunTarget(url=endpoint.base_url, model=endpoint.model, tokenizer=tokenizer_for(prof, endpoint),
                       local=endpoint.target == "local", timeout_s=settings.timeout_s)
    workdir = settings.out_dir
    started = time.monotonic()
    results: dict[int, list[PointResult]] = {i: [] for i in range(len(points))}
    out.notes.append(f"profile from {prof.file}:{prof.line}: {prof.describe()}")
    out.notes.append(scaling.describe(points))
    if sample_note:
        out.notes.append(sample_note)
    out.notes += prof.notes
    if prof.ignored:
        out.notes.append("recipe aiperf options not reproduced: " + ", ".join(prof.ignored))
    failed = False
    for trial in range(1, settings.trials + 1):
        for i, point in enumerate(points):
            adir = workdir / f"trial-{trial}" / point.label
            argv = build_argv(settings.aiperf, prof, point, target, adir, goodput=slo, scaled=scaling.scaled)
            ran = run_aiperf(argv, adir, settings.timeout_s)
            out.runs.append(ran)
            out.artifacts.append(adir)
            where = f"{point.label} (trial {trial}/{settings.trials})"
            if not ran.ok:
                out.failures.append(f"aiperf failed at {where}: {ran.describe_failure()}")
                failed = True
                break
            try:
                res = parse_export(adir, concurrency=point.concurrency, request_rate=point.request_rate,
                                   streaming=prof.streaming)
            except ResultError as exc:
                out.failures.append(f"aiperf results at {where} unusable: {exc}\n" + ran.log_tail())
                failed = True
                break
            results[i].append(res)
        if failed:
            break
    wall = time.monotonic() - started
    _summarise(plan_, endpoint, settings, points, scaling, slo, results, out, wall, failed)
    if out.inconclusive and settings.inconclusive == "fail":
        out.failures += [f"inconclusive (not established, not failed): {text}" for text in out.inconclusive]
    return out


def _summarise(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings, points: list[PerfPoint],
               scaling: Scaling, slo: dict, results: dict[int, list[PointResult]], out: PerfOutcome,
               wall: float, failed: bool) -> None:
    prof, hw = plan_.profile, plan_.hardware
    gpus = hw.gpus
    limited = tuple(lim.metric for lim in hw.limits)
    noise = settings.noise_for(endpoint.target)
    sweep = []
    curve = []
    for i, point in enumerate(points):
        values = _point_values(results[i], gpus)
        ests = _point_estimates(results[i], gpus, run_noise=noise)
        duration = sum(r.duration_s or 0.0 for r in results[i])
        sweep.append({"point": point.label, "concurrency": point.concurrency, "requestRate": point.request_rate,
                      "requestCount": point.request_count, "trials": len(results[i]),
                      "requests": sum(r.total_requests for r in results[i]), "durationS": round(duration, 3),
                      "belowMinimum": _below_minimum(hw, results[i]),
                      "values": _values_dict(values, ests),
                      "errors": sorted({e for r in results[i] for e in r.error_summary})})
        tput = ests.get("output_tokens_per_s_per_gpu")
        curve.append(plots.CurvePoint(
            point.label,
            tput.value if tput else None,
            (tput.interval[1] - tput.interval[0]) / 2 if tput and tput.interval else 0.0,
            *(ests[k].value if k in ests else None for k in ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99"))))
    all_results = [r for rs in results.values() for r in rs]
    total = sum(r.total_requests for r in all_results)
    errors = sum(r.error_requests for r in all_results)
    error_rate = errors / total if total else None
    op_index = len(points) - 1
    op_results = results[op_index] if points else []
    op_values = _point_values(op_results, gpus)
    op_est = _point_estimates(op_results, gpus, limited, noise)
    if error_rate is not None:
        op_values["error_rate"] = Aggregate(error_rate, 0.0, [error_rate])
        run_errors = stats.wilson(errors, total, trials=settings.trials)
        if run_errors is not None:
            op_est["error_rate"] = run_errors
    short = _below_minimum(hw, op_results)

    def value_of(metric: str) -> Estimate | None:
        est = op_est.get(metric)
        if est is None and op_results:
            est = estimate(op_results, metric, gpus, noise)
        return est

    verdicts: list[Verdict] = gate(hw, value_of) if not failed else []
    if short:
        # a point short of the profile's minimum establishes nothing (a clear failure stays one)
        verdicts = [replace(v, status=INSUFFICIENT, why=f"{short}; {_advice()}")
                    if v.limit.metric != "error_rate" and v.status in ("pass", INCONCLUSIVE) else v for v in verdicts]
    for v in verdicts:
        where = f" [{plan_.thresholds.file}:{v.limit.line}]" if v.limit.line else ""
        if v.status == "fail":
            text = f"{hw.id} limit: {v.describe()}{where}"
            if v.limit.metric == "error_rate":
                seen = sorted({e for r in all_results for e in r.error_summary})
                text += f" -- {errors} of {total} requests failed" + "".join(f"\n    {e}" for e in seen[:5])
            out.failures.append(text)
        elif v.status in (INCONCLUSIVE, INSUFFICIENT):
            out.inconclusive.append(f"{hw.id} limit: {v.describe()}{where}")
    if errors and not any(v.limit.metric == "error_rate" for v in verdicts):
        out.notes.append(f"{errors} of {total} requests failed (no error_rate limit for {hw.id})")
    baseline_info = _baseline(plan_, endpoint, settings, points, scaling, op_est, out, failed)
    op = points[op_index] if points else None
    verdict = "fail" if out.failures else overall(verdicts)
    gated = sorted({v.limit.metric for v in verdicts if v.status != INSUFFICIENT})
    unsupported = sorted({v.limit.metric for v in verdicts if v.status == INSUFFICIENT})
    if unsupported:
        out.notes.append(f"not gated, too few samples: {', '.join(unsupported)} ({_advice()})")
    out.metrics = {
        "hardwareProfile": hw.id,
        "gpus": gpus,
        "target": endpoint.target,
        "profile": {"file": prof.file, "line": prof.line, "endpointType": prof.endpoint_type,
                    "streaming": prof.streaming, "isl": prof.isl, "osl": prof.osl, "summary": prof.describe()},
        "scaling": scaling.to_dict(points),
        "trials": settings.trials,
        "goodputSlo": slo,
        "statistics": {"confidence": stats.CONFIDENCE, "resamples": stats.RESAMPLES, "seed": stats.SEED,
                       "runNoise": noise,
                       "minSamples": {p: stats.min_samples(p) for p in ("p50", "p90", "p95", "p99")},
                       "samplesNeeded": hw.samples_needed(), "minimum": hw.minimum.to_dict(),
                       "gated": gated, "insufficient": unsupported,
                       "trialsCombined": "requests pooled over trials; two-level bootstrap (trials, then requests)"},
        "operatingPoint": {"point": op.label if op else None, "concurrency": op.concurrency if op else None,
                           "requests": sum(r.total_requests for r in op_results),
                           "durationS": round(sum(r.duration_s or 0.0 for r in op_results), 3),
                           "belowMinimum": short,
                           "values": _values_dict(op_values, op_est)},
        "sweep": sweep,
        "requests": {"total": total, "errors": errors, "errorRate": error_rate},
        "limits": [v.to_dict() for v in verdicts],
        "baseline": baseline_info,
        "aiperfRuns": len(out.runs),
        "aiperfSeconds": round(sum(r.wall_s for r in out.runs), 3),
        "wallSeconds": round(wall, 3),
        "aiperfVersion": next((r.aiperf_version for r in all_results if r.aiperf_version), ""),
        "verdict": verdict,
    }

    def fmt(metric: str, nd: int = 1) -> str:
        v = op_est.get(metric)
        if v is None or v.value is None:
            return ""
        text = f"{v.value:.{nd}f}"
        if v.has_interval:
            text += f" ({v.low:.{nd}f}-{v.high:.{nd}f})"
        if not v.sufficient:
            return f"{text} n={v.samples}<{v.min_samples}: insufficient samples"
        return f"{text} n={v.samples}"

    out.metrics["table"] = {
        "hw": hw.id,
        "point": op.label if op else "",
        "TTFT p99 ms": fmt("ttft_p99"),
        "ITL p99 ms": fmt("itl_p99", 2),
        "tok/s/GPU": fmt("output_tokens_per_s_per_gpu"),
        "errors": f"{errors}/{total}",
        "scale": f"x{scaling.factor:g}" if scaling.scaled else "1",
        "baseline": baseline_info.get("status", ""),
        "verdict": verdict,
    }
    if not failed:
        _plots(plan_, settings, curve, results, op_index, out)


def _advice() -> str:
    return ADVICE


def _below_minimum(hw: HardwareProfile, results: list[PointResult]) -> str | None:
    """Why a point's trials together fall short of the profile's minimum, or ``None``."""
    if not results:
        return None
    m = hw.minimum
    sent = sum(r.total_requests for r in results)
    lasted = sum(r.duration_s or 0.0 for r in results)
    if m.requests and sent < m.requests:
        return f"the point sent {sent} requests, the {hw.id} minimum is {m.requests}"
    if m.duration_s and lasted < m.duration_s:
        return f"the point ran {lasted:.3g} s, the {hw.id} minimum is {m.duration_s:g} s"
    return None


def _baseline(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings, points: list[PerfPoint],
              scaling: Scaling, op_values: dict[str, Estimate], out: PerfOutcome, failed: bool) -> dict:
    if settings.baseline_dir is None:
        return {"status": "off"}
    prof = plan_.profile
    # the workload as scaled, before the operating point is raised for its samples: that part depends
    # on --perf-trials, and runs with other trial counts pool to comparable estimates
    planned = scale_points(list(scaling.original), scaling.factor, scaling.max_concurrency)[0] \
        if scaling.scaled and scaling.original else points
    run_info = {"target": endpoint.target, "scaling": scaling.to_dict(planned), "endpointType": prof.endpoint_type,
                "streaming": prof.streaming, "isl": prof.isl, "osl": prof.osl, "extraInputs": prof.extra_inputs,
                "gpus": plan_.hardware.gpus}
    print_ = bl.fingerprint(run_info)
    path = bl.baseline_file(settings.baseline_dir, plan_.recipe_id, plan_.hardware.id)
    info: dict = {"file": str(path), "fingerprint": print_}
    if failed:
        info["status"] = "not compared (run failed)"
        return info
    tracked = {k: v for k, v in op_values.items() if k in TRACKED}
    if settings.update_baseline:
        bl.save(path, bl.new(plan_.recipe_id, plan_.hardware.id, print_, settings.trials, tracked, run_info))
        out.notes.append(f"baseline written: {path}")
        info["status"] = "updated"
        return info
    try:
        base = bl.load(path)
    except bl.OldBaseline as exc:
        out.notes.append(f"{exc}; not compared")
        info["status"] = "incompatible"
        return info
    except ValueError as exc:
        out.failures.append(str(exc))
        info["status"] = "unreadable"
        return info
    if base is None:
        out.notes.append(f"no baseline at {path}; record one with --update-baseline")
        info["status"] = "missing"
        return info
    if base.fingerprint != print_:
        out.notes.append(f"baseline {path} was recorded with a different profile, scale or target; "
                         "not compared (rewrite it with --update-baseline)")
        info["status"] = "incompatible"
        return info
    comparisons = bl.compare(tracked, base, tolerance=settings.tolerance)
    info.update(status="compared", created=base.created, trials=base.trials, tolerance=settings.tolerance,
                confidence=stats.CONFIDENCE, comparisons=[c.to_dict() for c in comparisons])
    for c in comparisons:
        if c.regressed:
            out.failures.append(f"regression against baseline ({path}): {c.describe()}")
        elif c.status == bl.INCONCLUSIVE:
            out.notes.append(f"baseline ({path}): {c.describe()}")
    if any(c.regressed for c in comparisons):
        info["status"] = "regressed"
    return info


def _plots(plan_: PerfPlan, settings: PerfSettings, curve: list, results: dict[int, list[PointResult]],
           op_index: int, out: PerfOutcome) -> None:
    hw = plan_.hardware
    limits = hw.limits
    figs = settings.out_dir / "plots"
    made = plots.sweep_curve(curve, limits, figs / "sweep.png",
                             title=f"{plan_.recipe_id} on {hw.id}: throughput vs latency over the sweep")
    if made:
        out.images.append((f"{plan_.recipe_id}: throughput vs latency ({hw.id})", made))
    op_results = results[op_index]
    label = curve[op_index].label if curve else ""
    for kind, name in (("ttft", "TTFT"), ("itl", "ITL")):
        values = [v for r in op_results if r.records for v in getattr(r.records, kind)]
        pct = {}
        for p in ("p50", "p90", "p99"):
            est = estimate(op_results, f"{kind}_{p}")
            pct[p] = est.value if est else None
        lims = [lim for lim in limits if lim.metric.startswith(f"{kind}_")]
        made = plots.distribution(values, pct, lims, figs / f"{kind}.png",
                                  title=f"{name} at {label} ({len(values)} requests)" if values else f"{name} percentiles at {label}",
                                  xlabel=f"{name} (ms)")
        if made:
            out.images.append((f"{plan_.recipe_id}: {name} distribution ({hw.id})", made))
