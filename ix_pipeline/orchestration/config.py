"""Run config shown in the launchpad: typed, described, with defaults that validate."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field


def parse_as_of(value: str | None) -> datetime:
    """An ISO-8601 instant (UTC when no zone is given), or now."""
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError(
            f"as_of {value!r} is not an ISO-8601 date or timestamp (e.g. 2025-05-01T02:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class IngestConfig(dg.Config):
    paths: list[str] = Field(
        default=[],
        description="Files or folders to ingest (catalog .json; Currents .avro/.jsonl/.parquet). "
        "Empty: the landing folder.",
    )


class AsOfConfig(dg.Config):
    as_of: str = Field(
        default="",
        description="The instant the policy decides at, ISO-8601 (e.g. 2025-05-01T02:00:00Z). "
        "Empty: now. The nightly schedule sets it to the tick time.",
    )


class ExpiryConfig(AsOfConfig):
    dry_run: bool = Field(
        default=False, description="List what would expire and why; change nothing."
    )


class RestoreConfig(dg.Config):
    campaign_ids: list[str] = Field(
        default=[],
        description="Campaign API ids to restore, e.g. [cmp_000123]; `ix status` lists every item "
        "and its state. An unknown id refuses the whole request; an id that is already hot is "
        "reported, not copied again.",
    )
    canvas_ids: list[str] = Field(
        default=[],
        description="Canvas API ids to restore, e.g. [cnv_000045]. Same rules as campaign_ids.",
    )
    tags: list[str] = Field(
        default=[],
        description="Restore every expired campaign and Canvas carrying one of these tags "
        '(exact match), e.g. ["black friday"]. Combined with the ids as a union; give at least '
        "one campaign id, Canvas id or tag.",
    )
    requested_by: str = Field(
        default="",
        description="E-mail address that gets the completion notice. Empty: the team default "
        "(IX_MAIL_TO).",
    )
    as_of: str = Field(
        default="",
        description="Restore time recorded as the new inactivity anchor, ISO-8601. Empty: now. "
        "For back-fills and tests.",
    )
