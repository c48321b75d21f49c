"""Recipes whose OpenAI frontend runs as a ``frontendSidecar`` of the workers (the GAIE pattern):
the model, the local twin on real Dynamo processes (frontend + mocker, no mocks), the GPU-free
Kubernetes twin and the Service the Kubernetes target forwards to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recipe_harness.deploy.kubernetes.target import api_service
from recipe_harness.deploy.kubernetes.twin import twin_dgd
from recipe_harness.deploy.local import LocalTarget
from recipe_harness.deploy.twin import plan
from recipe_harness.exercise import smoke
from recipe_harness.load.discovery import discover
from recipe_harness.model import SIDECAR_CONTAINER
from recipe_harness.model.backends import frontend_config
from recipe_harness.model.bundle import LoadedRecipe

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "local" / "sidecar"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
needs_dynamo = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")
ALPHA, BETA = "tiny/vllm/gaie", "tiny/vllm/gaie-v1beta1"


def load(recipe_id: str, root: Path = FIXTURES) -> LoadedRecipe:
    found = [r for r in discover(root).recipes if r.id == recipe_id]
    assert found, f"fixture recipe {recipe_id} missing under {root}"
    return LoadedRecipe.load(found[0])


# -- model -----------------------------------------------------------------------------------------


def test_v1alpha1_sidecar_is_a_frontend_of_the_worker_not_a_graph_service():
    recipe = load(ALPHA)
    dep = recipe.deployment
    assert dep.frontend is None and dep.frontend_service_name is None  # rules keep their meaning
    assert [s.name for s in dep.sidecar_frontends] == ["VllmWorker"]
    side = dep.service("VllmWorker").frontend_sidecar
    assert side.name == f"VllmWorker/{SIDECAR_CONTAINER}" and side.role == "frontend"
    assert side.image == "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1" and side.replicas == 2
    assert side.argv == ["-m", "dynamo.frontend", "--router-mode", "direct"]
    assert side not in dep.services
    cfg = frontend_config(recipe, side)
    assert cfg.router_mode == "direct" and cfg.http_port == 8000
    assert cfg.sources["router_mode"][1] == 19  # line of the sidecar's args in deploy.yaml


def test_v1beta1_sidecar_is_the_named_pod_container():
    recipe = load(BETA)
    worker = recipe.deployment.service("worker")
    side = worker.frontend_sidecar
    assert side is not None and side.name == "worker/sidecar-frontend"
    assert side.argv == ["-m", "dynamo.frontend", "--router-mode", "kv"]
    assert worker.argv[:3] == ["python3", "-m", "dynamo.vllm"]  # the worker stays the main container
    assert frontend_config(recipe, side).router_mode == "kv"


# -- local twin plan -------------------------------------------------------------------------------


def test_plan_serves_through_one_frontend_standing_for_the_sidecars():
    twin = plan(load(ALPHA))
    assert twin.frontend_service == "VllmWorker/sidecar-frontend"
    assert twin.frontend_args == ["--router-mode", "round-robin"]
    notes = "\n".join(twin.notes)
    assert "one frontend in each of 2 worker pods) -> 1 frontend process" in notes
    assert "router mode 'direct'" in notes and "Epp (endpoint picker): not run" in notes
    assert "declares no frontend" not in notes
    assert [(w.service, w.role, w.processes) for w in twin.workers] == [("VllmWorker", "worker", 2)]


def test_plan_keeps_the_sidecar_router_mode_and_runs_a_lone_decode_label_aggregated():
    twin = plan(load(BETA))
    assert twin.frontend_args == ["--router-mode", "kv"]
    (worker,) = twin.workers
    assert worker.role == "worker" and "--disaggregation-mode" not in worker.args
    assert not twin.disaggregated
    assert any("labelled decode" in n and "serves alone" in n for n in twin.notes)


def test_a_kv_router_sidecar_over_workers_without_kv_events_is_rh333_and_its_twin_publishes_none():
    """The sidecar routes by KV events its vLLM worker (no --kv-events-config) never publishes: the
    static check says so, and both twins' mockers publish none either (so the smoke agrees)."""
    from recipe_harness.static.checks import StaticChecker

    recipe = load(BETA)
    found = [f for fs in StaticChecker().run_all(recipe).values() for f in fs if f.rule == "RH333"]
    assert [(f.line, f.message) for f in found] == [
        (26, "the frontend routes by KV cache but worker (vllm) publishes no KV events: it has no KV events "
             "configuration")]
    (worker,) = plan(recipe).workers
    assert "--no-enable-prefix-caching" in worker.args
    cluster = json.dumps(twin_dgd(recipe)[0])
    assert "--no-enable-prefix-caching" in cluster and "--enable-prefix-caching" not in cluster


def test_a_frontend_service_wins_over_sidecars(tmp_path):
    recipe_dir = tmp_path / "tiny" / "vllm" / "both"
    recipe_dir.mkdir(parents=True)
    doc = yaml.safe_load((FIXTURES / ALPHA / "deploy.yaml").read_text())
    doc["spec"]["services"]["Frontend"] = {
        "componentType": "frontend", "replicas": 1,
        "extraPodSpec": {"mainContainer": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1",
                                           "command": ["python3", "-m", "dynamo.frontend"],
                                           "args": ["--router-mode", "kv"]}}}
    (recipe_dir / "deploy.yaml").write_text(yaml.safe_dump(doc))
    twin = plan(load("tiny/vllm/both", tmp_path))
    assert twin.frontend_service == "Frontend" and twin.frontend_args == ["--router-mode", "kv"]
    assert any("frontend sidecars of VllmWorker not run" in n for n in twin.notes)


# -- local target, real processes ------------------------------------------------------------------


@needs_dynamo
@pytest.mark.parametrize("recipe_id", [ALPHA, BETA])
def test_local_target_smoke_passes_on_a_sidecar_recipe(recipe_id):
    target = LocalTarget(python=DYNAMO_PY)
    recipe = load(recipe_id)
    with target.deploy(recipe) as ep:
        assert ep.model == recipe.deployment.name  # the fixtures serve their DGD name
        fronts = [c for c in ep.components if c.role == "frontend"]
        assert [c.service for c in fronts] == [recipe.deployment.sidecar_frontends[0].frontend_sidecar.name]
        assert any("frontend sidecars" in n for n in ep.notes)
        for check in ("models", "chat", "stream"):
            smoke.run(check, ep, watchdog=lambda: target.check(ep))
        if recipe_id == ALPHA:  # both worker pods are reachable through the one frontend (round-robin)
            smoke.run("concurrency", ep, watchdog=lambda: target.check(ep))
            with smoke.SmokeClient(ep, watchdog=lambda: target.check(ep)) as client:
                served = smoke.served_requests(client, [c for c in ep.components if c.role == "worker"])
            assert len(served) == 2 and all(n > 0 for n in served.values()), served


# -- Kubernetes twin and target --------------------------------------------------------------------


def _gpu_keys(body) -> list[str]:
    text = json.dumps(body)
    return [k for k in ('"gpu"', '"nvidia.com/gpu"') if k in text]


def test_k8s_twin_keeps_the_v1alpha1_sidecar_and_drops_gpus():
    recipe = load(ALPHA)
    body, notes = twin_dgd(recipe)
    worker = body["spec"]["services"]["VllmWorker"]
    assert worker["frontendSidecar"]["args"] == ["-m", "dynamo.frontend", "--router-mode", "direct"]
    assert worker["frontendSidecar"]["image"].startswith("nvcr.io/nvidia/ai-dynamo/dynamo-planner:")
    assert worker["extraPodSpec"]["mainContainer"]["command"] == ["python3", "-m", "dynamo.mocker"]
    assert "Frontend" not in body["spec"]["services"]  # no frontend service is invented
    assert _gpu_keys(body) == []
    assert any("frontend sidecar kept" in n for n in notes)
    assert recipe.deployment.document.body["spec"]["services"]["VllmWorker"]["frontendSidecar"]["image"] \
        .endswith("vllm-runtime:1.6.1")  # the recipe itself is untouched


def test_k8s_twin_keeps_the_v1beta1_sidecar_container_and_drops_gpus():
    body, _ = twin_dgd(load(BETA))
    worker = body["spec"]["components"][1]
    assert worker["frontendSidecar"] == "sidecar-frontend"
    main, side = worker["podTemplate"]["spec"]["containers"]
    assert main["name"] == "main" and main["command"] == ["python3", "-m", "dynamo.mocker"]
    assert "--disaggregation-mode" not in main["args"]  # a lone decode label serves alone, as locally
    assert side["name"] == "sidecar-frontend" and side["args"] == ["-m", "dynamo.frontend", "--router-mode", "kv"]
    assert side["image"] == main["image"]
    assert _gpu_keys(body) == []


def test_k8s_target_forwards_to_the_sidecar_container_not_a_service():
    api = api_service(load(ALPHA))
    assert (api.name, api.port, api.frontend.name) == ("tiny-gaie-vllmworker", 8000, "VllmWorker/sidecar-frontend")
    assert not api.via_service and (api.component, api.container) == ("VllmWorker", "sidecar-frontend")
    assert "frontend sidecar of VllmWorker" in api.note
    beta = api_service(load(BETA))
    assert (beta.name, beta.port) == ("tiny-gaie-beta-worker", 8000)
    ok = api_service(load("tiny/mocker/agg", ROOT / "fixtures" / "local" / "ok"))
    assert (ok.name, ok.port, ok.note) == ("tiny-agg-frontend", 8000, "")
    assert ok.via_service
