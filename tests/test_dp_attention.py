"""Data parallelism on the local target: every backend's DP flags (vLLM --data-parallel-size, SGLang --dp/--dp-size
with and without --enable-dp-attention, TensorRT-LLM attention DP) become mocker DP ranks, DP > 1 on prefill and
decode, and readiness waits for what the mocker 1.6.1 registers: one instance a process, one endpoint a DP rank."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from recipe_harness.deploy.local import DP_RANK_ENDPOINT, LocalTarget, _probe_ready
from recipe_harness.deploy.procs import NotReady
from recipe_harness.deploy.twin import Caps, plan
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from tests import procs

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "fixtures" / "dp-attention" / "recipes"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
CLI = Path(sys.executable).with_name("recipe-harness")
needs_dynamo = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")

# recipe -> (service, role, mocker --data-parallel-size, generate instances, DP-rank endpoints)
EXPECTED = {
    "tiny/vllm/disagg-dp": [("PrefillWorker", "prefill", 2, 1, 2), ("DecodeWorker", "decode", 2, 1, 0)],
    "tiny/sglang/disagg-dp": [("PrefillWorker", "prefill", 2, 1, 2), ("DecodeWorker", "decode", 2, 1, 0)],
    "tiny/sglang/disagg-dp-attention": [("PrefillWorker", "prefill", 2, 1, 2), ("DecodeWorker", "decode", 2, 2, 0)],
    "tiny/trtllm/disagg-attention-dp": [("PrefillWorker", "prefill", 2, 1, 2), ("DecodeWorker", "decode", 2, 1, 0)],
}


def load(recipe_id: str) -> LoadedRecipe:
    found = [r for r in discover(RECIPES).recipes if r.id == recipe_id]
    assert found, recipe_id
    return LoadedRecipe.load(found[0])


@pytest.mark.parametrize("recipe_id", sorted(EXPECTED))
def test_dp_flags_become_mocker_ranks_not_instances(recipe_id: str) -> None:
    twin = plan(load(recipe_id), Caps(processes_per_service=2, worker_processes=6))
    got = [(w.service, w.role, w.data_parallel, w.processes, w.dp_rank_endpoints) for w in twin.workers]
    assert got == EXPECTED[recipe_id]
    for w in twin.workers:
        assert w.args[w.args.index("--data-parallel-size") + 1] == "2"
    generate = sum(w.processes for w in twin.workers if w.role == "decode")
    assert twin.expected_instances()["backend"] == generate  # DP ranks never counted as instances
    assert twin.expected_dp_ranks() == {"prefill": 2}


def test_dp_cap_is_noted_and_ranks_follow_it() -> None:
    twin = plan(load("tiny/sglang/disagg-dp-attention"), Caps(processes_per_service=2, worker_processes=6,
                                                              data_parallel=1))
    assert all("--data-parallel-size" not in w.args for w in twin.workers)
    assert twin.expected_dp_ranks() == {"prefill": 1}
    assert any("data parallel 2 -> 1 ranks per mocker (cap)" in n for n in twin.notes)


def _health(instances: list[dict]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "Qwen/Qwen3-0.6B"}]})
        return httpx.Response(200, json={"instances": instances})
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_readiness_waits_for_every_dp_rank_and_not_for_rank_instances() -> None:
    twin = plan(load("tiny/sglang/disagg-dp-attention"), Caps(processes_per_service=2, worker_processes=6))
    generate = [{"component": "prefill", "endpoint": "generate"}] + [{"component": "backend", "endpoint": "generate"}] * 2
    one_rank = [{"component": "prefill", "endpoint": DP_RANK_ENDPOINT + "a1"}]
    with _health(generate + one_rank) as client, pytest.raises(NotReady, match="data-parallel ranks .* prefill 1/2"):
        _probe_ready(client, "http://x", twin)
    both = one_rank + [{"component": "prefill", "endpoint": DP_RANK_ENDPOINT + "b2"}]
    with _health(generate + both) as client:
        _probe_ready(client, "http://x", twin)  # 2 decode instances with DP2 each: ready, not "backend 2/4"


@needs_dynamo
def test_the_real_mocker_registers_as_modelled() -> None:
    """What the twin expects is what the installed mocker registers: counted on the frontend's /health."""
    recipe = load("tiny/sglang/disagg-dp-attention")
    target = LocalTarget(python=DYNAMO_PY, caps=Caps(processes_per_service=2, worker_processes=6))
    twin = plan(recipe, target.caps)
    with target.deploy(recipe) as ep:
        body = httpx.get(f"{ep.base_url}/health", timeout=10).json()
    generate: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for inst in body["instances"]:
        if inst["endpoint"] == "generate":
            generate[inst["component"]] = generate.get(inst["component"], 0) + 1
        elif inst["endpoint"].startswith(DP_RANK_ENDPOINT):
            ranks[inst["component"]] = ranks.get(inst["component"], 0) + 1
    assert generate == twin.expected_instances() == {"prefill": 1, "backend": 2}
    assert ranks == twin.expected_dp_ranks() == {"prefill": 2}


@needs_dynamo
def test_every_dp_recipe_deploys_and_serves_through_the_cli(tmp_path: Path) -> None:
    proc = procs.run(
        [str(CLI), "test", "--recipes-root", str(RECIPES), "--suite", "smoke", "--report-dir", str(tmp_path),
         "--dynamo-python", str(DYNAMO_PY), "--", "-q", "-p", "no:cacheprovider", "-k", "smoke-chat or smoke-disagg"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "8 passed" in proc.stdout
    summary = (tmp_path / "summary.md").read_text()
    for recipe_id in EXPECTED:
        assert recipe_id in summary
