"""Asset checks guarding the data; blocking where a failure means data is at risk."""

import dagster as dg

from ix_pipeline.orchestration.resources import ArchiveResource, HotStoreResource
from ix_pipeline.store import invariants

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
    return dg.AssetCheckResult(
        passed=visible == 0,
        metadata={
            "visible_rows_of_expired_items": visible,
            "items_mid_operation": len(stuck),
            "mid_operation": ", ".join(f"{i} ({s})" for i, s in stuck[:20]) or "none",
        },
    )


CHECKS = [no_event_lost, no_duplicate_ids, expired_items_invisible]
