"""Sensors: new Currents files start an ingest; catalog changes refresh references and
eligibility, restore expired data that an active consumer needs, and report dead references;
a restore run that failed without its notice gets one.

Both are cursor-based and idempotent (run keys), and never fail a tick because a run holds
the hot store: they skip it with a message and look again at the next tick.
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ix_pipeline.ingest.catalog import discover_catalog
from ix_pipeline.ingest.currents import discover
from ix_pipeline.lifecycle.expiry import plan_expiry
from ix_pipeline.lifecycle.needs import restores_needed
from ix_pipeline.notifications import messages
from ix_pipeline.notifications.mail import MailError
from ix_pipeline.orchestration.console import innermost_error
from ix_pipeline.orchestration.instance import reaper_lock
from ix_pipeline.orchestration.jobs import catalog_refresh_job, ingest_job
from ix_pipeline.orchestration.resources import HotStoreResource, LandingResource, MailResource
from ix_pipeline.orchestration.restore_job import (
    notify_interrupted_restore,
    restore_interaction_data,
)
from ix_pipeline.store.events import pending_files
from ix_pipeline.store.hot import HotStoreBusy
from ix_pipeline.store.lifecycle_io import dead_references, load_item_facts


def _fingerprint(files: list[Path]) -> str:
    stats = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _new_files(hot: HotStoreResource, files: list[Path]) -> list[Path]:
    """Files the hot store has not ingested; raises HotStoreBusy rather than waiting."""
    with hot.connection(read_only=True, wait_seconds=0) as con:
        return pending_files(con, files)


@dg.sensor(
    job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource, hot: HotStoreResource
) -> dg.RunRequest | dg.SkipReason:
    """Watches `<data>/landing/currents/` for Currents files not ingested yet."""
    files = list(discover([landing.currents]))
    if not files:
        return dg.SkipReason(f"no Currents files under {landing.currents}")
    try:
        new = _new_files(hot, files)
    except HotStoreBusy:
        return dg.SkipReason("the hot store is busy with a run; looking again at the next tick")
    if not new:
        return dg.SkipReason("no new Currents files")
    key = _fingerprint(new)
    context.update_cursor(key)
    return dg.RunRequest(
        run_key=f"landing-{key}",
        tags={"ix/trigger": "landing_files_sensor", "ix/new_files": str(len(new))},
    )


class CatalogSensorConfig(dg.ConfigurableResource):
    """Sensor behaviour from settings: IX_AUTO_RESTORE turns automatic restores off."""

    auto_restore: bool = True


@dg.sensor(
    jobs=[catalog_refresh_job, restore_interaction_data],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def catalog_sensor(
    context: dg.SensorEvaluationContext,
    landing: LandingResource,
    hot: HotStoreResource,
    mail: MailResource,
    catalog_policy: CatalogSensorConfig,
) -> list[dg.RunRequest] | dg.SkipReason:
    """Catalog changes → refresh; expired data an active consumer needs → restore; dead
    references → a notice (and the blocking checks on `audience_consumers` fail)."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests: list[dg.RunRequest] = []
    try:
        new = _new_files(hot, list(discover_catalog([landing.catalog])))
        with hot.connection(read_only=True, wait_seconds=0) as con:
            facts = load_item_facts(con)
            needs = restores_needed(plan_expiry(con, datetime.now(UTC)).decisions, facts)
            dead = dead_references(con)
    except HotStoreBusy:
        return dg.SkipReason("the hot store is busy with a run; looking again at the next tick")
    if new:
        key = _fingerprint(new)
        requests.append(dg.RunRequest(run_key=f"catalog-{key}", job_name=catalog_refresh_job.name,
                                      tags={"ix/trigger": "catalog_sensor"}))  # fmt: skip
    if needs and catalog_policy.auto_restore:
        expired_at = {f.item_id: str(f.expired_at) for f in facts}
        # Keyed by item, expiry time and whether a restore already stopped halfway: a need seen
        # again while its restore is pending maps to the same key; the same item expiring again
        # later is a new need, and so is its restore dying (resumed once, not in a loop).
        key = hashlib.sha256(
            json.dumps([(n.item_id, expired_at[n.item_id], n.interrupted) for n in needs]).encode()
        ).hexdigest()[:16]
        if key != cursor.get("restore"):
            config = {
                "campaign_ids": [n.item_id for n in needs if n.item_type == "campaign"],
                "canvas_ids": [n.item_id for n in needs if n.item_type == "canvas"],
            }
            reason = "; ".join(n.reason for n in needs)
            requests.append(dg.RunRequest(
                run_key=f"auto-restore-{key}", job_name=restore_interaction_data.name,
                run_config={"ops": {"restore_items": {"config": config}}},
                tags={"ix/trigger": "catalog_sensor", "ix/reason": reason[:1000]},
            ))  # fmt: skip
            cursor["restore"] = key
    dead_key = hashlib.sha256(
        json.dumps([(d.consumer_id, d.item_id) for d in dead]).encode()
    ).hexdigest()[:16]
    if dead and dead_key != cursor.get("dead"):
        try:
            mail.send(messages.dead_references(mail.default_to, dead))
            context.log.warning(
                f"{len(dead)} filter references can never be evaluated; notice sent"
            )
            cursor["dead"] = dead_key
        except MailError as exc:
            # A mail server that is down must not hold back the restores requested above;
            # the cursor keeps the old key, so the notice goes out at a later tick.
            context.log.error(
                f"{len(dead)} filter references can never be evaluated; the notice could not be sent: {exc}"
            )
    else:
        cursor["dead"] = dead_key
    context.update_cursor(json.dumps(cursor))
    if requests:
        return requests
    if needs and not catalog_policy.auto_restore:
        return dg.SkipReason(
            f"automatic restore is off; {len(needs)} expired items are needed (see the asset checks)"
        )
    return dg.SkipReason("catalog unchanged; no expired data needed by an active consumer")


@dg.run_failure_sensor(
    monitored_jobs=[restore_interaction_data],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def restore_notice_sensor(context: dg.RunFailureSensorContext, mail: MailResource) -> None:
    """A restore run that failed before its op could send the notice (the step's process was
    killed or crashed) still tells the requester, once."""
    failures = [e.step_failure_data.error for e in context.get_step_failure_events()]
    cause = next((innermost_error(e) for e in failures if e is not None), None)
    with reaper_lock(context.instance):
        where = notify_interrupted_restore(context.instance, context.dagster_run, mail, cause)
    if where:
        context.log.info(
            f"restore run {context.dagster_run.run_id} ended without its notice; sent to {where}"
        )
