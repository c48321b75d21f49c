"""``recipe-harness clean``: delete the namespaces of Kubernetes runs that are over.

Only namespaces labelled ``app.kubernetes.io/managed-by=recipe-harness`` are considered (the label is
checked again on each one before deleting it); any other namespace is never touched. Of those, by
default only runs that are over are deleted:

- the owner process is gone: the namespace's ``recipe-harness/owner`` annotation (``host/pid``) names
  this host and no live process has that pid, or the process that has it now started after the run
  did (the pid was reused); or
- the owner runs on another host (or is unknown) and the run started longer ago than ``--older-than``
  (default 24h: longer than any run's time limits, so a run in progress elsewhere is not cut short).

A run whose owner is alive on this host is in progress and kept, whatever its age; so is a run on
another host younger than ``--older-than``. ``--all`` deletes every harness namespace, in progress or not.
``--dry-run`` lists what would be deleted and why, and deletes nothing.

Each namespace gets one line: ``deleted``, ``would delete``, ``kept`` or ``failed``, its name, and why.

``--cache-namespace NS`` (repeatable) cleans inside cache namespaces instead: a run there stamps what
it makes (its DGD, Jobs, Secrets, ConfigMaps ...) with the same labels and annotations, and each run
found is judged as above and, if over, its objects are deleted (the PVCs, the cache, never are).
Each run gets one line, named ``NS/run-<id>``.

Exit status: 0 nothing selected is left (kept runs in progress are fine); 1 a namespace could not be
deleted, or was still terminating after ``--wait``; 2 usage error, or the cluster could not be reached
or listed.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the kubernetes client loads only when clean runs, not with the CLI's parser
    from recipe_harness.deploy.kubernetes.client import Kube

EXIT_OK, EXIT_LEFT, EXIT_USAGE = 0, 1, 2
DEFAULT_OLDER_THAN = "24h"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m`` ... as a timedelta (more than zero)."""
    raw = text.strip().lower()
    if not _DURATION.fullmatch(raw):
        raise ValueError(f"{text!r} is not a duration: use a number and a unit s, m, h or d, e.g. 30m, 2h, 1d, 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", raw))
    if seconds <= 0:
        raise ValueError(f"{text!r} is zero; use --all to delete runs in progress too")
    return timedelta(seconds=seconds)


def _duration_arg(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _human(delta: timedelta) -> str:
    s = int(max(delta.total_seconds(), 0))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def pid_alive(pid: int) -> bool:
    """Whether a live (not zombie) process has ``pid`` on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def process_started(pid: int) -> datetime | None:
    """When process ``pid`` of this host started (Linux ``/proc``), or ``None`` when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[19])  # field 22 of proc(5), counted from the state (field 3)
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


PID_REUSE_SLACK = timedelta(seconds=2)
"""The start annotation has whole seconds and is written after the owner process starts."""


@dataclass(frozen=True)
class Verdict:
    name: str
    delete: bool
    why: str
    recipe: str = ""


def judge(ns: dict[str, Any], *, now: datetime, older_than: timedelta, everything: bool, host: str,
          alive: Callable[[int], bool] = pid_alive,
          proc_started: Callable[[int], datetime | None] = process_started) -> Verdict:
    """Whether the run of harness namespace ``ns`` is over, and why."""
    # lazy: the namespace module loads the kubernetes client (~0.4 s), not wanted at the CLI's start
    from recipe_harness.deploy.kubernetes.namespace import RECIPE_ANNOTATION, owner_of, started_at

    meta = ns.get("metadata") or {}
    name = str(meta.get("name") or "")
    recipe = str((meta.get("annotations") or {}).get(RECIPE_ANNOTATION) or "")
    started = started_at(ns)
    age = f"started {_human(now - started)} ago" if started else "start time unknown"
    owner = owner_of(ns)
    who = f"owner {owner[0]}/{owner[1]}" if owner else "owner unknown"
    terminating = " (already terminating)" if meta.get("deletionTimestamp") else ""
    if everything:
        return Verdict(name, True, f"--all; {who}, {age}{terminating}", recipe)
    if owner and owner[0] == host:
        if not alive(owner[1]):
            return Verdict(name, True, f"{who} is gone, {age}{terminating}", recipe)
        begun = proc_started(owner[1])
        if started and begun and begun > started + PID_REUSE_SLACK:
            return Verdict(name, True, f"{who} is gone (pid {owner[1]} is now a process started after the run), "
                                       f"{age}{terminating}", recipe)
        return Verdict(name, False, f"{who} is running on this host, {age}{terminating}", recipe)
    if started and now - started > older_than:
        return Verdict(name, True, f"{age}, older than --older-than {_human(older_than)}; {who}{terminating}", recipe)
    if owner:
        why = f"{who} runs on another host, {age} (under --older-than {_human(older_than)})"
    else:
        why = f"{who}, {age} (under --older-than {_human(older_than)})"
    return Verdict(name, False, why + terminating, recipe)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the options of ``clean`` on ``p`` (the ``clean`` subparser of the main CLI)."""
    p.add_argument("--kubeconfig", metavar="FILE", default=None, help="kubeconfig (default: usual resolution)")
    p.add_argument("--context", metavar="NAME", default=None, help="kubeconfig context (default: current)")
    p.add_argument("--namespace-prefix", metavar="PREFIX", default=None,
                   help="only namespaces whose name starts with PREFIX- (default: every harness namespace)")
    p.add_argument("--older-than", metavar="DURATION", type=_duration_arg, default=parse_duration(DEFAULT_OLDER_THAN),
                   help=f"also delete runs that started longer ago than DURATION, e.g. 30m, 2h, 1d "
                        f"(default: {DEFAULT_OLDER_THAN}); runs whose owner process is gone are deleted at any age")
    p.add_argument("--all", action="store_true", dest="all",
                   help="delete every harness namespace, runs in progress included")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted and why; delete nothing")
    p.add_argument("--wait", metavar="SECONDS", type=float, default=300.0,
                   help="how long to wait for each namespace to go (default: 300)")
    p.add_argument("--cache-namespace", metavar="NS", action="append", default=None,
                   help="clean the runs left in cache namespace NS (their DGDs, Jobs, Secrets ...; never its "
                        "PVCs) instead of harness namespaces; repeatable")
    return p


def _parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog="recipe-harness clean", description=__doc__.splitlines()[0]))


def clean(argv: list[str], kube: Kube | None = None) -> int:
    """Parse ``argv`` as ``recipe-harness clean`` options and run; see :func:`run`."""
    return run(_parser().parse_args(argv), kube)


def run(args: argparse.Namespace, kube: Kube | None = None) -> int:
    """Delete the harness namespaces whose runs are over (all with ``--all``); exit status as documented above."""
    # lazy: the kubernetes client (~0.4 s), not wanted at the CLI's start (its parser reads add_arguments)
    from recipe_harness.deploy.kubernetes.client import Kube, KubeError
    from recipe_harness.deploy.kubernetes.namespace import delete_namespace, list_harness_namespaces

    if args.cache_namespace:
        return _clean_cache_namespaces(args, kube)
    try:
        kube = kube or Kube.connect(args.kubeconfig, args.context)
        found = list_harness_namespaces(kube, args.namespace_prefix)
    except KubeError as exc:
        what = str(exc)
        print(f"recipe-harness clean: cannot list the cluster's namespaces: {what}", file=sys.stderr)
        return EXIT_USAGE
    if not found:
        print("recipe-harness clean: no harness namespaces")
        return EXIT_OK

    def delete(name: str) -> str | None:
        return None if delete_namespace(kube, name, wait=args.wait) else \
            f"still terminating after --wait {args.wait:g}s"

    ordered = sorted(found, key=lambda n: (n.get("metadata") or {}).get("name") or "")
    return _settle([_Candidate(ns, "", functools.partial(delete, str((ns.get("metadata") or {}).get("name"))))
                    for ns in ordered], args)


@dataclass
class _Candidate:
    """One thing ``clean`` may delete: a run namespace, or one run's objects in a cache namespace."""

    obj: dict[str, Any]                  # what :func:`judge` reads (metadata: name, annotations)
    what: str                            # said after the reason ("" for a namespace)
    delete: Callable[[], str | None]     # deletes it; why it is still there, or None when gone


def _settle(candidates: list[_Candidate], args: argparse.Namespace) -> int:
    """Judge each candidate, delete those whose run is over (unless ``--dry-run``), one line each
    and a summary; the exit status."""
    from recipe_harness.deploy.kubernetes.client import KubeError

    now = datetime.now(UTC)
    host = socket.gethostname()
    deleted = kept = would = 0
    left: list[str] = []
    for c in candidates:
        v = judge(c.obj, now=now, older_than=args.older_than, everything=args.all, host=host)
        recipe = f" [{v.recipe}]" if v.recipe else ""
        what = f" ({c.what})" if c.what else ""
        if not v.delete:
            kept += 1
            print(f"kept          {v.name}{recipe}: {v.why}{what}")
            continue
        if args.dry_run:
            would += 1
            print(f"would delete  {v.name}{recipe}: {v.why}{what}")
            continue
        try:
            failed = c.delete()
        except KubeError as exc:
            print(f"failed        {v.name}{recipe}: {exc}")
            left.append(v.name)
            continue
        if failed:
            print(f"failed        {v.name}{recipe}: {failed} ({v.why})")
            left.append(v.name)
        else:
            deleted += 1
            print(f"deleted       {v.name}{recipe}: {v.why}{what}")
    if args.dry_run:
        print(f"recipe-harness clean: {would} would be deleted, {kept} kept (--dry-run: nothing deleted)")
        return EXIT_OK
    print(f"recipe-harness clean: {deleted} deleted, {kept} kept, {len(left)} failed")
    return EXIT_LEFT if left else EXIT_OK


def _clean_cache_namespaces(args: argparse.Namespace, kube: Kube | None) -> int:
    """``--cache-namespace``: judge each run found in the cache namespaces by the stamp on its
    objects and delete the objects of the runs that are over."""
    from recipe_harness.deploy.kubernetes.client import Kube, KubeError
    from recipe_harness.deploy.kubernetes.namespace import delete_objects, list_cache_runs

    try:
        kube = kube or Kube.connect(args.kubeconfig, args.context)
        found = {ns: list_cache_runs(kube, ns) for ns in args.cache_namespace}
    except KubeError as exc:
        print(f"recipe-harness clean: cannot list the cache namespaces: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runs = [(ns, run, objs) for ns, by_run in found.items() for run, objs in sorted(by_run.items())]
    if not runs:
        print(f"recipe-harness clean: no harness runs in {', '.join(args.cache_namespace)}")
        return EXIT_OK

    def delete(paths: list[str]) -> str | None:
        still = delete_objects(kube, paths, wait=args.wait)
        return f"still there after --wait {args.wait:g}s: {', '.join(still)}" if still else None

    candidates = []
    for ns, run, objs in runs:
        oldest = min(objs, key=lambda o: str((o[1].get("metadata") or {}).get("creationTimestamp") or ""))[1]
        meta = oldest.get("metadata") or {}
        stand_in = {"metadata": {"name": f"{ns}/run-{run}", "annotations": meta.get("annotations") or {},
                                 "creationTimestamp": meta.get("creationTimestamp")}}
        what = ", ".join(f"{(o.get('kind') or path.split('/')[-2]).rstrip('s')} {(o.get('metadata') or {}).get('name')}"
                         for path, o in objs)
        paths = [path for path, _ in objs]
        candidates.append(_Candidate(stand_in, what, functools.partial(delete, paths)))
    return _settle(candidates, args)
