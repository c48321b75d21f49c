"""The mocker's command line, written once for both twins.

A twin replaces each GPU engine worker of a recipe by ``python3 -m dynamo.mocker`` (the Dynamo
CPU engine simulator): :func:`mocker_args` writes one worker's mocker arguments for the local twin
(:mod:`recipe_harness.deploy.twin`, processes on this machine) and for the Kubernetes twin
(:mod:`recipe_harness.deploy.kubernetes.twin`, a rewritten DGD). What the two pass differently
is a parameter of it, nothing else:

- ``model_path``: the local twin gives the tiny tokenizer folder when it starts a process
  (``None`` here), the Kubernetes twin the recipe's model (the pod fetches its tokenizer);
- ``model_name``: the local twin's one frontend serves one name (the twin-wide name its plan
  chose and noted), the Kubernetes twin keeps each worker's own served name, as the recipe runs;
- ``data_parallel_cap``: DP ranks per mocker process this machine runs
  (:attr:`recipe_harness.deploy.twin.Caps.data_parallel`); a cluster twin runs every rank;
- ``release``: the Dynamo release whose mocker runs -- the local twin runs the installed one
  (:data:`DEFAULT_DYNAMO_VERSION`), the Kubernetes twin the one of its image. Only flags that
  release declares (:data:`MOCKER_FLAGS`) are written; a setting it cannot take is left out and
  noted, a worker role it cannot take is a :class:`DeployError`.

The arguments, in order: ``--model-path``, ``--model-name``, the worker role, ``--engine-type``
(the backend simulated), ``--data-parallel-size`` (every backend's DP, read by
:func:`recipe_harness.model.backends.engine_config`), ``--block-size``, ``--max-model-len``,
``--max-num-seqs``, prefix caching (always explicit: its default is the mocker's, not the
engine's), a mocker recipe's own tuning flags, and ``--speedup-ratio`` (a mocker recipe's own
wins over the twin's).
"""

from __future__ import annotations

import re

from recipe_harness.endpoint import DeployError
from recipe_harness.model import ROLE_DECODE, ROLE_PREFILL, Service, flag_value
from recipe_harness.model.backends import EngineConfig

DEFAULT_DYNAMO_VERSION = "1.6.1"
"""The Dynamo release the harness ships (``.venv-dynamo``) and whose mocker parser its tests run."""

# Engines the mocker simulates (``--engine-type``), each with a flag of its own simulation that
# appeared in the same release: a release without that flag cannot take the engine type.
MOCKER_ENGINES = {"vllm": "--engine-type", "sglang": "--sglang-schedule-policy",
                  "trtllm": "--trtllm-capacity-scheduler-policy"}
# Mocker tuning flags a mocker recipe keeps in its twin (valued, then boolean); prefix caching is
# written from the engine's setting.
MOCKER_VALUE_FLAGS = ("--num-gpu-blocks-override", "--max-num-batched-tokens", "--speedup-ratio",
                      "--decode-speedup-ratio", "--preemption-mode", "--engine-type", "--kv-transfer-bandwidth",
                      "--kv-cache-dtype", "--kv-bytes-per-token", "--reasoning")
MOCKER_BOOL_FLAGS = ("--enable-chunked-prefill", "--no-enable-chunked-prefill")


# What ``python3 -m dynamo.mocker`` declares (``parser.add_argument``) in each ``ai-dynamo``
# release: ``components/src/dynamo/mocker/args.py`` of the release (``main.py`` in 0.6.0),
# read from the release's wheel (ai-dynamo==X.Y.Z on PyPI, the wheel the release's images
# install). Each row: the release, the flags it added, the flags it dropped. From 1.5.0 the
# parser also takes the router flags of ``dynamo.common.configuration.groups.router_args``
# (``add_worker_router_arguments``); the twin emits none of them and the table leaves them out.
_MOCKER_FLAG_CHANGES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # 0.6.0 main.py: vLLM-style engine flags, no worker roles
    ("0.6.0", ("--model-path", "--endpoint", "--model-name", "--num-gpu-blocks-override", "--block-size",
               "--max-num-seqs", "--max-num-batched-tokens", "--enable-prefix-caching", "--no-enable-prefix-caching",
               "--enable-chunked-prefill", "--no-enable-chunked-prefill", "--watermark", "--speedup-ratio",
               "--data-parallel-size", "--startup-time", "--extra-engine-args"), ()),
    # 0.6.1 args.py (ai-dynamo/dynamo#3847, "restructure mocker cli args handling, to include prefill/decode")
    ("0.6.1", ("--is-prefill-worker", "--is-decode-worker"), ()),
    ("0.7.0", ("--num-workers", "--store-kv"), ()),
    ("0.8.0", ("--planner-profile-data", "--enable-local-indexer", "--bootstrap-ports", "--request-plane"), ()),
    # 1.0.0: --disaggregation-mode {agg,prefill,decode}; --is-prefill-worker/--is-decode-worker stay, deprecated
    ("1.0.0", ("--disaggregation-mode", "--reasoning", "--durable-kv-events", "--zmq-kv-events-ports",
               "--kv-transfer-bandwidth", "--kv-cache-dtype", "--kv-bytes-per-token", "--stagger-delay",
               "--discovery-backend"), ("--enable-local-indexer", "--store-kv")),
    ("1.1.0", ("--preemption-mode", "--decode-speedup-ratio", "--aic-perf-model", "--aic-system",
               "--aic-backend-version", "--aic-tp-size", "--aic-moe-tp-size", "--aic-moe-ep-size",
               "--aic-attention-dp-size", "--engine-type", "--sglang-schedule-policy", "--sglang-page-size",
               "--sglang-max-prefill-tokens", "--sglang-chunked-prefill-size", "--sglang-clip-max-new-tokens",
               "--sglang-schedule-conservativeness", "--zmq-replay-ports", "--event-plane"), ("--watermark",)),
    ("1.2.0", ("--aic-backend",), ()),
    ("1.3.0", ("--gpu-memory-utilization", "--mem-fraction-static", "--free-gpu-memory-fraction", "--aic-nextn",
               "--aic-nextn-accept-rates", "--aic-mtp-seed", "--response-replay-trace-path",
               "--trtllm-capacity-scheduler-policy", "--kv-transfer-timing-mode", "--num-g2-blocks", "--num-g3-blocks",
               "--enable-g4-storage", "--offload-batch-size", "--bandwidth-g1-to-g2-gbps", "--bandwidth-g2-to-g1-gbps",
               "--bandwidth-g2-to-g3-gbps", "--bandwidth-g3-to-g2-gbps", "--bandwidth-g2-to-g4-gbps",
               "--bandwidth-g4-to-g2-gbps"), ()),
    # 1.4.0: --max-model-len, "Maximum vLLM sequence length" (ai-dynamo/dynamo#11069)
    ("1.4.0", ("--max-model-len", "--g1-backend"), ("--durable-kv-events",)),
    ("1.5.0", (), ("--g1-backend", "--num-g2-blocks", "--num-g3-blocks", "--enable-g4-storage", "--offload-batch-size",
                   "--bandwidth-g1-to-g2-gbps", "--bandwidth-g2-to-g1-gbps", "--bandwidth-g2-to-g3-gbps",
                   "--bandwidth-g3-to-g2-gbps", "--bandwidth-g2-to-g4-gbps", "--bandwidth-g4-to-g2-gbps")),
    ("1.6.0", ("--ais-perf-model", "--ais-system", "--ais-backend", "--ais-backend-version", "--ais-tp-size",
               "--ais-moe-tp-size", "--ais-moe-ep-size", "--ais-attention-dp-size", "--ais-nextn",
               "--ais-nextn-accept-rates", "--ais-mtp-seed", "--ais-perf-config", "--sglang-generate",
               "--num-host-blocks", "--host-offload-d2h-bandwidth-gbps", "--host-offload-h2d-bandwidth-gbps",
               "--response-plane"), ()),
)
# Releases read and found to declare exactly the flags of the row before them (post releases
# such as 1.2.0.post1 are their base release: images are tagged X.Y.Z).
_MOCKER_SAME_AS_BEFORE = ("0.7.1", "0.8.1", "0.9.0", "0.9.1", "1.0.2", "1.1.1", "1.2.1", "1.3.1", "1.4.1", "1.4.2",
                          "1.5.1", "1.6.1")

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def version_text(v: Version) -> str:
    return ".".join(map(str, v))


def _build_mocker_flags() -> dict[Version, frozenset[str]]:
    table: dict[Version, frozenset[str]] = {}
    flags: set[str] = set()
    for version, added, dropped in _MOCKER_FLAG_CHANGES:
        v = parse_version(version)
        assert v is not None
        flags = (flags | set(added)) - set(dropped)
        table[v] = frozenset(flags)
    for version in _MOCKER_SAME_AS_BEFORE:
        v = parse_version(version)
        assert v is not None
        table[v] = table[max(k for k in table if k < v)]
    return dict(sorted(table.items()))


MOCKER_FLAGS: dict[Version, frozenset[str]] = _build_mocker_flags()
"""Flags ``python3 -m dynamo.mocker`` accepts, per Dynamo release read (see ``_MOCKER_FLAG_CHANGES``)."""


def release_flags(release: str) -> frozenset[str]:
    """The flags of ``release``, a release :data:`MOCKER_FLAGS` lists."""
    v = parse_version(release)
    if v is None or v not in MOCKER_FLAGS:
        raise ValueError(f"Dynamo {release}: not a release of the mocker flag table "
                         f"(recipe_harness/deploy/mocker.py MOCKER_FLAGS)")
    return MOCKER_FLAGS[v]


def disaggregation_mode(role: str, cfg: EngineConfig) -> str | None:
    """``prefill`` or ``decode`` when a worker running in ``role`` (see
    :func:`recipe_harness.deploy.twin.run_role`) is one; else its engine's own
    ``--disaggregation-mode``, if prefill or decode; else ``None`` (aggregated)."""
    if role in (ROLE_PREFILL, ROLE_DECODE):
        return role
    return cfg.disaggregation_mode if cfg.disaggregation_mode in (ROLE_PREFILL, ROLE_DECODE) else None


def data_parallel(service: Service, cfg: EngineConfig, cap: int | None, notes: list[str]) -> int:
    """DP ranks of one mocker process standing in for one replica of ``service`` (noted; and when
    ``cap`` lowers them)."""
    dp = max(1, cfg.data_parallel)
    runs = dp if cap is None else min(dp, cap)
    if dp > 1:
        how = {"vllm": "data parallel", "sglang": "DP attention" if cfg.attention_dp else "data parallel",
               "trtllm": "attention DP over the TP ranks"}.get(cfg.backend, "data parallel")
        notes.append(f"{service.name}: {cfg.backend} {how}, {dp} ranks -> one mocker instance with "
                     f"--data-parallel-size {runs}")
    if runs < dp:
        notes.append(f"{service.name}: data parallel {dp} -> {runs} ranks per mocker (cap)")
    return runs


# What an engine needs to publish KV events (Dynamo 1.6.1: components/src/dynamo/vllm/args.py
# create_kv_events_config returns None without a user --kv-events-config; sglang/args.py derives
# use_kv_events from --kv-events-config; trtllm/backend_args.py --publish-kv-events defaults False).
KV_EVENTS_NEED = {"vllm": "--kv-events-config with enable_kv_cache_events", "sglang": "--kv-events-config",
                  "trtllm": "--publish-kv-events"}


def mocker_args(recipe_id: str, service: Service, cfg: EngineConfig, role: str, *, model_name: str,
                notes: list[str], model_path: str | None = None, speedup_ratio: float | None = None,
                data_parallel_cap: int | None = None, release: str = DEFAULT_DYNAMO_VERSION,
                kv_events_routed: bool = False) -> list[str]:
    """The mocker's arguments for one worker of ``service`` (engine ``cfg``) running in ``role``;
    the parameters are described in the module docstring. Notes what the release cannot simulate.

    ``kv_events_routed``: the frontend routes by the KV events workers publish. The mocker publishes
    KV events whenever it caches prefixes, an engine only when configured to; an engine that caches
    prefixes but publishes nothing cannot be matched in both, and under a KV-event router the events
    decide (what the router sees), so its twin runs without prefix caching and publishes none."""
    flags = release_flags(release)
    args = ["--model-path", model_path] if model_path else []
    args += ["--model-name", model_name]
    mode = disaggregation_mode(role, cfg)
    if mode is not None:
        if "--disaggregation-mode" in flags:            # 1.0.0 on
            args += ["--disaggregation-mode", mode]
        elif f"--is-{mode}-worker" in flags:             # 0.6.1 to 0.9.x
            args.append(f"--is-{mode}-worker")
        else:
            raise DeployError(f"{recipe_id}: {service.name} runs as a {mode} worker, but the mocker of Dynamo "
                              f"{release} takes no worker role; give --twin-image of Dynamo >= 0.6.1")
    if cfg.backend in MOCKER_ENGINES:
        if MOCKER_ENGINES[cfg.backend] in flags and "--engine-type" in flags:
            args += ["--engine-type", cfg.backend]
        elif cfg.backend != "vllm":
            notes.append(f"{service.name}: {cfg.backend} simulated as vLLM (the mocker of Dynamo {release} "
                         f"has no {cfg.backend} engine type)")
    dp = data_parallel(service, cfg, data_parallel_cap, notes)
    if dp > 1:
        args += ["--data-parallel-size", str(dp)]
    if cfg.block_size:
        args += ["--block-size", str(cfg.block_size)]
    if cfg.max_model_len:
        if "--max-model-len" in flags:
            args += ["--max-model-len", str(cfg.max_model_len)]
        else:
            notes.append(f"{service.name}: max model length {cfg.max_model_len} not simulated "
                         f"(the mocker of Dynamo {release} has no --max-model-len)")
    if cfg.max_num_seqs:
        args += ["--max-num-seqs", str(cfg.max_num_seqs)]
    caching = cfg.prefix_caching
    if caching and kv_events_routed and mode != "decode" and cfg.backend in KV_EVENTS_NEED \
            and not cfg.publishes_kv_events:
        caching = False
        notes.append(f"{service.name}: {cfg.backend} publishes no KV events without "
                     f"{KV_EVENTS_NEED[cfg.backend]}, so the KV router hears nothing from it; its mocker "
                     f"runs without prefix caching to publish none either (RH333)")
    args.append("--enable-prefix-caching" if caching else "--no-enable-prefix-caching")
    if cfg.backend == "mocker":
        own = [[name, value] for name in MOCKER_VALUE_FLAGS if (value := flag_value(cfg.argv, name))]
        own += [[name] for name in MOCKER_BOOL_FLAGS if name in cfg.argv]
        for words in own:
            if words[0] in args:
                continue
            if words[0] in flags:
                args += words
            else:
                notes.append(f"{service.name}: {' '.join(words)} left out (the mocker of Dynamo {release} "
                             f"has no {words[0]})")
    if speedup_ratio is not None and "--speedup-ratio" not in args:
        args += ["--speedup-ratio", f"{speedup_ratio:g}"]
    unknown = [a for a in args if a.startswith("--") and a not in flags]
    if unknown:  # a flag added above without a check against the table
        raise DeployError(f"{recipe_id}: {service.name}: the mocker of Dynamo {release} has no "
                          f"{', '.join(unknown)} (recipe_harness/deploy/mocker.py MOCKER_FLAGS)")
    return args
