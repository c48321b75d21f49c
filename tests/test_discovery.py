"""Recipe discovery on the seed layout and on the variations real recipe trees have."""

from __future__ import annotations

import os
from pathlib import Path

from recipe_harness.load.discovery import discover

DGD = "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {name}\n"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_seed_layout_with_nested_modes(tmp_path):
    write(tmp_path / "deepseek-r1/trtllm/disagg/wide_ep/gb200/deploy.yaml", DGD.format(name="a"))
    write(tmp_path / "deepseek-r1/sglang/disagg-16gpu/deploy.yaml", DGD.format(name="b"))
    write(tmp_path / "deepseek-r1/model-cache/model-cache.yaml", "kind: PersistentVolumeClaim\n")
    write(tmp_path / "deepseek-r1/model-cache/model-download-sglang.yaml", "kind: Job\n")
    write(tmp_path / "deepseek-r1/README.md", "# r1\n")
    d = discover(tmp_path)
    assert [r.id for r in d.recipes] == ["deepseek-r1/sglang/disagg-16gpu", "deepseek-r1/trtllm/disagg/wide_ep/gb200"]
    r = d.recipes[1]
    assert r.model == "deepseek-r1" and r.backend == "trtllm" and r.mode == "disagg/wide_ep/gb200"
    assert [p.name for p in r.model_cache_files] == ["model-cache.yaml", "model-download-sglang.yaml"]
    assert r.readmes == (tmp_path / "deepseek-r1/README.md",)
    assert d.findings == []


def test_several_dgd_files_in_one_folder_get_their_stem(tmp_path):
    write(tmp_path / "qwen3-32b/vllm/agg.yaml", DGD.format(name="agg"))
    write(tmp_path / "qwen3-32b/vllm/disagg.yaml", DGD.format(name="disagg"))
    write(tmp_path / "qwen3-32b/vllm/perf-disagg.yaml", "kind: Job\n")
    write(tmp_path / "qwen3-32b/model_cache/cache.yaml", "kind: PersistentVolumeClaim\n")
    d = discover(tmp_path)
    assert [r.id for r in d.recipes] == ["qwen3-32b/vllm/agg", "qwen3-32b/vllm/disagg"]
    agg, disagg = d.recipes
    assert [p.name for p in agg.model_cache_files] == ["cache.yaml"]
    assert [p.name for p in disagg.perf_files] == ["perf-disagg.yaml"]
    assert agg.perf_files == ()


def test_single_non_deploy_file_gets_its_stem_and_model_level_perf(tmp_path):
    write(tmp_path / "llama/vllm/agg/agg.yaml", DGD.format(name="x"))
    write(tmp_path / "llama/perf/perf.yaml", "kind: Job\n")
    write(tmp_path / "llama/vllm/agg/thresholds.yaml", "schemaVersion: 1\n")
    (r,) = discover(tmp_path).recipes
    assert r.id == "llama/vllm/agg/agg"
    assert [p.name for p in r.perf_files] == ["perf.yaml"]
    assert r.thresholds_file and r.thresholds_file.name == "thresholds.yaml"


def test_readmes_at_every_level_outermost_first(tmp_path):
    write(tmp_path / "m/vllm/agg/deploy.yaml", DGD.format(name="x"))
    for rel in ("m/README.md", "m/vllm/README.md", "m/vllm/agg/README.md"):
        write(tmp_path / rel, "#\n")
    (r,) = discover(tmp_path).recipes
    assert [p.relative_to(tmp_path).as_posix() for p in r.readmes] == ["m/README.md", "m/vllm/README.md", "m/vllm/agg/README.md"]


def test_model_cache_dgds_and_non_dgd_yaml_are_not_recipes(tmp_path):
    write(tmp_path / "m/model-cache/deploy.yaml", DGD.format(name="x"))
    write(tmp_path / "m/vllm/agg/deploy.yaml", "kind: ConfigMap\n")
    write(tmp_path / "m/vllm/agg/kustomization.yaml", "resources: [deploy.yaml]\n")
    assert discover(tmp_path).recipes == []


def test_kustomize_base_is_recorded(tmp_path):
    write(tmp_path / "m/vllm/agg/deploy.yaml", DGD.format(name="x"))
    write(tmp_path / "m/vllm/agg/kustomization.yaml", "resources: [deploy.yaml]\n")
    (r,) = discover(tmp_path).recipes
    assert r.kustomization == tmp_path / "m/vllm/agg/kustomization.yaml"


def test_glob_selection(tmp_path):
    for rid in ("a/vllm/agg", "a/sglang/agg", "b/vllm/disagg"):
        write(tmp_path / rid / "deploy.yaml", DGD.format(name="x"))
    assert [r.id for r in discover(tmp_path, ["*/vllm/*"]).recipes] == ["a/vllm/agg", "b/vllm/disagg"]
    assert [r.id for r in discover(tmp_path, ["a"]).recipes] == ["a/sglang/agg", "a/vllm/agg"]
    assert discover(tmp_path, ["nothing*"]).recipes == []


def test_symlinks_leaving_the_root_are_refused(tmp_path):
    outside = write(tmp_path / "outside/deploy.yaml", DGD.format(name="evil"))
    root = tmp_path / "recipes"
    write(root / "m/vllm/agg/deploy.yaml", DGD.format(name="ok"))
    os.symlink(outside.parent, root / "m/vllm/escape")
    os.symlink(outside, root / "m/vllm/agg/linked.yaml")
    d = discover(root)
    assert [r.id for r in d.recipes] == ["m/vllm/agg"]
    rules = sorted((Path(f.file).name, f.rule) for f in d.findings)
    assert rules == [("escape", "RH010"), ("linked.yaml", "RH010")]
    assert all("leaves the recipes root" in f.message for f in d.findings)


def test_symlink_loops_and_broken_links_do_not_hang(tmp_path):
    root = tmp_path / "recipes"
    write(root / "m/vllm/agg/deploy.yaml", DGD.format(name="ok"))
    os.symlink(root / "m", root / "m/vllm/loop")          # a loop inside the root
    os.symlink(root / "m/self", root / "m/self")          # a link to itself
    os.symlink(root / "missing", root / "m/broken.yaml")  # broken
    d = discover(root)
    assert [r.id for r in d.recipes] == ["m/vllm/agg"]
    assert sorted(Path(f.file).name for f in d.findings) == ["broken.yaml", "self"]


def test_missing_root_is_a_finding(tmp_path):
    d = discover(tmp_path / "nope")
    assert d.recipes == [] and [f.rule for f in d.findings] == ["RH012"]


def test_other_manifests_of_the_recipe_folder_belong_to_it(tmp_path):
    write(tmp_path / "m/trtllm/agg/deploy.yaml", DGD.format(name="x"))
    write(tmp_path / "m/trtllm/agg/engine-config.yaml", "kind: ConfigMap\n")
    write(tmp_path / "m/trtllm/agg/perf.yaml", "kind: Job\n")
    write(tmp_path / "m/trtllm/agg/thresholds.yaml", "schemaVersion: 1\n")
    write(tmp_path / "m/trtllm/agg/.recipe-harness.yaml", "suppress: []\n")
    (r,) = discover(tmp_path).recipes
    assert [p.name for p in r.extra_files] == ["engine-config.yaml"]
    assert [p.name for p in r.files] == ["deploy.yaml", "engine-config.yaml", "perf.yaml"]


def test_kustomize_patches_are_not_recipes_but_bases_are(tmp_path):
    """Upstream trees keep a full DGD in kustomize/base and partial DGDs as patches of components/overlays."""
    write(tmp_path / "q/vllm/cloud/kustomize/base/deploy.yaml", DGD.format(name="base"))
    write(tmp_path / "q/vllm/cloud/kustomize/base/kustomization.yaml", "resources: [deploy.yaml]\n")
    comp = tmp_path / "q/vllm/cloud/kustomize/components/rdma"
    write(comp / "patch-dgd.yaml", DGD.format(name="base"))
    write(comp / "strategic.yaml", DGD.format(name="base"))
    write(comp / "kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
          "patches:\n  - target: {kind: DynamoGraphDeployment}\n    path: patch-dgd.yaml\n"
          "patchesStrategicMerge: [strategic.yaml]\n")
    write(tmp_path / "q/vllm/cloud/deploy-aws.yaml", DGD.format(name="aws"))
    write(tmp_path / "q/vllm/cloud/deploy-gke.yaml", DGD.format(name="gke"))
    ids = [r.id for r in discover(tmp_path).recipes]
    assert ids == ["q/vllm/cloud/deploy-aws", "q/vllm/cloud/deploy-gke", "q/vllm/cloud/kustomize/base"]


def test_a_deploy_yaml_without_a_dgd_is_reported_as_a_note(tmp_path):
    write(tmp_path / "m/vllm/agg/deploy.yaml", DGD.format(name="x"))
    write(tmp_path / "m/vllm/raw/deploy.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    d = discover(tmp_path)
    assert [r.id for r in d.recipes] == ["m/vllm/agg"]
    assert [(Path(f.file).relative_to(tmp_path).as_posix(), f.rule, f.severity.value) for f in d.findings] == [
        ("m/vllm/raw/deploy.yaml", "RH013", "info")]
