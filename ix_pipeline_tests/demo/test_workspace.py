"""The demo workspace generator and the Currents file writers it shares with tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest

from ix_pipeline.demo.currents_files import (
    ALL_EVENT_TYPES,
    EVENT_TYPES,
    REQUIRED_FIELDS,
    avro_schema,
    currents_path,
    write_avro,
    write_jsonl,
    write_parquet,
)
from ix_pipeline.demo.workspace import (
    DEFAULT_NOW,
    FEATURE_FLAGS,
    LINK_ALIASES,
    SMS_KEYWORD_CATEGORIES,
    TAGS,
    WorkspaceSummary,
    generate_workspace,
)

SMALL: dict[str, Any] = {"n_users": 500, "n_events": 20_000, "n_campaigns": 20, "n_canvases": 6}
LAYOUT = re.compile(
    r"dataexport\.[^/]+\.(S3|AzureBlob|GCS)\.integration\.[^/]+/event_type=([^/]+)/"
    r"date=(\d{4}-\d{2}-\d{2}-\d{2})/[^/]+/[^/]+/[^/]+\.avro$"
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> WorkspaceSummary:
    return generate_workspace(tmp_path_factory.mktemp("ws") / "data", workers=1, **SMALL)


@pytest.fixture(scope="module")
def events(workspace: WorkspaceSummary) -> pl.DataFrame:
    frames = []
    for path in workspace.currents_files:
        event_type = LAYOUT.search(path.as_posix()).group(2)  # type: ignore[union-attr]
        frame = pl.read_avro(path).with_columns(
            pl.col("time").cast(pl.Int64), event_type=pl.lit(event_type), file=pl.lit(str(path))
        )
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed")


def _catalog(workspace: WorkspaceSummary) -> dict[str, dict[str, Any]]:
    """Documents by ID, the later `updated_at` winning, as FORMATS.md section 2 says."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(workspace.catalog_dir.glob("*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        for doc in loaded if isinstance(loaded, list) else [loaded]:
            current = docs.get(doc["id"])
            if current is None or doc["updated_at"] > current["updated_at"]:
                docs[doc["id"]] = doc
    return docs


def _avro_header(path: Path) -> tuple[dict[str, Any], str]:
    with path.open("rb") as f:
        reader = fastavro.reader(f)
        return json.loads(reader.metadata["avro.schema"]), reader.metadata.get("avro.codec", "null")


# ---- layout and reading back ----------------------------------------------------------------


def test_files_follow_the_currents_layout(workspace: WorkspaceSummary) -> None:
    found = sorted(workspace.currents_dir.rglob("*"))
    files = [p for p in found if p.is_file()]
    assert sorted(files) == sorted(workspace.currents_files)
    for path in files:
        match = LAYOUT.search(path.relative_to(workspace.currents_dir).as_posix())
        assert match, path
        assert match.group(2) in ALL_EVENT_TYPES
        hour = datetime.strptime(match.group(3), "%Y-%m-%d-%H").replace(tzinfo=UTC)
        assert hour <= DEFAULT_NOW
        assert path.stat().st_size > 0


def test_record_namespace_and_name_match_the_event_type_directory(
    workspace: WorkspaceSummary,
) -> None:
    for path in workspace.currents_files:
        schema, _ = _avro_header(path)
        event_type = LAYOUT.search(path.as_posix()).group(2)  # type: ignore[union-attr]
        full = (
            schema["name"] if "." in schema["name"] else f"{schema['namespace']}.{schema['name']}"
        )
        assert full == f"dataexport.S3.inner.{event_type}"
        names = [f["name"] for f in schema["fields"]]
        assert set(REQUIRED_FIELDS) <= set(names)


def test_polars_reads_every_codec_and_int_time(
    workspace: WorkspaceSummary, events: pl.DataFrame
) -> None:
    codecs: set[str] = set()
    time_types: set[str] = set()
    for path in workspace.currents_files:
        schema, codec = _avro_header(path)
        codecs.add(codec)
        (time_type,) = [f["type"] for f in schema["fields"] if f["name"] == "time"]
        time_types.add(time_type)
        frame = pl.read_avro(path)
        assert frame.height > 0
        assert frame["time"].dtype == (pl.Int32 if time_type == "int" else pl.Int64)
    assert codecs == {"null", "deflate", "snappy"}
    assert time_types == {"int", "long"}
    assert events.height == workspace.n_records
    assert events["id"].n_unique() == workspace.n_events == SMALL["n_events"]


def test_event_counts_and_user_ids(workspace: WorkspaceSummary, events: pl.DataFrame) -> None:
    by_type = dict(events.group_by("event_type").len().iter_rows())
    assert by_type == workspace.records_by_event_type
    assert set(by_type) >= {
        "users.messages.email.Send",
        "users.messages.email.Open",
        "users.messages.email.Click",
        "users.campaigns.Conversion",
        "users.canvas.Conversion",
        "users.campaigns.EnrollInControl",
        "users.canvas.Entry",
        "users.messages.sms.InboundReceive",
        "users.messages.featureflag.Impression",
        "users.behaviors.app.NewsFeedImpression",
        "users.messages.email.Bounce",
    }
    summary_only = set(EVENT_TYPES["summary_only"])
    share = sum(n for t, n in by_type.items() if t in summary_only) / events.height
    assert 0.03 < share < 0.08
    assert events["user_id"].str.contains(r"^u\d{7}$").all()
    assert events["user_id"].n_unique() <= SMALL["n_users"]
    users = events.group_by("user_id").agg(pl.col("external_user_id").unique())
    # One external ID (or none) per user, ~80 % of users have one.
    assert users["external_user_id"].list.len().max() == 1
    ext = users["external_user_id"].list.first()
    assert ext.drop_nulls().str.contains(r"^ext-\d{7}$").all()
    assert 0.7 < ext.is_not_null().mean() < 0.9  # type: ignore[operator]
    assert events["time"].max() < int(DEFAULT_NOW.timestamp())  # type: ignore[operator]


def test_some_events_are_delivered_twice_in_another_file(
    workspace: WorkspaceSummary, events: pl.DataFrame
) -> None:
    twice = (
        events.group_by("id")
        .agg(
            pl.len(), pl.col("file").n_unique().alias("files"), pl.col("time").n_unique().alias("t")
        )
        .filter(pl.col("len") > 1)
    )
    assert twice.height == workspace.n_duplicates
    assert 0.005 < twice.height / workspace.n_events < 0.02
    assert (twice["len"] == 2).all() and (twice["files"] == 2).all() and (twice["t"] == 1).all()
    copies = events.filter(pl.col("id").is_in(twice["id"].implode())).drop("file")
    assert copies.unique().height == twice.height  # the copies are identical records


# ---- catalog ------------------------------------------------------------------------------

_TIME_OPS = {"before", "after", "more_than_days_ago", "less_than_days_ago"}
_PARAMS: dict[str, set[str]] = {
    "received_campaign": {"campaign_id"},
    "received_campaign_variant": {"campaign_id", "variant_id"},
    "clicked_opened_campaign": {"campaign_id", "action"},
    "clicked_alias_in_campaign": {"campaign_id", "alias"},
    "converted_from_campaign": {"campaign_id"},
    "in_campaign_control_group": {"campaign_id"},
    "last_received_campaign": {"campaign_id", "op", "value"},
    "received_canvas_step": {"canvas_id", "step_id"},
    "clicked_opened_step": {"canvas_id", "step_id", "action"},
    "clicked_alias_in_canvas_step": {"canvas_id", "step_id", "alias"},
    "converted_from_canvas": {"canvas_id"},
    "in_canvas_control_group": {"canvas_id"},
    "entered_canvas_variation": {"canvas_id", "variation_id"},
    "last_received_canvas_step": {"canvas_id", "step_id", "op", "value"},
    "received_with_tag": {"tag"},
    "clicked_opened_with_tag": {"tag", "action"},
    "last_received_with_tag": {"tag", "op", "value"},
    "clicked_alias_in_any": {"alias"},
    "hard_bounced": set(),
    "marked_spam": set(),
    "invalid_phone_number": set(),
    "never_received": set(),
    "feature_flag": {"flag_id"},
    "last_sms_inbound_keyword_category": {"category", "op", "value"},
    "news_feed_view_count": {"op", "value"},
    **{
        name: {"op", "value"}
        for name in (
            "last_engaged",
            "last_enrolled_any_control_group",
            "last_in_app_impression",
            "last_received_any",
            "last_received_email",
            "last_received_push",
            "last_received_sms",
            "last_received_webhook",
            "last_received_whatsapp",
            "last_viewed_news_feed",
        )
    },
}


def _leaves(expr: dict[str, Any]) -> Iterator[dict[str, Any]]:
    assert isinstance(expr, dict) and len(expr) >= 1
    if "all" in expr or "any" in expr:
        (parts,) = [expr[k] for k in ("all", "any") if k in expr]
        assert isinstance(parts, list) and parts
        for part in parts:
            yield from _leaves(part)
    elif "not" in expr:
        yield from _leaves(expr["not"])
    else:
        yield expr


def _check_filter(leaf: dict[str, Any], docs: dict[str, dict[str, Any]]) -> list[str]:
    """Item IDs the leaf references; asserts the leaf is valid per FORMATS.md section 2."""
    name = leaf["filter"]
    assert name in _PARAMS, name
    assert _PARAMS[name] <= set(leaf), leaf
    if "op" in leaf:
        if name == "news_feed_view_count":
            assert leaf["op"] in {"eq", "gt", "lt"} and isinstance(leaf["value"], int)
        else:
            assert leaf["op"] in _TIME_OPS
            if leaf["op"] in ("before", "after"):
                assert leaf["value"].endswith("Z")
                datetime.fromisoformat(leaf["value"].replace("Z", "+00:00"))
            else:
                assert isinstance(leaf["value"], int)
    if "action" in leaf:
        assert leaf["action"] in {"clicked", "opened", "any"}
    if "alias" in leaf:
        assert leaf["alias"] in LINK_ALIASES
    if "tag" in leaf:
        assert leaf["tag"] in TAGS
    if name == "feature_flag":
        assert leaf["flag_id"] in FEATURE_FLAGS
    if name == "last_sms_inbound_keyword_category":
        assert leaf["category"] in SMS_KEYWORD_CATEGORIES
    if name == "never_received":
        assert ("campaign_id" in leaf) != ("canvas_id" in leaf and "step_id" in leaf)
    refs = []
    for key, kind in (("campaign_id", "campaign"), ("canvas_id", "canvas")):
        if key not in leaf:
            continue
        target = docs.get(leaf[key])
        assert target is not None and target["type"] == kind, leaf
        assert target["interaction_data_deleted_at"] is None, f"legacy-deleted target: {leaf}"
        refs.append(target["id"])
        if "variant_id" in leaf:
            assert leaf["variant_id"] in target["messages"]
        if "step_id" in leaf:
            assert leaf["step_id"] in {s["id"] for s in target["steps"]}
        if "variation_id" in leaf:
            assert leaf["variation_id"] in {v["id"] for v in target["variants"]}
        if "conversion_behavior_index" in leaf:
            assert 0 <= leaf["conversion_behavior_index"] < len(target["conversion_behaviors"])
        if name == "in_campaign_control_group":
            assert any(m.get("type") == "control" for m in target["messages"].values())
    return refs


def test_catalog_documents_have_the_formats_shape(workspace: WorkspaceSummary) -> None:
    docs = _catalog(workspace)
    kinds = [d["type"] for d in docs.values()]
    assert kinds.count("campaign") == SMALL["n_campaigns"]
    assert kinds.count("canvas") == SMALL["n_canvases"]
    assert kinds.count("segment") == workspace.n_segments >= 20
    assert kinds.count("content_card") == workspace.n_content_cards >= 5
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for doc in docs.values():
        for key in ("created_at", "updated_at", "first_sent", "last_sent", "stopped_at"):
            assert doc.get(key) is None or stamp.match(doc[key]), (doc["id"], key)
        if doc["type"] in ("segment", "content_card"):
            assert doc["status"] in ("active", "inactive") and "audience" in doc
            continue
        assert doc["status"] in ("draft", "active", "stopped", "archived")
        assert (doc["stopped_at"] is None) == (doc["status"] in ("draft", "active"))
        assert set(doc["tags"]) <= set(TAGS)
        if doc["type"] == "campaign":
            assert re.match(r"^cmp_\d{6}$", doc["id"])
            assert all(m.startswith(f"{doc['id']}_v") for m in doc["messages"])
        else:
            assert re.match(r"^cnv_\d{6}$", doc["id"])
            step_ids = {s["id"] for s in doc["steps"]}
            for variant in doc["variants"]:
                assert set(variant["first_step_ids"]) <= step_ids
                assert bool(variant["first_step_ids"]) != (variant.get("type") == "control")
            assert all(s["messages"] for s in doc["steps"])
    legacy = [d for d in docs.values() if d.get("interaction_data_deleted_at")]
    assert [d["id"] for d in sorted(legacy, key=lambda d: d["id"])] == workspace.legacy_deleted_ids
    assert legacy
    for doc in legacy:
        assert doc["last_sent"] < "2021-01-01" and doc["interaction_data_deleted_at"] < "2024"


def test_every_audience_filter_is_valid_and_targets_live_items(
    workspace: WorkspaceSummary,
) -> None:
    docs = _catalog(workspace)
    history = json.loads((workspace.catalog_dir / "catalog_history.json").read_text())
    referenced_by_active: set[str] = set()
    audiences = 0
    for doc in [*docs.values(), *history]:
        if "audience" not in doc:
            continue
        audiences += 1
        for leaf in _leaves(doc["audience"]):
            refs = _check_filter(leaf, docs)
            if doc["status"] == "active" and leaf["filter"] != "never_received":
                referenced_by_active.update(refs)
    assert audiences > 30
    assert sorted(referenced_by_active) == workspace.referenced_by_active
    stopped = {i for i, d in docs.items() if d.get("status") == "stopped"}
    # Some stopped items are exempt, others are free to expire.
    assert stopped & referenced_by_active
    assert stopped - referenced_by_active


def test_events_agree_with_the_catalog(events: pl.DataFrame, workspace: WorkspaceSummary) -> None:
    docs = _catalog(workspace)
    received = set(EVENT_TYPES["received"])
    campaign_rows = events.filter(pl.col("campaign_id").is_not_null())
    for cid, mid, event_type, t_min, t_max in (
        campaign_rows.group_by("campaign_id", "message_variation_id", "event_type")
        .agg(pl.col("time").min().alias("t_min"), pl.col("time").max().alias("t_max"))
        .iter_rows()
    ):
        doc = docs[cid]
        assert doc["status"] != "draft" and doc["interaction_data_deleted_at"] is None
        message = doc["messages"][mid]
        is_control = message.get("type") == "control"
        assert is_control == (event_type == "users.campaigns.EnrollInControl") or (
            is_control and event_type == "users.campaigns.Conversion"
        )
        if event_type in received:
            first = int(datetime.fromisoformat(doc["first_sent"]).timestamp())
            last = int(datetime.fromisoformat(doc["last_sent"]).timestamp())
            assert first <= t_min and t_max <= last
    canvas_rows = events.filter(pl.col("canvas_id").is_not_null())
    for cid, var, step, event_type, control in (
        canvas_rows.select(
            "canvas_id", "canvas_variation_id", "canvas_step_id", "event_type", "in_control_group"
        )
        .unique()
        .iter_rows()
    ):
        doc = docs[cid]
        assert doc["interaction_data_deleted_at"] is None
        variant = {v["id"]: v for v in doc["variants"]}[var]
        if step is not None:
            assert step in {s["id"] for s in doc["steps"]}
        if event_type == "users.canvas.Entry":
            assert control == (variant.get("type") == "control")
    # A user sees one variant of a campaign, one variation of a Canvas.
    per_user = campaign_rows.group_by("user_id", "campaign_id").agg(
        pl.col("message_variation_id").n_unique()
    )
    assert per_user["message_variation_id"].max() == 1
    clicks = events.filter(pl.col("event_type") == "users.messages.email.Click")
    assert set(clicks["link_alias"].unique()) <= set(LINK_ALIASES)
    entries = events.filter(pl.col("event_type") == "users.canvas.Entry")
    assert entries["in_control_group"].null_count() == 0
    inbound = events.filter(pl.col("event_type") == "users.messages.sms.InboundReceive")
    assert set(inbound["action"].unique()) <= set(SMS_KEYWORD_CATEGORIES)
    conversions = events.filter(pl.col("event_type").str.ends_with(".Conversion"))
    assert conversions["conversion_behavior_index"].null_count() == 0


def test_generation_is_deterministic_and_workers_do_not_change_bytes(
    workspace: WorkspaceSummary, tmp_path: Path
) -> None:
    again = generate_workspace(tmp_path / "again", workers=2, **SMALL)
    assert again.n_records == workspace.n_records
    assert again.records_by_event_type == workspace.records_by_event_type

    def contents(summary: WorkspaceSummary) -> dict[str, bytes]:
        root = summary.data_dir
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in [*summary.currents_files, *summary.catalog_files]
        }

    assert contents(again) == contents(workspace)
    other = generate_workspace(tmp_path / "other", seed=8, workers=1, **SMALL)
    assert contents(other) != contents(workspace)


# ---- Currents file writers --------------------------------------------------------------


def test_avro_schema_names_and_subsets() -> None:
    schema = avro_schema("users.messages.email.Click")
    assert schema["namespace"] == "dataexport.S3.inner.users.messages.email"
    assert schema["name"] == "Click"
    entry = avro_schema("users.canvas.Entry", "int", fields=["in_control_group"])
    assert entry["namespace"] == "dataexport.S3.inner.users.canvas" and entry["name"] == "Entry"
    assert [f["name"] for f in entry["fields"]] == [*REQUIRED_FIELDS, "in_control_group"]
    assert {"name": "time", "type": "int"} in entry["fields"]
    with pytest.raises(ValueError, match="unknown"):
        avro_schema("users.canvas.Entry", fields=["nope"])


def test_currents_path_layout(tmp_path: Path) -> None:
    path = currents_path(tmp_path, "users.messages.email.Open", datetime(2025, 3, 4, 5, tzinfo=UTC))
    assert path == (
        tmp_path
        / "dataexport.prod-01.S3.integration.0a1b2c3d"
        / "event_type=users.messages.email.Open"
        / "date=2025-03-04-05"
        / "1"
        / "zone-a"
        / "part-00000.avro"
    )


_RECORDS: list[dict[str, Any]] = [
    {"id": "e1", "user_id": "u1", "time": 1_736_510_400, "app_group_id": "ag",
     "campaign_id": "cmp_1", "in_control_group": False, "conversion_behavior_index": 1},
    {"id": "e2", "user_id": "u2", "external_user_id": "x2", "time": 1_736_510_401,
     "app_group_id": "ag"},
]  # fmt: skip


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
@pytest.mark.parametrize("time_type", ["int", "long"])
def test_write_avro_round_trips(tmp_path: Path, codec: str, time_type: str) -> None:
    path = tmp_path / "a" / "b.avro"
    assert write_avro(path, "users.campaigns.Conversion", _RECORDS, codec=codec,
                      time_type=time_type) == 2  # fmt: skip
    frame = pl.read_avro(path)
    assert frame["id"].to_list() == ["e1", "e2"]
    assert frame["external_user_id"].to_list() == [None, "x2"]
    assert frame["in_control_group"].to_list() == [False, None]
    assert frame["conversion_behavior_index"].to_list() == [1, None]
    assert frame["time"].to_list() == [1_736_510_400, 1_736_510_401]
    assert _avro_header(path)[1] == codec


def test_write_jsonl_and_parquet_add_the_event_type(tmp_path: Path) -> None:
    event_type = "users.messages.email.Open"
    assert write_jsonl(tmp_path / "e.jsonl", _RECORDS, event_type=event_type) == 2
    lines = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [r["event_type"] for r in lines] == [event_type] * 2
    assert lines[0]["campaign_id"] == "cmp_1"
    assert write_parquet(tmp_path / "e.parquet", lines) == 2
    frame = pl.read_parquet(tmp_path / "e.parquet")
    assert frame["event_type"].to_list() == [event_type] * 2
    assert frame["time"].dtype == pl.Int64 and frame["external_user_id"].to_list() == [None, "x2"]
    with pytest.raises(ValueError, match="event_type"):
        write_jsonl(tmp_path / "bad.jsonl", _RECORDS)
