"""``qualification.md``: one table a release manager reads (recipe, profile, verdict, key metrics
against their limits, reasons), then the system and the software it was qualified on."""

from __future__ import annotations

from typing import Any

KEY = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "output_tokens_per_s_per_gpu", "error_rate")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _metric(row: dict[str, Any], predicted: float | None = None) -> str:
    m = row.get("measured") or {}
    op = ">=" if row["bound"] == "min" else "<="
    value = "n/a" if m.get("value") is None else f"{m['value']:.4g}"
    mark = "✅" if row["status"] == "pass" else "❌"
    model = "" if predicted is None else f" (model {predicted:.4g})"
    return f"{mark} {row['metric']} {value} {op} {row['limit']:g} {row['unit']}{model}"


def render(data: dict[str, Any], incomplete: list[str] | None = None) -> str:
    """The markdown of ``qualification.json``'s ``data``; ``incomplete``: why the bundle as a whole
    qualifies nothing (:func:`.bundle.incomplete`), said above the table."""
    t = data["totals"]
    lines = [f"# Release qualification: {data['hardwareProfile']} on the {data['target']} target", "",
             f"{t['qualified']} of {t['recipes']} recipes qualified ({data['created']}, {data['perfTrials']} perf "
             f"trials per point). Verify with `recipe-harness qualify verify <this folder>`.", "",
             "| recipe | profile | verdict | metrics vs limits | reasons |", "|---|---|---|---|---|"]
    lines[4:4] = [f"**Incomplete, qualifies nothing:** {why}." for why in incomplete or []] + \
        ([""] if incomplete else [])
    for rid, rec in data["recipes"].items():
        rows = sorted(rec.get("limits") or [], key=lambda r: KEY.index(r["metric"]) if r["metric"] in KEY else 99)
        pred = rec.get("prediction") or {}
        model = {p["metric"]: p.get("predicted") for p in pred.get("metrics") or []} \
            if pred.get("status") == "recorded" else {}
        metrics = "<br>".join(_cell(_metric(r, model.get(r["metric"]))) for r in rows) or "none"
        reasons = "<br>".join(_cell(r) for r in rec["reasons"]) or "—"
        verdict = f"**{rec['verdict']}**"
        lines.append(f"| {rid} | {rec['profile']} | {verdict} | {metrics} | {reasons} |")
    s = data["system"]
    sw = s.get("software") or {}
    lines += ["", "## System", ""]
    if s.get("target") == "kubernetes":
        lines.append(f"- Kubernetes {s.get('kubernetesVersion', 'unknown')}")
        for n in s.get("nodes") or []:
            lines.append(f"- node {n['name']}: GPU {n['gpuProduct']} x {n['gpuCount']}, driver {n['driver']}")
        ops = s.get("operator")
        for op in ops if isinstance(ops, list) else []:
            lines.append(f"- Dynamo operator {op['name']} {op['version']} ({', '.join(op['images'])})")
        if not isinstance(ops, list):
            lines.append("- Dynamo operator: unknown")
        for c in s.get("storageClasses") or []:
            lines.append(f"- storage class {c['name']} ({c['provisioner']}){' default' if c['default'] else ''}")
    else:
        lines.append("- local target: Dynamo frontend + mocker processes, no GPU")
    first: dict[str, Any] = next(iter(data["recipes"].values()), {})
    hw = first.get("hardware")
    if hw:
        lines.append(f"- hardware profile {data['hardwareProfile']}: expects "
                     f"{hw.get('expected') or 'no GPU'}, found {', '.join(hw.get('found') or []) or 'no GPU'}"
                     + ("" if hw.get("matched") else f" — mismatch: {hw.get('why')}"))
    prov = data.get("provenance") or {}
    lines += ["", "## Software", "", f"- recipe-harness {sw.get('harness', 'unknown')}"]
    for key, name in (("aiDynamo", "ai-dynamo"), ("aiperf", "aiperf")):
        if key in sw:
            lines.append(f"- {name} {sw[key]}")
    tree = prov.get("recipes") or {}
    if tree:
        state = tree.get("dirty")
        dirty = " (dirty: uncommitted changes)" if state is True else " (clean)" if state is False else ""
        lines.append(f"- recipes tree {tree.get('path')} at {tree.get('commit')}{dirty}")
    for rid, images in (s.get("images") or {}).items():
        for im in images:
            lines.append(f"- {rid} {im['pod']}/{im['container']}: {im['image']} pulled as {im['imageID']}")
    for rid, procs in (s.get("mocker") or {}).items():
        for proc, args in procs.items():
            lines.append(f"- {rid} {proc}: `dynamo.mocker {_cell(args)}`")
    lines += ["", "Files: `qualification.json` (schema `schemas/qualification.schema.json`), `report/report.html`, "
                  "`report/perf/` (aiperf exports), `recipes/<id>/thresholds.yaml` as judged, `SHA256SUMS`.", ""]
    return "\n".join(lines)
