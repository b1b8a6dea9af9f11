"""The audience engine: golden member sets per filter on a hand-built world, set algebra,
refusals, parameterisation and visibility of expired data."""

from __future__ import annotations

import re
import typing as t
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ix_pipeline.audience.evaluate import (
    AudienceRefused,
    UnknownConsumer,
    audience_sql,
    evaluate_audience,
    evaluate_consumer,
)
from ix_pipeline.audience.expressions import (
    FILTERS,
    LEGACY_POLICY,
    All,
    Any,
    Expr,
    Not,
    parse_audience,
)
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.exports.world import (
    AS_OF,
    USERS,
    build_store,
    copy_store,
    mark_expired,
    segment,
)

U = set(USERS)
TS_MAR_1 = "2025-03-01T00:00:00Z"

# (case id, audience document, expected user ids), worked out by hand from world.EVENTS with
# as_of = 2025-03-31T00:00Z. At least one case per filter of FORMATS.md section 2.
GOLDEN: tuple[tuple[str, t.Any, set[str]], ...] = (
    # ---- campaigns by ID
    ("received_campaign", {"filter": "received_campaign", "campaign_id": "cmp_a"}, {"u1", "u2"}),
    ("received_campaign_b", {"filter": "received_campaign", "campaign_id": "cmp_b"}, {"u1", "u5"}),
    ("variant_1", {"filter": "received_campaign_variant", "campaign_id": "cmp_a",
                   "variant_id": "var_a1"}, {"u1"}),
    ("variant_2", {"filter": "received_campaign_variant", "campaign_id": "cmp_a",
                   "variant_id": "var_a2"}, {"u2"}),
    # u3's enrollment names ctl_a; u4's names no variant and the catalog's control stands in.
    ("variant_control", {"filter": "received_campaign_variant", "campaign_id": "cmp_a",
                         "variant_id": "ctl_a"}, {"u3", "u4"}),
    ("clicked_campaign", {"filter": "clicked_opened_campaign", "campaign_id": "cmp_a",
                          "action": "clicked"}, {"u1", "u2"}),
    ("opened_campaign", {"filter": "clicked_opened_campaign", "campaign_id": "cmp_a",
                         "action": "opened"}, {"u1"}),
    ("any_campaign_b", {"filter": "clicked_opened_campaign", "campaign_id": "cmp_b",
                        "action": "any"}, {"u1"}),
    ("clicked_inapp", {"filter": "clicked_opened_campaign", "campaign_id": "cmp_c",
                       "action": "clicked"}, {"u6"}),
    ("alias_cta", {"filter": "clicked_alias_in_campaign", "campaign_id": "cmp_a",
                   "alias": "cta"}, {"u1"}),
    ("alias_footer", {"filter": "clicked_alias_in_campaign", "campaign_id": "cmp_a",
                      "alias": "footer"}, {"u2"}),
    # u3 converted too, but from the control group.
    ("converted", {"filter": "converted_from_campaign", "campaign_id": "cmp_a"}, {"u1"}),
    ("converted_b", {"filter": "converted_from_campaign", "campaign_id": "cmp_a",
                     "conversion_behavior_index": 1}, {"u1"}),
    ("converted_c", {"filter": "converted_from_campaign", "campaign_id": "cmp_a",
                     "conversion_behavior_index": 2}, set()),
    ("campaign_control", {"filter": "in_campaign_control_group", "campaign_id": "cmp_a"},
     {"u3", "u4"}),
    ("last_cmp_more", {"filter": "last_received_campaign", "campaign_id": "cmp_b",
                       "op": "more_than_days_ago", "value": 30}, {"u5"}),
    ("last_cmp_less", {"filter": "last_received_campaign", "campaign_id": "cmp_b",
                       "op": "less_than_days_ago", "value": 30}, {"u1"}),
    ("last_cmp_before", {"filter": "last_received_campaign", "campaign_id": "cmp_b",
                         "op": "before", "value": "2025-02-01T00:00:00Z"}, {"u5"}),
    ("last_cmp_after", {"filter": "last_received_campaign", "campaign_id": "cmp_b",
                        "op": "after", "value": "2025-03-10T00:00:00+01:00"}, {"u1"}),
    # Strict comparisons: u1 received cmp_a exactly at 2025-03-02T10:00Z.
    ("last_cmp_strict", {"filter": "last_received_campaign", "campaign_id": "cmp_a",
                         "op": "after", "value": "2025-03-02T10:00:00Z"}, {"u2"}),
    # ---- Canvases by ID
    ("step_1", {"filter": "received_canvas_step", "canvas_id": "cnv_x", "step_id": "stp_1"},
     {"u1"}),
    ("step_2", {"filter": "received_canvas_step", "canvas_id": "cnv_x", "step_id": "stp_2"},
     {"u2"}),
    ("step_clicked", {"filter": "clicked_opened_step", "canvas_id": "cnv_x", "step_id": "stp_1",
                      "action": "clicked"}, {"u1"}),
    ("step_opened", {"filter": "clicked_opened_step", "canvas_id": "cnv_x", "step_id": "stp_2",
                     "action": "opened"}, {"u2"}),
    ("step_2_clicked", {"filter": "clicked_opened_step", "canvas_id": "cnv_x",
                        "step_id": "stp_2", "action": "clicked"}, set()),
    ("step_alias", {"filter": "clicked_alias_in_canvas_step", "canvas_id": "cnv_x",
                    "step_id": "stp_1", "alias": "cta"}, {"u1"}),
    ("step_alias_other_step", {"filter": "clicked_alias_in_canvas_step", "canvas_id": "cnv_x",
                               "step_id": "stp_2", "alias": "cta"}, set()),
    # u7 converted from the control group.
    ("converted_canvas", {"filter": "converted_from_canvas", "canvas_id": "cnv_x"}, {"u1"}),
    ("converted_canvas_idx", {"filter": "converted_from_canvas", "canvas_id": "cnv_x",
                              "conversion_behavior_index": 1}, set()),
    ("canvas_control", {"filter": "in_canvas_control_group", "canvas_id": "cnv_x"}, {"u7"}),
    ("variation_1", {"filter": "entered_canvas_variation", "canvas_id": "cnv_x",
                     "variation_id": "cvar_1"}, {"u1"}),
    ("variation_ctl", {"filter": "entered_canvas_variation", "canvas_id": "cnv_x",
                       "variation_id": "cvar_ctl"}, {"u7"}),
    ("not_variation_1", {"not": {"filter": "entered_canvas_variation", "canvas_id": "cnv_x",
                                 "variation_id": "cvar_1"}}, U - {"u1"}),
    ("last_step_after", {"filter": "last_received_canvas_step", "canvas_id": "cnv_x",
                         "step_id": "stp_2", "op": "after", "value": "2025-03-05T11:00:00Z"},
     {"u2"}),
    ("last_step_before", {"filter": "last_received_canvas_step", "canvas_id": "cnv_x",
                          "step_id": "stp_2", "op": "before", "value": "2025-03-05T11:00:00Z"},
     set()),
    # ---- by tag (cmp_old also carries promo, but its data is legacy-deleted: u8 never shows)
    ("tag_promo", {"filter": "received_with_tag", "tag": "promo"}, {"u1", "u2", "u6"}),
    ("tag_spring", {"filter": "received_with_tag", "tag": "spring"}, {"u1", "u2"}),
    ("tag_case", {"filter": "received_with_tag", "tag": "Promo"}, set()),
    ("tag_clicked", {"filter": "clicked_opened_with_tag", "tag": "promo", "action": "clicked"},
     {"u1", "u2", "u6"}),
    ("tag_opened", {"filter": "clicked_opened_with_tag", "tag": "promo", "action": "opened"},
     {"u1", "u2"}),
    ("tag_any_onboarding", {"filter": "clicked_opened_with_tag", "tag": "onboarding",
                            "action": "any"}, {"u1"}),
    # Last promo receipt: u1 03-04T09:30, u2 03-05T12:00, u6 03-06T08:00; 26 days before
    # as_of is 03-05T00:00.
    ("tag_last_less", {"filter": "last_received_with_tag", "tag": "promo",
                       "op": "less_than_days_ago", "value": 26}, {"u2", "u6"}),
    ("tag_last_more", {"filter": "last_received_with_tag", "tag": "promo",
                       "op": "more_than_days_ago", "value": 26}, {"u1"}),
    ("tag_last_fraction", {"filter": "last_received_with_tag", "tag": "promo",
                           "op": "less_than_days_ago", "value": 25.5}, {"u6"}),
    # ---- per-user summaries
    ("alias_any_cta", {"filter": "clicked_alias_in_any", "alias": "cta"}, {"u1"}),
    ("alias_any_footer", {"filter": "clicked_alias_in_any", "alias": "footer"}, {"u2"}),
    ("hard_bounced", {"filter": "hard_bounced"}, {"u8"}),
    ("marked_spam", {"filter": "marked_spam"}, {"u8"}),
    ("invalid_phone", {"filter": "invalid_phone_number"}, {"u9"}),
    ("never_cmp_a", {"filter": "never_received", "campaign_id": "cmp_a"}, U - {"u1", "u2"}),
    ("never_step_1", {"filter": "never_received", "canvas_id": "cnv_x", "step_id": "stp_1"},
     U - {"u1"}),
    ("feature_flag", {"filter": "feature_flag", "flag_id": "ff_new"}, {"u9"}),
    ("feature_flag_none", {"filter": "feature_flag", "flag_id": "ff_old"}, set()),
    ("last_engaged_ever", {"filter": "last_engaged"}, {"u1", "u2", "u6"}),
    ("last_engaged_after", {"filter": "last_engaged", "op": "after",
                            "value": "2025-03-06T00:00:00Z"}, {"u1", "u6"}),
    ("last_control", {"filter": "last_enrolled_any_control_group"}, {"u3", "u4", "u7"}),
    ("last_in_app", {"filter": "last_in_app_impression"}, {"u6"}),
    # u8's only receipt belongs to the legacy-deleted cmp_old: summaries still know it.
    ("last_any_ever", {"filter": "last_received_any"}, {"u1", "u2", "u4", "u5", "u6", "u8"}),
    ("last_any_more", {"filter": "last_received_any", "op": "more_than_days_ago", "value": 30},
     {"u4", "u8"}),
    # A count of days past the years a timestamp holds: everyone ever, and nobody.
    ("last_any_less_huge", {"filter": "last_received_any", "op": "less_than_days_ago",
                            "value": 1e9}, {"u1", "u2", "u4", "u5", "u6", "u8"}),
    ("last_any_more_huge", {"filter": "last_received_any", "op": "more_than_days_ago",
                            "value": 1e9}, set()),
    ("last_email", {"filter": "last_received_email"}, {"u1", "u2", "u8"}),
    ("last_push", {"filter": "last_received_push"}, {"u1", "u2", "u5"}),
    ("last_push_before", {"filter": "last_received_push", "op": "before", "value": TS_MAR_1},
     {"u5"}),
    ("last_sms", {"filter": "last_received_sms"}, {"u5"}),
    ("last_webhook", {"filter": "last_received_webhook"}, {"u4"}),
    ("last_whatsapp", {"filter": "last_received_whatsapp"}, {"u6"}),
    ("keyword_stop", {"filter": "last_sms_inbound_keyword_category", "category": "STOP",
                      "op": "after", "value": TS_MAR_1}, {"u9"}),
    ("keyword_stop_old", {"filter": "last_sms_inbound_keyword_category", "category": "STOP",
                          "op": "more_than_days_ago", "value": 30}, set()),
    ("keyword_help", {"filter": "last_sms_inbound_keyword_category", "category": "HELP",
                      "op": "after", "value": TS_MAR_1}, set()),
    ("news_feed_ever", {"filter": "last_viewed_news_feed"}, {"u9"}),
    ("news_feed_recent", {"filter": "last_viewed_news_feed", "op": "less_than_days_ago",
                          "value": 19}, {"u9"}),
    ("news_feed_old", {"filter": "last_viewed_news_feed", "op": "more_than_days_ago",
                       "value": 19}, set()),
    ("news_count_eq", {"filter": "news_feed_view_count", "op": "eq", "value": 2}, {"u9"}),
    ("news_count_gt", {"filter": "news_feed_view_count", "op": "gt", "value": 2}, set()),
    ("news_count_lt", {"filter": "news_feed_view_count", "op": "lt", "value": 1}, U - {"u9"}),
    # ---- composition
    ("everyone", None, U),
    ("all_empty", {"all": []}, U),
    ("any_empty", {"any": []}, set()),
    ("all", {"all": [{"filter": "received_with_tag", "tag": "promo"},
                     {"filter": "clicked_alias_in_any", "alias": "cta"}]}, {"u1"}),
    ("any", {"any": [{"filter": "hard_bounced"}, {"filter": "invalid_phone_number"},
                     {"filter": "in_canvas_control_group", "canvas_id": "cnv_x"}]},
     {"u7", "u8", "u9"}),
    ("not", {"not": {"filter": "received_with_tag", "tag": "promo"}}, U - {"u1", "u2", "u6"}),
    ("all_with_not", {"all": [{"filter": "received_with_tag", "tag": "promo"},
                              {"not": {"filter": "received_campaign", "campaign_id": "cmp_a"}}]},
     {"u6"}),
    ("all_only_nots", {"all": [{"not": {"filter": "last_received_any"}},
                               {"not": {"filter": "hard_bounced"}}]}, {"u3", "u7", "u9"}),
    ("nested", {"any": [{"all": [{"filter": "received_campaign", "campaign_id": "cmp_a"},
                                 {"not": {"filter": "clicked_opened_campaign",
                                          "campaign_id": "cmp_a", "action": "opened"}}]},
                        {"not": {"not": {"filter": "feature_flag", "flag_id": "ff_new"}}}]},
     {"u2", "u9"}),
)  # fmt: skip

CONSUMERS = [segment(f"seg_{case}", doc) for case, doc, _ in GOLDEN] + [
    segment("seg_unknown_filter", {"filter": "received_campaign_typo", "campaign_id": "cmp_a"}),
    segment("seg_legacy", {"filter": "received_campaign", "campaign_id": "cmp_old"}),
    segment("seg_unknown_item", {"filter": "received_campaign", "campaign_id": "cmp_nope"}),
    segment("seg_inactive", {"filter": "hard_bounced"}, status="inactive"),
]
# Components of cnv_x named through a parameter of another component type: each would select
# nobody, so each is an error (FORMATS.md section 2).
WRONG_KIND: dict[str, tuple[dict[str, t.Any], str]] = {
    "seg_step_as_variation": (
        {"filter": "entered_canvas_variation", "canvas_id": "cnv_x", "variation_id": "stp_1"},
        "variation_id stp_1 is not a variation of canvas cnv_x: it is a step",
    ),
    "seg_variation_as_step": (
        {"filter": "received_canvas_step", "canvas_id": "cnv_x", "step_id": "cvar_1"},
        "step_id cvar_1 is not a step of canvas cnv_x: it is a variation",
    ),
    "seg_message_as_step": (
        {"filter": "clicked_opened_step", "canvas_id": "cnv_x", "step_id": "smv_1",
         "action": "any"},
        "step_id smv_1 is not a step of canvas cnv_x: it is a step's message variant",
    ),
    "seg_step_message_as_variant": (
        {"filter": "received_campaign_variant", "campaign_id": "cmp_a", "variant_id": "smv_1"},
        "variant_id smv_1 is not part of campaign cmp_a",
    ),
}  # fmt: skip
CONSUMERS += [segment(cid, doc) for cid, (doc, _) in WRONG_KIND.items()]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("world"), CONSUMERS)


@pytest.fixture
def con(store: Path) -> t.Iterator[duckdb.DuckDBPyConnection]:
    with hot_connection(store, read_only=True) as connection:
        yield connection


def test_golden_cases_cover_every_filter() -> None:
    used = {match for _, doc, _ in GOLDEN for match in re.findall(r"'filter': '(\w+)'", repr(doc))}
    assert set(FILTERS) <= used


@pytest.mark.parametrize(("case", "doc", "expected"), GOLDEN, ids=[c for c, _, _ in GOLDEN])
def test_golden(con: duckdb.DuckDBPyConnection, case: str, doc: t.Any, expected: set[str]) -> None:
    assert evaluate_consumer(con, f"seg_{case}", AS_OF) == sorted(expected)
    expr = parse_audience(doc, consumer_id=case)
    assert evaluate_audience(con, expr, AS_OF) == sorted(expected)


def test_inactive_consumer_is_still_evaluated(con: duckdb.DuckDBPyConnection) -> None:
    assert evaluate_consumer(con, "seg_inactive", AS_OF) == ["u8"]


@pytest.mark.parametrize(
    ("consumer", "words"),
    [
        ("seg_unknown_filter", ["seg_unknown_filter", "received_campaign_typo"]),
        ("seg_legacy", ["seg_legacy", "received_campaign", LEGACY_POLICY]),
        ("seg_unknown_item", ["seg_unknown_item", "received_campaign", "cmp_nope"]),
    ],
)
def test_invalid_consumers_are_refused(
    con: duckdb.DuckDBPyConnection, consumer: str, words: list[str]
) -> None:
    with pytest.raises(AudienceRefused) as info:
        evaluate_consumer(con, consumer, AS_OF)
    for word in words:
        assert word in str(info.value)
    assert info.value.consumer_id == consumer


def test_unknown_consumer(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(UnknownConsumer, match="seg_missing"):
        evaluate_consumer(con, "seg_missing", AS_OF)


@pytest.mark.parametrize(
    "doc",
    [
        {"filter": "received_campaign", "campaign_id": "cmp_old"},
        {"not": {"filter": "last_received_campaign", "campaign_id": "cmp_old", "op": "before",
                 "value": TS_MAR_1}},
        {"filter": "never_received", "campaign_id": "cmp_old"},
        {"filter": "received_campaign_variant", "campaign_id": "cmp_a", "variant_id": "var_zz"},
        {"filter": "received_canvas_step", "canvas_id": "cmp_a", "step_id": "stp_1"},
    ],
)  # fmt: skip
def test_ad_hoc_expressions_are_checked_against_the_catalog(
    con: duckdb.DuckDBPyConnection, doc: dict[str, t.Any]
) -> None:
    expr = parse_audience(doc, consumer_id="adhoc")
    with pytest.raises(AudienceRefused, match="adhoc"):
        evaluate_audience(con, expr, AS_OF, consumer_id="adhoc")


@pytest.mark.parametrize("consumer", sorted(WRONG_KIND))
def test_a_component_of_another_type_is_refused_by_the_catalog_and_ad_hoc_alike(
    con: duckdb.DuckDBPyConnection, consumer: str
) -> None:
    doc, message = WRONG_KIND[consumer]
    with pytest.raises(AudienceRefused) as stored:
        evaluate_consumer(con, consumer, AS_OF)
    expr = parse_audience(doc, consumer_id=consumer)
    with pytest.raises(AudienceRefused) as ad_hoc:
        evaluate_audience(con, expr, AS_OF, consumer_id=consumer)
    expected = f"consumer {consumer}, filter {doc['filter']} at audience: {message}"
    assert stored.value.errors == ad_hoc.value.errors == [expected]


def test_legacy_refusal_also_when_only_the_lifecycle_knows(store: Path, tmp_path: Path) -> None:
    db = copy_store(store, tmp_path)
    with hot_connection(db) as con:
        con.execute("UPDATE item_lifecycle SET state = 'legacy_deleted' WHERE item_id = 'cmp_b'")
        expr = parse_audience({"filter": "received_campaign", "campaign_id": "cmp_b"},
                              consumer_id="c1")  # fmt: skip
        with pytest.raises(AudienceRefused, match=LEGACY_POLICY):
            evaluate_audience(con, expr, AS_OF, consumer_id="c1")


def test_sql_is_parameterised() -> None:
    """IDs, tags and aliases travel as parameters; hostile values change nothing in the text."""
    hostile = "x'); DROP TABLE user_summaries; --"
    doc = {"all": [
        {"filter": "received_campaign_variant", "campaign_id": hostile, "variant_id": hostile},
        {"filter": "clicked_alias_in_campaign", "campaign_id": hostile, "alias": hostile},
        {"filter": "received_with_tag", "tag": hostile},
        {"filter": "clicked_alias_in_any", "alias": hostile},
        {"filter": "feature_flag", "flag_id": hostile},
        {"filter": "last_sms_inbound_keyword_category", "category": hostile, "op": "before",
         "value": TS_MAR_1},
        {"not": {"filter": "entered_canvas_variation", "canvas_id": hostile,
                 "variation_id": hostile}},
    ]}  # fmt: skip
    sql, params = audience_sql(parse_audience(doc, consumer_id="c"), AS_OF)
    assert "DROP" not in sql and hostile not in sql
    assert params.count(hostile) >= 9
    con = duckdb.connect()
    from ix_pipeline.store.hot import _init

    _init(con)
    assert con.execute(sql, params).fetchall() == []
    assert con.execute("SELECT count(*) FROM user_summaries").fetchall() == [(0,)]


def test_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="time zone"):
        audience_sql(All(()), datetime(2025, 3, 31))


def test_days_are_relative_to_as_of(con: duckdb.DuckDBPyConnection) -> None:
    expr = parse_audience(
        {"filter": "last_received_campaign", "campaign_id": "cmp_b",
         "op": "less_than_days_ago", "value": 30},
        consumer_id="c",
    )  # fmt: skip
    # On 2025-02-10 u5's receipt (01-20) is recent and u1's (03-21) lies ahead: it is still
    # "later than 30 days before as_of".
    assert evaluate_audience(con, expr, datetime(2025, 2, 10, tzinfo=UTC)) == ["u1", "u5"]
    assert evaluate_audience(con, expr, datetime(2025, 6, 1, tzinfo=UTC)) == []


def test_expired_items_are_invisible_to_id_and_tag_filters(store: Path, tmp_path: Path) -> None:
    db = copy_store(store, tmp_path)
    with hot_connection(db) as con:
        # Rows still present: the lifecycle state alone must hide them.
        mark_expired(con, "cmp_a", delete_rows=False)
        assert evaluate_consumer(con, "seg_received_campaign", AS_OF) == []
        assert evaluate_consumer(con, "seg_variant_control", AS_OF) == []
        assert evaluate_consumer(con, "seg_tag_promo", AS_OF) == ["u1", "u2", "u6"]
        assert evaluate_consumer(con, "seg_tag_spring", AS_OF) == []
        assert evaluate_consumer(con, "seg_not", AS_OF) == sorted(U - {"u1", "u2", "u6"})
        # Summaries do not expire.
        assert evaluate_consumer(con, "seg_never_cmp_a", AS_OF) == sorted(U - {"u1", "u2"})
        assert evaluate_consumer(con, "seg_alias_any_footer", AS_OF) == ["u2"]
        con.execute("UPDATE item_lifecycle SET state = 'restoring' WHERE item_id = 'cmp_a'")
        assert evaluate_consumer(con, "seg_received_campaign", AS_OF) == []
        con.execute("UPDATE item_lifecycle SET state = 'expiring' WHERE item_id = 'cmp_a'")
        assert evaluate_consumer(con, "seg_received_campaign", AS_OF) == ["u1", "u2"]


# --------------------------------------------------------------------------------------------
# Set algebra: random trees against Python sets of the golden leaves.

_LEAVES = [(doc, expected) for _, doc, expected in GOLDEN if doc and "filter" in doc]


def _trees() -> st.SearchStrategy[tuple[t.Any, set[str]]]:
    leaf = st.sampled_from(_LEAVES)

    def extend(
        children: st.SearchStrategy[tuple[t.Any, set[str]]],
    ) -> st.SearchStrategy[tuple[t.Any, set[str]]]:
        def all_of(items: list[tuple[t.Any, set[str]]]) -> tuple[t.Any, set[str]]:
            result = set(U)
            for _, s in items:
                result &= s
            return {"all": [d for d, _ in items]}, result

        def any_of(items: list[tuple[t.Any, set[str]]]) -> tuple[t.Any, set[str]]:
            result: set[str] = set()
            for _, s in items:
                result |= s
            return {"any": [d for d, _ in items]}, result

        lists = st.lists(children, max_size=4)
        return st.one_of(
            lists.map(all_of),
            lists.map(any_of),
            children.map(lambda c: ({"not": c[0]}, U - c[1])),
        )

    return st.recursive(leaf, extend, max_leaves=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees())
def test_set_algebra_matches_python_sets(
    con: duckdb.DuckDBPyConnection, tree: tuple[t.Any, set[str]]
) -> None:
    doc, expected = tree
    expr: Expr = parse_audience(doc, consumer_id="prop")
    assert evaluate_audience(con, expr, AS_OF) == sorted(expected)


def test_deep_nesting_compiles(con: duckdb.DuckDBPyConnection) -> None:
    expr: Expr = parse_audience({"filter": "hard_bounced"}, consumer_id="deep")
    for depth in range(60):
        expr = Not(expr) if depth % 2 else Any((expr,))
    assert evaluate_audience(con, expr, AS_OF) == ["u8"]
