"""The shell reader shared by the perf suite and the rules: the calls it finds, where their words are written,
and what the containers of manifests run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from recipe_harness.load.discovery import discover
from recipe_harness.load.manifests import load_file
from recipe_harness.model import shell
from recipe_harness.model.bundle import LoadedRecipe
from recipe_harness.static.rules.scripts import aiperf_runs, downloads

HF = {"hf": "download", "huggingface-cli": "download"}


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, col) of the nth occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def test_several_programs_with_word_positions():
    script = textwrap.dedent("""\
        set -eux
        echo "hf download starts"          # text, not a script
        for repo in org/a org/b; do
          hf download $repo --local-dir "/models/$repo"
        done
        /usr/bin/huggingface-cli download org/c \\
            --cache-dir $CACHE
        bash -c "cd /tmp && hf download org/d"
    """)
    found = shell.find_invocations(script, {"CACHE": "/hub"}, HF)
    assert [(inv.program, inv.args) for inv in found] == [
        ("hf", ["org/a", "--local-dir", "/models/org/a"]),
        ("hf", ["org/b", "--local-dir", "/models/org/b"]),
        ("/usr/bin/huggingface-cli", ["org/c", "--cache-dir", "/hub"]),
        ("hf", ["org/d"]),
    ]
    assert (found[0].line, found[0].col) == where(script, "hf download $repo")
    assert found[0].positions == [where(script, "$repo"), where(script, "--local-dir"), where(script, '"/models')]
    assert found[1].positions == found[0].positions          # the same words, another iteration
    assert found[2].positions == [where(script, "org/c"), where(script, "--cache-dir"), where(script, "$CACHE")]
    # inside the bash -c string: the string's line, columns counted from its opening quote
    assert (found[3].line, found[3].col) == where(script, "hf download org/d")
    assert found[3].positions == [where(script, "org/d")]


def test_programs_by_prefix_without_subcommand():
    script = "python3 -c 'from huggingface_hub import snapshot_download; snapshot_download(\"org/m\")'\n"
    (inv,) = shell.find_invocations(script, {}, {"python*": None})
    assert inv.program == "python3" and inv.args[0] == "-c" and "snapshot_download" in inv.args[1]
    assert shell.find_invocations(script, {}) == []           # aiperf profile by default


MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: runner
data:
  run.sh: |
    for c in 1 8; do
      aiperf profile --concurrency $c --url http://$HOST
    done
  spare.sh: |
    aiperf profile --concurrency 99
---
apiVersion: batch/v1
kind: Job
metadata:
  name: perf
spec:
  template:
    spec:
      initContainers:
        - name: warm
          image: python:3.12-slim
          command: ["sh", "-c", "aiperf profile --concurrency 2"]
      containers:
        - name: sweep
          image: python:3.12-slim
          command: [/bin/bash, /runner/run.sh]
          env:
            - {name: HOST, value: "front:8000"}
          volumeMounts:
            - {name: runner, mountPath: /runner}
        - name: direct
          image: aiperf:0.13.0
          command: [aiperf, profile]
          args: [--concurrency, $(N), --url, "http://$(HOST):8000"]
          env:
            - {name: N, value: "4"}
            - {name: HOST, value: "$(N)-front"}
      volumes:
        - name: runner
          configMap: {name: runner}
"""


def test_what_the_containers_of_a_manifest_run(tmp_path: Path):
    path = tmp_path / "perf.yaml"
    path.write_text(MANIFEST)
    found = shell.scripts(load_file(path).documents, unmounted="aiperf")
    assert [(s.container.spec["name"] if s.container else None, s.doc.kind, s.argv is not None) for s in found] == [
        ("warm", "Job", False), ("sweep", "ConfigMap", False), ("direct", "Job", True), (None, "ConfigMap", False)]
    calls = [(inv.args, (inv.line, inv.col), inv.positions[1]) for s in found for inv in s.invocations()]
    assert calls == [
        (["--concurrency", "2"], where(MANIFEST, "aiperf profile --concurrency 2"), where(MANIFEST, "2\"]")),
        (["--concurrency", "1", "--url", "http://front:8000"], where(MANIFEST, "aiperf profile --concurrency $c"),
         where(MANIFEST, "$c --url")),
        (["--concurrency", "8", "--url", "http://front:8000"], where(MANIFEST, "aiperf profile --concurrency $c"),
         where(MANIFEST, "$c --url")),
        # Kubernetes expands $(VAR) in command/args (and in env values that refer to earlier ones)
        (["--concurrency", "4", "--url", "http://4-front:8000"], where(MANIFEST, "aiperf, profile"),
         where(MANIFEST, "$(N), --url")),
        (["--concurrency", "99"], where(MANIFEST, "aiperf profile --concurrency 99"),
         where(MANIFEST, "99")),
    ]
    assert shell.pod_spec_path(found[0].doc) == ("spec", "template", "spec")
    assert found[2].container is not None and found[2].container.env == {"N": "4", "HOST": "4-front"}


def test_rules_see_one_run_per_command_with_every_value(tmp_path: Path):
    recipes = tmp_path / "recipes"
    (recipes / "m" / "vllm" / "agg").mkdir(parents=True)
    (recipes / "m" / "model-cache").mkdir()
    deploy = Path(__file__).resolve().parents[1] / "recipes" / "llama-3-70b" / "vllm" / "agg" / "deploy.yaml"
    (recipes / "m" / "vllm" / "agg" / "deploy.yaml").write_text(deploy.read_text())
    (recipes / "m" / "vllm" / "agg" / "perf.yaml").write_text(MANIFEST)
    job = MANIFEST.split("---\n")[1].replace("aiperf profile --concurrency 2", "hf download org/warm")
    job = job.replace("command: [aiperf, profile]", "command: [hf, download, org/direct]")
    (recipes / "m" / "model-cache" / "model-download.yaml").write_text(job)
    (recipe,) = discover(recipes).recipes
    loaded = LoadedRecipe.load(recipe)

    runs = aiperf_runs(loaded)
    assert [(r.container.spec["name"], r.concurrency.values, [u.values for u in r.urls]) for r in runs] == [
        ("warm", ["2"], []),
        ("sweep", ["1", "8"], [["http://front:8000"]]),        # the loop's command is one run
        ("direct", ["4"], [["http://4-front:8000"]]),
    ]
    perf = str(recipes / "m" / "vllm" / "agg" / "perf.yaml")
    assert runs[1].src == (perf, *where(MANIFEST, "aiperf profile --concurrency $c"))
    assert runs[1].concurrency.src == (perf, *where(MANIFEST, "--concurrency $c"))

    assert [(d.container.spec["name"], d.repo, d.src[1:]) for d in downloads(loaded)] == [
        ("warm", "org/warm", where(job, "org/warm")), ("direct", "org/direct", where(job, "org/direct"))]


def test_a_script_read_again_gives_the_same_calls_as_copies_of_their_own():
    """Calls are read once per (text, env, programs) and handed out as copies: what one caller changes
    is not what the next one reads, and another environment is another reading."""
    script = 'for c in 1 4; do aiperf profile --model "$MODEL" --concurrency $c; done\n'
    first = shell.find_invocations(script, {"MODEL": "org/a"})
    assert [inv.args for inv in first] == [["--model", "org/a", "--concurrency", c] for c in ("1", "4")]
    first[0].args.append("--changed")
    first[0].bindings["c"] = "99"
    first[0].positions.clear()
    again = shell.find_invocations(script, {"MODEL": "org/a"})
    assert again[0].args == ["--model", "org/a", "--concurrency", "1"]
    assert again[0].bindings == {"c": "1"} and again[0].positions
    assert [inv.args[1] for inv in shell.find_invocations(script, {"MODEL": "org/b"})] == ["org/b", "org/b"]
    assert shell.find_invocations(script, {"MODEL": "org/a"}, HF) == []


def test_positions_of_script_lines_match_a_scan_from_the_start():
    """ScalarMap.at_line_col finds a line's offset from the script's line starts: the same (line, col) as
    scanning the text for newlines, a line past the end included (its last line's start)."""
    from recipe_harness.load.scalars import ScalarMap

    text = "set -e\n\naiperf profile \\\n  --model m\n"
    where_of = ScalarMap((5, 7), tuple((5 + k, 7 + k) for k in range(len(text) + 1)), exact=True)

    def scanned(line: int, col: int) -> tuple[int, int]:
        offset = 0
        for _ in range(line - 1):
            nl = text.find("\n", offset)
            if nl < 0:
                break
            offset = nl + 1
        return where_of.at(offset + col - 1)

    cases = [(line, col) for line in range(0, 8) for col in (1, 2, 5, 40)]
    assert [where_of.at_line_col(text, line, col) for line, col in cases] == [scanned(line, col) for line, col in cases]
