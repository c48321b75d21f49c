"""Performance: aiperf runs the recipe's own benchmark against the deployed recipe; the results are
gated on its thresholds.yaml for the hardware profile and compared with baselines.

Ids: ``<recipe-id>::perf``. Recipes without a perf manifest or without thresholds for the hardware
profile are skipped before they are deployed (see :mod:`recipe_harness.plugin.perf`).
"""

import pytest

from recipe_harness.deploy import DeployError
from recipe_harness.exercise.perf.check import run

pytestmark = pytest.mark.perf


def test_perf(deployed, record, perf_plan, perf_settings):
    outcome = run(perf_plan, deployed.endpoint, perf_settings)
    record(metrics=outcome.metrics, artifacts=[*outcome.artifacts, *getattr(deployed, "artifacts", [])],
           images=outcome.images)
    for note in outcome.notes:
        record(note=note)
    failures = list(outcome.failures)
    probe = getattr(deployed, "check", None)
    if callable(probe):           # a component that died under load fails the check too
        try:
            probe()
        except DeployError as exc:
            failures.append(f"the deployment broke during the benchmark: {exc}")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    if outcome.inconclusive:      # not established (--perf-inconclusive skip, the default): never a pass
        pytest.skip("inconclusive: " + "\n".join(outcome.inconclusive))
