"""One archive writer process for the concurrent-writers test.

Usage: python -m ix_pipeline_tests.reliability.append_worker NAME COMMITS ROWS BARRIER_DIR
Says it is ready (BARRIER_DIR/NAME.ready), waits for BARRIER_DIR/go so both writers begin
together, then appends COMMITS batches of ROWS rows (ids `NAME-<commit>-<row>`) through the
production `Archive.append`; deltalake reads the AWS_* environment itself, as it does for
the `ix` processes (ArchiveResource only passes the same variables explicitly, and importing
it would cost this process Dagster's import time). Prints its start and end wall-clock times, so the test can see they overlapped.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ix_pipeline.settings import load_settings
from ix_pipeline.store.archive import ARCHIVE_SCHEMA, Archive, item_key


def batch(name: str, commit: int, rows: int) -> pa.RecordBatchReader:
    item_id = f"cmp_{name}"
    values: dict[str, list[object]] = {f.name: [None] * rows for f in ARCHIVE_SCHEMA}
    values["id"] = [f"{name}-{commit}-{r}" for r in range(rows)]
    values["item_id"] = [item_id] * rows
    values["user_id"] = [f"u{r}" for r in range(rows)]
    values["item_key"] = [item_key(item_id)] * rows
    values["archived_at"] = [datetime.now(UTC)] * rows
    values["archive_run_id"] = [f"{name}-{commit}"] * rows
    table = pa.table(values, schema=ARCHIVE_SCHEMA)
    return pa.RecordBatchReader.from_batches(ARCHIVE_SCHEMA, table.to_batches())


def main() -> None:
    name, commits, rows, barrier = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        Path(sys.argv[4]),
    )
    archive = Archive(load_settings().archive_uri)
    (barrier / f"{name}.ready").touch()
    deadline = time.monotonic() + 60
    while not (barrier / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.time()
    for commit in range(commits):
        archive.append("campaign", batch(name, commit, rows))
    print(started, time.time())


if __name__ == "__main__":
    main()
