"""System facts and software provenance, read from the system rather than from the user.

Local target: the ai-dynamo and aiperf versions of the side environments, the mocker settings
the run used (from the process logs' command lines when present), the harness version and the
recipes tree's git commit. Kubernetes: ``/version``, the nodes with their GPU feature discovery
labels (``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``, ``nvidia.com/cuda.driver-version.*``;
"unknown" when absent), the Dynamo operator Deployment (labelled
``app.kubernetes.io/part-of=dynamo-operator`` as the ``dynamo-platform`` chart labels it) with its
image and version, the storage classes, and every image as pulled (pod status ``imageID``, kept by
the run's diagnostics in ``kubernetes/<recipe-id>/pods.json``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from recipe_harness import __version__
from recipe_harness.deploy.kubernetes.resources import DEPLOYMENT, NODE, STORAGE_CLASS
from recipe_harness.exercise.predict.systems import UnmappedProfile, system_of

UNKNOWN = "unknown"
GIT_TIMEOUT = 10.0
VERSION_TIMEOUT = 60.0
PRODUCT_LABEL = "nvidia.com/gpu.product"
COUNT_LABEL = "nvidia.com/gpu.count"
DRIVER_PREFIX = "nvidia.com/cuda.driver-version."
DRIVER_LABELS = ("nvidia.com/cuda.driver-version.full", "nvidia.com/cuda.driver.major")
OPERATOR_SELECTOR = "app.kubernetes.io/part-of=dynamo-operator"
_PRODUCT = re.compile(r"(GB300|GB200|B300|B200|H200|H100|H20|A100|A10G|L40S|L40|L4)", re.I)


def git_provenance(tree: Path) -> dict[str, Any]:
    """Commit and dirtiness of the git work tree holding ``tree`` ("unknown" outside one)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"path": str(tree), "commit": UNKNOWN, "dirty": None}
    status = git("status", "--porcelain", "--", ".")
    return {"path": str(tree), "commit": commit, "dirty": bool(status) if status is not None else None}


def package_version(python: Path, dist: str) -> str:
    """``importlib.metadata.version(dist)`` in the environment of ``python``."""
    if not python.exists():
        return UNKNOWN
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    try:
        proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=VERSION_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else UNKNOWN


def mocker_settings(report_dir: Path, recipe_ids: list[str]) -> dict[str, dict[str, str]]:
    """Per recipe and worker process the mocker command line the local target ran (the first line of
    ``logs/<recipe-id>/<process>.log`` is ``$ <command>``)."""
    out: dict[str, dict[str, str]] = {}
    for rid in recipe_ids:
        for log in sorted((report_dir / "logs" / rid).glob("*.log")):
            try:
                with log.open(encoding="utf-8", errors="replace") as f:
                    first = f.readline().strip()
            except OSError:
                continue
            if first.startswith("$ ") and "dynamo.mocker" in first:
                args = first.split("dynamo.mocker", 1)[1].strip()
                out.setdefault(rid, {})[log.stem] = args
    return out


def local_facts(summary: dict[str, Any], report_dir: Path, dynamo_python: Path, aiperf_python: Path) -> dict[str, Any]:
    return {
        "target": "local",
        "gpus": [],
        "software": {"harness": __version__, "aiDynamo": package_version(dynamo_python, "ai-dynamo"),
                     "aiperf": package_version(aiperf_python, "aiperf")},
        "mocker": mocker_settings(report_dir, sorted(summary.get("recipes") or {})),
    }


def node_facts(node: dict[str, Any]) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    alloc = ((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu")
    driver = next((labels[k] for k in DRIVER_LABELS if k in labels), None)
    if driver is None:
        parts = {k[len(DRIVER_PREFIX):]: v for k, v in labels.items() if k.startswith(DRIVER_PREFIX)}
        if all(p in parts for p in ("major", "minor", "rev")):
            driver = f"{parts['major']}.{parts['minor']}.{parts['rev']}"
        elif "major" in parts:
            driver = parts["major"]
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return {"name": meta.get("name", UNKNOWN), "gpuProduct": labels.get(PRODUCT_LABEL, UNKNOWN),
            "gpuCount": labels.get(COUNT_LABEL, str(alloc) if alloc is not None else UNKNOWN),
            "driver": driver or UNKNOWN, "kubelet": info.get("kubeletVersion", UNKNOWN)}


def pulled_images(report_dir: Path, recipe_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Per recipe each container's image and the digest the kubelet pulled (``status.containerStatuses[].imageID``)."""
    out: dict[str, list[dict[str, str]]] = {}
    for rid in recipe_ids:
        path = report_dir / "kubernetes" / rid / "pods.json"
        if not path.is_file():
            continue
        try:
            pods = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows: list[dict[str, str]] = []
        for pod in pods if isinstance(pods, list) else []:
            status = pod.get("status") or {}
            for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
                row = {"pod": (pod.get("metadata") or {}).get("name", UNKNOWN), "container": cs.get("name", UNKNOWN),
                       "image": cs.get("image", UNKNOWN), "imageID": cs.get("imageID") or UNKNOWN}
                if row not in rows:
                    rows.append(row)
        out[rid] = rows
    return out


def kubernetes_facts(kube: Any, summary: dict[str, Any], report_dir: Path, aiperf_python: Path) -> dict[str, Any]:
    """Facts of the cluster ``kube`` (a :class:`recipe_harness.deploy.kubernetes.client.Kube`); a read the
    credentials do not allow is recorded as "unknown" with the error."""
    facts: dict[str, Any] = {"target": "kubernetes", "errors": []}

    def read(what: str, fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none stops the bundle
            facts["errors"].append(f"{what}: {exc}")
            return None

    version = read("version", lambda: kube.get("/version")) or {}
    facts["kubernetesVersion"] = version.get("gitVersion", UNKNOWN)
    nodes = (read("nodes", lambda: kube.get(NODE.path())) or {}).get("items") or []
    facts["nodes"] = [node_facts(n) for n in nodes]
    facts["gpus"] = sorted({n["gpuProduct"] for n in facts["nodes"] if n["gpuProduct"] != UNKNOWN})
    deps = (read("operator", lambda: kube.get(DEPLOYMENT.path(), labelSelector=OPERATOR_SELECTOR)) or {}).get("items") or []
    ops = []
    for d in deps:
        meta = d.get("metadata") or {}
        labels = meta.get("labels") or {}
        images = [c.get("image", UNKNOWN) for c in
                  ((((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])]
        ops.append({"name": f"{meta.get('namespace')}/{meta.get('name')}", "images": images,
                    "version": labels.get("app.kubernetes.io/version") or labels.get("helm.sh/chart") or UNKNOWN})
    facts["operator"] = ops or UNKNOWN
    classes = (read("storageclasses", lambda: kube.get(STORAGE_CLASS.path())) or {}).get("items") or []
    facts["storageClasses"] = [
        {"name": (c.get("metadata") or {}).get("name", UNKNOWN), "provisioner": c.get("provisioner", UNKNOWN),
         "default": ((c.get("metadata") or {}).get("annotations") or {}).get(
             "storageclass.kubernetes.io/is-default-class") == "true"} for c in classes]
    facts["images"] = pulled_images(report_dir, sorted(summary.get("recipes") or {}))
    facts["software"] = {"harness": __version__, "aiperf": package_version(aiperf_python, "aiperf")}
    return facts


def product_of(text: str) -> str | None:
    m = _PRODUCT.search(text.replace("_", "-"))
    return m.group(1).upper() if m else None


def hardware_match(profile: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Does the hardware found fit ``profile``? A profile naming a GPU (``h200-sxm``) needs nodes of that
    product (``nvidia.com/gpu.product``); a profile naming none (``cpu-mocker``) runs on the local target."""
    try:
        expected = product_of(system_of(profile).label)
    except UnmappedProfile:
        expected = None
    found = list(facts.get("gpus") or [])
    if expected is None:
        ok = facts.get("target") == "local"
        why = "" if ok else (f"profile {profile} names no GPU product; it qualifies the local target only, "
                             f"this run was on {facts.get('target')}")
        return {"expected": None, "found": found, "matched": ok, "why": why}
    products = [p for p in (product_of(f) for f in found) if p]
    if facts.get("target") == "local":
        return {"expected": expected, "found": found, "matched": False,
                "why": f"profile {profile} needs {expected} GPUs; the local target has none"}
    if not found:
        return {"expected": expected, "found": found, "matched": False,
                "why": f"profile {profile} needs {expected} GPUs; no node says its GPU product ({PRODUCT_LABEL} "
                       f"is unknown: install GPU feature discovery)"}
    if expected not in products:
        return {"expected": expected, "found": found, "matched": False,
                "why": f"profile {profile} needs {expected} GPUs; the cluster's nodes have {', '.join(found)}"}
    return {"expected": expected, "found": found, "matched": True, "why": ""}
