"""Writes of ingested events: hot interaction rows, the ledger, summaries and analytics.

One `store_events` call is one DuckDB transaction: either a batch of files is fully recorded
(rows, ledger, the batch's summary and analytics aggregates, the files as ingested, their
quarantine entries) or nothing is, so a crash mid-ingest leaves no partial state and the same
files are simply read again.

The per-user summaries, received ids, keyword dates and item analytics are folded in two
steps, because updating 100,000 wide summary rows in every batch was a third of an ingest's
time: each batch appends its own aggregate to a `*_pending` table (an append, in the batch's
transaction), and the run's last batch merges them all into the real tables, in its own
transaction (`store_events(..., fold=True)`). Its own aggregate then never reaches the WAL
as pending rows: inserted and deleted in one transaction, DuckDB never writes it, and a run
of one batch writes no pending row at all. A crash between batches leaves the earlier
aggregates pending, never lost: the next ingest folds them first (`fold_pending`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ix_pipeline.ingest.event_types import SUMMARY_CHANNELS
from ix_pipeline.store.hot import insert_rows, registered, scalar, transaction
from ix_pipeline.store.schema import (
    DERIVED_TABLES,
    INTERACTION_COLUMN_NAMES,
    ITEM_TYPES,
    interaction_table,
    ledger_key,
    pending_table,
)


def path_text(path: Path | str) -> str:
    """A path as the store keeps it: a byte of a name that is not UTF-8 as `\\xff`. Python
    holds such a byte as a lone surrogate, which no UTF-8 column (nor Arrow) accepts."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


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


def store_events(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table,
    files: list[FileRecord],
    quarantined: list[QuarantineEntry],
    run_id: str,
    *,
    fold: bool = False,
) -> BatchResult:
    """Store a batch of validated events once each, atomically; with `fold`, also fold every
    pending aggregate (this batch's included) into the derived tables, in the same transaction.

    `events` has the stored Currents fields, the meaning columns of `with_meaning`,
    `record_index` and `file_no` (the index in `files` of the file each event came from).
    """
    now = datetime.now(UTC)
    con.register("_batch", events)
    try:
        with transaction(con):
            _register_kept(con)
            _write_batch(con, now)
            per_file: dict[int, int] = {}
            per_type: dict[str | None, int] = {}
            for file_no, item_type, n in con.execute(
                "SELECT file_no, item_type, count(*) FROM _kept GROUP BY ALL"
            ).fetchall():
                per_file[file_no] = per_file.get(file_no, 0) + n
                per_type[item_type] = per_type.get(item_type, 0) + n
            insert_rows(
                con,
                "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [(f.path, f.size, f.mtime_ns, f.kind, f.status, f.records, per_file.get(i, 0),
                  f.quarantined, now, run_id) for i, f in enumerate(files)],
            )  # fmt: skip
            insert_rows(
                con,
                "INSERT INTO quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(now, q.source, q.record_index, q.event_id, q.reason, q.saved_to, run_id)
                 for q in quarantined],
            )  # fmt: skip
            if fold:
                _fold(con)
    finally:
        con.execute("DROP VIEW IF EXISTS _kept")
        for name in ("_batch", "_drop"):
            con.unregister(name)
    stored = sum(per_type.values())
    campaign, canvas = per_type.get("campaign", 0), per_type.get("canvas", 0)
    return BatchResult(
        stored=stored,
        duplicates=events.num_rows - stored,
        campaign_rows=campaign,
        canvas_rows=canvas,
        summary_only=stored - campaign - canvas,
    )


def _register_kept(con: duckdb.DuckDBPyConnection) -> None:
    """`_kept`: the rows of `_batch` to store. At-least-once delivery: an id the ledger knows
    was stored before, and within the batch the first delivery wins. Redeliveries are few,
    so the rows to drop are listed (small) and everything else is kept, instead of a mask
    computed over every row."""
    drop = con.sql(
        f"""SELECT file_no, record_index FROM (
             SELECT file_no, record_index,
                    row_number() OVER (PARTITION BY id ORDER BY file_no, record_index) AS nth
             FROM _batch WHERE id IN (SELECT id FROM _batch GROUP BY id HAVING count(*) > 1))
           WHERE nth > 1
           UNION ALL
           SELECT b.file_no, b.record_index FROM _batch b SEMI JOIN event_ledger l
             ON l.id_key = {ledger_key("b.id")}"""  # noqa: S608
    ).to_arrow_table()
    con.register("_drop", drop)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _kept AS SELECT * FROM _batch "  # noqa: S608
        + ("ANTI JOIN _drop USING (file_no, record_index)" if drop.num_rows else "")
    )


def _write_batch(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Rows, ledger and this batch's aggregates, from the view `_kept`."""
    cols = ", ".join(INTERACTION_COLUMN_NAMES)
    for item_type in ITEM_TYPES:
        con.execute(
            f"INSERT INTO {interaction_table(item_type)} ({cols}) "  # noqa: S608
            f"SELECT {cols} FROM _kept WHERE item_type = ?",
            [item_type],
        )
    con.execute(
        "INSERT INTO event_ledger (id_key, item_type, ingested_at) "  # noqa: S608
        f"SELECT {ledger_key('id')}, item_type, ? FROM _kept",
        [now],
    )
    for table, aggregate in _BATCH_AGGREGATES.items():
        con.execute(f"INSERT INTO {pending_table(table)} BY NAME {aggregate}")


def _last(kind_condition: str) -> str:
    # Convert after aggregating: one conversion per user instead of one per event.
    return f"to_timestamp(max(time) FILTER (WHERE {kind_condition}))"


# What a batch adds to each user's summary (FORMATS.md §1: the facts that never expire).
_SUMMARY_AGGREGATES: dict[str, str] = {
    "external_user_id": "max(external_user_id)",
    "last_received_any": _last("kind = 'received'"),
    **{
        f"last_received_{short}": _last(f"kind = 'received' AND channel = '{raw}'")
        for raw, short in SUMMARY_CHANNELS.items()
    },
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
}
_LISTS = ("feature_flags", "clicked_aliases")

_BATCH_AGGREGATES: dict[str, str] = {
    "user_summaries": "SELECT user_id, "  # noqa: S608
    + ", ".join(f"{expr} AS {name}" for name, expr in _SUMMARY_AGGREGATES.items())
    + " FROM _kept GROUP BY user_id",
    # Campaign ids and Canvas step ids: what "Has Never Received a Message from…" reads.
    "user_items_received": "SELECT DISTINCT user_id, "
    "coalesce(canvas_step_id, campaign_id) AS received_id FROM _kept "
    "WHERE kind = 'received' AND coalesce(canvas_step_id, campaign_id) IS NOT NULL",
    "user_inbound_keywords": "SELECT user_id, action AS category, "
    "to_timestamp(max(time)) AS last_at FROM _kept "
    "WHERE event_type = 'users.messages.sms.InboundReceive' AND action IS NOT NULL GROUP BY ALL",
    # Grouped by the UTC day number, turned into a DATE once per group: converting every
    # event's time through TIMESTAMPTZ to DATE took a quarter of this aggregate's time.
    "item_analytics": "SELECT item_type, item_id, variant_id, step_id, kind, event_type, "
    "DATE '1970-01-01' + CAST(day_number AS INTEGER) AS day, count(*) AS events FROM ("
    "SELECT item_type, item_id, "
    "coalesce(canvas_variation_id, message_variation_id, '') AS variant_id, "
    "coalesce(canvas_step_id, '') AS step_id, kind, event_type, "
    "floor(time / 86400) AS day_number FROM _kept WHERE item_id IS NOT NULL) GROUP BY ALL",
}


@dataclass(frozen=True)
class _Fold:
    """How pending aggregates of one derived table combine with each other (`combine`, in a
    GROUP BY over the keys) and with the stored row (`merge`, the SET of an UPDATE)."""

    keys: tuple[str, ...]
    combine: dict[str, str]
    merge: dict[str, str]


def _summary_fold() -> _Fold:
    combine: dict[str, str] = {}
    merge: dict[str, str] = {}
    for name in _SUMMARY_AGGREGATES:
        old, new = f"user_summaries.{name}", f"a.{name}"
        if name == "external_user_id":
            combine[name] = f"max({name})"
            merge[name] = f"coalesce({new}, {old})"
        elif name == "news_feed_views":
            combine[name] = f"sum({name})"
            merge[name] = f"coalesce({old}, 0) + {new}"
        elif name in _LISTS:
            combine[name] = f"list_distinct(flatten(list({name})))"
            merge[name] = f"list_distinct(list_concat(coalesce({old}, []), coalesce({new}, [])))"
        elif name == "last_inbound_keyword_category":
            combine[name] = f"arg_max({name}, last_inbound_keyword_at)"
            merge[name] = (
                f"CASE WHEN a.last_inbound_keyword_at >= coalesce("
                f"user_summaries.last_inbound_keyword_at, a.last_inbound_keyword_at) "
                f"THEN {new} ELSE {old} END"
            )
        else:
            combine[name] = f"max({name})"
            merge[name] = f"greatest({old}, {new})"
    return _Fold(("user_id",), combine, merge)


_FOLDS: dict[str, _Fold] = {
    "user_summaries": _summary_fold(),
    # Nothing to combine: a pair is there or it is not.
    "user_items_received": _Fold(("user_id", "received_id"), {}, {}),
    "user_inbound_keywords": _Fold(
        ("user_id", "category"),
        {"last_at": "max(last_at)"},
        {"last_at": "greatest(user_inbound_keywords.last_at, a.last_at)"},
    ),
    "item_analytics": _Fold(
        ("item_type", "item_id", "variant_id", "step_id", "kind", "event_type", "day"),
        {"events": "sum(events)::BIGINT"},
        {"events": "item_analytics.events + a.events"},
    ),
}
assert set(_FOLDS) == set(_BATCH_AGGREGATES) == set(DERIVED_TABLES)


def fold_pending(con: duckdb.DuckDBPyConnection) -> int:
    """Merge every pending batch aggregate into its table, in one transaction; returns how
    many pending rows were folded. Ingestion calls it at the start of a run, to finish what
    a crashed run left; the run's own batches are folded by its last one."""
    with transaction(con):
        return _fold(con)


def _fold(con: duckdb.DuckDBPyConnection) -> int:
    """`fold_pending` inside the caller's transaction."""
    folded = 0
    for table, fold in _FOLDS.items():
        pending = pending_table(table)
        n = scalar(con, f"SELECT count(*) FROM {pending}")  # noqa: S608
        if not n:
            continue
        keys = ", ".join(fold.keys)
        combined = "".join(f", {expr} AS {name}" for name, expr in fold.combine.items())
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _agg AS SELECT {keys}{combined} "  # noqa: S608
            f"FROM {pending} GROUP BY {keys}"
        )
        _merge(con, table, fold)
        con.execute(f"DELETE FROM {pending}")  # noqa: S608
        folded += n
    return folded


def _merge(con: duckdb.DuckDBPyConnection, table: str, fold: _Fold) -> None:
    """Upsert the temp table `_agg` into `table` on the fold's keys, set-wise: UPDATE … FROM
    for the keys seen before, then INSERT the rest (an `INSERT … ON CONFLICT DO UPDATE` goes
    row by row and needs an index that slows every batch down)."""
    match = " AND ".join(f"{table}.{k} = a.{k}" for k in fold.keys)
    set_sql = ", ".join(f"{name} = {expr}" for name, expr in fold.merge.items())
    if set_sql:  # a table of keys only has nothing to update
        con.execute(f"UPDATE {table} SET {set_sql} FROM _agg a WHERE {match}")  # noqa: S608
    exists = " AND ".join(f"t.{k} = a.{k}" for k in fold.keys)
    columns = ", ".join((*fold.keys, *fold.combine))
    con.execute(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _agg a "  # noqa: S608
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {exists})"
    )
    con.execute("DROP TABLE _agg")


def pending_files(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[Path]:
    """The files not yet ingested (new, or rewritten since): what a sensor should hand to a run."""
    if not paths:
        return []
    stats = [(path_text(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    seen = pa.table(
        {
            "path": [s[0] for s in stats],
            "size": [s[1] for s in stats],
            "mtime_ns": [s[2] for s in stats],
        }
    )
    with registered(con, "_seen", seen):
        fresh = {
            row[0]
            for row in con.execute(
                """SELECT s.path FROM _seen s ANTI JOIN ingested_files f
                   ON f.path = s.path AND f.size = s.size AND f.mtime_ns = s.mtime_ns"""
            ).fetchall()
        }
    return [p for p, s in zip(paths, stats, strict=True) if s[0] in fresh]
