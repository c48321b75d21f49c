"""Static checks: one test per (recipe, check), ids ``<recipe-id>::<check>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from recipe_harness.load.discovery import Recipe
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.plugin.options import harness_of, selected_recipes
from recipe_harness.static.checks import CheckOptions, StaticChecker, static_checks

CHECKER_KEY = pytest.StashKey[StaticChecker]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-static", "recipe-harness: static checks")
    group.addoption("--crd", metavar="FILE", action="append", default=[],
                    help="validate custom resources against this CRD's openAPIV3Schema (repeatable)")
    group.addoption("--strict-kinds", action="store_true", default=False,
                    help="kinds with no schema (ComputeDomain, HTTPRoute ...) are errors, not notes")
    group.addoption("--strict-rules", action="store_true", default=False,
                    help="warnings fail checks too (`recipe-harness test --strict`)")
    group.addoption("--kubernetes-version", metavar="X.Y", default=None,
                    help="Kubernetes version whose schemas validate core objects")


def checker_of(config: pytest.Config) -> StaticChecker:
    if CHECKER_KEY not in config.stash:
        opts = CheckOptions(
            kubernetes_version=config.getoption("--kubernetes-version"),
            crd_files=tuple(Path(p) for p in config.getoption("--crd")),
            strict_kinds=config.getoption("--strict-kinds"),
            strict=config.getoption("--strict-rules"),
        )
        config.stash[CHECKER_KEY] = StaticChecker(opts, discovery=harness_of(config).discovery)
    return config.stash[CHECKER_KEY]


@dataclass
class StaticCase:
    recipe: Recipe
    check: str
    loaded: LoadedRecipe
    checker: StaticChecker

    def run(self):
        return self.checker.run(self.loaded, self.check)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "static_case" not in metafunc.fixturenames:
        return
    params = []
    for recipe in selected_recipes(metafunc.config):
        for check in static_checks():
            params.append(pytest.param((recipe, check), id=f"{recipe.id}::{check}"))
    metafunc.parametrize("static_case", params, indirect=True)


@pytest.fixture
def static_case(request: pytest.FixtureRequest) -> StaticCase:
    recipe, check = request.param
    config = request.config
    return StaticCase(recipe, check, harness_of(config).loaded(recipe), checker_of(config))
