"""Sensors end to end, as they run in production: `dagster dev` (webserver + daemon) runs them
and mail reaches a real SMTP server on loopback. Rule 10: a new catalog document that needs
expired data triggers a restore run. A restore launched from the UI whose step process dies
still tells the requester."""

from __future__ import annotations

import time

from ix_pipeline.faults import FAULT_ENV
from ix_pipeline.orchestration.restore_job import NOTICE_TAG
from ix_pipeline.settings import Settings
from ix_pipeline_tests.builders import campaign, write_catalog
from ix_pipeline_tests.conftest import q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT
from ix_pipeline_tests.lifecycle.test_expiry import expire
from ix_pipeline_tests.smtp import free_port, smtp_server
from ix_pipeline_tests.ui.server import (
    LOCATION,
    REPOSITORY,
    dagster_dev,
    graphql,
    stop_sensors,
    wait_until_ready,
    workspace_env,
)

TIMEOUT = 300


def test_new_catalog_document_needing_expired_data_is_restored_and_mailed(
    settings: Settings,
) -> None:
    scenario.build(settings)
    expire(settings, NIGHT)
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [
        ("expired",)
    ]
    with smtp_server() as (smtp_port, mails):
        env = workspace_env(settings.data_dir, smtp_port)
        port = free_port()
        log = settings.data_dir / "dagster-dev.log"
        with dagster_dev(env, port, log) as proc:
            wait_until_ready(f"http://127.0.0.1:{port}", proc, log)
            newcomer = campaign("cmp_winback", status="active", stopped_at=None, updated_at="2025-06-01T00:00:00Z",
                                audience={"filter": "clicked_opened_campaign", "campaign_id": "cmp_stop", "action": "clicked"})  # fmt: skip
            write_catalog(settings.landing / "catalog", [newcomer], name="new-campaign.json")
            deadline = time.monotonic() + TIMEOUT
            while not any("restore done" in (m["Subject"] or "") for m in mails):
                assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
                assert time.monotonic() < deadline, (
                    f"no restore mail after {TIMEOUT} s; runs: {_runs(port)}\n{log.read_text(errors='replace')[-3000:]}"
                )
                time.sleep(2)
            runs = _runs(port)
    [mail] = [m for m in mails if "restore done" in (m["Subject"] or "")]
    body = mail.get_payload()
    assert "cmp_stop" in body and "Restored automatically" in body and "cmp_winback" in body
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [("hot",)]
    restores = [r for r in runs if r["jobName"] == "restore_interaction_data"]
    assert (
        len(restores) == 1
        and {"key": "ix/trigger", "value": "catalog_sensor"} in restores[0]["tags"]
    )


LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def test_a_ui_launched_restore_whose_step_process_dies_sends_one_notice(
    settings: Settings,
) -> None:
    scenario.build(settings)
    expire(settings, NIGHT)
    with smtp_server() as (smtp_port, mails):
        env = {**workspace_env(settings.data_dir, smtp_port), FAULT_ENV: "restore.mid_copy"}
        # Only the notice sensor: the others would queue their own runs ahead of the restore.
        stop_sensors(settings.dagster_home, ["landing_files_sensor", "catalog_sensor"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = settings.data_dir / "dagster-dev.log"
        with dagster_dev(env, port, log) as proc:
            wait_until_ready(url, proc, log)
            selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                        "jobName": "restore_interaction_data"}  # fmt: skip
            config = {"campaign_ids": ["cmp_stop"], "requested_by": "ana@example.com"}
            launched = graphql(url, LAUNCH, {"p": {
                "selector": selector, "runConfigData": {"ops": {"restore_items": {"config": config}}},
            }})["launchRun"]  # fmt: skip
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            deadline = time.monotonic() + TIMEOUT
            while not mails:
                assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
                assert time.monotonic() < deadline, (
                    f"no notice after {TIMEOUT} s; runs: {_runs(port)}\n{log.read_text(errors='replace')[-3000:]}"
                )
                time.sleep(2)
            [run] = [r for r in _runs(port) if r["runId"] == run_id]
    [mail] = mails
    assert mail["To"] == "ana@example.com" and "restore interrupted" in mail["Subject"]
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert run_id in body and "step's process died" in body
    assert run["status"] == "FAILURE" and NOTICE_TAG in {t["key"] for t in run["tags"]}
    # The fault struck mid-copy: the item waits, invisible, for the catalog sensor to resume it.
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [
        ("restoring",)
    ]


def _runs(port: int) -> list[dict]:
    query = (
        "{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }"
    )
    return graphql(f"http://127.0.0.1:{port}", query)["runsOrError"]["results"]
