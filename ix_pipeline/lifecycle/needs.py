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
    interrupted: bool = False  # still marked `restoring`, with no restore running

    @property
    def reason(self) -> str:
        if self.interrupted:
            return f"{self.item_id}'s restore stopped halfway; its data is invisible until resumed"
        parts = []
        if self.consumers:
            parts.append(f"referenced by ID from active {', '.join(self.consumers)}")
        if self.reactivated:
            parts.append("the item is active again")
        return f"{self.item_id} is expired but " + " and ".join(parts)


def restores_needed(decisions: Iterable[Decision], facts: Iterable[ItemFacts]) -> list[RestoreNeed]:
    """Expired items that an active consumer references by ID, or that were resumed, and
    restores that stopped halfway.

    Without a restore they would retarget nobody (the platform refuses to launch them).
    A restore holds the hot store from its `restoring` mark to its end, so whoever can read
    the store and still finds an item `restoring` is looking at a restore that died: its data
    stays invisible until a restore is run again, which converges (ARCHITECTURE.md).
    """
    status = {f.item_id: f.status for f in facts}
    needs = [
        RestoreNeed(
            d.item_id,
            d.item_type,
            d.exempt_by,
            status.get(d.item_id) == "active",
            interrupted=d.state == "restoring",
        )
        for d in decisions
        if d.state == "restoring"
        or (d.state == "expired" and (d.exempt_by or status.get(d.item_id) == "active"))
    ]
    return sorted(needs, key=lambda n: n.item_id)
