#!/usr/bin/env python3
"""Set LeadFlow up from nothing but Python, then run it or its tests.

    python3 manage.py start   # set up, then run the main job (local Prefect server + UI, sample data)
    python3 manage.py test    # set up, then run the whole test suite
    python3 manage.py setup   # only set up: .venv with the pinned dependencies (a worker machine, a new terminal)

Standard library only: this runs before anything is installed.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".leadflow-installed"


def _say(message: str) -> None:
    print(f"[manage] {message}", flush=True)


def _install_digest() -> str:
    h = hashlib.sha256()
    for name in ("constraints.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def setup() -> None:
    """Create .venv and install the pinned dependencies and the project (skipped when up to date)."""
    if sys.version_info < (3, 11):
        sys.exit(f"[manage] LeadFlow needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PY.exists():
        _say("creating the virtual environment in .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    # prefect.toml's home (relative to the repository): Prefect creates only its last folder, and warns otherwise.
    (ROOT / "data" / "prefect").mkdir(parents=True, exist_ok=True)
    digest = _install_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    _say("installing the pinned dependencies (constraints.txt); the first time takes a minute or two")
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-c", "constraints.txt", "-e", "."], check=True, cwd=ROOT)
    STAMP.write_text(digest)


def run_tests(args: list[str]) -> int:
    code = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT).returncode
    if code == 5:
        _say("pytest collected no tests: that is a failure here.")
        return 1
    return code


def run_start(args: list[str]) -> int:
    """Run the main job; Ctrl-C or a SIGTERM reaches it, and it stops the server it started."""
    child = subprocess.Popen([str(BIN / "leadflow"), "start", *args], cwd=ROOT)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the terminal sent Ctrl-C to both of us: wait for it to finish cleanly
            continue


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("start", "test", "setup"):
        print(__doc__)
        return 2
    setup()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "test":
        return run_tests(rest)
    if command == "start":
        return run_start(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
