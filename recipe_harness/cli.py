"""``recipe-harness``: check, test, list and document Dynamo deployment recipes.

Exit codes: 0 clean, 1 findings or failed tests, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from recipe_harness import __version__
from recipe_harness.findings import Finding, Severity, display_path

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
SUITES = ("static", "smoke", "perf", "preflight", "predict")  # recipe_harness/suites/test_<suite>.py, marked <suite>


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recipe-harness", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"recipe-harness {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def selection(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--recipes-root", metavar="DIR", help="folder holding <model>/ recipe folders (default: ./recipes)")
        sp.add_argument("--recipe", metavar="GLOB", action="append", default=[],
                        help="only recipes whose id matches GLOB (repeatable)")
        sp.add_argument("--changed-since", metavar="REF",
                        help="only recipes whose files changed since the merge base of REF and HEAD (committed, "
                             "staged, unstaged and untracked; a model-level or shared file selects every recipe "
                             "using it); says what was selected and why")

    c = sub.add_parser("check", help="static checks; prints path:line:col: RULE-ID message")
    c.add_argument("paths", nargs="*", metavar="PATH", help="recipes root, recipe folder or deploy file (default: ./recipes)")
    selection(c)
    c.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text",
                   help="text (default), json, sarif (SARIF 2.1.0 for code scanning) or github (workflow "
                        "commands: annotations on a pull request)")
    c.add_argument("--sarif", metavar="FILE", help="also write the findings as SARIF 2.1.0 to FILE (any --format)")
    c.add_argument("--crd", metavar="FILE", action="append", default=[], help="validate custom resources against this CRD")
    c.add_argument("--strict-kinds", action="store_true", help="kinds with no schema are errors")
    c.add_argument("--strict", action="store_true", help="warnings fail too")
    c.add_argument("--kubernetes-version", metavar="X.Y", help="Kubernetes version of the core schemas")
    c.add_argument("--no-hints", action="store_true", help="do not print fix hints under findings")
    c.add_argument("-v", "--verbose", action="store_true", help="also print notes (kinds not validated ...)")

    t = sub.add_parser("test", help="run the conformance suites with pytest (other options, e.g. --twin mocker, "
                                    "and arguments after -- go to pytest)")
    selection(t)
    t.add_argument("--target", choices=("local", "kubernetes"), default="local")
    t.add_argument("--report-dir", metavar="DIR", default="reports", help="where reports go (default: ./reports)")
    t.add_argument("--suite", action="append", choices=SUITES, default=[],
                   help="suites to run (repeatable; default: static and smoke)")
    t.add_argument("--strict", action="store_true", help="warnings fail too")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for pytest")

    from recipe_harness.exercise.predict.command import add_arguments as predict_arguments

    pr = sub.add_parser("predict", help="predicted performance on each recipe's GPU hardware profiles (no GPU)")
    pr.add_argument("paths", nargs="*", metavar="PATH", help="recipes root, recipe folder or deploy file (default: ./recipes)")
    selection(pr)
    predict_arguments(pr)

    ls = sub.add_parser("list", help="list the recipes found")
    selection(ls)
    ls.add_argument("--format", choices=("text", "json"), default="text")

    r = sub.add_parser("rules", help="list the conformance rules")
    r.add_argument("--format", choices=("text", "json", "markdown"), default="text")

    s = sub.add_parser("setup", help="create the Dynamo, aiperf and AIConfigurator side environments")
    s.add_argument("--prefix", metavar="DIR", default=".", help="where .venv-dynamo, .venv-aiperf and .venv-aic go (default: .)")
    s.add_argument("--only", choices=("dynamo", "aiperf", "aic"), action="append", default=[])

    n = sub.add_parser("new", help="scaffold a recipe: deploy.yaml, perf.yaml, thresholds.yaml, model-cache/ for a "
                                   "new model, a README section; FILL-IN(...) marks what to supply (check: RH109)",
                       description="Write a new recipe <model>/<backend>/<mode> under --recipes-root. Every value "
                                   "still to supply is a FILL-IN(...) marker that `check` reports (RH109) until it "
                                   "is replaced. Backends: vllm, sglang, trtllm (GPU), mocker (runs on the local "
                                   "target). Never overwrites a file. Exit status: 0 written, 2 usage error.")
    n.add_argument("recipe_id", metavar="MODEL/BACKEND/MODE", help="e.g. qwen3-8b/vllm/agg, qwen3-8b/vllm/disagg-kv-router")
    n.add_argument("--recipes-root", metavar="DIR", default="recipes", help="where recipes live (default: ./recipes)")
    n.add_argument("--from", dest="from_recipe", metavar="RECIPE",
                   help="copy this recipe's deploy.yaml, perf.yaml and thresholds.yaml (DGD renamed) instead of the templates")
    n.add_argument("--gpus", type=int, metavar="N", help="GPUs per worker pod (default: a FILL-IN marker)")
    n.add_argument("--tp", type=int, metavar="N", help="tensor parallel size (default: --gpus)")
    n.add_argument("--model-id", metavar="ORG/NAME",
                   help="Hugging Face repo id (default: what the model's model-cache downloads, else a marker)")
    n.add_argument("--dynamo-version", metavar="X.Y.Z",
                   help="runtime image tag (default: the release the collection's recipes use)")

    from recipe_harness.cli_clean import DEFAULT_OLDER_THAN
    from recipe_harness.cli_clean import add_arguments as clean_arguments

    cl = sub.add_parser("clean", help="delete the namespaces of Kubernetes runs that are over (owner process gone, or "
                                      f"older than --older-than, default {DEFAULT_OLDER_THAN}); --all for every one",
                        description="Delete the namespaces of Kubernetes runs that are over: owner process gone, or "
                                    "started longer ago than --older-than. Runs in progress are kept unless --all. "
                                    "Exit status: 0 nothing selected left, 1 some namespace not deleted, 2 usage or "
                                    "cluster error.")
    clean_arguments(cl)

    from recipe_harness.qualify.command import add_arguments as qualify_arguments

    q = sub.add_parser("qualify", help="release qualification: preflight, static, smoke and perf for one hardware "
                                       "profile, then a verifiable bundle; `qualify verify DIR` checks one",
                       description="Run the suites for --hardware-profile (perf with repeated trials, inconclusive "
                                   "limits fail) and write a bundle to --out: qualification.json/.md, the report, "
                                   "aiperf exports, SHA256SUMS. `recipe-harness qualify verify DIR` checks a bundle. "
                                   "Exit status: 0 all qualified / verified, 1 not, 2 usage error.")
    qualify_arguments(q)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command not in ("test", "qualify"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.pytest_args = unknown + list(args.pytest_args or [])
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "test":
            return cmd_test(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "rules":
            return cmd_rules(args)
        if args.command == "predict":
            return cmd_predict(args)
        if args.command == "setup":
            return cmd_setup(args)
        if args.command == "clean":
            return cmd_clean(args)
        if args.command == "new":
            return cmd_new(args)
        if args.command == "qualify":
            return cmd_qualify(args)
    except UsageError as exc:
        print(f"recipe-harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("recipe-harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    parser.print_help()
    return EXIT_USAGE


# --- check --------------------------------------------------------------------------------------


def _find_root(path: Path) -> Path:
    """The recipes root a path belongs to: an ancestor named ``recipes``, else the parent of the
    model folder (the one with model-cache/), else the path itself."""
    path = path.absolute()
    folder = path if path.is_dir() else path.parent
    for anc in [folder, *folder.parents]:
        if anc.name == "recipes":
            return anc
    for anc in [folder, *folder.parents]:
        if (anc / "model-cache").is_dir() or (anc / "model_cache").is_dir():
            return anc.parent
    return folder


def select_recipes(paths: list[str], recipes_root: str | None, patterns: list[str]):
    """One discovery per recipes root of ``paths``, holding the recipes the paths select: a root or model
    folder its recipes, a recipe folder or deploy file its recipe, any other file the recipes it belongs to
    (a model-cache file: every recipe of the model). A file no recipe uses is noted and skipped."""
    from recipe_harness.load.changed import owners_of
    from recipe_harness.load.discovery import discover

    if not paths:
        root = Path(recipes_root) if recipes_root else Path("recipes")
        if not root.exists():
            raise UsageError(f"recipes root {root} does not exist; pass PATH or --recipes-root DIR")
        d = discover(root, patterns)
        return [d]
    by_root: dict[Path, list[Path]] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{raw}: no such file or folder")
        root = Path(recipes_root) if recipes_root else _find_root(p)
        by_root.setdefault(root, []).append(p.absolute())
    out = []
    for root, targets in by_root.items():
        d = discover(root, patterns)
        chosen: dict[str, object] = {}
        keep_findings = []
        for target in targets:
            hits = [r for r in d.recipes
                    if r.deploy_file.absolute() == target or _is_below(r.deploy_file.absolute(), target)
                    or r.origin.absolute() == target or _is_below(r.origin.absolute(), target)]  # rendered variants
            mine = [f for f in d.findings if _is_below(Path(f.file).absolute(), target) or Path(f.file).absolute() == target]
            if not hits and target.is_file() and not mine:
                hits, _ = owners_of(root, d.recipes, target)
                if not hits:
                    print(f"{display_path(target)}: part of no recipe, not checked", file=sys.stderr)
                    continue
            chosen.update({r.id: r for r in hits})
            keep_findings += [f for f in mine if f not in keep_findings]
        if not chosen and not keep_findings and all(t.is_file() for t in targets):
            continue  # only files no recipe uses
        d.recipes = [r for r in d.recipes if r.id in chosen]
        d.findings = keep_findings
        out.append(d)
    return out


def _is_below(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def run_checks(discoveries, options) -> tuple[list[str], list[Finding]]:
    from recipe_harness.model.bundle import LoadedRecipe
    from recipe_harness.static.checks import StaticChecker, static_checks

    ids: list[str] = []
    findings: list[Finding] = []
    seen: set[tuple] = set()
    cache: dict = {}
    for d in discoveries:
        checker = StaticChecker(options, discovery=d)
        if not d.recipes:
            findings.extend(d.findings)
            findings.append(Finding(str(d.root), 0, 0, "RH011", f"no recipes found under {d.root}",
                                    hint="a recipe is a folder with a deploy.yaml holding a DynamoGraphDeployment"))
            continue
        dirs = [str(r.dir) + "/" for r in d.recipes]
        findings.extend(f for f in d.findings if not any(f.file.startswith(x) for x in dirs))  # outside every recipe
        for recipe in d.recipes:
            ids.append(recipe.id)
            loaded = LoadedRecipe.load(recipe, cache)
            for check in static_checks():
                for f in checker.run(loaded, check):
                    key = (f.file, f.line, f.col, f.rule, f.message)
                    if key not in seen:
                        seen.add(key)
                        findings.append(f)
    return ids, findings


def changed_recipes(paths: list[str], recipes_root: str | None, patterns: list[str], ref: str, *,
                    quiet: bool = False):
    """The recipes of ``paths`` (default: the recipes root) changed since ``ref``. Without paths only the
    model folders the changes can reach are discovered (:func:`.changed.scope`): fast on large trees."""
    from recipe_harness.load.changed import ChangedSinceError, scope
    from recipe_harness.load.discovery import discover

    if paths:
        return changed_only(select_recipes(paths, recipes_root, patterns), ref, quiet=quiet)
    root = Path(recipes_root) if recipes_root else Path("recipes")
    if not root.exists():
        raise UsageError(f"recipes root {root} does not exist; pass PATH or --recipes-root DIR")
    try:
        found = scope(root, ref)
    except ChangedSinceError as exc:
        raise UsageError(str(exc)) from None
    return changed_only([discover(root, patterns, within=found.models)], ref, quiet=quiet, found=found)


def changed_only(discoveries, ref: str, *, quiet: bool = False, found=None):
    """Keep the recipes changed since ``ref`` (see :mod:`.changed`); print what was selected and why to
    stderr. Returns (discoveries with a recipe left, selections)."""
    from recipe_harness.load.changed import ChangedSinceError, select

    kept, selections = [], []
    for d in discoveries:
        try:
            sel = select(d.root, d.recipes, ref, found)
        except ChangedSinceError as exc:
            raise UsageError(str(exc)) from None
        selections.append((d.root, sel))
        if not quiet:
            for line in sel.describe(d.root):
                print(line, file=sys.stderr)
        changed_files = {str(c.path) for c in sel.changes}
        d.recipes = [r for r in d.recipes if r.id in sel.reasons]
        dirs = [str(r.dir.absolute()) + "/" for r in d.recipes]
        d.findings = [f for f in d.findings if str(Path(f.file).absolute()) in changed_files
                      or any(str(Path(f.file).absolute()).startswith(x) for x in dirs)]
        if d.recipes or d.findings:
            kept.append(d)
    return kept, selections


def cmd_check(args: argparse.Namespace) -> int:
    from recipe_harness.static.checks import CheckOptions

    for crd in args.crd:
        if not Path(crd).is_file():
            raise UsageError(f"--crd {crd}: no such file")
    options = CheckOptions(kubernetes_version=args.kubernetes_version, crd_files=tuple(Path(c) for c in args.crd),
                           strict_kinds=args.strict_kinds, strict=args.strict)
    selections = []
    if args.changed_since:
        discoveries, selections = changed_recipes(args.paths, args.recipes_root, args.recipe, args.changed_since)
    else:
        discoveries = select_recipes(args.paths, args.recipes_root, args.recipe)
    try:
        ids, findings = run_checks(discoveries, options)
    except Exception as exc:  # a bad --crd file is a usage error, never a traceback
        if type(exc).__name__ == "SchemaConfigError":
            raise UsageError(str(exc)) from None
        raise
    findings.sort(key=lambda f: (f.file, f.line, f.col, f.rule))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    failing = errors + (warnings if args.strict else [])
    code = EXIT_FINDINGS if failing else EXIT_OK
    if args.sarif:
        from recipe_harness.report.output.sarif import write_sarif

        try:
            write_sarif(Path(args.sarif), findings)
        except OSError as exc:
            raise UsageError(f"--sarif {args.sarif}: cannot write: {exc.strerror or exc}") from None
    if args.format == "json":
        data = {
            "recipes": ids,
            "findings": [f.to_dict() for f in findings],
            "summary": {"recipes": len(ids), "errors": len(errors), "warnings": len(warnings),
                        "notes": len(findings) - len(errors) - len(warnings)},
        }
        if args.changed_since:
            data["changed"] = [sel.to_dict(root) for root, sel in selections]
        print(json.dumps(data, indent=2))
    elif args.format == "sarif":
        from recipe_harness.report.output.sarif import sarif_log

        print(json.dumps(sarif_log(findings, exit_code=code), indent=2))
    elif args.format == "github":
        from recipe_harness.report.output.github import github_commands

        for line in github_commands(findings, notes=args.verbose, hints=not args.no_hints):
            print(line)
    else:
        for f in findings:
            if f.severity is Severity.INFO and not args.verbose:
                continue
            print(f.format())
            if f.hint and not args.no_hints:
                print(f"    hint: {f.hint}")
    sys.stdout.flush()
    if args.format != "json":
        print(f"{len(ids)} recipes checked: {len(errors)} errors, {len(warnings)} warnings", file=sys.stderr)
    return code


# --- test ---------------------------------------------------------------------------------------


def pytest_args(args: argparse.Namespace) -> list[str]:
    suites = args.suite or ["static", "smoke"]
    extra = [a for a in (args.pytest_args or []) if a != "--"]
    # each suite is one module (recipe_harness/suites/test_<suite>.py, marked <suite>): the others are not
    # collected, so their tests are neither parametrised nor deselected. The package stays the argument, so
    # the test ids do not depend on where it is installed.
    folder = Path(__file__).parent / "suites"
    ignore = [f"--ignore={folder / f'test_{s}.py'}" for s in SUITES if s not in suites]
    out = ["--pyargs", "recipe_harness.suites", *ignore, "-m", " or ".join(suites), "--report-dir", args.report_dir,
           "-p", "no:cacheprovider", "--target", args.target,
           # test-only plugins of the harness's own tests; the suites need none of them (no async tests)
           "-p", "no:kmock", "-p", "no:asyncio", "-p", "no:anyio",
           # the suites fail with messages (pytest.fail), never a bare assert (tests/test_suites_plain_assert.py):
           # rewriting would only recompile every harness module at each start (a pytest11 plugin's whole
           # distribution is marked for rewriting)
           "--assert=plain"]
    if args.recipes_root:
        out += ["--recipes-root", args.recipes_root]
    for pat in args.recipe:
        out += ["--recipe", pat]
    if args.changed_since:
        out += ["--changed-since", args.changed_since]
    if args.strict:
        out.append("--strict-rules")
    return out + extra


def cmd_test(args: argparse.Namespace) -> int:
    import pytest

    root = Path(args.recipes_root) if args.recipes_root else Path("recipes")
    if not root.is_dir():
        raise UsageError(f"recipes root {root} does not exist; pass --recipes-root DIR")
    if args.changed_since:  # a bad REF is a usage error before pytest starts; nothing changed is a pass
        kept, selections = changed_recipes([], args.recipes_root, args.recipe, args.changed_since,
                                           quiet=True)  # pytest's header says it again
        if not any(k.recipes for k in kept):
            for root_dir, sel in selections:
                print("\n".join(sel.describe(root_dir)), file=sys.stderr)
            print(f"recipe-harness: no recipe changed since {args.changed_since}: nothing to test", file=sys.stderr)
            return EXIT_OK
    code = int(pytest.main(pytest_args(args)))
    if code == 5:  # no tests collected: a selection that matched nothing
        print("recipe-harness: no tests matched the selection", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK if code == 0 else (EXIT_USAGE if code in (3, 4) else EXIT_FINDINGS)


# --- list / rules / setup / clean ---------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    if args.changed_since:
        discoveries, _ = changed_recipes([], args.recipes_root, args.recipe, args.changed_since)
    else:
        discoveries = select_recipes([], args.recipes_root, args.recipe)
    recipes = [r for d in discoveries for r in d.recipes]
    rows = [{"id": r.id, "deploy": str(r.deploy_file), "model": r.model, "perf": [str(p) for p in r.perf_files],
             "thresholds": str(r.thresholds_file) if r.thresholds_file else None} for r in recipes]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(row["id"])
    for f in (f for d in discoveries for f in d.findings):
        print(f.format(), file=sys.stderr)
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from recipe_harness.static.rules.docs import rows as rule_rows

    rows = [asdict(r) for r in rule_rows()]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "markdown":
        from recipe_harness.static.rules.docs import render

        print(render(), end="")
    else:
        for r in rows:
            print(f"{r['id']}  {r['check']:<12} {r['severity']:<8} {r['doc']}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from recipe_harness.exercise.predict.command import run

    return run(args, select_recipes(args.paths, args.recipes_root, args.recipe))


def cmd_qualify(args: argparse.Namespace) -> int:
    from recipe_harness.qualify.command import QualifyUsageError, run

    try:
        return run(args)
    except QualifyUsageError as exc:
        raise UsageError(str(exc)) from exc


def cmd_setup(args: argparse.Namespace) -> int:
    import subprocess

    from recipe_harness import envs

    prefix = Path(args.prefix)
    chosen = [e for e in envs.ALL if not args.only or e.name.removeprefix(".venv-") in args.only]
    try:
        for env in chosen:
            envs.ensure(env, prefix)
    except subprocess.CalledProcessError as exc:
        print(f"recipe-harness: setup failed: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from recipe_harness.scaffold import ScaffoldError, ScaffoldOptions, plan, write

    opts = ScaffoldOptions(recipe_id=args.recipe_id, recipes_root=Path(args.recipes_root), from_recipe=args.from_recipe,
                           gpus=args.gpus, tp=args.tp, model_id=args.model_id, dynamo_version=args.dynamo_version)
    try:
        scaffold = plan(opts)
        written = write(scaffold)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    for path in written:
        print(f"{'appended' if path in scaffold.append else 'wrote'} {display_path(path)}")
    markers = scaffold.markers()
    if markers:
        print(f"{len(markers)} values to fill in (FILL-IN markers; `recipe-harness check` reports each as RH109):")
        for path, line, what in markers:
            print(f"  {display_path(path)}:{line}: {what}")
    rid = args.recipe_id.strip("/")
    root = args.recipes_root
    print(f"next: recipe-harness check {root} --recipe '{rid}'   then: recipe-harness test --recipes-root {root} "
          f"--recipe '{rid}'")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from recipe_harness.cli_clean import run

    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
