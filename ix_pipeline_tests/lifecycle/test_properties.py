"""Property-based: random catalogs, events and ingest / expire / restore / clock steps; the
invariants of DOMAIN.md hold after every step."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ix_pipeline.ingest.catalog import ingest_catalog
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.lifecycle.expiry import run_expiry
from ix_pipeline.lifecycle.restore import RestoreRequest, plan_restore, run_restore
from ix_pipeline.store import invariants
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.builders import (
    campaign,
    campaign_event,
    canvas,
    canvas_event,
    consumer,
    write_catalog,
    write_events,
)

SEND = "users.messages.email.Send"
START = datetime(2025, 1, 1, tzinfo=UTC)

items = st.lists(
    st.tuples(st.sampled_from(["campaign", "canvas"]), st.sampled_from(["stopped", "active", "archived", "draft"]),
              st.integers(min_value=0, max_value=200)),  # fmt: skip
    min_size=1, max_size=4,
)  # fmt: skip
step = st.one_of(
    st.tuples(st.just("ingest"), st.integers(0, 3), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("expire"), st.integers(0, 120)),
    st.tuples(st.just("restore"), st.integers(0, 3)),
    st.tuples(st.just("exempt"), st.integers(0, 3), st.booleans()),
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items, steps=st.lists(step, min_size=1, max_size=8))
def test_invariants_hold_after_every_step(
    items: list[tuple[str, str, int]], steps: list[tuple]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db, archive, quarantine = root / "hot.duckdb", Archive(str(root / "archive")), root / "q"
        catalog_dir, currents = root / "landing" / "catalog", root / "landing" / "currents"
        ids = [f"{'cmp' if t == 'campaign' else 'cnv'}_{i}" for i, (t, _, _) in enumerate(items)]
        docs = [
            (campaign if t == "campaign" else canvas)(
                ids[i],
                status=status,
                stopped_at=(START + timedelta(days=d)).isoformat() if status != "active" else None,
            )
            for i, (t, status, d) in enumerate(items)
        ]
        write_catalog(catalog_dir, docs)
        clock = START
        ingested: dict[str, set[str]] = {i: set() for i in ids}
        serial = 0
        with hot_connection(db) as con:
            ingest_catalog(con, [catalog_dir], quarantine, "p")
        for n, s in enumerate(steps):
            with hot_connection(db) as con:
                if s[0] == "ingest":
                    _, which, count, redeliver = s
                    item = ids[which % len(ids)]
                    events = []
                    for _ in range(count):
                        serial += 1
                        make = campaign_event if item.startswith("cmp") else canvas_event
                        events.append(
                            make(item, f"u{serial % 5}", eid=f"e{serial}", t=int(clock.timestamp()))
                        )
                    if redeliver and serial > count:
                        events.append((campaign_event if item.startswith("cmp") else canvas_event)(
                            item, "u0", eid=f"e{serial - count}"))  # fmt: skip
                    write_events(currents, SEND, events, part=n)
                    ingest_currents(con, [currents], quarantine, "p")
                    ingested[item] |= {e["id"] for e in events if e["id"].startswith("e") and
                                       int(e["id"][1:]) > serial - count}  # fmt: skip
                elif s[0] == "expire":
                    clock += timedelta(days=s[1])
                    run_expiry(con, archive, clock, f"x{n}")
                elif s[0] == "restore":
                    item = ids[s[1] % len(ids)]
                    key = "campaign_ids" if item.startswith("cmp") else "canvas_ids"
                    plan = plan_restore(con, RestoreRequest(**{key: (item,)}))
                    run_restore(con, archive, plan, clock, f"r{n}")
                else:  # add or remove an ID reference from an active segment
                    item = ids[s[1] % len(ids)]
                    leaf = ({"filter": "received_campaign", "campaign_id": item} if item.startswith("cmp")
                            else {"filter": "in_canvas_control_group", "canvas_id": item})  # fmt: skip
                    seg = consumer("seg_p", audience={"all": [leaf] if s[2] else []})
                    seg["updated_at"] = (START + timedelta(seconds=n + 1)).isoformat()
                    write_catalog(catalog_dir, [seg], name=f"seg-{n}.json")
                    ingest_catalog(con, [catalog_dir], quarantine, "p")
            with hot_connection(db, read_only=True) as con:
                assert invariants.lost_events(con, archive) == {"campaign": 0, "canvas": 0}
                assert set(invariants.duplicate_ids(con, archive).values()) == {0}
                assert invariants.visible_rows_of_hidden_items(con) == 0
                assert invariants.items_in_flight(con) == []
                states = dict(con.execute("SELECT item_id, state FROM item_lifecycle").fetchall())
                for item in ids:
                    visible = {r[0] for r in con.execute(
                        "SELECT id FROM visible_campaign_interactions WHERE item_id = ? UNION ALL "
                        "SELECT id FROM visible_canvas_interactions WHERE item_id = ?", [item, item]).fetchall()}  # fmt: skip
                    # Hot items show every event ever ingested for them; expired ones show none.
                    assert visible == (ingested[item] if states[item] == "hot" else set()), (
                        item,
                        states[item],
                    )
