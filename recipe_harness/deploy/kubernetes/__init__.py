"""The ``kubernetes`` deploy target (``--target kubernetes``).

- :mod:`.client`        raw-JSON requests through the kubernetes client, retries with backoff
- :mod:`.resources`     kind -> API path
- :mod:`.watch`         list + watch with resourceVersion resume
- :mod:`.analysis`      fail-fast reasons from pods, Jobs, events, the DGD
- :mod:`.diagnostics`   events, pod status, logs, DGD status into the report dir
- :mod:`.portforward`   local port -> a Service's port, a labelled pod's port or one pod's port
- :mod:`.access`        the API's port (frontend Service or sidecar), worker metrics forwards, Endpoint
- :mod:`.namespace`     one labelled namespace per run; cleanup, also after interrupted runs
- :mod:`.preflight`     API, CRD, operator, GPUs, RDMA, storage classes
- :mod:`.perf_artifacts` aiperf artifacts of the perf Job, from its logs or its PVC
- :mod:`.target`        :class:`KubernetesTarget`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recipe_harness.deploy.kubernetes.client import ApiError, Kube
    from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget

# The names below load their module (and the ``kubernetes`` client library) on first use: the modules of
# this package that need no cluster (platform, twin ...) import without it, e.g. for a static run.
_LAZY = {"ApiError": "client", "Kube": "client", "KubeOptions": "target", "KubernetesTarget": "target"}

__all__ = ["ApiError", "Kube", "KubeOptions", "KubernetesTarget"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
