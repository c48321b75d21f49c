"""The version pins in pyproject.toml admit only releases that have what the code calls.

How the bounds were established (``pip download --no-deps <pkg>==<version>``, then reading the
wheel's source):

- kubernetes: 36.0.3 (the last 36.x) has ``ApiClient.__call_api`` and
  ``call_api(resource_path, method, path_params, ...)`` and no ``param_serialize``; 37.0.0 has
  ``param_serialize(method, resource_path, ..., auth_settings, ...)`` returning ``(method, url,
  headers, body, post_params)`` and ``call_api(method, url, header_params, body, post_params,
  _request_timeout)``, as 37.0.2 does. 37.x is the first and only series with both, so
  ``>=37,<38`` (a new major regenerates the client). ``kubernetes.stream.portforward`` is in both.
- pytest-kubernetes: 0.7.x requires ``pytest<9`` (the harness runs pytest 9); 0.8.0's managers
  share one class-level ``ClusterOptions`` (no ``copy.copy`` in ``AClusterManager.__init__``), so
  one cluster's options leak into every other manager; 0.9.0 copies them and takes the name from
  the kind config's ``name``. Hence ``>=0.9,<0.10`` (0.x minors change behaviour).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recipe_harness"


def requirement(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = [Requirement(d) for d in deps if Requirement(d).name == name]
    assert len(found) == 1, f"pyproject.toml: expected one requirement on {name}, found {found}"
    return found[0]


def test_kubernetes_pin_admits_only_releases_with_param_serialize():
    spec = requirement("kubernetes").specifier
    assert Version(installed_version("kubernetes")) in spec
    assert Version("37.0.0") in spec          # first release with param_serialize
    assert Version("36.0.3") not in spec      # last release without it
    assert Version("32.0.1") not in spec
    assert Version("38.0.0") not in spec


def test_kubernetes_client_has_what_the_code_calls():
    from kubernetes import client

    api = client.ApiClient(client.Configuration(host="https://apiserver.invalid"))
    try:
        # client.py Kube._send: param_serialize(...) -> (method, url, headers, body, post_params)
        method, url, headers, body, _ = api.param_serialize(
            method="GET", resource_path="/api/v1/namespaces", query_params=[("limit", 1)],
            header_params={"Accept": "application/json"}, body=None, auth_settings=["BearerToken"])
        assert (method, url, headers["Accept"]) == ("GET", "https://apiserver.invalid/api/v1/namespaces?limit=1",
                                                    "application/json")
        # ... then call_api(method, url, header_params=, body=, _request_timeout=)
        inspect.signature(api.call_api).bind("GET", url, header_params=headers, body=body, _request_timeout=5)
    finally:
        api.close()
    from kubernetes.stream import portforward

    assert callable(portforward)
    assert callable(client.CoreV1Api.connect_get_namespaced_pod_portforward)


def kubernetes_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every ``from kubernetes... import name`` in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kubernetes":
                out += [(str(path.relative_to(ROOT)), node.module, a.name) for a in node.names]
    return out


@pytest.mark.parametrize("where,module,name", kubernetes_imports())
def test_every_kubernetes_import_resolves(where, module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}"), f"{where}: {module}.{name}"


def test_pytest_kubernetes_pin_admits_only_releases_the_cluster_option_works_with():
    spec = requirement("pytest-kubernetes").specifier
    assert Version(installed_version("pytest-kubernetes")) in spec
    assert Version("0.9.0") in spec
    assert Version("0.8.0") not in spec and Version("0.7.2") not in spec
    assert Version("0.10.0") not in spec


def test_pytest_kubernetes_has_what_the_cluster_option_calls(monkeypatch, tmp_path):
    from pytest_kubernetes.options import ClusterOptions
    from pytest_kubernetes.providers import base, select_provider_manager

    fields = set(inspect.signature(ClusterOptions).parameters)
    assert {"cluster_name", "api_version", "kubeconfig_path", "provider_config", "cluster_timeout"} <= fields
    assert "timeout" in inspect.signature(base.AClusterManager.create).parameters
    for provider in ("kind", "k3d", "minikube"):
        klass = select_provider_manager(provider)
        assert klass.get_binary_name() == provider
        assert callable(klass.load_image) and callable(klass.delete)

    monkeypatch.setattr(base.shutil, "which", lambda name: __file__)  # any existing file passes the check
    kind = select_provider_manager("kind")
    one, two = kind("one"), kind("two")
    one._cluster_options.cluster_timeout = 7
    assert two._cluster_options.cluster_timeout != 7 and kind._cluster_options.cluster_timeout != 7
    config = tmp_path / "kind.yaml"
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: rh-named\n")
    assert kind("ignored", str(config)).cluster_name == "rh-named"
