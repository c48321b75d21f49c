"""What the kube-apiserver rejects on admission, with its own messages (HTTP 422 ``Invalid``).

Names and labels follow ``k8s.io/apimachinery/pkg/util/validation/validation.go``
(kubernetes/kubernetes, staging/src/k8s.io/apimachinery): ``IsDNS1123Label``,
``IsDNS1123Subdomain``, ``IsDNS1035Label``, ``IsQualifiedName`` and ``IsValidLabelValue``, with
``RegexError`` / ``MaxLenError`` wording. Which rule applies to which kind follows
``pkg/apis/core/validation/validation.go`` (Namespace: ``ValidateNamespaceName``, a DNS-1123
label; Service: ``ValidateServiceName``, a DNS-1035 label; everything else, custom resources
included: a DNS-1123 subdomain) and ``apimachinery/pkg/api/validation/objectmeta.go``
(``ValidateObjectMeta`` -> ``metadata.name``, ``metadata.labels``).

The whole error is ``apierrors.NewInvalid`` (``apimachinery/pkg/api/errors/errors.go``):
``<Kind>[.<group>] "<name>" is invalid: <field errors>``, one error as is and several as
``[e1, e2]``, with ``details.causes`` one per field error.

The DynamoGraphDeployment CRD is checked structurally (types, required fields, enums) as the
apiserver does against its ``openAPIV3Schema``, and with the CRD's CEL rules (``x-kubernetes-
validations``), both read from ai-dynamo/dynamo
``deploy/helm/charts/crds/templates/nvidia.com_dynamographdeployments.yaml`` and the Go markers
they are generated from (``deploy/operator/api/v1alpha1/common.go``). CEL errors are rendered
as current apiservers do (and as the operator's own admission tests expect,
``deploy/operator/internal/webhook/...admission_test.go``): ``spec.pvcs[0]: Invalid value: <rule
message>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kmock._internal.k8s import KubernetesError

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + ")*"
DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = "(" + QUALIFIED_NAME + ")?"
LABEL_VALUE_MAX = 63


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """``validation.RegexError``: examples joined with ``" or "`` after ``"', "``."""
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not re.fullmatch(DNS1123_LABEL, value):
        errs.append(_regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                                 "'-', and must start and end with an alphanumeric character",
                                 DNS1123_LABEL, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len(253))
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errs.append(_regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                                 "'-' or '.', and must start and end with an alphanumeric character",
                                 DNS1123_SUBDOMAIN, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not re.fullmatch(DNS1035_LABEL, value):
        errs.append(_regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                                 "with an alphabetic character, and end with an alphanumeric character",
                                 DNS1035_LABEL, "my-name", "abc-123"))
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(_max_len(LABEL_VALUE_MAX))
    if not re.fullmatch(LABEL_VALUE, value):
        errs.append(_regex_error("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                                 "'_' or '.', and must start and end with an alphanumeric character",
                                 LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def label_key(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    errs = [f"prefix part {e}" for e in dns1123_subdomain(prefix)] if "/" in key else []
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if name and not re.fullmatch(QUALIFIED_NAME, name):
        errs.append("name part " + _regex_error("must consist of alphanumeric characters, '-', '_' or '.', and must "
                                                "start and end with an alphanumeric character",
                                                QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return errs


def quote(value: Any) -> str:
    """Go's ``%q`` of a string (what ``field.Invalid`` prints), enough for names and labels."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FieldError:
    """``field.Error``: ``<field>: <type>[: <value>]: <detail>``."""

    field: str
    kind: str            # "Invalid value" | "Required value" | "Unsupported value" | "Too many"
    detail: str = ""
    value: Any = None
    show_value: bool = True

    @property
    def reason(self) -> str:
        return {"Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired",
                "Unsupported value": "FieldValueNotSupported", "Too many": "FieldValueTooMany"}[self.kind]

    def body(self) -> str:
        text = self.kind
        if self.show_value and self.value is not None:
            text += ": " + (quote(self.value) if isinstance(self.value, str) else str(self.value))
        return text + (f": {self.detail}" if self.detail else "")

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> KubernetesError:
    """``apierrors.NewInvalid``: HTTP 422, reason ``Invalid``, the apiserver's message and causes."""
    qualified = f"{kind}.{group}" if group else kind
    agg = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind,
                               "causes": [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errors]}
    if group:
        details["group"] = group
    return KubernetesError(422, "Invalid", f'{qualified} {quote(name)} is invalid: {agg}', details=details)


# -- object metadata ------------------------------------------------------------------------------

NAME_RULES = {"namespaces": dns1123_label, "services": dns1035_label}


def metadata_errors(plural: str, meta: dict[str, Any]) -> list[FieldError]:
    """``ValidateObjectMeta``: the name by the kind's rule, then every label key and value."""
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errs.append(FieldError("metadata.name", "Required value", "name or generateName is required"))
    else:
        rule = NAME_RULES.get(plural, dns1123_subdomain)
        errs += [FieldError("metadata.name", "Invalid value", m, name) for m in rule(name)]
    for key, value in sorted((meta.get("labels") or {}).items()):
        errs += [FieldError("metadata.labels", "Invalid value", m, key) for m in label_key(str(key))]
        if not isinstance(value, str):
            errs.append(FieldError(f"metadata.labels.{key}", "Invalid value", "must be a string", value))
            continue
        errs += [FieldError("metadata.labels", "Invalid value", m, value) for m in label_value(value)]
    return errs


def check_object(kind: str, group: str, plural: str, obj: dict[str, Any]) -> None:
    """Raise the apiserver's 422 for an object whose metadata it would refuse."""
    meta = obj.get("metadata") or {}
    errs = metadata_errors(plural, meta)
    if group == "nvidia.com" and plural == "dynamographdeployments":
        errs += dgd_errors(obj)
    if errs:
        raise invalid(kind, group, str(meta.get("name") or ""), errs)


# -- the DynamoGraphDeployment CRD ---------------------------------------------------------------

BACKENDS = ("sglang", "vllm", "trtllm")
V1BETA1_TYPES = ("frontend", "worker", "prefill", "decode", "planner", "epp")
_QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                       r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}


def _type_error(path: str, value: Any, want: str) -> FieldError | None:
    ok = isinstance(value, _JSON_TYPES[want]) and not (want == "integer" and isinstance(value, bool))
    if ok:
        return None
    got = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), "null")
    return FieldError(path, "Invalid value", f"{path} in body must be of type {want}: {quote(got)}", got)


def _quantity_error(path: str, value: Any) -> FieldError | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, str) and _QUANTITY.match(value):
        return None
    return FieldError(path, "Invalid value", f"{path} in body should match '{_QUANTITY.pattern}'", value)


def _quantity_positive(value: Any) -> bool:
    text = str(value).strip()
    number = re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)", text)
    return bool(number) and float(number.group(0)) > 0


def dgd_errors(obj: dict[str, Any]) -> list[FieldError]:
    """Structural schema and CEL rules of the DGD CRD, for v1alpha1 and v1beta1."""
    errs: list[FieldError] = []
    spec = obj.get("spec")
    if spec is None:
        return errs
    if (e := _type_error("spec", spec, "object")) is not None:
        return [e]
    version = str(obj.get("apiVersion", "")).rpartition("/")[2]
    if "backendFramework" in spec and spec["backendFramework"] not in BACKENDS:
        errs.append(FieldError("spec.backendFramework", "Unsupported value",
                               "supported values: " + ", ".join(quote(b) for b in BACKENDS), spec["backendFramework"]))
    errs += _pvc_errors(spec.get("pvcs"))
    if version == "v1beta1":
        errs += _components_errors(spec.get("components"))
    else:
        errs += _services_errors(spec.get("services"))
    return errs


def _pvc_errors(pvcs: Any) -> list[FieldError]:
    if pvcs is None:
        return []
    if (e := _type_error("spec.pvcs", pvcs, "array")) is not None:
        return [e]
    errs: list[FieldError] = []
    if len(pvcs) > 100:
        errs.append(FieldError("spec.pvcs", "Too many", "must have at most 100 items", len(pvcs)))
    for i, pvc in enumerate(pvcs):
        path = f"spec.pvcs[{i}]"
        if (e := _type_error(path, pvc, "object")) is not None:
            errs.append(e)
            continue
        if "name" not in pvc:
            errs.append(FieldError(f"{path}.name", "Required value"))
        for key, want in (("name", "string"), ("create", "boolean"), ("storageClass", "string"),
                          ("volumeAccessMode", "string")):
            if key in pvc and (e := _type_error(f"{path}.{key}", pvc[key], want)) is not None:
                errs.append(e)
        if "size" in pvc and (e := _quantity_error(f"{path}.size", pvc["size"])) is not None:
            errs.append(e)
        # CEL, deploy/operator/api/v1alpha1/common.go (type PVC):
        # !has(self.create) || self.create == false || (has(self.size) && has(self.storageClass) && has(self.volumeAccessMode))
        if pvc.get("create") is True and not all(k in pvc for k in ("size", "storageClass", "volumeAccessMode")):
            errs.append(FieldError(path, "Invalid value", "When create is true, size, storageClass, and "
                                                          "volumeAccessMode are required", show_value=False))
    return errs


def _shared_memory_errors(path: str, shm: Any) -> list[FieldError]:
    if shm is None:
        return []
    if (e := _type_error(path, shm, "object")) is not None:
        return [e]
    errs = []
    if "disabled" in shm and (e := _type_error(f"{path}.disabled", shm["disabled"], "boolean")) is not None:
        errs.append(e)
    if "size" in shm and (e := _quantity_error(f"{path}.size", shm["size"])) is not None:
        errs.append(e)
    # CEL, deploy/operator/api/v1alpha1/common.go (type SharedMemorySpec):
    # (has(self.disabled) && self.disabled) || (has(self.size) && quantity(self.size).isGreaterThan(quantity('0')))
    if not errs and shm.get("disabled") is not True and not ("size" in shm and _quantity_positive(shm["size"])):
        errs.append(FieldError(path, "Invalid value", "size is required when disabled is false", show_value=False))
    return errs


def _services_errors(services: Any) -> list[FieldError]:
    if services is None:
        return []
    if (e := _type_error("spec.services", services, "object")) is not None:
        return [e]
    errs: list[FieldError] = []
    for name, svc in services.items():
        path = f"spec.services.{name}"
        if (e := _type_error(path, svc, "object")) is not None:
            errs.append(e)
            continue
        for key, want in (("replicas", "integer"), ("componentType", "string"), ("envFromSecret", "string"),
                          ("envs", "array"), ("volumeMounts", "array"), ("extraPodSpec", "object"),
                          ("resources", "object"), ("multinode", "object")):
            if key in svc and (e := _type_error(f"{path}.{key}", svc[key], want)) is not None:
                errs.append(e)
        if isinstance(svc.get("replicas"), int) and svc["replicas"] < 0:
            errs.append(FieldError(f"{path}.replicas", "Invalid value",
                                   f"{path}.replicas in body should be greater than or equal to 0", svc["replicas"]))
        errs += _shared_memory_errors(f"spec.services[{name}].sharedMemory", svc.get("sharedMemory"))
    return errs


def _components_errors(components: Any) -> list[FieldError]:
    if components is None:
        return []
    if (e := _type_error("spec.components", components, "array")) is not None:
        return [e]
    errs: list[FieldError] = []
    if len(components) > 25:
        errs.append(FieldError("spec.components", "Too many", "must have at most 25 items", len(components)))
    for i, comp in enumerate(components):
        path = f"spec.components[{i}]"
        if (e := _type_error(path, comp, "object")) is not None:
            errs.append(e)
            continue
        if "name" not in comp:
            errs.append(FieldError(f"{path}.name", "Required value"))
        if "type" in comp and comp["type"] not in V1BETA1_TYPES:
            errs.append(FieldError(f"{path}.type", "Unsupported value",
                                   "supported values: " + ", ".join(quote(t) for t in V1BETA1_TYPES), comp["type"]))
        if "replicas" in comp and (e := _type_error(f"{path}.replicas", comp["replicas"], "integer")) is not None:
            errs.append(e)
    return errs
