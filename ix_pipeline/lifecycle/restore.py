"""Restore: bring expired items' interaction data back to hot, by ids or by tag.

Validation happens before any change: a request that names an unknown item or a
legacy-deleted one is refused whole. Protocol per chunk: mark `restoring` (no expiry may
touch the items meanwhile), copy the archived rows not already hot, verify, mark `hot` with
the restore time as the new inactivity anchor. The archive keeps its copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import transaction
from ix_pipeline.store.lifecycle_io import (
    check_restored,
    compare_and_set,
    copy_archived_rows_to_hot,
    rows_moved_by_last_expiry,
)
from ix_pipeline.store.schema import ItemType

LEGACY_POLICY_TEXT = (
    "its interaction data was deleted under the pre-2024 retention policy (25 months without "
    "sending) and cannot be restored"
)
CHUNK_ITEMS = 500


def bounded_list(names: Sequence[str], shown: int = 20) -> str:
    """A list a person can read in a message or a mail, however long the request was."""
    head = ", ".join(names[:shown])
    return (
        head
        if len(names) <= shown
        else f"{head} … and {len(names) - shown} more ({len(names)} in all)"
    )


class RestoreRefused(ValueError):
    """The request is invalid as a whole; nothing was changed."""


class RestoreVerificationFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class RestoreRequest:
    campaign_ids: tuple[str, ...] = ()
    canvas_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass
class RestorePlan:
    to_restore: list[tuple[str, ItemType]] = field(default_factory=list)
    already_hot: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)
    already_hot: list[str] = field(default_factory=list)
    rows_restored: int = 0
    rows_per_item: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_restore(con: duckdb.DuckDBPyConnection, request: RestoreRequest) -> RestorePlan:
    """Resolve ids and tags to items; raise RestoreRefused naming every problem."""
    if not (request.campaign_ids or request.canvas_ids or request.tags):
        raise RestoreRefused("nothing to restore: give campaign ids, Canvas ids or tags")
    empty_tags = [t for t in request.tags if not t.strip()]
    if empty_tags:
        raise RestoreRefused("a tag cannot be empty")
    items = {
        row[0]: row[1:]
        for row in con.execute(
            """SELECT c.id, c.type, coalesce(l.state, 'hot'), c.interaction_data_deleted_at IS NOT NULL
               FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id"""
        ).fetchall()
    }
    wanted: list[tuple[str, str]] = [(i, "campaign") for i in dict.fromkeys(request.campaign_ids)]
    wanted += [(i, "canvas") for i in dict.fromkeys(request.canvas_ids)]
    unknown = [f"{t} {i!r}" for i, t in wanted if i not in items or items[i][0] != t]
    if unknown:
        raise RestoreRefused(
            f"unknown {'item' if len(unknown) == 1 else 'items'}: {bounded_list(unknown)}; nothing was restored"
        )
    legacy = [i for i, _ in wanted if items[i][2] or items[i][1] == "legacy_deleted"]
    if legacy:
        raise RestoreRefused(f"cannot restore {bounded_list(legacy)}: {LEGACY_POLICY_TEXT}")
    plan = RestorePlan()
    for tag in dict.fromkeys(request.tags):
        tagged = [
            (row[0], row[1])
            for row in con.execute(
                """SELECT c.id, c.type FROM catalog_items c JOIN item_lifecycle l ON l.item_id = c.id
                   WHERE list_contains(c.tags, ?) AND l.state IN ('expired', 'restoring') ORDER BY c.id""",
                [tag],
            ).fetchall()
        ]
        if not tagged:
            plan.notes.append(f"tag {tag!r} matches no expired item")
        wanted.extend(tagged)
    seen: set[str] = set()
    for item_id, item_type in wanted:
        if item_id in seen:
            continue
        seen.add(item_id)
        _, state, legacy_deleted = items[item_id]
        # A tag may match an item the catalog has since flagged as deleted under the old
        # policy (ids were refused above): the catalog is the authority on rule 9.
        if legacy_deleted or state == "legacy_deleted":
            plan.notes.append(f"{item_id} skipped: {LEGACY_POLICY_TEXT}")
        elif state in ("expired", "restoring"):
            plan.to_restore.append((item_id, item_type))  # type: ignore[arg-type]
        else:
            plan.already_hot.append(item_id)
    return plan


def run_restore(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    plan: RestorePlan,
    as_of: datetime,
    run_id: str,
    *,
    actor: str = "restore_interaction_data",
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    started = time.monotonic()
    result = RestoreResult(already_hot=list(plan.already_hot), notes=list(plan.notes))
    _refuse_an_archive_missing_rows(con, archive, plan)
    chunks: list[tuple[ItemType, list[str]]] = []
    for item_type in ("campaign", "canvas"):
        ids = [i for i, t in plan.to_restore if t == item_type]
        chunks += [(item_type, ids[k : k + CHUNK_ITEMS]) for k in range(0, len(ids), CHUNK_ITEMS)]
    for done, (item_type, ids) in enumerate(chunks, start=1):
        _restore_chunk(con, archive, item_type, ids, as_of, run_id, actor, result)
        if progress:
            progress(done, len(chunks))
    result.seconds = time.monotonic() - started
    return result


def _refuse_an_archive_missing_rows(
    con: duckdb.DuckDBPyConnection, archive: Archive, plan: RestorePlan
) -> None:
    """Refuse, before any change, items whose archive holds fewer rows than their last expiry
    moved there. Restoring from the wrong archive (a mistyped IX_ARCHIVE_URI, a bucket not
    mounted) would otherwise copy nothing, mark the items hot and leave their data out of
    reach: a second restore would only answer "already hot"."""
    moved = rows_moved_by_last_expiry(con, [i for i, _ in plan.to_restore])
    short = []
    for item_type in ("campaign", "canvas"):
        ids = [i for i, t in plan.to_restore if t == item_type and moved.get(i, (0,))[0] > 0]
        if not ids:
            continue  # not even the log of a table nothing is restored from
        for item_id, have in archive.logged_rows(item_type, ids).items():
            want, when = moved[item_id]
            if have is not None and have < want:
                short.append(
                    f"{item_id} ({have} of the {want} rows its expiry on {when:%Y-%m-%d} moved)"
                )
    if short:
        raise RestoreRefused(
            f"the archive at {archive.uri} lacks rows of {bounded_list(short)}; "
            "is IX_ARCHIVE_URI the archive these items expired to? Nothing was restored"
        )


def _restore_chunk(
    con: duckdb.DuckDBPyConnection,
    archive: Archive,
    item_type: ItemType,
    ids: Sequence[str],
    as_of: datetime,
    run_id: str,
    actor: str,
    result: RestoreResult,
) -> None:
    with transaction(con):
        owned = compare_and_set(
            con, ids, ["expired", "restoring"], "restoring",
            as_of=as_of, run_id=run_id, actor=actor, reason="restore started",
        )  # fmt: skip
    owned_ids = [t.item_id for t in owned]
    if not owned_ids:
        return
    copy_archived_rows_to_hot(con, archive, item_type, owned_ids)
    checked = check_restored(con, archive, item_type, owned_ids)
    missing = {i: m for i, (_, m) in checked.items() if m}
    if missing:
        raise RestoreVerificationFailed(
            "hot store lacks archived rows of "
            + ", ".join(f"{i} ({n} rows)" for i, n in sorted(missing.items()))
            + "; the items stay 'restoring' and the next restore resumes them"
        )
    # Every archived row of the item is hot again: that is what came back, also when a
    # crashed run had committed the copy and this run only finished the protocol.
    copied = {i: checked.get(i, (0, 0))[0] for i in owned_ids}
    with transaction(con):
        compare_and_set(
            con, owned_ids, ["restoring"], "hot", as_of=as_of, run_id=run_id, actor=actor,
            reason="restored from the archive", rows=copied, set_restored=True,
        )  # fmt: skip
    result.restored.extend(owned_ids)
    result.rows_per_item.update(copied)
    result.rows_restored += sum(copied.values())
