"""The hot store's checkpoint control: deferred inside the block, one checkpoint at its end,
every setting put back."""

from __future__ import annotations

from pathlib import Path

from ix_pipeline.store.hot import checkpoint_at_end, hot_connection, scalar


def _wal(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_checkpoint_at_end_defers_every_checkpoint_to_the_end_of_the_block(tmp_path: Path) -> None:
    db = tmp_path / "hot.duckdb"
    with hot_connection(db) as con:
        threads = scalar(con, "SELECT current_setting('threads')")
        threshold = scalar(con, "SELECT current_setting('checkpoint_threshold')")
        con.execute("CREATE TABLE t (v VARCHAR)")
        with checkpoint_at_end(con):
            # Small commits go through the WAL (a large one goes straight to the database
            # file); past DuckDB's threshold of 16 MB, the second would checkpoint.
            for _ in range(3):
                con.execute("INSERT INTO t SELECT repeat('x', 100) || i FROM range(90000) r(i)")
            assert _wal(db) > 16 * 2**20
        assert _wal(db) == 0  # checkpointed: the WAL is folded into the database file
        assert scalar(con, "SELECT current_setting('threads')") == threads
        assert scalar(con, "SELECT current_setting('checkpoint_threshold')") == threshold
    with hot_connection(db, read_only=True) as con:
        assert scalar(con, "SELECT count(*) FROM t") == 270_000
