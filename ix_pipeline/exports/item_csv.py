"""The per-item "user data" CSV (FORMATS.md §4): one row per recipient of a campaign or Canvas.

A recipient is a user with any visible row of the item (received, opened, clicked, converted,
control enrollment, Canvas entry), the same rule as the user export, so both agree on who
"got" an item. Conversions of control-group users are reported as they happened (the
``in_control_group`` column tells them apart). Canvas ``steps_received`` lists the IDs of the
steps the user received a message from, sorted, separated by ``;``.

An expired item's data is not visible, and an empty file would look like "nobody received
it"; so the export refuses, pointing at ``ix restore``. Rows stream from DuckDB in Arrow
batches into the CSV writer; the file appears under its final name only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv

from ix_pipeline.audience.expressions import LEGACY_POLICY
from ix_pipeline.exports.user_export import (
    campaign_entries_sql,
    canvas_entries_sql,
    canvas_steps_sql,
    iso,
)
from ix_pipeline.store.schema import INVISIBLE_STATES

__all__ = [
    "CAMPAIGN_COLUMNS",
    "CANVAS_COLUMNS",
    "ItemDataDeleted",
    "ItemDataExpired",
    "ItemExportError",
    "UnknownItem",
    "export_item_csv",
    "item_csv_sql",
    "items_not_exportable",
]

CAMPAIGN_COLUMNS: tuple[str, ...] = (
    "user_id", "external_user_id", "variation_name", "variation_api_id", "in_control_group",
    "last_received", "opened", "clicked", "converted",
)  # fmt: skip
CANVAS_COLUMNS: tuple[str, ...] = (*CAMPAIGN_COLUMNS, "last_entered", "steps_received")

_BATCH_ROWS = 50_000


class ItemExportError(ValueError):
    """The item's user data cannot be exported; the message says why and what to do."""


class UnknownItem(ItemExportError, LookupError):
    pass


class ItemDataExpired(ItemExportError):
    pass


class ItemDataDeleted(ItemExportError):
    pass


def _check_item(con: duckdb.DuckDBPyConnection, item_id: str) -> str:
    """The item's type, if its data is visible; a clear error otherwise."""
    rows = con.execute(
        """SELECT c.type, c.interaction_data_deleted_at, l.state
           FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id
           WHERE c.id = ?""",
        [item_id],
    ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise UnknownItem(f"{item_id} is not a campaign or Canvas in the catalog")
    item_type, deleted_at, state = row
    label = "Canvas" if item_type == "canvas" else "campaign"
    if deleted_at is not None or state == "legacy_deleted":
        raise ItemDataDeleted(
            f"{label} {item_id}: {LEGACY_POLICY}; it cannot be exported or restored"
        )
    if state == "expired":
        raise ItemDataExpired(
            f"{label} {item_id}: its interaction data is expired (moved to the archive); "
            f"restore it first: ix restore --{item_type} {item_id}"
        )
    if state == "restoring":
        raise ItemDataExpired(
            f"{label} {item_id}: its interaction data is expired and a restore is in progress; "
            f"export it when the restore has finished (ix status {item_id}), or restore it "
            f"first: ix restore --{item_type} {item_id}"
        )
    return str(item_type)


def item_csv_sql(item_type: str) -> str:
    """The CSV query of an item type; the item id is the named parameter ``$item``."""
    where = "item_id = $item"
    common = """e.user_id, u.external_user_id"""
    if item_type == "campaign":
        return f"""
          SELECT {common}, e.variant_name AS variation_name, e.variant_id AS variation_api_id,
                 e.in_control AS in_control_group, {iso("e.last_received")} AS last_received,
                 e.opened, e.clicked, e.converted
          FROM ({campaign_entries_sql(where)}) AS e
          LEFT JOIN user_summaries u ON u.user_id = e.user_id
          ORDER BY e.user_id"""  # noqa: S608
    return f"""
      SELECT {common}, e.variation_name, e.variation_id AS variation_api_id,
             e.in_control AS in_control_group, {iso("e.last_received")} AS last_received,
             e.opened, e.clicked, e.converted, {iso("e.last_entered")} AS last_entered,
             st.steps AS steps_received
      FROM ({canvas_entries_sql(where)}) AS e
      LEFT JOIN user_summaries u ON u.user_id = e.user_id
      LEFT JOIN (SELECT user_id, string_agg(canvas_step_id, ';' ORDER BY canvas_step_id) AS steps
                 FROM ({canvas_steps_sql(where)}) GROUP BY user_id) AS st
        ON st.user_id = e.user_id
      ORDER BY e.user_id"""  # noqa: S608


def items_not_exportable(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Items whose data no export may show now: expired, being restored, or deleted under the
    pre-2024 policy (the same items `_check_item` refuses)."""
    rows = con.execute(
        """SELECT c.id FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id
           WHERE c.interaction_data_deleted_at IS NOT NULL OR l.state IN (SELECT unnest(?))
           ORDER BY 1""",
        [list(INVISIBLE_STATES)],
    ).fetchall()
    return [item_id for (item_id,) in rows]


def export_item_csv(con: duckdb.DuckDBPyConnection, item_id: str, out_path: Path) -> int:
    """Write the user data CSV of one campaign or Canvas to ``out_path``; return its row count.

    Raises ``UnknownItem``, ``ItemDataExpired`` (expired or being restored: restore first) or
    ``ItemDataDeleted`` (legacy policy). ``out_path`` is the caller's; nothing here derives a
    path from the item id.
    """
    item_type = _check_item(con, item_id)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    rows = 0
    cur = con.cursor()
    try:
        reader = cur.sql(item_csv_sql(item_type), params={"item": item_id}).to_arrow_reader(
            _BATCH_ROWS
        )
        options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
        with pacsv.CSVWriter(str(partial), reader.schema, write_options=options) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        os.replace(partial, out_path)
    finally:
        cur.close()
        partial.unlink(missing_ok=True)
    return rows
