"""Writes of ingested events: hot interaction rows, the ledger, summaries and analytics.

One call is one DuckDB transaction: either a batch of files is fully recorded (rows, ledger,
summaries, analytics, the files as ingested, their quarantine entries) or nothing is, so a
crash mid-ingest leaves no partial state and the same files are simply read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from ix_pipeline.ingest.event_types import EVENT_MEANINGS, SUMMARY_CHANNELS
from ix_pipeline.store.hot import transaction
from ix_pipeline.store.schema import INTERACTION_COLUMN_NAMES, ITEM_TYPES, interaction_table


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    kind: str  # currents | catalog
    status: str  # ingested | quarantined
    records: int
    quarantined: int


@dataclass(frozen=True)
class QuarantineEntry:
    source: str
    record_index: int
    event_id: str | None
    reason: str
    saved_to: str


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int
    campaign_rows: int
    canvas_rows: int
    summary_only: int


_MEANINGS = pl.DataFrame(
    {
        "event_type": list(EVENT_MEANINGS),
        "kind": [m.kind for m in EVENT_MEANINGS.values()],
        "channel": [m.channel for m in EVENT_MEANINGS.values()],
    }
)


def _with_meaning(events: pl.DataFrame) -> pl.DataFrame:
    """Adds kind, channel, item_type and item_id; a Canvas id wins over a campaign id because
    Canvas message events can also carry the id of the campaign behind a step."""
    return events.join(_MEANINGS, on="event_type", how="left").with_columns(
        pl.when(pl.col("kind") == "summary")
        .then(None)
        .when(pl.col("canvas_id").is_not_null())
        .then(pl.lit("canvas"))
        .when(pl.col("campaign_id").is_not_null())
        .then(pl.lit("campaign"))
        .alias("item_type"),
        pl.when(pl.col("kind") == "summary")
        .then(None)
        .otherwise(pl.coalesce("canvas_id", "campaign_id"))
        .alias("item_id"),
    )


def store_events(
    con: duckdb.DuckDBPyConnection,
    events: pl.DataFrame,
    files: list[FileRecord],
    quarantined: list[QuarantineEntry],
    run_id: str,
) -> BatchResult:
    """Store a batch of validated events (EVENT_SCHEMA columns) once each, atomically."""
    now = datetime.now(UTC)
    batch = _with_meaning(events.unique(subset=["id"], keep="first", maintain_order=True))
    con.register("_batch", batch.to_arrow())
    try:
        with transaction(con):
            # At-least-once delivery: anything whose id the ledger knows was stored before.
            con.execute(
                """CREATE OR REPLACE TEMP TABLE _new AS
                   SELECT b.* FROM _batch b ANTI JOIN event_ledger l ON l.id = b.id"""
            )
            new_count = con.execute("SELECT count(*) FROM _new").fetchall()[0][0]
            con.execute(
                "INSERT INTO event_ledger SELECT id, item_type, item_id, time, ? FROM _new", [now]
            )
            counts: dict[str, int] = {}
            cols = ", ".join(INTERACTION_COLUMN_NAMES)
            for item_type in ITEM_TYPES:
                table = interaction_table(item_type)
                con.execute(
                    f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _new WHERE item_type = ?",  # noqa: S608
                    [item_type],
                )
                counts[item_type] = con.execute(
                    "SELECT count(*) FROM _new WHERE item_type = ?", [item_type]
                ).fetchall()[0][0]
            _update_user_summaries(con)
            _update_item_analytics(con)
            stored_per_file = dict(
                con.execute("SELECT source, count(*) FROM _new GROUP BY source").fetchall()
            )
            con.executemany(
                "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [(f.path, f.size, f.mtime_ns, f.kind, f.status, f.records, stored_per_file.get(f.path, 0),
                  f.quarantined, now, run_id) for f in files],
            )  # fmt: skip
            for q in quarantined:
                con.execute(
                    "INSERT INTO quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [now, q.source, q.record_index, q.event_id, q.reason, q.saved_to, run_id],
                )
            con.execute("DROP TABLE _new")
    finally:
        con.unregister("_batch")
    return BatchResult(
        stored=new_count,
        duplicates=events.height - new_count,
        campaign_rows=counts["campaign"],
        canvas_rows=counts["canvas"],
        summary_only=new_count - counts["campaign"] - counts["canvas"],
    )


def _last(kind_condition: str) -> str:
    # Convert after aggregating: one conversion per user instead of one per event.
    return f"to_timestamp(max(time) FILTER (WHERE {kind_condition}))"


def _update_user_summaries(con: duckdb.DuckDBPyConnection) -> None:
    """Fold the new events into per-user summaries; expiry never touches these."""
    channel_cols = {
        f"last_received_{short}": _last(f"kind = 'received' AND channel = '{raw}'")
        for raw, short in SUMMARY_CHANNELS.items()
    }
    aggregates = {
        "external_user_id": "max(external_user_id)",
        "last_received_any": _last("kind = 'received'"),
        **channel_cols,
        "last_engaged": _last("kind IN ('opened', 'clicked')"),
        "last_enrolled_control": _last("kind = 'control' OR (kind = 'entry' AND in_control_group)"),
        "last_in_app_impression": _last("event_type = 'users.messages.inappmessage.Impression'"),
        "hard_bounced_at": _last("event_type = 'users.messages.email.Bounce'"),
        "marked_spam_at": _last("event_type = 'users.messages.email.MarkAsSpam'"),
        "invalid_phone_at": _last(
            "event_type IN ('users.messages.sms.DeliveryFailure', 'users.messages.sms.Rejection')"
        ),
        "last_inbound_keyword_category": "arg_max(action, time) FILTER (WHERE event_type = "
        "'users.messages.sms.InboundReceive' AND action IS NOT NULL)",
        "last_inbound_keyword_at": _last(
            "event_type = 'users.messages.sms.InboundReceive' AND action IS NOT NULL"
        ),
        "news_feed_views": "count(*) FILTER (WHERE event_type = "
        "'users.behaviors.app.NewsFeedImpression')",
        "last_news_feed_view": _last("event_type = 'users.behaviors.app.NewsFeedImpression'"),
        "feature_flags": "list_distinct(list(feature_flag_id_name) FILTER (WHERE event_type = "
        "'users.messages.featureflag.Impression' AND feature_flag_id_name IS NOT NULL))",
        "clicked_aliases": "list_distinct(list(link_alias) FILTER (WHERE kind = 'clicked' "
        "AND link_alias IS NOT NULL))",
        # Campaign ids and Canvas step ids: what "Has Never Received a Message from…" reads.
        "items_received": "list_distinct(list(coalesce(canvas_step_id, campaign_id)) FILTER "
        "(WHERE kind = 'received' AND coalesce(canvas_step_id, campaign_id) IS NOT NULL))",
    }
    select = ", ".join(f"{expr} AS {name}" for name, expr in aggregates.items())
    merges = []
    for name in aggregates:
        old, new = f"user_summaries.{name}", f"a.{name}"
        if name == "external_user_id":
            merges.append(f"{name} = coalesce({new}, {old})")
        elif name == "news_feed_views":
            merges.append(f"{name} = coalesce({old}, 0) + {new}")
        elif name in ("feature_flags", "clicked_aliases", "items_received"):
            merges.append(
                f"{name} = list_distinct(list_concat(coalesce({old}, []), coalesce({new}, [])))"
            )
        elif name == "last_inbound_keyword_category":
            merges.append(
                f"{name} = CASE WHEN a.last_inbound_keyword_at >= coalesce("
                f"user_summaries.last_inbound_keyword_at, a.last_inbound_keyword_at) "
                f"THEN {new} ELSE {old} END"
            )
        else:
            merges.append(f"{name} = greatest({old}, {new})")
    names = ", ".join(aggregates)
    # Aggregate once, then update the users seen before and append the new ones: an
    # `INSERT … ON CONFLICT DO UPDATE` goes row by row and was most of an ingest's time.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _agg AS SELECT user_id, {select} FROM _new GROUP BY user_id"  # noqa: S608
    )
    _merge(con, "user_summaries", ["user_id"], ", ".join(merges), f"user_id, {names}")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _agg AS
           SELECT user_id, action AS category, max(to_timestamp(time)) AS last_at FROM _new
           WHERE event_type = 'users.messages.sms.InboundReceive' AND action IS NOT NULL
           GROUP BY ALL"""
    )
    _merge(
        con, "user_inbound_keywords", ["user_id", "category"],
        "last_at = greatest(user_inbound_keywords.last_at, a.last_at)", "user_id, category, last_at",
    )  # fmt: skip


def _merge(
    con: duckdb.DuckDBPyConnection, table: str, keys: list[str], set_sql: str, columns: str
) -> None:
    """Upsert the temp table `_agg` into `table` on `keys`, set-wise: UPDATE … FROM for the
    keys seen before, then INSERT the rest."""
    match = " AND ".join(f"{table}.{k} = a.{k}" for k in keys)
    con.execute(f"UPDATE {table} SET {set_sql} FROM _agg a WHERE {match}")  # noqa: S608
    exists = " AND ".join(f"t.{k} = a.{k}" for k in keys)
    con.execute(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _agg a "  # noqa: S608
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {exists})"
    )
    con.execute("DROP TABLE _agg")


def _update_item_analytics(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _agg AS
           SELECT item_type, item_id,
                  coalesce(canvas_variation_id, message_variation_id, '') AS variant_id,
                  coalesce(canvas_step_id, '') AS step_id, kind, event_type,
                  CAST(to_timestamp(time) AS DATE) AS day, count(*) AS events
           FROM _new WHERE item_id IS NOT NULL GROUP BY ALL"""
    )
    _merge(
        con, "item_analytics", ["item_type", "item_id", "variant_id", "step_id", "event_type", "day"],
        "events = item_analytics.events + a.events",
        "item_type, item_id, variant_id, step_id, kind, event_type, day, events",
    )  # fmt: skip


def pending_files(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[Path]:
    """The files not yet ingested (new, or rewritten since): what a sensor should hand to a run."""
    if not paths:
        return []
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    con.register(
        "_seen",
        pa.table(
            {
                "path": [s[0] for s in stats],
                "size": [s[1] for s in stats],
                "mtime_ns": [s[2] for s in stats],
            }
        ),
    )
    try:
        fresh = {
            row[0]
            for row in con.execute(
                """SELECT s.path FROM _seen s ANTI JOIN ingested_files f
                   ON f.path = s.path AND f.size = s.size AND f.mtime_ns = s.mtime_ns"""
            ).fetchall()
        }
    finally:
        con.unregister("_seen")
    return [p for p, s in zip(paths, stats, strict=True) if s[0] in fresh]
