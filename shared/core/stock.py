"""The stock invariant (docs/stock-and-events.md), executable: what every stock store must end up holding.

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
        """Order of baselines: later snapshot wins; the dump id breaks ties deterministically (the greater id,
        compared as text: the order both stock stores' ``rebase`` keep)."""
        return (time_key(self.snapshot_at), self.dump_id)


def latest(baselines: Iterable[Baseline]) -> Baseline | None:
    return max(baselines, key=lambda b: b.key, default=None)


def expected_stock(baselines: Iterable[Baseline], events: Iterable[SaleEvent]) -> dict[str, int]:
    """Stock per sku for one store, from every dump and every delivery seen (in any order, repeats
    included). Skus whose count is zero and that no dump or counted event names are absent.

    ValueError when the baselines and events name more than one store: another store's dump is not a
    baseline of this one, nor its events (whose ids are only unique per store) deltas of it; use
    :func:`expected_stock_by_store` for several."""
    baselines, events = list(baselines), list(events)
    stores = {b.store_id for b in baselines} | {e.store_id for e in events}
    if len(stores) > 1:
        raise ValueError(f"expected_stock is for one store, got {', '.join(sorted(stores))}")
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


def expected_stock_by_store(baselines: Iterable[Baseline], events: Iterable[SaleEvent]) -> dict[str, dict[str, int]]:
    """:func:`expected_stock` of every store a baseline or an event names: each store on its own latest dump
    and its own events (an event id counts once per store)."""
    by_store: dict[str, tuple[list[Baseline], list[SaleEvent]]] = {}
    for b in baselines:
        by_store.setdefault(b.store_id, ([], []))[0].append(b)
    for e in events:
        by_store.setdefault(e.store_id, ([], []))[1].append(e)
    return {store: expected_stock(*by_store[store]) for store in sorted(by_store)}
