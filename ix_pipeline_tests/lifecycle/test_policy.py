"""Expiry eligibility policy (DOMAIN.md rules 1-5, 7, 9)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ix_pipeline.lifecycle.policy import (
    LEGACY_POLICY_END,
    Decision,
    IdReference,
    ItemFacts,
    add_calendar_months,
    decide,
    decide_all,
    expiring_within,
    inactivity_anchor,
    next_nightly_run,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


STOP = utc(2025, 1, 31, 10, 0, 0)
DUE = utc(2025, 4, 30, 10, 0, 0)


def item(
    item_id: str = "cmp_000001",
    *,
    item_type: str = "campaign",
    status: str = "stopped",
    stopped_at: datetime | None = STOP,
    last_sent: datetime | None = None,
    legacy_deleted: bool = False,
    state: str = "hot",
    last_restored_at: datetime | None = None,
    expired_at: datetime | None = None,
) -> ItemFacts:
    return ItemFacts(
        item_id=item_id,
        item_type=item_type,  # type: ignore[arg-type]
        name=f"name of {item_id}",
        status=status,
        stopped_at=stopped_at,
        last_sent=last_sent,
        legacy_deleted=legacy_deleted,
        state=state,  # type: ignore[arg-type]
        last_restored_at=last_restored_at,
        expired_at=expired_at,
    )


def ref(
    consumer_id: str = "seg_0007",
    *,
    consumer_type: str = "segment",
    active: bool = True,
    item_id: str = "cmp_000001",
    via: str = "item",
) -> IdReference:
    return IdReference(
        consumer_id=consumer_id,
        consumer_type=consumer_type,
        consumer_active=active,
        item_id=item_id,
        via=via,
        filter="Received Message from Campaign",
    )


# ------------------------------------------------------------------ add_calendar_months


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (utc(2025, 1, 31, 10), utc(2025, 4, 30, 10)),
        (utc(2024, 11, 30, 7, 15, 42), utc(2025, 2, 28, 7, 15, 42)),
        (utc(2023, 11, 30, 23, 59, 59), utc(2024, 2, 29, 23, 59, 59)),  # leap year
        (utc(2025, 8, 31, 0, 0, 1), utc(2025, 11, 30, 0, 0, 1)),
        (utc(2025, 10, 1), utc(2026, 1, 1)),  # crosses the year
        (utc(2025, 3, 15, 12, 30), utc(2025, 6, 15, 12, 30)),
    ],
)
def test_add_three_calendar_months_clamps_and_keeps_time(
    start: datetime, expected: datetime
) -> None:
    assert add_calendar_months(start, 3) == expected


def test_add_calendar_months_keeps_microseconds_and_zone() -> None:
    got = add_calendar_months(utc(2025, 1, 31, 10, 0, 0) + timedelta(microseconds=5), 3)
    assert got == utc(2025, 4, 30, 10) + timedelta(microseconds=5)
    assert got.tzinfo is UTC


def test_add_calendar_months_counts_in_utc_whatever_the_offset() -> None:
    # 2024-11-29T23:00Z is the 30th at +02:00: counted there, it would clamp to Feb 27th 23:00Z.
    same_instant = datetime(2024, 11, 30, 1, tzinfo=timezone(timedelta(hours=2)))
    assert add_calendar_months(same_instant, 3) == utc(2025, 2, 28, 23)
    assert add_calendar_months(same_instant, 3).tzinfo is UTC


def test_add_calendar_months_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_calendar_months(datetime(2025, 1, 31, 10), 3)


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_three_months_is_89_to_92_days_and_keeps_time_of_day(t: datetime) -> None:
    later = add_calendar_months(t, 3)
    assert t + timedelta(days=89) <= later <= t + timedelta(days=92)
    assert later.timetz() == t.timetz()


# --------------------------------------------------------------------- next_nightly_run


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (utc(2025, 5, 1, 1, 59), utc(2025, 5, 1, 2)),
        (utc(2025, 5, 1, 1, 59, 59, 999999), utc(2025, 5, 1, 2)),
        (utc(2025, 5, 1, 2), utc(2025, 5, 2, 2)),
        (utc(2025, 5, 1, 2, 0, 0, 1), utc(2025, 5, 2, 2)),
        (utc(2025, 12, 31, 23, 0), utc(2026, 1, 1, 2)),
        (utc(2025, 5, 1), utc(2025, 5, 1, 2)),
    ],
)
def test_next_nightly_run_is_strictly_after(as_of: datetime, expected: datetime) -> None:
    assert next_nightly_run(as_of) == expected


def test_next_nightly_run_converts_other_zones_to_utc() -> None:
    from datetime import timezone

    # 03:30 at UTC+2 is 01:30 UTC: tonight's run has not happened yet.
    as_of = datetime(2025, 5, 1, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    assert next_nightly_run(as_of) == utc(2025, 5, 1, 2)


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(item(), [], datetime(2025, 5, 1, 2))


# --------------------------------------------------------------------- inactivity_anchor


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (item(), STOP),
        (item(last_restored_at=utc(2025, 6, 1)), utc(2025, 6, 1)),
        (item(stopped_at=utc(2025, 6, 1), last_restored_at=utc(2025, 5, 1)), utc(2025, 6, 1)),
        (item(stopped_at=None, last_sent=utc(2025, 2, 2)), utc(2025, 2, 2)),
        (item(status="archived", stopped_at=None, last_sent=utc(2025, 2, 2)), utc(2025, 2, 2)),
        (item(stopped_at=None, last_sent=None), None),
        # An active item's last send is not a stop.
        (item(status="active", stopped_at=None, last_sent=utc(2025, 2, 2)), None),
    ],
)
def test_inactivity_anchor(facts: ItemFacts, expected: datetime | None) -> None:
    assert inactivity_anchor(facts) == expected


# ------------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("as_of", "eligible"),
    [
        (DUE - timedelta(seconds=1), False),
        (DUE, True),
        (utc(2025, 5, 1, 2), True),  # the nightly run of 2025-05-01 moves it
        (utc(2025, 4, 30, 2), False),  # the run earlier that day is too early
    ],
)
def test_boundary_exactly_three_months(as_of: datetime, eligible: bool) -> None:
    d = decide(item(), [], as_of)
    assert d.eligible is eligible
    assert d.expires_at == DUE
    assert d.exempt_by == ()
    assert d.state == "hot"


def test_reasons_carry_dates() -> None:
    due = decide(item(), [], utc(2025, 5, 1, 2))
    assert due.reason == "stopped 2025-01-31, three months passed on 2025-04-30T10:00:00Z"
    later = decide(item(stopped_at=utc(2026, 10, 1)), [], utc(2026, 11, 1, 2))
    assert later.reason == "stopped 2026-10-01, expires 2027-01-01T00:00:00Z unless referenced"
    assert later.expires_at == utc(2027, 1, 1)


@pytest.mark.parametrize("state", ["hot", "expiring"])
def test_active_item_never_eligible(state: str) -> None:
    d = decide(item(status="active", stopped_at=None, state=state), [], utc(2030, 1, 1, 2))
    assert not d.eligible
    assert d.expires_at is None
    assert d.reason.startswith("active: interaction data stays hot")


def test_active_item_with_an_old_stop_is_still_hot() -> None:
    # Stopped long ago and relaunched: the stale stopped_at must not expire it.
    d = decide(item(status="active", stopped_at=utc(2024, 1, 1)), [], utc(2030, 1, 1, 2))
    assert (d.eligible, d.expires_at) == (False, None)


def test_draft_item_never_eligible() -> None:
    d = decide(item(status="draft", stopped_at=None), [], utc(2030, 1, 1, 2))
    assert (d.eligible, d.expires_at) == (False, None)
    assert "never launched" in d.reason


@pytest.mark.parametrize(("as_of", "eligible"), [(DUE - timedelta(seconds=1), False), (DUE, True)])
def test_archived_item_follows_the_stopped_rule(as_of: datetime, eligible: bool) -> None:
    d = decide(item(status="archived"), [], as_of)
    assert d.eligible is eligible
    assert d.expires_at == DUE
    assert "archived" in d.reason


def test_archived_item_without_stop_date_falls_back_to_last_sent() -> None:
    d = decide(item(status="archived", stopped_at=None, last_sent=STOP), [], DUE)
    assert d.eligible
    assert d.expires_at == DUE
    assert "last sent 2025-01-31" in d.reason


def test_stopped_item_without_any_date_is_not_eligible() -> None:
    d = decide(item(stopped_at=None, last_sent=None), [], utc(2030, 1, 1, 2))
    assert (d.eligible, d.expires_at) == (False, None)
    assert d.reason == "no stop date in the catalog"


@pytest.mark.parametrize("consumer_type", ["campaign", "canvas", "segment", "content_card"])
@pytest.mark.parametrize(
    ("item_type", "via"),
    [
        ("campaign", "item"),
        ("campaign", "variant"),
        ("canvas", "item"),
        ("canvas", "step"),
        ("canvas", "canvas_variation"),
    ],
)
def test_active_id_reference_exempts(consumer_type: str, item_type: str, via: str) -> None:
    as_of = utc(2025, 6, 1, 2)
    facts = item("cnv_000003" if item_type == "canvas" else "cmp_000001", item_type=item_type)
    r = ref("c_9", consumer_type=consumer_type, item_id=facts.item_id, via=via)
    d = decide(facts, [r], as_of)
    assert not d.eligible
    assert d.exempt_by == ("c_9",)
    assert d.expires_at == utc(2025, 6, 2, 2)
    assert d.reason.startswith("exempt: referenced by ID from active c_9")


def test_exempt_by_is_sorted_and_unique() -> None:
    refs = [
        ref("seg_0007"),
        ref("cmp_000012", consumer_type="campaign", via="variant"),
        ref("seg_0007", via="variant"),
        ref("cc_0001", consumer_type="content_card", active=False),
    ]
    d = decide(item(), refs, utc(2025, 6, 1, 2))
    assert d.exempt_by == ("cmp_000012", "seg_0007")
    assert "cmp_000012, seg_0007" in d.reason


@pytest.mark.parametrize("consumer_type", ["campaign", "canvas", "segment", "content_card"])
def test_inactive_consumer_exempts_nothing(consumer_type: str) -> None:
    d = decide(item(), [ref(consumer_type=consumer_type, active=False)], DUE)
    assert d.eligible
    assert d.exempt_by == ()
    assert d.expires_at == DUE


def test_reference_to_another_item_is_ignored() -> None:
    d = decide(item(), [ref(item_id="cmp_999999")], DUE)
    assert d.eligible and d.exempt_by == ()


@pytest.mark.parametrize(
    ("as_of", "next_run"),
    [
        (utc(2025, 6, 1, 1, 59), utc(2025, 6, 1, 2)),
        (utc(2025, 6, 1, 2), utc(2025, 6, 2, 2)),
    ],
)
def test_exempt_expiry_rolls_to_next_run(as_of: datetime, next_run: datetime) -> None:
    d = decide(item(), [ref()], as_of)
    assert d.expires_at == next_run
    assert not d.eligible


def test_exempt_before_three_months_also_rolls_forward() -> None:
    d = decide(item(), [ref()], utc(2025, 2, 10, 12))
    assert d.expires_at == utc(2025, 2, 11, 2)
    assert not d.eligible


def test_reference_removed_makes_it_eligible_at_next_run() -> None:
    facts = item()
    tonight = utc(2025, 6, 1, 2)
    exempt = decide(facts, [ref()], tonight)
    assert not exempt.eligible
    assert exempt.expires_at is not None
    # The consumer is stopped (or the filter edited) before the next run.
    freed = decide(facts, [ref(active=False)], exempt.expires_at)
    assert freed.eligible
    assert decide(facts, [], exempt.expires_at).eligible


def test_reference_removed_before_three_months_waits_for_them() -> None:
    facts = item()
    d = decide(facts, [], utc(2025, 3, 1, 2))
    assert not d.eligible
    assert d.expires_at == DUE


@pytest.mark.parametrize(
    "as_of",
    [
        utc(2023, 6, 1, 2),
        utc(2023, 12, 31, 23, 59, 59),
        LEGACY_POLICY_END - timedelta(microseconds=1),
    ],
)
def test_nothing_expires_before_2024(as_of: datetime) -> None:
    facts = item(stopped_at=utc(2022, 1, 1))
    d = decide(facts, [], as_of)
    assert not d.eligible
    assert "pre-2024 policy" in d.reason
    assert d.expires_at == LEGACY_POLICY_END  # its three months passed long ago
    assert decide(facts, [], LEGACY_POLICY_END).eligible


def test_before_2024_no_item_is_listed_as_expiring_soon() -> None:
    as_of = utc(2023, 10, 1, 2)
    overdue = decide(item(stopped_at=utc(2023, 6, 1)), [], as_of)
    assert overdue.expires_at == LEGACY_POLICY_END
    assert expiring_within([overdue], as_of, 7) == []


def test_before_2024_an_item_due_later_keeps_its_own_date() -> None:
    facts = item(stopped_at=utc(2023, 11, 15, 9))
    assert decide(facts, [], utc(2023, 12, 1, 2)).expires_at == utc(2024, 2, 15, 9)


@pytest.mark.parametrize(
    "facts",
    [
        item(legacy_deleted=True),
        item(legacy_deleted=True, state="expired"),
        item(state="legacy_deleted"),
        item(status="active", legacy_deleted=True),
    ],
)
def test_legacy_deleted_items_are_untouched(facts: ItemFacts) -> None:
    d = decide(facts, [ref()], utc(2030, 1, 1, 2))
    assert d.state == "legacy_deleted"
    assert (d.eligible, d.expires_at) == (False, None)
    assert "pre-2024 policy" in d.reason and "cannot be restored" in d.reason


def test_expired_item_reason() -> None:
    facts = item(state="expired", expired_at=utc(2025, 5, 1, 2, 3))
    d = decide(facts, [], utc(2025, 8, 1, 2))
    assert (d.eligible, d.expires_at, d.state) == (False, None, "expired")
    assert d.reason == "expired on 2025-05-01; restore to make it visible again"


def test_expired_item_needed_by_active_consumer() -> None:
    facts = item(state="expired", expired_at=utc(2025, 5, 1, 2))
    d = decide(facts, [ref("cmp_000012", consumer_type="campaign")], utc(2025, 8, 1, 2))
    assert (d.eligible, d.expires_at) == (False, None)
    assert d.exempt_by == ("cmp_000012",)
    assert "needed by active cmp_000012" in d.reason and "restore" in d.reason


def test_restoring_item_is_not_eligible() -> None:
    d = decide(item(state="restoring"), [], utc(2030, 1, 1, 2))
    assert (d.eligible, d.state) == (False, "restoring")
    assert "restore in progress" in d.reason


def test_restored_item_re_expires_three_months_after_restore() -> None:
    restored = utc(2025, 7, 15, 9, 30)
    facts = item(last_restored_at=restored)
    due = utc(2025, 10, 15, 9, 30)
    day_before = decide(facts, [], due - timedelta(days=1))
    assert not day_before.eligible
    assert day_before.expires_at == due
    assert "restored 2025-07-15" in day_before.reason
    assert decide(facts, [], due).eligible


def test_expiring_state_resumes_when_still_eligible() -> None:
    d = decide(item(state="expiring"), [], DUE)
    assert d.eligible and d.state == "expiring"
    assert "resuming" in d.reason


@pytest.mark.parametrize(
    ("facts", "refs"),
    [
        (item(state="expiring"), [ref()]),  # became exempt
        (item(state="expiring", status="active"), []),  # relaunched
        (item(state="expiring", last_restored_at=utc(2025, 5, 1)), []),  # clock restarted
    ],
)
def test_expiring_state_rolls_back_when_no_longer_eligible(
    facts: ItemFacts, refs: list[IdReference]
) -> None:
    d = decide(facts, refs, DUE)
    assert not d.eligible
    assert "rolled back to hot" in d.reason


def test_unknown_status_is_not_eligible() -> None:
    d = decide(item(status="paused"), [], utc(2030, 1, 1, 2))
    assert not d.eligible
    assert "paused" in d.reason


# ---------------------------------------------------------------------------- decide_all


def test_decide_all_matches_decide_and_keeps_order() -> None:
    as_of = utc(2025, 6, 1, 2)
    items = [item(f"cmp_{i:06d}", stopped_at=utc(2025, 1 + i % 5, 1)) for i in range(50)]
    refs = [ref(f"seg_{i:04d}", item_id=f"cmp_{i:06d}", active=i % 3 == 0) for i in range(0, 50, 2)]
    got = decide_all(items, iter(refs), as_of)
    assert [d.item_id for d in got] == [i.item_id for i in items]
    assert got == [decide(i, refs, as_of) for i in items]


def test_decide_all_scales() -> None:
    as_of = utc(2025, 6, 1, 2)
    items = [item(f"cmp_{i:06d}") for i in range(5_000)]
    refs = [ref(f"seg_{i % 700:04d}", item_id=f"cmp_{i % 5_000:06d}") for i in range(50_000)]
    got = decide_all(items, refs, as_of)
    assert len(got) == 5_000
    assert not any(d.eligible for d in got)


# ------------------------------------------------------------------------ expiring_within


def test_expiring_within_lists_only_hot_unreferenced_soon() -> None:
    as_of = utc(2025, 4, 20, 2)
    items = [
        item("a", stopped_at=utc(2025, 1, 25)),  # due 04-25: listed
        item("b", stopped_at=utc(2025, 1, 22)),  # due 04-22: listed first
        item("c", stopped_at=utc(2025, 3, 1)),  # due 06-01: too far
        item("d", stopped_at=utc(2025, 1, 1)),  # already eligible
        item("e", stopped_at=utc(2025, 1, 24)),  # exempt
        item("f", status="active"),
        item("g", state="expired", expired_at=utc(2025, 1, 1)),
    ]
    decisions = decide_all(items, [ref(item_id="e")], as_of)
    soon = expiring_within(decisions, as_of, 7)
    assert [d.item_id for d in soon] == ["b", "a"]


# ---------------------------------------------------------------------------- properties

_instants = st.datetimes(
    min_value=datetime(2022, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
_states = st.sampled_from(["hot", "expiring", "expired", "restoring", "legacy_deleted"])
_statuses = st.sampled_from(["draft", "active", "stopped", "archived"])


@st.composite
def _facts(draw: st.DrawFn) -> ItemFacts:
    return item(
        draw(st.sampled_from(["cmp_1", "cnv_2"])),
        status=draw(_statuses),
        stopped_at=draw(st.none() | _instants),
        last_sent=draw(st.none() | _instants),
        legacy_deleted=draw(st.booleans()),
        state=draw(_states),
        last_restored_at=draw(st.none() | _instants),
        expired_at=draw(st.none() | _instants),
    )


@given(
    _facts(),
    _instants,
    st.sampled_from(["campaign", "canvas", "segment", "content_card"]),
    st.sampled_from(["item", "variant", "step", "canvas_variation"]),
)
def test_never_eligible_with_an_active_id_reference(
    facts: ItemFacts, as_of: datetime, consumer_type: str, via: str
) -> None:
    r = ref("x_1", consumer_type=consumer_type, item_id=facts.item_id, via=via)
    d = decide(facts, [r, ref("x_2", item_id=facts.item_id, active=False)], as_of)
    assert not d.eligible
    assert "x_1" in d.exempt_by and "x_2" not in d.exempt_by


@given(_facts(), _instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2000)))
def test_eligibility_is_monotonic_in_as_of(
    facts: ItemFacts, as_of: datetime, later_by: timedelta
) -> None:
    if decide(facts, [], as_of).eligible:
        assert decide(facts, [], as_of + later_by).eligible


@given(_facts(), _instants)
def test_decision_shape(facts: ItemFacts, as_of: datetime) -> None:
    d: Decision = decide(facts, [], as_of)
    assert d.item_id == facts.item_id
    assert d.reason and "\n" not in d.reason
    if d.eligible:
        assert d.state in ("hot", "expiring")
        assert d.expires_at is not None and d.expires_at <= as_of
        assert as_of >= LEGACY_POLICY_END
        assert facts.status in ("stopped", "archived")


def test_replace_keeps_facts_frozen() -> None:
    facts = item()
    with pytest.raises(AttributeError):
        facts.state = "expired"  # type: ignore[misc]
    assert replace(facts, state="expired").state == "expired"
