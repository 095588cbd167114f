"""What the timers share about the stock store's changes: read the documents written since their last cursor,
grouped by store, or learn that they must read the stores they need whole (no cursor yet, a foreign one, or
too many changes) from a new cursor taken first (docs/alerts-and-telemetry.md)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.ports.stock import StockDoc, StockStore


@dataclass(frozen=True)
class StockChangesByStore:
    cursor: str  # what the timer keeps for its next run
    by_store: dict[str, list[StockDoc]] | None  # the changed documents per store; None: read stores whole
    docs_read: int  # documents the changes query returned


def changes_by_store(stock: StockStore, since: str | None) -> StockChangesByStore:
    """The documents written since ``since``, per store; or None per store when there is nothing to lay them
    over (``since`` None) or the store refused the cursor, with a cursor taken before any whole read."""
    changes = stock.changes(since) if since else None
    if changes is None:
        return StockChangesByStore(stock.cursor(), None, 0)
    by_store: dict[str, list[StockDoc]] = {}
    for d in changes.docs:
        by_store.setdefault(d.store_id, []).append(d)
    return StockChangesByStore(changes.cursor, by_store, len(changes.docs))


__all__ = ["StockChangesByStore", "changes_by_store"]
