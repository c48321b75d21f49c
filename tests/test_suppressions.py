""".recipe-harness.yaml suppressions: a reason is required, only rule checks can be suppressed, unused and
malformed suppressions are findings of the `suppressions` check."""

from __future__ import annotations

import shutil
from pathlib import Path

from recipe_harness.load.discovery import discover
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.checks import StaticChecker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"


def tree(tmp_path: Path, case: str, suppressions: str | None, where: str = "tiny/vllm/agg") -> Path:
    root = tmp_path / "recipes"
    shutil.copytree(FIXTURES / case / "recipes", root)
    for old in root.rglob(".recipe-harness.yaml"):
        old.unlink()
    if suppressions is not None:
        (root / where / ".recipe-harness.yaml").write_text(suppressions)
    return root


def findings(root: Path) -> list[tuple[str, str, str, int]]:
    d = discover(root)
    checker = StaticChecker(discovery=d)
    out = []
    for recipe in d.recipes:
        for check, found in checker.run_all(LoadedRecipe.load(recipe)).items():
            out += [(check, f.rule, Path(f.file).name, f.line) for f in found]
    return out


def test_a_suppression_with_a_reason_skips_only_its_rule(tmp_path: Path) -> None:
    root = tree(tmp_path, "RH312", "suppress:\n  - rule: RH312\n    reason: one node\n")
    assert findings(root) == []
    # another rule still fires
    deploy = root / "tiny/vllm/agg/deploy.yaml"
    deploy.write_text(deploy.read_text().replace('- "2"', '- "4"', 1))
    assert [r for _, r, _, _ in findings(root)] == ["RH300"]


def test_a_reasonless_suppression_suppresses_nothing(tmp_path: Path) -> None:
    root = tree(tmp_path, "RH312", "suppress:\n  - rule: RH312\n    reason: '  '\n")
    assert findings(root) == [("storage", "RH312", "model-cache.yaml", 7),
                              ("suppressions", "RH391", ".recipe-harness.yaml", 2)]


def test_model_level_file_applies_to_the_recipes_below(tmp_path: Path) -> None:
    root = tree(tmp_path, "RH312", "suppress:\n  - rule: RH312\n    reason: single node\n", where="tiny")
    assert findings(root) == []


def test_loading_schema_and_suppression_rules_cannot_be_suppressed(tmp_path: Path) -> None:
    text = ("suppress:\n  - rule: RH201\n    reason: a\n  - rule: RH002\n    reason: b\n"
            "  - rule: RH390\n    reason: c\n  - rule: rh300\n    reason: d\n")
    root = tree(tmp_path, "good", text)
    got = [(r, line) for _, r, _, line in findings(root)]
    assert got == [("RH392", 2), ("RH392", 4), ("RH392", 6), ("RH392", 8)]


def test_malformed_files_are_findings(tmp_path: Path) -> None:
    root = tree(tmp_path, "good", "suppress: RH312\n")
    assert [(r, line) for _, r, _, line in findings(root)] == [("RH392", 1)]
    (root / "tiny/vllm/agg/.recipe-harness.yaml").write_text("suppress:\n  - rule: [RH312\n")
    assert [r for _, r, _, _ in findings(root)] == ["RH392"]
    (root / "tiny/vllm/agg/.recipe-harness.yaml").write_text("supress:\n  - rule: RH312\n    reason: typo\n")
    assert [(r, line) for _, r, _, line in findings(root)] == [("RH392", 1), ("RH392", 1)]


def test_unused_suppression_is_a_warning_that_clears_when_used(tmp_path: Path) -> None:
    root = tree(tmp_path, "good", "suppress:\n  - rule: RH351\n    reason: sweep beyond capacity on purpose\n")
    assert [(c, r) for c, r, _, _ in findings(root)] == [("suppressions", "RH390")]
    perf = root / "tiny/vllm/agg/perf.yaml"
    perf.write_text(perf.read_text().replace("in 16 64;", "in 16 64 1024;"))
    assert findings(root) == []
