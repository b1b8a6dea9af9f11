"""The code location loads, validates, and its jobs run for real on a Dagster instance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
