"""``--twin mocker`` on a cluster: the same graph, no GPUs.

Rewrites a recipe's DynamoGraphDeployment the way the Dynamo project's own mocker examples are
written (``examples/backends/mocker/deploy``): every worker keeps its name, type, replicas,
disaggregation role, env, Secrets and volume mounts, but runs ``python3 -m dynamo.mocker`` with
the model, served name, block size, batch limits and data parallelism of the engine it stands
in for, in the image that ships the mocker, with no GPU/RDMA requests and no GPU node
selection. The frontend keeps its command (router mode, port) in the same image, and so does a
worker's ``frontendSidecar`` (the GAIE pattern: a frontend in every worker pod). The DGD name,
and so every Service name the perf Job talks to, is unchanged.

Model-cache manifests follow: PVCs fit a kind cluster's default storage class (1Gi,
ReadWriteOnce, no class), the download Job fetches only config and tokenizer files. The perf
Job keeps its aiperf command with the request counts capped, so the whole path -- services,
routing, disaggregation, PVCs, perf artifacts -- runs end to end on a GPU-less cluster.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from .backends import engine_config
from .bundle import LoadedRecipe
from .model import Service
from .twin import has_prefill_worker, run_role

DEFAULT_DYNAMO_VERSION = "1.6.1"
# "There is no dedicated mocker-runtime image. The published dynamo-planner image includes the
# ai-dynamo wheel [...] needed by python3 -m dynamo.mocker" -- Dynamo's mocker examples.
TWIN_IMAGE = "nvcr.io/nvidia/ai-dynamo/dynamo-planner:{version}"
TWIN_REQUESTS = {"cpu": "100m", "memory": "512Mi"}
TWIN_LIMITS = {"memory": "4Gi"}
TWIN_PVC_SIZE = "1Gi"
PERF_REQUEST_CAP = 32
PERF_WARMUP_CAP = 2
HF_INCLUDE = '--include "*.json" "tokenizer*" "*.model" "*.tiktoken" "*.txt"'
GPU_KEYS = ("gpu", "gpuType", "nvidia.com/gpu")
_RDMA = re.compile(r"^(rdma/|nvidia\.com/(hostdev|mlnx|sriov)|mellanox\.com/)")
_GPU_LABELS = re.compile(r"^(nvidia\.com/|feature\.node\.kubernetes\.io/pci-10de|cloud\.google\.com/gke-accelerator)")
_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@dataclass
class TwinOptions:
    image: str | None = None            # default: dynamo-planner at the recipe's Dynamo version
    speedup_ratio: float = 10.0


@dataclass
class Twin:
    dgd: dict[str, Any]
    model_cache: list[dict[str, Any]] = field(default_factory=list)
    perf: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def dynamo_version(images: list[str]) -> str:
    for image in images:
        m = re.search(r"ai-dynamo/[\w.-]+:(\d+\.\d+\.\d+[\w.-]*)$", image or "")
        if m:
            return m.group(1)
    return DEFAULT_DYNAMO_VERSION


def _node(body: Any, path: tuple) -> Any:
    for part in path:
        body = body[part]
    return body


def _strip_gpu_resources(resources: Any) -> None:
    if not isinstance(resources, dict):
        return
    for section in ("requests", "limits"):
        sec = resources.get(section)
        if isinstance(sec, dict):
            for key in list(sec):
                if key in GPU_KEYS or _RDMA.match(key):
                    sec.pop(key)
            custom = sec.get("custom")
            if isinstance(custom, dict):
                for key in list(custom):
                    if key in GPU_KEYS or _RDMA.match(key):
                        custom.pop(key)
                if not custom:
                    sec.pop("custom")
    resources.pop("claims", None)


def _small_resources(resources: Any) -> dict[str, Any]:
    _strip_gpu_resources(resources)
    out = resources if isinstance(resources, dict) else {}
    out["requests"] = {**{k: v for k, v in (out.get("requests") or {}).items() if k not in ("cpu", "memory")},
                       **TWIN_REQUESTS}
    out["limits"] = {**{k: v for k, v in (out.get("limits") or {}).items() if k not in ("cpu", "memory")},
                     **TWIN_LIMITS}
    return out


def _gpu_free_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    selector = spec.get("nodeSelector")
    if isinstance(selector, dict):
        for key in list(selector):
            if _GPU_LABELS.match(key):
                selector.pop(key)
    spec.pop("affinity", None)
    spec.pop("resourceClaims", None)
    spec.pop("runtimeClassName", None)
    tolerations = spec.get("tolerations")
    if isinstance(tolerations, list):
        spec["tolerations"] = [t for t in tolerations if not str((t or {}).get("key", "")).startswith("nvidia.com")]


def _mocker_args(recipe: LoadedRecipe, svc: Service, opts: TwinOptions) -> list[str]:
    cfg = engine_config(recipe, svc)
    dep = recipe.deployment
    has_prefill = has_prefill_worker([(w, engine_config(recipe, w)) for w in dep.workers]) if dep else False
    role = run_role(svc, cfg, has_prefill)
    model = cfg.model or cfg.served_name or "Qwen/Qwen3-0.6B"
    args = ["--model-path", model, "--model-name", cfg.served_name or model,
            "--speedup-ratio", f"{opts.speedup_ratio:g}"]
    if cfg.block_size:
        args += ["--block-size", str(cfg.block_size)]
    if cfg.max_num_seqs:
        args += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.max_model_len:
        args += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.data_parallel and cfg.data_parallel > 1:
        args += ["--data-parallel-size", str(cfg.data_parallel)]
    args.append("--enable-prefix-caching" if cfg.prefix_caching else "--no-enable-prefix-caching")
    mode = cfg.disaggregation_mode or {"prefill": "prefill", "decode": "decode"}.get(role)
    if mode in ("prefill", "decode"):
        args += ["--disaggregation-mode", mode]
    return args


def _drop_offline(env: Any) -> Any:
    if isinstance(env, list):
        return [e for e in env if not (isinstance(e, dict) and e.get("name") == "HF_HUB_OFFLINE")]
    return env


def _twin_sidecar(node: dict[str, Any], svc: Service, pod_spec: dict[str, Any], image: str, v1beta1: bool) -> str:
    """Keep a worker's frontend sidecar (its args: router mode, port) in the twin image, GPU-free."""
    if v1beta1:
        name = node.get("frontendSidecar")
        side = next((c for c in pod_spec.get("containers") or [] if isinstance(c, dict) and c.get("name") == name), None)
        if side is None:
            return f"{svc.name}: frontendSidecar names no container {name!r}; left as written"
        _strip_gpu_resources(side.get("resources"))
        if "env" in side:
            side["env"] = _drop_offline(side["env"])
    else:
        side = node.get("frontendSidecar")
        if not isinstance(side, dict):
            return f"{svc.name}: frontendSidecar is not a map; left as written"
        if "envs" in side:
            side["envs"] = _drop_offline(side["envs"])
    side["image"] = image
    return f"{svc.name}: frontend sidecar kept in every pod ({' '.join(svc.frontend_sidecar.argv) or 'default args'})"


def twin_dgd(recipe: LoadedRecipe, opts: TwinOptions | None = None) -> tuple[dict[str, Any], list[str]]:
    opts = opts or TwinOptions()
    dep = recipe.deployment
    if dep is None:
        raise ValueError(f"{recipe.id}: no DynamoGraphDeployment to twin")
    body = copy.deepcopy(dep.document.body)
    image = opts.image or TWIN_IMAGE.format(version=dynamo_version([s.image or "" for s in dep.services]))
    v1beta1 = (dep.api_version or "").endswith("/v1beta1")
    notes = [f"mocker twin of {recipe.id}: image {image}, speedup {opts.speedup_ratio:g}"]
    for svc in dep.services:
        node = _node(body, svc.path)
        if v1beta1:
            pod_spec = node.setdefault("podTemplate", {}).setdefault("spec", {})
            containers = pod_spec.setdefault("containers", [{"name": "main"}])
            container = next((c for c in containers if c.get("name") == "main"), containers[0])
            node.pop("roles", None)
        else:
            pod_spec = node.setdefault("extraPodSpec", {})
            container = pod_spec.setdefault("mainContainer", {})
            node["resources"] = _small_resources(node.get("resources"))
            if "envs" in node:
                node["envs"] = _drop_offline(node["envs"])
        node.pop("multinode", None)
        _gpu_free_pod_spec(pod_spec)
        if v1beta1:
            container["resources"] = _small_resources(container.get("resources"))
        else:
            _strip_gpu_resources(container.get("resources"))
        if "env" in container:
            container["env"] = _drop_offline(container["env"])
        if svc.shared_memory:
            node["sharedMemory"] = {"size": "1Gi"}
        if svc.is_worker:
            container["image"] = image
            container["command"] = ["python3", "-m", "dynamo.mocker"]
            container["args"] = _mocker_args(recipe, svc, opts)
            container.setdefault("workingDir", "/workspace")
            for probe in _PROBES:
                container.pop(probe, None)
            notes.append(f"{svc.name}: {svc.role} x{svc.replicas} -> mocker ({svc.total_gpus} GPUs dropped)")
        elif svc.role == "frontend":
            container["image"] = image
        if svc.frontend_sidecar is not None:
            notes.append(_twin_sidecar(node, svc, pod_spec, image, v1beta1))
        if not container.get("resources"):
            container.pop("resources", None)
    spec = body.setdefault("spec", {})
    for pvc in spec.get("pvcs") or []:
        if isinstance(pvc, dict) and pvc.get("create"):
            pvc.pop("storageClass", None)
            pvc["size"] = TWIN_PVC_SIZE
            pvc["volumeAccessMode"] = "ReadWriteOnce"
    for key in ("envs", "env"):
        if key in spec:
            spec[key] = _drop_offline(spec[key])
    return body, notes


def _rewrite_args(container: dict[str, Any], fn) -> bool:
    changed = False
    for key in ("command", "args"):
        words = container.get(key)
        if isinstance(words, list):
            new = [fn(w) if isinstance(w, str) else w for w in words]
            changed |= new != words
            container[key] = new
    return changed


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


_HF_DOWNLOAD = re.compile(r"\b((?:hf|huggingface-cli)\s+download\s+[^\s;&|]+)")


def twin_model_cache(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    out, notes = [], []
    for doc in docs:
        doc = copy.deepcopy(doc)
        kind = doc.get("kind")
        if kind == "PersistentVolumeClaim":
            spec = doc.setdefault("spec", {})
            spec.pop("storageClassName", None)
            spec["accessModes"] = ["ReadWriteOnce"]
            spec.setdefault("resources", {}).setdefault("requests", {})["storage"] = TWIN_PVC_SIZE
            notes.append(f"PVC {doc['metadata']['name']}: {TWIN_PVC_SIZE} ReadWriteOnce, default storage class")
        elif kind == "Job":
            rewritten = False
            for c in _containers(doc):
                rewritten |= _rewrite_args(c, lambda w: _HF_DOWNLOAD.sub(lambda m: f"{m.group(1)} {HF_INCLUDE}", w)
                                           if HF_INCLUDE not in w else w)
                c.pop("resources", None)
            if not rewritten:
                notes.append(f"Job {doc['metadata']['name']}: no 'hf download' found, left out of the twin")
                continue
            notes.append(f"Job {doc['metadata']['name']}: config and tokenizer files only")
        out.append(doc)
    return out, notes


def _cap_flag(text: str, flag: str, cap: int) -> str:
    def sub(m: re.Match[str]) -> str:
        value = int(m.group(2))
        return f"{m.group(1)}{min(value, cap)}"
    return re.sub(rf"({re.escape(flag)}[ =]+[\"']?)(\d+)", sub, text)


def twin_perf(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    out, notes = [], []
    for doc in docs:
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "Job":
            for c in _containers(doc):
                _rewrite_args(c, lambda w: _cap_flag(_cap_flag(w, "--request-count", PERF_REQUEST_CAP),
                                                     "--warmup-request-count", PERF_WARMUP_CAP))
                c["resources"] = {"requests": dict(TWIN_REQUESTS), "limits": dict(TWIN_LIMITS)}
            notes.append(f"perf Job {doc['metadata']['name']}: request counts capped at {PERF_REQUEST_CAP}")
        out.append(doc)
    return out, notes


def mocker_twin(recipe: LoadedRecipe, opts: TwinOptions | None = None) -> Twin:
    """The GPU-free twin of a recipe: DGD, model-cache manifests and perf Job."""
    dgd, notes = twin_dgd(recipe, opts)
    cache, n2 = twin_model_cache([d.body for d in recipe.model_cache_documents if isinstance(d.body, dict)])
    perf, n3 = twin_perf([d.body for d in recipe.perf_documents if isinstance(d.body, dict)])
    return Twin(dgd, cache, perf, notes + n2 + n3)
