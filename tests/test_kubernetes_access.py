"""Reaching a deployment on a cluster: port-forwards under concurrency, the frontend sidecar's pod
port, worker metrics through per-pod forwards, and recipes a cluster cannot run -- against the
HTTP emulation of the API (tests/kube_emulator.py) with local HTTP servers standing in for pods."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import PODS, SERVICES, EmulatedCluster  # noqa: E402

from recipe_harness.targets.kubernetes.client import ApiError, Backoff, Kube  # noqa: E402
from recipe_harness.targets.kubernetes.portforward import PortForward  # noqa: E402
from recipe_harness.targets.kubernetes.resources import POD  # noqa: E402

NS = "rh-access"


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802
        body = json.dumps({"path": self.path, "pod": self.server.pod_name}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(handler: type[BaseHTTPRequestHandler], **attrs) -> _Server:
    server = _Server(("127.0.0.1", 0), handler)
    for k, v in attrs.items():
        setattr(server, k, v)
    threading.Thread(target=server.serve_forever, name="test-http", daemon=True).start()
    return server


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    c = EmulatedCluster(namespace_finalize_delay=0.1, watch_timeout_cap=5.0)
    c.namespace(NS)
    yield c
    c.close()


@pytest.fixture
def servers() -> Iterator[list[_Server]]:
    started: list[_Server] = []
    yield started
    for s in started:
        s.shutdown()
        s.server_close()


def ready_pod(name: str, labels: dict[str, str], containers: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": containers, "nodeName": "node-1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def relay(cluster: EmulatedCluster, pod: str, port: int, server: _Server) -> None:
    """The emulator's port-forward to ``pod:port`` reaches ``server``."""
    cluster.call(lambda: cluster.emu.pod_ports.__setitem__((NS, pod, port), server.server_address))


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 -- 127.0.0.1
        return json.load(resp)


# -- defect: port-forward under concurrency ------------------------------------------------------


@pytest.mark.parametrize("n", [16, 64])
def test_concurrent_requests_through_a_forward_leave_the_api_client_working(cluster, servers, n):
    web = serve(_Echo, pod_name="web-0")
    servers.append(web)
    labels = {"app": "web"}
    cluster.put(PODS, ready_pod("web-0", labels, [{"name": "main", "ports": [{"name": "http", "containerPort": 8000}]}]))
    cluster.put(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}})
    relay(cluster, "web-0", 8000, web)
    kube = cluster.kube()
    results: list[dict] = []
    failures: list[str] = []
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(get_json(f"{pf.url}/req/{i}"))
        except Exception as exc:  # noqa: BLE001 -- collected and asserted below
            failures.append(f"{i}: {type(exc).__name__}: {exc}")

    with PortForward(kube, NS, "web", 8000) as pf:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failures == [] and pf.errors == []
        assert sorted(r["path"] for r in results) == sorted(f"/req/{i}" for i in range(n))
        assert pf.connections == n
    # the harness's own API client is untouched: lists, gets and deletes still work
    assert [p["metadata"]["name"] for p in kube.get(POD.path(NS))["items"]] == ["web-0"]
    assert kube.delete(POD.path(NS, "web-0")) is True
    assert kube.get_or_none(POD.path(NS, "web-0")) is None
    assert not [t for t in threading.enumerate() if t.name.startswith("port-forward")]


class _RaisingApiClient:
    """An ApiClient whose request building raises what the kubernetes client raises when its
    ``call_api`` was left swapped by ``kubernetes.stream.portforward``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def param_serialize(self, **kw):
        return "GET", "http://127.0.0.1:1" + kw["resource_path"], {}, None, []

    def call_api(self, *args, **kw):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc_name", ["ApiValueError", "ApiTypeError", "ValueError"])
def test_client_exceptions_become_api_errors_and_are_not_retried(exc_name):
    from kubernetes.client import exceptions as k8s_exc
    exc_type = getattr(k8s_exc, exc_name, None) or ValueError
    fake = _RaisingApiClient(exc_type("Missing required parameter `ports`"))
    kube = Kube(fake, backoff=Backoff(attempts=4, sleep=lambda s: None))  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        kube.get("/api/v1/namespaces/x/pods")
    assert info.value.status == 0 and exc_name in info.value.reason
    assert "Missing required parameter" in str(info.value)
    assert not info.value.transient and fake.calls == 1
    with pytest.raises(ApiError):
        kube.delete("/api/v1/namespaces/x")  # the cleanup path's call: an ApiError too
