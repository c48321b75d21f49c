"""perf part of the recipe-harness pytest plugin: options, the per-test perf plan and settings.

Whether a recipe has anything to benchmark is decided before its deployment: in
``pytest_runtest_setup`` a ``perf`` test whose recipe has no perf manifest or no thresholds for
the hardware profile is skipped (with that reason) and one whose perf files are unusable errors,
so neither costs a deployment.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from recipe_harness.plugin.options import harness_of

if TYPE_CHECKING:  # the perf modules load when a perf test runs, not for every session
    from recipe_harness.exercise.perf.check import PerfPlan, PerfSettings

PLAN_KEY = pytest.StashKey["PerfPlan"]()
LOCAL_HARDWARE_PROFILE = "cpu-mocker"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-perf", "recipe-harness: perf suite (aiperf)")
    group.addoption("--aiperf", metavar="PATH", default=None,
                    help="aiperf executable (default: $RECIPE_HARNESS_AIPERF, ./.venv-aiperf/bin/aiperf, or aiperf on PATH)")
    group.addoption("--hardware-profile", metavar="ID", default=None,
                    help="thresholds.yaml profile to gate on, e.g. h200-sxm (default on the local target: cpu-mocker)")
    group.addoption("--perf-scale", metavar="FACTOR", type=float, default=None,
                    help="multiply the recipe's request counts by FACTOR (default: 0.05 on the local target, 1 elsewhere)")
    group.addoption("--perf-max-concurrency", metavar="N", type=int, default=None,
                    help="cap the sweep's highest concurrency at N, scaling the sweep proportionally "
                         "(default: 4 per CPU on the local target, no cap elsewhere)")
    group.addoption("--perf-trials", metavar="N", type=int, default=1,
                    help="run the sweep N times; the trials' requests are pooled and a two-level bootstrap "
                         "(trials, then requests) gives each metric its confidence interval")
    group.addoption("--perf-run-noise", metavar="FRACTION", type=float, default=None,
                    help="relative run-to-run variation of the target, added to every bootstrap interval as "
                         "+-FRACTION x value (default: 0.10 on the local target, 0 elsewhere)")
    group.addoption("--perf-inconclusive", choices=("fail", "skip"), default="skip",
                    help="what a check whose limits are not established (an interval containing a limit, or a "
                         "percentile from too few samples) does to the test: skip (default: a limit fails only "
                         "when its interval lies past it) or fail (release qualification); never a pass")
    group.addoption("--perf-timeout", metavar="SECONDS", type=float, default=900.0,
                    help="time limit of one aiperf run; its process group is killed after it (default 900)")
    group.addoption("--baseline-dir", metavar="DIR", default=None,
                    help="compare results with the baselines in DIR (<recipe-id>/<hardware-profile>.json)")
    group.addoption("--update-baseline", action="store_true", default=False,
                    help="write this run's results as the new baselines in --baseline-dir")
    group.addoption("--baseline-tolerance", metavar="FRACTION", type=float, default=0.10,
                    help="a metric regresses when it is worse than the baseline by more than this fraction and the "
                         "two 95%% confidence intervals do not overlap (default 0.10)")


def pytest_configure(config: pytest.Config) -> None:
    trials = config.getoption("--perf-trials", default=1)
    if trials is not None and trials < 1:
        raise pytest.UsageError("--perf-trials must be >= 1")
    scale = config.getoption("--perf-scale", default=None)
    if scale is not None and scale <= 0:
        raise pytest.UsageError("--perf-scale must be > 0")
    noise = config.getoption("--perf-run-noise", default=None)
    if noise is not None and not 0 <= noise < 1:
        raise pytest.UsageError("--perf-run-noise must be a fraction in [0, 1)")
    cap = config.getoption("--perf-max-concurrency", default=None)
    if cap is not None and cap < 1:
        raise pytest.UsageError("--perf-max-concurrency must be >= 1")
    if config.getoption("--update-baseline", default=False) and not config.getoption("--baseline-dir", default=None):
        raise pytest.UsageError("--update-baseline needs --baseline-dir DIR")


def target_name(config: pytest.Config) -> str:
    """The deploy target of this session (``local`` unless ``--target`` says otherwise)."""
    try:
        value = config.getoption("--target")
    except ValueError:
        value = None
    return str(value) if value else "local"


def hardware_profile(config: pytest.Config) -> str | None:
    chosen = config.getoption("--hardware-profile", default=None)
    if chosen:
        return chosen
    return LOCAL_HARDWARE_PROFILE if target_name(config) == "local" else None


def _recipe_id(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "::" not in callspec.id:
        return None
    return callspec.id.rpartition("::")[0]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Plan every perf test before its fixtures (the deployment) are set up."""
    if item.get_closest_marker("perf") is None or "perf_plan" not in getattr(item, "fixturenames", ()):
        return
    rid = _recipe_id(item)
    harness = harness_of(item.config)
    recipe = next((r for r in harness.recipes if r.id == rid), None)
    if recipe is None:
        return
    hw = hardware_profile(item.config)
    if hw is None:
        pytest.skip(f"no hardware profile for target {target_name(item.config)!r}: pass --hardware-profile "
                    "(an id of the recipe's thresholds.yaml, e.g. h200-sxm)")
    from recipe_harness.exercise.perf.check import PerfPlanError, PerfSkip, plan

    try:
        item.stash[PLAN_KEY] = plan(harness.loaded(recipe), hw)
    except PerfSkip as exc:
        pytest.skip(str(exc))
    except PerfPlanError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def perf_plan(request: pytest.FixtureRequest) -> PerfPlan:
    """The recipe's aiperf profile and thresholds on the chosen hardware profile."""
    found = request.node.stash.get(PLAN_KEY, None)
    if found is None:
        pytest.fail("perf_plan is only available in tests marked `perf` and parametrised by recipe "
                    "(ids `<recipe-id>::<check>`)", pytrace=False)
    return found


@pytest.fixture
def perf_settings(request: pytest.FixtureRequest, perf_plan: PerfPlan,
                  tmp_path_factory: pytest.TempPathFactory) -> PerfSettings:
    from recipe_harness.exercise.perf.check import PerfSettings
    from recipe_harness.exercise.perf.runner import AiperfNotFound, find_aiperf

    config = request.config
    roots = [config.rootpath, Path.cwd()]
    try:
        aiperf = find_aiperf(config.getoption("--aiperf"), roots)
    except AiperfNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    report_dir = config.getoption("--report-dir", default=None)
    if report_dir:
        out_dir = Path(report_dir) / "perf" / perf_plan.recipe_id / perf_plan.hardware.id
        shutil.rmtree(out_dir, ignore_errors=True)   # this run's artifacts only
        out_dir.mkdir(parents=True)
    else:
        out_dir = tmp_path_factory.mktemp("perf")
    baseline_dir = config.getoption("--baseline-dir")
    return PerfSettings(
        aiperf=aiperf,
        out_dir=out_dir,
        scale=config.getoption("--perf-scale"),
        max_concurrency=config.getoption("--perf-max-concurrency"),
        trials=config.getoption("--perf-trials"),
        timeout_s=config.getoption("--perf-timeout"),
        baseline_dir=Path(baseline_dir) if baseline_dir else None,
        update_baseline=config.getoption("--update-baseline"),
        tolerance=config.getoption("--baseline-tolerance"),
        inconclusive=config.getoption("--perf-inconclusive"),
        run_noise=config.getoption("--perf-run-noise"),
        cpu_count=os.cpu_count() or 2,
    )
