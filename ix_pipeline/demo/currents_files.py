"""Writing Currents event files (FORMATS.md section 1).

Used by the demo workspace generator, by tests and by benchmarks, so that every producer of
test input writes exactly the layout and record shapes that ingestion must accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

AvroType = str | list[str]

_NULL_STR: list[str] = ["null", "string"]

# Field order follows the platform's published schemas: the always-present fields first, then
# the item fields, then the event-specific ones. `time` is a placeholder for int/long.
CURRENTS_FIELDS: dict[str, AvroType] = {
    "id": "string",
    "user_id": "string",
    "external_user_id": _NULL_STR,
    "time": "long",
    "app_group_id": "string",
    "campaign_id": _NULL_STR,
    "campaign_name": _NULL_STR,
    "message_variation_id": _NULL_STR,
    "message_variation_name": _NULL_STR,
    "canvas_id": _NULL_STR,
    "canvas_name": _NULL_STR,
    "canvas_variation_id": _NULL_STR,
    "canvas_variation_name": _NULL_STR,
    "canvas_step_id": _NULL_STR,
    "canvas_step_name": _NULL_STR,
    "canvas_step_message_variation_id": _NULL_STR,
    "send_id": _NULL_STR,
    "dispatch_id": _NULL_STR,
    "link_alias": _NULL_STR,
    "link_id": _NULL_STR,
    "url": _NULL_STR,
    "bounce_reason": _NULL_STR,
    "action": _NULL_STR,
    "message_body": _NULL_STR,
    "abort_type": _NULL_STR,
    "conversion_behavior": _NULL_STR,
    "machine_open": _NULL_STR,
    "is_suspected_bot_click": ["null", "boolean"],
    "in_control_group": ["null", "boolean"],
    "conversion_behavior_index": ["null", "int"],
    # Not named in FORMATS.md, but it is the platform's field on feature-flag impressions and
    # the only way the `feature_flag {flag_id}` summary can be fed; optional like any new field.
    "feature_flag_id_name": _NULL_STR,
}

REQUIRED_FIELDS: tuple[str, ...] = ("id", "user_id", "external_user_id", "time", "app_group_id")

_CHANNEL_TYPES = ("email", "pushnotification", "webhook", "whatsapp", "line", "rcs", "liveactivity")

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "received": (
        *(f"users.messages.{c}.Send" for c in _CHANNEL_TYPES),
        "users.messages.sms.Delivery",
        "users.messages.inappmessage.Impression",
        "users.messages.contentcard.Impression",
        "users.messages.banner.Impression",
    ),
    "opened": (
        "users.messages.email.Open",
        "users.messages.pushnotification.Open",
        "users.messages.pushnotification.IosForeground",
        "users.messages.whatsapp.Read",
        "users.messages.rcs.Read",
    ),
    "clicked": (
        "users.messages.email.Click",
        "users.messages.inappmessage.Click",
        "users.messages.contentcard.Click",
        "users.messages.banner.Click",
        "users.messages.whatsapp.Click",
        "users.messages.line.Click",
        "users.messages.rcs.Click",
        "users.messages.sms.ShortLinkClick",
    ),
    "converted": ("users.campaigns.Conversion", "users.canvas.Conversion"),
    "control": ("users.campaigns.EnrollInControl", "users.canvas.Entry"),
    "entry": ("users.canvas.Entry",),
    "summary_only": (
        "users.messages.email.Bounce",
        "users.messages.email.MarkAsSpam",
        "users.messages.sms.DeliveryFailure",
        "users.messages.sms.Rejection",
        "users.messages.sms.InboundReceive",
        "users.messages.featureflag.Impression",
        "users.behaviors.app.NewsFeedImpression",
    ),
}

ALL_EVENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(t for ts in EVENT_TYPES.values() for t in ts)
)

CODECS: tuple[str, ...] = ("null", "deflate", "snappy")

_ITEM_FIELDS: tuple[str, ...] = (
    "campaign_id",
    "campaign_name",
    "message_variation_id",
    "message_variation_name",
    "canvas_id",
    "canvas_name",
    "canvas_variation_id",
    "canvas_variation_name",
    "canvas_step_id",
    "canvas_step_name",
    "canvas_step_message_variation_id",
    "send_id",
    "dispatch_id",
)
_CAMPAIGN_FIELDS: tuple[str, ...] = (
    "campaign_id",
    "campaign_name",
    "message_variation_id",
    "message_variation_name",
    "send_id",
)
_CANVAS_FIELDS: tuple[str, ...] = (
    "canvas_id",
    "canvas_name",
    "canvas_variation_id",
    "canvas_variation_name",
)
_CONVERSION_FIELDS: tuple[str, ...] = ("conversion_behavior_index", "conversion_behavior")

# Per-event-type field sets as the platform publishes them: each event type has its own schema,
# so ingestion must never assume a column exists beyond the required ones.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "users.messages.email.Open": ("machine_open",),
    "users.messages.email.Click": ("link_alias", "link_id", "url", "is_suspected_bot_click"),
    "users.messages.sms.ShortLinkClick": ("url",),
    "users.messages.email.Bounce": ("bounce_reason",),
}
_OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "users.campaigns.Conversion": (*_CAMPAIGN_FIELDS, *_CONVERSION_FIELDS),
    "users.campaigns.EnrollInControl": _CAMPAIGN_FIELDS,
    "users.canvas.Conversion": (
        *_CANVAS_FIELDS,
        "canvas_step_id",
        "canvas_step_name",
        *_CONVERSION_FIELDS,
    ),
    "users.canvas.Entry": (*_CANVAS_FIELDS, "in_control_group"),
    "users.messages.sms.InboundReceive": ("action", "message_body"),
    "users.messages.featureflag.Impression": ("feature_flag_id_name",),
    "users.behaviors.app.NewsFeedImpression": (),
}


def fields_for(event_type: str) -> list[str]:
    """The fields the platform's schema for `event_type` carries (message events: item fields)."""
    own = _OWN_FIELDS.get(event_type)
    if own is None:
        own = (*_ITEM_FIELDS, *_EXTRA_FIELDS.get(event_type, ()))
    wanted = set(REQUIRED_FIELDS) | set(own)
    return [f for f in CURRENTS_FIELDS if f in wanted]


def _split_event_type(event_type: str) -> tuple[str, str]:
    namespace, _, name = event_type.rpartition(".")
    if not namespace or not name:
        raise ValueError(f"event type {event_type!r} is not dotted like users.messages.email.Click")
    return namespace, name


def avro_schema(
    event_type: str, time_type: str = "long", fields: list[str] | None = None
) -> dict[str, Any]:
    """Avro record schema of a Currents event type.

    `fields` restricts the schema to a subset of CURRENTS_FIELDS; the required fields are always
    kept because the platform never omits them.
    """
    if time_type not in ("int", "long"):
        raise ValueError(f"time_type must be 'int' or 'long', not {time_type!r}")
    if fields is not None:
        unknown = [f for f in fields if f not in CURRENTS_FIELDS]
        if unknown:
            raise ValueError(f"unknown Currents fields: {unknown}")
    wanted = set(CURRENTS_FIELDS) if fields is None else set(fields) | set(REQUIRED_FIELDS)
    namespace, name = _split_event_type(event_type)
    avro_fields: list[dict[str, Any]] = []
    for field, avro_type in CURRENTS_FIELDS.items():
        if field not in wanted:
            continue
        if field == "time":
            avro_fields.append({"name": "time", "type": time_type})
        elif isinstance(avro_type, list):
            avro_fields.append({"name": field, "type": list(avro_type), "default": None})
        else:
            avro_fields.append({"name": field, "type": avro_type})
    return {
        "type": "record",
        "name": name,
        "namespace": f"dataexport.S3.inner.{namespace}",
        "fields": avro_fields,
    }


def currents_path(
    root: Path,
    event_type: str,
    hour: datetime,
    *,
    integration_id: str = "0a1b2c3d",
    cluster: str = "prod-01",
    schema_id: str = "1",
    zone: str = "zone-a",
    part: int = 0,
) -> Path:
    """Where Currents puts a file of `event_type` exported in `hour` (UTC)."""
    return (
        Path(root)
        / f"dataexport.{cluster}.S3.integration.{integration_id}"
        / f"event_type={event_type}"
        / f"date={hour.strftime('%Y-%m-%d-%H')}"
        / schema_id
        / zone
        / f"part-{part:05d}.avro"
    )


def write_avro(
    path: Path,
    event_type: str,
    records: Iterable[Mapping[str, Any]],
    *,
    codec: str = "deflate",
    time_type: str = "long",
    fields: list[str] | None = None,
    sync_marker: bytes | None = None,
    compression_level: int | None = None,
) -> int:
    """Write one Avro object container file of `event_type` records; returns the record count.

    Nullable fields may be left out of a record. `sync_marker` (16 bytes) makes the file
    byte-for-byte reproducible; fastavro otherwise draws a random one. `compression_level`
    applies to deflate (zlib's default when None).
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, not {codec!r}")
    parsed = fastavro.parse_schema(avro_schema(event_type, time_type, fields))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def counted() -> Iterable[Mapping[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    with path.open("wb") as out:
        fastavro.writer(
            out,
            parsed,
            counted(),
            codec=codec,
            sync_marker=sync_marker or b"",  # empty: fastavro draws a random one
            codec_compression_level=compression_level,
        )
    return count


def _with_event_type(
    records: Iterable[Mapping[str, Any]], event_type: str | None
) -> Iterable[dict[str, Any]]:
    for record in records:
        row = dict(record)
        if event_type is not None:
            row["event_type"] = event_type
        elif "event_type" not in row:
            raise ValueError("record has no event_type and none was given")
        yield row


def write_jsonl(
    path: Path, records: Iterable[Mapping[str, Any]], event_type: str | None = None
) -> int:
    """Write records as JSON Lines with an `event_type` field; returns the record count.

    Records must carry `event_type` themselves unless `event_type` is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in _with_event_type(records, event_type):
            out.write(json.dumps(row, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "boolean": pa.bool_(),
}


def _arrow_type(avro_type: AvroType) -> pa.DataType:
    if isinstance(avro_type, list):
        (inner,) = [t for t in avro_type if t != "null"]
        return _ARROW_TYPES[inner]
    return _ARROW_TYPES[avro_type]


def parquet_schema() -> pa.Schema:
    """Arrow schema of Currents records in Parquet: `event_type` then every Currents field."""
    return pa.schema(
        [pa.field("event_type", pa.string(), nullable=False)]
        + [
            pa.field(name, _arrow_type(t), nullable=isinstance(t, list))
            for name, t in CURRENTS_FIELDS.items()
        ]
    )


def write_parquet(
    path: Path, records: Iterable[Mapping[str, Any]], event_type: str | None = None
) -> int:
    """Write records as Parquet with an `event_type` column; returns the record count."""
    rows = list(_with_event_type(records, event_type))
    table = pa.Table.from_pylist(rows, schema=parquet_schema())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return len(rows)
