"""Audience expressions: grammar, errors, references and catalog validation."""

from __future__ import annotations

import pickle
import re
import sys
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ix_pipeline.audience.expressions import (
    FILTERS,
    LEGACY_POLICY,
    MAX_DEPTH,
    All,
    Any,
    AudienceError,
    FilterReference,
    ItemInfo,
    Leaf,
    Not,
    collect_errors,
    parse_audience,
    references,
    to_document,
    validate_references,
)

CONSUMER = "seg_0007"
TS = "2025-01-31T10:00:00Z"

# One valid leaf per filter of FORMATS.md section 2 (the list is copied from the spec, not
# from FILTERS, so a filter missing from the registry fails here).
VALID_LEAVES: dict[str, dict[str, t.Any]] = {
    "received_campaign": {"campaign_id": "cmp_1"},
    "received_campaign_variant": {"campaign_id": "cmp_1", "variant_id": "var_a"},
    "clicked_opened_campaign": {"campaign_id": "cmp_1", "action": "clicked"},
    "clicked_alias_in_campaign": {"campaign_id": "cmp_1", "alias": "cta"},
    "converted_from_campaign": {"campaign_id": "cmp_1", "conversion_behavior_index": 0},
    "in_campaign_control_group": {"campaign_id": "cmp_1"},
    "last_received_campaign": {"campaign_id": "cmp_1", "op": "before", "value": TS},
    "received_canvas_step": {"canvas_id": "cnv_1", "step_id": "stp_1"},
    "clicked_opened_step": {"canvas_id": "cnv_1", "step_id": "stp_1", "action": "opened"},
    "clicked_alias_in_canvas_step": {"canvas_id": "cnv_1", "step_id": "stp_1", "alias": "cta"},
    "converted_from_canvas": {"canvas_id": "cnv_1"},
    "in_canvas_control_group": {"canvas_id": "cnv_1"},
    "entered_canvas_variation": {"canvas_id": "cnv_1", "variation_id": "cvar_1"},
    "last_received_canvas_step": {
        "canvas_id": "cnv_1",
        "step_id": "stp_1",
        "op": "more_than_days_ago",
        "value": 30,
    },
    "received_with_tag": {"tag": "promo"},
    "clicked_opened_with_tag": {"tag": "promo", "action": "any"},
    "last_received_with_tag": {"tag": "promo", "op": "less_than_days_ago", "value": 7.5},
    "clicked_alias_in_any": {"alias": "cta"},
    "hard_bounced": {},
    "marked_spam": {},
    "invalid_phone_number": {},
    "never_received": {"campaign_id": "cmp_1"},
    "feature_flag": {"flag_id": "ff_1"},
    "last_engaged": {"op": "after", "value": "2025-01-31T10:00:00+02:00"},
    "last_enrolled_any_control_group": {"op": "more_than_days_ago", "value": 0},
    "last_in_app_impression": {},
    "last_received_any": {"op": "less_than_days_ago", "value": 3},
    "last_received_email": {"op": "before", "value": TS},
    "last_received_push": {},
    "last_received_sms": {"op": "after", "value": TS},
    "last_received_webhook": {"op": "more_than_days_ago", "value": 90},
    "last_received_whatsapp": {"op": "less_than_days_ago", "value": 1},
    "last_sms_inbound_keyword_category": {"category": "opt_in", "op": "after", "value": TS},
    "last_viewed_news_feed": {"op": "before", "value": TS},
    "news_feed_view_count": {"op": "gt", "value": 3},
}

ID_FILTERS = {
    "received_campaign",
    "received_campaign_variant",
    "clicked_opened_campaign",
    "clicked_alias_in_campaign",
    "converted_from_campaign",
    "in_campaign_control_group",
    "last_received_campaign",
    "received_canvas_step",
    "clicked_opened_step",
    "clicked_alias_in_canvas_step",
    "converted_from_canvas",
    "in_canvas_control_group",
    "entered_canvas_variation",
    "last_received_canvas_step",
}
TAG_FILTERS = {"received_with_tag", "clicked_opened_with_tag", "last_received_with_tag"}


def leaf(name: str, **params: t.Any) -> dict[str, t.Any]:
    return {"filter": name, **params}


def only_error(doc: t.Any) -> AudienceError:
    with pytest.raises(AudienceError) as caught:
        parse_audience(doc, consumer_id=CONSUMER)
    return caught.value


# ------------------------------------------------------------------------------------------
# Registry


def test_registry_covers_exactly_the_spec_filters() -> None:
    assert set(FILTERS) == set(VALID_LEAVES)


@pytest.mark.parametrize("name", sorted(VALID_LEAVES))
def test_registry_family(name: str) -> None:
    spec = FILTERS[name]
    expected = "id" if name in ID_FILTERS else "tag" if name in TAG_FILTERS else "summary"
    assert spec.family == expected
    assert spec.exempts == (expected == "id")
    if expected == "id":
        assert spec.item_type in ("campaign", "canvas")
        assert spec.item_param == f"{spec.item_type}_id"
    else:
        assert spec.item_type is None


@pytest.mark.parametrize(
    ("name", "component"),
    [
        ("received_campaign_variant", "variant_id"),
        ("received_canvas_step", "step_id"),
        ("entered_canvas_variation", "variation_id"),
        ("received_campaign", None),
    ],
)
def test_registry_component_param(name: str, component: str | None) -> None:
    assert FILTERS[name].component_param == component


def test_every_component_parameter_names_one_component_type() -> None:
    params = {
        (target.component_param, target.component_type)
        for spec in FILTERS.values()
        for target in spec.targets
        if target.component_param
    }
    assert params == {("variant_id", "variant"), ("step_id", "step"),
                      ("variation_id", "canvas_variation")}  # fmt: skip


def test_registry_enums() -> None:
    assert FILTERS["clicked_opened_campaign"].allowed_values("action") == (
        "clicked",
        "opened",
        "any",
    )
    assert FILTERS["last_received_campaign"].allowed_values("op") == (
        "before",
        "after",
        "more_than_days_ago",
        "less_than_days_ago",
    )
    assert FILTERS["news_feed_view_count"].allowed_values("op") == ("eq", "gt", "lt")


# ------------------------------------------------------------------------------------------
# Valid documents


@pytest.mark.parametrize("name", sorted(VALID_LEAVES))
def test_every_filter_parses(name: str) -> None:
    params = VALID_LEAVES[name]
    expr = parse_audience({"all": [leaf(name, **params)]}, consumer_id=CONSUMER)
    assert isinstance(expr, All)
    (parsed,) = expr.children
    assert parsed == Leaf(name, params, "audience.all[0]")
    assert collect_errors({"all": [leaf(name, **params)]}, consumer_id=CONSUMER) == []


@pytest.mark.parametrize(
    "params",
    [
        {"campaign_id": "cmp_1"},
        {"canvas_id": "cnv_1", "step_id": "stp_1"},
    ],
)
def test_never_received_takes_campaign_or_canvas_step(params: dict[str, str]) -> None:
    assert isinstance(parse_audience(leaf("never_received", **params), consumer_id="c"), Leaf)


def test_none_is_everyone_and_empty_lists_are_identities() -> None:
    assert parse_audience(None, consumer_id=CONSUMER) == All(())
    assert parse_audience({"all": []}, consumer_id=CONSUMER) == All(())
    assert parse_audience({"any": []}, consumer_id=CONSUMER) == Any(())


def test_paths_locate_nested_nodes() -> None:
    doc = {
        "all": [
            leaf("hard_bounced"),
            {"not": {"any": [leaf("received_with_tag", tag="x"), leaf("marked_spam")]}},
        ]
    }
    expr = parse_audience(doc, consumer_id=CONSUMER)
    assert isinstance(expr, All)
    negated = expr.children[1]
    assert isinstance(negated, Not) and isinstance(negated.child, Any)
    assert [c.path for c in negated.child.children] == [
        "audience.all[1].not.any[0]",
        "audience.all[1].not.any[1]",
    ]


def test_leaf_params_are_read_only_and_copied() -> None:
    doc = leaf("received_campaign", campaign_id="cmp_1")
    expr = parse_audience(doc, consumer_id=CONSUMER)
    doc["campaign_id"] = "changed"
    assert isinstance(expr, Leaf)
    assert expr.params == {"campaign_id": "cmp_1"}
    with pytest.raises(TypeError):
        expr.params["campaign_id"] = "x"  # type: ignore[index]


def test_depth_limit_is_inclusive() -> None:
    doc: dict[str, t.Any] = leaf("hard_bounced")
    for _ in range(MAX_DEPTH - 1):
        doc = {"not": doc}
    assert isinstance(parse_audience(doc, consumer_id=CONSUMER), Not)
    error = only_error({"not": doc})
    assert "nested deeper than" in str(error)


# ------------------------------------------------------------------------------------------
# Invalid documents: each names the consumer and, where there is one, the filter


@pytest.mark.parametrize(
    ("doc", "filter_name", "fragment"),
    [
        pytest.param(leaf("received_campagin", campaign_id="c"), "received_campagin",
                     "unknown filter", id="unknown-filter"),
        pytest.param(leaf("received_campaign"), "received_campaign",
                     "missing parameter campaign_id", id="missing-param"),
        pytest.param(leaf("received_canvas_step", canvas_id="c"), "received_canvas_step",
                     "missing parameter step_id", id="missing-component"),
        pytest.param(leaf("clicked_opened_campaign", campaign_id="c", action="tapped"),
                     "clicked_opened_campaign", "action must be one of clicked, opened, any",
                     id="bad-action"),
        pytest.param(leaf("last_received_campaign", campaign_id="c", op="since", value=TS),
                     "last_received_campaign", "op must be one of before, after",
                     id="bad-time-op"),
        pytest.param(leaf("news_feed_view_count", op="before", value=3),
                     "news_feed_view_count", "op must be one of eq, gt, lt", id="bad-count-op"),
        pytest.param(leaf("last_received_email", op="before", value="2025-01-31T10:00:00"),
                     "last_received_email", "ISO-8601 timestamp with a time zone",
                     id="timestamp-without-zone"),
        pytest.param(leaf("last_received_email", op="after", value="last tuesday"),
                     "last_received_email", "ISO-8601", id="unparseable-timestamp"),
        pytest.param(leaf("last_received_email", op="after", value=1700000000),
                     "last_received_email", "ISO-8601", id="timestamp-as-number"),
        pytest.param(leaf("last_received_with_tag", tag="t", op="more_than_days_ago", value=-1),
                     "last_received_with_tag", "non-negative number of days",
                     id="negative-days"),
        pytest.param(leaf("last_received_any", op="less_than_days_ago", value="3"),
                     "last_received_any", "non-negative number of days", id="days-as-string"),
        pytest.param(leaf("last_received_any", op="less_than_days_ago", value=True),
                     "last_received_any", "non-negative number of days", id="days-as-bool"),
        pytest.param(leaf("last_received_any", op="less_than_days_ago", value=float("nan")),
                     "last_received_any", "non-negative number of days", id="days-nan"),
        pytest.param(leaf("news_feed_view_count", op="eq", value=1.5),
                     "news_feed_view_count", "non-negative integer count", id="count-float"),
        pytest.param(leaf("received_campaign", campaign_id=42), "received_campaign",
                     "campaign_id must be a non-empty string", id="id-wrong-type"),
        pytest.param(leaf("received_campaign", campaign_id=""), "received_campaign",
                     "campaign_id must be a non-empty string", id="id-empty"),
        pytest.param(leaf("received_with_tag", tag=["a"]), "received_with_tag",
                     "tag must be a non-empty string", id="tag-wrong-type"),
        pytest.param(leaf("clicked_alias_in_any", alias=None), "clicked_alias_in_any",
                     "alias must be a non-empty string", id="alias-null"),
        pytest.param(leaf("converted_from_campaign", campaign_id="c",
                          conversion_behavior_index=-1),
                     "converted_from_campaign", "non-negative integer", id="bad-index"),
        pytest.param(leaf("received_campaign", campaign_id="c", campaign_ids=["d"]),
                     "received_campaign", "unknown parameter 'campaign_ids'", id="extra-param"),
        pytest.param(leaf("hard_bounced", since=TS), "hard_bounced",
                     "hard_bounced takes no parameters", id="extra-param-on-bare-filter"),
        pytest.param(leaf("last_engaged", op="before"), "last_engaged",
                     "missing parameter value", id="op-without-value"),
        pytest.param(leaf("never_received"), "never_received",
                     "campaign_id or canvas_id + step_id", id="never-received-nothing"),
        pytest.param(leaf("never_received", campaign_id="c", canvas_id="d", step_id="s"),
                     "never_received", "not parameters of both", id="never-received-both"),
        pytest.param(leaf("never_received", canvas_id="d"), "never_received",
                     "missing parameter step_id", id="never-received-no-step"),
        pytest.param({"filter": 7}, None, "filter name must be a non-empty string",
                     id="filter-name-not-string"),
        pytest.param(["received_campaign"], None, "expected an object", id="list-node"),
        pytest.param("everyone", None, "expected an object", id="string-node"),
        pytest.param({"every": []}, None, "unknown node shape", id="unknown-shape"),
        pytest.param({}, None, "unknown node shape", id="empty-object"),
        pytest.param({"all": [], "any": []}, None, "ambiguous node", id="ambiguous"),
        pytest.param({"all": [], "note": "x"}, None, "unexpected key 'note'", id="extra-key"),
        pytest.param({"all": {"filter": "hard_bounced"}}, None, "must hold a list",
                     id="all-not-list"),
        pytest.param({"all": [None]}, None, "got null", id="null-child"),
    ],
)  # fmt: skip
def test_invalid_expression_names_consumer_and_filter(
    doc: t.Any, filter_name: str | None, fragment: str
) -> None:
    error = only_error(doc)
    assert isinstance(error, ValueError)
    assert error.consumer_id == CONSUMER
    assert error.filter_name == filter_name
    assert fragment in error.message
    assert str(error).startswith(f"consumer {CONSUMER}")
    if filter_name is not None:
        assert f"filter {filter_name} at " in str(error)
    # collect_errors agrees with parse_audience on the first error
    assert str(collect_errors(doc, consumer_id=CONSUMER)[0]) == str(error)


def test_error_message_format() -> None:
    error = only_error({"all": [leaf("hard_bounced"), leaf("received_campaign")]})
    assert str(error) == (
        "consumer seg_0007, filter received_campaign at audience.all[1]: "
        "missing parameter campaign_id"
    )


@pytest.mark.parametrize("depth", [1_000, 200_000])
def test_deep_nesting_is_a_clean_error(depth: int) -> None:
    doc: t.Any = leaf("received_campaign", campaign_id="cmp_1")
    for _ in range(depth):
        doc = {"not": doc}
    assert depth > sys.getrecursionlimit() // 2  # deep enough that recursion would hurt
    error = only_error(doc)  # not a RecursionError
    assert error.consumer_id == CONSUMER
    assert f"nested deeper than {MAX_DEPTH} levels" in str(error)
    errors = collect_errors(doc, consumer_id=CONSUMER)
    assert len(errors) == 1


@pytest.mark.parametrize(
    ("opening", "closing", "levels"),
    [('{"not": ', "}", 800), ('{"any": [', "]}", 300)],
)
def test_deep_nesting_from_json_text(opening: str, closing: str, levels: int) -> None:
    # Parseable by json (its own C recursion limit is near 1,000 containers), far too deep
    # for an audience.
    import json

    text = opening * levels + '{"filter": "hard_bounced"}' + closing * levels
    error = only_error(json.loads(text))
    assert "nested deeper than" in error.message
    assert error.path.startswith("audience." + opening[2:5])


def test_collect_errors_reports_every_problem() -> None:
    doc = {
        "all": [
            leaf("received_campaign"),
            leaf("bogus_filter"),
            {"not": leaf("clicked_opened_step", canvas_id="c", step_id="s", action="x")},
            leaf("last_received_campaign", campaign_id="c", op="before", value="yesterday"),
            leaf("hard_bounced"),  # valid: no error
            {"any": [3, leaf("received_with_tag", tag="t", extra=1)]},
        ]
    }
    errors = collect_errors(doc, consumer_id=CONSUMER)
    got = [(e.filter_name, e.path) for e in errors]
    assert got == [
        ("received_campaign", "audience.all[0]"),
        ("bogus_filter", "audience.all[1]"),
        ("clicked_opened_step", "audience.all[2].not"),
        ("last_received_campaign", "audience.all[3]"),
        (None, "audience.all[5].any[0]"),
        ("received_with_tag", "audience.all[5].any[1]"),
    ]
    assert all(e.consumer_id == CONSUMER for e in errors)
    # several problems of one leaf are all reported
    many = collect_errors(leaf("received_campaign_variant", variant_id=3, x=1), consumer_id="c")
    assert len(many) == 3


def test_error_pickles() -> None:
    error = AudienceError("c1", "received_campaign", "audience", "missing parameter campaign_id")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.filter_name == "received_campaign"
    assert again.to_dict()["consumer_id"] == "c1"


# ------------------------------------------------------------------------------------------
# References


def test_references_tell_tags_from_ids_and_carry_components() -> None:
    doc = {
        "any": [
            leaf("received_campaign_variant", campaign_id="cmp_1", variant_id="var_a"),
            {"not": leaf("received_with_tag", tag="promo")},
            leaf("entered_canvas_variation", canvas_id="cnv_1", variation_id="cvar_1"),
            leaf("clicked_opened_step", canvas_id="cnv_1", step_id="stp_1", action="any"),
            leaf("converted_from_campaign", campaign_id="cmp_2"),
            leaf("hard_bounced"),
            leaf("never_received", canvas_id="cnv_2", step_id="stp_9"),
            leaf("never_received", campaign_id="cmp_3"),
            leaf("feature_flag", flag_id="ff_1"),
        ]
    }
    refs = references(parse_audience(doc, consumer_id=CONSUMER))
    assert refs == [
        FilterReference(
            "received_campaign_variant", "audience.any[0]", "id", "campaign", "cmp_1", "var_a", None
        ),
        FilterReference("received_with_tag", "audience.any[1].not", "tag", None, None, None,
                        "promo"),
        FilterReference(
            "entered_canvas_variation", "audience.any[2]", "id", "canvas", "cnv_1", "cvar_1", None
        ),
        FilterReference(
            "clicked_opened_step", "audience.any[3]", "id", "canvas", "cnv_1", "stp_1", None
        ),
        FilterReference(
            "converted_from_campaign", "audience.any[4]", "id", "campaign", "cmp_2", None, None
        ),
        FilterReference(
            "never_received", "audience.any[6]", "summary", "canvas", "cnv_2", "stp_9", None
        ),
        FilterReference(
            "never_received", "audience.any[7]", "summary", "campaign", "cmp_3", None, None
        ),
    ]  # fmt: skip
    assert [r.exempts for r in refs] == [True, False, True, True, True, False, False]


@pytest.mark.parametrize("name", sorted(VALID_LEAVES))
def test_references_by_family(name: str) -> None:
    refs = references(parse_audience(leaf(name, **VALID_LEAVES[name]), consumer_id="c"))
    if name in ID_FILTERS:
        (ref,) = refs
        assert ref.by == "id" and ref.item_id in ("cmp_1", "cnv_1") and ref.tag is None
        assert ref.item_type == FILTERS[name].item_type
    elif name in TAG_FILTERS:
        (ref,) = refs
        assert ref.by == "tag" and ref.tag == "promo" and ref.item_id is None
    elif name == "never_received":
        (ref,) = refs
        assert ref.by == "summary" and not ref.exempts
    else:
        assert refs == []


def test_references_of_everyone_is_empty() -> None:
    assert references(parse_audience(None, consumer_id="c")) == []


# ------------------------------------------------------------------------------------------
# Catalog validation

CATALOG = {
    "cmp_1": ItemInfo("campaign", components={"variant": frozenset({"var_a", "ctl_1"})}),
    "cnv_1": ItemInfo("canvas", components={"canvas_variation": frozenset({"cvar_1"}),
                                            "step": frozenset({"stp_1"}),
                                            "step_variant": frozenset({"smv_1"})}),
    "cmp_old": ItemInfo("campaign", legacy_deleted=True, components={"variant": frozenset({"v"})}),
}  # fmt: skip


def validate(doc: t.Any) -> list[AudienceError]:
    expr = parse_audience(doc, consumer_id=CONSUMER)
    return validate_references(expr, consumer_id=CONSUMER, known_items=CATALOG)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        pytest.param(leaf("received_campaign", campaign_id="cmp_404"),
                     "campaign ID cmp_404 is not in the catalog", id="unknown-id"),
        pytest.param(leaf("never_received", canvas_id="cnv_404", step_id="s"),
                     "canvas ID cnv_404 is not in the catalog", id="unknown-id-summary"),
        pytest.param(leaf("received_campaign", campaign_id="cnv_1"),
                     "cnv_1 is a canvas, but received_campaign takes a campaign ID",
                     id="type-mismatch"),
        pytest.param(leaf("received_canvas_step", canvas_id="cmp_1", step_id="stp_1"),
                     "cmp_1 is a campaign", id="type-mismatch-canvas"),
        pytest.param(leaf("received_campaign_variant", campaign_id="cmp_1", variant_id="var_z"),
                     "variant_id var_z is not part of campaign cmp_1", id="unknown-variant"),
        pytest.param(leaf("clicked_alias_in_canvas_step", canvas_id="cnv_1", step_id="stp_9",
                          alias="a"),
                     "step_id stp_9 is not part of canvas cnv_1", id="unknown-step"),
        pytest.param(leaf("entered_canvas_variation", canvas_id="cnv_1", variation_id="cv9"),
                     "variation_id cv9 is not part of canvas cnv_1", id="unknown-variation"),
        pytest.param(leaf("entered_canvas_variation", canvas_id="cnv_1", variation_id="stp_1"),
                     "variation_id stp_1 is not a variation of canvas cnv_1: it is a step",
                     id="step-as-variation"),
        pytest.param(leaf("received_canvas_step", canvas_id="cnv_1", step_id="cvar_1"),
                     "step_id cvar_1 is not a step of canvas cnv_1: it is a variation",
                     id="variation-as-step"),
        pytest.param(leaf("clicked_opened_step", canvas_id="cnv_1", step_id="smv_1",
                          action="any"),
                     "step_id smv_1 is not a step of canvas cnv_1: it is a step's message variant",
                     id="step-message-as-step"),
        pytest.param(leaf("never_received", canvas_id="cnv_1", step_id="cvar_1"),
                     "step_id cvar_1 is not a step of canvas cnv_1: it is a variation",
                     id="variation-as-step-summary"),
        pytest.param(leaf("in_campaign_control_group", campaign_id="cmp_old"),
                     LEGACY_POLICY, id="legacy-deleted"),
    ],
)  # fmt: skip
def test_validate_references_errors(doc: dict[str, t.Any], fragment: str) -> None:
    (error,) = validate({"all": [leaf("hard_bounced"), doc]})
    assert error.consumer_id == CONSUMER
    assert error.filter_name == doc["filter"]
    assert error.path == "audience.all[1]"
    assert fragment in error.message
    assert re.match(rf"consumer {CONSUMER}, filter {doc['filter']} at audience\.all\[1\]: ",
                    str(error))  # fmt: skip


def test_legacy_message_names_the_policy() -> None:
    (error,) = validate(leaf("received_campaign", campaign_id="cmp_old"))
    assert "interaction data deleted under the pre-2024 retention policy" in str(error)


def test_validate_references_accepts_valid_and_ignores_tags() -> None:
    doc = {
        "all": [
            leaf("received_campaign_variant", campaign_id="cmp_1", variant_id="ctl_1"),
            leaf("received_canvas_step", canvas_id="cnv_1", step_id="stp_1"),
            leaf("received_with_tag", tag="no-such-tag"),
            leaf("never_received", campaign_id="cmp_1"),
        ]
    }
    assert validate(doc) == []


def test_validate_references_reports_all() -> None:
    doc = {
        "any": [
            leaf("received_campaign", campaign_id="nope"),
            leaf("received_campaign_variant", campaign_id="cmp_old", variant_id="zz"),
        ]
    }
    assert [e.path for e in validate(doc)] == [
        "audience.any[0]",
        "audience.any[1]",
        "audience.any[1]",
    ]


def test_item_info_from_catalog_document() -> None:
    campaign = {
        "id": "cmp_1",
        "type": "campaign",
        "messages": {"var_a": {"channel": "email"}, "ctl": {"type": "control"}},
        "interaction_data_deleted_at": "2023-06-01T00:00:00Z",
    }
    canvas = {
        "id": "cnv_1",
        "type": "canvas",
        "variants": [{"id": "cv1", "name": "A", "first_step_ids": ["s1"]}],
        "steps": [{"id": "s1", "messages": {"m1": {"channel": "push"}}}],
        "interaction_data_deleted_at": None,
    }
    assert ItemInfo.from_document(campaign) == ItemInfo(
        "campaign", True, {"variant": frozenset({"var_a", "ctl"})}
    )
    assert ItemInfo.from_document(canvas) == ItemInfo(
        "canvas",
        False,
        {"canvas_variation": frozenset({"cv1"}), "step": frozenset({"s1"}),
         "step_variant": frozenset({"m1"})},
    )  # fmt: skip
    with pytest.raises(ValueError):
        ItemInfo.from_document({"id": "seg", "type": "segment"})


# ------------------------------------------------------------------------------------------
# Round trip (property)

_ids = st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=8)
_leaves = st.sampled_from(sorted(VALID_LEAVES)).map(lambda n: leaf(n, **VALID_LEAVES[n])) | (
    st.builds(lambda i: leaf("received_campaign", campaign_id=i), _ids)
)
_docs = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: {"all": xs}),
        st.lists(inner, max_size=4).map(lambda xs: {"any": xs}),
        inner.map(lambda x: {"not": x}),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_docs)
def test_round_trip(doc: dict[str, t.Any]) -> None:
    expr = parse_audience(doc, consumer_id=CONSUMER)
    assert to_document(expr) == doc
    assert parse_audience(to_document(expr), consumer_id=CONSUMER) == expr
    assert collect_errors(doc, consumer_id=CONSUMER) == []
