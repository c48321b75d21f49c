"""``recipe-harness clean``: delete the namespaces interrupted Kubernetes runs left behind.

Only namespaces labelled ``app.kubernetes.io/managed-by=recipe-harness`` are considered (the
label is checked again on each one before deleting it); ``--dry-run`` only lists them.
"""

from __future__ import annotations

import argparse
import sys

from .targets.kubernetes.client import ApiError, Kube
from .targets.kubernetes.namespace import (
    OWNER_ANNOTATION,
    RECIPE_ANNOTATION,
    STARTED_ANNOTATION,
    delete_namespace,
    list_harness_namespaces,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recipe-harness clean", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", metavar="FILE", default=None, help="kubeconfig (default: usual resolution)")
    p.add_argument("--context", metavar="NAME", default=None, help="kubeconfig context (default: current)")
    p.add_argument("--namespace-prefix", metavar="PREFIX", default=None,
                   help="only namespaces whose name starts with PREFIX- (default: every harness namespace)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--wait", metavar="SECONDS", type=float, default=300.0,
                   help="how long to wait for each namespace to go (default: 300)")
    return p


def clean(argv: list[str], kube: Kube | None = None) -> int:
    """Exit code 0: nothing left; 1: some namespace could not be deleted; 2: usage or API error."""
    args = _parser().parse_args(argv)
    try:
        kube = kube or Kube.connect(args.kubeconfig, args.context)
        found = list_harness_namespaces(kube, args.namespace_prefix)
    except ApiError as exc:
        print(f"recipe-harness clean: {exc}", file=sys.stderr)
        return 2
    if not found:
        print("recipe-harness clean: no harness namespaces")
        return 0
    left = []
    for ns in found:
        meta = ns.get("metadata") or {}
        ann = meta.get("annotations") or {}
        phase = (ns.get("status") or {}).get("phase", "")
        print(f"{meta.get('name')}\trecipe={ann.get(RECIPE_ANNOTATION, '?')}\tstarted={ann.get(STARTED_ANNOTATION, '?')}"
              f"\towner={ann.get(OWNER_ANNOTATION, '?')}\t{phase}")
        if args.dry_run:
            continue
        try:
            if not delete_namespace(kube, meta["name"], wait=args.wait):
                left.append(meta["name"])
        except ApiError as exc:
            print(f"  cannot delete {meta['name']}: {exc}", file=sys.stderr)
            left.append(meta["name"])
    if args.dry_run:
        print(f"recipe-harness clean: {len(found)} namespace(s) would be deleted (--dry-run)")
        return 0
    print(f"recipe-harness clean: deleted {len(found) - len(left)}, left {len(left)}")
    return 1 if left else 0
