"""The catalog sensor on a real instance and a real DuckDB file (rule 10, dead references)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import dagster as dg
import pytest

from ix_pipeline.definitions import build_defs, build_resources
from ix_pipeline.faults import FAULT_EXIT_CODE
from ix_pipeline.orchestration.sensors import catalog_sensor
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline_tests.builders import campaign, consumer, write_catalog
from ix_pipeline_tests.conftest import ingest
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT
from ix_pipeline_tests.lifecycle.test_expiry import assert_invariants, expire
from ix_pipeline_tests.smtp import smtp_server
from ix_pipeline_tests.test_cli import ix


def tick(
    settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None
) -> tuple[object, str | None]:
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=build_resources(settings)
    )
    result = catalog_sensor(ctx)
    return result, ctx.cursor


def restore_requests(result: object) -> list[dg.RunRequest]:
    if not isinstance(result, list):
        return []
    return [r for r in result if r.job_name == "restore_interaction_data"]


def check_evaluations(settings: Settings, instance: dg.DagsterInstance) -> dict[str, Any]:
    """Run `catalog_refresh` (as the sensor would) and collect its asset check results."""
    run = (
        build_defs(settings)
        .resolve_job_def("catalog_refresh")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


@pytest.fixture
def expired(settings: Settings) -> Settings:
    scenario.build(settings)
    expire(settings, NIGHT)  # cmp_stop, cmp_tagref, cnv_stop are expired
    return settings


def add_docs(settings: Settings, *docs: dict) -> None:
    write_catalog(settings.landing / "catalog", list(docs))
    ingest(settings)


def test_new_active_campaign_referencing_expired_item_requests_one_restore(
    expired: Settings,
) -> None:
    with dg.instance_for_test() as instance:
        _, cursor = tick(expired, instance)  # settle on the current catalog
        add_docs(expired, campaign("cmp_new", status="active", stopped_at=None, updated_at="2025-06-01T00:00:00Z",
                                   audience={"filter": "clicked_opened_campaign", "campaign_id": "cmp_stop", "action": "any"}))  # fmt: skip
        result, cursor = tick(expired, instance, cursor)
        [request] = restore_requests(result)
        assert request.run_config["ops"]["restore_items"]["config"]["campaign_ids"] == ["cmp_stop"]
        assert (
            "cmp_new" in request.tags["ix/reason"]
            and request.tags["ix/trigger"] == "catalog_sensor"
        )
        again, _ = tick(expired, instance, cursor)
        assert restore_requests(again) == []


def test_a_tag_reference_to_an_expired_item_requests_nothing(expired: Settings) -> None:
    with dg.instance_for_test() as instance:
        _, cursor = tick(expired, instance)
        add_docs(
            expired, consumer("seg_tag", audience={"filter": "received_with_tag", "tag": "promo"})
        )
        result, _ = tick(expired, instance, cursor)
        assert restore_requests(result) == []


def test_resumed_stopped_item_whose_data_expired_requests_one_restore(expired: Settings) -> None:
    with dg.instance_for_test() as instance:
        _, cursor = tick(expired, instance)
        add_docs(expired, {**campaign("cmp_tagref", status="active", stopped_at=None, tags=["vip"]),
                           "updated_at": "2025-07-01T00:00:00Z"})  # fmt: skip
        result, _ = tick(expired, instance, cursor)
        [request] = restore_requests(result)
        assert request.run_config["ops"]["restore_items"]["config"]["campaign_ids"] == [
            "cmp_tagref"
        ]
        assert "active again" in request.tags["ix/reason"]


def test_the_requested_restore_runs_and_the_need_is_gone(expired: Settings) -> None:
    add_docs(
        expired,
        consumer(
            "seg_need",
            audience={
                "filter": "received_canvas_step",
                "canvas_id": "cnv_stop",
                "step_id": "cnv_stop_s1",
            },
        ),
    )
    defs = build_defs(expired)
    with dg.instance_for_test() as instance:
        result, cursor = tick(expired, instance)
        [request] = restore_requests(result)
        run = defs.resolve_job_def("restore_interaction_data").execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        )
        assert run.success and run.output_for_node("restore_items")["restored"] == ["cnv_stop"]
        [eml] = list(expired.outbox.glob("*.eml"))
        assert "Restored automatically" in eml.read_text() and "seg_need" in eml.read_text()
        again, _ = tick(expired, instance, cursor)
        assert restore_requests(again) == []


def test_a_restore_that_died_halfway_is_resumed_once(expired: Settings) -> None:
    crashed = ix(
        expired, "restore", "--campaign", "cmp_stop", fault="restore.mid_copy", check=False
    )
    assert crashed.returncode == FAULT_EXIT_CODE
    defs = build_defs(expired)
    with dg.instance_for_test() as instance:
        result, cursor = tick(expired, instance)
        [request] = restore_requests(result)
        assert request.run_config["ops"]["restore_items"]["config"]["campaign_ids"] == ["cmp_stop"]
        assert "stopped halfway" in request.tags["ix/reason"]
        run = defs.resolve_job_def("restore_interaction_data").execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        )
        assert run.success and run.output_for_node("restore_items")["restored"] == ["cmp_stop"]
        again, _ = tick(expired, instance, cursor)
        assert restore_requests(again) == []
    assert_invariants(expired)


def test_a_restore_that_died_with_no_consumer_waiting_fails_no_check_when_auto_restore_is_off(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IX_AUTO_RESTORE", "false")
    crashed = ix(
        expired, "restore", "--campaign", "cmp_stop", fault="restore.mid_copy", check=False
    )
    assert crashed.returncode == FAULT_EXIT_CODE
    with dg.instance_for_test() as instance:
        evaluations = check_evaluations(load_settings(expired.data_dir), instance)
    assert evaluations["active_consumers_have_their_data"].passed
    # The item left halfway is reported, as a warning: its rows are safe in the archive.
    stuck = evaluations["expired_items_invisible"]
    assert not stuck.passed and stuck.severity == dg.AssetCheckSeverity.WARN


def test_a_mail_server_that_is_down_holds_back_the_notice_not_the_restore(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_docs(
        expired,
        consumer("seg_need", audience={"filter": "received_campaign", "campaign_id": "cmp_stop"}),
        consumer("seg_dead", audience={"filter": "received_campaign", "campaign_id": "cmp_nope"}),
    )
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("IX_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IX_SMTP_PORT", str(port))
    monkeypatch.setenv("IX_SMTP_STARTTLS", "false")
    with dg.instance_for_test() as instance:
        result, cursor = tick(load_settings(expired.data_dir), instance)
        [request] = restore_requests(result)
        assert request.run_config["ops"]["restore_items"]["config"]["campaign_ids"] == ["cmp_stop"]
        with smtp_server() as (up, inbox):
            monkeypatch.setenv("IX_SMTP_PORT", str(up))
            tick(load_settings(expired.data_dir), instance, cursor)
        [notice] = inbox
    assert "cmp_nope" in notice.get_payload()


def test_auto_restore_off_requests_nothing_and_the_blocking_check_names_the_consumer(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IX_AUTO_RESTORE", "false")
    settings = load_settings(expired.data_dir)
    add_docs(
        settings,
        consumer("seg_need", audience={"filter": "received_campaign", "campaign_id": "cmp_stop"}),
    )
    with dg.instance_for_test() as instance:
        result, _ = tick(settings, instance)
        assert restore_requests(result) == []
        evaluations = check_evaluations(settings, instance)
    need = evaluations["active_consumers_have_their_data"]
    assert (
        not need.passed
        and "seg_need" in (need.description or "")
        and "cmp_stop" in (need.description or "")
    )


def test_legacy_deleted_reference_fails_the_check_and_sends_a_notice(expired: Settings) -> None:
    # A consumer whose filter names a legacy-deleted item (recorded as an invalid consumer).
    add_docs(
        expired,
        consumer("seg_dead", audience={"filter": "received_campaign", "campaign_id": "cmp_old"}),
    )
    with dg.instance_for_test() as instance:
        tick(expired, instance)
        evaluations = check_evaluations(expired, instance)
    dead = evaluations["no_dead_references"]
    assert (
        not dead.passed
        and "seg_dead" in (dead.description or "")
        and "pre-2024" in (dead.description or "")
    )
    notices = [p.read_text() for p in expired.outbox.glob("*.eml")]
    assert any("seg_dead" in n and "can never be evaluated" in n for n in notices)


def test_a_locked_hot_store_skips_the_tick(expired: Settings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
         str(expired.hot_db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with dg.instance_for_test() as instance:
            started = time.monotonic()
            result, cursor = tick(expired, instance, json.dumps({"files": "x"}))
            assert time.monotonic() - started < 5
        requests = result if isinstance(result, list) else []
        assert all(r.job_name == "catalog_refresh" for r in requests)
        if not requests:
            assert isinstance(result, dg.SkipReason) and "busy" in (result.skip_message or "")
    finally:
        holder.kill()
        holder.wait()


def test_a_tick_on_a_demo_sized_catalog_is_fast(settings: Settings) -> None:
    from ix_pipeline.demo.workspace import generate_workspace

    generate_workspace(
        settings.data_dir, n_users=2_000, n_events=20_000, n_campaigns=200, n_canvases=50, seed=3
    )
    ingest(settings)
    with dg.instance_for_test() as instance:
        started = time.monotonic()
        tick(settings, instance)
        assert time.monotonic() - started < 5
