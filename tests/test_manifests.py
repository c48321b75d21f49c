"""The bounded YAML loader on the bad-input corpus and on edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recipe_harness.load import manifests
from recipe_harness.load.manifests import MAX_FILE_BYTES, load_file, loads

CORPUS = Path(__file__).parent.parent / "fixtures" / "bad-input"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_gives_the_expected_finding(name):
    rule, line, col = EXPECTED[name]
    result = load_file(CORPUS / name)
    assert [f.rule for f in result.findings] == [rule]
    finding = result.findings[0]
    if line is not None:
        assert (finding.line, finding.col) == (line, col)
    assert finding.file == str(CORPUS / name)
    assert finding.message


def test_alias_bomb_fails_fast(monkeypatch):
    """The bomb expands to billions of nodes; the loader visits MAX_NODES + 1 of them and stops."""
    visits = []
    node = manifests._Builder._node
    monkeypatch.setattr(manifests._Builder, "_node", lambda self, *a: (visits.append(1), node(self, *a))[1])
    result = load_file(CORPUS / "alias-bomb.yaml")
    assert "alias bomb" in result.findings[0].message
    assert len(visits) == manifests.MAX_NODES + 1


def test_huge_file_is_refused_without_reading(tmp_path, monkeypatch):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    opened = []
    path_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: (opened.append(self), path_open(self, *a, **k))[1])
    result = load_file(huge)
    assert opened == []
    assert [f.rule for f in result.findings] == ["RH004"]
    assert "50.0 MiB" in result.findings[0].message


def test_file_just_under_the_limit_is_read(tmp_path):
    big = tmp_path / "big.yaml"
    line = "# " + "x" * 98 + "\n"
    big.write_text("a: 1\n" + line * ((MAX_FILE_BYTES - 10) // len(line)))
    result = load_file(big)
    assert result.findings == []
    assert result.documents[0].body == {"a": 1}


def test_python_tag_is_never_executed(tmp_path):
    marker = Path("/tmp/recipe-harness-pwned")
    marker.unlink(missing_ok=True)
    load_file(CORPUS / "python-tag.yaml")
    assert not marker.exists()


def test_empty_file_has_no_documents():
    result = load_file(CORPUS / "empty.yaml")
    assert result.documents == [] and result.findings == []


def test_missing_file_is_a_finding(tmp_path):
    result = load_file(tmp_path / "nope.yaml")
    assert [f.rule for f in result.findings] == ["RH001"]


def test_positions_of_nodes_and_keys():
    text = "a:\n  b:\n    - x\n    - {c: 3}\n---\nkind: Two\n"
    result = loads(text, "t.yaml")
    first, second = result.documents
    assert first.pos(("a", "b", 1, "c")) == (4, 11)
    assert first.key_pos(("a", "b")) == (2, 3)
    assert first.pos(("a", "missing", "deeper")) == first.pos(("a",))
    assert second.kind == "Two" and second.start_line == 6
    assert second.pos(()) == (6, 1)


def test_scalars_follow_kubernetes_yaml():
    doc = loads("i: 3\nf: 1.5\nb: true\nn: null\ns: '3'\nt: 2024-01-01\n").documents[0].body
    assert doc == {"i": 3, "f": 1.5, "b": True, "n": None, "s": "3", "t": "2024-01-01"}


def test_merge_keys_and_aliases_within_budget():
    doc = loads("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n").documents[0].body
    assert doc["d"] == {"x": 1, "y": 3}


def test_duplicate_key_in_second_document_names_both_lines():
    result = loads("a: 1\n---\nb: 1\nc: 2\nb: 3\n", "d.yaml")
    (finding,) = result.findings
    assert (finding.rule, finding.line, finding.col) == ("RH003", 5, 1)
    assert "first defined on line 3" in finding.message


def test_shared_load_parses_a_file_once_and_again_when_it_changes(tmp_path):
    from recipe_harness.load.manifests import load_file_shared

    path = tmp_path / "thresholds.yaml"
    path.write_text("schemaVersion: 1\nprofiles: {}\n")
    first = load_file_shared(path)
    assert load_file_shared(path) is first          # one parse, however many checks read it
    path.write_text("schemaVersion: 2\nprofiles: {}\n")  # same size, edited within the same second
    again = load_file_shared(path)
    assert again is not first and again.documents[0].body["schemaVersion"] == 2
    path.write_text("a: [\n")
    assert load_file_shared(path).findings[0].rule == "RH002"
    path.unlink()
    assert load_file_shared(path).findings[0].rule == "RH001"
