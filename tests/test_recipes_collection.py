"""Consistency of the recipes collection in ``recipes/``.

The collection is data, so these tests check it the way a reviewer would: every file loads, the
index and the model READMEs list exactly the recipes that exist with the GPU totals the manifests
request, thresholds follow their schema, one Dynamo release is used everywhere, and the names that
tie files together (served model, download repository, PVCs, frontend service) agree.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

import recipe_harness
from recipe_harness.load.discovery import Recipe, discover
from recipe_harness.load.manifests import Document, load_file
from recipe_harness.model import Deployment, Service, flag_value, load_deployment, split_argv

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
THRESHOLDS_SCHEMA = Path(recipe_harness.__file__).parent / "data" / "schemas" / "thresholds.schema.json"
DYNAMO_IMAGE = re.compile(r"^nvcr\.io/nvidia/ai-dynamo/(vllm|sglang|tensorrtllm)-runtime:(?P<tag>[^@\s]+)$")
RELEASE_TAG = re.compile(r"^\d+\.\d+\.\d+$")


@cache
def _discovery():
    return discover(RECIPES)


def _recipes() -> list[Recipe]:
    return _discovery().recipes


def _ids() -> list[str]:
    return [r.id for r in _recipes()]


@cache
def _docs(path: Path) -> tuple[Document, ...]:
    result = load_file(path)
    assert not result.findings, "\n".join(f.format(REPO) for f in result.findings)
    return tuple(result.documents)


@cache
def _deployment(recipe_id: str) -> Deployment:
    recipe = next(r for r in _recipes() if r.id == recipe_id)
    dgds = [d for d in _docs(recipe.deploy_file) if d.kind == "DynamoGraphDeployment"]
    assert len(dgds) == 1, f"{recipe.deploy_file}: expected one DynamoGraphDeployment, found {len(dgds)}"
    dep = load_deployment(dgds[0])
    assert dep is not None
    return dep


def _recipe(recipe_id: str) -> Recipe:
    return next(r for r in _recipes() if r.id == recipe_id)


def _table_rows(markdown: str) -> list[dict[str, str]]:
    """Rows of every markdown table whose header has a Recipe and a GPUs column."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in markdown.splitlines() + [""]:
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
            continue
        if "Recipe" in header and "GPUs" in header:
            rows.append(dict(zip(header, cells)))
    return rows


def _recipe_cell(cell: str) -> str:
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)  # [text](link) -> text
    return cell.replace("`", "").replace("*", "").strip().strip("/")


def _gpu_table(path: Path) -> dict[str, int]:
    table: dict[str, int] = {}
    for row in _table_rows(path.read_text(encoding="utf-8")):
        rid = _recipe_cell(row["Recipe"])
        assert rid not in table, f"{path}: recipe {rid} listed twice"
        assert re.fullmatch(r"\d+", row["GPUs"]), f"{path}: GPUs of {rid} must be a plain integer, got {row['GPUs']!r}"
        table[rid] = int(row["GPUs"])
    return table


def _containers(doc: Document) -> list[dict]:
    """Containers of a Job/Pod/Deployment document, or main containers of a DGD."""
    body = doc.body
    if doc.kind == "DynamoGraphDeployment":
        services = body.get("spec", {}).get("services", {}) or {}
        return [s.get("extraPodSpec", {}).get("mainContainer", {}) for s in services.values()]
    spec = body.get("spec", {}) or {}
    pod = spec.get("template", {}).get("spec", spec) if "template" in spec else spec
    return list(pod.get("containers", []) or []) + list(pod.get("initContainers", []) or [])


def _words(container: dict) -> list[str]:
    return split_argv(container.get("command") or [], container.get("args") or [])


def _hf_downloads(recipe: Recipe) -> set[str]:
    repos: set[str] = set()
    for path in recipe.model_cache_files:
        for doc in _docs(path):
            if doc.kind != "Job":
                continue
            for container in _containers(doc):
                words = _words(container)
                for i, word in enumerate(words[:-2]):
                    if word == "hf" and words[i + 1] == "download":
                        repos.add(words[i + 2])
    return repos


def _model_cache_pvcs(recipe: Recipe) -> set[str]:
    return {d.name for p in recipe.model_cache_files for d in _docs(p) if d.kind == "PersistentVolumeClaim"}


def _model_repo(svc: Service) -> str | None:
    return svc.flag("--model-path") if svc.python_module in ("dynamo.sglang", "dynamo.mocker") else svc.flag("--model")


def _served_name(svc: Service) -> str | None:
    return svc.flag("--served-model-name", "--model-name") or _model_repo(svc)


# --- every recipe loads ------------------------------------------------------------------------


def test_discovery_is_clean_and_finds_the_collection():
    found = _discovery()
    assert not found.findings, "\n".join(f.format(REPO) for f in found.findings)
    assert len(found.recipes) >= 10


@pytest.mark.parametrize("recipe_id", _ids())
def test_recipe_files_load_without_findings(recipe_id):
    recipe = _recipe(recipe_id)
    for path in recipe.files:
        assert _docs(path), f"{path} holds no YAML document"
    dep = _deployment(recipe_id)
    assert dep.api_version == "nvidia.com/v1alpha1"
    assert dep.frontend is not None, f"{recipe_id}: no frontend service"
    assert dep.workers, f"{recipe_id}: no worker service"
    assert recipe.model_cache_files and recipe.readmes


# --- index and READMEs agree with the manifests ------------------------------------------------


def test_index_lists_exactly_the_discovered_recipes():
    index = _gpu_table(RECIPES / "README.md")
    assert sorted(index) == sorted(_ids())


def test_index_columns():
    rows = _table_rows((RECIPES / "README.md").read_text(encoding="utf-8"))
    assert rows and list(rows[0]) == ["Recipe", "Model", "Backend", "Mode", "GPUs", "Hardware"]


@pytest.mark.parametrize("recipe_id", _ids())
def test_gpu_totals_in_index_and_model_readme_match_the_manifest(recipe_id):
    dep = _deployment(recipe_id)
    expected = sum(s.gpus * s.node_count * s.replicas for s in dep.services)
    assert dep.total_gpus == expected
    assert _gpu_table(RECIPES / "README.md")[recipe_id] == expected, "recipes/README.md"
    recipe = _recipe(recipe_id)
    readme = recipe.model_dir / "README.md"
    table = _gpu_table(readme)
    assert recipe_id in table, f"{readme} has no table row for {recipe_id}"
    assert table[recipe_id] == expected, f"{readme}: GPUs of {recipe_id}"


@pytest.mark.parametrize("recipe_id", _ids())
def test_model_readme_states_validated_hardware(recipe_id):
    text = (_recipe(recipe_id).model_dir / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^Validated on:", text, re.MULTILINE)
    assert "## Troubleshooting" in text and "kubectl apply" in text


def test_model_readmes_list_only_existing_recipes():
    ids = set(_ids())
    for readme in sorted(RECIPES.glob("*/README.md")):
        unknown = set(_gpu_table(readme)) - ids
        assert not unknown, f"{readme} lists recipes that do not exist: {sorted(unknown)}"


# --- thresholds ---------------------------------------------------------------------------------


@cache
def _thresholds_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(THRESHOLDS_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_thresholds_schema_rejects_what_the_format_forbids():
    validator = _thresholds_validator()
    good = {
        "schemaVersion": 1,
        "profiles": {
            "h200-sxm": {
                "gpus": 8,
                "limits": {
                    "ttft_p99": {"max": 2500, "unit": "ms"},
                    "output_tokens_per_s_per_gpu": {"min": 400, "unit": "tokens/s/gpu"},
                    "error_rate": {"max": 0.01, "unit": "ratio"},
                },
            }
        },
    }
    assert not list(validator.iter_errors(good))

    def broken(**change):
        doc = json.loads(json.dumps(good))
        profile = doc["profiles"]["h200-sxm"]
        for key, value in change.items():
            if key == "profile_id":
                doc["profiles"] = {value: profile}
            else:
                profile["limits"][key] = value
        return doc

    for doc in (
        broken(ttft_p99={"max": 2500, "min": 1, "unit": "ms"}),  # both bounds
        broken(ttft_p99={"unit": "ms"}),  # no bound
        broken(ttft_p99={"max": 2500}),  # no unit
        broken(ttft_p99={"max": 2500, "unit": "tokens/s/gpu"}),  # wrong unit family
        broken(error_rate={"max": 2, "unit": "ratio"}),  # ratio above 1
        broken(ttft_p42={"max": 1, "unit": "ms"}),  # unknown metric
        broken(profile_id="H200_SXM"),  # bad profile id
    ):
        assert list(validator.iter_errors(doc)), doc


@pytest.mark.parametrize("recipe_id", _ids())
def test_thresholds_validate_and_accompany_perf(recipe_id):
    recipe = _recipe(recipe_id)
    assert bool(recipe.perf_files) == (recipe.thresholds_file is not None), (
        f"{recipe_id}: perf.yaml and thresholds.yaml go together"
    )
    if recipe.thresholds_file is None:
        return
    data = yaml.safe_load(recipe.thresholds_file.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _thresholds_validator().iter_errors(data)]
    assert not errors, f"{recipe.thresholds_file}:\n" + "\n".join(errors)
    assert "cpu-mocker" in data["profiles"], f"{recipe_id}: the local target needs a cpu-mocker profile"
    assert data["profiles"]["cpu-mocker"]["gpus"] == 1
    dep = _deployment(recipe_id)
    for name, profile in data["profiles"].items():
        if name != "cpu-mocker":
            assert profile["gpus"] == dep.total_gpus, f"{recipe_id}: profile {name} gpus"


# --- one release, real wiring ------------------------------------------------------------------


def _all_manifests() -> list[Path]:
    return sorted(p for p in RECIPES.rglob("*.yaml") if p.name != "thresholds.yaml")


def test_every_dynamo_image_is_the_same_release():
    tags: dict[str, set[Path]] = {}
    other: list[tuple[Path, str]] = []
    for path in _all_manifests():
        for doc in _docs(path):
            for container in _containers(doc):
                image = container.get("image")
                if not image:
                    continue
                m = DYNAMO_IMAGE.match(image)
                if m:
                    tags.setdefault(m.group("tag"), set()).add(path)
                else:
                    other.append((path, image))
    assert len(tags) == 1, f"images of several Dynamo releases: { {t: sorted(map(str, p)) for t, p in tags.items()} }"
    (tag,) = tags
    assert RELEASE_TAG.match(tag), f"{tag!r} is not a release tag"
    for path, image in other:
        assert ":" in image and not image.endswith(":latest"), f"{path}: unpinned image {image}"


@pytest.mark.parametrize("recipe_id", _ids())
def test_every_service_has_a_dynamo_image_and_command(recipe_id):
    for svc in _deployment(recipe_id).services:
        assert svc.image and DYNAMO_IMAGE.match(svc.image), f"{recipe_id}/{svc.name}: image {svc.image}"
        assert svc.python_module, f"{recipe_id}/{svc.name}: no python -m command"


@pytest.mark.parametrize("recipe_id", _ids())
def test_parallelism_uses_exactly_the_requested_gpus(recipe_id):
    dep = _deployment(recipe_id)
    for svc in dep.workers:
        gpus = svc.gpus_per_replica
        module = svc.python_module
        if module == "dynamo.mocker":
            assert gpus == 0
            continue
        assert gpus > 0, f"{svc.name} requests no GPU"
        if module == "dynamo.vllm":
            tp = int(svc.flag("--tensor-parallel-size", "-tp", default="1"))
            dp = int(svc.flag("--data-parallel-size", "-dp", default="1"))
            assert tp * dp == gpus, f"{svc.name}: TP{tp} x DP{dp} != {gpus} GPUs"
        elif module == "dynamo.sglang":
            tp = int(svc.flag("--tp", "--tp-size", "--tensor-parallel-size", default="1"))
            assert tp == gpus, f"{svc.name}: --tp {tp} != {gpus} GPUs"
            dp = svc.flag("--dp", "--dp-size")
            assert dp is None or gpus % int(dp) == 0
        elif module == "dynamo.trtllm":
            tp = int(svc.flag("--tensor-parallel-size", default="1"))
            assert tp == gpus, f"{svc.name}: TP{tp} != {gpus} GPUs"
            ep = svc.flag("--expert-parallel-size")
            assert ep is None or int(ep) <= tp
        else:
            pytest.fail(f"{svc.name}: unexpected worker module {module}")
        if dep.framework:
            assert module == f"dynamo.{dep.framework}", f"{svc.name}: {module} under backendFramework {dep.framework}"


@pytest.mark.parametrize("recipe_id", _ids())
def test_model_names_downloads_and_pvcs_agree(recipe_id):
    recipe = _recipe(recipe_id)
    dep = _deployment(recipe_id)
    downloads = _hf_downloads(recipe)
    served = {_served_name(s) for s in dep.workers}
    assert len(served) == 1, f"{recipe_id}: workers serve different names {served}"
    for svc in dep.workers:
        assert _model_repo(svc) in downloads, f"{svc.name} loads {_model_repo(svc)}, not downloaded by {downloads}"
        if dep.is_disaggregated:
            assert svc.flag("--disaggregation-mode") == svc.role, f"{svc.name}: disaggregation mode"
    pvcs = _model_cache_pvcs(recipe)
    declared = {p.name for p in dep.pvcs}
    assert declared <= pvcs, f"{recipe_id}: DGD PVCs {declared - pvcs} have no PersistentVolumeClaim in model-cache/"
    for svc in dep.services:
        for mount in svc.mounts:
            if mount.pvc is not None:
                assert mount.pvc in declared, f"{svc.name} mounts {mount.pvc}, not in spec.pvcs"


@pytest.mark.parametrize("recipe_id", [r.id for r in _recipes() if r.perf_files])
def test_perf_job_targets_the_frontend_with_the_served_model(recipe_id):
    recipe = _recipe(recipe_id)
    dep = _deployment(recipe_id)
    (served,) = {_served_name(s) for s in dep.workers}
    jobs = [d for p in recipe.perf_files for d in _docs(p) if d.kind == "Job"]
    assert len(jobs) == 1
    (container,) = _containers(jobs[0])
    words = _words(container)
    assert "aiperf" in words and "profile" in words
    assert flag_value(words, "--url") == f"http://{dep.frontend_service_name}:8000"
    assert flag_value(words, "--model", "-m") == served
    assert flag_value(words, "--tokenizer") in _hf_downloads(recipe)
    assert flag_value(words, "--endpoint-type") == "chat"
    assert flag_value(words, "--streaming") == ""
    for name in ("--synthetic-input-tokens-mean", "--output-tokens-mean", "--request-count", "--warmup-request-count"):
        assert (flag_value(words, name) or "").isdigit(), f"{recipe_id}: {name}"
    assert flag_value(words, "--concurrency")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in jobs[0].body["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims <= _model_cache_pvcs(recipe), f"{recipe_id}: perf Job mounts unknown PVCs {claims}"


@pytest.mark.parametrize("recipe_id", _ids())
def test_frontend_router_mode_matches_the_recipe(recipe_id):
    dep = _deployment(recipe_id)
    mode = dep.frontend.flag("--router-mode")
    assert dep.frontend.flag("--http-port") == "8000"
    if "kv-router" in recipe_id:
        assert mode == "kv"
    assert mode in ("kv", "round-robin", "random", "least-loaded", "power-of-two")
    if mode == "kv":
        publishes = [
            s
            for s in dep.workers
            if s.role in ("worker", "prefill")
            and (
                s.python_module == "dynamo.mocker"
                or s.has_flag("--publish-kv-events")
                or '"enable_kv_cache_events":true' in (s.flag("--kv-events-config") or "").replace(" ", "")
            )
        ]
        assert publishes, f"{recipe_id}: KV router without a worker that publishes KV events"


def test_mocker_recipes_run_without_gpus():
    mocker = [r.id for r in _recipes() if r.backend == "mocker"]
    assert sorted(mocker) == ["mocker-tiny/mocker/agg", "mocker-tiny/mocker/disagg-kv-router"]
    for rid in mocker:
        dep = _deployment(rid)
        assert dep.total_gpus == 0
        assert all(s.python_module == "dynamo.mocker" for s in dep.workers)
    roles = sorted(s.role for s in _deployment("mocker-tiny/mocker/disagg-kv-router").workers)
    assert roles == ["decode", "prefill"]
    assert [s.replicas for s in _deployment("mocker-tiny/mocker/agg").workers] == [2]
