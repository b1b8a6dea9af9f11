"""Catalog documents (campaigns, Canvases, segments, content cards) into catalog tables.

A document is checked for its shape here; its audience is parsed and validated by
`audience.expressions`. A bad document is quarantined with its reason and the rest of the
catalog still loads; an invalid audience is recorded against its consumer (never dropped,
never evaluated as an empty audience). Derived tables are rebuilt from all current
documents in the same transaction as the documents themselves, so they never disagree.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ix_pipeline.audience.expressions import (
    All,
    AudienceError,
    ItemInfo,
    check_audience,
    components_of,
    references,
    validate_references,
)
from ix_pipeline.ingest.currents import safe_event_id
from ix_pipeline.ingest.quarantine import Quarantine, Rejected
from ix_pipeline.store.events import FileRecord, QuarantineEntry, path_text, pending_files
from ix_pipeline.store.hot import insert_rows, transaction
from ix_pipeline.store.lifecycle_io import Transition, hot_row_counts, write_audit
from ix_pipeline.store.schema import ITEM_TYPES as INTERACTION_ITEM_TYPES

DOCUMENT_TYPES = ("campaign", "canvas", "segment", "content_card")
ITEM_TYPES = ("campaign", "canvas")
ITEM_STATUSES = ("draft", "active", "stopped", "archived")
# How deep a catalog JSON text may nest. Python's json stops near 1,000 levels (its recursion
# limit), which rejected a whole file for one audience nested 1,000 deep, and `json.dumps`
# failed the same way when storing it. 10,000 keeps a wide margin to the C stack (50,000
# levels parse fine in an 8 MB thread); deeper files are still refused cleanly, whole.
MAX_JSON_DEPTH = 10_000


@contextmanager
def _json_depth() -> Iterator[None]:
    """Let json parse and dump MAX_JSON_DEPTH levels; restores the previous limit."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, MAX_JSON_DEPTH + 1_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _json_word(value: Any) -> str:
    """JSON's own names for a value's type, as the writer of the document knows them."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)  # fmt: skip


class BadDocument(ValueError):
    pass


@dataclass
class CatalogReport:
    files_seen: int = 0
    files_skipped: int = 0
    files_quarantined: int = 0
    documents_read: int = 0
    documents_loaded: int = 0
    documents_stale: int = 0
    documents_quarantined: int = 0
    items: int = 0
    consumers: int = 0
    invalid_consumers: int = 0
    references: int = 0
    audience_errors: list[str] = field(default_factory=list)


def discover_catalog(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        elif path.suffix == ".json":
            yield path


def parse_time(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadDocument(
            f"field {field_name} must be an ISO-8601 timestamp, found {_json_word(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadDocument(
            f"field {field_name} is not an ISO-8601 timestamp: {value[:60]!r}"
        ) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # A valid timestamp at the calendar's edge can leave it once its offset is applied
        # (0001-01-01T00:00:00+01:00 falls before year 1 in UTC).
        raise BadDocument(
            f"field {field_name} is out of range once converted to UTC: {value[:60]!r}"
        ) from None


def _check_name(doc_id: str, component: dict[str, Any], where: str) -> None:
    # Component names are stored as text: an object would be stored as its Python repr.
    name = component.get("name")
    if name is not None and not isinstance(name, str):
        raise BadDocument(
            f"document {doc_id}: field {where}.name must be a string, found {_json_word(name)}"
        )


def _check_messages(doc_id: str, messages: Any, where: str) -> None:
    """A campaign's or a step's messages: message variation IDs to objects."""
    if messages is None:
        return
    if not isinstance(messages, dict):
        raise BadDocument(
            f"document {doc_id}: field {where} must be an object, found {_json_word(messages)}"
        )
    for mv_id, message in messages.items():
        at = f"{where}.{safe_event_id(mv_id)}"
        if not isinstance(message, dict):
            raise BadDocument(
                f"document {doc_id}: field {at} must be an object, found {_json_word(message)}"
            )
        _check_name(doc_id, message, at)


def check_document(doc: Any) -> dict[str, Any]:
    """The shape every document must have; unknown extra fields are kept, never fatal."""
    if not isinstance(doc, dict):
        raise BadDocument(f"a catalog document must be a JSON object, found {_json_word(doc)}")
    doc_id = doc.get("id")
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise BadDocument("field id is missing or not a non-empty string")
    if len(doc_id) > 512:
        raise BadDocument("field id is longer than 512 characters")
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # JSON allows an escaped lone surrogate ("\ud800"); DuckDB cannot store it and the
        # whole catalog transaction would fail on this one document.
        raise BadDocument(
            f"document {safe_event_id(doc_id)}: contains text that is not valid Unicode "
            "(a lone surrogate escape such as \\ud800)"
        ) from None
    if doc.get("type") not in DOCUMENT_TYPES:
        raise BadDocument(
            f"document {doc_id}: field type must be one of {', '.join(DOCUMENT_TYPES)}, found {doc.get('type')!r}"
        )
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise BadDocument(f"document {doc_id}: field name must be a string")
    for key in ("updated_at", "created_at", "stopped_at", "first_sent", "last_sent",
                "interaction_data_deleted_at"):  # fmt: skip
        try:
            parse_time(doc.get(key), key)
        except BadDocument as exc:
            raise BadDocument(f"document {doc_id}: {exc}") from None
    if doc["type"] in ITEM_TYPES:
        for key in ("archived", "draft", "enabled"):
            # "false" is a true value in Python: it would store an item as archived, or make
            # one without a status active.
            if key in doc and not isinstance(doc[key], bool):
                raise BadDocument(
                    f"document {doc_id}: field {key} must be true or false, found {_json_word(doc[key])}"
                )
        status = doc.get("status", "active" if doc.get("enabled") else "stopped")
        if status not in ITEM_STATUSES:
            raise BadDocument(
                f"document {doc_id}: field status must be one of {', '.join(ITEM_STATUSES)}, found {status!r}"
            )
        tags = doc.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BadDocument(f"document {doc_id}: field tags must be a list of strings")
        _check_messages(doc_id, doc.get("messages"), "messages")
        for key in ("variants", "steps"):
            value = doc.get(key)
            if value is not None and not (
                isinstance(value, list)
                and all(isinstance(v, dict) and isinstance(v.get("id"), str) for v in value)
            ):
                raise BadDocument(
                    f"document {doc_id}: field {key} must be a list of objects with an id"
                )
            for index, entry in enumerate(value or []):
                _check_name(doc_id, entry, f"{key}[{index}]")
        for index, step in enumerate(doc.get("steps") or []):
            _check_messages(doc_id, step.get("messages"), f"steps[{index}].messages")
    elif doc.get("status", "active") not in ("active", "inactive"):
        raise BadDocument(
            f"document {doc_id}: field status must be active or inactive, found {doc.get('status')!r}"
        )
    return doc


def _read_catalog_file(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Rejected]]:
    # A name that is not UTF-8 is read all the same; the store keeps it escaped.
    source = path_text(path.resolve())
    name = Path(source).name
    try:
        with _json_depth():
            data = json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise BadDocument(
            f"{name} is not a readable JSON document: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadDocument(f"{name} is not a readable JSON document: {exc}") from exc
    docs = data if isinstance(data, list) else [data]
    good: list[tuple[int, dict[str, Any]]] = []
    rejected: list[Rejected] = []
    for index, doc in enumerate(docs):
        try:
            with _json_depth():
                good.append((index, check_document(doc)))
        except BadDocument as exc:
            doc_id = safe_event_id(doc.get("id")) if isinstance(doc, dict) else None
            record = doc if isinstance(doc, dict) else {"value": doc}
            rejected.append(
                Rejected(source, index, f"catalog document #{index}: {exc}", doc_id, record)
            )
    return good, rejected


def ingest_catalog(
    con: duckdb.DuckDBPyConnection, paths: Iterable[Path], quarantine_root: Path, run_id: str
) -> CatalogReport:
    report = CatalogReport()
    quarantine = Quarantine(quarantine_root)
    now = datetime.now(UTC)
    files: list[FileRecord] = []
    rejected: list[Rejected] = []
    file_paths: dict[str, Path] = {}
    incoming: list[tuple[str, int, dict[str, Any]]] = []
    todo: list[tuple[Path, os.stat_result]] = []
    for path in discover_catalog(paths):
        report.files_seen += 1
        try:
            todo.append((path, path.stat()))
        except OSError as exc:
            # Named explicitly but gone: say so, record nothing as ingested (see currents).
            source = path_text(path)
            rejected.append(
                Rejected(source, -1, f"{Path(source).name}: cannot read the file: {exc}")
            )
            report.files_quarantined += 1
    fresh = set(pending_files(con, [p for p, _ in todo]))
    report.files_skipped += len(todo) - len(fresh)
    for path, stat in todo:
        if path not in fresh:
            continue
        source = path_text(path.resolve())
        file_paths[source] = path
        try:
            good, bad = _read_catalog_file(path)
        except BadDocument as exc:
            rejected.append(Rejected(source, -1, str(exc)))
            files.append(
                FileRecord(source, stat.st_size, stat.st_mtime_ns, "catalog", "quarantined", 0, 0)
            )
            report.files_quarantined += 1
            continue
        rejected.extend(bad)
        report.documents_read += len(good) + len(bad)
        report.documents_quarantined += len(bad)
        incoming.extend((source, index, doc) for index, doc in good)
        files.append(
            FileRecord(
                source,
                stat.st_size,
                stat.st_mtime_ns,
                "catalog",
                "ingested",
                len(good) + len(bad),
                len(bad),
            )
        )

    existing = {
        row[0]: (row[1], row[2])
        for row in con.execute("SELECT id, type, updated_at FROM catalog_documents").fetchall()
    }
    winners: dict[str, tuple[str, dict[str, Any]]] = {}
    clashes: Counter[str] = Counter()  # documents refused below, by source file
    for source, index, doc in incoming:
        doc_id, doc_type = doc["id"], doc["type"]
        updated = parse_time(doc.get("updated_at"), "updated_at")
        known = existing.get(doc_id)
        pending = winners.get(doc_id)
        other_type = (pending[1]["type"] if pending else None) or (known[0] if known else None)
        if other_type is not None and other_type != doc_type:
            rejected.append(Rejected(source, index,
                f"catalog document #{index}: id {doc_id} is already a {other_type}, this document says {doc_type}",
                doc_id, doc))  # fmt: skip
            report.documents_quarantined += 1
            clashes[source] += 1
            continue
        current = (
            parse_time(pending[1].get("updated_at"), "updated_at")
            if pending
            else (known[1] if known else None)
        )
        # Without updated_at a document's age is unknown, so it never replaces a dated one
        # (an undated "stopped" over a newer "active" would let live data expire); a dated one
        # replaces an undated one, and between undated ones the later file and position wins,
        # as between equal dates.
        if current is not None and (updated is None or updated < current):
            report.documents_stale += 1
            continue
        winners[doc_id] = (source, doc)
    # The files' counts were taken as they were read, before these refusals.
    files = [replace(f, quarantined=f.quarantined + clashes[f.path]) for f in files]

    with _json_depth():
        saved = quarantine.save(rejected, file_paths)
    with _json_depth(), transaction(con):
        for doc_id, (source, doc) in winners.items():
            con.execute(
                "INSERT OR REPLACE INTO catalog_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                [doc_id, doc["type"], doc.get("name"), parse_time(doc.get("updated_at"), "updated_at"),
                 json.dumps(doc), source, now],
            )  # fmt: skip
        report.documents_loaded = len(winners)
        rebuild_catalog_tables(con, report, run_id)
        for f in files:
            con.execute(
                "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [f.path, f.size, f.mtime_ns, f.kind, f.status, f.records,
                 f.records - f.quarantined, f.quarantined, now, run_id],
            )  # fmt: skip
        for i, r in enumerate(rejected):
            entry = QuarantineEntry(r.source, r.record_index, r.event_id, r.reason, saved[i])
            con.execute(
                "INSERT INTO quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [now, entry.source, entry.record_index, entry.event_id, entry.reason, entry.saved_to, run_id],
            )  # fmt: skip
    return report


def is_active(doc: Mapping[str, Any]) -> bool:
    if doc["type"] in ITEM_TYPES:
        return doc.get("status", "active" if doc.get("enabled") else "stopped") == "active"
    return doc.get("status", "active") == "active"


def rebuild_catalog_tables(
    con: duckdb.DuckDBPyConnection, report: CatalogReport, run_id: str
) -> None:
    """Derived tables from every current document: items, components, consumers, references."""
    docs = [
        json.loads(row[0])
        for row in con.execute("SELECT document FROM catalog_documents ORDER BY id").fetchall()
    ]
    items = {d["id"]: d for d in docs if d["type"] in ITEM_TYPES}
    known = {doc_id: ItemInfo.from_document(d) for doc_id, d in items.items()}
    now = datetime.now(UTC)
    for table in (
        "catalog_items",
        "item_components",
        "audience_consumers",
        "filter_references",
        "catalog_errors",
    ):
        con.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    item_rows: list[tuple[Any, ...]] = []
    component_rows: list[tuple[Any, ...]] = []
    for d in items.values():
        status = d.get("status", "active" if d.get("enabled") else "stopped")
        comps = list(components_of(d))
        item_rows.append((
            d["id"], d["type"], d.get("name"), status, d.get("tags", []),
            parse_time(d.get("stopped_at"), "stopped_at"), parse_time(d.get("first_sent"), "first_sent"),
            parse_time(d.get("last_sent"), "last_sent"),
            parse_time(d.get("interaction_data_deleted_at"), "interaction_data_deleted_at"),
            bool(d.get("archived", status == "archived")), bool(d.get("draft", status == "draft")),
            sum(1 for c in comps if c[0] == "variant") > 1,
            parse_time(d.get("updated_at"), "updated_at"),
        ))  # fmt: skip
        component_rows.extend((d["id"], d["type"], *c) for c in comps)
    insert_rows(
        con, "INSERT INTO catalog_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", item_rows
    )
    insert_rows(con, "INSERT INTO item_components VALUES (?, ?, ?, ?, ?, ?)", component_rows)
    consumer_rows, reference_rows, error_rows = [], [], []
    for d in docs:
        if d["type"] in ITEM_TYPES and "audience" not in d:
            continue
        audience = d.get("audience")
        active = is_active(d)
        errors: list[AudienceError]
        errors, leaves = check_audience(audience, consumer_id=d["id"])
        # The filters that parsed, even when others did not: their ID references still
        # exempt (rule 3), and the catalog's errors name every problem at once.
        well_formed = All(leaves)
        errors += validate_references(well_formed, consumer_id=d["id"], known_items=known)
        refs = references(well_formed)
        by_path = {e.path: str(e) for e in errors}
        for r in refs:
            reference_rows.append((
                d["id"], d["type"], active, r.filter, r.path, r.by, r.item_type, r.item_id,
                r.component_id, r.tag, r.path not in by_path, by_path.get(r.path),
            ))  # fmt: skip
        consumer_rows.append(
            (
                d["id"],
                d["type"],
                d.get("name"),
                active,
                json.dumps(audience),
                not errors,
                [str(e) for e in errors],
            )
        )
        for e in errors:
            error_rows.append((None, d["id"], e.filter_name, e.path, str(e), now))
            report.audience_errors.append(str(e))
        report.invalid_consumers += bool(errors)
    insert_rows(con, "INSERT INTO audience_consumers VALUES (?, ?, ?, ?, ?, ?, ?)", consumer_rows)
    insert_rows(
        con,
        "INSERT INTO filter_references VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        reference_rows,
    )
    insert_rows(con, "INSERT INTO catalog_errors VALUES (?, ?, ?, ?, ?, ?)", error_rows)
    # Every item gets a lifecycle row, hot at first: events may have come before the item's
    # document, and a legacy deletion hides them, so it goes through the audited move below.
    con.execute(
        """INSERT INTO item_lifecycle
           SELECT id, type, 'hot', NULL, NULL, ?, NULL
           FROM catalog_items c WHERE NOT EXISTS (SELECT 1 FROM item_lifecycle l WHERE l.item_id = c.id)""",
        [now],
    )
    # A hot item the catalog now flags as deleted under the old policy: its rows turn
    # invisible, a transition like any other, so the audit log says when and why.
    flagged = con.execute(
        """SELECT l.item_id, l.item_type FROM item_lifecycle l
           JOIN catalog_items c ON c.id = l.item_id
           WHERE c.interaction_data_deleted_at IS NOT NULL AND l.state = 'hot' ORDER BY 1"""
    ).fetchall()
    if flagged:
        ids = [item_id for item_id, _ in flagged]
        hot_rows = {t: hot_row_counts(con, t, ids) for t in INTERACTION_ITEM_TYPES}
        con.execute(
            """UPDATE item_lifecycle SET state = 'legacy_deleted', updated_at = ?
               WHERE item_id IN (SELECT unnest(?))""",
            [now, ids],
        )
        write_audit(
            con,
            [
                Transition(item_id, item_type, "hot", "legacy_deleted",
                           hot_rows[item_type].get(item_id, 0),
                           "the catalog marks its data deleted under the pre-2024 policy")
                for item_id, item_type in flagged
            ],
            as_of=now, run_id=run_id, actor="ingest_catalog",
        )  # fmt: skip
    report.items = len(item_rows)
    report.consumers = len(consumer_rows)
    report.references = len(reference_rows)
