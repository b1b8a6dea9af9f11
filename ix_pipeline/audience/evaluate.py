"""Evaluate parsed audience expressions against the hot store, set-wise, in one SQL query.

``audience_sql`` compiles an expression tree into one parameterised DuckDB query returning the
``user_id`` column of the matching users; nothing is decided user by user in Python, so a
segment over a million users costs one query plan.

Sets and their algebra:

* The universe is ``user_summaries``: every user ingestion has ever seen, whether or not any
  of their interaction data is visible. ``not X`` is the universe minus X, ``all`` an
  intersection (``all []`` = the universe), ``any`` a union (``any []`` = nobody).
* Interaction filters (ID and tag families) read only the ``visible_*`` views, so an item
  whose data is expired, being restored or legacy-deleted contributes no row, exactly as if
  its rows did not exist. Summary filters read ``user_summaries`` / ``user_inbound_keywords``,
  which expiry never touches.

Semantics the spec leaves open, fixed here:

* "Received" is kind ``received``: the counting point of each channel (Send, sms Delivery,
  in-app/content card/banner Impression), see ``ingest.event_types``.
* ``received_campaign_variant`` with a variant ID matches users who received that variant; a
  user enrolled in the control group (``users.campaigns.EnrollInControl``) matches the control
  variant when the enrollment's ``message_variation_id`` is that variant, or, when the
  enrollment carries no ``message_variation_id``, when the catalog marks the variant as the
  campaign's control message.
* Conversions of control-group users do not count for ``converted_from_*`` (the platform
  reports them separately): users enrolled in the item's control group are subtracted.
* ``clicked_alias_in_*`` means an email click (``users.messages.email.Click``) carrying that
  ``link_alias``: link aliasing is an email feature.
* Opens and clicks count whatever Currents delivered (machine opens and suspected bot clicks
  included): the filters carry no option to leave them out.
* Time comparisons are strict: ``before T`` is last < T, ``after T`` is last > T,
  ``more_than_days_ago N`` is last < as_of - N days, ``less_than_days_ago N`` is
  last > as_of - N days (fractional days allowed). ``as_of`` only anchors the day counts; it
  does not hide events later than itself (summaries cannot be rolled back, and both families
  must agree).
* ``last_*`` summary filters without ``op`` mean "ever happened" (the column is not null).
* ``news_feed_view_count`` treats a user without views as 0 views (``lt 3`` includes them).
* ``never_received`` is the universe minus the users that ``user_items_received`` pairs with
  the campaign ID or Canvas step ID; it reads summaries, so expiry does not change it.
* Tag filters read every campaign and Canvas whose ``tags`` contain the tag exactly
  (case-sensitive), through the same visible views.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any as AnyValue

import duckdb

from ix_pipeline.audience.expressions import (
    All,
    Any,
    Expr,
    ItemInfo,
    Leaf,
    Not,
    parse_audience,
    parse_timestamp,
    references,
    validate_references,
)

__all__ = [
    "AudienceRefused",
    "UnknownConsumer",
    "audience_sql",
    "check_references",
    "evaluate_audience",
    "evaluate_consumer",
]

Query = tuple[str, list[AnyValue]]

# The only relations a compiled query reads; interaction data never comes from the raw tables.
_CAMPAIGNS = "visible_campaign_interactions"
_CANVASES = "visible_canvas_interactions"
_UNIVERSE = "SELECT user_id FROM user_summaries"
_NOBODY = "SELECT user_id FROM user_summaries WHERE false"
_EARLIEST_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_DAY_SECONDS = 86_400.0


class AudienceRefused(ValueError):
    """A consumer whose audience cannot be evaluated; never turned into an empty audience."""

    def __init__(self, consumer_id: str, errors: Sequence[str]) -> None:
        self.consumer_id = consumer_id
        self.errors = list(errors)
        super().__init__(
            f"consumer {consumer_id} has an invalid audience and cannot be evaluated: "
            + "; ".join(self.errors)
        )

    def __reduce__(self) -> tuple[AnyValue, ...]:
        return (type(self), (self.consumer_id, self.errors))


class UnknownConsumer(LookupError):
    def __init__(self, consumer_id: str) -> None:
        self.consumer_id = consumer_id
        super().__init__(f"consumer {consumer_id} is not in the catalog")

    def __reduce__(self) -> tuple[AnyValue, ...]:
        return (type(self), (self.consumer_id,))


# --------------------------------------------------------------------------------------------
# Compilation


def _epoch(as_of: datetime) -> float:
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of {as_of!r} has no time zone")
    return as_of.timestamp()


def _threshold(op: str, value: AnyValue, as_of: datetime) -> tuple[str, float]:
    """(comparison operator, UNIX seconds) of a time comparison."""
    if op == "before":
        return "<", parse_timestamp(value).timestamp()
    if op == "after":
        return ">", parse_timestamp(value).timestamp()
    if op in ("more_than_days_ago", "less_than_days_ago"):
        # Any count of days is valid; clamped to the years a timestamp holds (0001-9999), it
        # still compares the same with every real event time, and DuckDB can convert it.
        since = max(_EARLIEST_EPOCH, _epoch(as_of) - float(value) * _DAY_SECONDS)
        return ("<" if op == "more_than_days_ago" else ">"), since
    raise ValueError(f"unknown time comparison {op!r}")


def _last_received(
    source: str, where: str, params: list[AnyValue], leaf: Leaf, as_of: datetime
) -> Query:
    cmp, seconds = _threshold(leaf.params["op"], leaf.params["value"], as_of)
    sql = (
        f"SELECT user_id FROM {source} WHERE kind = 'received' AND {where} "  # noqa: S608
        f"GROUP BY user_id HAVING max(time) {cmp} ?"
    )
    return sql, [*params, seconds]


def _action_kinds(action: str) -> str:
    # Fixed literals chosen from the validated enum, never user text.
    return {
        "clicked": "kind = 'clicked'",
        "opened": "kind = 'opened'",
        "any": "kind IN ('clicked', 'opened')",
    }[action]


def _tagged(kind_sql: str, tag: str, columns: str = "user_id", union: str = "UNION") -> Query:
    """Rows of any campaign or Canvas carrying ``tag`` (exact match) that satisfy ``kind_sql``."""
    items = "SELECT id FROM catalog_items WHERE list_contains(tags, ?)"
    sql = (
        f"SELECT {columns} FROM {_CAMPAIGNS} WHERE {kind_sql} AND item_id IN ({items}) "  # noqa: S608
        f"{union} SELECT {columns} FROM {_CANVASES} WHERE {kind_sql} AND item_id IN ({items})"
    )
    return sql, [tag, tag]


def _summary_time(column: str, leaf: Leaf, as_of: datetime) -> Query:
    if "op" not in leaf.params:
        return f"SELECT user_id FROM user_summaries WHERE {column} IS NOT NULL", []  # noqa: S608
    cmp, seconds = _threshold(leaf.params["op"], leaf.params["value"], as_of)
    return (
        f"SELECT user_id FROM user_summaries WHERE {column} {cmp} to_timestamp(?)",  # noqa: S608
        [seconds],
    )


def _converted(source: str, control: str, item_id: str | None, leaf: Leaf) -> Query:
    index = leaf.params.get("conversion_behavior_index")
    where, params = "item_id = ? AND kind = 'converted'", [item_id]
    if index is not None:
        where += " AND conversion_behavior_index = ?"
        params.append(index)
    sql = (
        f"SELECT user_id FROM {source} WHERE {where} "  # noqa: S608
        f"EXCEPT SELECT user_id FROM {source} WHERE item_id = ? AND {control}"
    )
    return sql, [*params, item_id]


_CANVAS_CONTROL = "kind = 'entry' AND in_control_group"
_EMAIL_CLICK = "event_type = 'users.messages.email.Click'"

# Summary filters over a TIMESTAMPTZ column of user_summaries, with optional op/value.
_SUMMARY_TIME_COLUMNS: Mapping[str, str] = {
    "last_engaged": "last_engaged",
    "last_enrolled_any_control_group": "last_enrolled_control",
    "last_in_app_impression": "last_in_app_impression",
    "last_received_any": "last_received_any",
    "last_received_email": "last_received_email",
    "last_received_push": "last_received_push",
    "last_received_sms": "last_received_sms",
    "last_received_webhook": "last_received_webhook",
    "last_received_whatsapp": "last_received_whatsapp",
    "last_viewed_news_feed": "last_news_feed_view",
}
_SUMMARY_FLAGS: Mapping[str, str] = {
    "hard_bounced": "hard_bounced_at",
    "marked_spam": "marked_spam_at",
    "invalid_phone_number": "invalid_phone_at",
}
_COUNT_OPS: Mapping[str, str] = {"eq": "=", "gt": ">", "lt": "<"}


def _leaf_sql(leaf: Leaf, as_of: datetime) -> Query:
    p = leaf.params
    name = leaf.filter
    cmp_id, cnv_id, step = p.get("campaign_id"), p.get("canvas_id"), p.get("step_id")

    # ---- campaigns, by ID
    if name == "received_campaign":
        return f"SELECT user_id FROM {_CAMPAIGNS} WHERE item_id = ? AND kind = 'received'", [cmp_id]  # noqa: S608
    if name == "received_campaign_variant":
        variant = p["variant_id"]
        sql = (
            f"SELECT user_id FROM {_CAMPAIGNS} WHERE item_id = ? AND ("  # noqa: S608
            "(kind = 'received' AND message_variation_id = ?) OR (kind = 'control' AND "
            "(message_variation_id = ? OR (message_variation_id IS NULL AND EXISTS ("
            "SELECT 1 FROM item_components c WHERE c.item_id = ? AND c.component_id = ? "
            "AND c.component_type = 'variant' AND c.is_control)))))"
        )
        return sql, [cmp_id, variant, variant, cmp_id, variant]
    if name == "clicked_opened_campaign":
        kinds = _action_kinds(p["action"])
        return f"SELECT user_id FROM {_CAMPAIGNS} WHERE item_id = ? AND {kinds}", [cmp_id]  # noqa: S608
    if name == "clicked_alias_in_campaign":
        sql = f"SELECT user_id FROM {_CAMPAIGNS} WHERE item_id = ? AND {_EMAIL_CLICK} AND link_alias = ?"  # noqa: S608
        return sql, [cmp_id, p["alias"]]
    if name == "converted_from_campaign":
        return _converted(_CAMPAIGNS, "kind = 'control'", cmp_id, leaf)
    if name == "in_campaign_control_group":
        return f"SELECT user_id FROM {_CAMPAIGNS} WHERE item_id = ? AND kind = 'control'", [cmp_id]  # noqa: S608
    if name == "last_received_campaign":
        return _last_received(_CAMPAIGNS, "item_id = ?", [cmp_id], leaf, as_of)

    # ---- Canvases, by ID
    if name == "received_canvas_step":
        sql = f"SELECT user_id FROM {_CANVASES} WHERE item_id = ? AND canvas_step_id = ? AND kind = 'received'"  # noqa: S608
        return sql, [cnv_id, step]
    if name == "clicked_opened_step":
        kinds = _action_kinds(p["action"])
        sql = (
            f"SELECT user_id FROM {_CANVASES} WHERE item_id = ? AND canvas_step_id = ? AND {kinds}"  # noqa: S608
        )
        return sql, [cnv_id, step]
    if name == "clicked_alias_in_canvas_step":
        sql = (
            f"SELECT user_id FROM {_CANVASES} WHERE item_id = ? AND canvas_step_id = ? "  # noqa: S608
            f"AND {_EMAIL_CLICK} AND link_alias = ?"
        )
        return sql, [cnv_id, step, p["alias"]]
    if name == "converted_from_canvas":
        return _converted(_CANVASES, _CANVAS_CONTROL, cnv_id, leaf)
    if name == "in_canvas_control_group":
        return f"SELECT user_id FROM {_CANVASES} WHERE item_id = ? AND {_CANVAS_CONTROL}", [cnv_id]  # noqa: S608
    if name == "entered_canvas_variation":
        sql = f"SELECT user_id FROM {_CANVASES} WHERE item_id = ? AND kind = 'entry' AND canvas_variation_id = ?"  # noqa: S608
        return sql, [cnv_id, p["variation_id"]]
    if name == "last_received_canvas_step":
        return _last_received(
            _CANVASES, "item_id = ? AND canvas_step_id = ?", [cnv_id, step], leaf, as_of
        )

    # ---- by tag
    if name == "received_with_tag":
        return _tagged("kind = 'received'", p["tag"])
    if name == "clicked_opened_with_tag":
        return _tagged(_action_kinds(p["action"]), p["tag"])
    if name == "last_received_with_tag":
        rows, params = _tagged("kind = 'received'", p["tag"], "user_id, time", "UNION ALL")
        cmp, seconds = _threshold(p["op"], p["value"], as_of)
        sql = f"SELECT user_id FROM ({rows}) AS tagged GROUP BY user_id HAVING max(time) {cmp} ?"  # noqa: S608
        return sql, [*params, seconds]

    # ---- per-user summaries
    if name == "clicked_alias_in_any":
        return "SELECT user_id FROM user_summaries WHERE list_contains(clicked_aliases, ?)", [
            p["alias"]
        ]
    if name in _SUMMARY_FLAGS:
        return f"SELECT user_id FROM user_summaries WHERE {_SUMMARY_FLAGS[name]} IS NOT NULL", []  # noqa: S608
    if name == "never_received":
        received = step if cnv_id is not None else cmp_id
        sql = (
            "SELECT user_id FROM user_summaries ANTI JOIN "
            "(SELECT user_id FROM user_items_received WHERE received_id = ?) USING (user_id)"
        )
        return sql, [received]
    if name == "feature_flag":
        return "SELECT user_id FROM user_summaries WHERE list_contains(feature_flags, ?)", [
            p["flag_id"]
        ]
    if name in _SUMMARY_TIME_COLUMNS:
        return _summary_time(_SUMMARY_TIME_COLUMNS[name], leaf, as_of)
    if name == "last_sms_inbound_keyword_category":
        cmp, seconds = _threshold(p["op"], p["value"], as_of)
        sql = f"SELECT user_id FROM user_inbound_keywords WHERE category = ? AND last_at {cmp} to_timestamp(?)"  # noqa: S608
        return sql, [p["category"], seconds]
    if name == "news_feed_view_count":
        sql = f"SELECT user_id FROM user_summaries WHERE coalesce(news_feed_views, 0) {_COUNT_OPS[p['op']]} ?"  # noqa: S608
        return sql, [p["value"]]
    raise ValueError(f"filter {name!r} has no evaluator")


def _chain(operator: str, queries: Sequence[Query]) -> Query:
    """``q1 OP q2 OP …`` with every operand in its own subquery, so precedence never bites."""
    parts = [f"SELECT user_id FROM ({sql}) AS s{i}" for i, (sql, _) in enumerate(queries)]  # noqa: S608
    params = [value for _, ps in queries for value in ps]
    return f" {operator} ".join(parts), params


def _compile(expr: Expr, as_of: datetime) -> Query:
    if isinstance(expr, Leaf):
        return _leaf_sql(expr, as_of)
    if isinstance(expr, Not):
        return _chain("EXCEPT", [(_UNIVERSE, []), _compile(expr.child, as_of)])
    if isinstance(expr, Any):
        if not expr.children:
            return _NOBODY, []
        return _chain("UNION", [_compile(child, as_of) for child in expr.children])
    assert isinstance(expr, All)
    # Negated children become one EXCEPT each instead of intersecting with "universe minus
    # X": same set, one anti-join instead of two set operations.
    positive = [_compile(c, as_of) for c in expr.children if not isinstance(c, Not)]
    negative = [_compile(c.child, as_of) for c in expr.children if isinstance(c, Not)]
    base = _chain("INTERSECT", positive) if positive else (_UNIVERSE, [])
    if not negative:
        return base
    return _chain("EXCEPT", [base, *negative])


def audience_sql(expr: Expr, as_of: datetime) -> tuple[str, list[AnyValue]]:
    """One DuckDB query (text, positional parameters) returning the ``user_id`` of every
    matching user once. IDs, tags and aliases are parameters, never part of the text."""
    _epoch(as_of)
    sql, params = _compile(expr, as_of)
    return f"SELECT DISTINCT user_id FROM ({sql}) AS audience", params  # noqa: S608


# --------------------------------------------------------------------------------------------
# Evaluation


def _known_items(con: duckdb.DuckDBPyConnection, item_ids: Sequence[str]) -> dict[str, ItemInfo]:
    """What ``validate_references`` needs about the referenced items, from the catalog tables
    (and the lifecycle, which knows legacy deletions too)."""
    if not item_ids:
        return {}
    rows = con.execute(
        """SELECT c.id, c.type,
                  c.interaction_data_deleted_at IS NOT NULL
                    OR coalesce(l.state = 'legacy_deleted', false),
                  (SELECT list([component_type, component_id]) FROM item_components k
                   WHERE k.item_id = c.id)
           FROM catalog_items c LEFT JOIN item_lifecycle l ON l.item_id = c.id
           WHERE list_contains(?, c.id)""",
        [list(item_ids)],
    ).fetchall()
    return {
        item_id: ItemInfo.from_components(item_type, ((k, i) for k, i in components or ()),
                                          legacy_deleted=bool(legacy))
        for item_id, item_type, legacy, components in rows
    }  # fmt: skip


def check_references(con: duckdb.DuckDBPyConnection, expr: Expr, consumer_id: str) -> None:
    """Refuse an expression naming unknown or legacy-deleted items or components: such a
    filter can never match, and DOMAIN.md rule 9 wants an error, not an empty audience."""
    ids = sorted({ref.item_id for ref in references(expr) if ref.item_id is not None})
    errors = validate_references(expr, consumer_id=consumer_id, known_items=_known_items(con, ids))
    if errors:
        raise AudienceRefused(consumer_id, [str(e) for e in errors])


def evaluate_audience(
    con: duckdb.DuckDBPyConnection,
    expr: Expr,
    as_of: datetime,
    *,
    consumer_id: str = "(ad hoc)",
) -> list[str]:
    """Sorted user IDs matching ``expr`` as of ``as_of`` (an aware datetime)."""
    check_references(con, expr, consumer_id)
    sql, params = audience_sql(expr, as_of)
    # A cursor keeps this read independent of any unfetched result on the caller's connection.
    cur = con.cursor()
    try:
        rows = cur.execute(f"{sql} ORDER BY user_id", params).fetchall()
    finally:
        cur.close()
    return [row[0] for row in rows]


def load_consumer_audience(con: duckdb.DuckDBPyConnection, consumer_id: str) -> Expr:
    """The parsed audience of a catalog consumer; refuses unknown and invalid consumers."""
    rows = con.execute(
        "SELECT audience, valid, errors FROM audience_consumers WHERE id = ?", [consumer_id]
    ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise UnknownConsumer(consumer_id)
    audience, valid, errors = row
    if not valid:
        raise AudienceRefused(consumer_id, list(errors or ["(no detail recorded)"]))
    doc = json.loads(audience) if isinstance(audience, str) else audience
    return parse_audience(doc, consumer_id=consumer_id)


def evaluate_consumer(
    con: duckdb.DuckDBPyConnection, consumer_id: str, as_of: datetime
) -> list[str]:
    """Sorted user IDs of a catalog consumer's audience as of ``as_of``.

    Raises ``UnknownConsumer`` or ``AudienceRefused`` (invalid audience, references to
    unknown or legacy-deleted items); never returns an empty list in place of an error.
    """
    expr = load_consumer_audience(con, consumer_id)
    return evaluate_audience(con, expr, as_of, consumer_id=consumer_id)
