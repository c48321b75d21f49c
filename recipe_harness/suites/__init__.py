"""The conformance suites (``pytest suites`` or ``recipe-harness test``)."""
