"""The stock invariant of handbook §5, executable: what every stock store must end up holding.

    stock(s, k) = on_hand_D(k) + Σ delta(e, k)  over distinct events e of s with occurredAt > T

where D is the store's latest dump (snapshot time T; ties broken by dump id so the answer never depends on
arrival order). This is the reference the tests hold the adapters to; the adapters compute the same thing
incrementally. Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.events import SaleEvent, time_key


@dataclass(frozen=True)
class Baseline:
    """A dump's stock counts: what the store counted at ``snapshot_at``."""

    store_id: str
    dump_id: str
    snapshot_at: datetime  # aware
    on_hand: Mapping[str, int] = field(default_factory=dict)  # normalised sku -> count

    @property
    def key(self) -> tuple[str, str]:
        """Order of baselines: later snapshot wins; the dump id breaks ties deterministically."""
        return (time_key(self.snapshot_at), self.dump_id)


def latest(baselines: Iterable[Baseline]) -> Baseline | None:
    return max(baselines, key=lambda b: b.key, default=None)


def expected_stock(baselines: Iterable[Baseline], events: Iterable[SaleEvent]) -> dict[str, int]:
    """Stock per sku for one store, from every dump and every delivery seen (in any order, repeats
    included). Skus whose count is zero and that no dump or counted event names are absent."""
    base = latest(baselines)
    cutoff = time_key(base.snapshot_at) if base else None
    out: dict[str, int] = dict(base.on_hand) if base else {}
    seen: set[str] = set()
    for e in events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if cutoff is not None and e.occurred_key <= cutoff:
            continue
        for sku, delta in e.deltas:
            out[sku] = out.get(sku, 0) + delta
    return out
