"""A small workspace with one item of each lifecycle situation, built through real ingestion."""

from __future__ import annotations

from typing import Any

from ix_pipeline.settings import Settings
from ix_pipeline.store.hot import hot_connection
from ix_pipeline.store.schema import INTERACTION_COLUMN_NAMES, ITEM_TYPES, interaction_table
from ix_pipeline_tests.builders import (
    T0,
    campaign,
    campaign_event,
    canvas,
    canvas_event,
    consumer,
    write_catalog,
    write_events,
)
from ix_pipeline_tests.conftest import ingest

SEND = "users.messages.email.Send"
OPEN = "users.messages.email.Open"
CLICK = "users.messages.email.Click"
ENTRY = "users.canvas.Entry"

# stopped 2025-01-31T10:00Z → expires 2025-04-30T10:00Z → moved by the run of 2025-05-01T02:00Z
NIGHT = "2025-05-01T02:00:00Z"


def build(settings: Settings, users: int = 6) -> None:
    docs = [
        campaign("cmp_stop", tags=["promo"], control=True, variants=("v1", "v2")),
        campaign("cmp_active", status="active", stopped_at=None, tags=["promo"]),
        campaign("cmp_exempt", tags=["vip"]),
        campaign("cmp_tagref", tags=["vip"]),
        campaign("cmp_late", stopped_at="2025-03-15T00:00:00Z"),
        campaign("cmp_old", stopped_at="2021-01-01T00:00:00Z", deleted_at="2023-02-01T00:00:00Z"),
        canvas("cnv_stop", tags=["promo"]),
        consumer(
            "seg_keep",
            audience={
                "all": [
                    {"filter": "received_campaign", "campaign_id": "cmp_exempt"},
                    {"filter": "received_with_tag", "tag": "vip"},
                ]
            },
        ),  # fmt: skip
        consumer(
            "cc_inactive",
            "content_card",
            active=False,
            audience={"filter": "received_campaign", "campaign_id": "cmp_stop"},
        ),  # fmt: skip
    ]
    write_catalog(settings.landing / "catalog", docs)
    root = settings.landing / "currents"
    for cid in ("cmp_stop", "cmp_active", "cmp_exempt", "cmp_tagref", "cmp_late", "cmp_old"):
        sends = [
            campaign_event(cid, f"u{i}", t=T0 + i, variant="v1" if i % 2 else "v2")
            for i in range(users)
        ]
        write_events(root, SEND, sends)
        write_events(
            root,
            OPEN,
            [
                campaign_event(cid, f"u{i}", t=T0 + 100 + i, machine_open="true")
                for i in range(0, users, 2)
            ],
        )
        write_events(
            root,
            CLICK,
            [
                campaign_event(cid, f"u{i}", t=T0 + 200, link_alias="cta")
                for i in range(0, users, 3)
            ],
        )
    write_events(
        root,
        ENTRY,
        [canvas_event("cnv_stop", f"u{i}", in_control_group=i == 0) for i in range(users)],
    )
    write_events(
        root, SEND, [canvas_event("cnv_stop", f"u{i}", step="s2") for i in range(1, users)]
    )
    ingest(settings)


def rows_of(settings: Settings, item_id: str) -> list[tuple[Any, ...]]:
    """Every column of an item's hot rows, in a stable order."""
    cols = ", ".join(INTERACTION_COLUMN_NAMES)
    out: list[tuple[Any, ...]] = []
    with hot_connection(settings.hot_db, read_only=True) as con:
        for item_type in ITEM_TYPES:
            out += con.execute(
                f"SELECT {cols} FROM {interaction_table(item_type)} WHERE item_id = ? ORDER BY id",  # noqa: S608
                [item_id],
            ).fetchall()
    return out


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    tables = ["campaign_interactions", "canvas_interactions", "item_lifecycle", "lifecycle_audit",
              "user_summaries", "item_analytics", "event_ledger"]  # fmt: skip
    with hot_connection(settings.hot_db, read_only=True) as con:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}  # noqa: S608
