"""Jobs and the nightly schedule."""

import dagster as dg

from ix_pipeline.orchestration.assets import (
    expiring_soon,
    expiry_eligibility,
    ingest_catalog_documents,
    ingest_currents_files,
    interaction_archive,
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(ingest_catalog_documents, ingest_currents_files),
    description="Load catalog documents and Currents files from the landing folder (or given paths).",
)

nightly_expiry_job = dg.define_asset_job(
    "nightly_expiry",
    selection=dg.AssetSelection.assets(expiry_eligibility, interaction_archive),
    description="Decide expiry eligibility as of the tick time, then move eligible items to the archive.",
)


def expiry_run_config(as_of: str, dry_run: bool = False) -> dict:
    op_config = {"config": {"as_of": as_of, "dry_run": dry_run}}
    return {"ops": {"expiry_eligibility": op_config, "interaction_archive": op_config}}


@dg.schedule(cron_schedule="0 2 * * *", job=nightly_expiry_job, execution_timezone="UTC")
def nightly_expiry_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """02:00 UTC every night; the as-of is the tick time, so back-fills are deterministic."""
    tick = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(
        run_key=f"nightly-{tick}", run_config=expiry_run_config(tick), tags={"ix/as_of": tick}
    )


def ingest_run_config(paths: list[str]) -> dict:
    op_config = {"config": {"paths": paths}}
    return {"ops": {"ingest_catalog_documents": op_config, "ingest_currents_files": op_config}}


expiring_soon_job = dg.define_asset_job(
    "expiring_soon_notice",
    selection=dg.AssetSelection.assets(expiring_soon),
    description="List (and mail) the items whose interaction data expires within the next days.",
)


def expiring_soon_schedule(days: int) -> dg.ScheduleDefinition:
    """Daily at 08:00 UTC, with the horizon from settings."""

    @dg.schedule(
        cron_schedule="0 8 * * *",
        job=expiring_soon_job,
        execution_timezone="UTC",
        name="expiring_soon_schedule",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(
            run_key=f"expiring-soon-{tick}",
            run_config={"ops": {"expiring_soon": {"config": {"as_of": tick, "days": days}}}},
        )

    return _schedule


catalog_refresh_job = dg.define_asset_job(
    "catalog_refresh",
    selection=dg.AssetSelection.assets(ingest_catalog_documents, expiry_eligibility),
    description="Load changed catalog documents, then recompute filter references and expiry eligibility.",
)
