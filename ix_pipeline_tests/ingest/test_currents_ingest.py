"""Currents ingestion on real files: layout, codecs, at-least-once delivery, quarantine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.exceptions import ComputeError, PanicException

from ix_pipeline.demo.currents_files import CURRENTS_FIELDS, currents_path, write_avro, write_jsonl
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store.hot import hot_connection
from ix_pipeline.store.schema import (
    DDL,
    DERIVED_TABLES,
    INTERACTION_COLUMN_NAMES,
    ledger_key,
    pending_table,
)
from ix_pipeline_tests.builders import T0, campaign_event, canvas_event, write_events
from ix_pipeline_tests.conftest import derived_tables, ingest, q

CLICK = "users.messages.email.Click"


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
@pytest.mark.parametrize("time_type", ["int", "long"])
def test_avro_in_currents_layout_lands_in_the_right_table(
    settings: Settings, codec: str, time_type: str
) -> None:
    root = settings.landing / "currents"
    write_events(
        root,
        CLICK,
        [campaign_event("cmp_1", "u1", eid="c1", link_alias="cta")],
        codec=codec,
        time_type=time_type,
    )
    write_events(root, "users.canvas.Entry", [canvas_event("cnv_1", "u2", eid="e1", in_control_group=False)],
                 codec=codec, time_type=time_type)  # fmt: skip
    _, report = ingest(settings)
    assert report.events_stored == 2 and report.records_quarantined == 0
    row = q(settings, f"SELECT {', '.join(INTERACTION_COLUMN_NAMES)} FROM campaign_interactions")  # noqa: S608
    assert len(row) == 1
    got = dict(zip(INTERACTION_COLUMN_NAMES, row[0], strict=True))
    assert got["id"] == "c1" and got["item_id"] == "cmp_1" and got["kind"] == "clicked"
    assert got["channel"] == "email" and got["event_type"] == CLICK
    assert got["link_alias"] == "cta" and got["time"] == T0 and got["external_user_id"] == "ext-u1"
    assert got["message_variation_id"] == "cmp_1_v1"
    canvas_rows = q(
        settings,
        "SELECT id, item_id, kind, canvas_step_id, in_control_group FROM canvas_interactions",
    )
    assert canvas_rows == [("e1", "cnv_1", "entry", "cnv_1_s1", False)]


def test_event_delivered_twice_in_two_files_and_two_runs_is_stored_once(settings: Settings) -> None:
    root = settings.landing / "currents"
    ev = campaign_event("cmp_1", "u1", eid="dup-1")
    write_events(root, CLICK, [ev, campaign_event("cmp_1", "u2", eid="x-1")])
    write_events(root, CLICK, [ev])  # same id, another file, same batch
    _, first = ingest(settings)
    assert first.events_stored == 2 and first.duplicates_skipped == 1
    write_events(root, CLICK, [ev, campaign_event("cmp_1", "u3", eid="x-2")])  # and a later run
    _, second = ingest(settings)
    assert second.events_stored == 1 and second.duplicates_skipped == 1
    assert q(settings, "SELECT id, count(*) FROM campaign_interactions GROUP BY id ORDER BY id") == [
        ("dup-1", 1), ("x-1", 1), ("x-2", 1)
    ]  # fmt: skip
    # The summaries and analytics count the event once too.
    assert q(settings, "SELECT sum(events) FROM item_analytics") == [(3,)]


def test_running_ingestion_again_adds_nothing(settings: Settings) -> None:
    write_events(
        settings.landing / "currents", CLICK, [campaign_event("cmp_1", f"u{i}") for i in range(50)]
    )
    ingest(settings)
    before = q(
        settings,
        "SELECT count(*), (SELECT count(*) FROM user_summaries), (SELECT sum(events) FROM item_analytics) FROM campaign_interactions",
    )
    _, again = ingest(settings)
    assert again.files_skipped == 1 and again.files_ingested == 0 and again.events_stored == 0
    assert (
        q(
            settings,
            "SELECT count(*), (SELECT count(*) FROM user_summaries), (SELECT sum(events) FROM item_analytics) FROM campaign_interactions",
        )
        == before
    )


def test_unknown_optional_fields_never_fail_a_file(settings: Settings) -> None:
    path = settings.landing / "currents" / "extra.jsonl"
    write_jsonl(
        path,
        [{**campaign_event("cmp_1", "u1"), "brand_new_field": {"x": 1}, "another": 3}],
        event_type=CLICK,
    )
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.records_quarantined == 0


_ENUM = {"type": "enum", "name": "Device", "symbols": ["ios", "android"]}


@pytest.mark.parametrize(
    ("avro_type", "value"),
    [
        (["null", {"type": "map", "values": "string"}], {"k": "v"}),
        (["null", _ENUM], "ios"),
        (_ENUM, "android"),
        (["null", "string", "long"], 5),
        (["string", "long"], "x"),
        ({"type": "record", "name": "Geo", "fields": [{"name": "tags", "type": {"type": "map", "values": "long"}}]},
         {"tags": {"a": 1}}),
        (["null", {"type": "fixed", "name": "F12", "size": 12, "logicalType": "duration"}], b"\0" * 12),
        (["null", {"type": "array", "items": "string"}], ["a"]),  # one polars reads itself
    ],
    ids=["map", "nullable enum", "enum", "union of three", "union of two", "record of a map",
         "duration", "array"],
)  # fmt: skip
def test_a_new_avro_field_of_any_type_is_ignored(
    settings: Settings, avro_type: Any, value: Any
) -> None:
    import fastavro

    from ix_pipeline.demo.currents_files import avro_schema

    path = write_events(settings.landing / "currents", CLICK, [])
    schema = avro_schema(CLICK)
    schema["fields"].append({"name": "new_field", "type": avro_type})
    records = [campaign_event("cmp_1", f"u{i}", eid=f"n{i}", link_alias=f"al{i}") for i in range(3)]
    records[2]["time"] = 5
    with path.open("wb") as f:
        fastavro.writer(
            f, fastavro.parse_schema(schema), [{**r, "new_field": value} for r in records]
        )
    _, report = ingest(settings)
    assert report.files_quarantined == 0 and report.events_stored == 2
    assert q(settings, "SELECT id, user_id, time, link_alias FROM campaign_interactions ORDER BY id") == [
        ("n0", "u0", T0, "al0"), ("n1", "u1", T0, "al1")]  # fmt: skip
    [(index, event_id, reason)] = _quarantined(settings)
    assert (index, event_id) == (2, "n2") and reason.startswith("field time is out of range")


def test_a_field_named_record_index_is_an_unknown_field_like_any_other(
    settings: Settings,
) -> None:
    import fastavro

    from ix_pipeline.demo.currents_files import avro_schema

    root = settings.landing / "currents"
    path = write_events(root, CLICK, [campaign_event("cmp_1", "u0")])
    schema = avro_schema(CLICK)
    schema["fields"].append({"name": "record_index", "type": ["null", "long"], "default": None})
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), [
            {**campaign_event("cmp_1", "u1", eid="A"), "record_index": 7},
            {**campaign_event("cmp_1", "u1", eid="A"), "record_index": 8},  # A delivered again
            {**campaign_event("cmp_1", "u2", eid="B"), "record_index": 8},
            {**campaign_event("cmp_1", "u3", eid="C"), "record_index": 9},
        ])  # fmt: skip
    rows = [{**campaign_event("cmp_1", "u4", eid=f"P{i}"), "event_type": CLICK} for i in range(2)]
    rows[0]["time"] = 5
    table = pa.Table.from_pylist(rows).append_column("record_index", pa.array(["x", "y"]))
    pq.write_table(table, root / "backfill.parquet")
    _, report = ingest(settings)
    assert report.events_stored == 4 and report.duplicates_skipped == 1
    assert q(settings, "SELECT id FROM campaign_interactions ORDER BY id") == [
        ("A",), ("B",), ("C",), ("P1",)]  # fmt: skip
    [(index, event_id, reason)] = _quarantined(settings)
    assert (index, event_id) == (0, "P0") and reason.startswith("field time is out of range")
    [saved] = (next(settings.quarantine.iterdir()) / "records.jsonl").read_text().splitlines()
    assert json.loads(saved)["record"]["record_index"] == "x"


def _quarantined(settings: Settings) -> list[tuple]:
    return q(
        settings,
        "SELECT record_index, event_id, reason FROM quarantine_log ORDER BY source, record_index",
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"id": None}, "required field id is empty"),
        ({"id": ""}, "required field id is empty"),
        ({"user_id": None}, "required field user_id is empty"),
        ({"app_group_id": None}, "required field app_group_id is empty"),
        ({"app_group_id": ""}, "required field app_group_id is empty"),
        ({"time": None}, "required field time is null"),
        ({"time": "yesterday"}, "field time is not an integer"),
        ({"time": 1_700_000_000_000}, "field time is out of range"),
        ({"user_id": 42}, "field user_id is not a string"),
        ({"in_control_group": "yes"}, "field in_control_group is not a boolean"),
        (
            {"event_type": "users.messages.email.Teleport"},
            "unknown event type users.messages.email.Teleport",
        ),
        ({"id": "x" * 10_000}, "field id is longer than 512 characters"),
    ],
)
def test_bad_record_is_quarantined_with_its_reason_and_the_rest_is_stored(
    settings: Settings, bad: dict, reason: str
) -> None:
    good = [campaign_event("cmp_1", f"u{i}", event_type=CLICK) for i in range(3)]
    broken = {**campaign_event("cmp_1", "bad", event_type=CLICK), **bad}
    write_jsonl(settings.landing / "currents" / "batch.jsonl", [good[0], broken, *good[1:]])
    _, report = ingest(settings)
    assert report.events_stored == 3 and report.records_quarantined == 1
    [(index, _, got)] = _quarantined(settings)
    assert index == 1 and got.startswith(reason)
    saved = [
        json.loads(line)
        for line in (next(settings.quarantine.iterdir()) / "records.jsonl").read_text().splitlines()
    ]
    assert saved[0]["reason"].startswith(reason) and saved[0]["record_index"] == 1


def test_id_length_is_counted_in_characters(settings: Settings) -> None:
    # 512 characters of three UTF-8 bytes each are 1,536 bytes, and within the limit.
    within = campaign_event("cmp_1", "用" * 512, eid="cjk-512", event_type=CLICK)
    beyond = campaign_event("cmp_1", "用" * 513, eid="cjk-513", event_type=CLICK)
    write_jsonl(settings.landing / "currents" / "cjk.jsonl", [within, beyond])
    _, report = ingest(settings)
    assert report.events_stored == 1
    assert _quarantined(settings) == [(1, "cjk-513", "field user_id is longer than 512 characters")]


def test_canvas_entry_without_in_control_group_is_quarantined(settings: Settings) -> None:
    root = settings.landing / "currents"
    entry = "users.canvas.Entry"
    without = [f for f in CURRENTS_FIELDS if f != "in_control_group"]
    for part, (fields, value) in enumerate(((None, True), (None, None), (without, None))):
        write_avro(
            currents_path(root, entry, datetime(2025, 1, 10, 12, tzinfo=UTC), part=part),
            entry,
            [canvas_event("cnv_1", "u1", in_control_group=value)],
            fields=fields,
        )
    write_jsonl(root / "entry.jsonl", [canvas_event("cnv_1", "u2", in_control_group=None)], entry)
    # Required on Entry events only.
    write_jsonl(root / "send.jsonl", [campaign_event("cmp_1", "u3")], "users.messages.email.Send")
    _, report = ingest(settings)
    assert report.events_stored == 2 and report.records_quarantined == 3
    assert {reason for _, _, reason in _quarantined(settings)} == {
        "required field in_control_group is missing or null on users.canvas.Entry"
    }


def test_avro_schema_without_app_group_id(settings: Settings) -> None:
    import fastavro

    from ix_pipeline.demo.currents_files import avro_schema

    path = write_events(settings.landing / "currents", CLICK, [])
    schema = avro_schema(CLICK)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "app_group_id"]
    record = campaign_event("cmp_1", "u1", eid="a1")
    del record["app_group_id"]
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), [record])
    _, report = ingest(settings)
    assert report.events_stored == 0
    assert _quarantined(settings) == [(0, "a1", "required field app_group_id is missing")]


def test_json_lines_with_a_bad_line_in_the_middle(settings: Settings) -> None:
    path = settings.landing / "currents" / "mixed.jsonl"
    lines = [
        json.dumps({**campaign_event("cmp_1", f"u{i}"), "event_type": CLICK}) for i in range(4)
    ]
    lines.insert(2, '{"id": "half", "user_id": ')
    lines.insert(3, "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"))
    path.write_bytes(
        "\n".join(lines).encode("latin-1", "replace").replace(b"\xc3\xbf", b"\xff") + b"\n"
    )
    _, report = ingest(settings)
    assert report.events_stored == 4
    reasons = [r for _, _, r in _quarantined(settings)]
    assert len(reasons) == 2 and "line 3 is not JSON" in reasons[0]


def test_corrupt_avro_file_is_quarantined_whole_and_other_files_still_load(
    settings: Settings,
) -> None:
    root = settings.landing / "currents"
    good = write_events(root, CLICK, [campaign_event("cmp_1", "u1")])
    bad = write_events(root, CLICK, [campaign_event("cmp_1", f"u{i}") for i in range(100)])
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])  # truncated
    magic = write_events(root, CLICK, [campaign_event("cmp_1", "u9")])
    magic.write_bytes(b"NOPE" + magic.read_bytes()[4:])
    empty = (
        root
        / "dataexport.x.S3.integration.y"
        / f"event_type={CLICK}"
        / "date=2025-01-01-00"
        / "1"
        / "z"
        / "empty.avro"
    )
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    _, report = ingest(settings)
    assert report.files_quarantined == 3 and report.events_stored == 1
    rows = q(
        settings,
        "SELECT source, reason FROM quarantine_log WHERE record_index = -1 ORDER BY source",
    )
    assert {Path(s).name for s, _ in rows} == {bad.name, magic.name, "empty.avro"}
    assert any("empty" in r for _, r in rows)
    copies = [p for p in next(settings.quarantine.iterdir()).iterdir() if p.suffix == ".avro"]
    assert len(copies) == 3
    assert q(settings, "SELECT status, count(*) FROM ingested_files GROUP BY 1 ORDER BY 1") == [
        ("ingested", 1),
        ("quarantined", 3),
    ]
    assert good.exists()


def _files_quarantined(settings: Settings) -> list[tuple[str, str]]:
    rows = q(settings, "SELECT source, reason FROM quarantine_log WHERE record_index = -1")
    return [(Path(source).name, reason) for source, reason in rows]


def test_an_avro_file_polars_panics_on_costs_that_file_only(settings: Settings) -> None:
    # polars 2.1 panics (a BaseException, not an Exception) on a snappy file of no records.
    root = settings.landing / "currents"
    write_events(root, CLICK, [campaign_event("cmp_1", "u1", eid="good")])
    empty = write_events(root, CLICK, [], codec="snappy")
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.files_quarantined == 1
    [(name, reason)] = _files_quarantined(settings)
    assert name == empty.name
    assert reason.startswith(f"{empty.name}: not a readable Avro container file: ")


@pytest.mark.parametrize(
    "error", [PanicException("unreachable"), ComputeError("cannot cast")], ids=type
)
def test_a_file_polars_fails_to_validate_costs_that_file_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    from ix_pipeline.ingest import currents

    validate = currents._validate

    def failing(source: str, *args: Any, **kwargs: Any) -> Any:
        if source.endswith("odd.jsonl"):
            raise error
        return validate(source, *args, **kwargs)

    monkeypatch.setattr(currents, "_validate", failing)
    write_jsonl(settings.landing / "currents" / "odd.jsonl", [campaign_event("c", "u1")], CLICK)
    write_jsonl(settings.landing / "currents" / "good.jsonl", [campaign_event("c", "u2")], CLICK)
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.files_quarantined == 1
    assert _files_quarantined(settings) == [
        ("odd.jsonl", f"odd.jsonl: cannot be validated: {error}")
    ]


def test_a_fault_of_the_code_stops_the_run_and_names_the_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ix_pipeline.ingest import currents

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(currents, "_validate", failing)
    write_jsonl(settings.landing / "currents" / "odd.jsonl", [campaign_event("c", "u1")], CLICK)
    with pytest.raises(KeyError) as raised:
        ingest(settings)
    assert any(note.endswith("odd.jsonl") for note in raised.value.__notes__)


def test_parquet_whose_event_type_is_not_a_string(settings: Settings) -> None:
    root = settings.landing / "currents"
    rows = [campaign_event("cmp_1", f"u{i}", eid=f"p{i}") for i in range(2)]
    for name, values in (("list", [[CLICK], [CLICK]]), ("int", [1, 2])):
        table = pa.Table.from_pylist(rows).append_column("event_type", pa.array(values))
        pq.write_table(table, root / f"{name}.parquet")
    write_events(root, CLICK, [campaign_event("cmp_1", "u9", eid="good")])
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.records_quarantined == 4
    assert q(settings, "SELECT DISTINCT reason FROM quarantine_log ORDER BY 1") == [
        ("field event_type is not a string (found Int64)",),
        ("field event_type is not a string (found List(String))",),
    ]


def test_parquet_without_event_type_takes_its_folders(settings: Settings) -> None:
    folder = settings.landing / "currents" / f"event_type={CLICK}"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([campaign_event("cmp_1", "u1")]), folder / "a.parquet")
    _, report = ingest(settings)
    assert report.events_stored == 1
    assert q(settings, "SELECT event_type FROM campaign_interactions") == [(CLICK,)]


def test_a_file_whose_name_is_not_utf8_is_quarantined_by_its_escaped_name(
    settings: Settings,
) -> None:
    import os

    root = settings.landing / "currents"
    good = write_events(root, CLICK, [campaign_event("cmp_1", "u1", eid="good")])
    odd = Path(os.fsdecode(bytes(good.parent) + b"/part-\xff.avro"))
    write_avro(odd, CLICK, [campaign_event("cmp_1", "u2", eid="odd")])
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.files_quarantined == 1
    [(name, reason)] = _files_quarantined(settings)
    assert name == "part-\\xff.avro"
    assert reason == "part-\\xff.avro: the file name is not UTF-8 (rename the file to have it read)"
    assert q(settings, "SELECT status, count(*) FROM ingested_files GROUP BY 1 ORDER BY 1") == [
        ("ingested", 1), ("quarantined", 1)]  # fmt: skip
    [copy] = [p for p in next(settings.quarantine.iterdir()).iterdir() if p.suffix == ".avro"]
    assert copy.read_bytes() == odd.read_bytes()
    # Recorded under its escaped name, so the next run does not quarantine it again.
    _, again = ingest(settings)
    assert again.files_skipped == 2 and again.files_quarantined == 0


def test_avro_whose_schema_disagrees_with_its_path_is_quarantined(settings: Settings) -> None:
    root = settings.landing / "currents"
    path = write_events(root, CLICK, [campaign_event("cmp_1", "u1")])
    write_avro(path, "users.messages.email.Open", [campaign_event("cmp_1", "u1")])
    _, report = ingest(settings)
    assert report.files_quarantined == 1
    [(reason,)] = q(settings, "SELECT reason FROM quarantine_log")
    assert "users.messages.email.Open" in reason and CLICK in reason


def test_avro_schema_missing_a_required_field(settings: Settings) -> None:
    root = settings.landing / "currents"
    path = root / f"event_type={CLICK}" / "date=2025-01-01-00" / "x.avro"
    import fastavro

    schema = {"type": "record", "name": "Click", "namespace": "dataexport.S3.inner.users.messages.email",
              "fields": [{"name": "id", "type": "string"}, {"name": "time", "type": "long"}]}  # fmt: skip
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), [{"id": "a", "time": T0}])
    _, report = ingest(settings)
    assert report.records_quarantined == 1 and report.events_stored == 0
    assert q(settings, "SELECT reason FROM quarantine_log") == [
        ("required field user_id is missing",)
    ]


def test_parquet_with_same_fields_and_with_wrong_column_types(settings: Settings) -> None:
    root = settings.landing / "currents"
    rows = [{**campaign_event("cmp_1", f"u{i}"), "event_type": CLICK} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), root / "good.parquet")
    wrong = pa.table(
        {
            "id": ["w1"],
            "user_id": ["u"],
            "time": ["2025-01-01"],
            "event_type": [CLICK],
            "campaign_id": ["cmp_1"],
        }
    )
    pq.write_table(wrong, root / "wrong.parquet")
    _, report = ingest(settings)
    assert report.events_stored == 3 and report.records_quarantined == 1
    assert q(settings, "SELECT event_id, reason FROM quarantine_log") == [
        ("w1", "field time is not an integer (found String)")
    ]


def test_parquet_with_dictionary_encoded_strings(settings: Settings) -> None:
    # pandas' category columns and Parquet writers' dictionaries arrive as Categorical.
    rows = [
        {**campaign_event("cmp_1", f"u{i}", eid=f"d{i}"), "event_type": CLICK} for i in range(3)
    ]
    table = pa.Table.from_pylist(rows)
    for name in ("campaign_id", "app_group_id", "event_type"):
        table = table.set_column(
            table.schema.get_field_index(name), name, table[name].dictionary_encode()
        )
    pq.write_table(table, settings.landing / "currents" / "dictionaries.parquet")
    _, report = ingest(settings)
    assert report.events_stored == 3 and report.records_quarantined == 0
    assert q(
        settings, "SELECT id, campaign_id, event_type FROM campaign_interactions ORDER BY id"
    ) == [(f"d{i}", "cmp_1", CLICK) for i in range(3)]


def test_summaries_are_fed_by_every_event_and_items_ever_received(settings: Settings) -> None:
    root = settings.landing / "currents"
    write_events(root, "users.messages.email.Send", [campaign_event("cmp_1", "u1", t=T0)])
    write_events(
        root,
        "users.messages.email.Bounce",
        [{"id": "b1", "user_id": "u1", "time": T0 + 5, "app_group_id": "a"}],
    )
    write_events(root, "users.messages.sms.InboundReceive",
                 [{"id": "k1", "user_id": "u1", "time": T0 + 9, "app_group_id": "a", "action": "OPT_IN"}])  # fmt: skip
    write_events(root, "users.behaviors.app.NewsFeedImpression",
                 [{"id": f"n{i}", "user_id": "u1", "time": T0 + i, "app_group_id": "a"} for i in range(3)])  # fmt: skip
    _, report = ingest(settings)
    assert report.events_stored == 6
    [row] = q(settings, """SELECT epoch(last_received_any)::BIGINT, epoch(last_received_email)::BIGINT,
                           hard_bounced_at IS NOT NULL, last_inbound_keyword_category, news_feed_views
                           FROM user_summaries WHERE user_id = 'u1'""")  # fmt: skip
    assert row == (T0, T0, True, "OPT_IN", 3)
    assert q(settings, "SELECT user_id, received_id FROM user_items_received") == [("u1", "cmp_1")]
    assert q(settings, "SELECT count(*) FROM campaign_interactions") == [(1,)]


@pytest.mark.parametrize(("seconds", "day"), [
    (1735689599, "2024-12-31"),  # the last second of a UTC day
    (1735689600, "2025-01-01"),  # the first second of the next
    (951782400, "2000-02-29"),  # a leap day
])  # fmt: skip
def test_item_analytics_counts_each_event_on_its_utc_day(
    settings: Settings, seconds: int, day: str
) -> None:
    write_events(
        settings.landing / "currents", CLICK, [campaign_event("cmp_1", "u1", t=seconds, eid="c1")]
    )
    ingest(settings)
    assert q(settings, "SELECT CAST(day AS VARCHAR), events FROM item_analytics") == [(day, 1)]


def summary_history(root: Path) -> None:
    """Two users whose facts are spread over many files, so that batches and runs split them."""
    for i in range(4):
        write_events(root, "users.messages.email.Send",
                     [campaign_event(f"cmp_{i % 2}", u, t=T0 + 10 * i, eid=f"s{i}{u}") for u in ("u1", "u2")])  # fmt: skip
        write_events(root, "users.messages.email.Click",
                     [campaign_event("cmp_0", "u1", t=T0 + 10 * i + 1, eid=f"c{i}", link_alias=f"al{i % 3}")])  # fmt: skip
        write_events(root, "users.messages.sms.InboundReceive",
                     [{"id": f"k{i}", "user_id": "u1", "time": T0 + 100 - i, "app_group_id": "a",
                       "action": ["OPT_IN", "STOP"][i % 2]}])  # fmt: skip
        write_events(root, "users.behaviors.app.NewsFeedImpression",
                     [{"id": f"n{i}", "user_id": "u2", "time": T0 + i, "app_group_id": "a"}])  # fmt: skip


def test_summaries_folded_from_many_batches_equal_one_batch(
    settings: Settings, tmp_path: Path
) -> None:
    # Every file its own batch: each user's facts arrive in many pending aggregates, which
    # the fold combines (latest dates, summed counts, union of lists, latest keyword).
    summary_history(settings.landing / "currents")
    with hot_connection(settings.hot_db) as con:
        report = ingest_currents(
            con, [settings.landing], settings.quarantine, "one-by-one", batch_rows=1
        )
    assert report.events_stored == 20
    other = load_settings(tmp_path / "other")
    summary_history(other.landing / "currents")
    with hot_connection(other.hot_db) as con:
        ingest_currents(con, [other.landing], other.quarantine, "all-at-once")
    assert derived_tables(settings) == derived_tables(other)
    assert q(settings, """SELECT user_id, last_inbound_keyword_category, list_sort(clicked_aliases), news_feed_views,
                                 epoch(last_engaged)::BIGINT
                          FROM user_summaries ORDER BY user_id""") == [
        ("u1", "OPT_IN", ["al0", "al1", "al2"], 0, T0 + 31),
        ("u2", None, [], 4, None),
    ]  # fmt: skip
    # Each pair once, though every batch that received it added it again.
    assert q(settings, "SELECT user_id, received_id FROM user_items_received ORDER BY ALL") == [
        ("u1", "cmp_0"), ("u1", "cmp_1"), ("u2", "cmp_0"), ("u2", "cmp_1")]  # fmt: skip
    assert q(settings, "SELECT category, epoch(last_at)::BIGINT FROM user_inbound_keywords ORDER BY 1") == [
        ("OPT_IN", T0 + 100), ("STOP", T0 + 99)]  # fmt: skip
    for name in DERIVED_TABLES:
        assert q(settings, f"SELECT count(*) FROM {pending_table(name)}") == [(0,)]  # noqa: S608


def test_a_ledger_of_ids_from_an_older_store_becomes_keys_and_still_deduplicates(
    settings: Settings,
) -> None:
    # A store written before the ledger kept keys: its ledger holds the ids themselves.
    settings.hot_db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.hot_db)) as old:
        old.execute(
            "CREATE TABLE event_ledger (id VARCHAR, item_type VARCHAR, ingested_at TIMESTAMPTZ)"
        )
        old.execute(
            "INSERT INTO event_ledger VALUES ('seen-1', 'campaign', now()), ('seen-2', NULL, now())"
        )
    write_events(settings.landing / "currents", CLICK,
                 [campaign_event("cmp_1", "u1", eid="seen-1"), campaign_event("cmp_1", "u2", eid="new-1")])  # fmt: skip
    _, report = ingest(settings)
    assert report.events_stored == 1 and report.duplicates_skipped == 1
    assert q(settings, "SELECT id FROM campaign_interactions") == [("new-1",)]
    assert q(settings, "SELECT column_name FROM information_schema.columns WHERE table_name = 'event_ledger'") == [
        ("id_key",), ("item_type",), ("ingested_at",)]  # fmt: skip
    keys = f"SELECT x, item_type FROM unnest(?) t(x) JOIN event_ledger l ON l.id_key = {ledger_key('x')} ORDER BY x"  # noqa: S608
    assert q(settings, keys, [["new-1", "seen-1", "seen-2"]]) == [
        ("new-1", "campaign"), ("seen-1", "campaign"), ("seen-2", None)]  # fmt: skip


def write_store_with_received_lists(path: Path) -> None:
    """A store written before `user_items_received`: each user's received ids are a list in
    `user_summaries`, and a crash between batches left one in the pending aggregate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    [summaries] = [s for s in DDL if "TABLE IF NOT EXISTS user_summaries (" in s]
    with duckdb.connect(str(path)) as old:
        old.execute(
            summaries.replace(
                "clicked_aliases VARCHAR[]", "clicked_aliases VARCHAR[], items_received VARCHAR[]"
            )
        )
        old.execute("CREATE TABLE user_summaries_pending AS SELECT * FROM user_summaries LIMIT 0")
        old.execute(
            "INSERT INTO user_summaries (user_id, items_received) VALUES ('u1', ['cmp_1', 'stp_1']), ('u2', NULL)"
        )
        old.execute(
            "INSERT INTO user_summaries_pending (user_id, items_received) VALUES ('u1', ['cmp_1', 'cmp_2'])"
        )


def test_received_lists_of_an_older_store_become_pairs(settings: Settings) -> None:
    write_store_with_received_lists(settings.hot_db)
    write_events(
        settings.landing / "currents", "users.messages.email.Send", [campaign_event("cmp_3", "u2")]
    )
    ingest(settings)
    assert q(settings, "SELECT * FROM user_items_received ORDER BY ALL") == [
        ("u1", "cmp_1"), ("u1", "cmp_2"), ("u1", "stp_1"), ("u2", "cmp_3")]  # fmt: skip
    assert (
        q(
            settings,
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'items_received'",
        )
        == []
    )
    assert q(settings, "SELECT count(*) FROM user_summaries_pending") == [(0,)]


def test_a_reader_of_an_older_store_sees_it_upgraded(settings: Settings) -> None:
    # The first open after an upgrade of the code may be a reader (`ix status`, a check, a
    # sensor): it must not miss the tables and columns the migrations create.
    write_store_with_received_lists(settings.hot_db)
    with duckdb.connect(str(settings.hot_db)) as old:
        old.execute(
            "CREATE TABLE event_ledger (id VARCHAR, item_type VARCHAR, ingested_at TIMESTAMPTZ)"
        )
        old.execute("INSERT INTO event_ledger VALUES ('seen-1', 'campaign', now())")
    seen = f"SELECT count(*) FROM event_ledger WHERE id_key = {ledger_key('?')}"  # noqa: S608
    assert q(settings, seen, ["seen-1"]) == [(1,)]
    assert q(settings, "SELECT * FROM user_items_received ORDER BY ALL") == [
        ("u1", "cmp_1"),
        ("u1", "stp_1"),
    ]
    assert q(settings, "SELECT * FROM user_items_received_pending ORDER BY ALL") == [
        ("u1", "cmp_1"),
        ("u1", "cmp_2"),
    ]
    assert (
        q(
            settings,
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'items_received'",
        )
        == []
    )


def test_opening_a_current_store_changes_nothing_in_it(settings: Settings) -> None:
    with hot_connection(settings.hot_db):
        pass
    wal = settings.hot_db.with_name(settings.hot_db.name + ".wal")
    with hot_connection(settings.hot_db):  # read-write: no DDL runs again
        # Any statement that changed the catalog (a CREATE OR REPLACE VIEW) is in the WAL.
        assert not wal.exists() or wal.stat().st_size == 0


def test_a_store_whose_schema_is_not_current_gets_it_again_on_open(settings: Settings) -> None:
    from ix_pipeline.store.hot import SCHEMA_FINGERPRINT

    with hot_connection(settings.hot_db):
        pass
    with duckdb.connect(str(settings.hot_db)) as raw:  # as if an older version's DDL left it
        raw.execute("DROP VIEW visible_campaign_interactions")
        raw.execute("UPDATE store_schema SET fingerprint = 'an-older-schema'")
    # A reader first.
    assert q(settings, "SELECT count(*) FROM visible_campaign_interactions") == [(0,)]
    assert q(settings, "SELECT fingerprint FROM store_schema") == [(SCHEMA_FINGERPRINT,)]


@pytest.mark.parametrize(
    ("holder_read_only", "we_read_only", "who"),
    [(False, True, "a run writing to it"), (True, False, "a run or a reader")],
)
def test_a_held_store_is_busy_and_says_who_can_hold_it(
    settings: Settings, holder_read_only: bool, we_read_only: bool, who: str
) -> None:
    import subprocess
    import sys

    from ix_pipeline.store.hot import HotStoreBusy

    with hot_connection(settings.hot_db):
        pass  # the store exists
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == '1'); "
         "print('open', flush=True); time.sleep(60)",
         str(settings.hot_db), "1" if holder_read_only else "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(HotStoreBusy, match=f"in use by another process \\({who}\\)"):
            with hot_connection(settings.hot_db, read_only=we_read_only, wait_seconds=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
