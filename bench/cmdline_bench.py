#!/usr/bin/env python3
"""Cost of reading container command lines, measured side by side in one run on this machine.

    .venv/bin/python bench/cmdline_bench.py [--repeat 5]

Over every workload and DGD container of recipes/ and fixtures/ (YAML already loaded), prints the best of
--repeat runs of:
1. the command-line reader: tree-sitter-bash parse of each ``sh -c`` script, its words, quote removal and
   the file position of every word (``cmdline.container_args``);
2. a shlex split of the same scripts, words only (no positions, no commands): a floor for any reader;
and their ratio, with the one-off cost of importing tree-sitter-bash.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.load.manifests import load_file  # noqa: E402
from recipe_harness.load.scalars import file_lines  # noqa: E402
from recipe_harness.model.cmdline import container_args, shell_call  # noqa: E402


def _containers() -> list:
    out = []
    for path in sorted([*ROOT.glob("recipes/**/*.yaml"), *ROOT.glob("fixtures/**/*.yaml")]):
        for doc in load_file(path).documents:
            if not isinstance(doc.body, dict):
                continue
            for p, _ in list(doc.positions.items()):
                if p and p[-1] in ("command", "args") and isinstance(doc.get(*p), list):
                    base = p[:-1]
                    if (base, p[-1]) == (base, "args") and isinstance(doc.get(*base, "command"), list):
                        continue   # counted once, from its command
                    out.append((doc, base))
    return out


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        file_lines.cache_clear()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    found = _containers()
    scripts = []
    for doc, base in found:
        words = [str(w) for k in ("command", "args") for w in (doc.get(*base, k) or [])]
        call = shell_call(words)
        if call is not None and call.command_string:
            scripts.append(words[call.index])

    def reader() -> None:
        for doc, base in found:
            container_args(doc, base)

    def floor() -> None:
        for s in scripts:
            try:
                shlex.split(s, comments=True)
            except ValueError:
                s.split()

    ours, base = _best(reader, args.repeat), _best(floor, args.repeat)
    imp = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tree_sitter, tree_sitter_bash"],
                         capture_output=True, text=True).stderr.strip().splitlines()[-1]
    print(f"{len(found)} containers, {len(scripts)} sh -c scripts")
    print(f"command-line reader (parse, words, positions): {ours * 1000:8.2f} ms")
    print(f"shlex split of the scripts (words only):       {base * 1000:8.2f} ms")
    print(f"ratio: {ours / base:.1f}x; per container {ours / max(len(found), 1) * 1e6:.0f} us")
    print(f"import tree-sitter-bash (cumulative us): {imp.split('|')[1].strip()}")


if __name__ == "__main__":
    main()
