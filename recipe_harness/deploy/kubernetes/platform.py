"""A throw-away cluster with the Dynamo platform: what it is made of, and its lifecycle.

The cluster itself comes from pytest-kubernetes (its provider managers and
:class:`~pytest_kubernetes.options.ClusterOptions`); everything else is a command line built by a
pure function here, so the exact commands can be checked without the tools.

Pinned, with sources:

- Node image (kind): ``kindest/node:v1.33.1@sha256:0500...`` -- one of the images "pre-built for
  this release" in kind v0.29.0's release notes (github.com/kubernetes-sigs/kind/releases/tag/v0.29.0),
  pinned by digest so a re-pushed tag cannot change it. k3d and minikube get the same Kubernetes
  version through the library (``rancher/k3s:v1.33.1-k3s1``; ``minikube start --kubernetes-version
  v1.33.1``). pytest-kubernetes' own default is Kubernetes 1.25.3, out of support.
- Kubernetes version: the Dynamo platform needs "Kubernetes cluster v1.24+"
  (ai-dynamo/dynamo ``docs/kubernetes/installation-guide.md``, Prerequisites).
- Dynamo platform: the Helm chart ``dynamo-platform`` (ai-dynamo/dynamo
  ``deploy/helm/charts/platform/Chart.yaml``), published on NGC as
  ``https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-platform-<version>.tgz`` and
  installed into ``dynamo-system``; since 1.0 it installs the CRDs too ("CRDs are automatically
  installed by the chart", installation guide, Path A; the CRDs live in
  ``deploy/helm/charts/platform/components/operator/crds/``). Its version is the Dynamo version
  the harness deploys (:data:`recipe_harness.deploy.kubernetes.twin.DEFAULT_DYNAMO_VERSION`).
- Twin image: ``nvcr.io/nvidia/ai-dynamo/dynamo-planner:<version>``
  (:data:`recipe_harness.deploy.kubernetes.twin.TWIN_IMAGE`), pulled with docker and loaded into the nodes so
  the mocker twins start without each node pulling several GB.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_harness.deploy.kubernetes.twin import DEFAULT_DYNAMO_VERSION, TWIN_IMAGE

PROVIDERS = ("kind", "k3d", "minikube")
KIND_VERSION = "v0.29.0"
KUBERNETES_VERSION = "1.33.1"
KIND_NODE_IMAGE = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
PLATFORM_CHART = "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-platform-{version}.tgz"
PLATFORM_RELEASE = "dynamo-platform"
PLATFORM_NAMESPACE = "dynamo-system"
DGD_CRD = "dynamographdeployments.nvidia.com"
DEFAULT_TIMEOUT = 900.0
"""Time limit of each cluster command (create, Helm install, image pull, image load), seconds."""
READY_CHECKS = 120
"""How many times pytest-kubernetes probes a new cluster's /readyz (about a second apart)."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+([-.][A-Za-z0-9.]+)?$")


class ClusterError(Exception):
    """Making the throw-away cluster failed; the message names the command and what to do."""


@dataclass(frozen=True)
class Tool:
    name: str
    why: str
    install: str


TOOLS = {
    "kind": Tool("kind", "creates the cluster",
                 f"https://kind.sigs.k8s.io/docs/user/quick-start/#installation (go install sigs.k8s.io/kind@{KIND_VERSION})"),
    "k3d": Tool("k3d", "creates the cluster", "https://k3d.io/#installation"),
    "minikube": Tool("minikube", "creates the cluster", "https://minikube.sigs.k8s.io/docs/start/"),
    "kubectl": Tool("kubectl", "pytest-kubernetes checks the new cluster with it",
                    "https://kubernetes.io/docs/tasks/tools/#kubectl"),
    "helm": Tool("helm", "installs the Dynamo platform chart", "https://helm.sh/docs/intro/install/"),
    "docker": Tool("docker", "runs the cluster's nodes and pulls the images to load",
                   "https://docs.docker.com/engine/install/"),
}


def required_tools(provider: str) -> tuple[str, ...]:
    """The binaries ``--cluster <provider>`` runs (all three providers run their nodes in docker)."""
    return (provider, "kubectl", "helm", "docker")


def missing_tools(provider: str, which: Callable[[str], str | None] = shutil.which) -> list[Tool]:
    return [TOOLS[name] for name in required_tools(provider) if not which(name)]


def refusal(provider: str, missing: list[Tool]) -> str:
    """The usage error for missing binaries: each one, why it is needed and how to install it."""
    names = ", ".join(t.name for t in missing)
    lines = [f"--cluster {provider} needs {names} on PATH (not found); nothing was created"]
    lines += [f"    {t.name}: {t.why}; install: {t.install}" for t in missing]
    lines.append("    or run on an existing cluster that has the Dynamo platform: --kubeconfig FILE [--context NAME]")
    return "\n".join(lines)


@dataclass(frozen=True)
class ClusterSpec:
    """What to make: a cluster, the Dynamo platform on it, and the images to load into it."""

    provider: str
    name: str
    kubernetes_version: str = KUBERNETES_VERSION
    node_image: str | None = KIND_NODE_IMAGE     # kind only; None: kindest/node:v<kubernetes_version>
    platform_version: str | None = DEFAULT_DYNAMO_VERSION   # None: do not install the platform
    images: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def problems(self) -> list[str]:
        out = []
        if self.provider not in PROVIDERS:
            out.append(f"--cluster {self.provider!r}: choose one of {', '.join(PROVIDERS)}")
        if not _NAME.match(self.name):
            out.append(f"cluster name {self.name!r}: use 1-40 lowercase letters, digits and '-'")
        if not _VERSION.match(self.kubernetes_version):
            out.append(f"Kubernetes version {self.kubernetes_version!r}: give X.Y.Z, e.g. {KUBERNETES_VERSION}")
        if self.platform_version is not None and not _VERSION.match(self.platform_version):
            out.append(f"--dynamo-platform-version {self.platform_version!r}: give X.Y.Z, e.g. {DEFAULT_DYNAMO_VERSION}")
        out += [f"image {i!r}: not an image reference (registry/name:tag[@sha256:digest])"
                for i in (*self.images, *([self.node_image] if self.node_image else [])) if not _IMAGE.match(i)]
        if self.timeout <= 0:
            out.append(f"--cluster-timeout {self.timeout:g}: give a positive number of seconds")
        return out


def default_images(twin: str | None, twin_image: str | None, extra: list[str] | None = None) -> tuple[str, ...]:
    """Images to load: the twin image when deploying twins (``--twin-image`` or the harness's version), then ``extra``."""
    images: list[str] = []
    if twin:
        images.append(twin_image or TWIN_IMAGE.format(version=DEFAULT_DYNAMO_VERSION))
    for image in extra or []:
        if image not in images:
            images.append(image)
    return tuple(images)


def kind_config(spec: ClusterSpec) -> dict[str, Any]:
    """kind's cluster config (kind.x-k8s.io/v1alpha4): the name and the pinned node image."""
    image = spec.node_image or f"kindest/node:v{spec.kubernetes_version}"
    return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": spec.name,
            "nodes": [{"role": "control-plane", "image": image}]}


def cluster_options(spec: ClusterSpec, workdir: Path):
    """pytest-kubernetes' ClusterOptions for ``spec``; for kind, writes the config file into ``workdir``.

    kind's manager passes ``--config`` when ``provider_config`` is set and ``--image
    kindest/node:v<api_version>`` otherwise (pytest_kubernetes/providers/kind.py): only the config
    file can carry a digest. k3d maps ``api_version`` to ``rancher/k3s:v<version>-k3s1`` and minikube
    to ``--kubernetes-version v<version>`` (providers/k3d.py, providers/minikube.py).
    """
    from pytest_kubernetes.options import ClusterOptions

    options = ClusterOptions(cluster_name=spec.name, api_version=spec.kubernetes_version,
                             kubeconfig_path=workdir / "kubeconfig", cluster_timeout=int(spec.timeout))
    if spec.provider == "kind":
        config = workdir / "kind-config.yaml"
        config.write_text(yaml.safe_dump(kind_config(spec), sort_keys=False))
        options.provider_config = config
    return options


def chart_url(version: str) -> str:
    return PLATFORM_CHART.format(version=version)


def helm_install_argv(version: str, kubeconfig: Path, timeout: float) -> list[str]:
    """Install (or upgrade to) the pinned ``dynamo-platform`` chart and wait until its pods are ready."""
    return ["helm", "upgrade", "--install", PLATFORM_RELEASE, chart_url(version),
            "--namespace", PLATFORM_NAMESPACE, "--create-namespace",
            "--kubeconfig", str(kubeconfig), "--wait", "--timeout", f"{int(timeout)}s"]


def crd_wait_argv(kubeconfig: Path, timeout: float) -> list[str]:
    """Wait until the DGD CRD is served (the operator's webhooks and conversion need it)."""
    return ["kubectl", "--kubeconfig", str(kubeconfig), "wait", "--for=condition=Established",
            f"crd/{DGD_CRD}", f"--timeout={int(timeout)}s"]


def docker_pull_argv(image: str) -> list[str]:
    """``kind load docker-image`` and its k3d/minikube peers load from the local docker daemon."""
    return ["docker", "pull", image]


def run_command(argv: list[str], timeout: float, what: str) -> str:
    """Run ``argv``; a failure or timeout is a :class:`ClusterError` with the command and its stderr."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{what}: `{' '.join(argv)}` did not finish in {timeout:g} s "
                           "(raise --cluster-timeout, or check the network and the docker daemon)") from exc
    except OSError as exc:
        raise ClusterError(f"{what}: cannot run `{argv[0]}`: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise ClusterError(f"{what}: `{' '.join(argv)}` failed (exit {proc.returncode}): {tail}")
    return proc.stdout


@dataclass
class ThrowawayCluster:
    """One cluster's lifecycle: create, install the platform, load images; delete (idempotent)."""

    spec: ClusterSpec
    run: Callable[[list[str], float, str], str] = run_command
    log: Callable[[str], None] = print
    workdir: Path | None = None
    manager: Any = None
    deleted: bool = False
    steps: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path | None:
        return self.workdir / "kubeconfig" if self.workdir else None

    def create(self) -> None:
        """Everything in order; on any failure (or interrupt) the cluster is deleted before raising."""
        spec = self.spec
        workdir = self.workdir = Path(tempfile.mkdtemp(prefix="rh-cluster-"))
        kubeconfig = workdir / "kubeconfig"   # self.kubeconfig from now on
        try:
            self._create_cluster(workdir)
            if spec.platform_version:
                self.log(f"recipe-harness: installing dynamo-platform {spec.platform_version} into {PLATFORM_NAMESPACE}")
                self._step("install the Dynamo platform",
                           helm_install_argv(spec.platform_version, kubeconfig, spec.timeout))
                self._step("wait for the DynamoGraphDeployment CRD", crd_wait_argv(kubeconfig, 120))
            for image in spec.images:
                self.log(f"recipe-harness: loading {image} into {spec.provider} cluster {spec.name}")
                self._step(f"pull {image}", docker_pull_argv(image))
                self._library(f"load {image} into the cluster", functools.partial(self.manager.load_image, image))
        except BaseException:
            self.delete()
            raise

    def _create_cluster(self, workdir: Path) -> None:
        from pytest_kubernetes.providers import select_provider_manager

        spec = self.spec
        options = cluster_options(spec, workdir)
        image = kind_config(spec)["nodes"][0]["image"] if spec.provider == "kind" else f"Kubernetes {spec.kubernetes_version}"
        self.log(f"recipe-harness: creating {spec.provider} cluster {spec.name} ({image})")

        def create() -> None:
            self.manager = select_provider_manager(spec.provider)(spec.name)
            self.manager.create(options, timeout=READY_CHECKS)

        self._library(f"create the {spec.provider} cluster {spec.name}", create)

    def _step(self, what: str, argv: list[str]) -> None:
        self.steps.append(" ".join(argv))
        self.run(argv, self.spec.timeout, what)

    def _library(self, what: str, fn: Callable[[], None]) -> None:
        """Call pytest-kubernetes; its minikube manager sets KUBECONFIG in os.environ (``dict.update``
        of ``os.environ`` in providers/base.py ``_exec``): put it back afterwards."""
        saved = os.environ.get("KUBECONFIG")
        try:
            fn()
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
            raise ClusterError(f"{what}: exit {exc.returncode}: {err.strip()[-2000:]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{what}: did not finish in {self.spec.timeout:g} s (raise --cluster-timeout)") from exc
        except (RuntimeError, OSError, ValueError) as exc:
            raise ClusterError(f"{what}: {exc}") from exc
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved

    def delete(self) -> None:
        """Delete the cluster and its private files; safe to call twice. Errors are reported, not raised."""
        if self.deleted:
            return
        self.deleted = True
        try:
            if self.manager is not None:
                self._library(f"delete the {self.spec.provider} cluster {self.spec.name}", self.manager.delete)
        except ClusterError as exc:
            self.log(f"recipe-harness: {exc}; delete it by hand ({self.delete_hint()})")
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def delete_hint(self) -> str:
        name = self.spec.name
        return {"kind": f"kind delete cluster --name {name}", "k3d": f"k3d cluster delete {name}",
                "minikube": f"minikube delete -p {name}"}[self.spec.provider]
