#!/usr/bin/env python3
"""Cost of ``recipe-harness check --crd FILE``: schemas compiled once per process, not once per path.

    .venv/bin/python bench/crd_bench.py [--crd fixtures/cel/crd/dgd-crd.yaml] [--files 15] [--copies 3]
                                        [--repeat 3] [--source DIR]

Runs the console script's ``main`` as a fresh process (interpreter start, imports, YAML, schemas,
rules) on

1. ``--files`` deploy files named one by one on the command line, without and with ``--crd``;
2. a tree of ``--copies`` copies of ``recipes/`` (about 30 recipes for 3) given as one path,
   without and with ``--crd``.

``--source DIR`` runs the harness package of another checkout (for example a ``git worktree`` of
an older commit) on the same inputs, so a before/after pair is measured side by side. Times are the
best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600
MAIN = "import sys; from recipe_harness.cli import main; sys.exit(main(sys.argv[1:]))"


def run(source: Path, args: list[str], repeat: int) -> tuple[float, int]:
    best, code = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", MAIN, "check", "--no-hints", *args], cwd=source,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        best = min(best, time.perf_counter() - start)
        code = proc.returncode
        if code not in (0, 1):
            raise SystemExit(f"check failed (exit {code}): {proc.stderr[-2000:]}")
    return best, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crd", type=Path, default=ROOT / "fixtures" / "cel" / "crd" / "dgd-crd.yaml")
    ap.add_argument("--files", type=int, default=15)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--source", type=Path, default=ROOT, help="checkout whose recipe_harness package runs")
    args = ap.parse_args()
    crd = args.crd.resolve()
    files = sorted(str(p.resolve()) for p in (ROOT / "fixtures" / "rules").rglob("deploy.yaml"))[: args.files]
    with tempfile.TemporaryDirectory(prefix="rh-crd-bench-") as tmp:
        tree = Path(tmp) / "recipes"
        tree.mkdir()
        for i in range(args.copies):
            for model in sorted(p for p in (ROOT / "recipes").iterdir() if p.is_dir()):
                shutil.copytree(model, tree / f"{model.name}-{i}")
        n_tree = sum(1 for _ in tree.rglob("deploy.yaml"))
        source = args.source.resolve()
        print(f"harness: {source}\nCRD: {crd} ({crd.stat().st_size / 1e6:.1f} MB)")
        rows = [
            (f"{len(files)} deploy files on the command line", files, []),
            (f"{len(files)} deploy files on the command line, --crd", files, ["--crd", str(crd)]),
            (f"tree of {n_tree} recipes", [str(tree)], []),
            (f"tree of {n_tree} recipes, --crd", [str(tree)], ["--crd", str(crd)]),
        ]
        for label, paths, extra in rows:
            seconds, code = run(source, [*extra, *paths], args.repeat)
            print(f"{label:<50} {seconds:6.2f} s  (exit {code})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
