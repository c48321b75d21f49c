"""Predicted numbers against a hardware profile's limits, with the model's tolerance.

The model predicts typical values (AIConfigurator: mean TTFT, TPOT = ITL, throughput), not tails. A
limit on any statistic of a quantity (``ttft_p50``, ``ttft_p99``, ``itl_avg`` ...) is compared with
the predicted value of that quantity; for an upper limit on a tail percentile the prediction is a
lower bound of what will be measured, so a prediction past it is certain to fail while one within
it is only "not ruled out". Verdicts, with tolerance ``t`` (default 20 %):

- ``pass``: the prediction is on the good side of the limit by more than ``t``;
- ``warn``: within ``t`` of the limit, on either side (the model cannot tell);
- ``fail``: past the limit by more than ``t``: the recipe will not meet it, or the limit is
  tighter than the model says is possible (an *impossible threshold*, reported as such).

Limits the model says nothing about (``error_rate``) are listed as not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from recipe_harness.exercise.perf.thresholds import Limit
from recipe_harness.exercise.predict import DEFAULT_TOLERANCE  # noqa: F401 -- re-exported: the gate's tolerance
from recipe_harness.exercise.predict.aic import EstimateResult

PASS, WARN, FAIL, NOT_MODELLED = "pass", "warn", "fail", "not modelled"


def predicted(metric: str, res: EstimateResult, isl: int, gpus: int) -> float | None:
    """The predicted value a limit on ``metric`` is compared with (``None``: not modelled)."""
    quantity = metric.rsplit("_", 1)[0] if metric.split("_")[0] in ("ttft", "itl", "tpot", "e2e") else metric
    if quantity == "ttft":
        return res.ttft_ms
    if quantity in ("itl", "tpot"):
        return res.tpot_ms
    if quantity == "e2e":
        return res.request_latency_ms
    if metric == "output_tokens_per_s_per_gpu":
        return res.tokens_per_s_per_gpu
    n = res.num_gpus or gpus
    if res.seq_per_s is None or not n:
        return None
    input_rate = res.seq_per_s * isl / n
    if metric == "input_tokens_per_s_per_gpu":
        return input_rate
    if metric == "total_tokens_per_s_per_gpu" and res.tokens_per_s_per_gpu is not None:
        return input_rate + res.tokens_per_s_per_gpu
    return None


@dataclass(frozen=True)
class PredictVerdict:
    limit: Limit
    value: float | None
    verdict: str
    tolerance: float

    @property
    def margin(self) -> float | None:
        """Relative distance to the limit, positive on the good side."""
        if self.value is None or not self.limit.value:
            return None
        d = (self.limit.value - self.value) / self.limit.value
        return d if self.limit.bound == "max" else -d

    def describe(self) -> str:
        if self.value is None:
            return f"{self.limit.describe()}: not modelled"
        return (f"{self.limit.describe()}: predicted {self.value:.4g} {self.limit.unit} "
                f"({'+' if (self.margin or 0) >= 0 else ''}{(self.margin or 0) * 100:.0f}% margin)")

    def to_dict(self) -> dict:
        return {"metric": self.limit.metric, "bound": self.limit.bound, "limit": self.limit.value,
                "unit": self.limit.unit, "predicted": None if self.value is None else round(self.value, 4),
                "margin": None if self.margin is None else round(self.margin, 4), "verdict": self.verdict,
                "line": self.limit.line}


def judge(limit: Limit, value: float | None, tolerance: float) -> PredictVerdict:
    if value is None:
        return PredictVerdict(limit, None, NOT_MODELLED, tolerance)
    d = (limit.value - value) / limit.value if limit.value else 0.0
    margin = d if limit.bound == "max" else -d
    verdict = PASS if margin > tolerance else FAIL if margin < -tolerance else WARN
    return PredictVerdict(limit, value, verdict, tolerance)


def gate(limits: list[Limit], res: EstimateResult, isl: int, gpus: int, tolerance: float) -> list[PredictVerdict]:
    return [judge(lim, predicted(lim.metric, res, isl, gpus), tolerance) for lim in limits]
