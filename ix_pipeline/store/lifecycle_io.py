"""Lifecycle I/O: read the facts the policy decides on, move rows, record transitions.

Every state change is a compare-and-set on `item_lifecycle` (`UPDATE … WHERE state IN (…)`
inside a transaction), so two operations can never both own an item, and every change
writes a `lifecycle_audit` row in the same transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from ix_pipeline.faults import fault_point
from ix_pipeline.lifecycle.policy import IdReference, ItemFacts
from ix_pipeline.store.archive import ARCHIVE_SCHEMA, Archive, item_key
from ix_pipeline.store.hot import insert_rows, registered, transaction
from ix_pipeline.store.schema import INTERACTION_COLUMN_NAMES, ItemType, interaction_table


@dataclass(frozen=True)
class Transition:
    item_id: str
    item_type: str
    from_state: str
    to_state: str
    rows: int
    reason: str


def load_item_facts(con: duckdb.DuckDBPyConnection) -> list[ItemFacts]:
    rows = con.execute(
        """SELECT c.id, c.type, coalesce(c.name, ''), c.status, c.stopped_at, c.last_sent,
                  c.interaction_data_deleted_at IS NOT NULL,
                  coalesce(l.state, 'hot'), l.last_restored_at, l.expired_at
           FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id
           ORDER BY c.id"""
    ).fetchall()
    return [ItemFacts(*row) for row in rows]


def load_id_references(con: duckdb.DuckDBPyConnection) -> list[IdReference]:
    """By-ID references to catalog items; tag references are left out on purpose (rule 4).

    A reference names an item only through a filter of the item's own type: a campaign filter
    given a Canvas's ID reads no data of that Canvas, so it neither exempts nor restores it."""
    rows = con.execute(
        """SELECT r.consumer_id, r.consumer_type, r.consumer_active, r.item_id,
                  coalesce(ic.component_type, 'item'), r.filter
           FROM filter_references r
           JOIN catalog_items c ON c.id = r.item_id AND c.type = r.item_type
           LEFT JOIN item_components ic
             ON ic.item_id = r.item_id AND ic.component_id = r.component_id
           WHERE r.ref_by = 'id'"""
    ).fetchall()
    return [IdReference(*row) for row in rows]


def rows_moved_by_last_expiry(
    con: duckdb.DuckDBPyConnection, item_ids: Sequence[str]
) -> dict[str, tuple[int, datetime]]:
    """Per item, the rows its latest expiry deleted from the hot store (after checking that
    the archive held each of them) and when; late rows moved since are not counted."""
    rows = con.execute(
        """SELECT item_id, arg_max(rows, logged_at), max(logged_at) FROM lifecycle_audit
           WHERE from_state = 'expiring' AND to_state = 'expired'
             AND item_id IN (SELECT unnest(?)) GROUP BY item_id""",
        [list(item_ids)],
    ).fetchall()
    return {item_id: (int(n), at) for item_id, n, at in rows}


def row_counts(con: duckdb.DuckDBPyConnection, item_type: ItemType) -> dict[str, int]:
    table = interaction_table(item_type)
    return dict(con.execute(f"SELECT item_id, count(*) FROM {table} GROUP BY item_id").fetchall())  # noqa: S608


def compare_and_set(
    con: duckdb.DuckDBPyConnection,
    item_ids: Sequence[str],
    from_states: Sequence[str],
    to_state: str,
    *,
    as_of: datetime,
    run_id: str,
    actor: str,
    reason: str | Mapping[str, str],
    rows: dict[str, int] | None = None,
    set_restored: bool = False,
    set_expired: bool = False,
) -> list[Transition]:
    """Move the items that are in one of `from_states` to `to_state`; returns who moved.

    Must run inside a transaction (the caller's), so the change and its audit rows commit
    together with whatever data movement belongs to the same step.
    """
    if not item_ids:
        return []
    owned = con.execute(
        """SELECT item_id, item_type, state FROM item_lifecycle
           WHERE item_id IN (SELECT unnest($ids)) AND state IN (SELECT unnest($states))""",
        {"ids": list(item_ids), "states": list(from_states)},
    ).fetchall()
    con.execute(
        """UPDATE item_lifecycle SET state = $to, updated_at = $now, run_id = $run,
             last_restored_at = CASE WHEN $set_restored THEN $as_of ELSE last_restored_at END,
             expired_at = CASE WHEN $set_expired THEN $as_of ELSE expired_at END
           WHERE item_id IN (SELECT unnest($ids)) AND state IN (SELECT unnest($states))""",
        {"to": to_state, "now": datetime.now(UTC), "run": run_id, "as_of": as_of,
         "ids": [o[0] for o in owned], "states": list(from_states),
         "set_restored": set_restored, "set_expired": set_expired},
    )  # fmt: skip
    transitions = [
        Transition(
            item_id,
            item_type,
            state,
            to_state,
            (rows or {}).get(item_id, 0),
            reason if isinstance(reason, str) else reason[item_id],
        )
        for item_id, item_type, state in owned
    ]
    write_audit(con, transitions, as_of=as_of, run_id=run_id, actor=actor)
    return transitions


def write_audit(
    con: duckdb.DuckDBPyConnection,
    transitions: Iterable[Transition],
    *,
    as_of: datetime,
    run_id: str,
    actor: str,
) -> None:
    now = datetime.now(UTC)
    rows = [
        (
            now,
            t.item_id,
            t.item_type,
            t.from_state,
            t.to_state,
            as_of,
            t.rows,
            run_id,
            actor,
            t.reason,
        )
        for t in transitions
    ]
    insert_rows(con, "INSERT INTO lifecycle_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


@contextmanager
def _scope(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    item_type: ItemType,
    item_ids: Sequence[str],
    columns: Sequence[str] = ("id", "item_id"),
    except_ids: pa.Array | pa.ChunkedArray | None = None,
) -> Iterator[str]:
    """Registers `_items` (the ids and their partition keys) and `_archived` (the `columns`
    of those items' archived rows, without those whose id is in `except_ids`, see
    `Archive.rows`) for ONE statement; yields the item type's hot table name."""
    items = pa.table(
        {
            "item_id": pa.array(list(item_ids), pa.string()),
            "item_key": pa.array([item_key(i) for i in item_ids], pa.string()),
        }
    )
    archived = archive.rows(con, item_type, columns, item_ids, except_ids=except_ids)
    with registered(con, "_items", items), registered(con, "_archived", archived):
        yield interaction_table(item_type)


# The items' hot rows whose id the archive lacks; shared by the archive write and its check.
# (`_archived` holds the items' rows only: `Archive.rows` filters them.)
_HOT_NOT_ARCHIVED = """FROM {table} h JOIN _items i USING (item_id)
    ANTI JOIN (SELECT id FROM _archived) a ON a.id = h.id"""


def write_batch_rows(items: int) -> int:
    """Rows per Arrow batch for an append of `items` items. The Delta writer splits each batch
    by partition and hands every piece to the Parquet writer on its own, at a cost per piece
    and column; the items' rows are interleaved, so a batch of 25,000 rows over 181 items
    (3.6 M rows, a 10 M-event night's campaign chunk) made pieces of 138 rows. Pieces of
    about 256 rows: those rows appended in 3.4 s against 3.6-3.8 s, the night's appends in
    4.9-5.6 s against 5.4-5.9 s, for 20-40 MB more peak memory. Pieces of 512 rows were no
    faster and cost 150 MB more; batches stay between 25,000 and 64,000 rows."""
    return max(25_000, min(64_000, 256 * items))


def archive_hot_rows(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    item_type: ItemType,
    item_ids: Sequence[str],
    *,
    run_id: str,
    batch_rows: int | None = None,
) -> int:
    """Expiry step 1: append the items' hot rows the archive lacks; returns rows written.

    Rows stream from DuckDB to Delta in Arrow batches (memory stays bounded whatever the
    size), as one commit; the anti-join against the items' archive partitions makes the
    step safe to repeat after a crash.
    """
    if batch_rows is None:
        batch_rows = write_batch_rows(len(item_ids))
    cols = ", ".join(f"h.{c}" for c in INTERACTION_COLUMN_NAMES)
    with _scope(con, archive, item_type, item_ids) as table:
        rel = con.sql(
            f"""SELECT {cols}, i.item_key, now()::TIMESTAMPTZ AS archived_at,
                       $run::VARCHAR AS archive_run_id
                {_HOT_NOT_ARCHIVED.format(table=table)}""",  # noqa: S608
            params={"run": run_id},
        )
        source = rel.to_arrow_reader(batch_rows)
        written = 0
        try:
            batches = (b.cast(ARCHIVE_SCHEMA) for b in source if b.num_rows)
            first = next(batches, None)
            if first is None:
                return 0  # everything is archived already (a re-run after a crash)

            def counted() -> Iterator[pa.RecordBatch]:
                nonlocal written
                for batch in itertools.chain([first], batches):
                    written += batch.num_rows
                    yield batch

            archive.append(item_type, pa.RecordBatchReader.from_batches(ARCHIVE_SCHEMA, counted()))
        finally:
            # DuckDB keeps the result open until the reader is closed, blocking the connection.
            source.close()
        return written


def _id_digests(
    con: duckdb.DuckDBPyConnection, source: str, params: dict[str, Any] | None = None
) -> dict[str, tuple[int, int]]:
    """Per item of `source` (a table or a subquery with `item_id` and `id`): how many ids,
    and the exact sum of their 64-bit hashes."""
    sql = f"SELECT item_id, count(*), sum(hash(id)::HUGEINT) FROM {source} GROUP BY item_id"  # noqa: S608
    return {item: (n, digest) for item, n, digest in con.execute(sql, params or {}).fetchall()}


def hot_ids_missing_from_archive(
    con: duckdb.DuckDBPyConnection, archive: Archive, item_type: ItemType, item_ids: Sequence[str]
) -> dict[str, int]:
    """Expiry step 2 (verify): per item, hot ids that the archive does not hold.

    After the write an item's archived ids are normally exactly its hot ids: rows reach the
    archive only from the hot table, and a restore copies every archived row back. So the
    ids are first compared per item as a digest (count and hash sum) on each side: two
    streaming aggregates and no hash table of ids, at 3.6 M rows 0.55 s against 1.3-1.5 s
    for the anti-join, in a fraction of its memory. Equal digests leave no room for a missing
    id: the archive holds no id twice, so a missing one would need a foreign id whose hash
    makes up the difference exactly. Items whose digests differ (rows missing, or archived
    rows no longer hot, as with late events of an expired item) get the exact anti-join."""
    hot = _id_digests(
        con,
        f"(SELECT item_id, id FROM {interaction_table(item_type)} "  # noqa: S608
        "WHERE item_id IN (SELECT unnest($ids)))",
        {"ids": list(item_ids)},
    )
    # The items' partitions, unfiltered: rows of another item sharing one form their own group.
    rows = archive.rows(con, item_type, ["item_id", "id"], item_ids, partitions_only=True)
    with registered(con, "_archived_ids", rows):
        archived = _id_digests(con, "_archived_ids")
    unsure = [item for item, digest in hot.items() if archived.get(item) != digest]
    if not unsure:
        return {}
    with _scope(con, archive, item_type, unsure) as table:
        sql = (
            f"SELECT h.item_id, count(*) {_HOT_NOT_ARCHIVED.format(table=table)} GROUP BY h.item_id"  # noqa: S608
        )
        return dict(con.execute(sql).fetchall())


def delete_hot_rows(
    con: duckdb.DuckDBPyConnection, item_type: ItemType, item_ids: Sequence[str]
) -> int:
    """Expiry step 3: delete the items' hot rows (inside the caller's transaction)."""
    sql = f"DELETE FROM {interaction_table(item_type)} WHERE item_id IN (SELECT unnest(?))"  # noqa: S608
    return int(con.execute(sql, [list(item_ids)]).fetchall()[0][0])


def hot_row_counts(
    con: duckdb.DuckDBPyConnection, item_type: ItemType, item_ids: Sequence[str]
) -> dict[str, int]:
    sql = f"SELECT item_id, count(*) FROM {interaction_table(item_type)} WHERE item_id IN (SELECT unnest(?)) GROUP BY 1"  # noqa: S608
    return dict(con.execute(sql, [list(item_ids)]).fetchall())


def copy_archived_rows_to_hot(
    con: duckdb.DuckDBPyConnection, archive: Archive, item_type: ItemType, item_ids: Sequence[str]
) -> int:
    """Restore step 2: insert the items' archived rows that are not hot; returns rows copied.

    One INSERT statement in one transaction: DuckDB commits it whole or not at all, so a
    crash mid-copy leaves no partial copy, and leaving out the ids already hot makes a re-run
    insert only what is missing. Those ids (usually none) are left out by the archive read
    itself (`Archive.rows`), which hashes them, never the archived rows. The
    archive never holds an id twice (the expiry's anti-join and the `no_duplicate_ids` check
    see to that), so no de-duplication is needed here.
    """
    cols = ", ".join(INTERACTION_COLUMN_NAMES)
    table = interaction_table(item_type)
    with transaction(con):
        hot_ids = con.sql(
            f"SELECT id FROM {table} WHERE item_id IN (SELECT unnest($ids))",  # noqa: S608
            params={"ids": list(item_ids)},
        ).to_arrow_table()["id"]
        with _scope(
            con, archive, item_type, item_ids, INTERACTION_COLUMN_NAMES, except_ids=hot_ids
        ):
            copied = con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _archived"  # noqa: S608
            ).fetchall()[0][0]
        fault_point("restore.mid_copy")
    return int(copied)


def check_restored(
    con: duckdb.DuckDBPyConnection, archive: Archive, item_type: ItemType, item_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Restore step 3 (verify): per item, its archived rows and how many of them are not hot,
    in one scan of the items' partitions."""
    with _scope(con, archive, item_type, item_ids) as table:
        sql = f"""SELECT a.item_id, count(*), count(*) FILTER (WHERE h.id IS NULL)
                  FROM _archived a
                  LEFT JOIN (SELECT id FROM {table} WHERE item_id IN (SELECT item_id FROM _items)) h
                    ON h.id = a.id
                  GROUP BY a.item_id"""  # noqa: S608
        return {
            item: (archived, missing) for item, archived, missing in con.execute(sql).fetchall()
        }


def archived_row_counts(
    archive: Archive, con: duckdb.DuckDBPyConnection, item_type: ItemType
) -> dict[str, int]:
    with registered(con, "_archived", archive.rows(con, item_type, ["item_id"])):
        sql = "SELECT item_id, count(*) FROM _archived GROUP BY item_id"
        return dict(con.execute(sql).fetchall())


@dataclass(frozen=True)
class DeadReference:
    consumer_id: str
    consumer_active: bool
    filter: str
    item_id: str | None
    error: str


def dead_references(con: duckdb.DuckDBPyConnection) -> list[DeadReference]:
    """References that can never be evaluated: unknown ids and legacy-deleted items (rule 9)."""
    rows = con.execute(
        """SELECT r.consumer_id, r.consumer_active, r.filter, r.item_id,
                  coalesce(r.error, CASE WHEN c.id IS NULL THEN 'unknown item ' || r.item_id
                                         ELSE r.item_id || ': interaction data deleted under the pre-2024 retention policy' END)
           FROM filter_references r LEFT JOIN catalog_items c ON c.id = r.item_id
           WHERE r.item_id IS NOT NULL
             AND (c.id IS NULL OR c.interaction_data_deleted_at IS NOT NULL)
           ORDER BY r.consumer_id, r.path"""
    ).fetchall()
    return [DeadReference(*row) for row in rows]
