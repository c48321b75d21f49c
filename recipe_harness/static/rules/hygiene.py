"""Hygiene (RH360-RH369): requests within limits, shared memory for multi-GPU engines, Hugging Face
tokens only through Secrets (a literal token is never printed back), names that match roles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.manifests import Document, PathT
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.deployment import quantity
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import at, effective_mode, emit, known, service_at, workers


def _resource_blocks(recipe: LoadedRecipe) -> Iterator[tuple[Document, PathT, str]]:
    """Every ``resources`` map in the recipe's manifests (DGD services, containers of any kind)."""
    def walk(doc: Document, node: Any, path: PathT) -> Iterator[tuple[Document, PathT, str]]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "resources" and isinstance(v, dict) and ("requests" in v or "limits" in v):
                    owner = next((str(p) for p in reversed(path) if isinstance(p, str)
                                  and p not in ("spec", "extraPodSpec", "mainContainer", "containers", "template")),
                                 doc.name or "")
                    if isinstance(node.get("name"), str):
                        owner = node["name"]
                    yield doc, path + (k,), owner
                elif isinstance(v, (dict, list)):
                    yield from walk(doc, v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(doc, v, path + (i,))

    for doc in recipe.documents():
        if doc.kind in ("PersistentVolumeClaim", "ConfigMap", "Secret"):
            continue
        yield from walk(doc, doc.body, ())


def _flatten(res: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(res, dict):
        for k, v in res.items():
            if isinstance(v, dict):
                out.update(_flatten(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
    return out


@rule("RH360", "hygiene", "Resource requests do not exceed limits (cpu, memory, GPUs, custom resources).",
      "lower the request or raise the limit; Kubernetes rejects a pod whose request is above its limit")
def requests_within_limits(recipe: LoadedRecipe) -> Iterator[Finding]:
    for doc, path, owner in _resource_blocks(recipe):
        block = doc.get(*path)
        requests, limits = _flatten(block.get("requests")), _flatten(block.get("limits"))
        for key, req in requests.items():
            if key not in limits:
                continue
            r, lim = quantity(req), quantity(limits[key])
            if r is not None and lim is not None and r > lim:
                yield emit("RH360", recipe, at(doc, path + ("requests", *key.split("."))),
                           f"{owner}: {key} request {req} is above its limit {limits[key]}")


@rule("RH361", "hygiene",
      "Multi-GPU workers keep shared memory (/dev/shm) for NCCL: sharedMemory not disabled and at least 1Gi.",
      "remove `sharedMemory.disabled: true` or set sharedMemory.size (the operator default is 8Gi; large "
      "TP/EP engines use 16Gi or more)")
def shared_memory(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    for svc, cfg in workers(recipe):
        multi = svc.gpus > 1 or (known(cfg) and cfg.backend != "mocker" and
                                 cfg.tensor_parallel * cfg.pipeline_parallel > 1)
        if not multi:
            continue
        raw = svc.raw if isinstance(svc.raw, dict) else {}
        shm = raw.get("sharedMemory")
        if any(m.mount_path.rstrip("/") == "/dev/shm" for m in svc.mounts):
            continue
        if "sharedMemorySize" in raw:  # v1beta1
            size = quantity(raw["sharedMemorySize"])
            if size is not None and size < 2**30:
                state = "disabled" if size == 0 else f"only {raw['sharedMemorySize']}"
                yield emit("RH361", recipe, service_at(dep, svc, "sharedMemorySize"),
                           f"{svc.name} runs a multi-GPU engine ({svc.gpus} GPUs) with shared memory {state}")
            continue
        if isinstance(shm, dict) and shm.get("disabled") is True:
            yield emit("RH361", recipe, service_at(dep, svc, "sharedMemory", "disabled", key=True),
                       f"{svc.name} runs a multi-GPU engine ({svc.gpus} GPUs) with shared memory disabled: "
                       "NCCL fails with 'Bus error' or falls back to slow transports")
        elif isinstance(shm, dict) and shm.get("size") is not None:
            size = quantity(shm.get("size"))
            if size is not None and size < 2**30:
                yield emit("RH361", recipe, service_at(dep, svc, "sharedMemory", "size"),
                           f"{svc.name} runs a multi-GPU engine with only {shm.get('size')} of shared memory")


_TOKEN = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])")
_TOKEN_VARS = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "HF_API_TOKEN",
               "HUGGINGFACEHUB_API_TOKEN"}
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\$\{?\w+\}?|\$\(\w+\)|your[-_ ]?.*|x+|\*+|changeme|)$", re.I)


def masked(token: str) -> str:
    """How a token is shown: never any of its secret characters."""
    return f"hf_… ({len(token)} characters, masked)"


def _env_literals(doc: Document, node: Any, path: PathT) -> Iterator[tuple[PathT, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and node["name"] in _TOKEN_VARS and isinstance(node.get("value"), (str, int)):
            yield path + ("value",), str(node["name"])
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from _env_literals(doc, v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _env_literals(doc, v, path + (i,))


@rule("RH362", "hygiene",
      "Hugging Face tokens come only from a Secret (secretKeyRef / envFromSecret); a literal token anywhere in the "
      "recipe is an error and is never printed back.",
      "revoke the token on huggingface.co, delete it from the file and its git history, and use "
      "`kubectl create secret generic hf-token-secret --from-literal=HF_TOKEN=...` with envFromSecret/secretKeyRef")
def hf_token_via_secret(recipe: LoadedRecipe) -> Iterator[Finding]:
    seen: set[tuple[str, int]] = set()
    files = [*recipe.results, *recipe.recipe.readmes]
    if recipe.recipe.suppressions_file:
        files.append(recipe.recipe.suppressions_file)
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for m in _TOKEN.finditer(line):
                seen.add((str(path), n))
                yield emit("RH362", recipe, (str(path), n, m.start() + 1),
                           f"literal Hugging Face token {masked(m.group(0))} in the recipe")
    for doc in recipe.documents():
        for vpath, name in _env_literals(doc, doc.body, ()):
            value = str(doc.get(*vpath))
            row, col = doc.pos(vpath)
            if (doc.file, row) in seen or _PLACEHOLDER.match(value.strip()):
                continue
            yield emit("RH362", recipe, (doc.file, row, col),
                       f"{name} is set to a literal value ({len(value)} characters, masked) instead of a Secret reference")


@rule("RH363", "hygiene",
      "A service's name does not contradict its role (a *Prefill* service runs a prefill engine, a *Decode* one "
      "does not prefill, a *Frontend* is the frontend).",
      "rename the service or give it the role flag its name promises", severity=Severity.WARNING)
def name_matches_role(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:
        return
    engines = dict((s.name, (s, c)) for s, c in workers(recipe))
    for svc in dep.services:
        lname = svc.name.lower()
        if "frontend" in lname and svc.role != "frontend":
            yield emit("RH363", recipe, service_at(dep, svc),
                       f"{svc.name} is named like a frontend but its role is {svc.role}")
            continue
        if svc.name not in engines:
            continue
        _, cfg = engines[svc.name]
        if not known(cfg):
            continue
        mode = effective_mode(svc, cfg)
        if "prefill" in lname and mode != "prefill":
            yield emit("RH363", recipe, service_at(dep, svc),
                       f"{svc.name} is named like a prefill worker but runs {cfg.backend} as {mode} "
                       "(no prefill flag)")
        elif "decode" in lname and (mode == "prefill" or (mode == "agg" and cfg.backend != "vllm")):
            yield emit("RH363", recipe, service_at(dep, svc),
                       f"{svc.name} is named like a decode worker but runs {cfg.backend} as {mode}")
