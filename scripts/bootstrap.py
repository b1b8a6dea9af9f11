"""Set up the project's virtual environment from the lock file (stdlib only).

Used by the README's quick start and by `.ci/run`: it must work on a fresh machine that has
only Python 3.11+ and access to the package index. It is idempotent and fast when nothing
changed (it compares a hash of the lock file with the one recorded at the last install).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".lock-sha256"


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under whatever python3 a machine has
        print(f"ix_pipeline needs Python 3.11+, this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return 0
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(LOCK)], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(digest)
    print("environment ready: .venv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
