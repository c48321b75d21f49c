"""Model caches that outlive runs: ``--cache-namespace NS``.

A run namespace is deleted with everything in it, so each run would download the weights again
(hundreds of GB for DeepSeek-R1). With a cache namespace the run deploys into ``NS`` instead:
the recipe's model-cache PVCs are created there once and kept; a download Job runs only when
the PVC it fills does not yet carry the cache key of that download; at teardown the run deletes
what it created (its DGD, Jobs, helper pods, Secrets), never the PVCs or the namespace.

PersistentVolumeClaims can only be mounted in their own namespace, which is why the run moves to
the cache rather than the cache to the run. The cache key is the model and revision the Job
downloads (``hf download MODEL [--revision REV]``), or, where the Job's script names no model,
a hash of its containers (image, command, args, env): a changed download is a new key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from recipe_harness.deploy.kubernetes.resources import pod_claims

CACHE_LABEL = "recipe-harness/cache"
KEY_PREFIX = "recipe-harness/cache-"
_DOWNLOAD = re.compile(r"\b(?:hf|huggingface-cli)\s+download\s+([^\s;&|'\"]+)")
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
        digest = hashlib.sha256(f"{model}@{revision}".encode()).hexdigest()[:12]
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
