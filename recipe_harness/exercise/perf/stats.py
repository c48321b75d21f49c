"""Statistics of a perf point: estimates with sample counts and confidence intervals.

Every value the perf suite gates or compares is an :class:`Estimate`: the value, a 95 % confidence
interval, the number of samples it rests on and the number it needs.

- Percentiles (``p50`` .. ``p99``) are computed from aiperf's per-request records
  (``profile_export.jsonl``), with numpy's linear interpolation (as aiperf's own aggregates). A
  percentile of order q needs ``max(20, ceil(1 / (1 - q)))`` samples: at least one request is
  expected beyond it, and a bootstrap below 20 samples does not describe the distribution. So p50,
  p90 and p95 need 20, p99 needs 100. With fewer samples the estimate is *insufficient*, and
  :func:`judge` never lets it pass.
- Intervals are percentile bootstraps with a fixed seed (the same records give the same interval).
  Repeated trials are combined by pooling their requests (the value is the percentile of all of
  them, not a median of per-trial medians) and by a two-level bootstrap: trials are resampled, then
  requests within each picked trial, so a difference between trials widens the interval.
- Throughput has one value per run; its interval is the bootstrap of the closed-loop ratio
  ``sum(output tokens) / sum(request latency)`` (Little's law: throughput = concurrency x that
  ratio), applied relatively to the measured throughput.
- Proportions (error rate, goodput fraction) get a Wilson score interval.
- Run-to-run noise: the bootstrap describes the requests of one run, not what changes between runs
  (other load on the machine, caches, clocks). :func:`with_run_noise` widens an interval by
  ``+-noise x value`` (added linearly: conservative), the relative run-to-run variation of the
  target. On the local target it defaults to 0.10: five reruns of mocker-tiny's operating point on
  a shared 2-core machine spread by up to 9 % in throughput and ITL and 25 % in TTFT p50, while
  each run's own bootstrap interval was 1-10 % wide (``bench/perf_flip_bench.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 18_2026
MIN_SAMPLES_FLOOR = 20

_PCT = re.compile(r"^p(\d{1,2})$")


def quantile(stat: str) -> float | None:
    """``p99`` -> 0.99; ``None`` for avg/min/max/std."""
    m = _PCT.match(stat)
    return int(m.group(1)) / 100 if m else None


def min_samples(stat: str) -> int:
    """Samples a statistic needs before it is reported as more than "insufficient samples"."""
    q = quantile(stat)
    if q is None or q <= 0 or q >= 1:
        return MIN_SAMPLES_FLOOR
    return max(MIN_SAMPLES_FLOOR, math.ceil(1 / (1 - q) - 1e-9))


def metric_min_samples(metric: str) -> int:
    """:func:`min_samples` of a thresholds metric name (``ttft_p99`` -> 100)."""
    return min_samples(metric.rpartition("_")[2])


@dataclass(frozen=True)
class Estimate:
    """A measured value with its interval (``low``/``high``, ``None`` when there is none)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    samples: int = 0
    min_samples: int = 1
    trials: int = 1
    method: str = "bootstrap"      # bootstrap | wilson | point
    run_noise: float = 0.0         # relative run-to-run noise included in low/high

    @property
    def sufficient(self) -> bool:
        return self.samples >= self.min_samples

    @property
    def has_interval(self) -> bool:
        return self.interval is not None

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(low, high)``, or ``None`` when the estimate has no interval."""
        return (self.low, self.high) if self.low is not None and self.high is not None else None

    @property
    def span(self) -> tuple[float, float] | None:
        """The interval, else ``(value, value)``; ``None`` when not measured."""
        return self.interval or (None if self.value is None else (self.value, self.value))

    def describe(self, unit: str = "", nd: int = 4) -> str:
        if self.value is None:
            return "not measured"
        u = f" {unit}" if unit else ""
        text = f"{self.value:.{nd}g}{u}"
        if self.has_interval:
            text += f" [{self.low:.{nd}g}, {self.high:.{nd}g}]"
        return text + f" (n={self.samples})"

    def to_dict(self) -> dict:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)
        return {"value": r(self.value), "low": r(self.low), "high": r(self.high), "samples": self.samples,
                "minSamples": self.min_samples, "sufficient": self.sufficient, "trials": self.trials,
                "confidence": CONFIDENCE, "method": self.method, "runNoise": self.run_noise}

    @classmethod
    def from_dict(cls, data: dict) -> Estimate:
        def f(x: float | str | None) -> float | None:
            return None if x is None else float(x)
        return cls(f(data.get("value")), f(data.get("low")), f(data.get("high")), int(data.get("samples", 0)),
                   int(data.get("minSamples", 1)), int(data.get("trials", 1)), str(data.get("method", "bootstrap")),
                   float(data.get("runNoise", 0.0)))

    def overlaps(self, other: Estimate) -> bool:
        """True when the two intervals share a point (an estimate without one is its value)."""
        a, b = self.span, other.span
        if a is None or b is None:
            return True
        return a[0] <= b[1] and b[0] <= a[1]


def _groups(groups: Sequence[Sequence[float]]) -> list[np.ndarray]:
    out = [np.asarray([v for v in g if v is not None and math.isfinite(v)], dtype=float) for g in groups]
    return [g for g in out if g.size]


def bootstrap(groups: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], *,
              resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` over the pooled groups (arrays of rows).

    One group: requests are resampled. Several (trials): trials are resampled with replacement,
    then rows within each picked trial. ``statistic`` is vectorised: it gets resamples stacked on
    axis 0 (shape ``(b, rows, ...)``) and returns one value per resample."""
    rng = np.random.default_rng(seed)
    k = len(groups)
    sizes = {len(g) for g in groups}
    n = len(groups[0])
    out: list[np.ndarray] = []
    done = 0
    while done < resamples:
        b = min(_BATCH, resamples - done)
        if len(sizes) == 1:
            stacked = np.stack(list(groups))                          # (k, n, ...)
            chosen = rng.integers(0, k, (b, k)) if k > 1 else np.zeros((b, 1), dtype=int)
            rows = rng.integers(0, n, (b, k, n))
            sample = stacked[chosen[..., None], rows]                 # (b, k, n, ...)
            out.append(statistic(sample.reshape(b, k * n, *sample.shape[3:])))
        else:
            for _ in range(b):
                picked = [groups[i] for i in rng.integers(0, k, k)]
                part = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked])
                out.append(statistic(part[None, ...]))
        done += b
    values = np.concatenate(out)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


_BATCH = 250


def percentile_estimate(groups: Sequence[Sequence[float]], stat: str, **kw) -> Estimate | None:
    """``stat`` (p50..p99, avg, min, max) of the pooled per-request values of all trials."""
    arrays = _groups(groups)
    if not arrays:
        return None
    q = quantile(stat)
    if q is not None:
        def fn(a: np.ndarray) -> np.ndarray:
            return np.percentile(a, q * 100, axis=-1)
    elif stat in ("avg", "min", "max", "std"):
        reducers: dict[str, Callable[..., np.ndarray]] = {"avg": np.mean, "min": np.min, "max": np.max, "std": np.std}
        reduce = reducers[stat]

        def fn(a: np.ndarray) -> np.ndarray:
            return reduce(a, axis=-1)
    else:
        raise KeyError(f"unknown statistic {stat!r}")
    pooled = np.concatenate(arrays)
    lo, hi = bootstrap(arrays, fn, **kw)
    return Estimate(float(fn(pooled)), lo, hi, int(pooled.size), min_samples(stat), len(arrays))


def rate_estimate(measured: Sequence[float | None], tokens: Sequence[Sequence[float]],
                  latency_ms: Sequence[Sequence[float]], **kw) -> Estimate | None:
    """A throughput (one measured value per trial, averaged) with the relative interval of the
    bootstrap of sum(tokens) / sum(latency) over the requests (paired per request, per trial)."""
    vals = [v for v in measured if v is not None and math.isfinite(v)]
    if not vals:
        return None
    value = float(np.mean(vals))
    arrays = [np.column_stack([np.asarray(t, float), np.asarray(lat, float)])
              for t, lat in zip(tokens, latency_ms, strict=True) if len(t) and len(t) == len(lat)]
    samples = sum(len(a) for a in arrays)
    if not arrays:
        return Estimate(value, None, None, 0, MIN_SAMPLES_FLOOR, len(vals), "point")

    def ratio(a: np.ndarray) -> np.ndarray:
        den = a[..., 1].sum(axis=-1)
        return np.where(den > 0, a[..., 0].sum(axis=-1) / np.where(den > 0, den, 1.0), 0.0)

    pooled = np.concatenate(arrays)
    center = float(ratio(pooled))
    if center <= 0:
        return Estimate(value, None, None, samples, MIN_SAMPLES_FLOOR, len(vals), "point")
    lo, hi = bootstrap(arrays, ratio, **kw)
    return Estimate(value, value * lo / center, value * hi / center, samples, MIN_SAMPLES_FLOOR, len(vals))


def wilson(successes: int, total: int, confidence: float = CONFIDENCE, *, min_samples_: int = 1,
           trials: int = 1) -> Estimate | None:
    """A proportion with its Wilson score interval (exact at 0 and 1, unlike the normal one)."""
    if total <= 0:
        return None
    z = _z(confidence)
    p = successes / total
    denom = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Estimate(p, max(0.0, center - half), min(1.0, center + half), total, min_samples_, trials, "wilson")


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def point(value: float | None, samples: int = 0, stat: str = "") -> Estimate | None:
    """A value without records to resample (aiperf's aggregate): no interval."""
    if value is None:
        return None
    return Estimate(value, None, None, samples, min_samples(stat) if stat else MIN_SAMPLES_FLOOR, 1, "point")


def with_run_noise(est: Estimate | None, noise: float) -> Estimate | None:
    """``est`` with its interval widened by ``+-noise x |value|`` (bootstrap intervals only)."""
    if est is None or noise <= 0 or est.interval is None or est.method != "bootstrap" or est.value is None:
        return est
    low, high = est.interval
    margin = noise * abs(est.value)
    return replace(est, low=low - margin, high=high + margin, run_noise=noise)
