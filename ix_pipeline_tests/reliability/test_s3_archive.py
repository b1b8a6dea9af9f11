"""The archive in an S3-compatible bucket (moto's server on loopback, a separate process),
configured only through the environment a user sets for a real bucket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from deltalake import DeltaTable

from ix_pipeline.lifecycle.expiry import run_expiry
from ix_pipeline.lifecycle.restore import RestoreRequest, plan_restore, run_restore
from ix_pipeline.orchestration.resources import ArchiveResource
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection, registered
from ix_pipeline_tests.conftest import at
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT, rows_of
from ix_pipeline_tests.lifecycle.test_expiry import EXPIRING, archived_rows, assert_invariants
from ix_pipeline_tests.reliability.append_worker import batch
from ix_pipeline_tests.reliability.leaks import assert_absent, assert_runs_keep_secrets
from ix_pipeline_tests.reliability.s3 import S3Server
from ix_pipeline_tests.smtp import smtp_server
from ix_pipeline_tests.test_cli import ix

TABLES = ("campaign_interactions", "canvas_interactions")
SMTP_PASSWORD = "ix-smtp-password-5f0c9e2b"


def s3_archive(settings: Settings) -> Archive:
    # The production path: the resource turns the AWS_* environment into storage options.
    return ArchiveResource(uri=settings.archive_uri).archive()


def assert_archive_is_in_the_bucket(s3: S3Server, prefix: str, settings: Settings) -> None:
    keys = s3.keys(prefix)
    for table in TABLES:
        assert f"{prefix}/{table}/_delta_log/00000000000000000000.json" in keys
        assert any(
            k.startswith(f"{prefix}/{table}/item_key=") and k.endswith(".parquet") for k in keys
        )
    # Nothing fell back to the local default folder.
    assert not (settings.data_dir / "archive").exists()


def test_the_server_is_a_real_http_s3_that_enforces_conditional_writes(s3: S3Server) -> None:
    """The concurrent-writer guarantee rests on `If-None-Match: *`; prove this server honours it."""
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="probe/x", Body=b"first")
    with pytest.raises(ClientError) as err:
        client.put_object(Bucket=s3.bucket, Key="probe/x", Body=b"second", IfNoneMatch="*")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError):
        client.put_object(Bucket=s3.bucket, Key="probe/x", Body=b"second", IfMatch='"not-the-etag"')
    assert client.get_object(Bucket=s3.bucket, Key="probe/x")["Body"].read() == b"first"


def test_expiry_and_restore_round_trip_through_the_bucket(
    s3_settings: Settings, s3: S3Server, s3_prefix: str
) -> None:
    settings = s3_settings
    assert settings.archive_uri == f"s3://{s3.bucket}/{s3_prefix}"
    scenario.build(settings)
    before = {i: rows_of(settings, i) for i in EXPIRING}
    with hot_connection(settings.hot_db) as con:
        expired = run_expiry(con, s3_archive(settings), at(NIGHT), "s3-expiry")
    assert sorted(expired.expired) == EXPIRING
    assert expired.rows_archived == sum(len(r) for r in before.values()) == expired.rows_deleted
    for item_id, rows in before.items():
        assert rows_of(settings, item_id) == []
        # Every column, every row.
        assert archived_rows(settings, item_id, s3_archive(settings)) == rows
    assert_archive_is_in_the_bucket(s3, s3_prefix, settings)
    assert_invariants(settings)  # reads the archive via the same environment

    with hot_connection(settings.hot_db) as con:
        plan = plan_restore(
            con, RestoreRequest(campaign_ids=("cmp_stop", "cmp_tagref"), tags=("promo",))
        )
        restored = run_restore(
            con, s3_archive(settings), plan, at("2025-06-10T08:30:00Z"), "s3-restore"
        )
    assert sorted(restored.restored) == EXPIRING
    assert {i: rows_of(settings, i) for i in EXPIRING} == before
    assert_invariants(settings)
    # The archive keeps its copy (it is never rewritten to drop data).
    assert {i: archived_rows(settings, i, s3_archive(settings)) for i in EXPIRING} == before


def test_ix_cli_end_to_end_against_the_bucket_keeps_secrets_out(
    s3_settings: Settings, s3: S3Server, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ix` processes find the bucket through the environment alone; the S3 secret key and the
    SMTP password are used (the restore reads the bucket and logs in to send its notice) and
    appear nowhere: not in output, run config, run logs, or any file the runs leave."""
    # Ingest runs in-process: it never touches the archive, and `ix ingest` costs ~13 s here
    # (test_cli.py covers it as a process).
    scenario.build(s3_settings)
    before = {i: rows_of(s3_settings, i) for i in EXPIRING}
    secrets = [SMTP_PASSWORD, s3.secret_access_key]
    with smtp_server() as (port, messages):
        for key, value in {"IX_SMTP_HOST": "127.0.0.1", "IX_SMTP_PORT": str(port), "IX_SMTP_STARTTLS": "false",
                           "IX_SMTP_USER": "ix", "IX_SMTP_PASSWORD": SMTP_PASSWORD}.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        settings = load_settings(s3_settings.data_dir)
        real = ix(settings, "expire", "--json", "--as-of", NIGHT)
        doc = json.loads(real.stdout)
        assert sorted(doc["expired"]) == EXPIRING
        assert doc["rows_archived"] == sum(len(r) for r in before.values())
        assert_archive_is_in_the_bucket(s3, s3_prefix, settings)
        status = ix(settings, "status", "--json", *EXPIRING)
        assert {
            s["id"]: (s["state"], s["hot_rows"], s["archived_rows"])
            for s in json.loads(status.stdout)
        } == {i: ("expired", 0, len(before[i])) for i in EXPIRING}
        restore = ix(settings, "restore", "--json", "--tag", "promo", "--campaign", "cmp_tagref")
        assert sorted(json.loads(restore.stdout)["restored"]) == EXPIRING
        # Delivered: with IX_SMTP_USER set, send_mail logs in first, so the password was used.
        assert len(messages) == 1
    assert {i: rows_of(settings, i) for i in EXPIRING} == before
    assert_invariants(settings)

    outputs = [p.stdout + p.stderr for p in (real, status, restore)]
    assert_absent(secrets, *outputs, folder=settings.data_dir)
    assert assert_runs_keep_secrets(settings, secrets) == [
        "nightly_expiry",
        "restore_interaction_data",
    ]


def test_two_processes_appending_at_once_keep_every_commit(
    s3_settings: Settings, tmp_path: Path
) -> None:
    settings = s3_settings
    archive = s3_archive(settings)
    archive.append("campaign", batch("seed", 0, 3))  # the table exists, as after the first night
    commits, rows = 4, 20
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "IX_DATA_DIR": str(settings.data_dir)}
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ix_pipeline_tests.reliability.append_worker",
                name,
                str(commits),
                str(rows),
                str(barrier),
            ],
            env=env,
            cwd=Path(__file__).parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("a", "b")
    }
    deadline = time.monotonic() + 60
    while not all((barrier / f"{n}.ready").exists() for n in procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    (barrier / "go").touch()
    spans = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        spans[name] = tuple(map(float, out.split()))
    # They really wrote at the same time: their append windows overlap.
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1], spans

    table = DeltaTable(archive.table_uri("campaign"), storage_options=archive.storage_options)
    # One log version per append, none overwritten: the seed commit, then 2 x `commits`.
    assert table.version() == 2 * commits
    assert [h["operation"] for h in table.history()].count("WRITE") == 2 * commits + 1
    ids = table.to_pyarrow_table(columns=["id"])["id"].to_pylist()
    expected = {f"{n}-{c}-{r}" for n in "ab" for c in range(commits) for r in range(rows)}
    assert len(ids) == len(set(ids)) == len(expected) + 3 and expected <= set(ids)


def test_commits_rely_on_put_if_absent(
    s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With conditional put switched off the commit cannot be made safely, so deltalake refuses
    to write at all: proof that every commit above went through `If-None-Match: *`."""
    monkeypatch.setenv("AWS_CONDITIONAL_PUT", "disabled")
    with pytest.raises(OSError, match="PutMode::Create"):
        s3_archive(s3_settings).append("campaign", batch("x", 0, 1))


READS = {
    "the named items": ({"item_ids": ["cmp_a", "cmp_c"]}, {"cmp_a": 40, "cmp_c": 40}),
    "their partitions": ({"item_ids": ["cmp_b"], "partitions_only": True}, {"cmp_b": 40}),
    "all but some ids": (
        {"item_ids": ["cmp_b"], "except_ids": pa.array(["b-0-1", "b-0-7"])},
        {"cmp_b": 38},
    ),
    "every row": ({}, {"cmp_a": 40, "cmp_b": 40, "cmp_c": 40}),
    "an item never archived": ({"item_ids": ["cmp_zz"]}, {}),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_the_archive_reads_the_same_from_a_bucket_as_from_a_folder(
    s3_settings: Settings, tmp_path: Path, read: tuple[dict, dict[str, int]]
) -> None:
    """A local archive is read by DuckDB's Parquet reader, one in a bucket through pyarrow."""
    how, counts = read
    folder, bucket = Archive(str(tmp_path / "folder_archive")), s3_archive(s3_settings)
    assert folder.is_local and not bucket.is_local
    for archive in (folder, bucket):
        for name in ("a", "b", "c"):
            archive.append("campaign", batch(name, 0, 40))

    def rows(con: duckdb.DuckDBPyConnection, archive: Archive) -> list[tuple]:
        read = archive.rows(con, "campaign", ["item_id", "id", "user_id"], **how)
        with registered(con, "_rows", read):
            return con.execute("SELECT * FROM _rows ORDER BY id").fetchall()

    with duckdb.connect() as con:
        from_folder = rows(con, folder)
        assert from_folder == rows(con, bucket)
    assert Counter(item for item, _, _ in from_folder) == counts
    if "except_ids" in how:
        assert {"b-0-1", "b-0-7"}.isdisjoint(i for _, i, _ in from_folder)
