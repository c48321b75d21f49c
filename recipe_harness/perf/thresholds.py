"""A recipe's ``thresholds.yaml``: limits per hardware profile, and the gate that applies them.

Schema: ``recipe_harness/data/schemas/thresholds.schema.json``. Every limit names a metric
(``ttft_p99``, ``itl_p50``, ``e2e_p90``, ``output_tokens_per_s_per_gpu``, ``error_rate`` ...), has
exactly one of ``min``/``max`` and a unit; values are normalised to ms, tokens/s/gpu and ratios.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..findings import Finding
from ..manifests import Document, load_file

RULE_THRESHOLDS_SCHEMA = "RH401"

UNIT_SCALE = {"ms": 1.0, "s": 1000.0, "tokens/s/gpu": 1.0, "ratio": 1.0}
CANONICAL_UNIT = {"ms": "ms", "s": "ms", "tokens/s/gpu": "tokens/s/gpu", "ratio": "ratio"}
SLO_TAGS = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "tpot": "inter_token_latency",
            "e2e": "request_latency"}


class ThresholdsError(Exception):
    """thresholds.yaml cannot be used; ``findings`` say where and why."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f.format() for f in findings))
        self.findings = findings


@dataclass(frozen=True)
class Limit:
    metric: str           # e.g. ttft_p99
    bound: str            # "min" | "max"
    value: float          # in the canonical unit (ms, tokens/s/gpu, ratio)
    unit: str             # the canonical unit
    written: str          # as written, e.g. "max 2.5 s"
    line: int = 0

    def holds(self, measured: float) -> bool:
        return measured >= self.value if self.bound == "min" else measured <= self.value

    def describe(self) -> str:
        return f"{self.metric} {'>=' if self.bound == 'min' else '<='} {self.value:g} {self.unit}"


@dataclass
class HardwareProfile:
    id: str
    gpus: int
    limits: list[Limit]
    description: str = ""
    slo_ms: dict[str, float] = field(default_factory=dict)    # ttft/itl/tpot/e2e -> ms
    line: int = 0

    def goodput_slo(self) -> dict[str, float]:
        """aiperf ``--goodput`` tags (ms) for this profile's SLO; the tighter one when ITL and TPOT agree on a tag."""
        out: dict[str, float] = {}
        for key, ms in self.slo_ms.items():
            tag = SLO_TAGS[key]
            out[tag] = min(ms, out.get(tag, ms))
        return out


@dataclass
class Thresholds:
    file: str
    profiles: dict[str, HardwareProfile]


@lru_cache(maxsize=1)
def schema() -> dict:
    text = resources.files("recipe_harness.data").joinpath("schemas/thresholds.schema.json").read_text("utf-8")
    return json.loads(text)


def _message(err) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "oneOf" and "min" in json.dumps(err.schema):
        return f"{where}: a limit needs exactly one of min or max"
    if err.validator == "additionalProperties" and err.absolute_path and err.absolute_path[-1] == "limits":
        known = "<ttft|itl|tpot|e2e>_<p50|p90|p95|p99|avg|min|max>, <output|input|total>_tokens_per_s_per_gpu, error_rate"
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        extra = [k for k in extra if not any(re.match(p, k) for p in err.schema.get("patternProperties", {}))]
        return f"{where}: unknown metric {', '.join(map(repr, extra))} (known: {known})"
    if err.validator in ("enum", "const") and err.absolute_path and err.absolute_path[-1] == "unit":
        allowed = err.validator_value if err.validator == "enum" else [err.validator_value]
        return f"{where}: unit {err.instance!r} is not allowed here (use {', '.join(map(str, allowed))})"
    return f"{where}: {err.message}"


def validate_document(doc: Document) -> list[Finding]:
    """Schema findings (RH401) for one loaded thresholds document, at their positions."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    out: list[Finding] = []
    seen: set[tuple] = set()
    for err in sorted(validator.iter_errors(doc.body), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        path = tuple(err.absolute_path)
        key = (path, err.validator)
        if key in seen:
            continue
        seen.add(key)
        line, col = doc.pos(path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = [k for k in err.instance if k not in err.schema.get("properties", {})
                     and not any(re.match(p, str(k)) for p in err.schema.get("patternProperties", {}))]
            if extra:
                line, col = doc.key_pos(path + (extra[0],))
        out.append(Finding(doc.file, line, col, RULE_THRESHOLDS_SCHEMA, f"thresholds: {_message(err)}",
                           hint="see schemas/thresholds.schema.json; e.g. `ttft_p99: {max: 2500, unit: ms}`"))
    return sorted(out, key=lambda f: (f.line, f.col))


def from_document(doc: Document) -> Thresholds:
    """A schema-valid thresholds document as :class:`Thresholds` (raises :class:`ThresholdsError`)."""
    findings = validate_document(doc)
    if findings:
        raise ThresholdsError(findings)
    profiles: dict[str, HardwareProfile] = {}
    for pid, body in doc.body["profiles"].items():
        limits = []
        for metric, spec in body["limits"].items():
            bound = "min" if "min" in spec else "max"
            unit = spec["unit"]
            limits.append(Limit(metric, bound, float(spec[bound]) * UNIT_SCALE[unit], CANONICAL_UNIT[unit],
                                f"{bound} {spec[bound]} {unit}", doc.pos(("profiles", pid, "limits", metric))[0]))
        slo = {k: float(v["value"]) * UNIT_SCALE[v["unit"]] for k, v in (body.get("slo") or {}).items()}
        profiles[pid] = HardwareProfile(pid, int(body["gpus"]), limits, body.get("description", ""), slo,
                                        doc.pos(("profiles", pid))[0])
    return Thresholds(doc.file, profiles)


def load_thresholds(path: Path) -> Thresholds:
    """Load and validate ``thresholds.yaml`` (raises :class:`ThresholdsError` with findings)."""
    result = load_file(path)
    if result.findings:
        raise ThresholdsError(list(result.findings))
    if len(result.documents) != 1:
        raise ThresholdsError([Finding(str(path), 1, 1, RULE_THRESHOLDS_SCHEMA,
                                       f"thresholds: expected one YAML document, found {len(result.documents)}")])
    return from_document(result.documents[0])


# --------------------------------------------------------------------------- gate


@dataclass
class Verdict:
    limit: Limit
    value: float | None
    passed: bool

    def describe(self) -> str:
        if self.value is None:
            return f"{self.limit.metric}: not measured (limit {self.limit.describe()})"
        op = ">=" if self.limit.bound == "min" else "<="
        status = "ok" if self.passed else "FAILED"
        return f"{self.limit.metric} = {self.value:.4g} {self.limit.unit} (limit {op} {self.limit.value:g}) {status}"

    def to_dict(self) -> dict:
        return {"metric": self.limit.metric, "bound": self.limit.bound, "limit": self.limit.value,
                "unit": self.limit.unit, "value": None if self.value is None else round(self.value, 6),
                "passed": self.passed}


def gate(profile: HardwareProfile, value_of: Callable[[str], float | None]) -> list[Verdict]:
    """One verdict per limit; a metric that was not measured fails its limit."""
    out = []
    for limit in profile.limits:
        value = value_of(limit.metric)
        out.append(Verdict(limit, value, value is not None and limit.holds(value)))
    return out
