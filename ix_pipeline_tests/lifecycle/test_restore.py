"""Restore on real DuckDB and Delta files: by id, Canvas id, tag, a mix; refusals; re-expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ix_pipeline.lifecycle.restore import (
    RestoreRefused,
    RestoreRequest,
    RestoreResult,
    plan_restore,
    run_restore,
)
from ix_pipeline.settings import Settings
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection, transaction
from ix_pipeline.store.lifecycle_io import compare_and_set, copy_archived_rows_to_hot
from ix_pipeline_tests.conftest import archive_of, at, q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT, rows_of, snapshot
from ix_pipeline_tests.lifecycle.test_expiry import EXPIRING, assert_invariants, expire

RESTORED_AT = "2025-06-10T08:30:00Z"
# The scenario after its first expiry, and every expiring item's rows from before it.
Expired = tuple[Settings, dict[str, list[tuple[Any, ...]]]]


def restore(settings: Settings, **request: tuple[str, ...]) -> RestoreResult:
    with hot_connection(settings.hot_db) as con:
        plan = plan_restore(con, RestoreRequest(**request))
        return run_restore(con, archive_of(settings), plan, at(RESTORED_AT), "test-restore")


@pytest.fixture
def expired(settings: Settings) -> Expired:
    scenario.build(settings)
    before = {i: rows_of(settings, i) for i in EXPIRING}
    expire(settings, NIGHT)
    return settings, before


@pytest.mark.parametrize(
    ("request_", "restored"),
    [
        ({"campaign_ids": ("cmp_stop",)}, ["cmp_stop"]),
        ({"canvas_ids": ("cnv_stop",)}, ["cnv_stop"]),
        ({"tags": ("promo",)}, ["cmp_stop", "cnv_stop"]),
        (
            {"campaign_ids": ("cmp_tagref",), "tags": ("promo",)},
            ["cmp_stop", "cmp_tagref", "cnv_stop"],
        ),
    ],
    ids=["campaign", "canvas", "tag", "mix"],
)
def test_restore_brings_back_every_column_of_every_row(
    expired: Expired, request_: dict[str, tuple[str, ...]], restored: list[str]
) -> None:
    settings, before = expired
    result = restore(settings, **request_)
    assert sorted(result.restored) == restored
    for item_id in restored:
        assert rows_of(settings, item_id) == before[item_id]
        assert result.rows_per_item[item_id] == len(before[item_id])
    assert dict(
        q(
            settings,
            "SELECT item_id, state FROM item_lifecycle WHERE item_id IN ('cmp_stop', 'cnv_stop', 'cmp_tagref')",
        )
    ) == {i: "hot" if i in restored else "expired" for i in EXPIRING}
    # Visible again to features.
    for item_id in restored:
        assert q(settings, "SELECT count(*) FROM (SELECT item_id FROM visible_campaign_interactions UNION ALL "
                           "SELECT item_id FROM visible_canvas_interactions) WHERE item_id = ?", [item_id]) == [(len(before[item_id]),)]  # fmt: skip
    assert_invariants(settings)


def test_unknown_ids_are_refused_all_at_once_and_nothing_changes(expired: Expired) -> None:
    settings, _ = expired
    before = snapshot(settings)
    with pytest.raises(RestoreRefused) as err:
        restore(
            settings, campaign_ids=("cmp_stop", "cmp_nope", "cnv_stop"), canvas_ids=("cnv_zzz",)
        )
    text = str(err.value)
    # cnv_stop: a Canvas id given as a campaign.
    assert "cmp_nope" in text and "cnv_zzz" in text and "cnv_stop" in text
    assert snapshot(settings) == before


def test_a_restore_from_an_archive_lacking_the_items_rows_is_refused_and_changes_nothing(
    expired: Expired, tmp_path: Path
) -> None:
    settings, _ = expired
    before = snapshot(settings)
    elsewhere = Archive(str(tmp_path / "not-the-archive"))
    with hot_connection(settings.hot_db) as con:
        plan = plan_restore(con, RestoreRequest(campaign_ids=("cmp_stop",)))
        with pytest.raises(RestoreRefused, match="not-the-archive lacks rows of cmp_stop") as err:
            run_restore(con, elsewhere, plan, at(RESTORED_AT), "test-restore")
    assert "0 of the 11 rows" in str(err.value)
    assert snapshot(settings) == before
    assert sorted(restore(settings, campaign_ids=("cmp_stop",)).restored) == ["cmp_stop"]


def test_legacy_deleted_item_is_refused_naming_the_policy(expired: Expired) -> None:
    settings, _ = expired
    with pytest.raises(RestoreRefused, match="pre-2024 retention policy"):
        restore(settings, campaign_ids=("cmp_old",))


def test_a_tag_never_restores_an_item_the_catalog_flags_as_deleted_under_the_old_policy(
    expired: Expired,
) -> None:
    settings, _ = expired
    # cmp_stop expired under today's policy; a later catalog says its data was deleted.
    with hot_connection(settings.hot_db) as con:
        con.execute(
            "UPDATE catalog_items SET interaction_data_deleted_at = TIMESTAMPTZ '2023-01-01 00:00:00+00' "
            "WHERE id = 'cmp_stop'"
        )
    result = restore(settings, tags=("promo",))
    assert result.restored == ["cnv_stop"]
    assert any(n.startswith("cmp_stop skipped") and "pre-2024" in n for n in result.notes)
    assert q(settings, "SELECT state FROM item_lifecycle WHERE item_id = 'cmp_stop'") == [
        ("expired",)
    ]


@pytest.mark.parametrize("request_", [{}, {"tags": ("",)}, {"tags": ("   ",)}])
def test_empty_requests_are_refused(expired: Expired, request_: dict[str, tuple[str, ...]]) -> None:
    settings, _ = expired
    with pytest.raises(RestoreRefused):
        restore(settings, **request_)


def test_already_hot_is_reported_and_an_unmatched_tag_says_so(expired: Expired) -> None:
    settings, _ = expired
    result = restore(settings, campaign_ids=("cmp_active",), tags=("winback", "Promo"))
    assert result.restored == [] and result.already_hot == ["cmp_active"]
    assert result.notes == [
        "tag 'winback' matches no expired item",
        "tag 'Promo' matches no expired item",
    ]


def test_restored_item_re_expires_three_calendar_months_after_the_restore(expired: Expired) -> None:
    settings, _ = expired
    # Anchor 2025-06-10T08:30Z → expires 2025-09-10T08:30Z.
    restore(settings, campaign_ids=("cmp_stop",))
    assert "cmp_stop" not in expire(settings, "2025-09-09T08:30:00Z").expired  # a day before
    assert "cmp_stop" not in expire(settings, "2025-09-10T08:29:59Z").expired
    assert expire(settings, "2025-09-10T08:30:00Z").expired == ["cmp_stop"]
    assert_invariants(settings)
    [(last_restored,)] = q(
        settings, "SELECT last_restored_at FROM item_lifecycle WHERE item_id = 'cmp_stop'"
    )
    assert last_restored == at(RESTORED_AT)


def test_second_expiry_archives_only_what_the_archive_lacks(expired: Expired) -> None:
    settings, before = expired
    restore(settings, campaign_ids=("cmp_stop",))
    expire(settings, "2025-07-01T02:00:00Z")  # cmp_late (stopped 2025-03-15) goes first
    again = expire(settings, "2025-12-01T02:00:00Z")
    # Every row left the hot store for the archive, which already held them all.
    assert again.expired == ["cmp_stop"] and again.rows_written == 0
    assert again.rows_archived == again.rows_deleted == len(before["cmp_stop"])
    assert_invariants(settings)


def test_restored_item_stays_hot_while_exempt(expired: Expired) -> None:
    settings, _ = expired
    # Never expired: already hot, exempt by seg_keep.
    restore(settings, campaign_ids=("cmp_exempt",))
    assert expire(settings, "2026-01-01T02:00:00Z").expired.count("cmp_exempt") == 0


@pytest.mark.parametrize("hot_share", ["all", "some"])
def test_restore_resumed_with_rows_already_hot_copies_only_the_rest(
    expired: Expired, hot_share: str
) -> None:
    """A restore that died after its copy committed (all rows hot, state `restoring`), or
    any state with part of the rows hot: the next restore copies exactly what is missing."""
    settings, before = expired
    with hot_connection(settings.hot_db) as con:
        with transaction(con):
            compare_and_set(con, ["cmp_stop"], ["expired"], "restoring", as_of=at(RESTORED_AT),
                            run_id="died", actor="test", reason="restore started")  # fmt: skip
        assert copy_archived_rows_to_hot(
            con, archive_of(settings), "campaign", ["cmp_stop"]
        ) == len(before["cmp_stop"])
        if hot_share == "some":
            con.execute("DELETE FROM campaign_interactions WHERE item_id = 'cmp_stop' AND id IN "
                        "(SELECT id FROM campaign_interactions WHERE item_id = 'cmp_stop' ORDER BY id LIMIT 2)")  # fmt: skip
    result = restore(settings, campaign_ids=("cmp_stop",))
    assert result.restored == ["cmp_stop"]
    assert rows_of(settings, "cmp_stop") == before["cmp_stop"]  # every row once, every column
    assert q(
        settings,
        "SELECT count(*), count(DISTINCT id) FROM campaign_interactions WHERE item_id = 'cmp_stop'",
    ) == [(len(before["cmp_stop"]), len(before["cmp_stop"]))]
    assert_invariants(settings)
