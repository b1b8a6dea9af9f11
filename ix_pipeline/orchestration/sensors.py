"""Sensors: new files in the landing folder start an ingest run."""

import dagster as dg

from ix_pipeline.ingest.catalog import discover_catalog
from ix_pipeline.ingest.currents import discover
from ix_pipeline.orchestration.jobs import ingest_job
from ix_pipeline.orchestration.resources import LandingResource


@dg.sensor(
    job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def landing_files_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    """Watches `<data>/landing/` without opening the hot store (a run may be writing to it):
    the cursor is the newest modification time and the file count seen so far."""
    roots = [landing.catalog, landing.currents]
    files = [p for p in discover_catalog([landing.catalog])] + [
        p for p in discover([landing.currents])
    ]
    if not files:
        return dg.SkipReason(f"no files under {', '.join(str(r) for r in roots)}")
    newest = max(p.stat().st_mtime_ns for p in files)
    cursor = f"{newest}:{len(files)}"
    if cursor == context.cursor:
        return dg.SkipReason("no new files in the landing folder")
    context.update_cursor(cursor)
    return dg.RunRequest(run_key=f"landing-{cursor}", tags={"ix/trigger": "landing_files_sensor"})
