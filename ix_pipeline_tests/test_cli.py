"""The `ix` command line, run as a real process: the contract scripts depend on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from ix_pipeline.faults import FAULT_ENV, FAULT_EXIT_CODE
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.builders import campaign, consumer, write_catalog
from ix_pipeline_tests.conftest import derived_tables, q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT, rows_of, snapshot
from ix_pipeline_tests.lifecycle.test_expiry import EXPIRING, assert_invariants

IX = str(Path(sys.executable).with_name("ix"))


def ix(
    settings: Settings, *args: str, fault: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IX_DATA_DIR": str(settings.data_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    proc = subprocess.run([IX, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def ix_json(settings: Settings, *args: str) -> Any:  # the command's JSON document
    return json.loads(ix(settings, *args, "--json").stdout)


@pytest.fixture
def files_only(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The scenario's files in the landing folder; the CLI does the ingest."""
    monkeypatch.setattr(scenario, "ingest", lambda s: None)
    scenario.build(settings)
    return settings


def test_ingest_status_expire_restore_round_trip(files_only: Settings) -> None:
    settings = files_only
    doc = ix_json(settings, "ingest")
    assert doc["currents"]["events_stored"] == 77 and doc["catalog"]["items"] == 7
    status = ix_json(settings, "status", "cmp_stop", "cmp_exempt", "--as-of", NIGHT)
    assert [s["id"] for s in status] == ["cmp_exempt", "cmp_stop"]
    keys = {"id", "type", "name", "status", "state", "expires_at", "exempt_by", "reason", "hot_rows",
            "archived_rows", "last_restored_at"}  # fmt: skip
    assert keys <= set(status[1])
    assert status[0]["exempt_by"] == ["seg_keep"]
    assert status[1]["expires_at"] == "2025-04-30T10:00:00+00:00"
    before = snapshot(settings)
    dry = ix_json(settings, "expire", "--as-of", NIGHT, "--dry-run")
    assert sorted(dry["expired"]) == EXPIRING and snapshot(settings) == before
    real = ix_json(settings, "expire", "--as-of", NIGHT)
    assert sorted(real["expired"]) == EXPIRING and real["rows_archived"] == dry["rows_archived"]
    [after] = ix_json(settings, "status", "cmp_stop")
    assert after["state"] == "expired" and after["hot_rows"] == 0 and after["archived_rows"] == 11
    restored = ix_json(settings, "restore", "--tag", "promo", "--campaign", "cmp_active")
    assert sorted(restored["restored"]) == ["cmp_stop", "cnv_stop"]
    assert restored["already_hot"] == ["cmp_active"]
    assert restored["rows_restored"] == 22
    assert_invariants(settings)


def test_unknown_ids_exit_non_zero_and_change_nothing(files_only: Settings) -> None:
    ix(files_only, "ingest")
    ix(files_only, "expire", "--as-of", NIGHT)
    before = snapshot(files_only)
    proc = ix(
        files_only,
        "restore",
        "--campaign",
        "cmp_stop",
        "--campaign",
        "cmp_nope",
        "--canvas",
        "cnv_nope",
        check=False,
    )
    assert proc.returncode != 0
    assert (
        "cmp_nope" in proc.stderr
        and "cnv_nope" in proc.stderr
        and "nothing was restored" in proc.stderr
    )
    after = snapshot(files_only)
    assert {k: v for k, v in after.items()} == before


def test_an_ingest_stopped_by_a_blocking_check_names_the_consumer_and_the_item(
    settings: Settings,
) -> None:
    dead = consumer("seg_dead", audience={"filter": "received_campaign", "campaign_id": "cmp_nope"})
    write_catalog(settings.landing / "catalog", [campaign("cmp_a"), dead])
    proc = ix(settings, "ingest", check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ingest failed: no_dead_references")
    assert "seg_dead" in last and "cmp_nope" in last
    assert "Stack Trace" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_failed_run_prints_one_line_per_failure_and_keeps_its_traces_in_the_run_log(
    files_only: Settings,
) -> None:
    import dagster as dg

    settings = files_only
    ix(settings, "ingest")
    # A file where the campaign archive's folder should be: every step reading it fails.
    Path(settings.archive_uri).mkdir(parents=True, exist_ok=True)
    (Path(settings.archive_uri) / "campaign_interactions").write_text("not a folder")
    proc = ix(settings, "expire", "--as-of", NIGHT, check=False)
    assert proc.returncode == 1
    assert "Stack Trace" not in proc.stderr and 'File "' not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: expiry failed: ") and "campaign_interactions" in lines[-1]
    failed = [line for line in lines if " - failed: " in line]
    assert failed and all("campaign_interactions" in line for line in failed)
    [run_line] = [line for line in lines if "stack traces are in the run's log" in line]
    run_id = run_line.split(" run ")[1].split()[0]
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        failures = [
            e.dagster_event
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.is_step_failure
        ]
    assert failures and all(
        f.step_failure_data.error is not None and f.step_failure_data.error.stack for f in failures
    )


def test_a_bad_setting_and_a_bad_out_path_are_one_sentence_naming_them(
    files_only: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = files_only
    ix(settings, "ingest")
    (tmp_path / "afile").touch()
    out = str(tmp_path / "afile" / "x.csv")
    proc = ix(settings, "export", "item", "cmp_active", "--out", out, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "afile" in proc.stderr and "archive" not in proc.stderr
    monkeypatch.setenv("IX_SMTP_PORT", "abc")
    proc = ix(settings, "status", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "IX_SMTP_PORT must be a whole number, got 'abc'" in proc.stderr


@pytest.mark.parametrize(
    "args", [("expire", "--as-of", "31/12/2025"), ("status", "--as-of", "tomorrow")]
)
def test_malformed_dates_are_one_clear_sentence(settings: Settings, args: tuple[str, ...]) -> None:
    proc = ix(settings, *args, check=False)
    assert (
        proc.returncode != 0
        and "is not an ISO-8601 date" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_help_of_every_command_shows_an_example(settings: Settings) -> None:
    for cmd in ([], ["ingest"], ["expire"], ["restore"], ["status"], ["demo"]):
        out = ix(settings, *cmd, "--help").stdout
        assert "Example" in out and "--data-dir" in out or cmd == []


@pytest.mark.parametrize("fault", ["expiry.after_archive_write", "expiry.after_hot_delete"])
def test_expiry_killed_mid_way_converges_on_the_next_run(files_only: Settings, fault: str) -> None:
    settings = files_only
    ix(settings, "ingest")
    rows = {i: rows_of(settings, i) for i in EXPIRING}
    crashed = ix(settings, "expire", "--as-of", NIGHT, fault=fault, check=False)
    assert crashed.returncode == FAULT_EXIT_CODE
    states = dict(q(settings, "SELECT item_id, state FROM item_lifecycle"))
    if fault == "expiry.after_archive_write":
        # Archived but not deleted: the items are still hot-visible, mid-operation.
        assert (
            states["cmp_stop"] == "expiring" and rows_of(settings, "cmp_stop") == rows["cmp_stop"]
        )
    ix(settings, "expire", "--as-of", NIGHT)
    assert {
        i: s for i, s in q(settings, "SELECT item_id, state FROM item_lifecycle") if i in EXPIRING
    } == dict.fromkeys(EXPIRING, "expired")
    assert_invariants(settings)
    restored = ix_json(
        settings,
        "restore",
        "--campaign",
        "cmp_stop",
        "--campaign",
        "cmp_tagref",
        "--canvas",
        "cnv_stop",
    )
    assert restored["rows_restored"] == sum(len(r) for r in rows.values())
    assert {i: rows_of(settings, i) for i in EXPIRING} == rows


# Ingests the landing folder's Currents files in batches of about 20 events, so a run has
# several batches and the fault point can kill it between two of them.
_INGEST_IN_SMALL_BATCHES = """
import sys
from pathlib import Path
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.settings import load_settings
from ix_pipeline.store.hot import hot_connection
s = load_settings(sys.argv[1])
with hot_connection(s.hot_db) as con:
    ingest_currents(con, [s.landing / "currents"], s.quarantine, "crashing", batch_rows=20)
"""


def test_ingest_killed_between_batches_loses_no_summary(
    files_only: Settings, tmp_path: Path
) -> None:
    settings = files_only
    env = {**os.environ, FAULT_ENV: "ingest.after_batch"}
    crashed = subprocess.run([sys.executable, "-c", _INGEST_IN_SMALL_BATCHES, str(settings.data_dir)],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert crashed.returncode == FAULT_EXIT_CODE, crashed.stderr[-3000:]
    # The first batch's events and aggregates are committed; the fold is the last batch's job.
    stored = q(settings, "SELECT count(*) FROM event_ledger")[0][0]
    assert 20 <= stored < 77
    assert q(settings, "SELECT count(*) > 0 FROM user_summaries_pending") == [(True,)]
    assert q(settings, "SELECT count(*) FROM user_summaries") == [(0,)]
    ix(settings, "ingest")  # the rest of the files, and the crashed run's aggregates first
    assert q(settings, "SELECT count(*) FROM event_ledger") == [(77,)]
    assert q(settings, "SELECT count(*) FROM user_summaries_pending") == [(0,)]
    clean = load_settings(tmp_path / "clean")
    shutil.copytree(settings.landing, clean.landing)
    with hot_connection(clean.hot_db) as con:
        ingest_currents(con, [clean.landing], clean.quarantine, "clean")
    assert derived_tables(settings) == derived_tables(clean)


def test_restore_killed_mid_copy_converges_without_duplicates(files_only: Settings) -> None:
    settings = files_only
    ix(settings, "ingest")
    before = rows_of(settings, "cmp_stop")
    ix(settings, "expire", "--as-of", NIGHT)
    crashed = ix(
        settings, "restore", "--campaign", "cmp_stop", fault="restore.mid_copy", check=False
    )
    assert crashed.returncode == FAULT_EXIT_CODE
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [
        ("restoring",)
    ]
    with hot_connection(settings.hot_db, read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM visible_campaign_interactions WHERE item_id = 'cmp_stop'"
        ).fetchall() == [(0,)]
    assert list(settings.outbox.glob("*.eml")) == []  # the dead process sent nothing
    again = ix(settings, "restore", "--campaign", "cmp_stop")
    assert "marked run" in again.stderr
    assert rows_of(settings, "cmp_stop") == before
    assert_invariants(settings)
    # The next command reaped the dead run and sent its notice, then its own.
    subjects = [
        message_from_bytes(p.read_bytes())["Subject"] for p in settings.outbox.glob("*.eml")
    ]
    assert len(subjects) == 2 and "[ix_pipeline] restore interrupted" in subjects
    notice = next(p for p in settings.outbox.glob("*.eml") if b"interrupted" in p.read_bytes())
    assert b"cmp_stop" in notice.read_bytes() and b"stopped before" in notice.read_bytes()


def test_a_dead_restore_whose_notice_cannot_be_sent_does_not_stop_the_next_command(
    files_only: Settings,
) -> None:
    settings = files_only
    ix(settings, "ingest")
    ix(settings, "expire", "--as-of", NIGHT)
    crashed = ix(
        settings, "restore", "--campaign", "cmp_stop", fault="restore.mid_copy", check=False
    )
    assert crashed.returncode == FAULT_EXIT_CODE
    shutil.rmtree(settings.outbox, ignore_errors=True)
    settings.outbox.write_text("a file where the outbox folder should be")
    proc = ix(settings, "ingest")
    said = " ".join(proc.stderr.split())  # the console wraps long lines
    assert "marked run" in said and "could not be sent" in said


def test_a_demo_as_of_a_past_instant_has_no_history_after_it(settings: Settings) -> None:
    as_of = "2025-06-01T02:00:00Z"
    small = ["--users", "300", "--events", "3000", "--campaigns", "8", "--canvases", "3"]
    ix(settings, "demo", *small, "--as-of", as_of)
    [(last_event, last_stop)] = q(
        settings,
        """SELECT (SELECT max(time) FROM campaign_interactions),
                  (SELECT max(epoch(stopped_at))::BIGINT FROM catalog_items)""",
    )
    cutoff = int(datetime.fromisoformat(as_of).timestamp())
    assert last_event <= cutoff and last_stop <= cutoff


def test_expiry_and_restore_of_the_same_item_at_once(files_only: Settings) -> None:
    settings = files_only
    ix(settings, "ingest")
    before = rows_of(settings, "cmp_stop")
    ix(settings, "expire", "--as-of", NIGHT)
    env = {
        **os.environ,
        "IX_DATA_DIR": str(settings.data_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    procs = [
        subprocess.Popen([IX, "restore", "--campaign", "cmp_stop", "--as-of", "2025-06-01T00:00:00Z"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([IX, "expire", "--as-of", "2025-06-02T02:00:00Z"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    # Whichever went first, the restore wins (its new anchor is after the expiry's as-of).
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [("hot",)]
    assert rows_of(settings, "cmp_stop") == before
    assert_invariants(settings)


def test_audience_and_exports_hide_expired_items(files_only: Settings, tmp_path: Path) -> None:
    settings = files_only
    ix(settings, "ingest")
    members = ix_json(settings, "audience", "seg_keep", "--as-of", NIGHT)
    assert members["consumer_id"] == "seg_keep" and members["user_ids"]
    ix(settings, "expire", "--as-of", NIGHT)
    # cmp_tagref (tag vip) expired: seg_keep still evaluates, over cmp_exempt's hot data.
    after = ix_json(settings, "audience", "seg_keep", "--as-of", NIGHT)
    assert after["user_ids"] == members["user_ids"]
    proc = ix(settings, "export", "item", "cmp_stop", "--out", str(tmp_path / "x.csv"), check=False)
    assert (
        proc.returncode != 0
        and "restore it first" in proc.stderr
        and not (tmp_path / "x.csv").exists()
    )
    out = ix_json(settings, "export", "item", "cmp_active", "--out", str(tmp_path / "active.csv"))
    assert out["rows"] == 6
    assert (tmp_path / "active.csv").read_text().startswith('"user_id","external_user_id"')
    users = ix_json(settings, "export", "users", "--user", "u1", "--out", str(tmp_path / "u.jsonl"))
    assert users["users"] == 1
    [doc] = [json.loads(line) for line in (tmp_path / "u.jsonl").read_text().splitlines()]
    received = {c["api_campaign_id"] for c in doc["campaigns_received"]}
    assert "cmp_stop" not in received and "cmp_active" in received
    proc = ix(settings, "audience", "seg_nope", check=False)
    assert proc.returncode != 0 and "seg_nope" in proc.stderr
