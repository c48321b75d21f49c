"""A recipe's ``thresholds.yaml``: limits per hardware profile, and the gate that applies them.

Schema: ``recipe_harness/data/schemas/thresholds.schema.json``. Every limit names a metric
(``ttft_p99``, ``itl_p50``, ``e2e_p90``, ``output_tokens_per_s_per_gpu``, ``error_rate`` ...), has
exactly one of ``min``/``max`` and a unit; values are normalised to ms, tokens/s/gpu and ratios.
A profile may set ``minimum: {requests: N, duration: {value: S, unit: s}}``, the least every
point of the sweep must send and last (as MLPerf Inference sets a minimum query count and
duration per scenario).

The gate (:func:`gate`) judges :class:`~.stats.Estimate` values, not bare numbers: a limit is
``pass`` when the whole confidence interval is on its good side, ``fail`` only when the whole
interval lies past it, ``inconclusive`` when the interval contains it, and ``insufficient`` when
the value rests on fewer samples than its order needs (p99 from 4 requests). ``error_rate`` is a
count of what happened in the run: it passes when the observed rate meets the limit and fails
when its Wilson interval lies past it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from recipe_harness.exercise.perf.stats import CONFIDENCE, Estimate, metric_min_samples
from recipe_harness.findings import Finding
from recipe_harness.load.manifests import Document, load_file_shared

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


@dataclass(frozen=True)
class Minimum:
    """The least each point of the sweep must send (``requests``) and last (``duration_s``)."""

    requests: int | None = None
    duration_s: float | None = None
    line: int = 0

    def describe(self) -> str:
        parts = ([f"{self.requests} requests"] if self.requests else []) + \
            ([f"{self.duration_s:g} s"] if self.duration_s else [])
        return " and ".join(parts) or "none"

    def to_dict(self) -> dict:
        return {"requests": self.requests, "durationS": self.duration_s}


@dataclass
class HardwareProfile:
    id: str
    gpus: int
    limits: list[Limit]
    description: str = ""
    slo_ms: dict[str, float] = field(default_factory=dict)    # ttft/itl/tpot/e2e -> ms
    line: int = 0
    minimum: Minimum = field(default_factory=Minimum)

    def samples_needed(self) -> int:
        """Requests the gated point needs: its minimum, and enough for every limited percentile."""
        need = [metric_min_samples(lim.metric) for lim in self.limits if lim.metric != "error_rate"]
        return max([*need, self.minimum.requests or 0, 1])

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


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


_VALID_BODIES: set[str] = set()   # repr() of document bodies the schema accepts (validity depends on the body alone)
_VALID_MAX = 4096


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
    body_key = repr(doc.body)
    if body_key in _VALID_BODIES:
        return []
    validator = _validator()
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
    if not out and len(_VALID_BODIES) < _VALID_MAX:
        _VALID_BODIES.add(body_key)
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
        mini = body.get("minimum") or {}
        duration = mini.get("duration")
        minimum = Minimum(int(mini["requests"]) if "requests" in mini else None,
                          float(duration["value"]) * UNIT_SCALE[duration["unit"]] / 1000.0 if duration else None,
                          doc.pos(("profiles", pid, "minimum"))[0] if mini else 0)
        profiles[pid] = HardwareProfile(pid, int(body["gpus"]), limits, body.get("description", ""), slo,
                                        doc.pos(("profiles", pid))[0], minimum)
    return Thresholds(doc.file, profiles)


def load_thresholds(path: Path) -> Thresholds:
    """Load and validate ``thresholds.yaml`` (raises :class:`ThresholdsError` with findings). However many
    checks ask, the file is parsed once per content (:func:`~recipe_harness.load.manifests.load_file_shared`)
    and a body the schema accepts is validated once."""
    result = load_file_shared(path)
    if result.findings:
        raise ThresholdsError(list(result.findings))
    if len(result.documents) != 1:
        raise ThresholdsError([Finding(str(path), 1, 1, RULE_THRESHOLDS_SCHEMA,
                                       f"thresholds: expected one YAML document, found {len(result.documents)}")])
    return from_document(result.documents[0])


# --------------------------------------------------------------------------- gate


PASS, FAIL, INCONCLUSIVE, INSUFFICIENT = "pass", "fail", "inconclusive", "insufficient samples"
ADVICE = "run more requests (--perf-scale, or the recipe's --request-count) or more trials (--perf-trials)"


@dataclass
class Verdict:
    limit: Limit
    estimate: Estimate | None
    status: str                  # pass | fail | inconclusive | insufficient samples
    why: str = ""

    @property
    def value(self) -> float | None:
        return None if self.estimate is None else self.estimate.value

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def describe(self) -> str:
        if self.value is None:
            return f"{self.limit.metric}: not measured (limit {self.limit.describe()}) FAILED"
        op = ">=" if self.limit.bound == "min" else "<="
        status = {PASS: "ok", FAIL: "FAILED"}.get(self.status, self.status.upper())
        est = self.estimate
        assert est is not None and est.value is not None
        interval = f"{CONFIDENCE:.0%} CI {est.low:.4g}-{est.high:.4g}, " if est.has_interval else ""
        text = (f"{self.limit.metric} = {est.value:.4g} {self.limit.unit} (limit {op} {self.limit.value:g}) {status} "
                f"[{interval}n={est.samples}]")
        return text + (f": {self.why}" if self.why else "")

    def to_dict(self) -> dict:
        est = self.estimate
        return {"metric": self.limit.metric, "bound": self.limit.bound, "limit": self.limit.value,
                "unit": self.limit.unit, "value": None if self.value is None else round(self.value, 6),
                "passed": self.passed, "status": self.status,
                "low": None if est is None or est.low is None else round(est.low, 6),
                "high": None if est is None or est.high is None else round(est.high, 6),
                "samples": 0 if est is None else est.samples,
                "minSamples": 0 if est is None else est.min_samples,
                "why": self.why}


def judge(limit: Limit, est: Estimate | float | None) -> Verdict:
    """The verdict of one limit on one estimate (a bare number has no sample count: never a pass
    for a percentile, judged on its value otherwise)."""
    if est is not None and not isinstance(est, Estimate):
        run_wide = limit.metric == "error_rate" or quantity_is_run_wide(limit.metric)
        est = Estimate(float(est), None, None, 0, 0 if run_wide else metric_min_samples(limit.metric), 1, "point")
    if est is None or est.value is None:
        return Verdict(limit, None, FAIL, "not measured")
    stat = limit.metric.rpartition("_")[2]
    if limit.metric != "error_rate" and not est.sufficient:
        what = stat if stat.startswith("p") else limit.metric
        return Verdict(limit, est, INSUFFICIENT,
                       f"{est.samples} samples, {what} needs at least {est.min_samples}; {ADVICE}")
    good = limit.holds
    if limit.metric == "error_rate":
        if good(est.value):
            return Verdict(limit, est, PASS)
        past = est.low if limit.bound == "max" else est.high
        if past is None or not good(past):
            return Verdict(limit, est, FAIL)
        return Verdict(limit, est, INCONCLUSIVE, f"the interval reaches the limit; {ADVICE}")
    if est.interval is None:
        if est.method == "point" and quantity_is_run_wide(limit.metric):
            return Verdict(limit, est, PASS if good(est.value) else FAIL)
        return Verdict(limit, est, INCONCLUSIVE, "no per-request records, so no interval")
    low, high = est.interval
    near, far = (high, low) if limit.bound == "max" else (low, high)
    if good(near):                        # the whole interval is on the good side
        return Verdict(limit, est, PASS)
    if not good(far):                     # the whole interval lies past the limit
        return Verdict(limit, est, FAIL)
    return Verdict(limit, est, INCONCLUSIVE, f"the {CONFIDENCE:.0%} interval contains the limit; "
                   f"{ADVICE}")


def quantity_is_run_wide(metric: str) -> bool:
    """Throughputs are one number per run: without records they are judged on that number."""
    return metric.endswith("_tokens_per_s_per_gpu")


def gate(profile: HardwareProfile, value_of: Callable[[str], Estimate | float | None]) -> list[Verdict]:
    """One verdict per limit; a metric that was not measured fails its limit."""
    return [judge(limit, value_of(limit.metric)) for limit in profile.limits]


def overall(verdicts: list[Verdict]) -> str:
    """fail if any limit failed, else inconclusive if any is not established, else pass."""
    if any(v.status == FAIL for v in verdicts):
        return FAIL
    if any(v.status in (INCONCLUSIVE, INSUFFICIENT) for v in verdicts):
        return INCONCLUSIVE
    return PASS
