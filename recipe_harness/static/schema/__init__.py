"""Schema validation of recipe manifests, offline.

* Core Kubernetes kinds against the OpenAPI-derived JSON schemas of a pinned Kubernetes
  version (bundled by ``kubernetes-validate``), strictly: unknown fields are findings.
* DynamoGraphDeployment ``nvidia.com/v1alpha1`` and ``v1beta1`` against this project's schemas
  (``recipe_harness/data/schemas/dgd-*.schema.json``).
* Any kind whose CustomResourceDefinition is given (``--crd FILE``) against that CRD's
  ``openAPIV3Schema``, with the apiserver's structural-schema semantics.

Usage::

    validator = Validator(SchemaOptions(kubernetes_version="1.33"))
    findings = validator.validate(document)
"""

from recipe_harness.static.schema.compiler import format_path
from recipe_harness.static.schema.crd import SchemaConfigError
from recipe_harness.static.schema.k8s import available_versions
from recipe_harness.static.schema.validator import (
    DEFAULT_K8S_VERSION,
    RULES,
    SchemaOptions,
    Validator,
    bundled_schema,
    load_dgd_schema,
)

__all__ = [
    "DEFAULT_K8S_VERSION",
    "RULES",
    "SchemaConfigError",
    "SchemaOptions",
    "Validator",
    "available_versions",
    "bundled_schema",
    "format_path",
    "load_dgd_schema",
]
