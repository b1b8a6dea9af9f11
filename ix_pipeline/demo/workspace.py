"""A synthetic workspace: a catalog (FORMATS.md section 2) and Currents files (section 1).

Events are generated as integer columns with polars in one vectorised pass (random numbers come
from `random.Random.randbytes`, so output depends on the seed only, not on numpy or on polars'
hash functions), then turned into strings and written file by file so memory stays bounded.
Interactions are coherent per user: a user sees one variant of a campaign and one variation of
a Canvas, opens and clicks follow a receipt of the same dispatch, control-group users get no
message.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import sys
import time as _time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from ix_pipeline.audience.expressions import FILTERS
from ix_pipeline.demo.currents_files import (
    ALL_EVENT_TYPES,
    CODECS,
    currents_path,
    fields_for,
    write_avro,
)

ProgressFn = Callable[[str, int, int], None]

DEFAULT_NOW = datetime(2026, 11, 28, tzinfo=UTC)
APP_GROUP_ID = "5f1c0a9e-3b7d-4e21-9c44-ix0demo0001"

TAGS: tuple[str, ...] = (
    "promo",
    "spring",
    "onboarding",
    "winback",
    "newsletter",
    "vip",
    "black friday",
)
LINK_ALIASES: tuple[str, ...] = ("cta", "hero", "footer", "social")
FEATURE_FLAGS: tuple[str, ...] = ("new_checkout", "dark_mode", "holiday_banner", "beta_search")
SMS_KEYWORD_CATEGORIES: tuple[str, ...] = ("OPT_IN", "OPT_OUT", "HELP", "OTHER")
_SMS_BODIES: tuple[str, ...] = ("START", "STOP", "HELP", "Where is my order?")
_BOUNCE_REASONS: tuple[str, ...] = (
    "550 5.1.1 The email account that you tried to reach does not exist",
    "552 5.2.2 Mailbox full",
    "554 5.7.1 Message rejected as spam",
)

# Catalog channel names (campaign `messages[...].channel`); index = channel code in the events.
CHANNELS: tuple[str, ...] = ("email", "push", "sms", "webhook", "inappmessage", "contentcard")
_CHANNEL_WEIGHTS: tuple[float, ...] = (0.40, 0.25, 0.12, 0.05, 0.10, 0.08)
_RECEIVED = (
    "users.messages.email.Send",
    "users.messages.pushnotification.Send",
    "users.messages.sms.Delivery",
    "users.messages.webhook.Send",
    "users.messages.inappmessage.Impression",
    "users.messages.contentcard.Impression",
)
_OPENED = ("users.messages.email.Open", "users.messages.pushnotification.Open")
_CLICKED = (
    "users.messages.email.Click",
    None,
    "users.messages.sms.ShortLinkClick",
    None,
    "users.messages.inappmessage.Click",
    "users.messages.contentcard.Click",
)
# Per-channel probabilities that a receipt is followed by an open / a click.
_P_OPEN = (0.35, 0.12, 0.0, 0.0, 0.0, 0.0)
_P_CLICK = (0.09, 0.0, 0.06, 0.0, 0.20, 0.12)
_P_CONVERT = 0.04
_P_CANVAS_ENTRY = 0.35
_P_DUPLICATE = 0.01
_SUMMARY_ONLY_SHARE = 0.045  # plus ~0.5 % bounces/spam/sms failures tied to items: ~5 %

_CONVERSION_TYPES: tuple[tuple[str, int], ...] = (
    ("Clicks Email", 259_200),
    ("Opens App", 86_400),
    ("Makes Purchase", 604_800),
    ("Performs Custom Event", 259_200),
)
_NAME_WORDS: tuple[str, ...] = (
    "Spring sale",
    "Welcome series",
    "Win-back",
    "Weekly digest",
    "VIP early access",
    "Black Friday",
    "Cart reminder",
    "Product launch",
    "Loyalty points",
    "Survey",
)

_T = {name: code for code, name in enumerate(ALL_EVENT_TYPES)}
_MIN_FILE, _MAX_FILE, _MIN_TAIL = 20_000, 50_000, 5_000


def _ts(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WorkspaceSummary:
    """What `generate_workspace` wrote. `n_events` counts distinct events, `n_records` what is
    in the files (redelivered duplicates included)."""

    data_dir: Path
    catalog_dir: Path
    currents_dir: Path
    catalog_files: list[Path]
    currents_files: list[Path]
    n_users: int
    n_campaigns: int
    n_canvases: int
    n_segments: int
    n_content_cards: int
    n_events: int
    n_records: int
    n_duplicates: int
    records_by_event_type: dict[str, int]
    legacy_deleted_ids: list[str]
    # Items that an active consumer references by ID: exempt from expiry while it stays active.
    referenced_by_active: list[str]
    seconds: float = field(compare=False)

    def __str__(self) -> str:
        return (
            f"{self.n_events:,} events ({self.n_records:,} records, {self.n_duplicates:,} "
            f"redelivered) for {self.n_users:,} users in {len(self.currents_files)} Currents files; "
            f"{self.n_campaigns} campaigns, {self.n_canvases} Canvases, {self.n_segments} "
            f"segments, {self.n_content_cards} content cards; under {self.data_dir} "
            f"in {self.seconds:.1f} s"
        )


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass
class _Sub:
    """A campaign message variation or a Canvas variation, as the event generator needs it."""

    is_control: bool
    channel: int | None  # campaigns: the message's channel; Canvases: per step
    step_off: int
    n_steps: int


@dataclass
class _Catalog:
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    canvases: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    content_cards: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    # Event lookup tables, indexed by the integer codes the event columns carry.
    item_rows: list[dict[str, Any]] = field(default_factory=list)
    subs: list[_Sub] = field(default_factory=list)
    sub_ids: list[str] = field(default_factory=list)
    sub_names: list[str] = field(default_factory=list)
    step_ids: list[str] = field(default_factory=list)
    step_names: list[str] = field(default_factory=list)
    step_msg_ids: list[str] = field(default_factory=list)
    step_channels: list[int] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)


def _lifecycle(r: random.Random, status: str, now_ts: int) -> dict[str, Any]:
    day = 86_400
    stopped_at: int | None = None
    deleted_at: int | None = None
    first_sent: int | None
    last_sent: int | None
    if status == "legacy":
        # Sent nothing for 25 months before the old policy deleted it in 2023.
        last_sent = r.randint(_ts(2019, 3, 1), _ts(2020, 11, 30))
        first_sent = last_sent - r.randint(5, 200) * day
        stopped_at = last_sent + r.randint(3_600, 3 * day)
        deleted_at = r.randint(_ts(2023, 1, 2), _ts(2023, 12, 31))
    elif status in ("stopped", "archived"):
        stopped_at = r.randint(_ts(2023, 1, 1), now_ts - day)
        last_sent = stopped_at - r.randint(0, 2 * day)
        first_sent = last_sent - r.randint(3, 240) * day
    elif status == "active":
        first_sent = r.randint(_ts(2024, 1, 1), now_ts - 30 * day)
        last_sent = now_ts - r.randint(60, day // 2)
    else:
        first_sent = last_sent = None
    updated_at: int | None
    if first_sent is None:
        created_at = r.randint(_ts(2026, 6, 1), now_ts - day)
        updated_at = created_at + r.randint(0, day // 2)
    else:
        created_at = first_sent - r.randint(1, 30) * day
        updated_at = stopped_at if stopped_at is not None else last_sent
    assert updated_at is not None
    return {
        "created_at": created_at,
        "updated_at": updated_at,
        "first_sent": first_sent,
        "last_sent": last_sent,
        "stopped_at": stopped_at,
        "deleted_at": deleted_at,
    }


def _statuses(r: random.Random, n: int) -> list[str]:
    statuses = []
    for _ in range(n):
        x = r.random()
        statuses.append(
            "stopped" if x < 0.72 else "active" if x < 0.87 else "draft" if x < 0.93 else "archived"
        )
    stopped = [i for i, s in enumerate(statuses) if s == "stopped"]
    # At least one legacy deletion whenever there are a few stopped items, so tests see one.
    n_legacy = max(1, round(0.03 * len(stopped))) if len(stopped) >= 5 else 0
    for i in r.sample(stopped, n_legacy):
        statuses[i] = "legacy"
    return statuses


def _item_doc(
    r: random.Random, kind: str, item_id: str, number: int, status: str, now_ts: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    life = _lifecycle(r, status, now_ts)
    n_tags = r.choices((0, 1, 2), (0.2, 0.5, 0.3))[0]
    behaviors = [{"type": t, "window": w} for t, w in r.sample(_CONVERSION_TYPES, r.randint(1, 2))]
    doc: dict[str, Any] = {
        "id": item_id,
        "type": kind,
        "name": f"{r.choice(_NAME_WORDS)} {number}",
        "tags": sorted(r.sample(TAGS, n_tags)),
        "created_at": _iso(life["created_at"]),
        "updated_at": _iso(life["updated_at"]),
        "archived": status == "archived",
        "draft": status == "draft",
        "enabled": status == "active",
        "first_sent": _iso(life["first_sent"]),
        "last_sent": _iso(life["last_sent"]),
        "conversion_behaviors": behaviors,
        "status": "stopped" if status == "legacy" else status,
        "stopped_at": _iso(life["stopped_at"]),
        "interaction_data_deleted_at": _iso(life["deleted_at"]),
    }
    return doc, life


def _build_items(
    r: random.Random, cat: _Catalog, n_campaigns: int, n_canvases: int, now_ts: int
) -> None:
    for number, status in enumerate(_statuses(r, n_campaigns), start=1):
        cid = f"cmp_{number:06d}"
        doc, life = _item_doc(r, "campaign", cid, number, status, now_ts)
        channel = r.choices(range(len(CHANNELS)), _CHANNEL_WEIGHTS)[0]
        # Every tenth campaign is multivariate with a control group, so that even a small
        # workspace has control-group enrollments.
        forced = number % 10 == 2
        multivariate = r.random() < 0.3 or forced
        n_variants = r.randint(2, 3) if multivariate else 1
        messages: dict[str, dict[str, Any]] = {
            f"{cid}_v{v}": {"channel": CHANNELS[channel], "name": f"Variant {v}"}
            for v in range(1, n_variants + 1)
        }
        if multivariate and (r.random() < 0.5 or forced):
            messages[f"{cid}_v{n_variants + 1}"] = {
                "channel": CHANNELS[channel],
                "name": "Control Group",
                "type": "control",
            }
        doc["channels"] = [CHANNELS[channel]]
        doc["messages"] = messages
        cat.campaigns.append(doc)
        if life["first_sent"] is None or status == "legacy":
            continue  # drafts never sent; legacy deletions' data is gone from the export
        sub_off = len(cat.subs)
        for mid, msg in messages.items():
            cat.subs.append(_Sub(msg.get("type") == "control", channel, 0, 0))
            cat.sub_ids.append(mid)
            cat.sub_names.append(msg["name"])
        cat.item_rows.append(_item_row(r, doc, life, 0, sub_off, len(messages), cat, now_ts))

    for number, status in enumerate(_statuses(r, n_canvases), start=1):
        vid = f"cnv_{number:06d}"
        doc, life = _item_doc(r, "canvas", vid, number, status, now_ts)
        n_vars = r.randint(1, 3)
        has_control = r.random() < 0.3 or number % 5 == 2
        step_counts = [r.randint(1, 3) for _ in range(n_vars)]
        variants: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        step_channels: list[int] = []
        for v, count in enumerate(step_counts, start=1):
            first = len(steps) + 1
            for s in range(first, first + count):
                channel = r.choices(range(len(CHANNELS)), _CHANNEL_WEIGHTS)[0]
                step_channels.append(channel)
                steps.append(
                    {
                        "id": f"{vid}_s{s}",
                        "name": f"Step {s}",
                        "type": "message",
                        "next_step_ids": [f"{vid}_s{s + 1}"] if s < first + count - 1 else [],
                        "messages": {
                            f"{vid}_s{s}_m1": {"channel": CHANNELS[channel], "name": f"Step {s}"}
                        },
                    }
                )
            variants.append(
                {
                    "id": f"{vid}_var{v}",
                    "name": f"Variant {v}",
                    "first_step_ids": [f"{vid}_s{first}"],
                }
            )
        if has_control:
            variants.append(
                {
                    "id": f"{vid}_var{n_vars + 1}",
                    "name": "Control",
                    "type": "control",
                    "first_step_ids": [],
                }
            )
        doc["channels"] = sorted({CHANNELS[c] for c in step_channels})
        doc["variants"] = variants
        doc["steps"] = steps
        doc["first_entry"] = doc["first_sent"]
        doc["last_entry"] = doc["last_sent"]
        cat.canvases.append(doc)
        if life["first_sent"] is None or status == "legacy":
            continue
        step_off = len(cat.step_ids)
        for step, channel in zip(steps, step_channels, strict=True):
            cat.step_ids.append(step["id"])
            cat.step_names.append(step["name"])
            cat.step_msg_ids.append(next(iter(step["messages"])))
            cat.step_channels.append(channel)
        sub_off = len(cat.subs)
        offset = step_off
        for variant, count in zip(variants, [*step_counts, 0], strict=False):
            control = variant.get("type") == "control"
            cat.subs.append(_Sub(control, None, offset, 0 if control else count))
            cat.sub_ids.append(variant["id"])
            cat.sub_names.append(variant["name"])
            offset += 0 if control else count
        cat.item_rows.append(_item_row(r, doc, life, 1, sub_off, len(variants), cat, now_ts))


def _item_row(
    r: random.Random,
    doc: dict[str, Any],
    life: dict[str, Any],
    kind: int,
    sub_off: int,
    n_subs: int,
    cat: _Catalog,
    now_ts: int,
) -> dict[str, Any]:
    conv_off = len(cat.conversions)
    for behavior in doc["conversion_behaviors"]:
        cat.conversions.append(json.dumps(behavior, separators=(",", ":")))
    t0, t1 = life["first_sent"], min(life["last_sent"], now_ts - 1)
    # Long-running items send more; the log-normal factor makes a few items much bigger.
    weight = r.lognormvariate(0.0, 1.0) * (1 + (t1 - t0) / 86_400) ** 0.5
    return {
        "kind": kind,
        "item_id": doc["id"],
        "item_name": doc["name"],
        "t0": t0,
        "t1": t1,
        "weight": weight,
        "sub_off": sub_off,
        "n_subs": n_subs,
        "conv_off": conv_off,
        "n_conv": len(doc["conversion_behaviors"]),
    }


def _time_comparison(r: random.Random, now_ts: int) -> dict[str, Any]:
    op = r.choice(("before", "after", "more_than_days_ago", "less_than_days_ago"))
    if op in ("before", "after"):
        return {"op": op, "value": _iso(r.randint(_ts(2023, 1, 1), now_ts))}
    return {"op": op, "value": r.choice((7, 30, 90, 180, 365))}


class _AudienceMaker:
    """Random audience expressions whose filters are all valid per FORMATS.md section 2."""

    # The summary filters that take an optional time comparison, from the filter registry.
    _OTHER_TIME = tuple(
        name
        for name, spec in FILTERS.items()
        if spec.family == "summary" and spec.value_kind == "time" and not spec.required
    )

    def __init__(self, r: random.Random, cat: _Catalog, now_ts: int) -> None:
        self.r = r
        self.now_ts = now_ts
        usable = [
            d
            for d in cat.campaigns + cat.canvases
            if d["interaction_data_deleted_at"] is None and d["status"] != "draft"
        ]
        self.stopped = [d for d in usable if d["status"] in ("stopped", "archived")]
        self.others = [d for d in usable if d["status"] == "active"]

    def target(self, exclude: str | None) -> dict[str, Any] | None:
        pools = [self.stopped, self.others]
        if self.r.random() < 0.2:
            pools.reverse()
        for pool in pools:
            candidates = [d for d in pool if d["id"] != exclude]
            if candidates:
                return self.r.choice(candidates)
        return None

    def id_filter(self, exclude: str | None) -> dict[str, Any]:
        doc = self.target(exclude)
        if doc is None:
            return self.other_filter()
        r = self.r
        action = r.choice(("clicked", "opened", "any"))
        if doc["type"] == "campaign":
            cid = doc["id"]
            variants = [m for m, v in doc["messages"].items() if v.get("type") != "control"]
            has_control = len(variants) < len(doc["messages"])
            choice = r.randrange(7)
            if choice == 0:
                return {"filter": "received_campaign", "campaign_id": cid}
            if choice == 1:
                return {
                    "filter": "received_campaign_variant",
                    "campaign_id": cid,
                    "variant_id": r.choice(variants),
                }
            if choice == 2:
                return {"filter": "clicked_opened_campaign", "campaign_id": cid, "action": action}
            if choice == 3:
                return {
                    "filter": "clicked_alias_in_campaign",
                    "campaign_id": cid,
                    "alias": r.choice(LINK_ALIASES),
                }
            if choice == 4:
                flt: dict[str, Any] = {"filter": "converted_from_campaign", "campaign_id": cid}
                if r.random() < 0.5:
                    flt["conversion_behavior_index"] = r.randrange(len(doc["conversion_behaviors"]))
                return flt
            if choice == 5 and has_control:
                return {"filter": "in_campaign_control_group", "campaign_id": cid}
            return {
                "filter": "last_received_campaign",
                "campaign_id": cid,
                **_time_comparison(r, self.now_ts),
            }
        vid = doc["id"]
        step = r.choice(doc["steps"])["id"]
        has_control = any(v.get("type") == "control" for v in doc["variants"])
        choice = r.randrange(7)
        if choice == 0:
            return {"filter": "received_canvas_step", "canvas_id": vid, "step_id": step}
        if choice == 1:
            return {
                "filter": "clicked_opened_step",
                "canvas_id": vid,
                "step_id": step,
                "action": action,
            }
        if choice == 2:
            return {
                "filter": "clicked_alias_in_canvas_step",
                "canvas_id": vid,
                "step_id": step,
                "alias": r.choice(LINK_ALIASES),
            }
        if choice == 3:
            flt = {"filter": "converted_from_canvas", "canvas_id": vid}
            if r.random() < 0.5:
                flt["conversion_behavior_index"] = r.randrange(len(doc["conversion_behaviors"]))
            return flt
        if choice == 4 and has_control:
            return {"filter": "in_canvas_control_group", "canvas_id": vid}
        if choice in (4, 5):
            return {
                "filter": "entered_canvas_variation",
                "canvas_id": vid,
                "variation_id": r.choice(doc["variants"])["id"],
            }
        return {
            "filter": "last_received_canvas_step",
            "canvas_id": vid,
            "step_id": step,
            **_time_comparison(r, self.now_ts),
        }

    def tag_filter(self) -> dict[str, Any]:
        r = self.r
        tag = r.choice(TAGS)
        choice = r.randrange(3)
        if choice == 0:
            return {"filter": "received_with_tag", "tag": tag}
        if choice == 1:
            return {
                "filter": "clicked_opened_with_tag",
                "tag": tag,
                "action": r.choice(("clicked", "opened", "any")),
            }
        return {"filter": "last_received_with_tag", "tag": tag, **_time_comparison(r, self.now_ts)}

    def other_filter(self) -> dict[str, Any]:
        r = self.r
        choice = r.randrange(9)
        if choice == 0:
            return {"filter": "clicked_alias_in_any", "alias": r.choice(LINK_ALIASES)}
        if choice == 1:
            return {"filter": r.choice(("hard_bounced", "marked_spam", "invalid_phone_number"))}
        if choice == 2:
            doc = self.target(None)
            if doc is not None and doc["type"] == "campaign":
                return {"filter": "never_received", "campaign_id": doc["id"]}
            if doc is not None:
                return {
                    "filter": "never_received",
                    "canvas_id": doc["id"],
                    "step_id": r.choice(doc["steps"])["id"],
                }
            return {"filter": "hard_bounced"}
        if choice == 3:
            return {"filter": "feature_flag", "flag_id": r.choice(FEATURE_FLAGS)}
        if choice == 4:
            return {
                "filter": "last_sms_inbound_keyword_category",
                "category": r.choice(SMS_KEYWORD_CATEGORIES),
                **_time_comparison(r, self.now_ts),
            }
        if choice == 5:
            return {
                "filter": "news_feed_view_count",
                "op": r.choice(("eq", "gt", "lt")),
                "value": r.randint(0, 20),
            }
        return {"filter": r.choice(self._OTHER_TIME), **_time_comparison(r, self.now_ts)}

    def leaf(self, exclude: str | None) -> dict[str, Any]:
        x = self.r.random()
        if x < 0.35:
            return self.id_filter(exclude)
        if x < 0.6:
            return self.tag_filter()
        return self.other_filter()

    def expr(self, exclude: str | None, depth: int) -> dict[str, Any]:
        if depth < 3 and self.r.random() < 0.3:
            combinator = self.r.choice(("all", "any", "not"))
            if combinator == "not":
                return {"not": self.expr(exclude, depth + 1)}
            return {
                combinator: [self.expr(exclude, depth + 1) for _ in range(self.r.randint(2, 3))]
            }
        return self.leaf(exclude)

    def audience(self, exclude: str | None, *, force_id: bool = False) -> dict[str, Any]:
        parts = [self.expr(exclude, 1) for _ in range(self.r.randint(1, 3))]
        if force_id:
            parts.insert(0, self.id_filter(exclude))
        return {"all": parts}


def _build_catalog(seed: int, n_campaigns: int, n_canvases: int, now_ts: int) -> _Catalog:
    r = random.Random(f"{seed}:catalog")
    cat = _Catalog()
    _build_items(r, cat, n_campaigns, n_canvases, now_ts)
    maker = _AudienceMaker(r, cat, now_ts)
    for doc in cat.campaigns + cat.canvases:
        if doc["status"] == "active" and r.random() < 0.4:
            doc["audience"] = maker.audience(doc["id"], force_id=True)
        elif doc["status"] == "stopped" and r.random() < 0.15:
            # Stopped consumers reference items too; their references must not exempt anything.
            doc["audience"] = maker.audience(doc["id"])
    for kind, prefix, width, count, docs in (
        ("segment", "seg", 4, 30, cat.segments),
        ("content_card", "cc", 4, 10, cat.content_cards),
    ):
        for number in range(1, count + 1):
            created = r.randint(_ts(2022, 1, 1), now_ts - 86_400)
            docs.append(
                {
                    "id": f"{prefix}_{number:0{width}d}",
                    "type": kind,
                    "name": f"{kind.replace('_', ' ').title()} {number}",
                    "status": "active" if r.random() < 0.7 else "inactive",
                    "created_at": _iso(created),
                    "updated_at": _iso(r.randint(created, now_ts - 60)),
                    "audience": maker.audience(None, force_id=r.random() < 0.5),
                }
            )
    # Older revisions of a few stopped items, in their own file: readers must keep the document
    # with the later `updated_at`, whatever the file order.
    stopped = [d for d in cat.campaigns + cat.canvases if d["stopped_at"] is not None]
    for doc in r.sample(stopped, min(3, len(stopped))):
        old = json.loads(json.dumps(doc))
        old.update(status="active", enabled=True, archived=False, stopped_at=None)
        old["interaction_data_deleted_at"] = None
        old["updated_at"] = old["created_at"]
        cat.snapshots.append(old)
    return cat


def _id_references(expr: Any) -> Iterator[str]:
    """Item IDs an audience expression targets with retargeting (ID) filters."""
    if not isinstance(expr, dict):
        return
    for key in ("all", "any"):
        for sub in expr.get(key, ()):
            yield from _id_references(sub)
    if "not" in expr:
        yield from _id_references(expr["not"])
    name = expr.get("filter")
    if name is None or name == "never_received":
        return
    for key in ("campaign_id", "canvas_id"):
        if key in expr:
            yield expr[key]


def _write_catalog(cat: _Catalog, catalog_dir: Path) -> list[Path]:
    catalog_dir.mkdir(parents=True, exist_ok=True)
    half = (len(cat.campaigns) + 1) // 2
    files = {
        "campaigns_1.json": cat.campaigns[:half],
        "campaigns_2.json": cat.campaigns[half:],
        "canvases.json": cat.canvases,
        "segments.json": cat.segments,
        "content_cards.json": cat.content_cards,
        "catalog_history.json": cat.snapshots,
    }
    paths = []
    for name, docs in files.items():
        path = catalog_dir / name
        path.write_text(json.dumps(docs, indent=1) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


class _Rng:
    """Vectorised, seed-determined random columns (no numpy in the environment)."""

    def __init__(self, seed: int, stream: str) -> None:
        self._r = random.Random(f"{seed}:{stream}")

    def u64(self, n: int) -> pl.Series:
        buf = pa.py_buffer(self._r.randbytes(8 * n))
        return pl.Series(pa.Array.from_buffers(pa.uint64(), n, [None, buf]))

    def uniform(self, n: int) -> pl.Series:
        return ((self.u64(n) // 2048).cast(pl.Float64) * 2.0**-53).alias("u")

    def bytes16(self, n: int) -> pl.Series:
        buf = pa.py_buffer(self._r.randbytes(16 * n))
        return pl.Series(pa.Array.from_buffers(pa.binary(16), n, [None, buf]))

    def weighted(self, n: int, weights: list[float]) -> pl.Series:
        total = sum(weights)
        cum = pl.Series([w / total for w in weights]).cum_sum()
        idx = cum.search_sorted(self.uniform(n), side="right")
        return idx.clip(0, len(weights) - 1).cast(pl.Int32)


def _mix(a: pl.Expr, b: pl.Expr, salt: int) -> pl.Expr:
    """Deterministic per-(a, b) pseudo-random value in [0, 2^31 - 1)."""
    p = 2_147_483_647
    x = (a.cast(pl.Int64) * 1_000_003 + b.cast(pl.Int64) * 7_919 + salt) % p
    x = (x * 48_271) % p
    return (x * 48_271 + 12_345) % p


def _lookup(values: list[Any], dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    return pl.lit(pl.Series(values, dtype=dtype))


def _exposures(
    rng: _Rng, cat: _Catalog, items: pl.DataFrame, m: int, n_users: int, seed: int, base: int
) -> pl.DataFrame:
    """`m` deliveries of an item to a user, with every follow-up decided up front."""
    subs = cat.subs
    item = rng.weighted(m, items["weight"].to_list())
    # Mild skew: some users get far more messages than others; the permutation spreads the
    # heavy users over the whole ID range.
    skew = (rng.uniform(m) ** 1.5 * n_users).floor().cast(pl.Int64).clip(0, n_users - 1)
    mult = 1_000_003 if n_users % 1_000_003 else 999_983
    user = ((skew * mult + seed) % n_users).cast(pl.Int32)
    u = [rng.uniform(m).alias(f"u{k}") for k in range(10)]
    x = pl.DataFrame([item.alias("item"), user.alias("user"), *u]).with_columns(
        expo=pl.int_range(base, base + m, dtype=pl.Int64),
        kind=_lookup(items["kind"].to_list(), pl.Int8).gather(pl.col.item),
        t0=_lookup(items["t0"].to_list(), pl.Int64).gather(pl.col.item),
        t1=_lookup(items["t1"].to_list(), pl.Int64).gather(pl.col.item),
        sub_off=_lookup(items["sub_off"].to_list(), pl.Int32).gather(pl.col.item),
        n_subs=_lookup(items["n_subs"].to_list(), pl.Int32).gather(pl.col.item),
        conv_off=_lookup(items["conv_off"].to_list(), pl.Int32).gather(pl.col.item),
        n_conv=_lookup(items["n_conv"].to_list(), pl.Int32).gather(pl.col.item),
    )
    x = x.with_columns(
        t=pl.col.t0 + (pl.col.u0 * (pl.col.t1 - pl.col.t0 + 1)).floor().cast(pl.Int64),
        # One variant per user and item, so a user is either in a control group or not.
        sub=pl.col.sub_off + (_mix(pl.col.user, pl.col.item, seed) % pl.col.n_subs).cast(pl.Int32),
    ).with_columns(
        control=_lookup([s.is_control for s in subs], pl.Boolean).gather(pl.col.sub),
        step_off=_lookup([s.step_off for s in subs], pl.Int32).gather(pl.col.sub),
        n_steps=_lookup([s.n_steps for s in subs], pl.Int32).gather(pl.col.sub),
        sub_channel=_lookup([s.channel for s in subs], pl.Int8).gather(pl.col.sub),
    )
    x = x.with_columns(
        step=pl.when(pl.col.n_steps > 0).then(
            pl.col.step_off + (pl.col.u1 * pl.col.n_steps).floor().cast(pl.Int32)
        ),
    ).with_columns(
        channel=pl.coalesce(
            pl.col.sub_channel,
            _lookup(cat.step_channels or [0], pl.Int8).gather(pl.col.step),
        ),
    )
    ch = pl.col.channel
    delivered = ~pl.col.control
    bounce = delivered & (ch == 0) & (pl.col.u2 < 0.01)
    click = delivered & ~bounce & (pl.col.u3 < _lookup(list(_P_CLICK), pl.Float64).gather(ch))
    is_open = (
        delivered
        & ~bounce
        & ((pl.col.u4 < _lookup(list(_P_OPEN), pl.Float64).gather(ch)) | (click & (ch == 0)))
    )
    x = x.with_columns(
        recv=delivered,
        open=is_open,
        click=click,
        bounce=bounce,
        spam=is_open & (ch == 0) & (pl.col.u5 < 0.01),
        sms_fail=delivered & (ch == 2) & (pl.col.u5 < 0.015),
        sms_reject=delivered & (ch == 2) & (pl.col.u5 > 0.995),
        conv=~bounce & (pl.col.u6 < _P_CONVERT),
        enroll=(pl.col.kind == 0) & pl.col.control,
        entry=(pl.col.kind == 1) & (pl.col.control | (pl.col.u7 < _P_CANVAS_ENTRY)),
    )
    flags = ["recv", "open", "click", "bounce", "spam", "sms_fail", "sms_reject", "conv"]
    flags += ["enroll", "entry"]
    return x.with_columns(k=pl.sum_horizontal(pl.col(f).cast(pl.Int32) for f in flags))


_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "etype": pl.Int16(),
    "t": pl.Int64(),
    "user": pl.Int32(),
    "item": pl.Int32(),
    "sub": pl.Int32(),
    "step": pl.Int32(),
    "expo": pl.Int64(),
    "alias": pl.Int8(),
    "bot": pl.Boolean(),
    "machine_open": pl.Boolean(),
    "conv": pl.Int32(),
    "in_control": pl.Boolean(),
    "extra": pl.Int16(),
}


def _events_from_exposures(x: pl.DataFrame, now_ts: int) -> pl.DataFrame:
    day = 86_400
    ch = pl.col.channel
    t_open = pl.col.t + (pl.col.u8**3 * 3 * day).floor().cast(pl.Int64) + 30
    t_click = t_open + (pl.col.u9 * 7_200).floor().cast(pl.Int64) + 5
    t_conv = pl.col.t + (pl.col.u9 * 3 * day).floor().cast(pl.Int64) + 120
    base = ("user", "item", "sub", "step", "expo")

    def frame(flag: str, etype: pl.Expr, t: pl.Expr, **extra: pl.Expr) -> pl.DataFrame:
        return x.filter(pl.col(flag)).select(
            *(c for c in base if c not in extra),
            etype=etype.cast(pl.Int16),
            t=pl.min_horizontal(t, now_ts - 1),
            **extra,
        )

    def code(name: str) -> pl.Expr:
        return pl.lit(_T[name], dtype=pl.Int16)

    received = _lookup([_T[n] for n in _RECEIVED], pl.Int16).gather(ch)
    opened = (
        pl.when((ch == 1) & (pl.col.u8 < 0.25))
        .then(code("users.messages.pushnotification.IosForeground"))
        .otherwise(_lookup([_T[n] for n in _OPENED] + [-1] * 4, pl.Int16).gather(ch))
    )
    clicked = _lookup([_T[n] if n else -1 for n in _CLICKED], pl.Int16).gather(ch)
    conversion = (
        pl.when(pl.col.kind == 0)
        .then(code("users.campaigns.Conversion"))
        .otherwise(code("users.canvas.Conversion"))
    )
    parts = [
        frame("recv", received, pl.col.t),
        frame(
            "open",
            opened,
            t_open,
            machine_open=pl.when(ch == 0).then(pl.col.u2 < 0.25),
        ),
        frame(
            "click",
            clicked,
            t_click,
            alias=pl.when(ch == 0).then((pl.col.u5 * len(LINK_ALIASES)).floor().cast(pl.Int8)),
            bot=pl.when(ch == 0).then(pl.col.u7 < 0.03),
        ),
        frame(
            "bounce",
            code("users.messages.email.Bounce"),
            pl.col.t + 20,
            extra=(pl.col.u5 * len(_BOUNCE_REASONS)).floor().cast(pl.Int16),
        ),
        frame("spam", code("users.messages.email.MarkAsSpam"), t_open + 60),
        frame("sms_fail", code("users.messages.sms.DeliveryFailure"), pl.col.t + 5),
        frame("sms_reject", code("users.messages.sms.Rejection"), pl.col.t + 5),
        frame(
            "conv",
            conversion,
            t_conv,
            conv=pl.col.conv_off + (pl.col.u3 * pl.col.n_conv).floor().cast(pl.Int32),
        ),
        frame("enroll", code("users.campaigns.EnrollInControl"), pl.col.t),
        # Entry precedes the first message of the journey.
        frame(
            "entry",
            code("users.canvas.Entry"),
            pl.col.t - 60,
            step=pl.lit(None, dtype=pl.Int32),
            in_control=pl.col.control,
        ),
    ]
    return _conform(pl.concat([_conform(p) for p in parts], how="diagonal"))


def _conform(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(
        (pl.col(c) if c in df.columns else pl.lit(None)).cast(dt).alias(c)
        for c, dt in _EVENT_SCHEMA.items()
    )


def _standalone_events(rng: _Rng, n: int, now_ts: int) -> pl.DataFrame:
    """Events tied to no item: they feed only the per-user summaries."""
    kinds = (
        ("users.messages.sms.InboundReceive", 0.25, len(SMS_KEYWORD_CATEGORIES), _ts(2023, 1, 1)),
        ("users.messages.featureflag.Impression", 0.35, len(FEATURE_FLAGS), _ts(2024, 6, 1)),
        # News Feed is historical: its views stop well before the demo's "now".
        ("users.behaviors.app.NewsFeedImpression", 0.15, 0, _ts(2022, 1, 1)),
        ("users.messages.email.Bounce", 0.15, len(_BOUNCE_REASONS), _ts(2023, 1, 1)),
        ("users.messages.email.MarkAsSpam", 0.10, 0, _ts(2023, 1, 1)),
    )
    which = rng.weighted(n, [k[1] for k in kinds])
    u1, u2 = rng.uniform(n), rng.uniform(n)
    start = _lookup([k[3] for k in kinds], pl.Int64).gather(pl.col.which)
    end = pl.when(pl.col.which == 2).then(_ts(2025, 6, 30)).otherwise(now_ts - 1)
    n_extra = _lookup([k[2] for k in kinds], pl.Int16).gather(pl.col.which)
    df = pl.DataFrame([which.alias("which"), u1.alias("u1"), u2.alias("u2")]).select(
        etype=_lookup([_T[k[0]] for k in kinds], pl.Int16).gather(pl.col.which),
        t=start + (pl.col.u1 * (end - start)).floor().cast(pl.Int64),
        extra=pl.when(n_extra > 0).then((pl.col.u2 * n_extra).floor().cast(pl.Int16)),
    )
    return _conform(df)


def _generate_events(
    cat: _Catalog, n_events: int, n_users: int, seed: int, now_ts: int
) -> pl.DataFrame:
    rng = _Rng(seed, "events")
    target = n_events - round(_SUMMARY_ONLY_SHARE * n_events) if cat.item_rows else 0
    kept: list[pl.DataFrame] = []
    have = 0
    base = 0
    items = pl.DataFrame(cat.item_rows) if cat.item_rows else None
    while items is not None and have < target:
        # ~1.55 events per exposure; ask for a little more and cut on a whole exposure.
        # Batches of at most 500k exposures keep the working set of this step small.
        m = min(500_000, max(1_000, int((target - have) / 1.4)))
        x = _exposures(rng, cat, items, m, n_users, seed, base)
        base += m
        x = x.filter(pl.col.k.cum_sum() <= target - have)
        have += int(x["k"].sum())
        kept.append(_events_from_exposures(x, now_ts))
        if have >= target or x.height < m:
            break
    user_rng = _Rng(seed, "standalone")
    standalone = _standalone_events(user_rng, n_events - have, now_ts)
    n_alone = standalone.height
    skew = (user_rng.uniform(n_alone) ** 1.5 * n_users).floor().cast(pl.Int64)
    standalone = standalone.with_columns(
        user=((skew.clip(0, n_users - 1) * 7_919 + seed) % n_users).cast(pl.Int32)
    )
    events = pl.concat([*kept, standalone])
    ids = _Rng(seed, "ids")
    return events.with_columns(
        id=ids.bytes16(events.height), dup=ids.uniform(events.height) < _P_DUPLICATE
    )


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileJob:
    number: int
    event_type: str
    path: Path
    codec: str
    time_type: str
    sync_marker: bytes


def _plan_files(
    events: pl.DataFrame, seed: int, currents_dir: Path, now_ts: int
) -> tuple[pl.DataFrame, pl.DataFrame, list[_FileJob]]:
    """Cut each event type into 20k-50k-record files and pick the redelivered events.

    Returns the events sorted so that each file is a contiguous slice (column `file`), the
    redelivered copies with the file they go to, and the file jobs in `file` order.
    """
    r = random.Random(f"{seed}:files")
    events = events.sort("etype", "t", "id")
    counts = events.group_by("etype", maintain_order=True).len()
    jobs: list[_FileJob] = []
    file_no: list[pl.Series] = []
    redirect: dict[int, int] = {}
    last_t = events["t"]
    offset = 0
    pending_redelivery: list[tuple[int, list[int]]] = []
    for etype, count in counts.iter_rows():
        numbers: list[int] = []
        left = count
        while left > 0:
            size = min(left, r.randint(_MIN_FILE, _MAX_FILE))
            if left - size < _MIN_TAIL:
                size = left
            numbers.append(len(jobs))
            file_no.append(pl.repeat(len(jobs), size, dtype=pl.Int32, eager=True))
            offset += size
            left -= size
            # The export hour of a batch is that of its latest event.
            newest = int(last_t[offset - 1])
            jobs.append(
                _job(
                    len(jobs), ALL_EVENT_TYPES[etype], newest, len(numbers) - 1, seed, currents_dir
                )
            )
        if len(numbers) > 1:
            # Redeliver into the next file of the same type, so the copy is in another file.
            for i, number in enumerate(numbers):
                redirect[number] = numbers[(i + 1) % len(numbers)]
        else:
            pending_redelivery.append((etype, numbers))
    events = events.with_columns(file=pl.concat(file_no))
    for etype, numbers in pending_redelivery:
        # A type with a single file gets a redelivery batch of its own.
        dup_times = events.filter((pl.col.etype == etype) & pl.col.dup)["t"]
        if dup_times.len() == 0:
            continue
        hour = min(int(dup_times.max()) + 3_600, now_ts)  # type: ignore[arg-type]
        redirect[numbers[0]] = len(jobs)
        jobs.append(_job(len(jobs), ALL_EVENT_TYPES[etype], hour, 1, seed, currents_dir))
    dups = events.filter(pl.col.dup).with_columns(
        file=pl.col.file.replace_strict(redirect, return_dtype=pl.Int32)
    )
    return events, dups, jobs


def _job(
    number: int, event_type: str, ts: int, part: int, seed: int, currents_dir: Path
) -> _FileJob:
    hour = datetime.fromtimestamp(ts - ts % 3_600, UTC)
    # Rotate codecs and time types so every combination shows up even in small workspaces.
    codec = CODECS[number % len(CODECS)]
    time_type = "int" if (number // len(CODECS)) % 2 == 0 else "long"
    marker = hashlib.sha256(f"{seed}:{number}".encode()).digest()[:16]
    path = currents_path(currents_dir, event_type, hour, part=part)
    return _FileJob(number, event_type, path, codec, time_type, marker)


def _materialize(rows: pl.DataFrame, cat: _Catalog, event_type: str, seed: int) -> pl.DataFrame:
    """Integer event columns -> the string columns of the Currents record."""
    kind = pl.lit(pl.Series([r["kind"] for r in cat.item_rows] or [0], dtype=pl.Int8)).gather(
        pl.col.item
    )
    item_id = _lookup([r["item_id"] for r in cat.item_rows] or [""], pl.String).gather(pl.col.item)
    item_name = _lookup([r["item_name"] for r in cat.item_rows] or [""], pl.String).gather(
        pl.col.item
    )
    sub_id = _lookup(cat.sub_ids or [""], pl.String).gather(pl.col.sub)
    sub_name = _lookup(cat.sub_names or [""], pl.String).gather(pl.col.sub)
    width = 7
    user_num = pl.col.user.cast(pl.String).str.zfill(width)
    h = pl.col.id.bin.encode("hex")
    alias = _lookup(list(LINK_ALIASES), pl.String).gather(pl.col.alias)
    is_campaign = kind == 0
    is_canvas = kind == 1
    et = event_type
    extra_vocab: tuple[str, ...] = ()
    if et == "users.messages.email.Bounce":
        extra_vocab = _BOUNCE_REASONS
    elif et == "users.messages.sms.InboundReceive":
        extra_vocab = SMS_KEYWORD_CATEGORIES
    elif et == "users.messages.featureflag.Impression":
        extra_vocab = FEATURE_FLAGS
    extra = _lookup(list(extra_vocab) or [""], pl.String).gather(pl.col.extra)
    columns: dict[str, pl.Expr] = {
        "id": pl.concat_str(
            h.str.slice(0, 8),
            h.str.slice(8, 4),
            h.str.slice(12, 4),
            h.str.slice(16, 4),
            h.str.slice(20, 12),
            separator="-",
        ),
        "user_id": pl.concat_str(pl.lit("u"), user_num),
        "external_user_id": pl.when(_mix(pl.col.user, pl.lit(0), seed) % 100 < 80).then(
            pl.concat_str(pl.lit("ext-"), user_num)
        ),
        "time": pl.col.t,
        "app_group_id": pl.lit(APP_GROUP_ID),
        "campaign_id": pl.when(is_campaign).then(item_id),
        "campaign_name": pl.when(is_campaign).then(item_name),
        "message_variation_id": pl.when(is_campaign).then(sub_id),
        "message_variation_name": pl.when(is_campaign).then(sub_name),
        "canvas_id": pl.when(is_canvas).then(item_id),
        "canvas_name": pl.when(is_canvas).then(item_name),
        "canvas_variation_id": pl.when(is_canvas).then(sub_id),
        "canvas_variation_name": pl.when(is_canvas).then(sub_name),
        "canvas_step_id": _lookup(cat.step_ids or [""], pl.String).gather(pl.col.step),
        "canvas_step_name": _lookup(cat.step_names or [""], pl.String).gather(pl.col.step),
        "canvas_step_message_variation_id": _lookup(cat.step_msg_ids or [""], pl.String).gather(
            pl.col.step
        ),
        "dispatch_id": pl.concat_str(pl.lit("dsp_"), pl.col.expo.cast(pl.String).str.zfill(9)),
        "link_alias": alias,
        "link_id": pl.concat_str(pl.lit("lnk_"), alias),
        "url": (
            pl.concat_str(pl.lit("https://shop.example.com/"), item_id, pl.lit("/"), alias)
            if et == "users.messages.email.Click"
            else pl.concat_str(pl.lit("https://shop.example.com/sms/"), item_id)
        ),
        "bounce_reason": extra if et == "users.messages.email.Bounce" else pl.lit(None),
        "action": extra if et == "users.messages.sms.InboundReceive" else pl.lit(None),
        "message_body": (
            _lookup(list(_SMS_BODIES), pl.String).gather(pl.col.extra)
            if et == "users.messages.sms.InboundReceive"
            else pl.lit(None)
        ),
        "conversion_behavior": _lookup(cat.conversions or [""], pl.String).gather(pl.col.conv),
        "conversion_behavior_index": (
            pl.col.conv
            - _lookup([r["conv_off"] for r in cat.item_rows] or [0], pl.Int32).gather(pl.col.item)
        ),
        "machine_open": pl.when(pl.col.machine_open).then(pl.lit("true")),
        "is_suspected_bot_click": pl.col.bot,
        "in_control_group": pl.col.in_control,
        "feature_flag_id_name": (
            extra if et == "users.messages.featureflag.Impression" else pl.lit(None)
        ),
    }
    wanted = fields_for(event_type)
    out = rows.select(**{name: expr for name, expr in columns.items() if name in wanted})
    # Fields that are null throughout are left out of the records: fastavro writes null for
    # them and each one it skips saves a union resolution per record.
    keep = [c for c in out.columns if out[c].null_count() < out.height]
    return out.select(keep)


def _write_file(job: _FileJob, frame: pl.DataFrame) -> tuple[int, int]:
    names = frame.columns
    # Whole columns to Python lists, then zip: several times faster than iter_rows.
    columns = [frame[name].to_list() for name in names]
    records = (dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True))
    count = write_avro(
        job.path,
        job.event_type,
        records,
        codec=job.codec,
        time_type=job.time_type,
        fields=fields_for(job.event_type),
        sync_marker=job.sync_marker,
        # Level 1: deflate at zlib's default level would cost as much as encoding the records.
        compression_level=1,
    )
    return job.number, count


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes without them re-running the caller's main script.

    spawn re-imports `__main__` in every child, which re-runs an unguarded script (and calls
    generate_workspace again). The workers need nothing from it: their function lives here.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def generate_workspace(
    data_dir: Path,
    *,
    n_users: int = 100_000,
    n_events: int = 2_000_000,
    n_campaigns: int = 200,
    n_canvases: int = 50,
    seed: int = 7,
    now: datetime = DEFAULT_NOW,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> WorkspaceSummary:
    """Write a demo catalog and Currents export under `data_dir/landing/`.

    The output depends only on the arguments (`workers` changes speed, not bytes). `workers`
    defaults to one process for small workspaces and up to four for large ones.
    """
    started = _time.perf_counter()
    if n_users < 1 or n_users >= 10_000_000:
        raise ValueError("n_users must be between 1 and 9,999,999 (user IDs have 7 digits)")
    if n_events < 1:
        raise ValueError("n_events must be positive")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_ts = int(now.timestamp())
    report = progress or (lambda stage, done, total: None)
    data_dir = Path(data_dir)
    catalog_dir = data_dir / "landing" / "catalog"
    currents_dir = data_dir / "landing" / "currents"

    cat = _build_catalog(seed, n_campaigns, n_canvases, now_ts)
    catalog_files = _write_catalog(cat, catalog_dir)
    report("catalog", 1, 1)

    # No reference to the unsorted events outlives the call: the sort replaces them.
    rows, dups, jobs = _plan_files(
        _generate_events(cat, n_events, n_users, seed, now_ts), seed, currents_dir, now_ts
    )
    report("events", n_events, n_events)
    bounds = rows.group_by("file", maintain_order=True).len()
    slices: list[tuple[int, int]] = []
    start = 0
    for _, length in bounds.iter_rows():
        slices.append((start, length))
        start += length
    if workers is None:
        workers = 1 if n_events < 200_000 else max(1, min(4, os.cpu_count() or 1))

    counts: dict[int, int] = {}
    done = 0

    def frames() -> Iterator[tuple[_FileJob, pl.DataFrame]]:
        for job in jobs:
            # Redelivery-only files have no slice of their own.
            offset, length = slices[job.number] if job.number < len(slices) else (0, 0)
            part = pl.concat([rows.slice(offset, length), dups.filter(pl.col.file == job.number)])
            yield job, _materialize(part, cat, job.event_type, seed)

    if workers == 1:
        for job, frame in frames():
            number, count = _write_file(job, frame)
            counts[number] = count
            done += 1
            report("files", done, len(jobs))
    else:
        # spawn, not fork: forking a process that runs polars' thread pool can deadlock.
        context = multiprocessing.get_context("spawn")
        with _main_module_hidden():
            pool = context.Pool(processes=workers)
        try:
            in_flight: list[AsyncResult[tuple[int, int]]] = []
            for job, frame in frames():
                in_flight.append(pool.apply_async(_write_file, (job, frame)))
                # Bounded queue: at most two files per worker wait in memory.
                while len(in_flight) >= 2 * workers or (in_flight and in_flight[0].ready()):
                    number, count = in_flight.pop(0).get()
                    counts[number] = count
                    done += 1
                    report("files", done, len(jobs))
            for result in in_flight:
                number, count = result.get()
                counts[number] = count
                done += 1
                report("files", done, len(jobs))
        finally:
            pool.terminate()
            pool.join()

    by_type: dict[str, int] = {}
    for job in jobs:
        by_type[job.event_type] = by_type.get(job.event_type, 0) + counts[job.number]
    n_records = sum(counts.values())
    legacy = sorted(
        d["id"]
        for d in cat.campaigns + cat.canvases
        if d["interaction_data_deleted_at"] is not None
    )
    consumers = cat.campaigns + cat.canvases + cat.segments + cat.content_cards
    referenced = sorted(
        {
            ref
            for d in consumers
            if d["status"] == "active"
            for ref in _id_references(d.get("audience"))
        }
    )
    return WorkspaceSummary(
        data_dir=data_dir,
        catalog_dir=catalog_dir,
        currents_dir=currents_dir,
        catalog_files=catalog_files,
        currents_files=[job.path for job in jobs],
        n_users=n_users,
        n_campaigns=len(cat.campaigns),
        n_canvases=len(cat.canvases),
        n_segments=len(cat.segments),
        n_content_cards=len(cat.content_cards),
        n_events=n_events,
        n_records=n_records,
        n_duplicates=n_records - n_events,
        records_by_event_type=dict(sorted(by_type.items())),
        legacy_deleted_ids=legacy,
        referenced_by_active=referenced,
        seconds=_time.perf_counter() - started,
    )
