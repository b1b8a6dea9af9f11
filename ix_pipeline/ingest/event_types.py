"""What each Currents event type means for interaction data (FORMATS.md §1).

The mapping is data, not code, so that a newcomer can check it against the table in the spec
line by line, and so that the summaries and the audience engine agree on one meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
