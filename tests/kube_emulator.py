"""A Kubernetes API emulation over real HTTP for the kubernetes target's tests.

Built on ``kmock``'s KubernetesEmulator (aiohttp server, request model, discovery scaffold, Status
error rendering) and extended where kmock 0.8 falls short of a real apiserver:

- its own path parsing (kmock crashes on ``/api/v1/namespaces``), cluster-scoped namespaces
  with Terminating -> finalised deletion of everything inside;
- uid, resourceVersion, generation, creationTimestamp on every object; lists carry the
  collection resourceVersion; label and field selectors;
- watches: replay from a resourceVersion, ``410 Expired`` for compacted history, server-side
  ``timeoutSeconds``, and :meth:`ClusterEmulator.drop_watches` to cut every open stream;
- server-side apply (``application/apply-patch+yaml``, fieldManager required, conflicts without
  force), merge patches, the ``status`` subresource;
- pod logs (``/log`` with ``container``, ``previous``, ``tailLines``);
- fault injection (any status, e.g. 403/409/429/500, with ``Retry-After``) by method and path;
- port-forward over the ``v4.channel.k8s.io`` websocket protocol the kubernetes client speaks
  (several ports in one stream, any number of streams at once), each port relayed to the local
  TCP address standing in for that pod port;
- admission as the apiserver does it (:mod:`kube_apiserver_rules`): names and labels (422
  ``Invalid`` with the apiserver's message), the DGD CRD's schema and CEL rules;
- deletion with finalizers: an object with ``metadata.finalizers`` gets a ``deletionTimestamp``
  and stays until they are removed; deleting a namespace makes it ``Terminating``, deletes its
  content and removes it only when nothing is left (``pkg/controller/namespace/deletion``
  ``namespaced_resources_deleter.go``: conditions ``NamespaceContentRemaining`` /
  ``NamespaceFinalizersRemaining``).

:class:`FakeCluster` plays the Dynamo operator (:mod:`kube_operator_model`), the PV controller,
the scheduler and the kubelet: DGDs get a finalizer, pods, Services and status as the operator
writes them; PVCs bind when their storage class exists; pods with unbound claims are
unschedulable; Jobs get pods that succeed or fail; harness helper pods really run their ``sh``
script against local directories standing in for PVCs; with a :class:`kube_kubelet.ProcessKubelet`
the DGD's Dynamo containers run as real processes. :class:`EmulatedCluster` runs it all in a
background thread for synchronous code (the kubernetes client is synchronous).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import attrs
import kmock
import kube_apiserver_rules as rules
import kube_operator_model as op
import yaml
from kmock._internal import apps, references, rendering
from kmock._internal.k8s import KubernetesError

from recipe_harness.deploy.kubernetes.client import Backoff, Kube

CLUSTER_SCOPED = {"namespaces", "nodes", "storageclasses", "customresourcedefinitions", "persistentvolumes",
                  "clusterroles", "clusterrolebindings"}
Res = tuple[str, str, str]  # group, version, plural


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_path(path: str) -> tuple[Res, str | None, str | None, str | None] | None:
    """(resource, namespace, name, subresource) of an API path; ``None`` for non-resource paths."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        ns, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return (group, version, plural), ns, name, sub


def _match_labels(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term and term not in labels:
            return False
    return True


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        neg = "!=" in term
        k, v = term.split("!=" if neg else "=", 1)
        value = _dig(obj, k.strip().replace("==", ""))
        if (str(value) == v.strip()) == neg:
            return False
    return True


def deep_merge(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): dicts merge, ``None`` deletes, everything else replaces."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = deep_merge(out.get(k), v)
    return out


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int = 1
    reason: str = ""
    message: str = ""
    retry_after: float | None = None
    hits: int = 0


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    namespace_finalize_delay: float = 0.2
    watch_timeout_cap: float = 30.0
    admission: bool = True          # validate names, labels and the DGD schema on writes over HTTP
    foreground_delay: float = 0.0   # seconds the garbage collector takes over a Foreground deletion (0: at once)

    rv: int = attrs.field(default=1000, init=False)
    store: dict = attrs.field(factory=dict, init=False)            # (res, ns, name) -> object
    history: list = attrs.field(factory=list, init=False)          # (rv, res, type, object)
    oldest_rv: int = attrs.field(default=0, init=False)
    drops: int = attrs.field(default=0, init=False)
    watches_opened: list = attrs.field(factory=list, init=False)   # (res, ns, rv param)
    logs: dict = attrs.field(factory=dict, init=False)             # (ns, pod, container, previous) -> text
    pod_ports: dict = attrs.field(factory=dict, init=False)        # (ns, pod, port) -> (host, port)
    faults: list = attrs.field(factory=list, init=False)
    lost: list = attrs.field(factory=list, init=False)             # faults that drop the answer of a done request
    hooks: list = attrs.field(factory=list, init=False)            # fn(type, res, obj) after each change
    portforwards: list = attrs.field(factory=list, init=False)     # (ns, pod, port)
    log_files: dict = attrs.field(factory=dict, init=False)        # (ns, pod, container, previous) -> Path
    closers: list = attrs.field(factory=list, init=False)          # fn() when the emulator stops
    open_streams: int = attrs.field(default=0, init=False)         # port-forward streams open now
    max_streams: int = attrs.field(default=0, init=False)          # most streams open at once
    _wake: Any = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        (self.fallback ** 1) << self._serve_resource

    # -- state ----------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._wake is not None:
            self._wake.set()
        self._wake = asyncio.Event()

    def _record(self, type_: str, res: Res, obj: dict[str, Any]) -> None:
        self.history.append((self.rv, res, type_, copy.deepcopy(obj)))
        self._changed()
        for hook in list(self.hooks):
            hook(type_, res, obj)

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def put(self, res: Res, obj: dict[str, Any], *, create: bool = True) -> dict[str, Any]:
        """Create or replace an object, stamping metadata and emitting its watch event."""
        meta = obj.setdefault("metadata", {})
        ns = None if res[2] in CLUSTER_SCOPED else meta.get("namespace")
        key = (res, ns, meta["name"])
        old = self.store.get(key)
        if old is None and not create:
            raise KubernetesError(404, "NotFound", f'{res[2]} "{meta["name"]}" not found')
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers") \
                and res[2] != "namespaces" \
                and not (res[2] == "pods" and meta.get("deletionGracePeriodSeconds")):
            # a namespace goes when the namespace controller is done; a pod with a grace period when
            # its kubelet has stopped it (pkg/registry/core/pod/strategy.go: graceful deletion)
            self.store[key] = obj  # the last finalizer is gone: the deletion completes
            return self.remove(res, ns, meta["name"]) or obj
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["generation"] = 1
        else:
            for k in ("uid", "creationTimestamp"):
                meta[k] = old["metadata"][k]
            meta["generation"] = old["metadata"].get("generation", 1) + (old.get("spec") != obj.get("spec"))
        meta["resourceVersion"] = self.next_rv()
        self.store[key] = obj
        self._record("ADDED" if old is None else "MODIFIED", res, obj)
        return obj

    def remove(self, res: Res, ns: str | None, name: str) -> dict[str, Any] | None:
        obj = self.store.pop((res, ns, name), None)
        if obj is not None:
            obj["metadata"]["resourceVersion"] = self.next_rv()
            self._record("DELETED", res, obj)
        return obj

    def get(self, res: Res, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get((res, None if res[2] in CLUSTER_SCOPED else ns, name))

    def items(self, res: Res, ns: str | None = None) -> list[dict[str, Any]]:
        return [o for (r, n, _), o in sorted(self.store.items(), key=lambda kv: kv[1]["metadata"]["resourceVersion"])
                if r == res and (ns is None or n == ns)]

    def patch_status(self, res: Res, ns: str | None, name: str, status: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(self.get(res, ns, name))
        if obj is None:
            raise KeyError((res, ns, name))
        obj["status"] = deep_merge(obj.get("status") or {}, status)
        return self.put(res, obj, create=False)

    def drop_watches(self) -> None:
        """Cut every open watch stream (an apiserver restart or an idle-timeout proxy)."""
        self.drops += 1
        self._changed()

    def compact(self) -> None:
        """Forget the event history: resuming from an older resourceVersion gets 410 Expired."""
        self.history.clear()
        self.oldest_rv = self.rv

    def inject(self, method: str, path: str, status: int, *, times: int = 1, reason: str = "", message: str = "",
               retry_after: float | None = None) -> Fault:
        fault = Fault(method.upper(), re.compile(path), status, times, reason, message, retry_after)
        self.faults.append(fault)
        return fault

    # -- HTTP -----------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path.endswith("/portforward") and raw_request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._portforward(raw_request)
        await raw_request.read()
        try:
            request = await self._parse(raw_request)
            self._requests.append(request)
            response = await apps.RawHandler._handle(self, request)
            if self._lose(raw_request):
                raise ConnectionResetError("the answer was lost")
            return response
        except rendering.StreamingError as exc:
            return exc.args[0]
        except Exception as exc:  # noqa: BLE001 -- rendered as a Kubernetes Status, like kmock does
            return await self._render_error(exc)

    async def _parse(self, raw: aiohttp.web.BaseRequest) -> rendering.Request:
        body = await raw.read()
        text = body.decode("utf-8", "replace")
        data: Any = None
        if text.strip():
            try:
                data = json.loads(text)
            except ValueError:
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError:
                    data = None
        parsed = parse_path(raw.path)
        resource = namespace = name = sub = None
        if parsed is not None:
            (g, v, p), namespace, name, sub = parsed
            resource = references.resource(group=g, version=v, plural=p)
        return rendering.Request(id=len(self._requests), raw_request=raw, url=raw.url, method=raw.method,
                                 params=dict(raw.query), headers=dict(raw.headers), cookies=dict(raw.cookies),
                                 data=data, body=body, text=text, resource=resource, namespace=namespace,
                                 name=name, subresource=sub)

    def lose_response(self, method: str, path: str, *, times: int = 1) -> Fault:
        """Carry out matching requests, then drop the connection before the answer (a load balancer's
        idle timeout, a network cut): the change is made, the client sees no status (it retries)."""
        fault = Fault(method.upper(), re.compile(path), 0, times)
        self.lost.append(fault)
        return fault

    def _lose(self, raw: aiohttp.web.BaseRequest) -> bool:
        for fault in self.lost:
            if fault.hits < fault.times and fault.method in (raw.method.upper(), "*") and fault.path.search(raw.path):
                fault.hits += 1
                if raw.transport is not None:
                    raw.transport.close()
                return True
        return False

    def _fault(self, request: rendering.Request) -> None:
        for fault in self.faults:
            if fault.hits < fault.times and fault.method in (request.method.value.upper(), "*") \
                    and fault.path.search(request.url.path):
                fault.hits += 1
                raise KubernetesError(fault.status, fault.reason or _REASONS.get(fault.status, "Error"),
                                      fault.message or f"injected {fault.status}",
                                      details={"retryAfterSeconds": fault.retry_after})

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        response = await super()._render_error(exc)
        if isinstance(exc, KubernetesError) and isinstance(exc.details, dict) \
                and exc.details.get("retryAfterSeconds") is not None:
            response.headers["Retry-After"] = str(exc.details["retryAfterSeconds"])
        return response

    async def _serve_resource(self, request: rendering.Request) -> Any:
        parsed = parse_path(request.url.path)
        if parsed is None:
            parts = [p for p in request.url.path.strip("/").split("/") if p]
            if parts[:1] == ["apis"] and len(parts) == 2:
                # discovery of one API group: an APIGroup, or 404 for a group the apiserver does not serve
                versions = self._served_groups().get(parts[1])
                if versions is None:
                    raise KubernetesError(404, "NotFound", "the server could not find the requested resource")
                listed = [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in versions]
                return {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1], "versions": listed,
                        "preferredVersion": listed[0]}
            if parts[:1] == ["apis"] and len(parts) == 3 and parts[2] not in self._served_groups().get(parts[1], []):
                raise KubernetesError(404, "NotFound", "the server could not find the requested resource")
            raise NotImplementedError  # discovery and other paths: kmock's scaffold
        self._fault(request)
        res, ns, name, sub = parsed
        method = request.method.value.upper()
        params = dict(request.params)
        if method == "GET" and name is None:
            if params.get("watch") in ("true", "1"):
                return self._watch(res, ns, params)
            items = [o for o in self.items(res, ns) if _match_labels(o, params.get("labelSelector"))
                     and _match_fields(o, params.get("fieldSelector"))]
            return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        if method == "GET" and sub == "log":
            return self._log(ns, name, params)
        if method == "GET":
            obj = self.get(res, ns, name)
            if obj is None:
                raise KubernetesError(404, "NotFound", f'{res[2]} "{name}" not found')
            return obj
        if method == "POST" and name is None:
            return self._create(res, ns, request.data or {})
        if method == "PATCH" and name:
            return self._patch(res, ns, name, sub, request)
        if method == "PUT" and name:
            return self._put(res, ns, name, request.data or {})
        if method == "DELETE" and name:
            return self._delete(res, ns, name, request.data or {})
        raise KubernetesError(405, "MethodNotAllowed", f"{method} {request.url.path}")

    BUILT_IN_GROUPS = frozenset({"apps", "batch", "storage.k8s.io", "apiextensions.k8s.io", "rbac.authorization.k8s.io",
                                 "coordination.k8s.io", "events.k8s.io", "policy", "networking.k8s.io",
                                 "authorization.k8s.io", "authentication.k8s.io", "admissionregistration.k8s.io"})

    def _served_groups(self) -> dict[str, list[str]]:
        """The built-in API groups (as v1) and those of the CRDs created, with their served versions."""
        groups = {g: ["v1"] for g in self.BUILT_IN_GROUPS}
        for crd in self.items(("apiextensions.k8s.io", "v1", "customresourcedefinitions"), None):
            spec = crd.get("spec") or {}
            served = [str(v.get("name")) for v in spec.get("versions") or [] if v.get("served", True)]
            groups.setdefault(str(spec.get("group")), [])
            groups[str(spec.get("group"))] += [v for v in served if v not in groups[str(spec.get("group"))]]
        return groups

    def _check_namespace(self, ns: str | None) -> None:
        if ns is None:
            return
        namespace = self.get(("", "v1", "namespaces"), None, ns)
        if namespace is None:
            raise KubernetesError(404, "NotFound", f'namespaces "{ns}" not found')
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            raise KubernetesError(403, "Forbidden", f"unable to create new content in namespace {ns} "
                                                    "because it is being terminated")

    def admit(self, res: Res, obj: dict[str, Any]) -> None:
        """The apiserver's validation of a write (see :mod:`kube_apiserver_rules`); raises its 422."""
        if self.admission:
            kind = obj.get("kind") or res[2].rstrip("s").capitalize()
            rules.check_object(kind, res[0], res[2], obj)

    def _create(self, res: Res, ns: str | None, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        self.admit(res, body)
        self._check_namespace(ns if res[2] not in CLUSTER_SCOPED else None)
        if ns and res[2] not in CLUSTER_SCOPED:
            meta["namespace"] = ns
        if self.get(res, ns, meta["name"]) is not None:
            raise KubernetesError(409, "AlreadyExists", f'{res[2]} "{meta["name"]}" already exists')
        if res[2] == "namespaces":
            body.setdefault("status", {})["phase"] = "Active"
        self._initial_status(res, body)
        return self.put(res, body)

    @staticmethod
    def _initial_status(res: Res, body: dict[str, Any]) -> None:
        # The status subresource drops a status sent on create; the DGD CRD defaults status.state
        # to "initializing" (facts: ../shared/dynamo-operator-facts.md, "Status and readiness").
        if res[0] == "nvidia.com" and res[2] == "dynamographdeployments":
            body["status"] = {"state": "initializing"}

    def _patch(self, res: Res, ns: str | None, name: str, sub: str | None, request: rendering.Request) -> Any:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        patch = request.data or {}
        existing = self.get(res, ns, name)
        if ctype == "application/apply-patch+yaml":
            manager = request.params.get("fieldManager")
            if not manager:
                raise KubernetesError(422, "Invalid", "fieldManager: Required value: is required for apply patch")
            force = request.params.get("force") == "true"
            if existing is None:
                self._check_namespace(ns if res[2] not in CLUSTER_SCOPED else None)
                patch.setdefault("metadata", {}).update({"name": name})
                if res[2] not in CLUSTER_SCOPED:
                    patch["metadata"]["namespace"] = ns
                self.admit(res, patch)
                patch["metadata"]["managedFields"] = [{"manager": manager, "operation": "Apply"}]
                self._initial_status(res, patch)
                return self.put(res, patch)
            owners = {m.get("manager") for m in existing["metadata"].get("managedFields") or []}
            if owners - {manager} and not force:
                raise KubernetesError(409, "Conflict", f"Apply failed with conflicts: fields managed by "
                                                       f"{sorted(owners - {manager})}")
            obj = copy.deepcopy(existing)
            for key, value in patch.items():
                if key not in ("metadata", "status", "apiVersion", "kind"):
                    obj[key] = copy.deepcopy(value)  # the applier owns what it applies
            for key in ("labels", "annotations"):
                if key in patch.get("metadata", {}):
                    obj["metadata"][key] = patch["metadata"][key]
            self.admit(res, obj)
            obj["metadata"]["managedFields"] = [{"manager": manager, "operation": "Apply"}]
            return self.put(res, obj, create=False)
        if existing is None:
            raise KubernetesError(404, "NotFound", f'{res[2]} "{name}" not found')
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise KubernetesError(415, "UnsupportedMediaType", f"{ctype} is not supported here")
        if sub == "status":
            return self.patch_status(res, ns, name, patch.get("status") or {})
        obj = deep_merge(existing, {k: v for k, v in patch.items() if k != "status"})
        self.admit(res, obj)
        return self.put(res, obj, create=False)

    def _put(self, res: Res, ns: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("metadata", {})["namespace"] = ns
        self.admit(res, body)
        return self.put(res, body, create=False)

    def mark_deleted(self, res: Res, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Delete ``obj``: at once without finalizers, else set its ``deletionTimestamp`` and keep it
        until the finalizers are removed (``apiserver/pkg/registry/generic/registry/store.go``)."""
        meta = obj["metadata"]
        ns = None if res[2] in CLUSTER_SCOPED else meta.get("namespace")
        if not meta.get("finalizers"):
            return self.remove(res, ns, meta["name"])
        if not meta.get("deletionTimestamp"):
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.put(res, obj, create=False)
        return obj

    def _delete(self, res: Res, ns: str | None, name: str, options: dict[str, Any]) -> Any:
        obj = self.get(res, ns, name)
        if obj is None:
            raise KubernetesError(404, "NotFound", f'{res[2]} "{name}" not found')
        if res[2] == "namespaces":
            if (obj.get("status") or {}).get("phase") != "Terminating":
                obj = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = _now()
                obj["status"] = {"phase": "Terminating"}
                self.put(res, obj, create=False)
                asyncio.get_running_loop().call_later(self.namespace_finalize_delay, self._finalize_namespace, name)
            return obj
        if res == ("batch", "v1", "jobs") and options.get("propagationPolicy") == "Foreground" \
                and self.foreground_delay > 0:
            # Foreground: the apiserver sets deletionTimestamp and the finalizer foregroundDeletion
            # (apiserver/pkg/registry/generic/registry/store.go, deletionFinalizersForGarbageCollection);
            # the garbage collector deletes the dependents, then removes the finalizer
            # (pkg/controller/garbagecollector/garbagecollector.go, processDeletingDependentsItem).
            if not obj["metadata"].get("deletionTimestamp"):
                obj = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = _now()
                obj["metadata"]["finalizers"] = [*(obj["metadata"].get("finalizers") or []), "foregroundDeletion"]
                obj = self.put(res, obj, create=False)
                asyncio.get_running_loop().call_later(self.foreground_delay, self._collect_foreground, res, ns, name)
            return obj
        if res == ("batch", "v1", "jobs"):
            for pod in self.items(("", "v1", "pods"), ns):
                if (pod["metadata"].get("labels") or {}).get("job-name") == name:
                    self.remove(("", "v1", "pods"), ns, pod["metadata"]["name"])
        left = self.mark_deleted(res, obj)
        if left is not None and self.get(res, ns, name) is not None:
            return left  # waiting for its finalizers
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}

    def _collect_foreground(self, res: Res, ns: str | None, name: str) -> None:
        """The garbage collector's end of a Foreground deletion of a Job: its pods, then the finalizer."""
        for pod in self.items(("", "v1", "pods"), ns):
            if (pod["metadata"].get("labels") or {}).get("job-name") == name:
                self.remove(("", "v1", "pods"), ns, pod["metadata"]["name"])
        obj = copy.deepcopy(self.get(res, ns, name))
        if obj is not None:
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or []
                                             if f != "foregroundDeletion"]
            self.put(res, obj, create=False)

    def _finalize_namespace(self, name: str) -> None:
        """The namespace controller: delete everything inside; remove the namespace when empty."""
        namespace = self.get(("", "v1", "namespaces"), None, name)
        if namespace is None:
            return
        for (res, ns, obj_name) in list(self.store):
            if ns == name and (obj := self.store.get((res, ns, obj_name))) is not None:
                self.mark_deleted(res, obj)
        left = [(res, o) for (res, ns, _), o in self.store.items() if ns == name]
        if not left:
            self.remove(("", "v1", "namespaces"), None, name)
            return
        finalizers: dict[str, int] = {}
        for _, o in left:
            for f in o["metadata"].get("finalizers") or []:
                finalizers[f] = finalizers.get(f, 0) + 1
        conditions = [{"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                       "message": "Some resources are remaining: " + ", ".join(
                           sorted({f"{r[2]}.{r[0]} has {sum(1 for rr, _ in left if rr == r)} resource instances"
                                   if r[0] else f"{r[2]} has {sum(1 for rr, _ in left if rr == r)} resource instances"
                                   for r, _ in left}))}]
        if finalizers:
            conditions.append({"type": "NamespaceFinalizersRemaining", "status": "True",
                               "reason": "SomeFinalizersRemain",
                               "message": "Some content in the namespace has finalizers remaining: " + ", ".join(
                                   f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))})
        if (namespace.get("status") or {}).get("conditions") != conditions:
            namespace = copy.deepcopy(namespace)
            namespace["status"]["conditions"] = conditions
            self.put(("", "v1", "namespaces"), namespace, create=False)
        asyncio.get_running_loop().call_later(self.namespace_finalize_delay, self._finalize_namespace, name)

    def _log(self, ns: str | None, pod: str, params: dict[str, str]) -> bytes:
        if self.get(("", "v1", "pods"), ns, pod) is None:
            raise KubernetesError(404, "NotFound", f'pods "{pod}" not found')
        previous = params.get("previous") == "true"
        key = (ns, pod, params.get("container"), previous)
        text = self.logs.get(key)
        if key in self.log_files:
            try:
                text = Path(self.log_files[key]).read_text(errors="replace")
            except OSError:
                text = text or ""
        if text is None:
            if previous:
                raise KubernetesError(400, "BadRequest", f'previous terminated container "{params.get("container")}" '
                                                         f'in pod "{pod}" not found')
            text = ""
        if params.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(params["tailLines"]):])
        if params.get("limitBytes"):
            text = text.encode()[:int(params["limitBytes"])].decode(errors="replace")
        return text.encode()


    async def _watch(self, res: Res, ns: str | None, params: dict[str, str]):
        yield b""  # send the headers now: a watch may stay silent for long
        label_sel, field_sel = params.get("labelSelector"), params.get("fieldSelector")
        timeout = min(float(params.get("timeoutSeconds") or self.watch_timeout_cap), self.watch_timeout_cap)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        drops = self.drops
        rv_param = params.get("resourceVersion")
        self.watches_opened.append((res, ns, rv_param))

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            return (ns is None or meta.get("namespace") == ns) and _match_labels(obj, label_sel) \
                and _match_fields(obj, field_sel)

        if rv_param in (None, "", "0"):
            last = self.rv
            for obj in self.items(res, ns):
                if matches(obj):
                    yield {"type": "ADDED", "object": copy.deepcopy(obj)}
        else:
            last = int(rv_param)
            if last < self.oldest_rv:
                yield {"type": "ERROR", "object": status_body(410, "Expired", f"too old resource version: {last} "
                                                                              f"({self.oldest_rv})")}
                return
        while True:
            for erv, eres, etype, eobj in list(self.history):
                if erv > last and eres == res and matches(eobj):
                    last = erv
                    yield {"type": etype, "object": eobj}
                elif erv > last:
                    last = erv
            if self.drops != drops:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if self._wake is None:
                self._wake = asyncio.Event()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
            except TimeoutError:
                return

    async def _portforward(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """The kubelet's port-forward stream (``v4.channel.k8s.io``): for the i-th requested port,
        channel 2i carries data and 2i+1 errors, each opened with the port number (2 bytes, little
        endian); one TCP connection to the pod's port per requested port."""
        parsed = parse_path(raw.path)
        assert parsed is not None
        _, ns, pod, _ = parsed
        ports = [int(p) for value in raw.query.getall("ports", []) for p in value.split(",") if p.strip()]
        ws = aiohttp.web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(raw)
        self.open_streams += 1
        self.max_streams = max(self.max_streams, self.open_streams)
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps: list[asyncio.Task] = []
        try:
            for i, port in enumerate(ports):
                self.portforwards.append((ns, pod, port))
                prefix = port.to_bytes(2, "little")
                await ws.send_bytes(bytes([2 * i]) + prefix)
                await ws.send_bytes(bytes([2 * i + 1]) + prefix)
            for i, port in enumerate(ports):
                target = self.pod_ports.get((ns, pod, port))
                try:
                    if target is None:
                        raise OSError(f"pod {pod} does not listen on port {port}")
                    reader, writers[2 * i] = await asyncio.open_connection(*target)
                except OSError as exc:
                    await ws.send_bytes(bytes([2 * i + 1]) + f"an error occurred forwarding {port} -> {port}: "
                                                             f"{exc}".encode())
                    continue
                pumps.append(asyncio.get_running_loop().create_task(self._pump(reader, ws, 2 * i)))
            if not writers:
                await ws.close()
                return ws
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 1 and msg.data[0] in writers:
                    writer = writers[msg.data[0]]
                    writer.write(msg.data[1:])
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_streams -= 1
            for writer in writers.values():
                writer.close()
            for pump in pumps:
                pump.cancel()
        return ws

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, ws: aiohttp.web.WebSocketResponse, channel: int) -> None:
        try:
            while data := await reader.read(65536):
                await ws.send_bytes(bytes([channel]) + data)
        except (ConnectionError, RuntimeError):
            pass
        await ws.close()


_REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}

PODS: Res = ("", "v1", "pods")
SERVICES: Res = ("", "v1", "services")
JOBS: Res = ("batch", "v1", "jobs")
NAMESPACES: Res = ("", "v1", "namespaces")
EVENTS: Res = ("", "v1", "events")
DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"


def running_pod(name: str, ns: str, labels: dict[str, str], containers: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": c, "ports": [{"name": "http", "containerPort": 8000}]} for c in containers],
                 "nodeName": "node-1", **spec},
        "status": {"phase": "Running",
                   "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": c, "ready": True, "restartCount": 0,
                                          "state": {"running": {"startedAt": _now()}}} for c in containers]},
    }


PVCS: Res = ("", "v1", "persistentvolumeclaims")
CONFIGMAPS: Res = ("", "v1", "configmaps")
SECRETS: Res = ("", "v1", "secrets")
RS_HASH = "7d9f5c8b4"  # the pod-template-hash part of a Deployment's ReplicaSet name
# capabilities Pod Security baseline allows to add (pod-security-admission check_capabilities_baseline.go)
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
# scenarios whose broken pod is replaced or placed later, so the DGD still becomes Ready
HEALING_OUTCOMES = ("Evicted", "ScaleUp")
STORAGE_CLASSES: Res = ("storage.k8s.io", "v1", "storageclasses")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
UNBOUND_MESSAGE = ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes "
                   "are available: 1 Preemption is not helpful for scheduling.")


class ReconcileError(Exception):
    """A reconcile that returned an error: the operator writes ``state: failed`` with it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def event(ns: str, kind: str, name: str, type_: str, reason: str, message: str, source: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "type": type_, "reason": reason, "message": message,
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns}, "source": {"component": source},
            "count": 1, "firstTimestamp": _now(), "lastTimestamp": _now()}


@dataclass
class FakeCluster:
    """The Dynamo operator, PV controller, scheduler and kubelet, reacting to what is created.

    Scenario options: ``dgd_outcome`` ``ready`` | ``never`` (pods never Ready) | ``failed`` (every
    reconcile errors with ``failure_message``) | ``<Reason>:<Service>`` (its first pod breaks with
    CrashLoopBackOff, ImagePullBackOff, OOMKilled or Unschedulable after ``failure_after``; with
    ``GroupRestart`` it crashes and is made again under the same name, as a LeaderWorkerSet does; with
    ``Evicted`` it is evicted and its ReplicaSet replaces it; with ``ScaleUp`` it is unschedulable
    until the cluster-autoscaler says it adds a node (``autoscaler_notice``) and the node joins
    (``failure_after`` later); with ``NoScaleUp`` the autoscaler says it will not); ``pod_security_default``: the cluster's Pod
    Security level where a namespace has no ``enforce`` label (refused pods: ``FailedCreate``);
    ``transient_failed=N``: the first N reconciles hit a write conflict (``state: failed``, then
    cleared by the next good reconcile, ``transient_retry`` later); ``k8s_discovery`` (the chart
    default, on): Services for every component; ``storage_classes``: ``None`` binds every claim,
    a list creates those classes (the first the default) and binds only claims whose class
    exists; ``delete_after``: the operator's finalizer work on DGD deletion;
    ``operator_stuck``: the operator never removes its finalizer (namespace stays Terminating);
    ``restricted_namespace``: a namespace-restricted operator (chart ``namespaceRestriction.enabled``)
    that handles DGDs of that namespace only; ``excluded_namespaces``: namespaces a cluster-wide
    operator skips; a cluster-wide operator also skips namespaces whose name contains ``ephemeral``
    (``EphemeralDeploymentEventFilter``, deploy/operator/internal/controller_common/predicate.go);
    ``operator_down``: no operator runs (nothing reconciles, nothing is finalized);
    Pods whose ConfigMaps or Secrets do not exist wait as the kubelet makes them (``FailedMount``
    while ContainerCreating, ``CreateContainerConfigError``) and start once they do
    (``config_retry``).
    ``kubelet``: run Dynamo containers as real processes (:class:`kube_kubelet.ProcessKubelet`);
    ``platform``: the Dynamo platform is installed as its Helm chart does it (the DGD CRD, the
    operator Deployment labelled ``app.kubernetes.io/part-of=dynamo-operator`` in
    ``dynamo-system``) on one CPU node.
    ``job_outcome[name]``: ``succeed`` | ``fail`` | ``ImagePullBackOff`` | ``evicted`` (its first pod
    is evicted, the next succeeds) | ``deadline``
    (``FailureTarget`` at once, ``Failed`` after ``job_terminate_after``). ``ready_after`` delays
    readiness of pods that run no process.
    """

    emu: ClusterEmulator
    dgd_outcome: str = "ready"
    job_outcome: dict[str, str] = field(default_factory=dict)
    ready_after: float = 0.2
    failure_after: float = 0.3
    autoscaler_notice: float = 0.5
    config_retry: float = 0.5       # the kubelet's next sync of a pod waiting for a ConfigMap or Secret
    frontend_addr: tuple[str, int] | None = None
    pvc_dirs: dict[str, Path] = field(default_factory=dict)       # claimName -> local dir
    job_effects: dict[str, Callable[[dict[str, Any]], str]] = field(default_factory=dict)  # job -> fn -> log
    failed_at: float | None = None                                 # loop time the fatal state appeared
    k8s_discovery: bool = True
    transient_failed: int = 0
    transient_retry: float = 0.3
    # a reconcile error a later reconcile may clear: a policy webhook that is down
    failure_message: str = ('failed to reconcile Dynamo components deployments: Internal error occurred: failed '
                            'calling webhook "validate.kyverno.svc-fail": failed to call webhook: Post '
                            '"https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": dial tcp '
                            "10.96.0.12:443: connect: connection refused")
    storage_classes: list[str] | None = None
    delete_after: float = 0.2
    pod_grace: float = 0.0          # seconds a deleted graph pod stays Terminating (0: gone at once)
    operator_stuck: bool = False
    restricted_namespace: str | None = None
    excluded_namespaces: tuple[str, ...] = ()
    operator_down: bool = False
    kubelet: Any = None
    platform: bool = False
    reconciles: int = 0
    _observed: dict = field(default_factory=dict)                  # (ns, dgd) -> generation reconciled
    _pending: set = field(default_factory=set)                     # (ns, dgd) with a reconcile queued
    _finalizing: set = field(default_factory=set)
    _errors: dict = field(default_factory=dict)                    # (ns, dgd) -> consecutive errors
    job_terminate_after: float = 30.0                              # a Job pod's termination grace
    pod_security_default: str | None = None                        # PodSecurityConfiguration defaults.enforce
    _slots: dict = field(default_factory=dict)                     # (ns, replica slot) -> its current pod
    _broken: set = field(default_factory=set)                      # (ns, replica slot) the scenario broke

    def __post_init__(self) -> None:
        self.emu.hooks.append(self.on_change)
        for i, name in enumerate(self.storage_classes or []):
            self.emu.put(STORAGE_CLASSES, {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "rancher.io/local-path",
                "volumeBindingMode": "Immediate",
                "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"} if i == 0 else {}}})
        if self.kubelet is not None:
            self.emu.closers.append(self.kubelet.close)
        if self.platform:
            self._install_platform()

    def _install_platform(self) -> None:
        self.emu.put(("apiextensions.k8s.io", "v1", "customresourcedefinitions"), {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "dynamographdeployments.nvidia.com"},
            "spec": {"group": "nvidia.com", "scope": "Namespaced",
                     "names": {"kind": "DynamoGraphDeployment", "plural": "dynamographdeployments",
                               "shortNames": ["dgd"]},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True},
                                  {"name": "v1beta1", "served": True, "storage": False}]}})
        self.emu.put(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dynamo-system"},
                                  "status": {"phase": "Active"}})
        self.emu.put(("apps", "v1", "deployments"), {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "dynamo-platform-dynamo-operator-controller-manager", "namespace": "dynamo-system",
                         "labels": {"app.kubernetes.io/part-of": "dynamo-operator"}},
            "spec": {"replicas": 1}, "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})
        self.emu.put(("", "v1", "nodes"), {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}})

    # -- dispatch ---------------------------------------------------------------------------------

    def handles(self, ns: str | None) -> bool:
        """``EphemeralDeploymentEventFilter`` (deploy/operator/internal/controller_common/predicate.go):
        a restricted operator sees only its namespace; a cluster-wide one drops excluded namespaces
        and every namespace whose name contains ``ephemeral``."""
        if self.operator_down:
            return False
        if self.restricted_namespace:
            return ns == self.restricted_namespace
        return ns not in self.excluded_namespaces and "ephemeral" not in (ns or "")

    def on_change(self, type_: str, res: Res, obj: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace")
        if res[0] == "nvidia.com" and res[2] == "dynamographdeployments":
            if not self.handles(ns):
                return
            key = (ns, meta["name"])
            if type_ == "DELETED":
                self._observed.pop(key, None)
            elif meta.get("deletionTimestamp"):
                if key not in self._finalizing and op.FINALIZER in (meta.get("finalizers") or []) \
                        and not self.operator_stuck:
                    self._finalizing.add(key)
                    loop.call_later(self.delete_after, self._finalize, res, key)
            elif self._observed.get(key) != meta.get("generation"):
                self._queue(res, key, 0.05)
        elif res == PODS:
            labels = meta.get("labels") or {}
            if type_ == "DELETED" and self.kubelet is not None:
                self.kubelet.stop_pod(ns, meta["name"])
            elif type_ == "ADDED" and labels.get("recipe-harness/helper"):
                loop.create_task(self._run_helper(copy.deepcopy(obj)))
            if labels.get(op.DGD_NAME) and type_ != "ADDED":
                dgd = self._find_dgd(ns, labels[op.DGD_NAME])
                if dgd is not None:
                    self._queue(dgd[0], (ns, labels[op.DGD_NAME]), 0.05)
        elif res == JOBS and type_ == "ADDED":
            loop.call_later(0.05, self._run_job, copy.deepcopy(obj))
        elif res == PVCS and type_ == "ADDED":
            loop.call_later(0.02, self._bind, ns, meta["name"])
        elif res == NAMESPACES and type_ == "DELETED" and self.kubelet is not None:
            self.kubelet.stop_namespace(meta["name"])

    def _find_dgd(self, ns: str, name: str) -> tuple[Res, dict[str, Any]] | None:
        for (res, n, obj_name), obj in self.emu.store.items():
            if res[0] == "nvidia.com" and res[2] == "dynamographdeployments" and n == ns and obj_name == name:
                return res, obj
        return None

    def _queue(self, res: Res, key: tuple[str, str], delay: float) -> None:
        if key not in self._pending:
            self._pending.add(key)
            asyncio.get_running_loop().call_later(delay, self._reconcile, res, key)

    # -- the DGD controller ------------------------------------------------------------------------

    def _reconcile(self, res: Res, key: tuple[str, str]) -> None:
        """One ``Reconcile``: finalizer, PVCs, per-component objects, then the status write."""
        self._pending.discard(key)
        ns, name = key
        dgd = self.emu.get(res, ns, name)
        if dgd is None or dgd["metadata"].get("deletionTimestamp") or not self.handles(ns):
            return
        self.reconciles += 1
        try:
            dgd = self._ensure_finalizer(res, dgd)
            self._observed[key] = dgd["metadata"].get("generation")
            if self.dgd_outcome == "failed":
                raise ReconcileError(op.RECONCILE_FAILED, self.failure_message)
            self._reconcile_pvcs(dgd)
            not_ready = self._reconcile_components(dgd)
        except ReconcileError as exc:
            errors = self._errors[key] = self._errors.get(key, 0) + 1
            self.emu.patch_status(res, ns, name, {"state": "failed", "conditions": [
                op.failed_condition(exc.reason, exc.message)]})
            # controller-runtime requeues a failed reconcile with exponential back-off
            self._queue(res, key, min(self.transient_retry * 2 ** (errors - 1), 5.0))
            return
        self._errors.pop(key, None)
        state, condition = op.ready_condition(not_ready)
        current = self.emu.get(res, ns, name)["status"] or {}
        # observedGeneration only after a reconcile without error (the deferred status write)
        observed = dgd["metadata"].get("generation")
        if current.get("state") != state or (current.get("conditions") or [{}])[0] != condition \
                or current.get("observedGeneration") != observed:
            self.emu.patch_status(res, ns, name, {"state": state, "conditions": [condition],
                                                  "observedGeneration": observed})

    def _ensure_finalizer(self, res: Res, dgd: dict[str, Any]) -> dict[str, Any]:
        if op.FINALIZER in (dgd["metadata"].get("finalizers") or []):
            return dgd
        if self.transient_failed > 0:
            # the Update that adds the finalizer loses a write race (HTTP 409 from the apiserver)
            self.transient_failed -= 1
            raise ReconcileError("failed_to_handle_the_finalizer",
                                 op.conflict_message("dynamographdeployments.nvidia.com", dgd["metadata"]["name"]))
        dgd = copy.deepcopy(dgd)
        dgd["metadata"].setdefault("finalizers", []).append(op.FINALIZER)
        return self.emu.put(res, dgd, create=False)

    def _reconcile_pvcs(self, dgd: dict[str, Any]) -> None:
        """``reconcilePVCs``: a claim with ``create: true`` is made; one without must exist."""
        ns = dgd["metadata"]["namespace"]
        for pvc in (dgd.get("spec") or {}).get("pvcs") or []:
            if self.emu.get(PVCS, ns, pvc["name"]) is not None:
                continue
            if not pvc.get("create"):
                raise ReconcileError(op.RECONCILE_FAILED, "failed to reconcile top-level PVCs: persistentvolumeclaims "
                                                          f'"{pvc["name"]}" not found')
            self.emu.put(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "metadata": {"name": pvc["name"], "namespace": ns,
                                             "ownerReferences": [self._owner(dgd)]},
                                "spec": {"accessModes": [pvc["volumeAccessMode"]],
                                         "storageClassName": pvc["storageClass"],
                                         "resources": {"requests": {"storage": str(pvc["size"])}}},
                                "status": {"phase": "Pending"}})

    @staticmethod
    def _owner(dgd: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": dgd.get("apiVersion", "nvidia.com/v1alpha1"), "kind": "DynamoGraphDeployment",
                "name": dgd["metadata"]["name"], "uid": dgd["metadata"].get("uid", ""), "controller": True}

    def _reconcile_components(self, dgd: dict[str, Any]) -> list[str]:
        """DCD -> Deployment -> pods, and the Services; the names of DCDs not yet available."""
        ns, name = dgd["metadata"]["namespace"], dgd["metadata"]["name"]
        not_ready = []
        for comp in op.components(dgd):
            dcd = op.component_name(name, comp.name)
            labels = op.pod_labels(name, ns, comp, self.k8s_discovery)
            errs = [rules.FieldError("metadata.labels", "Invalid value", m, v)
                    for v in labels.values() for m in rules.label_value(v)]
            if errs:
                err = rules.invalid("DynamoComponentDeployment", "nvidia.com", dcd, errs)
                raise ReconcileError(op.RECONCILE_FAILED, "failed to reconcile Dynamo components deployments: failed "
                                                          f"to sync the DynamoComponentDeployment: {err.message}")
            pods = [self._ensure_pod(dgd, comp, labels, f"{dcd}-{i}", i) for i in range(comp.replicas)]
            svc = op.service(comp, name, ns, self.k8s_discovery)
            if svc is not None and self.emu.get(SERVICES, ns, svc["metadata"]["name"]) is None:
                svc["metadata"]["ownerReferences"] = [self._owner(dgd)]
                self.emu.put(SERVICES, svc)
            if not all(_pod_ready(p) for p in pods):
                not_ready.append(dcd)
        return not_ready

    def _ensure_pod(self, dgd: dict[str, Any], comp: op.Component, labels: dict[str, str], pod_name: str,
                    index: int) -> dict[str, Any]:
        """One replica slot of the component's ReplicaSet. A pod of the slot that ``Failed`` (evicted)
        is replaced by a new one with a new name: the ReplicaSet controller counts only active pods
        (kubernetes pkg/controller/replicaset/replica_set.go ``FilterActivePods``). A pod the
        apiserver refuses is not created; the controller records ``FailedCreate`` on itself
        (pkg/controller/controller_utils.go ``FailedCreatePodReason``, "Error creating: %v")."""
        ns, name = dgd["metadata"]["namespace"], dgd["metadata"]["name"]
        current = self._slots.get((ns, pod_name), pod_name)
        existing = self.emu.get(PODS, ns, current)
        if existing is not None and (existing.get("status") or {}).get("phase") != "Failed":
            return existing
        if existing is not None:
            current = f"{pod_name}-{uuid.uuid4().hex[:5]}"
        replica_set = f"{op.component_name(name, comp.name)}-{RS_HASH}"
        spec = op.pod_spec(comp, name, ns, self.k8s_discovery)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": current, "namespace": ns, "labels": labels,
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                                                 "uid": "", "controller": True, "blockOwnerDeletion": True}]},
               "spec": {**spec, "nodeName": "node-1"},
               "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}
        refused = self._pod_security(ns, f"{replica_set}-", spec)
        if refused:
            self.record_event(ns, "ReplicaSet", replica_set, "Warning", "FailedCreate", f"Error creating: {refused}",
                              "replicaset-controller")
            return {}
        self._slots[(ns, pod_name)] = current
        unbound = self._unbound_claims(ns, spec)
        reason, _, bad = self.dgd_outcome.partition(":")
        scale_up = reason in ("ScaleUp", "NoScaleUp") and comp.name == bad and index == 0 \
            and (ns, pod_name) not in self._broken
        if unbound or scale_up:
            message = unbound or "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are " \
                                 "available: 3 No preemption victims found for incoming pod."
            pod["spec"].pop("nodeName")
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message}]
            pod = self.emu.put(PODS, pod)
            self.emu.put(EVENTS, event(ns, "Pod", current, "Warning", "FailedScheduling", message,
                                       "default-scheduler"))
            if scale_up:
                # the cluster-autoscaler sees the pod at its next scan (every 10 s by default; here
                # ``autoscaler_notice``) and says on the pod whether it adds a node: Normal TriggeredScaleUp
                # or NotTriggerScaleUp (cluster-autoscaler processors/status/eventing_scale_up_processor.go);
                # with a node added, the scheduler's next attempt places the pod ``failure_after`` later
                self._broken.add((ns, pod_name))
                loop = asyncio.get_running_loop()
                if reason == "ScaleUp":
                    loop.call_later(self.autoscaler_notice, self.emu.put, EVENTS, event(
                        ns, "Pod", current, "Normal", "TriggeredScaleUp",
                        "pod triggered scale-up: [{gpu-nodes 2->3 (max: 8)}]", "cluster-autoscaler"))
                    loop.call_later(self.autoscaler_notice + self.failure_after, self._schedule, ns, current, comp,
                                    index, pod_name)
                else:
                    loop.call_later(self.autoscaler_notice, self.emu.put, EVENTS, event(
                        ns, "Pod", current, "Normal", "NotTriggerScaleUp",
                        "pod didn't trigger scale-up: 1 max node group size reached", "cluster-autoscaler"))
            return pod
        self.emu.put(PODS, pod)
        return self._start_pod(ns, current, comp, index, pod_name)

    def _schedule(self, ns: str, current: str, comp: op.Component, index: int, slot: str) -> None:
        pod = copy.deepcopy(self.emu.get(PODS, ns, current))
        if pod is None:
            return
        pod["spec"]["nodeName"] = "node-1"
        pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        self.emu.put(PODS, pod, create=False)
        self._start_pod(ns, current, comp, index, slot)

    def _start_pod(self, ns: str, pod_name: str, comp: op.Component, index: int, slot: str) -> dict[str, Any]:
        pod = self.emu.get(PODS, ns, pod_name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return pod or {}
        problem = self._config_problem(ns, pod["spec"])
        if problem is not None:  # the kubelet retries the pod's sync until what it reads exists
            self._config_waiting(ns, pod_name, *problem)
            asyncio.get_running_loop().call_later(self.config_retry, self._start_pod, ns, pod_name, comp, index, slot)
            return self.emu.get(PODS, ns, pod_name) or {}
        if self.kubelet is not None and self.kubelet.admit(self.emu, pod):
            return self.emu.get(PODS, ns, pod_name)
        # a pod that runs no process: Running at once, Ready after ready_after (unless never)
        if self.kubelet is not None:
            self.emu.logs[(ns, pod_name, "main", False)] = (
                f"{comp.name} replica {index}: no process started here (the emulated kubelet runs at most "
                f"{self.kubelet.max_processes} processes, or the command is not a Dynamo frontend/mocker)\n")
        else:
            self.emu.logs[(ns, pod_name, "main", False)] = f"{comp.name} replica {index} started\n"
        if comp.type == "frontend" and self.frontend_addr:
            self.emu.pod_ports[(ns, pod_name, op.HTTP_PORT)] = self.frontend_addr
        pod = self._set_running(ns, pod_name, ready=False)
        loop = asyncio.get_running_loop()
        reason, _, bad = self.dgd_outcome.partition(":")
        heals = reason in HEALING_OUTCOMES
        if comp.name == bad and index == 0 and (ns, slot) not in self._broken:
            self._broken.add((ns, slot))
            loop.call_later(self.failure_after, self._break_pod, ns, pod_name, reason)
        elif self.dgd_outcome == "ready" or (bad and (comp.name != bad or heals)):
            loop.call_later(self.ready_after, self._set_running, ns, pod_name, True)
        return pod

    def _config_problem(self, ns: str, spec: dict[str, Any]) -> tuple[str, str] | None:
        """What keeps the kubelet from starting a pod whose ConfigMaps or Secrets are missing, as
        (waiting reason, message). Volumes are mounted first (pkg/kubelet/volumemanager
        ``WaitForAttachAndMount``; pkg/volume/configmap and pkg/volume/secret ``SetUpAt`` return the
        kubelet's object manager's NotFound, ``configmap "x" not found`` with its singular resource
        name, for a source that is not ``optional``), with ``FailedMount`` events while the pod stays
        ``ContainerCreating``; then each container's environment (pkg/kubelet/kubelet_pods.go
        ``makeEnvironmentVariables``): ``CreateContainerConfigError`` with ``secret "x" not found``
        or ``couldn't find key K in Secret ns/x``."""
        def lookup(kind: str, name: str) -> dict[str, Any] | None:
            return self.emu.get(CONFIGMAPS if kind == "configmap" else SECRETS, ns, name)

        for vol in spec.get("volumes") or []:
            for kind, key, name_key in (("configmap", "configMap", "name"), ("secret", "secret", "secretName")):
                src = vol.get(key)
                if isinstance(src, dict) and not src.get("optional") and lookup(kind, str(src.get(name_key))) is None:
                    return ("FailedMount", f'MountVolume.SetUp failed for volume "{vol.get("name")}" : '
                                           f'{kind} "{src.get(name_key)}" not found')
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            refs = [(kind, ref, None) for e in c.get("envFrom") or []
                    for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef"))
                    if isinstance(ref := e.get(key), dict)]
            refs += [(kind, ref, ref.get("key")) for e in c.get("env") or []
                     for kind, key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef"))
                     if isinstance(ref := (e.get("valueFrom") or {}).get(key), dict)]
            for kind, ref, data_key in refs:
                if ref.get("optional"):
                    continue
                found = lookup(kind, str(ref.get("name")))
                if found is None:
                    return ("CreateContainerConfigError", f'{kind} "{ref.get("name")}" not found')
                data = {**(found.get("data") or {}), **(found.get("stringData") or {})}
                if data_key is not None and data_key not in data:
                    title = "ConfigMap" if kind == "configmap" else "Secret"
                    return ("CreateContainerConfigError", f"couldn't find key {data_key} in {title} {ns}/{ref.get('name')}")
        return None

    def _config_waiting(self, ns: str, pod_name: str, reason: str, message: str) -> None:
        pod = copy.deepcopy(self.emu.get(PODS, ns, pod_name))
        if pod is None:
            return
        waiting = {"reason": "ContainerCreating"} if reason == "FailedMount" else {"reason": reason, "message": message}
        pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                         "containerStatuses": [{"name": c["name"], "ready": False, "restartCount": 0,
                                                "state": {"waiting": waiting}} for c in pod["spec"]["containers"]]}
        self.emu.put(PODS, pod, create=False)
        if self.failed_at is None:
            self.failed_at = asyncio.get_running_loop().time()
        if reason == "FailedMount":
            self.record_event(ns, "Pod", pod_name, "Warning", "FailedMount", message, "kubelet")
        else:  # pkg/kubelet/kuberuntime/kuberuntime_container.go: events.FailedToCreateContainer, "Error: %v"
            self.record_event(ns, "Pod", pod_name, "Warning", "Failed", f"Error: {message}", "kubelet")

    def _pod_security(self, ns: str, generate_name: str, spec: dict[str, Any]) -> str | None:
        """Pod Security admission (kubernetes staging/src/k8s.io/pod-security-admission, policy
        ``check_capabilities_baseline.go`` and ``check_hostPathVolumes.go``): the namespace's
        ``pod-security.kubernetes.io/enforce`` label, else the cluster default
        (``pod_security_default``). Only the baseline checks on added capabilities and hostPath
        volumes are modelled; ``restricted`` includes them."""
        namespace = self.emu.get(NAMESPACES, None, ns) or {}
        level = ((namespace.get("metadata") or {}).get("labels") or {}).get(
            "pod-security.kubernetes.io/enforce") or self.pod_security_default
        if level not in ("baseline", "restricted"):
            return None
        problems = []
        for c in spec.get("containers") or []:
            added = (((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
            extra = [cap for cap in added if cap not in BASELINE_CAPABILITIES]
            if extra:
                problems.append(f'non-default capabilities (container "{c["name"]}" must not include '
                                f'{", ".join(chr(34) + x + chr(34) for x in extra)} in securityContext.capabilities.add)')
        host = [v["name"] for v in spec.get("volumes") or [] if v.get("hostPath")]
        if host:
            problems.append(f'hostPath volumes ({"volume" if len(host) == 1 else "volumes"} '
                            f'{", ".join(chr(34) + h + chr(34) for h in host)})')
        if not problems:
            return None
        return f'pods "{generate_name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(problems)}'

    def record_event(self, ns: str, kind: str, name: str, type_: str, reason: str, message: str,
                     source: str) -> dict[str, Any]:
        """client-go's EventRecorder: a repeat of an event (same object, reason and message) bumps
        ``count`` and ``lastTimestamp`` of the one already stored (tools/record/events_cache.go
        ``EventCorrelator``)."""
        for ev in self.emu.items(EVENTS, ns):
            obj = ev.get("involvedObject") or {}
            if (obj.get("kind"), obj.get("name"), ev.get("reason"), ev.get("message")) == (kind, name, reason, message):
                ev = copy.deepcopy(ev)
                ev["count"] = int(ev.get("count") or 1) + 1
                ev["lastTimestamp"] = _now()
                return self.emu.put(EVENTS, ev, create=False)
        return self.emu.put(EVENTS, event(ns, kind, name, type_, reason, message, source))

    def _set_running(self, ns: str, pod_name: str, ready: bool) -> dict[str, Any] | None:
        pod = copy.deepcopy(self.emu.get(PODS, ns, pod_name))
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        flag = "True" if ready else "False"
        names = [c["name"] for c in pod["spec"]["containers"]]
        pod["status"] = {"phase": "Running", "podIP": "10.244.0.10", "startTime": _now(),
                         "conditions": [{"type": "PodScheduled", "status": "True"},
                                        {"type": "Initialized", "status": "True"},
                                        {"type": "ContainersReady", "status": flag},
                                        {"type": "Ready", "status": flag}],
                         "containerStatuses": [{"name": c, "ready": ready, "restartCount": 0, "started": True,
                                                "state": {"running": {"startedAt": _now()}}} for c in names]}
        return self.emu.put(PODS, pod, create=False)

    def _finalize(self, res: Res, key: tuple[str, str]) -> None:
        """``FinalizeResource``: tear down what the operator made, then drop the finalizer."""
        ns, name = key
        self._finalizing.discard(key)
        if self.operator_down:
            return
        for (r, n, obj_name), obj in list(self.emu.store.items()):
            if n != ns:
                continue
            owned = any(o.get("name") == name and o.get("kind") == "DynamoGraphDeployment"
                        for o in obj["metadata"].get("ownerReferences") or [])
            if r == PODS and self.pod_grace > 0 and ((obj["metadata"].get("labels") or {}).get(op.DGD_NAME) == name
                                                     or owned):
                # a pod being deleted stays, Terminating, until its containers have stopped (up to its
                # terminationGracePeriodSeconds, 60 s in the operator's pods)
                if not obj["metadata"].get("deletionTimestamp"):
                    gone = copy.deepcopy(obj)
                    gone["metadata"]["deletionTimestamp"] = _now()
                    gone["metadata"]["deletionGracePeriodSeconds"] = max(1, round(self.pod_grace))
                    self.emu.put(r, gone, create=False)
                    asyncio.get_running_loop().call_later(self.pod_grace, self.emu.remove, r, n, obj_name)
            elif (r == PODS and (obj["metadata"].get("labels") or {}).get(op.DGD_NAME) == name) or owned:
                self.emu.remove(r, n, obj_name)
        dgd = copy.deepcopy(self.emu.get(res, ns, name))
        if dgd is not None:
            dgd["metadata"]["finalizers"] = [f for f in dgd["metadata"].get("finalizers") or [] if f != op.FINALIZER]
            self.emu.put(res, dgd, create=False)

    # -- PV controller and scheduler ---------------------------------------------------------------

    def _bind(self, ns: str, name: str) -> None:
        """``pkg/controller/volume/persistentvolume``: bind a claim whose class exists (the default
        class when none is named, set by the DefaultStorageClass admission plugin); else Pending
        with ``ProvisioningFailed`` (class missing) or ``FailedBinding`` (no class at all)."""
        pvc = copy.deepcopy(self.emu.get(PVCS, ns, name))
        if pvc is None:
            return
        spec = pvc.setdefault("spec", {})
        if self.storage_classes is not None:
            cls = spec.get("storageClassName")
            if cls is None and self.storage_classes:
                cls = spec["storageClassName"] = self.storage_classes[0]
            if cls is None:
                pvc["status"] = {"phase": "Pending"}
                self.emu.put(PVCS, pvc, create=False)
                self.emu.put(EVENTS, event(ns, "PersistentVolumeClaim", name, "Normal", "FailedBinding",
                                           "no persistent volumes available for this claim and no storage class "
                                           "is set", "persistentvolume-controller"))
                return
            if cls not in self.storage_classes:
                pvc["status"] = {"phase": "Pending"}
                self.emu.put(PVCS, pvc, create=False)
                self.emu.put(EVENTS, event(ns, "PersistentVolumeClaim", name, "Warning", "ProvisioningFailed",
                                           f'storageclass.storage.k8s.io "{cls}" not found',
                                           "persistentvolume-controller"))
                return
        spec["volumeName"] = f"pvc-{pvc['metadata'].get('uid', uuid.uuid4())}"
        pvc["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                         "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get(
                             "storage", "1Gi")}}
        self.emu.put(PVCS, pvc, create=False)

    def _unbound_claims(self, ns: str, pod_spec: dict[str, Any]) -> str | None:
        """The scheduler's ``VolumeBinding`` filter message when a claim is missing or unbound."""
        for vol in pod_spec.get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.emu.get(PVCS, ns, claim)
            if pvc is None:
                return f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found. preemption: 0/1 nodes ' \
                       "are available: 1 Preemption is not helpful for scheduling."
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return UNBOUND_MESSAGE
        return None

    # -- kubelet failure modes (no process) -------------------------------------------------------

    def _break_pod(self, ns: str, pod_name: str, reason: str) -> None:
        pod = copy.deepcopy(self.emu.get(PODS, ns, pod_name))
        if pod is None:
            return
        if not pod["status"].get("containerStatuses"):
            pod["status"]["containerStatuses"] = [{"name": "main", "ready": False, "restartCount": 0, "state": {}}]
        cs = pod["status"]["containerStatuses"][0]
        cs["ready"] = False
        for cond in pod["status"].get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond["status"] = "False"
        if reason == "CrashLoopBackOff":
            cs.update(restartCount=3, state={"waiting": {"reason": "CrashLoopBackOff",
                                                         "message": "back-off 40s restarting failed container"}},
                      lastState={"terminated": {"reason": "Error", "exitCode": 1}})
            self.emu.logs[(ns, pod_name, "main", True)] = "loading model\nValueError: unknown quantization fp5\n"
        elif reason == "OOMKilled":
            cs.update(restartCount=1, state={"running": {}}, lastState={"terminated": {"reason": "OOMKilled",
                                                                                       "exitCode": 137}})
        elif reason == "ImagePullBackOff":
            pod["status"]["phase"] = "Pending"
            cs.update(state={"waiting": {"reason": "ImagePullBackOff",
                                         "message": 'Back-off pulling image "nvcr.io/nvidia/ai-dynamo/nope:0"'}})
        elif reason == "Evicted":
            # the kubelet's eviction manager (pkg/kubelet/eviction/eviction_manager.go, helpers.go
            # evictionMessage): phase Failed, reason Evicted, DisruptionTarget TerminationByKubelet
            pod["status"] = {"phase": "Failed", "reason": "Evicted",
                             "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: "
                                        "51200Ki. Container main was using 7340032Ki, request is 0, has larger "
                                        "consumption of memory. ",
                             "conditions": [{"type": "DisruptionTarget", "status": "True",
                                             "reason": "TerminationByKubelet",
                                             "message": "The node was low on resource: memory."},
                                            {"type": "PodScheduled", "status": "True"},
                                            {"type": "Ready", "status": "False"}],
                             "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0, "state": {
                                 "terminated": {"exitCode": 137, "reason": "Error"}}}]}
        elif reason == "Unschedulable":
            pod["status"] = {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}
            self.emu.put(EVENTS, {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "FailedScheduling",
                                  "metadata": {"name": f"{pod_name}.fs", "namespace": ns},
                                  "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": ns},
                                  "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."})
        elif reason == "GroupRestart":
            # a LeaderWorkerSet group (RecreateGroupOnPodRestart, kubernetes-sigs/lws
            # pkg/controllers/pod_controller.go handleRestartPolicy): the container exits, the
            # kubelet restarts it once, the LWS controller deletes the group and its StatefulSet makes
            # the pod again under the same name (a new uid, restartCount 0), where it crashes again
            cs.update(restartCount=1, state={"running": {}}, lastState={"terminated": {
                "reason": "Error", "exitCode": 1, "message": "NCCL error: unhandled system error"}})
            asyncio.get_running_loop().call_later(self.failure_after, self._recreate, ns, pod_name)
        self.failed_at = asyncio.get_running_loop().time()
        self.emu.put(PODS, pod, create=False)

    def _recreate(self, ns: str, pod_name: str) -> None:
        old = self.emu.remove(PODS, ns, pod_name)
        if old is None or old["metadata"].get("deletionTimestamp"):
            return
        pod = copy.deepcopy(old)
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            pod["metadata"].pop(key, None)
        pod["status"] = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                                                             {"type": "Ready", "status": "False"}],
                         "containerStatuses": [{"name": c["name"], "ready": False, "restartCount": 0,
                                                "state": {"running": {"startedAt": _now()}}}
                                               for c in pod["spec"]["containers"]]}
        self.emu.put(PODS, pod)
        asyncio.get_running_loop().call_later(self.failure_after, self._break_pod, ns, pod_name, "GroupRestart")

    # Jobs -> pods -> completion
    def _run_job(self, job: dict[str, Any]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if self.emu.get(JOBS, ns, name) is None:
            return
        outcome = self.job_outcome.get(name, "succeed")
        if outcome == "evicted" and (ns, name) in self._broken:
            outcome = "succeed"  # the replacement pod
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        template = job["spec"]["template"]["spec"]
        containers = [c["name"] for c in template["containers"]]
        pod = running_pod(pod_name, ns, {"job-name": name, "batch.kubernetes.io/job-name": name}, containers)
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                               "uid": job["metadata"].get("uid", ""), "controller": True,
                                               "blockOwnerDeletion": True}]
        pod["spec"]["volumes"] = template.get("volumes") or []
        unbound = self._unbound_claims(ns, template)
        self.emu.patch_status(JOBS, ns, name, {"active": 1, "startTime": _now()})
        if unbound:
            pod["spec"].pop("nodeName")
            pod["status"] = {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unbound}]}
            self.emu.put(PODS, pod)
            self.emu.put(EVENTS, event(ns, "Pod", pod_name, "Warning", "FailedScheduling", unbound,
                                       "default-scheduler"))
            return
        self.emu.put(PODS, pod)
        if outcome == "ImagePullBackOff":
            self._break_pod(ns, pod_name, "ImagePullBackOff")
            return
        if outcome == "evicted":
            # the pod is evicted; within backoffLimit the Job controller counts it failed and makes
            # a new pod (pkg/controller/job/job_controller.go), which succeeds
            self._broken.add((ns, name))
            self._break_pod(ns, pod_name, "Evicted")
            self.emu.patch_status(JOBS, ns, name, {"active": 0, "failed": 1})
            asyncio.get_running_loop().call_later(0.2, self._run_job, job)
            return
        if outcome == "deadline":
            asyncio.get_running_loop().call_later(0.1, self._job_deadline, ns, name, pod_name)
            return
        log = self.job_effects[name](job) if name in self.job_effects else f"{name} done\n"
        self.emu.logs[(ns, pod_name, containers[0], False)] = log
        pod = copy.deepcopy(self.emu.get(PODS, ns, pod_name))
        pod["status"]["phase"] = "Succeeded" if outcome == "succeed" else "Failed"
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
            "reason": "Completed" if outcome == "succeed" else "Error", "exitCode": 0 if outcome == "succeed" else 1}}
        self.emu.put(PODS, pod, create=False)
        if outcome == "succeed":
            status = {"active": 0, "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        else:
            status = {"active": 0, "failed": 4, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}
        self.emu.patch_status(JOBS, ns, name, status)

    def _job_deadline(self, ns: str, name: str, pod_name: str) -> None:
        """``activeDeadlineSeconds`` passed (pkg/controller/job/job_controller.go, Kubernetes 1.31+):
        the controller sets ``FailureTarget`` at once, deletes the running pod, and adds ``Failed``
        only when no pod is left terminating, which takes the pod's grace period
        (``job_terminate_after``)."""
        message = "Job was active longer than specified deadline"
        self.emu.patch_status(JOBS, ns, name, {"active": 0, "terminating": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded", "message": message}]})
        pod = copy.deepcopy(self.emu.get(PODS, ns, pod_name))
        if pod is not None:
            pod["metadata"]["deletionTimestamp"] = _now()
            pod["metadata"]["deletionGracePeriodSeconds"] = int(self.job_terminate_after)
            self.emu.put(PODS, pod, create=False)

        def terminated() -> None:
            self.emu.remove(PODS, ns, pod_name)
            if self.emu.get(JOBS, ns, name) is not None:
                self.emu.patch_status(JOBS, ns, name, {"terminating": 0, "failed": 1, "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded", "message": message},
                    {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": message}]})

        asyncio.get_running_loop().call_later(self.job_terminate_after, terminated)

    async def _run_helper(self, pod: dict[str, Any]) -> None:
        """Run a harness helper pod's ``sh -c`` script for real, PVC mounts mapped to local dirs."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        spec = pod["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []}
        container = spec["containers"][0]
        mounts = {m["mountPath"]: str(self.pvc_dirs[claims[m["name"]]]) for m in container.get("volumeMounts") or []}
        env = dict(os.environ)
        for e in container.get("env") or []:
            value = e.get("value", "")
            if e["name"] == "RH_ROOTS":
                value = " ".join(mounts.get(p, p) for p in value.split())
            env[e["name"]] = value
        proc = await asyncio.create_subprocess_exec(*container["command"], env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        self.emu.logs[(ns, name, container["name"], False)] = out.decode()
        current = copy.deepcopy(self.emu.get(PODS, ns, name))
        if current is None:
            return
        current["status"] = {"phase": "Succeeded" if proc.returncode == 0 else "Failed", "containerStatuses": [
            {"name": container["name"], "state": {"terminated": {"exitCode": proc.returncode}}}]}
        self.emu.put(PODS, current, create=False)


def _pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class EmulatedCluster:
    """The emulator on 127.0.0.1 in a background event loop, driven from synchronous code."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.emu: ClusterEmulator | None = None
        self.url = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        if self._error:
            raise self._error

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with ClusterEmulator(**self._options) as emu, kmock.Server(emu) as server:
                    self.emu = emu
                    self.url = str(server.url).rstrip("/")
                    self._ready.set()
                    try:
                        await self._stop.wait()
                    finally:
                        for close in emu.closers:
                            close()
            except BaseException as exc:  # noqa: BLE001 -- surfaced to the constructor
                self._error = exc
                self._ready.set()

        asyncio.run(main())

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run ``fn(*args)`` in the emulator's loop (all state changes go through here)."""
        async def run() -> Any:
            return fn(*args, **kw)
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def client_configuration(self):
        from kubernetes import client as k8s_client
        cfg = k8s_client.Configuration()
        cfg.host = self.url
        return cfg

    def kube(self, attempts: int = 4) -> Kube:
        from kubernetes import client as k8s_client
        return Kube(k8s_client.ApiClient(self.client_configuration()),
                    backoff=Backoff(attempts=attempts, base=0.05, cap=0.5), request_timeout=10)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulated",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "emulated-token"}}],
            "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "tester",
                                                          "namespace": namespace}}],
        }))
        return path

    # conveniences, each one call into the loop
    def put(self, res: Res, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call(self.emu.put, res, copy.deepcopy(obj))

    def get(self, res: Res, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.call(lambda: copy.deepcopy(self.emu.get(res, ns, name)))

    def items(self, res: Res, ns: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda: copy.deepcopy(self.emu.items(res, ns)))

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.put(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name, "labels": labels or {}}, "status": {"phase": "Active"}})
