"""predict part of the recipe-harness pytest plugin: options, parametrisation and the session's predictions.

A test requesting ``predict_case`` is parametrised over the selected recipes and the hardware
profiles of each recipe's ``thresholds.yaml`` (ids ``<recipe-id>::predict-<profile>``; a recipe
without usable thresholds gets one ``<recipe-id>::predict`` that skips with the reason). The
estimates of all of them are computed in one batch the first time one is needed
(:func:`recipe_harness.exercise.predict.check.predict_all`), so the model's databases load once a session.
``--predict-baseline-dir``/``--update-predict-baseline``/``--predict-baseline-ref`` compare each
prediction with its "before" (:mod:`recipe_harness.exercise.predict.baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from recipe_harness.exercise.predict import DEFAULT_TOLERANCE
from recipe_harness.plugin.options import harness_of, selected_recipes

if TYPE_CHECKING:  # the predict modules load when predict tests are collected, not for every session
    from recipe_harness.exercise.predict.check import PredictSettings
    from recipe_harness.exercise.predict.outcome import PredictOutcome

OUTCOMES_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-predict", "recipe-harness: predict suite (performance model, no GPU)")
    group.addoption("--aic-python", metavar="PATH", default=None,
                    help="Python with aiconfigurator installed (default: $RECIPE_HARNESS_AIC_PYTHON or ./.venv-aic/bin/python)")
    group.addoption("--predict-tolerance", metavar="FRACTION", type=float, default=DEFAULT_TOLERANCE,
                    help="the model's tolerance: a prediction within this fraction of a limit is a warning, past it "
                         f"a failure (default {DEFAULT_TOLERANCE})")
    group.addoption("--predict-model-alias", metavar="REPO=MODELLED", action="append", default=[],
                    help="predict REPO as the model's bundled MODELLED (same architecture), e.g. "
                         "my-org/Qwen3-32B-ft=Qwen/Qwen3-32B (repeatable)")
    group.addoption("--predict-timeout", metavar="SECONDS", type=float, default=600.0,
                    help="time limit of the model's whole batch (default 600)")
    group.addoption("--predict-baseline-dir", metavar="DIR", default=None,
                    help="compare each prediction with DIR/<recipe-id>/<profile>.json: before/after per metric and "
                         "concurrency and the plan changes; worse by more than the tolerance is a warning")
    group.addoption("--update-predict-baseline", action="store_true", default=False,
                    help="store this run's predictions into --predict-baseline-dir")
    group.addoption("--predict-baseline-ref", metavar="REF", default=None,
                    help="the 'before' is each recipe predicted as it was at git REF (no stored baseline needed)")
    group.addoption("--predict-profile", metavar="ID", action="append", default=[],
                    help="predict only on hardware profile ID (repeatable; default: every profile of each recipe's "
                         "thresholds.yaml); a recipe with none of them gets no predict test")


def pytest_configure(config: pytest.Config) -> None:
    tol = config.getoption("--predict-tolerance", default=DEFAULT_TOLERANCE)
    if tol is not None and not 0 <= tol < 1:
        raise pytest.UsageError("--predict-tolerance must be a fraction in [0, 1)")
    if config.getoption("--update-predict-baseline", default=False) and \
            not config.getoption("--predict-baseline-dir", default=None):
        raise pytest.UsageError("--update-predict-baseline needs --predict-baseline-dir DIR (where to store them)")
    aliases(config)


def aliases(config: pytest.Config) -> dict[str, str]:
    out = {}
    for text in config.getoption("--predict-model-alias", default=[]) or []:
        repo, eq, modelled = text.partition("=")
        if not eq or not repo.strip() or not modelled.strip():
            raise pytest.UsageError(f"--predict-model-alias {text!r}: expected REPO=MODELLED, e.g. org/model=Qwen/Qwen3-32B")
        out[repo.strip()] = modelled.strip()
    return out


@dataclass(frozen=True)
class PredictCase:
    recipe_id: str
    profile: str | None          # None: the recipe has no usable thresholds, or none of --predict-profile
    not_chosen: tuple[str, ...] = ()   # the --predict-profile ids its thresholds.yaml lacks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "predict_case" not in metafunc.fixturenames:
        return
    from recipe_harness.exercise.predict.plan import profile_ids

    harness = harness_of(metafunc.config)
    only = set(metafunc.config.getoption("--predict-profile", default=[]) or [])
    params = []
    for recipe in selected_recipes(metafunc.config):
        ids = profile_ids(harness.loaded(recipe))
        if only and ids:
            ids = [pid for pid in ids if pid in only]
            if not ids:
                params.append(pytest.param(PredictCase(recipe.id, None, tuple(sorted(only))),
                                           id=f"{recipe.id}::predict"))
        elif not ids:
            params.append(pytest.param(PredictCase(recipe.id, None), id=f"{recipe.id}::predict"))
        for pid in ids:
            params.append(pytest.param(PredictCase(recipe.id, pid), id=f"{recipe.id}::predict-{pid}"))
    metafunc.parametrize("predict_case", params)


def _settings(config: pytest.Config) -> PredictSettings:
    from recipe_harness.exercise.predict.aic import default_cache, find_python
    from recipe_harness.exercise.predict.check import PredictSettings

    python = find_python(config.getoption("--aic-python", default=None), [config.rootpath, Path.cwd()])
    report_dir = config.getoption("--report-dir", default=None)
    return PredictSettings(
        python=python,
        tolerance=config.getoption("--predict-tolerance"),
        timeout_s=config.getoption("--predict-timeout"),
        workers=1,   # one process: on 2 shared cores two runners were slower (bench/predict_bench.py)
        aliases=aliases(config),
        out_dir=Path(report_dir) / "predict" if report_dir else None,
        cache=default_cache(),
        baseline_dir=Path(config.getoption("--predict-baseline-dir")) if config.getoption(
            "--predict-baseline-dir", default=None) else None,
        update_baseline=bool(config.getoption("--update-predict-baseline", default=False)),
        baseline_ref=config.getoption("--predict-baseline-ref", default=None),
    )


def outcomes(config: pytest.Config, session: pytest.Session | None) -> dict:
    """Every predict case of the session, computed together on first use."""
    if OUTCOMES_KEY in config.stash:
        return config.stash[OUTCOMES_KEY]
    from recipe_harness.exercise.predict.aic import AicUnavailable
    from recipe_harness.exercise.predict.baseline import BaselineError
    from recipe_harness.exercise.predict.check import predict_all

    harness = harness_of(config)
    by_id = {r.id: r for r in harness.recipes}
    cases = []
    for item in getattr(session, "items", []) or []:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("predict_case") if callspec else None
        if isinstance(case, PredictCase) and case.profile and case.recipe_id in by_id:
            cases.append((harness.loaded(by_id[case.recipe_id]), case.profile))
    try:
        result: dict = predict_all(cases, _settings(config))
    except (AicUnavailable, BaselineError) as exc:
        result = {"error": str(exc)}
    config.stash[OUTCOMES_KEY] = result
    return result


@pytest.fixture
def prediction(request: pytest.FixtureRequest, predict_case: PredictCase) -> PredictOutcome:
    """The predict outcome of this test's (recipe, hardware profile); skips with the reason when there is none."""
    if predict_case.not_chosen:
        pytest.skip(f"thresholds.yaml has no hardware profile {' or '.join(predict_case.not_chosen)} "
                    "(--predict-profile)")
    if predict_case.profile is None:
        from recipe_harness.exercise.predict.plan import PredictSkip, thresholds_of

        harness = harness_of(request.config)
        recipe = next(r for r in harness.recipes if r.id == predict_case.recipe_id)
        try:
            thresholds_of(harness.loaded(recipe))
        except PredictSkip as exc:
            pytest.skip(str(exc))
        pytest.skip("thresholds.yaml has no hardware profile")
    found = outcomes(request.config, request.session)
    if "error" in found:
        pytest.fail(found["error"], pytrace=False)
    outcome = found.get((predict_case.recipe_id, predict_case.profile))
    if outcome is None:
        # a case run on its own (not collected with the session's items): predict it now
        if OUTCOMES_KEY in request.config.stash:
            del request.config.stash[OUTCOMES_KEY]
        from recipe_harness.exercise.predict.check import predict_all

        harness = harness_of(request.config)
        recipe = next(r for r in harness.recipes if r.id == predict_case.recipe_id)
        outcome = predict_all([(harness.loaded(recipe), predict_case.profile)], _settings(request.config)).get(
            (predict_case.recipe_id, predict_case.profile))
    if isinstance(outcome, str):
        pytest.skip(outcome)
    if outcome is None:
        pytest.fail(f"{predict_case.recipe_id}: the model returned no prediction for profile "
                    f"{predict_case.profile}", pytrace=False)
    return outcome
