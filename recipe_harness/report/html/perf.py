"""The perf table of ``report.html``: per recipe its hardware profile, operating point, every limit
with the measured value, the margin, the baseline delta and the verdict.

Cells are read generically from the ``limits`` rows of the perf metrics in ``summary.json``
(``recipe_harness/exercise/perf/check.py`` writes them from ``Verdict.to_dict``): ``metric``, ``bound``,
``limit``, ``unit``, ``value`` and ``passed`` are laid out; a ``status``/``verdict`` word colours the
cell; an interval (``low``/``high`` or ``interval``), a sample count (``samples``/``n`` with
``minSamples``), a ``margin`` and a ``why`` are shown when present, and any other field is listed
as ``name: value`` so that new fields appear without a change here.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from recipe_harness.report.html.view import CheckView, RecipeView, anchor

LAID_OUT = {"metric", "bound", "limit", "unit", "value", "passed", "status", "verdict", "low", "high", "interval",
            "samples", "n", "minSamples", "margin", "why", "line"}
GOOD = {"pass", "passed", "ok", "compared", "updated", "off"}
BAD = {"fail", "failed", "regressed", "unreadable", "error"}
UNITS = {"ms": "ms", "tokens/s/gpu": "tok/s/GPU", "tokens/s": "tok/s", "requests/s": "req/s", "ratio": ""}
NAMES = {"ttft": "TTFT", "itl": "ITL", "e2e": "E2E", "tpot": "TPOT"}


def metric_label(metric: str) -> str:
    """``ttft_p99`` -> ``TTFT p99``; ``output_tokens_per_s_per_gpu`` -> ``output tok/s/GPU``."""
    head, _, stat = metric.partition("_")
    if head in NAMES:
        return f"{NAMES[head]} {stat.replace('_', ' ')}".strip()
    text = metric.replace("_tokens_per_s_per_gpu", " tok/s/GPU").replace("_tokens_per_s", " tok/s")
    return text.replace("_per_s", "/s").replace("_", " ")


def number(value: Any, unit: str = "") -> str:
    """A value as a reader wants it: 3 significant figures, ratios as percent."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if not math.isfinite(value):
        return str(value)
    a = abs(value)
    text = f"{value:.0f}" if a >= 100 else f"{value:.1f}" if a >= 10 else f"{value:.2f}" if a >= 0.01 or a == 0 \
        else f"{value:.2g}"
    suffix = UNITS.get(unit, unit)
    return f"{text} {suffix}".strip()


def status_of(row: dict[str, Any]) -> str:
    """The verdict word of a limit row: its ``status``/``verdict``, else from ``passed``."""
    word = row.get("status") or row.get("verdict")
    if isinstance(word, str) and word:
        return word
    return "pass" if row.get("passed") else "fail"


def css_class(word: str) -> str:
    w = word.lower()
    return "ok" if w in GOOD else "bad" if w in BAD else "warn"


def margin(row: dict[str, Any]) -> str:
    """How far the value is from its limit, on the good side (headroom) or past it."""
    given = row.get("margin")
    if isinstance(given, int | float) and not isinstance(given, bool):    # a fraction of the limit, > 0 is good
        return f"{given * 100:.0f}% headroom" if given >= 0 else f"{-given * 100:.0f}% past the limit"
    if given is not None:
        return f"margin {given}"
    value, limit = row.get("value"), row.get("limit")
    if not isinstance(value, int | float) or not isinstance(limit, int | float):
        return ""
    good = (limit - value) if row.get("bound") != "min" else (value - limit)
    if limit:
        pct = good / abs(limit) * 100
        return f"{pct:.0f}% headroom" if pct >= 0 else f"{-pct:.0f}% past the limit"
    return "at the limit" if good == 0 else (f"{number(good, row.get('unit', ''))} headroom" if good > 0
                                             else f"{number(-good, row.get('unit', ''))} past the limit")


def _interval(row: dict[str, Any], unit: str) -> str:
    low, high = row.get("low"), row.get("high")
    if isinstance(row.get("interval"), list | tuple) and len(row["interval"]) == 2:
        low, high = row["interval"]
    if low is None and high is None:
        return ""
    conf = row.get("confidence")
    label = f"{conf * 100:.0f}% CI" if isinstance(conf, int | float) else "CI"
    return f"{label} [{number(low, unit)}, {number(high, unit)}]"


def _samples(row: dict[str, Any]) -> str:
    n = row.get("samples", row.get("n"))
    if n is None:
        return ""
    need = row.get("minSamples")
    return f"n={n}" + (f" (needs {need})" if isinstance(need, int) and isinstance(n, int) and n < need else "")


def _extra(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_extra(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_extra(v) for v in value) + "]"
    return number(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def limit_cell(row: dict[str, Any], delta: str = "") -> str:
    """One limit: value, bound, margin, interval/samples, baseline delta and the verdict."""
    unit = str(row.get("unit", ""))
    word = status_of(row)
    op = "≥" if row.get("bound") == "min" else "≤"
    lines = [f'<b>{escape(number(row.get("value"), unit))}</b>'
             + ("" if word.lower() in ("pass", "passed") else f' <span class="word">{escape(word)}</span>')]
    lines.append(escape(f"limit {op} {number(row.get('limit'), unit)}" + (f" · {margin(row)}" if margin(row) else "")))
    stats = [s for s in (_interval(row, unit), _samples(row)) if s]
    if stats:
        lines.append(escape(" · ".join(stats)))
    if delta:
        lines.append(escape(delta))
    if row.get("why"):
        lines.append(f'<span class="why">{escape(str(row["why"]))}</span>')
    extra = [f"{k}: {_extra(v)}" for k, v in row.items() if k not in LAID_OUT and v not in (None, "", [], {})]
    if extra:
        lines.append(escape(" · ".join(extra)))
    return f'<td class="{css_class(word)}">' + "<br>".join(lines) + "</td>"


def baseline_deltas(metrics: dict[str, Any]) -> dict[str, str]:
    """metric -> ``vs baseline +3.1%`` from the baseline comparisons, when the run compared."""
    out = {}
    for c in (metrics.get("baseline") or {}).get("comparisons", []) or []:
        base, cur = c.get("baseline"), c.get("current")
        if isinstance(base, int | float) and isinstance(cur, int | float) and base:
            text = f"vs baseline {(cur - base) / abs(base) * 100:+.1f}%"
        elif isinstance(cur, int | float) and isinstance(base, int | float):
            text = f"vs baseline {number(cur - base)}"
        else:
            continue
        out[str(c.get("metric"))] = text + (" REGRESSED" if c.get("regressed") else "")
    return out


def gated(check: CheckView) -> dict[str, Any]:
    """A gated check's metrics in the perf table's shape: the perf check's own; a prediction's
    (``metrics.prediction`` of ``recipe_harness/exercise/predict/check.py``) with its ``predicted`` values."""
    pred = check.metrics.get("prediction")
    if not isinstance(pred, dict):
        return check.metrics
    limits = [{k: v for k, v in row.items() if k != "predicted"} | {"value": row.get("value", row.get("predicted"))}
              for row in pred.get("limits") or []]
    return {"hardwareProfile": pred.get("hardwareProfile"), "gpus": pred.get("gpus"),
            "operatingPoint": {"point": pred.get("operatingPoint")}, "limits": limits, "verdict": pred.get("verdict"),
            "baseline": pred.get("baseline")}   # before/after of recipe_harness/exercise/predict/baseline.py


def columns(rows: list[tuple[RecipeView, CheckView]]) -> list[str]:
    """The limit metrics of all the checks, in the order the thresholds list them."""
    seen: dict[str, None] = {}
    for _, c in rows:
        for lim in gated(c).get("limits") or []:
            seen.setdefault(str(lim.get("metric")), None)
    return list(seen)


def table(rows: list[tuple[RecipeView, CheckView]], table_id: str = "rh-perf-table") -> str:
    """One row per recipe's perf (or predict) check, failures first: every limit against its value."""
    if not rows:
        return ""
    metrics = columns(rows)
    has_requests = any(gated(c).get("requests") for _, c in rows)
    has_baseline = any(gated(c).get("baseline") for _, c in rows)
    head = ["Recipe", "Hardware", "Point", *(metric_label(m) for m in metrics), *(["Requests"] if has_requests else []),
            *(["Baseline"] if has_baseline else []), "Verdict"]
    out = [f'<table class="rh-table rh-perf" id="{escape(table_id, quote=True)}">',
           "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for recipe, check in rows:
        m = gated(check)
        link = f'<a href="{anchor(recipe.id)}">{recipe_id(recipe.id)}</a>'
        if not m.get("limits") and check.outcome != "passed":
            reason = first_line(check.message) or check.outcome
            out.append(f'<tr><td>{link}</td><td colspan="{len(head) - 2}" class="{css_class(check.outcome)}">'
                       f"{escape(reason)}</td><td class=\"{css_class(check.outcome)}\">{escape(check.outcome)}</td></tr>")
            continue
        by_metric = {str(lim.get("metric")): lim for lim in m.get("limits") or []}
        deltas = baseline_deltas(m)
        op = m.get("operatingPoint") or {}
        scaling = m.get("scaling") or {}
        point = escape(str(op.get("point") or ""))
        if scaling.get("scaled"):
            point += f'<br><span class="sub">requests x{scaling.get("requestFactor", 1):g}'
            if scaling.get("concurrencyFactor", 1) != 1:
                point += f', concurrency x{scaling.get("concurrencyFactor"):g}'
            point += "</span>"
        trials = m.get("trials")
        if isinstance(trials, int) and trials > 1:
            point += f'<br><span class="sub">{trials} trials</span>'
        cells = [link, escape(f"{m.get('hardwareProfile', '')}") + (f'<br><span class="sub">{m.get("gpus")} GPU</span>'
                                                                   if m.get("gpus") else ""), point]
        tds = [f"<td>{c}</td>" for c in cells]
        for metric in metrics:
            lim = by_metric.get(metric)
            tds.append(limit_cell(lim, deltas.get(metric, "")) if lim else "<td></td>")
        req = m.get("requests") or {}
        if has_requests:
            tds.append(f"<td>{escape(str(req.get('errors', 0)))} errors<br>of {escape(str(req.get('total', '')))}</td>"
                       if req else "<td></td>")
        base = (m.get("baseline") or {}).get("status", "")
        if has_baseline:
            tds.append(f'<td class="{css_class(base) if base else ""}">{escape(base)}</td>')
        verdict = str(m.get("verdict") or check.outcome)
        if check.outcome in ("failed", "error") and verdict.lower() in ("pass", "passed"):
            verdict = check.outcome        # the test failed for another reason (the deployment broke)
        tds.append(f'<td class="{css_class(verdict)}"><b>{escape(verdict)}</b></td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _value(entry: Any) -> float | None:
    """A point value: ``{"median": ..}`` (trials) or ``{"value": ..}`` (estimates) or a number."""
    if isinstance(entry, dict):
        v = entry.get("value", entry.get("median"))
        return v if isinstance(v, int | float) else None
    return entry if isinstance(entry, int | float) else None


SWEEP_COLUMNS = (("ttft_p50", "ms"), ("ttft_p99", "ms"), ("itl_p50", "ms"), ("itl_p99", "ms"),
                 ("output_tokens_per_s_per_gpu", "tokens/s/gpu"), ("requests_per_s", "requests/s"))


def sweep_table(metrics: dict[str, Any]) -> str:
    """Every point of the sweep: load, requests and the main latencies and throughput."""
    sweep = metrics.get("sweep") or []
    if not sweep:
        return ""
    cols = [(k, u) for k, u in SWEEP_COLUMNS if any(k in (p.get("values") or {}) for p in sweep)]
    head = ["Point", "Requests", "Trials", *(metric_label(k) for k, _ in cols), "Errors"]
    out = ['<table class="rh-table rh-sweep">',
           "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for p in sweep:
        values = p.get("values") or {}
        cells = [str(p.get("point", "")), str(p.get("requestCount", "")), str(p.get("trials", ""))]
        cells += [number(_value(values.get(k)), u) if k in values else "" for k, u in cols]
        cells.append("; ".join(p.get("errors") or []) or "none")
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def first_line(text: str, limit: int = 240) -> str:
    """The line of a failure message that says why: pytest's first ``E`` line of a traceback, else the
    first non-empty line (without a ``Failed:``/``Skipped:`` prefix)."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ") and line[1:].strip()]
    candidates = errors or [line.strip() for line in lines if line.strip()]
    for line in candidates:
        for prefix in ("Failed:", "Skipped:", "AssertionError:"):
            line = line.removeprefix(prefix).strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def recipe_id(rid: str) -> str:
    """A recipe id (or a path) that wraps only after its slashes, never at the hyphens of its names."""
    parts = [f'<span class="nw">{escape(p)}</span>' for p in rid.split("/")]
    return "<code>" + "/<wbr>".join(parts) + "</code>"
