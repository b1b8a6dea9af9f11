"""Expiry eligibility: which items tonight's run may move to the archive, and why.

Pure functions over plain dataclasses (DOMAIN.md rules 1-5, 7 and 9). Nothing here touches
Dagster, the hot store or the archive, so the nightly job, the ``ix status`` command, the
dry run and the sensors all explain an item with the same words.

All datetimes are timezone-aware; they are compared in UTC. A naive ``as_of`` is refused
because guessing its zone could expire an item hours early.

References passed to :func:`decide` and :func:`decide_all` must be **ID references only**
(the item itself, one of its variants, one of its Canvas steps or variations), already
resolved to the item they point at. Tag filters never exempt anything (rule 4), so the caller
drops them before they get here; this module trusts that and does not look at ``filter``.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "LEGACY_POLICY_END",
    "NIGHTLY_RUN_HOUR_UTC",
    "RETENTION_MONTHS",
    "Decision",
    "IdReference",
    "ItemFacts",
    "ItemState",
    "ItemType",
    "add_calendar_months",
    "decide",
    "decide_all",
    "expiring_within",
    "inactivity_anchor",
    "next_nightly_run",
]

LEGACY_POLICY_END = datetime(2024, 1, 1, tzinfo=UTC)
RETENTION_MONTHS = 3
NIGHTLY_RUN_HOUR_UTC = 2

ItemState = Literal["hot", "expiring", "expired", "restoring", "legacy_deleted"]
ItemType = Literal["campaign", "canvas"]

# Only these states hold hot data that an expiry may (still) move.
_EXPIRABLE_STATES: frozenset[str] = frozenset({"hot", "expiring"})
# Catalog statuses whose clock runs (rule 2); "archived" is a stopped item filed away.
_INACTIVE_STATUSES: frozenset[str] = frozenset({"stopped", "archived"})

_ROLLBACK = "the interrupted expiry will be rolled back to hot"


@dataclass(frozen=True)
class ItemFacts:
    item_id: str
    item_type: ItemType
    name: str
    status: str  # catalog status: draft | active | stopped | archived
    stopped_at: datetime | None
    last_sent: datetime | None
    legacy_deleted: bool  # interaction_data_deleted_at set in the catalog (pre-2024 policy)
    state: ItemState  # current lifecycle state in the hot store
    last_restored_at: datetime | None
    expired_at: datetime | None  # when it last became expired (for the reason text)


@dataclass(frozen=True)
class IdReference:
    """An ID reference from a consumer's filter, already resolved to the item it names."""

    consumer_id: str
    consumer_type: str  # campaign | canvas | segment | content_card
    consumer_active: bool
    item_id: str
    via: str  # "item" | "variant" | "step" | "canvas_variation": what the filter named
    filter: str


@dataclass(frozen=True)
class Decision:
    item_id: str
    item_type: str
    state: ItemState
    expires_at: datetime | None
    # Active consumers referencing the item by ID, sorted. Filled whatever the state, so that
    # status and the sensors can say who needs an expired or legacy-deleted item's data.
    exempt_by: tuple[str, ...]
    eligible: bool  # should the run at as_of expire it
    reason: str  # one human sentence


# --------------------------------------------------------------------------- time helpers


def _require_aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {ts.isoformat()}")
    return ts.astimezone(UTC)


def _iso(ts: datetime) -> str:
    # Seconds precision with a "Z": what operators read and paste into --as-of.
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(ts: datetime) -> str:
    return ts.astimezone(UTC).date().isoformat()


def add_calendar_months(ts: datetime, months: int) -> datetime:
    """``ts`` plus ``months`` calendar months, same time of day, clamped to the month's end.

    2025-01-31T10:00Z + 3 → 2025-04-30T10:00Z; 2023-11-30 + 3 → 2024-02-29. The months are
    counted in UTC: the same instant written as +02:00 must not fall on another day.
    """
    ts = _require_aware(ts, "ts")
    month_index = ts.year * 12 + (ts.month - 1) + months
    year, month0 = divmod(month_index, 12)
    month = month0 + 1
    day = min(ts.day, calendar.monthrange(year, month)[1])
    return ts.replace(year=year, month=month, day=day)


def next_nightly_run(as_of: datetime) -> datetime:
    """The first nightly run (02:00 UTC) strictly after ``as_of``.

    Strictly after, because the run at exactly ``as_of`` is the one deciding right now: an
    exempt item's date must point at a run that has not happened yet.
    """
    as_of = _require_aware(as_of, "as_of")
    run = as_of.replace(hour=NIGHTLY_RUN_HOUR_UTC, minute=0, second=0, microsecond=0)
    if run <= as_of:
        run += timedelta(days=1)
    return run


def inactivity_anchor(item: ItemFacts) -> datetime | None:
    """When the item's three-month clock started (rules 2 and 7).

    The later of the stop and the last restore. Old catalog rows for stopped or archived
    items sometimes lack ``stopped_at``; the last send is then the best lower bound for when
    the item stopped, so it stands in for it.
    """
    start = _stop_time(item)
    candidates = [ts for ts in (start, item.last_restored_at) if ts is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda ts: ts.astimezone(UTC))


def _stop_time(item: ItemFacts) -> datetime | None:
    if item.stopped_at is not None:
        return item.stopped_at
    if item.status in _INACTIVE_STATUSES:
        return item.last_sent
    return None


def _anchor_phrase(item: ItemFacts, anchor: datetime) -> str:
    # Name what actually started the clock, so "why not yet?" answers itself.
    if item.last_restored_at is not None and anchor == item.last_restored_at:
        phrase = f"restored {_day(anchor)}"
    elif item.stopped_at is not None:
        phrase = f"stopped {_day(anchor)}"
    else:
        phrase = f"last sent {_day(anchor)} (no stop date in the catalog)"
    return f"archived, {phrase}" if item.status == "archived" else phrase


# --------------------------------------------------------------------------------- decide


def _active_referrers(item_id: str, references: Iterable[IdReference]) -> tuple[str, ...]:
    # Inactive consumers retarget nobody, so they exempt nothing (rule 3).
    return tuple(
        sorted({r.consumer_id for r in references if r.consumer_active and r.item_id == item_id})
    )


def decide(item: ItemFacts, references: Iterable[IdReference], as_of: datetime) -> Decision:
    """Decide whether the nightly run at ``as_of`` should expire ``item``.

    ``references`` are ID references (see the module docstring); ones naming other items are
    ignored, so passing every reference is correct, merely slower than :func:`decide_all`.
    """
    as_of = _require_aware(as_of, "as_of")
    return _decide(item, _active_referrers(item.item_id, references), as_of)


def decide_all(
    items: Iterable[ItemFacts], references: Iterable[IdReference], as_of: datetime
) -> list[Decision]:
    """:func:`decide` for many items, in input order, grouping references once by item."""
    as_of = _require_aware(as_of, "as_of")
    referrers: dict[str, set[str]] = defaultdict(set)
    for ref in references:
        if ref.consumer_active:
            referrers[ref.item_id].add(ref.consumer_id)
    return [_decide(item, tuple(sorted(referrers.get(item.item_id, ()))), as_of) for item in items]


def _decide(item: ItemFacts, exempt_by: tuple[str, ...], as_of: datetime) -> Decision:
    def out(
        reason: str,
        *,
        state: ItemState | None = None,
        expires_at: datetime | None = None,
        eligible: bool = False,
    ) -> Decision:
        return Decision(
            item_id=item.item_id,
            item_type=item.item_type,
            state=item.state if state is None else state,
            expires_at=expires_at,
            exempt_by=exempt_by,
            eligible=eligible,
            reason=reason,
        )

    def not_eligible(reason: str, expires_at: datetime | None = None) -> Decision:
        # A crash left the item half-expired; if the run may not finish it, say it goes back.
        if item.state == "expiring":
            reason = f"{reason}; {_ROLLBACK}"
        return out(reason, expires_at=expires_at)

    referrers = ", ".join(exempt_by)

    # Rule 9: terminal. Checked first because the flag may be set while the hot store still
    # says "hot" (the catalog is the authority on legacy deletion).
    if item.legacy_deleted or item.state == "legacy_deleted":
        reason = "deleted under the pre-2024 policy (25 months without sends); cannot be restored"
        if exempt_by:
            reason += f"; filters from active {referrers} referencing it are invalid"
        return out(reason, state="legacy_deleted")

    # Rule 8: one operation per item at a time.
    if item.state == "restoring":
        return out("restore in progress; no expiry until it finishes")

    if item.state == "expired":
        when = f"expired on {_day(item.expired_at)}" if item.expired_at else "expired"
        if exempt_by:
            # Rule 10: an active consumer would retarget nobody.
            reason = f"{when}; needed by active {referrers} (referenced by ID): restore it"
        elif item.status == "active":
            # Rule 1: a relaunched item's data must be hot again.
            reason = f"{when}, but the item is active again: restore it"
        else:
            reason = f"{when}; restore to make it visible again"
        return out(reason)

    if item.state not in _EXPIRABLE_STATES:
        # A state this module does not know: never move data on a guess.
        return out(f"unknown lifecycle state {item.state!r}: not expiring it")

    if item.status == "active":
        return not_eligible("active: interaction data stays hot")
    if item.status == "draft":
        return not_eligible("draft: never launched, no interaction data to expire")
    if item.status not in _INACTIVE_STATUSES:
        # Unknown status: refuse to move data on a guess, but don't fail the whole night.
        return not_eligible(f"unknown catalog status {item.status!r}: not expiring it")

    anchor = inactivity_anchor(item)
    if anchor is None:
        return not_eligible("no stop date in the catalog")
    since = _anchor_phrase(item, anchor)
    three_months = add_calendar_months(anchor, RETENTION_MONTHS)

    if exempt_by:
        # Rule 3: the date keeps rolling forward to the next run while referenced.
        next_run = next_nightly_run(as_of)
        return not_eligible(
            f"exempt: referenced by ID from active {referrers}; "
            f"expiry rolls forward to the next run {_iso(next_run)}",
            next_run,
        )

    if as_of < LEGACY_POLICY_END:
        # Rule 9: the date is the first instant the item can expire, never one in the past.
        return not_eligible(
            f"as of {_day(as_of)} the pre-2024 policy applies: nothing expires before "
            f"{_day(LEGACY_POLICY_END)} ({since}, three months pass on {_iso(three_months)})",
            max(three_months, LEGACY_POLICY_END),
        )

    if as_of < three_months:
        return not_eligible(
            f"{since}, expires {_iso(three_months)} unless referenced", three_months
        )

    reason = f"{since}, three months passed on {_iso(three_months)}"
    if item.state == "expiring":
        reason += "; resuming the interrupted expiry"
    return out(reason, expires_at=three_months, eligible=True)


# ----------------------------------------------------------------------------- reporting


def expiring_within(decisions: Iterable[Decision], as_of: datetime, days: int) -> list[Decision]:
    """Hot, unreferenced items that are not due yet but will be within ``days`` of ``as_of``.

    For the "expiring soon" notice: sorted by expiry date, then item id for a stable list.
    """
    as_of = _require_aware(as_of, "as_of")
    horizon = as_of + timedelta(days=days)
    soon = [
        d
        for d in decisions
        if d.state == "hot"
        and not d.eligible
        and not d.exempt_by
        and d.expires_at is not None
        and d.expires_at <= horizon
    ]
    return sorted(soon, key=lambda d: (d.expires_at, d.item_id))
