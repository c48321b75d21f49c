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

from recipe_harness.deploy.kubernetes.client import ApiError, Backoff, Kube, Unreachable, poll  # noqa: E402
from recipe_harness.deploy.kubernetes.portforward import PortForward  # noqa: E402
from recipe_harness.deploy.kubernetes.resources import POD  # noqa: E402

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


@pytest.fixture(autouse=True)
def no_forward_left() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("port-forward")]
    assert left == [], f"port-forward threads still running: {left}"


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


def test_a_request_the_kubelet_refuses_before_the_pod_answers_goes_to_another_ready_pod(cluster, servers):
    """The apiserver opens a forward to any existing pod; the kubelet then finds nothing listening (a
    restarting container) and ends the stream with an error: the request is replayed on the next
    ready pod, and a pod that answers is never replayed."""
    web1 = serve(_Echo, pod_name="web-1")
    servers.append(web1)
    labels = {"app": "web"}
    container = [{"name": "main", "ports": [{"name": "http", "containerPort": 8000}]}]
    for name in ("web-0", "web-1"):  # both Ready in the API; web-0's container is not listening
        cluster.put(PODS, ready_pod(name, labels, container))
    cluster.put(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}})
    relay(cluster, "web-1", 8000, web1)
    with PortForward(cluster.kube(), NS, "web", 8000) as pf:
        assert pf.backend is not None and pf.backend.pod == "web-0"
        for i in range(3):
            assert get_json(f"{pf.url}/req/{i}") == {"path": f"/req/{i}", "pod": "web-1"}
        assert any("web-0" in e or "8000" in e for e in pf.errors)
        assert cluster.emu.portforwards.count((NS, "web-0", 8000)) == 1  # then the forward stays on web-1


def test_a_pod_that_is_not_listening_and_has_no_replacement_fails_the_request(cluster):
    labels = {"app": "web"}
    cluster.put(PODS, ready_pod("web-0", labels, [{"name": "main", "ports": [{"name": "http", "containerPort": 8000}]}]))
    cluster.put(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}})
    from recipe_harness.deploy.kubernetes.portforward import RETRIES
    with PortForward(cluster.kube(), NS, "web", 8000) as pf:
        with pytest.raises(OSError):
            get_json(f"{pf.url}/req")
        assert cluster.emu.portforwards.count((NS, "web-0", 8000)) == RETRIES + 1
        assert pf.errors and all("does not listen on port 8000" in e for e in pf.errors)


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


class _Answer:
    def __init__(self, status: int, body: bytes = b"", retry_after: str | None = None) -> None:
        self.status, self.reason, self._body = status, "", body
        self.headers = {"Retry-After": retry_after} if retry_after is not None else {}

    def read(self) -> bytes:
        return self._body


class _AnsweringApiClient(_RaisingApiClient):
    """An ApiClient whose requests get ``answers`` in turn (the last one for ever after)."""

    def __init__(self, answers: list[_Answer]) -> None:
        super().__init__(Exception())
        self.answers = answers

    def call_api(self, *args, **kw):
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def test_transient_answers_are_retried_with_jittered_backoff_and_retry_after():
    slept: list[float] = []
    fake = _AnsweringApiClient([_Answer(503), _Answer(429, retry_after="0.3"), _Answer(200, b'{"ok": 1}')])
    kube = Kube(fake, backoff=Backoff(attempts=4, base=0.5, cap=10, sleep=slept.append))  # type: ignore[arg-type]
    assert kube.get("/api/v1/namespaces") == {"ok": 1}
    assert fake.calls == 3
    assert 0.25 <= slept[0] <= 0.5 and slept[1] == 0.3   # base * 2**0 halved, half of it random; Retry-After


def test_retries_end_after_the_attempts_with_the_last_answers_error_and_others_are_not_retried():
    slept: list[float] = []
    fake = _AnsweringApiClient([_Answer(503, b'{"reason": "ServiceUnavailable", "message": "etcd"}')])
    kube = Kube(fake, backoff=Backoff(attempts=4, base=0.5, cap=0.8, sleep=slept.append))  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        kube.get("/api/v1/namespaces")
    assert (info.value.status, info.value.reason, fake.calls, len(slept)) == (503, "ServiceUnavailable", 4, 3)
    assert 0.25 <= slept[0] <= 0.5 and all(0.4 <= s <= 0.8 for s in slept[1:])   # base * 2**n capped at 0.8
    fake = _AnsweringApiClient([_Answer(404, b'{"reason": "NotFound"}')])
    kube = Kube(fake, backoff=Backoff(attempts=4, sleep=slept.append))  # type: ignore[arg-type]
    assert kube.get_or_none("/api/v1/namespaces/x") is None and fake.calls == 1


def test_poll_calls_until_done_or_timeout_and_answers_the_last_result():
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return len(calls)

    assert poll(count, lambda n: n >= 3, timeout=60, interval=0.01) == 3
    calls.clear()
    assert poll(count, lambda n: False, timeout=0, interval=0.01) == 1   # no time left: one call answers

    def broken() -> int:
        raise ApiError(403, "Forbidden", "no")

    with pytest.raises(ApiError, match="403"):
        poll(broken, lambda n: True, timeout=60, interval=0.01)


# -- operator-shaped objects (ai-dynamo/dynamo deploy/operator) -----------------------------------

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_FIXTURES = ROOT / "fixtures" / "local" / "sidecar"
OK_FIXTURES = ROOT / "fixtures" / "local" / "ok"
DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"
TYPE_LABEL = "nvidia.com/dynamo-component-type"


def load(recipe_id: str, root: Path):
    from recipe_harness.load.discovery import discover
    from recipe_harness.model.bundle import LoadedRecipe
    found = [r for r in discover(root).recipes if r.id == recipe_id]
    assert found, f"fixture recipe {recipe_id} missing under {root}"
    return LoadedRecipe.load(found[0])


def main_container(ctype: str) -> dict:
    """The main container as the operator builds it: component_frontend.go / component_worker.go."""
    if ctype == "frontend":
        return {"name": "main", "ports": [{"name": "http", "containerPort": 8000}],
                "env": [{"name": "DYNAMO_PORT", "value": "8000"}, {"name": "DYN_HTTP_PORT", "value": "8000"}]}
    return {"name": "main", "ports": [{"name": "system", "containerPort": 9090}, {"name": "nixl", "containerPort": 19090}],
            "env": [{"name": "DYN_SYSTEM_ENABLED", "value": "true"}, {"name": "DYN_SYSTEM_PORT", "value": "9090"}]}


def sidecar_container(args: list[str]) -> dict:
    """graph.go generateFrontendSidecar: the frontend defaults, named sidecar-frontend, the recipe's args."""
    return {"name": "sidecar-frontend", "args": args, "ports": [{"name": "http", "containerPort": 8000}],
            "env": [{"name": "DYNAMO_PORT", "value": "8000"}, {"name": "DYN_HTTP_PORT", "value": "8000"}]}


def operator_pod(dgd: str, component: str, ctype: str, i: int, extra: list[dict] | None = None) -> dict:
    labels = {DGD_LABEL: dgd, COMPONENT_LABEL: component, TYPE_LABEL: ctype,
              "nvidia.com/selector": f"{dgd}-{component.lower()}"}
    return ready_pod(f"{dgd}-{component.lower()}-{i}", labels, [main_container(ctype), *(extra or [])])


def operator_service(dgd: str, component: str, ctype: str) -> dict:
    """graph.go GenerateComponentService: frontend http 8000; others system 9090 (Kubernetes discovery)."""
    port = ({"name": "http", "port": 8000, "targetPort": "http"} if ctype == "frontend"
            else {"name": "system", "port": 9090, "targetPort": "system"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{dgd}-{component.lower()}", "namespace": NS},
            "spec": {"selector": {TYPE_LABEL: ctype, COMPONENT_LABEL: component}, "ports": [port]}}


# -- defect: frontend sidecars -------------------------------------------------------------------


def test_a_service_without_the_asked_port_is_an_error_naming_its_ports(cluster):
    cluster.put(PODS, operator_pod("tiny-gaie", "VllmWorker", "worker", 0, [sidecar_container([])]))
    cluster.put(SERVICES, operator_service("tiny-gaie", "VllmWorker", "worker"))
    kube = cluster.kube()
    pf = PortForward(kube, NS, "tiny-gaie-vllmworker", 8000)
    with pytest.raises(Unreachable, match=r"service tiny-gaie-vllmworker has no port 8000 \(its ports: system/9090\)"):
        pf.start()
    pf.close()
    assert cluster.emu.portforwards == []


@pytest.mark.parametrize("recipe_id", ["tiny/vllm/gaie", "tiny/vllm/gaie-v1beta1"])
def test_sidecar_api_is_forwarded_to_a_ready_pod_on_the_sidecar_port(cluster, servers, recipe_id):
    from recipe_harness.deploy.kubernetes.access import api_service, open_access
    recipe = load(recipe_id, SIDECAR_FIXTURES)
    dep = recipe.deployment
    owner = dep.sidecar_frontends[0]
    api = api_service(recipe)
    assert not api.via_service and api.container == "sidecar-frontend" and api.port == 8000
    args = owner.frontend_sidecar.argv
    # two replicas: the first not ready yet; Services as the operator makes them, none with the API port
    pods = [operator_pod(dep.name, owner.name, owner.component_type, i, [sidecar_container(args)])
            for i in range(2)]
    pods[0]["status"]["conditions"][0]["status"] = "False"
    for pod in pods:
        cluster.put(PODS, pod)
    cluster.put(SERVICES, operator_service(dep.name, owner.name, owner.component_type))
    sidecar = serve(_Echo, pod_name=pods[1]["metadata"]["name"])
    servers.append(sidecar)
    relay(cluster, pods[1]["metadata"]["name"], 8000, sidecar)
    access = open_access(cluster.kube(), recipe, NS)
    try:
        assert get_json(access.url + "/v1/models") == {"path": "/v1/models", "pod": pods[1]["metadata"]["name"]}
        assert cluster.emu.portforwards == [(NS, pods[1]["metadata"]["name"], 8000)]
        fronts = [c for c in access.components if c.role == "frontend"]
        assert [(c.name, c.service) for c in fronts] == [(f"{pods[1]['metadata']['name']}/sidecar-frontend",
                                                          owner.frontend_sidecar.name)]
        assert fronts[0].metrics_url == access.url + "/metrics"
        # the ready worker's system port gets its own forward; the unready one is listed without metrics
        workers = {c.name: c for c in access.components if c.role != "frontend"}
        assert workers[pods[1]["metadata"]["name"]].metrics_url.endswith("/metrics")
        assert workers[pods[0]["metadata"]["name"]].metrics_url is None
    finally:
        access.close()


def test_sidecar_port_comes_from_the_pod_args_then_env(cluster, servers):
    from recipe_harness.deploy.kubernetes.access import SidecarTarget, sidecar_http_port
    assert sidecar_http_port({"args": ["-m", "dynamo.frontend", "--http-port", "8123"],
                              "env": [{"name": "DYN_HTTP_PORT", "value": "8000"}]}, 8000) == 8123
    assert sidecar_http_port({"args": ["-m", "dynamo.frontend", "--http-port=8124"]}, 8000) == 8124
    assert sidecar_http_port({"env": [{"name": "DYN_HTTP_PORT", "value": "8125"}]}, 8000) == 8125
    assert sidecar_http_port({}, 8000) == 8000
    pod = operator_pod("g", "VllmWorker", "worker", 0, [sidecar_container(["-m", "dynamo.frontend", "--http-port", "8123"])])
    cluster.put(PODS, pod)
    target = SidecarTarget({DGD_LABEL: "g", COMPONENT_LABEL: "VllmWorker"}, "sidecar-frontend", 8000)
    backend = target.resolve(cluster.kube(), NS)
    assert (backend.pod, backend.port) == ("g-vllmworker-0", 8123)
    missing = SidecarTarget({DGD_LABEL: "g", COMPONENT_LABEL: "VllmWorker"}, "frontend", 8000)
    with pytest.raises(Unreachable, match=r"no frontend sidecar container 'frontend' \(its containers: main, sidecar-frontend\)"):
        missing.resolve(cluster.kube(), NS)


def _manifests(recipe, twin: bool = False):
    from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget
    return KubernetesTarget(KubeOptions(twin="mocker" if twin else None)).manifests(recipe)


GAIE_CRD = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


@pytest.mark.parametrize("twin", [False, True])
def test_sidecar_graph_with_an_epp_is_unsupported_without_the_inferencepool_crd(cluster, twin):
    from recipe_harness.deploy.kubernetes.access import unsupported
    recipe = load("tiny/vllm/gaie", SIDECAR_FIXTURES)
    kube = cluster.kube()
    why = unsupported(recipe, _manifests(recipe, twin), kube)
    assert why is not None and "component Epp" in why and "serves no InferencePool" in why
    assert "Install the GAIE CRDs" in why
    cluster.put(GAIE_CRD, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                           "metadata": {"name": "inferencepools.inference.networking.k8s.io"},
                           "spec": {"group": "inference.networking.k8s.io", "scope": "Namespaced",
                                    "names": {"kind": "InferencePool", "plural": "inferencepools"},
                                    "versions": [{"name": "v1", "served": True, "storage": True}]}})
    assert unsupported(recipe, _manifests(recipe, twin), kube) is None


def test_placeholder_images_are_unsupported_and_name_where(cluster, tmp_path):
    import yaml

    from recipe_harness.deploy.kubernetes.access import placeholder_image, unsupported
    for image in ("nvcr.io/nvidia/ai-dynamo/epp-inference-extension-dynamo:my-tag", "<registry>/dynamo/epp:1.0",
                  "nvcr.io/nvidia/ai-dynamo/vllm-runtime:${DYNAMO_TAG}", "my-registry/epp:1.6.1"):
        assert placeholder_image(image), image
    for image in ("nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1", "python:3.12-slim", "busybox@sha256:abc",
                  "registry.example.com:5000/team/image:2025.01"):
        assert not placeholder_image(image), image
    root = tmp_path / "recipes"
    (root / "tiny" / "vllm" / "gaie").mkdir(parents=True)
    doc = yaml.safe_load((SIDECAR_FIXTURES / "tiny" / "vllm" / "gaie" / "deploy.yaml").read_text())
    doc["spec"]["services"]["Epp"]["extraPodSpec"]["mainContainer"]["image"] = \
        "nvcr.io/nvidia/ai-dynamo/epp-inference-extension-dynamo:my-tag"
    (root / "tiny" / "vllm" / "gaie" / "deploy.yaml").write_text(yaml.safe_dump(doc))
    recipe = load("tiny/vllm/gaie", root)
    for twin in (False, True):  # the twin replaces worker and sidecar images, not the endpoint picker's
        why = unsupported(recipe, _manifests(recipe, twin), cluster.kube())
        assert why is not None and ":my-tag" in why and "spec.services.Epp.extraPodSpec.mainContainer.image" in why
        assert "placeholder" in why


def test_deploy_skips_an_unsupported_recipe_before_creating_anything(cluster, tmp_path):
    from recipe_harness.deploy import DeploySkip
    from recipe_harness.deploy.kubernetes.target import KubeOptions, KubernetesTarget
    recipe = load("tiny/vllm/gaie", SIDECAR_FIXTURES)
    target = KubernetesTarget(KubeOptions(twin="mocker", deploy_timeout=10), kube=cluster.kube())
    before = len(cluster.items(("", "v1", "namespaces")))
    with pytest.raises(DeploySkip, match="InferencePool"):
        with target.deploy(recipe, tmp_path / "work"):
            pass
    assert len(cluster.items(("", "v1", "namespaces"))) == before


# -- defect: disaggregation and KV routing checked on a cluster ----------------------------------

DISAGG = "tiny/mocker/disagg-kv"  # Frontend (router kv), 2 prefill workers, 1 decode worker


class Graph:
    """What the pods of a disaggregated graph count: a stand-in frontend sends each chat request to
    the workers ``route(i)`` names; each worker pod's system port serves its counter."""

    def __init__(self, route) -> None:
        self.route = route
        self.served: dict[str, int] = {}
        self.requests = 0
        self.lock = threading.Lock()


class _FrontendPod(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def _send(self, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        graph: Graph = self.server.graph  # type: ignore[attr-defined]
        if self.path == "/metrics":  # the frontend's KV router: one "stored" event per request
            self._send(f'dynamo_component_kv_cache_events_applied{{event_type="stored"}} {graph.requests}\n'.encode(),
                       "text/plain")
        else:
            self._send(json.dumps({"object": "list", "data": [{"id": "tiny-local"}]}).encode())

    def do_POST(self):  # noqa: N802
        graph: Graph = self.server.graph  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with graph.lock:
            for pod in graph.route(graph.requests):
                graph.served[pod] = graph.served.get(pod, 0) + 1
            graph.requests += 1
        self._send(json.dumps({"object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode())

    def log_message(self, *args):
        pass


class _WorkerSystemPort(BaseHTTPRequestHandler):
    """A worker's system server: the runtime's per-endpoint request counter (and another endpoint)."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802
        graph: Graph = self.server.graph  # type: ignore[attr-defined]
        n = graph.served.get(self.server.pod_name, 0)  # type: ignore[attr-defined]
        text = ("# TYPE dynamo_component_requests_total counter\n"
                f'dynamo_component_requests_total{{dynamo_component="backend",dynamo_endpoint="generate"}} {n}\n'
                'dynamo_component_requests_total{dynamo_component="backend",dynamo_endpoint="clear_kv_blocks"} 7\n')
        body = text.encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def deploy_graph(cluster: EmulatedCluster, servers: list, recipe, graph: Graph) -> dict[str, str]:
    """Pods and Services of ``recipe`` as the operator makes them; each pod's port relayed to a server."""
    dep = recipe.deployment
    roles: dict[str, str] = {}
    for svc in dep.services:
        for i in range(svc.replicas):
            pod = operator_pod(dep.name, svc.name, svc.component_type, i)
            name = pod["metadata"]["name"]
            cluster.put(PODS, pod)
            server = serve(_FrontendPod if svc.role == "frontend" else _WorkerSystemPort, graph=graph, pod_name=name)
            servers.append(server)
            relay(cluster, name, 8000 if svc.role == "frontend" else 9090, server)
            roles[name] = svc.role
        cluster.put(SERVICES, operator_service(dep.name, svc.name, svc.component_type))
    return roles


def _run(check: str, recipe, cluster, servers, route) -> tuple:
    from recipe_harness.deploy.kubernetes.access import open_access
    from recipe_harness.exercise import smoke
    graph = Graph(route)
    roles = deploy_graph(cluster, servers, recipe, graph)
    access = open_access(cluster.kube(), recipe, NS)
    try:
        endpoint = access.endpoint(recipe, NS, None)
        try:
            return smoke.run(check, endpoint, timeout=30), endpoint, roles, graph
        except smoke.SmokeFailure as exc:
            return exc, endpoint, roles, graph
    finally:
        access.close()


PREFILL = ["tiny-disagg-kv-mockerprefillworker-0", "tiny-disagg-kv-mockerprefillworker-1"]
DECODE = "tiny-disagg-kv-mockerdecodeworker-0"


def test_every_worker_pod_gets_a_metrics_url_through_its_own_forward(cluster, servers):
    result, endpoint, roles, _ = _run("models", load(DISAGG, OK_FIXTURES), cluster, servers, lambda i: [])
    assert endpoint.disaggregated and endpoint.router_mode == "kv" and endpoint.model == "tiny-local"
    by_name = {c.name: c for c in endpoint.components}
    assert {n: c.role for n, c in by_name.items()} == {**roles, PREFILL[0]: "prefill", PREFILL[1]: "prefill",
                                                        DECODE: "decode"}
    urls = [by_name[n].metrics_url for n in [*PREFILL, DECODE]]
    assert all(u and u.endswith("/metrics") for u in urls) and len(set(urls)) == 3
    assert by_name["tiny-disagg-kv-frontend-0"].metrics_url == endpoint.base_url + "/metrics"


@pytest.mark.parametrize("labels", [
    {"leaderworkerset.sigs.k8s.io/worker-index": "1"},
    {"grove.io/podclique": "tiny-disagg-kv-0-mockerprefillworker-wkr"},
])
def test_pods_of_multinode_ranks_get_no_metrics_forward_and_the_checks_still_run(cluster, servers, labels):
    """A multinode worker's non-leader pods run engine ranks (ray, a headless vLLM, sshd for mpirun), not
    Dynamo's system server: a forward to them would fail every check that reads worker metrics."""
    from recipe_harness.deploy.kubernetes.access import multinode_rank
    rank = operator_pod("tiny-disagg-kv", "MockerPrefillWorker", "worker", 9)
    rank["metadata"]["labels"].update(labels)
    assert multinode_rank(rank) and not multinode_rank(operator_pod("tiny-disagg-kv", "MockerPrefillWorker", "worker", 0))
    cluster.put(PODS, rank)  # ready, but nothing answers on its port 9090
    sticky, endpoint, *_ = _run("kv-routing", load(DISAGG, OK_FIXTURES), cluster, servers, lambda i: [PREFILL[1], DECODE])
    assert not isinstance(sticky, Exception), sticky
    [comp] = [c for c in endpoint.components if c.name == rank["metadata"]["name"]]
    assert comp.role == "prefill" and comp.metrics_url is None
    assert any("multinode workers run engine ranks" in n and rank["metadata"]["name"] in n for n in endpoint.notes)


def test_disagg_check_passes_when_prefill_and_decode_both_serve(cluster, servers):
    result, *_ = _run("disagg", load(DISAGG, OK_FIXTURES), cluster, servers,
                      lambda i: [PREFILL[i % 2], DECODE])
    assert not isinstance(result, Exception), result
    assert result.metrics["prefill_served"] == 4 and result.metrics["decode_served"] == 4
    assert result.metrics["per_worker"] == {PREFILL[0]: 2, PREFILL[1]: 2, DECODE: 4}
    # each worker pod was read on its own system port, not through its Service
    assert {(pod, port) for _, pod, port in cluster.emu.portforwards if port == 9090} == \
        {(PREFILL[0], 9090), (PREFILL[1], 9090), (DECODE, 9090)}


def test_disagg_check_fails_when_prefill_serves_nothing(cluster, servers):
    result, *_ = _run("disagg", load(DISAGG, OK_FIXTURES), cluster, servers, lambda i: [DECODE])
    assert isinstance(result, AssertionError)
    assert "prefill workers served 0, decode workers served 4" in str(result)


def test_kv_routing_check_runs_on_a_cluster(cluster, servers):
    sticky, *_ = _run("kv-routing", load(DISAGG, OK_FIXTURES), cluster, servers, lambda i: [PREFILL[1], DECODE])
    assert not isinstance(sticky, Exception), sticky
    assert sticky.metrics["worker"] == PREFILL[1] and sticky.notes == []


def test_kv_routing_check_fails_when_a_shared_prefix_is_spread(cluster, servers):
    spread, *_ = _run("kv-routing", load(DISAGG, OK_FIXTURES), cluster, servers, lambda i: [PREFILL[i % 2], DECODE])
    assert isinstance(spread, AssertionError) and "went to several workers" in str(spread)


def test_conditions_the_harness_finds_are_not_http_statuses_and_never_retried(cluster):
    """No ready pod behind a Service is not an API answer: no invented 503 that retry logic would
    take for a transient server error."""
    from recipe_harness.deploy.kubernetes.client import KubeError
    from recipe_harness.deploy.kubernetes.portforward import resolve_service

    cluster.namespace("ns")
    cluster.put(("", "v1", "services"), {"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": "svc", "namespace": "ns"},
                                         "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 8000}]}})
    with pytest.raises(Unreachable, match="no ready pod behind service svc") as info:
        resolve_service(cluster.kube(), "ns", "svc", 8000)
    assert isinstance(info.value, KubeError) and not isinstance(info.value, ApiError)
    assert not hasattr(info.value, "status")
