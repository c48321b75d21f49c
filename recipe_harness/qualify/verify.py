"""``recipe-harness qualify verify DIR``: does a qualification bundle hold together?

1. ``SHA256SUMS`` lists every file and each file has its checksum (no file added, removed or edited);
2. ``qualification.json`` is valid against ``schemas/qualification.schema.json``;
3. each recipe's limits are those of its ``thresholds.yaml`` in the bundle for the profile, the
   recorded estimates are those of ``report/summary.json``, each limit's status and the recipe's
   verdict and reasons are re-derived (:func:`.bundle.derive`) and must equal what is recorded;
4. the run finished (not interrupted, its exit status that of ``report/summary.json``) and judged at
   least one recipe (:func:`.bundle.incomplete`): a bundle that holds together but qualifies nothing
   is not a qualification.

Every problem is named (file, recipe, metric, what differs); any problem fails the bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipe_harness.qualify.bundle import (
    JSON_NAME,
    SUMS,
    bundle_files,
    derive,
    incomplete,
    limit_row,
    profile_limits,
    sha256,
)


def schema() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads(files("recipe_harness.data").joinpath("schemas/qualification.schema.json").read_text("utf-8"))


def check_sums(out: Path) -> list[str]:
    path = out / SUMS
    if not path.is_file():
        return [f"{path}: missing; a bundle lists the SHA-256 of every file in it"]
    problems, listed = [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            problems.append(f"{SUMS}:{n}: not '<sha256>  <path>': {line!r}")
            continue
        listed[rel] = digest
    present = set(bundle_files(out))
    for rel in sorted(set(listed) - present):
        problems.append(f"{rel}: listed in {SUMS} but missing from the bundle")
    for rel in sorted(present - set(listed)):
        problems.append(f"{rel}: in the bundle but not in {SUMS} (added after the bundle was made)")
    for rel in sorted(present & set(listed)):
        if sha256(out / rel) != listed[rel]:
            problems.append(f"{rel}: checksum differs from {SUMS} (the file was changed)")
    return problems


def check_schema(data: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [f"{JSON_NAME}: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))]


def check_recipe(out: Path, rid: str, rec: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    where = f"{JSON_NAME}: recipes/{rid}"
    problems: list[str] = []
    if rec.get("thresholds"):
        th = out / rec["thresholds"]
        try:
            wanted = profile_limits(th, rec["profile"]) if th.is_file() else None
        except Exception as exc:  # noqa: BLE001 - an unreadable thresholds file is a problem to name
            problems.append(f"{rec['thresholds']}: cannot be read: {exc}")
            wanted = None
        if wanted is None:
            problems.append(f"{where}: {rec['thresholds']} has no profile {rec['profile']}")
        else:
            got = [{k: r[k] for k in ("metric", "bound", "limit", "unit")} for r in rec.get("limits") or []]
            if got != wanted:
                problems.append(f"{where}: limits {got} differ from {rec['thresholds']} ({wanted})")
    sum_rows = {}
    if summary is not None:
        entry = (summary.get("recipes") or {}).get(rid)
        if entry is None:
            problems.append(f"{where}: not in report/summary.json")
        else:
            perf = ((entry.get("checks") or {}).get("perf") or {}).get("metrics") or {}
            sum_rows = {r.get("metric"): r for r in perf.get("limits") or []}
            for name, c in (rec.get("checks") or {}).items():
                s = (entry.get("checks") or {}).get(name) or {}
                if s.get("outcome") != c.get("outcome"):
                    problems.append(f"{where}: check {name} is {c.get('outcome')} here but {s.get('outcome')} in "
                                    "report/summary.json")
    for row in rec.get("limits") or []:
        m = row.get("measured")
        s = sum_rows.get(row["metric"])
        if summary is not None and m is not None:
            for key in ("value", "low", "high", "samples", "minSamples"):
                if s is None or s.get(key) != m.get(key):
                    problems.append(f"{where}: {row['metric']} {key} = {m.get(key)} but report/summary.json has "
                                    f"{None if s is None else s.get(key)}")
        again = limit_row({k: row[k] for k in ("metric", "bound", "limit", "unit")}, m)
        if again["status"] != row.get("status"):
            problems.append(f"{where}: {row['metric']} is recorded as {row.get('status')} but its estimate and "
                            f"limit give {again['status']}")
    verdict, reasons = derive(rec)
    if verdict != rec.get("verdict"):
        problems.append(f"{where}: verdict is {rec.get('verdict')!r} but the recorded results give {verdict!r}")
    if reasons != rec.get("reasons"):
        problems.append(f"{where}: reasons {rec.get('reasons')} differ from those the results give: {reasons}")
    return problems


def verify(out: Path) -> list[str]:
    """Every problem of the bundle in ``out``; empty when it holds together."""
    if not out.is_dir():
        return [f"{out}: not a folder; pass the --out folder of `recipe-harness qualify`"]
    problems = check_sums(out)
    try:
        data = json.loads((out / JSON_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return problems + [f"{JSON_NAME}: cannot be read: {exc}"]
    schema_problems = check_schema(data)
    if schema_problems:
        return problems + schema_problems
    summary = None
    try:
        summary = json.loads((out / data["run"]["summary"]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{data['run']['summary']}: cannot be read: {exc}")
    if summary is not None and summary.get("exitStatus") != data["run"]["exitStatus"]:
        problems.append(f"{JSON_NAME}: run/exitStatus is {data['run']['exitStatus']} but "
                        f"{data['run']['summary']} has {summary.get('exitStatus')}")
    problems += [f"{JSON_NAME}: {why}" for why in incomplete(data)]
    for rid, rec in data["recipes"].items():
        problems += check_recipe(out, rid, rec, summary)
    counts = {"recipes": len(data["recipes"]),
              "qualified": sum(1 for r in data["recipes"].values() if r["verdict"] == "qualified")}
    counts["notQualified"] = counts["recipes"] - counts["qualified"]
    if counts != data["totals"]:
        problems.append(f"{JSON_NAME}: totals {data['totals']} but the recipes give {counts}")
    return problems
