"""The static HTML block at the top of ``report.html``: the run's verdict, a table of recipes with
the verdict of each suite, the failed checks, the findings, the perf table with the sweep plots,
then one section per recipe (anchor: its id) with its checks, findings, notes, plots and links to
its logs and aiperf exports. Failures come first everywhere. No JavaScript; images are inline
``data:`` URIs, so the file stays self-contained.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from urllib.parse import quote

from recipe_harness.report.html import perf
from recipe_harness.report.html.view import CheckView, FindingRow, Image, Link, RecipeView, RunView, anchor

MAX_TOP_FINDINGS = 40
MAX_TOP_FAILURES = 40
STATUS_WORD = {"passed": "passed", "failed": "FAILED", "error": "ERROR", "skipped": "skipped", "": ""}

STYLE = """
#rh{color:#1f2328;font-size:13px;line-height:1.4;max-width:1360px}
#rh h2{margin:14px 0 6px;font-size:16px} #rh h3{margin:10px 0 4px;font-size:14px}
#rh .rh-verdict{font-size:15px;margin:4px 0 8px}
#rh a{color:#0969da}
#rh span.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:bold;font-size:12px}
#rh span.badge.passed{background:#1a7f37} #rh span.badge.failed,#rh span.badge.error{background:#cf222e}
#rh span.badge.skipped{background:#9a6700}
#rh .rh-table{border-collapse:collapse;margin:4px 0 10px}
#rh .rh-table th,#rh .rh-table td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
#rh .rh-table th{background:#f6f8fa}
#rh .passed,#rh td.ok{color:#1a7f37} #rh .failed,#rh .error,#rh td.bad{color:#cf222e}
#rh .skipped,#rh td.warn{color:#9a6700}
#rh td.ok b,#rh td.bad b,#rh td.warn b{color:inherit}
#rh .rh-perf td{font-size:12px} #rh .sub,#rh .why{color:#57606a;font-size:11px}
#rh .word{font-weight:bold;text-transform:uppercase;font-size:11px}
#rh .hint{color:#57606a} #rh code{font-size:12px}
#rh img.rh-plot{display:block;max-width:100%;height:auto;border:1px solid #d0d7de;margin:4px 0 10px}
#rh .rh-plots-row{display:flex;flex-wrap:wrap;gap:8px} #rh .rh-plots-row img{width:49%;max-width:600px}
#rh section.rh-recipe{border-top:2px solid #d0d7de;margin-top:14px;padding-top:4px}
#rh pre{white-space:pre-wrap;background:#f6f8fa;padding:6px;margin:2px 0;max-height:320px;overflow:auto;
 font-size:12px;color:#1f2328}
#rh ul{margin:2px 0 6px;padding-left:20px} #rh .nw{white-space:nowrap}
#rh .rh-nav{font-size:12px;color:#57606a}
"""


def block(run: RunView) -> str:
    """The whole block, to go right under pytest-html's title."""
    parts = [f"<style>{STYLE}</style>", '<div id="rh">', '<section id="rh-summary">', _headline(run),
             _recipes_table(run), _failures(run), _findings(run), _perf(run), _predict(run), _perf_plots(run),
             _other_tables(run), "</section>"]
    parts += [_section(r) for r in run.recipes]
    parts.append('<p class="rh-nav"><a href="#results-table">test list (pytest-html)</a></p></div>')
    return "\n".join(p for p in parts if p)


def _badge(outcome: str) -> str:
    return f'<span class="badge {escape(outcome)}">{escape(STATUS_WORD.get(outcome, outcome))}</span>'


def _headline(run: RunView) -> str:
    t = run.totals
    counts = (f"{t.get('recipes', len(run.recipes))} recipes, {t.get('checks', 0)} checks: {t.get('passed', 0)} passed, "
              f"{t.get('failed', 0)} failed, {t.get('error', 0)} errors, {t.get('skipped', 0)} skipped; "
              f"{t.get('findings', 0)} findings")
    extra = []
    if run.suites:
        extra.append("suites " + ", ".join(run.suites))
    if run.target:
        extra.append(f"target {run.target}")
    if run.duration_s:
        extra.append(f"{run.duration_s:.0f} s")
    return (f'<h2>recipe-harness: {_badge(run.outcome)}</h2><p class="rh-verdict">{escape(counts)}'
            + (f' <span class="sub">({escape("; ".join(extra))})</span>' if extra else "") + "</p>")


def _recipes_table(run: RunView) -> str:
    if not run.recipes:
        return "<p>No recipe was tested.</p>"
    head = ["Recipe", "Verdict", *run.suites]
    rows = ['<table class="rh-table" id="rh-recipes">',
            "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in run.recipes:
        cells = [f'<td><a href="{anchor(r.id)}">{perf.recipe_id(r.id)}</a></td>', f"<td>{_badge(r.outcome)}</td>"]
        for s in run.suites:
            v = r.suites.get(s)
            if v is None:
                cells.append("<td></td>")
                continue
            word = STATUS_WORD[v.status]
            text = f"{word}: {v.detail}" if v.status == "failed" else v.detail
            cells.append(f'<td class="{v.status}">{escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _failures(run: RunView) -> str:
    """Failed and errored checks that have no findings (deploy, smoke, perf): recipe::check and why.
    Checks of one recipe failing for the same reason (a deployment that failed) share a row."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in run.recipes:
        for c in r.checks:
            if c.outcome in ("failed", "error") and not c.findings:
                why = perf.first_line(c.message) or "(no message)"
                groups.setdefault((r.id, c.outcome, why), []).append(c.name)
    if not groups:
        return ""
    out = ['<h3>Failed checks</h3><table class="rh-table" id="rh-failed">',
           "<thead><tr><th>Check</th><th>Outcome</th><th>Why</th></tr></thead><tbody>"]
    for (rid, outcome, why), names in list(groups.items())[:MAX_TOP_FAILURES]:
        checks = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
        out.append(f'<tr><td><a href="{anchor(rid)}"><code>{escape(rid)}::{escape(checks)}</code></a></td>'
                   f'<td class="{escape(outcome)}">{escape(STATUS_WORD.get(outcome, outcome))}</td>'
                   f"<td>{escape(why)}</td></tr>")
    out.append("</tbody></table>")
    if len(groups) > MAX_TOP_FAILURES:
        out.append(f"<p>... and {len(groups) - MAX_TOP_FAILURES} more in the recipes' sections below.</p>")
    return "\n".join(out)


def findings_table(rows: list[FindingRow], *, with_recipe: bool = True, table_id: str = "") -> str:
    head = (["Recipe"] if with_recipe else []) + ["Rule", "Severity", "Where", "Message", "Suppression"]
    ident = f' id="{escape(table_id, quote=True)}"' if table_id else ""
    out = [f'<table class="rh-table rh-findings"{ident}>',
           "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for f in rows:
        sev = {"error": "failed", "warning": "skipped"}.get(f.severity, "")
        cells = ([f'<td><a href="{anchor(f.recipe)}">{perf.recipe_id(f.recipe)}</a></td>'] if with_recipe else [])
        cells += [f"<td><b>{escape(f.rule)}</b></td>", f'<td class="{sev}">{escape(f.severity)}</td>',
                  f"<td>{perf.recipe_id(f.location)}</td>",
                  f"<td>{escape(f.message)}" + (f'<br><span class="hint">hint: {escape(f.hint)}</span>' if f.hint else "")
                  + "</td>",
                  f"<td>{escape(f.suppression)}</td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _findings(run: RunView) -> str:
    rows = run.findings()
    if not rows:
        return ""
    shown = rows[:MAX_TOP_FINDINGS]
    text = f'<h3 id="rh-findings">Findings ({len([f for f in rows if f.severity != "suppressed"])})</h3>'
    text += findings_table(shown, table_id="rh-findings-table")
    if len(rows) > len(shown):
        text += f"<p>... and {len(rows) - len(shown)} more in the recipes' sections below.</p>"
    return text


def _gated_table(checks: list[tuple[RecipeView, CheckView]], title: str, base: str) -> str:
    rows = [(r, c) for r, c in checks if c.outcome != "skipped"]
    skipped = [(r, c) for r, c in checks if c.outcome == "skipped"]
    if not checks:
        return ""
    out = [f'<h3 id="{base}">{escape(title)}</h3>', perf.table(rows, f"{base}-table")]
    if skipped:     # one line, so that the table and a plot stay on the first screen
        links = ", ".join(f'<a href="{anchor(r.id)}" title="{escape(c.message, quote=True)}">'
                          f"{perf.recipe_id(r.id)}</a>" for r, c in skipped)
        out.append(f'<p class="sub" id="{base}-skipped">Skipped ({len(skipped)}; the reason is in each '
                   f"recipe's section): {links}</p>")
    return "\n".join(out)


def _perf(run: RunView) -> str:
    return _gated_table(run.perf_checks(), "Performance at the operating point", "rh-perf")


def _predict(run: RunView) -> str:
    checks = [(r, c) for r in run.recipes for c in r.checks
              if c.group == "predict" and (isinstance(c.metrics.get("prediction"), dict) or c.outcome == "skipped")]
    return _gated_table(checks, "Predicted at the operating point (performance model)", "rh-predict")


def _perf_plots(run: RunView) -> str:
    """The first plot of each recipe's perf check (the sweep curve), full width."""
    return "\n".join(_img(c.images[0], f"rh-plot-{r.id}") for r, c in run.perf_checks() if c.images)


def _other_tables(run: RunView) -> str:
    """Checks other than perf that carry a ``table`` of metrics (e.g. predicted numbers)."""
    rows = [(r, c) for r in run.recipes for c in r.checks if c.group != "perf"
            and isinstance(c.metrics.get("table"), dict) and not isinstance(c.metrics.get("prediction"), dict)]
    if not rows:
        return ""
    out = []
    for suite in dict.fromkeys(c.group for _, c in rows):
        group = [(r, c) for r, c in rows if c.group == suite]
        cols = list(dict.fromkeys(k for _, c in group for k in c.metrics["table"]))
        out.append(f"<h3>{escape(suite)}</h3><table class=\"rh-table\"><thead><tr><th>Recipe</th><th>Check</th>"
                   + "".join(f"<th>{escape(str(k))}</th>" for k in cols) + "</tr></thead><tbody>")
        for r, c in group:
            out.append(f'<tr><td><a href="{anchor(r.id)}"><code>{escape(r.id)}</code></a></td><td>{escape(c.name)}</td>'
                       + "".join(f"<td>{escape(str(c.metrics['table'].get(k, '')))}</td>" for k in cols) + "</tr>")
        out.append("</tbody></table>")
    return "\n".join(out)


def _img(image: Image, element_id: str = "") -> str:
    try:
        data = base64.b64encode(Path(image.path).read_bytes()).decode("ascii")
    except OSError as exc:
        return f'<p class="failed">plot {escape(image.title)} unreadable: {escape(str(exc))}</p>'
    ident = f' id="{escape(element_id, quote=True)}"' if element_id else ""
    return (f'<img class="rh-plot"{ident} alt="{escape(image.title, quote=True)}" '
            f'title="{escape(image.title, quote=True)}" src="data:image/png;base64,{data}">')


def _link(link: Link) -> str:
    if link.href is None:
        return f"<code>{escape(link.text)}</code>"
    return f'<a href="{escape(quote(link.href, safe="/-_.~"), quote=True)}">{escape(link.text)}</a>'


def _section(r: RecipeView) -> str:
    out = [f'<section class="rh-recipe" id="{escape(r.id, quote=True)}">',
           f'<h2><a href="{anchor(r.id)}">{escape(r.id)}</a> {_badge(r.outcome)}</h2>']
    if r.path:
        out.append(f'<p class="sub">deploy file <code>{escape(r.path)}</code></p>')
    shown = [c for c in r.checks if c.outcome != "passed" or c.findings or c.group in ("perf", "predict")]
    passed = [c.name for c in r.checks if c not in shown]
    if shown:
        out.append('<table class="rh-table"><thead><tr><th>Check</th><th>Outcome</th><th>Time</th><th>Details</th>'
                   "</tr></thead><tbody>")
        for c in shown:
            # a check with findings says the same in its message: the findings table below shows them
            detail = f"<pre>{escape(c.message.strip())}</pre>" if c.message.strip() and not c.findings else ""
            if c.findings:
                detail = f"{len(c.findings)} findings (below)" if len(c.findings) > 1 else "1 finding (below)"
            if c.notes:
                detail += "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in c.notes) + "</ul>"
            out.append(f'<tr><td><code>{escape(c.name)}</code></td><td class="{c.outcome}">'
                       f"{escape(STATUS_WORD.get(c.outcome, c.outcome))}</td><td>{c.duration_s:.1f} s</td>"
                       f"<td>{detail}</td></tr>")
        out.append("</tbody></table>")
    if passed:
        out.append(f'<p class="passed">passed: {escape(", ".join(passed))}</p>')
    notes = [n for c in r.checks if c not in shown for n in c.notes]
    if notes:
        out.append("<p>Notes:</p><ul>" + "".join(f"<li>{escape(n)}</li>" for n in dict.fromkeys(notes)) + "</ul>")
    rows = sorted([*r.findings, *r.suppression_rows()], key=lambda f: (f.severity != "error", f.file, f.line, f.col))
    if rows:
        out.append("<h3>Findings</h3>" + findings_table(rows, with_recipe=False))
    for c in r.checks:
        if c.group == "perf" and c.metrics.get("sweep"):
            out.append(f"<h3>{escape(c.name)}: sweep</h3>" + perf.sweep_table(c.metrics))
        rest = c.images[1:] if c.group == "perf" else c.images
        if c.group == "perf" and c.images:
            out.append(f'<p class="rh-nav"><a href="#{escape("rh-plot-" + r.id, quote=True)}">'
                       "throughput vs latency plot (in the summary)</a></p>")
        if rest and c.group == "perf":     # the TTFT and ITL distributions side by side
            out.append('<div class="rh-plots-row">' + "".join(_img(i) for i in rest) + "</div>")
        elif rest:
            out.append("".join(_img(i) for i in rest))
    for kind, folders in r.links.items():
        items = []
        for folder in folders:
            files = " · ".join(_link(f) for f in folder.files)
            more = f" · {folder.more} more in the folder" if folder.more else ""
            items.append(f"<li>{_link(folder.link)}" + (f": {files}{more}" if files else "") + "</li>")
        out.append(f"<h3>{escape(kind.capitalize())}</h3><ul>{''.join(items)}</ul>")
    out.append('<p class="rh-nav"><a href="#rh-summary">back to the summary</a></p></section>')
    return "\n".join(out)
