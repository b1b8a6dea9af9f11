"""The CLI's instance helpers on a real Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from ix_pipeline.orchestration.instance import reap_dead_cli_runs


def test_reaping_works_before_dagster_made_its_artifact_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    artifacts = tmp_path / "artifacts"
    (home / "dagster.yaml").write_text(
        "local_artifact_storage:\n  module: dagster._core.storage.root\n"
        f"  class: LocalArtifactStorage\n  config:\n    base_dir: {artifacts}\n"
    )
    instance = dg.DagsterInstance.from_config(str(home))
    shutil.rmtree(artifacts, ignore_errors=True)  # Dagster creates it only when it needs it
    assert reap_dead_cli_runs(instance) == []
