"""The nightly expiry: decide with the policy, then move eligible items to the archive.

Protocol per chunk of items (ARCHITECTURE.md, "Moving data without losing it"):
  1. mark them `expiring` (compare-and-set, so a restore cannot own them meanwhile);
  2. append their hot rows to the archive, skipping ids the archive already holds;
  3. verify the archive holds every hot id of those items;
  4. delete the hot rows and mark them `expired`, in one DuckDB transaction.
Every step may be re-run after a crash at any point and converges: an item left in
`expiring` is resumed by the next run (or rolled back to `hot` if it is no longer eligible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from ix_pipeline.faults import fault_point
from ix_pipeline.lifecycle.policy import Decision, decide_all
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import checkpoint_at_end, memory_limit, scalar, transaction
from ix_pipeline.store.lifecycle_io import (
    Transition,
    archive_hot_rows,
    compare_and_set,
    delete_hot_rows,
    hot_ids_missing_from_archive,
    hot_row_counts,
    load_id_references,
    load_item_facts,
    row_counts,
    write_audit,
)
from ix_pipeline.store.schema import ITEM_TYPES, ItemType, interaction_table

# Each chunk costs a scan of the hot table that decodes every column of every row (the items'
# rows are spread over all row groups): at 10 M events that scan, not the rows it yields, is
# most of what DuckDB spends on a chunk. So chunks are as large as memory allows. The Delta
# writer keeps, per item of the chunk, an open row group (at most 4,096 rows, see
# archive.WRITER_PROPERTIES) and, per chunk, its files (compressed, about 40 MB per million
# rows) until the commit: 200 items and 4 M rows keep the process under 1 GB.
CHUNK_ITEMS = 200
CHUNK_ROWS = 4_000_000
# DuckDB's memory while the rows stream out: 128 MB when none of the chunk's items has rows
# in the archive (a first expiry: a scan and a join on the chunk's ids); 256 MB when some
# do (they expire again after a restore), since leaving out the ids already archived then
# hashes them all: 128 MB ran out of memory on 3.6 M of them. At 10 M events, a first expiry
# peaks at 0.89-0.90 GB with 128 MB and 0.96-0.98 GB with 256 MB.
WRITE_DUCKDB_MEMORY = "128MB"
WRITE_AGAIN_DUCKDB_MEMORY = "256MB"
# The rest of the run (verification, deletes, the final checkpoint, which rewrites the
# tables' half-deleted row groups: 4.9 s at 640 MB against 5.7 s at 256 MB at 10 M events).
# The writer's memory is back with the OS by then (see ix_pipeline/__init__.py).
EXPIRY_DUCKDB_MEMORY = "640MB"


class ExpiryVerificationFailed(RuntimeError):
    """The archive does not hold every hot row of an item; nothing was deleted."""


@dataclass(frozen=True)
class ExpiryPlan:
    as_of: datetime
    decisions: list[Decision]
    hot_rows: dict[str, int]

    @property
    def eligible(self) -> list[Decision]:
        return [d for d in self.decisions if d.eligible]

    @property
    def rollbacks(self) -> list[Decision]:
        """Items a crash left in `expiring` that are no longer eligible."""
        return [d for d in self.decisions if d.state == "expiring" and not d.eligible]

    @property
    def late(self) -> list[Decision]:
        """Expired items with hot rows again: late or re-delivered events (stay invisible)."""
        return [d for d in self.decisions if d.state == "expired" and self.hot_rows.get(d.item_id)]


@dataclass
class Moved:
    """What an expiry did to one item type's rows."""

    items_expired: int = 0
    # Rows of the expired items that left the hot store for the archive: what a dry run
    # announces and the real run does.
    rows_archived: int = 0
    # Of those (and of late rows), the ones the archive lacked: fewer when an item expires
    # again after a restore. Not computed by a dry run (it would read the archive).
    rows_written: int = 0
    rows_deleted: int = 0  # late rows of expired items included
    late_rows_archived: int = 0
    rows_still_hot: int = 0


@dataclass
class ExpiryResult:
    as_of: datetime
    dry_run: bool
    expired: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    rows_per_item: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    by_type: dict[ItemType, Moved] = field(default_factory=lambda: {t: Moved() for t in ITEM_TYPES})

    def _total(self, name: str) -> int:
        return sum(getattr(moved, name) for moved in self.by_type.values())

    @property
    def rows_archived(self) -> int:
        return self._total("rows_archived")

    @property
    def rows_written(self) -> int:
        return self._total("rows_written")

    @property
    def rows_deleted(self) -> int:
        return self._total("rows_deleted")

    @property
    def late_rows_archived(self) -> int:
        return self._total("late_rows_archived")

    @property
    def rows_still_hot(self) -> int:
        return self._total("rows_still_hot")


def plan_expiry(con: duckdb.DuckDBPyConnection, as_of: datetime) -> ExpiryPlan:
    hot_rows: dict[str, int] = {}
    for item_type in ITEM_TYPES:
        hot_rows.update(row_counts(con, item_type))
    decisions = decide_all(load_item_facts(con), load_id_references(con), as_of)
    return ExpiryPlan(as_of=as_of, decisions=decisions, hot_rows=hot_rows)


def _chunks(
    decisions: Sequence[Decision],
    hot_rows: dict[str, int],
    chunk_rows: int = CHUNK_ROWS,
    chunk_items: int = CHUNK_ITEMS,
) -> list[tuple[ItemType, list[Decision]]]:
    """Per item type, chunks of at most `chunk_items` items and `chunk_rows` rows (an item larger
    than that is a chunk of its own): one Delta commit and one DuckDB transaction each, with
    memory bounded whatever the night's size. Each chunk costs a scan of the hot table, so
    the rows are spread over as few chunks as the bound allows: 1.82 M rows at 1.5 M per
    chunk make two chunks of about 0.91 M, not 1.5 M and a tail."""
    chunks: list[tuple[ItemType, list[Decision]]] = []
    for item_type in ITEM_TYPES:
        of_type = [d for d in decisions if d.item_type == item_type]
        total = sum(hot_rows.get(d.item_id, 0) for d in of_type)
        enough = math.ceil(total / max(1, math.ceil(total / chunk_rows)))
        current: list[Decision] = []
        rows = 0
        for d in of_type:
            item_rows = hot_rows.get(d.item_id, 0)
            if current and (len(current) >= chunk_items or rows + item_rows > chunk_rows):
                chunks.append((item_type, current))
                current, rows = [], 0
            current.append(d)
            rows += item_rows
            if rows and rows >= enough:
                chunks.append((item_type, current))
                current, rows = [], 0
        if current:
            chunks.append((item_type, current))
    return chunks


def run_expiry(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    as_of: datetime,
    run_id: str,
    *,
    dry_run: bool = False,
    actor: str = "nightly_expiry",
    progress: Callable[[int, int], None] | None = None,
) -> ExpiryResult:
    plan = plan_expiry(con, as_of)
    result = ExpiryResult(as_of=as_of, dry_run=dry_run)
    result.reasons = {d.item_id: d.reason for d in plan.eligible}
    if dry_run:
        result.expired = [d.item_id for d in plan.eligible]
        result.rows_per_item = {d.item_id: plan.hot_rows.get(d.item_id, 0) for d in plan.eligible}
        for item_type, moved in result.by_type.items():
            mine = [d for d in plan.eligible if d.item_type == item_type]
            moved.items_expired = len(mine)
            moved.rows_archived = sum(result.rows_per_item[d.item_id] for d in mine)
            # Counted from the table, as the real run does: rows of items the catalog does
            # not know yet have no decision, but they stay hot all the same.
            moved.rows_still_hot = _hot_rows(con, item_type) - moved.rows_archived
        return result

    with transaction(con):
        back = compare_and_set(
            con, [d.item_id for d in plan.rollbacks], ["expiring"], "hot",
            as_of=as_of, run_id=run_id, actor=actor,
            reason="interrupted expiry rolled back: the item is no longer eligible",
        )  # fmt: skip
    result.rolled_back = [t.item_id for t in back]

    steps = [(False, t, c) for t, c in _chunks(plan.eligible, plan.hot_rows)]
    steps += [(True, t, c) for t, c in _chunks(plan.late, plan.hot_rows)]
    with memory_limit(con, EXPIRY_DUCKDB_MEMORY), checkpoint_at_end(con):
        for done, (late, item_type, chunk) in enumerate(steps, start=1):
            if late:
                _archive_late_rows(con, archive, item_type, chunk, as_of, run_id, actor, result)
            else:
                _expire_chunk(
                    con, archive, item_type, chunk, plan.hot_rows, as_of, run_id, actor, result
                )
            if progress:
                progress(done, len(steps))
    for item_type, moved in result.by_type.items():
        moved.rows_still_hot = _hot_rows(con, item_type)
    return result


def _hot_rows(con: duckdb.DuckDBPyConnection, item_type: ItemType) -> int:
    return scalar(con, f"SELECT count(*) FROM {interaction_table(item_type)}")  # noqa: S608


def _expire_chunk(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    item_type: ItemType,
    chunk: list[Decision],
    plan_rows: dict[str, int],
    as_of: datetime,
    run_id: str,
    actor: str,
    result: ExpiryResult,
) -> None:
    reasons = {d.item_id: d.reason for d in chunk}
    with transaction(con):
        owned = compare_and_set(
            con, list(reasons), ["hot", "expiring"], "expiring",
            as_of=as_of, run_id=run_id, actor=actor, reason="expiry started",
        )  # fmt: skip
    ids = [t.item_id for t in owned]
    if not ids:
        return
    moved = result.by_type[item_type]
    again = archive.holds_rows_of(item_type, ids)
    with memory_limit(con, WRITE_AGAIN_DUCKDB_MEMORY if again else WRITE_DUCKDB_MEMORY):
        moved.rows_written += archive_hot_rows(con, archive, item_type, ids, run_id=run_id)
    fault_point("expiry.after_archive_write")
    missing = hot_ids_missing_from_archive(con, archive, item_type, ids)
    if missing:
        raise ExpiryVerificationFailed(
            "the archive is missing hot rows of "
            + ", ".join(f"{i} ({n} rows)" for i, n in sorted(missing.items()))
            + "; nothing was deleted and the items stay 'expiring' until the next run"
        )
    # This process holds the hot store's only write lock: no row arrives between the plan's
    # counts and the delete, so the plan's per-item counts are the rows deleted.
    rows = {i: plan_rows.get(i, 0) for i in ids}
    with transaction(con):
        deleted = delete_hot_rows(con, item_type, ids)
        compare_and_set(
            con, ids, ["expiring"], "expired", as_of=as_of, run_id=run_id, actor=actor,
            reason={i: reasons[i] for i in ids}, rows=rows, set_expired=True,
        )  # fmt: skip
    fault_point("expiry.after_hot_delete")
    result.expired.extend(ids)
    result.rows_per_item.update(rows)
    moved.items_expired += len(ids)
    moved.rows_archived += sum(rows.values())
    moved.rows_deleted += deleted


def _archive_late_rows(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    item_type: ItemType,
    chunk: list[Decision],
    as_of: datetime,
    run_id: str,
    actor: str,
    result: ExpiryResult,
) -> None:
    """Late events of expired items go where the rest of the item is; the state never
    leaves `expired`, so the rows stay invisible throughout."""
    ids = [d.item_id for d in chunk]
    moved = result.by_type[item_type]
    written = archive_hot_rows(con, archive, item_type, ids, run_id=run_id)
    moved.rows_written += written
    moved.late_rows_archived += written
    missing = hot_ids_missing_from_archive(con, archive, item_type, ids)
    if missing:
        raise ExpiryVerificationFailed(f"the archive is missing late rows of {sorted(missing)}")
    with transaction(con):
        # A restore may have taken an item back meanwhile; only still-expired items lose rows.
        still_expired = [
            row[0]
            for row in con.execute(
                "SELECT item_id FROM item_lifecycle WHERE state = 'expired' AND item_id IN (SELECT unnest(?))",
                [ids],
            ).fetchall()
        ]
        counts = hot_row_counts(con, item_type, still_expired)
        deleted = delete_hot_rows(con, item_type, still_expired)
        write_audit(
            con,
            [Transition(i, item_type, "expired", "expired", n, "late events moved to the archive")
             for i, n in counts.items()],
            as_of=as_of, run_id=run_id, actor=actor,
        )  # fmt: skip
    moved.rows_deleted += deleted
