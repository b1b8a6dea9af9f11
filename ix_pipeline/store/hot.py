"""The hot store: one DuckDB file, opened briefly, one writer at a time.

DuckDB lets one process hold the file read-write and blocks every other open, read-only
ones included. Callers therefore keep connections short, and choose how long to wait:
jobs wait (they are serialised by the `hot_db` pool anyway, this covers the CLI and
readers), sensors do not wait and skip their tick instead.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ix_pipeline.store.schema import DDL, ledger_key

DEFAULT_MEMORY_LIMIT = "1GB"

# What `_init` brings a store to: the DDL and the migrations. A store that records this
# fingerprint needs neither, so a read-write open of a current store changes nothing (the
# views' CREATE OR REPLACE would commit to the catalog on every open): `_init` takes 0.5 ms,
# not 11-16 ms, and the whole open 11-13 ms, not 36-41 ms. Name a new migration here so
# that stores run it.
_MIGRATIONS = ("ledger ids to keys", "items received to pairs")
SCHEMA_FINGERPRINT = hashlib.sha256("\n".join((*DDL, *_MIGRATIONS)).encode()).hexdigest()[:16]


class HotStoreBusy(RuntimeError):
    """The hot DuckDB file is held by another process: a writer, or (for a read-write open)
    any process that has it open."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def open_hot(
    path: Path, *, read_only: bool = False, wait_seconds: float = 120.0
) -> duckdb.DuckDBPyConnection:
    """Open the hot store, creating it and its schema on first use."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            if read_only and not path.exists():
                # A read before the first ingest sees an empty, well-formed store.
                con = duckdb.connect(":memory:")
                _init(con)
                return con
            path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                # A read-only open waits only for a writer; a read-write one for any process.
                holder = "a run writing to it" if read_only else "a run or a reader"
                raise HotStoreBusy(
                    f"the hot store {path} is in use by another process ({holder}); "
                    "try again when it finishes"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if read_only and _fingerprint(con) != SCHEMA_FINGERPRINT:
        # A store an earlier version wrote: its migrations run on a read-write open (`_init`),
        # so a reader that came first would miss tables it queries. Upgrade it with one short
        # read-write open, then read it as asked.
        con.close()
        open_hot(path, wait_seconds=wait_seconds).close()
        return open_hot(path, read_only=True, wait_seconds=wait_seconds)
    con.execute("SET TimeZone = 'UTC'")
    # Bounded memory: DuckDB spills to <db>.tmp beyond this instead of growing with the data.
    con.execute(
        "SET memory_limit = ?", [os.environ.get("IX_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT]
    )
    # Rows carry no meaningful order (every reader sorts what it shows), and without this
    # setting DuckDB writes a large INSERT on one thread and through the WAL: 2-3x slower.
    con.execute("SET preserve_insertion_order = false")
    if not read_only:
        _init(con)
    return con


def _init(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    if _fingerprint(con) == SCHEMA_FINGERPRINT:
        return
    for statement in DDL:
        con.execute(statement)
    _migrate_ledger_ids_to_keys(con)
    _migrate_items_received_to_pairs(con)
    # Last, so that a store an interrupted `_init` left behind gets the whole of it again.
    with transaction(con):
        con.execute("CREATE TABLE IF NOT EXISTS store_schema (fingerprint VARCHAR NOT NULL)")
        con.execute("DELETE FROM store_schema")
        con.execute("INSERT INTO store_schema VALUES (?)", [SCHEMA_FINGERPRINT])


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The schema fingerprint the store records; None for a store no `_init` completed."""
    try:
        return scalar(con, "SELECT max(fingerprint) FROM store_schema")
    except duckdb.CatalogException:
        return None


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(
        scalar(
            con,
            """SELECT count(*) FROM information_schema.columns
               WHERE table_schema = 'main' AND table_name = ? AND column_name = ?""",
            [table, column],
        )
    )


def _migrate_ledger_ids_to_keys(con: duckdb.DuckDBPyConnection) -> None:
    """A store written before the ledger kept keys has `event_ledger.id` strings: they become
    `id_key`s in one transaction, on the first read-write open."""
    if not _has_column(con, "event_ledger", "id"):
        return
    with transaction(con):
        con.execute(
            "CREATE TABLE event_ledger_keys AS SELECT "  # noqa: S608
            f"{ledger_key('id')} AS id_key, item_type, ingested_at FROM event_ledger"
        )
        con.execute("DROP TABLE event_ledger")
        con.execute("ALTER TABLE event_ledger_keys RENAME TO event_ledger")


def _migrate_items_received_to_pairs(con: duckdb.DuckDBPyConnection) -> None:
    """A store written before `user_items_received` existed keeps each user's received ids as
    the list `user_summaries.items_received` (and so does its pending aggregate, after a crash
    between batches): they become rows of the pair tables, in one transaction, on the first
    read-write open."""
    lists = [
        (summaries, pairs)
        for summaries, pairs in (
            ("user_summaries", "user_items_received"),
            ("user_summaries_pending", "user_items_received_pending"),
        )
        if _has_column(con, summaries, "items_received")
    ]
    if not lists:
        return
    with transaction(con):
        for summaries, pairs in lists:
            con.execute(
                f"INSERT INTO {pairs} SELECT DISTINCT user_id, unnest(items_received) "  # noqa: S608
                f"FROM {summaries}"
            )
            con.execute(f"ALTER TABLE {summaries} DROP COLUMN items_received")


@contextmanager
def hot_connection(
    path: Path, *, read_only: bool = False, wait_seconds: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection that is always closed, also when the body raises."""
    con = open_hot(path, read_only=read_only, wait_seconds=wait_seconds)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, data: object) -> Iterator[None]:
    """`data` (an Arrow table or reader, a DuckDB relation) queryable as `name` for the block."""
    con.register(name, data)
    try:
        yield
    finally:
        con.unregister(name)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back on any exception so no partial state is left."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def _setting(con: duckdb.DuckDBPyConnection, name: str, value: str) -> Iterator[None]:
    """The DuckDB setting `name` at `value` for the block, then put back."""
    before = scalar(con, "SELECT current_setting(?)", [name])
    con.execute(f"SET {name} = ?", [value])  # name: one of this module's literals
    try:
        yield
    finally:
        con.execute(f"SET {name} = ?", [before])


def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> AbstractContextManager[None]:
    """DuckDB's memory limit set to `limit` for the block, then put back."""
    return _setting(con, "memory_limit", limit)


@contextmanager
def checkpoint_at_end(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """No automatic checkpoint inside the block, one CHECKPOINT when it completes.

    DuckDB checkpoints when a commit grows the WAL past a threshold, and a checkpoint after
    deletes rewrites the table's row groups once more than half of them are deleted: a
    night that deletes in several commits would rewrite the table several times. Commits stay
    durable meanwhile (the WAL is written on every commit and replayed on the next open)."""
    with _setting(con, "checkpoint_threshold", "1TB"):
        yield
    checkpoint(con)


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """CHECKPOINT, with one more DuckDB thread than usual while it runs.

    DuckDB runs the statement as a single task, and that task hands the rewrite of each row
    group to the scheduler's worker threads. When a worker, not the calling thread, happens to
    pick up the statement's task, the caller only waits, and the rewrites run on the workers
    left: with `threads` equal to the cores, one. That happened in 8 of 15 runs of a 10 M-event
    expiry: its checkpoint took 13-19 s on one core instead of 8-11 s on two. The extra
    thread keeps every core busy whoever runs the task (one thread more than the cores when
    the caller runs it). A checkpoint that a commit triggers (the benchmark baseline's) never
    showed the problem."""
    threads = int(scalar(con, "SELECT current_setting('threads')"))
    with _setting(con, "threads", str(threads + 1)):
        con.execute("CHECKPOINT")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    """The single value of a query. Fetches the whole result: with DuckDB 2.0 a result left
    half-read (`fetchone`) blocks every later statement on the connection."""
    rows = con.execute(sql, params if params is not None else []).fetchall()
    return rows[0][0] if rows else None


def insert_rows(
    con: duckdb.DuckDBPyConnection, sql: str, rows: list[tuple[Any, ...]], *, chunk: int = 500
) -> None:
    """Insert `rows` with `sql`, an `INSERT … VALUES (?, …)` of one row, as multi-row
    statements: `executemany` runs one statement per row (10x slower) and raises on no rows."""
    head, values, row_sql = sql.rpartition("VALUES ")
    if not values:
        raise ValueError("insert_rows needs a statement ending in VALUES (?, …)")
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        con.execute(
            head + values + ", ".join([row_sql] * len(part)), [v for row in part for v in row]
        )
