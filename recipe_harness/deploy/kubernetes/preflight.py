"""Can this cluster run this recipe? Checked before deploying anything.

- the API answers (``/version``);
- the ``dynamographdeployments.nvidia.com`` CRD is installed and serves the recipe's version;
- the Dynamo operator runs (a ready Deployment labelled ``app.kubernetes.io/part-of=dynamo-operator``);
- hardware: allocatable GPUs of the recipe's product (node label ``nvidia.com/gpu.product``) in
  the count it needs (and one node holding its largest pod), the RDMA resources it requests,
  the storage classes its PVCs name (or a default class for PVCs that name none).

Problems of the first three kinds fail; missing hardware is reported as ``missing`` so the
suite skips (or fails with ``--require-hardware``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recipe_harness.deploy.kubernetes.client import ApiError, Kube, KubeError
from recipe_harness.deploy.kubernetes.manifests import walk_maps
from recipe_harness.deploy.kubernetes.resources import (
    CRD,
    DEPLOYMENT,
    DGD_CRD,
    NODE,
    STORAGE_CLASS,
    split_api_version,
)
from recipe_harness.model.bundle import LoadedRecipe

OK, MISSING, FAIL, UNKNOWN = "ok", "missing", "fail", "unknown"
GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
OPERATOR_SELECTOR = "app.kubernetes.io/part-of=dynamo-operator"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
_RDMA = re.compile(r"^(rdma/|nvidia\.com/(hostdev|mlnx|sriov)|mellanox\.com/)")
_PRODUCT = re.compile(r"\b(GB300|GB200|B300|B200|H200|H100|H20|A100|A10G|L40S|L40|L4|RTX\s?PRO\s?6000)\b", re.I)


@dataclass
class Check:
    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.name}: {self.status}: {self.message}"


@dataclass
class Requirements:
    api_version: str
    gpu_product: str | None = None
    gpus_total: int = 0
    gpus_per_pod: int = 0
    rdma: dict[str, int] = field(default_factory=dict)     # resource -> largest per-pod request
    storage_classes: list[str] = field(default_factory=list)
    default_class_needed: bool = False


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)

    def by_status(self, status: str) -> list[Check]:
        return [c for c in self.checks if c.status == status]

    @property
    def failed(self) -> list[Check]:
        return self.by_status(FAIL)

    @property
    def missing(self) -> list[Check]:
        return self.by_status(MISSING)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in self.checks:
            for k, v in c.details.items():
                out[f"{c.name}.{k}"] = v
        return out

    def summary(self) -> str:
        return "\n".join(c.line() for c in self.checks)


def _product_from_manifest(body: Any) -> str | None:
    for node in walk_maps(body):
        if PRODUCT_LABEL in node and isinstance(node[PRODUCT_LABEL], str):
            return node[PRODUCT_LABEL]
        if node.get("key") == PRODUCT_LABEL and node.get("values"):
            return str(node["values"][0])
        if isinstance(node.get("gpuType"), str) and node["gpuType"]:
            return node["gpuType"]
    return None


def _product_from_readmes(recipe: LoadedRecipe) -> str | None:
    rid = recipe.id
    for text in recipe.readme_texts.values():
        for line in text.splitlines():
            if f"`{rid}`" in line or f" {rid} " in line:
                m = _PRODUCT.search(line)
                if m:
                    return m.group(1).upper().replace(" ", "")
    return None


def requirements(recipe: LoadedRecipe, *, twin: bool = False) -> Requirements:
    """What the recipe (or its mocker twin: no GPUs, no RDMA, default storage) needs from a cluster."""
    dep = recipe.deployment
    req = Requirements(api_version=dep.api_version if dep else "")
    if dep is None:
        return req
    pvcs = [d.body for d in recipe.model_cache_documents if d.kind == "PersistentVolumeClaim"]
    classes = [(p.get("spec") or {}).get("storageClassName") for p in pvcs]
    classes += [p.storage_class for p in dep.pvcs if p.create]
    if twin:
        req.default_class_needed = bool(pvcs) or any(p.create for p in dep.pvcs)
        return req
    req.gpus_total = dep.total_gpus
    req.gpus_per_pod = max((s.gpus for s in dep.services), default=0)
    req.gpu_product = _product_from_manifest(dep.document.body) or _product_from_readmes(recipe)
    for svc in dep.services:
        for node in walk_maps(svc.raw):
            for section in ("requests", "limits"):
                sec = node.get(section)
                if not isinstance(sec, dict):
                    continue
                for src in (sec, v if isinstance(v := sec.get("custom"), dict) else {}):
                    for key, value in src.items():
                        if _RDMA.match(str(key)):
                            try:
                                n = int(str(value))
                            except ValueError:
                                n = 1
                            req.rdma[key] = max(req.rdma.get(key, 0), n)
    req.storage_classes = sorted({c for c in classes if c})
    req.default_class_needed = any(not c for c in classes)
    return req


def _quantity(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _product_matches(label: str, product: str) -> bool:
    tokens = set(re.split(r"[-_ ]+", label.upper()))
    wanted = product.upper().replace("NVIDIA-", "")
    return label.upper() == product.upper() or wanted in tokens or wanted == label.upper().replace("NVIDIA-", "")


def check_api(kube: Kube) -> Check:
    try:
        version = kube.get("/version") or {}
        return Check("api", OK, f"{kube.host} answers, Kubernetes {version.get('gitVersion', '?')}",
                     {"version": version.get("gitVersion")})
    except ApiError as exc:
        return Check("api", FAIL, f"the API at {kube.host} does not answer: {exc}")


def check_crd(kube: Kube, api_version: str) -> Check:
    try:
        crd = kube.get_or_none(CRD.path(name=DGD_CRD))
    except ApiError as exc:
        if exc.status == 403:  # namespace-scoped users may not read CRDs: the deploy itself will tell
            return Check("crd", UNKNOWN, f"cannot read CRD {DGD_CRD} (RBAC); not verified")
        return Check("crd", FAIL, f"cannot read CRD {DGD_CRD}: {exc}")
    if crd is None:
        return Check("crd", FAIL, f"CRD {DGD_CRD} is not installed; install the Dynamo platform (helm chart dynamo-platform)")
    versions = [v for v in (crd.get("spec") or {}).get("versions") or []]
    served = [v.get("name") for v in versions if v.get("served")]
    storage = next((v.get("name") for v in versions if v.get("storage")), None)
    _, wanted = split_api_version(api_version or "")
    details = {"served_versions": served, "storage_version": storage}
    if wanted and wanted not in served:
        return Check("crd", FAIL, f"CRD {DGD_CRD} serves {served}, the recipe uses {wanted}", details)
    return Check("crd", OK, f"{DGD_CRD} serves {', '.join(served)} (storage {storage})", details)


def node_autoscaler(kube: Kube) -> str | None:
    """The node autoscaler the cluster runs, if it can be seen: the cluster-autoscaler writes its
    status ConfigMap ``kube-system/cluster-autoscaler-status`` (how Kubernetes' own autoscaling e2e
    tests detect it); Karpenter serves the ``karpenter.sh`` API group. ``None`` when neither is seen,
    or when this user may not look (an unschedulable pod then fails after ``--unschedulable-grace``)."""
    try:
        if kube.get_or_none("/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status") is not None:
            return "cluster-autoscaler"
    except KubeError:
        pass
    try:
        if kube.get_or_none("/apis/karpenter.sh") is not None:
            return "Karpenter"
    except KubeError:
        pass
    return None


def check_operator(kube: Kube) -> Check:
    try:
        items = (kube.get(DEPLOYMENT.path(), labelSelector=OPERATOR_SELECTOR) or {}).get("items") or []
    except ApiError as exc:
        if exc.status == 403:
            return Check("operator", UNKNOWN, "cannot list Deployments cluster-wide (RBAC); operator not verified")
        return Check("operator", FAIL, f"cannot look for the operator: {exc}")
    ready = [d for d in items if int((d.get("status") or {}).get("readyReplicas") or 0) > 0]
    names = [f"{d['metadata'].get('namespace')}/{d['metadata'].get('name')}" for d in ready]
    if not ready:
        found = [d["metadata"].get("name") for d in items]
        return Check("operator", FAIL, "no ready Dynamo operator Deployment "
                                       f"({OPERATOR_SELECTOR}){'; found not ready: ' + ', '.join(found) if found else ''}")
    return Check("operator", OK, f"running: {', '.join(names)}", {"deployments": names})


def check_gpus(nodes: list[dict[str, Any]], req: Requirements) -> Check:
    if req.gpus_total <= 0:
        return Check("gpus", OK, "the recipe requests no GPUs", {"needed": 0})
    per_node = []
    gpu_nodes = [n for n in nodes if _quantity(((n.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE)) > 0]
    # Without GPU feature discovery no node says its product: count every GPU, and say so.
    labelled = any(PRODUCT_LABEL in ((n.get("metadata") or {}).get("labels") or {}) for n in gpu_nodes)
    for node in gpu_nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        alloc = _quantity(((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE))
        if req.gpu_product and labelled and not _product_matches(labels.get(PRODUCT_LABEL, ""), req.gpu_product):
            continue
        per_node.append((node["metadata"]["name"], alloc))
    total = sum(a for _, a in per_node)
    biggest = max((a for _, a in per_node), default=0)
    product = req.gpu_product or "any product"
    details = {"product": req.gpu_product, "needed": req.gpus_total, "allocatable": total,
               "per_pod": req.gpus_per_pod, "nodes": len(per_node)}
    if total < req.gpus_total or biggest < req.gpus_per_pod:
        return Check("gpus", MISSING, f"needs {req.gpus_total} GPUs ({product}, {req.gpus_per_pod} in one pod); "
                                      f"allocatable: {total} on {len(per_node)} nodes (largest node {biggest})", details)
    if req.gpu_product and not labelled:
        details["product_verified"] = False
        return Check("gpus", OK, f"{total} allocatable GPUs on {len(per_node)} nodes (needs {req.gpus_total}); "
                                 f"their product is unknown (no {PRODUCT_LABEL} labels: GPU feature discovery "
                                 f"is not installed), {req.gpu_product} not verified", details)
    return Check("gpus", OK, f"{total} allocatable {product} GPUs on {len(per_node)} nodes "
                             f"(needs {req.gpus_total}); allocatable, not necessarily free", details)


def check_rdma(nodes: list[dict[str, Any]], req: Requirements) -> Check:
    if not req.rdma:
        return Check("rdma", OK, "the recipe requests no RDMA resources")
    missing = []
    for key, per_pod in sorted(req.rdma.items()):
        best = max((_quantity(((n.get("status") or {}).get("allocatable") or {}).get(key)) for n in nodes), default=0)
        if best < per_pod:
            missing.append(f"{key} (needs {per_pod} per pod, largest node has {best})")
    if missing:
        return Check("rdma", MISSING, "no node offers " + "; ".join(missing), {"requested": req.rdma})
    return Check("rdma", OK, "offered: " + ", ".join(sorted(req.rdma)), {"requested": req.rdma})


def check_storage(kube: Kube, req: Requirements) -> Check:
    if not req.storage_classes and not req.default_class_needed:
        return Check("storage", OK, "the recipe names no storage class")
    try:
        classes = (kube.get(STORAGE_CLASS.path()) or {}).get("items") or []
    except ApiError as exc:
        return Check("storage", UNKNOWN, f"cannot list storage classes: {exc}")
    names = {c["metadata"]["name"] for c in classes}
    defaults = [c["metadata"]["name"] for c in classes
                if any(((c.get("metadata") or {}).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)]
    problems = [f"storage class {n!r} does not exist (have: {', '.join(sorted(names)) or 'none'})"
                for n in req.storage_classes if n not in names]
    if req.default_class_needed and not defaults:
        problems.append("a PVC names no storage class and the cluster has no default class")
    details = {"classes": sorted(names), "default": defaults, "wanted": req.storage_classes}
    if problems:
        return Check("storage", MISSING, "; ".join(problems), details)
    return Check("storage", OK, f"available: {', '.join(req.storage_classes + [f'default {d}' for d in defaults])}",
                 details)


def preflight(kube: Kube, recipe: LoadedRecipe, *, twin: bool = False) -> PreflightReport:
    report = PreflightReport()
    req = requirements(recipe, twin=twin)
    api = check_api(kube)
    report.checks.append(api)
    if api.status == FAIL:
        return report
    report.checks.append(check_crd(kube, req.api_version))
    report.checks.append(check_operator(kube))
    nodes: list[dict[str, Any]] = []
    if req.gpus_total or req.rdma:
        try:
            nodes = (kube.get(NODE.path()) or {}).get("items") or []
        except ApiError as exc:
            report.checks.append(Check("nodes", UNKNOWN if exc.status == 403 else FAIL, f"cannot list nodes: {exc}"))
    report.checks.append(check_gpus(nodes, req))
    report.checks.append(check_rdma(nodes, req))
    report.checks.append(check_storage(kube, req))
    return report
