"""CEL rules (x-kubernetes-validations) of the DGD schemas and of --crd files, evaluated offline."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_harness.static.schema import SchemaOptions, Validator
from recipe_harness.static.schema import validator as validator_module
from recipe_harness.static.schema.cel import compile_rule, compile_validations, evaluate, parse_quantity

ROOT = Path(__file__).resolve().parent.parent
CEL = ROOT / "fixtures" / "cel"
RECIPES = CEL / "recipes"
CRD = CEL / "crd" / "dgd-crd.yaml"
CLI = Path(sys.executable).with_name("recipe-harness")

EXPECTED = [  # (recipe, line, col, message): each at the object the rule sits on
    ("tiny/beta/epp-twice", 7, 3, "spec.components: at most one component may have type epp"),
    ("tiny/beta/epp-twice", 7, 3, "spec.components: component names must be unique case-insensitively"),
    ("tiny/vllm/pvc-create", 8, 7,
     "spec.pvcs[0]: When create is true, size, storageClass, and volumeAccessMode are required"),
    ("tiny/vllm/shm-no-size", 23, 7, "spec.services.VllmWorker.sharedMemory: size is required when disabled is false"),
]


def check(*args: str | Path) -> tuple[int, dict]:
    proc = subprocess.run([str(CLI), "check", "--format", "json", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode in (0, 1, 2), proc.stderr
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr})


def schema_findings(report: dict) -> list[tuple[str, int, int, str]]:
    out = []
    for f in report["findings"]:
        if f["rule"] in ("RH202", "RH201", "RH207"):
            rid = str(Path(f["file"]).resolve().parent.relative_to(RECIPES.resolve()))
            out.append((rid, f["line"], f["col"], f["message"]))
    return sorted(out)


def test_built_in_dgd_rules_through_the_cli() -> None:
    code, report = check(RECIPES)
    assert code == 1
    assert schema_findings(report) == sorted(EXPECTED)


def test_disabled_shared_memory_with_a_size_is_accepted() -> None:
    """The CRD's rule (api/v1alpha1/common.go) only demands a size when shared memory is enabled."""
    _, report = check(RECIPES / "tiny" / "vllm" / "shm-disabled-sized")
    assert schema_findings(report) == []


def test_crd_file_rules_through_the_cli() -> None:
    code, report = check("--crd", CRD, RECIPES)
    assert code == 1
    assert schema_findings(report) == sorted(EXPECTED)  # evaluated, not an "unchecked" note


def test_generated_crd_is_current() -> None:
    spec = importlib.util.spec_from_file_location("cel_crd_generate", CEL / "crd" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert CRD.read_text() == module.render(), "run: .venv/bin/python fixtures/cel/crd/generate.py"


def test_a_crd_file_is_read_and_compiled_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = validator_module.load_crd_file

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(validator_module, "load_crd_file", counting)
    monkeypatch.setattr(validator_module, "_CRD_CACHE", {})
    widget = ROOT / "fixtures" / "schema" / "crd-widget.yaml"
    first = Validator(SchemaOptions(crd_files=(widget,)))
    second = Validator(SchemaOptions(crd_files=(widget,)))
    assert len(calls) == 1
    assert first._crd_checks.keys() == second._crd_checks.keys() and first._crd_checks
    assert all(first._crd_checks[k] is second._crd_checks[k] for k in first._crd_checks)


WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-validations:
                - rule: "self.replicas <= self.max"
                  messageExpression: "'replicas ' + string(self.replicas) + ' is over ' + string(self.max)"
                - rule: "!has(self.url) || url(self.url).getScheme() == 'https'"
                  message: url must be https
                - rule: "self.mode == 'fast' || self.replicas == 1"
                  message: slow mode runs one replica
                  fieldPath: .replicas
              properties:
                replicas: {type: integer}
                max: {type: integer, default: 3}
                mode: {type: string, default: fast}
                url: {type: string}
"""

GADGETS = """\
apiVersion: example.com/v1
kind: Gadget
metadata: {name: a}
spec:
  replicas: 4
  url: http://x
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: b}
spec:
  replicas: 2
  mode: slow
  url: https://y
"""


def test_message_expression_defaults_field_path_and_unsupported_functions(tmp_path: Path) -> None:
    crd = tmp_path / "gadget-crd.yaml"
    crd.write_text(WIDGET_CRD)
    folder = tmp_path / "recipes" / "m" / "x"
    folder.mkdir(parents=True)
    (folder / "gadgets.yaml").write_text(GADGETS)
    from recipe_harness.load.manifests import load_file

    v = Validator(SchemaOptions(crd_files=(crd,)))
    docs = load_file(folder / "gadgets.yaml").documents
    first, second = (v.validate(d) for d in docs)
    # max defaults to 3 before the rule runs; the message comes from messageExpression
    assert [(f.rule, f.line, f.message) for f in first if f.rule != "RH207"] == [("RH201", 4, "spec: replicas 4 is over 3")]
    notes = [f for f in first + second if f.rule == "RH207"]
    assert len(notes) == 1 and notes[0].severity.value == "info" and "url(" in notes[0].message  # once, not an error
    # fieldPath moves the error to spec.replicas
    assert [(f.line, f.message) for f in second if f.rule != "RH207"] == [(12, "spec.replicas: slow mode runs one replica")]


def test_a_rule_that_does_not_parse_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    crd = tmp_path / "bad-crd.yaml"
    crd.write_text(WIDGET_CRD.replace("self.replicas <= self.max", "self.replicas <="))
    proc = subprocess.run([str(CLI), "check", "--crd", str(crd), str(RECIPES / "tiny" / "vllm" / "pvc-create")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "bad-crd.yaml:" in proc.stderr and "x-kubernetes-validations[0]" in proc.stderr


def test_transition_rules_run_on_create_only_with_optional_old_self() -> None:
    rules = compile_validations([
        {"rule": "self == oldSelf", "message": "immutable"},
        {"rule": "oldSelf.hasValue() || !has(self.restart)", "message": "restart must be unset on create",
         "optionalOldSelf": True},
    ])
    assert [f.message for f in evaluate(rules, {"restart": {"id": "x"}}, ("spec",))] == ["restart must be unset on create"]
    assert evaluate(rules, {}, ("spec",)) == []


def test_rules_compile_once_per_text() -> None:
    compile_rule.cache_clear()
    for _ in range(3):
        compile_validations([{"rule": "self.a > 1", "message": "m"}])
    info = compile_rule.cache_info()
    assert (info.misses, info.hits) == (1, 2)


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("16Gi", 16 * 2**30), ("1e3", 1000.0), ("2", 2.0),
                                             ("1.5G", 1.5e9)])
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value


def test_not_a_quantity() -> None:
    with pytest.raises(ValueError):
        parse_quantity("10 Gi")
