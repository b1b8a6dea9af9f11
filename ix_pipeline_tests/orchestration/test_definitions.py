"""The code location loads, validates, and its jobs run for real on a Dagster instance."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import dagster as dg

from ix_pipeline.definitions import build_defs
from ix_pipeline.orchestration.jobs import (
    expiry_run_config,
    ingest_run_config,
    nightly_expiry_schedule,
)
from ix_pipeline.orchestration.sensors import landing_files_sensor
from ix_pipeline.settings import Settings
from ix_pipeline_tests.conftest import q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_every_job_schedule_and_sensor(settings: Settings) -> None:
    defs = build_defs(settings)
    for job in ("ingest", "nightly_expiry", "restore_interaction_data"):
        assert defs.resolve_job_def(job) is not None
    assert defs.resolve_schedule_def("nightly_expiry_schedule").cron_schedule == "0 2 * * *"
    assert defs.resolve_sensor_def("landing_files_sensor") is not None
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {
        "campaign_interactions",
        "expiry_eligibility",
        "archive/campaign_interactions",
        "filter_references",
    } <= keys


def test_dagster_definitions_validate_passes(settings: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation successful" in proc.stderr + proc.stdout


def test_ingest_and_nightly_expiry_jobs_run_on_an_instance(settings: Settings) -> None:
    scenario_settings = settings
    # Build the files only; the job does the ingest.
    from ix_pipeline_tests import builders

    builders.write_catalog(settings.landing / "catalog", [builders.campaign("cmp_1")])
    builders.write_events(
        settings.landing / "currents", scenario.SEND, [builders.campaign_event("cmp_1", "u1")]
    )
    defs = build_defs(scenario_settings)
    with dg.instance_for_test() as instance:
        ran = defs.resolve_job_def("ingest").execute_in_process(
            run_config=ingest_run_config([]), instance=instance
        )
        assert ran.success
        meta = ran.asset_materializations_for_node("ingest_currents_files")[0].metadata
        assert meta["events_stored"].value == 1
        expired = defs.resolve_job_def("nightly_expiry").execute_in_process(
            run_config=expiry_run_config(NIGHT), instance=instance
        )
        assert expired.success
        checks = [e for e in expired.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(checks) == 3 and all(e.event_specific_data.passed for e in checks)  # type: ignore[union-attr]
        [mat] = [m for m in expired.asset_materializations_for_node("interaction_archive")][:1]
        assert mat.metadata["items_expired"].value == 1
    assert q(settings, "SELECT state FROM item_lifecycle") == [("expired",)]


def _archive_metadata(events: Sequence[dg.DagsterEvent], kind: str) -> dict[str, dict[str, Any]]:
    """Per archive asset, the metadata of its materializations or of its observations."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.event_type_value != kind:
            continue
        if kind == "ASSET_MATERIALIZATION":
            record: dg.AssetMaterialization | dg.AssetObservation = (
                event.step_materialization_data.materialization
            )
        else:
            record = event.asset_observation_data.asset_observation
        key = record.asset_key.to_user_string()
        if key.startswith("archive/"):
            out[key] = {k: v.value for k, v in record.metadata.items()}
    return out


def test_the_archive_assets_report_their_own_type_and_a_dry_run_materializes_nothing(
    settings: Settings,
) -> None:
    from ix_pipeline_tests import builders
    from ix_pipeline_tests.conftest import ingest

    builders.write_catalog(
        settings.landing / "catalog", [builders.campaign("cmp_1"), builders.canvas("cnv_1")]
    )
    builders.write_events(settings.landing / "currents", scenario.SEND,
                          [builders.campaign_event("cmp_1", f"u{i}") for i in range(3)]
                          + [builders.canvas_event("cnv_1", f"u{i}") for i in range(2)])  # fmt: skip
    ingest(settings)
    job = build_defs(settings).resolve_job_def("nightly_expiry")
    with dg.instance_for_test() as instance:
        dry = job.execute_in_process(
            run_config=expiry_run_config(NIGHT, dry_run=True), instance=instance
        )
        assert _archive_metadata(dry.all_events, "ASSET_MATERIALIZATION") == {}
        seen = _archive_metadata(dry.all_events, "ASSET_OBSERVATION")
        assert seen["archive/campaign_interactions"]["rows_archived"] == 3
        assert seen["archive/canvas_interactions"]["rows_archived"] == 2
        assert q(settings, "SELECT DISTINCT state FROM item_lifecycle") == [("hot",)]
        real = job.execute_in_process(run_config=expiry_run_config(NIGHT), instance=instance)
        done = _archive_metadata(real.all_events, "ASSET_MATERIALIZATION")
    assert {
        k: (m["items_expired"], m["rows_archived"], m["rows_written"]) for k, m in done.items()
    } == {
        "archive/campaign_interactions": (1, 3, 3),
        "archive/canvas_interactions": (1, 2, 2),
    }


def test_a_run_launched_without_an_as_of_decides_and_moves_as_of_one_instant(
    settings: Settings,
) -> None:
    scenario.build(settings)
    job = build_defs(settings).resolve_job_def("nightly_expiry")
    with dg.instance_for_test() as instance:
        run = job.execute_in_process(run_config=expiry_run_config(""), instance=instance)
        record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.create_timestamp is not None
    [decided] = run.asset_materializations_for_node("expiry_eligibility")
    moved = run.asset_materializations_for_node("interaction_archive")[0]
    as_of = decided.metadata["as_of"].value
    summary = moved.metadata["result"].value
    assert isinstance(summary, dict) and as_of == summary["as_of"]
    assert as_of == record.create_timestamp.astimezone(UTC).isoformat()


def test_schedule_as_of_is_the_tick_time(settings: Settings) -> None:
    context = dg.build_schedule_context(
        scheduled_execution_time=__import__("datetime").datetime.fromisoformat(NIGHT)
    )
    request = nightly_expiry_schedule(context)
    config = request.run_config["ops"]["interaction_archive"]["config"]  # type: ignore[union-attr]
    assert config["as_of"] == "2025-05-01T02:00:00+00:00"


def test_landing_sensor_requests_a_run_only_for_files_not_ingested(settings: Settings) -> None:
    from ix_pipeline.definitions import build_resources
    from ix_pipeline_tests import builders
    from ix_pipeline_tests.conftest import ingest

    resources = build_resources(settings)
    with dg.instance_for_test() as instance:

        def tick() -> object:
            return landing_files_sensor(
                dg.build_sensor_context(instance=instance, resources=resources)
            )

        assert isinstance(tick(), dg.SkipReason)
        builders.write_events(
            settings.landing / "currents", scenario.SEND, [builders.campaign_event("cmp_1", "u1")]
        )
        first = tick()
        assert isinstance(first, dg.RunRequest) and first.tags["ix/new_files"] == "1"
        second = tick()  # same file: same key, one run
        assert isinstance(second, dg.RunRequest) and second.run_key == first.run_key
        ingest(settings)
        assert isinstance(tick(), dg.SkipReason)
