"""Side environments for the components the harness drives but does not import.

The Dynamo frontend/mocker and aiperf pin dependencies that clash with each other and with the
harness, and Dynamo registers pytest plugins of its own; each lives in its own virtualenv:

- ``.venv-dynamo``: ai-dynamo + ai-dynamo-runtime. ai-dynamo 1.6.1 requires ``aisimulate``,
  which the frontend and mocker do not use, so both wheels go in with ``--no-deps`` and their
  other requirements are listed here explicitly.
- ``.venv-aiperf``: aiperf.
- ``.venv-aic``: NVIDIA AIConfigurator (``aiconfigurator`` + ``aiconfigurator-core``, whose wheel carries the
  measured kernel databases of each GPU system); :mod:`recipe_harness.exercise.predict` runs its estimates offline.

``recipe-harness setup`` creates them (idempotent: a stamp file records what was installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

DYNAMO_VERSION = "1.6.1"
AIPERF_VERSION = "0.13.0"
AIC_VERSION = "0.12.0"


@dataclass(frozen=True)
class SideEnv:
    name: str                     # folder name, e.g. ".venv-dynamo"
    no_deps: tuple[str, ...]      # installed with --no-deps
    requirements: tuple[str, ...]
    check: str                    # python -c snippet proving the env works

    def stamp(self) -> str:
        data = json.dumps([self.no_deps, self.requirements, sys.version_info[:2]], default=list)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


DYNAMO = SideEnv(
    name=".venv-dynamo",
    no_deps=(f"ai-dynamo=={DYNAMO_VERSION}", f"ai-dynamo-runtime=={DYNAMO_VERSION}"),
    requirements=(
        "aiohttp>=3.14.3,<4", "certifi>=2026.10.19", "kubernetes>=32.0.1,<33", "msgspec>=0.19",
        "prometheus-client>=0.23.1,<1", "pyzmq>=26", "redis>=6.2,<9", "tqdm>=4", "transformers>=4.56",
        "typing-extensions>=4.10", "zstandard>=0.23,<1", "pydantic>=2.10.6,<=2.13.5", "uvloop>=0.21",
    ),
    check="import dynamo.frontend, dynamo.mocker",
)

AIPERF = SideEnv(
    name=".venv-aiperf",
    no_deps=(),
    requirements=(f"aiperf=={AIPERF_VERSION}",),
    check="import aiperf",
)

AIC = SideEnv(
    name=".venv-aic",
    no_deps=(),
    requirements=(f"aiconfigurator=={AIC_VERSION}", f"aiconfigurator-core=={AIC_VERSION}"),
    check="import aiconfigurator.sdk.inference_session",
)

ALL = (DYNAMO, AIPERF, AIC)


def python_of(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_ready(env: SideEnv, prefix: Path) -> bool:
    stamp = prefix / env.name / ".recipe-harness-stamp"
    return stamp.is_file() and stamp.read_text().strip() == env.stamp()


def ensure(env: SideEnv, prefix: Path, *, log=print, quiet: bool = True) -> Path:
    """Create or update ``prefix/env.name``; returns its python. Raises CalledProcessError on failure."""
    env_dir = prefix / env.name
    py = python_of(env_dir)
    if is_ready(env, prefix) and py.exists():
        log(f"{env.name}: up to date")
        return py
    log(f"{env.name}: installing {' '.join(env.no_deps + env.requirements)}")
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(env_dir)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
    if env.no_deps:
        subprocess.run(pip + ["--no-deps", *env.no_deps], check=True)
    if env.requirements:
        subprocess.run(pip + list(env.requirements), check=True)
    subprocess.run([str(py), "-c", env.check], check=True)
    (env_dir / ".recipe-harness-stamp").write_text(env.stamp() + "\n")
    log(f"{env.name}: ready")
    return py
