"""Rule 10: expired data that an active consumer needs, and references that can never work.

Pure functions over the policy's decisions and the catalog facts; the catalog sensor turns
their answers into restore runs, asset checks and notices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ix_pipeline.lifecycle.policy import Decision, ItemFacts


@dataclass(frozen=True)
class RestoreNeed:
    item_id: str
    item_type: str
    consumers: tuple[str, ...]  # active consumers referencing it by ID
    reactivated: bool  # the item itself is active again

    @property
    def reason(self) -> str:
        parts = []
        if self.consumers:
            parts.append(f"referenced by ID from active {', '.join(self.consumers)}")
        if self.reactivated:
            parts.append("the item is active again")
        return f"{self.item_id} is expired but " + " and ".join(parts)


def restores_needed(decisions: Iterable[Decision], facts: Iterable[ItemFacts]) -> list[RestoreNeed]:
    """Expired items that an active consumer references by ID, or that were resumed.

    Without a restore they would retarget nobody (the platform refuses to launch them).
    Items being restored already are left alone: their restore is under way.
    """
    status = {f.item_id: f.status for f in facts}
    needs = [
        RestoreNeed(d.item_id, d.item_type, d.exempt_by, status.get(d.item_id) == "active")
        for d in decisions
        if d.state == "expired" and (d.exempt_by or status.get(d.item_id) == "active")
    ]
    return sorted(needs, key=lambda n: n.item_id)
