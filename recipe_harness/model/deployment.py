"""The normalised recipe model's types: :class:`Deployment`, its services, mounts and PVCs.

The version readers (:mod:`.v1alpha1`, :mod:`.v1beta1`) build these; :mod:`recipe_harness.model`
picks the reader for a document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from recipe_harness.load.manifests import Document, PathT
from recipe_harness.model.cmdline import flag_value

ROLE_FRONTEND = "frontend"
ROLE_WORKER = "worker"      # aggregated worker
ROLE_PREFILL = "prefill"
ROLE_DECODE = "decode"
ROLE_PLANNER = "planner"
ROLE_OTHER = "other"
WORKER_ROLES = (ROLE_WORKER, ROLE_PREFILL, ROLE_DECODE)
SIDECAR_CONTAINER = "sidecar-frontend"  # the operator's name for a frontend sidecar container


@dataclass
class Mount:
    """A volume mounted into a service: a DGD PVC (``pvc``) or a pod volume by name."""

    name: str
    mount_path: str
    pvc: str | None = None  # PVC claim name when known
    path: PathT = ()


@dataclass
class EnvVar:
    name: str
    value: str | None = None
    secret: str | None = None  # secretKeyRef name
    secret_key: str | None = None
    config_map: str | None = None
    path: PathT = ()


@dataclass
class Service:
    """One component of the graph (frontend, worker, prefill, decode, planner ...)."""

    name: str
    role: str
    component_type: str = ""
    sub_component_type: str = ""
    replicas: int = 1
    gpus: int = 0               # GPUs per node (pod) of one replica
    node_count: int = 1         # nodes per replica (multinode)
    image: str | None = None
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)  # command + args, shell scripts split into words
    env: list[EnvVar] = field(default_factory=list)
    env_from_secrets: list[str] = field(default_factory=list)
    env_from_config_maps: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    volumes: dict[str, dict] = field(default_factory=dict)  # pod volumes by name
    resources: dict[str, Any] = field(default_factory=dict)
    shared_memory: str | None = None
    working_dir: str | None = None
    path: PathT = ()           # document path of the service node
    args_path: PathT = ()      # document path of its args (or command) list
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # The OpenAI frontend the operator runs in every pod of this service (``frontendSidecar``, the
    # GAIE pattern), as a frontend Service named ``<service>/<container>``; not in Deployment.services.
    frontend_sidecar: Service | None = None

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.node_count * self.replicas

    @property
    def gpus_per_replica(self) -> int:
        return self.gpus * self.node_count

    @property
    def is_worker(self) -> bool:
        return self.role in WORKER_ROLES

    def flag(self, *names: str, default: str | None = None) -> str | None:
        """Value of the last of ``names`` in the argv (``--x v`` or ``--x=v``); ``""`` for a bare flag."""
        return flag_value(self.argv, *names, default=default)

    def has_flag(self, *names: str) -> bool:
        return flag_value(self.argv, *names) is not None

    def env_value(self, name: str) -> str | None:
        for var in self.env:
            if var.name == name:
                return var.value
        return None

    @property
    def python_module(self) -> str | None:
        """The module run with ``python -m`` (``dynamo.vllm``, ``dynamo.frontend`` ...), if any."""
        for i, word in enumerate(self.argv):
            if word == "-m" and i + 1 < len(self.argv):
                return self.argv[i + 1]
        return None


@dataclass
class PVC:
    name: str
    create: bool = False
    size: str | None = None
    storage_class: str | None = None
    access_mode: str | None = None
    path: PathT = ()


@dataclass
class Deployment:
    """A DynamoGraphDeployment, normalised."""

    name: str
    api_version: str
    document: Document
    namespace: str | None = None
    framework: str | None = None   # backendFramework: vllm | sglang | trtllm
    services: list[Service] = field(default_factory=list)
    pvcs: list[PVC] = field(default_factory=list)
    env: list[EnvVar] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return self.document.file

    @property
    def frontends(self) -> list[Service]:
        return [s for s in self.services if s.role == ROLE_FRONTEND]

    @property
    def workers(self) -> list[Service]:
        return [s for s in self.services if s.is_worker]

    @property
    def frontend(self) -> Service | None:
        fronts = self.frontends
        return fronts[0] if fronts else None

    @property
    def sidecar_frontends(self) -> list[Service]:
        """Services whose pods run a frontend sidecar (each pod serves the API on its own)."""
        return [s for s in self.services if s.frontend_sidecar is not None]

    @property
    def frontend_service_name(self) -> str | None:
        """Kubernetes Service of the frontend: ``<dgd-name>-<lowercased service name>``."""
        front = self.frontend
        return f"{self.name}-{front.name.lower()}" if front else None

    @property
    def total_gpus(self) -> int:
        return sum(s.total_gpus for s in self.services)

    @property
    def is_disaggregated(self) -> bool:
        roles = {s.role for s in self.workers}
        return ROLE_PREFILL in roles or ROLE_DECODE in roles

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


_SUFFIX: dict[str, int | Decimal] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity (``500m``, ``16Gi``, ``4``) as a number; ``None`` if unparsable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value.strip())
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    return number * Decimal(_SUFFIX[m.group(2)]) if m.group(2) else number
