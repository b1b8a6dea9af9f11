"""Ingest Currents files into the hot store: discover, read, quarantine, store in batches.

Files are read outside any transaction and written in batches of about `batch_rows` events,
one transaction each, so memory stays bounded and a crash loses at most the batch in
flight, which is simply read again on the next run (files are marked ingested in the same
transaction as their rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from ix_pipeline.ingest.currents import (
    EVENT_SCHEMA,
    UnreadableFile,
    discover,
    read_currents_file,
)
from ix_pipeline.ingest.quarantine import Quarantine, Rejected
from ix_pipeline.store.events import (
    FileRecord,
    QuarantineEntry,
    already_ingested,
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

    for done, path in enumerate(candidates, start=1):
        report.files_seen += 1
        try:
            stat = path.stat()
        except OSError as exc:
            # Named explicitly but gone (moved by its deliverer, a broken link): say so and
            # record nothing as ingested, so the file is read if it comes back.
            pending.rejected.append(Rejected(str(path), -1, f"{path.name}: cannot read the file: {exc}"))
            report.files_quarantined += 1
            report.count_reason(f"cannot read the file: {exc}")
            continue
        source = str(path.resolve())
        if already_ingested(con, source, stat.st_size, stat.st_mtime_ns):
            report.files_skipped += 1
            continue
        pending.paths[source] = path
        try:
            result = read_currents_file(path)
        except UnreadableFile as exc:
            reason = f"{path.name}: {exc}"
            pending.rejected.append(Rejected(source, -1, reason))
            pending.files.append(
                FileRecord(source, stat.st_size, stat.st_mtime_ns, "currents", "quarantined", 0, 0)
            )
            report.files_quarantined += 1
            report.count_reason(str(exc))
        else:
            frame = result.events.with_columns(pl.lit(source).alias("source"))
            pending.frames.append(frame)
            pending.rows += frame.height
            pending.rejected.extend(
                Rejected(source, r.record_index, r.reason, r.event_id, r.record) for r in result.rejected
            )
            for r in result.rejected:
                report.count_reason(r.reason)
            report.records_read += result.records
            report.records_quarantined += len(result.rejected)
            report.files_ingested += 1
            pending.files.append(
                FileRecord(source, stat.st_size, stat.st_mtime_ns, "currents", "ingested",
                           result.records, len(result.rejected))
            )  # fmt: skip
        if pending.rows >= batch_rows:
            flush()
        if progress:
            progress(done, len(candidates))
    flush()
    return report
