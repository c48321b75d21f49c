"""The local target on real Dynamo processes (frontend + mocker), no mocks: the twin of a recipe,
readiness, fail-fast, cleanup, and runs side by side. Also the tiny model and the twin planner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from recipe_harness.deploy import DeployError
from recipe_harness.deploy.local import LocalTarget, find_dynamo_python
from recipe_harness.deploy.procs import MARKER_ENV, processes_with_env
from recipe_harness.deploy.tinymodel import VOCAB_SIZE, tiny_model_dir
from recipe_harness.deploy.twin import Caps, plan
from recipe_harness.exercise import smoke
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "local"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
needs_dynamo = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")


def load(tree: str, recipe_id: str) -> LoadedRecipe:
    found = [r for r in discover(FIXTURES / tree).recipes if r.id == recipe_id]
    assert found, f"fixture recipe {tree}/{recipe_id} missing"
    return LoadedRecipe.load(found[0])


def instances(base_url: str) -> dict[str, list[str]]:
    """``generate`` instances per component, with their transport addresses, from the frontend."""
    body = httpx.get(f"{base_url}/health", timeout=5).json()
    out: dict[str, list[str]] = {}
    for inst in body["instances"]:
        if inst["endpoint"] == "generate":
            out.setdefault(inst["component"], []).append(inst["transport"]["tcp"])
    return out


def chat(base_url: str, model: str) -> dict:
    resp = httpx.post(f"{base_url}/v1/chat/completions", timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- tiny model ------------------------------------------------------------------------------------


def test_tiny_model_round_trips_any_covered_text(tmp_path):
    from tokenizers import Tokenizer

    folder = tiny_model_dir(tmp_path)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.get_vocab_size() == VOCAB_SIZE
    text = "Hello, world!\n\tTabs, “quotes” — and 中文 too."
    enc = tok.encode(text)
    assert tok.decode(enc.ids) == text
    assert len(enc.ids) == len(text)  # one token per character: clients count what the server counts
    ids = list(range(3, VOCAB_SIZE, 997))  # arbitrary ids a mock engine may emit
    assert tok.encode(tok.decode(ids)).ids == ids
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert "chat_template" in config and json.loads((folder / "config.json").read_text())["vocab_size"] == VOCAB_SIZE


def test_tiny_model_concurrent_builders_share_one_folder(tmp_path):
    code = "import sys; from pathlib import Path; from recipe_harness.deploy.tinymodel import tiny_model_dir; " \
           "print(tiny_model_dir(Path(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1
    assert [p.name for p in tmp_path.iterdir()] == [Path(outs.pop()).name]  # no half-built leftovers


# -- twin ------------------------------------------------------------------------------------------


def test_twin_mirrors_the_recipe_topology():
    twin = plan(load("ok", "tiny/mocker/disagg-kv"))
    assert twin.model_name == "tiny-local"
    assert twin.router_mode == "kv" and twin.frontend_args == ["--router-mode", "kv"]
    assert twin.disaggregated
    by_service = {w.service: w for w in twin.workers}
    prefill, decode = by_service["MockerPrefillWorker"], by_service["MockerDecodeWorker"]
    assert (prefill.role, prefill.processes, decode.role, decode.processes) == ("prefill", 2, "decode", 1)
    assert prefill.args[prefill.args.index("--disaggregation-mode") + 1] == "prefill"
    assert decode.args[decode.args.index("--disaggregation-mode") + 1] == "decode"
    assert prefill.args[prefill.args.index("--block-size") + 1] == "16"
    assert prefill.args[prefill.args.index("--speedup-ratio") + 1] == "10"  # the mocker recipe's own tuning
    assert twin.expected_instances() == {"prefill": 2, "backend": 1}
    assert twin.notes == []


def test_twin_scales_absurd_counts_down_and_says_so():
    twin = plan(load("big", "huge/vllm/disagg"), Caps(processes_per_service=3, worker_processes=4, data_parallel=2),
                speedup_ratio=2.0)
    counts = {w.service: w.processes for w in twin.workers}
    assert sum(counts.values()) == 4 and all(n >= 1 for n in counts.values())
    decode = next(w for w in twin.workers if w.role == "decode")
    assert decode.args[decode.args.index("--data-parallel-size") + 1] == "2"
    assert decode.args[decode.args.index("--engine-type") + 1] == "vllm"
    assert decode.args[decode.args.index("--speedup-ratio") + 1] == "2"
    assert decode.args[decode.args.index("--max-model-len") + 1] == "8192"
    notes = "\n".join(twin.notes)
    assert "VllmPrefillWorker: 40 replicas -> " in notes
    assert "VllmDecodeWorker: 12 replicas -> " in notes
    assert "data parallel 16 -> 2" in notes
    assert "TP8" in notes and "2 nodes" in notes
    assert "Frontend: 3 replicas -> 1 frontend process" in notes


def test_twin_refuses_a_recipe_without_workers(tmp_path):
    folder = tmp_path / "m" / "vllm" / "agg"
    folder.mkdir(parents=True)
    (folder / "deploy.yaml").write_text(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\nspec:\n  services:\n"
        "    Frontend: {componentType: frontend, replicas: 1}\n")
    with pytest.raises(DeployError, match="declares no worker service"):
        plan(LoadedRecipe.load(discover(tmp_path).recipes[0]))


# -- finding the Dynamo interpreter ----------------------------------------------------------------


def test_dynamo_python_option_that_does_not_exist(tmp_path):
    with pytest.raises(DeployError, match=r"--dynamo-python points at .*bootstrap\.py"):
        find_dynamo_python(str(tmp_path / "nope" / "python"))


def test_dynamo_python_env_and_roots(tmp_path, monkeypatch):
    fake = tmp_path / ".venv-dynamo" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    monkeypatch.delenv("RECIPE_HARNESS_DYNAMO_PYTHON", raising=False)
    assert find_dynamo_python(None, [tmp_path / "elsewhere", tmp_path]) == fake
    monkeypatch.setenv("RECIPE_HARNESS_DYNAMO_PYTHON", str(fake))
    assert find_dynamo_python(None, []) == fake


def test_no_dynamo_anywhere_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("dynamo") is not None:
        pytest.skip("this interpreter has dynamo installed")
    monkeypatch.delenv("RECIPE_HARNESS_DYNAMO_PYTHON", raising=False)
    with pytest.raises(DeployError) as info:
        find_dynamo_python(None, [tmp_path])
    assert "recipe-harness setup" in str(info.value) and "pip install" in str(info.value)


# -- deployments -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running():
    target = LocalTarget(python=DYNAMO_PY)
    with target.deploy(load("ok", "tiny/mocker/disagg-kv")) as endpoint:
        yield target, endpoint


@needs_dynamo
def test_twin_is_ready_with_every_worker_registered(running):
    target, ep = running
    assert ep.target == "local" and ep.recipe_id == "tiny/mocker/disagg-kv"
    assert ep.model == "tiny-local" and ep.router_mode == "kv" and ep.disaggregated
    assert httpx.get(f"{ep.base_url}/v1/models", timeout=5).json()["data"][0]["id"] == "tiny-local"
    assert {c: len(v) for c, v in instances(ep.base_url).items()} == {"prefill": 2, "backend": 1}
    assert [(c.name, c.role) for c in ep.components] == [
        ("Frontend", "frontend"), ("MockerPrefillWorker-0", "prefill"), ("MockerPrefillWorker-1", "prefill"),
        ("MockerDecodeWorker-0", "decode")]
    for comp in ep.components[1:]:
        assert "dynamo_component_requests_total" in httpx.get(comp.metrics_url, timeout=5).text
        assert comp.log_file is not None and comp.log_file.stat().st_size > 0
    assert ep.tokenizer_dir == tiny_model_dir()
    assert any(n.startswith("ready in ") for n in ep.notes)
    assert chat(ep.base_url, ep.model)["usage"]["completion_tokens"] == 3


@needs_dynamo
def test_twin_processes_carry_the_run_marker_and_talk_on_loopback(running):
    target, ep = running
    marker = target.deployment(ep).supervisor.marker
    assert len(processes_with_env(MARKER_ENV, marker)) == 4
    for addresses in instances(ep.base_url).values():
        assert all(a.startswith("127.0.0.1:") for a in addresses)
    assert ep.base_url.startswith("http://127.0.0.1:")


def _leftovers(target: LocalTarget, ep) -> tuple[str, Path]:
    dep = target.deployment(ep)
    return dep.supervisor.marker, dep.run_dir


@needs_dynamo
def test_teardown_stops_every_process_and_removes_the_run_folder():
    import tempfile

    system_tmp = set(Path(tempfile.gettempdir()).iterdir())
    target = LocalTarget(python=DYNAMO_PY)
    with target.deploy(load("ok", "tiny/mocker/agg")) as ep:
        marker, run_dir = _leftovers(target, ep)
        assert run_dir.is_dir() and len(processes_with_env(MARKER_ENV, marker)) == 3
        assert list((run_dir / "tmp").iterdir()), "Dynamo's temp files go to the run's own temp dir"
    assert processes_with_env(MARKER_ENV, marker) == []
    assert not run_dir.exists()
    leaked = [p for p in set(Path(tempfile.gettempdir()).iterdir()) - system_tmp if p.suffix == ".json"]
    assert leaked == [], "nothing of the run may be left in the system temp dir"


@needs_dynamo
def test_an_error_inside_the_deployment_still_cleans_up():
    target = LocalTarget(python=DYNAMO_PY)
    with pytest.raises(RuntimeError, match="boom"), target.deploy(load("ok", "tiny/mocker/agg")) as ep:
        marker, run_dir = _leftovers(target, ep)
        raise RuntimeError("boom")
    assert processes_with_env(MARKER_ENV, marker) == []
    assert not run_dir.exists()


@needs_dynamo
def test_worker_killed_mid_request_fails_the_request_with_its_log_tail():
    target = LocalTarget(python=DYNAMO_PY)
    with target.deploy(load("ok", "tiny/mocker/agg")) as ep:
        marker, run_dir = _leftovers(target, ep)
        victim = next(p for p in target.deployment(ep).supervisor.procs if p.name == "MockerWorker-1")
        killer = threading.Timer(0.5, lambda: os.killpg(victim.pid, signal.SIGKILL))
        body = {"model": ep.model, "messages": [{"role": "user", "content": "go on forever"}],
                "max_tokens": 1_000_000, "stream": True}
        with smoke.SmokeClient(ep, watchdog=lambda: target.check(ep), timeout=120) as client:
            killer.start()
            with pytest.raises(DeployError) as info:
                client.stream("/v1/chat/completions", body)
        message = str(info.value)
        assert "MockerWorker-1 (worker" in message and "was killed by SIGKILL" in message
        assert f"last lines of {victim.spec.log_file}" in message and "dynamo" in message
        with pytest.raises(DeployError, match="MockerWorker-1"):  # and every later check fails at once
            smoke.run("chat", ep, watchdog=lambda: target.check(ep))
    assert processes_with_env(MARKER_ENV, marker) == []
    assert not run_dir.exists()


@needs_dynamo
def test_worker_exiting_at_start_is_a_deploy_error_with_its_log_tail(tmp_path):
    target = LocalTarget(python=DYNAMO_PY)
    with pytest.raises(DeployError) as info, target.deploy(load("broken", "tiny/mocker/bad-engine"), tmp_path):
        pass
    message = str(info.value)
    assert "MockerWorker-0 (worker" in message and "exited with code" in message
    assert "unknown variant `bogus`" in message
    assert list(tmp_path.iterdir()) == []  # run folder removed
    assert processes_with_env("DYN_FILE_KV", str(tmp_path), prefix=True) == []


@needs_dynamo
def test_model_not_ready_within_the_budget(tmp_path):
    target = LocalTarget(python=DYNAMO_PY, deploy_timeout=0.05)
    with pytest.raises(DeployError) as info, target.deploy(load("ok", "tiny/mocker/agg"), tmp_path):
        pass
    message = str(info.value)
    assert "tiny/mocker/agg (local twin) not ready within 0.05s (raise it with --deploy-timeout)" in message
    assert "--- Frontend (" in message and "--- MockerWorker-1 (" in message  # every process's log tail
    assert list(tmp_path.iterdir()) == []
    assert processes_with_env("DYN_FILE_KV", str(tmp_path), prefix=True) == []


@needs_dynamo
def test_logs_are_copied_and_kept_when_asked(tmp_path):
    target = LocalTarget(python=DYNAMO_PY, logs_dest=tmp_path / "report" / "logs", keep_logs=True)
    with target.deploy(load("ok", "tiny/mocker/agg"), tmp_path / "work") as ep:
        _, run_dir = _leftovers(target, ep)
    copied = tmp_path / "report" / "logs" / "tiny" / "mocker" / "agg"
    assert sorted(p.name for p in copied.iterdir()) == ["Frontend.log", "MockerWorker-0.log", "MockerWorker-1.log"]
    assert "dynamo.frontend" in (copied / "Frontend.log").read_text()
    assert (run_dir / "logs" / "Frontend.log").is_file() and not (run_dir / "kv").exists()


@needs_dynamo
def test_two_deployments_at_once_do_not_collide():
    target = LocalTarget(python=DYNAMO_PY)
    recipe = load("ok", "tiny/mocker/agg")
    with target.deploy(recipe) as a, target.deploy(recipe) as b:
        assert a.base_url != b.base_url
        assert _leftovers(target, a)[1] != _leftovers(target, b)[1]
        ports = {c.metrics_url for c in a.components} & {c.metrics_url for c in b.components}
        assert ports == set()
        for ep in (a, b):  # each frontend sees only its own two workers
            assert {c: len(v) for c, v in instances(ep.base_url).items()} == {"backend": 2}
            assert chat(ep.base_url, ep.model)["model"] == "tiny-local"


@needs_dynamo
def test_kv_routing_check_fails_when_routing_ignores_the_prefix():
    """The same check that passes on KV-router twins fails on a round-robin frontend."""
    import dataclasses

    target = LocalTarget(python=DYNAMO_PY)
    with target.deploy(load("ok", "tiny/mocker/agg")) as ep:
        assert ep.router_mode == "round-robin"
        with pytest.raises(smoke.SmokeSkip):
            smoke.run("kv-routing", ep)
        posing = dataclasses.replace(ep, router_mode="kv")
        with smoke.SmokeClient(posing, watchdog=lambda: target.check(ep)) as client, \
                pytest.raises(smoke.SmokeFailure, match="went to several workers"):
            smoke.check_kv_routing(client, settle_s=0.5)  # a round-robin router applies no KV events


def test_twin_of_an_engine_that_publishes_no_kv_events_publishes_none_under_a_kv_router():
    silent, events = plan(load("kv-events", "tiny/vllm/agg-kv-silent")), plan(load("kv-events", "tiny/vllm/agg-kv-events"))
    [quiet], [loud] = silent.workers, events.workers
    assert "--no-enable-prefix-caching" in quiet.args and quiet.dp_rank_endpoints == 0
    assert "--enable-prefix-caching" in loud.args and loud.dp_rank_endpoints == 2
    assert "VllmWorker: vllm publishes no KV events without --kv-events-config with enable_kv_cache_events, so " \
           "the KV router hears nothing from it; its mocker runs without prefix caching to publish none either " \
           "(RH333)" in silent.notes
    assert not any("RH333" in n for n in events.notes)
    assert silent.router_kv_events and events.router_kv_events


@needs_dynamo
@pytest.mark.parametrize("recipe_id, verdict", [
    ("tiny/vllm/agg-kv-silent", "the frontend's KV router applied no KV events in 4 requests: the workers it "
                                "routes to (VllmWorker-0, VllmWorker-1) publish none, so it routes by load alone"),
    ("tiny/vllm/agg-kv-events", None),
])
def test_kv_routing_check_on_workers_that_do_and_do_not_publish_kv_events(recipe_id, verdict):
    """Without KV events a router keeps a shared prefix together only by chance (2 of 6 checks did
    before this verdict): the check fails on the missing events, every time."""
    target = LocalTarget(python=DYNAMO_PY, speedup_ratio=10)
    with target.deploy(load("kv-events", recipe_id)) as ep:
        assert ep.router_mode == "kv" and ep.router_kv_events
        for _ in range(2):
            if verdict is None:
                result = smoke.run("kv-routing", ep, watchdog=lambda: target.check(ep))
                assert result.notes == [] and max(result.metrics["per_worker"].values()) == 4
            else:
                with pytest.raises(smoke.SmokeFailure) as info:
                    smoke.run("kv-routing", ep, watchdog=lambda: target.check(ep))
                assert verdict in str(info.value) and "RH333" in str(info.value)


# -- ports taken between the harness's choice and the process's bind --------------------------------


@pytest.fixture
def held_port():
    """A loopback port another program holds (listening) for the whole test; one a Dynamo system
    server could use too (under 32768)."""
    import socket

    from recipe_harness.deploy.local import SYSTEM_PORT_LIMIT
    from recipe_harness.deploy.procs import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", free_port(below=SYSTEM_PORT_LIMIT)))
        s.listen()
        yield s.getsockname()[1]


def _hand_out(monkeypatch, port: int, *, system: bool, times: int) -> list[int]:
    """Make the local target's first ``times`` frontend (or worker system) ports ``port``."""
    import recipe_harness.deploy.local as local

    real, given = local.free_port, []

    def fake(host: str = "127.0.0.1", *, below: int | None = None) -> int:
        chosen = port if (below is not None) == system and given.count(port) < times else real(host, below=below)
        given.append(chosen)
        return chosen

    monkeypatch.setattr(local, "free_port", fake)
    return given


@needs_dynamo
def test_a_frontend_port_taken_before_its_bind_starts_the_deployment_again(tmp_path, monkeypatch, held_port):
    given = _hand_out(monkeypatch, held_port, system=False, times=1)
    target = LocalTarget(python=DYNAMO_PY, logs_dest=tmp_path / "logs")
    with target.deploy(load("ok", "tiny/mocker/agg"), tmp_path / "work") as ep:
        assert ep.base_url != f"http://127.0.0.1:{held_port}"
        assert chat(ep.base_url, ep.model)["usage"]["completion_tokens"] == 3
        assert {c: len(v) for c, v in instances(ep.base_url).items()} == {"backend": 2}  # not 4: kv/ emptied
        marker = target.deployment(ep).supervisor.marker
        assert len(processes_with_env(MARKER_ENV, marker)) == 3
        [note] = [n for n in ep.notes if n.startswith("started again")]
        assert f"Frontend (frontend) could not bind port {held_port}, taken by another program" in note
        assert f"127.0.0.1:{held_port}" in note and "already in use" in note
    assert given.count(held_port) == 1 and processes_with_env(MARKER_ENV, marker) == []
    log = (tmp_path / "logs" / "tiny" / "mocker" / "agg" / "Frontend.log").read_text()
    assert log.count("$ ") == 2 and "already in use" in log  # both starts' output kept


@needs_dynamo
def test_a_worker_system_port_taken_starts_again_rather_than_serve_another_programs_metrics(
        tmp_path, monkeypatch, held_port):
    given = _hand_out(monkeypatch, held_port, system=True, times=1)
    target = LocalTarget(python=DYNAMO_PY)
    with target.deploy(load("ok", "tiny/mocker/agg"), tmp_path) as ep:
        [note] = [n for n in ep.notes if n.startswith("started again")]
        assert f"MockerWorker-0 (worker) could not bind port {held_port}" in note and "Address already in use" in note
        urls = [c.metrics_url for c in ep.components if c.role == "worker"]
        assert all(f":{held_port}/" not in u for u in urls)
        for url in urls:  # each worker's own system server answers
            assert "dynamo_component_requests_total" in httpx.get(url, timeout=5).text
    assert given.count(held_port) == 1


@needs_dynamo
def test_a_port_taken_at_every_start_is_a_deploy_error_that_leaves_nothing(tmp_path, monkeypatch, held_port):
    from recipe_harness.deploy.local import PORT_ATTEMPTS

    given = _hand_out(monkeypatch, held_port, system=False, times=99)
    target = LocalTarget(python=DYNAMO_PY)
    with pytest.raises(DeployError) as info, target.deploy(load("ok", "tiny/mocker/agg"), tmp_path):
        pass
    message = str(info.value)
    assert f"Frontend (frontend) could not bind port {held_port}" in message
    assert f"start {PORT_ATTEMPTS} of {PORT_ATTEMPTS}, each on fresh ports" in message
    assert "ip_local_port_range" in message
    assert given.count(held_port) == PORT_ATTEMPTS
    assert list(tmp_path.iterdir()) == []
    assert processes_with_env("DYN_FILE_KV", str(tmp_path), prefix=True) == []


def test_free_ports_stay_below_the_kernels_ephemeral_range():
    from recipe_harness.deploy.procs import ephemeral_ports, free_port

    low, high = ephemeral_ports()
    assert 0 < low <= high
    ports = [free_port() for _ in range(50)]
    if low >= 2048:
        assert all(1024 <= p < low for p in ports), (low, ports)
    assert all(1024 <= free_port(below=4000) < 4000 for _ in range(20))
