"""``recipe-harness new <model>/<backend>/<mode>``: a new recipe's files, with a marker for every value
the contributor must still supply.

Writes ``deploy.yaml`` (a DynamoGraphDeployment: Frontend plus aggregated, or prefill and decode,
workers), ``perf.yaml`` (an aiperf Job against the frontend), ``thresholds.yaml`` (a ``cpu-mocker``
profile for the local target and, for GPU backends, one for the hardware), and, for a new model,
``model-cache/`` (PVC and download Job) and the model README; for a model that exists, a README
section for the recipe. ``--from RECIPE`` copies an existing recipe's manifests instead, renamed.

Values still to supply are ``FILL-IN(...)`` markers (:mod:`.rules.markers`): ``check`` reports each
as RH109 until it is replaced. Backends: ``vllm``, ``sglang``, ``trtllm`` (GPU; they pass ``check``
once filled) and ``mocker`` (the Dynamo mocker engine: runs on the local target, no GPU). Existing
files are never overwritten.

The engine flags are those of the collection's recipes and of upstream's ``recipes/`` for Dynamo
1.6: vLLM ``--tensor-parallel-size`` and NIXL ``--kv-transfer-config`` for disaggregation, SGLang
``--tp`` with ``--disaggregation-mode``/``--disaggregation-transfer-backend nixl``, TensorRT-LLM an
``--extra-engine-args`` file with ``tensor_parallel_size`` (and ``cache_transceiver_config`` when
disaggregated), the mocker's flags of ai-dynamo 1.6.1 (``python -m dynamo.mocker --help``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.deploy.kubernetes.twin import DEFAULT_DYNAMO_VERSION
from recipe_harness.load.discovery import MODEL_CACHE_DIRS, discover
from recipe_harness.load.manifests import load_file
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules.markers import marker, markers_in

MODEL_MOUNT = "/opt/models"
AIPERF_VERSION = "0.13.0"
HF_HUB_VERSION = "1.33.0"
NIXL = '\'{"kv_connector":"NixlConnector","kv_role":"kv_both"}\''
KV_EVENTS = '\'{"publisher":"zmq","topic":"kv-events","endpoint":"tcp://*:20080","enable_kv_cache_events":true}\''
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_RUNTIME_TAG = re.compile(r"nvcr\.io/nvidia/ai-dynamo/[a-z]+-runtime:([\w.-]+)")


class ScaffoldError(Exception):
    """The recipe cannot be written: a bad id, an unknown backend, a file that exists."""


@dataclass(frozen=True)
class Backend:
    name: str
    label: str           # for READMEs
    image: str           # runtime image name
    module: str          # python -m ...
    service: str         # service name prefix
    framework: str | None
    gpus: bool = True


BACKENDS = {
    "vllm": Backend("vllm", "vLLM", "vllm-runtime", "dynamo.vllm", "Vllm", "vllm"),
    "sglang": Backend("sglang", "SGLang", "sglang-runtime", "dynamo.sglang", "SGLang", "sglang"),
    "trtllm": Backend("trtllm", "TensorRT-LLM", "tensorrtllm-runtime", "dynamo.trtllm", "Trtllm", "trtllm"),
    # the mocker runs from the vllm-runtime image, which ships the ai-dynamo wheel (recipes/mocker-tiny)
    "mocker": Backend("mocker", "Dynamo mocker", "vllm-runtime", "dynamo.mocker", "Mocker", None, gpus=False),
}


@dataclass(frozen=True)
class ScaffoldOptions:
    recipe_id: str                 # <model>/<backend>/<mode>
    recipes_root: Path
    from_recipe: str | None = None
    gpus: int | None = None        # GPUs per worker pod
    tp: int | None = None          # tensor parallel size (default: --gpus)
    model_id: str | None = None    # Hugging Face repo id
    dynamo_version: str | None = None


@dataclass
class Scaffold:
    """The files to write (path -> text; appended to when ``append``), and what is left to fill in."""

    recipe_dir: Path
    files: dict[Path, str] = field(default_factory=dict)
    append: dict[Path, str] = field(default_factory=dict)
    offsets: dict[Path, int] = field(default_factory=dict)  # lines an appended-to file already has

    def markers(self) -> list[tuple[Path, int, str]]:
        """(file, line, what) of every marker written."""
        return [(p, self.offsets.get(p, 0) + line, what) for p, text in {**self.files, **self.append}.items()
                for line, _col, what in markers_in(text)]


def _check_id(recipe_id: str) -> tuple[str, str, str]:
    parts = recipe_id.strip("/").split("/")
    if len(parts) < 3:
        raise ScaffoldError(f"{recipe_id!r}: give <model>/<backend>/<mode>, e.g. qwen3-8b/vllm/agg")
    model, backend, mode = parts[0], parts[1], "/".join(parts[2:])
    for part in parts:
        if not _NAME.match(part):
            raise ScaffoldError(f"{recipe_id!r}: {part!r} must be lower-case letters, digits and '-' "
                                "(it becomes part of Kubernetes names)")
    if backend not in BACKENDS:
        raise ScaffoldError(f"{recipe_id!r}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    return model, backend, mode


def _collection_version(root: Path) -> str:
    """The Dynamo release the collection's runtime images use (the most common tag), else the harness's."""
    tags: Counter[str] = Counter()
    if root.is_dir():
        for path in root.rglob("deploy*.y*ml"):
            try:
                tags.update(_RUNTIME_TAG.findall(path.read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
    return tags.most_common(1)[0][0] if tags else DEFAULT_DYNAMO_VERSION


def _model_cache(model_dir: Path) -> tuple[str | None, str | None]:
    """(PVC name, downloaded repo) of an existing model folder's model-cache."""
    pvc = repo = None
    for name in MODEL_CACHE_DIRS:
        for path in sorted((model_dir / name).glob("*.y*ml")):
            for doc in load_file(path).documents:
                if doc.kind == "PersistentVolumeClaim" and pvc is None:
                    pvc = doc.name
            m = re.search(r"\bhf download\s+([\w.-]+/[\w.-]+)", path.read_text(encoding="utf-8", errors="replace"))
            if m and repo is None:
                repo = m.group(1)
    return pvc, repo


def plan(opts: ScaffoldOptions) -> Scaffold:
    """What ``new`` writes; raises :class:`ScaffoldError` before anything is written."""
    model, backend_name, mode = _check_id(opts.recipe_id)
    root = opts.recipes_root
    model_dir = root / model
    recipe_dir = model_dir / backend_name / mode
    for n, what in ((opts.gpus, "--gpus"), (opts.tp, "--tp")):
        if n is not None and n < 1:
            raise ScaffoldError(f"{what} {n}: give a positive number")
    be = BACKENDS[backend_name]
    if not be.gpus and (opts.gpus or opts.tp):
        raise ScaffoldError("the mocker backend runs on CPU: --gpus and --tp do not apply")
    if opts.model_id is not None and not re.match(r"^[\w.-]+/[\w.-]+$", opts.model_id):
        raise ScaffoldError(f"--model-id {opts.model_id}: give a Hugging Face repo id such as Qwen/Qwen3-8B")
    new_model = not model_dir.exists()
    pvc, cached_repo = (None, None) if new_model else _model_cache(model_dir)
    model_id = opts.model_id or cached_repo or marker("Hugging Face repo id such as Qwen/Qwen3-8B")
    pvc = pvc or "model-cache"
    version = opts.dynamo_version or _collection_version(root)
    dgd = f"{model}-{backend_name}-{mode.replace('/', '-')}"[:40].rstrip("-")
    sc = Scaffold(recipe_dir)
    if opts.from_recipe:
        _copy_from(sc, opts, opts.from_recipe, root, dgd, model_id)
    else:
        gpus = opts.gpus
        tp = opts.tp or gpus
        sc.files[recipe_dir / "deploy.yaml"] = _deploy(be, mode, dgd, model_id, pvc, version, gpus, tp)
        sc.files[recipe_dir / "perf.yaml"] = _perf(dgd, model_id, pvc)
        sc.files[recipe_dir / "thresholds.yaml"] = _thresholds(be, mode, gpus)
    total = _copied_total(root, opts.from_recipe) if opts.from_recipe else _total_gpus(be, mode, opts.gpus)
    row = _readme_row(opts.recipe_id.strip("/"), be, mode, total)
    if new_model:
        sc.files[model_dir / "model-cache" / "model-cache.yaml"] = _pvc(pvc, be)
        sc.files[model_dir / "model-cache" / "model-download.yaml"] = _download(model_id, pvc, be)
        sc.files[model_dir / "README.md"] = _model_readme(model, model_id, row, opts.recipe_id.strip("/"), be)
    else:
        readme = model_dir / "README.md"
        section = _readme_section(opts.recipe_id.strip("/"), row, be)
        if readme.exists():
            sc.append[readme] = section
            sc.offsets[readme] = readme.read_text(encoding="utf-8", errors="replace").count("\n")
        else:
            sc.files[readme] = f"# {model}\n" + section
    existing = [p for p in sc.files if p.exists()]
    if existing:
        raise ScaffoldError("refusing to overwrite " + ", ".join(str(p) for p in existing)
                            + "; pick another <mode> or remove the files first")
    return sc


def write(sc: Scaffold) -> list[Path]:
    """Write the planned files (exclusive create: a file that appeared meanwhile is never overwritten)."""
    written: list[Path] = []
    for path, text in sc.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="utf-8") as fh:
                fh.write(text)
        except FileExistsError:
            raise ScaffoldError(f"refusing to overwrite {path}, which appeared while writing") from None
        written.append(path)
    for path, text in sc.append.items():
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
        written.append(path)
    return written


# --------------------------------------------------------------------------- --from


def _copied_total(root: Path, from_recipe: str) -> int | None:
    """GPUs the copied recipe requests in all (sum over services of GPUs x nodes x replicas)."""
    found = [r for r in discover(root).recipes if r.id == from_recipe.strip("/")]
    dep = LoadedRecipe.load(found[0]).deployment if found else None
    return sum(s.total_gpus for s in dep.services) if dep is not None else None


def _copy_from(sc: Scaffold, opts: ScaffoldOptions, from_recipe: str, root: Path, dgd: str, model_id: str) -> None:
    found = [r for r in discover(root).recipes if r.id == from_recipe.strip("/")]
    if not found:
        raise ScaffoldError(f"--from {from_recipe}: no such recipe under {root} (see recipe-harness list)")
    src = found[0]
    texts = {"deploy.yaml": src.deploy_file.read_text(encoding="utf-8")}
    old = next((d.name for d in load_file(src.deploy_file).documents if d.kind == "DynamoGraphDeployment"), None)
    for p in src.perf_files:
        if p.parent == src.dir:
            texts["perf.yaml"] = p.read_text(encoding="utf-8")
    if src.thresholds_file:
        texts["thresholds.yaml"] = src.thresholds_file.read_text(encoding="utf-8")
    _, src_repo = _model_cache(src.model_dir)
    for name, text in texts.items():
        if old:
            text = re.sub(rf"\b{re.escape(old)}\b", dgd, text)
        if opts.model_id and src_repo and src_repo != opts.model_id:
            text = text.replace(src_repo, opts.model_id)
        header = (f"# Copied from {src.id} by recipe-harness new; DGD renamed {old} -> {dgd}. Re-check GPUs, flags "
                  "and limits for this recipe.\n")
        sc.files[sc.recipe_dir / name] = header + text


# --------------------------------------------------------------------------- templates


def _disagg(mode: str) -> bool:
    return "disagg" in mode


def _kv(mode: str) -> bool:
    return "kv" in mode.split("-") or "kv-router" in mode or mode.startswith("kv")


def _total_gpus(be: Backend, mode: str, gpus: int | None) -> int | None:
    if not be.gpus:
        return 0
    if gpus is None:
        return None
    return gpus * (2 if _disagg(mode) else 1)


def _total_what(mode: str) -> str:
    return "GPUs in all = twice the GPUs per worker pod" if _disagg(mode) else "GPUs in all = GPUs per worker pod"


def _args(words: list[str], indent: int = 12) -> str:
    pad = " " * indent
    return "".join(f"{pad}- {w}\n" for w in words)


def _worker_args(be: Backend, role: str, model_id: str, tp: str, kv: bool) -> list[str]:
    if be.name == "vllm":
        words = ["--model", model_id, "--tensor-parallel-size", tp]
        if role in ("prefill", "decode"):
            words += ["--disaggregation-mode", role, "--kv-transfer-config", NIXL]
        if kv and role in ("prefill", "agg"):
            words += ["--kv-events-config", KV_EVENTS]
        if role == "decode":
            words += ["--no-enable-prefix-caching"]
        return words
    if be.name == "sglang":
        words = ["--model-path", model_id, "--served-model-name", model_id, "--tp", tp, "--trust-remote-code"]
        if role in ("prefill", "decode"):
            words += ["--disaggregation-mode", role, "--disaggregation-transfer-backend", "nixl"]
        if kv and role in ("prefill", "agg"):
            words += ["--kv-events-config", KV_EVENTS]
        return words
    if be.name == "trtllm":
        words = ["--model-path", model_id, "--served-model-name", model_id, "--extra-engine-args",
                 f"/engine/{role}.yaml"]
        if role in ("prefill", "decode"):
            words += ["--disaggregation-mode", role]
        if kv and role in ("prefill", "agg"):
            words += ["--publish-events-and-metrics"]
        return words
    words = ["--model-path", model_id, "--model-name", model_id]  # mocker (ai-dynamo 1.6.1 flags)
    if role in ("prefill", "decode"):
        words += ["--disaggregation-mode", role]
    return words + ["--block-size", '"64"', "--num-gpu-blocks-override", '"4096"', "--max-num-seqs", '"64"',
                    "--max-num-batched-tokens", '"8192"', "--speedup-ratio", '"1.0"']


def _engine_configmap(dgd: str, roles: list[str], tp: str) -> str:
    data = ""
    for role in roles:
        data += f"  {role}.yaml: |\n    tensor_parallel_size: {tp.strip(chr(34))}\n"
        if role in ("prefill", "decode"):
            data += "    cache_transceiver_config:\n      backend: DEFAULT\n"
        if role == "prefill":
            data += "    disable_overlap_scheduler: true\n"
    return (f"# TensorRT-LLM engine settings, mounted at /engine (--extra-engine-args).\n"
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {dgd}-engine\ndata:\n{data}---\n")


def _deploy(be: Backend, mode: str, dgd: str, model_id: str, pvc: str, version: str, gpus: int | None,
            tp: int | None) -> str:
    image = f"nvcr.io/nvidia/ai-dynamo/{be.image}:{version}"
    kv = _kv(mode)
    roles = ["prefill", "decode"] if _disagg(mode) else ["agg"]
    gpu_text = f'"{gpus}"' if gpus else '"' + marker("GPUs per worker pod") + '"'
    tp_text = f'"{tp}"' if tp else '"' + marker("tensor parallel size = GPUs per worker pod") + '"'
    out = _engine_configmap(dgd, roles, tp_text) if be.name == "trtllm" else ""
    out += (f"# {dgd}: {be.label}, {'disaggregated prefill/decode' if _disagg(mode) else 'aggregated'}"
            f"{', KV-aware routing' if kv else ''}. Written by recipe-harness new: replace every FILL-IN marker.\n"
            f"#   kubectl apply -f ../../model-cache/ -n ${{NAMESPACE}}\n"
            f"#   kubectl apply -f deploy.yaml -n ${{NAMESPACE}}\n"
            f"apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {dgd}\nspec:\n")
    if be.framework:
        out += f"  backendFramework: {be.framework}\n"
    out += (f"  pvcs:\n    - name: {pvc}\n      create: false\n"
            f"  envs:\n    - name: HF_HOME\n      value: {MODEL_MOUNT}\n"
            f"  services:\n    Frontend:\n      componentType: frontend\n      replicas: 1\n"
            f"      volumeMounts:\n        - name: {pvc}\n          mountPoint: {MODEL_MOUNT}\n"
            f"      resources:\n        requests:\n          cpu: 250m\n          memory: 512Mi\n"
            f"        limits:\n          cpu: \"1\"\n          memory: 2Gi\n"
            f"      extraPodSpec:\n        mainContainer:\n          image: {image}\n"
            f"          command: [python3, -m, dynamo.frontend]\n"
            f"          args: [--http-port, \"8000\", --router-mode, {'kv' if kv else 'round-robin'}]\n")
    for role in roles:
        name = be.service + {"agg": "Worker", "prefill": "PrefillWorker", "decode": "DecodeWorker"}[role]
        out += f"    {name}:\n      componentType: worker\n"
        if role != "agg":
            out += f"      subComponentType: {role}\n"
        out += f"      replicas: {2 if not be.gpus else 1}\n"
        if be.gpus:
            out += ("      envFromSecret: hf-token-secret\n      sharedMemory:\n        size: 16Gi\n"
                    f"      resources:\n        limits:\n          gpu: {gpu_text}\n")
        else:
            out += ("      resources:\n        requests:\n          cpu: 250m\n          memory: 512Mi\n"
                    "        limits:\n          cpu: \"1\"\n          memory: 2Gi\n")
        out += f"      volumeMounts:\n        - name: {pvc}\n          mountPoint: {MODEL_MOUNT}\n      extraPodSpec:\n"
        if be.name == "trtllm":
            out += f"        volumes:\n          - name: engine\n            configMap:\n              name: {dgd}-engine\n"
        out += f"        mainContainer:\n          image: {image}\n"
        if be.name == "trtllm":
            out += "          volumeMounts:\n            - name: engine\n              mountPath: /engine\n"
        out += f"          command: [python3, -m, {be.module}]\n          args:\n"
        out += _args(_worker_args(be, role, model_id, tp_text, kv))
    return out


def _perf(dgd: str, model_id: str, pvc: str) -> str:
    return f"""\
# aiperf benchmark of {dgd}: synthetic 1024/256 ISL/OSL, concurrency sweep 4/16/64.
#   kubectl apply -f perf.yaml -n ${{NAMESPACE}}; kubectl logs -f job/{dgd}-perf -n ${{NAMESPACE}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {dgd}-perf
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: perf
          image: python:3.12-slim
          command: [/bin/bash, -c]
          args:
            - |
              set -euo pipefail
              pip install --no-cache-dir aiperf=={AIPERF_VERSION}
              RESULTS={MODEL_MOUNT}/perf/{dgd}/$(date +%Y%m%dT%H%M%S)
              for CONCURRENCY in 4 16 64; do
                aiperf profile \\
                  --model {model_id} \\
                  --tokenizer {model_id} \\
                  --url http://{dgd}-frontend:8000 \\
                  --endpoint-type chat \\
                  --streaming \\
                  --synthetic-input-tokens-mean 1024 \\
                  --output-tokens-mean 256 \\
                  --concurrency "$CONCURRENCY" \\
                  --request-count 320 \\
                  --warmup-request-count 16 \\
                  --artifact-dir "$RESULTS/concurrency_$CONCURRENCY"
              done
          env:
            - name: HF_HOME
              value: {MODEL_MOUNT}
          resources:
            requests:
              cpu: 500m
              memory: 1Gi
            limits:
              cpu: "2"
              memory: 4Gi
          volumeMounts:
            - name: model-cache
              mountPath: {MODEL_MOUNT}
      volumes:
        - name: model-cache
          persistentVolumeClaim:
            claimName: {pvc}
"""


def _thresholds(be: Backend, mode: str, gpus: int | None) -> str:
    out = """\
# Pass/fail limits of perf.yaml per hardware profile (schemas/thresholds.schema.json).
# cpu-mocker: the local target runs this topology on the Dynamo mocker; generous limits, zero errors.
schemaVersion: 1
profiles:
  cpu-mocker:
    description: the recipe's topology on the Dynamo mocker engine (no GPUs)
    gpus: 1
    limits:
      ttft_p99: {max: 5000, unit: ms}
      itl_p99: {max: 200, unit: ms}
      error_rate: {max: 0, unit: ratio}
"""
    if not be.gpus:
        return out
    total = _total_gpus(be, mode, gpus)
    return out + f"""\
  # limits from a measurement on the hardware: say its conditions in the README
  {marker("hardware profile id such as h100-sxm")}:
    description: {marker("GPUs and nodes such as 8x H100 SXM 80GB on one node")}
    gpus: {total if total else marker(_total_what(mode))}
    limits:
      ttft_p99:
        max: {marker("TTFT p99 limit in ms")}
        unit: ms
      itl_p99:
        max: {marker("ITL p99 limit in ms")}
        unit: ms
      output_tokens_per_s_per_gpu:
        min: {marker("output tokens per second per GPU at least")}
        unit: tokens/s/gpu
      error_rate: {{max: 0.01, unit: ratio}}
"""


def _pvc(pvc: str, be: Backend) -> str:
    size = "1Gi" if not be.gpus else marker("storage for the weights such as 200Gi")
    return f"""\
# The model cache: the download Job writes the weights here (HF_HOME layout), the workers read them.
# No storageClassName: the cluster's default class; multi-node recipes need ReadWriteMany.
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {pvc}
spec:
  accessModes:
    - ReadWriteMany
  resources:
    requests:
      storage: {size}
"""


def _download(model_id: str, pvc: str, be: Backend) -> str:
    files = " config.json generation_config.json tokenizer.json tokenizer_config.json" if not be.gpus else ""
    return f"""\
# Downloads {model_id}{' (tokenizer and config only: the mocker needs no weights)' if files else ''} into the
# model-cache PVC. A gated repository needs the Secret hf-token-secret with key HF_TOKEN.
apiVersion: batch/v1
kind: Job
metadata:
  name: model-download
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: model-download
          image: python:3.12-slim
          command: [/bin/sh, -c]
          args:
            - |
              set -eux
              pip install --no-cache-dir huggingface_hub=={HF_HUB_VERSION}
              hf download {model_id}{files}
          env:
            - name: HF_HOME
              value: {MODEL_MOUNT}
            - name: HF_TOKEN
              valueFrom:
                secretKeyRef:
                  name: hf-token-secret
                  key: HF_TOKEN
                  optional: true
          resources:
            requests:
              cpu: 250m
              memory: 512Mi
            limits:
              cpu: "1"
              memory: 2Gi
          volumeMounts:
            - name: model-cache
              mountPath: {MODEL_MOUNT}
      volumes:
        - name: model-cache
          persistentVolumeClaim:
            claimName: {pvc}
"""


def _readme_row(recipe_id: str, be: Backend, mode: str, total: int | None) -> str:
    what = ("disaggregated" if _disagg(mode) else "aggregated") + (", KV router" if _kv(mode) else "")
    gpus = str(total) if total is not None else marker(_total_what(mode))
    hardware = "CPU only" if not be.gpus else marker("GPU type and nodes such as 8x H100 SXM on one node")
    return f"| `{recipe_id}` | {be.label} | {what} | {gpus} | {hardware} |"


def _validated(be: Backend) -> str:
    what = "hardware and Dynamo release it ran on" if be.gpus else "where it ran such as local target"
    return f"Validated on: {marker(what)}"


def _model_readme(model: str, model_id: str, row: str, recipe_id: str, be: Backend) -> str:
    return f"""\
# {model}

Serves **`{model_id}`** behind the Dynamo frontend.

| Recipe | Backend | Mode | GPUs | Hardware |
|--------|---------|------|------|----------|
{row}

{_validated(be)}

Prerequisites: the Dynamo platform, a Secret `hf-token-secret` with key HF_TOKEN for gated models,
and the download Job of `model-cache/` completed.
{_readme_section(recipe_id, None, be)}"""


def _readme_section(recipe_id: str, row: str | None, be: Backend) -> str:
    table = ("\n| Recipe | Backend | Mode | GPUs | Hardware |\n|--------|---------|------|------|----------|\n"
             f"{row}\n\n{_validated(be)}\n") if row else ""
    return f"""
## `{recipe_id}`
{table}
What it deploys: {marker("the services and why this topology")}

```bash
kubectl apply -f model-cache/ -n ${{NAMESPACE}}
kubectl apply -f {recipe_id.split('/', 1)[1]}/deploy.yaml -n ${{NAMESPACE}}
kubectl apply -f {recipe_id.split('/', 1)[1]}/perf.yaml -n ${{NAMESPACE}}
```

Expected performance: {marker("measured TTFT and ITL and throughput with their conditions or not yet measured")}
"""
