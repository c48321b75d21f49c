"""Preflight: can the cluster run the recipe? One test per recipe, id ``<recipe-id>::preflight``."""

import pytest

from recipe_harness.deploy.kubernetes.preflight import preflight

pytestmark = [pytest.mark.preflight, pytest.mark.kubernetes]


def test_preflight(preflight_case, record):
    loaded, kube, options = preflight_case
    report = preflight(kube, loaded, twin=options.twin == "mocker")
    record(metrics=report.metrics(), note=report.summary())
    if report.failed:
        pytest.fail("\n".join(c.line() for c in report.failed), pytrace=False)
    if report.missing:
        text = "; ".join(c.line() for c in report.missing)
        if options.require_hardware:
            pytest.fail(f"missing hardware (--require-hardware): {text}", pytrace=False)
        pytest.skip(f"missing hardware: {text}")
