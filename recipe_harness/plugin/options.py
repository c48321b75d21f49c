"""Recipe selection options, markers, and the per-session :class:`Harness`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recipe_harness.load.changed import ChangedSinceError, Selection, scope, select
from recipe_harness.load.discovery import Discovery, Recipe, discover
from recipe_harness.load.manifests import LoadResult
from recipe_harness.model.bundle import LoadedRecipe

MARKERS = {
    "static": "static checks: YAML, schema, structure and cross-file rules (no deployment)",
    "smoke": "deploys the recipe on the target and smoke-tests its OpenAI API",
    "perf": "deploys the recipe and runs aiperf against its thresholds and baselines",
    "predict": "predicts the recipe's performance on its GPU hardware profiles with a performance model (no GPU)",
    "kubernetes": "needs a Kubernetes cluster (--target kubernetes)",
    "preflight": "checks a cluster can run the recipe before deploying it",
}

HARNESS_KEY = pytest.StashKey["Harness"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness", "recipe-harness: recipe selection")
    group.addoption("--recipes-root", metavar="DIR", default=None,
                    help="folder holding <model>/<backend>/<mode>/ recipes (default: ./recipes)")
    group.addoption("--recipe", metavar="GLOB", action="append", default=[],
                    help="only recipes whose id matches GLOB (repeatable), e.g. 'qwen3-32b/*'")
    group.addoption("--changed-since", metavar="REF", default=None,
                    help="only recipes whose files changed since the merge base of REF and HEAD, work tree "
                         "included (recipe_harness/load/changed.py); none changed: nothing to run")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    harness_of(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    # A selection given on the command line is checked up front: one clear error, not a
    # collection error in every suite module. (With the defaults, suites check it when collected.)
    config = session.config
    if config.getoption("--recipes-root", default=None) or config.getoption("--recipe", default=None) \
            or config.getoption("--changed-since", default=None):
        selected_recipes(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    h = harness_of(config)
    return h.selection.describe(h.recipes_root) if h.selection is not None else []


@dataclass
class Harness:
    """What the suites share in one session: the discovered recipes and their loaded files."""

    recipes_root: Path
    patterns: tuple[str, ...] = ()
    changed_since: str | None = None
    selection: Selection | None = None  # what --changed-since selected, and why
    _discovery: Discovery | None = None
    _loaded: dict[str, LoadedRecipe] = field(default_factory=dict)
    _file_cache: dict[Path, LoadResult] = field(default_factory=dict)

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            if self.changed_since:  # only the model folders the changes reach are discovered
                try:
                    found = scope(self.recipes_root, self.changed_since)
                    self._discovery = discover(self.recipes_root, self.patterns, within=found.models)
                    self.selection = select(self.recipes_root, self._discovery.recipes, self.changed_since, found)
                except ChangedSinceError as exc:
                    raise pytest.UsageError(str(exc)) from None
                self._discovery.recipes = [r for r in self._discovery.recipes if r.id in self.selection.reasons]
            else:
                self._discovery = discover(self.recipes_root, self.patterns)
        return self._discovery

    @property
    def recipes(self) -> list[Recipe]:
        return self.discovery.recipes

    def loaded(self, recipe: Recipe) -> LoadedRecipe:
        if recipe.id not in self._loaded:
            self._loaded[recipe.id] = LoadedRecipe.load(recipe, self._file_cache)
        return self._loaded[recipe.id]


def harness_of(config: pytest.Config) -> Harness:
    if HARNESS_KEY not in config.stash:
        root = config.getoption("--recipes-root", default=None)
        config.stash[HARNESS_KEY] = Harness(
            recipes_root=Path(root) if root else Path.cwd() / "recipes",
            patterns=tuple(config.getoption("--recipe", default=[]) or ()),
            changed_since=config.getoption("--changed-since", default=None),
        )
    return config.stash[HARNESS_KEY]


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> Harness:
    return harness_of(pytestconfig)


def selected_recipes(config: pytest.Config) -> list[Recipe]:
    """The recipes the run is about; a usage error when there are none (a typo in --recipes-root
    or --recipe must never turn into a green run)."""
    h = harness_of(config)
    if not h.recipes and h.selection is not None:
        return []  # nothing changed since REF: nothing to run, not a usage error
    if not h.recipes:
        problems = "; ".join(f.message for f in h.discovery.findings)
        where = f"--recipes-root {h.recipes_root}"
        if h.patterns:
            where += " with --recipe " + " --recipe ".join(h.patterns)
        raise pytest.UsageError(f"no recipes selected ({where})" + (f": {problems}" if problems else "")
                                + "; pass --recipes-root DIR holding <model>/<backend>/<mode>/deploy.yaml")
    return h.recipes
