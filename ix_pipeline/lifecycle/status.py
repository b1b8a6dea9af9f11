"""What `ix status` and the demo summary report: the policy's explanation plus row counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from ix_pipeline.lifecycle.expiry import plan_expiry
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.lifecycle_io import archived_row_counts


def item_status(
    con: duckdb.DuckDBPyConnection, archive: Archive, as_of: datetime, ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """One row per item in the ARCHITECTURE.md `status` shape; all items when `ids` is empty."""
    plan = plan_expiry(con, as_of)
    wanted = set(ids or [])
    decisions = [d for d in plan.decisions if not wanted or d.item_id in wanted]
    archived: dict[str, int] = {}
    for item_type in ("campaign", "canvas"):
        archived.update(archived_row_counts(archive, con, item_type))
    catalog = {
        row[0]: row[1:]
        for row in con.execute(
            """SELECT c.id, c.name, c.status, l.last_restored_at
               FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id"""
        ).fetchall()
    }
    rows = []
    for d in decisions:
        name, status, restored = catalog.get(d.item_id, (None, None, None))
        rows.append(
            {
                "id": d.item_id,
                "type": d.item_type,
                "name": name,
                "status": status,
                "state": d.state,
                "expires_at": d.expires_at.isoformat() if d.expires_at else None,
                "exempt_by": list(d.exempt_by),
                "reason": d.reason,
                "eligible": d.eligible,
                "hot_rows": plan.hot_rows.get(d.item_id, 0),
                "archived_rows": archived.get(d.item_id, 0),
                "last_restored_at": restored.isoformat() if restored else None,
            }
        )
    return rows


def workspace_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    def one(sql: str) -> Any:
        return con.execute(sql).fetchall()[0][0]

    states = dict(
        con.execute("SELECT state, count(*) FROM item_lifecycle GROUP BY 1 ORDER BY 1").fetchall()
    )
    return {
        "items": one("SELECT count(*) FROM catalog_items"),
        "items_by_state": states,
        "consumers": one("SELECT count(*) FROM audience_consumers"),
        "invalid_consumers": one("SELECT count(*) FROM audience_consumers WHERE NOT valid"),
        "users": one("SELECT count(*) FROM user_summaries"),
        "events_ingested": one("SELECT count(*) FROM event_ledger"),
        "campaign_rows_hot": one("SELECT count(*) FROM campaign_interactions"),
        "canvas_rows_hot": one("SELECT count(*) FROM canvas_interactions"),
        "records_quarantined": one("SELECT count(*) FROM quarantine_log"),
        "archive_transitions": one(
            "SELECT count(*) FROM lifecycle_audit WHERE to_state = 'expired'"
        ),
    }
