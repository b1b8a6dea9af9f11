"""What each Currents event type means for interaction data (FORMATS.md §1).

The mapping is data, not code, so that a newcomer can check it against the table in the spec
line by line, and so that the summaries and the audience engine agree on one meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Kind = Literal["received", "opened", "clicked", "converted", "control", "entry", "summary"]


@dataclass(frozen=True)
class EventMeaning:
    kind: Kind
    channel: str | None


def _msgs(channels: str, event: str, kind: Kind) -> dict[str, EventMeaning]:
    return {f"users.messages.{ch}.{event}": EventMeaning(kind, ch) for ch in channels.split(",")}


EVENT_MEANINGS: dict[str, EventMeaning] = {
    **_msgs("email,pushnotification,webhook,whatsapp,line,rcs,liveactivity", "Send", "received"),
    **_msgs("sms", "Delivery", "received"),
    **_msgs("inappmessage,contentcard,banner", "Impression", "received"),
    **_msgs("email,pushnotification", "Open", "opened"),
    **_msgs("pushnotification", "IosForeground", "opened"),
    **_msgs("whatsapp,rcs", "Read", "opened"),
    **_msgs("email,inappmessage,contentcard,banner,whatsapp,line,rcs", "Click", "clicked"),
    **_msgs("sms", "ShortLinkClick", "clicked"),
    "users.campaigns.Conversion": EventMeaning("converted", None),
    "users.canvas.Conversion": EventMeaning("converted", None),
    "users.campaigns.EnrollInControl": EventMeaning("control", None),
    "users.canvas.Entry": EventMeaning("entry", None),
    # Summary-only events: they never become interaction rows but feed user_summaries.
    "users.messages.email.Bounce": EventMeaning("summary", "email"),
    "users.messages.email.MarkAsSpam": EventMeaning("summary", "email"),
    "users.messages.sms.DeliveryFailure": EventMeaning("summary", "sms"),
    "users.messages.sms.Rejection": EventMeaning("summary", "sms"),
    "users.messages.sms.InboundReceive": EventMeaning("summary", "sms"),
    "users.messages.featureflag.Impression": EventMeaning("summary", None),
    "users.behaviors.app.NewsFeedImpression": EventMeaning("summary", None),
    # Other Currents types that real exports carry; known, so never quarantined as unknown.
    **_msgs("email", "Delivery", "summary"),
    **_msgs("email", "SoftBounce", "summary"),
    **_msgs("email", "Unsubscribe", "summary"),
    **_msgs("pushnotification", "Bounce", "summary"),
    **_msgs("webhook", "Failure", "summary"),
    **_msgs("inappmessage,contentcard", "Abort", "summary"),
    **_msgs("email,pushnotification,sms,webhook", "Abort", "summary"),
    **_msgs("contentcard", "Dismiss", "summary"),
    **_msgs("sms", "Send", "summary"),
    "users.canvas.exit.PerformedEvent": EventMeaning("summary", None),
    "users.canvas.exit.MatchedAudience": EventMeaning("summary", None),
    "users.campaigns.Conversion.Control": EventMeaning("summary", None),
}

# Channel names as the platform's "last received <channel>" filters call them.
SUMMARY_CHANNELS: dict[str, str] = {
    "email": "email",
    "pushnotification": "push",
    "sms": "sms",
    "webhook": "webhook",
    "whatsapp": "whatsapp",
}


def with_meaning(events: pl.DataFrame) -> pl.DataFrame:
    """Adds kind, channel, item_type and item_id to validated events (known event types only).

    A Canvas id wins over a campaign id because Canvas message events can also carry the id
    of the campaign behind a step. Columns are added, never copied: batches are large.
    """
    types = events.get_column("event_type")
    if types.len() and types.null_count() == 0 and types.min() == types.max():
        # A Currents Avro file holds one event type: two constants, no lookup per row.
        meaning = EVENT_MEANINGS.get(str(types.min()))
        kind = pl.lit(meaning.kind if meaning else None, pl.String())
        channel = pl.lit(meaning.channel if meaning else None, pl.String())
    else:
        kind = pl.col("event_type").replace_strict(
            {t: m.kind for t, m in EVENT_MEANINGS.items()}, default=None, return_dtype=pl.String()
        )
        channel = pl.col("event_type").replace_strict(
            {t: m.channel for t, m in EVENT_MEANINGS.items()},
            default=None,
            return_dtype=pl.String(),
        )
    interaction = kind != "summary"
    return events.with_columns(kind.alias("kind"), channel.alias("channel")).with_columns(
        pl.when(interaction & pl.col("canvas_id").is_not_null())
        .then(pl.lit("canvas"))
        .when(interaction & pl.col("campaign_id").is_not_null())
        .then(pl.lit("campaign"))
        .alias("item_type"),
        pl.when(interaction).then(pl.coalesce("canvas_id", "campaign_id")).alias("item_id"),
    )
