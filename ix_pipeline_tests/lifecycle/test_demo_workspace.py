"""End to end on a (small) `ix demo` workspace: dry run, real run, second run, rows conserved."""

from __future__ import annotations

from datetime import UTC, datetime

from ix_pipeline.demo.workspace import generate_workspace
from ix_pipeline.settings import Settings
from ix_pipeline.store.hot import hot_connection, registered
from ix_pipeline_tests.conftest import archive_of, ingest, q
from ix_pipeline_tests.lifecycle.scenario import snapshot
from ix_pipeline_tests.lifecycle.test_expiry import assert_invariants, expire

AS_OF = "2026-11-28T02:00:00Z"


def hot_ids_by_item(settings: Settings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item_id, event_id in q(
        settings,
        "SELECT item_id, id FROM campaign_interactions UNION ALL SELECT item_id, id FROM canvas_interactions",
    ):
        out.setdefault(item_id, set()).add(event_id)
    return out


def archived_ids_by_item(settings: Settings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with hot_connection(settings.hot_db, read_only=True) as con:
        for item_type in ("campaign", "canvas"):
            with registered(con, "a", archive_of(settings).dataset(item_type)):
                for item_id, event_id in con.execute("SELECT item_id, id FROM a").fetchall():
                    out.setdefault(item_id, set()).add(event_id)
    return out


def test_demo_workspace_expiry_end_to_end(settings: Settings) -> None:
    summary = generate_workspace(settings.data_dir, n_users=2_000, n_events=60_000, n_campaigns=40, n_canvases=10,
                                 seed=11, now=datetime(2026, 11, 28, tzinfo=UTC))  # fmt: skip
    catalog, currents = ingest(settings)
    assert (
        currents.events_stored == summary.n_events
        and currents.duplicates_skipped == summary.n_duplicates
    )
    assert catalog.invalid_consumers == 0 and currents.records_quarantined == 0
    before = snapshot(settings)
    hot_before = hot_ids_by_item(settings)
    dry = expire(settings, AS_OF, dry_run=True)
    assert dry.expired, "the demo should have items past their three months"
    assert snapshot(settings) == before
    real = expire(settings, AS_OF)
    assert sorted(real.expired) == sorted(dry.expired) and real.rows_archived == dry.rows_archived
    archived = archived_ids_by_item(settings)
    hot_after = hot_ids_by_item(settings)
    for item_id in real.expired:
        # Left hot == arrived in the archive.
        assert archived[item_id] == hot_before.get(item_id, set())
        assert item_id not in hot_after
    assert set(archived) == {i for i in real.expired if hot_before.get(i)}
    for item_id, ids in hot_after.items():
        assert ids == hot_before[item_id]  # everything else untouched
    second = expire(settings, AS_OF)
    assert second.expired == [] and second.rows_archived == 0
    # Exempt items (referenced by ID from an active consumer) never expire.
    exempt = set(summary.referenced_by_active)
    assert not exempt & set(real.expired)
    assert_invariants(settings)
