"""The command-line reader: the words of a container's command + args and ``sh -c`` scripts, each at its exact
file position; shell option clusters; ``case`` arms; the flag reader; and the expander's arithmetic and
quoting checked word for word against a real bash."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from recipe_harness.load.manifests import load_file
from recipe_harness.load.scalars import scalar_map
from recipe_harness.model import cmdline, shell
from recipe_harness.model.cmdline import container_args, flag_value, shell_call, split_argv


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, col) of the nth occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def args_of(tmp_path: Path, manifest: str) -> list[tuple[str, tuple[int, int]]]:
    path = tmp_path / "pod.yaml"
    path.write_text(manifest)
    (doc,) = load_file(path).documents
    return [(a.text, a.src[1:]) for a in container_args(doc, ("spec", "containers", 0))]


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: w
"""


def test_a_value_is_at_its_own_column_not_where_its_text_first_appears(tmp_path: Path):
    manifest = POD + (
        '      command: ["/bin/sh", "-c", "python3 -m dynamo.vllm --model Qwen/Qwen3-4B --tensor-parallel-size 4"]\n')
    words = dict(args_of(tmp_path, manifest))
    # the 4 after --tensor-parallel-size, not the 4 of Qwen3-4B (the old reader searched the line's text)
    assert words["4"] == where(manifest, "4\"]")
    assert words["Qwen/Qwen3-4B"] == where(manifest, "Qwen/")
    assert words["--tensor-parallel-size"] == where(manifest, "--tensor")


def test_words_of_a_block_scalar_script_on_their_real_lines(tmp_path: Path):
    manifest = POD + textwrap.indent(textwrap.dedent("""\
        command: [bash, -euo, pipefail, -c]
        args:
          - |
            # warm up first
            MODEL=Qwen/Qwen3-0.6B
            case "$ROLE" in
              prefill) exec python3 -m dynamo.vllm --model $MODEL \\
                         --is-prefill-worker ;;
              *) exec python3 -m dynamo.vllm --model "$MODEL" --data-parallel-size -1 ;;
            esac
    """), "      ")
    words = args_of(tmp_path, manifest)
    texts = [t for t, _ in words]
    assert texts[:9] == ["MODEL=Qwen/Qwen3-0.6B", "exec", "python3", "-m", "dynamo.vllm", "--model", "$MODEL",
                         "--is-prefill-worker", "exec"]   # both case arms are read
    assert dict(words)["--is-prefill-worker"] == where(manifest, "--is-prefill-worker")
    assert words[6] == ("$MODEL", where(manifest, "$MODEL \\"))
    assert words[-2] == ("--data-parallel-size", where(manifest, "--data-parallel-size"))
    assert words[-1] == ("-1", where(manifest, "-1 ;;"))
    assert flag_value(texts, "--data-parallel-size") == "-1"     # a negative number is a value


@pytest.mark.parametrize("style, text", [
    ("plain", "sh -c python -m x --tp 4"),
    ("double", '"sh -c \\"python -m x\\" --tp 4"'),
    ("single", "'it''s --tp 4'"),
    ("literal", "|\n        a b\n\n        --tp 4\n"),
    ("folded", ">-\n        a b\n        --tp\n\n        4 x\n"),
    ("double multi-line", '"a b\n        --tp \\\n        4 x"'),
])
def test_scalar_positions_follow_every_yaml_style(tmp_path: Path, style: str, text: str):
    manifest = f"key:\n  value: {text}\n"
    path = tmp_path / "x.yaml"
    path.write_text(manifest)
    (doc,) = load_file(path).documents
    value = doc.get("key", "value")
    where_ = scalar_map(str(path), *doc.pos(("key", "value")), value)
    assert where_.exact, style
    lines = manifest.splitlines()
    for k, ch in enumerate(value):
        line, col = where_.at(k)
        if ch not in " \n'\"":
            assert lines[line - 1][col - 1] == ch, (style, k, ch)
    assert where_.at(value.index("4")) == where(manifest, "4")


@pytest.mark.parametrize("argv, index", [
    (["sh", "-c", "x"], 2),
    (["/bin/bash", "-lc", "x"], 2),
    (["bash", "-ec", "x"], 2),
    (["bash", "-euo", "pipefail", "-c", "x"], 4),
    (["bash", "-o", "pipefail", "-c", "x", "arg0"], 4),
    (["/usr/bin/env-less/dash", "+x", "--login", "-c", "x"], 4),
    (["bash", "-c", "-e", "x"], 3),
])
def test_any_shell_option_cluster_before_the_script(argv: list[str], index: int):
    call = shell_call(argv)
    assert call is not None and call.command_string and call.index == index
    assert split_argv(argv, []) == ["x"]


def test_not_a_shell_script():
    assert shell_call(["python3", "-c", "x"]) is None
    assert shell_call(["bash"]) is None
    assert shell_call(["bash", "-c"]) is None
    call = shell_call(["bash", "-x", "/scripts/run.sh"])
    assert call is not None and not call.command_string and call.index == 2


def test_the_script_words_of_split_argv():
    script = textwrap.dedent("""\
        set -e
        if [ -n "$X" ]; then echo 'a b' > /tmp/log 2>&1; fi
        for i in 1 2; do
          run --n=$i "q r"\\
            --last
        done
        cat <<EOF > /tmp/c.yaml
        not: words
        EOF
        f() { inner --x; }
        a | b && c; (sub) ; { grp; }
    """)
    assert split_argv(["bash", "-c", script], []) == [
        "set", "-e", "echo", "a b", "run", "--n=$i", "q r", "--last", "cat", "inner", "--x", "a", "b", "c", "sub",
        "grp"]


@pytest.mark.parametrize("argv, expect", [
    (["--tp", "4"], "4"),
    (["--tp=4"], "4"),
    (["--tp", "-1"], "-1"),
    (["--tp", "-0.5"], "-0.5"),
    (["--tp", "--next"], ""),
    (["--tp"], ""),
    (["--tp", "1", "--tp", "2"], "2"),
    (["--other", "1"], None),
])
def test_one_flag_reader(argv: list[str], expect: str | None):
    assert flag_value(argv, "--tp") == expect


def test_syntax_errors_say_what_and_where():
    with pytest.raises(cmdline.ShellSyntaxError, match="line 2: unterminated double quote"):
        cmdline.parse('echo ok\necho "start\naiperf profile\n')
    with pytest.raises(cmdline.ShellSyntaxError, match="missing 'done'"):
        cmdline.parse("for x in 1; do\n  echo\n")
    assert cmdline.split_script('echo ok\necho "start\n') == ["echo", "ok", "echo"]   # the tolerant read keeps what parses


def test_a_case_arm_is_walked():
    script = 'case "$MODE" in\n  sweep) aiperf profile --concurrency 8 ;;\n  *) : ;;\nesac\n'
    (inv,) = shell.find_invocations(script, {})
    assert inv.args == ["--concurrency", "8"] and (inv.line, inv.col) == where(script, "aiperf")


# --------------------------------------------------------------------------- against a real bash

# (word as written, what the expander should give word for word; None: the expander deliberately leaves it
# unresolved, symbolic, because it runs nothing or models no side effect)
BASH_CASES = [
    "$((-7/2))", "$((-7%2))", "$((7/-2))", "$((7%-2))", "$((2**10))", "$((2**63))", "$((1<<3))", "$((-8>>1))",
    "$(( (1+2) * (3 + (4-1)) ))", "$((10 - 2 - 3))", "$((2**3**2))", "$((5 & 3 | 8 ^ 2))", "$((~5))", "$((!0))",
    "$((3 > 2 && 2 > 3 || 1))", "$((1 ? 7 : 9))", "$((0 ? 7 : 9))", "$((1, 2))", "$((0x1f + 010 + 2#101))",
    "$((A * B + 1))", "$((A / B))", "$((-A % B))", "$(($A+B))", "$((E + 1))", "$((C))",
    "${X:-def}", "${UNSET:-def}", "${X:+alt}", "${UNSET:+alt}", "${#X}", "${PATHV##*/}", "${PATHV%/*}",
    '"$A b"', "'lit $X'", "a\"b\"'c'", "\\$X", '"\\$X \\" \\\\"', "a\\ b", '"x${X}y"', "$X$A", '"$EMPTY"',
    "--opt=$A", "'*'",
    pytest.param("pre{a,b}", marks=pytest.mark.xfail(strict=True, reason="brace expansion is not modelled")),
]
SYMBOLIC = [
    ("$((x = 2))", None), ("$((A++))", None), ("$((1/0))", None), ("$((UNSET + 1))", None),
    ("$(date +%s)", None), ("`date`", None), ("$RANDOM", None),
]
ENV = {"A": "6", "B": "4", "C": "A*2", "E": "", "X": "val", "PATHV": "/a/b/c.txt", "EMPTY": ""}


def _bash_words(raw: str) -> list[str]:
    """The words bash makes of ``raw`` (no globbing), read back exactly."""
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", f"set -f; printf '%s\\0' START {raw} END"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **ENV}, check=True).stdout
    return out.split("\0")[1:-2]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
@pytest.mark.parametrize("raw", BASH_CASES)
def test_the_expander_agrees_with_bash(raw: str):
    walker = shell.Walker(dict(ENV))
    assert walker.expand(raw) == _bash_words(raw)


@pytest.mark.parametrize("raw, _", SYMBOLIC)
def test_what_the_expander_leaves_symbolic(raw: str, _: None):
    (value,) = shell.Walker(dict(ENV)).expand(raw)
    assert not shell.is_resolved(value) and shell.as_written(value) == raw


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
@pytest.mark.parametrize("raw", ["'lit $X'", "a\"b\"'c'", "\\$X", '"\\$X \\" \\\\"', "a\\ b", "$'a\\tb'", "'*'"])
def test_quote_removal_agrees_with_bash(raw: str):
    assert [cmdline.unquote(raw)] == _bash_words(raw)
