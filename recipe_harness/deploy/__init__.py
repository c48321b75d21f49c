"""Deploy targets: put a recipe somewhere it serves requests, hand back an :class:`Endpoint`,
and always clean up.

- ``local``       the embedded default: the real Dynamo frontend + mocker processes in the
                  recipe's topology (no GPU, no cluster)
- ``kubernetes``  a real or kind cluster

A target is used as a context manager so teardown is guaranteed::

    with target.deploy(loaded_recipe, workdir) as endpoint:
        smoke(endpoint)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

# the shared types live below the targets (the twin, procs, smoke and perf use them too)
from recipe_harness.endpoint import Component, DeployError, DeploySkip, Endpoint

if TYPE_CHECKING:
    from recipe_harness.model.bundle import LoadedRecipe

__all__ = ["Component", "DeployError", "DeploySkip", "Endpoint", "Target"]


class Target(Protocol):
    """What :class:`~recipe_harness.deploy.local.LocalTarget` and
    :class:`~recipe_harness.deploy.kubernetes.KubernetesTarget` both are (checked by mypy)."""

    @property
    def name(self) -> str:
        """``local`` | ``kubernetes``"""
        ...

    def deploy(self, recipe: LoadedRecipe, workdir: Path | None) -> AbstractContextManager[Endpoint]:
        """Bring ``recipe`` up and yield its :class:`Endpoint`; tear it down on exit. ``workdir``: where
        its files go (logs, diagnostics); ``None``: a temporary folder."""
        ...
