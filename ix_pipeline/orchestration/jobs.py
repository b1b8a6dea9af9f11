"""Jobs and the nightly schedule."""

import dagster as dg

from ix_pipeline.orchestration.assets import (
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
