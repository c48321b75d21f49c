"""``--cluster kind|k3d|minikube``: refusal before anything is created, and the exact commands run.

kind, k3d, minikube, kubectl, helm and docker cannot run here. Refusals are tested for real (a
PATH without them); the commands are tested two ways: pure builders, and fake binaries on PATH
that record their argv while pytest-kubernetes and the harness drive them through the console
script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recipe_harness.deploy.kubernetes import platform
from recipe_harness.deploy.kubernetes.platform import (
    KIND_NODE_IMAGE,
    ClusterSpec,
    ThrowawayCluster,
    cluster_options,
    helm_install_argv,
    kind_config,
)
from recipe_harness.deploy.kubernetes.twin import DEFAULT_DYNAMO_VERSION, TWIN_IMAGE
from recipe_harness.plugin.cluster import CLUSTER_KEY
from recipe_harness.plugin.kube import KUBE_OPTIONS_KEY, kube_options

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "recipe-harness"
if not CLI.exists():  # an installed harness elsewhere (tox)
    CLI = Path(sys.executable).parent / "recipe-harness"
TWIN = TWIN_IMAGE.format(version=DEFAULT_DYNAMO_VERSION)

# One fake for every tool: records argv (and kind's config file) as JSON lines in $FAKE_LOG; kind
# "creates" a cluster by writing the kubeconfig and a marker that makes the fake kubectl's
# /readyz answer as pytest-kubernetes expects (providers/base.py ready()). $FAKE_FAIL names a
# tool that exits 1.
FAKE = r'''
import json, os, sys
from pathlib import Path
tool, args = Path(sys.argv[0]).name, sys.argv[1:]
state = Path(os.environ["FAKE_STATE"])
entry = {"tool": tool, "argv": args}
if tool == "kind" and args[:2] == ["create", "cluster"] and "--config" in args:
    entry["config"] = Path(args[args.index("--config") + 1]).read_text()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")
if os.environ.get("FAKE_FAIL") == tool:
    sys.stderr.write(f"{tool}: simulated failure\n")
    sys.exit(1)
if tool == "kind" and args[:2] == ["create", "cluster"]:
    Path(args[args.index("--kubeconfig") + 1]).write_text("apiVersion: v1\nkind: Config\n")
    (state / "created").touch()
elif tool == "kind" and args[:2] == ["delete", "cluster"]:
    (state / "created").unlink(missing_ok=True)
elif tool == "k3d" and args == ["--version"]:
    print("k3d version v5.8.3")
elif tool == "k3d" and args[:2] == ["cluster", "create"]:
    (state / "created").touch()
elif tool == "k3d" and args[:2] == ["kubeconfig", "get"]:
    print("apiVersion: v1\nkind: Config")  # the library redirects this into the kubeconfig
elif tool == "minikube" and args[:1] == ["start"]:
    Path(os.environ["KUBECONFIG"]).write_text("apiVersion: v1\nkind: Config\n")
    (state / "created").touch()
elif tool == "kubectl" and "get" in args and any(a.startswith("--raw") for a in args):
    if not (state / "created").exists():
        sys.stderr.write("The connection to the server was refused\n")
        sys.exit(1)
    print("[+]ping ok\nreadyz check passed")
elif tool == "kubectl" and "sa" in args:
    print("NAME      SECRETS   AGE\ndefault   0         1s")
'''


@pytest.fixture
def fakes(tmp_path: Path):
    """A bin dir with fake tools (pass the names to install) and the log they write."""
    bindir, state, log = tmp_path / "bin", tmp_path / "state", tmp_path / "fake.log"
    bindir.mkdir()
    state.mkdir()
    script = tmp_path / "fake_tool.py"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(0o755)

    def install(*names: str) -> dict[str, str]:
        for name in names:
            (bindir / name).symlink_to(script)
        return {"PATH": str(bindir), "FAKE_LOG": str(log), "FAKE_STATE": str(state), "HOME": str(tmp_path)}

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    install.calls = calls  # type: ignore[attr-defined]
    return install


def run_test(env: dict[str, str], tmp_path: Path, *pytest_args: str, target: str = "kubernetes",
             suite: str = "static") -> subprocess.CompletedProcess:
    argv = [str(CLI), "test", "--target", target, "--suite", suite, "--recipes-root", str(ROOT / "recipes"),
            "--recipe", "mocker-tiny/*", "--report-dir", str(tmp_path / "reports"), "--", *pytest_args]
    full_env = {k: v for k, v in os.environ.items() if k not in ("PATH", "KUBECONFIG")} | env
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=tmp_path, timeout=300)


# -- refusals, for real ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["kind", "k3d", "minikube"])
def test_missing_binaries_are_a_usage_error_naming_each_and_how_to_install(provider, tmp_path, fakes):
    env = fakes()  # an empty PATH: none of the tools exist
    result = run_test(env, tmp_path, "--cluster", provider)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert f"--cluster {provider} needs {provider}, kubectl, helm, docker on PATH" in out
    assert platform.TOOLS[provider].install in out and platform.TOOLS["helm"].install in out
    assert "nothing was created" in out


def test_refusal_comes_before_anything_is_created(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker")  # helm missing
    result = run_test(env, tmp_path, "--cluster", "kind", "--twin", "mocker")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "needs helm on PATH" in out and "kind," not in out.split("needs", 1)[1].split("on PATH")[0]
    assert fakes.calls() == []  # not even a kind or kubectl call


def test_cluster_without_the_kubernetes_target_is_a_usage_error(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker", "helm")
    result = run_test(env, tmp_path, "--cluster", "kind", target="local")
    assert result.returncode == 2 and "add --target kubernetes" in result.stdout + result.stderr
    assert fakes.calls() == []


def test_an_image_that_is_not_a_reference_is_refused_before_any_shell_sees_it(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker", "helm")
    result = run_test(env, tmp_path, "--cluster", "kind", "--load-image", "x;touch pwned")
    assert result.returncode == 2 and "not an image reference" in result.stdout + result.stderr
    assert fakes.calls() == [] and not (tmp_path / "pwned").exists()


# -- the commands, through the console script and pytest-kubernetes ------------------------------


def test_kind_cluster_with_pinned_node_image_platform_and_twin_image(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker", "helm")
    result = run_test(env, tmp_path, "--cluster", "kind", "--twin", "mocker")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    calls = fakes.calls()
    seq = [(c["tool"], c["argv"][:2]) for c in calls if c["tool"] != "kubectl" or "wait" in c["argv"]]

    create = next(c for c in calls if c["tool"] == "kind" and c["argv"][:2] == ["create", "cluster"])
    config = yaml.safe_load(create["config"])
    name = config["name"]
    assert name.startswith("recipe-harness-")
    assert config["nodes"] == [{"role": "control-plane", "image": KIND_NODE_IMAGE}]  # not the library's 1.25.3
    assert "--image" not in create["argv"]
    kubeconfig = Path(create["argv"][create["argv"].index("--kubeconfig") + 1])

    helm = next(c for c in calls if c["tool"] == "helm")
    assert ["helm", *helm["argv"]] == helm_install_argv(DEFAULT_DYNAMO_VERSION, kubeconfig, platform.DEFAULT_TIMEOUT)
    assert f"dynamo-platform-{DEFAULT_DYNAMO_VERSION}.tgz" in helm["argv"][3]
    assert ("kubectl", ["--kubeconfig", str(kubeconfig)]) in seq  # waits for the DGD CRD

    assert seq == [("kind", ["create", "cluster"]), ("helm", ["upgrade", "--install"]),
                   ("kubectl", ["--kubeconfig", str(kubeconfig)]), ("docker", ["pull", TWIN]),
                   ("kind", ["load", "docker-image"]), ("kind", ["delete", "cluster"])]
    load = next(c for c in calls if c["argv"][:2] == ["load", "docker-image"])
    assert load["argv"] == ["load", "docker-image", TWIN, "--name", name]
    assert calls[-1]["argv"] == ["delete", "cluster", "--name", name]
    assert not kubeconfig.exists() and not kubeconfig.parent.exists()  # the private dir is gone


@pytest.mark.parametrize("provider,create,image_arg", [
    ("k3d", ["cluster", "create"], ["--image", f"rancher/k3s:v{platform.KUBERNETES_VERSION}-k3s1"]),
    ("minikube", ["start", "-p"], ["--kubernetes-version", f"v{platform.KUBERNETES_VERSION}"]),
])
def test_k3d_and_minikube_get_the_pinned_kubernetes_version(provider, create, image_arg, tmp_path, fakes):
    env = fakes(provider, "kubectl", "docker", "helm")
    result = run_test(env, tmp_path, "--cluster", provider, "--twin", "mocker")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    calls = [c for c in fakes.calls() if c["tool"] == provider and c["argv"] != ["--version"]]
    made = next(c["argv"] for c in calls if c["argv"][:2] == create)
    i = made.index(image_arg[0])
    assert made[i:i + 2] == image_arg  # not the library's 1.25.3
    assert any(c["argv"][:2] in (["image", "import"], ["image", "load"]) and TWIN in c["argv"] for c in calls)
    assert calls[-1]["argv"][:2] in (["cluster", "delete"], ["delete", "-p"])
    assert any(c["tool"] == "helm" for c in fakes.calls())


def test_a_failed_platform_install_deletes_the_cluster_and_says_what_failed(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker", "helm") | {"FAKE_FAIL": "helm"}
    result = run_test(env, tmp_path, "--cluster", "kind")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "install the Dynamo platform" in out and "helm: simulated failure" in out
    calls = fakes.calls()
    assert calls[-1]["tool"] == "kind" and calls[-1]["argv"][:2] == ["delete", "cluster"]
    create = next(c for c in calls if c["argv"][:2] == ["create", "cluster"])
    assert not Path(create["argv"][create["argv"].index("--kubeconfig") + 1]).parent.exists()


def test_keep_keeps_the_cluster_and_prints_how_to_delete_it(tmp_path, fakes):
    env = fakes("kind", "kubectl", "docker", "helm")
    result = run_test(env, tmp_path, "--cluster", "kind", "--keep", "--dynamo-platform-version", "none")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    calls = fakes.calls()
    assert not any(c["tool"] == "helm" for c in calls)
    assert not any(c["argv"][:2] == ["delete", "cluster"] for c in calls)
    create = next(c for c in calls if c["argv"][:2] == ["create", "cluster"])
    name = yaml.safe_load(create["config"])["name"]
    kubeconfig = Path(create["argv"][create["argv"].index("--kubeconfig") + 1])
    try:
        assert f"kind delete cluster --name {name}" in out and str(kubeconfig) in out
        assert kubeconfig.exists()
    finally:
        subprocess.run([str(tmp_path / "bin" / "kind"), "delete", "cluster", "--name", name],
                       env=os.environ | env, check=True, timeout=30)
        import shutil
        shutil.rmtree(kubeconfig.parent)


# -- pure pieces --------------------------------------------------------------------------------


def test_pinned_node_image_is_a_supported_kubernetes_version_with_a_digest():
    # Dynamo: "Kubernetes cluster v1.24+"; 1.25 (the library's default) is end of life.
    version = tuple(int(x) for x in platform.KUBERNETES_VERSION.split("."))
    assert (1, 31) <= version[:2] <= (1, 33)
    assert KIND_NODE_IMAGE.startswith(f"kindest/node:v{platform.KUBERNETES_VERSION}@sha256:")
    assert len(KIND_NODE_IMAGE.split("@sha256:")[1]) == 64


@pytest.mark.parametrize("provider", ["kind", "k3d", "minikube"])
def test_cluster_options_carry_the_pinned_version(provider, tmp_path):
    spec = ClusterSpec(provider=provider, name="rh-test")
    opts = cluster_options(spec, tmp_path)
    assert opts.api_version == platform.KUBERNETES_VERSION and opts.cluster_name == "rh-test"
    assert opts.kubeconfig_path == tmp_path / "kubeconfig"
    if provider == "kind":
        assert yaml.safe_load(opts.provider_config.read_text()) == kind_config(spec)
    else:
        assert opts.provider_config is None  # k3d/minikube take api_version


def test_library_version_option_overrides_the_pin(tmp_path):
    spec = ClusterSpec(provider="kind", name="rh-test", kubernetes_version="1.32.5", node_image=None)
    assert kind_config(spec)["nodes"][0]["image"] == "kindest/node:v1.32.5"


def test_images_to_load():
    assert platform.default_images(None, None) == ()
    assert platform.default_images("mocker", None) == (TWIN,)
    assert platform.default_images("mocker", "reg/twin:1", ["reg/twin:1", "x/y:2"]) == ("reg/twin:1", "x/y:2")


def test_interrupt_during_create_deletes_what_was_made(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, turned into KeyboardInterrupt) while Helm runs: the cluster is deleted."""
    deleted = []

    class Manager:
        def __init__(self, name):
            self.name = name

        def create(self, options, timeout):
            Path(options.kubeconfig_path).write_text("x")

        def delete(self):
            deleted.append(self.name)

    import pytest_kubernetes.providers as providers
    monkeypatch.setattr(providers, "select_provider_manager", lambda name: Manager)

    def run(argv, timeout, what):
        raise KeyboardInterrupt

    cluster = ThrowawayCluster(ClusterSpec(provider="kind", name="rh-test"), run=run, log=lambda _: None)
    with pytest.raises(KeyboardInterrupt):
        cluster.create()
    assert deleted == ["rh-test"] and not cluster.workdir.exists()
    cluster.delete()  # idempotent
    assert deleted == ["rh-test"]


class FakeConfig:
    def __init__(self, **options):
        self.stash = pytest.Stash()
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_the_kubernetes_target_uses_the_cluster_kubeconfig(tmp_path):
    config = FakeConfig(**{"--kubeconfig": None})
    cluster = ThrowawayCluster(ClusterSpec(provider="kind", name="rh-test"), workdir=tmp_path)
    config.stash[CLUSTER_KEY] = cluster
    assert kube_options(config).kubeconfig == str(tmp_path / "kubeconfig")
    assert KUBE_OPTIONS_KEY in config.stash
