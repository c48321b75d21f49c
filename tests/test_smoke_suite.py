"""The smoke suite end to end with pytester on small recipe trees, on the real local target:
outcomes and ids, one deployment per recipe, reports, fail-fast, and cleanup after success,
failure, Ctrl-C, SIGTERM and SIGKILL of the pytest process, and runs side by side."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from recipe_harness.deploy.local import sweep_stale_runs
from recipe_harness.deploy.procs import processes_with_env
from tests import procs

# Every inner run is a subprocess: in-process runs drop and re-import modules (httpx's among them)
# between runs, which leaves two copies of its exception classes in one interpreter.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "local"
DYNAMO_PY = ROOT / ".venv-dynamo" / "bin" / "python"
TAG = "RH_SMOKE_TEST_TAG"
SMOKE = "recipe_harness.suites.test_smoke"

pytestmark = pytest.mark.skipif(not DYNAMO_PY.exists(), reason=f"{DYNAMO_PY} missing (run `recipe-harness setup`)")

# Wraps (does not replace) the real deploy to record which recipes were deployed and how many
# deployments were alive at that moment.
COUNTING_CONFTEST = """
import contextlib, json
from pathlib import Path
import recipe_harness.deploy.local as local

DEPLOYS = []
_real = local.LocalTarget.deploy

@contextlib.contextmanager
def _counting(self, recipe, workdir=None):
    DEPLOYS.append([recipe.id, len(self._active)])
    with _real(self, recipe, workdir) as endpoint:
        yield endpoint

local.LocalTarget.deploy = _counting

def pytest_sessionfinish(session):
    Path("deploys.json").write_text(json.dumps(DEPLOYS))
"""


@pytest.fixture
def tagged(monkeypatch) -> str:
    """A marker every process started by the run under test inherits."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)
    monkeypatch.setenv("RECIPE_HARNESS_DYNAMO_PYTHON", str(DYNAMO_PY))
    return tag


def tree(dest: Path, *recipes: tuple[str, str]) -> Path:
    """A recipes root holding the given (fixture tree, recipe id) recipes (and a pytest.ini beside it)."""
    (dest / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    root = dest / "recipes"
    for fixture, rid in recipes:
        shutil.copytree(FIXTURES / fixture / rid, root / rid)
    return root


def test_smoke_suite_on_local_twins(pytester, tagged):
    root = tree(pytester.path, ("ok", "tiny/mocker/agg"), ("ok", "tiny/mocker/disagg-kv"))
    pytester.makeconftest(COUNTING_CONFTEST)
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess("--pyargs", SMOKE, "--recipes-root", str(root), "--report-dir", str(report),
                                "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=16, skipped=2)
    result.stdout.fnmatch_lines(["*test_smoke_chat?tiny/mocker/agg::smoke-chat? PASSED*",
                                 "*test_smoke_kv_routing?tiny/mocker/disagg-kv::smoke-kv-routing? PASSED*"])
    # one deployment per recipe, the first torn down before the second
    assert json.loads((pytester.path / "deploys.json").read_text()) == [["tiny/mocker/agg", 0],
                                                                        ["tiny/mocker/disagg-kv", 0]]
    summary = json.loads((report / "summary.json").read_text())
    assert summary["target"] == "local"
    agg = summary["recipes"]["tiny/mocker/agg"]["checks"]
    assert set(agg) == {f"smoke-{c}" for c in ("models", "chat", "completions", "stream", "max-tokens",
                                                  "concurrency", "bad-request", "disagg", "kv-routing")}
    assert agg["smoke-disagg"]["outcome"] == "skipped" and "aggregated" in agg["smoke-disagg"]["message"]
    assert any(n.startswith("ready in ") for n in agg["smoke-models"]["notes"])
    assert agg["smoke-models"]["metrics"]["ready_s"] > 0
    logs = report / "logs" / "tiny" / "mocker" / "agg"
    assert agg["smoke-chat"]["artifacts"] == [str(logs)]
    assert {p.name for p in logs.iterdir()} == {"Frontend.log", "MockerWorker-0.log", "MockerWorker-1.log"}
    kv = summary["recipes"]["tiny/mocker/disagg-kv"]["checks"]
    assert kv["smoke-disagg"]["metrics"]["prefill_served"] >= 1 and kv["smoke-disagg"]["metrics"]["decode_served"] >= 1
    assert kv["smoke-kv-routing"]["metrics"]["per_worker"][kv["smoke-kv-routing"]["metrics"]["worker"]] == 4
    assert processes_with_env(TAG, tagged) == []


def test_a_broken_recipe_errors_alone_with_its_log_tail(pytester, tagged):
    root = tree(pytester.path, ("ok", "tiny/mocker/agg"), ("broken", "tiny/mocker/bad-engine"))
    pytester.makeconftest(COUNTING_CONFTEST)
    result = pytester.runpytest_subprocess("--pyargs", SMOKE, "--recipes-root", str(root), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, skipped=2, errors=9)
    result.stdout.fnmatch_lines(["*deploying tiny/mocker/bad-engine on the local target failed: MockerWorker-0 "
                                 "(worker, pid *) exited with code 1*", "*unknown variant `bogus`*"])
    deploys = [rid for rid, _ in json.loads((pytester.path / "deploys.json").read_text())]
    assert deploys == ["tiny/mocker/agg", "tiny/mocker/bad-engine"]  # the failure is not retried per test
    assert processes_with_env(TAG, tagged) == []


def test_a_worker_dying_mid_run_fails_the_next_checks_at_once(pytester, tagged):
    root = tree(pytester.path, ("ok", "tiny/mocker/agg"))
    pytester.makepyfile(test_dying="""
        import os, signal
        from recipe_harness.deploy.procs import MARKER_ENV, processes_with_env

        def test_smoke_models(deployed, smoke_check):
            smoke_check("models")

        def test_kill_a_worker(deployed):
            marker = deployed.target.deployment(deployed.endpoint).supervisor.marker
            pids = processes_with_env(MARKER_ENV, marker)
            victim = next(p for p in pids if b"dynamo.mocker" in open(f"/proc/{p}/cmdline", "rb").read())
            os.kill(victim, signal.SIGKILL)

        def test_smoke_chat(deployed, smoke_check):
            smoke_check("chat")

        def test_smoke_stream(deployed, smoke_check):
            smoke_check("stream")
    """)
    result = pytester.runpytest_subprocess("test_dying.py", "--recipes-root", str(root), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*FAILED test_dying.py::test_smoke_chat*", "*FAILED test_dying.py::test_smoke_stream*"])
    killed = [line for line in result.outlines
              if line.startswith("MockerWorker-") and " (worker, pid " in line and " was killed by SIGKILL after " in line
              and "; last lines of " in line]
    assert len(killed) == 2, result.outlines  # both checks fail with the dead worker and its log tail
    assert "Traceback" not in result.stdout.str()  # a message, not a stack trace
    assert processes_with_env(TAG, tagged) == []


def test_deploy_timeout_is_the_local_budget(pytester, tagged):
    root = tree(pytester.path, ("ok", "tiny/mocker/agg"))
    result = pytester.runpytest_subprocess("--pyargs", SMOKE, "--recipes-root", str(root), "-p", "no:cacheprovider",
                                "--deploy-timeout", "0.05", "-k", "models or chat")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*tiny/mocker/agg (local twin) not ready within 0.05s (raise it with --deploy-timeout)*"])
    assert processes_with_env(TAG, tagged) == []


def test_any_test_using_deployed_gets_recipe_check_ids(pytester):
    root = tree(pytester.path, ("ok", "tiny/mocker/agg"), ("ok", "tiny/mocker/disagg-kv"))
    pytester.makepyfile(test_ids="""
        def test_perf(deployed): pass
        def test_smoke_long_name_here(deployed): pass
    """)
    result = pytester.runpytest_subprocess("test_ids.py", "--recipes-root", str(root), "--collect-only", "-q")
    # grouped by recipe: one deployment serves all of a recipe's tests in a module
    assert [line for line in result.outlines if line.startswith("test_ids.py::")] == [
        "test_ids.py::test_perf[tiny/mocker/agg::perf]",
        "test_ids.py::test_smoke_long_name_here[tiny/mocker/agg::smoke-long-name-here]",
        "test_ids.py::test_perf[tiny/mocker/disagg-kv::perf]",
        "test_ids.py::test_smoke_long_name_here[tiny/mocker/disagg-kv::smoke-long-name-here]",
    ]


# -- the pytest process itself: signals and side-by-side runs ------------------------------------------


HANGING_TEST = """
import os, time
from pathlib import Path

def test_hang(deployed):
    Path(os.environ["RH_READY_FILE"]).write_text(deployed.endpoint.base_url)
    time.sleep(300)
"""


def _spawn(tmp_path: Path, tag: str, args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, TAG: tag, "TMPDIR": str(tmp_path / "tmp"),
             "RECIPE_HARNESS_DYNAMO_PYTHON": str(DYNAMO_PY), **env},
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"pytest exited early:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} never appeared")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_pytest_interrupted_while_deployed_leaves_nothing(tmp_path, sig):
    tag = uuid.uuid4().hex
    (tmp_path / "tmp").mkdir()
    root = tree(tmp_path, ("ok", "tiny/mocker/agg"))
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    ready = tmp_path / "ready"
    proc = _spawn(tmp_path, tag, ["test_hang.py", "--recipes-root", str(root)], RH_READY_FILE=str(ready))
    try:
        _wait_for(ready, proc)
        assert len(processes_with_env(TAG, tag)) == 4  # pytest + frontend + 2 mockers
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10  # SIGKILL: the children die with their parent, reaped by init
    while processes_with_env(TAG, tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_env(TAG, tag) == []
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        # nothing could remove the run folder; the next run's sweep does
        (left,) = (tmp_path / "tmp").glob("recipe-harness-*")
        assert sweep_stale_runs(tmp_path / "tmp") == [left] and not left.exists()
        return
    assert proc.returncode == 2, out  # pytest: interrupted
    assert "KeyboardInterrupt" in out
    assert list((tmp_path / "tmp").glob("recipe-harness-*")) == []


def test_two_runs_at_once_both_pass_and_leave_nothing(tmp_path):
    tag = uuid.uuid4().hex
    (tmp_path / "tmp").mkdir()
    root = tree(tmp_path, ("ok", "tiny/mocker/agg"))
    args = ["--pyargs", SMOKE, "--recipes-root", str(root), "-k", "models or chat or stream or concurrency"]
    runs = [_spawn(tmp_path, tag, args) for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in runs]
    for p, out in zip(runs, outs):
        assert p.returncode == 0, out
        assert "4 passed" in out
    assert processes_with_env(TAG, tag) == []
    assert list((tmp_path / "tmp").glob("recipe-harness-*")) == []


def test_collection_mocker_recipes_pass_smoke(pytester, tagged):
    (pytester.path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("--pyargs", SMOKE, "--recipes-root", str(ROOT / "recipes"),
                                           "--recipe", "mocker-tiny/*", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=16, skipped=2)  # agg: no disaggregation, no KV router
    result.stdout.fnmatch_lines(["*aggregated recipe: no prefill/decode split*", "*router mode 'round-robin'*"])
    assert processes_with_env(TAG, tagged) == []


def test_the_quick_start_command_deploys_every_recipe_of_the_collection(tmp_path):
    """The README's first command, `recipe-harness test`, on recipes/: every recipe's local twin
    becomes ready and serves (GPU recipes included: their parallelism and prefix-caching flags
    shape what the twin's workers register)."""
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("recipe-harness")
    root = Path(__file__).resolve().parent.parent / "recipes"
    proc = procs.run([str(cli), "test", "--recipes-root", str(root), "--suite", "smoke", "--report-dir",
                      str(tmp_path / "r"), "--", "-k", "smoke-models", "-p", "no:cacheprovider"],
                     capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert " passed" in proc.stdout and " error" not in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
