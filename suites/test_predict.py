"""Predict suite; the tests live in the installed package (recipe_harness/suites)."""

from recipe_harness.suites.test_predict import *  # noqa: F403
