"""The bundled Kubernetes OpenAPI definitions (from ``kubernetes-validate``), offline.

``kubernetes-validate`` ships, per Kubernetes minor version, a ``_definitions.json``
(``$id`` ``https://kubernetes.io/api/_definitions.json``, JSON Schema 2020-12, every
definition under ``$defs``); its ``-strict`` variant sets ``additionalProperties: false`` on
every structured object. Kinds are found through each definition's
``x-kubernetes-group-version-kind``. Nothing is ever fetched: the definitions are registered
in a :class:`referencing.Registry` under their ``$id``.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from typing import Any

K8S_DEFS_URI = "https://kubernetes.io/api/_definitions.json"
DERIVED_URI = "https://recipe-harness.local/schemas/k8s-derived.json"
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.\d+-local-strict$")


class UnknownKubernetesVersion(ValueError):
    pass


def _schema_root() -> Any:
    return importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")


@functools.cache
def available_versions() -> tuple[str, ...]:
    """Kubernetes minor versions with bundled strict schemas, oldest first (``("1.25", ...)``)."""
    found = []
    for entry in _schema_root().iterdir():
        m = _VERSION_DIR.match(entry.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return tuple(f"{a}.{b}" for a, b in sorted(found))


def normalise_version(version: str) -> str:
    """``"v1.33.2"`` / ``"1.33"`` -> ``"1.33"``; raises :class:`UnknownKubernetesVersion`."""
    m = re.match(r"^v?(\d+)\.(\d+)(\.\d+)?$", str(version).strip())
    minor = f"{m.group(1)}.{m.group(2)}" if m else str(version)
    if minor not in available_versions():
        raise UnknownKubernetesVersion(
            f"Kubernetes version {version!r} has no bundled schemas; available: {', '.join(available_versions())}")
    return minor


@functools.cache
def load_definitions(version: str) -> dict[str, Any]:
    """The whole strict ``_definitions.json`` document of a Kubernetes minor version."""
    minor = normalise_version(version)
    path = _schema_root().joinpath(f"v{minor}.0-local-strict", "_definitions.json")
    with path.open("rb") as fh:
        return json.load(fh)


def api_version_of(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


_STABILITY = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def _version_rank(api_version: str) -> tuple:
    version = api_version.rsplit("/", 1)[-1]
    m = _STABILITY.match(version)
    if not m:
        return (3, 0, 0)
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0))


@dataclass
class KubeCatalog:
    """Kinds of one Kubernetes version: ``kind -> {apiVersion: definition name}``."""

    version: str
    document: dict[str, Any]
    by_kind: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, version: str) -> KubeCatalog:
        doc = load_definitions(version)
        by_kind: dict[str, dict[str, str]] = {}
        for name, schema in doc["$defs"].items():
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                api = api_version_of(gvk.get("group", ""), gvk["version"])
                by_kind.setdefault(gvk["kind"], {})[api] = name
        return cls(normalise_version(version), doc, by_kind)

    def definition(self, api_version: str, kind: str) -> str | None:
        return self.by_kind.get(kind, {}).get(api_version)

    def api_versions(self, kind: str) -> list[str]:
        """apiVersions serving ``kind``, the preferred (most stable, newest) first."""
        return sorted(self.by_kind.get(kind, {}), key=_version_rank)

    def kinds_for(self, api_version: str) -> list[str]:
        return sorted(k for k, apis in self.by_kind.items() if api_version in apis)

    @property
    def api_version_set(self) -> set[str]:
        return {api for apis in self.by_kind.values() for api in apis}


def _absolute_refs(node: Any) -> Any:
    """Deep copy of ``node`` with document-local ``#/$defs/...`` refs made absolute."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#"):
                out[k] = K8S_DEFS_URI + v
            else:
                out[k] = _absolute_refs(v)
        return out
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


@functools.cache
def derived_document(version: str) -> dict[str, Any]:
    """Kubernetes shapes the Dynamo CRD embeds in modified form (built from the pinned version).

    * ``MainContainer`` -- a core/v1 Container whose ``name`` is optional (the operator names it).
    * ``ExtraPodSpec`` -- every core/v1 PodSpec field, none required, plus ``mainContainer``.
    """
    defs = load_definitions(version)["$defs"]
    container = _absolute_refs(copy.deepcopy(defs["io.k8s.api.core.v1.Container"]))
    container.pop("required", None)
    pod_spec = _absolute_refs(copy.deepcopy(defs["io.k8s.api.core.v1.PodSpec"]))
    pod_spec.pop("required", None)
    pod_spec["properties"]["mainContainer"] = {
        "$ref": "#/$defs/MainContainer",
        "description": "Overrides for the main container (a core/v1 Container; name optional)."}
    pod_spec["additionalProperties"] = False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": DERIVED_URI,
        "$defs": {"MainContainer": container, "ExtraPodSpec": pod_spec},
    }
