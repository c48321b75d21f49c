"""report.html in a real browser (Debian's Chromium, headless, 1400x900): the summary table, the perf
table and a plot are on the first screen after a perf run, the findings with file:line after a static
run; the plots render; failed tests are expanded and passed ones collapsed; without pytest-html's
JavaScript (its scripts removed from a copy) the first screen shows the same. Layout is read from the
page itself: a probe script added to a copy of the report writes element boxes (page coordinates at
1400 px width) into the DOM, which ``--dump-dom`` prints; the fold is at 900 px, the height of the
screenshot, which is checked by content (the plot's colours inside the first screen). Chromium's
``--blink-settings=scriptEnabled=false`` also stops ``--dump-dom`` and ``--screenshot``, so scripts
are removed from the file instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import report_data

from recipe_harness.exercise.perf.plots import LIMIT_STYLE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1400, 900
TIMEOUT = 90

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y "
                                                          "chromium; .ci/run installs it)")

PROBE = """
<script>
window.addEventListener('load', () => setTimeout(() => {
  const box = (sel) => {
    const e = document.querySelector(sel);
    if (!e) return null;
    const r = e.getBoundingClientRect();
    return {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right, height: r.height,
            visible: getComputedStyle(e).display !== 'none' && r.height > 0};
  };
  const img = document.querySelector('#rh-summary img.rh-plot');
  const rows = [...document.querySelectorAll('#results-table tbody.results-table-row')].map((tb) => ({
    id: tb.id, result: tb.querySelector('.col-result')?.textContent,
    expanded: tb.querySelector('.extras-row').offsetHeight > 0}));
  const out = {viewport: [innerWidth, innerHeight], recipes: box('#rh-recipes'), perf: box('#rh-perf-table'),
               findings: box('#rh-findings-table'), plot: box('#rh-summary img.rh-plot'),
               plotPixels: img ? [img.naturalWidth, img.naturalHeight] : null, rows,
               findingsText: document.querySelector('#rh-findings-table')?.innerText || ''};
  const pre = document.createElement('pre');
  pre.id = 'rh-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 200));
</script>
"""


def chromium(url: str, *args: str) -> str:
    """Run headless Chromium on ``url``; its own process group, killed on timeout; a new profile dir."""
    profile = tempfile.mkdtemp(prefix="rh-chromium-")
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars",
            *args, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish {url} within {TIMEOUT} s") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)      # helpers it left behind
        except ProcessLookupError:
            pass
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, f"chromium exited with {proc.returncode} on {url}"
    return out


def without_scripts(report: Path) -> Path:
    """A copy of the report without its scripts: what a reader with JavaScript off gets."""
    html, removed = re.subn(r"<script\b.*?</script>", "", report.read_text(encoding="utf-8"), flags=re.S | re.I)
    assert removed >= 1, "pytest-html's report has its script"
    copy = report.with_name("nojs.html")
    copy.write_text(html, encoding="utf-8")
    return copy


def layout(report: Path) -> dict:
    """The probe's boxes of the report's elements (a copy of the report, the probe added)."""
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = chromium(probe.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    finally:
        probe.unlink()
    m = re.search(r'<pre id="rh-probe">(.*?)</pre>', dom, re.S)
    assert m, "the probe did not run (no #rh-probe in the DOM)"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def screenshot(report: Path, dest: Path):
    chromium(report.as_uri(), f"--screenshot={dest}", "--virtual-time-budget=5000")
    import matplotlib.image as mpimg

    return mpimg.imread(dest)        # HEIGHT x WIDTH x 4 floats


def near(pixels, hex_colour: str, tol: float = 0.1) -> int:
    """How many pixels are within ``tol`` of the colour."""
    import numpy as np

    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(pixels[..., :3] - rgb).max(axis=-1) < tol).sum())


def on_first_screen(box: dict | None) -> bool:
    return box is not None and box["visible"] and box["top"] < HEIGHT - 100


@pytest.fixture(scope="module")
def perf_out(tmp_path_factory) -> Path:
    return report_data.shared_perf_report(tmp_path_factory)


def test_perf_report_first_screen(perf_out, tmp_path):
    report = perf_out / "report.html"
    box = layout(report)
    assert box["viewport"][0] == WIDTH
    for name in ("recipes", "perf", "plot"):
        assert on_first_screen(box[name]), f"{name} is not on the first screen: {box[name]}"
    assert box["recipes"]["bottom"] <= box["perf"]["top"] <= box["plot"]["top"]
    assert box["perf"]["bottom"] < HEIGHT, "the perf table is cut by the fold"
    assert box["plotPixels"] == [1200, 400]          # the sweep plot decoded, at its own size
    assert box["plot"]["right"] <= WIDTH
    # pytest-html's test list: failed tests expanded, passed ones collapsed
    rows = {r["id"].rpartition("[")[2].rstrip("]"): (r["result"], r["expanded"]) for r in box["rows"]}
    assert rows == {
        "mocker-tiny/mocker/disagg-kv-router::perf": ("Failed", True),
        "mocker-tiny/mocker/disagg-kv-router::smoke-chat": ("Failed", True),
        "mocker-tiny/mocker/agg::perf": ("Passed", False),
        "mocker-tiny/mocker/agg::smoke-chat": ("Passed", False)}
    # the screenshot shows the plot: its limit lines and p50 curve are drawn inside the first screen
    pixels = screenshot(report, tmp_path / "perf.png")
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    top = int(box["plot"]["top"])
    assert near(pixels[top:], "#2c7fb8") > 300                    # the p50 curve and markers
    assert near(pixels[top:], LIMIT_STYLE["color"], 0.2) > 100    # the dashed, anti-aliased limit lines
    assert near(pixels[:top], "#2c7fb8") < 50                     # above the plot: tables, not plots


def test_first_screen_without_javascript(perf_out, tmp_path):
    """pytest-html's script removed: the summary block lays out the same (it is static HTML)."""
    nojs = without_scripts(perf_out / "report.html")
    try:
        box = layout(nojs)
        assert box["rows"] == []                       # pytest-html's list needs its script
        for name in ("recipes", "perf", "plot"):
            assert on_first_screen(box[name]), f"{name} is not on the first screen without JavaScript: {box[name]}"
        pixels = screenshot(nojs, tmp_path / "nojs.png")
    finally:
        nojs.unlink()
    assert near(pixels, "#2c7fb8") > 300 and near(pixels, LIMIT_STYLE["color"], 0.2) > 100


def test_static_report_first_screen_shows_findings(tmp_path):
    proc, out = report_data.static_report(tmp_path, "RH300")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    box = layout(out / "report.html")
    assert on_first_screen(box["recipes"]) and on_first_screen(box["findings"])
    assert box["findings"]["bottom"] < HEIGHT
    assert "fixtures/rules/RH300/recipes/tiny/vllm/agg/deploy.yaml:49:15" in box["findingsText"]
    assert "RH300" in box["findingsText"] and "hint: make resources.limits.gpu" in box["findingsText"]
