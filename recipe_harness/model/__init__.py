"""One normalised view of a recipe's DynamoGraphDeployment, whichever CRD version it came in.

Everything after schema validation (rules, targets, perf) works on :class:`Deployment`
(:mod:`.deployment`); version readers live in :mod:`.v1alpha1` and :mod:`.v1beta1`.
"""

from __future__ import annotations

from recipe_harness.load.manifests import Document
from recipe_harness.model import v1alpha1, v1beta1
from recipe_harness.model.cmdline import flag_value, split_argv, split_script  # noqa: F401 -- the command-line reader
from recipe_harness.model.deployment import (  # noqa: F401 -- the model's public types
    PVC,
    ROLE_DECODE,
    ROLE_FRONTEND,
    ROLE_OTHER,
    ROLE_PLANNER,
    ROLE_PREFILL,
    ROLE_WORKER,
    SIDECAR_CONTAINER,
    WORKER_ROLES,
    Deployment,
    EnvVar,
    Mount,
    Service,
    as_int,
)


def load_deployment(document: Document) -> Deployment | None:
    """Normalise a DGD document of any supported version; ``None`` if it is not a DGD map."""
    if document.kind != "DynamoGraphDeployment" or not isinstance(document.body, dict):
        return None
    api = document.api_version or ""
    if api.endswith("/v1beta1"):
        return v1beta1.normalise(document)
    return v1alpha1.normalise(document)
