"""The performance model: NVIDIA AIConfigurator, run offline in its own environment (``.venv-aic``).

Everything that knows AIConfigurator is in this one module, so another model (its successor
``aisimulate``) replaces this file and nothing else. The harness side builds
:class:`EstimateRequest` values and calls :func:`estimate`; this same file, run as a script by the
side environment's Python, reads a JSON batch of requests on stdin, answers each in process
(``aiconfigurator.cli.api.cli_estimate``, the function behind ``aiconfigurator cli estimate``) and
prints one JSON document on stdout. Only the standard library is imported at module level, so
the file runs under either Python.

Speed: the first estimate of a (system, backend) pair loads its kernel database (3-7 s); later
ones take about 10 ms. AIConfigurator reads its database index with PyYAML's pure-Python loader
(``aiconfigurator_core/sdk/perf_database.py`` ``get_supported_databases``); the runner swaps in
the C loader, which parses the same YAML, and resolves each pair's database version once.
Requests are grouped by (system, backend) and the groups are shared among ``workers`` processes.

Backend version: the Dynamo release of the worker image (``vllm-runtime:1.6.1``) is looked up in
AIConfigurator's own Dynamo-to-engine matrix (``aiconfigurator/generator/facts/runtimes/dynamo.yaml``);
a release the matrix does not list, or an engine version the system's database does not hold,
falls back to the newest database version, and the result says which and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

AIC_VERSION = "0.12.0"
ENV_NAME = ".venv-aic"
ENV_VARIABLE = "RECIPE_HARNESS_AIC_PYTHON"
BACKENDS = ("vllm", "sglang", "trtllm")


class AicUnavailable(Exception):
    """The model's environment is missing or broken; the message says how to get it."""


@dataclass(frozen=True)
class Role:
    """One kind of worker as the model sees it: engine parallelism, sequences per replica, replicas."""

    tp: int = 1
    pp: int = 1
    attention_dp: int = 1
    moe_tp: int | None = None
    moe_ep: int | None = None
    batch_size: int = 1          # sequences one replica runs at once (per attention-DP rank)
    workers: int = 1             # replicas


@dataclass(frozen=True)
class EstimateRequest:
    key: str
    model: str
    system: str
    backend: str
    isl: int
    osl: int
    mode: str = "agg"            # agg | disagg
    agg: Role | None = None
    prefill: Role | None = None
    decode: Role | None = None
    dynamo_version: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class EstimateResult:
    key: str
    ok: bool
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    request_latency_ms: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_per_gpu: float | None = None
    tokens_per_s_per_user: float | None = None
    seq_per_s: float | None = None
    num_gpus: int | None = None
    memory_gb: dict[str, float] = field(default_factory=dict)    # role -> GB per GPU
    backend_version: str | None = None
    version_source: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    error_kind: str = ""         # oom (weights) | kv (the batch's KV cache) | model | system | unsupported
    max_batch: int | None = None # with kv: the largest batch per replica (decode replica when disaggregated) that fits
    seconds: float = 0.0

    @classmethod
    def from_json(cls, data: dict) -> EstimateResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- harness side


def python_candidates(option: str | None, roots: list[Path]) -> list[Path]:
    if option:
        return [Path(option)]
    if os.environ.get(ENV_VARIABLE):
        return [Path(os.environ[ENV_VARIABLE])]
    return [root / ENV_NAME / "bin" / "python" for root in roots]


def find_python(option: str | None, roots: list[Path]) -> Path:
    """The Python of the model's environment: ``option``, ``$RECIPE_HARNESS_AIC_PYTHON`` or ``<root>/.venv-aic``."""
    candidates = python_candidates(option, roots)
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise AicUnavailable(f"no AIConfigurator environment (tried {tried}): run `recipe-harness setup --only aic` "
                         f"(or `python3 bootstrap.py`), or pass --aic-python PATH to a Python with "
                         f"aiconfigurator=={AIC_VERSION} installed")


def _shards(requests: list[EstimateRequest], workers: int) -> list[list[EstimateRequest]]:
    """Groups by (system, backend), the biggest first, dealt to the least loaded shard."""
    groups: dict[tuple[str, str], list[EstimateRequest]] = {}
    for r in requests:
        groups.setdefault((r.system, r.backend), []).append(r)
    shards: list[list[EstimateRequest]] = [[] for _ in range(max(1, min(workers, len(groups))))]
    loads = [0] * len(shards)
    for _, reqs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        i = loads.index(min(loads))
        shards[i].extend(reqs)
        loads[i] += 1
    return [s for s in shards if s]


CACHE_VARIABLE = "RECIPE_HARNESS_PREDICT_CACHE"


def default_cache() -> Path | None:
    """``$RECIPE_HARNESS_PREDICT_CACHE`` (``off``: none), else ``$XDG_CACHE_HOME/recipe-harness/predict``."""
    value = os.environ.get(CACHE_VARIABLE)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none", "0") else Path(value)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "recipe-harness" / "predict"


def _cache_file(cache: Path, req: EstimateRequest) -> Path:
    import hashlib

    body = dict(req.to_json(), key="")
    digest = hashlib.sha256(json.dumps([AIC_VERSION, body], sort_keys=True).encode()).hexdigest()[:32]
    return cache / f"aic-{AIC_VERSION}" / f"{digest}.json"


def estimate(requests: list[EstimateRequest], python: Path, *, timeout_s: float = 300.0,
             workers: int = 2, cache: Path | None = None) -> dict[str, EstimateResult]:
    """Estimate every request; returns results by key. Raises :class:`AicUnavailable` when the runner
    cannot run or answer (its stderr tail in the message); per-request problems are results with ``ok=False``.
    With ``cache``, answers are kept per request and model version (an estimate is a pure function of both)."""
    cached: dict[str, EstimateResult] = {}
    if cache is not None:
        for r in requests:
            f = _cache_file(cache, r)
            try:
                cached[r.key] = EstimateResult.from_json(dict(json.loads(f.read_text()), key=r.key))
            except (OSError, ValueError, TypeError):
                continue
    todo = [r for r in requests if r.key not in cached]
    fresh = _estimate(todo, python, timeout_s=timeout_s, workers=workers)
    if cache is not None:
        for r in todo:
            res = fresh.get(r.key)
            if res is not None and res.error_kind not in ("model", "system"):
                f = _cache_file(cache, r)
                try:
                    f.parent.mkdir(parents=True, exist_ok=True)
                    tmp = f.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(asdict(res)))
                    os.replace(tmp, f)
                except OSError:
                    pass
    return {**cached, **fresh}


def _estimate(requests: list[EstimateRequest], python: Path, *, timeout_s: float,
              workers: int) -> dict[str, EstimateResult]:
    if not requests:
        return {}
    procs = []
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    try:
        for shard in _shards(requests, workers):
            p = subprocess.Popen([str(python), str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
            procs.append((p, json.dumps({"requests": [r.to_json() for r in shard]})))
        deadline = time.monotonic() + timeout_s
        out: dict[str, EstimateResult] = {}
        for p, payload in procs:
            try:
                stdout, stderr = p.communicate(payload.encode(), timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AicUnavailable(f"AIConfigurator ({python}) did not answer within {timeout_s:g} s "
                                     "(--predict-timeout)") from None
            if p.returncode != 0:
                tail = "\n".join(stderr.decode(errors="replace").strip().splitlines()[-8:])
                raise AicUnavailable(f"AIConfigurator runner ({python}) exited with {p.returncode}: {tail}")
            try:
                data = json.loads(stdout.decode())
            except ValueError as exc:
                raise AicUnavailable(f"AIConfigurator runner ({python}) printed no JSON result: {exc}") from None
            for item in data["results"]:
                res = EstimateResult.from_json(item)
                out[res.key] = res
        return out
    finally:
        for p, _ in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
                p.wait()


# --------------------------------------------------------------------------- model side (runs in .venv-aic)


def _fast_yaml() -> None:
    """Parse AIConfigurator's YAML with the C loader (same results; its database index is ~500 files)."""
    import yaml

    if getattr(yaml, "CSafeLoader", None) is not None:
        yaml.safe_load = lambda stream: yaml.load(stream, Loader=yaml.CSafeLoader)  # noqa: S506 - a safe loader


def _bundled(kind: str) -> Path:
    import aiconfigurator_core

    return Path(aiconfigurator_core.__file__).parent / kind


def _dynamo_matrix() -> dict[str, dict[str, str]]:
    import aiconfigurator
    import yaml

    path = Path(aiconfigurator.__file__).parent / "generator" / "facts" / "runtimes" / "dynamo.yaml"
    try:
        return {str(k): {b: str(v) for b, v in row.items()} for k, row in (yaml.safe_load(path.read_text()) or {})
                .get("matrix", {}).items()}
    except OSError:
        return {}


class _Model:
    def __init__(self) -> None:
        from aiconfigurator_core.sdk import perf_database

        self.db = perf_database
        self.matrix = _dynamo_matrix()
        self.versions: dict[tuple[str, str], list[str]] = {}
        self.latest: dict[tuple[str, str], str | None] = {}

    def version(self, system: str, backend: str, dynamo: str | None) -> tuple[str | None, str]:
        pair = (system, backend)
        if pair not in self.latest:
            self.latest[pair] = self.db.get_latest_database_version(system=system, backend=backend)
            try:
                supported = self.db.get_supported_databases().get(system, {}).get(backend, [])
            except Exception:  # noqa: BLE001 - an index it cannot list still has its latest version
                supported = []
            self.versions[pair] = [str(v) for v in supported]
        latest = self.latest[pair]
        newest = max(self.matrix, key=_version_key) if self.matrix else None
        if dynamo and dynamo in self.matrix and backend in self.matrix[dynamo]:
            wanted = self.matrix[dynamo][backend]
            if wanted in self.versions[pair]:
                return wanted, f"Dynamo {dynamo} ships {backend} {wanted} (AIConfigurator's Dynamo matrix)"
            return latest, (f"Dynamo {dynamo} ships {backend} {wanted}, which the {system} database lacks: "
                            f"newest database {latest}")
        if dynamo:
            return latest, (f"Dynamo {dynamo} is not in AIConfigurator {AIC_VERSION}'s Dynamo matrix (newest {newest}): "
                            f"newest {system} {backend} database {latest}")
        return latest, f"image tag names no Dynamo release: newest {system} {backend} database {latest}"

    def run(self, req: dict) -> dict:
        from aiconfigurator.cli.api import cli_estimate

        started = time.monotonic()
        res: dict = {"key": req["key"], "ok": False}
        model, system, backend = req["model"], req["system"], req["backend"]
        if not (_bundled("systems") / f"{system}.yaml").is_file():
            return {**res, "error_kind": "system", "error": f"AIConfigurator {AIC_VERSION} has no system {system!r}"}
        if not (_bundled("model_configs") / f"{model.replace('/', '--')}_config.json").is_file():
            return {**res, "error_kind": "model",
                    "error": f"{model} is not among AIConfigurator {AIC_VERSION}'s bundled models "
                             f"(aiconfigurator_core/model_configs); it would need the model's config.json from the Hub"}
        try:
            version, source = self.version(system, backend, req.get("dynamo_version"))
        except Exception as exc:  # noqa: BLE001
            return {**res, "error_kind": "system", "error": f"no {backend} database for {system}: {exc}"}
        if version is None:
            return {**res, "error_kind": "system", "error": f"AIConfigurator has no {backend} database for {system}"}
        kw: dict = dict(mode=req["mode"], backend_name=backend, backend_version=version, isl=req["isl"], osl=req["osl"])
        if req["mode"] == "agg":
            a = req["agg"]
            kw.update(tp_size=a["tp"], pp_size=a["pp"], attention_dp_size=a["attention_dp"], moe_tp_size=a["moe_tp"],
                      moe_ep_size=a["moe_ep"], batch_size=a["batch_size"])
        else:
            p, d = req["prefill"], req["decode"]
            kw.update(tp_size=d["tp"], pp_size=d["pp"],
                      prefill_tp_size=p["tp"], prefill_pp_size=p["pp"], prefill_attention_dp_size=p["attention_dp"],
                      prefill_moe_tp_size=p["moe_tp"], prefill_moe_ep_size=p["moe_ep"],
                      prefill_batch_size=p["batch_size"], prefill_num_workers=p["workers"],
                      decode_tp_size=d["tp"], decode_pp_size=d["pp"], decode_attention_dp_size=d["attention_dp"],
                      decode_moe_tp_size=d["moe_tp"], decode_moe_ep_size=d["moe_ep"],
                      decode_batch_size=d["batch_size"], decode_num_workers=d["workers"])
        try:
            r = cli_estimate(model, system, **kw)
        except Exception as exc:  # noqa: BLE001 - every failure is reported with the model's own words
            text = " ".join(str(exc).split())[:600] or type(exc).__name__
            kind = "oom" if text.startswith("OOM") or "does not fit" in text else "unsupported"
            out = {**res, "error_kind": kind, "error": text, "backend_version": version, "version_source": source}
            if kind == "oom":
                out.update(self._capacity(model, system, kw, req))
            return {**out, "seconds": round(time.monotonic() - started, 3)}
        raw = r.raw
        memory = ({"prefill": raw.get("(p)memory"), "decode": raw.get("(d)memory")} if req["mode"] == "disagg"
                  else {"agg": raw.get("memory")})
        warnings = [r.kv_cache_warning] if r.kv_cache_warning else []
        return {**res, "ok": True, "ttft_ms": _f(r.ttft), "tpot_ms": _f(r.tpot),
                "request_latency_ms": _f(raw.get("request_latency")), "tokens_per_s": _f(raw.get("tokens/s")),
                "tokens_per_s_per_gpu": _f(raw.get("tokens/s/gpu")), "tokens_per_s_per_user": _f(raw.get("tokens/s/user")),
                "seq_per_s": _f(raw.get("seq/s")), "num_gpus": int(raw.get("num_total_gpus") or 0),
                "memory_gb": {k: float(v) for k, v in memory.items() if v is not None},
                "backend_version": version, "version_source": source, "warnings": warnings,
                "seconds": round(time.monotonic() - started, 3)}


    def _capacity(self, model: str, system: str, kw: dict, req: dict) -> dict:
        """After an OOM: does one sequence per worker fit? If so the weights fit and the KV cache cannot hold the
        batch: the largest batch that fits (bisection on the serving role's batch size) is ``max_batch``."""
        from aiconfigurator.cli.api import cli_estimate

        field_name = "batch_size" if req["mode"] == "agg" else "decode_batch_size"
        wanted = int(kw[field_name])

        def fits(batch: int) -> bool:
            trial = dict(kw, **{field_name: batch})
            if req["mode"] == "disagg":
                trial["prefill_batch_size"] = min(int(kw["prefill_batch_size"]), batch)
            try:
                r = cli_estimate(model, system, **trial)
            except Exception:  # noqa: BLE001 - any failure counts as not fitting
                return False
            return not r.kv_cache_warning

        if wanted <= 1 or not fits(1):
            return {"error_kind": "oom"}
        low, high = 1, wanted   # fits(low), not fits(high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if fits(mid) else (low, mid)
        return {"error_kind": "kv", "max_batch": low}


def _f(value) -> float | None:
    try:
        return None if value is None else round(float(value), 4)
    except (TypeError, ValueError):
        return None


def _version_key(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in text.replace(".post", ".").split("."))


def _serve() -> int:
    import contextlib
    import logging

    real_stdout = sys.stdout
    batch = json.loads(sys.stdin.read())
    results = []
    with contextlib.redirect_stdout(sys.stderr):    # the model's progress lines are not the answer
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        _fast_yaml()
        model = _Model()
        for req in batch["requests"]:
            results.append(model.run(req))
    real_stdout.write(json.dumps({"aiconfigurator": AIC_VERSION, "results": results}) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
