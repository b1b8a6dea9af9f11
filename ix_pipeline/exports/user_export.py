"""The user export: JSON Lines in the platform's ``/users/export/ids`` shape (FORMATS.md §3).

Everything is built inside DuckDB (per user and item roll-ups, structs, lists, ``to_json``)
and streamed out in Arrow record batches, so a million users never sit in Python at once;
Python only writes finished lines.

Only visible interaction data is read (the ``visible_*`` views): an expired item's campaign or
Canvas entry is absent, exactly as if its rows had never been ingested. Users come from
``user_summaries`` (every user ever seen), so a user whose only item expired is still
exported, with empty lists.

Decisions:

* An item is listed for a user when the user has any visible row of it (received, opened,
  clicked, converted, control enrollment, Canvas entry). ``last_received`` is null when the
  user never received it (a control-group user, say).
* ``engaged``: ``opened_email`` / ``opened_push`` / ``clicked_email`` /
  ``clicked_triggered_in_app_message`` from opens and clicks on the email, push and in-app
  channels; only the true keys are written.
* ``multiple_converted``: one true key per conversion behaviour the user converted on, labelled
  as the platform does: index 0 is "Primary Conversion Event - A", index i is
  "Conversion Event - <letter i>".
* Variation (multivariate campaigns only): the variant of the user's latest receipt or control
  enrollment; a control enrollment without a variant id falls back to the catalog's control
  message. Names come from the catalog, then from the events.
* Canvas ``variation_name`` is the Canvas variation of the user's latest row carrying one;
  ``last_exited`` is always null (Canvas exit events feed no interaction table).
* Lists are ordered by item id (steps by step id), users by ``user_id``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as pa

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_USERS_PER_CHUNK",
    "campaign_entries_sql",
    "campaign_rollup_sql",
    "canvas_entries_sql",
    "canvas_rollup_sql",
    "canvas_steps_sql",
    "export_users",
    "event_names",
    "export_users_sql",
    "iso",
    "resolve_users",
]

DEFAULT_BATCH_SIZE = 20_000
DEFAULT_USERS_PER_CHUNK = 250_000


def _chunks(
    con: duckdb.DuckDBPyConnection,
    user_refs: Sequence[str] | None,
    users_per_chunk: int,
    names: EventNames,
) -> Iterator[tuple[str, dict[str, object]]]:
    """(query, parameters) per chunk of users, in user id order."""
    if user_refs is not None:
        yield export_users_sql(user_refs, names=names), {"refs": list(user_refs)}
        return
    total = int(con.execute("SELECT count(*) FROM user_summaries").fetchall()[0][0])
    parts = max(1, -(-total // max(1, users_per_chunk)))
    if parts == 1:
        yield export_users_sql(None, names=names), {}
        return
    cuts = con.execute(
        "SELECT quantile_disc(user_id, ?) FROM user_summaries",
        [[k / parts for k in range(1, parts)]],
    ).fetchall()[0][0]
    bounds: list[str] = sorted(set(cuts or []))
    edges: list[str | None] = [None, *bounds, None]
    for lo, hi in zip(edges, edges[1:], strict=False):
        params: dict[str, object] = {}
        if lo is not None:
            params["lo"] = lo
        if hi is not None:
            params["hi"] = hi
        yield (
            export_users_sql(None, lower=lo is not None, upper=hi is not None, names=names),
            params,
        )


def iso(seconds_sql: str) -> str:
    """SQL turning UNIX seconds into ISO-8601 UTC text, independent of the session time zone."""
    return f"strftime(make_timestamp(({seconds_sql}) * 1000000), '%Y-%m-%dT%H:%M:%SZ')"


def _latest(value: str, condition: str) -> str:
    # The latest row wins; equal times fall to a hash of the event id, so the same rows give
    # the same answer whatever the scan order. One integer key is far cheaper than a
    # (time, id) struct over millions of groups.
    key = "((time::UBIGINT << 32) | (hash(id) & 4294967295))"
    return f"arg_max({value}, {key}) FILTER (WHERE {condition})"


def _event_names(source: str, name_col: str, where: str, component_col: str | None = None) -> str:
    """Latest name seen in the events per item (or per item and component), only for those
    the catalog does not name (yet): the fallback. Rows of named ones are dropped by an
    anti-join before any aggregation, so the fallback costs little when the catalog is whole."""
    if component_col is None:
        keys = "item_id"
        named = (
            "(SELECT id AS item_id, NULL AS component FROM catalog_items WHERE name IS NOT NULL)"
        )
        on = "n.item_id = x.item_id"
    else:
        keys = f"item_id, {component_col}"
        named = (
            "(SELECT item_id, component_id AS component FROM item_components "
            "WHERE name IS NOT NULL)"
        )
        on = f"n.item_id = x.item_id AND n.component = x.{component_col}"
    return f"""(SELECT {keys}, {_latest(name_col, "true")} AS name
               FROM {source} AS x ANTI JOIN {named} AS n ON {on}
               WHERE {name_col} IS NOT NULL AND {where}
               GROUP BY {keys})"""  # noqa: S608


# The names taken from the events where the catalog has none: kind -> (source, name column,
# component column or None for the item's own name).
_EVENT_NAME_KINDS: dict[str, tuple[str, str, str | None]] = {
    "campaign": ("visible_campaign_interactions", "campaign_name", None),
    "campaign_variant": (
        "visible_campaign_interactions", "message_variation_name", "message_variation_id"),
    "canvas": ("visible_canvas_interactions", "canvas_name", None),
    "canvas_variation": (
        "visible_canvas_interactions", "canvas_variation_name", "canvas_variation_id"),
    "canvas_step": ("visible_canvas_interactions", "canvas_step_name", "canvas_step_id"),
}  # fmt: skip
EventNames = dict[str, str]  # kind -> a relation (a subquery or a table name)


def event_names(where: str) -> EventNames:
    """The fallback names of the items whose rows satisfy ``where``. A name must not depend
    on which users are exported, so ``where`` may narrow the items, never the users."""
    return {
        kind: _event_names(source, name_col, where, component_col)
        for kind, (source, name_col, component_col) in _EVENT_NAME_KINDS.items()
    }


def campaign_rollup_sql(where: str) -> str:
    """One row per (user, campaign) of visible campaign interactions satisfying ``where``."""
    variant_rows = "kind IN ('received', 'control') AND message_variation_id IS NOT NULL"
    return f"""
      SELECT user_id, item_id,
             max(time) FILTER (WHERE kind = 'received') AS last_received,
             bool_or(kind = 'opened' AND channel = 'email') AS opened_email,
             bool_or(kind = 'opened' AND channel = 'pushnotification') AS opened_push,
             bool_or(kind = 'clicked' AND channel = 'email') AS clicked_email,
             bool_or(kind = 'clicked' AND channel = 'inappmessage') AS clicked_in_app,
             bool_or(kind = 'opened') AS opened,
             bool_or(kind = 'clicked') AS clicked,
             bool_or(kind = 'converted') AS converted,
             list_sort(list_distinct(list(conversion_behavior_index)
               FILTER (WHERE kind = 'converted' AND conversion_behavior_index IS NOT NULL)))
               AS conversion_indexes,
             bool_or(kind = 'control') AS in_control,
             {_latest("message_variation_id", variant_rows)} AS event_variant_id
      FROM visible_campaign_interactions
      WHERE {where}
      GROUP BY user_id, item_id"""  # noqa: S608 - fragments are fixed SQL, values are parameters


def campaign_entries_sql(where: str, names: EventNames | None = None) -> str:
    """The roll-up with names (catalog first, then events), multivariate flag and variant."""
    names = names or event_names(where)
    return f"""
      SELECT r.*, coalesce(ci.name, en.name) AS name,
             coalesce(ci.multivariate, false) AS multivariate,
             coalesce(r.event_variant_id, CASE WHEN r.in_control THEN ctl.control_id END)
               AS variant_id,
             coalesce(vc.name, vn.name, ctl_c.name,
                      CASE WHEN r.in_control THEN 'Control Group' END) AS variant_name
      FROM ({campaign_rollup_sql(where)}) AS r
      LEFT JOIN catalog_items ci ON ci.id = r.item_id
      LEFT JOIN {names["campaign"]} AS en
        ON en.item_id = r.item_id
      LEFT JOIN item_components vc
        ON vc.item_id = r.item_id AND vc.component_type = 'variant'
       AND vc.component_id = r.event_variant_id
      LEFT JOIN {names["campaign_variant"]} AS vn
        ON vn.item_id = r.item_id AND vn.message_variation_id = r.event_variant_id
      LEFT JOIN (SELECT item_id, min(component_id) AS control_id FROM item_components
                 WHERE component_type = 'variant' AND is_control GROUP BY item_id) AS ctl
        ON ctl.item_id = r.item_id AND r.event_variant_id IS NULL AND r.in_control
      LEFT JOIN item_components ctl_c
        ON ctl_c.item_id = r.item_id AND ctl_c.component_type = 'variant'
       AND ctl_c.component_id = ctl.control_id"""  # noqa: S608


def canvas_rollup_sql(where: str) -> str:
    """One row per (user, Canvas) of visible Canvas interactions satisfying ``where``."""
    control = "kind = 'entry' AND in_control_group"
    return f"""
      SELECT user_id, item_id,
             max(time) FILTER (WHERE kind = 'received') AS last_received,
             max(time) FILTER (WHERE kind = 'entry') AS last_entered,
             bool_or(kind = 'opened') AS opened,
             bool_or(kind = 'clicked') AS clicked,
             bool_or(kind = 'converted') AS converted,
             coalesce(bool_or({control}), false) AS in_control,
             max(time) FILTER (WHERE {control}) AS last_entered_control_at,
             {_latest("canvas_variation_id", "canvas_variation_id IS NOT NULL")} AS variation_id
      FROM visible_canvas_interactions
      WHERE {where}
      GROUP BY user_id, item_id"""  # noqa: S608


def canvas_entries_sql(where: str, names: EventNames | None = None) -> str:
    names = names or event_names(where)
    return f"""
      SELECT r.*, coalesce(ci.name, en.name) AS name,
             coalesce(vc.name, vn.name) AS variation_name
      FROM ({canvas_rollup_sql(where)}) AS r
      LEFT JOIN catalog_items ci ON ci.id = r.item_id
      LEFT JOIN {names["canvas"]} AS en
        ON en.item_id = r.item_id
      LEFT JOIN item_components vc
        ON vc.item_id = r.item_id AND vc.component_type = 'canvas_variation'
       AND vc.component_id = r.variation_id
      LEFT JOIN {names["canvas_variation"]} AS vn
        ON vn.item_id = r.item_id AND vn.canvas_variation_id = r.variation_id"""  # noqa: S608


def canvas_steps_sql(where: str, names: EventNames | None = None) -> str:
    """One row per (user, Canvas, step) the user received a message from."""
    names = names or event_names(where)
    return f"""
      SELECT s.user_id, s.item_id, s.canvas_step_id, s.last_received,
             coalesce(k.name, sn.name) AS name
      FROM (SELECT user_id, item_id, canvas_step_id, max(time) AS last_received
            FROM visible_canvas_interactions
            WHERE kind = 'received' AND canvas_step_id IS NOT NULL AND {where}
            GROUP BY user_id, item_id, canvas_step_id) AS s
      LEFT JOIN item_components k
        ON k.item_id = s.item_id AND k.component_type = 'step'
       AND k.component_id = s.canvas_step_id
      LEFT JOIN {names["canvas_step"]} AS sn
        ON sn.item_id = s.item_id AND sn.canvas_step_id = s.canvas_step_id"""  # noqa: S608


def _sorted_list(key: str, value: str) -> str:
    """``list(value ORDER BY key)`` without an ordered aggregate (a sort per group is much
    slower): collect (key, value) pairs, sort each small list, keep the values."""
    return f"list_transform(list_sort(list({{'k': {key}, 'v': {value}}})), lambda x: x.v)"


_ENGAGED = """map_from_entries(list_filter([
      {'key': 'opened_email', 'value': e.opened_email},
      {'key': 'opened_push', 'value': e.opened_push},
      {'key': 'clicked_email', 'value': e.clicked_email},
      {'key': 'clicked_triggered_in_app_message', 'value': e.clicked_in_app}],
    lambda x: coalesce(x.value, false)))"""

_MULTIPLE_CONVERTED = """map_from_entries(list_transform(coalesce(e.conversion_indexes, []),
    lambda i: {'key': CASE WHEN i = 0 THEN 'Primary Conversion Event - A'
                           ELSE 'Conversion Event - ' || chr(65 + i) END,
               'value': true}))"""


def _campaign_json() -> str:
    common = f"""'name': e.name, 'api_campaign_id': e.item_id,
        'last_received': {iso("e.last_received")}, 'engaged': {_ENGAGED},
        'converted': e.converted, 'multiple_converted': {_MULTIPLE_CONVERTED}"""
    return f"""CASE WHEN e.multivariate THEN to_json({{{common},
        'variation_name': e.variant_name, 'variation_api_id': e.variant_id,
        'in_control': e.in_control}})
      ELSE to_json({{{common}}}) END"""


def export_users_sql(
    user_refs: Sequence[str] | None,
    *,
    lower: bool = False,
    upper: bool = False,
    names: EventNames | None = None,
) -> str:
    """The export query: one ``line`` (a JSON document and a newline) per user, ordered by
    user id. ``names``: the fallback names (default: computed in the query from every
    visible row, whatever users are selected).

    Named parameters: ``$refs`` (the selected users' ids or external ids) when ``user_refs``
    is given; ``$lo`` / ``$hi`` bound the chunk of user ids (``lo <= user_id < hi``) when
    ``lower`` / ``upper`` are set.
    """
    conditions = []
    if user_refs is not None:
        conditions.append(
            "(list_contains($refs, user_id) OR list_contains($refs, external_user_id))"
        )
    if lower:
        conditions.append("user_id >= $lo")
    if upper:
        conditions.append("user_id < $hi")
    users = "SELECT user_id, external_user_id FROM user_summaries"
    if conditions:
        users += " WHERE " + " AND ".join(conditions)
    if user_refs is not None:
        # A handful of users: cut the interaction rows to them before any aggregation.
        where = "user_id IN (SELECT user_id FROM users)"
    else:
        # A chunk of all users: a range test on the scan is cheaper than a join.
        where = " AND ".join(conditions) or "true"
    names = names or event_names("true")
    step = f"""{{'name': s.name, 'api_canvas_step_id': s.canvas_step_id,
                 'last_received': {iso("s.last_received")}}}"""
    canvas = f"""to_json({{
        'name': e.name, 'api_canvas_id': e.item_id,
        'last_received_message': {iso("e.last_received")},
        'last_entered': {iso("e.last_entered")},
        'last_exited': NULL::VARCHAR,
        'variation_name': e.variation_name, 'in_control': e.in_control,
        'last_entered_control_at': {iso("e.last_entered_control_at")},
        'steps_received': coalesce(st.steps, [])}})"""
    sql = f"""
      WITH users AS ({users}),
      campaigns AS (
        SELECT e.user_id, {_sorted_list("e.item_id", _campaign_json())} AS items
        FROM ({campaign_entries_sql(where, names)}) AS e
        GROUP BY e.user_id),
      steps AS (
        SELECT s.user_id, s.item_id,
               {_sorted_list("s.canvas_step_id", step)} AS steps
        FROM ({canvas_steps_sql(where, names)}) AS s
        GROUP BY s.user_id, s.item_id),
      canvases AS (
        SELECT e.user_id, {_sorted_list("e.item_id", canvas)} AS items
        FROM ({canvas_entries_sql(where, names)}) AS e
        LEFT JOIN steps st ON st.user_id = e.user_id AND st.item_id = e.item_id
        GROUP BY e.user_id)
      SELECT to_json({{'external_id': u.external_user_id, 'braze_id': u.user_id,
                      'campaigns_received': coalesce(c.items, []::JSON[]),
                      'canvases_received': coalesce(v.items, []::JSON[])}}) || chr(10) AS line
      FROM users u
      LEFT JOIN campaigns c ON c.user_id = u.user_id
      LEFT JOIN canvases v ON v.user_id = u.user_id
      ORDER BY u.user_id"""  # noqa: S608
    return sql


def resolve_users(con: duckdb.DuckDBPyConnection, refs: Sequence[str]) -> dict[str, str | None]:
    """Each reference (a ``user_id`` or an ``external_user_id``) to its ``user_id``, or None
    when no user has it."""
    rows = con.execute(
        """SELECT r.ref, min(u.user_id)
           FROM (SELECT unnest(?::VARCHAR[]) AS ref) AS r
           LEFT JOIN user_summaries u ON u.user_id = r.ref OR u.external_user_id = r.ref
           GROUP BY r.ref""",
        [list(refs)],
    ).fetchall()
    found = dict(rows)
    return {ref: found.get(ref) for ref in refs}


def _write_lines(out: BinaryIO, lines: pa.Array) -> int:
    """Write a batch of newline-terminated lines straight from the Arrow data buffer: the
    strings are already contiguous there, and turning a million of them into Python objects
    would cost more than the query that built them."""
    if len(lines) == 0:
        return 0
    if lines.null_count or not pa.types.is_string(lines.type):
        text = "".join(lines.cast(pa.string()).to_pylist())
        out.write(text.encode("utf-8"))
        return len(lines)
    _, offset_buffer, data = lines.buffers()
    assert offset_buffer is not None and data is not None
    offsets = pa.Array.from_buffers(
        pa.int32(), len(lines) + 1, [None, offset_buffer], offset=lines.offset
    )
    first, last = offsets[0].as_py(), offsets[len(lines)].as_py()
    out.write(memoryview(data)[first:last])
    return len(lines)


def export_users(
    con: duckdb.DuckDBPyConnection,
    out_path: Path,
    user_ids: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    users_per_chunk: int = DEFAULT_USERS_PER_CHUNK,
) -> int:
    """Write the user export as JSON Lines to ``out_path``; return the number of users written.

    ``user_ids`` (user ids or external ids; None = every user) selects users; references that
    match nobody are skipped (``resolve_users`` tells which). All users are exported in
    chunks of about ``users_per_chunk`` consecutive user ids, one query each, so DuckDB's
    working memory is bounded by the chunk, not by the number of users; the output is
    ordered by user id all the same.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Under its final name only when complete: a half-written export is never mistaken for a
    # whole one.
    partial = out_path.with_name(out_path.name + ".partial")
    written = 0
    cur = con.cursor()
    # Once per export, not per chunk: the same names for every user, and one scan.
    names = {kind: f"_export_names_{kind}" for kind in _EVENT_NAME_KINDS}
    try:
        for kind, relation in event_names("true").items():
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {names[kind]} AS SELECT * FROM {relation}")  # noqa: S608
        with partial.open("wb") as out:
            for sql, params in _chunks(cur, user_ids, users_per_chunk, names):
                reader = cur.sql(sql, params=params).to_arrow_reader(batch_size)
                for batch in reader:
                    written += _write_lines(out, batch.column(0))
        os.replace(partial, out_path)
    finally:
        for table in names.values():
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.close()
        partial.unlink(missing_ok=True)
    return written
