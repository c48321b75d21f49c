#!/usr/bin/env python3
"""Set up recipe-harness in this checkout: .venv/ (the harness, editable, with its test tools),
.venv-dynamo/ (Dynamo frontend + mocker) and .venv-aiperf/ (aiperf). Idempotent; stdlib only.

    python3 bootstrap.py            # then: .venv/bin/recipe-harness test
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs on whatever python3 the machine has
        print(f"recipe-harness needs Python 3.11 or newer (this is {sys.version.split()[0]})", file=sys.stderr)
        return 2
    py = VENV / "bin" / "python"
    stamp = VENV / ".recipe-harness-stamp"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not (py.exists() and stamp.is_file() and stamp.read_text().strip() == want):
        print(f"bootstrap: installing recipe-harness into {VENV.relative_to(ROOT)}/", flush=True)
        if not py.exists():
            venv.EnvBuilder(with_pip=True).create(VENV)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", f"{ROOT}[test]"],
                       check=True)
        stamp.write_text(want + "\n")
    else:
        print("bootstrap: .venv up to date", flush=True)
    subprocess.run([str(VENV / "bin" / "recipe-harness"), "setup", "--prefix", str(ROOT)], check=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"bootstrap: failed: {exc}", file=sys.stderr)
        sys.exit(1)
