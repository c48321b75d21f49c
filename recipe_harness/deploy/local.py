"""The embedded default target: the recipe's twin (:mod:`recipe_harness.deploy.twin`) as real Dynamo
processes on this machine -- ``dynamo.frontend`` and one ``dynamo.mocker`` per worker replica --
with no GPU and no cluster.

Each deployment gets a private run folder (file-based discovery in ``kv/``, one log file per
process in ``logs/``), free loopback ports and a unique marker in every process's environment
(``RECIPE_HARNESS_RUN``), so runs never collide. It is ready when ``/v1/models`` lists the served
model and the frontend sees every worker instance; a process that exits, or a budget that runs
out, is a :class:`DeployError` carrying the process's last log lines. Leaving the context stops
every process group and removes the run folder (the logs are copied first when asked).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from recipe_harness.deploy import Component, DeployError, Endpoint
from recipe_harness.deploy.procs import NotReady, ProcSpec, Supervisor, free_port, sigterm_as_interrupt
from recipe_harness.deploy.tinymodel import tiny_model_dir
from recipe_harness.deploy.twin import Caps, Twin, plan
from recipe_harness.model.bundle import LoadedRecipe

DYNAMO_PYTHON_ENV = "RECIPE_HARNESS_DYNAMO_PYTHON"
SPEEDUP_ENV = "RECIPE_HARNESS_MOCKER_SPEEDUP"
DEFAULT_TIMEOUT = 60.0
LOOPBACK = "127.0.0.1"
SYSTEM_PORT_LIMIT = 32768  # DYN_SYSTEM_PORT is parsed as an i16
DP_RANK_ENDPOINT = "worker_kv_query_source_"
"""Prefix of the endpoint the mocker registers per DP rank of a prefill or aggregated worker (see :mod:`..twin`)."""
PORT_ATTEMPTS = 3
"""Starts of a deployment, each on fresh ports, when a process finds the port chosen for it taken."""
# A port taken between the harness's choice and the process's bind. The frontend exits ("Failed to
# start HTTP server: port N already in use"); a worker's runtime logs "System status server startup
# failed ... Address already in use" and runs on without its system (metrics) server, so another
# program would answer for it. Either way the deployment starts again on new ports.
_PORT_TAKEN = re.compile(r"port \d+ already in use|Address already in use|\(os error 98\)")
PLANES = ["--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]
INSTALL_HINT = (
    "install the Dynamo frontend and mocker in a side environment: `python3 bootstrap.py` or "
    "`recipe-harness setup` (creates ./.venv-dynamo), or by hand: `python3 -m venv .venv-dynamo && "
    ".venv-dynamo/bin/pip install --no-deps ai-dynamo==1.6.1 ai-dynamo-runtime==1.6.1` plus their "
    "requirements (see recipe_harness/envs.py); then pass --dynamo-python PATH or set "
    f"{DYNAMO_PYTHON_ENV}"
)
# Loopback everywhere: request plane, response streams, event plane, system (metrics) servers.
_LOOPBACK_ENV = {
    "DYN_TCP_RPC_HOST": LOOPBACK,
    "DYN_TCP_RESPONSE_STREAM_HOST": LOOPBACK,
    "DYN_EVENT_PLANE_HOST": LOOPBACK,
    "DYN_SYSTEM_HOST": LOOPBACK,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}


def find_dynamo_python(option: str | None = None, roots: list[Path] | None = None) -> Path:
    """The interpreter that runs ``dynamo.frontend`` and ``dynamo.mocker``.

    ``option`` (``--dynamo-python``), then ``$RECIPE_HARNESS_DYNAMO_PYTHON``, then
    ``<root>/.venv-dynamo/bin/python`` for each of ``roots`` (default: :func:`default_roots`), then this interpreter if it imports ``dynamo.frontend``.
    """
    chosen = option or os.environ.get(DYNAMO_PYTHON_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.exists():
            source = "--dynamo-python" if option else DYNAMO_PYTHON_ENV
            raise DeployError(f"{source} points at {path}, which does not exist; {INSTALL_HINT}")
        return path
    for root in roots if roots is not None else default_roots():
        candidate = root / ".venv-dynamo" / "bin" / "python"
        if candidate.exists():
            return candidate
    try:
        if importlib.util.find_spec("dynamo.frontend") and importlib.util.find_spec("dynamo.mocker"):
            return Path(sys.executable)
    except (ImportError, ValueError):
        pass
    raise DeployError(f"no Python with Dynamo found (looked for ./.venv-dynamo/bin/python and "
                      f"`import dynamo.frontend` here); {INSTALL_HINT}")


def default_roots() -> list[Path]:
    """The working directory and the checkout this package runs from."""
    return [Path.cwd(), Path(__file__).resolve().parents[2]]


RUN_PREFIX = "recipe-harness-"
OWNER_FILE = "owner.pid"


def sweep_stale_runs(parent: Path) -> list[Path]:
    """Remove run folders whose harness process is gone: a run killed with SIGKILL takes its
    processes with it (they die with their parent) but cannot remove its folder; the next run does."""
    removed = []
    for run_dir in parent.glob(f"{RUN_PREFIX}*"):
        try:
            pid = int((run_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's live process
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(run_dir)
    return removed


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "recipe"


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # Dynamo settings of the calling shell must not leak into the twin (namespace, ports, backends).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYN_")}
    env.update(_LOOPBACK_ENV)
    env.update(extra)
    return env


@dataclass
class LocalDeployment:
    """A running twin: its plan, processes and where they answer."""

    twin: Twin
    supervisor: Supervisor
    run_dir: Path
    endpoint: Endpoint
    ready_s: float = 0.0


@dataclass
class LocalTarget:
    name: str = "local"
    python: Path | None = None          # resolved with find_dynamo_python() when None
    python_option: str | None = None    # --dynamo-python, for that resolution
    search_roots: list[Path] | None = None  # folders whose .venv-dynamo/ is looked for
    deploy_timeout: float = DEFAULT_TIMEOUT
    keep_logs: bool = False             # keep <run dir>/logs after teardown
    logs_dest: Path | None = None       # copy each deployment's logs to <logs_dest>/<recipe-id>/
    caps: Caps = field(default_factory=Caps)
    speedup_ratio: float | None = None  # mocker speedup for non-mocker recipes (default 1: simulated real time)
    grace: float = 5.0                  # SIGTERM -> SIGKILL
    _active: dict[str, LocalDeployment] = field(default_factory=dict, repr=False)

    def _python(self) -> Path:
        if self.python is None:
            self.python = find_dynamo_python(self.python_option, self.search_roots)
        return self.python

    def _speedup(self) -> float:
        if self.speedup_ratio is not None:
            return self.speedup_ratio
        try:
            return float(os.environ.get(SPEEDUP_ENV, "1"))
        except ValueError:
            return 1.0

    @contextlib.contextmanager
    def deploy(self, recipe: LoadedRecipe, workdir: Path | None = None) -> Iterator[Endpoint]:
        """Bring the twin of ``recipe`` up, yield its :class:`Endpoint`, tear it down."""
        twin = plan(recipe, self.caps, speedup_ratio=self._speedup())
        python = self._python()
        model_dir = tiny_model_dir()
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        sweep_stale_runs(Path(workdir) if workdir is not None else Path(tempfile.gettempdir()))
        run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{_slug(recipe.id)}-", dir=workdir))
        (run_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        marker = f"{run_dir.name}-{uuid.uuid4().hex[:8]}"
        logs = run_dir / "logs"
        logs.mkdir()
        retried: list[str] = []
        try:
            with sigterm_as_interrupt():
                for attempt in range(1, PORT_ATTEMPTS + 1):
                    with Supervisor(marker, grace=self.grace) as sup:
                        try:
                            deployment = self._start(recipe, twin, python, model_dir, run_dir, sup)
                        except PortTaken as exc:
                            if attempt == PORT_ATTEMPTS:
                                raise DeployError(
                                    f"{exc}; that was start {attempt} of {PORT_ATTEMPTS}, each on fresh ports: "
                                    "some other program on this machine keeps taking the ports the harness "
                                    "picks (below the kernel's ephemeral range, "
                                    "/proc/sys/net/ipv4/ip_local_port_range); stop it or run again"
                                ) from exc
                            retried.append(str(exc))
                            continue
                        deployment.endpoint.notes.extend(
                            f"started again on fresh ports: {why}" for why in retried)
                        self._active[deployment.endpoint.base_url] = deployment
                        try:
                            yield deployment.endpoint
                        finally:
                            self._active.pop(deployment.endpoint.base_url, None)
                        return
        finally:
            self._finish(recipe.id, run_dir, logs)

    def check(self, endpoint: Endpoint) -> None:
        """Raise :class:`DeployError` (with its log tail) if a process of this deployment has exited."""
        deployment = self._active.get(endpoint.base_url)
        if deployment is not None:
            deployment.supervisor.check()

    def deployment(self, endpoint: Endpoint) -> LocalDeployment | None:
        return self._active.get(endpoint.base_url)

    # -- internals ---------------------------------------------------------------------------------

    def _start(self, recipe, twin: Twin, python: Path, model_dir: Path, run_dir: Path,
               sup: Supervisor) -> LocalDeployment:
        started = time.monotonic()
        kv = run_dir / "kv"
        scratch = run_dir / "tmp"  # Dynamo writes a logging config file a process into the temp dir
        for folder in (kv, scratch):  # empty: an earlier start's registrations must not be seen
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        logs = run_dir / "logs"
        base_env = {"DYN_FILE_KV": str(kv), "TMPDIR": str(scratch)}
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        components: list[Component] = []
        ports: dict[str, int] = {twin.frontend_service: port}
        front_log = logs / f"{_slug(twin.frontend_service)}.log"
        sup.start(ProcSpec(
            name=twin.frontend_service, role="frontend", service=twin.frontend_service, log_file=front_log,
            argv=[str(python), "-m", "dynamo.frontend", "--http-host", LOOPBACK, "--http-port", str(port),
                  *PLANES, *twin.frontend_args],
            env=_child_env(base_env),
        ))
        components.append(Component(twin.frontend_service, "frontend", twin.frontend_service,
                                    metrics_url=f"{base_url}/metrics", log_file=front_log))
        for worker in twin.workers:
            for i in range(worker.processes):
                name = f"{worker.service}-{i}"
                sys_port = ports[name] = free_port(below=SYSTEM_PORT_LIMIT)
                log = logs / f"{_slug(name)}.log"
                sup.start(ProcSpec(
                    name=name, role=worker.role, service=worker.service, log_file=log,
                    argv=[str(python), "-m", "dynamo.mocker", "--model-path", str(model_dir), *PLANES, *worker.args],
                    env=_child_env({**base_env, "DYN_SYSTEM_PORT": str(sys_port)}),
                ))
                components.append(Component(name, worker.role, worker.service,
                                            metrics_url=f"http://{LOOPBACK}:{sys_port}/metrics", log_file=log))

        def probe() -> None:
            taken = _port_taken(sup, ports)
            if taken is not None:
                raise taken
            _probe_ready(client, base_url, twin)

        with httpx.Client(timeout=2.0, trust_env=False) as client:
            try:
                sup.wait_until(probe, timeout=self.deploy_timeout, what=f"{recipe.id} (local twin)")
            except DeployError as exc:  # a process exited: because its port was taken?
                taken = _port_taken(sup, ports)
                if taken is None or isinstance(exc, PortTaken):
                    raise
                raise taken from exc
        ready_s = time.monotonic() - started
        endpoint = Endpoint(
            base_url=base_url, model=twin.model_name, target=self.name, recipe_id=recipe.id,
            components=components, logs_dir=logs, router_mode=twin.router_mode, router_kv_events=twin.router_kv_events,
            disaggregated=twin.disaggregated, tokenizer_dir=model_dir,
            notes=[*twin.notes, f"ready in {ready_s:.1f}s ({len(sup.procs)} processes)"],
        )
        if self.keep_logs:
            endpoint.notes.append(f"process logs kept in {logs}")
        return LocalDeployment(twin, sup, run_dir, endpoint, ready_s)

    def _finish(self, recipe_id: str, run_dir: Path, logs: Path) -> None:
        if self.logs_dest is not None and logs.is_dir():
            dest = Path(self.logs_dest) / recipe_id
            shutil.rmtree(dest, ignore_errors=True)
            with contextlib.suppress(OSError):
                shutil.copytree(logs, dest)
        shutil.rmtree(run_dir / "kv", ignore_errors=True)
        shutil.rmtree(run_dir / "tmp", ignore_errors=True)
        if not self.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)


class PortTaken(DeployError):
    """A process of the deployment found the port chosen for it taken by another program."""


def _port_taken(sup: Supervisor, ports: dict[str, int]) -> PortTaken | None:
    for proc in sup.procs:
        found = _PORT_TAKEN.search(proc.output())
        if found is not None:
            line = found.string[found.string.rfind("\n", 0, found.start()) + 1:].split("\n", 1)[0].strip()
            port = ports.get(proc.name)
            return PortTaken(f"{proc.name} ({proc.spec.role or 'process'}) could not bind "
                             f"{f'port {port}' if port else 'its port'}, taken by another program "
                             f"({proc.spec.log_file}: {line[:240]})")
    return None


def _probe_ready(client: httpx.Client, base_url: str, twin: Twin) -> None:
    """Raise :class:`NotReady` until the model is listed and every worker instance is registered."""
    try:
        models = client.get(f"{base_url}/v1/models")
        health = client.get(f"{base_url}/health")
    except httpx.HTTPError as exc:
        raise NotReady(f"frontend at {base_url} not answering ({type(exc).__name__})") from None
    if models.status_code != 200:
        raise NotReady(f"/v1/models answered {models.status_code}")
    try:
        ids = [m.get("id") for m in models.json().get("data", [])]
    except (ValueError, AttributeError):
        raise NotReady("/v1/models is not a JSON model list") from None
    if twin.model_name not in ids:
        raise NotReady(f"model {twin.model_name!r} not served yet (/v1/models lists {ids})")
    try:
        instances = health.json().get("instances", [])
    except (ValueError, AttributeError):
        raise NotReady(f"/health answered {health.status_code} without JSON") from None
    seen: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for inst in instances:
        if not isinstance(inst, dict):
            continue
        comp, endpoint = str(inst.get("component")), str(inst.get("endpoint"))
        if endpoint == "generate":  # one per mocker process, whatever its DP size
            seen[comp] = seen.get(comp, 0) + 1
        elif endpoint.startswith(DP_RANK_ENDPOINT):  # one per DP rank of a process with a local indexer
            ranks[comp] = ranks.get(comp, 0) + 1
    missing = {c: n for c, n in twin.expected_instances().items() if seen.get(c, 0) < n}
    if missing:
        raise NotReady("workers not registered yet: " + ", ".join(
            f"{c} {seen.get(c, 0)}/{n}" for c, n in sorted(missing.items())))
    missing = {c: n for c, n in twin.expected_dp_ranks().items() if ranks.get(c, 0) < n}
    if missing:
        raise NotReady("data-parallel ranks not registered yet: " + ", ".join(
            f"{c} {ranks.get(c, 0)}/{n}" for c, n in sorted(missing.items())))
