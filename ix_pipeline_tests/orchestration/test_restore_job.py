"""The restore job on a real instance: mail on success and on failure, through a real SMTP
server on loopback; secrets never in logs or run config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ix_pipeline.definitions import build_defs
from ix_pipeline.notifications.mail import Mail, MailError
from ix_pipeline.orchestration.resources import MailResource
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline_tests.builders import campaign, campaign_event, write_catalog, write_events
from ix_pipeline_tests.conftest import ingest, q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT, SEND
from ix_pipeline_tests.lifecycle.test_expiry import expire
from ix_pipeline_tests.smtp import smtp_server

SECRET = "s3cr3t-Pa55word!"


def run_restore(
    settings: Settings, instance: dg.DagsterInstance, **config: object
) -> dg.ExecuteInProcessResult:
    job = build_defs(settings).resolve_job_def("restore_interaction_data")
    return job.execute_in_process(
        run_config={"ops": {"restore_items": {"config": config}}},
        instance=instance,
        raise_on_error=False,
    )


@pytest.fixture
def expired(settings: Settings) -> Settings:
    scenario.build(settings)
    expire(settings, NIGHT)
    return settings


def smtp_env(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("IX_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IX_SMTP_PORT", str(port))
    monkeypatch.setenv("IX_SMTP_STARTTLS", "false")
    monkeypatch.setenv("IX_SMTP_USER", "ix")
    monkeypatch.setenv("IX_SMTP_PASSWORD", SECRET)


def test_success_mail_lists_items_and_rows(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (port, inbox), dg.instance_for_test() as instance:
        smtp_env(monkeypatch, port)
        settings = load_settings(expired.data_dir)
        result = run_restore(settings, instance, tags=["promo"], requested_by="ana@example.com")
        assert result.success
        [mail] = inbox
        logs = "\n".join(str(e.message) for e in instance.all_logs(result.run_id))
        run_config = str(instance.get_run_by_id(result.run_id).run_config)  # type: ignore[union-attr]
    assert mail["To"] == "ana@example.com" and "2 items available again" in mail["Subject"]
    body = mail.get_payload()
    assert "cmp_stop: 11 rows" in body and "cnv_stop: 11 rows" in body and "Duration" in body
    assert q(expired, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [("hot",)]
    assert SECRET not in logs and SECRET not in run_config and SECRET not in body


def test_the_job_restores_the_item_named_not_one_whose_id_differs_by_a_space(
    settings: Settings,
) -> None:
    write_catalog(settings.landing / "catalog", [campaign("cmp_a"), campaign("cmp_a ")])
    write_events(settings.landing / "currents", SEND,
                 [campaign_event("cmp_a", "u1"), campaign_event("cmp_a ", "u2")])  # fmt: skip
    ingest(settings)
    assert sorted(expire(settings, NIGHT).expired) == ["cmp_a", "cmp_a "]
    with dg.instance_for_test() as instance:
        result = run_restore(settings, instance, campaign_ids=["cmp_a "])
    assert result.success
    assert result.output_for_node("restore_items")["restored"] == ["cmp_a "]
    assert dict(q(settings, "SELECT item_id, state FROM item_lifecycle")) == {
        "cmp_a": "expired",
        "cmp_a ": "hot",
    }


def test_failure_mail_says_why_and_the_run_fails(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (port, inbox), dg.instance_for_test() as instance:
        smtp_env(monkeypatch, port)
        settings = load_settings(expired.data_dir)
        result = run_restore(settings, instance, campaign_ids=["cmp_old"])
        assert not result.success
        [mail] = inbox
    assert mail["To"] == "data-team@localhost" and "FAILED" in mail["Subject"]
    assert "pre-2024 retention policy" in mail.get_payload()


def test_without_smtp_the_mail_lands_in_the_outbox(expired: Settings) -> None:
    with dg.instance_for_test() as instance:
        result = run_restore(expired, instance, campaign_ids=["cmp_stop"], canvas_ids=["cnv_stop"])
        assert result.success
        assert result.output_for_node("restore_items")["rows_per_item"] == {
            "cmp_stop": 11,
            "cnv_stop": 11,
        }
    [eml] = list(expired.outbox.glob("*.eml"))
    assert "restore done: 2 items" in eml.read_text()


def test_a_mail_server_that_is_down_does_not_hide_the_restore(
    expired: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ix_pipeline_tests.smtp import free_port

    smtp_env(monkeypatch, free_port())  # nothing listens there
    with dg.instance_for_test() as instance:
        result = run_restore(load_settings(expired.data_dir), instance, campaign_ids=["cmp_stop"])
        assert result.success  # the restore worked; only its notice could not go out
        assert result.output_for_node("restore_items")["notified"].startswith("not sent")
        logs = "\n".join(str(e.message) for e in instance.all_logs(result.run_id))
    assert "the notice could not be sent" in logs and SECRET not in logs
    # The data is back even though the mail could not go out.
    assert q(expired, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [("hot",)]


def test_bulk_restore_of_a_hundred_items_reports_per_item(settings: Settings) -> None:
    from ix_pipeline_tests import builders
    from ix_pipeline_tests.conftest import ingest

    ids = [f"cmp_{i:03d}" for i in range(100)]
    builders.write_catalog(
        settings.landing / "catalog", [builders.campaign(i, tags=["bulk"]) for i in ids]
    )
    builders.write_events(settings.landing / "currents", scenario.SEND,
                          [builders.campaign_event(i, f"u{k}") for i in ids for k in range(3)])  # fmt: skip
    ingest(settings)
    assert len(expire(settings, NIGHT).expired) == 100
    with dg.instance_for_test() as instance:
        result = run_restore(settings, instance, tags=["bulk"])
        assert result.success
        out = result.output_for_node("restore_items")
    assert sorted(out["restored"]) == ids and set(out["rows_per_item"].values()) == {3}


def test_expiring_soon_lists_items_and_mails_them(settings: Settings) -> None:
    from ix_pipeline_tests import builders
    from ix_pipeline_tests.conftest import ingest

    builders.write_catalog(settings.landing / "catalog", [
        builders.campaign("cmp_soon", stopped_at="2025-02-03T00:00:00Z"),
        builders.campaign("cmp_later", stopped_at="2025-03-20T00:00:00Z"),
        builders.campaign("cmp_due", stopped_at="2025-01-01T00:00:00Z"),
    ])  # fmt: skip
    ingest(settings)
    defs = build_defs(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("expiring_soon_notice").execute_in_process(
            run_config={
                "ops": {"expiring_soon": {"config": {"as_of": "2025-04-30T00:00:00Z", "days": 7}}}
            },
            instance=instance,
        )
        [mat] = result.asset_materializations_for_node("expiring_soon")
    assert mat.metadata["item_ids"].value == ["cmp_soon"]
    [eml] = list(settings.outbox.glob("*.eml"))
    assert "cmp_soon" in eml.read_text() and "cmp_later" not in eml.read_text()


def test_an_outbox_that_cannot_be_written_is_a_mail_error_naming_it(tmp_path: Path) -> None:
    blocked = tmp_path / "outbox"
    blocked.write_text("a file where the outbox folder should be")
    with pytest.raises(MailError, match="could not write the mail to .*outbox"):
        MailResource(outbox=str(blocked)).send(Mail("ana@example.com", "subject", "body"))
