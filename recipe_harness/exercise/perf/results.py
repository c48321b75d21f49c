"""aiperf's exports of one run as a :class:`PointResult`.

``profile_export_aiperf.json`` holds the aggregates (``{"unit": "ms", "avg": .., "p50": ..}`` per
metric tag); ``profile_export.jsonl`` (export level ``records``) holds one record per request with
a ``metadata.benchmark_phase`` (warm-up records are left out) and, for failed requests, an
``error``. Latencies are kept in ms, throughputs per second.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY_FILE = "profile_export_aiperf.json"
RECORDS_FILE = "profile_export.jsonl"
MAX_RECORDS = 200_000

LATENCY_TAGS = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "tpot": "inter_token_latency",
                "e2e": "request_latency"}
STATS = ("avg", "min", "max", "p50", "p90", "p95", "p99", "std")
_TO_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "ns": 1e-6}


class ResultError(Exception):
    """aiperf's exports are missing, unreadable or lack a metric the check needs."""


@dataclass
class Stat:
    """One latency distribution, in ms."""

    avg: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    std: float | None = None
    count: int = 0

    def get(self, stat: str) -> float | None:
        return getattr(self, stat, None)

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if getattr(self, k) is None else round(getattr(self, k), 4)) for k in (*STATS, "count")}


@dataclass
class Records:
    """Per-request values of the profiling phase (successful requests), in ms; ``tokens`` and
    ``token_latency`` pair each request's output tokens with its latency (for throughput intervals)."""

    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    errors: int = 0
    tokens: list[float] = field(default_factory=list)
    token_latency: list[float] = field(default_factory=list)


@dataclass
class PointResult:
    concurrency: int | None
    request_rate: float | None
    ttft: Stat | None
    itl: Stat | None
    e2e: Stat | None
    output_tokens_per_s: float | None
    input_tokens_per_s: float | None
    total_tokens_per_s: float | None
    requests_per_s: float | None
    goodput_requests_per_s: float | None
    good_request_fraction: float | None
    ok_requests: int
    error_requests: int
    duration_s: float | None
    error_summary: list[str] = field(default_factory=list)
    records: Records | None = None
    artifact_dir: Path | None = None
    aiperf_version: str = ""

    @property
    def total_requests(self) -> int:
        return self.ok_requests + self.error_requests

    @property
    def error_rate(self) -> float:
        return self.error_requests / self.total_requests if self.total_requests else 1.0

    def latency(self, kind: str) -> Stat | None:
        return {"ttft": self.ttft, "itl": self.itl, "tpot": self.itl, "e2e": self.e2e}[kind]

    def metric(self, name: str, gpus: int = 1) -> float | None:
        """A value by thresholds name: ``ttft_p99`` (ms), ``output_tokens_per_s_per_gpu``, ``error_rate``."""
        if name == "error_rate":
            return self.error_rate
        if name.endswith("_tokens_per_s_per_gpu"):
            kind = name.removesuffix("_tokens_per_s_per_gpu")
            total = {"output": self.output_tokens_per_s, "input": self.input_tokens_per_s,
                     "total": self.total_tokens_per_s}.get(kind)
            return None if total is None else total / max(gpus, 1)
        kind, _, stat = name.partition("_")
        if kind in LATENCY_TAGS and stat in STATS:
            s = self.latency(kind)
            return None if s is None else s.get(stat)
        simple = {"goodput_fraction": self.good_request_fraction, "requests_per_s": self.requests_per_s,
                  "goodput_requests_per_s": self.goodput_requests_per_s, "output_tokens_per_s": self.output_tokens_per_s}
        if name in simple:
            return simple[name]
        raise KeyError(f"unknown metric {name!r}")

    def to_dict(self, gpus: int = 1) -> dict:
        per_gpu = None if self.output_tokens_per_s is None else self.output_tokens_per_s / max(gpus, 1)
        return {
            "concurrency": self.concurrency,
            "requestRate": self.request_rate,
            "ttftMs": self.ttft.to_dict() if self.ttft else None,
            "itlMs": self.itl.to_dict() if self.itl else None,
            "e2eMs": self.e2e.to_dict() if self.e2e else None,
            "outputTokensPerS": _round(self.output_tokens_per_s),
            "outputTokensPerSPerGpu": _round(per_gpu),
            "requestsPerS": _round(self.requests_per_s),
            "goodputRequestsPerS": _round(self.goodput_requests_per_s),
            "goodRequestFraction": _round(self.good_request_fraction),
            "okRequests": self.ok_requests,
            "errorRequests": self.error_requests,
            "errorRate": _round(self.error_rate),
            "durationS": _round(self.duration_s),
            "errors": self.error_summary,
        }


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _avg(data: dict, tag: str) -> float | None:
    node = data.get(tag)
    if isinstance(node, dict):
        value = node.get("avg")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def _stat(data: dict, tag: str) -> Stat | None:
    node = data.get(tag)
    if not isinstance(node, dict):
        return None
    scale = _TO_MS.get(str(node.get("unit", "ms")), 1.0)
    values: dict[str, float | int | None] = {}
    for k in STATS:
        v = node.get(k)
        values[k] = float(v) * scale if isinstance(v, (int, float)) and math.isfinite(v) else None
    count = node.get("count")
    return Stat(**values, count=int(count) if isinstance(count, (int, float)) else 0)


def load_records(path: Path) -> Records:
    """Per-request TTFT, ITL and latency of the profiling phase from ``profile_export.jsonl``."""
    rec = Records()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if n >= MAX_RECORDS:
                break
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            meta = item.get("metadata") or {}
            if meta.get("benchmark_phase", "profiling") != "profiling":
                continue
            if item.get("error"):
                rec.errors += 1
                continue
            metrics = item.get("metrics") or {}
            for attr, tag in (("ttft", "time_to_first_token"), ("itl", "inter_token_latency"),
                              ("e2e", "request_latency")):
                node = metrics.get(tag)
                if isinstance(node, dict) and isinstance(node.get("value"), (int, float)):
                    getattr(rec, attr).append(float(node["value"]) * _TO_MS.get(str(node.get("unit", "ms")), 1.0))
            osl, lat = metrics.get("output_sequence_length"), metrics.get("request_latency")
            if isinstance(osl, dict) and isinstance(lat, dict) and isinstance(osl.get("value"), (int, float)) \
                    and isinstance(lat.get("value"), (int, float)):
                rec.tokens.append(float(osl["value"]))
                rec.token_latency.append(float(lat["value"]) * _TO_MS.get(str(lat.get("unit", "ms")), 1.0))
    return rec


def parse_export(artifact_dir: Path, *, concurrency: int | None = None, request_rate: float | None = None,
                 streaming: bool = True) -> PointResult:
    """The result of one aiperf run (raises :class:`ResultError` naming what is missing)."""
    summary = artifact_dir / SUMMARY_FILE
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultError(f"aiperf wrote no {SUMMARY_FILE} in {artifact_dir}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {summary}: {exc}") from None
    if not isinstance(data, dict):
        raise ResultError(f"{summary} is not a JSON object")
    if data.get("was_cancelled"):
        raise ResultError(f"aiperf reports the run as cancelled ({summary})")
    ok = int(_avg(data, "request_count") or 0)
    errors = int(_avg(data, "error_request_count") or 0)
    error_summary = []
    for item in data.get("error_summary") or []:
        if isinstance(item, dict):
            details = item.get("error_details") or {}
            error_summary.append(f"{item.get('count', '?')}x {details.get('code', '')} {details.get('type', '')}: "
                                 f"{str(details.get('message', ''))[:200]}".strip())
    good = _avg(data, "good_request_count")
    result = PointResult(
        concurrency=concurrency,
        request_rate=request_rate,
        ttft=_stat(data, "time_to_first_token"),
        itl=_stat(data, "inter_token_latency"),
        e2e=_stat(data, "request_latency"),
        output_tokens_per_s=_avg(data, "output_token_throughput"),
        input_tokens_per_s=_avg(data, "input_token_throughput"),
        total_tokens_per_s=_avg(data, "total_token_throughput"),
        requests_per_s=_avg(data, "request_throughput"),
        goodput_requests_per_s=_avg(data, "goodput"),
        good_request_fraction=(good / ok if good is not None and ok else _avg(data, "good_request_fraction")),
        ok_requests=ok,
        error_requests=errors,
        duration_s=_avg(data, "benchmark_duration"),
        error_summary=error_summary,
        artifact_dir=artifact_dir,
        aiperf_version=str(data.get("aiperf_version", "")),
    )
    if ok == 0 and errors == 0:
        raise ResultError(f"{summary} reports no requests")
    missing = []
    if ok:
        needed = {"request_latency": result.e2e, "output_token_throughput": result.output_tokens_per_s,
                  "request_throughput": result.requests_per_s}
        if streaming:
            needed.update({"time_to_first_token": result.ttft, "inter_token_latency": result.itl})
        missing = [tag for tag, value in needed.items() if value is None]
    if missing:
        hint = " (TTFT and ITL need a streaming endpoint)" if {"time_to_first_token", "inter_token_latency"} & set(missing) else ""
        raise ResultError(f"{summary} lacks {', '.join(missing)}{hint}")
    records_file = artifact_dir / RECORDS_FILE
    if records_file.is_file():
        try:
            result.records = load_records(records_file)
        except OSError:
            result.records = None
    return result


# --------------------------------------------------------------------------- trials


@dataclass
class Aggregate:
    """A metric over repeated trials: median and spread (half the range; 0 with one trial)."""

    median: float
    spread: float
    values: list[float]

    def to_dict(self) -> dict:
        return {"median": round(self.median, 6), "spread": round(self.spread, 6),
                "values": [round(v, 6) for v in self.values]}


def aggregate(values: list[float | None]) -> Aggregate | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    return Aggregate(statistics.median(vals), (max(vals) - min(vals)) / 2 if len(vals) > 1 else 0.0, vals)
