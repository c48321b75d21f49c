"""Forward a local port on 127.0.0.1 to a port of a pod, through the API's port-forward websocket.

What is forwarded to is a :class:`ForwardTarget`:

- :class:`ServiceTarget` -- like ``kubectl port-forward svc/NAME``: the Service's port (by number
  or name, never another one) resolved to one ready pod behind its selector and the container
  port it targets;
- :class:`SelectorTarget` -- a ready pod picked by labels, on a container's port (by number, or
  by name in that container): the frontend sidecar of a worker, which no Service exposes;
- :class:`PodTarget` -- one named pod and port: a worker pod's ``system`` port, whose metrics
  count that pod alone.

Every local connection opens its own port-forward stream, re-resolving the pod once if the
stream cannot be opened. The websocket is opened here with ``kubernetes.stream.ws_client``
(``portforward_call``) and a private ``ApiClient`` that only builds the signed URL: the
client's ``kubernetes.stream.portforward()`` swaps ``api_client.call_api`` while it connects
(``kubernetes/stream/stream.py``), which is not thread-safe; under concurrent connections it
left the harness's shared ``ApiClient`` swapped for good.
"""

from __future__ import annotations

import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import OpenApiException
from kubernetes.stream import ws_client

from recipe_harness.deploy.kubernetes.client import ApiError, Kube, KubeError, Unreachable
from recipe_harness.deploy.kubernetes.resources import POD, SERVICE

JOIN_TIMEOUT = 5.0         # seconds close() waits, in all, for the relaying threads to end
POLL = 0.2                 # seconds between checks of the stop flag while relaying
RETRIES = 2                # a connection the kubelet refuses before the pod answers goes to another ready pod
REPLAY_LIMIT = 1 << 20     # bytes of a request kept for that replay (a larger one is not retried)
ERROR_WAIT = 1.0           # seconds to wait for the kubelet's error after a stream that ended unanswered


@dataclass(frozen=True)
class Backend:
    pod: str
    port: int


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _port_text(p: dict[str, Any]) -> str:
    return f"{p['name']}/{p.get('port')}" if p.get("name") else str(p.get("port"))


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def ready_pods(kube: Kube, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Ready pods matching ``labels``, sorted by name (the same pod every time while it lives)."""
    pods = (kube.get(POD.path(namespace), labelSelector=_selector(labels)) or {}).get("items") or []
    return sorted((p for p in pods if pod_ready(p)), key=lambda p: p["metadata"]["name"])


def container_port(pod: dict[str, Any], port: int | str, container: str | None = None) -> int:
    """``port`` as a number: a number stays; a name is looked up in ``container`` (or every container)."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    name = pod["metadata"]["name"]
    containers = (pod.get("spec") or {}).get("containers") or []
    if container is not None:
        containers = [c for c in containers if c.get("name") == container]
    found = [cp.get("containerPort") for c in containers for cp in c.get("ports") or [] if cp.get("name") == port]
    if not found:
        where = f"container {container}" if container else "any container"
        raise Unreachable(f"pod {name}: {where} has no port named {port!r}")
    return int(found[0])


def pick_pod(ready: list[dict[str, Any]], avoid: frozenset[str]) -> dict[str, Any]:
    """The first ready pod not in ``avoid`` (pods a forward just failed on), else the first."""
    return next((p for p in ready if p["metadata"]["name"] not in avoid), ready[0])


def resolve_service(kube: Kube, namespace: str, service: str, port: int | str = 8000,
                    avoid: frozenset[str] = frozenset()) -> Backend:
    """A ready pod behind ``service`` (one not in ``avoid`` if there is one) and the container
    port its ``port`` (number or name) targets.

    A Service without that port is an error naming the ports it has: forwarding to another port
    would reach another server (a worker's Service carries only ``system`` 9090, not the API).
    """
    svc = kube.get(SERVICE.path(namespace, service))
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        raise Unreachable(f"service {service} has no selector; nothing to forward to")
    ports = spec.get("ports") or []
    chosen = next((p for p in ports if p.get("port") == port or (p.get("name") and p.get("name") == port)), None)
    if chosen is None:
        raise Unreachable(f"service {service} has no port {port!r} (its ports: "
                          f"{', '.join(_port_text(p) for p in ports) or 'none'})")
    target = chosen.get("targetPort", chosen.get("port"))
    ready = ready_pods(kube, namespace, selector)
    if not ready:
        raise Unreachable(f"no ready pod behind service {service} (selector {_selector(selector)})")
    pod = pick_pod(ready, avoid)
    return Backend(pod["metadata"]["name"], container_port(pod, target))


class ForwardTarget(Protocol):
    def resolve(self, kube: Kube, namespace: str, avoid: frozenset[str] = frozenset()) -> Backend: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ServiceTarget:
    service: str
    port: int | str = 8000

    def resolve(self, kube: Kube, namespace: str, avoid: frozenset[str] = frozenset()) -> Backend:
        return resolve_service(kube, namespace, self.service, self.port, avoid)

    def describe(self) -> str:
        return f"service {self.service} port {self.port}"


@dataclass(frozen=True)
class SelectorTarget:
    labels: dict[str, str]
    port: int | str
    container: str | None = None
    what: str = ""

    def resolve(self, kube: Kube, namespace: str, avoid: frozenset[str] = frozenset()) -> Backend:
        ready = ready_pods(kube, namespace, self.labels)
        if not ready:
            raise Unreachable(f"no ready pod of {self.what or 'the selector'} "
                              f"({_selector(self.labels)})")
        pod = pick_pod(ready, avoid)
        return Backend(pod["metadata"]["name"], container_port(pod, self.port, self.container))

    def describe(self) -> str:
        where = f" container {self.container}" if self.container else ""
        return f"{self.what or _selector(self.labels)}{where} port {self.port}"


@dataclass(frozen=True)
class PodTarget:
    pod: str
    port: int

    def resolve(self, kube: Kube, namespace: str, avoid: frozenset[str] = frozenset()) -> Backend:
        return Backend(self.pod, self.port)

    def describe(self) -> str:
        return f"pod {self.pod} port {self.port}"


@dataclass
class _Stats:
    connections: int = 0
    errors: list[str] = field(default_factory=list)


class PortForward:
    """``with PortForward(kube, ns, ServiceTarget("svc", 8000)) as pf: httpx.get(pf.url + "/v1/models")``

    ``target`` may also be a Service name, with ``port`` (default 8000).
    """

    def __init__(self, kube: Kube, namespace: str, target: ForwardTarget | str, port: int | str = 8000) -> None:
        self.kube = kube
        self.namespace = namespace
        self.target: ForwardTarget = ServiceTarget(target, port) if isinstance(target, str) else target
        self.backend: Backend | None = None
        self.stats = _Stats()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._acceptor: threading.Thread | None = None
        # Builds signed port-forward URLs only; never shared with the harness's API calls.
        self._api = k8s_client.ApiClient(kube.api_client.configuration)

    @property
    def connections(self) -> int:
        return self.stats.connections

    @property
    def errors(self) -> list[str]:
        return self.stats.errors

    @property
    def local_port(self) -> int:
        assert self._listener is not None, "start() first"
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self) -> PortForward:
        self.backend = self.target.resolve(self.kube, self.namespace)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(POLL)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name=f"port-forward {self.target.describe()}",
                                          daemon=True)
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting, end every relayed connection and wait (bounded) for their threads."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        if self._acceptor is not None:
            self._acceptor.join(JOIN_TIMEOUT)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._api.close()

    def __enter__(self) -> PortForward:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()  # type: ignore[union-attr]  # start() sets it before this thread runs
            except TimeoutError:
                continue
            except OSError:
                return
            self.stats.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), name="port-forward connection", daemon=True)
            with self._lock:
                self._threads = {x for x in self._threads if x.is_alive()}
                self._threads.add(t)
            t.start()

    def _connect(self, backend: Backend) -> ws_client.PortForward:
        """One port-forward websocket to ``backend`` (``GET .../pods/NAME/portforward?ports=N``)."""
        path = POD.path(self.namespace, backend.pod, "portforward")
        try:
            _, url, headers, _, _ = self._api.param_serialize(
                method="GET", resource_path=path, query_params=[("ports", backend.port)],
                header_params={}, auth_settings=["BearerToken"])
            return ws_client.portforward_call(self._api.configuration, "GET", url, headers=headers)
        except (OpenApiException, ValueError, TypeError, OSError) as exc:
            raise ApiError(getattr(exc, "status", 0) or 0, "PortForward",
                           f"{getattr(exc, 'reason', None) or exc}", "GET", path) from exc

    def _open(self, avoid: frozenset[str] = frozenset()) -> tuple[ws_client.PortForward, Backend]:
        with self._lock:
            backend = self.backend
        assert backend is not None
        if backend.pod in avoid:  # the pod just failed a connection: another ready one, if there is one
            backend = self.target.resolve(self.kube, self.namespace, avoid)
            with self._lock:
                self.backend = backend
        try:
            return self._connect(backend), backend
        except KubeError:  # the pod may have moved: resolve once more
            fresh = self.target.resolve(self.kube, self.namespace, avoid)
            with self._lock:
                self.backend = fresh
            return self._connect(fresh), fresh

    def _serve(self, conn: socket.socket) -> None:
        """Relay one local connection. The apiserver opens a forward to any pod that exists, and the
        kubelet only then finds the container not listening (restarting, or a pod still terminating):
        it says so on the port's error channel and ends the stream (kubelet
        pkg/kubelet/cri/streaming/portforward/websocket.go; containerd "failed to connect to
        localhost:N inside namespace"). When that happens before the pod sent a byte, what the client
        sent is replayed on another ready pod (up to ``RETRIES`` times), so a restarting frontend
        does not fail a request another replica can serve."""
        sent = bytearray()  # what the client sent while the pod has said nothing: replayable
        avoid: frozenset[str] = frozenset()
        conn.setblocking(True)
        client_done = False
        try:
            for attempt in range(RETRIES + 1):
                pf = None
                try:
                    pf, backend = self._open(avoid)
                    remote = pf.socket(backend.port)
                    remote.setblocking(True)
                    try:
                        if sent:
                            remote.sendall(bytes(sent))
                        if client_done:
                            remote.shutdown(socket.SHUT_WR)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # this pod's end is gone too: the relay sees it end and the error says why
                    answered, client_done = self._relay(conn, remote, sent, client_done)
                    err = pf.error(backend.port)
                    if not answered and not err:  # the error channel's message may come just after the end
                        deadline = time.monotonic() + ERROR_WAIT
                        while not err and pf.connected and time.monotonic() < deadline:
                            time.sleep(0.02)
                            err = pf.error(backend.port)
                        err = err or pf.error(backend.port)
                    if err:
                        self.stats.errors.append(err)
                    if answered or not err or attempt == RETRIES or len(sent) > REPLAY_LIMIT:
                        return
                    print(f"[recipe-harness kubernetes] port-forward to pod {backend.pod} port {backend.port}: "
                          f"{err.strip()}; trying another ready pod", file=sys.stderr, flush=True)
                    avoid = avoid | {backend.pod}
                finally:
                    if pf is not None:
                        pf.close()
        except Exception as exc:  # noqa: BLE001 -- report, never kill the listener
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def _relay(self, conn: socket.socket, remote: socket.socket, sent: bytearray,
               client_done: bool) -> tuple[bool, bool]:
        """Pump bytes both ways until the pod's side ends; keep what the client sends in ``sent``
        until the pod answers. Returns (the pod sent anything, the client has closed its side)."""
        answered = False
        pair = {conn: remote, remote: conn}
        open_ends = {remote} if client_done else {conn, remote}
        while open_ends and not self._stop.is_set():
            readable, _, _ = select.select(list(open_ends), [], [], POLL)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:  # the client library drops its end unread when the stream ends
                    data = b""
                if not data:
                    open_ends.discard(sock)
                    if sock is conn:
                        client_done = True
                    if sock is conn or answered:  # the pod's end with no answer: the caller may retry
                        try:
                            pair[sock].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                    continue
                if sock is remote:
                    answered = True
                elif not answered and len(sent) <= REPLAY_LIMIT:
                    sent.extend(data)
                try:
                    pair[sock].sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    if pair[sock] is conn:
                        raise  # the client is gone
                    open_ends.discard(remote)  # the pod's end is gone: what it missed is in ``sent``
            if remote not in open_ends:
                break
        return answered, client_done
