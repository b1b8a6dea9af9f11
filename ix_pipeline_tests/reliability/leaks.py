"""Search everything a run leaves behind for secret values, byte by byte."""

from __future__ import annotations

import json
from pathlib import Path

from dagster._serdes import serialize_value

from ix_pipeline.orchestration.instance import get_instance
from ix_pipeline.settings import Settings


def assert_absent(secrets: list[str], *texts: str, folder: Path | None = None) -> None:
    """No secret in any text, nor in any file under `folder` (SQLite storage, logs, mail)."""
    for secret in secrets:
        assert secret, "an empty secret would match everything"
        for text in texts:
            assert secret not in text
        if folder is not None:
            for path in folder.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path


def assert_runs_keep_secrets(settings: Settings, secrets: list[str]) -> list[str]:
    """Every run on the instance: its stored record (run config, tags) and every event of its
    log (messages, step outputs, metadata, errors). Returns the runs' job names."""
    instance = get_instance(settings.dagster_home)
    runs = instance.get_runs()
    for run in runs:
        assert_absent(secrets, serialize_value(run), json.dumps(run.run_config), repr(run.tags))
        assert_absent(secrets, *(serialize_value(e) for e in instance.all_logs(run.run_id)))
    return sorted(r.job_name for r in runs)
