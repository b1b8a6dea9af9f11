"""Asset checks guarding the data; blocking where a failure means data is at risk."""

from datetime import UTC, datetime

import dagster as dg

from ix_pipeline.lifecycle.expiry import plan_expiry
from ix_pipeline.lifecycle.needs import restores_needed
from ix_pipeline.orchestration.resources import ArchiveResource, HotStoreResource
from ix_pipeline.orchestration.sensors import CatalogSensorConfig
from ix_pipeline.store import invariants
from ix_pipeline.store.lifecycle_io import dead_references, load_item_facts

ARCHIVE_KEY = dg.AssetKey(["archive", "campaign_interactions"])


@dg.asset_check(asset=ARCHIVE_KEY, blocking=True, pool="hot_db",
                description="Every ingested interaction id is in the hot store or the archive.")  # fmt: skip
def no_event_lost(hot: HotStoreResource, archive: ArchiveResource) -> dg.AssetCheckResult:
    with hot.connection(read_only=True) as con:
        lost = invariants.lost_events(con, archive.archive())
    return dg.AssetCheckResult(
        passed=sum(lost.values()) == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={f"lost_{k}_events": v for k, v in lost.items()},
    )


@dg.asset_check(asset=ARCHIVE_KEY, blocking=True, pool="hot_db",
                description="No interaction id is stored twice, in the archive or in the hot store.")  # fmt: skip
def no_duplicate_ids(hot: HotStoreResource, archive: ArchiveResource) -> dg.AssetCheckResult:
    with hot.connection(read_only=True) as con:
        dups = invariants.duplicate_ids(con, archive.archive())
    return dg.AssetCheckResult(
        passed=sum(dups.values()) == 0, metadata={k.replace(".", "_"): v for k, v in dups.items()}
    )


@dg.asset_check(asset="expiry_eligibility", pool="hot_db",
                description="No row of an expired item is visible to features; no item is stuck mid-operation.")  # fmt: skip
def expired_items_invisible(hot: HotStoreResource) -> dg.AssetCheckResult:
    with hot.connection(read_only=True) as con:
        visible = invariants.visible_rows_of_hidden_items(con)
        stuck = invariants.items_in_flight(con)
    # Visible rows of a hidden item are an error; an item left mid-operation by a crash is a
    # warning: its rows are safe, but invisible until the operation runs again.
    return dg.AssetCheckResult(
        passed=visible == 0 and not stuck,
        severity=dg.AssetCheckSeverity.ERROR if visible else dg.AssetCheckSeverity.WARN,
        metadata={
            "visible_rows_of_expired_items": visible,
            "items_mid_operation": len(stuck),
            "mid_operation": ", ".join(f"{i} ({s})" for i, s in stuck[:20]) or "none",
        },
    )


@dg.asset_check(asset="filter_references", blocking=True, pool="hot_db",
                description="No active consumer references expired data by ID (it would retarget nobody).")  # fmt: skip
def active_consumers_have_their_data(
    hot: HotStoreResource, catalog_policy: CatalogSensorConfig
) -> dg.AssetCheckResult:
    with hot.connection(read_only=True) as con:
        needs = restores_needed(plan_expiry(con, datetime.now(UTC)).decisions, load_item_facts(con))
    # A restore that stopped halfway with no consumer waiting on it is not this check's
    # business (it holds no launch back); the sensor resumes it when automatic restore is on.
    needs = [n for n in needs if n.consumers or n.reactivated]
    listing = [n.reason for n in needs]
    # With automatic restore on, the catalog sensor is already bringing the data back.
    return dg.AssetCheckResult(
        passed=not needs or catalog_policy.auto_restore,
        description=("can't resume: uses filters with expired data: " + "; ".join(listing)) if needs else None,
        metadata={"expired_items_needed": len(needs), "auto_restore": catalog_policy.auto_restore,
                  "needed": dg.MetadataValue.json(listing[:100])},
    )  # fmt: skip


@dg.asset_check(asset="audience_consumers", blocking=True, pool="hot_db",
                description="No filter references an unknown item or one deleted under the pre-2024 policy.")  # fmt: skip
def no_dead_references(hot: HotStoreResource) -> dg.AssetCheckResult:
    with hot.connection(read_only=True) as con:
        dead = dead_references(con)
    listing = [f"{d.consumer_id}, filter {d.filter}: {d.error}" for d in dead]
    return dg.AssetCheckResult(
        passed=not dead,
        description="; ".join(listing[:20]) or None,
        metadata={"dead_references": len(dead), "references": dg.MetadataValue.json(listing[:100])},
    )


CHECKS = [
    no_event_lost,
    no_duplicate_ids,
    expired_items_invisible,
    active_consumers_have_their_data,
    no_dead_references,
]
