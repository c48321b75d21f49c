"""Reports to look at, made in seconds through the real plugin (pytest-html and the summary block):

- :func:`perf_report`: a pytest session whose ``<recipe-id>::perf`` tests record the metrics of a real
  ``recipe-harness test --suite perf --recipe 'mocker-tiny/*'`` run (``data/report-perf-run.json``),
  the plots :mod:`recipe_harness.exercise.perf.plots` draws from them, process logs and aiperf exports.
  The disagg recipe's TTFT p99 limit is tightened to 100 ms so it fails, and its limit rows carry
  the statistics fields (interval, samples, status, why) and one field the report does not know.
- :func:`static_report`: ``recipe-harness test --suite static`` on a fixture recipe that breaks a rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDED = Path(__file__).resolve().parent / "data" / "report-perf-run.json"
AGG, DISAGG = "mocker-tiny/mocker/agg", "mocker-tiny/mocker/disagg-kv-router"
CLI = ROOT / ".venv" / "bin" / "recipe-harness"
TIMEOUT = 120

SESSION = r'''
import copy, json, os
from pathlib import Path

import pytest

from recipe_harness.exercise.perf import plots
from recipe_harness.exercise.perf.thresholds import Limit

RUN = json.loads(Path(os.environ["RH_RECORDED"]).read_text())["recipes"]
OUT = Path(os.environ["RH_REPORT_DIR"])
AGG, DISAGG = "mocker-tiny/mocker/agg", "mocker-tiny/mocker/disagg-kv-router"


def variant(rid):
    data = copy.deepcopy(RUN[rid])
    m = data["metrics"]
    if rid == AGG:
        m["baseline"] = {"status": "compared", "comparisons": [
            {"metric": "ttft_p99", "baseline": 80.0, "current": m["operatingPoint"]["values"]["ttft_p99"]["median"],
             "regressed": False}]}
    if rid == DISAGG:
        for row in m["limits"]:
            if row["metric"] == "ttft_p99":
                row.update(limit=100.0, passed=False, status="fail")
            row.update(low=round(row["value"] * 0.9, 3), high=round(row["value"] * 1.1, 3), samples=8,
                       minSamples=100 if row["metric"].endswith("p99") else 20, effectSize=0.25)
            if row["metric"] == "itl_p99":
                row.update(status="insufficient samples", passed=False,
                           why="8 samples, p99 needs at least 100; run more requests")
        m["verdict"] = "fail"
    return data


def images(rid, m):
    out = OUT / "perf" / rid / m["hardwareProfile"] / "plots"
    limits = [Limit(r["metric"], r["bound"], r["limit"], r["unit"], f"{r['bound']} {r['limit']}") for r in m["limits"]]
    points = []
    for p in m["sweep"]:
        v = {k: x["median"] for k, x in p["values"].items()}
        points.append(plots.CurvePoint(p["point"], v.get("output_tokens_per_s_per_gpu"), 0.0, v.get("ttft_p50"),
                                       v.get("ttft_p99"), v.get("itl_p50"), v.get("itl_p99")))
    made = [(f"{rid}: throughput vs latency", plots.sweep_curve(points, limits, out / "sweep.png", title=rid))]
    op = m["operatingPoint"]["values"]
    for kind, name in (("ttft", "TTFT"), ("itl", "ITL")):
        pct = {p: op[f"{kind}_{p}"]["median"] for p in ("p50", "p90", "p99")}
        lims = [lim for lim in limits if lim.metric.startswith(kind)]
        made.append((f"{rid}: {name} distribution", plots.distribution([], pct, lims, out / f"{kind}.png",
                                                                       title=f"{name} percentiles", xlabel=f"{name} (ms)")))
    return made


def artifacts(rid):
    logs = OUT / "logs" / rid
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "Frontend.log").write_text("frontend listening\n")
    (logs / "MockerWorker-0.log").write_text("worker ready\n")
    export = OUT / "perf" / rid / "cpu-mocker" / "trial-1" / "c8"
    export.mkdir(parents=True, exist_ok=True)
    (export / "profile_export_aiperf.json").write_text("{}\n")
    return [export, logs]


@pytest.mark.parametrize("rid", [AGG, DISAGG], ids=lambda r: f"{r}::perf")
def test_perf(rid, record):
    data = variant(rid)
    m = data["metrics"]
    record(metrics=m, images=images(rid, m), artifacts=artifacts(rid))
    for note in data["notes"]:
        record(note=note)
    failed = [r["metric"] for r in m["limits"] if not r["passed"]]
    assert not failed, f"cpu-mocker limits not met: {failed}"


@pytest.mark.parametrize("rid", [AGG, DISAGG], ids=lambda r: f"{r}::smoke-chat")
def test_smoke_chat(rid, record):
    assert rid == AGG, "POST /v1/chat/completions returned 503: no workers available"
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    return env


_SHARED: dict[str, Path] = {}


def shared_perf_report(tmp_path_factory) -> Path:
    """:func:`perf_report` once per session (the HTML and the browser tests read the same report)."""
    if "perf" not in _SHARED:
        _SHARED["perf"] = perf_report(tmp_path_factory.mktemp("perf-report"))
    return _SHARED["perf"]


def perf_report(work: Path) -> Path:
    """Write and run the session; returns the report folder."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "reports"
    (work / "test_recorded_perf.py").write_text(SESSION)
    env = _env() | {"RH_RECORDED": str(RECORDED), "RH_REPORT_DIR": str(out)}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(work / "test_recorded_perf.py"), "-p", "no:cacheprovider",
                           "-p", "no:randomly", "--rootdir", str(work), "-c", os.devnull,
                           "--recipes-root", str(ROOT / "recipes"), "--recipe", "mocker-tiny/*",
                           "--report-dir", str(out), "-q"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 1, f"expected failures (disagg perf, smoke-chat):\n{proc.stdout}\n{proc.stderr}"
    return out


def static_report(work: Path, fixture: str = "RH300") -> tuple[subprocess.CompletedProcess, Path]:
    """``recipe-harness test --suite static`` on ``fixtures/rules/<fixture>``, run from the repository root
    (finding paths are relative to it)."""
    out = work / "reports"
    proc = subprocess.run([str(CLI), "test", "--suite", "static", "--recipes-root",
                           str(Path("fixtures") / "rules" / fixture / "recipes"), "--report-dir", str(out)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    return proc, out
