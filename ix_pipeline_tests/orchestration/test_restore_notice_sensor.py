"""A restore run that failed without sending its notice (its step's process died) still tells
the requester, once; a restore whose op sent its own failure notice gets no second one. The
sensor is called directly on runs of a real instance; mail goes to a real SMTP server."""

from __future__ import annotations

import dagster as dg
import pytest

from ix_pipeline.definitions import build_defs, build_resources
from ix_pipeline.orchestration.restore_job import NOTICE_TAG
from ix_pipeline.orchestration.sensors import restore_notice_sensor
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline_tests.orchestration.test_restore_job import expired, run_restore, smtp_env
from ix_pipeline_tests.smtp import smtp_server

__all__ = ["expired"]  # the fixture, shared with the restore job's tests

RESTORE = "restore_interaction_data"


def tick(settings: Settings, instance: dg.DagsterInstance, run_id: str) -> None:
    """One evaluation of the sensor for the run's failure, as the daemon makes it."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    [failure] = [
        e.dagster_event
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.dagster_event.is_run_failure
    ]
    context = dg.build_run_status_sensor_context(
        sensor_name=restore_notice_sensor.name,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"mail": build_resources(settings)["mail"]},
    ).for_run_failure()
    restore_notice_sensor(context)


def test_a_restore_run_that_died_before_its_notice_gets_one_once(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (port, inbox), dg.instance_for_test() as instance:
        smtp_env(monkeypatch, port)
        settings = load_settings(expired.data_dir)
        job = build_defs(settings).resolve_job_def(RESTORE)
        config = {"campaign_ids": ["cmp_stop"], "requested_by": "ana@example.com"}
        run = instance.create_run_for_job(
            job, run_config={"ops": {"restore_items": {"config": config}}}
        )
        # What the daemon records when the step's process dies: the run fails, no op event.
        instance.report_run_failed(run, "the run worker exited unexpectedly")
        tick(settings, instance, run.run_id)
        tick(settings, instance, run.run_id)  # the daemon never sees a run twice; still once
        tags = instance.get_run_by_id(run.run_id).tags  # type: ignore[union-attr]
    [mail] = inbox
    assert mail["To"] == "ana@example.com" and "restore interrupted" in mail["Subject"]
    body = mail.get_payload()
    assert "cmp_stop" in body and run.run_id in body
    assert tags[NOTICE_TAG].startswith("smtp://127.0.0.1")


def test_a_restore_whose_op_sent_its_failure_notice_gets_no_second_one(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (port, inbox), dg.instance_for_test() as instance:
        smtp_env(monkeypatch, port)
        settings = load_settings(expired.data_dir)
        result = run_restore(settings, instance, campaign_ids=["cmp_old"])
        assert not result.success
        tick(settings, instance, result.run_id)
    [mail] = inbox
    assert "FAILED" in mail["Subject"] and "interrupted" not in mail["Subject"]
