"""perf part of the recipe-harness pytest plugin."""
