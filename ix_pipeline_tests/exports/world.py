"""A small hand-built world for the audience and export tests: catalog documents, Currents
events (JSON Lines) and consumers, loaded into a real DuckDB store through the real ingestion.

Users u1..u9, items:

* cmp_a "Spring sale" (multivariate: var_a1, var_a2, control ctl_a; tags promo, spring)
* cmp_b "Welcome push" (one variant; tag onboarding; active)
* cmp_c "In-app promo" (one in-app variant; tag promo)
* cnv_x "Journey" (variations cvar_1, cvar_2, control cvar_ctl; steps stp_1 email, stp_2 push;
  tag promo)
* cmp_old "Old promo": deleted under the pre-2024 policy (tag promo; its one event is hidden)

The expected member sets in the tests are worked out by hand from the event table below.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ix_pipeline.ingest.catalog import ingest_catalog
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.store.hot import hot_connection

AS_OF = datetime(2025, 3, 31, tzinfo=UTC)
USERS = tuple(f"u{i}" for i in range(1, 10))
EXTERNAL = {u: f"ext_{u[1:]}" for u in USERS if u != "u9"}

CAMPAIGN_A = {
    "id": "cmp_a", "type": "campaign", "name": "Spring sale", "tags": ["promo", "spring"],
    "updated_at": "2025-01-31T10:00:00Z", "status": "stopped",
    "stopped_at": "2025-01-31T10:00:00Z",
    "messages": {
        "var_a1": {"channel": "email", "name": "Variant 1"},
        "var_a2": {"channel": "email", "name": "Variant 2"},
        "ctl_a": {"channel": "email", "type": "control", "name": "Control"},
    },
    "conversion_behaviors": [{"type": "Clicks Email"}, {"type": "Makes Purchase"}],
}  # fmt: skip
CAMPAIGN_B = {
    "id": "cmp_b", "type": "campaign", "name": "Welcome push", "tags": ["onboarding"],
    "updated_at": "2025-01-01T00:00:00Z", "status": "active",
    "messages": {"var_b1": {"channel": "push", "name": "Push"}},
}  # fmt: skip
CAMPAIGN_C = {
    "id": "cmp_c", "type": "campaign", "name": "In-app promo", "tags": ["promo"],
    "updated_at": "2025-01-01T00:00:00Z", "status": "stopped",
    "stopped_at": "2025-03-10T00:00:00Z",
    "messages": {"var_c1": {"channel": "inappmessage", "name": "Banner"}},
}  # fmt: skip
CANVAS_X = {
    "id": "cnv_x", "type": "canvas", "name": "Journey", "tags": ["promo"],
    "updated_at": "2025-01-01T00:00:00Z", "status": "stopped",
    "stopped_at": "2025-03-20T00:00:00Z",
    "variants": [
        {"id": "cvar_1", "name": "Path 1", "first_step_ids": ["stp_1"]},
        {"id": "cvar_2", "name": "Path 2", "first_step_ids": ["stp_2"]},
        {"id": "cvar_ctl", "name": "Control", "type": "control"},
    ],
    "steps": [
        {"id": "stp_1", "name": "Email 1", "type": "message", "next_step_ids": [],
         "messages": {"smv_1": {"channel": "email", "name": "Email 1 message"}}},
        {"id": "stp_2", "name": "Push 2", "type": "message", "next_step_ids": [],
         "messages": {"smv_2": {"channel": "push", "name": "Push 2 message"}}},
    ],
}  # fmt: skip
CAMPAIGN_OLD = {
    "id": "cmp_old", "type": "campaign", "name": "Old promo", "tags": ["promo"],
    "updated_at": "2023-06-01T00:00:00Z", "status": "stopped",
    "stopped_at": "2021-01-01T00:00:00Z", "interaction_data_deleted_at": "2023-05-01T00:00:00Z",
    "messages": {"var_o1": {"channel": "email", "name": "Old"}},
}  # fmt: skip
ITEMS = (CAMPAIGN_A, CAMPAIGN_B, CAMPAIGN_C, CANVAS_X, CAMPAIGN_OLD)


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


_A = {"campaign_id": "cmp_a", "campaign_name": "Spring sale"}
_B = {"campaign_id": "cmp_b", "campaign_name": "Welcome push"}
_C = {"campaign_id": "cmp_c", "campaign_name": "In-app promo"}
_X = {"canvas_id": "cnv_x", "canvas_name": "Journey"}
_X1 = {**_X, "canvas_variation_id": "cvar_1", "canvas_variation_name": "Path 1"}
_X2 = {**_X, "canvas_variation_id": "cvar_2", "canvas_variation_name": "Path 2"}
_S1 = {"canvas_step_id": "stp_1", "canvas_step_name": "Email 1"}
_S2 = {"canvas_step_id": "stp_2", "canvas_step_name": "Push 2"}
M = "users.messages."

# (id, user, time (UTC), event type, fields). Item of each event = its id's prefix letter.
EVENTS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    # cmp_a
    ("a1", "u1", "2025-03-02T10:00", M + "email.Send", {**_A, "message_variation_id": "var_a1"}),
    ("a2", "u1", "2025-03-02T11:00", M + "email.Open", {**_A, "message_variation_id": "var_a1"}),
    ("a3", "u1", "2025-03-02T11:05", M + "email.Click",
     {**_A, "message_variation_id": "var_a1", "link_alias": "cta"}),
    ("a4", "u1", "2025-03-02T12:00", "users.campaigns.Conversion",
     {**_A, "message_variation_id": "var_a1", "conversion_behavior_index": 0}),
    ("a5", "u1", "2025-03-02T13:00", "users.campaigns.Conversion",
     {**_A, "message_variation_id": "var_a1", "conversion_behavior_index": 1}),
    ("a6", "u2", "2025-03-03T10:00", M + "email.Send", {**_A, "message_variation_id": "var_a2"}),
    ("a7", "u2", "2025-03-03T10:30", M + "email.Click",
     {**_A, "message_variation_id": "var_a2", "link_alias": "footer"}),
    ("a8", "u3", "2025-03-02T10:00", "users.campaigns.EnrollInControl",
     {**_A, "message_variation_id": "ctl_a"}),
    ("a9", "u3", "2025-03-02T15:00", "users.campaigns.Conversion",
     {**_A, "conversion_behavior_index": 0}),
    # An enrollment without a variant id: the catalog's control message stands in.
    ("a10", "u4", "2025-03-02T10:00", "users.campaigns.EnrollInControl", {**_A}),
    # cmp_b
    ("b1", "u1", "2025-03-21T09:00", M + "pushnotification.Send",
     {**_B, "message_variation_id": "var_b1"}),
    ("b2", "u1", "2025-03-21T09:10", M + "pushnotification.Open",
     {**_B, "message_variation_id": "var_b1"}),
    ("b3", "u5", "2025-01-20T09:00", M + "pushnotification.Send",
     {**_B, "message_variation_id": "var_b1"}),
    # cmp_c
    ("c1", "u6", "2025-03-06T08:00", M + "inappmessage.Impression",
     {**_C, "message_variation_id": "var_c1"}),
    ("c2", "u6", "2025-03-06T08:01", M + "inappmessage.Click",
     {**_C, "message_variation_id": "var_c1"}),
    # cnv_x
    ("x1", "u1", "2025-03-04T09:00", "users.canvas.Entry", {**_X1, "in_control_group": False}),
    ("x2", "u1", "2025-03-04T09:30", M + "email.Send", {**_X1, **_S1}),
    ("x3", "u1", "2025-03-04T10:00", M + "email.Click", {**_X1, **_S1, "link_alias": "cta"}),
    ("x4", "u1", "2025-03-04T11:00", "users.canvas.Conversion",
     {**_X1, **_S1, "conversion_behavior_index": 0}),
    ("x5", "u2", "2025-03-05T09:00", "users.canvas.Entry", {**_X2, "in_control_group": False}),
    ("x6", "u2", "2025-03-05T12:00", M + "pushnotification.Send", {**_X2, **_S2}),
    ("x7", "u2", "2025-03-05T12:30", M + "pushnotification.Open", {**_X2, **_S2}),
    ("x8", "u7", "2025-03-04T09:00", "users.canvas.Entry",
     {**_X, "canvas_variation_id": "cvar_ctl", "canvas_variation_name": "Control",
      "in_control_group": True}),
    ("x9", "u7", "2025-03-06T09:00", "users.canvas.Conversion",
     {**_X, "canvas_variation_id": "cvar_ctl", "conversion_behavior_index": 0}),
    # cmp_old (legacy-deleted: never visible)
    ("o1", "u8", "2023-01-10T09:00", M + "email.Send",
     {"campaign_id": "cmp_old", "campaign_name": "Old promo", "message_variation_id": "var_o1"}),
    # summary-only events
    ("s1", "u8", "2025-03-07T10:00", M + "email.Bounce", {"bounce_reason": "550"}),
    ("s2", "u8", "2025-03-07T11:00", M + "email.MarkAsSpam", {}),
    ("s3", "u9", "2025-03-08T10:00", M + "sms.DeliveryFailure", {}),
    ("s4", "u9", "2025-03-10T10:00", M + "sms.InboundReceive", {"action": "STOP"}),
    ("s5", "u9", "2025-03-11T10:00", M + "featureflag.Impression",
     {"feature_flag_id_name": "ff_new"}),
    ("s6", "u9", "2025-03-12T10:00", "users.behaviors.app.NewsFeedImpression", {}),
    ("s7", "u9", "2025-03-13T10:00", "users.behaviors.app.NewsFeedImpression", {}),
    ("s8", "u5", "2025-03-15T10:00", M + "sms.Delivery", {}),
    ("s9", "u6", "2025-03-16T10:00", M + "whatsapp.Send", {}),
    ("s10", "u4", "2025-02-01T10:00", M + "webhook.Send", {}),
)  # fmt: skip

ITEM_OF_PREFIX = {"a": "cmp_a", "b": "cmp_b", "c": "cmp_c", "x": "cnv_x", "o": "cmp_old"}


def event_record(event: tuple[str, str, str, str, dict[str, Any]]) -> dict[str, Any]:
    eid, user, when, event_type, fields = event
    record: dict[str, Any] = {
        "id": eid, "user_id": user, "external_user_id": EXTERNAL.get(user),
        "time": _ts(when), "app_group_id": "app_1", "event_type": event_type, **fields,
    }  # fmt: skip
    return record


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def segment(consumer_id: str, audience: Any, status: str = "active") -> dict[str, Any]:
    return {
        "id": consumer_id,
        "type": "segment",
        "name": consumer_id,
        "status": status,
        "audience": audience,
    }


def build_store(
    root: Path,
    consumers: Iterable[Mapping[str, Any]] = (),
    events: Iterable[tuple[str, str, str, str, dict[str, Any]]] = EVENTS,
) -> Path:
    """A hot store under ``root`` holding the world; returns the DuckDB file path."""
    catalog_dir = root / "landing" / "catalog"
    catalog_dir.mkdir(parents=True, exist_ok=True)
    (catalog_dir / "items.json").write_text(json.dumps(list(ITEMS)), encoding="utf-8")
    (catalog_dir / "consumers.json").write_text(json.dumps(list(consumers)), encoding="utf-8")
    records = [event_record(e) for e in events]
    currents = root / "landing" / "currents"
    write_jsonl(currents / "batch1.jsonl", records[: len(records) // 2])
    write_jsonl(currents / "batch2.jsonl", records[len(records) // 2 :])
    # At-least-once delivery: the first events again, in another file.
    write_jsonl(currents / "redelivery.jsonl", records[:3])
    db = root / "hot.duckdb"
    with hot_connection(db) as con:
        ingest_catalog(con, [catalog_dir], root / "quarantine", "test-run")
        ingest_currents(con, [currents], root / "quarantine", "test-run")
    return db


def copy_store(db: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / db.name
    shutil.copy(db, target)
    return target


def item_table(con: duckdb.DuckDBPyConnection, item_id: str) -> str:
    rows = con.execute("SELECT type FROM catalog_items WHERE id = ?", [item_id]).fetchall()
    assert rows, f"{item_id} is not in the catalog"
    return "canvas_interactions" if rows[0][0] == "canvas" else "campaign_interactions"


def mark_expired(con: duckdb.DuckDBPyConnection, item_id: str, *, delete_rows: bool) -> None:
    """Emulates the expiry job's end state: state expired, and (optionally) hot rows gone."""
    con.execute("UPDATE item_lifecycle SET state = 'expired' WHERE item_id = ?", [item_id])
    if delete_rows:
        table = item_table(con, item_id)
        con.execute(f"DELETE FROM {table} WHERE item_id = ?", [item_id])  # noqa: S608


def delete_rows_only(con: duckdb.DuckDBPyConnection, item_id: str) -> None:
    """The reference world: the item's interaction rows were never stored (its summaries,
    analytics and ledger entries stay, as they would for data the features cannot see)."""
    table = item_table(con, item_id)
    con.execute(f"DELETE FROM {table} WHERE item_id = ?", [item_id])  # noqa: S608
