"""Run namespaces are short enough for the Dynamo operator's labels: ``nvidia.com/dynamo-namespace=<namespace>-<dgd>``
fits 63 characters for every recipe, the budget is checked before anything is created, and RH336/RH337 report
DGD names that leave too little room (exact positions, through the API and the console script)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import NAMESPACES, EmulatedCluster  # noqa: E402

from recipe_harness.deploy.kubernetes.namespace import (  # noqa: E402
    NamespaceBudgetError,
    create_namespace,
    label_budget_problems,
    namespace_name,
)
from recipe_harness.load.discovery import discover  # noqa: E402
from recipe_harness.model.bundle import LoadedRecipe  # noqa: E402
from recipe_harness.operator_names import (  # noqa: E402
    MIN_NAMESPACE,
    OperatorName,
    dynamo_namespace,
    graph_names,
    namespace_names,
)
from recipe_harness.static.checks import StaticChecker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "recipe-harness"
ROOTS = [REPO / "recipes", REPO / "fixtures" / "upstream-patterns" / "recipes",
         REPO / "fixtures" / "upstream-patterns" / "recipes-moe"]
RUN_NAME = re.compile(r"^rh-([a-z0-9][-a-z0-9]*[a-z0-9]-)?[0-9a-f]{6}$")


def deployments() -> list[tuple[str, str, list[str], list[str]]]:
    """(recipe id, DGD name, service names, worker names) of every recipe in recipes/ and the upstream patterns."""
    out = []
    for root in ROOTS:
        for recipe in discover(root).recipes:
            dep = LoadedRecipe.load(recipe).deployment
            if dep is not None:
                out.append((recipe.id, dep.name, [s.name for s in dep.services], [s.name for s in dep.workers]))
    return out


DEPLOYMENTS = deployments()


@pytest.mark.parametrize(("recipe_id", "dgd", "services", "workers"), DEPLOYMENTS, ids=[d[0] for d in DEPLOYMENTS])
def test_every_recipe_fits_the_operator_labels_in_its_run_namespace(recipe_id, dgd, services, workers) -> None:
    ns = namespace_name("rh", recipe_id)  # the name alone, as before the DGD was known
    assert RUN_NAME.match(ns) and len(ns) <= 20, ns
    assert len(dynamo_namespace(ns, dgd)) <= 63
    fitted = namespace_name("rh", recipe_id, dgd_name=dgd)
    assert label_budget_problems(fitted, dgd, services, workers) == []
    longest = max(len(n.value) for n in namespace_names(fitted, dgd) + graph_names(dgd, services, workers))
    assert longest <= 63


def test_run_namespaces_are_unique_recognisable_and_carry_a_slug() -> None:
    names = {namespace_name("rh", "qwen3-235b-a22b-fp8/trtllm/agg") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("rh-qwen3-235b-") and len(n) == 20 for n in names)
    assert namespace_name("Team_CI", "mocker-tiny/mocker/agg", "abc123") == "team-ci-mocker-tin-abc123"


def test_the_slug_shrinks_to_fit_a_long_dgd_name() -> None:
    dgd = "d" * (62 - MIN_NAMESPACE)  # the longest name RH337 accepts
    ns = namespace_name("rh", "qwen3-235b-a22b-fp8/trtllm/agg", "abc123", dgd_name=dgd)
    assert ns == "rh-qwen3-abc123" and len(ns) <= MIN_NAMESPACE
    assert len(dynamo_namespace(ns, dgd)) <= 63
    dgd = "d" * 52
    assert namespace_name("rh", "qwen3-235b-a22b-fp8/trtllm/agg", "abc123", dgd_name=dgd) == "rh-abc123"
    assert len(dynamo_namespace("rh-abc123", dgd)) == 62


def test_no_name_fits_is_a_clear_error() -> None:
    with pytest.raises(NamespaceBudgetError) as info:
        namespace_name("rh", "m/vllm/agg", dgd_name="d" * 55)
    text = str(info.value)
    assert "'d" in text and "(55 characters) leaves 7" in text and "nvidia.com/dynamo-namespace" in text
    assert "shorten metadata.name of the DGD (at most 46 characters" in text
    assert "--namespace-prefix of at most" not in text  # no prefix can help with 7 characters
    with pytest.raises(NamespaceBudgetError, match=r"--namespace-prefix 'my-very-long-team-prefix' .* is 31 "
                                                   r"characters.* use a --namespace-prefix of at most 22 characters"):
        namespace_name("my-very-long-team-prefix", "m/vllm/agg", dgd_name="d" * 33)


def test_budget_messages_name_the_label_its_length_the_limit_and_the_fix() -> None:
    ns = "rh-" + "x" * 40
    problems = label_budget_problems(ns, "qwen3-235b-a22b-agg-engine-config", ["Frontend", "TRTLLMWorker"])
    (problem,) = problems
    assert problem.startswith(f"label nvidia.com/dynamo-namespace '{ns}-qwen3-235b-a22b-agg-engine-config' is 77 "
                              "characters (limit 63)")
    assert "use a shorter --namespace-prefix (a namespace of at most 29 characters) or a shorter DGD metadata.name" \
        in problem
    problems = label_budget_problems("rh-abc123", "a" * 30, ["Frontend", "W" * 40])
    assert [p.split(" '")[0] for p in problems] == ["Service name", "label nvidia.com/selector"]
    assert all("is 71 characters (limit 63)" in p and "of component 'WWW" in p for p in problems)
    assert label_budget_problems("Bad_NS", "d", []) [0].startswith("namespace 'Bad_NS' is not a DNS-1123 label")


def test_dots_in_dgd_names_follow_the_operator() -> None:
    """ComputeDynamoNamespace and NormalizeKubeResourceName turn dots into hyphens; label values keep them."""
    assert dynamo_namespace("ns", "qwen3-0.6b") == "ns-qwen3-0-6b"
    service, selector, component = graph_names("qwen3-0.6b", ["Frontend"])[1:4]
    assert (service.value, selector.value, component.value) == ("qwen3-0-6b-frontend", "qwen3-0.6b-frontend", "Frontend")
    assert OperatorName("Service name", "70b-frontend", "Frontend", dns1035=True).problem().startswith(
        "is not a DNS-1035 label")


def test_create_namespace_checks_the_budget_before_creating_anything(tmp_path) -> None:
    cluster = EmulatedCluster(namespace_finalize_delay=0.05)
    try:
        kube = cluster.kube()
        with pytest.raises(NamespaceBudgetError, match="no run namespace fits"):
            create_namespace(kube, "rh", "m/vllm/agg", "run1", dgd_name="d" * 56, components=["Frontend"])
        with pytest.raises(NamespaceBudgetError,
                           match=r"Service name 'tiny-.*' of component 'W+' is 65 characters \(limit 63\)"):
            create_namespace(kube, "rh", "m/vllm/agg", "run1", dgd_name="tiny", components=["Frontend", "W" * 60])
        assert cluster.items(NAMESPACES) == []
        ns = create_namespace(kube, "rh", "qwen3-235b-a22b-fp8/trtllm/agg", "run1",
                              dgd_name="qwen3-235b-a22b-agg-engine-config", components=["Frontend", "TRTLLMWorker"])
        (created,) = cluster.items(NAMESPACES)
        assert created["metadata"]["name"] == ns.name and RUN_NAME.match(ns.name)
        assert created["metadata"]["annotations"]["recipe-harness/recipe"] == "qwen3-235b-a22b-fp8/trtllm/agg"
        assert len(dynamo_namespace(ns.name, "qwen3-235b-a22b-agg-engine-config")) <= 63
        kube.close()
    finally:
        cluster.close()


# --------------------------------------------------------------------------- RH336 / RH337

FIXTURES = REPO / "fixtures" / "rules"
EXACT = {
    "RH336": ("tiny/vllm/agg/deploy.yaml", 30, 5, "error",
              "service 'VllmWorkerServingQwen3SmallChatModelForAggregatedRequests': the operator's Service name "
              "'tiny-agg-vllmworkerservingqwen3smallchatmodelforaggregatedrequests' is 66 characters (limit 63)"),
    "RH337": ("tiny/vllm/agg/deploy.yaml", 4, 9, "warning",
              "DGD name 'tiny-agg-qwen3-0-6b-vllm-aggregated-round-robin-h100' (52 characters) leaves room for a "
              "namespace of 10 characters in the operator's label nvidia.com/dynamo-namespace=<namespace>-<dgd-name> "
              "(63); in a longer namespace the operator's objects are rejected; worker 'VllmWorker' named with the "
              "spec hash (<dgd-name>-vllmworker-<8 hex>) is 72 characters (limit 63)"),
}


@pytest.mark.parametrize("rule", sorted(EXACT))
def test_rule_reports_the_exact_finding(rule: str) -> None:
    rel, line, col, severity, message = EXACT[rule]
    root = FIXTURES / rule / "recipes"
    d = discover(root)
    (recipe,) = d.recipes
    found = [f for fs in StaticChecker(discovery=d).run_all(LoadedRecipe.load(recipe)).values() for f in fs]
    assert [(f.rule, Path(f.file).relative_to(root).as_posix(), f.line, f.col, f.severity.value, f.message)
            for f in found] == [(rule, rel, line, col, severity, message)]
    done = subprocess.run([str(CLI), "check", str(root.relative_to(REPO)), "--no-hints"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == (1 if severity == "error" else 0), done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"{(root / rel).relative_to(REPO)}:{line}:{col}: {rule} {message}" + \
        (" [warning]" if severity == "warning" else "")


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_rules_are_silent_on_the_collection_and_upstream_patterns(root: Path) -> None:
    d = discover(root)
    checker = StaticChecker(discovery=d)
    found = [f.format(REPO) for r in d.recipes for fs in checker.run_all(LoadedRecipe.load(r)).values() for f in fs
             if f.rule in ("RH336", "RH337")]
    assert found == []


def test_rh337_threshold_matches_the_run_namespace_budget(tmp_path: Path) -> None:
    """A DGD name RH337 accepts always gets a run namespace with a slug; one character more is reported (at
    metadata.name; the worker's name with the operator's spec hash is too long at both lengths)."""
    src = FIXTURES / "good" / "recipes"
    worker = ("RH337", 30)
    for length, expected in ((62 - MIN_NAMESPACE, [worker]), (63 - MIN_NAMESPACE, [("RH337", 4)])):
        root = tmp_path / str(length) / "recipes"
        shutil.copytree(src, root)
        for other in ("vllm/disagg-kv-router", "sglang", "trtllm"):
            shutil.rmtree(root / "tiny" / other)
        name = ("tiny-agg-" + "x" * 60)[:length]
        for rel in ("vllm/agg/deploy.yaml", "vllm/agg/perf.yaml"):
            path = root / "tiny" / rel
            path.write_text(path.read_text().replace("tiny-agg", name))
        d = discover(root)
        (recipe,) = d.recipes
        found = [(f.rule, f.line) for fs in StaticChecker(discovery=d).run_all(LoadedRecipe.load(recipe)).values()
                 for f in fs]
        assert found == expected, (length, found)
        assert RUN_NAME.match(ns := namespace_name("rh", recipe.id, dgd_name=name)) and ns.count("-") >= 2
