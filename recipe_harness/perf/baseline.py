"""Baselines: a recipe's perf results on one hardware profile, kept as JSON between runs.

``<baseline-dir>/<recipe-id>/<hardware-profile>.json`` holds, per tracked metric of the operating
point, the median and spread over the trials that produced it, and a fingerprint of what was run
(scaled sweep, workload, target) so results of a different profile are never compared.

A metric regresses only when its median is worse than the baseline's by more than
``max(tolerance x |baseline|, k x spread)`` where spread is the larger of the two runs' spreads
(half the range of the trials): with a single trial the tolerance alone decides, with repeated
trials a noisy metric needs a larger move to count.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .results import Aggregate

SCHEMA_VERSION = 1
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
    metrics: dict[str, Aggregate]
    run: dict

    def to_dict(self) -> dict:
        return {"schemaVersion": SCHEMA_VERSION, "recipe": self.recipe, "hardwareProfile": self.hardware_profile,
                "fingerprint": self.fingerprint, "created": self.created, "trials": self.trials,
                "run": self.run, "metrics": {k: v.to_dict() for k, v in sorted(self.metrics.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> Baseline:
        if data.get("schemaVersion") != SCHEMA_VERSION:
            raise ValueError(f"baseline schemaVersion {data.get('schemaVersion')!r} is not {SCHEMA_VERSION}")
        metrics = {k: Aggregate(float(v["median"]), float(v.get("spread", 0.0)), [float(x) for x in v.get("values", [])])
                   for k, v in data["metrics"].items()}
        return cls(data["recipe"], data["hardwareProfile"], data["fingerprint"], data.get("created", ""),
                   int(data.get("trials", 1)), metrics, data.get("run", {}))


def load(path: Path) -> Baseline | None:
    """The stored baseline, ``None`` when there is none (raises ValueError when it is unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Baseline.from_dict(json.loads(text))
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


def new(recipe: str, hardware_profile: str, print_: str, trials: int, metrics: dict[str, Aggregate],
        run: dict) -> Baseline:
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Baseline(recipe, hardware_profile, print_, created, trials, metrics, run)


@dataclass
class Comparison:
    metric: str
    baseline: Aggregate
    current: Aggregate
    allowed: float        # how much worse the median may get before it counts
    worse_by: float       # > 0: worse than the baseline, < 0: better
    regressed: bool

    def describe(self) -> str:
        rel = self.worse_by / abs(self.baseline.median) if self.baseline.median else float("inf") if self.worse_by else 0.0
        word = "worse" if self.worse_by > 0 else "better"
        text = (f"{self.metric}: {self.current.median:.4g} vs baseline {self.baseline.median:.4g} "
                f"({abs(rel):.1%} {word}; allowed {self.allowed:.4g})")
        return text + (" REGRESSION" if self.regressed else "")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": round(self.baseline.median, 6), "current": round(self.current.median, 6),
                "baselineSpread": round(self.baseline.spread, 6), "currentSpread": round(self.current.spread, 6),
                "allowed": round(self.allowed, 6), "worseBy": round(self.worse_by, 6), "regressed": self.regressed}


def compare(current: dict[str, Aggregate], base: Baseline, *, tolerance: float = 0.10,
            noise_k: float = 2.0) -> list[Comparison]:
    out = []
    for metric, now in sorted(current.items()):
        then = base.metrics.get(metric)
        if then is None:
            continue
        worse_by = (then.median - now.median) if higher_is_better(metric) else (now.median - then.median)
        allowed = max(tolerance * abs(then.median), noise_k * max(now.spread, then.spread))
        out.append(Comparison(metric, then, now, allowed, worse_by, worse_by > allowed))
    return out
