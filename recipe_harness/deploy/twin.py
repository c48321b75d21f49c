"""The local twin of a recipe: the recipe's own topology, run as real Dynamo processes on CPU.

One ``dynamo.frontend`` with the recipe's router mode and KV-event setting -- its Frontend
service's, or else (no Frontend service) those of the ``frontendSidecar`` the operator runs in
every pod of a worker service, the GAIE pattern -- and for every worker service one ``dynamo.mocker`` process per replica, each in the service's disaggregation role with
the served model name, data-parallel size, block size, max model length and max sequences of the
engine it stands in for (:func:`recipe_harness.model.backends.engine_config`), written by
:func:`recipe_harness.deploy.mocker.mocker_args`, the builder the Kubernetes twin uses too. Mocker recipes
keep their mocker tuning flags. Tensor/pipeline/expert parallelism and multinode layouts have no
CPU analogue: one replica is one mocker worker, which is noted.

Counts this machine cannot run are scaled down, never refused, and every reduction is a note
(reported in :attr:`Endpoint.notes <recipe_harness.deploy.Endpoint>` and the report):

- at most :attr:`Caps.processes_per_service` mocker processes per worker service,
- at most :attr:`Caps.worker_processes` mocker processes in all (the largest services shrink first,
  each keeps at least one),
- data-parallel size at most :attr:`Caps.data_parallel` per process.

Data parallelism, for every backend's flags (read by :func:`recipe_harness.model.backends.engine_config`:
vLLM ``--data-parallel-size``, SGLang ``--dp``/``--dp-size`` with or without
``--enable-dp-attention``, TensorRT-LLM attention DP, where the TP ranks are the attention DP
ranks), becomes the mocker's ``--data-parallel-size``. The mocker 1.6.1 registers DP ranks so
(``dynamo/mocker/config.py`` ``build_runtime_config``, checked by running it): each process is one
``generate`` instance of its component whatever its DP size, and each DP rank of a process that
keeps a local KV indexer (every role but decode) adds one ``worker_kv_query_source_*`` endpoint
under the same instance. :meth:`Twin.expected_instances` and :meth:`Twin.expected_dp_ranks` say
what the frontend must list before the twin is ready.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from recipe_harness.deploy.mocker import mocker_args
from recipe_harness.endpoint import DeployError
from recipe_harness.model import ROLE_DECODE, ROLE_PREFILL, ROLE_WORKER, Service, flag_value
from recipe_harness.model.backends import EngineConfig, engine_config, frontend_config
from recipe_harness.model.bundle import LoadedRecipe

FRONTEND_ROUTER_MODES = ("round-robin", "random", "power-of-two", "kv", "least-loaded", "device-aware-weighted")


def _default_caps() -> tuple[int, int, int]:
    cpus = os.cpu_count() or 2
    return max(2, min(4, cpus)), max(4, min(16, 3 * cpus)), max(4, min(16, 2 * cpus))


@dataclass(frozen=True)
class Caps:
    """How much of a recipe this machine runs: properties of the machine, never of the plan (a cluster
    twin runs every replica and every DP rank). The defaults scale with the CPU count: 2 processes a
    service, 6 in all and 4 DP ranks a process on 2 cores; each DP rank of a mocker process runs its
    own simulated scheduler."""

    processes_per_service: int = _default_caps()[0]
    worker_processes: int = _default_caps()[1]
    data_parallel: int = _default_caps()[2]


@dataclass
class WorkerTwin:
    service: str
    role: str                   # worker | prefill | decode
    replicas: int               # as declared
    processes: int              # mocker processes started (one worker each)
    args: list[str]             # mocker arguments shared by its processes (no ports, paths or discovery)
    engine: EngineConfig
    data_parallel: int = 1      # DP ranks per mocker process (--data-parallel-size, after the cap)

    @property
    def component(self) -> str:
        """The Dynamo component its workers register as (the mocker's default endpoints)."""
        return "prefill" if self.role == ROLE_PREFILL else "backend"

    @property
    def dp_rank_endpoints(self) -> int:
        """``worker_kv_query_source_*`` endpoints its processes register: one per DP rank, none for decode
        (the mocker's local indexer is off on decode workers, ``build_runtime_config``) and none without
        prefix caching (no KV events to index: checked by running the mocker 1.6.1 with
        ``--no-enable-prefix-caching``, which registers no such endpoint)."""
        if self.role == ROLE_DECODE or "--no-enable-prefix-caching" in self.args:
            return 0
        return self.processes * self.data_parallel


@dataclass
class Twin:
    recipe_id: str
    model_name: str             # the name clients use (the recipe's served model name)
    router_mode: str
    router_kv_events: bool      # a kv router listens to the workers' KV events (not --no-router-kv-events)
    frontend_service: str
    frontend_args: list[str]
    workers: list[WorkerTwin]
    notes: list[str] = field(default_factory=list)

    @property
    def disaggregated(self) -> bool:
        return any(w.role in (ROLE_PREFILL, ROLE_DECODE) for w in self.workers)

    def expected_instances(self) -> dict[str, int]:
        """Worker instances per component the frontend must see before the twin is ready."""
        out: dict[str, int] = {}
        for w in self.workers:
            out[w.component] = out.get(w.component, 0) + w.processes
        return out

    def expected_dp_ranks(self) -> dict[str, int]:
        """DP-rank endpoints (``worker_kv_query_source_*``) per component the frontend must list; a DP rank
        is never an instance of its own."""
        out: dict[str, int] = {}
        for w in self.workers:
            if w.dp_rank_endpoints:
                out[w.component] = out.get(w.component, 0) + w.dp_rank_endpoints
        return out


def _served_name(recipe: LoadedRecipe, engines: list[tuple[Service, EngineConfig]], notes: list[str]) -> str:
    names = [(s, e.served_name) for s, e in engines if e.served_name]
    chosen = next((n for s, n in names if s.role != ROLE_PREFILL), None) or (names[0][1] if names else None)
    if len({n for _, n in names}) > 1:
        notes.append("worker services serve different model names (" + ", ".join(f"{s.name}: {n}" for s, n in names)
                     + f"); the twin serves {chosen!r}")
    if chosen is None:
        chosen = recipe.recipe.model
        notes.append(f"no served model name in the workers' arguments; the twin serves {chosen!r}")
    return chosen


def _scale(requested: dict[str, int], caps: Caps) -> dict[str, int]:
    counts = {k: max(1, min(v, caps.processes_per_service)) for k, v in requested.items()}
    while sum(counts.values()) > max(caps.worker_processes, len(counts)):
        name = max(counts, key=lambda k: (counts[k], k))
        if counts[name] <= 1:
            break
        counts[name] -= 1
    return counts


def has_prefill_worker(engines: list[tuple[Service, EngineConfig]]) -> bool:
    return any(s.role == ROLE_PREFILL or c.disaggregation_mode == ROLE_PREFILL for s, c in engines)


def run_role(service: Service, cfg: EngineConfig, has_prefill: bool) -> str:
    """The role a worker runs in: a vLLM worker labelled decode without ``--disaggregation-mode``
    and with no prefill worker in the graph serves alone (upstream GAIE recipes are written so); a
    worker labelled only ``componentType: worker`` (no ``subComponentType``) whose engine runs
    ``--disaggregation-mode prefill|decode`` is that worker: the engine's flag, not the label, decides
    what it serves and the component it registers as (``prefill`` for a prefill worker; upstream
    ``deepseek-r1/trtllm/disagg/wide_ep/gb200`` names such services ``prefill`` and ``decode``)."""
    if service.role == ROLE_DECODE and cfg.backend == "vllm" and cfg.disaggregation_mode is None and not has_prefill:
        return ROLE_WORKER
    if service.role == ROLE_WORKER and cfg.disaggregation_mode in (ROLE_PREFILL, ROLE_DECODE):
        return cfg.disaggregation_mode
    return service.role


def _parallelism_note(service: Service, cfg: EngineConfig) -> str | None:
    parts = []
    if cfg.tensor_parallel > 1:
        parts.append(f"TP{cfg.tensor_parallel}")
    if cfg.pipeline_parallel > 1:
        parts.append(f"PP{cfg.pipeline_parallel}")
    if cfg.expert_parallel > 1:
        parts.append(f"EP{cfg.expert_parallel}")
    if service.node_count > 1:
        parts.append(f"{service.node_count} nodes")
    if not parts:
        return None
    return f"{service.name}: {' '.join(parts)} per replica simulated by one mocker worker"


def _sidecar_frontend(recipe: LoadedRecipe, notes: list[str]) -> Service:
    """The frontend sidecar the twin's one frontend process stands for (the first, if several)."""
    dep = recipe.deployment
    assert dep is not None
    owners = dep.sidecar_frontends
    sides = [s.frontend_sidecar for s in owners if s.frontend_sidecar is not None]
    pods = sum(max(1, s.replicas) for s in owners)
    notes.append(f"frontend sidecars ({', '.join(s.name for s in sides)}: one frontend in each of {pods} worker "
                 f"pod{'s' if pods != 1 else ''}) -> 1 frontend process serving every worker")
    modes = {s.name: frontend_config(recipe, s).router_mode for s in sides}
    if len(set(modes.values())) > 1:
        notes.append("frontend sidecars route differently (" + ", ".join(f"{k}: {v}" for k, v in modes.items())
                     + f"); the twin routes as {sides[0].name}")
    pickers = [s.name for s in dep.services if s.component_type.lower() == "epp"]
    if pickers:
        notes.append(f"{', '.join(pickers)} (endpoint picker): not run; clients reach the frontend directly")
    return sides[0]


def plan(recipe: LoadedRecipe, caps: Caps | None = None, *, speedup_ratio: float | None = None) -> Twin:
    """The twin of ``recipe``; :class:`DeployError` when the recipe has nothing to run."""
    caps = caps or Caps()
    dep = recipe.deployment
    if dep is None:
        raise DeployError(f"{recipe.id}: no loadable DynamoGraphDeployment (see the static checks)")
    workers = dep.workers
    if not workers:
        raise DeployError(f"{recipe.id}: the DynamoGraphDeployment declares no worker service "
                          "(componentType worker/prefill/decode); nothing to serve")
    notes: list[str] = []
    engines = [(s, engine_config(recipe, s)) for s in workers]
    model_name = _served_name(recipe, engines, notes)

    front = dep.frontend
    router = "round-robin"
    kv_events = True
    sidecar = front is None and bool(dep.sidecar_frontends)
    if sidecar:
        front = _sidecar_frontend(recipe, notes)
    elif front is not None and dep.sidecar_frontends:
        notes.append(f"frontend sidecars of {', '.join(s.name for s in dep.sidecar_frontends)} not run: "
                     f"the twin serves through {front.name}")
    if front is None:
        notes.append("the recipe declares no frontend; the twin adds one (round-robin)")
        front_name = "Frontend"
    else:
        fc = frontend_config(recipe, front)
        router, kv_events, front_name = fc.router_mode, fc.router_kv_events, front.name
        if front.replicas > 1 and not sidecar:
            notes.append(f"{front.name}: {front.replicas} replicas -> 1 frontend process")
    if router == "direct":
        notes.append("router mode 'direct' serves the worker an external picker (the GAIE endpoint picker) "
                     "names in each request; no picker runs here, the twin routes round-robin")
        router = "round-robin"
    if router not in FRONTEND_ROUTER_MODES:
        notes.append(f"router mode {router!r} cannot serve plain OpenAI requests here; the twin routes round-robin")
        router = "round-robin"
    frontend_args = ["--router-mode", router]
    if router == "kv" and not kv_events:
        frontend_args.append("--no-router-kv-events")

    counts = _scale({s.name: max(1, s.replicas) for s in workers}, caps)
    twins: list[WorkerTwin] = []
    has_prefill = has_prefill_worker(engines)
    for service, cfg in engines:
        n = counts[service.name]
        role = run_role(service, cfg, has_prefill)
        if role == ROLE_WORKER and role != service.role:
            notes.append(f"{service.name}: labelled {service.role}, but vLLM runs without --disaggregation-mode "
                         f"and no prefill worker exists: it serves alone (aggregated)")
        elif role != service.role:
            notes.append(f"{service.name}: labelled {service.role} (no subComponentType); its engine runs "
                         f"--disaggregation-mode {role}: a {role} worker")
        if n < service.replicas:
            notes.append(f"{service.name}: {service.replicas} replicas -> {n} mocker processes "
                         f"(cap {caps.processes_per_service} per service, {caps.worker_processes} in all)")
        args = mocker_args(recipe.id, service, cfg, role, model_name=model_name, speedup_ratio=speedup_ratio,
                           data_parallel_cap=caps.data_parallel, notes=notes,
                           kv_events_routed=router == "kv" and kv_events)
        note = _parallelism_note(service, cfg)
        if note:
            notes.append(note)
        dp = int(flag_value(args, "--data-parallel-size") or 1)
        twins.append(WorkerTwin(service=service.name, role=role, replicas=service.replicas,
                                processes=n, args=args, engine=cfg, data_parallel=dp))
    roles = {t.role for t in twins}
    if ROLE_DECODE in roles and ROLE_PREFILL not in roles:
        notes.append("decode workers without prefill workers: decode workers prefill locally")
    if ROLE_PREFILL in roles and not roles & {ROLE_DECODE, "worker"}:
        raise DeployError(f"{recipe.id}: prefill workers but no decode or aggregated worker; nothing serves the model")
    return Twin(recipe_id=recipe.id, model_name=model_name, router_mode=router, router_kv_events=kv_events,
                frontend_service=front_name,
                frontend_args=frontend_args, workers=twins, notes=notes)
