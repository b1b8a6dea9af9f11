"""Hostile input does only what it says; secrets stay secret; servers stay on loopback.

Hostile strings travel the real paths: catalog JSON and Avro events through ingestion, the
`ix` command line (argv, run config of the Dagster job), SQL parameters, the archive's
partition layout, the outbox mail. Secrets are searched for byte by byte in everything a
run leaves behind.
"""

from __future__ import annotations

import email
import json
import os
import re
import traceback
from email import policy
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from ix_pipeline.audience.evaluate import evaluate_consumer
from ix_pipeline.cli import main
from ix_pipeline.definitions import build_resources
from ix_pipeline.exports.item_csv import export_item_csv
from ix_pipeline.lifecycle.expiry import run_expiry
from ix_pipeline.lifecycle.status import item_status
from ix_pipeline.orchestration.resources import ArchiveResource
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store.archive import item_key
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.builders import (
    T0,
    campaign,
    campaign_event,
    consumer,
    write_catalog,
    write_events,
)
from ix_pipeline_tests.conftest import archive_of, at, ingest, q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import CLICK, NIGHT, SEND, rows_of
from ix_pipeline_tests.reliability.leaks import assert_absent, assert_runs_keep_secrets
from ix_pipeline_tests.reliability.s3 import S3Server
from ix_pipeline_tests.smtp import free_port, smtp_server
from ix_pipeline_tests.test_cli import ix

SQLI = "x'); DROP TABLE campaign_interactions; --"
TRAVERSAL = "../../etc/passwd"
NUL = "cmp\x00nul"
NEWLINE = "cmp\nline"
CRLF = "cmp\r\nBcc: x@y"
HOSTILE_IDS = [SQLI, TRAVERSAL, NUL, NEWLINE, CRLF]
HOSTILE_TAG = "t'); DROP TABLE catalog_items; --"
MISSING_TAG = "nope'); DROP TABLE item_lifecycle; --"
HOSTILE_ALIAS = "a'); DROP TABLE user_summaries; --\r\nX: y"
HOSTILE_USER = "u'); DROP TABLE user_summaries; --"
TABLES = {"campaign_interactions", "canvas_interactions", "catalog_items", "audience_consumers",
          "filter_references", "item_lifecycle", "lifecycle_audit", "user_summaries",
          "item_analytics", "event_ledger"}  # fmt: skip


def tables(settings: Settings) -> set[str]:
    return {r[0] for r in q(settings, "SELECT table_name FROM duckdb_tables()")}


def counts(settings: Settings) -> dict[str, int]:
    return {t: q(settings, f"SELECT count(*) FROM {t}")[0][0] for t in sorted(TABLES)}  # noqa: S608


def cli(*args: str) -> tuple[int, str, str]:
    """Read-only commands in-process (same click code as the `ix` script, without a
    3-second interpreter start each); mutating ones run as real processes through `ix`."""
    result = CliRunner().invoke(main, list(args))
    errors = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # What a real process would print: the uncaught exception's traceback.
        errors += "".join(traceback.format_exception(result.exception))
    return result.exit_code, result.stdout, errors


@pytest.fixture
def hostile(settings: Settings) -> Settings:
    """Campaigns whose ids, tags, aliases and users carry SQL, paths and control characters."""
    docs = [
        campaign(cid, tags=[TRAVERSAL] if cid == TRAVERSAL else [HOSTILE_TAG])
        for cid in HOSTILE_IDS
    ]
    docs += [campaign("cmp_plain"),
             consumer("seg_alias", audience={"filter": "clicked_alias_in_any", "alias": HOSTILE_ALIAS})]  # fmt: skip
    write_catalog(settings.landing / "catalog", docs)
    root = settings.landing / "currents"
    for cid in [*HOSTILE_IDS, "cmp_plain"]:
        write_events(
            root,
            SEND,
            [
                campaign_event(cid, u, t=T0 + i)
                for i, u in enumerate([HOSTILE_USER, TRAVERSAL, "u1"])
            ],
        )
        write_events(
            root, CLICK, [campaign_event(cid, HOSTILE_USER, t=T0 + 50, link_alias=HOSTILE_ALIAS)]
        )
    ingest(settings)
    return settings


def test_hostile_ids_tags_aliases_and_users_do_only_what_they_say(
    hostile: Settings, tmp_path: Path
) -> None:
    settings = hostile
    assert set(HOSTILE_IDS) <= {r[0] for r in q(settings, "SELECT id FROM catalog_items")}
    before = {i: rows_of(settings, i) for i in [*HOSTILE_IDS, "cmp_plain"]}
    assert all(len(r) == 4 for r in before.values())
    initial = counts(settings)
    passwd = Path("/etc/passwd").stat() if Path("/etc/passwd").exists() else None

    with hot_connection(settings.hot_db) as con:
        expired = run_expiry(con, archive_of(settings), at(NIGHT), "hostile-expiry")
    assert sorted(expired.expired) == sorted([*HOSTILE_IDS, "cmp_plain"])

    # The archive layout: ids never become paths; every file is inside the archive folder,
    # in a partition named by the id's hash.
    archive_dir = settings.data_dir / "archive"
    keys = {item_key(i) for i in [*HOSTILE_IDS, "cmp_plain"]}
    for path in archive_dir.rglob("*"):
        rel = path.relative_to(archive_dir).parts
        assert path.resolve().is_relative_to(archive_dir.resolve())
        assert rel[0] == "campaign_interactions"
        if len(rel) > 1 and rel[1] != "_delta_log":
            assert re.fullmatch(r"item_key=[0-9a-f]{16}", rel[1]) and rel[1][9:] in keys
    for path in tmp_path.rglob("*"):
        assert path.name not in {"passwd", "etc"} and not re.search(r"[\x00-\x1f']|DROP", str(path))

    # status: argv carries every id but the NUL one (an OS limit), which goes through Python.
    argv_ids = [i for i in HOSTILE_IDS if "\x00" not in i]
    code, out, errs = cli("status", "--json", "--as-of", NIGHT, *argv_ids)
    assert code == 0, errs
    assert {s["id"]: (s["state"], s["hot_rows"], s["archived_rows"]) for s in json.loads(out)} == {
        i: ("expired", 0, 4) for i in argv_ids
    }
    with hot_connection(settings.hot_db, read_only=True) as con:
        [nul] = item_status(con, archive_of(settings), at(NIGHT), [NUL])
    assert (nul["id"], nul["state"], nul["archived_rows"]) == (NUL, "expired", 4)

    # restore through the real `ix` process: ids and tags pass argv → run config → SQL.
    proc = ix(settings, "restore", "--json", "--campaign", TRAVERSAL, "--campaign", NEWLINE,
              "--tag", HOSTILE_TAG, "--tag", MISSING_TAG)  # fmt: skip
    doc = json.loads(proc.stdout)
    assert sorted(doc["restored"]) == sorted(HOSTILE_IDS)
    assert doc["notes"] == [f"tag {MISSING_TAG!r} matches no expired item"]
    assert {i: rows_of(settings, i) for i in HOSTILE_IDS} == {i: before[i] for i in HOSTILE_IDS}
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_plain'") == [
        ("expired",)
    ]
    # The notice names the ids but forges no header (no Bcc from the CRLF id).
    [eml] = sorted((settings.outbox).glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert sorted(msg.keys()) == ["Content-Transfer-Encoding", "Content-Type", "Date", "From",
                                  "MIME-Version", "Message-ID", "Subject", "To"]  # fmt: skip
    assert msg["Bcc"] is None and "x@y" not in msg["To"]

    # export item: the file goes to --out, nowhere else, with the item's rows.
    item_csv = tmp_path / "exports" / "item.csv"
    code, _, errs = cli("export", "item", SQLI, "--out", str(item_csv))
    assert code == 0, errs
    assert len(item_csv.read_text().splitlines()) == 1 + 3  # header + one row per recipient
    with hot_connection(settings.hot_db, read_only=True) as con:
        assert export_item_csv(con, NUL, tmp_path / "exports" / "nul.csv") == 3
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["item.csv", "nul.csv"]

    # export users: hostile user ids are looked up, not executed; an unknown one is named.
    users_out = tmp_path / "exports" / "users.jsonl"
    code, _, errs = cli(
        "export", "users", "--user", HOSTILE_USER, "--user", TRAVERSAL, "--out", str(users_out)
    )
    assert code == 0, errs
    assert sorted(
        json.loads(line)["braze_id"] for line in users_out.read_text().splitlines()
    ) == sorted([HOSTILE_USER, TRAVERSAL])
    code, _, errs = cli(
        "export", "users", "--user", "v'); DROP TABLE user_summaries; --", "--out", str(users_out)
    )
    assert code == 1 and "unknown user: v'); DROP TABLE user_summaries; --" in errs

    # an alias in an audience filter is a value to compare, nothing more.
    with hot_connection(settings.hot_db, read_only=True) as con:
        assert evaluate_consumer(con, "seg_alias", at(NIGHT)) == [HOSTILE_USER]

    assert TABLES <= tables(settings)
    after = counts(settings)
    assert after == initial | {"campaign_interactions": initial["campaign_interactions"] - 4,  # cmp_plain
                               "item_lifecycle": after["item_lifecycle"], "lifecycle_audit": after["lifecycle_audit"]}  # fmt: skip
    assert q(settings, "SELECT count(DISTINCT item_id) FROM item_lifecycle") == [
        (len(HOSTILE_IDS) + 1,)
    ]
    if passwd is not None:
        assert Path("/etc/passwd").stat().st_mtime == passwd.st_mtime


# --- secrets ---------------------------------------------------------------------------------
# Secrets in use by real runs are checked in test_s3_archive.py (the `ix` end-to-end test
# logs in to SMTP and reads the bucket, then every run record, log and file is searched).

SMTP_PASSWORD = "ix-smtp-password-0b7d41aa"


def test_settings_and_resources_never_show_secrets(
    s3_settings: Settings, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IX_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IX_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = load_settings()
    assert settings.smtp_password == SMTP_PASSWORD
    archive = ArchiveResource(uri=settings.archive_uri).archive()
    # In use, not shown.
    assert archive.storage_options["AWS_SECRET_ACCESS_KEY"] == s3.secret_access_key
    assert_absent([SMTP_PASSWORD, s3.secret_access_key], repr(settings), str(settings), repr(archive),
                  str(archive), repr(build_resources(settings)))  # fmt: skip


def test_error_messages_never_show_secrets_and_failures_lose_nothing(
    s3_settings: Settings, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = s3_settings
    secrets = [SMTP_PASSWORD, s3.secret_access_key]
    for key, value in {"IX_SMTP_HOST": "127.0.0.1", "IX_SMTP_PORT": str(free_port()),  # nobody listens
                       "IX_SMTP_STARTTLS": "false", "IX_SMTP_USER": "ix", "IX_SMTP_PASSWORD": SMTP_PASSWORD}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    scenario.build(settings)
    before = {i: rows_of(settings, i) for i in ("cmp_stop", "cnv_stop")}
    # A bucket that does not exist: expiry fails, deletes nothing, and says so.
    monkeypatch.setenv("IX_ARCHIVE_URI", "s3://no-such-bucket/archive")
    expire = ix(settings, "expire", "--as-of", NIGHT, check=False)
    assert (
        expire.returncode == 1
        and "expiry failed" in expire.stderr
        and "Nothing was lost" in expire.stderr
    )
    assert {i: rows_of(settings, i) for i in before} == before
    # Left `expiring` (still visible) for the next run to resume; nothing became `expired`.
    assert q(settings, "SELECT count(*) FROM item_lifecycle WHERE state = 'expired'") == [(0,)]
    assert q(
        settings, "SELECT count(*) FROM visible_campaign_interactions WHERE item_id = 'cmp_stop'"
    ) == [(len(before["cmp_stop"]),)]
    code, _, status_err = cli("status", "cmp_stop")
    assert code == 1 and "NoSuchBucket" in status_err
    # An SMTP server that refuses the connection: the restore succeeds, and says where its
    # notice could not go.
    monkeypatch.setenv("IX_ARCHIVE_URI", settings.archive_uri)
    with hot_connection(settings.hot_db) as con:
        run_expiry(con, archive_of(settings), at(NIGHT), "expiry")
    restore = ix(settings, "restore", "--campaign", "cmp_stop", check=False)
    assert (
        restore.returncode == 0 and "not sent (could not send mail via 127.0.0.1" in restore.stdout
    )
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [("hot",)]
    # The data came back; only the notice failed.
    assert rows_of(settings, "cmp_stop") == before["cmp_stop"]
    assert_absent(secrets, expire.stdout, expire.stderr, status_err, restore.stdout, restore.stderr,
                  folder=settings.data_dir)  # fmt: skip
    assert assert_runs_keep_secrets(settings, secrets) == [
        "nightly_expiry",
        "restore_interaction_data",
    ]


# --- loopback ---------------------------------------------------------------------------------


def _listening(proc: psutil.Process, port: int | None = None) -> set[str]:
    procs = [proc, *proc.children(recursive=True)]
    return {c.laddr.ip for p in procs for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and (port is None or c.laddr.port == port)}  # fmt: skip


def test_every_server_binds_to_loopback_only(s3: S3Server) -> None:
    assert _listening(psutil.Process(s3.process.pid)) == {"127.0.0.1"}
    with smtp_server() as (port, _):
        assert _listening(psutil.Process(os.getpid()), port) == {"127.0.0.1"}


ROOT = Path(__file__).parents[2]
# A server start in the project's code, docs or tests: the statement must name 127.0.0.1.
_SERVER_START = re.compile(r"dagster\s+dev\s+-|\"dagster\",\s*\"dev\"|dagster-webserver\s+-|"
                           r"moto\.server|ThreadedMotoServer\(|Controller\(")  # fmt: skip


def test_no_server_in_code_docs_or_tests_listens_beyond_loopback() -> None:
    files = [ROOT / "README.md", ROOT / "workspace.yaml", *ROOT.glob("*.md"), *ROOT.glob("scripts/*"),
             *ROOT.glob("ix_pipeline/**/*.py"), *ROOT.glob("ix_pipeline_tests/**/*.py")]  # fmt: skip
    any_host = "0.0.0" + ".0"  # spelled apart so this file does not match itself
    starts = 0
    for path in {p for p in files if p.is_file()}:
        text = path.read_text(errors="replace")
        assert any_host not in text, path
        for m in _SERVER_START.finditer(text):
            statement = text[m.start() : m.start() + 400]
            starts += 1
            assert "127.0.0.1" in statement, f"{path}: {statement[:120]!r}"
    assert starts >= 3  # the README's dagster dev, the moto fixture, the SMTP fixture
    readme = (ROOT / "README.md").read_text()
    dev_lines = [line for line in readme.splitlines() if re.search(r"dagster\s+dev\s", line)]
    assert dev_lines and all("-h 127.0.0.1" in line for line in dev_lines)
