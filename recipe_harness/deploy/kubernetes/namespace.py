"""One namespace per recipe run: created labelled as the harness's, deleted (and waited for) at
the end, on failure, on Ctrl-C/SIGTERM, and found again by its label after a run that was killed.

Run namespaces are short (``rh-<recipe slug>-<6 hex>``, at most 20 characters with the default
prefix): the Dynamo operator labels every pod ``nvidia.com/dynamo-namespace=<namespace>-<dgd name>``,
a label value of at most 63 characters (see :mod:`recipe_harness.operator_names`). The recipe id,
the start time and the owning process are annotations, which ``recipe-harness clean`` reads.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recipe_harness.deploy.kubernetes.analysis import OPERATOR_FINALIZER
from recipe_harness.deploy.kubernetes.client import ApiError, Kube, KubeError
from recipe_harness.deploy.kubernetes.client import poll as until
from recipe_harness.deploy.kubernetes.resources import NAMESPACE, ResourceType
from recipe_harness.operator_names import (
    DNS_LABEL_MAX,
    DYNAMO_NAMESPACE_LABEL,
    LABEL_VALUE_MAX,
    MIN_NAMESPACE,
    RUN_NAMESPACE_MAX,
    graph_names,
    namespace_names,
    namespace_problem,
    namespace_room,
)

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "recipe-harness"
RUN_KEY = "recipe-harness/run"
RECIPE_ANNOTATION = "recipe-harness/recipe"
STARTED_ANNOTATION = "recipe-harness/started"
OWNER_ANNOTATION = "recipe-harness/owner"
SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY}"


SUFFIX_HEX = 6
"""Random hex characters that make a run namespace unique (a name collision gets a new suffix)."""
SLUG_MAX = RUN_NAMESPACE_MAX - len("rh") - 2 - SUFFIX_HEX
"""At most this much of the recipe id goes in a run namespace: ``rh-<10>-<6 hex>`` is 20 characters."""


class NotHarnessNamespace(KubeError):
    """A namespace the harness did not create (it never deletes those)."""


class NamespaceBudgetError(ValueError):
    """No run namespace name fits the operator's label limits for this DGD (see :func:`namespace_name`)."""


class OperatorSkipsNamespace(ValueError):
    """A namespace name the Dynamo operator never reconciles (it contains :data:`OPERATOR_SKIPPED`)."""


OPERATOR_SKIPPED = "ephemeral"
"""A cluster-wide Dynamo operator drops every event of a namespace whose name contains this
(``EphemeralDeploymentEventFilter``, deploy/operator/internal/controller_common/predicate.go): a
DGD there would never be reconciled, so no run namespace contains it."""


def operator_skip_problem(namespace: str, option: str) -> str | None:
    """Why the Dynamo operator would never reconcile ``namespace`` (set by ``option``), or ``None``."""
    if OPERATOR_SKIPPED not in namespace:
        return None
    return (f"{option} {namespace!r} contains {OPERATOR_SKIPPED!r}: a cluster-wide Dynamo operator ignores every "
            f"namespace whose name contains {OPERATOR_SKIPPED!r} (EphemeralDeploymentEventFilter), so the DGD "
            f"would never be reconciled; choose a {option} without {OPERATOR_SKIPPED!r}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _without_skipped(slug: str) -> str:
    """``slug`` with every ``ephemeral`` shortened to ``eph`` (again, until none is left)."""
    while OPERATOR_SKIPPED in slug:
        slug = slug.replace(OPERATOR_SKIPPED, "eph")
    return slug


def namespace_name(prefix: str, recipe_id: str, suffix: str | None = None, *, dgd_name: str | None = None) -> str:
    """A short run namespace, ``<prefix>-<recipe slug>-<6 hex>`` (20 characters with the default prefix).

    With ``dgd_name`` the name also leaves room for the operator's label
    ``nvidia.com/dynamo-namespace=<namespace>-<dgd_name>`` (63 characters): the slug shrinks, down to
    none (``<prefix>-<6 hex>``); when even that does not fit, :class:`NamespaceBudgetError` says by how
    much and what to shorten. The full recipe id goes in the namespace's annotation, not its name.
    No name contains ``ephemeral`` (the Dynamo operator skips such namespaces): a recipe id's is
    shortened to ``eph``, a prefix holding it is refused (:class:`OperatorSkipsNamespace`).
    """
    suffix = suffix or secrets.token_hex(SUFFIX_HEX // 2)
    clean_prefix = _slug(prefix) or "rh"
    skipped = operator_skip_problem(clean_prefix, "--namespace-prefix")
    if skipped:
        raise OperatorSkipsNamespace(skipped)
    limit = DNS_LABEL_MAX
    if dgd_name is not None:
        limit = min(limit, namespace_room(dgd_name))
    fixed = len(clean_prefix) + 1 + len(suffix)
    if fixed > limit:
        why = (f"the DGD name {dgd_name!r} ({len(dgd_name)} characters) leaves {limit} for the namespace in the "
               f"operator's label {DYNAMO_NAMESPACE_LABEL}=<namespace>-<dgd> (limit {LABEL_VALUE_MAX})"
               if dgd_name is not None and limit < DNS_LABEL_MAX else f"a namespace name is at most {limit} characters")
        fixes = []
        if limit - len(suffix) - 1 >= 2:
            fixes.append(f"use a --namespace-prefix of at most {limit - len(suffix) - 1} characters")
        if dgd_name is not None:
            fixes.append(f"shorten metadata.name of the DGD (at most {LABEL_VALUE_MAX - 1 - MIN_NAMESPACE} "
                         f"characters leave room for a {MIN_NAMESPACE}-character namespace)")
        raise NamespaceBudgetError(
            f"no run namespace fits: --namespace-prefix {clean_prefix!r} plus the {len(suffix) + 1}-character "
            f"suffix is {fixed} characters, but {why}; " + " or ".join(fixes))
    room = min(SLUG_MAX, limit - fixed - 1)
    slug = _without_skipped(_slug(recipe_id))[:max(room, 0)].strip("-")
    return f"{clean_prefix}-{slug}-{suffix}" if slug else f"{clean_prefix}-{suffix}"


def label_budget_problems(namespace: str, dgd_name: str, components: Sequence[str],
                          workers: Sequence[str] = ()) -> list[str]:
    """What the operator would make invalid if ``dgd_name`` with ``components`` ran in ``namespace``.

    Each message names the label or object, its value and length, the limit, and how to fix it. Names
    only some operator versions make (worker names with a spec hash, for ``workers``) are reported
    too, marked as such. Empty when everything fits.
    """
    out = []
    bad_ns = namespace_problem(namespace)
    if bad_ns:
        out.append(f"namespace {namespace!r} {bad_ns}; use a shorter --namespace-prefix of lowercase letters, "
                   "digits and '-'")
    for name in namespace_names(namespace, dgd_name):
        why = name.problem()
        if why:
            out.append(f"{name.describe()} {why}: the namespace {namespace!r} ({len(namespace)}) + '-' + the DGD "
                       f"name {dgd_name!r} ({len(dgd_name)}); use a shorter --namespace-prefix (a namespace of at "
                       f"most {max(namespace_room(dgd_name), 0)} characters) or a shorter DGD metadata.name")
    for name in graph_names(dgd_name, components, workers):
        why = name.problem()
        if why:
            whose = f" of component {name.component!r}" if name.component else ""
            fix = ("shorten the DGD metadata.name" + (" or the component's name" if name.component else ""))
            if name.dns1035 and "DNS-1035" in why:
                fix = "start the DGD metadata.name with a lowercase letter"
            note = " (operators that roll workers by spec hash)" if name.optional else ""
            out.append(f"{name.describe()}{whose} {why}{note}; {fix}")
    return out


def owner_of(ns: dict[str, Any]) -> tuple[str, int] | None:
    """(host, pid) of the process that created a run namespace, from its owner annotation."""
    raw = ((ns.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION) or ""
    host, sep, pid = str(raw).rpartition("/")
    if not sep or not host or not pid.isdigit():
        return None
    return host, int(pid)


def started_at(ns: dict[str, Any]) -> datetime | None:
    """When the run began: its start annotation, else the namespace's creationTimestamp."""
    meta = ns.get("metadata") or {}
    for raw in (((meta.get("annotations") or {}).get(STARTED_ANNOTATION)), meta.get("creationTimestamp")):
        if not raw:
            continue
        try:
            when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


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


def run_metadata(recipe_id: str, run_id: str) -> dict[str, dict[str, str]]:
    """The labels and annotations that mark what one run made -- its namespace, or its objects in a
    cache namespace -- and say whose it is: ``recipe-harness clean`` judges the run by them."""
    return {"labels": {MANAGED_BY_KEY: MANAGED_BY, RUN_KEY: run_id},
            "annotations": {RECIPE_ANNOTATION: recipe_id,
                            STARTED_ANNOTATION: datetime.now(UTC).isoformat(timespec="seconds"),
                            OWNER_ANNOTATION: f"{socket.gethostname()}/{os.getpid()}"}}


# What a run makes in a cache namespace besides its PVCs, which stay: listed by ``clean --cache-namespace``.
CACHE_RUN_KINDS = (("nvidia.com", "v1alpha1", "dynamographdeployments"), ("batch", "v1", "jobs"),
                   ("", "v1", "secrets"), ("", "v1", "configmaps"), ("", "v1", "pods"), ("", "v1", "services"))


def list_cache_runs(kube: Kube, namespace: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The objects of each run in cache namespace ``namespace`` (run id -> [(API path, object)]),
    by the run labels :func:`run_metadata` stamps on them; kinds the cluster does not serve are
    left out."""
    runs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for group, version, plural in CACHE_RUN_KINDS:
        rtype = ResourceType(group, version, plural)
        try:
            items = (kube.get(rtype.path(namespace), labelSelector=SELECTOR) or {}).get("items") or []
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        for obj in items:
            meta = obj.get("metadata") or {}
            run = str((meta.get("labels") or {}).get(RUN_KEY) or "")
            if run:
                runs.setdefault(run, []).append((rtype.path(namespace, str(meta.get("name"))), obj))
    return runs


def delete_objects(kube: Kube, paths: Sequence[str], *, wait: float | None,
                   also: Callable[[], list[str]] | None = None) -> list[str]:
    """Delete the objects at ``paths`` (Foreground: an owner goes only after what it owns, so a
    DGD after its pods) and wait up to ``wait`` seconds for them to go; what is still there (plus
    what ``also`` says must be gone too, e.g. pods by label), ``[]`` when all went. ``wait=None``:
    request the deletions only, without a request more."""
    for path in paths:
        kube.delete(path, propagation="Foreground")

    def left() -> list[str]:
        return [p for p in paths if kube.get_or_none(p) is not None] + (also() if also else [])

    return until(left, lambda remaining: not remaining, wait, 0.5) if wait is not None else []


def create_namespace(kube: Kube, prefix: str, recipe_id: str, run_id: str, attempts: int = 3, *,
                     dgd_name: str | None = None, components: Sequence[str] = ()) -> RunNamespace:
    """Create a fresh namespace (a new random suffix on a name collision).

    With ``dgd_name`` (and the DGD's ``components``) the name fits the operator's label limits and
    :func:`label_budget_problems` is checked before anything is created: :class:`NamespaceBudgetError`
    lists every name the operator could not create.
    """
    last: ApiError | None = None
    for _ in range(attempts):
        name = namespace_name(prefix, recipe_id, dgd_name=dgd_name)
        if dgd_name is not None:
            problems = label_budget_problems(name, dgd_name, components)
            if problems:
                raise NamespaceBudgetError(f"{recipe_id}: the Dynamo operator could not create its objects in "
                                           f"namespace {name}:\n  " + "\n  ".join(problems))
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **run_metadata(recipe_id, run_id)}}
        try:
            kube.request("POST", NAMESPACE.path(), body=body)
            return RunNamespace(kube, name, run_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            last = exc
        # 409: a name collision -- or this POST's own namespace, made by an attempt whose answer was
        # lost and then retried (the client retries a POST that got no status). Adopt it when its
        # labels say it is this run's; else try another name.
        found = kube.get_or_none(NAMESPACE.path(name=name))
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found is not None and labels.get(MANAGED_BY_KEY) == MANAGED_BY and labels.get(RUN_KEY) == run_id \
                and not (found.get("metadata") or {}).get("deletionTimestamp"):
            return RunNamespace(kube, name, run_id)
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
        raise NotHarnessNamespace(f"namespace {name} is not labelled {SELECTOR}; the harness deletes only its "
                                  "own namespaces")
    if not (current.get("metadata") or {}).get("deletionTimestamp"):
        kube.delete(path)
    return until(lambda: kube.get_or_none(path) is None, bool, wait, poll)


BLOCKING_CONDITIONS = ("NamespaceFinalizersRemaining", "NamespaceContentRemaining", "NamespaceDeletionContentFailure",
                       "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure")
"""What the namespace controller writes on a namespace it cannot finish deleting
(pkg/controller/namespace/deletion/namespaced_resources_deleter.go)."""


def why_terminating(kube: Kube, name: str) -> str:
    """What keeps namespace ``name`` Terminating (its ``status.conditions``: the objects and the
    finalizers left), and what to do about it. Best effort: a read that fails says so."""
    try:
        ns = kube.get_or_none(NAMESPACE.path(name=name))
    except KubeError as exc:
        return f"namespace {name}: cannot read its status ({exc})"
    if ns is None:
        return f"namespace {name} is gone"
    conditions = [c for c in (ns.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True" and c.get("type") in BLOCKING_CONDITIONS]
    text = f"namespace {name} is still Terminating"
    if conditions:
        text += ": " + "; ".join(f"{c.get('type')}: {c.get('message') or c.get('reason') or ''}".rstrip(": ")
                                 for c in conditions)
    else:
        text += " (the namespace controller has written no condition yet)"
    blob = " ".join(str(c.get("message") or "") for c in conditions)
    if OPERATOR_FINALIZER in blob or "dynamo" in blob:
        dgds = _dgd_names(kube, name)
        text += (f". The Dynamo operator removes its finalizer {OPERATOR_FINALIZER} from the DGDs"
                 + (f" ({', '.join(dgds)})" if dgds else "") + " and their DynamoComponentDeployments only while it "
                 "runs: check it is running (kubectl get deploy -A -l app.kubernetes.io/part-of=dynamo-operator) "
                 f"and its logs; see what is left: kubectl get dgd -n {name} -o yaml; as a last resort, when the "
                 f"operator is gone for good, remove the finalizer: kubectl -n {name} patch dgd <name> --type=merge "
                 "-p '{\"metadata\":{\"finalizers\":null}}' (the same for dcd)")
    elif conditions:
        text += (f". See what is left: kubectl api-resources --verbs=list --namespaced -o name | xargs -n 1 "
                 f"kubectl get -n {name} --ignore-not-found; the controller named by each finalizer must run to "
                 "remove it")
    return text + "; `recipe-harness clean` deletes it later"


def _dgd_names(kube: Kube, namespace: str) -> list[str]:
    for version in ("v1alpha1", "v1beta1"):
        try:
            listing = kube.get(f"/apis/nvidia.com/{version}/namespaces/{namespace}/dynamographdeployments") or {}
        except KubeError:
            continue
        return sorted(str((i.get("metadata") or {}).get("name")) for i in listing.get("items") or [])
    return []


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
        self.stuck: dict[str, str] = {}  # namespace -> why its deletion did not finish in time

    def add(self, kube: Kube, name: str, wait: float) -> None:
        with self._lock:
            self._live[name] = (kube, wait)
            if not self._atexit:
                atexit.register(self.drain)
                self._atexit = True

    def discard(self, name: str) -> None:
        with self._lock:
            self._live.pop(name, None)
            self.stuck.pop(name, None)

    def mark_stuck(self, name: str, why: str) -> None:
        """``name`` outlasted its deletion wait (``why``, already reported): :meth:`drain` does not
        wait for it again, it only checks once more."""
        with self._lock:
            if name in self._live:
                self._live[name] = (self._live[name][0], 0.0)
            self.stuck[name] = why

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._live)

    def drain(self) -> list[str]:
        """Delete every namespace still registered; returns those that could not be deleted.

        Every deletion is requested first, then all are waited for under one deadline (the longest
        registered wait), so the wait is bounded however many namespaces are left; a namespace
        already reported stuck is not waited for again."""
        with self._lock:
            live = dict(self._live)
            self._live.clear()
        left = []
        waiting: dict[str, Kube] = {}
        for name, (kube, _) in live.items():
            try:
                if not delete_namespace(kube, name, wait=0.0):
                    waiting[name] = kube
            except (KubeError, OSError):
                left.append(name)
        longest = max((live[n][1] for n in waiting), default=0.0)
        deadline = time.monotonic() + longest
        for name, kube in waiting.items():
            try:
                if not delete_namespace(kube, name, wait=max(0.0, min(live[name][1], deadline - time.monotonic()))):
                    left.append(name)
            except (KubeError, OSError):
                left.append(name)
        return sorted(left)


REGISTRY = CleanupRegistry()
