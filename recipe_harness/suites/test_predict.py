"""Predicted performance: each recipe on each GPU hardware profile of its thresholds.yaml, from the
performance model (no GPU, no deployment), gated on the profile's limits with the model's tolerance.

Ids: ``<recipe-id>::predict-<profile>``. Profiles that name no modelled GPU (``cpu-mocker``), models
the model does not know and workloads it cannot express are skipped with the reason (see
:mod:`recipe_harness.plugin.predict`).
"""

import pytest

pytestmark = pytest.mark.predict


def test_predict(prediction, record):
    record(metrics=prediction.metrics, images=prediction.images)
    for note in [*prediction.plan.sources, *prediction.notes]:
        record(note=note)
    for warning in prediction.warnings:
        record(note=f"warning: {warning}")
    if prediction.failures:
        pytest.fail("\n".join(prediction.failures), pytrace=False)
