"""Model identity (RH320-RH329): one model, named the same way in the DGD, the download Job, the perf Job
and the README."""

from __future__ import annotations

import re
from collections.abc import Iterator

from recipe_harness.findings import Finding
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import rule
from recipe_harness.static.rules.common import emit, hub_folder, is_repo_id, known, service_at, workers
from recipe_harness.static.rules.scripts import aiperf_runs, downloads


def served_names(recipe: LoadedRecipe) -> set[str]:
    """Names the frontend serves: each worker's --served-model-name, or its model."""
    return {cfg.served_name for _, cfg in workers(recipe) if known(cfg) and cfg.served_name}


def loaded_models(recipe: LoadedRecipe) -> set[str]:
    return {cfg.model for _, cfg in workers(recipe) if known(cfg) and cfg.model}


@rule("RH320", "model",
      "All workers of a deployment load the same model and serve it under the same name.",
      "give every worker (prefill, decode, aggregated) the same --model/--model-path and --served-model-name")
def workers_agree(recipe: LoadedRecipe) -> Iterator[Finding]:
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    ws = [(s, c) for s, c in workers(recipe) if known(c)]
    if len(ws) < 2:
        return
    first_svc, first = ws[0]
    for svc, cfg in ws[1:]:
        if first.served_name and cfg.served_name and cfg.served_name != first.served_name:
            src = cfg.sources.get("served_model_name") or cfg.sources.get("model") or service_at(dep, svc)
            yield emit("RH320", recipe, src,
                       f"{svc.name} serves {cfg.served_name!r} but {first_svc.name} serves {first.served_name!r}: "
                       "the frontend would list two models and route each to half of the workers")
        elif first.model and cfg.model and cfg.model != first.model:
            src = cfg.sources.get("model") or service_at(dep, svc)
            yield emit("RH320", recipe, src,
                       f"{svc.name} loads {cfg.model!r} but {first_svc.name} loads {first.model!r} under the same name")


@rule("RH321", "model",
      "The model-download Job downloads the Hugging Face repo the workers load (hf download <repo>).",
      "make the Job run `hf download <the workers' --model>` or point the workers at the downloaded repo")
def download_matches(recipe: LoadedRecipe) -> Iterator[Finding]:
    dls = downloads(recipe)
    if not dls:
        return
    repos = {d.repo for d in dls}
    dep = recipe.deployment
    if dep is None:  # no services, no workers
        return
    seen: set[str] = set()
    for svc, cfg in workers(recipe):
        if not known(cfg) or cfg.backend == "mocker" or not is_repo_id(cfg.model) or cfg.model in repos:
            continue
        if cfg.model in seen:
            continue
        seen.add(cfg.model)
        lower = {r.lower(): r for r in repos}
        hint = f" (case differs from {lower[cfg.model.lower()]!r})" if cfg.model.lower() in lower else ""
        yield emit("RH321", recipe, cfg.sources.get("model") or service_at(dep, svc),
                   f"{svc.name} loads {cfg.model!r} but the model-cache Jobs download "
                   f"{', '.join(sorted(repos))}{hint}")


@rule("RH322", "model",
      "The perf Job benchmarks a model name the frontend serves (aiperf --model).",
      "set aiperf --model to the workers' --served-model-name (or their --model when no served name is set)")
def perf_model_served(recipe: LoadedRecipe) -> Iterator[Finding]:
    names = served_names(recipe)
    if not names:
        return
    for run in aiperf_runs(recipe):
        if run.model is None:
            continue
        for value in run.model.values:
            bad = [m for m in value.split(",") if m and m not in names and "$" not in m]
            if bad:
                yield emit("RH322", recipe, run.model.src,
                           f"perf benchmarks model {bad[0]!r} but the frontend serves {', '.join(sorted(names))}")
                break


def _tokenizer_ok(tok: str, candidates: set[str]) -> bool:
    if tok in candidates:
        return True
    for c in candidates:
        if is_repo_id(c) and hub_folder(c) in tok:
            return True
        if c.startswith("/") and (tok == c or tok.startswith(c.rstrip("/") + "/")):
            return True
    return False


@rule("RH323", "model",
      "The perf Job's tokenizer (aiperf --tokenizer) is the served model's: its repo id, hub cache folder or path.",
      "set aiperf --tokenizer to the workers' --model repo id (or its hub snapshot path)")
def perf_tokenizer(recipe: LoadedRecipe) -> Iterator[Finding]:
    candidates = served_names(recipe) | loaded_models(recipe) | {d.repo for d in downloads(recipe)}
    if not candidates:
        return
    for run in aiperf_runs(recipe):
        tok = run.tokenizer
        if tok is None or "$" in tok.text or tok.text in ("builtin", ""):
            continue
        if not _tokenizer_ok(tok.text, candidates):
            yield emit("RH323", recipe, tok.src,
                       f"perf counts tokens with {tok.text!r}, which is not the tokenizer of "
                       f"{', '.join(sorted(served_names(recipe)))}: ISL/OSL and throughput would be miscounted")


@rule("RH324", "model",
      "The README names the model the recipe serves (its served model name, repo id or the repo's model name).",
      "state the served model name in the README (for example in the title or the recipe table)")
def readme_names_model(recipe: LoadedRecipe) -> Iterator[Finding]:
    texts = recipe.readme_texts
    names = served_names(recipe) | {m for m in loaded_models(recipe) if is_repo_id(m)}
    if not texts or not names:
        return
    joined = "\n".join(texts.values()).lower()
    # the exact name, or the repo's model part (``Qwen3-0.6B`` for ``Qwen/Qwen3-0.6B``)
    if any(n.lower() in joined or n.rsplit("/", 1)[-1].lower() in joined for n in names):
        return
    path = list(texts)[-1]
    title = next((i for i, line in enumerate(texts[path].splitlines(), 1) if re.match(r"#\s", line)), 1)
    yield emit("RH324", recipe, (str(path), title, 1),
               f"README never names the served model ({', '.join(sorted(names))})")
