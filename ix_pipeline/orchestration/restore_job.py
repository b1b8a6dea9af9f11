"""`restore_interaction_data`: the job a data engineer launches from the UI or `ix restore`.

The op sends the completion mail itself, on success and on failure, so the mail goes out
however the run was launched and whether or not a Dagster daemon is running. A run whose op
could not (its process died) gets an "interrupted" notice from whoever finds it failed: the
`restore_notice_sensor` in the daemon, or the next `ix` command that reaps it. A tag on the
run records where its notice went, so it is sent once.
"""

import time
from typing import Any

import dagster as dg

from ix_pipeline.lifecycle.restore import (
    RestoreRequest,
    plan_restore,
    run_restore,
)
from ix_pipeline.notifications import messages
from ix_pipeline.notifications.mail import Mail, MailError
from ix_pipeline.orchestration.config import RestoreConfig, parse_as_of
from ix_pipeline.orchestration.resources import ArchiveResource, HotStoreResource, MailResource

HOT_POOL = "hot_db"
NOTICE_TAG = "ix/notice"


@dg.op(
    pool=HOT_POOL,
    description="Bring expired campaigns' and Canvases' interaction data back to the hot store.",
)
def restore_items(
    context: dg.OpExecutionContext,
    config: RestoreConfig,
    hot: HotStoreResource,
    archive: ArchiveResource,
    mail: MailResource,
) -> dict[str, Any]:
    started = time.monotonic()
    request, to = _request_and_recipient(config, mail)

    def notify(message: Mail) -> str:
        # A mail server that is down must neither hide a restore that worked nor replace the
        # reason a restore failed: log it and say so in the run.
        try:
            where = mail.send(message)
        except MailError as exc:
            context.log.error(f"the notice could not be sent: {exc}")
            where = f"not sent ({exc})"
        context.instance.add_run_tags(context.run.run_id, {NOTICE_TAG: where[:200]})
        return where

    try:
        as_of = parse_as_of(config.as_of)
        with hot.connection() as con:
            plan = plan_restore(con, request)
            result = run_restore(con, archive.archive(), plan, as_of, context.run.run_id)
    except Exception as exc:
        error = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        where = notify(
            messages.restore_failed(
                to, request, error, context.run.run_id, time.monotonic() - started
            )
        )
        raise dg.Failure(description=error, metadata={"notified": where}) from exc
    if context.run.tags.get("ix/reason"):
        # Launched by the catalog sensor: say why in the notice.
        result.notes.insert(0, f"Restored automatically: {context.run.tags['ix/reason']}")
    where = notify(messages.restore_succeeded(to, request, result, context.run.run_id))
    context.log.info(
        f"restored {len(result.restored)} items ({result.rows_restored} rows) in {result.seconds:.2f} s; "
        f"notice sent to {where}"
    )
    item_type_of = dict(plan.to_restore)
    for item_type in ("campaign", "canvas"):
        restored = [i for i in result.restored if item_type_of.get(i) == item_type]
        if restored:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=f"{item_type}_interactions",
                    description="rows restored from the archive",
                    metadata={
                        "items_restored": len(restored),
                        "rows_restored": sum(result.rows_per_item.get(i, 0) for i in restored),
                        "restore_seconds": round(result.seconds, 3),
                    },
                )
            )
    return {
        "restored": result.restored,
        "already_hot": result.already_hot,
        "rows_restored": result.rows_restored,
        "rows_per_item": result.rows_per_item,
        "notes": result.notes,
        "seconds": result.seconds,
        "notified": where,
    }


def notify_interrupted_restore(
    instance: dg.DagsterInstance, run: dg.DagsterRun, mail: MailResource, cause: str | None = None
) -> str | None:
    """The notice of a failed restore run whose op sent none (its process died, or it never
    ran): once per run. Returns where it went; None when there was nothing to send."""
    if run.job_name != restore_interaction_data.name:
        return None
    run = instance.get_run_by_id(run.run_id) or run  # the op may have tagged it since
    if NOTICE_TAG in run.tags:
        return None
    run_config: dict[str, Any] = dict(run.run_config)
    config = RestoreConfig(**run_config.get("ops", {}).get("restore_items", {}).get("config", {}))
    request, to = _request_and_recipient(config, mail)
    where = mail.send(messages.restore_interrupted(to, request, run.run_id, cause))
    instance.add_run_tags(run.run_id, {NOTICE_TAG: where[:200]})
    return where


def _request_and_recipient(config: RestoreConfig, mail: MailResource) -> tuple[RestoreRequest, str]:
    """What a restore run was asked for, and who hears of it."""
    request = RestoreRequest(
        # Taken as typed: the catalog's ids may carry spaces, and "cmp_a " is not "cmp_a".
        campaign_ids=tuple(config.campaign_ids),
        canvas_ids=tuple(config.canvas_ids),
        tags=tuple(config.tags),
    )
    return request, config.requested_by.strip() or mail.default_to


@dg.job(
    description="Restore expired interaction data by campaign ids, Canvas ids and/or tags "
    "(a union). Sends an e-mail when done, on success and on failure.",
    tags={"ix/kind": "restore"},
)
def restore_interaction_data() -> None:
    restore_items()
