"""The user profile lists "Campaigns received" and "Canvas messages received".

Both read only visible interaction data: an expired item disappears from the lists until it
is restored, as on the platform.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ix_pipeline.exports.user_export import event_names, iso

__all__ = ["profile_lists"]


def _resolve(con: duckdb.DuckDBPyConnection, user_ref: str) -> str | None:
    """A user id, or failing that an external id, to its user id (None if unknown)."""
    rows = con.execute(
        """SELECT coalesce(
             (SELECT user_id FROM user_summaries WHERE user_id = $ref),
             (SELECT min(user_id) FROM user_summaries WHERE external_user_id = $ref))""",
        {"ref": user_ref},
    ).fetchall()
    return rows[0][0] if rows else None


def profile_lists(con: duckdb.DuckDBPyConnection, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The two profile lists of one user (``user_id`` or ``external_user_id``), most recent
    first: ``campaigns_received`` [{campaign_id, name, last_received}] and
    ``canvas_messages_received`` [{canvas_id, canvas_name, step_id, step_name,
    last_received}]. Only receipts count: these lists are about messages received.

    An unknown user raises ``LookupError``.
    """
    resolved = _resolve(con, user_id)
    if resolved is None:
        raise LookupError(f"user {user_id} is not known (neither a user_id nor an external id)")
    # A name from the events is the latest over all of the item's rows, as in the user
    # export, not over this user's rows alone.
    names = event_names(
        """item_id IN (SELECT item_id FROM visible_campaign_interactions WHERE user_id = $user
                       UNION ALL
                       SELECT item_id FROM visible_canvas_interactions WHERE user_id = $user)"""
    )
    cur = con.cursor()
    try:
        campaigns = cur.execute(
            f"""SELECT r.item_id, coalesce(ci.name, en.name), {iso("r.last")}
                FROM (SELECT item_id, max(time) AS last FROM visible_campaign_interactions
                      WHERE user_id = $user AND kind = 'received' GROUP BY item_id) AS r
                LEFT JOIN catalog_items ci ON ci.id = r.item_id
                LEFT JOIN {names["campaign"]} AS en ON en.item_id = r.item_id
                ORDER BY r.last DESC, r.item_id""",  # noqa: S608
            {"user": resolved},
        ).fetchall()
        steps = cur.execute(
            f"""SELECT r.item_id, coalesce(ci.name, en.name), r.canvas_step_id,
                       coalesce(k.name, sn.name), {iso("r.last")}
                FROM (SELECT item_id, canvas_step_id, max(time) AS last
                      FROM visible_canvas_interactions
                      WHERE user_id = $user AND kind = 'received' GROUP BY ALL) AS r
                LEFT JOIN catalog_items ci ON ci.id = r.item_id
                LEFT JOIN {names["canvas"]} AS en ON en.item_id = r.item_id
                LEFT JOIN item_components k ON k.item_id = r.item_id
                  AND k.component_type = 'step' AND k.component_id = r.canvas_step_id
                LEFT JOIN {names["canvas_step"]} AS sn
                  ON sn.item_id = r.item_id AND sn.canvas_step_id = r.canvas_step_id
                ORDER BY r.last DESC, r.item_id, r.canvas_step_id NULLS LAST""",  # noqa: S608
            {"user": resolved},
        ).fetchall()
    finally:
        cur.close()
    return {
        "campaigns_received": [
            {"campaign_id": c, "name": n, "last_received": t} for c, n, t in campaigns
        ],
        "canvas_messages_received": [
            {"canvas_id": c, "canvas_name": cn, "step_id": s, "step_name": sn, "last_received": t}
            for c, cn, s, sn, t in steps
        ],
    }
