"""Assets: the hot tables, the catalog, expiry eligibility and the archive.

Each asset calls one function of `ingest/` or `lifecycle/` and turns its report into
metadata; no business rule lives here. Every step that opens the hot DuckDB file is in the
`hot_db` pool (limit 1, dagster.yaml), because DuckDB admits one writing process.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ix_pipeline.ingest.catalog import ingest_catalog
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.lifecycle.expiry import ExpiryPlan, plan_expiry, run_expiry
from ix_pipeline.lifecycle.policy import expiring_within
from ix_pipeline.notifications import messages
from ix_pipeline.orchestration.config import AsOfConfig, ExpiryConfig, IngestConfig, parse_as_of
from ix_pipeline.orchestration.resources import (
    ArchiveResource,
    HotStoreResource,
    LandingResource,
    MailResource,
)
from ix_pipeline.store.hot import insert_rows

HOT_POOL = "hot_db"

CATALOG_SPECS = [
    dg.AssetSpec("catalog_items", group_name="catalog", kinds={"duckdb"},
                 description="Campaigns and Canvases with status, tags, stop dates, variants and steps."),
    dg.AssetSpec("audience_consumers", group_name="catalog", kinds={"duckdb"},
                 description="Campaigns, Canvases, segments and content cards with their parsed, validated audience."),
    dg.AssetSpec("filter_references", group_name="catalog", kinds={"duckdb"},
                 description="Every consumer → item reference in an audience filter, by ID or by tag."),
]  # fmt: skip
HOT_SPECS = [
    dg.AssetSpec("campaign_interactions", group_name="hot_store", kinds={"duckdb"},
                 description="One row per campaign interaction event (Currents id), while hot."),
    dg.AssetSpec("canvas_interactions", group_name="hot_store", kinds={"duckdb"},
                 description="One row per Canvas interaction event (Currents id), while hot."),
    dg.AssetSpec("user_summaries", group_name="hot_store", kinds={"duckdb"},
                 description="Per-user facts that never expire (last received any/channel, bounces, flags…; "
                             "with user_items_received and user_inbound_keywords)."),
    dg.AssetSpec("item_analytics", group_name="hot_store", kinds={"duckdb"},
                 description="Event counts per item, variant, step, event type and day; never expire."),
]  # fmt: skip


def run_as_of(context: dg.AssetExecutionContext, value: str | None) -> datetime:
    """The config's as-of, or else the instant the run was created: every step of a run
    launched without one (the launchpad's default) decides as of the same moment, so the
    eligibility it shows is the one the archive step acts on."""
    if value:
        return parse_as_of(value)
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is None or record.create_timestamp is None:
        return parse_as_of(None)
    return record.create_timestamp.astimezone(UTC)


ARCHIVE_SPECS = [
    # Skippable: a dry run moves nothing, so it records an observation, not a materialization.
    dg.AssetSpec(["archive", "campaign_interactions"], group_name="lifecycle", kinds={"deltalake"},
                 deps=["expiry_eligibility", "campaign_interactions"], skippable=True,
                 description="Expired campaign interaction data, kept forever (Delta Lake, partitioned by item)."),
    dg.AssetSpec(["archive", "canvas_interactions"], group_name="lifecycle", kinds={"deltalake"},
                 deps=["expiry_eligibility", "canvas_interactions"], skippable=True,
                 description="Expired Canvas interaction data, kept forever (Delta Lake, partitioned by item)."),
]  # fmt: skip


@dg.multi_asset(specs=CATALOG_SPECS, name="ingest_catalog_documents", pool=HOT_POOL)
def ingest_catalog_documents(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    hot: HotStoreResource,
    landing: LandingResource,
) -> Iterator[dg.MaterializeResult]:
    """Load catalog JSON documents; invalid audiences are recorded against their consumer."""
    paths = [Path(p) for p in config.paths] or [landing.catalog]
    with hot.connection() as con:
        report = ingest_catalog(con, paths, Path(landing.quarantine), context.run.run_id)
    for err in report.audience_errors[:20]:
        context.log.warning(err)
    common = {
        "files_read": report.files_seen - report.files_skipped,
        "documents_loaded": report.documents_loaded,
        "documents_quarantined": report.documents_quarantined,
        "files_quarantined": report.files_quarantined,
    }
    yield dg.MaterializeResult(
        asset_key="catalog_items", metadata={**common, "items": report.items}
    )
    yield dg.MaterializeResult(
        asset_key="audience_consumers",
        metadata={"consumers": report.consumers, "invalid_consumers": report.invalid_consumers},
    )
    yield dg.MaterializeResult(
        asset_key="filter_references", metadata={"references": report.references}
    )


@dg.multi_asset(specs=HOT_SPECS, name="ingest_currents_files", pool=HOT_POOL)
def ingest_currents_files(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    hot: HotStoreResource,
    landing: LandingResource,
) -> Iterator[dg.MaterializeResult]:
    """Read new Currents files (Avro, JSON Lines, Parquet) into the hot tables, once per event id."""
    paths = [Path(p) for p in config.paths] or [landing.currents]

    def progress(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            context.log.info(f"read {done}/{total} Currents files")

    with hot.connection() as con:
        report = ingest_currents(
            con, paths, Path(landing.quarantine), context.run.run_id, progress=progress
        )
    if report.quarantine_reasons:
        context.log.warning(f"quarantined: {report.quarantine_reasons}")
    shared = {
        "files_ingested": report.files_ingested,
        "files_skipped_already_ingested": report.files_skipped,
        "files_quarantined": report.files_quarantined,
        "events_stored": report.events_stored,
        "duplicates_skipped": report.duplicates_skipped,
        "records_quarantined": report.records_quarantined,
    }
    yield dg.MaterializeResult(
        asset_key="campaign_interactions",
        metadata={**shared, "rows_ingested": report.campaign_rows},
    )
    yield dg.MaterializeResult(
        asset_key="canvas_interactions", metadata={**shared, "rows_ingested": report.canvas_rows}
    )
    yield dg.MaterializeResult(
        asset_key="user_summaries", metadata={"events_folded": report.events_stored}
    )
    yield dg.MaterializeResult(
        asset_key="item_analytics", metadata={"events_counted": report.events_stored}
    )


def _eligibility_markdown(plan: ExpiryPlan, limit: int = 25) -> str:
    upcoming = sorted(
        (d for d in plan.decisions if d.expires_at is not None and d.state in ("hot", "expiring")),
        key=lambda d: (not d.eligible, d.expires_at),
    )[:limit]
    lines = [
        "| item | type | expires at | eligible | hot rows | why |",
        "|---|---|---|---|---|---|",
    ]
    for d in upcoming:
        why = d.reason.replace("|", "/")
        lines.append(
            f"| {d.item_id} | {d.item_type} | {d.expires_at:%Y-%m-%d %H:%M} | {'yes' if d.eligible else ''} "
            f"| {plan.hot_rows.get(d.item_id, 0)} | {why} |"
        )
    return "\n".join(lines)


@dg.asset(
    group_name="lifecycle",
    kinds={"duckdb", "python"},
    deps=["catalog_items", "filter_references", "campaign_interactions", "canvas_interactions"],
    pool=HOT_POOL,
)
def expiry_eligibility(
    context: dg.AssetExecutionContext, config: ExpiryConfig, hot: HotStoreResource
) -> dg.MaterializeResult:
    """Per item: state, expiry date, exempting consumers, reason, and whether tonight's run moves it."""
    as_of = run_as_of(context, config.as_of)
    with hot.connection() as con:
        plan = plan_expiry(con, as_of)
        con.execute(
            """CREATE OR REPLACE TABLE expiry_eligibility (item_id VARCHAR, item_type VARCHAR,
               state VARCHAR, expires_at TIMESTAMPTZ, exempt_by VARCHAR[], eligible BOOLEAN,
               reason VARCHAR, hot_rows BIGINT, as_of TIMESTAMPTZ)"""
        )
        insert_rows(
            con,
            "INSERT INTO expiry_eligibility VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.item_id, d.item_type, d.state, d.expires_at, list(d.exempt_by), d.eligible, d.reason,
              plan.hot_rows.get(d.item_id, 0), as_of) for d in plan.decisions],
        )  # fmt: skip

    eligible = plan.eligible

    def within(days: int) -> int:
        return len(eligible) + len(expiring_within(plan.decisions, as_of, days))

    largest = sorted(eligible, key=lambda d: -plan.hot_rows.get(d.item_id, 0))[:5]
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "items": len(plan.decisions),
            "expire_tonight": len(eligible),
            "rows_expiring_tonight": sum(plan.hot_rows.get(d.item_id, 0) for d in eligible),
            "expire_within_7_days": within(7),
            "expire_within_30_days": within(30),
            "expire_within_90_days": within(90),
            "exempt_items": sum(1 for d in plan.decisions if d.exempt_by and d.state == "hot"),
            "expired_items": sum(1 for d in plan.decisions if d.state == "expired"),
            "largest_tonight": ", ".join(
                f"{d.item_id} ({plan.hot_rows.get(d.item_id, 0)} rows)" for d in largest
            )
            or "none",
            "next_to_expire": dg.MetadataValue.md(_eligibility_markdown(plan)),
        }
    )


@dg.multi_asset(specs=ARCHIVE_SPECS, name="interaction_archive", pool=HOT_POOL)
def interaction_archive(
    context: dg.AssetExecutionContext,
    config: ExpiryConfig,
    hot: HotStoreResource,
    archive: ArchiveResource,
) -> Iterator[dg.MaterializeResult]:
    """The nightly expiry: move eligible items' rows to the Delta archive, verify, delete from hot."""
    as_of = run_as_of(context, config.as_of)

    def progress(done: int, total: int) -> None:
        context.log.info(f"expiry: {done}/{total} chunks done")

    with hot.connection() as con:
        result = run_expiry(
            con,
            archive.archive(),
            as_of,
            context.run.run_id,
            dry_run=config.dry_run,
            progress=progress,
        )
    summary = {
        "as_of": as_of.isoformat(),
        "dry_run": config.dry_run,
        "expired": result.expired,
        "rows_archived": result.rows_archived,
        "rolled_back": result.rolled_back,
        "late_rows_archived": result.late_rows_archived,
    }
    if not config.dry_run:
        summary["rows_written"] = result.rows_written
    verb = "would expire" if config.dry_run else "expired"
    context.log.info(f"{verb} {len(result.expired)} items, {result.rows_archived} rows")
    for item_type, moved in result.by_type.items():
        key = dg.AssetKey(["archive", f"{item_type}_interactions"])
        metadata: dict[str, Any] = {
            "items_expired": moved.items_expired,
            "rows_archived": moved.rows_archived,
            "rows_deleted_from_hot": moved.rows_deleted,
            "late_rows_archived": moved.late_rows_archived,
            "rows_still_hot": moved.rows_still_hot,
            "result": dg.MetadataValue.json(summary),
        }
        if config.dry_run:
            # Nothing moved: an observation shows what would, without a materialization
            # that would plot a night that never happened.
            context.log_event(dg.AssetObservation(asset_key=key, metadata=metadata))
            continue
        yield dg.MaterializeResult(
            asset_key=key, metadata={**metadata, "rows_written": moved.rows_written}
        )


class ExpiringSoonConfig(AsOfConfig):
    days: int = Field(
        default=7, description="Horizon of the notice, in days (IX_EXPIRING_SOON_DAYS)."
    )
    send_mail: bool = Field(default=True, description="Mail the list to the team (IX_MAIL_TO).")


@dg.asset(
    group_name="lifecycle", kinds={"python", "email"}, deps=["expiry_eligibility"], pool=HOT_POOL
)
def expiring_soon(
    context: dg.AssetExecutionContext,
    config: ExpiringSoonConfig,
    hot: HotStoreResource,
    mail: MailResource,
) -> dg.MaterializeResult:
    """Items whose data will expire within the horizon, so nobody is surprised: a list and a mail."""
    as_of = run_as_of(context, config.as_of)
    with hot.connection(read_only=True) as con:
        plan = plan_expiry(con, as_of)
    soon = expiring_within(plan.decisions, as_of, config.days)
    where = (
        mail.send(messages.expiring_soon(mail.default_to, soon, as_of, config.days))
        if config.send_mail
        else "not sent"
    )
    table = "\n".join(
        ["| item | type | expires at | hot rows |", "|---|---|---|---|"]
        + [
            f"| {d.item_id} | {d.item_type} | {d.expires_at:%Y-%m-%d %H:%M} | {plan.hot_rows.get(d.item_id, 0)} |"
            for d in soon
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "days": config.days,
            "items_expiring_soon": len(soon),
            "items": dg.MetadataValue.md(table),
            "item_ids": dg.MetadataValue.json([d.item_id for d in soon]),
            "notified": where,
        }
    )
