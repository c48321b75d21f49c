"""What each worker's engine is configured to do, read from its real command line.

The engine flags of vLLM, SGLang, TensorRT-LLM and the Dynamo mocker differ; this module turns a
service's argv (with ``$VAR`` expanded from its env), the engine config files it mounts from
ConfigMaps (TensorRT-LLM ``--extra-engine-args``, vLLM/SGLang ``--config``) and the DGD's
``multinode.nodeCount`` into one :class:`EngineConfig`, recording where every value was set so
rules can point at the right line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from recipe_harness.load.manifests import Document, PathT, load_file, safe_load
from recipe_harness.load.scalars import file_lines
from recipe_harness.model import Service
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.model.cmdline import container_args, flag_hits, split_option
from recipe_harness.model.shell import Walker, as_written, kubernetes_expand

Source = tuple[str, int, int]

BACKENDS = ("vllm", "sglang", "trtllm", "mocker")

_MODULES = {
    "dynamo.vllm": "vllm",
    "dynamo.sglang": "sglang",
    "dynamo.trtllm": "trtllm",
    "dynamo.mocker": "mocker",
    "dynamo.frontend": "frontend",
}
_FRAMEWORKS = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "tensorrt-llm": "trtllm",
               "tensorrtllm": "trtllm", "mocker": "mocker"}

# Flag spellings per backend and field (last one given wins).
_FLAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "model": ("--model",),
        "served_model_name": ("--served-model-name",),
        "tensor_parallel": ("--tensor-parallel-size", "-tp"),
        "pipeline_parallel": ("--pipeline-parallel-size", "-pp"),
        "data_parallel": ("--data-parallel-size", "-dp"),
        "data_parallel_local": ("--data-parallel-size-local", "-dpl"),
        "block_size": ("--block-size",),
        "max_model_len": ("--max-model-len",),
        "max_num_seqs": ("--max-num-seqs",),
        "config": ("--config",),
    },
    "sglang": {
        "model": ("--model-path", "--model"),
        "served_model_name": ("--served-model-name",),
        "tensor_parallel": ("--tp-size", "--tp", "--tensor-parallel-size"),
        "pipeline_parallel": ("--pp-size", "--pp", "--pipeline-parallel-size"),
        "data_parallel": ("--dp-size", "--dp", "--data-parallel-size"),
        "expert_parallel": ("--ep-size", "--ep", "--expert-parallel-size"),
        "nnodes": ("--nnodes",),
        "block_size": ("--page-size",),
        "max_model_len": ("--context-length",),
        "max_num_seqs": ("--max-running-requests",),
        "config": ("--config",),
    },
    "trtllm": {
        "model": ("--model", "--model-path"),
        "served_model_name": ("--served-model-name",),
        "tensor_parallel": ("--tensor-parallel-size",),
        "pipeline_parallel": ("--pipeline-parallel-size",),
        "expert_parallel": ("--expert-parallel-size",),
        "block_size": ("--kv-block-size",),
        "max_model_len": ("--max-seq-len",),
        "max_num_seqs": ("--max-batch-size",),
        "config": ("--extra-engine-args",),
    },
    "mocker": {
        "model": ("--model-path",),
        "served_model_name": ("--model-name",),
        "data_parallel": ("--data-parallel-size",),
        "block_size": ("--block-size",),
        "max_model_len": ("--max-model-len",),
        "max_num_seqs": ("--max-num-seqs",),
        "config": ("--extra-engine-args",),
    },
}

# Keys of engine config files (YAML/JSON), per backend and field; nested keys are dotted.
_FILE_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "model": ("model",),
        "served_model_name": ("served-model-name", "served_model_name"),
        "tensor_parallel": ("tensor-parallel-size", "tensor_parallel_size"),
        "pipeline_parallel": ("pipeline-parallel-size", "pipeline_parallel_size"),
        "data_parallel": ("data-parallel-size", "data_parallel_size"),
        "data_parallel_local": ("data-parallel-size-local", "data_parallel_size_local"),
        "block_size": ("block-size", "block_size"),
        "max_model_len": ("max-model-len", "max_model_len"),
        "max_num_seqs": ("max-num-seqs", "max_num_seqs"),
    },
    "sglang": {
        "model": ("model-path", "model_path"),
        "served_model_name": ("served-model-name", "served_model_name"),
        "tensor_parallel": ("tp-size", "tp_size", "tensor-parallel-size", "tensor_parallel_size"),
        "pipeline_parallel": ("pp-size", "pp_size"),
        "data_parallel": ("dp-size", "dp_size"),
        "expert_parallel": ("ep-size", "ep_size"),
        "nnodes": ("nnodes",),
        "block_size": ("page-size", "page_size"),
        "max_model_len": ("context-length", "context_length"),
        "max_num_seqs": ("max-running-requests", "max_running_requests"),
        "disaggregation_mode": ("disaggregation-mode", "disaggregation_mode"),
    },
    "trtllm": {
        "tensor_parallel": ("tensor_parallel_size",),
        "pipeline_parallel": ("pipeline_parallel_size",),
        "expert_parallel": ("moe_expert_parallel_size",),
        "block_size": ("kv_cache_config.tokens_per_block", "tokens_per_block"),
        "max_model_len": ("max_seq_len",),
        "max_num_seqs": ("max_batch_size",),
    },
    "mocker": {
        "data_parallel": ("dp_size", "data_parallel_size"),
        "block_size": ("block_size",),
        "max_model_len": ("max_model_len",),
        "max_num_seqs": ("max_num_seqs",),
    },
}

_INT_FIELDS = ("tensor_parallel", "pipeline_parallel", "data_parallel", "data_parallel_local", "expert_parallel",
               "nnodes", "block_size", "max_model_len", "max_num_seqs")


@dataclass
class EngineConfig:
    """The engine settings of one worker service."""

    backend: str                       # vllm | sglang | trtllm | mocker | unknown
    model: str | None = None           # model repo or path the worker loads
    served_model_name: str | None = None
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    expert_parallel: int = 1
    gpus_needed: int = 0               # per replica, from the parallelism
    block_size: int | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None    # as configured: per scheduler (per DP rank for vLLM, per rank with TRT-LLM attention DP)
    disaggregation_mode: str | None = None   # "prefill" | "decode" | None (aggregated)
    publishes_kv_events: bool = False
    sources: dict[str, Source] = field(default_factory=dict)
    # beyond the contract
    attention_dp: bool = False         # SGLang --enable-dp-attention / TRT-LLM enable_attention_dp
    data_parallel_local: int | None = None
    nnodes: int | None = None
    prefix_caching: bool = True
    config_files: list[str] = field(default_factory=list)   # engine config files read (in-container paths)
    problems: list[tuple[str, Source]] = field(default_factory=list)  # config files named but not found ...
    argv: list[str] = field(default_factory=list)           # the engine's own argv, env expanded
    module: str | None = None          # python module run (dynamo.vllm ...)

    @property
    def max_concurrency(self) -> int | None:
        """Sequences one replica runs at once: ``max_num_seqs`` times its independent schedulers."""
        if self.max_num_seqs is None:
            return None
        if self.backend in ("vllm", "mocker"):
            return self.max_num_seqs * self.data_parallel
        if self.backend == "trtllm" and self.attention_dp:
            return self.max_num_seqs * self.tensor_parallel
        return self.max_num_seqs

    @property
    def served_name(self) -> str | None:
        """The name clients use: ``--served-model-name`` or else the model itself."""
        return self.served_model_name or self.model

    def source(self, name: str, default: Source) -> Source:
        return self.sources.get(name, default)


# --------------------------------------------------------------------------- positions


class _Locator:
    """Finds words of a scalar (a shell script, a config file in a ConfigMap) in the file text."""

    def __init__(self, doc: Document, path: PathT) -> None:
        self.file = doc.file
        self.line, self.col = doc.pos(path)
        self.cursor = self.line

    def find(self, needle: str, *, advance: bool = True, span: int = 400) -> Source:
        lines = file_lines(self.file)
        for ln in range(self.cursor, min(len(lines), self.cursor + span) + 1):
            text = lines[ln - 1]
            idx = text.find(needle)
            if idx >= 0:
                if advance:
                    self.cursor = ln
                return (self.file, ln, idx + 1)
        return (self.file, self.line, self.col)


@dataclass
class _Word:
    text: str
    src: Source


# --------------------------------------------------------------------------- argv


def service_env(service: Service) -> dict[str, str]:
    """Literal env values of a service (later definitions win)."""
    return {v.name: v.value for v in service.env if v.value is not None}


def _container_words(doc: Document, service: Service, env: dict[str, str]) -> list[_Word]:
    """Words of the service's command + args with their positions, ``$VAR`` expanded from ``env``: in a
    ``sh -c`` script as the shell does (quotes respected, unknown parts left as written), in list items
    Kubernetes' ``$(VAR)``."""
    base = service.args_path[:-1] if service.args_path else ()
    if not base:
        # the model found words elsewhere (or none); keep them, positioned at the service
        return [_Word(w, (doc.file, *doc.pos(service.path))) for w in service.argv]
    walker = Walker(env)
    words: list[_Word] = []
    for arg in container_args(doc, base):
        if arg.in_script:
            words.extend(_Word(as_written(f), arg.src) for f in walker.expand(kubernetes_expand(arg.raw, env)))
        else:
            words.append(_Word(kubernetes_expand(arg.text, env), arg.src))
    return words


def _engine_words(words: list[_Word]) -> tuple[str | None, list[_Word]]:
    """The ``python -m <module>`` run and the words after it (the whole argv when no module is found)."""
    for i, w in enumerate(words):
        if w.text == "-m" and i + 1 < len(words) and words[i + 1].text.startswith("dynamo."):
            return words[i + 1].text, words[i + 2:]
    return None, words


def _dashed_flags(words: list[_Word]) -> list[_Word]:
    """vLLM's argument parser reads ``--data_parallel_size`` as ``--data-parallel-size``: spell every long flag
    name with dashes (the value after ``=`` is left as written)."""
    out: list[_Word] = []
    for w in words:
        if w.text.startswith("--") and "_" in w.text.split("=", 1)[0]:
            head, eq, rest = w.text.partition("=")
            out.append(_Word(head.replace("_", "-") + eq + rest, w.src))
        else:
            out.append(w)
    return out


def _flag(words: list[_Word], names: tuple[str, ...]) -> _Word | None:
    """Last value of any of ``names`` (``--x v`` / ``--x=v``) at the option's position; a bare flag gives an
    empty-text word."""
    hits = flag_hits([w.text for w in words], names)
    if not hits:
        return None
    i, value = hits[-1]
    return _Word(value, words[i].src)


def _bool_flag(words: list[_Word], name: str) -> tuple[bool | None, Source | None]:
    """``--x`` / ``--no-x`` / ``--x true|false``: the last one wins; ``None`` when absent."""
    state: bool | None = None
    src: Source | None = None
    neg = "--no-" + name[2:]
    for i, w in enumerate(words):
        head, val = split_option(w.text)
        if head == name:
            if val is None and i + 1 < len(words) and words[i + 1].text.lower() in ("true", "false"):
                val = words[i + 1].text
            state = val is None or val.lower() not in ("false", "0", "no")
            src = w.src
        elif head == neg:
            state, src = False, w.src
    return state, src


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip().strip("'\""))
        except ValueError:
            return None
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


# --------------------------------------------------------------------------- config files


@dataclass
class _ConfigFile:
    data: dict
    doc: Document | None
    key_path: PathT
    name: str

    def source(self, key: str) -> Source | None:
        if self.doc is None:
            return None
        loc = _Locator(self.doc, self.key_path)
        leaf = key.rsplit(".", 1)[-1]
        return loc.find(f"{leaf}:", advance=False) if loc else None


def _nested(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _recipe_cache(recipe: LoadedRecipe) -> dict:
    return recipe.__dict__.setdefault("_backends_cache", {})


def config_maps(recipe: LoadedRecipe) -> dict[str, Document]:
    """ConfigMaps of the recipe: its loaded files, then the other YAML files of the recipe folder."""
    cache = _recipe_cache(recipe)
    if "config_maps" in cache:
        return cache["config_maps"]
    maps: dict[str, Document] = {}
    for doc in recipe.documents():
        if doc.kind == "ConfigMap" and isinstance(doc.name, str):
            maps.setdefault(doc.name, doc)
    loaded = set(recipe.results)
    folder = recipe.recipe.dir
    try:
        extra = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file() and p not in loaded)
    except OSError:
        extra = []
    for path in extra:
        for doc in load_file(path).documents:
            if doc.kind == "ConfigMap" and isinstance(doc.name, str):
                maps.setdefault(doc.name, doc)
    cache["config_maps"] = maps
    return maps


def _mounted_file(recipe: LoadedRecipe, service: Service, file_path: str) -> tuple[_ConfigFile | None, str]:
    """Content of ``file_path`` inside the service's container when a mounted ConfigMap provides it."""
    dgd = recipe.dgd_documents[0] if recipe.dgd_documents else None
    best: tuple[int, Any] | None = None
    for m in service.mounts:
        mp = m.mount_path.rstrip("/")
        sub = dgd.get(*m.path, "subPath") if dgd is not None and m.path else None
        if file_path == mp or file_path.startswith(mp + "/"):
            if best is None or len(mp) > best[0]:
                best = (len(mp), (m, sub))
    if best is None:
        return None, f"no volume of the service is mounted at {file_path!r}"
    mount, sub = best[1]
    volume = service.volumes.get(mount.name)
    if not isinstance(volume, dict) or not isinstance(volume.get("configMap"), dict):
        return None, f"{file_path!r} is on volume {mount.name!r}, which is not a ConfigMap"
    cm_name = volume["configMap"].get("name")
    doc = config_maps(recipe).get(str(cm_name))
    if doc is None:
        return None, f"ConfigMap {cm_name!r} mounted at {mount.mount_path!r} is not in the recipe"
    rel = file_path[len(mount.mount_path.rstrip("/")):].lstrip("/")
    key = sub if isinstance(sub, str) and sub else rel
    for item in volume["configMap"].get("items") or []:
        if isinstance(item, dict) and item.get("path") == rel:
            key = str(item.get("key"))
    data = doc.get("data")
    if not isinstance(data, dict) or key not in data:
        return None, f"ConfigMap {cm_name!r} has no key {key!r} (mounted as {file_path!r})"
    try:
        parsed = safe_load(str(data[key])) if len(str(data[key])) < 1_000_000 else None
    except yaml.YAMLError:
        return None, f"ConfigMap {cm_name!r} key {key!r} is not valid YAML/JSON"
    if not isinstance(parsed, dict):
        return None, f"ConfigMap {cm_name!r} key {key!r} is not a mapping of engine settings"
    return _ConfigFile(parsed, doc, ("data", key), f"{cm_name}/{key}"), ""


def _json_arg(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        try:
            data = safe_load(text)
        except yaml.YAMLError:
            return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- engine config


def detect_backend(recipe: LoadedRecipe, service: Service, module: str | None) -> str:
    if module in _MODULES:
        return _MODULES[module]
    argv = " ".join(service.argv)
    for mod, backend in _MODULES.items():
        if mod in argv:
            return backend
    if service.is_worker:
        dep = recipe.deployment
        fw = (dep.framework or "").lower() if dep else ""
        return _FRAMEWORKS.get(fw, "unknown")
    return "unknown"


def engine_config(recipe: LoadedRecipe, service: Service) -> EngineConfig:
    """The engine settings of ``service`` (cached per recipe and service)."""
    cache = _recipe_cache(recipe).setdefault("engines", {})
    if service.name not in cache:
        cache[service.name] = _engine_config(recipe, service)
    return cache[service.name]


def _engine_config(recipe: LoadedRecipe, service: Service) -> EngineConfig:
    dep = recipe.deployment
    doc = dep.document if dep is not None else None
    if doc is None:
        return EngineConfig(backend="unknown")
    env = service_env(service)
    words = _container_words(doc, service, env)
    module, words = _engine_words(words)
    backend = detect_backend(recipe, service, module)
    if backend == "frontend":
        backend = "unknown"
    if backend == "vllm":
        words = _dashed_flags(words)
    cfg = EngineConfig(backend=backend, argv=[w.text for w in words], module=module)
    service_src: Source = (doc.file, *doc.pos(service.args_path or service.path))
    flags = _FLAGS.get(backend, {})
    values: dict[str, Any] = {}

    def put(name: str, value: Any, src: Source | None) -> None:
        if value is None:
            return
        values[name] = value
        cfg.sources[name] = src or service_src

    # 1. engine config files (CLI flags override them for vLLM/SGLang; TRT-LLM's YAML overrides the CLI)
    files: list[_ConfigFile] = []
    if "config" in flags:
        w = _flag(words, flags["config"])
        if w is not None and w.text:
            cfg.config_files.append(w.text)
            found, why = _mounted_file(recipe, service, w.text)
            if found is not None:
                files.append(found)
            elif not w.text.startswith("$"):
                cfg.problems.append((f"engine config {w.text!r} cannot be read from the manifests: {why}", w.src))
    if backend == "sglang":
        w = _flag(words, ("--disagg-config",))
        if w is not None and w.text:
            found, why = _mounted_file(recipe, service, w.text)
            section = _flag(words, ("--disagg-config-key",))
            if found is not None and section is not None and isinstance(found.data.get(section.text), dict):
                files.append(_ConfigFile(found.data[section.text], found.doc, found.key_path, found.name))
            elif found is None:
                cfg.problems.append((f"--disagg-config {w.text!r} cannot be read from the manifests: {why}", w.src))

    def from_files() -> None:
        for f in files:
            for name, keys in _FILE_KEYS.get(backend, {}).items():
                for key in keys:
                    value = _nested(f.data, key)
                    if value is not None:
                        put(name, value, f.source(key))

    def from_flags() -> None:
        for name, names in flags.items():
            if name == "config":
                continue
            w = _flag(words, names)
            if w is not None and w.text != "":
                put(name, w.text, w.src)

    if backend == "trtllm":
        from_flags()
        from_files()
        override = _flag(words, ("--override-engine-args",))
        if override is not None and override.text:
            data = _json_arg(override.text) or {}
            for name, keys in _FILE_KEYS["trtllm"].items():
                for key in keys:
                    if _nested(data, key) is not None:
                        put(name, _nested(data, key), override.src)
        dynamic: dict[str, tuple[str, Source]] = {}
        for i, w in enumerate(words):
            if w.text.startswith("--trtllm.") and i + 1 < len(words):
                dynamic[w.text[len("--trtllm."):]] = (words[i + 1].text, w.src)
        for name, keys in _FILE_KEYS["trtllm"].items():
            for key in keys:
                if key in dynamic:
                    put(name, dynamic[key][0], dynamic[key][1])
    else:
        from_files()
        from_flags()

    # positional model (``vllm serve``-style argv: the first word when it is not a flag)
    if "model" not in values and backend in ("vllm", "sglang") and words and not words[0].text.startswith("-"):
        put("model", words[0].text, words[0].src)
    if "model" not in values:
        env_names = {"vllm": ("DYN_VLLM_MODEL",), "trtllm": ("DYN_TRTLLM_MODEL",), "sglang": ("DYN_SGLANG_MODEL",)}
        for name in env_names.get(backend, ()):
            if env.get(name):
                put("model", env[name], service_src)

    for name in _INT_FIELDS:
        if name in values:
            as_int = _to_int(values[name])
            if as_int is None:
                cfg.problems.append((f"{name.replace('_', ' ')} {values[name]!r} is not a number", cfg.sources[name]))
                del values[name]
            else:
                values[name] = as_int
    cfg.model = str(values["model"]) if values.get("model") is not None else None
    cfg.served_model_name = str(values["served_model_name"]) if values.get("served_model_name") is not None else None
    cfg.tensor_parallel = max(1, values.get("tensor_parallel", 1))
    cfg.pipeline_parallel = max(1, values.get("pipeline_parallel", 1))
    cfg.data_parallel = max(1, values.get("data_parallel", 1))
    cfg.data_parallel_local = values.get("data_parallel_local")
    cfg.nnodes = values.get("nnodes")
    cfg.block_size = values.get("block_size")
    cfg.max_model_len = values.get("max_model_len")
    cfg.max_num_seqs = values.get("max_num_seqs")

    _parallelism(cfg, backend, words, files, values)
    _disaggregation(cfg, backend, words, values, env)
    _kv_events(cfg, backend, words, files, env)
    return cfg


def _parallelism(cfg: EngineConfig, backend: str, words: list[_Word], files: list[_ConfigFile],
                 values: dict[str, Any]) -> None:
    tp, pp, dp = cfg.tensor_parallel, cfg.pipeline_parallel, cfg.data_parallel
    if backend == "vllm":
        on, src = _bool_flag(words, "--enable-expert-parallel")
        if on is None:
            on, src = _bool_flag(words, "-ep")
        cfg.expert_parallel = tp * dp if on else 1
        if on and src:
            cfg.sources["expert_parallel"] = src
        cfg.gpus_needed = tp * pp * dp
    elif backend == "sglang":
        on, src = _bool_flag(words, "--enable-dp-attention")
        for f in files:
            if _truthy(f.data.get("enable-dp-attention", f.data.get("enable_dp_attention", False))):
                on, src = True, f.source("enable_dp_attention") or src
        cfg.attention_dp = bool(on)
        if on and src:
            cfg.sources["attention_dp"] = src
        cfg.expert_parallel = max(1, values.get("expert_parallel", 1))
        # DP attention shards attention over the TP ranks; plain DP runs dp copies of the TP group
        cfg.gpus_needed = tp * pp * (1 if cfg.attention_dp else dp)
    elif backend == "trtllm":
        on, src = _bool_flag(words, "--enable-attention-dp")
        for f in files:
            if "enable_attention_dp" in f.data:
                on, src = _truthy(f.data["enable_attention_dp"]), f.source("enable_attention_dp")
        cfg.attention_dp = bool(on)
        if on and src:
            cfg.sources["attention_dp"] = src
        cfg.expert_parallel = max(1, values.get("expert_parallel", 1))
        cfg.data_parallel = tp if cfg.attention_dp else 1
        # TRT-LLM's world size is tp x pp; experts and attention DP are spread over the same ranks
        cfg.gpus_needed = tp * pp
    elif backend == "mocker":
        cfg.gpus_needed = 0
    else:
        cfg.gpus_needed = tp * pp * dp


def _disaggregation(cfg: EngineConfig, backend: str, words: list[_Word], values: dict[str, Any],
                    env: dict[str, str]) -> None:
    mode: str | None = None
    src: Source | None = None
    w = _flag(words, ("--disaggregation-mode",))
    if w is not None and w.text:
        mode, src = w.text.lower(), w.src
    elif values.get("disaggregation_mode"):
        mode, src = str(values["disaggregation_mode"]).lower(), cfg.sources.get("disaggregation_mode")
    else:
        env_name = {"vllm": "DYN_VLLM_DISAGGREGATION_MODE", "trtllm": "DYN_TRTLLM_DISAGGREGATION_MODE"}.get(backend)
        if env_name and env.get(env_name):
            mode = env[env_name].lower()
    if backend in ("vllm", "mocker"):
        on, s = _bool_flag(words, "--is-prefill-worker")
        if on:
            mode, src = "prefill", s
        on, s = _bool_flag(words, "--is-decode-worker")
        if on:
            mode, src = "decode", s
    if mode in ("prefill", "decode"):
        cfg.disaggregation_mode = mode
        if src:
            cfg.sources["disaggregation_mode"] = src
    else:
        cfg.disaggregation_mode = None


def _kv_events(cfg: EngineConfig, backend: str, words: list[_Word], files: list[_ConfigFile],
               env: dict[str, str]) -> None:
    if backend == "vllm":
        caching, csrc = _bool_flag(words, "--enable-prefix-caching")
        cfg.prefix_caching = caching is not False
        w = _flag(words, ("--kv-events-config",))
        if cfg.disaggregation_mode == "decode" or not cfg.prefix_caching:
            cfg.publishes_kv_events = False
        elif w is not None and w.text:
            data = _json_arg(w.text) or {}
            cfg.publishes_kv_events = _truthy(data.get("enable_kv_cache_events", False)) and \
                str(data.get("publisher", "zmq")).lower() != "null"
            cfg.sources["publishes_kv_events"] = w.src
        else:
            cfg.publishes_kv_events = False
        if csrc and not cfg.prefix_caching:
            cfg.sources["prefix_caching"] = csrc
    elif backend == "sglang":
        w = _flag(words, ("--kv-events-config",))
        events = _json_arg(w.text) if w is not None and w.text else None
        for f in files:
            raw = f.data.get("kv-events-config", f.data.get("kv_events_config"))
            if raw is not None:
                events = raw if isinstance(raw, dict) else _json_arg(str(raw))
        cfg.publishes_kv_events = bool(events and str(events.get("publisher", "null")).lower() != "null")
        if w is not None:
            cfg.sources["publishes_kv_events"] = w.src
        on, _ = _bool_flag(words, "--disable-radix-cache")
        cfg.prefix_caching = not on
    elif backend == "trtllm":
        on, src = _bool_flag(words, "--publish-kv-events")
        legacy, lsrc = _bool_flag(words, "--publish-events-and-metrics")
        if on is None and legacy is not None:
            on, src = legacy, lsrc
        if on is None:
            raw = env.get("DYN_TRTLLM_PUBLISH_KV_EVENTS") or env.get("DYN_TRTLLM_PUBLISH_EVENTS_AND_METRICS")
            on = _truthy(raw) if raw is not None else False
        cfg.publishes_kv_events = bool(on)
        if src:
            cfg.sources["publishes_kv_events"] = src
        for f in files:
            reuse = _nested(f.data, "kv_cache_config.enable_block_reuse")
            if reuse is not None:
                cfg.prefix_caching = _truthy(reuse)
    elif backend == "mocker":
        caching, _ = _bool_flag(words, "--enable-prefix-caching")
        cfg.prefix_caching = caching is not False
        # the mocker publishes KV events unless it is a decode worker or prefix caching is off
        cfg.publishes_kv_events = cfg.prefix_caching and cfg.disaggregation_mode != "decode"


# --------------------------------------------------------------------------- frontend


ROUTER_MODES = ("round-robin", "random", "power-of-two", "kv", "direct", "least-loaded", "device-aware-weighted")


@dataclass
class FrontendConfig:
    router_mode: str = "round-robin"
    http_port: int = 8000
    router_kv_events: bool = True
    namespace: str | None = None
    model_name: str | None = None
    sources: dict[str, Source] = field(default_factory=dict)


def frontend_config(recipe: LoadedRecipe, frontend: Service) -> FrontendConfig:
    """Router mode, HTTP port and KV-event use of a ``dynamo.frontend`` service."""
    cache = _recipe_cache(recipe).setdefault("frontends", {})
    if frontend.name in cache:
        return cache[frontend.name]
    dep = recipe.deployment
    out = FrontendConfig()
    if dep is None:
        return out
    doc = dep.document
    env = service_env(frontend)
    words = _container_words(doc, frontend, env)
    _, words = _engine_words(words)
    env_src: dict[str, Source] = {v.name: (doc.file, *doc.pos(v.path)) for v in frontend.env if v.path}
    if env.get("DYN_ROUTER_MODE"):
        out.router_mode = env["DYN_ROUTER_MODE"].strip().lower()
        out.sources["router_mode"] = env_src.get("DYN_ROUTER_MODE", (doc.file, *doc.pos(frontend.path)))
    w = _flag(words, ("--router-mode",))
    if w is not None and w.text:
        out.router_mode, out.sources["router_mode"] = w.text.lower(), w.src
    load_aware, src = _bool_flag(words, "--load-aware")
    if load_aware and src is not None:  # "on the frontend, this implies --router-mode kv" (without KV events)
        out.router_mode, out.sources["router_mode"] = "kv", src
        out.router_kv_events = False
    if env.get("DYN_HTTP_PORT") and _to_int(env["DYN_HTTP_PORT"]) is not None:
        out.http_port = int(env["DYN_HTTP_PORT"])
        out.sources["http_port"] = env_src.get("DYN_HTTP_PORT", (doc.file, *doc.pos(frontend.path)))
    w = _flag(words, ("--http-port",))
    if w is not None and _to_int(w.text) is not None:
        out.http_port, out.sources["http_port"] = int(w.text), w.src
    if env.get("DYN_ROUTER_USE_KV_EVENTS") is not None:
        out.router_kv_events = _truthy(env["DYN_ROUTER_USE_KV_EVENTS"])
    for name in ("--router-kv-events", "--kv-events"):
        on, src = _bool_flag(words, name)
        if on is not None and src is not None:
            out.router_kv_events = on
            out.sources["router_kv_events"] = src
    w = _flag(words, ("--namespace",))
    out.namespace = w.text if w is not None and w.text else env.get("DYN_NAMESPACE")
    w = _flag(words, ("--model-name",))
    out.model_name = w.text if w is not None and w.text else env.get("DYN_MODEL_NAME")
    cache[frontend.name] = out
    return out


def router_mode(recipe: LoadedRecipe, frontend: Service) -> str:
    """The frontend's router mode: ``kv``, ``round-robin`` (the default), ``random`` ..."""
    return frontend_config(recipe, frontend).router_mode


def routes_by_kv_events(recipe: LoadedRecipe) -> bool:
    """Whether a frontend of the recipe -- its frontend service, else the frontend sidecars of its
    worker pods (GAIE) -- routes by the KV events the workers publish (router mode kv, router KV
    events on)."""
    dep = recipe.deployment
    if dep is None:
        return False
    fronts = [dep.frontend] if dep.frontend is not None else \
        [s.frontend_sidecar for s in dep.sidecar_frontends if s.frontend_sidecar is not None]
    return any((fc := frontend_config(recipe, f)).router_mode == "kv" and fc.router_kv_events for f in fronts)
