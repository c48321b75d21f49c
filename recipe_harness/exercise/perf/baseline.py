"""Baselines: a recipe's perf results on one hardware profile, kept as JSON between runs.

``<baseline-dir>/<recipe-id>/<hardware-profile>.json`` holds, per tracked metric of the operating
point, its :class:`~.stats.Estimate` (value, 95 % interval, samples, trials), and a fingerprint of
what was run (scaled sweep, workload, target) so results of a different profile are never compared.

A metric regresses only when it is worse than the baseline by more than ``tolerance x |baseline|``
*and* the two confidence intervals separate (no overlap): the tolerance says what size of change
matters, the intervals say the change is not noise. Worse by more than the tolerance with
overlapping intervals is *inconclusive* (run more requests or trials); an estimate with too few
samples for its order is *insufficient* and never compared.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from recipe_harness.exercise.perf.stats import Estimate

SCHEMA_VERSION = 2
HIGHER_IS_BETTER = ("_tokens_per_s_per_gpu", "_tokens_per_s", "requests_per_s", "goodput_fraction")


def higher_is_better(metric: str) -> bool:
    return metric.endswith(HIGHER_IS_BETTER)


def fingerprint(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def baseline_file(root: Path, recipe_id: str, hardware_profile: str) -> Path:
    parts = [p for p in recipe_id.split("/") if p not in ("", ".", "..")]
    return root.joinpath(*parts) / f"{hardware_profile}.json"


@dataclass
class Baseline:
    recipe: str
    hardware_profile: str
    fingerprint: str
    created: str
    trials: int
    metrics: dict[str, Estimate]
    run: dict

    def to_dict(self) -> dict:
        return {"schemaVersion": SCHEMA_VERSION, "recipe": self.recipe, "hardwareProfile": self.hardware_profile,
                "fingerprint": self.fingerprint, "created": self.created, "trials": self.trials,
                "run": self.run, "metrics": {k: v.to_dict() for k, v in sorted(self.metrics.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> Baseline:
        if data.get("schemaVersion") == 1:
            raise OldBaseline("baseline of schemaVersion 1 has no confidence intervals")
        if data.get("schemaVersion") != SCHEMA_VERSION:
            raise ValueError(f"baseline schemaVersion {data.get('schemaVersion')!r} is not {SCHEMA_VERSION}")
        metrics = {k: Estimate.from_dict(v) for k, v in data["metrics"].items()}
        return cls(data["recipe"], data["hardwareProfile"], data["fingerprint"], data.get("created", ""),
                   int(data.get("trials", 1)), metrics, data.get("run", {}))


class OldBaseline(ValueError):
    """A baseline written by a version without intervals: not comparable, rewrite it."""


def load(path: Path) -> Baseline | None:
    """The stored baseline, ``None`` when there is none (raises ValueError when it is unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Baseline.from_dict(json.loads(text))
    except OldBaseline as exc:
        raise OldBaseline(f"baseline {path}: {exc}; rewrite it with --update-baseline") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"baseline {path} is unreadable ({exc}); rewrite it with --update-baseline") from None


def save(path: Path, baseline: Baseline) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(baseline.to_dict(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new(recipe: str, hardware_profile: str, print_: str, trials: int, metrics: dict[str, Estimate],
        run: dict) -> Baseline:
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Baseline(recipe, hardware_profile, print_, created, trials, metrics, run)


REGRESSED, IMPROVED, SAME, INCONCLUSIVE, INSUFFICIENT = "regressed", "improved", "same", "inconclusive", \
    "insufficient samples"


@dataclass
class Comparison:
    metric: str
    baseline: Estimate
    current: Estimate
    allowed: float        # how much worse the value may get before it matters (tolerance x |baseline|)
    worse_by: float       # > 0: worse than the baseline, < 0: better
    status: str           # regressed | improved | same | inconclusive | insufficient samples

    @property
    def regressed(self) -> bool:
        return self.status == REGRESSED

    @property
    def separated(self) -> bool:
        return not self.current.overlaps(self.baseline)

    def describe(self) -> str:
        base = self.baseline.value or 0.0
        rel = self.worse_by / abs(base) if base else float("inf") if self.worse_by else 0.0
        word = "worse" if self.worse_by > 0 else "better"
        text = (f"{self.metric}: {self.current.describe()} vs baseline {self.baseline.describe()} "
                f"({abs(rel):.1%} {word}; tolerance {self.allowed:.4g}; intervals "
                f"{'separate' if self.separated else 'overlap'})")
        return text + {REGRESSED: " REGRESSION", INCONCLUSIVE: " inconclusive: run more requests or trials",
                       INSUFFICIENT: " not compared: insufficient samples"}.get(self.status, "")

    def to_dict(self) -> dict:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)
        return {"metric": self.metric, "baseline": r(self.baseline.value), "current": r(self.current.value),
                "baselineLow": r(self.baseline.low), "baselineHigh": r(self.baseline.high),
                "currentLow": r(self.current.low), "currentHigh": r(self.current.high),
                "baselineSamples": self.baseline.samples, "currentSamples": self.current.samples,
                "allowed": r(self.allowed), "worseBy": r(self.worse_by), "separated": self.separated,
                "status": self.status, "regressed": self.regressed}


def compare(current: dict[str, Estimate], base: Baseline, *, tolerance: float = 0.10) -> list[Comparison]:
    out = []
    for metric, now in sorted(current.items()):
        then = base.metrics.get(metric)
        if then is None or then.value is None or now.value is None:
            continue
        worse_by = (then.value - now.value) if higher_is_better(metric) else (now.value - then.value)
        allowed = tolerance * abs(then.value)
        c = Comparison(metric, then, now, allowed, worse_by, SAME)
        if not (now.sufficient and then.sufficient and now.has_interval and then.has_interval):
            c.status = INSUFFICIENT
        elif c.separated and worse_by > allowed:
            c.status = REGRESSED
        elif c.separated and -worse_by > allowed:
            c.status = IMPROVED
        elif worse_by > allowed:
            c.status = INCONCLUSIVE
        out.append(c)
    return out
