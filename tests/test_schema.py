"""Schema stage: core kinds, DynamoGraphDeployment v1alpha1/v1beta1, --crd semantics, model of v1beta1."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from recipe_harness.findings import Finding, Severity
from recipe_harness.load.manifests import Document, load_file, loads
from recipe_harness.model import ROLE_DECODE, ROLE_FRONTEND, ROLE_PREFILL, ROLE_WORKER, load_deployment
from recipe_harness.static.schema import (
    DEFAULT_K8S_VERSION,
    RULES,
    SchemaConfigError,
    SchemaOptions,
    Validator,
    available_versions,
    bundled_schema,
    load_dgd_schema,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "schema"


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


@pytest.fixture(scope="module")
def crd_validator() -> Validator:
    return Validator(SchemaOptions(crd_files=(FIX / "crd-widget.yaml",)))


def docs(name: str) -> list[Document]:
    result = load_file(FIX / name)
    assert not result.findings, result.findings
    return result.documents


def run(v: Validator, name: str) -> list[Finding]:
    return [f for d in docs(name) for f in v.validate(d)]


def pos_of(name: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the ``nth`` occurrence of ``needle`` in a fixture."""
    seen = 0
    for i, line in enumerate((FIX / name).read_text().splitlines(), 1):
        col = line.find(needle)
        while col >= 0:
            if seen == nth:
                return i, col + 1
            seen += 1
            col = line.find(needle, col + 1)
    raise AssertionError(f"{needle!r} not in {name}")


def at(findings: list[Finding], line: int, col: int) -> list[Finding]:
    return [f for f in findings if (f.line, f.col) == (line, col)]


def one(findings: list[Finding], rule: str, line: int, col: int, *needles: str) -> Finding:
    hits = [f for f in at(findings, line, col) if f.rule == rule and all(n in f.message for n in needles)]
    assert len(hits) == 1, f"expected one {rule} at {line}:{col} with {needles}; got:\n" + "\n".join(
        f.format() for f in findings)
    return hits[0]


# -- public surface ------------------------------------------------------------------------------

def test_rules_are_documented() -> None:
    assert set(RULES) == {f"RH20{i}" for i in range(1, 9)}  # RH208: template variables
    assert all(isinstance(doc, str) and doc for doc in RULES.values())


def test_pinned_version_is_bundled() -> None:
    assert DEFAULT_K8S_VERSION in available_versions()
    assert Validator().kubernetes_version == DEFAULT_K8S_VERSION


def test_unknown_kubernetes_version_is_a_config_error() -> None:
    with pytest.raises(SchemaConfigError, match=r"1\.9.*available: 1\.25"):
        Validator(SchemaOptions(kubernetes_version="1.9"))


def test_dgd_schemas_are_valid_draft_2020_12() -> None:
    for version in ("v1alpha1", "v1beta1"):
        jsonschema.Draft202012Validator.check_schema(load_dgd_schema(version))


# -- valid manifests -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dgd-v1alpha1-valid.yaml", "dgd-v1beta1-valid.yaml", "core-valid.yaml"])
def test_valid_manifests_pass(validator: Validator, name: str) -> None:
    assert run(validator, name) == []


def test_core_valid_covers_the_recipe_kinds() -> None:
    kinds = {d.kind for d in docs("core-valid.yaml")}
    assert {"PersistentVolumeClaim", "Job", "ConfigMap", "Secret", "Service", "Deployment", "Pod", "StatefulSet",
            "ServiceAccount", "Role", "RoleBinding", "Namespace"} <= kinds


# -- DynamoGraphDeployment errors ----------------------------------------------------------------

F_A = "dgd-v1alpha1-invalid.yaml"


def test_typo_replica_is_unknown_field_with_suggestion(validator: Validator) -> None:
    found = run(validator, F_A)
    f = one(found, "RH203", *pos_of(F_A, "replica:"), 'unknown field "replica"')
    assert f.message == ('unknown field "replica" in spec.services.Frontend (did you mean "replicas"?); '
                         "the apiserver would silently drop it")
    assert f.severity is Severity.ERROR and "--validate=strict" in f.hint


def test_typo_extra_pod_specs_is_unknown_field_with_suggestion(validator: Validator) -> None:
    found = run(validator, F_A)
    one(found, "RH203", *pos_of(F_A, "extraPodSpecs:"), 'unknown field "extraPodSpecs" in spec.services.VllmWorker',
        'did you mean "extraPodSpec"?')


def test_dgd_value_errors(validator: Validator) -> None:
    found = run(validator, F_A)
    line, col = pos_of(F_A, '"two"')
    f = one(found, "RH202", line, col)
    assert f.message == 'spec.services.VllmWorker.replicas: "two" is not of type integer'
    one(found, "RH202", *pos_of(F_A, "VLLM"), "spec.backendFramework", 'did you mean "vllm"?')
    line, col = pos_of(F_A, "gpu: 1")
    gpu = one(found, "RH202", line, col + 5, "resources.limits.gpu: 1 is not of type string")
    assert "quote the value" in gpu.hint
    line, col = pos_of(F_A, "nodeCount: 1")
    one(found, "RH202", line, col + 11, "multinode.nodeCount: 1 is less than the minimum of 2")
    one(found, "RH202", *pos_of(F_A, "10 Gi"), "sharedMemory.size", "not a valid quantity")
    # create: true needs size, storageClass and volumeAccessMode: the CRD's CEL rule and its message, on the item
    line, col = pos_of(F_A, "name: model-cache")
    missing = {f.message for f in at(found, line, col)}
    assert missing == {"spec.pvcs[0]: When create is true, size, storageClass, and volumeAccessMode are required"}
    assert len(found) == 8


def test_v1beta1_errors_and_moved_fields(validator: Validator) -> None:
    name = "dgd-v1beta1-invalid.yaml"
    found = run(validator, name)
    one(found, "RH203", *pos_of(name, "envs:"), 'unknown field "envs" in spec', "nvidia.com/v1beta1 uses spec.env")
    one(found, "RH202", *pos_of(name, "type: frontend"), 'spec.components[0]: missing required field "name"')
    one(found, "RH202", *pos_of(name, "worker_1"), "spec.components[1].name", "does not match the pattern")
    one(found, "RH202", *pos_of(name, "Worker"), 'did you mean "worker"?')
    one(found, "RH203", *pos_of(name, "resources:"), 'unknown field "resources" in spec.components[1]',
        "podTemplate.spec.containers[name=main].resources")
    one(found, "RH202", *pos_of(name, "8000"), "containers[0].env[0].value: 8000 is not of type string")
    assert len(found) == 6


def test_list_where_a_map_belongs(validator: Validator) -> None:
    name = "dgd-v1alpha1-services-list.yaml"
    found = run(validator, name)
    f = one(found, "RH202", *pos_of(name, "- name: Frontend"), "spec.services: got a list where a map belongs")
    assert "map" in f.hint and len(found) == 1


def test_v1alpha1_service_with_v1beta1_fields_gets_a_migration_note(validator: Validator) -> None:
    text = ("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\n"
            "spec:\n  services:\n    Worker:\n      type: worker\n      podTemplate: {}\n")
    found = validator.validate(loads(text, "m.yaml").documents[0])
    assert [(f.rule, f.line, f.col) for f in found] == [("RH203", 7, 7), ("RH203", 8, 7)]
    assert "uses componentType" in found[0].message and "extraPodSpec" in found[1].message


# -- apiVersion / kind problems ------------------------------------------------------------------

W = "wrong-api.yaml"


def test_wrong_api_versions_and_missing_type_meta(validator: Validator) -> None:
    found = run(validator, W)
    job = one(found, "RH205", *pos_of(W, "apps/v1"), 'apiVersion "apps/v1" does not serve Job; use batch/v1')
    assert job.hint == "apiVersion: batch/v1"
    one(found, "RH205", *pos_of(W, "nvidia.com/v1"), "use nvidia.com/v1alpha1 or nvidia.com/v1beta1")
    missing = one(found, "RH206", *pos_of(W, "kind: ConfigMap"), "missing apiVersion")
    assert "apiVersion: v1" in missing.hint
    one(found, "RH206", *pos_of(W, "apiVersion: v1", nth=0), "missing kind")
    one(found, "RH206", *pos_of(W, "- just"), "document is a list")
    one(found, "RH206", *pos_of(W, "Pood"), 'kind "Pood" does not exist in v1 (did you mean "Pod"?)')
    one(found, "RH206", *pos_of(W, "apiversion:"), 'found "apiversion" (did you mean "apiVersion"?)')
    assert len(found) == 7


def test_empty_documents_are_skipped(validator: Validator) -> None:
    result = loads("---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "e.yaml")
    assert [f for d in result.documents for f in validator.validate(d)] == []


# -- core kinds ----------------------------------------------------------------------------------

C = "core-invalid.yaml"


def test_core_kind_errors(validator: Validator) -> None:
    found = run(validator, C)
    one(found, "RH201", *pos_of(C, "ReadWriteMany"), "spec.accessModes", "where a list belongs")
    one(found, "RH201", *pos_of(C, "300 Gi"), "spec.resources.requests.storage", "not a valid quantity")
    one(found, "RH203", *pos_of(C, "backofLimit"), 'unknown field "backofLimit" in spec (did you mean "backoffLimit"?)')
    one(found, "RH201", *pos_of(C, "image: python"), 'containers[0]: missing required field "name"')
    one(found, "RH201", *pos_of(C, "8000", nth=0), "env[0].value: 8000 is not of type string")
    port = one(found, "RH201", *pos_of(C, '"8000"'), 'spec.ports[0].port: "8000" is not of type integer')
    assert port.hint == 'remove the quotes: write 8000, not "8000"'
    line, col = pos_of(C, "concurrency: 8")
    one(found, "RH201", line, col + len("concurrency: "), "data.concurrency: 8 is not of type string")
    b64 = one(found, "RH201", *pos_of(C, "not base64!"), "data.HF_TOKEN", "not valid base64")
    assert "stringData" in b64.hint
    doc_start = pos_of(C, "kind: ConfigMap", nth=1)[0] - 1  # no metadata: reported at the document
    one(found, "RH201", doc_start, 1, "metadata.name is required")
    assert len(found) == 9 and all(f.severity is Severity.ERROR for f in found)
    assert found[:4] == sorted(found[:4], key=lambda f: (f.line, f.col))


def test_kubernetes_version_is_selectable() -> None:
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostnameOverride: h\n"
            "  resources: {limits: {cpu: '1'}}\n  containers: [{name: c, image: i}]\n")
    doc = loads(text, "p.yaml").documents[0]

    def unknown(version: str) -> list[str]:
        found = Validator(SchemaOptions(kubernetes_version=version)).validate(doc)
        return sorted(f.message.split('"')[1] for f in found if f.rule == "RH203")
    assert unknown("1.29") == ["hostnameOverride", "resources"]
    assert unknown("1.33") == ["hostnameOverride"]
    assert unknown("v1.37.0") == []


# -- kinds without a schema ------------------------------------------------------------------------

def test_unknown_kinds_are_info(validator: Validator) -> None:
    found = run(validator, "other-kinds.yaml")
    assert [f.rule for f in found] == ["RH204"] * 5
    assert all(f.severity is Severity.INFO for f in found)
    first = found[0]
    assert (first.line, first.col) == pos_of("other-kinds.yaml", "ComputeDomain")
    assert "--crd" in first.hint


def test_strict_kinds_makes_them_errors() -> None:
    found = run(Validator(SchemaOptions(strict_kinds=True)), "other-kinds.yaml")
    assert [f.severity for f in found] == [Severity.ERROR] * 5


# -- --crd ---------------------------------------------------------------------------------------

WD = "widgets.yaml"


def by_name(v: Validator) -> dict[str, list[Finding]]:
    return {d.name: v.validate(d) for d in docs(WD)}


def test_crd_valid_document(crd_validator: Validator) -> None:
    found = Validator(SchemaOptions(crd_files=(FIX / "crd-widget.yaml",))).validate(docs(WD)[0])
    assert found == []  # its CEL rule (size <= 100) holds; CEL is evaluated (tests/test_cel.py)


def test_crd_pruning_and_preserve_unknown_fields(crd_validator: Validator) -> None:
    found = by_name(crd_validator)["pruned"]
    one(found, "RH203", *pos_of(WD, "sizee:"), 'unknown field "sizee" in spec (did you mean "size"?)')
    one(found, "RH203", *pos_of(WD, "foo: bar"), 'unknown field "foo" in spec.opaque')
    assert len([f for f in found if f.rule != "RH207"]) == 2  # config.extra is preserved


def test_crd_int_or_string(crd_validator: Validator) -> None:
    found = by_name(crd_validator)["int-or-string"]
    one(found, "RH201", *pos_of(WD, "1.5"), "spec.port: 1.5 is not of type integer or string")
    assert [f.rule for f in by_name(crd_validator)["valid"] if f.rule != "RH207"] == []  # port: http is fine


def test_crd_nullable(crd_validator: Validator) -> None:
    found = [f for f in by_name(crd_validator)["nulls"] if f.rule != "RH207"]
    assert len(found) == 1  # note: null is nullable; label: null is pruned
    f = one(found, "RH203", *pos_of(WD, "label: null"), "spec.label: null value for a non-nullable field")
    assert f.severity is Severity.WARNING


def test_crd_required_and_defaults(crd_validator: Validator) -> None:
    found = [f for f in by_name(crd_validator)["required"] if f.rule != "RH207"]
    assert [f.message for f in found] == ['spec: missing required field "size"']  # mode has a default
    assert (found[0].line, found[0].col) == pos_of(WD, "spec:", nth=4)


def test_crd_formats_enums_sets_and_embedded_resources(crd_validator: Validator) -> None:
    by = by_name(crd_validator)
    ranges = by["ranges"]
    one(ranges, "RH201", *pos_of(WD, "3000000000"), "spec.size: 3000000000 is out of range for int32")
    one(ranges, "RH201", *pos_of(WD, "Fast"), 'did you mean "fast"?')
    one(ranges, "RH201", *pos_of(WD, "a]"), "spec.tags[1]: duplicate entry")
    embedded = sorted(f.message for f in by["embedded"])
    assert embedded == ['spec.template: missing required field "apiVersion"',
                        'spec.template: missing required field "kind"']


def test_crd_unserved_version_names_served_versions(crd_validator: Validator) -> None:
    found = by_name(crd_validator)["unserved"]
    f = one(found, "RH205", *pos_of(WD, "example.com/v2"), 'version "v2" of Widget is not served', "served versions: v1")
    assert f.hint == "use apiVersion: example.com/v1"


def test_crd_second_kind_in_the_same_file(crd_validator: Validator) -> None:
    found = by_name(crd_validator)["gadget"]
    one(found, "RH203", *pos_of(WD, "colour:"), 'unknown field "colour" in spec')


def test_crd_overrides_the_builtin_dgd_schema(tmp_path: Path) -> None:
    crd = (FIX / "crd-widget.yaml").read_text().split("---")[1]
    crd = crd.replace("example.com", "nvidia.com").replace("Gadget", "DynamoGraphDeployment") \
        .replace("gadgets", "dynamographdeployments").replace("v1alpha1", "v9")
    path = tmp_path / "dgd-crd.yaml"
    path.write_text(crd)
    v = Validator(SchemaOptions(crd_files=(path,)))
    doc = loads("apiVersion: nvidia.com/v9\nkind: DynamoGraphDeployment\nmetadata: {name: d}\n"
                "spec:\n  count: 1\n  services: {}\n", "d.yaml").documents[0]
    found = v.validate(doc)
    assert [(f.rule, f.line, f.message) for f in found] == [
        ("RH203", 6, 'unknown field "services" in spec; the apiserver would silently drop it')]
    alpha = v.validate(docs("dgd-v1alpha1-valid.yaml")[0])
    assert [f.rule for f in alpha] == ["RH205"] and "served versions: v9" in alpha[0].message


@pytest.mark.parametrize("name, needle, problem", [
    ("crd-bad-missing-type.yaml", "spec:", "schema at properties.spec: missing 'type'"),
    ("crd-bad-keyword.yaml", "patternProperties:", "unsupported schema keyword 'patternProperties'"),
    ("crd-bad-v1beta1.yaml", "apiVersion:", "CRDs must be apiextensions.k8s.io/v1"),
    ("crd-bad-none.yaml", "apiVersion:", "no apiextensions.k8s.io/v1 CustomResourceDefinition"),
])
def test_bad_crd_file_is_a_config_error(name: str, needle: str, problem: str) -> None:
    with pytest.raises(SchemaConfigError) as err:
        Validator(SchemaOptions(crd_files=(FIX / name,)))
    line = pos_of(name, needle, nth=1 if needle == "spec:" else 0)[0]
    assert err.value.message.startswith(f"{FIX / name}:{line}: ")
    assert problem in err.value.message


def test_unreadable_crd_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(SchemaConfigError, match=r"broken\.yaml:\d+: cannot read CRD file"):
        Validator(SchemaOptions(crd_files=(bad,)))


# -- agreement with a reference JSON Schema implementation ----------------------------------------

def _mutations(body: dict) -> list[dict]:
    """Variants of a valid DGD that a JSON Schema validator must reject too."""
    out = []
    for change in (
        lambda b: b["spec"]["services"]["Frontend"].__setitem__("replica", 1),
        lambda b: b["spec"]["services"]["Frontend"].__setitem__("replicas", "1"),
        lambda b: b["spec"].__setitem__("backendFramework", "VLLM"),
        lambda b: b["spec"]["services"]["VllmDecodeWorker"]["multinode"].__setitem__("nodeCount", 1),
        lambda b: b["spec"]["services"]["VllmPrefillWorker"]["resources"]["limits"].__setitem__("gpu", 2),
        lambda b: b["spec"]["services"]["Frontend"]["extraPodSpec"]["mainContainer"].__setitem__("ports", [{"port": 80}]),
        lambda b: b["spec"]["services"]["Frontend"]["extraPodSpec"].__setitem__("nodeSelectors", {}),
        lambda b: b["spec"].__setitem__("services", []),  # (the PVC create rule is CEL: tests/test_cel.py)
    ):
        mutated = copy.deepcopy(body)
        change(mutated)
        out.append(mutated)
    return out


def test_verdicts_agree_with_jsonschema_on_the_bundled_schema(validator: Validator) -> None:
    doc = docs("dgd-v1alpha1-valid.yaml")[0]
    reference = jsonschema.Draft202012Validator(bundled_schema("nvidia.com/v1alpha1", "DynamoGraphDeployment"))
    assert reference.is_valid(doc.body) and validator.validate(doc) == []
    for body in _mutations(doc.body):
        ours = validator.validate(Document(doc.file, 0, body, {}))
        assert ours and not reference.is_valid(body), json.dumps(body)[:200]
    job = docs("core-valid.yaml")[4]
    assert job.kind == "Job"
    ref_job = jsonschema.Draft202012Validator(bundled_schema("batch/v1", "Job"))
    assert ref_job.is_valid(job.body) and validator.validate(job) == []
    broken = copy.deepcopy(job.body)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "80"}]
    assert not ref_job.is_valid(broken) and validator.validate(Document(job.file, 0, broken, {}))


def test_bundled_schemas_are_self_contained() -> None:
    text = json.dumps(bundled_schema("nvidia.com/v1beta1", "DynamoGraphDeployment"))
    refs = {r.split('"')[0] for r in text.split('"$ref": "')[1:]}
    assert refs and all(r.startswith("#/$defs/") for r in refs)


# -- the v1beta1 model ---------------------------------------------------------------------------

def test_v1beta1_fixture_normalises() -> None:
    dep = load_deployment(docs("dgd-v1beta1-valid.yaml")[0])
    assert dep is not None and dep.name == "llama-70b-disagg" and dep.framework == "vllm"
    assert [e.name for e in dep.env] == ["HF_HOME"]
    assert [(s.name, s.role, s.replicas, s.gpus, s.node_count) for s in dep.services] == [
        ("Frontend", ROLE_FRONTEND, 1, 0, 1),
        ("VllmPrefillWorker", ROLE_PREFILL, 2, 2, 1),
        ("VllmDecodeWorker", ROLE_DECODE, 1, 4, 2),
    ]
    front, prefill, decode = dep.services
    assert front.image == "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.0"
    assert front.argv == ["python3", "-m", "dynamo.frontend", "--http-port", "8000"]
    assert front.python_module == "dynamo.frontend"
    assert prefill.argv[:3] == ["python3", "-m", "dynamo.vllm"] and prefill.has_flag("--is-prefill-worker")
    assert prefill.flag("--tensor-parallel-size") == "2"
    assert prefill.args_path == ("spec", "components", 1, "podTemplate", "spec", "containers", 0, "args")
    assert [(m.name, m.mount_path, m.pvc) for m in prefill.mounts] == [
        ("model-cache", "/opt/models", "model-cache"), ("compile-cache", "", "compile-cache")]
    assert [e.name for e in prefill.env] == ["HF_HOME", "HF_TOKEN"]
    assert prefill.env[1].secret == "hf-token-secret" and prefill.shared_memory == "80Gi"
    assert decode.shared_memory is None and decode.total_gpus == 8  # sharedMemorySize "0" disables it
    assert decode.image.endswith("vllm-runtime:1.2.0")  # the main container, not the sidecar
    assert [p.name for p in dep.pvcs] == ["model-cache", "compile-cache"]
    assert dep.total_gpus == 12 and dep.is_disaggregated


def test_v1alpha1_fixture_normalises() -> None:
    dep = load_deployment(docs("dgd-v1alpha1-valid.yaml")[0])
    assert dep is not None
    assert [(s.name, s.role, s.gpus, s.node_count) for s in dep.services] == [
        ("Frontend", ROLE_FRONTEND, 0, 1), ("VllmPrefillWorker", ROLE_PREFILL, 2, 1),
        ("VllmDecodeWorker", ROLE_DECODE, 8, 2)]
    assert ROLE_WORKER not in {s.role for s in dep.services}


def test_type_meta_typos_need_a_close_match(validator: Validator) -> None:
    text = "schemaVersion: 1\nkind: Thresholds\n"
    found = validator.validate(loads(text, "t.yaml").documents[0])
    assert [f.message for f in found] == ["missing apiVersion"]
    typo = validator.validate(loads("apiVerison: v1\nkind: Namespace\nmetadata: {name: a}\n", "n.yaml").documents[0])
    assert [(f.rule, f.line, f.col) for f in typo] == [("RH206", 1, 1)] and 'did you mean "apiVersion"' in typo[0].message


def test_other_dynamo_kinds_are_not_validated_but_dgd_typos_are_errors(validator: Validator) -> None:
    dgdr = loads("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeploymentRequest\nmetadata: {name: r}\n", "r.yaml")
    assert [(f.rule, f.severity) for f in validator.validate(dgdr.documents[0])] == [("RH204", Severity.INFO)]
    typo = loads("apiVersion: nvidia.com/v1beta1\nkind: DynamoGraphDeploymnet\nmetadata: {name: r}\n", "t.yaml")
    found = validator.validate(typo.documents[0])
    assert [(f.rule, f.line, f.col) for f in found] == [("RH206", 2, 7)]
    assert 'did you mean "DynamoGraphDeployment"' in found[0].message


def test_kind_list_items_are_validated(validator: Validator) -> None:
    text = ("apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: a}\n"
            "    data: {n: 1}\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: b}\n    spek: {}\n")
    found = validator.validate(loads(text, "l.yaml").documents[0])
    assert [(f.rule, f.line, f.col) for f in found] == [("RH201", 7, 15), ("RH203", 11, 5)]


def test_references_never_leave_the_machine() -> None:
    import referencing.exceptions

    from recipe_harness.static.schema.compiler import JSON, Compiler
    from recipe_harness.static.schema.validator import registry_for

    compiler = Compiler(registry_for(DEFAULT_K8S_VERSION))
    with pytest.raises(referencing.exceptions.Unresolvable):
        compiler.compile({"$ref": "https://example.com/remote.json"}, compiler.registry.resolver(), JSON, ())
