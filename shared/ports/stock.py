"""The stock-store port: per-store stock documents kept equal to the stock invariant (docs/stock-and-events.md).

Two adapters implement it: :mod:`shared.adapters.stock_sqlite` (embedded, the local default) and
:mod:`shared.adapters.stock_cosmos` (Azure Cosmos DB for NoSQL). One contract test suite
(``tests/integration/test_stock_contract.py``) holds both to the same behaviour.

The contract, for one store:
- ``apply`` adds each event's deltas once: an event id seen before (by any earlier call, in any process,
  before or after a crash) is a ``duplicate``, or ``conflicting`` when the ledger recorded it with another
  time or other deltas; an event at or before the store's baseline snapshot is
  ``before_baseline`` (the dump's count already includes it). ``apply`` is atomic per event: after a crash
  an event has either changed stock and been recorded, or neither.
- ``rebase`` makes a dump the baseline if it is later than the current one (snapshot time, then dump id)
  and recomputes every sku from the dump's count plus the recorded events after its snapshot. It is
  idempotent, and a rebase interrupted by a crash is finished by running it again.
- ``changes`` returns every document written after a cursor it handed out earlier (``cursor``), so a
  reader's cost follows the writes, not the size of the stock.
Callers pass events of one store per ``apply`` call, already validated and with distinct event ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.core.events import SaleEvent
from shared.core.stock import Baseline


@dataclass(frozen=True, slots=True)  # slots: a timer may hold a million of them (MAX_CHANGES)
class StockDoc:
    store_id: str
    sku: str
    on_hand: int
    # The breakdown: on_hand = baseline_on_hand + events_delta, against the dump baseline_dump_id. That is the
    # store's baseline, or (Cosmos DB) an earlier dump when later rebases found the count right and left the
    # document alone; on_hand is the stock invariant's either way.
    baseline_on_hand: int  # the count in that dump (0 when the dump did not list the sku)
    events_delta: int  # the sum of the counted events after that dump's snapshot
    baseline_dump_id: str | None
    baseline_at: str | None  # that dump's snapshot time (UTC text), None before the first dump
    updated_at: str

    def to_json(self) -> dict:
        return {"storeId": self.store_id, "sku": self.sku, "onHand": self.on_hand,
                "baselineOnHand": self.baseline_on_hand, "eventsDelta": self.events_delta,
                "baselineDumpId": self.baseline_dump_id, "baselineAt": self.baseline_at,
                "updatedAt": self.updated_at}


@dataclass(frozen=True)
class StockChanges:
    """What :meth:`StockStore.changes` found: the documents written since a cursor, and the cursor to pass next.

    ``docs`` holds the current value of every document written after the cursor passed in (it may also hold
    some written just before it: a cursor may be kept a little behind so that a write in flight is never
    missed), sorted by store and sku."""

    docs: list[StockDoc]
    cursor: str  # opaque: hand it back to the next call


MAX_CHANGES = 1_000_000  # documents one changes() call returns at most (about 300 MB as StockDocs)


@dataclass
class ApplyResult:
    # Event ids (ids are unique per store; apply_batch lists those of every store).
    applied: list[str] = field(default_factory=list)  # event ids that changed stock in this call
    duplicates: list[str] = field(default_factory=list)  # already applied by an earlier call
    # (store id, event id): recorded with another time or other deltas (a sender reusing ids): not applied
    # either; the caller sets these aside (conflicting_duplicate), so they name the store (another store may
    # use the same id). Only ids the ledger still holds can be compared.
    conflicting: list[tuple[str, str]] = field(default_factory=list)
    before_baseline: list[str] = field(default_factory=list)  # already in the baseline dump's count
    operations: int = 0  # store operations this call cost (rows or documents read and written)


@dataclass(frozen=True)
class RebaseResult:
    status: Literal["rebased", "current", "older"]  # current: already the baseline; older: a later one is
    store_id: str
    dump_id: str
    skus: int = 0  # stock documents written
    events_after: int = 0  # recorded events after the snapshot, added on top of the dump's counts


@dataclass(frozen=True)
class BaselineInfo:
    dump_id: str
    snapshot_at: str  # UTC text (shared.core.events.time_key)


class StockStore(Protocol):
    def apply(self, store_id: str, events: Sequence[SaleEvent]) -> ApplyResult: ...

    def apply_batch(self, events_by_store: Mapping[str, Sequence[SaleEvent]]) -> ApplyResult:
        """``apply`` for every store of one delivered batch, with the results summed. The embedded store makes
        it one transaction; Cosmos DB applies store by store (a transactional batch spans one partition)."""
        ...

    def rebase(self, baseline: Baseline) -> RebaseResult: ...

    def stock(self, store_id: str, sku: str | None = None) -> list[StockDoc]:
        """The store's documents, sorted by sku; one sku's (or none) when ``sku`` is given."""
        ...

    def baseline(self, store_id: str) -> BaselineInfo | None: ...

    def cursor(self) -> str:
        """A cursor for now: ``changes`` of it will hold every document written from now on."""
        ...

    def changes(self, since: str, *, max_docs: int = MAX_CHANGES) -> StockChanges | None:
        """The documents of every store written after the cursor ``since``, for readers that keep their own
        view of the stock and want to pay only for what changed (the timers). None when ``since`` is not a
        cursor of this store or more than ``max_docs`` documents changed: the caller then takes a new
        :meth:`cursor` and reads the stores it needs whole."""
        ...

    def stores(self) -> list[str]:
        """Every store that has a baseline or stock documents, sorted."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
