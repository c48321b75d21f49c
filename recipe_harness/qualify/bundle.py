"""The qualification bundle: ``qualification.json`` (``schemas/qualification.schema.json``),
``qualification.md``, the run's report folder (``report/``: report.html with its plots,
summary.json, junit.xml, aiperf exports, logs), each recipe's ``thresholds.yaml`` as judged
(``recipes/<id>/``), and ``SHA256SUMS`` over every file.

A recipe is *qualified* when nothing gives a reason against it: the hardware found fits the
profile, no check failed or errored, the perf check ran, at least one smoke check passed, and
every limit of the profile in the recipe's ``thresholds.yaml`` passes on the recorded estimate
(value, 95% interval, samples: :func:`recipe_harness.exercise.perf.thresholds.judge`). :func:`derive` is the
one function that decides, for :mod:`.bundle` and :mod:`.verify` alike.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_harness.exercise.perf.stats import Estimate
from recipe_harness.exercise.perf.thresholds import INSUFFICIENT, PASS, Limit, judge, load_thresholds
from recipe_harness.exercise.predict.systems import UnmappedProfile, system_of
from recipe_harness.qualify.markdown import render

SCHEMA_VERSION = 1
QUALIFIED, NOT_QUALIFIED = "qualified", "not qualified"
SUMS = "SHA256SUMS"
JSON_NAME, MD_NAME, REPORT_DIR, RECIPES_DIR = "qualification.json", "qualification.md", "report", "recipes"
RECIPE_FILES = ("thresholds.yaml", "deploy.yaml", "perf.yaml")
INTERRUPTED = 2  # pytest's ExitCode.INTERRUPTED, as summary.json's exitStatus records it


class BundleError(Exception):
    """The run left nothing a bundle can be built from (no summary.json ...)."""


@dataclass(frozen=True)
class Run:
    """What :mod:`.command` hands over: where the run's reports are and what it was for."""

    report_dir: Path
    recipes_root: Path
    profile: str
    target: str
    perf_trials: int
    command: list[str]


# --- verdicts ------------------------------------------------------------------------------------


def limit_row(limit: dict[str, Any], measured: dict[str, Any] | None) -> dict[str, Any]:
    """One limit of thresholds.yaml judged on the recorded estimate of its metric (``None``: not measured)."""
    lim = Limit(str(limit["metric"]), str(limit["bound"]), float(limit["limit"]), str(limit["unit"]), "")
    est = None
    if measured is not None and measured.get("value") is not None:
        has = measured.get("low") is not None and measured.get("high") is not None
        est = Estimate(float(measured["value"]), measured.get("low"), measured.get("high"),
                       int(measured.get("samples") or 0), int(measured.get("minSamples") or 1),
                       method="bootstrap" if has else "point")
    v = judge(lim, est)
    status, why = v.status, v.why
    # the run may judge a point below the profile's minimum (requests, duration) as establishing nothing
    if measured is not None and measured.get("runStatus") == INSUFFICIENT and status != "fail" \
            and lim.metric != "error_rate":
        status, why = INSUFFICIENT, measured.get("runWhy") or "below the profile's minimum"
    return {"metric": lim.metric, "bound": lim.bound, "limit": lim.value, "unit": lim.unit,
            "measured": measured, "status": status, "why": why}


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.4g}"


def limit_reason(row: dict[str, Any]) -> str:
    op = ">=" if row["bound"] == "min" else "<="
    m = row.get("measured")
    if not m or m.get("value") is None:
        return f"{row['metric']} not measured (limit {op} {row['limit']:g} {row['unit']})"
    return (f"{row['metric']} {row['status']}: {_fmt(m['value'])} {row['unit']} (95% CI {_fmt(m.get('low'))}-"
            f"{_fmt(m.get('high'))}, n={m.get('samples')}) vs limit {op} {row['limit']:g} {row['unit']}"
            + (f"; {row['why']}" if row.get("why") else ""))


def derive(rec: dict[str, Any]) -> tuple[str, list[str]]:
    """The verdict of one recipe record and every reason against it."""
    reasons: list[str] = []
    hw = rec.get("hardware") or {}
    if not hw.get("matched"):
        reasons.append(f"hardware: {hw.get('why') or 'does not match the profile'}")
    checks: dict[str, dict[str, Any]] = rec.get("checks") or {}
    for name, c in sorted(checks.items()):
        if name == "predict" or name.startswith("predict-"):
            continue  # the model's estimate is recorded beside the measurement (prediction), never judged
        first = (c.get("message") or "").strip().splitlines()[:1]
        if c.get("outcome") in ("failed", "error"):
            reasons.append(f"{name} {c['outcome']}" + (f": {first[0]}" if first else ""))
        elif name in ("perf", "preflight") and c.get("outcome") == "skipped":
            reasons.append(f"{name} skipped" + (f": {first[0]}" if first else ""))
    if "perf" not in checks:
        reasons.append("perf did not run (no <recipe-id>::perf result)")
    if not any(n.startswith("smoke-") and c.get("outcome") == "passed" for n, c in checks.items()):
        reasons.append("no smoke check passed")
    if not rec.get("limits"):
        reasons.append(f"thresholds.yaml sets no limits for profile {rec.get('profile')}")
    for row in rec.get("limits") or []:
        if row["status"] != PASS:
            reasons.append(limit_reason(row))
    return (QUALIFIED if not reasons else NOT_QUALIFIED), reasons


def incomplete(data: dict[str, Any]) -> list[str]:
    """Why the bundle as a whole qualifies nothing, whatever its recipes' verdicts: a run that was
    interrupted holds only what it got to, and a run with no recipe has nothing to sign off."""
    reasons = []
    if (data.get("run") or {}).get("exitStatus") == INTERRUPTED:
        reasons.append(f"the run was interrupted (exit status {INTERRUPTED}) before it finished: the bundle holds "
                       "only the results it got to; run `recipe-harness qualify` again to completion")
    if not data.get("recipes"):
        reasons.append("no recipe has a result: the selection (--recipe, --recipes-root) matched no recipe or "
                       "the run stopped before the first result")
    return reasons


# --- building ------------------------------------------------------------------------------------


def _measured(summary_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in summary_rows:
        m = {k: r.get(k) for k in ("value", "low", "high", "samples", "minSamples")}
        if r.get("status") == INSUFFICIENT:
            m.update(runStatus=INSUFFICIENT, runWhy=r.get("why") or "")
        out[str(r.get("metric"))] = m
    return out


def profile_limits(thresholds: Path, profile: str) -> list[dict[str, Any]] | None:
    th = load_thresholds(thresholds)
    hp = th.profiles.get(profile)
    if hp is None:
        return None
    return [{"metric": lim.metric, "bound": lim.bound, "limit": lim.value, "unit": lim.unit} for lim in hp.limits]


def prediction_of(checks: dict[str, Any], profile: str, limits: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's estimate at the operating point next to the measurement, when the profile maps to a
    modelled GPU system and the ``predict`` suite ran."""
    try:
        system_of(profile)
    except UnmappedProfile as exc:
        return {"status": "not modelled", "why": str(exc)}
    check = checks.get(f"predict-{profile}") or {}
    pred = (check.get("metrics") or {}).get("prediction")
    if not pred and check:  # the predict suite ran and made no estimate: say why
        first = (check.get("message") or "").strip().splitlines()[:1]
        return {"status": "not run", "why": f"predict-{profile} {check.get('outcome')}"
                + (f": {first[0]}" if first else "")}
    if not pred:
        return {"status": "not run", "why": f"no predict-{profile} result: the predict suite was not run or "
                                            "its test was deselected"}
    rows = []
    predicted = {r.get("metric"): r.get("predicted") for r in pred.get("limits") or []}
    for row in limits:
        p, m = predicted.get(row["metric"]), (row.get("measured") or {}).get("value")
        rows.append({"metric": row["metric"], "predicted": p, "measured": m,
                     "ratio": round(m / p, 4) if p and m is not None else None})
    return {"status": "recorded", "system": pred.get("system"), "model": pred.get("model"),
            "modelVersion": pred.get("modelVersion"), "operatingPoint": pred.get("operatingPoint"), "metrics": rows}


def recipe_record(rid: str, entry: dict[str, Any], run: Run, hardware: dict[str, Any], out: Path) -> dict[str, Any]:
    deploy = run.recipes_root / entry.get("path", "")
    folder = deploy.parent if deploy.name.endswith((".yaml", ".yml")) else run.recipes_root / rid
    copied = out / RECIPES_DIR / rid
    copied.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, copied / name)
    checks = {name: {"outcome": c.get("outcome", "error"), "message": c.get("message", "")}
              for name, c in sorted((entry.get("checks") or {}).items())}
    perf = (entry.get("checks") or {}).get("perf") or {}
    pm = perf.get("metrics") or {}
    measured = _measured(pm.get("limits") or [])
    thresholds = copied / "thresholds.yaml"
    wanted = profile_limits(thresholds, run.profile) if thresholds.is_file() else None
    limits = [limit_row(lim, measured.get(lim["metric"])) for lim in wanted or []]
    rec: dict[str, Any] = {
        "path": entry.get("path", ""), "profile": run.profile,
        "thresholds": f"{RECIPES_DIR}/{rid}/thresholds.yaml" if thresholds.is_file() else None,
        "hardware": hardware, "checks": checks,
        "perf": {"trials": pm.get("trials"), "operatingPoint": (pm.get("operatingPoint") or {}).get("point"),
                 "runVerdict": pm.get("verdict"), "aiperfVersion": pm.get("aiperfVersion"),
                 "exports": f"{REPORT_DIR}/perf/{rid}"} if pm else None,
        "limits": limits,
        "prediction": prediction_of(entry.get("checks") or {}, run.profile, limits),
    }
    rec["verdict"], rec["reasons"] = derive(rec)
    return rec


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(out: Path) -> list[str]:
    """Every file of the bundle but SHA256SUMS itself, as POSIX paths relative to ``out``."""
    return sorted(rel for rel in (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
                  if rel != SUMS)


def write_sums(out: Path) -> None:
    lines = [f"{sha256(out / rel)}  {rel}" for rel in bundle_files(out)]
    (out / SUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(run: Run, facts: dict[str, Any], hardware: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the bundle into ``out`` (the run's reports are already in ``out/report``); returns qualification.json."""
    summary_path = run.report_dir / "summary.json"
    if not summary_path.is_file():
        raise BundleError(f"{summary_path}: no summary.json; the run wrote no results (see its output above)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    recipes = {rid: recipe_record(rid, entry, run, hardware, out)
               for rid, entry in sorted((summary.get("recipes") or {}).items())}
    qualified = sum(1 for r in recipes.values() if r["verdict"] == QUALIFIED)
    data = {
        "schemaVersion": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "hardwareProfile": run.profile, "target": run.target, "perfTrials": run.perf_trials,
        "command": run.command,
        "run": {"summary": f"{REPORT_DIR}/summary.json", "report": f"{REPORT_DIR}/report.html",
                "exitStatus": summary.get("exitStatus"), "durationSeconds": summary.get("durationSeconds")},
        "system": facts, "provenance": facts.get("provenance", {}),
        "recipes": recipes,
        "totals": {"recipes": len(recipes), "qualified": qualified, "notQualified": len(recipes) - qualified},
    }
    data["system"] = {k: v for k, v in facts.items() if k != "provenance"}
    (out / JSON_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / MD_NAME).write_text(render(data, incomplete(data)), encoding="utf-8")
    write_sums(out)
    return data
