"""Run aiperf: build its command line from a profile point and a target, run it in its own
process group with a timeout, and always reap the group (timeout, interrupt, normal exit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from recipe_harness.exercise.perf.profile import PerfPoint, PerfProfile

ENV_AIPERF = "RECIPE_HARNESS_AIPERF"
AIPERF_ENV_DIR = ".venv-aiperf"
LOG_FILE = "aiperf.out"
KILL_GRACE_S = 10.0


class AiperfNotFound(Exception):
    pass


def find_aiperf(explicit: str | None = None, roots: Iterable[Path] = ()) -> Path:
    """--aiperf PATH, then $RECIPE_HARNESS_AIPERF, then <root>/.venv-aiperf/bin/aiperf, then PATH."""
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--aiperf", Path(explicit)))
    elif os.environ.get(ENV_AIPERF):
        candidates.append((ENV_AIPERF, Path(os.environ[ENV_AIPERF])))
    else:
        for root in roots:
            candidates.append((str(root), Path(root) / AIPERF_ENV_DIR / "bin" / "aiperf"))
        on_path = shutil.which("aiperf")
        if on_path:
            candidates.append(("PATH", Path(on_path)))
    for _source, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
    if explicit or os.environ.get(ENV_AIPERF):
        source, path = candidates[0]
        raise AiperfNotFound(f"aiperf not found at {path} (from {source}); point it at an executable aiperf")
    raise AiperfNotFound("aiperf not found: run `recipe-harness setup` (creates .venv-aiperf/), "
                         f"pass --aiperf PATH or set {ENV_AIPERF}")


@dataclass(frozen=True)
class RunTarget:
    """Where and how aiperf sends requests."""

    url: str                       # base URL, no /v1
    model: str
    tokenizer: str                 # local folder or hub id
    local: bool = True             # no GPUs / no DCGM: GPU telemetry and server-metrics scraping are off
    timeout_s: float = 900.0       # one aiperf process


def goodput_arg(slo: dict[str, float]) -> str:
    return " ".join(f"{tag}:{value:g}" for tag, value in sorted(slo.items()))


def build_argv(aiperf: Path | str, profile: PerfProfile, point: PerfPoint, target: RunTarget, artifact_dir: Path,
               *, goodput: dict[str, float] | None = None, scaled: bool = False) -> list[str]:
    """aiperf's command line for one point: the recipe's workload, the harness's environment."""
    argv = [str(aiperf), "profile", "--model", target.model, "--url", target.url,
            "--endpoint-type", profile.endpoint_type, "--tokenizer", target.tokenizer]
    if profile.endpoint_path:
        argv += ["--endpoint", profile.endpoint_path]
    if profile.streaming:
        argv.append("--streaming")
    for flag, value in (("--synthetic-input-tokens-mean", profile.isl),
                        ("--synthetic-input-tokens-stddev", profile.isl_stddev),
                        ("--output-tokens-mean", profile.osl),
                        ("--output-tokens-stddev", profile.osl_stddev),
                        ("--random-seed", profile.random_seed)):
        if value is not None:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    requests = point.request_count if point.request_count is not None else point.default_request_count()
    warmup = point.warmup_request_count or 0
    for flag, value in (("--num-dataset-entries", profile.num_dataset_entries),
                        ("--conversation-num", profile.conversation_num)):
        if value is not None:
            # a scaled run needs no more distinct prompts than it sends
            argv += [flag, str(min(value, requests + warmup) if scaled else value)]
    for item in profile.extra_inputs:
        argv += ["--extra-inputs", item]
    for item in profile.headers:
        argv += ["--header", item]
    if point.concurrency is not None:
        argv += ["--concurrency", str(point.concurrency)]
    if point.request_rate is not None:
        argv += ["--request-rate", f"{point.request_rate:g}"]
    if point.benchmark_duration is not None:
        argv += ["--benchmark-duration", f"{point.benchmark_duration:g}"]
    else:
        argv += ["--request-count", str(requests)]
    if warmup:
        argv += ["--warmup-request-count", str(warmup)]
    slo = goodput if goodput is not None else profile.goodput
    if slo:
        argv += ["--goodput", goodput_arg(slo)]
    argv += profile.passthrough
    request_timeout = min(profile.request_timeout_s or target.timeout_s, target.timeout_s)
    argv += ["--request-timeout-seconds", f"{request_timeout:g}", "--artifact-dir", str(artifact_dir.absolute()),
             "--ui", "none", "--export-level", "records"]
    if target.local:
        argv += ["--no-gpu-telemetry", "--no-server-metrics"]
    return argv


@dataclass
class AiperfRun:
    argv: list[str]
    artifact_dir: Path
    log_file: Path
    returncode: int | None = None
    wall_s: float = 0.0
    timed_out: bool = False
    timeout_s: float | None = None
    pid: int | None = None          # also the process group id of the run
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of aiperf's output (and of its own log file when that says more)."""
        text = _tail(self.log_file, lines)
        own = self.artifact_dir / "logs" / "aiperf.log"
        errors = [ln for ln in _tail(own, 400).splitlines() if " ERROR " in ln or " - ERROR - " in ln]
        if errors:
            text += "\n--- errors from logs/aiperf.log ---\n" + "\n".join(errors[-10:])
        return text

    def describe_failure(self) -> str:
        if self.timed_out:
            head = f"aiperf did not finish within {self.timeout_s:g} s; its process group was killed"
        else:
            head = f"aiperf exited with status {self.returncode}"
        return f"{head}\n  command: {' '.join(_quote(a) for a in self.argv)}\n  output ({self.log_file}):\n" + \
            "\n".join("    " + ln for ln in self.log_tail().splitlines())


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _group_gone(pgid: int, within_s: float) -> bool:
    """Wait until no process (zombies included) is left in group ``pgid``."""

    def gone() -> bool | None:  # None: still there
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return None

    return bool(Retrying(stop=stop_after_delay(within_s), wait=wait_fixed(0.05),
                         retry=retry_if_result(lambda state: state is None),
                         retry_error_callback=lambda state: False)(gone))


def _kill_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; True when the group is empty."""
    pgid = proc.pid   # the leader of a new session: its pid is the group id
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    if not _group_gone(pgid, 0.5):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    return _group_gone(pgid, 5.0)


def run_aiperf(argv: list[str], artifact_dir: Path, timeout_s: float, *, env: dict[str, str] | None = None) -> AiperfRun:
    """Run one aiperf command; its output goes to ``artifact_dir/aiperf.out``."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    log_file = artifact_dir / LOG_FILE
    run = AiperfRun(argv, artifact_dir, log_file, timeout_s=timeout_s)
    child_env = dict(os.environ)
    child_env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "160", "NO_COLOR": "1"})
    if env:
        child_env.update(env)
    # aiperf leaves per-benchmark scratch folders (aiperf_mmap_*) in the temp dir: give it a private one
    scratch = Path(tempfile.mkdtemp(prefix="rh-aiperf-"))
    child_env["TMPDIR"] = str(scratch)
    start = time.monotonic()
    with log_file.open("wb") as out, contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=artifact_dir, env=child_env, start_new_session=True)
        run.pid = proc.pid
        try:
            run.returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            run.timed_out = True
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            run.wall_s = time.monotonic() - start
        # aiperf's service processes share the group: none may outlive the run
        if not _kill_group(proc, grace_s=KILL_GRACE_S if run.timed_out else 2.0):
            run.notes.append(f"processes of aiperf's group {proc.pid} outlived it")
        run.returncode = proc.returncode
    return run
