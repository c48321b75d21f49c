"""``--twin mocker`` on a cluster: the same graph, no GPUs.

Rewrites a recipe's DynamoGraphDeployment the way the Dynamo project's own mocker examples are
written (``examples/backends/mocker/deploy``): every worker keeps its name, type, replicas,
disaggregation role, env, Secrets and volume mounts, but runs ``python3 -m dynamo.mocker`` with
the model, served name, engine type, block size, batch limits and data parallelism of the engine
it stands in for (:func:`recipe_harness.deploy.mocker.mocker_args`, the local twin's builder too),
in the image that ships the mocker, with no GPU/RDMA requests and no GPU node
selection. The frontend keeps its command (router mode, port) in the same image, and so does a
worker's ``frontendSidecar`` (the GAIE pattern: a frontend in every worker pod). The DGD name,
and so every Service name the perf Job talks to, is unchanged.

Model-cache manifests follow: PVCs fit a kind cluster's default storage class (1Gi,
ReadWriteOnce, no class), the download Job fetches only config and tokenizer files. The perf
Job keeps its aiperf command with the request counts capped, so the whole path -- services,
routing, disaggregation, PVCs, perf artifacts -- runs end to end on a GPU-less cluster.

The mocker parses its command line strictly (an unknown flag exits with status 2, a
CrashLoopBackOff on a cluster), and its flags differ between Dynamo releases, so the twin
emits only flags the mocker *in the twin image* declares
(:data:`recipe_harness.deploy.mocker.MOCKER_FLAGS`, one entry per release, read from
``components/src/dynamo/mocker/args.py`` of each ``ai-dynamo`` release): ``--max-model-len``
only from 1.4.0, ``--disaggregation-mode`` from 1.0.0 and ``--is-prefill-worker``/``--is-decode-worker``
before it. Which release's flags, and which
image (:func:`mocker_cli`):

- no ``--twin-image``: the Dynamo release of the recipe's own images (``ai-dynamo/*:X.Y.Z``).
  A release the table lists runs in the twin image of that release with its flags; a patch
  release between two listed releases takes the flags of the nearest older listed one.
  A release outside the table (newer than its newest, older than its oldest, or no
  Dynamo image at all) runs in the image of :data:`DEFAULT_DYNAMO_VERSION`, the version the
  harness ships and whose mocker parser its tests run: an unknown release's flags are a
  guess, a known image's are not.
- ``--twin-image``: the image is the user's. Its tag's release is looked up the same way; a
  tag newer than the table, or no version in the tag, gets the flags of
  :data:`DEFAULT_DYNAMO_VERSION`; a release older than the table is refused (its mocker
  predates the vLLM-style command line).

The choice is always the twin's first note: ``mocker flags for Dynamo X.Y.Z, image ...``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from recipe_harness.deploy.kubernetes.manifests import Manifests, companions
from recipe_harness.deploy.mocker import (
    DEFAULT_DYNAMO_VERSION,
    MOCKER_FLAGS,
    Version,
    disaggregation_mode,
    mocker_args,
    parse_version,
    version_text,
)
from recipe_harness.deploy.twin import has_prefill_worker, run_role
from recipe_harness.endpoint import DeployError
from recipe_harness.model import Service
from recipe_harness.model.backends import engine_config, routes_by_kv_events
from recipe_harness.model.bundle import LoadedRecipe

__all__ = ["DEFAULT_DYNAMO_VERSION", "MOCKER_FLAGS", "MockerCli", "Twin", "TwinOptions", "mocker_cli", "mocker_twin",
           "twin_dgd", "twin_image"]

# "There is no dedicated mocker-runtime image. The published dynamo-planner image includes the
# ai-dynamo wheel [...] needed by python3 -m dynamo.mocker" -- Dynamo's mocker examples
# (examples/backends/mocker/deploy/disagg.yaml). The dynamo-planner image exists from Dynamo
# 1.1.0 ("Starting with Dynamo 1.1.0 [...] the dedicated dynamo-planner image [...] earlier
# versions can continue using the frontend/backend image" --
# deploy/operator/internal/controller/dynamographdeploymentrequest_controller.go); before it
# the dynamo-frontend image carries the same ai-dynamo wheel, whose dynamo/mocker package every
# release from 0.6.0 ships next to dynamo/frontend.
TWIN_IMAGE = "nvcr.io/nvidia/ai-dynamo/dynamo-planner:{version}"
TWIN_IMAGE_BEFORE_1_1 = "nvcr.io/nvidia/ai-dynamo/dynamo-frontend:{version}"
TWIN_REQUESTS = {"cpu": "100m", "memory": "512Mi"}
TWIN_LIMITS = {"memory": "4Gi"}
TWIN_PVC_SIZE = "1Gi"
PERF_REQUEST_CAP = 32
PERF_WARMUP_CAP = 2
HF_INCLUDE = '--include "*.json" "tokenizer*" "*.model" "*.tiktoken" "*.txt"'
GPU_KEYS = ("gpu", "gpuType", "nvidia.com/gpu")
# Dynamic Resource Allocation objects a recipe may ship for its pods' GPUs (NVIDIA's ComputeDomain,
# ResourceClaimTemplates): the twin's pods claim nothing (their resourceClaims are dropped).
DRA_GROUPS = ("resource.nvidia.com", "resource.k8s.io")
_RDMA = re.compile(r"^(rdma/|nvidia\.com/(hostdev|mlnx|sriov)|mellanox\.com/)")
_GPU_LABELS = re.compile(r"^(nvidia\.com/|feature\.node\.kubernetes\.io/pci-10de|cloud\.google\.com/gke-accelerator)")
_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@dataclass
class TwinOptions:
    image: str | None = None            # default: dynamo-planner at the recipe's Dynamo version
    speedup_ratio: float = 10.0


Twin = Manifests
"""A twin is what the target applies: :class:`~.manifests.Manifests` written for the mocker."""


# -- the twin image and its mocker's flags -------------------------------------------------------


@dataclass(frozen=True)
class MockerCli:
    """The twin image and the mocker flags it accepts."""

    image: str
    version: str                 # the Dynamo release whose mocker flags the twin emits
    flags: frozenset[str]
    note: str                    # how both were chosen (the twin's first note)

    def has(self, flag: str) -> bool:
        return flag in self.flags


def twin_image(version: str) -> str:
    """The published image with ``dynamo.mocker`` and ``dynamo.frontend`` of a Dynamo release."""
    v = parse_version(version)
    return (TWIN_IMAGE if v is None or v >= (1, 1, 0) else TWIN_IMAGE_BEFORE_1_1).format(version=version)


def _known(v: Version) -> Version | None:
    """The table row for release ``v``: its own, or the nearest older one inside the table's range."""
    if v in MOCKER_FLAGS:
        return v
    older = [k for k in MOCKER_FLAGS if k < v]
    if older and v < max(MOCKER_FLAGS):
        return max(older)
    return None


def _image_tag(image: str) -> str:
    """The tag of an image reference (``repo:tag[@digest]``), or ``""``."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    return tag if name and "/" not in tag else ""


def mocker_cli(recipe_images: list[str], image: str | None = None, *, needs_roles: bool = False) -> MockerCli:
    """The twin image and its mocker flags (rules in the module docstring).

    ``recipe_images`` are the images the recipe's services run, ``image`` the user's
    ``--twin-image``; ``needs_roles``: the twin runs prefill/decode workers, so the mocker must
    take a worker role (0.6.0's does not)."""
    default = parse_version(DEFAULT_DYNAMO_VERSION)
    assert default in MOCKER_FLAGS
    oldest, newest = min(MOCKER_FLAGS), max(MOCKER_FLAGS)

    def can_serve(v: Version) -> bool:
        return not needs_roles or bool(MOCKER_FLAGS[v] & {"--disaggregation-mode", "--is-prefill-worker"})

    if image:
        tag = _image_tag(image)
        v = parse_version(tag)
        row = _known(v) if v else None
        if v is not None and v < oldest:
            raise DeployError(f"--twin-image {image}: Dynamo {version_text(v)} predates the mocker command line the "
                              f"twin writes (known from {version_text(oldest)}); give an image of Dynamo "
                              f">= {version_text(oldest)}, e.g. {twin_image(DEFAULT_DYNAMO_VERSION)}")
        if row is None:
            why = (f"tag {tag} is newer than the newest release the flag table knows ({version_text(newest)})"
                   if v else f"tag {tag!r} names no Dynamo release" if tag else "the image has no tag")
            row, how = default, f"{why}; assumed {DEFAULT_DYNAMO_VERSION}, the release the harness ships"
        else:
            how = f"the image's tag {tag}" + ("" if row == v else ": nearest older release in the flag table")
        if not can_serve(row):
            raise DeployError(f"--twin-image {image}: the mocker of Dynamo {version_text(row)} takes no prefill/decode "
                              f"role and this recipe disaggregates; give an image of Dynamo >= 0.6.1")
        version = version_text(row)
        return MockerCli(image, version, MOCKER_FLAGS[row],
                         f"mocker flags for Dynamo {version}, image {image} ({how})")

    found = dynamo_version(recipe_images)
    v = parse_version(found) if found else None
    row = _known(v) if v else None
    if v is not None and row is not None and can_serve(row):
        how = f"the recipe's Dynamo {found}" + ("" if row == v else ": nearest older release in the flag table")
        version, image = version_text(row), twin_image(version_text(v))
        return MockerCli(image, version, MOCKER_FLAGS[row], f"mocker flags for Dynamo {version}, image {image} ({how})")
    if v is None:
        why = "the recipe runs no ai-dynamo image with a release tag"
    elif row is None:
        why = (f"the recipe's Dynamo {found} is outside the mocker flag table "
               f"({version_text(oldest)} to {version_text(newest)})")
    else:
        why = f"the mocker of the recipe's Dynamo {found} takes no prefill/decode role"
    image = twin_image(DEFAULT_DYNAMO_VERSION)
    return MockerCli(image, DEFAULT_DYNAMO_VERSION, MOCKER_FLAGS[default],
                     f"mocker flags for Dynamo {DEFAULT_DYNAMO_VERSION}, image {image} ({why}; the twin runs the "
                     f"release the harness ships; --twin-image overrides)")


def dynamo_version(images: list[str]) -> str | None:
    """The Dynamo release of the first ``ai-dynamo/*:X.Y.Z`` image, or ``None``."""
    for image in images:
        m = re.search(r"ai-dynamo/[\w.-]+:(\d+\.\d+\.\d+[\w.-]*)$", image or "")
        if m:
            return m.group(1)
    return None


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


def _worker_role(recipe: LoadedRecipe, svc: Service) -> str:
    """The role worker ``svc`` runs in (:func:`recipe_harness.deploy.twin.run_role`)."""
    dep = recipe.deployment
    has_prefill = has_prefill_worker([(w, engine_config(recipe, w)) for w in dep.workers]) if dep else False
    return run_role(svc, engine_config(recipe, svc), has_prefill)


def _mocker_args(recipe: LoadedRecipe, svc: Service, opts: TwinOptions, cli: MockerCli,
                 notes: list[str]) -> list[str]:
    """The mocker's arguments for worker ``svc`` (:func:`recipe_harness.deploy.mocker.mocker_args`): the
    recipe's model and each worker's own served name, every DP rank, only flags ``cli`` (the twin
    image's mocker) accepts."""
    cfg = engine_config(recipe, svc)
    model = cfg.model or cfg.served_name or "Qwen/Qwen3-0.6B"
    return mocker_args(recipe.id, svc, cfg, _worker_role(recipe, svc), model_name=cfg.served_name or model,
                       model_path=model, speedup_ratio=opts.speedup_ratio, release=cli.version, notes=notes,
                       kv_events_routed=routes_by_kv_events(recipe))



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
    args = " ".join(svc.frontend_sidecar.argv) if svc.frontend_sidecar is not None else ""
    return f"{svc.name}: frontend sidecar kept in every pod ({args or 'default args'})"


def twin_dgd(recipe: LoadedRecipe, opts: TwinOptions | None = None) -> tuple[dict[str, Any], list[str]]:
    opts = opts or TwinOptions()
    dep = recipe.deployment
    if dep is None:
        raise ValueError(f"{recipe.id}: no DynamoGraphDeployment to twin")
    body = copy.deepcopy(dep.document.body)
    # the workers' release first: the mocker stands in for them
    images = [s.image or "" for s in sorted(dep.services, key=lambda s: not s.is_worker)]
    images += [s.frontend_sidecar.image or "" for s in dep.services if s.frontend_sidecar is not None]
    cli = mocker_cli(images, opts.image, needs_roles=any(disaggregation_mode(_worker_role(recipe, w), engine_config(recipe, w))
                                                       for w in dep.workers))
    image = cli.image
    v1beta1 = (dep.api_version or "").endswith("/v1beta1")
    notes = [cli.note, f"mocker twin of {recipe.id}: speedup {opts.speedup_ratio:g}"]
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
            container["args"] = _mocker_args(recipe, svc, opts, cli, notes)
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


def twin_companions(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The deploy file's other objects (:func:`~.manifests.companions`) the twin keeps: all but the
    DRA objects that share GPUs between pods (NVIDIA's ComputeDomain); the twin's pods claim none."""
    out, notes = [], []
    for doc in docs:
        group = str(doc.get("apiVersion") or "").rpartition("/")[0]
        if group in DRA_GROUPS:
            notes.append(f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}: left out (the twin's pods "
                         "claim no GPUs)")
            continue
        out.append(copy.deepcopy(doc))
    return out, notes


def mocker_twin(recipe: LoadedRecipe, opts: TwinOptions | None = None) -> Twin:
    """The GPU-free twin of a recipe: DGD, the deploy file's other objects, model-cache manifests
    and perf Job."""
    dgd, notes = twin_dgd(recipe, opts)
    cache, n2 = twin_model_cache([d.body for d in recipe.model_cache_documents if isinstance(d.body, dict)])
    perf, n3 = twin_perf([d.body for d in recipe.perf_documents if isinstance(d.body, dict)])
    kept, n4 = twin_companions(companions(recipe))
    return Manifests(dgd, cache, perf, notes + n4 + n2 + n3, kept)
