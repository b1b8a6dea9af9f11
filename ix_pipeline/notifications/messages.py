"""What the notification mails say. Plain text a data engineer reads on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ix_pipeline.lifecycle.policy import Decision
from ix_pipeline.lifecycle.restore import RestoreRequest, RestoreResult, bounded_list
from ix_pipeline.notifications.mail import Mail
from ix_pipeline.store.lifecycle_io import DeadReference


def _asked(request: RestoreRequest) -> str:
    parts = []
    if request.campaign_ids:
        parts.append("campaigns " + bounded_list(request.campaign_ids))
    if request.canvas_ids:
        parts.append("Canvases " + bounded_list(request.canvas_ids))
    if request.tags:
        parts.append("tags " + bounded_list([repr(t) for t in request.tags]))
    return "; ".join(parts) or "nothing"


def restore_succeeded(to: str, request: RestoreRequest, result: RestoreResult, run_id: str) -> Mail:
    lines = [
        "Your restore of messaging interaction data is done.",
        "",
        f"Requested: {_asked(request)}",
        f"Run: {run_id}",
        f"Duration: {result.seconds:.1f} s",
        "",
    ]
    if result.restored:
        lines.append(f"Restored ({len(result.restored)} items, {result.rows_restored} rows):")
        lines += [f"  {i}: {result.rows_per_item.get(i, 0)} rows" for i in result.restored]
    else:
        lines.append("Nothing needed restoring.")
    if result.already_hot:
        lines += ["", "Already available (not expired): " + ", ".join(result.already_hot)]
    if result.notes:
        lines += ["", *result.notes]
    lines += ["", "The data is visible again to retargeting filters, profiles and exports.",
              "It expires again three months after this restore unless an active campaign,",
              "Canvas, segment or content card references it by ID."]  # fmt: skip
    n = len(result.restored)
    return Mail(
        to,
        f"[ix_pipeline] restore done: {n} item{'s' if n != 1 else ''} available again",
        "\n".join(lines),
    )


def restore_failed(
    to: str, request: RestoreRequest, error: str, run_id: str, seconds: float
) -> Mail:
    body = "\n".join([
        "Your restore of messaging interaction data failed.",
        "",
        f"Requested: {_asked(request)}",
        f"Run: {run_id}",
        f"Duration: {seconds:.1f} s",
        "",
        f"What went wrong: {error}",
        "",
        "No data was lost: the archive keeps every row. Fix the request and launch it again;",
        "items already restored stay restored, the rest resume where they stopped.",
    ])  # fmt: skip
    return Mail(to, "[ix_pipeline] restore FAILED", body)


def restore_interrupted(
    to: str, request: RestoreRequest, run_id: str, cause: str | None = None
) -> Mail:
    """For a restore run whose process died: nobody saw how far it got, so the notice says
    what is certain and where to look, never "failed" for items that may be back."""
    body = "\n".join([
        "The process running your restore of messaging interaction data stopped before the",
        "run ended (it was killed or crashed).",
        "",
        f"Requested: {_asked(request)}",
        f"Run: {run_id}",
        *([f"What Dagster recorded: {cause}"] if cause else []),
        "",
        "Items it had finished are available again. Any it left halfway stay invisible until",
        "a restore runs again: the catalog sensor resumes them, or launch the same restore.",
        "`ix status ID` shows where each item is. No data was lost: the archive keeps every row.",
    ])  # fmt: skip
    return Mail(to, "[ix_pipeline] restore interrupted", body)


def expiring_soon(to: str, decisions: Sequence[Decision], as_of: datetime, days: int) -> Mail:
    lines = [
        f"Items whose interaction data expires in the next {days} days (as of {as_of:%Y-%m-%d %H:%M} UTC):",
        "",
    ]
    lines += [
        f"  {d.expires_at:%Y-%m-%d %H:%M}  {d.item_type:8}  {d.item_id}"
        for d in decisions
        if d.expires_at
    ]
    if not decisions:
        lines.append("  none")
    lines += ["", "To keep one hot, reference it by ID from an active campaign, Canvas, segment or",
              "content card; expired data can always be restored later."]  # fmt: skip
    return Mail(
        to, f"[ix_pipeline] {len(decisions)} items expire within {days} days", "\n".join(lines)
    )


def dead_references(to: str, dead: Sequence[DeadReference]) -> Mail:
    lines = ["These audience filters reference items whose data can never be read. They are",
             "errors, not empty audiences: fix the filters.", ""]  # fmt: skip
    lines += [
        f"  {d.consumer_id}{'' if d.consumer_active else ' (inactive)'}, filter {d.filter}: {d.error}"
        for d in dead
    ]
    return Mail(
        to, f"[ix_pipeline] {len(dead)} filter references can never be evaluated", "\n".join(lines)
    )
