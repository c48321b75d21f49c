"""What a deploy target hands back (:class:`Endpoint` and its :class:`Component` list) and how a
deployment fails (:class:`DeployError`, :class:`DeploySkip`).

These types are shared by the targets, the twin plans they run, the process supervisor, the smoke
and perf checks and the pytest plugin, so they live below all of them: every import of them runs
downward. :mod:`recipe_harness.deploy` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class DeployError(Exception):
    """The recipe could not be brought up; the message says which component failed and why
    (with its last log lines)."""


class DeploySkip(Exception):
    """The recipe cannot be deployed on this target for a reason that is not the recipe's fault
    (the cluster lacks what it needs, it needs CRDs or images the harness cannot provide); the
    message says what is missing. Checks that need the deployment are skipped with it."""


@dataclass
class Component:
    """One running piece of the deployment (a process or a pod)."""

    name: str                  # e.g. "Frontend", "VllmDecodeWorker-0"
    role: str                  # frontend | worker | prefill | decode | ...
    service: str = ""          # the DGD service it realises
    metrics_url: str | None = None
    log_file: Path | None = None


@dataclass
class Endpoint:
    """Where a deployed recipe answers OpenAI API requests."""

    base_url: str                       # e.g. http://127.0.0.1:38123 (no trailing /v1)
    model: str                          # served model name clients must use
    target: str                         # "local" | "kubernetes"
    recipe_id: str
    components: list[Component] = field(default_factory=list)
    logs_dir: Path | None = None
    router_mode: str = "round-robin"    # frontend router mode (kv, round-robin, random)
    router_kv_events: bool = True       # a kv router indexes the workers' KV events (off: --no-router-kv-events)
    disaggregated: bool = False
    tokenizer_dir: Path | None = None   # a local tokenizer matching what the workers use, if any
    notes: list[str] = field(default_factory=list)
