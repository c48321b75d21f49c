"""Patterns of the upstream recipes layout that are legitimate and must not be reported as problems."""

from __future__ import annotations

from pathlib import Path

from recipe_harness.findings import Severity
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.checks import StaticChecker

ROOT = Path(__file__).parent.parent / "fixtures" / "upstream-patterns" / "recipes"


def findings(recipe_id: str):
    d = discover(ROOT, [recipe_id])
    assert [r.id for r in d.recipes] == [recipe_id]
    checker = StaticChecker(discovery=d)
    return [f for fs in checker.run_all(LoadedRecipe.load(d.recipes[0])).values() for f in fs]


def test_template_files_are_not_recipes():
    ids = [r.id for r in discover(ROOT).recipes]
    assert ids == ["tiny/vllm/agg", "tiny/vllm/decode-label", "tiny/vllm/sidecar"]


def test_null_field_is_a_warning_that_the_apiserver_drops_it_not_a_type_error():
    found = [f for f in findings("tiny/vllm/agg") if f.rule.startswith("RH2")]
    assert [(f.rule, f.line, f.severity) for f in found] == [("RH203", 10, Severity.WARNING)]
    assert "null value for a non-nullable field" in found[0].message


def test_frontend_sidecars_serve_the_api_without_a_frontend_service():
    assert [f for f in findings("tiny/vllm/sidecar") if f.rule == "RH330"] == []


def test_a_vllm_worker_labelled_decode_without_the_flag_serves_alone():
    """vLLM workers without --disaggregation-mode serve aggregated: no missing-prefill error (RH334)."""
    assert [f.rule for f in findings("tiny/vllm/decode-label") if f.rule in ("RH334", "RH335")] == []


MOE_ROOT = Path(__file__).parent.parent / "fixtures" / "upstream-patterns" / "recipes-moe"


def moe_findings(recipe_id: str):
    d = discover(MOE_ROOT, [recipe_id])
    assert [r.id for r in d.recipes] == [recipe_id]
    checker = StaticChecker(discovery=d)
    return [f for fs in checker.run_all(LoadedRecipe.load(d.recipes[0])).values() for f in fs]


def test_vllm_flags_spelled_with_underscores_count():
    """vLLM reads --data_parallel_size as --data-parallel-size: 4 DP ranks of TP1 fill the 4 GPUs."""
    from recipe_harness.model.backends import engine_config

    d = discover(MOE_ROOT, ["moe/vllm/dep-underscore"])
    recipe = LoadedRecipe.load(d.recipes[0])
    worker = next(s for s in recipe.deployment.services if s.name == "VllmWorker")
    cfg = engine_config(recipe, worker)
    assert (cfg.tensor_parallel, cfg.data_parallel, cfg.data_parallel_local) == (1, 4, 4)
    assert [f.rule for f in moe_findings("moe/vllm/dep-underscore") if f.rule in ("RH300", "RH302")] == []


def test_component_type_main_is_a_worker():
    """componentType main (the operator's older worker type) marks workers; prefill/decode come from the name."""
    from recipe_harness.deploy.twin import plan

    d = discover(MOE_ROOT, ["moe/trtllm/main-type"])
    recipe = LoadedRecipe.load(d.recipes[0])
    assert [(s.name, s.role) for s in recipe.deployment.workers] == [
        ("TrtllmPrefillWorker", "prefill"), ("TrtllmDecodeWorker", "decode")]
    plan(recipe)  # raises DeployError when the graph has no worker to serve
    assert [f.rule for f in moe_findings("moe/trtllm/main-type") if f.rule.startswith("RH33")] == []


def test_a_worker_labelled_only_worker_runs_as_its_disaggregation_mode():
    """componentType worker without subComponentType, --disaggregation-mode prefill: the mocker registers as the
    `prefill` component, so the twin waits for `prefill` and `backend` (it waited for two `backend` workers
    and the prefill worker never counted: 'workers not registered yet: backend 1/2')."""
    from recipe_harness.deploy.twin import plan

    d = discover(MOE_ROOT, ["moe/trtllm/worker-type"])
    twin = plan(LoadedRecipe.load(d.recipes[0]))
    assert [(w.service, w.role, w.component) for w in twin.workers] == [
        ("prefill", "prefill", "prefill"), ("decode", "decode", "backend")]
    assert twin.expected_instances() == {"prefill": 1, "backend": 1} and twin.disaggregated
    assert "prefill: labelled worker (no subComponentType); its engine runs --disaggregation-mode prefill: " \
           "a prefill worker" in twin.notes
    assert [f.rule for f in moe_findings("moe/trtllm/worker-type") if f.rule.startswith("RH33")] == []
