"""kube part of the recipe-harness pytest plugin: Kubernetes target options and preflight.

``--target kubernetes`` (declared by :mod:`.deploy`) uses these options; a throw-away cluster
comes from ``--cluster kind|k3d|minikube`` (:mod:`.cluster`). SIGTERM is turned into
``KeyboardInterrupt`` while the session runs, so fixture teardown -- namespace deletion --
runs on Ctrl-C and on SIGTERM alike; namespaces still registered at exit are deleted then.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from recipe_harness.plugin.cluster import cluster_kubeconfig
from recipe_harness.plugin.options import harness_of, selected_recipes

if TYPE_CHECKING:  # the target's module (and the kubernetes client) load when a Kubernetes run needs them
    from recipe_harness.deploy.kubernetes.target import KubeOptions

KUBE_OPTIONS_KEY = pytest.StashKey["KubeOptions"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recipe-harness-kube", "recipe-harness: Kubernetes target")
    group.addoption("--kubeconfig", metavar="FILE", default=None,
                    help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    group.addoption("--context", metavar="NAME", default=None, help="kubeconfig context (default: current)")
    group.addoption("--require-hardware", action="store_true", default=False,
                    help="missing GPUs/RDMA/storage classes fail preflight instead of skipping (qualification)")
    group.addoption("--hf-token-secret", metavar="[NAMESPACE/]NAME", default=None,
                    help="copy this Secret into each run's namespace as the HF token (default: $HF_TOKEN)")
    group.addoption("--keep", action="store_true", default=False,
                    help="keep each run's namespace for debugging (delete later with `recipe-harness clean`)")
    group.addoption("--twin", choices=("mocker",), default=None,
                    help="deploy a GPU-free twin of each recipe's DGD running the Dynamo mocker")
    group.addoption("--twin-image", metavar="IMAGE", default=None,
                    help="image with dynamo.mocker and dynamo.frontend for --twin (default: dynamo-planner:<the recipe's Dynamo release>, "
                         "dynamo-frontend before 1.1.0; its tag picks the mocker flags the twin writes)")
    group.addoption("--namespace-prefix", metavar="PREFIX", default="rh",
                    help="prefix of the namespaces the harness creates (default: rh)")
    group.addoption("--unschedulable-grace", metavar="SECONDS", type=float, default=0.0,
                    help="tolerate unschedulable pods, and pods a used-up ResourceQuota keeps from being created, "
                         "this long (default 0: at once)")
    group.addoption("--autoscaler-wait", metavar="SECONDS", type=float, default=60.0,
                    help="on a cluster running a node autoscaler (cluster-autoscaler, Karpenter), how long an "
                         "unschedulable pod waits for it to say it adds a node; once it has, the pod waits for the "
                         "node within --deploy-timeout (default 60; 0: as on a cluster without one)")
    group.addoption("--no-preflight", action="store_true", default=False,
                    help="deploy even when preflight finds the CRD, operator, GPUs or storage classes missing")
    group.addoption("--cache-namespace", metavar="NS", default=None,
                    help="deploy into NS and keep its model-cache PVCs between runs: a download runs once per "
                         "model and revision (default: a new namespace per run, deleted with its cache)")
    limits = parser.getgroup("recipe-harness-kube-limits", "recipe-harness: Kubernetes time limits and tolerances")
    limits.addoption("--download-timeout", metavar="SECONDS", type=float, default=3600.0,
                     help="model-cache download Job (default: 3600)")
    limits.addoption("--pvc-bind-timeout", metavar="SECONDS", type=float, default=120.0,
                     help="how long a PVC may stay unbound while pods wait for it (default: 120; a missing storage "
                          "class fails at once)")
    limits.addoption("--operator-pickup-timeout", metavar="SECONDS", type=float, default=120.0,
                     help="how long the DGD may stay untouched by the Dynamo operator (neither its finalizer nor a "
                          "status) before the deploy fails naming why no operator reconciles the namespace "
                          "(default: 120; 0: wait for --deploy-timeout)")
    limits.addoption("--http-timeout", metavar="SECONDS", type=float, default=120.0,
                     help="the frontend listing the model through the port-forward after Ready (default: 120)")
    limits.addoption("--perf-job-timeout", metavar="SECONDS", type=float, default=7200.0,
                     help="the recipe's perf Job on the cluster (default: 7200)")
    limits.addoption("--delete-timeout", metavar="SECONDS", type=float, default=300.0,
                     help="waiting for the run's namespace to be deleted (default: 300)")
    limits.addoption("--interrupt-budget", metavar="SECONDS", type=float, default=5.0,
                     help="cleanup after Ctrl-C/SIGTERM: the namespace deletion is requested first, diagnostics get "
                          "what is left (default: 5; CI cancels send SIGKILL about 10 s after SIGTERM)")
    limits.addoption("--max-restarts", metavar="N", type=int, default=3,
                     help="restarts a crashing container may have before the deploy fails (default: 3; OOMKilled "
                          "and command-line errors fail at once)")
    limits.addoption("--image-pull-grace", metavar="SECONDS", type=float, default=300.0,
                     help="how long pulls may keep failing for a cause that can heal (default: 300; an image the "
                          "registry does not have fails at once)")
    limits.addoption("--dgd-failed-grace", metavar="SECONDS", type=float, default=120.0,
                     help="how long the DGD may stay in state failed (the operator sets it on any reconcile error "
                          "and clears it on the next good one; ValidationFailed fails at once) (default: 120)")


KUBE_DEPLOY_TIMEOUT = 1800.0
"""Default budget for a DGD to become Ready on a cluster (``--deploy-timeout`` overrides it)."""


def kube_options(config: pytest.Config) -> KubeOptions:
    """The Kubernetes target's options of this session (a throw-away cluster's kubeconfig if any)."""
    if KUBE_OPTIONS_KEY not in config.stash:
        from recipe_harness.deploy.kubernetes.target import KubeOptions

        kubeconfig = cluster_kubeconfig(config) or config.getoption("--kubeconfig", default=None)
        config.stash[KUBE_OPTIONS_KEY] = KubeOptions(
            kubeconfig=kubeconfig,
            context=config.getoption("--context", default=None),
            namespace_prefix=config.getoption("--namespace-prefix", default="rh"),
            keep=config.getoption("--keep", default=False),
            twin=config.getoption("--twin", default=None),
            twin_image=config.getoption("--twin-image", default=None),
            hf_token_secret=config.getoption("--hf-token-secret", default=None),
            require_hardware=config.getoption("--require-hardware", default=False),
            deploy_timeout=config.getoption("--deploy-timeout", default=None) or KUBE_DEPLOY_TIMEOUT,
            operator_pickup_timeout=config.getoption("--operator-pickup-timeout", default=120.0),
            unschedulable_grace=config.getoption("--unschedulable-grace", default=0.0),
            autoscaler_wait=config.getoption("--autoscaler-wait", default=60.0),
            preflight=not config.getoption("--no-preflight", default=False),
            cache_namespace=config.getoption("--cache-namespace", default=None),
            job_timeout=config.getoption("--download-timeout", default=3600.0),
            pvc_bind_timeout=config.getoption("--pvc-bind-timeout", default=120.0),
            http_timeout=config.getoption("--http-timeout", default=120.0),
            perf_timeout=config.getoption("--perf-job-timeout", default=7200.0),
            delete_timeout=config.getoption("--delete-timeout", default=300.0),
            interrupt_budget=config.getoption("--interrupt-budget", default=5.0),
            max_restarts=config.getoption("--max-restarts", default=3),
            image_pull_grace=config.getoption("--image-pull-grace", default=300.0),
            dgd_failed_grace=config.getoption("--dgd-failed-grace", default=120.0),
        )
    return config.stash[KUBE_OPTIONS_KEY]


def _sigterm_to_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--target", default=None) != "kubernetes" or hasattr(config, "workerinput"):
        return
    try:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except ValueError:  # not the main thread
        pass


def pytest_unconfigure(config: pytest.Config) -> None:
    namespace = sys.modules.get("recipe_harness.deploy.kubernetes.namespace")
    if namespace is None:  # not loaded: this session created no namespace
        return
    left = namespace.REGISTRY.drain()
    if left:
        print(f"recipe-harness: namespaces not deleted: {', '.join(left)}; run `recipe-harness clean`")
        for name in left:
            if name in namespace.REGISTRY.stuck:
                print(f"  {namespace.REGISTRY.stuck[name]}")


# -- preflight suite -----------------------------------------------------------------------------


@dataclass
class PreflightCase:
    recipe_id: str
    options: KubeOptions


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "preflight_case" not in metafunc.fixturenames:
        return
    params = [pytest.param(r, id=f"{r.id}::preflight") for r in selected_recipes(metafunc.config)]
    metafunc.parametrize("preflight_case", params, indirect=True)


@pytest.fixture
def preflight_case(request: pytest.FixtureRequest):
    """(loaded recipe, Kube, options) for one preflight test; skips unless --target kubernetes."""
    config = request.config
    if config.getoption("--target", default=None) != "kubernetes":
        pytest.skip("preflight checks a cluster: run with --target kubernetes")
    from recipe_harness.deploy.kubernetes.client import Kube, KubeError

    options = kube_options(config)
    try:
        kube = Kube.connect(options.kubeconfig, options.context)
    except KubeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield harness_of(config).loaded(request.param), kube, options
    kube.close()
