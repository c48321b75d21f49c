"""``${VAR}`` templates through the CLI: rendered where their variables are declared (env file, matrix file, README
table) and checked as rendered; otherwise each placeholder reported once at its line (RH208), not as a type error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from recipe_harness.load.discovery import discover
from recipe_harness.load.render import envsubst, kustomize

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "fixtures" / "envsubst" / "recipes"
CLI = Path(sys.executable).with_name("recipe-harness")
TEMPLATE = RECIPES / "tiny" / "vllm" / "agg-undeclared" / "deploy.yaml"


def cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, kustomize.CACHE_ENV: str(tmp_path / "cache")}
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def line_col(text: str, nth: int = 1) -> tuple[int, int]:
    seen = 0
    for n, line in enumerate(TEMPLATE.read_text().splitlines(), 1):
        if text in line:
            seen += 1
            if seen == nth:
                return n, line.index(text) + 1
    raise AssertionError(text)


def test_declared_templates_are_rendered_variants(tmp_path: Path) -> None:
    proc = cli(tmp_path, "list", "--recipes-root", RECIPES)
    assert proc.stdout.split() == ["tiny/vllm/agg-env", "tiny/vllm/agg-matrix/nvidia-h100-80gb-hbm3",
                                   "tiny/vllm/agg-matrix/nvidia-h200", "tiny/vllm/agg-readme", "tiny/vllm/agg-undeclared"]


def test_only_undeclared_placeholders_are_reported_once_at_their_lines(tmp_path: Path) -> None:
    proc = cli(tmp_path, "check", "--format", "json", RECIPES)
    assert proc.returncode == 1
    found = sorted((f["rule"], str(Path(f["file"]).relative_to(RECIPES)), f["line"], f["col"])
                   for f in json.loads(proc.stdout)["findings"] if f["severity"] != "info")
    rel = "tiny/vllm/agg-undeclared/deploy.yaml"
    assert found == sorted([  # no RH202 "is not of type integer" on replicas, no RH340 on the images
        ("RH208", rel, *line_col("${DYNAMO_IMAGE}", 1)),
        ("RH208", rel, *line_col("${WORKER_REPLICAS}")),
        ("RH208", rel, *line_col("${GPU_PRODUCT}")),
        ("RH208", rel, *line_col("${DYNAMO_IMAGE}", 2)),
    ])  # ${HF_HOME} in the worker's shell command and ${NAMESPACE} in a comment are not template variables


def test_renderings_hold_the_declared_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(kustomize.CACHE_ENV, str(tmp_path))
    by_id = {r.id: r for r in discover(RECIPES).recipes}
    env = yaml.safe_load(by_id["tiny/vllm/agg-env"].deploy_file.read_text())
    worker = env["spec"]["services"]["VllmWorker"]
    assert worker["replicas"] == 2  # an integer after rendering: the schema sees what kubectl would
    assert worker["extraPodSpec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "${HF_HOME}" in worker["extraPodSpec"]["mainContainer"]["args"][0]  # left to the shell
    h200 = yaml.safe_load(by_id["tiny/vllm/agg-matrix/nvidia-h200"].deploy_file.read_text())
    assert h200["spec"]["services"]["VllmWorker"]["extraPodSpec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H200"
    readme = yaml.safe_load(by_id["tiny/vllm/agg-readme"].deploy_file.read_text())
    assert readme["spec"]["services"]["Frontend"]["extraPodSpec"]["mainContainer"]["image"] \
        == "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1"
    # line numbers are the template's: a finding in a rendering points at the same line of the template
    rendered = by_id["tiny/vllm/agg-env"]
    assert len(rendered.deploy_file.read_text().splitlines()) == len(TEMPLATE.read_text().splitlines())
    assert rendered.origin == RECIPES / "tiny" / "vllm" / "agg-env" / "deploy.yaml"


def test_declarations_innermost_first(tmp_path: Path) -> None:
    model = tmp_path / "m"
    recipe = model / "vllm" / "agg"
    recipe.mkdir(parents=True)
    (model / "README.md").write_text("```bash\nexport IMAGE=outer:1\nexport TAG=v1\n```\n")
    (recipe / "deploy.env").write_text("# comment\nexport IMAGE='inner:2'\n")
    d = envsubst.declarations(recipe, model)
    assert d.values == {"IMAGE": ["inner:2"], "TAG": ["v1"]}
    assert d.sources == {"IMAGE": "deploy.env", "TAG": "README.md"}


def test_substitute_is_envsubst() -> None:
    assert envsubst.substitute("a: ${X}\nb: ${Y:-d}\nc: ${Z}\n", {"X": "1"}) == "a: 1\nb: d\nc: ${Z}\n"
