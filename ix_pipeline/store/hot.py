"""The hot store: one DuckDB file, opened briefly, one writer at a time.

DuckDB lets one process hold the file read-write and blocks every other open, read-only
ones included. Callers therefore keep connections short, and choose how long to wait:
jobs wait (they are serialised by the `hot_db` pool anyway, this covers the CLI and
readers), sensors do not wait and skip their tick instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ix_pipeline.store.schema import DDL

DEFAULT_MEMORY_LIMIT = "1GB"


class HotStoreBusy(RuntimeError):
    """The hot DuckDB file is held by another process (a run is writing to it)."""


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
                raise HotStoreBusy(
                    f"the hot store {path} is in use by another process (a run is writing "
                    "to it); try again when it finishes"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    con.execute("SET TimeZone = 'UTC'")
    # Bounded memory: DuckDB spills to <db>.tmp beyond this instead of growing with the data.
    con.execute(
        "SET memory_limit = ?", [os.environ.get("IX_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT]
    )
    if not read_only:
        _init(con)
    return con


def _init(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    for statement in DDL:
        con.execute(statement)


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
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back on any exception so no partial state is left."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    """The single value of a query. Fetches the whole result: with DuckDB 2.0 a result left
    half-read (`fetchone`) blocks every later statement on the connection."""
    rows = con.execute(sql, params if params is not None else []).fetchall()
    return rows[0][0] if rows else None


def insert_rows(con: duckdb.DuckDBPyConnection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`executemany` that accepts no rows: DuckDB 2.0 raises on an empty parameter list."""
    if rows:
        con.executemany(sql, rows)
