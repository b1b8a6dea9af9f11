"""Quarantine: where bad files and records go, with the reason, so nothing is silently dropped.

A quarantined file is copied (never moved: the landing area belongs to whoever delivers the
files) next to a `.reason.txt`; quarantined records are appended as JSON Lines with their
source, index and reason. Names are derived from a hash so no input name becomes a path.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_SAVED_VALUE_CHARS = 10_000


@dataclass(frozen=True)
class Rejected:
    """One quarantined record (record_index >= 0) or a whole file (record_index == -1)."""

    source: str
    record_index: int
    reason: str
    event_id: str | None = None
    record: dict[str, Any] | None = None


def _safe_name(source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).name)[-80:].lstrip(".") or "input"
    return f"{hashlib.sha256(source.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}-{stem}"


def _clip(value: Any) -> Any:
    # A 10 MB id must not turn the quarantine into a second copy of the attack.
    if isinstance(value, str) and len(value) > MAX_SAVED_VALUE_CHARS:
        return value[:MAX_SAVED_VALUE_CHARS] + f"…[{len(value)} chars]"
    if isinstance(value, bytes):
        return _clip(value.decode("utf-8", "backslashreplace"))
    return value


@dataclass
class Quarantine:
    root: Path
    run_label: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))

    @property
    def folder(self) -> Path:
        return self.root / self.run_label

    def save(self, rejected: list[Rejected], files: dict[str, Path]) -> dict[int, str]:
        """Write what was rejected; returns, per position in `rejected`, where it was saved."""
        if not rejected:
            return {}
        self.folder.mkdir(parents=True, exist_ok=True)
        saved: dict[int, str] = {}
        records_path = self.folder / "records.jsonl"
        with records_path.open("a", encoding="utf-8") as out:
            for pos, rej in enumerate(rejected):
                if rej.record_index < 0:
                    target = self.folder / _safe_name(rej.source)
                    src = files.get(rej.source)
                    if src is not None and src.exists():
                        shutil.copyfile(src, target)
                    target.with_name(target.name + ".reason.txt").write_text(
                        f"source: {rej.source}\nreason: {rej.reason}\n", encoding="utf-8"
                    )
                    saved[pos] = str(target)
                else:
                    line = {
                        "source": rej.source,
                        "record_index": rej.record_index,
                        "reason": rej.reason,
                        "record": {k: _clip(v) for k, v in (rej.record or {}).items()},
                    }
                    out.write(json.dumps(line, default=str, ensure_ascii=True) + "\n")
                    saved[pos] = str(records_path)
        return saved
