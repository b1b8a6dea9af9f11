"""Bad inputs, one kind per test: each is refused with a clear error (naming the file, the
record, the ID or the field), leaves no partial state, and loses none of the good records
that came with it; the store's invariants hold afterwards.

Kinds already covered elsewhere are not repeated here (docs/RELIABILITY.md lists them):
truncated Avro, wrong magic, an empty file, an Avro schema without a required field, a Parquet
`time` of type string, an Avro file whose schema disagrees with its path, `time` in
milliseconds, `id` empty or 10,000 characters, a bad JSON line and a non-UTF-8 line in the
middle of a file (ix_pipeline_tests/ingest/test_currents_ingest.py); unknown filter names,
missing parameters, unknown and legacy-deleted references, a document whose id is already
another type in the same run, a non-JSON catalog file, 900-deep audiences
(ix_pipeline_tests/ingest/test_catalog_ingest.py); unknown, Canvas-as-campaign and
legacy-deleted restore IDs, empty and blank tags (ix_pipeline_tests/lifecycle/test_restore.py,
ix_pipeline_tests/test_cli.py); `--as-of` malformed for `expire` and `status` (test_cli.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ix_pipeline.demo.currents_files import currents_path
from ix_pipeline.faults import FAULT_ENV
from ix_pipeline.ingest.catalog import MAX_JSON_DEPTH
from ix_pipeline.lifecycle.restore import RestoreRefused, RestoreRequest, plan_restore
from ix_pipeline.settings import Settings
from ix_pipeline.store import invariants
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection
from ix_pipeline.store.schema import ledger_key
from ix_pipeline_tests.builders import (
    T0,
    campaign,
    campaign_event,
    canvas,
    consumer,
    write_catalog,
    write_events,
)
from ix_pipeline_tests.conftest import ingest, q
from ix_pipeline_tests.lifecycle.scenario import NIGHT, snapshot

CLICK = "users.messages.email.Click"
CONVERSION = "users.campaigns.Conversion"
IX = str(Path(sys.executable).with_name("ix"))
HOUR = datetime(2025, 1, 10, 12, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Helpers: a good file next to every bad one, and the checks every case makes
# --------------------------------------------------------------------------------------------


def good_file(settings: Settings, n: int = 3) -> set[str]:
    """A well-formed Avro file delivered in the same batch as the bad input."""
    ids = {f"good-{i}" for i in range(n)}
    write_events(
        settings.landing / "currents",
        CLICK,
        [campaign_event("cmp_1", f"gu{i}", eid=f"good-{i}") for i in range(n)],
    )
    return ids


def quarantine_rows(settings: Settings) -> list[tuple[str, int, str | None, str]]:
    return q(
        settings,
        "SELECT source, record_index, event_id, reason FROM quarantine_log ORDER BY source, record_index",
    )


_LEDGER_HOLDS = f"""SELECT x FROM unnest(?) t(x)
                   SEMI JOIN event_ledger l ON l.id_key = {ledger_key("x")}"""  # noqa: S608


def ledger_holds(settings: Settings, ids: set[str]) -> set[str]:
    """Which of `ids` the ledger holds (it keeps their keys, not the ids)."""
    return {r[0] for r in q(settings, _LEDGER_HOLDS, [sorted(ids)])}


def assert_only_good_stored(settings: Settings, good: set[str]) -> None:
    """Exactly the good events are stored, everywhere an event leaves a trace; the store's
    invariants hold. One connection: opening the file is most of the cost of a check."""
    with hot_connection(settings.hot_db, read_only=True) as con:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return con.execute(sql).fetchall()

        assert rows("SELECT count(*) FROM event_ledger") == [(len(good),)]
        assert {r[0] for r in con.execute(_LEDGER_HOLDS, [sorted(good)]).fetchall()} == good
        hot = rows(
            "SELECT id FROM campaign_interactions UNION ALL SELECT id FROM canvas_interactions"
        )
        assert sorted(r[0] for r in hot) == sorted(good)
        assert rows("SELECT coalesce(sum(events), 0) FROM item_analytics") == [(len(good),)]
        assert {r[0] for r in rows("SELECT user_id FROM user_summaries")} == {r[0] for r in rows(
            "SELECT user_id FROM campaign_interactions UNION SELECT user_id FROM canvas_interactions")}  # fmt: skip
        assert invariants.lost_events(con, Archive(settings.archive_uri)) == {
            "campaign": 0,
            "canvas": 0,
        }
        assert set(invariants.duplicate_ids(con, Archive(settings.archive_uri)).values()) == {0}
        assert (
            invariants.visible_rows_of_hidden_items(con) == 0
            and invariants.items_in_flight(con) == []
        )


def _traces(settings: Settings) -> tuple[list[tuple[Any, ...]], ...]:
    with hot_connection(settings.hot_db, read_only=True) as con:
        return tuple(con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()  # noqa: S608
                     for t in ("event_ledger", "quarantine_log", "catalog_documents"))  # fmt: skip


def assert_rerun_adds_nothing(settings: Settings) -> None:
    """A second run skips what it saw: nothing stored or quarantined twice."""
    before = _traces(settings)
    ingest(settings)
    assert _traces(settings) == before


def check_record_rejected(
    settings: Settings,
    bad: Path,
    good: set[str],
    fragment: str,
    *,
    indexes: list[int],
    event_ids: list[str | None] | None = None,
) -> list[str]:
    """Ingest; records of `bad` at `indexes` are quarantined naming `fragment`, the rest is
    stored, and a second run changes nothing."""
    ingest(settings)
    rows = [r for r in quarantine_rows(settings) if Path(r[0]).name == bad.name]
    assert [r[1] for r in rows] == indexes, rows
    assert all(fragment in r[3] for r in rows), rows
    if event_ids is not None:
        assert [r[2] for r in rows] == event_ids
    saved = [
        json.loads(line)
        for folder in settings.quarantine.iterdir()
        for line in (folder / "records.jsonl").read_text().splitlines()
    ]
    assert sorted(s["record_index"] for s in saved if Path(s["source"]).name == bad.name) == indexes
    assert_only_good_stored(settings, good)
    assert_rerun_adds_nothing(settings)
    return [r[3] for r in rows]


def check_file_rejected(settings: Settings, bad: Path, good: set[str], fragment: str) -> str:
    """Ingest; `bad` is quarantined whole (a copy and a reason beside it), naming itself and
    why, the good file is stored, and a second run changes nothing."""
    ingest(settings)
    rows = [r for r in quarantine_rows(settings) if Path(r[0]).name == bad.name]
    assert len(rows) == 1 and rows[0][1] == -1, rows
    reason = rows[0][3]
    assert bad.name in reason and fragment in reason, reason
    copies = [
        p
        for folder in settings.quarantine.iterdir()
        for p in folder.iterdir()
        if p.name.endswith(bad.name)
    ]
    assert copies and copies[0].read_bytes() == bad.read_bytes()
    assert q(
        settings, "SELECT status FROM ingested_files WHERE path = ?", [str(bad.resolve())]
    ) == [("quarantined",)]
    assert_only_good_stored(settings, good)
    assert_rerun_adds_nothing(settings)
    return reason


def avro_file(settings: Settings, event_type: str, fields: list[dict[str, Any]], records: list[dict[str, Any]], *,
              codec: str = "null", name: str | None = None, namespace: str | None = None, in_path: bool = True) -> Path:  # fmt: skip
    """An Avro container file with a hand-made schema (what a drifted exporter might write)."""
    if in_path:
        path = currents_path(
            settings.landing / "currents",
            event_type,
            HOUR,
            integration_id="bad",
            part=len(fields) * 1000 + len(records),
        )
    else:
        path = settings.landing / "currents" / "loose" / "no-type.avro"
    path.parent.mkdir(parents=True, exist_ok=True)
    ns, _, nm = event_type.rpartition(".")
    schema = {"type": "record", "name": name or nm, "fields": fields}
    if namespace is not None or name is None:
        schema["namespace"] = namespace if namespace is not None else f"dataexport.S3.inner.{ns}"
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), records, codec=codec)
    return path


NULL_STR = ["null", "string"]
BASE_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"}, {"name": "user_id", "type": "string"}, {"name": "time", "type": "long"},
    {"name": "app_group_id", "type": "string"}, {"name": "campaign_id", "type": NULL_STR, "default": None},
]  # fmt: skip


def rec(eid: str, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "user_id": f"user-{eid}", "time": T0, "app_group_id": "app", "campaign_id": "cmp_1",
            **extra}  # fmt: skip


def flip_bytes(path: Path, at: float, n: int = 24) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    for k in range(start, start + n):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------
# Currents: Avro
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["deflate", "null"])
def test_avro_corrupted_in_a_later_block_is_rejected_whole(settings: Settings, codec: str) -> None:
    good = good_file(settings)
    # Small sync interval: many blocks, so the early ones are readable and must not leak in.
    bad = currents_path(settings.landing / "currents", CLICK, HOUR, integration_id="flip", part=1)
    bad.parent.mkdir(parents=True)
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Click",
            "namespace": "dataexport.S3.inner.users.messages.email",
            "fields": BASE_FIELDS,
        }
    )
    with bad.open("wb") as f:
        fastavro.writer(
            f, schema, [rec(f"flip-{i}") for i in range(400)], codec=codec, sync_interval=1000
        )
    flip_bytes(bad, 0.7)
    check_file_rejected(settings, bad, good, "not a readable Avro container file")


def test_avro_with_non_utf8_bytes_in_a_string_is_rejected_whole(settings: Settings) -> None:
    good = good_file(settings)
    bad = avro_file(
        settings, CLICK, BASE_FIELDS, [rec("u8-1"), rec("u8-2", user_id="QQQQ"), rec("u8-3")]
    )
    data = bad.read_bytes()
    assert data.count(b"QQQQ") == 1
    bad.write_bytes(data.replace(b"QQQQ", b"\xff\xfe\xfd\xfc"))
    check_file_rejected(settings, bad, good, "utf")


def test_avro_with_an_unsupported_codec_is_rejected_whole(settings: Settings) -> None:
    good = good_file(settings)
    bad = avro_file(settings, CLICK, BASE_FIELDS, [rec("bz-1")], codec="bzip2")
    reason = check_file_rejected(settings, bad, good, "codec")
    assert "bzip2" in reason


def test_avro_whose_schema_is_not_a_record_is_rejected_whole(settings: Settings) -> None:
    good = good_file(settings)
    bad = settings.landing / "currents" / f"event_type={CLICK}" / "strings.avro"
    bad.parent.mkdir(parents=True)
    with bad.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema("string"), ["a", "b"])
    check_file_rejected(settings, bad, good, "not a readable Avro container file")


def test_avro_id_of_ten_megabytes_is_rejected_and_the_quarantine_stays_small(
    settings: Settings,
) -> None:
    good = good_file(settings)
    huge = "x" * 10_000_000
    bad = avro_file(
        settings, CLICK, BASE_FIELDS, [rec("big-1"), {**rec("big-2"), "id": huge}, rec("big-3")]
    )
    started = time.monotonic()
    ingest(settings)
    assert time.monotonic() - started < 20
    [(_, index, event_id, reason)] = [
        r for r in quarantine_rows(settings) if Path(r[0]).name == bad.name
    ]
    assert index == 1 and reason == "field id is longer than 512 characters"
    # The log names the id without storing 10 MB again; the saved record is clipped too.
    assert event_id is not None and event_id.startswith("xxx") and len(event_id) < 600
    assert all(
        p.stat().st_size < 100_000
        for folder in settings.quarantine.iterdir()
        for p in folder.iterdir()
    )
    assert_only_good_stored(settings, good | {"big-1", "big-3"})


@pytest.mark.parametrize("bad_time", [-5, 0, 4_102_444_800], ids=["negative", "zero", "year-2100"])
def test_avro_time_out_of_range_is_rejected_per_record(settings: Settings, bad_time: int) -> None:
    good = good_file(settings)
    bad = avro_file(
        settings, CLICK, BASE_FIELDS, [rec("t-1"), rec("t-2", time=bad_time), rec("t-3")]
    )
    check_record_rejected(
        settings,
        bad,
        good | {"t-1", "t-3"},
        "field time is out of range",
        indexes=[1],
        event_ids=["t-2"],
    )


def test_avro_fields_of_the_wrong_type_are_rejected_naming_the_field(settings: Settings) -> None:
    # A float `time` and a boolean written as a string: a cast would crash or guess.
    fields = [{"name": "id", "type": "string"}, {"name": "user_id", "type": "string"}, {"name": "time", "type": "double"},
              {"name": "in_control_group", "type": "string"}, {"name": "campaign_id", "type": "string"}]  # fmt: skip
    good = good_file(settings)
    bad = avro_file(settings, "users.canvas.Entry", fields, [
        {"id": "w-1", "user_id": "u", "time": float(T0), "in_control_group": "true", "campaign_id": "cmp_1"},
    ])  # fmt: skip
    [reason] = check_record_rejected(
        settings, bad, good, "is not a", indexes=[0], event_ids=["w-1"]
    )
    assert reason == "field time is not an integer (found Float64)"


def test_avro_fields_that_are_arrays_or_records_are_rejected_not_a_crash(
    settings: Settings,
) -> None:
    fields: list[dict[str, Any]] = [{"name": "id", "type": {"type": "array", "items": "string"}},
              {"name": "user_id", "type": {"type": "record", "name": "U", "fields": [{"name": "x", "type": "int"}]}},
              {"name": "time", "type": "long"}]  # fmt: skip
    good = good_file(settings)
    bad = avro_file(settings, CLICK, fields, [{"id": ["a"], "user_id": {"x": 1}, "time": T0}])
    [reason] = check_record_rejected(settings, bad, good, "field id is not a string", indexes=[0])
    assert "List" in reason


def test_avro_of_an_unknown_event_type_is_rejected_per_record(settings: Settings) -> None:
    good = good_file(settings)
    bad = avro_file(
        settings, "users.messages.email.Teleport", BASE_FIELDS, [rec("tp-1"), rec("tp-2")]
    )
    check_record_rejected(
        settings,
        bad,
        good,
        "unknown event type users.messages.email.Teleport",
        indexes=[0, 1],
        event_ids=["tp-1", "tp-2"],
    )


def test_avro_with_no_event_type_in_schema_or_path_is_rejected(settings: Settings) -> None:
    good = good_file(settings)
    bad = avro_file(
        settings, CLICK, BASE_FIELDS, [rec("nt-1")], name="Thing", namespace="", in_path=False
    )
    check_record_rejected(settings, bad, good, "unknown event type Thing", indexes=[0])


def test_avro_conversion_index_beyond_32_bits_is_rejected_not_nulled(settings: Settings) -> None:
    fields = [
        *BASE_FIELDS,
        {"name": "conversion_behavior_index", "type": ["null", "long"], "default": None},
    ]
    good = good_file(settings)
    bad = avro_file(
        settings,
        CONVERSION,
        fields,
        [rec("cv-1", conversion_behavior_index=2**40), rec("cv-2", conversion_behavior_index=1)],
    )
    check_record_rejected(
        settings,
        bad,
        good | {"cv-2"},
        "field conversion_behavior_index is out of range",
        indexes=[0],
        event_ids=["cv-1"],
    )
    assert q(
        settings, "SELECT conversion_behavior_index FROM campaign_interactions WHERE id = 'cv-2'"
    ) == [(1,)]


# --------------------------------------------------------------------------------------------
# Currents: JSON Lines
# --------------------------------------------------------------------------------------------


def jsonl(settings: Settings, name: str, lines: list[str], *, folder: str | None = None) -> Path:
    path = settings.landing / "currents" / (folder or "") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def line(eid: str, **extra: Any) -> str:
    return json.dumps(
        {**campaign_event("cmp_1", f"user-{eid}", eid=eid), "event_type": CLICK, **extra}
    )


def test_json_lone_surrogate_escape_is_rejected_not_a_crash(settings: Settings) -> None:
    good = good_file(settings)
    bad_line = line("sg-2").replace('"user-sg-2"', '"user-\\ud800"')
    bad = jsonl(settings, "surrogate.jsonl", [line("sg-1"), bad_line, line("sg-3")])
    check_record_rejected(
        settings,
        bad,
        good | {"sg-1", "sg-3"},
        "field user_id is not valid Unicode",
        indexes=[1],
        event_ids=["sg-2"],
    )


def test_json_lines_with_a_byte_order_mark_keep_their_first_record(settings: Settings) -> None:
    good = good_file(settings)
    path = settings.landing / "currents" / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (line("bom-1") + "\n" + line("bom-2") + "\n").encode())
    _, report = ingest(settings)
    assert report.records_quarantined == 0
    assert_only_good_stored(settings, good | {"bom-1", "bom-2"})


def test_json_lines_that_are_not_objects_are_rejected_by_line_number(settings: Settings) -> None:
    good = good_file(settings)
    bad = jsonl(
        settings, "values.jsonl", [line("v-1"), "[1, 2]", "42", "null", '"text"', line("v-2")]
    )
    reasons = check_record_rejected(
        settings, bad, good | {"v-1", "v-2"}, "is not a JSON object", indexes=[1, 2, 3, 4]
    )
    assert reasons[0] == "line 2 is not a JSON object"


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("1736510400.5", "number"),
        ("NaN", "number"),
        ('"1736510400"', "string"),
        ("true", "boolean"),
    ],
    ids=["float", "nan", "numeric-string", "boolean"],
)
def test_json_time_that_is_not_an_integer_is_rejected(
    settings: Settings, value: str, found: str
) -> None:
    good = good_file(settings)
    bad_line = line("tf-2").replace(f'"time": {T0}', f'"time": {value}')
    bad = jsonl(settings, "time.jsonl", [line("tf-1"), bad_line])
    [reason] = check_record_rejected(
        settings,
        bad,
        good | {"tf-1"},
        "field time is not an integer",
        indexes=[1],
        event_ids=["tf-2"],
    )
    assert reason.endswith(f"(found {found})")


@pytest.mark.parametrize(
    ("field", "value"),
    [("time", 10**30), ("conversion_behavior_index", 2**40)],
    ids=["time", "conversion-index"],
)
def test_json_integers_beyond_their_storage_range_are_rejected_naming_the_field(
    settings: Settings, field: str, value: int
) -> None:
    good = good_file(settings)
    bad = jsonl(settings, "range.jsonl", [line("r-1"), line("r-2", **{field: value})])
    check_record_rejected(
        settings,
        bad,
        good | {"r-1"},
        f"field {field} is out of range",
        indexes=[1],
        event_ids=["r-2"],
    )


def test_json_record_whose_event_type_disagrees_with_its_path_is_rejected(
    settings: Settings,
) -> None:
    good = good_file(settings)
    folder = f"dataexport.x.S3.integration.y/event_type={CLICK}/date=2025-01-10-12/1/z"
    bad = jsonl(settings, "mixed.jsonl", [line("pm-1"), line("pm-2", event_type="users.messages.email.Open"),
                                          json.dumps(campaign_event("cmp_1", "u", eid="pm-3"))], folder=folder)  # fmt: skip
    [reason] = check_record_rejected(
        settings,
        bad,
        good | {"pm-1", "pm-3"},
        "disagrees with the path",
        indexes=[1],
        event_ids=["pm-2"],
    )
    assert "users.messages.email.Open" in reason and CLICK in reason


def test_json_lines_with_no_event_type_anywhere_are_rejected(settings: Settings) -> None:
    good = good_file(settings)
    bad = jsonl(
        settings,
        "untyped.jsonl",
        [line("ut-1"), json.dumps(campaign_event("cmp_1", "u", eid="ut-2"))],
    )
    check_record_rejected(
        settings, bad, good | {"ut-1"}, "unknown event type (none)", indexes=[1], event_ids=["ut-2"]
    )


def test_json_lines_file_of_blank_lines_stores_nothing_and_fails_nothing(
    settings: Settings,
) -> None:
    good = good_file(settings)
    path = jsonl(settings, "blank.jsonl", ["", "   ", "\t"])
    _, report = ingest(settings)
    assert report.files_ingested == 2 and report.records_quarantined == 0
    assert q(
        settings, "SELECT records, stored FROM ingested_files WHERE path = ?", [str(path.resolve())]
    ) == [(0, 0)]
    assert_only_good_stored(settings, good)


# --------------------------------------------------------------------------------------------
# Currents: Parquet
# --------------------------------------------------------------------------------------------


def parquet(
    settings: Settings, name: str, columns: dict[str, Any], *, folder: str | None = None
) -> Path:
    path = settings.landing / "currents" / (folder or "") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def pq_columns(ids: list[str], **override: Any) -> dict[str, Any]:
    n = len(ids)
    return {"id": ids, "user_id": [f"user-{i}" for i in ids], "time": [T0] * n, "event_type": [CLICK] * n,
            "app_group_id": ["app"] * n, "campaign_id": ["cmp_1"] * n, **override}  # fmt: skip


def test_parquet_truncated_is_rejected_whole(settings: Settings) -> None:
    good = good_file(settings)
    bad = parquet(settings, "cut.parquet", pq_columns(["pc-1", "pc-2"]))
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    check_file_rejected(settings, bad, good, "not a readable Parquet file")


def test_parquet_list_typed_id_is_rejected_not_a_crash(settings: Settings) -> None:
    good = good_file(settings)
    bad = parquet(settings, "lists.parquet", pq_columns(["x"], id=[["pl-1"]]))
    check_record_rejected(
        settings,
        bad,
        good,
        "field id is not a string (found List(String))",
        indexes=[0],
        event_ids=[None],
    )


def test_parquet_unsigned_time_beyond_64_bits_signed_is_rejected(settings: Settings) -> None:
    good = good_file(settings)
    bad = parquet(
        settings,
        "u64.parquet",
        pq_columns(["pu-1", "pu-2"], time=pa.array([2**63 + 5, T0], pa.uint64())),
    )
    check_record_rejected(
        settings,
        bad,
        good | {"pu-2"},
        "field time is out of range",
        indexes=[0],
        event_ids=["pu-1"],
    )


def test_parquet_timestamp_typed_time_is_rejected_naming_the_type(settings: Settings) -> None:
    good = good_file(settings)
    bad = parquet(settings, "ts.parquet", pq_columns(["pt-1"], time=[datetime(2025, 1, 1)]))
    check_record_rejected(
        settings, bad, good, "field time is not an integer (found Datetime", indexes=[0]
    )


def test_parquet_booleans_written_as_strings_are_rejected_not_a_crash(settings: Settings) -> None:
    good = good_file(settings)
    bad = parquet(
        settings,
        "bools.parquet",
        pq_columns(["pb-1", "pb-2"], is_suspected_bot_click=["true", None]),
    )
    ingest(settings)
    # Only the record that has a value in the wrong column is refused.
    check_record_rejected(
        settings,
        bad,
        good | {"pb-2"},
        "field is_suspected_bot_click is not a boolean",
        indexes=[0],
        event_ids=["pb-1"],
    )


def test_parquet_record_whose_event_type_disagrees_with_its_path_is_rejected(
    settings: Settings,
) -> None:
    good = good_file(settings)
    folder = f"event_type={CLICK}"
    bad = parquet(
        settings,
        "mixed.parquet",
        pq_columns(["pp-1", "pp-2"], event_type=[CLICK, "users.messages.email.Send"]),
        folder=folder,
    )
    check_record_rejected(
        settings, bad, good | {"pp-1"}, "disagrees with the path", indexes=[1], event_ids=["pp-2"]
    )


# --------------------------------------------------------------------------------------------
# The file system
# --------------------------------------------------------------------------------------------


def test_directories_named_like_input_files_are_walked_not_read(settings: Settings) -> None:
    root = settings.landing / "currents" / "looks-like.avro"
    path = write_events(root, CLICK, [campaign_event("cmp_1", "u", eid="dir-1")])
    (settings.landing / "currents" / "empty.parquet").mkdir()
    (settings.landing / "catalog" / "folder.json").mkdir()
    write_catalog(
        settings.landing / "catalog" / "folder.json", [campaign("cmp_1")], name="inside.json"
    )
    cat, cur = ingest(settings)
    assert cur.files_ingested == 1 and cur.files_quarantined == 0 and path.exists()
    assert cat.items == 1 and cat.files_quarantined == 0
    assert_only_good_stored(settings, {"dir-1"})


def test_symlink_loops_and_dangling_links_are_skipped_without_hanging(settings: Settings) -> None:
    good = good_file(settings)
    cur = settings.landing / "currents"
    os.symlink("b.avro", cur / "a.avro")
    os.symlink("a.avro", cur / "b.avro")
    os.symlink("nowhere.avro", cur / "dangling.avro")
    os.symlink("..", cur / "up")  # a directory loop: rglob must not follow it
    os.symlink("nowhere.json", settings.landing / "catalog" / "dangling.json")
    started = time.monotonic()
    _, report = ingest(settings)
    assert time.monotonic() - started < 10
    assert report.files_seen == 1 and report.files_quarantined == 0
    assert_only_good_stored(settings, good)


def test_a_named_file_that_vanished_is_reported_not_a_crash(settings: Settings) -> None:
    # A path in the job's config (or discovered a moment earlier) that is gone when read.
    good = good_file(settings)
    gone = settings.landing / "currents" / "gone.avro"
    gone_catalog = settings.landing / "catalog" / "gone.json"
    cat, cur = ingest(settings, settings.landing, gone, gone_catalog)
    assert cur.files_quarantined == 1 and cat.files_quarantined == 1
    reasons = {Path(s).name: r for s, _, _, r in quarantine_rows(settings)}
    assert "cannot read the file" in reasons["gone.avro"] and "No such file" in reasons["gone.avro"]
    assert "cannot read the file" in reasons["gone.json"]
    # Nothing marks it ingested: when it arrives it is read.
    assert q(settings, "SELECT count(*) FROM ingested_files WHERE path LIKE '%gone%'") == [(0,)]
    assert_only_good_stored(settings, good)
    write_events(settings.landing / "currents", CLICK, [campaign_event("cmp_1", "u", eid="late-1")])
    ingest(settings)
    assert ledger_holds(settings, {"late-1"}) == {"late-1"}


# --------------------------------------------------------------------------------------------
# Catalog documents
# --------------------------------------------------------------------------------------------

BASE = [campaign("cmp_a", tags=["promo"]), canvas("cnv_a")]


def catalog_rows(settings: Settings) -> list[tuple[str, str]]:
    return q(settings, "SELECT id, type FROM catalog_documents ORDER BY id")


def catalog_reasons(settings: Settings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source, _, _, reason in quarantine_rows(settings):
        out.setdefault(Path(source).name, []).append(reason)
    return out


@pytest.mark.parametrize(
    ("text", "found"),
    [("42", "number"), ("null", "null"), ('"a campaign"', "string"), ("true", "boolean")],
)
def test_catalog_file_holding_a_bare_value_is_rejected_naming_its_json_type(
    settings: Settings, text: str, found: str
) -> None:
    write_catalog(settings.landing / "catalog", BASE, name="good.json")
    (settings.landing / "catalog" / "value.json").write_text(text)
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    assert catalog_reasons(settings)["value.json"] == [
        f"catalog document #0: a catalog document must be a JSON object, found {found}"
    ]
    assert catalog_rows(settings) == [("cmp_a", "campaign"), ("cnv_a", "canvas")]
    assert_rerun_adds_nothing(settings)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe{\x00}"], ids=["empty", "not-utf8"])
def test_catalog_file_that_is_empty_or_not_utf8_is_rejected_whole(
    settings: Settings, content: bytes
) -> None:
    write_catalog(settings.landing / "catalog", BASE, name="good.json")
    (settings.landing / "catalog" / "bad.json").write_bytes(content)
    report, _ = ingest(settings)
    assert report.files_quarantined == 1
    [reason] = catalog_reasons(settings)["bad.json"]
    assert reason.startswith("bad.json is not a readable JSON document")
    assert catalog_rows(settings) == [("cmp_a", "campaign"), ("cnv_a", "canvas")]
    assert_rerun_adds_nothing(settings)


@pytest.mark.parametrize("depth", [1_000, 5_000])
def test_audience_nested_thousands_deep_invalidates_its_consumer_only(
    settings: Settings, depth: int
) -> None:
    deep = '{"not": ' * depth + '{"filter": "hard_bounced"}' + "}" * depth
    docs = [
        *(json.dumps(d) for d in BASE),
        json.dumps(consumer("seg_ok", audience={"filter": "hard_bounced"})),
    ]
    text = (
        "["
        + ", ".join(
            [
                *docs,
                f'{{"id": "seg_deep", "type": "segment", "status": "active", "audience": {deep}}}',
            ]
        )
        + "]"
    )
    (settings.landing / "catalog" / "deep.json").write_text(text)
    report, _ = ingest(settings)
    assert report.files_quarantined == 0 and report.invalid_consumers == 1
    [(valid, errors)] = q(
        settings, "SELECT valid, errors FROM audience_consumers WHERE id = 'seg_deep'"
    )
    assert not valid and "seg_deep" in errors[0] and "nested deeper than" in errors[0]
    assert q(settings, "SELECT valid FROM audience_consumers WHERE id = 'seg_ok'") == [(True,)]
    assert len(catalog_rows(settings)) == 4


def test_catalog_json_deeper_than_the_parser_bound_is_rejected_whole_and_cleanly(
    settings: Settings,
) -> None:
    levels = 2 * MAX_JSON_DEPTH  # the bound counts Python frames, so it is approximate
    write_catalog(settings.landing / "catalog", BASE, name="good.json")
    (settings.landing / "catalog" / "abyss.json").write_text("[" * levels + "]" * levels)
    report, _ = ingest(settings)
    assert report.files_quarantined == 1
    assert catalog_reasons(settings)["abyss.json"] == [
        f"abyss.json is not a readable JSON document: nested deeper than {MAX_JSON_DEPTH} levels"
    ]
    assert len(catalog_rows(settings)) == 2


def test_unknown_fields_at_every_level_are_accepted_and_kept(settings: Settings) -> None:
    cmp = campaign("cmp_x")
    cmp["future_field"] = {"nested": [1, 2]}
    cmp["messages"]["cmp_x_v1"]["brand_new"] = True
    cnv = canvas("cnv_x")
    cnv["steps"][0]["experimental"] = "yes"
    cnv["variants"][0]["weight"] = 0.5
    seg = {
        **consumer(
            "seg_x", audience={"all": [{"filter": "received_campaign", "campaign_id": "cmp_x"}]}
        ),
        "owner": "me",
    }
    write_catalog(settings.landing / "catalog", [cmp, cnv, seg])
    report, _ = ingest(settings)
    assert report.documents_quarantined == 0 and report.invalid_consumers == 0
    [(doc,)] = q(settings, "SELECT document FROM catalog_documents WHERE id = 'cmp_x'")
    assert json.loads(doc)["future_field"] == {"nested": [1, 2]}


@pytest.mark.parametrize(
    ("audience", "fragment"),
    [
        ({"filter": 5}, "seg_bad"),
        ({"filter": None}, "seg_bad"),
        ({"xor": [{"filter": "hard_bounced"}]}, "xor"),
        ("everyone", "seg_bad"),
        ([{"filter": "hard_bounced"}], "seg_bad"),
        ({"all": {"filter": "hard_bounced"}}, "seg_bad"),
    ],
    ids=[
        "filter-number",
        "filter-null",
        "unknown-combinator",
        "string",
        "bare-list",
        "all-not-a-list",
    ],
)
def test_malformed_audience_shapes_invalidate_the_consumer_by_name(
    settings: Settings, audience: Any, fragment: str
) -> None:
    write_catalog(
        settings.landing / "catalog",
        [*BASE, consumer("seg_bad", audience=audience), consumer("seg_ok")],
    )
    report, _ = ingest(settings)
    assert report.invalid_consumers == 1 and report.documents_quarantined == 0
    [(valid, errors)] = q(
        settings, "SELECT valid, errors FROM audience_consumers WHERE id = 'seg_bad'"
    )
    assert not valid and errors and "seg_bad" in errors[0] and fragment in " ".join(errors)
    assert q(settings, "SELECT valid FROM audience_consumers WHERE id = 'seg_ok'") == [(True,)]


def test_references_are_revalidated_as_the_catalog_changes(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    write_catalog(
        folder,
        [consumer("seg_r", audience={"filter": "received_campaign", "campaign_id": "cmp_later"})],
    )
    ingest(settings)
    [(valid, errors)] = q(
        settings, "SELECT valid, errors FROM audience_consumers WHERE id = 'seg_r'"
    )
    assert not valid and "cmp_later" in errors[0]
    write_catalog(folder, [campaign("cmp_later", updated_at="2025-02-01T00:00:00Z")])
    ingest(settings)
    assert q(settings, "SELECT valid FROM audience_consumers WHERE id = 'seg_r'") == [(True,)]
    # Now the item turns out to be legacy-deleted: the filter is an error again, never empty.
    write_catalog(
        folder,
        [
            campaign(
                "cmp_later", deleted_at="2023-02-01T00:00:00Z", updated_at="2025-03-01T00:00:00Z"
            )
        ],
    )
    ingest(settings)
    [(valid, errors)] = q(
        settings, "SELECT valid, errors FROM audience_consumers WHERE id = 'seg_r'"
    )
    assert not valid and "pre-2024" in errors[0]
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_later'") == [
        ("legacy_deleted",)
    ]


def test_an_id_reused_for_another_type_in_a_later_run_is_refused(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    write_catalog(folder, BASE)
    ingest(settings)
    before = snapshot(settings)
    write_catalog(
        folder,
        [{**consumer("cmp_a"), "updated_at": "2026-01-01T00:00:00Z"}, canvas("cnv_b")],
        name="later.json",
    )
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    [reason] = catalog_reasons(settings)["later.json"]
    assert "cmp_a is already a campaign, this document says segment" in reason
    assert catalog_rows(settings) == [
        ("cmp_a", "campaign"),
        ("cnv_a", "canvas"),
        ("cnv_b", "canvas"),
    ]
    assert (
        snapshot(settings)["item_lifecycle"] != []
        and snapshot(settings)["event_ledger"] == before["event_ledger"]
    )


def test_catalog_id_of_ten_megabytes_is_rejected_and_the_log_stays_small(
    settings: Settings,
) -> None:
    write_catalog(
        settings.landing / "catalog", [*BASE, campaign("c" * 10_000_000)], name="big.json"
    )
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    [(event_id, reason)] = q(settings, "SELECT event_id, reason FROM quarantine_log")
    assert "field id is longer than 512 characters" in reason and len(event_id) < 600
    assert len(catalog_rows(settings)) == 2


def test_catalog_lone_surrogate_is_rejected_not_a_crash(settings: Settings) -> None:
    text = json.dumps([*BASE, campaign("cmp_s"), campaign("cmp_ok2")]).replace(
        '"Campaign cmp_s"', '"Campaign \\udc80"'
    )
    (settings.landing / "catalog" / "surrogate.json").write_text(text)
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    [reason] = catalog_reasons(settings)["surrogate.json"]
    assert "cmp_s" in reason and "not valid Unicode" in reason
    assert [i for i, _ in catalog_rows(settings)] == ["cmp_a", "cmp_ok2", "cnv_a"]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"tags": "promo"}, "field tags must be a list of strings"),
        ({"status": "paused"}, "field status must be one of"),
        ({"messages": ["v1"]}, "field messages must be an object"),
        (
            {"updated_at": 1736510400},
            "field updated_at must be an ISO-8601 timestamp, found number",
        ),
        ({"stopped_at": "2025-02-30T00:00:00Z"}, "field stopped_at is not an ISO-8601 timestamp"),
        ({"name": 7}, "field name must be a string"),
        ({"type": None}, "field type must be one of"),
    ],
    ids=[
        "tags-string",
        "status-unknown",
        "messages-list",
        "updated-number",
        "impossible-date",
        "name-number",
        "type-null",
    ],
)
def test_catalog_document_with_a_field_of_the_wrong_shape_is_rejected_by_id_and_field(
    settings: Settings, patch: dict, fragment: str
) -> None:
    write_catalog(
        settings.landing / "catalog", [*BASE, {**campaign("cmp_w"), **patch}], name="shapes.json"
    )
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    [reason] = catalog_reasons(settings)["shapes.json"]
    assert reason.startswith("catalog document #2: document cmp_w: ") and fragment in reason
    assert [i for i, _ in catalog_rows(settings)] == ["cmp_a", "cnv_a"]


def test_canvas_steps_without_ids_are_rejected(settings: Settings) -> None:
    bad = canvas("cnv_w")
    bad["steps"].append({"name": "a step with no id"})
    write_catalog(settings.landing / "catalog", [*BASE, bad], name="steps.json")
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    assert (
        "document cnv_w: field steps must be a list of objects with an id"
        in catalog_reasons(settings)["steps.json"][0]
    )


# --------------------------------------------------------------------------------------------
# Restore requests
# --------------------------------------------------------------------------------------------


@pytest.fixture
def expired(settings: Settings) -> Iterator[Settings]:
    """A catalog with an item, a few events, and the item's lifecycle row: enough for a
    refusal to be checked against (the full expire/restore cycle is tested elsewhere)."""
    write_catalog(
        settings.landing / "catalog", [campaign("cmp_stop", tags=["promo"]), canvas("cnv_stop")]
    )
    good_file(settings)
    ingest(settings)
    yield settings


def test_restore_of_100k_unknown_ids_is_refused_quickly_naming_them(expired: Settings) -> None:
    before = snapshot(expired)
    ids = tuple(f"cmp_nope{i:06d}" for i in range(100_000))
    started = time.monotonic()
    with hot_connection(expired.hot_db) as con, pytest.raises(RestoreRefused) as err:
        plan_restore(con, RestoreRequest(campaign_ids=("cmp_stop", *ids)))
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert "cmp_nope000000" in text and "nothing was restored" in text and "cmp_stop" not in text
    assert snapshot(expired) == before


def test_restore_refusal_message_is_bounded(expired: Settings) -> None:
    ids = tuple(f"cmp_nope{i:06d}" for i in range(100_000))
    with hot_connection(expired.hot_db) as con, pytest.raises(RestoreRefused) as err:
        plan_restore(con, RestoreRequest(campaign_ids=ids))
    text = str(err.value)
    assert len(text) < 10_000 and "100000" in text.replace(",", "")


BAD_RESTORE_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({}, "nothing to restore"),
    ({"tags": ["  "]}, "a tag cannot be empty"),
    ({"campaign_ids": [""]}, "unknown item: campaign ''"),
    ({"canvas_ids": ["cmp_stop"], "tags": ["promo"]}, "unknown item: canvas 'cmp_stop'"),
]


def test_restore_job_with_a_bad_config_fails_mails_why_and_changes_nothing(
    expired: Settings,
) -> None:
    # The launchpad's path (no CLI pre-checks): no target, a blank tag, an empty id, a
    # campaign given as a Canvas. One workspace for all four keeps the test fast.
    from ix_pipeline.definitions import build_defs
    from ix_pipeline.orchestration.instance import get_instance

    before = snapshot(expired)
    job = build_defs(expired).resolve_job_def("restore_interaction_data")
    instance = get_instance(expired.dagster_home)
    outbox = expired.data_dir / "outbox"
    for config, fragment in BAD_RESTORE_CONFIGS:
        seen = set(outbox.glob("*.eml")) if outbox.exists() else set()
        result = job.execute_in_process(run_config={"ops": {"restore_items": {"config": config}}},
                                        instance=instance, raise_on_error=False)  # fmt: skip
        assert not result.success, config
        [mail] = set(outbox.glob("*.eml")) - seen
        assert "FAILED" in mail.read_text() and fragment in mail.read_text(), (
            config,
            mail.read_text(),
        )
        assert snapshot(expired) == before


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def test_cli_malformed_arguments_are_one_clear_sentence(settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "IX_DATA_DIR": str(settings.data_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    env.pop(FAULT_ENV, None)
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    cases = {
        ("restore", "--campaign", "cmp_1", "--as-of", "next tuesday"): "is not an ISO-8601 date",
        ("audience", "seg_1", "--as-of", "2025-13-01"): "is not an ISO-8601 date",
        ("expire", "--as-of", "2025-02-30T02:00:00Z"): "is not an ISO-8601 date",
        ("ingest", str(tmp_path / "no-such-folder")): "does not exist",
        ("status", "--data-dir", str(a_file)): "is a file",
    }
    # In parallel: each is a cold Python start, and none reaches the hot store.
    procs = {args: subprocess.Popen([IX, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in cases}  # fmt: skip
    for args, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, args
        assert cases[args] in err and "Traceback" not in err, (args, err)
    assert not settings.hot_db.exists()


# --------------------------------------------------------------------------------------------
# A workspace without a catalog
# --------------------------------------------------------------------------------------------


def test_nightly_expiry_before_the_first_ingest_succeeds_with_nothing_to_do(
    settings: Settings,
) -> None:
    from ix_pipeline.definitions import build_defs
    from ix_pipeline.orchestration.instance import get_instance
    from ix_pipeline.orchestration.jobs import expiry_run_config

    job = build_defs(settings).resolve_job_def("nightly_expiry")
    result = job.execute_in_process(run_config=expiry_run_config(NIGHT), instance=get_instance(settings.dagster_home),
                                    raise_on_error=False)  # fmt: skip
    assert result.success
