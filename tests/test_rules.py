"""Semantic rules (RH3xx): every rule fires on its fixture with the right file and line, through the API and
through the static suite, the clean trees and the recipes collection stay silent, docs/rules.md is current."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from recipe_harness.findings import Severity
from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.checks import StaticChecker
from recipe_harness.static.rules import all_rules, rule_checks
from recipe_harness.static.rules.docs import render
from recipe_harness.static.rules.gpu import stated_totals
from recipe_harness.static.rules.hygiene import quantity
from recipe_harness.static.rules.scripts import aiperf_runs, downloads

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "rules"
RECIPES = REPO / "recipes"

# case -> (rule, file relative to the fixture's recipes/, line)
EXPECTED = {
    "RH300": ("RH300", "tiny/vllm/agg/deploy.yaml", 49),
    "RH301": ("RH301", "tiny/trtllm/agg/deploy.yaml", 68),
    "RH302": ("RH302", "tiny/sglang/agg/deploy.yaml", 51),
    "RH303": ("RH303", "tiny/README.md", 7),
    "RH304": ("RH304", "tiny/vllm/agg/deploy.yaml", 47),
    "RH310": ("RH310", "tiny/vllm/agg/perf.yaml", 37),
    "RH311": ("RH311", "tiny/vllm/agg/deploy.yaml", 42),
    "RH312": ("RH312", "tiny/model-cache/model-cache.yaml", 7),
    "RH313": ("RH313", "tiny/vllm/agg/deploy.yaml", 47),
    "RH314": ("RH314", "tiny/vllm/agg/deploy.yaml", 46),
    "RH320": ("RH320", "tiny/vllm/disagg-kv-router/deploy.yaml", 80),
    "RH321": ("RH321", "tiny/vllm/agg/deploy.yaml", 47),
    "RH322": ("RH322", "tiny/vllm/agg/perf.yaml", 19),
    "RH323": ("RH323", "tiny/vllm/agg/perf.yaml", 20),
    "RH324": ("RH324", "tiny/README.md", 1),
    "RH330": ("RH330", "tiny/vllm/agg/deploy.yaml", 30),
    "RH331": ("RH331", "tiny/vllm/agg/perf.yaml", 21),
    "RH332": ("RH332", "tiny/vllm/disagg-kv-router/deploy.yaml", 29),
    "RH333": ("RH333", "tiny/vllm/disagg-kv-router/deploy.yaml", 47),
    "RH334": ("RH334", "tiny/vllm/disagg-kv-router/deploy.yaml", 30),
    "RH335": ("RH335", "tiny/vllm/disagg-kv-router/deploy.yaml", 47),
    "RH336": ("RH336", "tiny/vllm/agg/deploy.yaml", 30),
    "RH337": ("RH337", "tiny/vllm/agg/deploy.yaml", 4),
    "RH340": ("RH340", "tiny/vllm/agg/perf.yaml", 12),
    "RH341": ("RH341", "tiny/vllm/agg/deploy.yaml", 44),
    "RH342": ("RH342", "tiny/vllm/agg/deploy.yaml", 44),
    "RH343": ("RH343", "tiny/vllm/agg/deploy.yaml", 6),
    "RH344": ("RH344", "tiny/vllm/agg/deploy.yaml", 44),
    "RH345": ("RH345", "tiny/vllm/agg/deploy.yaml", 44),
    "RH350": ("RH350", "tiny/vllm/agg/perf.yaml", 24),
    "RH351": ("RH351", "tiny/vllm/agg/perf.yaml", 26),
    "RH360": ("RH360", "tiny/vllm/agg/deploy.yaml", 22),
    "RH361": ("RH361", "tiny/vllm/agg/deploy.yaml", 35),
    "RH362": ("RH362", "tiny/vllm/agg/deploy.yaml", 14),
    "RH363": ("RH363", "tiny/vllm/agg/deploy.yaml", 30),
    "RH390": ("RH390", "tiny/vllm/agg/.recipe-harness.yaml", 2),
    "RH391": ("RH391", "tiny/vllm/agg/.recipe-harness.yaml", 2),
    "RH392": ("RH392", "tiny/vllm/agg/.recipe-harness.yaml", 2),
}
SEMANTIC_CHECKS = ("gpu", "storage", "model", "wiring", "images", "bench-fit", "hygiene", "suppressions")


def all_findings(root: Path):
    d = discover(root)
    checker = StaticChecker(discovery=d)
    out = []
    for recipe in d.recipes:
        loaded = LoadedRecipe.load(recipe)
        for check, found in checker.run_all(loaded).items():
            out.extend((recipe.id, check, f) for f in found)
    return out


def test_fixtures_are_generated_from_generate_py(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("rules_fixtures", FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    module.write_all(tmp_path)

    def compare(a: Path, b: Path) -> list[str]:
        cmp = filecmp.dircmp(a, b, ignore=["generate.py", "__pycache__"])
        bad = [str(a / n) for n in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files]
        for sub in cmp.common_dirs:
            bad += compare(a / sub, b / sub)
        return bad

    assert compare(tmp_path, FIXTURES) == [], "run `python fixtures/rules/generate.py` and commit the result"


def test_every_semantic_rule_has_a_fixture() -> None:
    semantic = {r.id for r in all_rules().values() if r.check in SEMANTIC_CHECKS}
    assert semantic == {rule for rule, _, _ in EXPECTED.values()}
    # structure rules have fixtures/structure/, perf-config rules fixtures/perf/rules/ (their own tests)
    assert {c for c in rule_checks() if c not in ("structure", "perf-config")} == set(SEMANTIC_CHECKS)


@pytest.mark.parametrize("tree", ["good", "suppressed"])
def test_clean_trees_pass_every_check(tree: str) -> None:
    assert [f"{c}: {f.format()}" for _, c, f in all_findings(FIXTURES / tree / "recipes")] == []


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_fixture_breaks_exactly_its_rule(case: str) -> None:
    rule, rel, line = EXPECTED[case]
    root = FIXTURES / case / "recipes"
    found = all_findings(root)
    assert [(f.rule, Path(f.file).relative_to(root).as_posix(), f.line) for _, _, f in found] == [(rule, rel, line)]
    _, check, finding = found[0]
    registered = all_rules()[rule]
    assert check == registered.check
    assert finding.severity is registered.severity
    assert finding.hint == registered.hint and finding.hint
    assert finding.col >= 1


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_suite_reports_the_rule_in_its_check(pytester: pytest.Pytester, case: str) -> None:
    rule, rel, line = EXPECTED[case]
    registered = all_rules()[rule]
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_static import *\n")
    report = pytester.path / "out"
    result = pytester.runpytest("--recipes-root", str(FIXTURES / case / "recipes"), "-p", "no:cacheprovider",
                                "--report-dir", str(report))
    summary = json.loads((report / "summary.json").read_text())
    (recipe_id, recipe), = summary["recipes"].items()
    checks = recipe["checks"]
    assert set(SEMANTIC_CHECKS) <= set(checks)
    failed = sorted(c for c, v in checks.items() if v["outcome"] == "failed")
    reported = [(c, f["rule"], Path(f["file"]).name, f["line"]) for c, v in checks.items() for f in v["findings"]]
    assert reported == [(registered.check, rule, Path(rel).name, line)]
    if registered.severity is Severity.ERROR:
        assert failed == [registered.check]
        result.assert_outcomes(failed=1, passed=len(checks) - 1)
        result.stdout.fnmatch_lines([f"*{rel}:{line}:*: {rule} *", f"*FAILED*{recipe_id}::{registered.check}*"])
    else:  # warnings are reported but fail only with --strict-rules
        assert failed == []
        result.assert_outcomes(passed=len(checks))
        strict = pytester.runpytest("--recipes-root", str(FIXTURES / case / "recipes"), "-p", "no:cacheprovider",
                                    "--strict-rules")
        strict.assert_outcomes(failed=1, passed=len(checks) - 1)
        strict.stdout.fnmatch_lines([f"*{rel}:{line}:*: {rule} * [[]warning[]]*"])


def test_literal_token_is_never_printed(pytester: pytest.Pytester) -> None:
    token = next(line.split("value: ", 1)[1] for line in
                 (FIXTURES / "RH362/recipes/tiny/vllm/agg/deploy.yaml").read_text().splitlines() if "hf_" in line)
    (_, _, finding), = all_findings(FIXTURES / "RH362" / "recipes")
    assert token not in finding.message and token not in finding.hint and token not in finding.format()
    assert token[3:10] not in finding.message
    pytester.makepyfile(test_suite="from recipe_harness.suites.test_static import *\n")
    result = pytester.runpytest("--recipes-root", str(FIXTURES / "RH362" / "recipes"), "-p", "no:cacheprovider",
                                "--report-dir", str(pytester.path / "out"))
    assert result.parseoutcomes().get("failed") == 1
    assert token not in result.stdout.str() + result.stderr.str()
    for path in (pytester.path / "out").iterdir():
        assert token not in path.read_text(errors="replace"), path


def test_recipes_collection_is_silent() -> None:
    """Every semantic rule stays silent on the recipes in recipes/ (a finding there is a recipe bug)."""
    if not RECIPES.is_dir():
        pytest.skip("no recipes/ folder")
    found = [f"{f.format(REPO)}" for _, check, f in all_findings(RECIPES) if check in SEMANTIC_CHECKS]
    assert found == []


def test_docs_rules_md_is_current() -> None:
    path = REPO / "docs" / "rules.md"
    assert path.read_text() == render(), "regenerate: python -m recipe_harness.static.rules.docs > docs/rules.md"
    for rid in all_rules():
        assert f"| {rid} |" in path.read_text()


# --------------------------------------------------------------------------- building blocks


def _recipe(tmp_path: Path, files: dict[str, str]) -> LoadedRecipe:
    for rel, text in files.items():
        path = tmp_path / "recipes" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    (recipe,) = discover(tmp_path / "recipes").recipes
    return LoadedRecipe.load(recipe)


DGD = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: d
spec:
  services:
    Frontend:
      componentType: frontend
"""


def test_perf_script_with_functions_positionals_and_arithmetic(tmp_path: Path) -> None:
    perf = """
    apiVersion: batch/v1
    kind: Job
    metadata:
      name: p
    spec:
      template:
        spec:
          containers:
            - name: perf
              image: python:3.12-slim
              command: [/bin/sh, -c]
              args:
                - |
                  run_perf() {
                    local concurrency=$1
                    local isl=$2
                    local osl=$3
                    aiperf profile --model $TARGET_MODEL \\
                      --url http://$ENDPOINT \\
                      --synthetic-input-tokens-mean $isl \\
                      --output-tokens-mean $osl \\
                      --concurrency $concurrency \\
                      --request-count $((10*concurrency))
                  }
                  TOTAL_CONCURRENCY=$((CONCURRENCY_PER_GPU * DEPLOYMENT_GPU_COUNT))
                  run_perf $TOTAL_CONCURRENCY $ISL $OSL
              env:
                - {name: TARGET_MODEL, value: RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic}
                - {name: ENDPOINT, value: "llama3-70b-agg-frontend:8000"}
                - {name: CONCURRENCY_PER_GPU, value: "16"}
                - {name: DEPLOYMENT_GPU_COUNT, value: "4"}
                - {name: ISL, value: "8192"}
                - {name: OSL, value: "1024"}
    """
    recipe = _recipe(tmp_path, {"m/vllm/agg/deploy.yaml": DGD, "m/vllm/agg/perf.yaml": perf})
    (run,) = aiperf_runs(recipe)
    assert run.model is not None and run.model.text == "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"
    assert [u.text for u in run.urls] == ["http://llama3-70b-agg-frontend:8000"]
    assert run.isl.ints == [8192] and run.osl.ints == [1024]
    assert run.concurrency.ints == [64]
    assert run.concurrency.src[1] == 22  # the --concurrency line inside the function body


def test_download_commands(tmp_path: Path) -> None:
    job = """
    apiVersion: batch/v1
    kind: Job
    metadata:
      name: model-download
    spec:
      template:
        spec:
          containers:
            - name: dl
              image: python:3.12-slim
              command: ["sh", "-c"]
              args:
                - |
                  set -eux
                  hf download $MODEL_NAME --revision abc --local-dir /models/r1 --exclude "original/*"
                  huggingface-cli download nvidia/DeepSeek-R1-FP4 --cache-dir /models/hub
              env:
                - {name: MODEL_NAME, value: deepseek-ai/DeepSeek-R1}
    """
    recipe = _recipe(tmp_path, {"m/vllm/agg/deploy.yaml": DGD, "m/model-cache/model-download.yaml": job})
    got = [(d.repo, d.local_dir, d.cache_dir, d.src[1]) for d in downloads(recipe)]
    assert got == [("deepseek-ai/DeepSeek-R1", "/models/r1", None, 15),
                   ("nvidia/DeepSeek-R1-FP4", None, "/models/hub", 16)]


def test_readme_totals_from_tables_and_lines(tmp_path: Path) -> None:
    readme = """
    # m

    | Recipe | Backend | GPUs per replica | GPUs | Hardware |
    |---|---|---|---|---|
    | `m/vllm/agg` | vLLM | 4 | 8 | 8x H100 |
    | `m/vllm/other` | vLLM | 4 | 4 | 4x H100 |

    `vllm/agg` uses 2 x 4 = **8 GPUs**.
    """
    recipe = _recipe(tmp_path, {"m/vllm/agg/deploy.yaml": DGD, "m/README.md": readme})
    assert [(line, n) for _, line, n in stated_totals(recipe)] == [(5, 8), (8, 8)]


@pytest.mark.parametrize(("text", "value"), [("500m", "0.5"), ("16Gi", str(16 * 2**30)), ("4", "4"), (2, "2"),
                                             ("1e3", "1000"), ("1.5G", "1500000000")])
def test_quantities(text, value) -> None:
    from decimal import Decimal

    assert quantity(text) == Decimal(value)
    assert quantity("lots") is None


def test_v1beta1_deployments_are_checked(tmp_path: Path) -> None:
    """The rules read the normalised model: a v1beta1 graph (components, podTemplate) is checked the same way."""
    src = REPO / "fixtures" / "schema" / "dgd-v1beta1-valid.yaml"
    recipe_dir = tmp_path / "recipes" / "llama" / "vllm" / "disagg"
    recipe_dir.mkdir(parents=True)
    shutil.copy(src, recipe_dir / "deploy.yaml")
    found = [(f.rule, f.line) for _, c, f in all_findings(tmp_path / "recipes") if c in SEMANTIC_CHECKS]
    # TP2 on 2 GPUs and TP8 on 4 GPUs x 2 nodes are right; the claims are not created; sharedMemorySize "0"
    assert found == [("RH310", 41), ("RH310", 30), ("RH361", 68)]


def test_a_claim_documented_as_prerequisite_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "recipes"
    shutil.copytree(FIXTURES / "RH310" / "recipes", root)
    readme = root / "tiny" / "README.md"
    readme.write_text(readme.read_text() + "\nCreate the PVC `perf-results` (ReadWriteOnce) before the benchmark.\n")
    assert all_findings(root) == []


@pytest.mark.parametrize("how", ["readme", "optional", "beside"])
def test_a_configmap_documented_optional_or_shipped_beside_the_deploy_file_is_accepted(tmp_path: Path, how: str) -> None:
    root = tmp_path / "recipes"
    shutil.copytree(FIXTURES / "RH314" / "recipes", root)
    deploy = root / "tiny" / "vllm" / "agg" / "deploy.yaml"
    if how == "readme":
        readme = root / "tiny" / "README.md"
        readme.write_text(readme.read_text() + "\nCreate the ConfigMap `tiny-chat-template` with your chat template.\n")
    elif how == "optional":
        deploy.write_text(deploy.read_text().replace("name: tiny-chat-template", "name: tiny-chat-template\n"
                                                     "              optional: true"))
    else:
        (deploy.parent / "chat-template.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny-chat-template\ndata:\n  t.jinja: x\n")
    assert all_findings(root) == []


def test_local_model_path_must_be_where_the_job_writes(tmp_path: Path) -> None:
    root = tmp_path / "recipes"
    shutil.copytree(FIXTURES / "good" / "recipes", root)
    for other in ("vllm/disagg-kv-router", "sglang", "trtllm"):
        shutil.rmtree(root / "tiny" / other)
    job = root / "tiny/model-cache/model-download.yaml"
    job.write_text(job.read_text().replace("hf download Qwen/Qwen3-0.6B",
                                           "hf download Qwen/Qwen3-0.6B --local-dir /opt/models/qwen3"))
    deploy = root / "tiny/vllm/agg/deploy.yaml"
    text = deploy.read_text().replace("- --model\n            - Qwen/Qwen3-0.6B",
                                      "- --model\n            - /opt/models/qwen3\n"
                                      "            - --served-model-name\n            - Qwen/Qwen3-0.6B")
    deploy.write_text(text)
    assert [f.format(root) for _, _, f in all_findings(root)] == []
    deploy.write_text(text.replace("- /opt/models/qwen3\n", "- /opt/models/qwen3-0.6b\n"))
    found = [(f.rule, f.line) for _, _, f in all_findings(root)]
    assert found == [("RH313", 47)]


def test_check_of_a_crd_file_reports_instead_of_crashing() -> None:
    """A CRD schema has mappings named `name` (`properties: {name: {...}}`); the token rule read them as env
    entries and `recipe-harness check fixtures/cel/crd/` ended in `TypeError: unhashable type: 'dict'`."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "recipe_harness.cli", "check", str(REPO / "fixtures/cel/crd")],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert "RH101" in done.stdout and done.returncode == 1
