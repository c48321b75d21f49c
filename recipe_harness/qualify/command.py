"""``recipe-harness qualify``: run preflight (Kubernetes, hardware required), static, smoke and perf
(repeated trials, inconclusive limits fail), and predict when the profile names a modelled GPU system
(the model's estimate is recorded, never judged), for one hardware profile through the same pytest suites as
``recipe-harness test``, then write the bundle (:mod:`.bundle`). ``recipe-harness qualify verify DIR``
checks a bundle (:mod:`.verify`).

Exit status: 0 every recipe qualified (verify: the bundle holds together), 1 some recipe not qualified,
or the run was interrupted or judged no recipe (the bundle is written, and verify rejects it; verify: a
problem, each named), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from recipe_harness.testrun import pytest_args

# the bundle's modules (numpy ...) load in cmd_qualify: building every command's parser must not import them

DEFAULT_TRIALS = 3
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class QualifyUsageError(Exception):
    pass


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("--hardware-profile", metavar="PROFILE",
                   help="the thresholds.yaml profile to qualify (cpu-mocker on the local target; h200-sxm ...)")
    q.add_argument("--target", choices=("local", "kubernetes"), default="local")
    q.add_argument("--recipes-root", metavar="DIR", help="folder holding <model>/ recipe folders (default: ./recipes)")
    q.add_argument("--recipe", metavar="GLOB", action="append", default=[], help="only recipes whose id matches GLOB")
    q.add_argument("--perf-trials", metavar="N", type=int, default=DEFAULT_TRIALS,
                   help=f"repeat each sweep N times (default {DEFAULT_TRIALS})")
    q.add_argument("--out", metavar="DIR", default="qualification", help="bundle folder, must not exist or be empty "
                                                                         "(default: ./qualification)")
    q.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (Kubernetes target)")
    q.add_argument("--context", metavar="NAME", help="kubeconfig context (Kubernetes target)")
    q.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help="'verify DIR' to verify a bundle; else -- then arguments for pytest (--baseline-dir DIR, "
                        "--twin mocker ...)")


def _python_beside(executable: str) -> Path:
    return Path(executable).parent / "python"


def run(args: argparse.Namespace) -> int:
    rest = [a for a in (args.pytest_args or [])]
    if rest[:1] == ["verify"]:
        v = argparse.ArgumentParser(prog="recipe-harness qualify verify",
                                    description="Check a qualification bundle: checksums, schema, and every verdict "
                                                "re-derived from its recorded metrics and thresholds. Exit status: "
                                                "0 verified, 1 a problem (each named), 2 usage error.")
        v.add_argument("dir", metavar="DIR", help="the --out folder of `recipe-harness qualify`")
        return cmd_verify(Path(v.parse_args(rest[1:]).dir))
    return cmd_qualify(args, [a for a in rest if a != "--"])


def cmd_verify(out: Path) -> int:
    # lazy, as in cmd_qualify: verify reads the bundle module (numpy)
    from recipe_harness.qualify.verify import verify

    if not out.is_dir():
        raise QualifyUsageError(f"{out}: no such folder; pass the --out folder of `recipe-harness qualify`")
    problems = verify(out)
    for p in problems:
        print(f"{out}: {p}")
    if problems:
        print(f"{out}: NOT verified: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_FAIL
    print(f"{out}: verified (checksums, schema, verdicts re-derived from the recorded metrics and thresholds)")
    return EXIT_OK


def _modelled(profile: str) -> bool:
    from recipe_harness.exercise.predict.systems import UnmappedProfile, system_of

    try:
        system_of(profile)
    except UnmappedProfile:
        return False
    return True


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def cmd_qualify(args: argparse.Namespace, extra: list[str]) -> int:
    # lazy: the bundle imports numpy (perf.stats), the facts the kubernetes client: ~0.5 s that every other
    # command would pay at start, since the console script's parser reads add_arguments from this module
    import pytest

    from recipe_harness.deploy.kubernetes.client import Kube
    from recipe_harness.qualify.bundle import MD_NAME, NOT_QUALIFIED, REPORT_DIR, BundleError, Run, build, incomplete
    from recipe_harness.qualify.facts import git_provenance, hardware_match, kubernetes_facts, local_facts

    if not args.hardware_profile:
        raise QualifyUsageError("--hardware-profile PROFILE is required (cpu-mocker on the local target)")
    if args.perf_trials < 1:
        raise QualifyUsageError("--perf-trials must be at least 1")
    root = Path(args.recipes_root or "recipes")
    if not root.is_dir():
        raise QualifyUsageError(f"recipes root {root} does not exist; pass --recipes-root DIR")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise QualifyUsageError(f"{out} exists and is not empty; a bundle is written into a new folder (--out DIR)")
    report_dir = out / REPORT_DIR
    suites = (["preflight"] if args.target == "kubernetes" else []) + ["static", "smoke", "perf"]
    predict_args: list[str] = []
    if _modelled(args.hardware_profile):  # the model's estimate beside the measurement, for the profile only
        suites.append("predict")
        predict_args = ["--predict-profile", args.hardware_profile]
    kube_args = [a for k in ("kubeconfig", "context") if getattr(args, k) for a in (f"--{k}", getattr(args, k))]
    ns = argparse.Namespace(suite=suites, pytest_args=extra, report_dir=str(report_dir),
                            recipes_root=args.recipes_root, recipe=args.recipe, changed_since=None,
                            target=args.target, strict=False)
    argv = pytest_args(ns) + ["--hardware-profile", args.hardware_profile, "--perf-trials", str(args.perf_trials),
                              "--perf-inconclusive", "fail"] + kube_args + predict_args
    if args.target == "kubernetes":
        argv.append("--require-hardware")
    out.mkdir(parents=True, exist_ok=True)  # empty or new: whatever is in it after the run is the run's
    code = int(pytest.main(argv))
    if code in (3, 4):
        _empty(out)  # so the same command, corrected, can be run again with the same --out
        print(f"recipe-harness: qualify: pytest stopped with exit status {code} (usage or internal error); "
              f"no bundle written, {out} left empty", file=sys.stderr)
        return EXIT_USAGE
    summary_path = report_dir / "summary.json"
    if not summary_path.is_file():
        print(f"recipe-harness: qualify: {summary_path} was not written; no bundle", file=sys.stderr)
        return EXIT_FAIL
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    aiperf = os.environ.get("RECIPE_HARNESS_AIPERF") or ".venv-aiperf/bin/aiperf"
    dynamo = os.environ.get("RECIPE_HARNESS_DYNAMO_PYTHON") or ".venv-dynamo/bin/python"
    if args.target == "kubernetes":
        facts: dict[str, Any]
        try:
            kube = Kube.connect(args.kubeconfig, args.context)
        except Exception as exc:  # noqa: BLE001 - facts become "unknown", the reason is recorded
            facts = {"target": "kubernetes", "errors": [f"connect: {exc}"], "gpus": [], "nodes": []}
        else:
            facts = kubernetes_facts(kube, summary, report_dir, _python_beside(aiperf))
    else:
        facts = local_facts(summary, report_dir, Path(dynamo), _python_beside(aiperf))
    facts["provenance"] = {"recipes": git_provenance(root)}
    hardware = hardware_match(args.hardware_profile, facts)
    run_ = Run(report_dir, root, args.hardware_profile, args.target, args.perf_trials,
               ["recipe-harness", "qualify", *sys.argv[2:]] if sys.argv[1:2] == ["qualify"] else [])
    try:
        data = build(run_, facts, hardware, out)
    except BundleError as exc:
        print(f"recipe-harness: qualify: {exc}", file=sys.stderr)
        return EXIT_FAIL
    for rid, rec in data["recipes"].items():
        print(f"{rid} on {args.hardware_profile}: {rec['verdict'].upper()}")
        for reason in rec["reasons"]:
            print(f"  - {reason}")
    t = data["totals"]
    print(f"{t['qualified']} of {t['recipes']} recipes qualified; bundle in {out} ({MD_NAME}, qualification.json, "
          "SHA256SUMS)")
    unfinished = incomplete(data)
    for why in unfinished:
        print(f"recipe-harness: qualify: incomplete, qualifies nothing: {why}", file=sys.stderr)
    if unfinished:
        return EXIT_FAIL
    return EXIT_FAIL if any(r["verdict"] == NOT_QUALIFIED for r in data["recipes"].values()) else EXIT_OK
