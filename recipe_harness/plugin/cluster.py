"""cluster part of the recipe-harness pytest plugin: ``--cluster kind|k3d|minikube``.

For ``--target kubernetes`` without a cluster at hand: before the session, check that every
binary it needs is on PATH (a usage error naming each missing one and how to install it, before
anything is created), create the cluster through pytest-kubernetes with a supported, pinned
Kubernetes version, install the Dynamo platform (Helm chart at the harness's Dynamo version),
load the twin image, and point the Kubernetes target at the new cluster's kubeconfig. After the
session -- after the run namespaces are gone -- the cluster is deleted, unless ``--keep``.
The pieces and their sources are in :mod:`recipe_harness.deploy.kubernetes.platform`.

pytest-kubernetes' own options apply: ``--k8s-version`` overrides the Kubernetes version (kind
then uses ``kindest/node:v<version>``, not digest-pinned) and ``--k8s-cluster-name`` the name.
"""

from __future__ import annotations

import os

import pytest

from recipe_harness.deploy.kubernetes.platform import (
    DEFAULT_TIMEOUT,
    KIND_NODE_IMAGE,
    KUBERNETES_VERSION,
    PROVIDERS,
    ClusterError,
    ClusterSpec,
    ThrowawayCluster,
    default_images,
    missing_tools,
    refusal,
)
from recipe_harness.deploy.kubernetes.twin import DEFAULT_DYNAMO_VERSION

CLUSTER_KEY = pytest.StashKey[ThrowawayCluster]()
LIBRARY_DEFAULT_NAME = "pytest"  # pytest-kubernetes' --k8s-cluster-name default (pytest_kubernetes/plugin.py)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-kube", "recipe-harness: Kubernetes target")
    group.addoption("--cluster", choices=PROVIDERS, default=None,
                    help=f"create a throw-away cluster (pytest-kubernetes; Kubernetes {KUBERNETES_VERSION}), install "
                         "the Dynamo platform, load the twin image, run against it, delete it at the end")
    group.addoption("--dynamo-platform-version", metavar="VERSION", default=DEFAULT_DYNAMO_VERSION,
                    help=f"dynamo-platform Helm chart version for --cluster (default: {DEFAULT_DYNAMO_VERSION}); "
                         "'none' installs nothing")
    group.addoption("--load-image", metavar="IMAGE", action="append", default=[],
                    help="also load this local docker image into the --cluster nodes (repeatable)")
    group.addoption("--cluster-timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT,
                    help=f"time limit of each --cluster step: create, Helm install, image pull and load "
                         f"(default: {DEFAULT_TIMEOUT:g})")


def cluster_spec(config: pytest.Config) -> ClusterSpec:
    """The cluster ``config``'s options ask for (pure: nothing is run)."""
    provider = config.getoption("--cluster")
    version = config.getoption("k8s_version", default=None)
    name = config.getoption("k8s_cluster_name", default=None)
    platform = config.getoption("--dynamo-platform-version", default=DEFAULT_DYNAMO_VERSION)
    return ClusterSpec(
        provider=provider,
        name=name if name and name != LIBRARY_DEFAULT_NAME else f"recipe-harness-{os.getpid()}",
        kubernetes_version=str(version) if version else KUBERNETES_VERSION,
        node_image=None if version else KIND_NODE_IMAGE,
        platform_version=None if str(platform).lower() == "none" else platform,
        images=default_images(config.getoption("--twin", default=None), config.getoption("--twin-image", default=None),
                              config.getoption("--load-image", default=[])),
        timeout=config.getoption("--cluster-timeout", default=DEFAULT_TIMEOUT),
    )


def check_usage(config: pytest.Config, spec: ClusterSpec) -> None:
    """Every reason to refuse ``--cluster`` before anything is created, as one usage error."""
    if config.getoption("--target", default=None) != "kubernetes":
        raise pytest.UsageError(f"--cluster {spec.provider} makes a cluster for the Kubernetes target: add "
                                f"--target kubernetes (recipe-harness test --target kubernetes -- --cluster {spec.provider})")
    if config.getoption("--kubeconfig", default=None) or config.getoption("--context", default=None):
        raise pytest.UsageError(f"--cluster {spec.provider} creates its own cluster and kubeconfig: drop --kubeconfig/--context, "
                                "or drop --cluster to use that cluster")
    problems = spec.problems()
    if problems:
        raise pytest.UsageError("--cluster: " + "; ".join(problems))
    missing = missing_tools(spec.provider)
    if missing:
        raise pytest.UsageError(refusal(spec.provider, missing))


def cluster_kubeconfig(config: pytest.Config) -> str | None:
    """The throw-away cluster's kubeconfig, if ``--cluster`` made one."""
    cluster = config.stash.get(CLUSTER_KEY, None)
    return str(cluster.kubeconfig) if cluster is not None and cluster.kubeconfig else None


@pytest.hookimpl(trylast=True)  # after the kube plugin turned SIGTERM into KeyboardInterrupt
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--cluster", default=None) or hasattr(config, "workerinput"):
        return
    spec = cluster_spec(config)
    check_usage(config, spec)
    cluster = ThrowawayCluster(spec)
    config.stash[CLUSTER_KEY] = cluster
    try:
        cluster.create()
    except ClusterError as exc:
        pytest.exit(f"recipe-harness: --cluster {spec.provider}: {exc}", returncode=pytest.ExitCode.INTERNAL_ERROR)


@pytest.hookimpl(trylast=True)  # after the kube plugin deleted the run namespaces
def pytest_unconfigure(config: pytest.Config) -> None:
    cluster = config.stash.get(CLUSTER_KEY, None)
    if cluster is None or cluster.deleted:
        return
    if config.getoption("--keep", default=False):
        print(f"recipe-harness: kept {cluster.spec.provider} cluster {cluster.spec.name} (kubeconfig {cluster.kubeconfig}); "
              f"delete it with `{cluster.delete_hint()}` and remove {cluster.workdir}")
        return
    cluster.delete()
