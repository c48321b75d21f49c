"""Forward a local port on 127.0.0.1 to a Service, through the client's port-forward API.

Like ``kubectl port-forward svc/NAME``: the Service is resolved to one ready pod behind it and
its target port; every local connection opens its own port-forward stream to that pod
(``kubernetes.stream.portforward``), re-resolving the pod if the stream cannot be opened.
"""

from __future__ import annotations

import select
import socket
import threading
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.stream import portforward as k8s_portforward

from .client import ApiError, Kube
from .resources import POD, SERVICE


@dataclass
class Backend:
    pod: str
    port: int


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def resolve_service(kube: Kube, namespace: str, service: str, port: int | str = 8000) -> Backend:
    """A ready pod behind ``service`` and the container port its ``port`` (number or name) targets."""
    svc = kube.get(SERVICE.path(namespace, service))
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        raise ApiError(404, "NoSelector", f"service {service} has no selector; nothing to forward to")
    ports = spec.get("ports") or []
    chosen = next((p for p in ports if p.get("port") == port or (p.get("name") and p.get("name") == port)), None)
    if chosen is None:
        if len(ports) != 1:
            raise ApiError(404, "NoPort", f"service {service} exposes no port {port} "
                                          f"(it has {[p.get('port') for p in ports]})")
        chosen = ports[0]
    target = chosen.get("targetPort", chosen.get("port"))
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = (kube.get(POD.path(namespace), labelSelector=label_selector) or {}).get("items") or []
    ready = [p for p in pods if _ready(p)]
    if not ready:
        raise ApiError(503, "NoReadyPod", f"no ready pod behind service {service} (selector {label_selector})")
    pod = sorted(ready, key=lambda p: p["metadata"]["name"])[0]
    if isinstance(target, str) and not target.isdigit():
        named = [cp.get("containerPort") for c in (pod.get("spec") or {}).get("containers") or []
                 for cp in c.get("ports") or [] if cp.get("name") == target]
        if not named:
            raise ApiError(404, "NoPort", f"pod {pod['metadata']['name']} has no container port named {target}")
        target = named[0]
    return Backend(pod["metadata"]["name"], int(target))


class PortForward:
    """``with PortForward(kube, ns, svc) as pf: httpx.get(f"http://127.0.0.1:{pf.local_port}/...")``"""

    def __init__(self, kube: Kube, namespace: str, service: str, port: int | str = 8000) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.port = port
        self.core = k8s_client.CoreV1Api(kube.api_client)
        self.backend: Backend | None = None
        self.connections = 0
        self.errors: list[str] = []
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def local_port(self) -> int:
        assert self._listener is not None, "start() first"
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self) -> PortForward:
        self.backend = resolve_service(self.kube, self.namespace, self.service, self.port)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.5)
        self._listener = listener
        threading.Thread(target=self._accept, name=f"port-forward-{self.service}", daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> PortForward:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()  # type: ignore[union-attr]
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _open(self):
        with self._lock:
            backend = self.backend
        try:
            pf = k8s_portforward(self.core.connect_get_namespaced_pod_portforward, backend.pod, self.namespace,
                                 ports=str(backend.port))
            return pf, backend
        except Exception:  # noqa: BLE001 -- the pod may have moved: resolve once more
            fresh = resolve_service(self.kube, self.namespace, self.service, self.port)
            with self._lock:
                self.backend = fresh
            pf = k8s_portforward(self.core.connect_get_namespaced_pod_portforward, fresh.pod, self.namespace,
                                 ports=str(fresh.port))
            return pf, fresh

    def _serve(self, conn: socket.socket) -> None:
        pf = None
        try:
            pf, backend = self._open()
            remote = pf.socket(backend.port)
            remote.setblocking(True)
            conn.setblocking(True)
            pair = {conn: remote, remote: conn}
            open_ends = {conn, remote}
            while open_ends and not self._stop.is_set():
                readable, _, _ = select.select(list(open_ends), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        open_ends.discard(sock)
                        try:
                            pair[sock].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    pair[sock].sendall(data)
                if remote not in open_ends:
                    break
            err = pf.error(backend.port)
            if err:
                self.errors.append(err)
        except Exception as exc:  # noqa: BLE001 -- report, never kill the listener
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
            if pf is not None:
                pf.close()
