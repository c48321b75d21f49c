"""GPU accounting (RH300-RH309): the engines' parallelism uses exactly the GPUs the services ask for,
and the README states the deployment's real GPU total."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from recipe_harness.findings import Finding
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import emit, known, service_at, workers

_FORMULA = {
    "vllm": "tensor x pipeline x data parallel",
    "sglang": "tp x pp (x dp without --enable-dp-attention)",
    "trtllm": "tensor x pipeline parallel (experts and attention DP share those ranks)",
}


def _parallelism_text(cfg) -> str:
    parts = [f"TP{cfg.tensor_parallel}"]
    if cfg.pipeline_parallel > 1:
        parts.append(f"PP{cfg.pipeline_parallel}")
    if cfg.data_parallel > 1:
        parts.append(f"DP{cfg.data_parallel}" + (" (attention)" if cfg.attention_dp else ""))
    if cfg.expert_parallel > 1:
        parts.append(f"EP{cfg.expert_parallel}")
    return " x ".join(parts)


@rule("RH300", "gpu",
      "Each worker's engine parallelism (from its backend's real flags, engine config files and multinode) "
      "uses exactly the GPUs the service requests per replica.",
      "make resources.limits.gpu x multinode.nodeCount equal the engine's world size "
      "(vLLM: TP x PP x DP; SGLang: TP x PP, x DP without DP attention; TRT-LLM: TP x PP)")
def gpu_matches_parallelism(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    for svc, cfg in workers(recipe):
        if not known(cfg) or cfg.backend == "mocker" or cfg.problems:
            continue  # an unreadable engine config is RH301; its parallelism is unknown
        requested = svc.gpus_per_replica
        if cfg.gpus_needed == requested:
            continue
        where = next((cfg.sources[k] for k in ("tensor_parallel", "data_parallel", "pipeline_parallel")
                      if k in cfg.sources), None)
        gpu_key = next((("resources", s, k) for s in ("limits", "requests") for k in ("gpu", "nvidia.com/gpu")
                        if isinstance(svc.resources.get(s), dict) and k in svc.resources[s]), None)
        if where is None:
            where = service_at(dep, svc, *gpu_key) if gpu_key else service_at(dep, svc)
        nodes = f" x nodeCount {svc.node_count}" if svc.node_count > 1 else ""
        yield emit("RH300", recipe, where,
                   f"{svc.name}: {cfg.backend} {_parallelism_text(cfg)} needs {cfg.gpus_needed} GPUs per replica "
                   f"({_FORMULA[cfg.backend]}) but the service requests {requested} "
                   f"({svc.gpus} GPUs{nodes})")


@rule("RH301", "gpu",
      "Engine config files a worker names (--extra-engine-args, --config) are provided by a ConfigMap the "
      "service mounts, so their settings can be checked.",
      "mount a ConfigMap of the recipe at the folder of the file (extraPodSpec.volumes + mainContainer.volumeMounts) "
      "and put the file under the ConfigMap's data with that key")
def engine_config_readable(recipe: LoadedRecipe) -> Iterator[Finding]:
    for svc, cfg in workers(recipe):
        for message, src in cfg.problems:
            yield emit("RH301", recipe, src, f"{svc.name}: {message}")


@rule("RH302", "gpu",
      "Per-node engine settings agree with multinode.nodeCount (SGLang --nnodes, vLLM --data-parallel-size-local).",
      "drop --nnodes (the operator sets it) or make it equal multinode.nodeCount; make "
      "--data-parallel-size-local x nodeCount equal --data-parallel-size")
def per_node_settings(recipe: LoadedRecipe) -> Iterator[Finding]:
    for svc, cfg in workers(recipe):
        if cfg.backend == "sglang" and cfg.nnodes is not None and cfg.nnodes != svc.node_count:
            yield emit("RH302", recipe, cfg.sources["nnodes"],
                       f"{svc.name}: --nnodes {cfg.nnodes} but multinode.nodeCount is {svc.node_count}")
        if cfg.backend == "vllm" and cfg.data_parallel_local is not None:
            total = cfg.data_parallel_local * svc.node_count
            if total != cfg.data_parallel:
                yield emit("RH302", recipe, cfg.sources["data_parallel_local"],
                           f"{svc.name}: --data-parallel-size-local {cfg.data_parallel_local} x {svc.node_count} "
                           f"node(s) = {total} DP ranks but --data-parallel-size is {cfg.data_parallel}")


# --------------------------------------------------------------------------- README total

_TOTAL = re.compile(r"(?i)(?:=|total[^.\n|]{0,30}?)\s*\**\s*(\d{1,4})\s*GPUs?\b|\b(\d{1,4})\s*GPUs?\s+(?:in\s+)?total\b")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_gpu_column(lines: list[str], index: int) -> int | None:
    """Index of the GPU-total column of the markdown table holding ``lines[index]``."""
    i = index
    while i > 0 and lines[i - 1].lstrip().startswith("|"):
        i -= 1
    header = _cells(lines[i])
    for col, name in enumerate(header):
        norm = re.sub(r"[^a-z ]", "", name.lower()).strip()
        if norm in ("gpus", "gpu", "total gpus", "gpus total", "gpu count", "gpus in total"):
            return col
    return None


def stated_totals(recipe: LoadedRecipe) -> list[tuple[Path, int, int]]:
    """(README, line, GPU count) statements about this recipe's total GPUs."""
    out: list[tuple[Path, int, int]] = []
    rid = recipe.id
    dep = recipe.deployment
    for path, text in recipe.readme_texts.items():
        lines = text.splitlines()
        try:
            rel = recipe.recipe.dir.relative_to(path.parent).as_posix()
        except ValueError:
            rel = ""
        own = path.parent == recipe.recipe.dir
        keys = [f"`{rid}`", f"{rid}/"] + ([f"`{rel}`", f"`{rel}/", f"{rel}/deploy.yaml"] if rel not in ("", ".") else [])
        if dep is not None and dep.name:
            keys.append(f"`{dep.name}`")
        for n, line in enumerate(lines, 1):
            mentions = any(k in line or (k.endswith("`") and k[:-1] + "/`" in line) for k in keys) or \
                (line.rstrip().endswith(f"`{rid}`"))
            if line.lstrip().startswith("|") and mentions:
                col = _table_gpu_column(lines, n - 1)
                cells = _cells(line)
                if col is not None and col < len(cells):
                    m = re.search(r"\d+", cells[col])
                    if m:
                        out.append((path, n, int(m.group(0))))
                    continue
            if own or mentions:
                m = _TOTAL.search(line)
                if m:
                    out.append((path, n, int(m.group(1) or m.group(2))))
    return out


@rule("RH303", "gpu",
      "The README's stated GPU total for the recipe equals the GPUs its manifests request "
      "(GPUs x nodeCount x replicas over all services).",
      "correct the GPU count in the README's recipe table (or 'N GPUs total' line), or the manifests")
def readme_total(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:
        return
    total = dep.total_gpus
    for path, line, count in stated_totals(recipe):
        if count != total:
            per = ", ".join(f"{s.name} {s.gpus}x{s.node_count}x{s.replicas}" for s in dep.services if s.total_gpus)
            yield emit("RH303", recipe, (str(path), line, 1),
                       f"README states {count} GPUs for {recipe.id} but the manifests request {total}"
                       + (f" ({per})" if per else ""))
