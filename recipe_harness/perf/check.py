"""The perf check of one deployed recipe: plan (before deploying), run, gate, compare, plot.

:func:`plan` decides from the recipe alone whether there is anything to run: no perf manifest or
no thresholds for the chosen hardware profile is a *skip* with that reason; a perf manifest the
harness cannot read or a thresholds file that is invalid is an *error*. :func:`run` then runs the
(scaled) sweep ``trials`` times against the endpoint and returns a :class:`PerfOutcome` whose
``failures`` are the reasons to fail the test.

Gating: latency and throughput limits apply at the *operating point*, the last point of the sweep
(the recipe's highest load), on the median over trials; ``error_rate`` applies to every request
of the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import LoadedRecipe
from ..targets import Endpoint
from . import baseline as bl
from . import plots
from .profile import PerfPoint, PerfProfile, PerfProfileError, Scaling, profile_of, scale_points
from .results import Aggregate, PointResult, ResultError, aggregate, parse_export
from .runner import AiperfRun, RunTarget, build_argv, run_aiperf
from .thresholds import HardwareProfile, Thresholds, ThresholdsError, Verdict, gate, load_thresholds

TRACKED = ("ttft_p50", "ttft_p90", "ttft_p99", "itl_p50", "itl_p90", "itl_p99", "e2e_p50", "e2e_p99",
           "output_tokens_per_s_per_gpu", "output_tokens_per_s", "requests_per_s", "goodput_requests_per_s",
           "goodput_fraction")
RUN_WIDE = ("error_rate",)
DEFAULT_LOCAL_SCALE = 0.05
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
    noise_k: float = 2.0
    cpu_count: int = 2

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
    out: dict[str, Aggregate] = {}
    for name in TRACKED:
        agg = aggregate([r.metric(name, gpus) for r in results])
        if agg is not None:
            out[name] = agg
    return out


def run(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings) -> PerfOutcome:
    out = PerfOutcome()
    prof, hw = plan_.profile, plan_.hardware
    scale, cap = settings.for_target(endpoint.target)
    points, scaling = scale_points(prof.points, scale, cap)
    slo = hw.goodput_slo() or dict(prof.goodput)
    target = RunTarget(url=endpoint.base_url, model=endpoint.model, tokenizer=tokenizer_for(prof, endpoint),
                       local=endpoint.target == "local", timeout_s=settings.timeout_s)
    workdir = settings.out_dir
    started = time.monotonic()
    results: dict[int, list[PointResult]] = {i: [] for i in range(len(points))}
    out.notes.append(f"profile from {prof.file}:{prof.line}: {prof.describe()}")
    out.notes.append(scaling.describe(points))
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
    return out


def _summarise(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings, points: list[PerfPoint],
               scaling: Scaling, slo: dict, results: dict[int, list[PointResult]], out: PerfOutcome,
               wall: float, failed: bool) -> None:
    prof, hw = plan_.profile, plan_.hardware
    gpus = hw.gpus
    sweep = []
    curve = []
    for i, point in enumerate(points):
        values = _point_values(results[i], gpus)
        sweep.append({"point": point.label, "concurrency": point.concurrency, "requestRate": point.request_rate,
                      "requestCount": point.request_count, "trials": len(results[i]),
                      "values": {k: v.to_dict() for k, v in values.items()},
                      "errors": sorted({e for r in results[i] for e in r.error_summary})})
        curve.append(plots.CurvePoint(
            point.label,
            values["output_tokens_per_s_per_gpu"].median if "output_tokens_per_s_per_gpu" in values else None,
            values["output_tokens_per_s_per_gpu"].spread if "output_tokens_per_s_per_gpu" in values else 0.0,
            *(values[k].median if k in values else None for k in ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99"))))
    all_results = [r for rs in results.values() for r in rs]
    total = sum(r.total_requests for r in all_results)
    errors = sum(r.error_requests for r in all_results)
    error_rate = errors / total if total else None
    op_index = len(points) - 1
    op_values = _point_values(results[op_index], gpus) if points else {}
    if error_rate is not None:
        op_values["error_rate"] = Aggregate(error_rate, 0.0, [error_rate])

    def value_of(metric: str) -> float | None:
        if metric in op_values:
            return op_values[metric].median
        agg = aggregate([r.metric(metric, gpus) for r in results[op_index]]) if points else None
        return agg.median if agg else None

    verdicts: list[Verdict] = gate(hw, value_of) if not failed else []
    for v in verdicts:
        if not v.passed:
            text = f"{hw.id} limit: {v.describe()}" + (f" [{plan_.thresholds.file}:{v.limit.line}]" if v.limit.line else "")
            if v.limit.metric == "error_rate":
                seen = sorted({e for r in all_results for e in r.error_summary})
                text += f" -- {errors} of {total} requests failed" + "".join(f"\n    {e}" for e in seen[:5])
            out.failures.append(text)
    if errors and not any(v.limit.metric == "error_rate" for v in verdicts):
        out.notes.append(f"{errors} of {total} requests failed (no error_rate limit for {hw.id})")
    baseline_info = _baseline(plan_, endpoint, settings, points, scaling, op_values, out, failed)
    op = points[op_index] if points else None
    out.metrics = {
        "hardwareProfile": hw.id,
        "gpus": gpus,
        "target": endpoint.target,
        "profile": {"file": prof.file, "line": prof.line, "endpointType": prof.endpoint_type,
                    "streaming": prof.streaming, "isl": prof.isl, "osl": prof.osl, "summary": prof.describe()},
        "scaling": scaling.to_dict(points),
        "trials": settings.trials,
        "goodputSlo": slo,
        "operatingPoint": {"point": op.label if op else None, "concurrency": op.concurrency if op else None,
                           "values": {k: v.to_dict() for k, v in sorted(op_values.items())}},
        "sweep": sweep,
        "requests": {"total": total, "errors": errors, "errorRate": error_rate},
        "limits": [v.to_dict() for v in verdicts],
        "baseline": baseline_info,
        "aiperfRuns": len(out.runs),
        "aiperfSeconds": round(sum(r.wall_s for r in out.runs), 3),
        "wallSeconds": round(wall, 3),
        "aiperfVersion": next((r.aiperf_version for r in all_results if r.aiperf_version), ""),
        "verdict": "pass" if not out.failures else "fail",
    }

    def fmt(metric: str, nd: int = 1) -> str:
        v = op_values.get(metric)
        return "" if v is None else f"{v.median:.{nd}f}"

    out.metrics["table"] = {
        "hw": hw.id,
        "point": op.label if op else "",
        "TTFT p99 ms": fmt("ttft_p99"),
        "ITL p99 ms": fmt("itl_p99", 2),
        "tok/s/GPU": fmt("output_tokens_per_s_per_gpu"),
        "errors": f"{errors}/{total}",
        "scale": f"x{scaling.factor:g}" if scaling.scaled else "1",
        "baseline": baseline_info.get("status", ""),
        "verdict": out.metrics["verdict"],
    }
    if not failed:
        _plots(plan_, settings, curve, results, op_index, out)


def _baseline(plan_: PerfPlan, endpoint: Endpoint, settings: PerfSettings, points: list[PerfPoint],
              scaling: Scaling, op_values: dict[str, Aggregate], out: PerfOutcome, failed: bool) -> dict:
    if settings.baseline_dir is None:
        return {"status": "off"}
    prof = plan_.profile
    run_info = {"target": endpoint.target, "scaling": scaling.to_dict(points), "endpointType": prof.endpoint_type,
                "streaming": prof.streaming, "isl": prof.isl, "osl": prof.osl, "extraInputs": prof.extra_inputs,
                "gpus": plan_.hardware.gpus}
    print_ = bl.fingerprint(run_info)
    path = bl.baseline_file(settings.baseline_dir, plan_.recipe_id, plan_.hardware.id)
    info: dict = {"file": str(path), "fingerprint": print_}
    if failed:
        info["status"] = "not compared (run failed)"
        return info
    if settings.update_baseline:
        bl.save(path, bl.new(plan_.recipe_id, plan_.hardware.id, print_, settings.trials, op_values, run_info))
        out.notes.append(f"baseline written: {path}")
        info["status"] = "updated"
        return info
    try:
        base = bl.load(path)
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
    comparisons = bl.compare(op_values, base, tolerance=settings.tolerance, noise_k=settings.noise_k)
    info.update(status="compared", created=base.created, trials=base.trials,
                tolerance=settings.tolerance, noiseK=settings.noise_k,
                comparisons=[c.to_dict() for c in comparisons])
    for c in comparisons:
        if c.regressed:
            out.failures.append(f"regression against baseline ({path}): {c.describe()}")
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
        stats = [r.latency(kind) for r in op_results if r.latency(kind)]
        pct = {}
        for p in ("p50", "p90", "p99"):
            agg = aggregate([s.get(p) for s in stats])
            pct[p] = agg.median if agg else None
        lims = [lim for lim in limits if lim.metric.startswith(f"{kind}_")]
        made = plots.distribution(values, pct, lims, figs / f"{kind}.png",
                                  title=f"{name} at {label} ({len(values)} requests)" if values else f"{name} percentiles at {label}",
                                  xlabel=f"{name} (ms)")
        if made:
            out.images.append((f"{plan_.recipe_id}: {name} distribution ({hw.id})", made))
