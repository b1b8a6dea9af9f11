"""The allocator setting `ix_pipeline/__init__.py` makes for deltalake's jemalloc: that it is
made, that it is well-formed, and that deltalake's allocator really reads that variable (a
deltalake built otherwise would make it a silent no-op, and the expiry's memory would grow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VARIABLE = "_RJEM_MALLOC_CONF"

WRITE_A_DELTA_TABLE = """
import sys
{imports}
import pyarrow as pa
from deltalake import write_deltalake
write_deltalake(sys.argv[1], pa.table({{"a": [1, 2, 3]}}), mode="append")
import os
print(os.environ.get("{variable}", ""))
"""


def _run(tmp_path: Path, imports: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = WRITE_A_DELTA_TABLE.format(imports=imports, variable=VARIABLE)
    return subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "table")],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip


def _env_without_setting() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != VARIABLE}


def test_importing_the_package_sets_a_valid_setting_before_deltalake_loads(tmp_path: Path) -> None:
    done = _run(tmp_path, "import ix_pipeline", _env_without_setting())
    assert "background_thread:true" in done.stdout
    assert "<jemalloc>" not in done.stderr, done.stderr  # jemalloc accepted every pair


def test_deltalakes_allocator_reads_the_variable(tmp_path: Path) -> None:
    env = {**_env_without_setting(), VARIABLE: "no_such_option:1"}
    done = _run(tmp_path, "", env)
    assert "<jemalloc>: Invalid conf pair: no_such_option:1" in done.stderr


def test_a_setting_made_outside_wins(tmp_path: Path) -> None:
    env = {**_env_without_setting(), VARIABLE: "dirty_decay_ms:5000"}
    done = _run(tmp_path, "import ix_pipeline", env)
    assert done.stdout.strip() == "dirty_decay_ms:5000"
