"""Reading a recipe's aiperf invocation from its perf manifest, scaling it, and aiperf's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfileError, profile_from_documents, scale_points
from recipe_harness.exercise.perf.runner import RunTarget, build_argv
from recipe_harness.load.manifests import load_file
from recipe_harness.model import shell

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "fixtures" / "perf" / "manifests"
BROKEN = ROOT / "fixtures" / "perf" / "broken"
RECIPE_PERF = sorted((ROOT / "recipes").glob("**/perf.yaml"))


def profile_of(path: Path):
    return profile_from_documents(load_file(path).documents, str(path))


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def test_function_called_with_environment_arithmetic():
    path = MANIFESTS / "function-env.yaml"
    p = profile_of(path)
    # TOTAL_CONCURRENCY=$((16 * 4)); --request-count $((10*concurrency)); the here-document is not a command
    assert p.points == [PerfPoint(concurrency=64, request_count=640, warmup_request_count=64,
                                  line=line_of(path, "aiperf profile --artifact-dir"))]
    assert (p.isl, p.isl_stddev, p.osl, p.osl_stddev) == (8192, 0, 1024, 0)
    assert p.streaming and p.endpoint_type == "chat" and p.endpoint_path == "/v1/chat/completions"
    assert p.model == "org/model-70b"
    assert p.tokenizer == "/model-cache/hub/models--org--model/snapshots/0123abcd"
    assert p.extra_inputs == ["max_tokens:1024", "min_tokens:1024", "ignore_eos:true", '{"nvext":{"ignore_eos":true}}']
    assert p.headers == ["Authorization: Bearer NOT USED", "Accept: text/event-stream"]
    assert (p.num_dataset_entries, p.random_seed) == (12800, 100)
    assert p.ignored == []      # --workers-max, --record-processors, --ui are the harness's to set
    assert p.trace_replay is None


def test_tmux_string_with_trace_replay():
    path = MANIFESTS / "tmux-trace.yaml"
    p = profile_of(path)
    assert p.line == line_of(path, "tmux send-keys")
    assert p.model == "Org/Model-32B"
    assert p.goodput == {"time_to_first_token": 1000.0, "inter_token_latency": 30.0}
    assert p.input_file == "/perf-cache/traces/conversation_trace.jsonl"
    assert "conversation_trace.jsonl" in p.trace_replay and "mooncake_trace" in p.trace_replay


def test_warmup_run_and_goodput_from_environment():
    path = MANIFESTS / "warmup-then-main.yaml"
    p = profile_of(path)
    assert p.warmup_invocations == 1
    # the separate warm-up run (10 requests) becomes warm-up requests of the measured point
    assert p.points == [PerfPoint(concurrency=32, request_count=320, warmup_request_count=10,
                                  line=line_of(path, "aiperf profile") + 9)]
    assert p.goodput == {"time_to_first_token": 2000.0, "inter_token_latency": 50.0}
    assert p.passthrough == ["--use-server-token-count"]
    assert "--tokenizer-trust-remote-code" not in p.passthrough + p.ignored
    assert any("warm-up" in n for n in p.notes)


def test_direct_command_with_kubernetes_variable_expansion():
    p = profile_of(MANIFESTS / "direct-args.yaml")
    assert p.model == "org/small-model"
    assert p.endpoint_type == "chat"        # --endpoint-type=chat
    assert p.points == [PerfPoint(concurrency=8, request_count=200, warmup_request_count=8, line=13)]
    assert p.ignored == ["--some-future-option 7"]


def test_mounted_configmap_script_loop():
    path = MANIFESTS / "configmap-script.yaml"
    p = profile_of(path)
    assert [(q.concurrency, q.request_count, q.warmup_request_count) for q in p.points] == [
        (1, 8, 1), (4, 32, 4), (16, 128, 16), (64, 512, 64)]
    assert p.line == line_of(path, "aiperf profile")


@pytest.mark.parametrize("name, message, needle", [
    ("no-invocation.yaml", "no `aiperf profile` invocation", None),
    ("unresolved.yaml", "--concurrency", "aiperf profile"),
    ("config-file.yaml", "config file", "aiperf profile --config"),
    ("syntax-error.yaml", "unterminated double quote", 'echo "start'),
])
def test_unusable_manifests_say_why_and_where(name, message, needle):
    path = BROKEN / name
    with pytest.raises(PerfProfileError) as exc:
        profile_of(path)
    assert message in exc.value.message
    assert exc.value.file == str(path)
    if needle:
        assert exc.value.line == line_of(path, needle)


def test_no_documents():
    with pytest.raises(PerfProfileError, match="no perf manifest"):
        profile_from_documents([], "x")


@pytest.mark.skipif(not RECIPE_PERF, reason="no recipes/**/perf.yaml in this checkout")
@pytest.mark.parametrize("path", RECIPE_PERF, ids=lambda p: str(p.relative_to(ROOT / "recipes").parent))
def test_every_recipe_perf_manifest_is_readable(path):
    p = profile_of(path)
    assert p.points, "a sweep"
    assert p.streaming and p.isl and p.osl
    assert p.trace_replay is None
    concurrencies = p.concurrencies
    assert concurrencies == sorted(concurrencies) and len(set(concurrencies)) == len(concurrencies)
    assert all(q.request_count and q.request_count >= q.concurrency for q in p.points)


# --------------------------------------------------------------------------- shell reading


def test_shell_expansions_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    script = f"""
        BASE=${{ROOT:-/default}}/x
        NAME=${{MODEL##*/}}
        FRONT=${{SVC%-frontend}}
        STAMP=$(touch {marker}; date +%s)
        for c in 2 4; do
          aiperf profile --model "$NAME" --url http://$FRONT --concurrency $c \\
            --request-count $(( (c + 1) * 3 )) --artifact-dir "$BASE/$STAMP/c$c"
        done
        while true; do aiperf profile --concurrency 9; done
    """
    found = shell.find_invocations(script, {"MODEL": "org/m-7b", "SVC": "llm-frontend"})
    assert [inv.args[:6] for inv in found[:2]] == [
        ["--model", "m-7b", "--url", "http://llm", "--concurrency", "2"],
        ["--model", "m-7b", "--url", "http://llm", "--concurrency", "4"]]
    assert [inv.args[7] for inv in found[:2]] == ["9", "15"]
    assert found[0].args[9].startswith("/default/x/") and not shell.is_resolved(found[0].args[9])
    assert found[0].bindings == {"c": "2"} and found[0].context == ("for c in 2 4",)
    assert found[2].args == ["--concurrency", "9"]          # a while body is read once
    assert not marker.exists(), "command substitutions must never run"


def test_shell_arithmetic_is_integer_only():
    look = {"A": "6", "B": "4", "S": "x"}.get
    assert shell.arithmetic("A * B + 1", look) == 25
    assert shell.arithmetic("$A / B", look) == 1
    assert shell.arithmetic("A / 0", look) is None
    assert shell.arithmetic("S + 1", look) is None
    assert shell.arithmetic("__import__('os')", look) is None


def test_shell_budget_stops_runaway_scripts():
    nested = "f() { f; f; }\nf\n"
    assert shell.find_invocations(nested, {}) == []      # recursion is bounded by depth
    loops = "for a in " + " ".join(["1"] * 200) + "; do for b in " + " ".join(["1"] * 200) + "; do echo $a$b; done; done"
    with pytest.raises(shell.ShellSyntaxError, match="budget"):
        shell.find_invocations(loops, {})


# --------------------------------------------------------------------------- scaling and argv


def test_scaling_keeps_the_sweep_shape_under_a_concurrency_cap():
    points = [PerfPoint(concurrency=c, request_count=640, warmup_request_count=64) for c in (16, 32, 64)]
    run, scaling = scale_points(points, 0.05, max_concurrency=8)
    assert [(p.concurrency, p.request_count, p.warmup_request_count) for p in run] == [(2, 4, 1), (4, 4, 1), (8, 8, 1)]
    assert scaling.scaled and scaling.concurrency_factor == 0.125
    text = scaling.describe(run)
    assert "x0.05" in text and "c16 x640" in text and "c8 x8" in text


def test_scaling_collapses_equal_points_and_is_identity_at_one():
    points = [PerfPoint(concurrency=c, request_count=10 * c) for c in (1, 4, 16, 64)]
    run, _ = scale_points(points, 0.05, max_concurrency=8)
    assert [p.concurrency for p in run] == [1, 2, 8]
    same, scaling = scale_points(points, 1.0, max_concurrency=None)
    assert not scaling.scaled
    assert [(p.concurrency, p.request_count) for p in same] == [(1, 10), (4, 40), (16, 160), (64, 640)]
    defaulted, _ = scale_points([PerfPoint(concurrency=3)], 1.0)
    assert defaulted[0].request_count == 10         # aiperf's default: max(10, 2 x concurrency)


def test_argv_keeps_the_workload_and_replaces_the_environment(tmp_path):
    p = profile_of(MANIFESTS / "warmup-then-main.yaml")
    run, scaling = scale_points(p.points, 0.05, max_concurrency=8)
    target = RunTarget(url="http://127.0.0.1:9", model="served", tokenizer="/tok", local=True, timeout_s=60)
    argv = build_argv("/bin/aiperf", p, run[0], target, tmp_path / "a", goodput={"time_to_first_token": 500.0},
                      scaled=scaling.scaled)
    text = " ".join(argv)
    assert argv[:2] == ["/bin/aiperf", "profile"]
    for part in ("--model served", "--url http://127.0.0.1:9", "--tokenizer /tok", "--streaming",
                 "--synthetic-input-tokens-mean 2000", "--output-tokens-mean 200", "--concurrency 8",
                 "--request-count 8", "--warmup-request-count 1", "--goodput time_to_first_token:500",
                 "--extra-inputs ignore_eos:true", "--use-server-token-count", "--ui none",
                 "--no-gpu-telemetry", "--request-timeout-seconds 60", f"--artifact-dir {tmp_path / 'a'}"):
        assert part in text, part
    assert "trust-remote-code" not in text and "dashboard" not in text and "org/model-fp4" not in text


def test_argv_caps_dataset_entries_only_when_scaled(tmp_path):
    p = profile_of(MANIFESTS / "function-env.yaml")
    target = RunTarget(url="http://x", model="m", tokenizer="t", local=False)
    scaled, _ = scale_points(p.points, 0.05, 8)
    argv = build_argv("aiperf", p, scaled[0], target, tmp_path, scaled=True)
    assert argv[argv.index("--num-dataset-entries") + 1] == "9"       # 8 requests + 1 warm-up
    full, _ = scale_points(p.points, 1.0)
    argv = build_argv("aiperf", p, full[0], target, tmp_path, scaled=False)
    assert argv[argv.index("--num-dataset-entries") + 1] == "12800"
    assert "--no-gpu-telemetry" not in argv


def test_trace_replay_request_count_computed_from_the_trace_is_unknown_not_an_error(tmp_path):
    manifest = tmp_path / "perf.yaml"
    manifest.write_text("""\
apiVersion: batch/v1
kind: Job
metadata: {name: replay}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: perf
          image: python:3.12-slim
          command: [bash, -c]
          args:
            - |
              TRACE_FILE=/data/trace.jsonl
              aiperf profile -m org/model --url http://x-frontend:8000 --input-file "${TRACE_FILE}" \\
                --custom-dataset-type mooncake_trace --fixed-schedule --request-count $(wc -l < "${TRACE_FILE}")
""")
    prof = profile_from_documents(load_file(manifest).documents, str(manifest))
    assert prof.trace_replay and "/data/trace.jsonl" in prof.trace_replay
    assert [p.request_count for p in prof.points] == [None]
    # without a trace, the same unknown count is an error that says why
    manifest.write_text(manifest.read_text().replace('--input-file "${TRACE_FILE}" \\\n', "").replace(
        "--custom-dataset-type mooncake_trace --fixed-schedule ", ""))
    with pytest.raises(PerfProfileError, match="cannot be resolved without running the script"):
        profile_from_documents(load_file(manifest).documents, str(manifest))
