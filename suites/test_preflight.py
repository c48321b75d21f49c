"""Preflight suite; the tests live in the installed package (recipe_harness/suites)."""

from recipe_harness.suites.test_preflight import *  # noqa: F403
