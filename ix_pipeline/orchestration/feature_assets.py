"""Assets that read interaction data: audiences of active segments, the user export and the
per-item CSV exports. They read only visible (non-expired) data, and refresh themselves
when the hot tables change (ingest, expiry, restore), through declarative automation."""

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from ix_pipeline.audience.evaluate import AudienceRefused, evaluate_consumer
from ix_pipeline.exports.item_csv import ItemExportError, export_item_csv, items_not_exportable
from ix_pipeline.exports.user_export import export_users
from ix_pipeline.orchestration.resources import HotStoreResource, LandingResource
from ix_pipeline.store.hot import insert_rows

HOT_TABLES = ["campaign_interactions", "canvas_interactions", "user_summaries"]
AUTOMATION = dg.AutomationCondition.eager()


def export_file_name(item_id: str, suffix: str) -> str:
    """A file name for an item id that no id can turn into a path (`../`, `/`, control chars)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", item_id)[:60].strip("_") or "item"
    return f"{readable}-{hashlib.sha256(item_id.encode('utf-8')).hexdigest()[:10]}{suffix}"


@dg.asset(
    group_name="features", kinds={"duckdb"}, pool="hot_db", automation_condition=AUTOMATION,
    deps=[*HOT_TABLES, "audience_consumers", "expiry_eligibility"],
)  # fmt: skip
def audience_memberships(
    context: dg.AssetExecutionContext, hot: HotStoreResource
) -> dg.MaterializeResult:
    """Members of every active segment as of now; invalid segments are reported, never empty."""
    as_of = datetime.now(UTC)
    sizes: dict[str, int] = {}
    refused: dict[str, str] = {}
    with hot.connection() as con:
        segments = [r[0] for r in con.execute(
            "SELECT id FROM audience_consumers WHERE type = 'segment' AND active ORDER BY id").fetchall()]  # fmt: skip
        con.execute(
            "CREATE OR REPLACE TABLE audience_memberships (consumer_id VARCHAR, user_id VARCHAR, as_of TIMESTAMPTZ)"
        )
        for seg in segments:
            try:
                members = evaluate_consumer(con, seg, as_of)
            except AudienceRefused as exc:
                refused[seg] = str(exc)
                context.log.warning(str(exc))
                continue
            insert_rows(
                con,
                "INSERT INTO audience_memberships VALUES (?, ?, ?)",
                [(seg, u, as_of) for u in members],
            )
            sizes[seg] = len(members)
    table = "\n".join(
        ["| segment | members |", "|---|---|", *[f"| {k} | {v} |" for k, v in sizes.items()]]
    )
    return dg.MaterializeResult(metadata={
        "segments": len(sizes), "invalid_segments": len(refused),
        "members_total": sum(sizes.values()), "sizes": dg.MetadataValue.md(table),
    })  # fmt: skip


@dg.asset(group_name="features", kinds={"duckdb", "json"}, pool="hot_db", automation_condition=AUTOMATION,
          deps=[*HOT_TABLES, "catalog_items", "expiry_eligibility"])  # fmt: skip
def user_export(
    context: dg.AssetExecutionContext, hot: HotStoreResource, landing: LandingResource
) -> dg.MaterializeResult:
    """Every user in the `/users/export/ids` shape (JSON Lines), from non-expired data only."""
    out = Path(landing.landing).parent / "exports" / "users.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with hot.connection(read_only=True) as con:
        count = export_users(con, out)
    with out.open(encoding="utf-8") as f:
        preview = "".join(f.readline() for _ in range(3))
    return dg.MaterializeResult(metadata={
        "users": count, "path": dg.MetadataValue.path(str(out)), "bytes": out.stat().st_size,
        "preview": dg.MetadataValue.md(f"```json\n{preview}```"),
    })  # fmt: skip


class ItemCsvConfig(dg.Config):
    item_ids: list[str] = Field(
        default_factory=list,
        description="Campaign or Canvas ids to export. Empty: every active campaign and Canvas.",
    )


@dg.asset(group_name="features", kinds={"duckdb", "csv"}, pool="hot_db", automation_condition=AUTOMATION,
          deps=[*HOT_TABLES, "catalog_items", "expiry_eligibility"])  # fmt: skip
def item_csv_exports(
    context: dg.AssetExecutionContext,
    config: ItemCsvConfig,
    hot: HotStoreResource,
    landing: LandingResource,
) -> dg.MaterializeResult:
    """Per-item user data CSVs (one row per recipient). Expired items are skipped and reported."""
    folder = Path(landing.landing).parent / "exports" / "items"
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    skipped: dict[str, str] = {}
    with hot.connection(read_only=True) as con:
        ids = config.item_ids or [r[0] for r in con.execute(
            "SELECT id FROM catalog_items WHERE status = 'active' ORDER BY id").fetchall()]  # fmt: skip
        for item_id in ids:
            try:
                rows[item_id] = export_item_csv(
                    con, item_id, folder / export_file_name(item_id, ".csv")
                )
            except ItemExportError as exc:
                skipped[item_id] = str(exc)
        # Downstream jobs read this folder: a CSV written while an item was hot must go when
        # its data expires, or the folder would still show what the item's expiry hides.
        removed = []
        for item_id in items_not_exportable(con):
            stale = folder / export_file_name(item_id, ".csv")
            if stale.exists():
                stale.unlink()
                removed.append(item_id)
    preview = "\n".join(
        ["| item | rows |", "|---|---|", *[f"| {k} | {v} |" for k, v in list(rows.items())[:30]]]
    )
    return dg.MaterializeResult(metadata={
        "files": len(rows), "rows": sum(rows.values()), "skipped": len(skipped),
        "folder": dg.MetadataValue.path(str(folder)), "preview": dg.MetadataValue.md(preview),
        "skipped_items": dg.MetadataValue.json(skipped),
        "removed_files_of_hidden_items": len(removed),
    })  # fmt: skip


FEATURE_ASSETS = [audience_memberships, user_export, item_csv_exports]
