"""The stock store on Azure Cosmos DB for NoSQL: per-store stock documents that keep the stock invariant (each
sku = the latest dump's count + the distinct events after its snapshot; docs/stock-and-events.md).

All of a store's documents share one logical partition (``/storeId``), so one transactional batch can write
its baseline document, its event ledger and its stock documents at once. The documents, batches and queries
are in :mod:`~shared.adapters.stock_cosmos_documents`; the client set-up and the retry of throttled batches
in :mod:`~shared.adapters.stock_cosmos_client`. Ledger items expire after ``ledger_ttl_s``: an event
redelivered later than that would count again, so the TTL must comfortably exceed the time between dumps
plus redelivery delays.

Why the invariant holds under concurrency and crashes without any lock:

- ``apply`` writes each chunk of events as ONE transactional batch: a conditional patch of the baseline
  document (``FROM c WHERE c.snapshotAt = <T we read>``), a ``create`` per ledger item (409 = already
  counted) and an ``incr`` patch per sku. All or nothing: a crash leaves every event applied and
  recorded, or neither. If a rebase moved the baseline after we read it, the guard fails (412) and the
  chunk is redone against the new snapshot time.
- ``rebase`` (1) moves the baseline document (etag-conditional), (2) reads the stock documents, THEN sums
  the ledger after the new snapshot, (3) rewrites each document with ``dump + ledger`` conditional on the
  etag read in (2). An apply batch that commits between the steps is either in the ledger sum or changed
  the document's etag (412 → that sku is redone); an apply that read the old baseline fails its guard once
  (1) has committed. Documents it rewrote carry ``rebasedDumpId``, so a rebase cut short by a crash is
  finished by running it again.

This module imports the Azure SDK at module level; :mod:`shared.bootstrap` imports it lazily, only when
Cosmos DB is configured. docs/cosmos.md describes the data model, the algorithm and the request-unit costs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.cosmos import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.adapters.stock_cosmos_client import (
    BATCH_THROTTLE_RETRIES,
    SDK_THROTTLE_MAX_WAIT_S,
    SDK_THROTTLE_RETRIES,
    client_options,
    ensure_container,
    execute_batch,
    open_container,
)
from shared.adapters.stock_cosmos_documents import (
    BASELINE_ID,
    INDEXING_POLICY,
    MAX_BATCH_BYTES,
    MAX_BATCH_OPERATIONS,
    PARTITION_KEY_PATH,
    STOCK_DOCS,
    STOCK_SINCE,
    STORES,
    body,
    chunk_operations,
    encode_id_part,
    event_doc_id,
    events_by_id,
    existing_ids,
    ledger_after,
    new_baseline,
    next_chunk,
    now_key,
    query,
    rebased_stock_doc,
    stock_doc,
    stock_doc_id,
    stock_docs,
    zero_stock_doc,
)
from shared.core.events import SaleEvent, dedupe, event_content, time_key
from shared.core.stock import Baseline
from shared.ports.stock import MAX_CHANGES, ApplyResult, BaselineInfo, RebaseResult, StockChanges, StockDoc

# ``changes`` hands out a cursor this many seconds behind what it read: ``_ts`` is each partition's own clock
# (seconds), and a write may land on one partition after the query read it with a time another partition had
# already passed. Re-reading a minute of writes on every call costs little; missing one would cost an alert.
CHANGES_OVERLAP_S = 60
_MAX_ATTEMPTS = 25  # per chunk (apply) or per round (rebase): a bound, not an expected count


class CosmosStockStore:
    """The :class:`~shared.ports.stock.StockStore` on one Cosmos DB for NoSQL container."""

    def __init__(self, container: ContainerProxy, ledger_ttl_s: int, *, client: CosmosClient | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        if not (ledger_ttl_s == -1 or 0 < ledger_ttl_s <= 2_147_483_647):
            raise ValueError(f"ledger_ttl_s must be 1..2147483647 seconds (or -1: never expire), "
                             f"got {ledger_ttl_s}")
        self._container = container
        self.ledger_ttl_s = ledger_ttl_s
        self._client = client  # closed by close() when this store created it
        self._sleep = sleep
        self._clock = clock
        # Stock documents this process knows exist (per store). A batch whose patch targets a missing document
        # fails whole (404) and is charged; creating unknown skus' documents before the batch avoids that
        # (measured in bench/events.py: failed batches were 45 % of the RU of a fresh store).
        self._known_skus: dict[str, set[str]] = {}

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: TokenCredential, database: str, container: str,
                      ledger_ttl_s: int, *, create_if_missing: bool = False) -> CosmosStockStore:
        """Identity-based (Azure): ``credential`` is a TokenCredential such as DefaultAzureCredential or
        ManagedIdentityCredential — never an account key. The container normally exists (infra)."""
        client = CosmosClient(endpoint, credential=credential, **client_options())
        return cls._open(client, database, container, ledger_ttl_s, create_if_missing)

    @classmethod
    def from_connection_string(cls, conn: str, database: str, container: str, ledger_ttl_s: int,
                               verify_tls: bool = True, *, create_if_missing: bool = True) -> CosmosStockStore:
        """For emulators (development): they start empty, so the database and container are created
        unless ``create_if_missing=False``. ``verify_tls=False`` accepts an emulator's self-signed
        certificate; never use it against Azure."""
        tls = {} if verify_tls else {"connection_verify": False}
        client = CosmosClient.from_connection_string(conn, **tls, **client_options())
        return cls._open(client, database, container, ledger_ttl_s, create_if_missing)

    @classmethod
    def _open(cls, client: CosmosClient, database: str, container: str, ledger_ttl_s: int,
              create_if_missing: bool) -> CosmosStockStore:
        try:
            return cls(open_container(client, database, container, create_if_missing), ledger_ttl_s, client=client)
        except BaseException:
            client.close()
            raise

    def describe(self) -> str:
        endpoint = getattr(getattr(self._container, "client_connection", None), "url_connection", "?")
        return (f"Cosmos DB stock store: container {self._container.id!r} "
                f"({self._container.container_link}) at {endpoint}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _baseline_doc(self, store_id: str, result: ApplyResult | None = None) -> dict[str, Any]:
        """The store's baseline document; created (no dump yet: snapshotAt "") when missing."""
        ops = 1
        try:
            doc = self._container.read_item(BASELINE_ID, partition_key=store_id)
        except CosmosResourceNotFoundError:
            ops += 1
            try:
                doc = self._container.create_item(new_baseline(store_id))
            except CosmosResourceExistsError:  # a concurrent first writer: fine, read theirs
                ops += 1
                doc = self._container.read_item(BASELINE_ID, partition_key=store_id)
        if result is not None:
            result.operations += ops
        return doc

    # --- apply --------------------------------------------------------------------------------------------

    def apply_batch(self, events_by_store: Mapping[str, Sequence[SaleEvent]]) -> ApplyResult:
        """Store by store: a transactional batch cannot span logical partitions (one store each)."""
        total = ApplyResult()
        for store_id, events in events_by_store.items():
            r = self.apply(store_id, events)
            total.applied += r.applied
            total.duplicates += r.duplicates
            total.conflicting += r.conflicting
            total.before_baseline += r.before_baseline
            total.operations += r.operations
        return total

    def apply(self, store_id: str, events: Sequence[SaleEvent]) -> ApplyResult:
        result = ApplyResult()
        if not events:
            return result
        pending, repeats = dedupe(events)  # the contract says distinct; a repeat would fail its own batch
        result.duplicates.extend(e.event_id for e in repeats)
        base = self._baseline_doc(store_id, result)
        attempts = 0
        while True:
            cutoff = base.get("snapshotAt") or ""
            if cutoff:
                result.before_baseline.extend(e.event_id for e in pending if e.occurred_key <= cutoff)
                pending = [e for e in pending if e.occurred_key > cutoff]
            if not pending:
                return result
            attempts += 1
            if attempts > _MAX_ATTEMPTS:
                raise RuntimeError(f"apply for store {store_id!r} made no progress in {_MAX_ATTEMPTS} attempts")
            chunk = self._next_chunk(store_id, pending)
            self._create_unknown_stock_docs(store_id, base, chunk, result)
            ops, targets = self._chunk_operations(store_id, cutoff, chunk)
            try:
                execute_batch(self._container, store_id, ops, result, self._sleep)
            except CosmosBatchOperationError as exc:
                redo = self._after_failed_batch(exc, targets[exc.error_index], store_id, base, chunk, result)
                if redo is None:
                    raise
                base, done = redo
                pending = [e for e in pending if e.event_id not in done]
                continue
            result.applied.extend(e.event_id for e in chunk)
            pending = pending[len(chunk):]
            attempts = 0

    def _next_chunk(self, store_id: str, pending: Sequence[SaleEvent]) -> list[SaleEvent]:
        """The events of the next batch: as many of ``pending`` as fit (see :func:`next_chunk`)."""
        return next_chunk(store_id, pending, self.ledger_ttl_s)

    def _chunk_operations(self, store_id: str, cutoff: str, chunk: Sequence[SaleEvent],
                          ) -> tuple[list[tuple[Any, ...]], list[SaleEvent | str | None]]:
        """The batch for ``chunk`` against the baseline at ``cutoff`` (see :func:`chunk_operations`)."""
        return chunk_operations(store_id, cutoff, chunk, self.ledger_ttl_s)

    def _after_failed_batch(self, exc: CosmosBatchOperationError, target: SaleEvent | str | None, store_id: str,
                            base: dict[str, Any], chunk: Sequence[SaleEvent], result: ApplyResult,
                            ) -> tuple[dict[str, Any], set[str]] | None:
        """Why the batch failed, from its failed operation's ``target`` (None: the guard; an event; a sku),
        and what to redo it with: the baseline document, and the ids of events no longer to apply. None
        when the failure is not one the algorithm expects (the caller re-raises it)."""
        status = exc.status_code
        if target is None and status in (404, 412):
            # The guard: a rebase moved the baseline since we read it (or it vanished): redo.
            return self._baseline_doc(store_id, result), set()
        if isinstance(target, SaleEvent) and status == 409:
            return base, self._sort_recorded(store_id, chunk, result)
        if isinstance(target, str) and status == 404:  # a document we thought existed is gone
            self._known_skus.pop(store_id, None)
            self._create_stock_docs(store_id, base, sorted({k for e in chunk for k, _ in e.deltas}), result)
            return base, set()
        return None

    def _sort_recorded(self, store_id: str, chunk: Sequence[SaleEvent], result: ApplyResult) -> set[str]:
        """Count the chunk's events the ledger already holds as duplicates (same content) or conflicting
        (other content under the same id); return their ids."""
        known = self._recorded_events(store_id, chunk, result)
        for e in chunk:
            if e.event_id not in known:
                continue
            if known[e.event_id] == event_content(e.occurred_key, e.deltas):
                result.duplicates.append(e.event_id)
            else:
                result.conflicting.append((store_id, e.event_id))
        return set(known)

    _MAX_KNOWN_SKUS = 2_000_000  # bound on the cache of known skus (about 100 MB at worst); forgotten wholesale

    def _remember(self, store_id: str, skus: Iterable[str]) -> None:
        if sum(len(v) for v in self._known_skus.values()) > self._MAX_KNOWN_SKUS:
            self._known_skus.clear()
        self._known_skus.setdefault(store_id, set()).update(skus)

    def _recorded_events(self, store_id: str, chunk: Sequence[SaleEvent], result: ApplyResult) -> dict[str, tuple]:
        """The chunk's events the ledger already holds, with the content it recorded (``event_content``): one
        single-partition query on ids."""
        by_id = {event_doc_id(e.event_id): e.event_id for e in chunk}
        rows = events_by_id(self._container, store_id, list(by_id))
        result.operations += 1
        return {by_id[r["id"]]: event_content(r.get("occurredAt") or "", r.get("deltas") or [])
                for r in rows if r.get("id") in by_id}

    def _create_unknown_stock_docs(self, store_id: str, base: Mapping[str, Any], chunk: Sequence[SaleEvent],
                                   result: ApplyResult) -> None:
        """Create the documents of the chunk's skus this process has not seen yet (see ``_known_skus``)."""
        known = self._known_skus.setdefault(store_id, set())
        unknown = {k for e in chunk for k, _ in e.deltas} - known
        if unknown:
            self._create_stock_docs(store_id, base, sorted(unknown), result)
            self._remember(store_id, unknown)

    def _create_stock_docs(self, store_id: str, base: Mapping[str, Any], skus: Sequence[str],
                           result: ApplyResult) -> None:
        """Create the chunk's missing sku documents at zero, so the batch's patches have a target.

        They carry the baseline they were created under (``baselineDumpId``) but not ``rebasedDumpId``:
        only a rebase vouches for a document's dump count (see :meth:`rebase`)."""
        by_id = {stock_doc_id(k): k for k in skus}
        existing = existing_ids(self._container, store_id, "stock", list(by_id))
        result.operations += 1
        now = now_key()
        for doc_id, sku in by_id.items():
            if doc_id in existing:
                continue
            result.operations += 1
            # 409: a concurrent apply or rebase created it, which is what we wanted.
            with contextlib.suppress(CosmosResourceExistsError):
                self._container.create_item(zero_stock_doc(store_id, sku, base, now))

    # --- rebase -------------------------------------------------------------------------------------------

    def rebase(self, baseline: Baseline) -> RebaseResult:
        store_id, dump_id = baseline.store_id, baseline.dump_id
        new_key = (time_key(baseline.snapshot_at), dump_id)
        snapshot = new_key[0]
        dump = dict(baseline.on_hand)

        # (1) Make it the baseline, unless it is not later than the current one.
        step = self._move_baseline(store_id, new_key)
        if step == "older":
            return RebaseResult("older", store_id, dump_id)

        # (2) The stock documents, THEN the ledger after the snapshot.
        docs = stock_docs(self._container, store_id)
        todo = {k for k, d in docs.items() if not self._rebased(d, dump_id, dump)} | (set(dump) - set(docs))
        if step == "current" and not todo:
            return RebaseResult("current", store_id, dump_id)
        ledger, events_after = ledger_after(self._container, store_id, snapshot)
        todo |= set(ledger) - set(docs)

        # (3) Each document := dump + ledger, conditional on what (2) read; redo the ones that moved.
        written: set[str] = set()
        for _ in range(_MAX_ATTEMPTS):
            failed = self._write_rebased(store_id, dump_id, snapshot, dump, ledger, docs, todo, written)
            if not failed:
                self._remember(store_id, set(docs) | written)
                status = "rebased" if written or step == "moved" else "current"
                return RebaseResult(status, store_id, dump_id, skus=len(written), events_after=events_after)
            doc = self._baseline_doc(store_id)
            if (doc.get("snapshotAt") or "", doc.get("dumpId") or "") != new_key:
                # A later dump took over meanwhile; its rebase rewrites every document itself.
                return RebaseResult("older", store_id, dump_id, skus=len(written), events_after=events_after)
            docs = stock_docs(self._container, store_id, failed)
            todo = {k for k in failed if k not in docs or not self._rebased(docs[k], dump_id, dump)}
            ledger, _ = ledger_after(self._container, store_id, snapshot)
        raise RuntimeError(f"rebase of store {store_id!r} to dump {dump_id!r}: documents kept changing")

    def _move_baseline(self, store_id: str, new_key: tuple[str, str]) -> str:
        """Step (1) of :meth:`rebase`: make ``new_key`` (snapshot time, dump id) the store's baseline.

        Returns "moved"; "current" when it already is the baseline; "older" when the baseline is later."""
        for _ in range(_MAX_ATTEMPTS):
            doc = self._baseline_doc(store_id)
            current = (doc.get("snapshotAt") or "", doc.get("dumpId") or "")
            if current > new_key:
                return "older"
            if current == new_key:
                return "current"
            moved = {**body(doc), "snapshotAt": new_key[0], "dumpId": new_key[1], "rebasedAt": now_key()}
            try:
                self._container.replace_item(BASELINE_ID, moved, etag=doc["_etag"],
                                             match_condition=MatchConditions.IfNotModified)
            except CosmosAccessConditionFailedError:
                continue  # an apply's guard counter or another rebase changed it: re-read, re-decide
            return "moved"
        raise RuntimeError(f"rebase of store {store_id!r}: the baseline document kept changing")

    @staticmethod
    def _rebased(doc: Mapping[str, Any], dump_id: str, dump: Mapping[str, int]) -> bool:
        """Whether ``doc`` already holds dump + ledger for this dump: a rebase of this dump wrote it, or an
        apply created it under this baseline for a sku the dump does not count (its value is then the sum
        of the events after the snapshot — every one of them patched it after its creation)."""
        if doc.get("rebasedDumpId") == dump_id:
            return True
        return doc.get("baselineDumpId") == dump_id and doc.get("sku") not in dump

    def _write_rebased(self, store_id: str, dump_id: str, snapshot: str, dump: Mapping[str, int],
                       ledger: Mapping[str, int], docs: Mapping[str, Mapping[str, Any]], todo: Iterable[str],
                       written: set[str]) -> set[str]:
        """Write dump + ledger for each sku in ``todo`` whose document does not hold that count already; return
        the skus whose write lost a race.

        A document that holds the right count is left alone: most of a store's counts match the stock the
        events kept (the dump and the events come from the same tills), and rewriting them all is 11 RU a
        sku a night. It keeps the breakdown of the rebase that last wrote it, which is as true (its count
        and its events after that snapshot). A concurrent apply after our reads adds its own delta on top."""
        failed: set[str] = set()
        now = now_key()
        for sku in sorted(todo):
            if sku in docs and docs[sku].get("onHand") == dump.get(sku, 0) + ledger.get(sku, 0):
                continue
            doc = rebased_stock_doc(store_id, sku, dump.get(sku, 0), ledger.get(sku, 0), dump_id, snapshot, now)
            try:
                if sku in docs:
                    self._container.replace_item(doc["id"], doc, etag=docs[sku]["_etag"],
                                                 match_condition=MatchConditions.IfNotModified)
                else:
                    self._container.create_item(doc)
            except (CosmosAccessConditionFailedError, CosmosResourceExistsError, CosmosResourceNotFoundError):
                failed.add(sku)  # an apply (or another rebase) got there first: re-read, re-sum, redo
                continue
            written.add(sku)
        return failed

    # --- reads --------------------------------------------------------------------------------------------

    def stock(self, store_id: str, sku: str | None = None) -> list[StockDoc]:
        sql = STOCK_DOCS
        params: dict[str, Any] = {"@s": store_id}
        if sku is not None:
            sql += " AND c.sku = @k"
            params["@k"] = sku
        rows = sorted(query(self._container, sql, params, store_id), key=lambda r: r["sku"])
        return [stock_doc(store_id, r) for r in rows]

    def baseline(self, store_id: str) -> BaselineInfo | None:
        try:
            doc = self._container.read_item(BASELINE_ID, partition_key=store_id)
        except CosmosResourceNotFoundError:
            return None
        if not doc.get("dumpId"):
            return None  # created by an apply before any dump
        return BaselineInfo(doc["dumpId"], doc["snapshotAt"])

    def cursor(self) -> str:
        """This machine's clock, ``CHANGES_OVERLAP_S`` back (Functions hosts keep their clocks synchronised)."""
        return str(int(self._clock()) - CHANGES_OVERLAP_S)

    def changes(self, since: str, *, max_docs: int = MAX_CHANGES) -> StockChanges | None:
        """One cross-partition query on the documents' ``_ts`` (indexed): those written at or after the cursor.
        The next cursor is ``CHANGES_OVERLAP_S`` behind both the latest ``_ts`` read and this machine's clock
        when the query started (whichever is earlier), never behind ``since``, and stays at ``since`` when
        nothing was read: a write that lands after the query is later than it on every partition's clock,
        give or take the overlap."""
        if not since.isdigit():
            return None
        started = int(self._clock())
        docs: list[StockDoc] = []  # kept as StockDocs while the pages stream in (the raw items weigh ~3x more)
        latest = None
        for row in self._container.query_items(STOCK_SINCE, parameters=[{"name": "@since", "value": int(since)}],
                                               enable_cross_partition_query=True):
            if len(docs) == max_docs:
                return None  # the reader is better off reading the stores it needs whole
            docs.append(stock_doc(row["storeId"], row))
            latest = max(latest or 0, int(row.get("_ts") or 0))
        cursor = int(since)
        if latest is not None:
            cursor = max(cursor, min(started, latest) - CHANGES_OVERLAP_S)
        docs.sort(key=lambda d: (d.store_id, d.sku))
        return StockChanges(docs, str(cursor))

    def stores(self) -> list[str]:
        """Every store with a baseline document — which every apply and rebase creates before writing
        anything else, so it also covers stores that only have stock documents. One cross-partition query
        over one small document per store (distinct in Python: not every server has DISTINCT)."""
        rows = query(self._container, STORES, {}, None)
        return sorted({r["storeId"] for r in rows})


# Public names of the store's modules, importable from here as before the split.
__all__ = ["BASELINE_ID", "BATCH_THROTTLE_RETRIES", "INDEXING_POLICY", "MAX_BATCH_BYTES", "MAX_BATCH_OPERATIONS",
           "PARTITION_KEY_PATH", "SDK_THROTTLE_MAX_WAIT_S", "SDK_THROTTLE_RETRIES", "CosmosStockStore",
           "client_options", "encode_id_part", "ensure_container", "event_doc_id", "stock_doc_id"]
