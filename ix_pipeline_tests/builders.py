"""Small, explicit builders for catalog documents and Currents events used across tests.

They write real files (JSON, Avro, JSON Lines) that the real ingestion reads.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ix_pipeline.demo.currents_files import currents_path, write_avro

_ids = itertools.count(1)
T0 = int(datetime(2025, 1, 10, 12, tzinfo=UTC).timestamp())


def campaign(
    cid: str,
    *,
    status: str = "stopped",
    stopped_at: str | None = "2025-01-31T10:00:00Z",
    tags: list[str] | None = None,
    variants: tuple[str, ...] = ("v1",),
    control: bool = False,
    audience: Any = None,
    deleted_at: str | None = None,
    updated_at: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    messages: dict[str, Any] = {
        f"{cid}_{v}": {"channel": "email", "name": f"Variant {v}"} for v in variants
    }
    if control:
        messages[f"{cid}_control"] = {"channel": "email", "type": "control"}
    doc: dict[str, Any] = {
        "id": cid, "type": "campaign", "name": f"Campaign {cid}", "tags": tags or [],
        "created_at": "2024-06-01T00:00:00Z", "updated_at": updated_at, "archived": status == "archived",
        "draft": status == "draft", "enabled": status == "active", "first_sent": "2024-06-02T00:00:00Z",
        "last_sent": stopped_at, "messages": messages, "status": status, "stopped_at": stopped_at,
        "interaction_data_deleted_at": deleted_at,
    }  # fmt: skip
    if audience is not None:
        doc["audience"] = audience
    return doc


def canvas(
    cid: str,
    *,
    status: str = "stopped",
    stopped_at: str | None = "2025-01-31T10:00:00Z",
    tags: list[str] | None = None,
    steps: tuple[str, ...] = ("s1", "s2"),
    control: bool = True,
    audience: Any = None,
    updated_at: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    variants = [{"id": f"{cid}_var1", "name": "Branch 1", "first_step_ids": [f"{cid}_{steps[0]}"]}]
    if control:
        variants.append(
            {"id": f"{cid}_ctrl", "name": "Control", "type": "control", "first_step_ids": []}
        )
    doc: dict[str, Any] = {
        "id": cid, "type": "canvas", "name": f"Canvas {cid}", "tags": tags or [],
        "created_at": "2024-06-01T00:00:00Z", "updated_at": updated_at, "status": status,
        "stopped_at": stopped_at, "first_entry": "2024-06-02T00:00:00Z", "last_entry": stopped_at,
        "variants": variants,
        "steps": [{"id": f"{cid}_{s}", "name": f"Step {s}", "type": "message", "next_step_ids": [],
                   "messages": {f"{cid}_{s}_m": {"channel": "email"}}} for s in steps],
        "interaction_data_deleted_at": None,
    }  # fmt: skip
    if audience is not None:
        doc["audience"] = audience
    return doc


def consumer(
    cid: str, kind: str = "segment", *, active: bool = True, audience: Any = None
) -> dict[str, Any]:
    return {"id": cid, "type": kind, "name": f"{kind} {cid}", "status": "active" if active else "inactive",
            "audience": audience if audience is not None else {"all": []}}  # fmt: skip


def write_catalog(folder: Path, docs: Iterable[Mapping[str, Any]], name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"catalog-{next(_ids):04d}.json")
    path.write_text(json.dumps(list(docs)))
    return path


def campaign_event(
    cid: str, user: str, *, t: int = T0, variant: str = "v1", eid: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"id": eid or f"ev{next(_ids):07d}", "user_id": user, "external_user_id": f"ext-{user}", "time": t,
            "app_group_id": "app", "campaign_id": cid, "campaign_name": f"Campaign {cid}",
            "message_variation_id": f"{cid}_{variant}", **extra}  # fmt: skip


def canvas_event(
    cid: str, user: str, *, t: int = T0, step: str = "s1", eid: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"id": eid or f"ev{next(_ids):07d}", "user_id": user, "external_user_id": None, "time": t,
            "app_group_id": "app", "canvas_id": cid, "canvas_name": f"Canvas {cid}",
            "canvas_variation_id": f"{cid}_var1", "canvas_step_id": f"{cid}_{step}", **extra}  # fmt: skip


def write_events(root: Path, event_type: str, records: list[dict[str, Any]], *, part: int | None = None,
                 codec: str = "deflate", time_type: str = "long") -> Path:  # fmt: skip
    path = currents_path(
        root,
        event_type,
        datetime(2025, 1, 10, 12, tzinfo=UTC),
        part=part if part is not None else next(_ids),
    )
    write_avro(path, event_type, records, codec=codec, time_type=time_type)
    return path
