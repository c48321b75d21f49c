"""Structure rules: what every recipe must contain (recipes/CONTRIBUTING.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.discovery import MODEL_CACHE_DIRS
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules import describe, make, rule

# Loading and discovery are checked by manifests.py and discovery.py; documented here with the rest.
describe("RH001", "yaml", "Every manifest file can be read.", "check the file's permissions")
describe("RH002", "yaml", "Every manifest is valid YAML.", "fix the YAML at the position given; indent with spaces")
describe("RH003", "yaml", "No mapping repeats a key.", "Kubernetes keeps only the last value: delete one of them")
describe("RH004", "yaml", "Manifests stay within size, node-count and depth bounds (no alias bombs).",
         "remove recursive aliases; keep manifests small")
describe("RH005", "yaml", "Manifests are UTF-8 text.", "save the file as UTF-8; remove binary files")
describe("RH006", "yaml", "Only the YAML core tags are used (nothing is ever constructed or executed).",
         "remove language-specific tags such as !!python/object")
describe("RH007", "yaml", "Merge keys and mapping keys have the shapes YAML allows.", "use plain scalar keys")
describe("RH010", "yaml", "Symlinks stay inside the recipes root and do not loop.",
         "copy the file into the tree instead of linking outside it")
describe("RH011", "yaml", "The recipes root holds at least one recipe.", "point --recipes-root at the recipes folder")
describe("RH012", "yaml", "The recipes root is a readable folder.", "pass --recipes-root DIR")
describe("RH013", "yaml", "A deploy.yaml that holds no DynamoGraphDeployment is reported, not silently skipped.",
         "a recipe's deploy.yaml holds a DynamoGraphDeployment; other workloads are not checked", Severity.INFO)
describe("RH014", "yaml", "A committed rendering of a kustomize overlay (deploy-<variant>.yaml) equals what the overlay "
         "renders now.", "regenerate it with kubectl kustomize <overlay> > <file> and commit both")
describe("RH015", "yaml", "Every kustomize overlay renders (kubectl kustomize).",
         "run kubectl kustomize <overlay> and fix the resources, components or patches it names")

GPU_PRODUCTS = r"(?:GB300|GB200|B300|B200|H200|H100|H20|H800|A100|A800|A10G|L40S|L40|L4|RTX\s?\w+|MI300X|CPU)"
_GPU_COUNT = re.compile(
    r"(?ix)(?:\b\d+\s*(?:x|×)?\s*" + GPU_PRODUCTS + r"\b"
    r"|\b\d+\s*(?:x\s*)?GPUs?\b"
    r"|\bGPUs?\b[^\n|]{0,20}?[:=|]\s*\d+"
    r"|\|\s*\d+\s*\|"
    r"|\bno\s+GPUs?\b|\bCPU[- ]only\b|\b0\s+GPUs?\b)"
)
_GPU_TYPE = re.compile(r"(?i)\b" + GPU_PRODUCTS + r"\b")
_VALIDATED = re.compile(r"(?i)\b(validated|tested on|verified on|qualified on)\b")


def _dgd_finding(rule_id: str, recipe: LoadedRecipe, message: str) -> Finding:
    docs = recipe.dgd_documents
    line, col = docs[0].pos() if docs else (0, 0)
    return make(rule_id, str(recipe.recipe.deploy_file), line, col, message, recipe=recipe.id)


@rule("RH101", "structure", "The recipe's deploy manifest holds a loadable DynamoGraphDeployment.",
      "fix the loading errors reported for the file, or add `kind: DynamoGraphDeployment` with apiVersion nvidia.com/v1alpha1")
def dgd_present(recipe: LoadedRecipe) -> Iterator[Finding]:
    if not recipe.dgd_documents and not recipe.results[recipe.recipe.deploy_file].findings:
        yield make("RH101", str(recipe.recipe.deploy_file), 1, 1,
                   "no DynamoGraphDeployment document could be loaded from this file", recipe=recipe.id)


@rule("RH102", "structure", "A deploy manifest holds exactly one DynamoGraphDeployment.",
      "split the file: one DGD per file, each file its own recipe")
def one_dgd(recipe: LoadedRecipe) -> Iterator[Finding]:
    docs = recipe.dgd_documents
    for extra in docs[1:]:
        line, col = extra.pos()
        yield make("RH102", extra.file, line, col,
                   f"second DynamoGraphDeployment {extra.name!r} in the same file as {docs[0].name!r}",
                   recipe=recipe.id)


@rule("RH103", "structure", "The model folder has a model-cache PersistentVolumeClaim (model-cache/).",
      "add <model>/model-cache/model-cache.yaml with a PersistentVolumeClaim for the weights")
def model_cache_pvc(recipe: LoadedRecipe) -> Iterator[Finding]:
    if recipe.recipe.model_cache_files and any(d.kind == "PersistentVolumeClaim" for d in recipe.model_cache_documents):
        return
    where = " or ".join(f"{recipe.recipe.model}/{d}/" for d in MODEL_CACHE_DIRS)
    yield _dgd_finding("RH103", recipe, f"no PersistentVolumeClaim for the model cache in {where}")


@rule("RH104", "structure", "The model folder has a Job that downloads the model into the cache.",
      "add <model>/model-cache/model-download.yaml: a Job running `hf download <repo>` into the model-cache PVC")
def model_download_job(recipe: LoadedRecipe) -> Iterator[Finding]:
    if any(d.kind == "Job" for d in recipe.model_cache_documents):
        return
    yield _dgd_finding("RH104", recipe, "no model-download Job in the model-cache folder")


@rule("RH105", "structure", "The recipe has a README (in its folder or a parent up to the model folder).",
      "add <model>/README.md describing the deployment, its GPUs and validated hardware")
def readme_present(recipe: LoadedRecipe) -> Iterator[Finding]:
    if not recipe.recipe.readmes:
        yield _dgd_finding("RH105", recipe, f"no README.md between {recipe.recipe.dir.name}/ and the model folder")


@rule("RH106", "structure", "The README states the GPU count and GPU type.",
      "add a line such as `GPUs: 8x H200 (141 GB SXM)` or a table with a GPUs column")
def readme_gpus(recipe: LoadedRecipe) -> Iterator[Finding]:
    texts = recipe.readme_texts
    if not texts:
        return
    joined = "\n".join(texts.values())
    missing = []
    if not _GPU_COUNT.search(joined):
        missing.append("GPU count")
    if not _GPU_TYPE.search(joined):
        missing.append("GPU type")
    if missing:
        path = list(texts)[-1]
        yield make("RH106", str(path), 1, 1, f"README does not state the {' and '.join(missing)}", recipe=recipe.id)


@rule("RH107", "structure", "The README names the hardware the recipe was validated on.",
      "add a line such as `Validated on: 8x H200 SXM, Dynamo 1.6.1`")
def readme_validated(recipe: LoadedRecipe) -> Iterator[Finding]:
    texts = recipe.readme_texts
    if texts and not any(_VALIDATED.search(t) for t in texts.values()):
        path = list(texts)[-1]
        yield make("RH107", str(path), 1, 1, "README does not say on which hardware the recipe was validated",
                   recipe=recipe.id)


@rule("RH108", "structure", "A perf manifest, when present, holds the benchmark's Job or Pod.",
      "make perf.yaml a batch/v1 Job (or a v1 Pod) that runs aiperf against the frontend", severity=Severity.ERROR)
def perf_is_workload(recipe: LoadedRecipe) -> Iterator[Finding]:
    for path in recipe.recipe.perf_files:
        result = recipe.results.get(path)
        if result is None or result.findings:
            continue
        if not any(d.kind in ("Job", "Pod") for d in result.documents):
            line, col = result.documents[0].pos() if result.documents else (1, 1)
            yield make("RH108", str(path), line, col, "perf manifest holds no Job or Pod", recipe=recipe.id)
