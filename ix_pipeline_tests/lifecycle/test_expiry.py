"""The nightly expiry on real DuckDB and Delta files: what moves, what stays, nothing lost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ix_pipeline.lifecycle import expiry
from ix_pipeline.lifecycle.expiry import ExpiryResult, plan_expiry, run_expiry
from ix_pipeline.lifecycle.policy import Decision
from ix_pipeline.settings import Settings
from ix_pipeline.store import invariants
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection, registered
from ix_pipeline.store.schema import INTERACTION_COLUMN_NAMES, ITEM_TYPES
from ix_pipeline_tests.builders import (
    campaign,
    campaign_event,
    canvas,
    consumer,
    write_catalog,
    write_events,
)
from ix_pipeline_tests.conftest import archive_of, at, ingest, q
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT, SEND, rows_of, snapshot

# cmp_tagref is stopped on the same day and referenced only through its tag.
EXPIRING = ["cmp_stop", "cmp_tagref", "cnv_stop"]


def expire(settings: Settings, when: str, dry_run: bool = False) -> ExpiryResult:
    with hot_connection(settings.hot_db) as con:
        return run_expiry(con, archive_of(settings), at(when), "test-run", dry_run=dry_run)


def archived_rows(
    settings: Settings, item_id: str, archive: Archive | None = None
) -> list[tuple[Any, ...]]:
    """Every column of an item's archived rows, read back through the Delta log (from the
    settings' archive unless another, such as one in a bucket, is given)."""
    archive = archive or archive_of(settings)
    cols = ", ".join(INTERACTION_COLUMN_NAMES)
    out: list[tuple[Any, ...]] = []
    with hot_connection(settings.hot_db, read_only=True) as con:
        for item_type in ITEM_TYPES:
            with registered(con, "a", archive.dataset(item_type, [item_id])):
                sql = f"SELECT {cols} FROM a WHERE item_id = ? ORDER BY id"  # noqa: S608
                out += con.execute(sql, [item_id]).fetchall()
    return out


def assert_invariants(settings: Settings) -> None:
    with hot_connection(settings.hot_db, read_only=True) as con:
        assert invariants.lost_events(con, archive_of(settings)) == {"campaign": 0, "canvas": 0}
        assert set(invariants.duplicate_ids(con, archive_of(settings)).values()) == {0}
        assert invariants.visible_rows_of_hidden_items(con) == 0
        assert invariants.items_in_flight(con) == []


@pytest.fixture
def workspace(settings: Settings) -> Settings:
    scenario.build(settings)
    return settings


def test_dry_run_lists_what_would_expire_and_changes_nothing(workspace: Settings) -> None:
    before = snapshot(workspace)
    result = expire(workspace, NIGHT, dry_run=True)
    assert sorted(result.expired) == EXPIRING
    assert result.rows_archived == sum(len(rows_of(workspace, i)) for i in EXPIRING)
    assert "three months passed" in result.reasons["cmp_stop"]
    assert snapshot(workspace) == before
    assert not (workspace.data_dir / "archive").exists()


def test_real_run_moves_exactly_the_dry_run_items_and_rows_arrive_intact(
    workspace: Settings,
) -> None:
    dry = expire(workspace, NIGHT, dry_run=True)
    hot_before = {i: rows_of(workspace, i) for i in dry.expired}
    result = expire(workspace, NIGHT)
    assert sorted(result.expired) == sorted(dry.expired)
    assert result.rows_archived == sum(len(r) for r in hot_before.values()) == result.rows_deleted
    for item_id, rows in hot_before.items():
        assert rows_of(workspace, item_id) == []
        assert archived_rows(workspace, item_id) == rows
    states = dict(q(workspace, "SELECT item_id, state FROM item_lifecycle"))
    assert states == {"cmp_stop": "expired", "cnv_stop": "expired", "cmp_active": "hot", "cmp_exempt": "hot",
                      "cmp_tagref": "expired", "cmp_late": "hot", "cmp_old": "legacy_deleted"}  # fmt: skip
    audit = q(
        workspace,
        "SELECT item_id, from_state, to_state, rows FROM lifecycle_audit WHERE to_state = 'expired' ORDER BY 1",
    )
    assert audit == [(i, "expiring", "expired", len(hot_before[i])) for i in EXPIRING]
    assert_invariants(workspace)
    again = expire(workspace, NIGHT)
    assert again.expired == [] and again.rows_archived == 0


def test_an_archive_under_a_path_with_a_space_and_an_accent_expires_and_verifies(
    workspace: Settings, tmp_path: Path
) -> None:
    # deltalake lists such files percent-encoded; DuckDB must still find them.
    elsewhere = replace(workspace, archive_uri=str(tmp_path / "My Data é" / "archive"))
    hot_before = rows_of(elsewhere, "cmp_stop")
    assert "cmp_stop" in expire(elsewhere, NIGHT).expired
    assert archived_rows(elsewhere, "cmp_stop") == hot_before
    assert_invariants(elsewhere)


def test_a_dry_run_counts_the_rows_that_stay_hot_as_the_real_run_does(settings: Settings) -> None:
    write_catalog(settings.landing / "catalog", [campaign("cmp_stop")])
    # cmp_orphan's document has not arrived: no decision, but its rows stay hot.
    write_events(settings.landing / "currents", SEND,
                 [campaign_event("cmp_stop", f"u{i}") for i in range(3)]
                 + [campaign_event("cmp_orphan", f"u{i}") for i in range(2)])  # fmt: skip
    ingest(settings)
    dry = expire(settings, NIGHT, dry_run=True)
    real = expire(settings, NIGHT)
    assert dry.rows_still_hot == real.rows_still_hot == 2
    assert dry.by_type["campaign"] == replace(
        real.by_type["campaign"], rows_written=0, rows_deleted=0
    )


def test_boundary_one_second_before_and_exactly_at(workspace: Settings) -> None:
    assert expire(workspace, "2025-04-30T09:59:59Z").expired == []
    assert sorted(expire(workspace, "2025-04-30T10:00:00Z").expired) == EXPIRING


def test_nothing_expires_for_an_as_of_in_2023(workspace: Settings) -> None:
    assert expire(workspace, "2023-12-31T23:59:59Z").expired == []


def test_exemption_by_id_but_not_by_tag_or_inactive_consumer(workspace: Settings) -> None:
    with hot_connection(workspace.hot_db, read_only=True) as con:
        decisions = {d.item_id: d for d in plan_expiry(con, at(NIGHT)).decisions}
    assert (
        decisions["cmp_exempt"].exempt_by == ("seg_keep",) and not decisions["cmp_exempt"].eligible
    )
    assert decisions["cmp_exempt"].expires_at == at("2025-05-02T02:00:00Z")
    # seg_keep names cmp_tagref's tag only: a tag reference exempts nothing.
    assert decisions["cmp_tagref"].exempt_by == () and decisions["cmp_tagref"].eligible
    assert decisions["cmp_stop"].exempt_by == ()  # the content card referencing it is inactive


def test_an_id_reference_exempts_through_a_filter_of_the_items_own_type_even_next_to_a_typo(
    settings: Settings,
) -> None:
    docs = [
        campaign("cmp_keep"),
        canvas("cnv_named_as_campaign"),
        # One malformed filter (no value) must not cost the well-formed one its exemption.
        consumer("seg_typo", audience={"all": [
            {"filter": "received_campaign", "campaign_id": "cmp_keep"},
            {"filter": "last_received_email", "op": "before"},
        ]}),
        # A campaign filter given a Canvas's ID reads none of that Canvas's data.
        consumer("seg_wrong_type", audience={
            "filter": "received_campaign", "campaign_id": "cnv_named_as_campaign"}),
    ]  # fmt: skip
    cat, _ = ingest(settings, write_catalog(settings.landing, docs))
    assert cat.invalid_consumers == 2
    with hot_connection(settings.hot_db, read_only=True) as con:
        decisions = {d.item_id: d for d in plan_expiry(con, at(NIGHT)).decisions}
    assert decisions["cmp_keep"].exempt_by == ("seg_typo",)
    assert not decisions["cmp_keep"].eligible
    assert decisions["cnv_named_as_campaign"].exempt_by == ()
    assert decisions["cnv_named_as_campaign"].eligible


def test_late_event_for_an_expired_item_stays_invisible_and_moves_next_night(
    workspace: Settings,
) -> None:
    expire(workspace, NIGHT)
    archived_before = len(archived_rows(workspace, "cmp_stop"))
    already = archived_rows(workspace, "cmp_stop")[0]
    write_events(workspace.landing / "currents", SEND, [
        campaign_event("cmp_stop", "u99", eid="late-1"),  # a late conversion-like event
        campaign_event("cmp_stop", "u1", eid=already[0]),  # and a re-delivery of an archived one
    ])  # fmt: skip
    _, report = ingest(workspace)
    assert report.events_stored == 1 and report.duplicates_skipped == 1
    assert q(
        workspace, "SELECT count(*) FROM campaign_interactions WHERE item_id = 'cmp_stop'"
    ) == [(1,)]
    assert q(
        workspace, "SELECT count(*) FROM visible_campaign_interactions WHERE item_id = 'cmp_stop'"
    ) == [(0,)]
    result = expire(workspace, "2025-05-02T02:00:00Z")
    assert result.expired == [] and result.late_rows_archived == 1
    assert len(archived_rows(workspace, "cmp_stop")) == archived_before + 1
    assert rows_of(workspace, "cmp_stop") == []
    assert_invariants(workspace)


def test_analytics_and_summaries_do_not_change_on_expiry(workspace: Settings) -> None:
    before = snapshot(workspace)
    expire(workspace, NIGHT)
    after = snapshot(workspace)
    for table in ("user_summaries", "item_analytics", "event_ledger"):
        assert after[table] == before[table], table


@pytest.mark.parametrize(
    ("campaign_rows", "chunk_rows", "expected"),
    [
        # 1.56 M rows at 1.5 M per chunk: two even chunks, not 1.5 M and a 60,000-row tail
        ([20_000] * 78, 1_500_000, [780_000, 780_000]),
        ([20_000] * 75, 1_500_000, [1_500_000]),
        ([20_000] * 76, 1_500_000, [760_000, 760_000]),
        # 20,000-row items do not divide 1.82 M evenly: still two chunks, no 20,000-row tail
        ([20_000] * 91, 1_500_000, [920_000, 900_000]),
        ([20_000] * 150, 1_000_000, [1_000_000, 1_000_000, 1_000_000]),
        # an item larger than a chunk is a chunk of its own; the others still share
        ([3_000_000, 10, 10], 1_000_000, [3_000_000, 20]),
        ([0, 0, 0], 1_000_000, [0]),
        ([400_000, 700_000, 300_000, 700_000], 1_000_000, [400_000, 700_000, 1_000_000]),
    ],
)
def test_chunks_spread_rows_evenly_and_never_exceed_the_bound_except_for_one_huge_item(
    campaign_rows: list[int], chunk_rows: int, expected: list[int]
) -> None:
    decisions = [
        Decision(f"cmp_{k}", "campaign", "hot", None, (), True, "stopped")
        for k in range(len(campaign_rows))
    ]
    rows = {d.item_id: n for d, n in zip(decisions, campaign_rows, strict=True)}
    chunks = expiry._chunks(decisions, rows, chunk_rows=chunk_rows)
    assert [sum(rows[d.item_id] for d in chunk) for _, chunk in chunks] == expected
    assert [d for _, chunk in chunks for d in chunk] == decisions  # every item once, in order


def test_chunks_hold_at_most_chunk_items_items() -> None:
    decisions = [Decision(f"cnv_{k}", "canvas", "hot", None, (), True, "x") for k in range(7)]
    chunks = expiry._chunks(decisions, {}, chunk_items=3)
    assert [(t, len(c)) for t, c in chunks] == [("canvas", 3), ("canvas", 3), ("canvas", 1)]


def test_the_lost_events_check_counts_an_id_neither_hot_nor_archived(workspace: Settings) -> None:
    expire(workspace, NIGHT)
    assert_invariants(workspace)  # archived ids count as kept: nothing lost so far
    with hot_connection(workspace.hot_db) as con:
        con.execute("DELETE FROM campaign_interactions WHERE id = "
                    "(SELECT min(id) FROM campaign_interactions WHERE item_id = 'cmp_active')")  # fmt: skip
        assert invariants.lost_events(con, archive_of(workspace)) == {"campaign": 1, "canvas": 0}


def test_verification_reports_exactly_the_hot_ids_the_archive_lacks(workspace: Settings) -> None:
    from ix_pipeline.store.lifecycle_io import archive_hot_rows, hot_ids_missing_from_archive

    archive, item = archive_of(workspace), ["cmp_stop"]
    hot = {i: len(rows_of(workspace, i)) for i in ("cmp_stop", "cmp_active")}
    with hot_connection(workspace.hot_db) as con:
        assert hot_ids_missing_from_archive(con, archive, "campaign", item) == {
            "cmp_stop": hot["cmp_stop"]
        }
        archive_hot_rows(con, archive, "campaign", item, run_id="test")
        assert hot_ids_missing_from_archive(con, archive, "campaign", item) == {}
        # An archived row that is no longer hot: the digests differ, the exact check clears it.
        one = "(SELECT min(id) FROM campaign_interactions WHERE item_id = 'cmp_stop')"
        con.execute(f"DELETE FROM campaign_interactions WHERE id = {one}")  # noqa: S608
        assert hot_ids_missing_from_archive(con, archive, "campaign", item) == {}
        # A new hot row the archive lacks, beside the foreign archived one: the counts agree,
        # the missing id is still found.
        late = "SELECT * REPLACE ('late-' || id AS id) FROM campaign_interactions WHERE id = "
        con.execute(f"INSERT INTO campaign_interactions {late}{one}")  # noqa: S608
        assert hot_ids_missing_from_archive(con, archive, "campaign", item) == {"cmp_stop": 1}
        assert hot_ids_missing_from_archive(con, archive, "campaign", ["cmp_active"]) == {
            "cmp_active": hot["cmp_active"]
        }


def test_the_archive_tells_which_items_it_holds_rows_of(workspace: Settings) -> None:
    from ix_pipeline.store.lifecycle_io import archive_hot_rows

    archive = archive_of(workspace)
    assert not archive.holds_rows_of("campaign", ["cmp_stop"])  # no table yet
    with hot_connection(workspace.hot_db) as con:
        archive_hot_rows(con, archive, "campaign", ["cmp_stop"], run_id="test")
    assert archive.holds_rows_of("campaign", ["cmp_active", "cmp_stop"])
    assert not archive.holds_rows_of("campaign", ["cmp_active"])
    assert not archive.holds_rows_of("canvas", ["cnv_stop"])
    assert not archive.holds_rows_of("campaign", [])


def test_the_archive_refuses_columns_its_files_do_not_hold(workspace: Settings) -> None:
    with hot_connection(workspace.hot_db, read_only=True) as con:
        with pytest.raises(ValueError, match="item_key"):
            archive_of(workspace).rows(con, "campaign", ["id", "item_key"])
        with pytest.raises(ValueError, match="no_such_column"):
            archive_of(workspace).rows(con, "campaign", ['id" FROM x; --', "no_such_column"])


def test_a_delta_reader_filtering_the_archive_by_any_column_finds_its_rows(
    workspace: Settings,
) -> None:
    """deltalake's pyarrow dataset (how we read an archive in a bucket, and how other tools
    read any archive) prunes files by the min/max statistics the writer records: files
    written without them read as empty under any filter on such a column."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pds

    from ix_pipeline.store.archive import FILE_COLUMNS

    expire(workspace, NIGHT)
    dataset = archive_of(workspace).dataset("campaign")
    rows = dataset.to_table()
    assert rows.num_rows
    for column in FILE_COLUMNS:
        values = rows.column(column).drop_null()
        if not len(values):
            continue
        value = values[0]
        wanted = pc.sum(pc.equal(rows.column(column), value)).as_py()
        assert dataset.count_rows(filter=pds.field(column) == value) == wanted, column


@pytest.mark.parametrize(
    ("items", "rows"), [(1, 25_000), (97, 25_000), (181, 46_336), (250, 64_000), (5_000, 64_000)]
)
def test_write_batches_give_each_item_about_256_rows_within_bounds(items: int, rows: int) -> None:
    from ix_pipeline.store.lifecycle_io import write_batch_rows

    assert write_batch_rows(items) == rows
