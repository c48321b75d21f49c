"""Predicted baselines: a recipe's predicted sweep before and after a change, and what in its plan changed.

A baseline is the prediction of one recipe on one hardware profile, stored as JSON at
``<dir>/<recipe-id>/<profile>.json`` (:func:`store`): per concurrency of the sweep the predicted
TTFT, ITL (= TPOT) and output tokens/s/GPU, and the plan facts the prediction was made from (model,
GPU system, engine and its version, aggregated or disaggregated, ISL/OSL, GPUs, and per worker role
TP/PP/attention-DP/MoE-TP/EP and engines). The "before" of a comparison is either such a file
(``--baseline-dir``) or the recipe as it was at a git REF (``--baseline-ref``), predicted in the same
batch as the "after" (:class:`RefTree` extracts the recipes root at REF with ``git archive`` into a
temporary directory; its estimates are answered from the model's cache like any other).

:func:`compare` gives, per metric and per concurrency both sweeps have, the before/after values and
the ratio after/before, and the plan changes (``decode TP 4 -> 2``). A metric that is worse by more
than the model tolerance (a latency ``ratio > 1 + tolerance``, a throughput ``1 / ratio > 1 + tolerance``)
is a *regression*: reported as a warning, never a failure (the limits gate stays the gate).
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from recipe_harness.exercise.predict.outcome import PredictOutcome

SCHEMA = 1
GIT_TIMEOUT_S = 60.0
"""Time limit of each git command (an archive of a recipes tree takes well under a second)."""

# (key in a sweep row, label, unit, True when higher is better)
METRICS = (("ttftMs", "TTFT", "ms", False), ("itlMs", "ITL", "ms", False),
           ("outputTokensPerSPerGpu", "tokens/s/GPU", "tokens/s/gpu", True))
# limit metric quantity -> sweep row key (for the per-limit deltas of the report's perf table)
_LIMIT_KEYS = {"ttft": "ttftMs", "itl": "itlMs", "tpot": "itlMs", "output": "outputTokensPerSPerGpu"}
_LABELS = {key: label for key, label, *_ in METRICS}
_WORKER_FIELDS = (("engines", "workers"), ("tp", "TP"), ("pp", "PP"), ("attentionDp", "attention-DP"),
                  ("moeTp", "MoE TP"), ("moeEp", "EP"))
_PLAN_FIELDS = (("model", "model"), ("modelledAs", "modelled as"), ("system", "system"), ("backend", "backend"),
                ("backendVersion", "backend version"), ("dynamoVersion", "Dynamo release"), ("mode", "mode"),
                ("isl", "ISL"), ("osl", "OSL"), ("gpus", "GPUs"), ("concurrencies", "concurrency sweep"))


class BaselineError(Exception):
    """A baseline that cannot be read or written, or a REF that cannot be checked out (the message says how to fix)."""


# --------------------------------------------------------------------------- snapshot and files


def snapshot(outcome: PredictOutcome) -> dict:
    """The stored form of one prediction: plan facts and the predicted sweep."""
    p = outcome.plan
    m = outcome.metrics.get("prediction", {})
    workers = [{"service": w.service, "mode": w.mode, "engines": w.engines, "tp": w.tp, "pp": w.pp,
                "attentionDp": w.attention_dp, "moeTp": w.moe_tp, "moeEp": w.moe_ep} for w in p.workers]
    sweep = []
    for row in m.get("sweep", []):
        point = {"concurrency": row["concurrency"]}
        if row.get("ok"):
            point.update({k: row.get(k) for k, *_ in METRICS})
        else:
            point["error"] = row.get("errorKind") or "error"
        sweep.append(point)
    return {"schema": SCHEMA, "recipe": p.recipe_id, "hardwareProfile": p.hardware.id,
            "modelVersion": m.get("modelVersion"),
            "plan": {"model": p.model, "modelledAs": p.modelled_as, "system": p.system.name, "backend": p.backend,
                     "backendVersion": m.get("backendVersion"), "dynamoVersion": p.dynamo_version, "mode": p.mode,
                     "isl": p.isl, "osl": p.osl, "gpus": p.gpus,
                     "concurrencies": [pt.concurrency for pt in p.points], "workers": workers},
            "sweep": sweep}


def path_of(directory: Path, recipe_id: str, profile: str) -> Path:
    return Path(directory) / recipe_id / f"{profile}.json"


def store(directory: Path, outcome: PredictOutcome) -> Path:
    f = path_of(directory, outcome.plan.recipe_id, outcome.plan.hardware.id)
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(snapshot(outcome), indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise BaselineError(f"cannot write the predicted baseline {f}: {exc.strerror}; "
                            "pass a writable --baseline-dir") from None
    return f


def load(directory: Path, recipe_id: str, profile: str) -> dict | None:
    """The stored baseline, or ``None`` when there is none."""
    f = path_of(directory, recipe_id, profile)
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{f}: not a readable predicted baseline ({exc}); delete it or store it again with "
                            "--update-baseline") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("sweep"), list):
        raise BaselineError(f"{f}: not a predicted baseline of schema {SCHEMA}; store it again with --update-baseline")
    return data


# --------------------------------------------------------------------------- comparison


@dataclass
class PointChange:
    metric: str          # TTFT | ITL | tokens/s/GPU
    concurrency: int
    before: float
    after: float
    unit: str
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")

    def worse_by(self) -> float:
        """How many times worse after than before (1.0: the same; below 1: better)."""
        if self.higher_is_better:
            return self.before / self.after if self.after else float("inf")
        return self.ratio

    def describe(self, profile: str) -> str:
        nd = 2 if self.unit == "ms" and max(self.before, self.after) < 100 else 1
        unit = "ms" if self.unit == "ms" else "tokens/s/GPU"
        return (f"predicted {self.metric} on {profile} at c{self.concurrency} moves from {self.before:.{nd}f} {unit} "
                f"to {self.after:.{nd}f} {unit} (x{self.ratio:.2f})")


@dataclass
class Comparison:
    profile: str
    source: str                          # where the "before" came from
    points: list[PointChange] = field(default_factory=list)
    plan_changes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)   # points only one side has a value for
    tolerance: float = 0.2

    @property
    def regressions(self) -> list[PointChange]:
        return [c for c in self.points if c.worse_by() > 1 + self.tolerance]

    def headlines(self) -> list[PointChange]:
        """One regression per metric: at the highest concurrency where it regressed (the operating point first)."""
        out: dict[str, PointChange] = {}
        for c in self.regressions:
            if c.metric not in out or c.concurrency > out[c.metric].concurrency:
                out[c.metric] = c
        return list(out.values())

    def warnings(self) -> list[str]:
        plan = f"; plan: {', '.join(self.plan_changes)}" if self.plan_changes else ""
        return [f"regression against the predicted baseline ({self.source}): {c.describe(self.profile)}, worse by "
                f"more than the model tolerance {self.tolerance:.0%}{plan}" for c in self.headlines()]

    def lines(self) -> list[str]:
        """Human lines: the plan change, then one line per concurrency with every metric before -> after."""
        out = [f"before ({self.source}) -> after: plan: {', '.join(self.plan_changes) or 'unchanged'}"]
        by_c: dict[int, list[PointChange]] = {}
        for c in self.points:
            by_c.setdefault(c.concurrency, []).append(c)
        for conc, changes in by_c.items():
            cells = []
            for c in changes:
                nd = 2 if c.metric == "ITL" else 1
                unit = " ms" if c.unit == "ms" else ""
                cells.append(f"{c.metric} {c.before:.{nd}f} -> {c.after:.{nd}f}{unit} (x{c.ratio:.2f})")
            out.append(f"c{conc}: " + ", ".join(cells))
        out += self.unmatched
        return out

    def to_dict(self, limits: list[dict] | None = None, operating_point: int | None = None) -> dict:
        """JSON form; ``comparisons`` are the operating point's values per limit metric (the perf table's shape)."""
        comparisons = []
        op = [c for c in self.points if c.concurrency == operating_point]
        for lim in limits or []:
            label = _LABELS.get(_LIMIT_KEYS.get(str(lim.get("metric", "")).split("_")[0], ""))
            hit = next((c for c in op if c.metric == label), None)
            if hit is not None:
                comparisons.append({"metric": lim["metric"], "baseline": round(hit.before, 4),
                                    "current": round(hit.after, 4), "ratio": round(hit.ratio, 4),
                                    "regressed": hit in self.regressions})
        return {"status": "regressed" if self.regressions else "compared", "source": self.source,
                "tolerance": self.tolerance, "planChanges": self.plan_changes,
                "points": [{"metric": c.metric, "concurrency": c.concurrency, "before": round(c.before, 4),
                            "after": round(c.after, 4), "ratio": round(c.ratio, 4), "unit": c.unit,
                            "regressed": c in self.regressions} for c in self.points],
                "unmatched": self.unmatched, "comparisons": comparisons,
                "regressions": [c.describe(self.profile) for c in self.headlines()]}


def plan_changes(before: dict, after: dict) -> list[str]:
    """What differs between two plans, e.g. ``decode TP 4 -> 2``, ``ISL 1024 -> 2048``."""
    out = []
    old = {w["mode"]: w for w in before.get("workers", [])}
    new = {w["mode"]: w for w in after.get("workers", [])}
    for mode in [*old, *(m for m in new if m not in old)]:
        if mode not in new:
            out.append(f"{mode} worker {old[mode].get('service')} removed")
        elif mode not in old:
            out.append(f"{mode} worker {new[mode].get('service')} added")
        else:
            dense = old[mode].get("moeEp", 1) == 1 and new[mode].get("moeEp", 1) == 1   # MoE TP is then TP again
            out += [f"{mode} {label} {old[mode].get(k)} -> {new[mode].get(k)}" for k, label in _WORKER_FIELDS
                    if old[mode].get(k) != new[mode].get(k) and not (dense and k == "moeTp")]
    for key, label in _PLAN_FIELDS:
        a, b = before.get(key), after.get(key)
        if a != b:
            out.append(f"{label} {_show(a)} -> {_show(b)}")
    return out


def _show(v: object) -> str:
    if isinstance(v, list):
        return "[" + " ".join(str(x) for x in v) + "]"
    return "none" if v is None else str(v)


def compare(before: dict, after: dict, *, source: str, tolerance: float) -> Comparison:
    """Before/after per metric and concurrency, and the plan changes, of two snapshots (:func:`snapshot`)."""
    out = Comparison(str(after.get("hardwareProfile", "")), source, tolerance=tolerance,
                     plan_changes=plan_changes(before.get("plan", {}), after.get("plan", {})))
    old = {row.get("concurrency"): row for row in before.get("sweep", [])}
    for row in after.get("sweep", []):
        c = row.get("concurrency")
        prev = old.get(c)
        if prev is None:
            continue
        for key, label, unit, higher in METRICS:
            a, b = prev.get(key), row.get(key)
            if isinstance(a, int | float) and isinstance(b, int | float):
                out.points.append(PointChange(label, c, float(a), float(b), unit, higher))
        if prev.get("error") != row.get("error"):
            out.unmatched.append(f"c{c}: {prev.get('error') or 'predicted'} -> {row.get('error') or 'predicted'}")
    return out


def attach(outcome: PredictOutcome, comparison: Comparison) -> None:
    """Put a comparison on a prediction: its metrics (``prediction.baseline``), notes and regression warnings."""
    pred = outcome.metrics.setdefault("prediction", {})
    op = outcome.plan.operating_point.concurrency if outcome.plan.points else None
    pred["baseline"] = comparison.to_dict(pred.get("limits"), op)
    outcome.notes += comparison.lines()
    warnings = comparison.warnings()
    outcome.warnings += warnings
    if warnings and pred.get("verdict") == "pass":
        pred["verdict"] = "warn"
        if "table" in outcome.metrics:
            outcome.metrics["table"]["verdict"] = "warn"
    if op is not None and "table" in outcome.metrics:
        at_op = {c.metric: c for c in comparison.points if c.concurrency == op}
        if "ITL" in at_op:
            outcome.metrics["table"]["ITL before ms"] = f"{at_op['ITL'].before:.2f}"
            outcome.metrics["table"]["ITL x"] = f"{at_op['ITL'].ratio:.2f}"
        if comparison.plan_changes:
            outcome.metrics["table"]["plan change"] = ", ".join(comparison.plan_changes)


# --------------------------------------------------------------------------- the recipes as they were at a REF


def _git(cwd: Path, *argv: str, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(cwd), *argv], capture_output=True, text=not binary,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BaselineError(f"git {' '.join(argv)} in {cwd}: {exc}") from None


class RefTree:
    """A recipes root as it was at a git REF, extracted (``git archive``) into a temporary directory.

    Use as a context manager; the directory is removed on exit. :meth:`root_for` maps a recipes root
    of the work tree to the same folder at REF (one extraction per root)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._roots: dict[Path, Path | None] = {}
        self.commits: dict[Path, str] = {}

    def __enter__(self) -> RefTree:
        self._tmp = tempfile.TemporaryDirectory(prefix="rh-predict-ref-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def root_for(self, root: Path) -> Path | None:
        """The folder ``root`` at REF (``None``: it did not exist there)."""
        root = Path(root).resolve()
        if root in self._roots:
            return self._roots[root]
        assert self._tmp is not None, "RefTree used outside its with block"
        top = _git(root, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise BaselineError(f"--baseline-ref {self.ref}: {root} is not in a git work tree ({top.stderr.strip()})")
        toplevel = Path(top.stdout.strip()).resolve()
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}")
        if commit.returncode != 0:
            raise BaselineError(f"--baseline-ref {self.ref}: no such commit in {toplevel} (fetch it, e.g. "
                                f"`git fetch origin {self.ref}`, or name a branch, tag or commit)")
        sha = commit.stdout.strip()
        rel = root.relative_to(toplevel).as_posix()
        listed = _git(toplevel, "ls-tree", "-d", "--name-only", sha, "--", rel or ".")
        if rel and not listed.stdout.strip():
            self._roots[root] = None
            return None
        archive = _git(toplevel, "archive", "--format=tar", sha, "--", rel or ".", binary=True)
        if archive.returncode != 0:
            raise BaselineError(f"--baseline-ref {self.ref}: git archive failed: "
                                f"{archive.stderr.decode(errors='replace').strip()}")
        dest = Path(self._tmp.name) / sha[:12]
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in Path(member.name).parts or member.issym() or member.islnk():
                    raise BaselineError(f"--baseline-ref {self.ref}: unsafe path {member.name!r} in the archive")
            tar.extractall(dest)  # noqa: S202 -- members checked above
        self.commits[root] = sha
        self._roots[root] = dest / rel if rel else dest
        return self._roots[root]
