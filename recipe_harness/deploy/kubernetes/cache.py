"""Model caches that outlive runs: ``--cache-namespace NS``.

A run namespace is deleted with everything in it, so each run would download the weights again
(hundreds of GB for DeepSeek-R1). With a cache namespace the run deploys into ``NS`` instead:
the recipe's model-cache PVCs are created there once and kept; a download Job runs only when
the PVC it fills does not yet carry the cache key of that download; at teardown the run deletes
what it created (its DGD, Jobs, helper pods, Secrets), never the PVCs or the namespace. A kept
PVC a recipe asks for differently (smaller, another access mode or storage class, which cannot
change once made) is reported before anything runs: :func:`claim_mismatch`.

PersistentVolumeClaims can only be mounted in their own namespace, which is why the run moves to
the cache rather than the cache to the run. The cache key is every download the Job runs, with
all its arguments (``hf download MODEL [--revision REV] [--include ...] [--local-dir ...]``, each
line of the script), or, where the Job's script names no model, a hash of its containers (image,
command, args, env): a changed download is a new key, so a twin's tokenizer-only download never
passes for the full weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from recipe_harness.deploy.kubernetes.resources import pod_claims
from recipe_harness.model.deployment import quantity

CACHE_LABEL = "recipe-harness/cache"
KEY_PREFIX = "recipe-harness/cache-"
_DOWNLOAD = re.compile(r"\b(?:hf|huggingface-cli)\s+download\s+([^\s;&|'\"]+)")
_DOWNLOAD_LINE = re.compile(r"\b(?:hf|huggingface-cli)\s+download\s+[^\n;&|]*")
_REVISION = re.compile(r"--revision[= ]+['\"]?([^\s;&|'\"]+)")


@dataclass(frozen=True)
class CacheKey:
    """What one download Job puts on its PVC: ``annotation`` names it on the PVC."""

    model: str          # "Qwen/Qwen3-32B", or "" when the script names none
    revision: str       # "main" unless --revision says otherwise
    digest: str         # 12 hex: the annotation's name part

    @property
    def annotation(self) -> str:
        return KEY_PREFIX + self.digest

    @property
    def value(self) -> str:
        return f"{self.model}@{self.revision}" if self.model else f"job-spec@{self.digest}"


def _containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) if isinstance(c, dict)]


def cache_key(job: dict[str, Any]) -> CacheKey:
    words = " ".join(str(w) for c in _containers(job) for k in ("command", "args") for w in c.get(k) or [])
    model = m.group(1) if (m := _DOWNLOAD.search(words)) else ""
    revision = r.group(1) if (r := _REVISION.search(words)) else "main"
    if model:
        downloads = [" ".join(line.split()) for line in _DOWNLOAD_LINE.findall(words)]
        digest = hashlib.sha256("\n".join(downloads).encode()).hexdigest()[:12]
    else:
        spec = [{k: c.get(k) for k in ("image", "command", "args", "env")} for c in _containers(job)]
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return CacheKey(model, revision, digest)


def claims_of(job: dict[str, Any]) -> list[str]:
    return pod_claims((job.get("spec") or {}).get("template") or {})


def is_cached(job: dict[str, Any], pvcs: dict[str, dict[str, Any] | None]) -> bool:
    """Every PVC the Job fills exists and carries the Job's cache key."""
    key = cache_key(job)
    claims = claims_of(job)
    return bool(claims) and all(
        (p := pvcs.get(c)) is not None and ((p.get("metadata") or {}).get("annotations") or {}).get(key.annotation)
        for c in claims)


def mark(job: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that records the Job's download on a PVC."""
    key = cache_key(job)
    return {"metadata": {"annotations": {key.annotation: key.value}}}


def claim_mismatch(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """How a PVC kept in the cache namespace differs from the one a recipe asks for, in what cannot
    change once made (access modes, storage class: the apiserver refuses such updates) or in size
    (it only grows, and only where the class allows expansion); ``None`` when it fits."""
    have, want = existing.get("spec") or {}, wanted.get("spec") or {}
    problems = []
    if want.get("accessModes") and sorted(have.get("accessModes") or []) != sorted(want["accessModes"]):
        problems.append(f"access modes {have.get('accessModes')} (asks {want['accessModes']})")
    if want.get("storageClassName") and have.get("storageClassName") != want["storageClassName"]:
        problems.append(f"storage class {have.get('storageClassName')!r} (asks {want['storageClassName']!r})")
    size = ((want.get("resources") or {}).get("requests") or {}).get("storage")
    held = (((existing.get("status") or {}).get("capacity") or {}).get("storage")
            or ((have.get("resources") or {}).get("requests") or {}).get("storage"))
    if size and held and (quantity(held) or 0) < (quantity(size) or 0):
        problems.append(f"size {held} (asks {size})")
    return "; ".join(problems) or None
