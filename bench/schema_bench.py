"""Schema validation speed: recipe-harness's Validator vs check-jsonschema, side by side.

Both validate the same YAML files (one document each) against the same schema: for
check-jsonschema the self-contained schema from ``recipe_harness.static.schema.bundled_schema`` (the
DGD schema with the pinned Kubernetes definitions inlined, or a core kind's definition).
Documents come from ``recipes/`` when present, else from ``fixtures/schema``, repeated to about
500 in total. Each side runs as a fresh process (interpreter start, imports, schema loading,
YAML parsing and validation); the in-process time of the Validator is printed too.

    .venv/bin/python bench/schema_bench.py [--docs 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipe_harness.load.manifests import load_file  # noqa: E402
from recipe_harness.static.schema import DEFAULT_K8S_VERSION, bundled_schema  # noqa: E402

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
TIMEOUT_S = 600

OURS = """
import sys, time
from recipe_harness.load.manifests import load_file
from recipe_harness.static.schema import Validator
t = time.perf_counter()
v = Validator()
bad = 0
for path in sys.argv[1:]:
    for doc in load_file(path).documents:
        bad += any(f.severity.value == "error" for f in v.validate(doc))
print(bad, time.perf_counter() - t)
"""


def source_documents() -> list[dict]:
    recipes = ROOT / "recipes"
    files = sorted(recipes.rglob("*.yaml")) + sorted(recipes.rglob("*.yml")) if recipes.is_dir() else []
    if not files:
        files = [ROOT / "fixtures" / "schema" / n for n in
                 ("dgd-v1alpha1-valid.yaml", "dgd-v1beta1-valid.yaml", "core-valid.yaml")]
    bodies = []
    for f in files:
        result = load_file(f)
        bodies += [d.body for d in result.documents if isinstance(d.body, dict) and d.kind and d.api_version]
    return bodies


def pick_groups(bodies: list[dict]) -> list[tuple[str, str]]:
    counts = Counter((b["apiVersion"], b["kind"]) for b in bodies)
    groups = [g for g in counts if g[1] == "DynamoGraphDeployment" and g[0].startswith("nvidia.com/")]
    core = [g for g, _ in counts.most_common() if g[1] != "DynamoGraphDeployment" and "." not in g[0].split("/")[0]]
    preferred = [g for g in core if g[1] == "Job"] or core
    return groups + preferred[:1]


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    return time.perf_counter() - t, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500, help="documents in total (default 500)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the best is kept (default 3)")
    args = ap.parse_args()
    if not CHECK_JSONSCHEMA.exists():
        print(f"check-jsonschema not found next to {sys.executable}", file=sys.stderr)
        return 2
    bodies = source_documents()
    groups = pick_groups(bodies)
    per_group = max(1, args.docs // max(1, len(groups)))
    print(f"Kubernetes {DEFAULT_K8S_VERSION}; {len(bodies)} source documents; {per_group} documents per schema")
    print(f"{'schema':<42} {'docs':>5} {'ours (s)':>9} {'check-jsonschema (s)':>21} {'ratio':>7}  in-process")
    total_ours = total_theirs = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for api, kind in groups:
            same = [b for b in bodies if (b["apiVersion"], b["kind"]) == (api, kind)]
            files = []
            for i in range(per_group):
                path = tmpdir / f"{kind}-{api.replace('/', '_')}-{i}.yaml"
                path.write_text(yaml.safe_dump(same[i % len(same)], sort_keys=False))
                files.append(str(path))
            schema_file = tmpdir / f"{kind}-{api.replace('/', '_')}.schema.json"
            schema_file.write_text(json.dumps(bundled_schema(api, kind)))
            ours_cmd = [sys.executable, "-c", OURS, *files]
            theirs_cmd = [str(CHECK_JSONSCHEMA), "--schemafile", str(schema_file), *files]
            best_ours = best_theirs = float("inf")
            inproc = float("inf")
            for _ in range(args.repeat):  # alternate the two sides run by run
                t, proc = timed(ours_cmd)
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                bad, inside = proc.stdout.split()
                best_ours, inproc = min(best_ours, t), min(inproc, float(inside))
                t, theirs = timed(theirs_cmd)
                best_theirs = min(best_theirs, t)
            agree = (int(bad) == 0) == (theirs.returncode == 0)
            label = f"{kind} {api}" + ("" if agree else " (VERDICTS DIFFER)")
            print(f"{label:<42} {per_group:>5} {best_ours:>9.3f} {best_theirs:>21.3f} "
                  f"{best_theirs / best_ours:>6.1f}x  {inproc:.3f}s ({inproc / per_group * 1e3:.2f} ms/doc)")
            total_ours += best_ours
            total_theirs += best_theirs
    print(f"{'total':<42} {per_group * len(groups):>5} {total_ours:>9.3f} {total_theirs:>21.3f} "
          f"{total_theirs / total_ours:>6.1f}x")
    engines(bodies, groups, per_group)
    return 0


def engines(bodies: list[dict], groups: list[tuple[str, str]], per_group: int) -> None:
    """Validation alone, in one process: the compiled Validator vs the jsonschema library (same schema)."""
    import jsonschema

    from recipe_harness.load.manifests import Document
    from recipe_harness.static.schema import Validator

    validator = Validator()
    print(f"\nin-process validation only (parsed documents), {per_group} per schema")
    print(f"{'schema':<42} {'ours ms/doc':>12} {'jsonschema ms/doc':>18} {'ratio':>7}")
    for api, kind in groups:
        same = [b for b in bodies if (b["apiVersion"], b["kind"]) == (api, kind)]
        items = [same[i % len(same)] for i in range(per_group)]
        documents = [Document("bench.yaml", 0, b, {}) for b in items]
        reference = jsonschema.Draft202012Validator(bundled_schema(api, kind))
        validator.validate(documents[0])
        reference.is_valid(items[0])
        t = time.perf_counter()
        ours_bad = sum(any(f.severity.value == "error" for f in validator.validate(d)) for d in documents)
        ours = (time.perf_counter() - t) / per_group
        t = time.perf_counter()
        ref_bad = sum(bool(list(reference.iter_errors(b))) for b in items)
        ref = (time.perf_counter() - t) / per_group
        label = f"{kind} {api}" + ("" if (ours_bad == 0) == (ref_bad == 0) else " (VERDICTS DIFFER)")
        print(f"{label:<42} {ours * 1e3:>12.3f} {ref * 1e3:>18.3f} {ref / ours:>6.1f}x")


if __name__ == "__main__":
    sys.exit(main())
