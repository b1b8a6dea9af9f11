"""Ingest Currents files into the hot store: discover, read, quarantine, store in batches.

Files are read outside any transaction and written in batches of about `batch_rows` events,
one transaction each, so memory stays bounded and a crash loses at most the batch in
flight, which is simply read again on the next run (files are marked ingested in the same
transaction as their rows).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from ix_pipeline.ingest.currents import (
    EVENT_SCHEMA,
    ReadResult,
    UnreadableFile,
    discover,
    read_currents_file,
)
from ix_pipeline.ingest.quarantine import Quarantine, Rejected
from ix_pipeline.store.events import (
    FileRecord,
    QuarantineEntry,
    pending_files,
    store_events,
)

Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    files_quarantined: int = 0
    records_read: int = 0
    events_stored: int = 0
    duplicates_skipped: int = 0
    records_quarantined: int = 0
    campaign_rows: int = 0
    canvas_rows: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def count_reason(self, reason: str) -> None:
        key = reason.split(":")[0][:120]
        self.quarantine_reasons[key] = self.quarantine_reasons.get(key, 0) + 1


@dataclass
class _Pending:
    frames: list[pl.DataFrame] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    rows: int = 0


def ingest_currents(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[Path],
    quarantine_root: Path,
    run_id: str,
    *,
    batch_rows: int = 300_000,
    progress: Progress | None = None,
) -> IngestReport:
    report = IngestReport()
    quarantine = Quarantine(quarantine_root)
    candidates = list(discover(paths))
    pending = _Pending()

    def flush() -> None:
        if not (pending.files or pending.rejected):
            return
        saved = quarantine.save(pending.rejected, pending.paths)
        entries = [
            QuarantineEntry(r.source, r.record_index, r.event_id, r.reason, saved[i])
            for i, r in enumerate(pending.rejected)
        ]
        events = (
            pl.concat(pending.frames, how="vertical")
            if pending.frames
            else pl.DataFrame(schema={**EVENT_SCHEMA, "source": pl.String()})
        )
        result = store_events(con, events.drop("record_index"), pending.files, entries, run_id)
        report.events_stored += result.stored
        report.duplicates_skipped += result.duplicates
        report.campaign_rows += result.campaign_rows
        report.canvas_rows += result.canvas_rows
        pending.__init__()  # type: ignore[misc]

    todo: list[tuple[Path, os.stat_result]] = []
    for path in candidates:
        report.files_seen += 1
        try:
            todo.append((path, path.stat()))
        except OSError as exc:
            # Named explicitly but gone (moved by its deliverer, a broken link): say so and
            # record nothing as ingested, so the file is read if it comes back.
            pending.rejected.append(
                Rejected(str(path), -1, f"{path.name}: cannot read the file: {exc}")
            )
            report.files_quarantined += 1
            report.count_reason(f"cannot read the file: {exc}")
    fresh = set(pending_files(con, [p for p, _ in todo]))
    report.files_skipped += len(todo) - len(fresh)
    todo = [(p, st) for p, st in todo if p in fresh]

    for done, ((path, stat), outcome) in enumerate(_read_ahead(todo), start=1):
        source = str(path.resolve())
        pending.paths[source] = path
        if isinstance(outcome, UnreadableFile):
            pending.rejected.append(Rejected(source, -1, f"{path.name}: {outcome}"))
            pending.files.append(
                FileRecord(source, stat.st_size, stat.st_mtime_ns, "currents", "quarantined", 0, 0)
            )
            report.files_quarantined += 1
            report.count_reason(str(outcome))
        else:
            frame = outcome.events.with_columns(pl.lit(source).alias("source"))
            pending.frames.append(frame)
            pending.rows += frame.height
            pending.rejected.extend(
                Rejected(source, r.record_index, r.reason, r.event_id, r.record)
                for r in outcome.rejected
            )
            for r in outcome.rejected:
                report.count_reason(r.reason)
            report.records_read += outcome.records
            report.records_quarantined += len(outcome.rejected)
            report.files_ingested += 1
            pending.files.append(
                FileRecord(source, stat.st_size, stat.st_mtime_ns, "currents", "ingested",
                           outcome.records, len(outcome.rejected))
            )  # fmt: skip
        if pending.rows >= batch_rows:
            flush()
        if progress:
            progress(done, len(todo))
    flush()
    return report


def _read_ahead(
    todo: list[tuple[Path, os.stat_result]], depth: int = 3
) -> Iterator[tuple[tuple[Path, os.stat_result], ReadResult | UnreadableFile]]:
    """Read the next few files on a worker thread while the caller writes the current batch:
    polars' reader and DuckDB's writer both release the GIL, so the two overlap."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="currents-reader") as pool:
        ahead: deque[tuple[tuple[Path, os.stat_result], Future[ReadResult]]] = deque()
        for item in todo:
            ahead.append((item, pool.submit(read_currents_file, item[0])))
            if len(ahead) > depth:
                yield _settle(*ahead.popleft())
        while ahead:
            yield _settle(*ahead.popleft())


def _settle(
    item: tuple[Path, os.stat_result], future: Future[ReadResult]
) -> tuple[tuple[Path, os.stat_result], ReadResult | UnreadableFile]:
    try:
        return item, future.result()
    except UnreadableFile as exc:
        return item, exc
