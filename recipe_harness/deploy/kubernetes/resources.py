"""Where an object lives in the API: apiVersion + kind -> URL path (group, version, plural, scope)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from recipe_harness.deploy.kubernetes.client import ApiError, Kube, KubeError

DGD_GROUP = "nvidia.com"
DGD_PLURAL = "dynamographdeployments"
DGD_CRD = f"{DGD_PLURAL}.{DGD_GROUP}"


class UnknownKind(KubeError):
    """The cluster serves no such kind (its CRD or operator is not installed)."""


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced:
            if namespace is None:
                path = f"{base}/{self.plural}"  # all namespaces (list/watch)
            else:
                path = f"{base}/namespaces/{quote(namespace)}/{self.plural}"
        else:
            path = f"{base}/{self.plural}"
        if name:
            path += f"/{quote(name)}"
        if sub:
            path += f"/{sub}"
        return path


_KNOWN: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "Pod"): ("pods", True),
    ("", "Service"): ("services", True),
    ("", "Secret"): ("secrets", True),
    ("", "ConfigMap"): ("configmaps", True),
    ("", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("", "ServiceAccount"): ("serviceaccounts", True),
    ("", "Event"): ("events", True),
    ("", "Namespace"): ("namespaces", False),
    ("", "Node"): ("nodes", False),
    ("batch", "Job"): ("jobs", True),
    ("apps", "Deployment"): ("deployments", True),
    ("apps", "StatefulSet"): ("statefulsets", True),
    ("storage.k8s.io", "StorageClass"): ("storageclasses", False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("rbac.authorization.k8s.io", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("rolebindings", True),
    ("nvidia.com", "DynamoGraphDeployment"): (DGD_PLURAL, True),
}

POD = ResourceType("", "v1", "pods")
EVENT = ResourceType("", "v1", "events")
SERVICE = ResourceType("", "v1", "services")
SECRET = ResourceType("", "v1", "secrets")
CONFIGMAP = ResourceType("", "v1", "configmaps")
PVC = ResourceType("", "v1", "persistentvolumeclaims")
NAMESPACE = ResourceType("", "v1", "namespaces", namespaced=False)
NODE = ResourceType("", "v1", "nodes", namespaced=False)
JOB = ResourceType("batch", "v1", "jobs")
DEPLOYMENT = ResourceType("apps", "v1", "deployments")
STORAGE_CLASS = ResourceType("storage.k8s.io", "v1", "storageclasses", namespaced=False)
CRD = ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


def dgd_type(api_version: str) -> ResourceType:
    return ResourceType(DGD_GROUP, api_version.rsplit("/", 1)[-1], DGD_PLURAL)


def split_api_version(api_version: str) -> tuple[str, str]:
    group, slash, version = api_version.partition("/")
    return (group, version) if slash else ("", api_version)


class Resolver:
    """Kind -> :class:`ResourceType`, from a table of common kinds, else from API discovery."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._discovered: dict[tuple[str, str], dict[str, ResourceType]] = {}

    def resolve(self, api_version: str, kind: str) -> ResourceType:
        group, version = split_api_version(api_version)
        known = _KNOWN.get((group, kind))
        if known:
            return ResourceType(group, version, known[0], known[1])
        kinds = self._discover(group, version)
        if kind not in kinds:
            raise UnknownKind(f"the cluster serves no kind {kind} in {api_version}; "
                              "install the CRD or operator that provides it")
        return kinds[kind]

    def _discover(self, group: str, version: str) -> dict[str, ResourceType]:
        key = (group, version)
        if key not in self._discovered:
            path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            try:
                listing = self.kube.get(path) or {}
            except ApiError as exc:
                if exc.status == 404:
                    listing = {}
                else:
                    raise
            found: dict[str, ResourceType] = {}
            for res in listing.get("resources", []):
                name = res.get("name", "")
                if "/" in name or not res.get("kind"):
                    continue
                found[res["kind"]] = ResourceType(group, version, name, bool(res.get("namespaced", True)))
            self._discovered[key] = found
        return self._discovered[key]


def pod_claims(pod: dict[str, Any]) -> list[str]:
    """PVC names a pod, or a pod template (a Job's ``spec.template``), mounts."""
    spec = pod.get("spec") or {}
    return [str(v["persistentVolumeClaim"].get("claimName")) for v in spec.get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)]
