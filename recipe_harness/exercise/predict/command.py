"""``recipe-harness predict``: the predicted performance of recipes on their GPU hardware profiles, as text or JSON.

With ``--baseline-dir DIR`` (or ``--baseline-ref REF``) each prediction is compared with its "before"
(:mod:`.baseline`); a regression past the tolerance is a warning.

Exit status: 0 every prediction within its limits (warnings allowed unless ``--strict``), 1 a failure
(a model that does not fit, a concurrency the deployment cannot hold, a limit missed by more than
the tolerance), 2 usage error or no performance model environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_harness.exercise.predict import DEFAULT_TOLERANCE
from recipe_harness.exercise.predict.aic import AicUnavailable, default_cache, find_python
from recipe_harness.load.changed import ChangedSinceError, select
from recipe_harness.model.bundle import LoadedRecipe

if TYPE_CHECKING:  # imported in run(), see there
    from recipe_harness.exercise.predict.outcome import PredictOutcome

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware-profile", metavar="ID", action="append", default=[],
                   help="only these thresholds.yaml profiles (repeatable; default: every profile of each recipe)")
    p.add_argument("--tolerance", metavar="FRACTION", type=float, default=DEFAULT_TOLERANCE,
                   help=f"model tolerance: within it of a limit is a warning, past it a failure (default {DEFAULT_TOLERANCE})")
    p.add_argument("--aic-python", metavar="PATH", help="Python with aiconfigurator (default: ./.venv-aic/bin/python)")
    p.add_argument("--model-alias", metavar="REPO=MODELLED", action="append", default=[],
                   help="predict REPO as the model's bundled MODELLED (same architecture; repeatable)")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=600.0, help="time limit of the model's batch")
    p.add_argument("--plots", metavar="DIR", help="write a predicted sweep plot per recipe and profile into DIR")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--baseline-dir", metavar="DIR",
                   help="compare each prediction with the stored one, DIR/<recipe-id>/<profile>.json: before/after "
                        "per metric and concurrency, and the plan changes; worse by more than the tolerance is a "
                        "warning")
    p.add_argument("--update-baseline", action="store_true", help="store this run's predictions into --baseline-dir")
    p.add_argument("--baseline-ref", metavar="REF",
                   help="the 'before' is each recipe predicted as it was at git REF (no stored baseline needed)")


def _aliases(items: list[str]) -> dict[str, str]:
    out = {}
    for text in items:
        repo, eq, modelled = text.partition("=")
        if not eq or not repo.strip() or not modelled.strip():
            raise ValueError(f"--model-alias {text!r}: expected REPO=MODELLED")
        out[repo.strip()] = modelled.strip()
    return out


def run(args: argparse.Namespace, discoveries) -> int:
    # lazy: the plan imports numpy (perf.stats), ~0.2 s that every other command would pay at start, since
    # the console script's parser reads add_arguments from this module
    from recipe_harness.exercise.predict.baseline import BaselineError
    from recipe_harness.exercise.predict.check import PredictSettings, predict_all
    from recipe_harness.exercise.predict.outcome import PredictOutcome
    from recipe_harness.exercise.predict.plan import profile_ids

    if not 0 <= args.tolerance < 1:
        print("recipe-harness: --tolerance must be a fraction in [0, 1)", file=sys.stderr)
        return EXIT_USAGE
    if args.update_baseline and not args.baseline_dir:
        print("recipe-harness: --update-baseline needs --baseline-dir DIR (where to store the predictions)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        aliases = _aliases(args.model_alias)
        python = find_python(args.aic_python, [Path.cwd(), Path(__file__).resolve().parents[3]])
    except (ValueError, AicUnavailable) as exc:
        print(f"recipe-harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cases, skips = [], {}
    cache: dict = {}
    for d in discoveries:
        if getattr(args, "changed_since", None):
            try:
                sel = select(d.root, d.recipes, args.changed_since)
            except ChangedSinceError as exc:
                print(f"recipe-harness: {exc}", file=sys.stderr)
                return EXIT_USAGE
            for line in sel.describe(d.root):
                print(line, file=sys.stderr)
            d.recipes = [r for r in d.recipes if r.id in sel.reasons]
        for recipe in d.recipes:
            loaded = LoadedRecipe.load(recipe, cache)
            ids = [i for i in profile_ids(loaded) if not args.hardware_profile or i in args.hardware_profile]
            if not ids:
                skips[(recipe.id, "-")] = ("no thresholds.yaml profile" + (f" among {', '.join(args.hardware_profile)}"
                                           if args.hardware_profile else ""))
            cases += [(loaded, i) for i in ids]
    settings = PredictSettings(python=python, tolerance=args.tolerance, timeout_s=args.timeout,
                               workers=1, aliases=aliases,
                               out_dir=Path(args.plots) if args.plots else None, cache=default_cache(),
                               baseline_dir=Path(args.baseline_dir) if args.baseline_dir else None,
                               update_baseline=args.update_baseline, baseline_ref=args.baseline_ref)
    try:
        results = predict_all(cases, settings)
    except (AicUnavailable, BaselineError) as exc:
        print(f"recipe-harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results.update(skips)
    failed = [k for k, v in results.items() if isinstance(v, PredictOutcome) and v.failures]
    warned = [k for k, v in results.items() if isinstance(v, PredictOutcome) and v.warnings and not v.failures]
    if args.format == "json":
        print(json.dumps({"cases": [_json(k, v) for k, v in results.items()],
                          "totals": {"cases": len(results), "failed": len(failed), "warned": len(warned),
                                     "skipped": sum(1 for v in results.values() if isinstance(v, str))}}, indent=2))
    else:
        for key, value in results.items():
            print(_text(key, value))
        done = sum(1 for v in results.values() if isinstance(v, PredictOutcome))
        print(f"{len(results)} cases: {done} predicted ({len(failed)} failed, {len(warned)} with warnings), "
              f"{len(results) - done} skipped")
    return EXIT_FAILED if failed or (args.strict and warned) else EXIT_OK


def _json(key: tuple[str, str], value: PredictOutcome | str) -> dict:
    if isinstance(value, str):
        return {"recipe": key[0], "hardwareProfile": key[1], "outcome": "skipped", "reason": value}
    return {"recipe": key[0], "hardwareProfile": key[1],
            "outcome": "failed" if value.failures else "passed", "failures": value.failures,
            "warnings": value.warnings, "notes": value.notes, **value.metrics["prediction"],
            "plots": [str(p) for _, p in value.images]}


def _text(key: tuple[str, str], value: PredictOutcome | str) -> str:
    if isinstance(value, str):
        return f"{key[0]} on {key[1]}: skipped: {value}"
    m = value.metrics["prediction"]
    verdict = "FAIL" if value.failures else "WARN" if value.warnings else "pass"
    lines = [f"{key[0]} on {key[1]}: {verdict} ({m['system']}, {m['backend']} {m['backendVersion']}, "
             f"{m['modelledAs']}, {m['mode']}, {m['gpus']} GPUs, ISL/OSL {m['isl']}/{m['osl']})"]
    for row in m["sweep"]:
        if row["ok"]:
            lines.append(f"  c{row['concurrency']:<5} TTFT {row['ttftMs']:9.1f} ms  ITL {row['itlMs']:7.2f} ms  "
                         f"{row['outputTokensPerSPerGpu']:8.1f} tok/s/GPU")
        else:
            lines.append(f"  c{row['concurrency']:<5} {row['errorKind']}: " +
                         (f"at most {row['maxBatch']} sequences per engine rank" if row.get("maxBatch") else
                          row["error"][:200]))
    thresholds = Path(value.plan.thresholds_file)
    for v in value.verdicts:
        lines.append(f"  {thresholds}:{v.limit.line}: {v.describe()} {v.verdict}")
    base = m.get("baseline") or {}
    if base.get("points") is not None:
        from recipe_harness.exercise.predict.baseline import METRICS  # lazy, as in run()

        units = {label: unit for _, label, unit, _ in METRICS}
        lines.append(f"  before ({base['source']}) -> after; plan: {', '.join(base['planChanges']) or 'unchanged'}")
        by_c: dict[int, list[str]] = {}
        for pt in base["points"]:
            nd = 2 if pt["metric"] == "ITL" else 1
            unit = " ms" if units.get(pt["metric"]) == "ms" else ""
            by_c.setdefault(pt["concurrency"], []).append(
                f"{pt['metric']} {pt['before']:.{nd}f} -> {pt['after']:.{nd}f}{unit} (x{pt['ratio']:.2f})")
        lines += [f"  c{c:<5} " + ", ".join(cells) for c, cells in by_c.items()]
        lines += [f"  {u}" for u in base.get("unmatched", [])]
    elif base:
        lines.append(f"  baseline: {base.get('status')} ({base.get('source')})")
    lines += [f"  failure: {f}" for f in value.failures]
    lines += [f"  warning: {w}" for w in value.warnings]
    lines.append(f"  version: {m['backendVersionSource']}")
    return "\n".join(lines)
