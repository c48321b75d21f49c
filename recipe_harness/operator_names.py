"""Names and label values the Dynamo operator derives from a DynamoGraphDeployment, and the limits the
apiserver puts on them. Shared by the static rules (RH336, RH337) and the kubernetes target's run
namespaces, so both judge a name the same way.

What the operator makes, from its source (ai-dynamo/dynamo, ``deploy/operator``):

- ``nvidia.com/dynamo-namespace=<k8s namespace>-<DGD name, dots as hyphens>`` on every pod and in
  every component Service's selector: ``ComputeDynamoNamespace`` in
  ``api/v1alpha1/dynamocomponentdeployment_types.go``; the selector in ``GenerateComponentService``
  (``internal/dynamo/graph.go``). Only ``globalDynamoNamespace: true`` replaces it (by ``dynamo``).
- a Service per component named ``<DGD name>-<lowercased component name>`` with dots as hyphens
  (``GetDCDResourceName`` and ``NormalizeKubeResourceName``, ``internal/dynamo/graph.go``); a Service
  name is a DNS-1035 label.
- ``nvidia.com/selector=<DGD name>-<lowercased component name>``,
  ``nvidia.com/dynamo-graph-deployment-name=<DGD name>`` and ``nvidia.com/dynamo-component=<component>``
  on the pods (``generateLabels``, ``internal/dynamo/graph.go``).
- operators that roll workers by spec hash name worker DynamoComponentDeployments
  ``<DGD name>-<component>-<8 hex>`` (``ComputeV1beta1DGDWorkersSpecHash``, ``internal/dynamo/hash.go``)
  and label the worker pods ``nvidia.com/selector=<that name>``.

A label value is at most 63 characters and matches ``(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?``;
a DNS-1035 label is at most 63 characters of ``[a-z]([-a-z0-9]*[a-z0-9])?`` (apimachinery
``pkg/util/validation/validation.go``). The apiserver rejects an object with a longer value, so the
operator's reconcile fails and the graph never becomes ready.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LABEL_VALUE_MAX = 63
DNS_LABEL_MAX = 63
WORKER_HASH_LEN = 8
"""Hex characters of the worker spec hash some operators append to worker names (``hash.go``)."""

MIN_NAMESPACE = 16
"""The shortest Kubernetes namespace a DGD name must leave room for in ``nvidia.com/dynamo-namespace``.

16 characters hold the harness's own run namespaces with a recognisable slug (``rh-<6 chars>-<6 hex>``)
and the usual hand-made ones (``dynamo-system`` is 13, ``team-a-inference`` 16); a DGD name of at
most ``63 - 1 - 16 = 46`` characters fits them all.
"""

RUN_NAMESPACE_MAX = 20
"""The longest run namespace the harness makes with its default prefix (``rh-<10-char slug>-<6 hex>``)."""

DYNAMO_NAMESPACE_LABEL = "nvidia.com/dynamo-namespace"
SELECTOR_LABEL = "nvidia.com/selector"
DGD_NAME_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class OperatorName:
    """One name or label value the operator derives, with what decides it."""

    what: str                 # e.g. "label nvidia.com/dynamo-namespace", "Service name"
    value: str
    component: str | None     # the DGD service/component it belongs to; None for graph-wide names
    dns1035: bool = False     # an object name that must be a DNS-1035 label (else a label value)
    optional: bool = False    # made by some operator versions only (worker hash names)

    @property
    def limit(self) -> int:
        return DNS_LABEL_MAX if self.dns1035 else LABEL_VALUE_MAX

    def problem(self) -> str | None:
        """Why the apiserver would reject it, or ``None``."""
        if len(self.value) > self.limit:
            return f"is {len(self.value)} characters (limit {self.limit})"
        if self.dns1035 and not _DNS1035.fullmatch(self.value):
            return "is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)"
        if not self.dns1035 and not _LABEL_VALUE.fullmatch(self.value):
            return "is not a valid label value (letters, digits, '-', '_' and '.', alphanumeric at both ends)"
        return None

    def describe(self) -> str:
        return f"{self.what} {self.value!r}"


def dynamo_namespace(namespace: str, dgd_name: str) -> str:
    """``ComputeDynamoNamespace``: ``<k8s namespace>-<DGD name with dots as hyphens>``."""
    return f"{namespace}-{dgd_name.replace('.', '-')}"


def component_service_name(dgd_name: str, component: str) -> str:
    """The Service the operator makes for a component: ``NormalizeKubeResourceName(<dgd>-<component>)``."""
    return f"{dgd_name}-{component.lower()}".replace(".", "-").lower()


def graph_names(dgd_name: str, components: Sequence[str], workers: Sequence[str] = ()) -> list[OperatorName]:
    """Every name the operator derives from the DGD alone, whatever the namespace.

    ``workers`` (a subset of ``components``) also get the hash-suffixed names of operators that roll
    workers by spec hash, marked ``optional``.
    """
    out = [OperatorName(f"label {DGD_NAME_LABEL}", dgd_name, None)]
    for comp in components:
        out.append(OperatorName("Service name", component_service_name(dgd_name, comp), comp, dns1035=True))
        out.append(OperatorName(f"label {SELECTOR_LABEL}", f"{dgd_name}-{comp.lower()}", comp))
        out.append(OperatorName(f"label {COMPONENT_LABEL}", comp, comp))
    for comp in workers:
        hashed = f"{dgd_name}-{comp.lower()}-{'0' * WORKER_HASH_LEN}"
        out.append(OperatorName(f"label {SELECTOR_LABEL} of a worker rolled by spec hash", hashed, comp,
                                optional=True))
    return out


def namespace_names(namespace: str, dgd_name: str) -> list[OperatorName]:
    """The names that depend on the Kubernetes namespace the DGD is deployed in."""
    return [OperatorName(f"label {DYNAMO_NAMESPACE_LABEL}", dynamo_namespace(namespace, dgd_name), None)]


def namespace_room(dgd_name: str) -> int:
    """The longest namespace that keeps ``<namespace>-<dgd>`` within a label value's 63 characters."""
    return LABEL_VALUE_MAX - 1 - len(dgd_name)


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` cannot be a namespace name (a DNS-1123 label), or ``None``."""
    if len(namespace) > DNS_LABEL_MAX:
        return f"is {len(namespace)} characters (limit {DNS_LABEL_MAX})"
    if not _DNS1123.fullmatch(namespace):
        return "is not a DNS-1123 label (lowercase letters, digits and '-', alphanumeric at both ends)"
    return None
