"""Static conformance: YAML, schema, structure and cross-file rules, one test per (recipe, check)."""

import pytest

pytestmark = pytest.mark.static


def test_static(static_case, record):
    findings = static_case.run()
    record(findings=findings)
    failing = static_case.checker.failing(findings)
    if failing:
        pytest.fail("\n".join(f"{f.format()}" + (f"\n    hint: {f.hint}" if f.hint else "") for f in failing),
                    pytrace=False)
