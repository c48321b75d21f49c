"""Predicted performance of a recipe on its target GPUs, without GPUs.

For each recipe and each hardware profile of its ``thresholds.yaml`` that names a GPU system, the
estimates are built from the recipe itself (:mod:`.plan`), answered offline by the performance
model in its own environment (:mod:`.aic`, NVIDIA AIConfigurator in ``.venv-aic``), and gated on
the profile's limits with the model's tolerance (:mod:`.gate`, :mod:`.check`). :mod:`.models` and
:mod:`.systems` hold the model and GPU memory facts the static memory rule (RH304) uses too.
"""

DEFAULT_TOLERANCE = 0.20
"""The model's stated tolerance: a prediction within it of a limit is a warning, past it a failure."""
