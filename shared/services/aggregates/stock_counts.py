"""The stock store's counts for one aggregates run, paid for by what changed: the documents written since the
last run (:meth:`~shared.ports.stock.StockStore.changes`) laid over the counts the store's ``stock_current``
rows already hold. A store is read whole when there is nothing to lay them over: the first run or a full
rebuild (no cursor), a foreign cursor or too many changes, or a store without rows yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.ports.stock import StockStore
from shared.services.stock_changes import changes_by_store

if TYPE_CHECKING:
    import pyarrow as pa


class StockCounts:
    """Per store, (sku, on_hand) as the stock store counts them now; ``cursor`` is what the state keeps."""

    def __init__(self, stock: StockStore, since: str | None) -> None:
        self._stock = stock
        found = changes_by_store(stock, since)  # its cursor is taken before any store is read whole
        self.cursor, self._changed, self.docs_read = found.cursor, found.by_store, found.docs_read
        self.stores_read = 0

    def counts(self, store: str, previous: pa.Table | None) -> pa.Table:
        """The store's counts: ``previous`` (its stock_current rows' sku and on_hand) with the changes laid
        over, or every document read when there is no ``previous`` or no changes to lay over it."""
        import pyarrow as pa

        if self._changed is None or previous is None or previous.num_rows == 0:
            docs = self._stock.stock(store)
            self.docs_read += len(docs)
            self.stores_read += 1
            on_hand = {d.sku: d.on_hand for d in docs}
        else:
            skus, values = previous.column("sku").to_pylist(), previous.column("on_hand").to_pylist()
            on_hand = {k: v for k, v in zip(skus, values, strict=True) if v is not None}
            on_hand.update({d.sku: d.on_hand for d in self._changed.get(store, [])})
        skus = sorted(on_hand)
        return pa.table({"sku": pa.array(skus, pa.string()),
                         "on_hand": pa.array([on_hand[k] for k in skus], pa.int64())})


__all__ = ["StockCounts"]
