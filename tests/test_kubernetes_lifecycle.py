"""A run's life on a cluster where things go wrong around it: an operator that never reconciles the
run's namespace, Jobs and namespaces that take long to go, requests whose answer is lost."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES  # noqa: E402
from test_kubernetes_target import (  # noqa: E402,F401 -- fixtures
    DGD_RES,
    cluster,
    fake,
    frontend,
    harness_namespaces,
    recipe,
    target_for,
)

from recipe_harness.deploy import DeployError  # noqa: E402
from recipe_harness.deploy.kubernetes import analysis  # noqa: E402
from recipe_harness.deploy.kubernetes.namespace import (  # noqa: E402
    OperatorSkipsNamespace,
    namespace_name,
)
from recipe_harness.deploy.kubernetes.target import KubernetesTarget  # noqa: E402

# -- 1. an operator that never reconciles the run's namespace -----------------------------------------


@pytest.mark.parametrize("scenario", ["restricted", "down", "excluded"])
def test_a_dgd_no_operator_picks_up_fails_after_the_pickup_time_naming_why(cluster, fake, recipe, tmp_path,
                                                                          monkeypatch, scenario):
    """The operator's event filter drops the namespace (or no operator runs): the DGD never gets the
    finalizer nor a status; the deploy fails after --operator-pickup-timeout, not --deploy-timeout."""
    monkeypatch.setenv("HF_TOKEN", "x")
    kw: dict = {}
    if scenario == "restricted":
        cluster.call(setattr, fake, "restricted_namespace", "dynamo-system")
    elif scenario == "down":
        cluster.call(setattr, fake, "operator_down", True)
    else:
        cluster.call(setattr, fake, "excluded_namespaces", ("shared-cache",))
        kw["cache_namespace"] = "shared-cache"
    target = target_for(cluster, deploy_timeout=8, operator_pickup_timeout=1, **kw)
    with pytest.raises(DeployError) as err:
        with target.deploy(recipe, tmp_path / "w"):
            pass
    text = str(err.value)
    ns = target.namespaces[recipe.id]
    assert f"no Dynamo operator reconciles namespace {ns}" in text, text
    assert "--operator-pickup-timeout" in text and "nvidia.com/finalizer" in text
    for cause in ("namespace-restricted", "excludes", "ephemeral", "down"):
        assert cause in text
    assert harness_namespaces(cluster) == []


def test_a_restricted_operator_reconciles_a_cache_namespace_that_is_its_own(cluster, fake, recipe, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "restricted_namespace", "team-a")
    with target_for(cluster, operator_pickup_timeout=1, cache_namespace="team-a").deploy(recipe, tmp_path / "w"):
        assert analysis.dgd_ready(cluster.get(DGD_RES, "team-a", "tiny-agg"))


def test_a_dgd_the_operator_has_picked_up_is_not_reported_unreconciled():
    assert not analysis.dgd_picked_up({"metadata": {}, "status": {"state": "initializing"}})
    assert not analysis.dgd_picked_up({"metadata": {}})
    assert analysis.dgd_picked_up({"metadata": {"finalizers": ["nvidia.com/finalizer"]}})
    assert analysis.dgd_picked_up({"metadata": {}, "status": {"state": "failed", "conditions": [{"type": "Ready"}]}})
    assert analysis.dgd_picked_up({"metadata": {}, "status": {"state": "pending"}})


def test_no_run_namespace_contains_ephemeral():
    name = namespace_name("rh", "ephemeral/vllm/agg")
    assert "ephemeral" not in name and name.startswith("rh-eph-")
    assert "ephemeral" not in namespace_name("rh", "ephephemeralemeral")
    with pytest.raises(OperatorSkipsNamespace, match=r"--namespace-prefix 'ci-ephemeral'.*ignores every namespace"):
        namespace_name("ci-ephemeral", "tiny/vllm/agg")


@pytest.mark.parametrize("kw", [{"namespace_prefix": "ephemeral-ci"}, {"cache_namespace": "ephemeral-cache"}])
def test_a_prefix_or_cache_namespace_the_operator_skips_is_refused_before_anything_is_created(
        cluster, fake, recipe, tmp_path, monkeypatch, kw):
    monkeypatch.setenv("HF_TOKEN", "x")
    with pytest.raises(DeployError, match="contains 'ephemeral'"):
        with target_for(cluster, **kw).deploy(recipe, tmp_path / "w"):
            pass
    assert [n["metadata"]["name"] for n in cluster.items(NAMESPACES) if "ephemeral" in n["metadata"]["name"]] == []


# -- 4. replacing a Job whose Foreground deletion is slow ---------------------------------------------


def _perf_writes(fake):
    def write(job):
        out = fake.pvc_dirs["model-cache"] / "perf" / "tiny-agg" / "run1"
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile_export_aiperf.json").write_text("{}")
        return "aiperf: done\n"
    return write


@contextlib.contextmanager
def _perf_job_ran_once(cluster, fake, recipe, tmp_path) -> Iterator[tuple[KubernetesTarget, str]]:
    """The recipe deployed and its perf Job run once: the next run replaces that Job."""
    cluster.call(lambda: fake.job_effects.update({"tiny-agg-perf": _perf_writes(fake)}))
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        ns = target.namespace_of(recipe.id)
        target.run_perf_job(recipe, ns, tmp_path / "a1")
        yield target, ns


def test_a_job_still_being_deleted_is_not_replaced_onto(cluster, fake, recipe, tmp_path, monkeypatch):
    """The old Job outlives the wait: a clear error naming it, not a new Job applied onto a dying one."""
    monkeypatch.setenv("HF_TOKEN", "x")
    with _perf_job_ran_once(cluster, fake, recipe, tmp_path) as (target, ns):
        cluster.call(setattr, cluster.emu, "foreground_delay", 3.0)
        target.options.delete_timeout = 0.5
        with pytest.raises(DeployError, match=r"Job tiny-agg-perf in namespace .* is still being deleted after "
                                              r"0.5s \(--delete-timeout.*foregroundDeletion"):
            target.run_perf_job(recipe, ns, tmp_path / "a2")
        cluster.call(setattr, cluster.emu, "foreground_delay", 0.0)
        target.options.delete_timeout = 10


def test_a_job_whose_deletion_takes_a_while_is_replaced_once_gone(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    with _perf_job_ran_once(cluster, fake, recipe, tmp_path) as (target, ns):
        cluster.call(setattr, cluster.emu, "foreground_delay", 1.0)
        out = target.run_perf_job(recipe, ns, tmp_path / "a2")
        assert list(out.rglob("profile_export_aiperf.json"))
        cluster.call(setattr, cluster.emu, "foreground_delay", 0.0)


# -- 5. a Ready status of an older generation ---------------------------------------------------------


def test_dgd_ready_requires_the_observed_generation_to_reach_the_generation():
    ready = {"state": "successful", "conditions": [{"type": "Ready", "status": "True"}]}
    assert analysis.dgd_ready({"metadata": {"generation": 2}, "status": ready})  # operators without the field
    assert not analysis.dgd_ready({"metadata": {"generation": 2}, "status": {**ready, "observedGeneration": 1}})
    assert analysis.dgd_ready({"metadata": {"generation": 2}, "status": {**ready, "observedGeneration": 2}})


def test_wait_dgd_does_not_take_a_ready_status_of_the_previous_generation(cluster, fake):
    """The spec changed (generation 2); the operator has not reconciled it yet (it runs elsewhere)."""
    from recipe_harness.deploy.kubernetes.resources import dgd_type

    cluster.call(setattr, fake, "restricted_namespace", "elsewhere")
    cluster.namespace("team-b")
    dgd = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
           "metadata": {"name": "g", "namespace": "team-b", "finalizers": ["nvidia.com/finalizer"]},
           "spec": {"services": {}},
           "status": {"state": "successful", "observedGeneration": 1,
                      "conditions": [{"type": "Ready", "status": "True", "reason": "all_resources_are_ready"}]}}
    cluster.put(DGD_RES, dgd)
    cluster.put(DGD_RES, {**dgd, "spec": {"services": {"Frontend": {"componentType": "frontend"}}}})
    assert cluster.get(DGD_RES, "team-b", "g")["metadata"]["generation"] == 2
    target = target_for(cluster)
    with pytest.raises(DeployError, match="not Ready within 2s"):
        target.wait_dgd("team-b", dgd_type("nvidia.com/v1alpha1"), "g", 2)


# -- 3. a create whose answer is lost and that is retried ----------------------------------------------


def test_a_namespace_post_whose_answer_is_lost_is_adopted_not_leaked(cluster, fake, recipe, tmp_path, monkeypatch):
    """The apiserver made the namespace; the client got no answer, retried and got 409 for its own
    namespace. The run adopts it (its run label) instead of making a second one and leaking the first."""
    monkeypatch.setenv("HF_TOKEN", "x")
    lost = cluster.call(cluster.emu.lose_response, "POST", r"^/api/v1/namespaces$")
    made: list[str] = []
    cluster.call(cluster.emu.hooks.append, lambda t, res, obj: made.append(obj["metadata"]["name"])
                 if t == "ADDED" and res == NAMESPACES else None)
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        assert made == [target.namespaces[recipe.id]]
    assert lost.hits == 1
    assert harness_namespaces(cluster) == []


def test_a_409_for_a_namespace_of_another_run_is_a_collision(cluster, monkeypatch):
    import recipe_harness.deploy.kubernetes.namespace as namespace_mod

    cluster.namespace("rh-x-aaaaaa", labels={"app.kubernetes.io/managed-by": "recipe-harness",
                                             "recipe-harness/run": "other-run"})
    suffixes = iter(["aaaaaa", "bbbbbb"])
    real = namespace_mod.namespace_name
    monkeypatch.setattr(namespace_mod, "namespace_name", lambda p, r, s=None, **kw: real(p, r, next(suffixes), **kw))
    assert namespace_mod.create_namespace(cluster.kube(), "rh", "x", "this-run").name == "rh-x-bbbbbb"


def test_a_cache_namespace_post_whose_answer_is_lost_is_not_an_error(cluster, fake, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "x")
    lost = cluster.call(cluster.emu.lose_response, "POST", r"^/api/v1/namespaces$")
    with target_for(cluster, cache_namespace="cache-a").deploy(recipe, tmp_path / "w"):
        pass
    assert lost.hits == 1


# -- 2. a namespace the operator's finalizer holds in Terminating -------------------------------------


def test_a_namespace_stuck_terminating_is_explained_and_not_waited_for_again_at_exit(cluster, fake, recipe, tmp_path,
                                                                                   monkeypatch, capsys):
    """The operator never removes nvidia.com/finalizer: the namespace controller reports
    NamespaceFinalizersRemaining / NamespaceContentRemaining. The teardown names them and what to do;
    the exit drain does not wait another --delete-timeout for it."""
    import recipe_harness.deploy.kubernetes.namespace as namespace_mod

    monkeypatch.setenv("HF_TOKEN", "x")
    cluster.call(setattr, fake, "operator_stuck", True)
    target = target_for(cluster)
    with target.deploy(recipe, tmp_path / "w"):
        ns = target.namespaces[recipe.id]
        target.options.delete_timeout = 1
    err = capsys.readouterr().err
    assert f"namespace {ns} still terminating after 1s (--delete-timeout)" in err
    for part in ("NamespaceFinalizersRemaining", "nvidia.com/finalizer in 1 resource instances",
                 "NamespaceContentRemaining", "dynamographdeployments.nvidia.com has 1 resource instances",
                 "(tiny-agg)", f"kubectl get dgd -n {ns} -o yaml", "kubectl get deploy -A",
                 f"kubectl -n {ns} patch dgd"):
        assert part in err, part
    assert ns in namespace_mod.REGISTRY.pending()
    waits: list[float] = []
    real = namespace_mod.delete_namespace
    monkeypatch.setattr(namespace_mod, "delete_namespace",
                        lambda kube, name, wait=120.0, **kw: waits.append(wait) or real(kube, name, wait=wait, **kw))
    assert namespace_mod.REGISTRY.drain() == [ns]
    assert waits and max(waits) == 0.0  # reported stuck: checked, not waited for
    assert "NamespaceFinalizersRemaining" in namespace_mod.REGISTRY.stuck[ns]


def test_drain_requests_every_deletion_before_waiting_under_one_deadline(cluster, monkeypatch):
    import recipe_harness.deploy.kubernetes.namespace as namespace_mod

    registry = namespace_mod.CleanupRegistry()
    labels = {"app.kubernetes.io/managed-by": "recipe-harness"}
    for name in ("rh-a-000001", "rh-b-000002", "rh-c-000003"):
        cluster.namespace(name, labels=labels)
        registry.add(cluster.kube(), name, 30.0)
    calls: list[tuple[str, float]] = []
    real = namespace_mod.delete_namespace
    monkeypatch.setattr(namespace_mod, "delete_namespace",
                        lambda kube, name, wait=120.0, **kw: calls.append((name, wait)) or real(kube, name, wait=wait,
                                                                                                 **kw))
    assert registry.drain() == []
    assert [w for _, w in calls[:3]] == [0.0, 0.0, 0.0]  # all requested first
    assert all(w <= 30.0 for _, w in calls[3:])
    assert harness_namespaces(cluster) == []
