"""Engine settings read from each backend's real flags, config files and ConfigMaps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from recipe_harness.load.discovery import discover
from recipe_harness.model.backends import engine_config, frontend_config, router_mode
from recipe_harness.model.bundle import LoadedRecipe


def load(tmp_path: Path, deploy: str, extra: dict[str, str] | None = None) -> LoadedRecipe:
    folder = tmp_path / "m" / "be" / "mode"
    folder.mkdir(parents=True)
    (folder / "deploy.yaml").write_text(textwrap.dedent(deploy).lstrip())
    for name, text in (extra or {}).items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    found = discover(tmp_path)
    assert [r.id for r in found.recipes] == ["m/be/mode"]
    return LoadedRecipe.load(found.recipes[0])


def svc(recipe: LoadedRecipe, name: str):
    dep = recipe.deployment
    assert dep is not None
    service = dep.service(name)
    assert service is not None, name
    return service


def line_of(recipe: LoadedRecipe, needle: str, file: str = "deploy.yaml") -> int:
    path = recipe.recipe.dir / file
    for i, text in enumerate(path.read_text().splitlines(), 1):
        if needle in text:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


VLLM_SCRIPT = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: llama
spec:
  backendFramework: vllm
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
    worker:
      componentType: worker
      resources:
        limits:
          gpu: "4"
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
          env:
            - name: SERVED_MODEL_NAME
              value: "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"
            - name: MODEL_PATH
              value: "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"
          command: [/bin/sh, -c]
          args:
            - "python3 -m dynamo.vllm --model $MODEL_PATH --served-model-name ${SERVED_MODEL_NAME} --tensor-parallel-size 4 --data-parallel-size 1 --gpu-memory-utilization 0.90 --no-enable-prefix-caching --block-size 128"
"""


def test_vllm_shell_script_with_env_expansion(tmp_path: Path) -> None:
    recipe = load(tmp_path, VLLM_SCRIPT)
    cfg = engine_config(recipe, svc(recipe, "worker"))
    assert cfg.backend == "vllm"
    assert cfg.model == "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"
    assert cfg.served_model_name == cfg.model
    assert (cfg.tensor_parallel, cfg.pipeline_parallel, cfg.data_parallel) == (4, 1, 1)
    assert cfg.gpus_needed == 4
    assert cfg.block_size == 128
    assert cfg.disaggregation_mode is None
    assert not cfg.prefix_caching and not cfg.publishes_kv_events
    assert cfg.sources["tensor_parallel"][1] == line_of(recipe, "--tensor-parallel-size 4")


VLLM_DEP16 = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: vllm-dsr1
spec:
  backendFramework: vllm
  services:
    Frontend:
      componentType: frontend
    prefill:
      componentType: worker
      subComponentType: prefill
      multinode:
        nodeCount: 2
      resources:
        limits:
          gpu: "8"
      extraPodSpec:
        mainContainer:
          command:
            - /bin/bash
            - -c
          args:
            - |
              exec python3 -m dynamo.vllm \\
                --model /model-cache/deepseek-r1 \\
                --is-prefill-worker \\
                --served-model-name deepseek-ai/DeepSeek-R1 \\
                --tensor-parallel-size 1 \\
                --data-parallel-size 16 \\
                --data-parallel-size-local 8 \\
                --enable-expert-parallel \\
                --max-model-len 16384 \\
                --max-num-seqs 512 \\
                --kv-events-config '{"publisher":"zmq","enable_kv_cache_events":true}'
    decode:
      componentType: worker
      subComponentType: decode
      resources:
        limits:
          gpu: "8"
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.vllm]
          args: [--model, /model-cache/deepseek-r1, -tp, "8", --disaggregation-mode=decode, --pipeline-parallel-size, "1"]
"""


def test_vllm_data_expert_parallel_multinode(tmp_path: Path) -> None:
    recipe = load(tmp_path, VLLM_DEP16)
    prefill = engine_config(recipe, svc(recipe, "prefill"))
    assert prefill.model == "/model-cache/deepseek-r1"
    assert prefill.served_model_name == "deepseek-ai/DeepSeek-R1"
    assert (prefill.tensor_parallel, prefill.data_parallel, prefill.data_parallel_local) == (1, 16, 8)
    assert prefill.expert_parallel == 16
    assert prefill.gpus_needed == 16 == svc(recipe, "prefill").gpus_per_replica
    assert prefill.disaggregation_mode == "prefill"
    assert prefill.sources["disaggregation_mode"][1] == line_of(recipe, "--is-prefill-worker")
    assert prefill.max_model_len == 16384 and prefill.max_num_seqs == 512
    assert prefill.publishes_kv_events
    decode = engine_config(recipe, svc(recipe, "decode"))
    assert decode.tensor_parallel == 8 and decode.gpus_needed == 8
    assert decode.disaggregation_mode == "decode"
    assert not decode.publishes_kv_events  # decode workers never publish


SGLANG = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: sgl-dsr1
spec:
  backendFramework: sglang
  services:
    Frontend:
      componentType: frontend
    decode:
      componentType: worker
      multinode:
        nodeCount: 2
      resources:
        limits:
          gpu: "8"
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.sglang]
          args:
            - --model-path
            - /model-cache/deepseek-r1
            - --served-model-name
            - deepseek-ai/DeepSeek-R1
            - --tp
            - "16"
            - --dp
            - "16"
            - --enable-dp-attention
            - --ep-size
            - "16"
            - --disaggregation-mode
            - decode
            - --page-size
            - "64"
            - --context-length
            - "32768"
            - --max-running-requests
            - "1024"
    prefill:
      componentType: worker
      resources:
        limits:
          gpu: "8"
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.sglang]
          args:
            - --model-path
            - /model-cache/deepseek-r1
            - --tp-size
            - "4"
            - --dp-size
            - "2"
            - --disaggregation-mode
            - prefill
            - --kv-events-config
            - '{"publisher":"zmq","topic":"kv-events","endpoint":"tcp://*:5557"}'
"""


def test_sglang_dp_attention_and_plain_dp(tmp_path: Path) -> None:
    recipe = load(tmp_path, SGLANG)
    decode = engine_config(recipe, svc(recipe, "decode"))
    assert decode.backend == "sglang"
    assert (decode.tensor_parallel, decode.data_parallel, decode.expert_parallel) == (16, 16, 16)
    assert decode.attention_dp
    assert decode.gpus_needed == 16 == svc(recipe, "decode").gpus_per_replica
    assert decode.disaggregation_mode == "decode"
    assert (decode.block_size, decode.max_model_len, decode.max_num_seqs) == (64, 32768, 1024)
    assert not decode.publishes_kv_events
    prefill = engine_config(recipe, svc(recipe, "prefill"))
    # without DP attention SGLang runs dp copies of the TP group
    assert prefill.gpus_needed == 8
    assert prefill.disaggregation_mode == "prefill"
    assert prefill.publishes_kv_events
    assert prefill.served_name == "/model-cache/deepseek-r1"


TRTLLM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: decode-config
data:
  decode_config_dep32.yaml: |
    tensor_parallel_size: 32
    moe_expert_parallel_size: 32
    enable_attention_dp: true
    pipeline_parallel_size: 1
    max_batch_size: 32
    max_num_tokens: 32
    max_seq_len: 2251
    kv_cache_config:
      enable_block_reuse: false
      free_gpu_memory_fraction: 0.7
      tokens_per_block: 64
---
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: trtllm-disagg
spec:
  backendFramework: trtllm
  services:
    Frontend:
      componentType: frontend
    decode:
      componentType: worker
      subComponentType: decode
      multinode:
        nodeCount: 8
      resources:
        limits:
          gpu: "4"
      extraPodSpec:
        mainContainer:
          volumeMounts:
            - name: decode-config-volume
              mountPath: /config
          command: [/bin/sh, -c]
          args:
            - >-
              python3 -m dynamo.trtllm
              --model-path /model-cache/deepseek-r1-fp4
              --served-model-name deepseek-ai/DeepSeek-R1
              --extra-engine-args /config/decode_config_dep32.yaml
              --disaggregation-mode decode
        volumes:
          - name: decode-config-volume
            configMap:
              name: decode-config
    prefill:
      componentType: worker
      subComponentType: prefill
      resources:
        limits:
          gpu: "4"
      extraPodSpec:
        mainContainer:
          volumeMounts:
            - name: cfg
              mountPath: /engine/prefill.yaml
              subPath: prefill.yaml
          command: [python3, -m, dynamo.trtllm]
          args:
            - --model
            - /model-cache/deepseek-r1-fp4
            - --served-model-name
            - deepseek-ai/DeepSeek-R1
            - --tensor-parallel-size
            - "2"
            - --extra-engine-args
            - /engine/prefill.yaml
            - --disaggregation-mode
            - prefill
            - --publish-events-and-metrics
        volumes:
          - name: cfg
            configMap:
              name: prefill-config
"""

TRTLLM_PREFILL_CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: prefill-config
data:
  prefill.yaml: |
    tensor_parallel_size: 4
    moe_expert_parallel_size: 4
    max_seq_len: 8192
"""


def test_trtllm_engine_config_from_mounted_configmaps(tmp_path: Path) -> None:
    recipe = load(tmp_path, TRTLLM, {"prefill-config.yaml": TRTLLM_PREFILL_CM})
    decode = engine_config(recipe, svc(recipe, "decode"))
    assert decode.backend == "trtllm"
    assert decode.model == "/model-cache/deepseek-r1-fp4"
    assert (decode.tensor_parallel, decode.expert_parallel, decode.pipeline_parallel) == (32, 32, 1)
    assert decode.attention_dp and decode.data_parallel == 32
    assert decode.gpus_needed == 32 == svc(recipe, "decode").gpus_per_replica
    assert (decode.max_model_len, decode.max_num_seqs, decode.block_size) == (2251, 32, 64)
    assert decode.disaggregation_mode == "decode"
    assert not decode.prefix_caching
    file, line, _ = decode.sources["tensor_parallel"]
    assert file.endswith("deploy.yaml") and line == line_of(recipe, "tensor_parallel_size: 32")
    assert decode.problems == []
    prefill = engine_config(recipe, svc(recipe, "prefill"))
    # the YAML engine config overrides --tensor-parallel-size, as in dynamo.trtllm
    assert prefill.tensor_parallel == 4 and prefill.gpus_needed == 4
    assert prefill.sources["tensor_parallel"][0].endswith("prefill-config.yaml")
    assert prefill.max_model_len == 8192
    assert prefill.publishes_kv_events


def test_trtllm_missing_configmap_is_a_problem(tmp_path: Path) -> None:
    recipe = load(tmp_path, TRTLLM)  # prefill-config.yaml not written
    prefill = engine_config(recipe, svc(recipe, "prefill"))
    assert prefill.tensor_parallel == 2  # only the flag is known
    assert len(prefill.problems) == 1
    message, (_, line, _) = prefill.problems[0]
    assert "prefill-config" in message and "not in the recipe" in message
    assert line == line_of(recipe, "- --extra-engine-args")


MOCKER = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: mock
spec:
  services:
    Frontend:
      componentType: frontend
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.frontend, --router-mode, kv, --http-port, "8080", --no-router-kv-events]
    worker:
      componentType: worker
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.mocker]
          args: [--model-path, Qwen/Qwen3-0.6B, --model-name, qwen, --block-size, "16", --max-model-len, "4096",
                 --max-num-seqs, "64", --data-parallel-size, "2", --disaggregation-mode, prefill]
"""


def test_mocker_and_frontend(tmp_path: Path) -> None:
    recipe = load(tmp_path, MOCKER)
    cfg = engine_config(recipe, svc(recipe, "worker"))
    assert cfg.backend == "mocker"
    assert (cfg.model, cfg.served_model_name) == ("Qwen/Qwen3-0.6B", "qwen")
    assert (cfg.block_size, cfg.max_model_len, cfg.max_num_seqs, cfg.data_parallel) == (16, 4096, 64, 2)
    assert cfg.gpus_needed == 0
    assert cfg.disaggregation_mode == "prefill" and cfg.publishes_kv_events
    front = svc(recipe, "Frontend")
    assert router_mode(recipe, front) == "kv"
    fc = frontend_config(recipe, front)
    assert fc.http_port == 8080 and fc.router_kv_events is False


@pytest.mark.parametrize(
    ("frontend", "expected"),
    [
        ("      extraPodSpec:\n        mainContainer:\n          image: x:1\n", "round-robin"),
        ("      envs:\n        - name: DYN_ROUTER_MODE\n          value: kv\n", "kv"),
        ("      extraPodSpec:\n        mainContainer:\n          args: [--router-mode=random]\n", "random"),
    ],
)
def test_router_mode_sources(tmp_path: Path, frontend: str, expected: str) -> None:
    deploy = ("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: d\n"
              "spec:\n  services:\n    Frontend:\n      componentType: frontend\n" + frontend)
    recipe = load(tmp_path, deploy)
    assert router_mode(recipe, svc(recipe, "Frontend")) == expected


CONFIG_FILES = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: engine
data:
  vllm.yaml: |
    tensor-parallel-size: 2
    max_model_len: 32768
  sglang.yaml: |
    tp-size: 4
    context-length: 16384
---
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: cfg
spec:
  services:
    Frontend:
      componentType: frontend
    vllm:
      componentType: worker
      resources:
        limits:
          gpu: "2"
      extraPodSpec:
        volumes:
          - name: cfg
            configMap:
              name: engine
              items:
                - key: vllm.yaml
                  path: engine.yaml
        mainContainer:
          volumeMounts:
            - name: cfg
              mountPath: /etc/engine
          command: [python3, -m, dynamo.vllm]
          args: [Qwen/Qwen3-8B, --config, /etc/engine/engine.yaml, --max-model-len, "8192"]
    sglang:
      componentType: worker
      resources:
        limits:
          gpu: "4"
      extraPodSpec:
        volumes:
          - name: cfg
            configMap:
              name: engine
        mainContainer:
          volumeMounts:
            - name: cfg
              mountPath: /etc/engine
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-8B, --config, /etc/engine/sglang.yaml]
    trtllm:
      componentType: worker
      extraPodSpec:
        mainContainer:
          command: [python3, -m, dynamo.trtllm]
          args: [--model, Qwen/Qwen3-8B, --tensor-parallel-size, "2",
                 --override-engine-args, '{"tensor_parallel_size": 8, "max_seq_len": 4096}',
                 --trtllm.max_batch_size, "96", --publish-kv-events]
"""


def test_engine_config_files_flags_override_and_positional_model(tmp_path: Path) -> None:
    recipe = load(tmp_path, CONFIG_FILES)
    vllm = engine_config(recipe, svc(recipe, "vllm"))
    assert vllm.model == "Qwen/Qwen3-8B"  # positional, as `vllm serve MODEL`
    assert vllm.tensor_parallel == 2 and vllm.gpus_needed == 2  # from the --config file (ConfigMap item path)
    assert vllm.max_model_len == 8192  # the command line overrides the config file in vLLM
    assert vllm.sources["tensor_parallel"][1] == line_of(recipe, "tensor-parallel-size: 2")
    sglang = engine_config(recipe, svc(recipe, "sglang"))
    assert (sglang.tensor_parallel, sglang.max_model_len) == (4, 16384)
    trtllm = engine_config(recipe, svc(recipe, "trtllm"))
    # --override-engine-args and --trtllm.* are applied over the flags, as dynamo.trtllm does
    assert (trtllm.tensor_parallel, trtllm.max_model_len, trtllm.max_num_seqs) == (8, 4096, 96)
    assert trtllm.publishes_kv_events
    assert [p for s in ("vllm", "sglang", "trtllm") for p in engine_config(recipe, svc(recipe, s)).problems] == []


def test_frontend_port_from_env_and_load_aware(tmp_path: Path) -> None:
    deploy = """
    apiVersion: nvidia.com/v1alpha1
    kind: DynamoGraphDeployment
    metadata:
      name: d
    spec:
      services:
        Frontend:
          componentType: frontend
          envs:
            - name: DYN_HTTP_PORT
              value: "9000"
          extraPodSpec:
            mainContainer:
              command: [python3, -m, dynamo.frontend]
              args: [--load-aware]
    """
    recipe = load(tmp_path, textwrap.dedent(deploy))
    fc = frontend_config(recipe, svc(recipe, "Frontend"))
    assert (fc.http_port, fc.router_mode, fc.router_kv_events) == (9000, "kv", False)


OPTION_CLUSTER = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: tiny
spec:
  backendFramework: vllm
  services:
    worker:
      componentType: worker
      envs:
        - {name: TP, value: "2"}
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1
          command: [/bin/bash, -euo, pipefail, -c]
          args:
            - |
              case "${ROLE:-agg}" in
                agg) exec python3 -m dynamo.vllm --model Qwen/Qwen3-4B --tensor-parallel-size "$TP" \\
                       --max-num-seqs $((2 * 32)) --block-size 4 ;;
              esac
"""


def test_a_script_after_an_option_cluster_inside_a_case_arm(tmp_path: Path):
    recipe = load(tmp_path, OPTION_CLUSTER)
    cfg = engine_config(recipe, svc(recipe, "worker"))
    assert (cfg.backend, cfg.model, cfg.tensor_parallel, cfg.max_num_seqs, cfg.block_size) == \
        ("vllm", "Qwen/Qwen3-4B", 2, 64, 4)
    text = (recipe.recipe.dir / "deploy.yaml").read_text()
    at = text.index("--tensor-parallel-size")
    assert cfg.sources["tensor_parallel"][1:] == (text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
    assert svc(recipe, "worker").flag("--block-size") == "4"
