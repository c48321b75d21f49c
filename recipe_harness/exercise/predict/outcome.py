"""What the predict check found for one recipe on one hardware profile (:mod:`.check` computes it,
:mod:`.baseline` stores and compares it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.exercise.predict.aic import EstimateResult
from recipe_harness.exercise.predict.gate import PredictVerdict
from recipe_harness.exercise.predict.plan import PredictPlan


@dataclass
class PredictOutcome:
    plan: PredictPlan
    results: list[EstimateResult]
    verdicts: list[PredictVerdict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    images: list[tuple[str, Path]] = field(default_factory=list)
