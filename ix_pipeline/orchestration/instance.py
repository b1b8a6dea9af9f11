"""The Dagster instance the CLI runs jobs on, so its runs show in the UI's run history."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# One pool for every step that opens the hot DuckDB file: DuckDB admits one writing process.
DAGSTER_YAML = """\
# Written by ix_pipeline. Every step that opens the hot DuckDB file is in the `hot_db` pool.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def get_instance(home: Path) -> dg.DagsterInstance:
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(home))
    return dg.DagsterInstance.get()
