"""One namespace per recipe run: created labelled as the harness's, deleted (and waited for) at
the end, on failure, on Ctrl-C/SIGTERM, and found again by its label after a run that was killed.

Nothing outside a namespace carrying :data:`MANAGED_BY` is ever deleted.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .client import ApiError, Kube
from .resources import NAMESPACE

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "recipe-harness"
RUN_KEY = "recipe-harness/run"
RECIPE_ANNOTATION = "recipe-harness/recipe"
STARTED_ANNOTATION = "recipe-harness/started"
OWNER_ANNOTATION = "recipe-harness/owner"
SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY}"


def namespace_name(prefix: str, recipe_id: str, suffix: str | None = None) -> str:
    """``<prefix>-<recipe-slug>-<random>``, a valid DNS label of at most 63 characters."""
    suffix = suffix or secrets.token_hex(3)
    slug = re.sub(r"[^a-z0-9]+", "-", recipe_id.lower()).strip("-") or "recipe"
    prefix = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-") or "rh"
    room = 63 - len(prefix) - len(suffix) - 2
    slug = slug[:max(room, 1)].strip("-") or "r"
    return f"{prefix}-{slug}-{suffix}"


def is_harness_namespace(ns: dict[str, Any]) -> bool:
    labels = (ns.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_KEY) == MANAGED_BY


@dataclass
class RunNamespace:
    kube: Kube
    name: str
    run_id: str

    def path(self) -> str:
        return NAMESPACE.path(name=self.name)


def create_namespace(kube: Kube, prefix: str, recipe_id: str, run_id: str, attempts: int = 3) -> RunNamespace:
    """Create a fresh namespace (a new random suffix on a name collision)."""
    last: ApiError | None = None
    for _ in range(attempts):
        name = namespace_name(prefix, recipe_id)
        body = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY_KEY: MANAGED_BY, RUN_KEY: run_id},
                "annotations": {
                    RECIPE_ANNOTATION: recipe_id,
                    STARTED_ANNOTATION: datetime.now(UTC).isoformat(timespec="seconds"),
                    OWNER_ANNOTATION: f"{socket.gethostname()}/{os.getpid()}",
                },
            },
        }
        try:
            kube.request("POST", NAMESPACE.path(), body=body)
            return RunNamespace(kube, name, run_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            last = exc
    raise last or ApiError(409, "AlreadyExists", "no free namespace name")


def delete_namespace(kube: Kube, name: str, *, wait: float = 120.0, poll: float = 0.5) -> bool:
    """Delete a harness namespace and wait until it is gone; ``True`` when it is.

    Refuses (``ApiError`` 412) to touch a namespace that is not labelled as the harness's.
    """
    path = NAMESPACE.path(name=name)
    current = kube.get_or_none(path)
    if current is None:
        return True
    if not is_harness_namespace(current):
        raise ApiError(412, "NotHarnessNamespace",
                       f"namespace {name} is not labelled {SELECTOR}; the harness deletes only its own namespaces",
                       "DELETE", path)
    if not (current.get("metadata") or {}).get("deletionTimestamp"):
        kube.delete(path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if kube.get_or_none(path) is None:
            return True
        time.sleep(poll)
    return kube.get_or_none(path) is None


def list_harness_namespaces(kube: Kube, prefix: str | None = None) -> list[dict[str, Any]]:
    """Namespaces labelled as the harness's (label-selected, then checked again here)."""
    listing = kube.get(NAMESPACE.path(), labelSelector=SELECTOR) or {}
    out = []
    for ns in listing.get("items") or []:
        if not is_harness_namespace(ns):
            continue
        if prefix and not ((ns.get("metadata") or {}).get("name") or "").startswith(prefix + "-"):
            continue
        out.append(ns)
    return out


class CleanupRegistry:
    """Namespaces this process created and has not deleted yet.

    The target deletes its namespace in ``finally``; this registry is the last line for what
    ``finally`` cannot reach (the process exiting from a signal handler): :meth:`drain` runs
    at exit and from the SIGTERM handler the pytest plugin installs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, tuple[Kube, float]] = {}
        self._atexit = False

    def add(self, kube: Kube, name: str, wait: float) -> None:
        with self._lock:
            self._live[name] = (kube, wait)
            if not self._atexit:
                atexit.register(self.drain)
                self._atexit = True

    def discard(self, name: str) -> None:
        with self._lock:
            self._live.pop(name, None)

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._live)

    def drain(self) -> list[str]:
        """Delete every namespace still registered; returns those that could not be deleted."""
        with self._lock:
            live = dict(self._live)
            self._live.clear()
        left = []
        for name, (kube, wait) in live.items():
            try:
                if not delete_namespace(kube, name, wait=wait):
                    left.append(name)
            except (ApiError, OSError):
                left.append(name)
        return left


REGISTRY = CleanupRegistry()
