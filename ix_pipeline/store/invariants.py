"""The data invariants of DOMAIN.md as queries; asset checks and tests both call these."""

from __future__ import annotations

import duckdb

from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import registered
from ix_pipeline.store.schema import ITEM_TYPES, interaction_table, ledger_key


def lost_events(con: duckdb.DuckDBPyConnection, archive: Archive) -> dict[str, int]:
    """Per item type: ingested interaction ids that are neither hot nor archived (must be 0)."""
    out: dict[str, int] = {}
    for item_type in ITEM_TYPES:
        with registered(con, "_archived", archive.rows(con, item_type, ["id"])):
            out[item_type] = con.execute(
                f"""SELECT count(*) FROM event_ledger l
                    ANTI JOIN (SELECT {ledger_key("id")} AS id_key FROM {interaction_table(item_type)}
                               UNION ALL SELECT {ledger_key("id")} FROM _archived) k
                      ON k.id_key = l.id_key
                    WHERE l.item_type = ?""",  # noqa: S608
                [item_type],
            ).fetchall()[0][0]
    return out


def duplicate_ids(con: duckdb.DuckDBPyConnection, archive: Archive) -> dict[str, int]:
    """Ids stored twice, in the archive or in the hot store, per place (must be 0)."""
    out: dict[str, int] = {}
    for item_type in ITEM_TYPES:
        with registered(con, "_archived", archive.rows(con, item_type, ["id"])):
            out[f"archive.{item_type}"] = con.execute(
                "SELECT count(*) - count(DISTINCT id) FROM (SELECT id FROM _archived)"
            ).fetchall()[0][0]
        table = interaction_table(item_type)
        out[f"hot.{item_type}"] = con.execute(
            f"SELECT count(*) - count(DISTINCT id) FROM {table}"  # noqa: S608
        ).fetchall()[0][0]
    return out


def visible_rows_of_hidden_items(con: duckdb.DuckDBPyConnection) -> int:
    """Rows that features can see although their item is expired or being restored (must be 0)."""
    total = 0
    for item_type in ITEM_TYPES:
        total += con.execute(
            f"""SELECT count(*) FROM visible_{interaction_table(item_type)} v
                JOIN item_lifecycle l ON l.item_id = v.item_id
                WHERE l.state IN ('expired', 'restoring', 'legacy_deleted')"""  # noqa: S608
        ).fetchall()[0][0]
    return total


def items_in_flight(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Items left mid-operation (`expiring`, `restoring`): a crashed or running run."""
    return con.execute(
        "SELECT item_id, state FROM item_lifecycle WHERE state IN ('expiring', 'restoring') ORDER BY 1"
    ).fetchall()
