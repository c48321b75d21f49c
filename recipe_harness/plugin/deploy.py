"""deploy part of the recipe-harness pytest plugin: the deploy target and the ``deployed`` fixture.

Any test requesting ``deployed`` is parametrised over the selected recipes with ids
``<recipe-id>::<check>``, where the check is the test function's name without ``test_`` and
with ``_`` turned into ``-`` (``test_smoke_chat`` -> ``smoke-chat``, ``test_perf`` -> ``perf``).
The fixture is module-scoped: a recipe is deployed once for all the tests of a module that need
it, and torn down before the next recipe is deployed. ``smoke_check(name)`` runs one check of
:mod:`recipe_harness.exercise.smoke` against it and records the result.

Targets: ``local`` (default; :class:`recipe_harness.deploy.local.LocalTarget`) and
``kubernetes`` (:mod:`recipe_harness.deploy.kubernetes`, imported only when chosen).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recipe_harness.deploy import DeployError, DeploySkip, Endpoint, Target
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.plugin.options import harness_of, selected_recipes

TARGETS = ("local", "kubernetes")
TARGET_KEY = pytest.StashKey[Target]()
LOCAL_DEPLOY_TIMEOUT = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-deploy", "recipe-harness: deploy targets")
    group.addoption("--target", choices=TARGETS, default="local",
                    help="where smoke and perf tests deploy recipes: local (default; the real Dynamo "
                         "frontend + mocker processes on this machine, no GPU) or kubernetes")
    group.addoption("--dynamo-python", metavar="PATH", default=None,
                    help="Python with ai-dynamo installed, for the local target (default: "
                         "$RECIPE_HARNESS_DYNAMO_PYTHON, ./.venv-dynamo/bin/python, or this Python)")
    group.addoption("--keep-logs", action="store_true", default=False,
                    help="keep each local deployment's process logs in its run folder after teardown")
    group.addoption("--deploy-timeout", metavar="SECONDS", type=float, default=None,
                    help=f"how long a deployment may take to serve (default: {LOCAL_DEPLOY_TIMEOUT:g} on the local "
                         "target, 1800 on kubernetes)")


def target_name(config: pytest.Config) -> str:
    return str(config.getoption("--target", default=None) or "local")


def deploy_timeout(config: pytest.Config) -> float:
    value = config.getoption("--deploy-timeout", default=None)
    return LOCAL_DEPLOY_TIMEOUT if value is None else float(value)


def target_of(config: pytest.Config) -> Target:
    """The session's deploy target (created on first use)."""
    if TARGET_KEY in config.stash:
        return config.stash[TARGET_KEY]
    name = target_name(config)
    # the targets and smoke load when a deploying test needs them (a static session imports neither
    # httpx nor the kubernetes client: tests/test_suites_collect.py)
    if name == "local":
        from recipe_harness.deploy.local import LocalTarget, default_roots

        report_dir = config.getoption("--report-dir", default=None)
        target: Target = LocalTarget(
            python_option=config.getoption("--dynamo-python", default=None),
            search_roots=[config.rootpath, *default_roots()],
            deploy_timeout=deploy_timeout(config),
            keep_logs=bool(config.getoption("--keep-logs", default=False)),
            logs_dest=Path(report_dir) / "logs" if report_dir else None,
        )
    elif name == "kubernetes":
        from recipe_harness.deploy.kubernetes.target import KubernetesTarget
        from recipe_harness.plugin.kube import kube_options

        target = KubernetesTarget(kube_options(config))  # built from the plugin's options; it never sees Config
    else:  # pragma: no cover - argparse restricts the choices
        raise pytest.UsageError(f"unknown --target {name!r} (choose from {', '.join(TARGETS)})")
    config.stash[TARGET_KEY] = target
    return target


@dataclass
class Deployed:
    """A recipe deployed on the session's target."""

    recipe: LoadedRecipe
    endpoint: Endpoint
    target: Target
    ready_s: float = 0.0
    artifacts: list[str] = field(default_factory=list)   # where its logs end up

    def check(self) -> None:
        """Raise :class:`DeployError` if a component of the deployment has died (when the target can tell)."""
        probe = getattr(self.target, "check", None)
        if callable(probe):
            probe(self.endpoint)


def check_name(function_name: str) -> str:
    return function_name.removeprefix("test_").replace("_", "-")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "deployed" not in metafunc.fixturenames:
        return
    check = check_name(metafunc.function.__name__)
    params = [pytest.param(r, id=f"{r.id}::{check}") for r in selected_recipes(metafunc.config)]
    metafunc.parametrize("deployed", params, indirect=True, scope="module")


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The recipe of this test's parameter, deployed on the session's target (once per module)."""
    if not hasattr(request, "param"):
        pytest.fail("`deployed` is parametrised by recipe through pytest_generate_tests; request it from a "
                    "test function, not from another fixture's parametrisation", pytrace=False)
    config = request.config
    loaded = harness_of(config).loaded(request.param)
    if loaded.deployment is None:
        pytest.skip("no loadable DynamoGraphDeployment in the recipe (see its static checks)")
    target = target_of(config)
    report_dir = config.getoption("--report-dir", default=None)
    workdir = None if target_name(config) == "local" or report_dir else tmp_path_factory.mktemp("deploy")
    if target_name(config) != "local" and report_dir:   # diagnostics (pod logs, events, DGD status) go there
        workdir = Path(report_dir) / "kubernetes" / loaded.id / request.module.__name__.rpartition(".")[2]
        shutil.rmtree(workdir, ignore_errors=True)   # this run's only
        workdir.mkdir(parents=True)
    artifacts: list[str] = []
    if report_dir and target_name(config) == "local":
        artifacts.append(str(Path(report_dir) / "logs" / loaded.id))
    stack = contextlib.ExitStack()
    started = time.monotonic()
    failure: str | None = None
    skip: str | None = None
    try:
        endpoint = stack.enter_context(target.deploy(loaded, workdir))
    except DeploySkip as exc:
        stack.close()
        skip = f"{loaded.id} not deployed on the {target_name(config)} target: {exc}"
    except DeployError as exc:
        stack.close()
        failure = f"deploying {loaded.id} on the {target_name(config)} target failed: {exc}"
    if skip is not None:
        pytest.skip(skip)
    if failure is not None:  # outside the except block: the message alone, without the exception chain
        pytest.fail(failure, pytrace=False)
    with stack:
        if not artifacts and endpoint.logs_dir is not None:
            artifacts.append(str(endpoint.logs_dir))
        yield Deployed(loaded, endpoint, target, ready_s=round(time.monotonic() - started, 2), artifacts=artifacts)


@pytest.fixture
def smoke_check(deployed: Deployed, record: Callable[..., Any]) -> Callable[[str], Any]:
    """``smoke_check(name)``: run the smoke check ``name`` against the deployment and record it."""
    from recipe_harness.exercise import smoke

    def run(name: str) -> smoke.Result:
        if name == "models":  # the first check of a recipe carries how its deployment went
            record(metrics={"ready_s": deployed.ready_s, "components": len(deployed.endpoint.components)})
            for note in deployed.endpoint.notes:
                record(note=note)
        record(artifacts=deployed.artifacts)
        skip: str | None = None
        failure: str | None = None
        try:
            result = smoke.run(name, deployed.endpoint, watchdog=deployed.check)
        except smoke.SmokeSkip as exc:
            skip = str(exc)
        except (smoke.SmokeFailure, DeployError) as exc:
            failure = str(exc)
        if skip is not None:  # outside the except blocks: the message alone, without the exception chain
            pytest.skip(skip)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        record(metrics=result.metrics)
        for note in result.notes:
            record(note=note)
        return result

    return run
