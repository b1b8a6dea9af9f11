"""Catalog ingestion: documents, audiences, references, replacement, bad documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ix_pipeline.audience.expressions import FILTERS
from ix_pipeline.settings import Settings
from ix_pipeline_tests.builders import (
    campaign,
    campaign_event,
    canvas,
    consumer,
    write_catalog,
    write_events,
)
from ix_pipeline_tests.conftest import ingest, q
from ix_pipeline_tests.lifecycle.scenario import SEND

# One valid leaf per filter name in FORMATS.md §2, against the items of BASE.
VALID_LEAVES: dict[str, dict] = {
    "received_campaign": {"campaign_id": "cmp_a"},
    "received_campaign_variant": {"campaign_id": "cmp_a", "variant_id": "cmp_a_v1"},
    "clicked_opened_campaign": {"campaign_id": "cmp_a", "action": "clicked"},
    "clicked_alias_in_campaign": {"campaign_id": "cmp_a", "alias": "cta"},
    "converted_from_campaign": {"campaign_id": "cmp_a", "conversion_behavior_index": 0},
    "in_campaign_control_group": {"campaign_id": "cmp_a"},
    "last_received_campaign": {"campaign_id": "cmp_a", "op": "more_than_days_ago", "value": 3},
    "received_canvas_step": {"canvas_id": "cnv_a", "step_id": "cnv_a_s1"},
    "clicked_opened_step": {"canvas_id": "cnv_a", "step_id": "cnv_a_s1", "action": "opened"},
    "clicked_alias_in_canvas_step": {"canvas_id": "cnv_a", "step_id": "cnv_a_s1", "alias": "cta"},
    "converted_from_canvas": {"canvas_id": "cnv_a"},
    "in_canvas_control_group": {"canvas_id": "cnv_a"},
    "entered_canvas_variation": {"canvas_id": "cnv_a", "variation_id": "cnv_a_var1"},
    "last_received_canvas_step": {
        "canvas_id": "cnv_a",
        "step_id": "cnv_a_s2",
        "op": "after",
        "value": "2025-01-01T00:00:00Z",
    },
    "received_with_tag": {"tag": "promo"},
    "clicked_opened_with_tag": {"tag": "promo", "action": "any"},
    "last_received_with_tag": {"tag": "promo", "op": "less_than_days_ago", "value": 30},
    "clicked_alias_in_any": {"alias": "cta"},
    "hard_bounced": {},
    "marked_spam": {},
    "invalid_phone_number": {},
    "never_received": {"campaign_id": "cmp_a"},
    "feature_flag": {"flag_id": "new_checkout"},
    "last_engaged": {"op": "more_than_days_ago", "value": 10},
    "last_enrolled_any_control_group": {},
    "last_in_app_impression": {},
    "last_received_any": {"op": "before", "value": "2025-06-01T00:00:00Z"},
    "last_received_email": {},
    "last_received_push": {},
    "last_received_sms": {},
    "last_received_webhook": {},
    "last_received_whatsapp": {},
    "last_sms_inbound_keyword_category": {
        "category": "OPT_IN",
        "op": "more_than_days_ago",
        "value": 1,
    },
    "last_viewed_news_feed": {},
    "news_feed_view_count": {"op": "gt", "value": 2},
}
BASE = [campaign("cmp_a", tags=["promo"]), canvas("cnv_a", tags=["promo"])]


def test_every_filter_name_of_the_spec_is_covered() -> None:
    assert set(VALID_LEAVES) == set(FILTERS)


@pytest.mark.parametrize("name", sorted(VALID_LEAVES))
def test_every_filter_parses_and_the_consumer_is_valid(settings: Settings, name: str) -> None:
    seg = consumer("seg_1", audience={"all": [{"filter": name, **VALID_LEAVES[name]}]})
    write_catalog(settings.landing / "catalog", [*BASE, seg])
    report, _ = ingest(settings)
    assert report.invalid_consumers == 0, report.audience_errors
    assert q(settings, "SELECT valid FROM audience_consumers WHERE id = 'seg_1'") == [(True,)]


@pytest.mark.parametrize(
    ("leaf", "fragment"),
    [
        ({"filter": "received_campaing", "campaign_id": "cmp_a"}, "received_campaing"),
        ({"filter": "received_campaign"}, "missing parameter campaign_id"),
        (
            {"filter": "clicked_opened_campaign", "campaign_id": "cmp_a", "action": "hovered"},
            "hovered",
        ),
        ({"filter": "received_campaign", "campaign_id": "cmp_nope"}, "cmp_nope"),
        ({"filter": "received_campaign", "campaign_id": "cnv_a"}, "cnv_a"),
        (
            {"filter": "received_campaign_variant", "campaign_id": "cmp_a", "variant_id": "zzz"},
            "zzz",
        ),
        ({"filter": "received_campaign", "campaign_id": "cmp_old"}, "pre-2024"),
        ({"filter": "last_received_any", "op": "before", "value": "not a date"}, "not a date"),
    ],
)
def test_invalid_expression_is_recorded_naming_consumer_and_filter(
    settings: Settings, leaf: dict, fragment: str
) -> None:
    old = campaign("cmp_old", stopped_at="2021-01-01T00:00:00Z", deleted_at="2023-02-01T00:00:00Z")
    bad = consumer("seg_bad", audience={"any": [leaf]})
    fine = consumer("seg_ok", audience={"filter": "hard_bounced"})
    write_catalog(settings.landing / "catalog", [*BASE, old, bad, fine])
    report, _ = ingest(settings)
    assert report.invalid_consumers == 1
    [(valid, errors)] = q(
        settings, "SELECT valid, errors FROM audience_consumers WHERE id = 'seg_bad'"
    )
    assert not valid and len(errors) >= 1
    assert "seg_bad" in errors[0] and leaf["filter"] in errors[0] and fragment in errors[0]
    assert q(settings, "SELECT valid FROM audience_consumers WHERE id = 'seg_ok'") == [(True,)]
    assert q(settings, "SELECT count(*) FROM catalog_items") == [(3,)]


def test_tag_and_id_references_are_told_apart(settings: Settings) -> None:
    seg = consumer("seg_1", audience={"all": [
        {"filter": "received_campaign", "campaign_id": "cmp_a"},
        {"filter": "received_canvas_step", "canvas_id": "cnv_a", "step_id": "cnv_a_s2"},
        {"not": {"filter": "received_with_tag", "tag": "promo"}},
    ]})  # fmt: skip
    write_catalog(settings.landing / "catalog", [*BASE, seg])
    ingest(settings)
    rows = q(
        settings,
        "SELECT filter, ref_by, item_id, component_id, tag, valid FROM filter_references ORDER BY path",
    )
    assert rows == [
        ("received_campaign", "id", "cmp_a", None, None, True),
        ("received_canvas_step", "id", "cnv_a", "cnv_a_s2", None, True),
        ("received_with_tag", "tag", None, None, "promo", True),
    ]


def test_newer_document_replaces_older_and_stale_one_is_ignored(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    write_catalog(
        folder,
        [campaign("cmp_a", status="active", stopped_at=None, updated_at="2025-03-01T00:00:00Z")],
    )
    ingest(settings)
    write_catalog(folder, [campaign("cmp_a", status="stopped", updated_at="2025-04-01T00:00:00Z")])
    ingest(settings)
    assert q(settings, "SELECT status FROM catalog_items") == [("stopped",)]
    write_catalog(
        folder,
        [campaign("cmp_a", status="active", stopped_at=None, updated_at="2025-02-01T00:00:00Z")],
    )
    report, _ = ingest(settings)
    assert report.documents_stale == 1
    assert q(settings, "SELECT status FROM catalog_items") == [("stopped",)]


def undated(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if key != "updated_at"}


def test_an_undated_document_never_replaces_a_dated_one(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    active = campaign("cmp_a", status="active", stopped_at=None, updated_at="2025-03-01T00:00:00Z")
    write_catalog(folder, [active])
    ingest(settings)
    write_catalog(folder, [undated(campaign("cmp_a", stopped_at="2024-01-31T10:00:00Z"))])
    report, _ = ingest(settings)
    assert report.documents_stale == 1
    assert q(settings, "SELECT status, stopped_at FROM catalog_items") == [("active", None)]
    # Within one batch too, in either order.
    write_catalog(folder, [undated(campaign("cmp_b")), {**active, "id": "cmp_b"},
                           {**active, "id": "cmp_c"}, undated(campaign("cmp_c"))])  # fmt: skip
    report, _ = ingest(settings)
    assert report.documents_stale == 1  # cmp_c's; cmp_b's undated one was simply replaced
    assert q(settings, "SELECT id, status FROM catalog_items ORDER BY id") == [
        ("cmp_a", "active"), ("cmp_b", "active"), ("cmp_c", "active")
    ]  # fmt: skip


def test_a_dated_document_replaces_an_undated_one_and_the_later_undated_one_wins(
    settings: Settings,
) -> None:
    folder = settings.landing / "catalog"
    write_catalog(folder, [undated(campaign("cmp_a", status="active", stopped_at=None))])
    ingest(settings)
    write_catalog(folder, [undated(campaign("cmp_a", status="stopped"))])
    ingest(settings)
    assert q(settings, "SELECT status FROM catalog_items") == [("stopped",)]
    write_catalog(folder, [campaign("cmp_a", status="archived", updated_at="2020-01-01T00:00:00Z")])
    report, _ = ingest(settings)
    assert report.documents_stale == 0
    assert q(settings, "SELECT status FROM catalog_items") == [("archived",)]


def test_bad_documents_are_quarantined_and_the_rest_loads(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    write_catalog(folder, [
        campaign("cmp_a"), {"type": "campaign"}, {"id": "x", "type": "spaceship"},
        {**campaign("cmp_b"), "stopped_at": "yesterday"}, {**campaign("cmp_c"), "unknown_field": 1},
        {**canvas("cmp_a")},
    ])  # fmt: skip
    (folder / "broken.json").write_text('{"id": "cmp_z", ')
    report, _ = ingest(settings)
    assert q(settings, "SELECT id FROM catalog_items ORDER BY id") == [("cmp_a",), ("cmp_c",)]
    reasons = [
        r for (r,) in q(settings, "SELECT reason FROM quarantine_log ORDER BY source, record_index")
    ]
    assert any("field id is missing" in r for r in reasons)
    assert any("spaceship" in r for r in reasons)
    assert any("stopped_at" in r and "cmp_b" in r for r in reasons)
    assert any("already a campaign" in r for r in reasons)
    assert any("broken.json" in r for r in reasons)
    assert report.files_quarantined == 1


def test_documents_refused_over_their_type_count_as_quarantined_in_their_file(
    settings: Settings,
) -> None:
    folder = settings.landing / "catalog"
    write_catalog(folder, [campaign("x1"), canvas("x1"), campaign("x2")], name="a.json")
    ingest(settings)
    write_catalog(folder, [canvas("x2"), canvas("x3")], name="b.json")  # x2 is stored already
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    rows = q(settings, "SELECT path, records, stored, quarantined FROM ingested_files ORDER BY 1")
    assert [(p.rsplit("/", 1)[-1], *counts) for p, *counts in rows] == [
        ("a.json", 3, 2, 1), ("b.json", 2, 1, 1)
    ]  # fmt: skip
    assert q(settings, "SELECT count(*) FROM quarantine_log") == [(2,)]


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        pytest.param({**campaign("x_bad"), "stopped_at": "0001-01-01T00:00:00+01:00"},
                     "field stopped_at is out of range once converted to UTC", id="before-year-1"),
        pytest.param({**campaign("x_bad"), "updated_at": "9999-12-31T23:30:00-01:00"},
                     "field updated_at is out of range once converted to UTC", id="after-9999"),
        pytest.param({**canvas("x_bad"), "steps": [{"id": "s1", "name": "S", "messages": ["m1"]}]},
                     "field steps[0].messages must be an object, found array", id="step-messages"),
        # Component names and flags of the wrong type: stored, they would be garbled.
        pytest.param({**campaign("x_bad"), "messages": {"m1": {"name": {"en": "Variant 1"}}}},
                     "field messages.m1.name must be a string, found object", id="message-name"),
        pytest.param({**campaign("x_bad"), "messages": {"m1": "Variant 1"}},
                     "field messages.m1 must be an object, found string", id="message-string"),
        pytest.param({**canvas("x_bad"), "variants": [{"id": "v1", "name": ["x"]}]},
                     "field variants[0].name must be a string, found array", id="variant-name"),
        pytest.param({**canvas("x_bad"), "steps": [{"id": "s1", "name": {"a": 1}}]},
                     "field steps[0].name must be a string, found object", id="step-name"),
        pytest.param({**canvas("x_bad"),
                      "steps": [{"id": "s1", "messages": {"m1": {"name": 5}}}]},
                     "field steps[0].messages.m1.name must be a string, found number",
                     id="step-message-name"),
        pytest.param({**campaign("x_bad"), "archived": "false"},
                     "field archived must be true or false, found string", id="archived-string"),
        pytest.param({**campaign("x_bad"), "draft": 0},
                     "field draft must be true or false, found number", id="draft-number"),
        pytest.param({key: value for key, value in {**campaign("x_bad"), "enabled": "false"}.items()
                      if key != "status"},
                     "field enabled must be true or false, found string", id="enabled-string"),
    ],
)  # fmt: skip
def test_one_document_the_tables_cannot_hold_is_quarantined_and_the_rest_loads(
    settings: Settings, bad: dict, fragment: str
) -> None:
    write_catalog(settings.landing / "catalog", [*BASE, bad])
    report, _ = ingest(settings)
    assert report.documents_quarantined == 1
    [(reason,)] = q(settings, "SELECT reason FROM quarantine_log")
    assert reason.startswith("catalog document #2: document x_bad: ") and fragment in reason
    assert q(settings, "SELECT id FROM catalog_items ORDER BY id") == [("cmp_a",), ("cnv_a",)]


def test_deeply_nested_expression_is_an_error_not_a_crash(settings: Settings) -> None:
    deep: dict = {"filter": "hard_bounced"}
    for _ in range(900):
        deep = {"not": deep}
    path = settings.landing / "catalog" / "deep.json"
    path.write_text(json.dumps([*BASE, consumer("seg_deep", audience=deep)]))
    report, _ = ingest(settings)
    assert report.invalid_consumers == 1
    [(errors,)] = q(settings, "SELECT errors FROM audience_consumers WHERE id = 'seg_deep'")
    assert "seg_deep" in errors[0] and "deeper" in errors[0]


def test_legacy_deleted_items_start_in_their_terminal_state(settings: Settings) -> None:
    old = campaign("cmp_old", stopped_at="2021-01-01T00:00:00Z", deleted_at="2023-02-01T00:00:00Z")
    write_catalog(settings.landing / "catalog", [*BASE, old])
    ingest(settings)
    assert q(settings, "SELECT item_id, state FROM item_lifecycle ORDER BY 1") == [
        ("cmp_a", "hot"), ("cmp_old", "legacy_deleted"), ("cnv_a", "hot")
    ]  # fmt: skip


def test_a_hot_item_later_flagged_as_legacy_deleted_is_audited(settings: Settings) -> None:
    folder = settings.landing / "catalog"
    write_catalog(folder, [campaign("cmp_a", updated_at="2025-03-01T00:00:00Z")])
    write_events(settings.landing / "currents", SEND,
                 [campaign_event("cmp_a", "u1"), campaign_event("cmp_a", "u2")])  # fmt: skip
    ingest(settings)
    flagged = campaign(
        "cmp_a", deleted_at="2023-02-01T00:00:00Z", updated_at="2025-04-01T00:00:00Z"
    )
    write_catalog(folder, [flagged])
    ingest(settings)
    assert q(settings, "SELECT state FROM item_lifecycle") == [("legacy_deleted",)]
    [(from_state, to_state, rows, actor, reason)] = q(
        settings, "SELECT from_state, to_state, rows, actor, reason FROM lifecycle_audit"
    )
    assert (from_state, to_state, rows, actor) == ("hot", "legacy_deleted", 2, "ingest_catalog")
    assert "pre-2024" in reason


def test_a_catalog_file_whose_name_is_not_utf8_is_read_and_kept_by_its_escaped_name(
    settings: Settings,
) -> None:
    folder = settings.landing / "catalog"
    odd = Path(os.fsdecode(bytes(folder) + b"/catalog-\xff.json"))
    odd.parent.mkdir(parents=True, exist_ok=True)
    odd.write_text(json.dumps([campaign("cmp_a")]))
    report, _ = ingest(settings)
    assert report.documents_loaded == 1
    assert q(settings, "SELECT id FROM catalog_items") == [("cmp_a",)]
    [(path,)] = q(settings, "SELECT path FROM ingested_files WHERE kind = 'catalog'")
    assert path.endswith("catalog-\\xff.json")
    again, _ = ingest(settings)
    assert again.files_skipped == 1


def test_events_before_a_legacy_deleted_document_are_hidden_with_an_audit_row(
    settings: Settings,
) -> None:
    write_events(settings.landing / "currents", SEND,
                 [campaign_event("cmp_old", "u1"), campaign_event("cmp_old", "u2")])  # fmt: skip
    ingest(settings)  # the events arrive first: no catalog document yet
    old = campaign("cmp_old", stopped_at="2021-01-01T00:00:00Z", deleted_at="2023-02-01T00:00:00Z")
    write_catalog(settings.landing / "catalog", [old])
    ingest(settings)
    assert q(settings, "SELECT state FROM item_lifecycle") == [("legacy_deleted",)]
    assert q(settings, "SELECT from_state, to_state, rows FROM lifecycle_audit") == [
        ("hot", "legacy_deleted", 2)
    ]
