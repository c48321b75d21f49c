"""The top of report.html: static HTML under the title with the run's verdict, each recipe's suite
verdicts, failed checks, findings (file:line, hint, suppression), the perf table (limits, margins,
statistics, baseline deltas, verdicts) and its plots, then a section per recipe with its anchor and
links to logs and aiperf exports. Reports are made through the real plugin (see report_data.py)."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import report_data
from report_data import AGG, DISAGG

from recipe_harness.report import html as report_html
from recipe_harness.report.html import perf as perf_cells

pytest_plugins = ["pytester"]


class Tables(HTMLParser):
    """Every <table> with an id: rows of (class of the cell, text of the cell); plus ids, links and images."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.imgs: list[dict[str, str]] = []
        self._stack: list[str | None] = []
        self._cell: list[str] | None = None
        self._cls = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append({k: v or "" for k, v in a.items()})
        if tag == "table":
            self._stack.append(a.get("id"))
            if a.get("id"):
                self.tables[a["id"]] = []
        elif tag == "tr" and self._stack and self._stack[-1]:
            self.tables[self._stack[-1]].append([])
        elif tag in ("td", "th") and self._stack and self._stack[-1]:
            self._cell, self._cls = [], a.get("class") or ""
        elif tag == "br" and self._cell is not None:
            self._cell.append(" | ")

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._stack and self._stack[-1]:
            self.tables[self._stack[-1]][-1].append((self._cls, re.sub(r"\s+", " ", "".join(self._cell)).strip()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def top_of(html: str) -> str:
    begin, end = html.index(report_html.inject.BEGIN), html.index(report_html.inject.END)
    return html[begin:end]


def parse(html: str) -> Tables:
    t = Tables()
    t.feed(html)
    return t


@pytest.fixture(scope="module")
def perf_out(tmp_path_factory) -> Path:
    return report_data.shared_perf_report(tmp_path_factory)


@pytest.fixture(scope="module")
def perf_html(perf_out) -> str:
    return (perf_out / "report.html").read_text(encoding="utf-8")


def test_summary_block_comes_right_under_the_title_and_needs_no_javascript(perf_html):
    title = perf_html.index('<h1 id="title">')
    begin = perf_html.index(report_html.inject.BEGIN)
    assert title < begin < perf_html.index('<div id="environment-header">') < perf_html.index('id="results-table"')
    assert perf_html.count(report_html.inject.BEGIN) == 1
    top = top_of(perf_html)
    assert "<script" not in top.lower() and " on" + "load=" not in top.lower()
    assert not re.search(r'<(img|link|script)[^>]+(href|src)="(?!data:)[^"]+"', perf_html), "must stay self-contained"
    # pytest-html's own summary points up to it instead of repeating a table
    assert 'href="#rh-summary"' in perf_html[perf_html.index('<div class="summary">'):]


def test_recipes_table_puts_failures_first_with_each_suite_verdict_and_an_anchor(perf_html):
    t = parse(top_of(perf_html))
    rows = t.tables["rh-recipes"]
    assert [c[1] for c in rows[0]] == ["Recipe", "Verdict", "smoke", "perf"]
    assert [[c[1] for c in r] for r in rows[1:]] == [
        [DISAGG, "FAILED", "FAILED: smoke-chat", "FAILED: perf"],
        [AGG, "passed", "1 passed", "1 passed"]]
    assert rows[1][2][0] == "failed" and rows[2][3][0] == "passed"
    # every recipe has its section, reachable from the summary by its id
    assert {AGG, DISAGG} <= set(t.ids)
    assert f"#{DISAGG}" in t.hrefs and f"#{AGG}" in t.hrefs
    assert top_of(perf_html).index(f'id="{DISAGG}"') < top_of(perf_html).index(f'id="{AGG}"')
    failed = {c[0][1]: c[2][1] for c in parse(top_of(perf_html)).tables["rh-failed"][1:]}
    assert failed == {f"{DISAGG}::smoke-chat": "POST /v1/chat/completions returned 503: no workers available",
                      f"{DISAGG}::perf": "cpu-mocker limits not met: ['ttft_p99', 'itl_p99']"}


def test_perf_table_has_each_limit_with_value_margin_statistics_baseline_and_verdict(perf_html):
    rows = parse(top_of(perf_html)).tables["rh-perf-table"]
    head = [c[1] for c in rows[0]]
    assert head == ["Recipe", "Hardware", "Point", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "output tok/s/GPU",
                    "error rate", "Requests", "Baseline", "Verdict"]
    disagg, agg = (dict(zip(head, r, strict=True)) for r in rows[1:])
    assert disagg["Recipe"][1] == DISAGG and agg["Recipe"][1] == AGG        # failures first
    # agg: the recorded run's numbers against mocker-tiny's cpu-mocker limits, with the headroom
    assert agg["TTFT p50"] == ("ok", "65.9 ms | limit ≤ 1000 ms · 93% headroom")
    assert agg["TTFT p99"] == ("ok", "92.2 ms | limit ≤ 5000 ms · 98% headroom | vs baseline +15.2%")
    assert agg["output tok/s/GPU"] == ("ok", "1107 tok/s/GPU | limit ≥ 200 tok/s/GPU · 453% headroom")
    assert agg["error rate"] == ("ok", "0% | limit ≤ 0% · at the limit")
    assert agg["Point"][1].startswith("c8") and "requests x0.05" in agg["Point"][1]
    assert agg["Hardware"][1].startswith("cpu-mocker") and agg["Verdict"] == ("ok", "pass")
    assert agg["Baseline"] == ("ok", "compared") and agg["Requests"][1] == "0 errors | of 16"
    # disagg: a failed limit says how far past it is; statistics fields show, an unknown field too
    cls, text = disagg["TTFT p99"]
    assert cls == "bad" and text.startswith("120 ms fail | limit ≤ 100 ms · 20% past the limit")
    assert "CI [108 ms, 132 ms] · n=8 (needs 100)" in text and "effectSize: 0.25" in text
    cls, text = disagg["ITL p99"]
    assert cls == "warn" and "insufficient samples" in text and "8 samples, p99 needs at least 100" in text
    assert disagg["Verdict"] == ("bad", "fail")


def test_plots_are_inline_pngs_the_sweep_in_the_summary_the_distributions_in_the_section(perf_html):
    top = top_of(perf_html)
    summary_part = top[: top.index('<section class="rh-recipe"')]
    t = parse(summary_part)
    assert [i["alt"] for i in t.imgs] == [f"{DISAGG}: throughput vs latency", f"{AGG}: throughput vs latency"]
    for img in parse(top).imgs:
        data = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), img["alt"]
    section = top[top.index(f'id="{AGG}"'):]
    assert [i["alt"] for i in parse(section).imgs][:2] == [f"{AGG}: TTFT distribution", f"{AGG}: ITL distribution"]
    # each image once: pytest-html's rows no longer carry a copy
    assert len(re.findall("data:image/png;base64,", perf_html)) == 6


def test_recipe_sections_link_logs_and_aiperf_exports_relative_to_the_report(perf_out, perf_html):
    top = top_of(perf_html)
    section = top[top.index(f'id="{AGG}"'):top.index("</section>", top.index(f'id="{AGG}"'))]
    hrefs = [h for h in parse(section).hrefs if not h.startswith("#")]
    assert f"logs/{AGG}/Frontend.log" in hrefs and f"logs/{AGG}/MockerWorker-0.log" in hrefs
    assert f"perf/{AGG}/cpu-mocker/trial-1/c8/profile_export_aiperf.json" in hrefs
    assert f"logs/{AGG}/" in hrefs and f"perf/{AGG}/cpu-mocker/trial-1/c8/" in hrefs       # the folders too
    assert all((perf_out / h).is_dir() if h.endswith("/") else (perf_out / h).is_file() for h in hrefs), hrefs
    assert "<h3>Logs</h3>" in section and "<h3>Aiperf exports</h3>" in section
    assert "profile from recipes/mocker-tiny/mocker/agg/perf.yaml:29" in section       # the check's notes
    sweep = parse(section.replace('class="rh-table rh-sweep"', 'id="sweep"')).tables["sweep"]
    assert [r[0][1] for r in sweep] == ["Point", "c2", "c4", "c8"]


def test_findings_view_after_a_static_run_through_the_console_script(tmp_path):
    proc, out = report_data.static_report(tmp_path, "RH300")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    t = parse(top_of(html))
    assert [[c[1] for c in r] for r in t.tables["rh-recipes"]] == [
        ["Recipe", "Verdict", "static"], ["tiny/vllm/agg", "FAILED", "FAILED: gpu"]]
    rows = t.tables["rh-findings-table"]
    assert [c[1] for c in rows[0]] == ["Recipe", "Rule", "Severity", "Where", "Message", "Suppression"]
    (recipe, rule, severity, where, message, suppression), = rows[1:]
    assert (recipe[1], rule[1], severity[1]) == ("tiny/vllm/agg", "RH300", "error")
    assert where[1] == "fixtures/rules/RH300/recipes/tiny/vllm/agg/deploy.yaml:49:15"
    assert message[1].startswith("VllmWorker: vllm TP4 needs 4 GPUs per replica")
    assert "| hint: make resources.limits.gpu x multinode.nodeCount" in message[1] and suppression[1] == ""
    # summary.json says the same
    summary = json.loads((out / "summary.json").read_text())
    (f,) = summary["recipes"]["tiny/vllm/agg"]["checks"]["gpu"]["findings"]
    assert (f["rule"], f["line"], f["col"]) == ("RH300", 49, 15)


def test_suppressions_are_listed_with_their_reason(tmp_path):
    proc, out = report_data.static_report(tmp_path, "suppressed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = parse(top_of((out / "report.html").read_text(encoding="utf-8"))).tables["rh-findings-table"]
    (row,) = [[c[1] for c in r] for r in rows[1:]]
    assert row == ["tiny/vllm/agg", "RH312", "suppressed",
                   "fixtures/rules/suppressed/recipes/tiny/vllm/agg/.recipe-harness.yaml:2:5",
                   "RH312 is not reported for this recipe",
                   "single-node cluster: every pod runs on the node that holds the volume"]


def test_html_option_without_report_dir_gets_the_summary_too(pytester):
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_static import *\n")
    page = pytester.path / "out" / "mine.html"
    result = pytester.runpytest_subprocess("--recipes-root", str(report_data.ROOT / "fixtures/rules/RH300/recipes"),
                                           "-p", "no:cacheprovider", "--html", str(page), "-m", "static")
    assert result.ret == 1
    rows = parse(top_of(page.read_text(encoding="utf-8"))).tables["rh-findings-table"]
    assert [c[1] for c in rows[1]][1:3] == ["RH300", "error"]
    assert not (pytester.path / "out" / "summary.json").exists()      # no --report-dir: only the page asked for


# --- rendering from summary data (recorded summary.json) ---------------------------------------------


def summary_with(checks: dict, rid: str = "m/vllm/agg") -> dict:
    return {"target": "local", "exitStatus": 1, "totals": {}, "recipes": {rid: {"path": f"{rid}/deploy.yaml",
                                                                              "checks": checks}}}


def test_margin_and_numbers():
    row = {"metric": "ttft_p99", "bound": "max", "limit": 200.0, "unit": "ms", "value": 50.0, "passed": True}
    assert perf_cells.margin(row) == "75% headroom"
    assert perf_cells.margin(row | {"value": 300.0}) == "50% past the limit"
    assert perf_cells.margin({**row, "bound": "min", "unit": "tokens/s/gpu", "value": 150.0}) == "25% past the limit"
    assert perf_cells.margin({**row, "limit": 0.0, "unit": "ratio", "value": 0.02}) == "2% past the limit"
    assert perf_cells.margin(row | {"margin": -0.4}) == "40% past the limit"   # a margin the summary gives wins
    assert perf_cells.margin(row | {"value": None}) == ""
    assert [perf_cells.number(v, u) for v, u in ((1234.4, "ms"), (12.34, "ms"), (0.5, "ratio"), (None, "ms"))] == [
        "1234 ms", "12.3 ms", "50%", "n/a"]
    assert [perf_cells.metric_label(m) for m in ("ttft_p99", "e2e_p50", "output_tokens_per_s_per_gpu",
                                                "goodput_requests_per_s", "error_rate")] == [
        "TTFT p99", "E2E p50", "output tok/s/GPU", "goodput requests/s", "error rate"]


def test_estimate_shaped_values_and_a_check_without_limits():
    """Point values as estimates ({value, low, high}) or trial medians; a perf check that failed
    before gating shows its reason across the row."""
    sweep = [{"point": "c1", "requestCount": 20, "trials": 1,
              "values": {"ttft_p50": {"value": 12.0, "low": 11.0, "high": 13.0}, "itl_p50": {"median": 3.0}}}]
    html = report_html.render(summary_with({
        "perf": {"outcome": "failed", "message": "Failed: aiperf failed at c1 (trial 1/1): exit 2",
                 "metrics": {"hardwareProfile": "h200", "limits": [], "sweep": sweep, "verdict": "fail"}}}))
    perf_rows = parse(html).tables["rh-perf-table"]
    assert [c[1] for c in perf_rows[1]] == ["m/vllm/agg", "aiperf failed at c1 (trial 1/1): exit 2", "failed"]
    sweep_rows = parse(html.replace('class="rh-table rh-sweep"', 'id="sweep"')).tables["sweep"]
    assert [c[1] for c in sweep_rows[1]] == ["c1", "20", "1", "12.0 ms", "3.00 ms", "none"]


def test_text_from_recipes_is_escaped():
    evil = '<img src=x onerror=alert(1)>'
    html = report_html.render(summary_with({"schema": {"outcome": "failed", "message": evil, "findings": [
        {"rule": "RH100", "severity": "error", "file": "a.yaml", "line": 1, "col": 1, "message": evil, "hint": evil}]}},
        rid="m/<b>/agg"))
    assert "<img src=x" not in html and "m/<b>/agg" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and 'id="m/&lt;b&gt;/agg"' in html


def test_recorded_summary_shows_its_png_artifacts_and_other_tables(tmp_path):
    """Without the live session's image list the PNG artifacts are the plots; a check other than perf
    with a metrics table (predicted numbers) gets its own table."""
    png = tmp_path / "sweep.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
    html = report_html.render(summary_with({
        "perf": {"outcome": "passed", "artifacts": [str(png)], "metrics": {"hardwareProfile": "h200", "limits": [
            {"metric": "ttft_p99", "bound": "max", "limit": 100.0, "unit": "ms", "value": 50.0, "passed": True}]}},
        "predict": {"outcome": "passed", "metrics": {"table": {"TTFT p99 ms": "41", "tok/s/GPU": "3100"}}}}))
    t = parse(html)
    assert [i["alt"] for i in t.imgs] == ["sweep"]
    assert [c[1] for c in t.tables["rh-recipes"][0]] == ["Recipe", "Verdict", "perf", "predict"]
    assert "<h3>predict</h3>" in html and "<td>3100</td>" in html


def test_insert_replaces_an_earlier_block_and_falls_back_to_the_body():
    page = '<html><body><h1 id="title">t</h1><div id="environment-header"></div></body></html>'
    once = report_html.insert(page, "<p>one</p>")
    twice = report_html.insert(once, "<p>two</p>")
    assert twice.count(report_html.inject.BEGIN) == 1 and "<p>one</p>" not in twice
    assert twice.index("<p>two</p>") < twice.index('<div id="environment-header">')
    bare = report_html.insert("<html><body class='x'><p>old</p></body></html>", "<p>new</p>")
    assert bare.index("<p>new</p>") < bare.index("<p>old</p>")
    with pytest.raises(report_html.InjectError, match="no <body>"):
        report_html.insert("not html", "<p>x</p>")


def test_an_aiperf_folder_lists_its_exports_first_and_counts_the_rest(tmp_path):
    run = tmp_path / "perf" / "m" / "h200" / "trial-1" / "c8"
    names = [".aiperf_results_ready.json", "inputs.json", "aiperf.out", "profile_export_aiperf.json", "logs/aiperf.log",
             "phases/profiling/profile_export_aiperf.json", "phases/warmup/profile_export_aiperf.csv",
             "profile_export_aiperf.csv", "profile_export.jsonl", "phase_manifest.json", "profile_export_console.txt"]
    for name in names:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    outside = tmp_path.parent / "elsewhere.log"
    view = report_html.build(summary_with({"perf": {"outcome": "passed", "artifacts": [str(run), str(outside)]}}),
                             html_dir=tmp_path)
    (folder,) = view.recipes[0].links["aiperf exports"]
    assert folder.link.href == "perf/m/h200/trial-1/c8/"
    assert [f.text for f in folder.files] == ["profile_export_aiperf.json", "profile_export_aiperf.csv",
                                              "profile_export.jsonl", "aiperf.out", "logs/aiperf.log", "inputs.json",
                                              "phase_manifest.json", "profile_export_console.txt"]
    assert folder.more == 3                                        # the phase copies and the hidden marker
    (other,) = view.recipes[0].links["files"]
    assert other.link.href is None and other.link.text == str(outside)   # outside the report folder: named, not linked


def test_a_failed_deployment_still_links_the_diagnostics_in_the_report_folder(tmp_path):
    """A deployment that fails records no artifacts; its diagnostics (kubernetes target:
    <report-dir>/kubernetes/<recipe-id>/<suite>/) are found and linked, events and pods first."""
    diag = tmp_path / "kubernetes" / "m" / "vllm" / "agg" / "test_smoke" / "kubernetes"
    for name in ("logs/m-agg-vllmworker-0/main.log", "pods.json", "events.json", "events.txt", "pods.txt", "dgd.json"):
        (diag / name).parent.mkdir(parents=True, exist_ok=True)
        (diag / name).write_text("x")
    view = report_html.build(summary_with({"smoke-models": {"outcome": "error", "message": "deploying failed"}},
                                          rid="m/vllm/agg"), html_dir=tmp_path)
    (folder,) = view.recipes[0].links["logs"]
    assert folder.link.href == "kubernetes/m/vllm/agg/"
    assert [f.text for f in folder.files] == [
        "test_smoke/kubernetes/dgd.json", "test_smoke/kubernetes/events.txt", "test_smoke/kubernetes/pods.txt",
        "test_smoke/kubernetes/logs/m-agg-vllmworker-0/main.log", "test_smoke/kubernetes/events.json",
        "test_smoke/kubernetes/pods.json"]


def test_kubernetes_diagnostics_of_a_failed_deployment_are_linked_through_the_console_script(tmp_path):
    """`recipe-harness test --target kubernetes` on the emulated cluster, a worker that crash-loops past
    --max-restarts: the deployment fails, and the recipe's section links its diagnostics in the report dir."""
    from kube_emulator import EmulatedCluster, FakeCluster
    from test_kubernetes_target import CACHE, DEPLOY

    root = tmp_path / "recipes"
    (root / "tiny" / "vllm" / "agg").mkdir(parents=True)
    (root / "tiny" / "model-cache").mkdir()
    (root / "tiny" / "vllm" / "agg" / "deploy.yaml").write_text(DEPLOY)
    (root / "tiny" / "model-cache" / "cache.yaml").write_text(CACHE)
    cluster = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    try:
        cluster.call(lambda: FakeCluster(cluster.emu, platform=True, dgd_outcome="CrashLoopBackOff:VllmWorker"))
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        out = tmp_path / "report"
        env = {k: v for k, v in report_data._env().items() if k != "KUBECONFIG"} | {"HF_TOKEN": "hf_report_test"}
        proc = report_data.subprocess.run(
            [str(report_data.CLI), "test", "--target", "kubernetes", "--suite", "smoke", "--recipes-root", str(root),
             "--report-dir", str(out), "--", "--kubeconfig", str(kubeconfig), "--no-preflight", "--max-restarts", "2",
             "-k", "smoke-models", "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=report_data.TIMEOUT, env=env, cwd=tmp_path)
    finally:
        cluster.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    top = top_of((out / "report.html").read_text(encoding="utf-8"))
    section = top[top.index('id="tiny/vllm/agg"'):]
    hrefs = [h for h in parse(section).hrefs if not h.startswith("#")]
    assert "kubernetes/tiny/vllm/agg/" in hrefs, hrefs
    events = "kubernetes/tiny/vllm/agg/test_smoke/kubernetes/events.txt"
    assert events in hrefs and (out / events).is_file()
    assert "restarted 3 times (limit --max-restarts 2)" in section


def test_checks_failing_for_one_reason_share_a_row():
    why = "Failed: deploying m/vllm/agg on the local target failed: Frontend exited with code 1"
    html = report_html.render(summary_with({name: {"outcome": "error", "message": why}
                                            for name in ("smoke-models", "smoke-chat", "smoke-stream")}
                                           | {"smoke-disagg": {"outcome": "failed", "message": "E   no decode worker"}}))
    rows = [[c[1] for c in r] for r in parse(html).tables["rh-failed"][1:]]
    assert rows == [["m/vllm/agg::{smoke-chat, smoke-models, smoke-stream}", "ERROR",
                     "deploying m/vllm/agg on the local target failed: Frontend exited with code 1"],
                    ["m/vllm/agg::smoke-disagg", "FAILED", "no decode worker"]]


def test_recipes_without_a_benchmark_take_one_line_under_the_perf_table():
    row = {"metric": "ttft_p99", "bound": "max", "limit": 100.0, "unit": "ms", "value": 50.0, "passed": True}
    summary = {"recipes": {
        "a/vllm/agg": {"checks": {"perf": {"outcome": "passed", "metrics": {"hardwareProfile": "h200",
                                                                              "limits": [row]}}}},
        "b/vllm/agg": {"checks": {"perf": {"outcome": "skipped", "message": "b/vllm/agg has no perf manifest"}}},
        "c/vllm/agg": {"checks": {"perf": {"outcome": "skipped", "message": "no limits for 'h200'"}}}}}
    html = report_html.render(summary)
    assert [r[0][1] for r in parse(html).tables["rh-perf-table"][1:]] == ["a/vllm/agg"]
    line = html[html.index('id="rh-perf-skipped"'):]
    line = line[: line.index("</p>")]
    assert 'href="#b/vllm/agg" title="b/vllm/agg has no perf manifest"' in line and 'href="#c/vllm/agg"' in line


def test_a_run_that_stops_with_a_usage_error_leaves_an_earlier_report_alone(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    earlier = '<html><body><h1 id="title">an earlier run</h1><div id="environment-header"></div></body></html>'
    (out / "report.html").write_text(earlier)
    proc = report_data.subprocess.run(
        [str(report_data.CLI), "test", "--suite", "static", "--recipes-root", "fixtures/rules/RH300/recipes",
         "--recipe", "nope/*", "--report-dir", str(out)], cwd=report_data.ROOT, env=report_data._env(),
        capture_output=True, text=True, timeout=report_data.TIMEOUT)
    assert proc.returncode == 2 and "no recipes selected" in proc.stderr
    assert (out / "report.html").read_text() == earlier


def test_predictions_get_their_own_table_with_each_limit():
    """A predict check (metrics.prediction, as `recipe-harness test --suite predict` records it for
    deepseek-r1/sglang/disagg-8gpu on h200-sxm) is laid out like perf: predicted value against each limit."""
    prediction = {"hardwareProfile": "h200-sxm", "gpus": 16, "operatingPoint": "c256", "verdict": "pass", "limits": [
        {"metric": "ttft_p50", "bound": "max", "limit": 3000.0, "unit": "ms", "predicted": 136.379, "margin": 0.9545,
         "verdict": "pass", "line": 11},
        {"metric": "error_rate", "bound": "max", "limit": 0.01, "unit": "ratio", "predicted": None, "margin": None,
         "verdict": "not modelled", "line": 16}]}
    html = report_html.render(summary_with({
        "predict-h200-sxm": {"outcome": "passed", "metrics": {"prediction": prediction, "table": {"hw": "h200-sxm"}}},
        "predict-cpu-mocker": {"outcome": "skipped", "message": "hardware profile 'cpu-mocker' is a CPU profile"}}))
    rows = parse(html).tables["rh-predict-table"]
    assert [c[1] for c in rows[0]] == ["Recipe", "Hardware", "Point", "TTFT p50", "error rate", "Verdict"]
    assert [c for c in rows[1][3:]] == [("ok", "136 ms | limit ≤ 3000 ms · 95% headroom"),
                                        ("warn", "n/a not modelled | limit ≤ 1%"), ("ok", "pass")]
    assert 'id="rh-predict-skipped"' in html and "<h3>predict</h3>" not in html    # no second, generic table
