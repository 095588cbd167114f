"""The stock store on Azure Cosmos DB for NoSQL: per-store stock documents kept equal to handbook §5.

Everything of one store lives in one logical partition (partition key ``/storeId``), so one transactional
batch can touch the store's baseline document, its event ledger and its stock documents at once:

- ``id="baseline"``: the store's current baseline (``snapshotAt``, ``dumpId``; both ``""`` before the first
  dump) and ``batches``, a counter every apply batch increments through its guard operation.
- ``id="stock:<sku>"``: one per sku — ``onHand = baselineOnHand + eventsDelta``.
- ``id="event:<eventId>"``: the ledger, one item per counted event (its deltas and ``occurredAt``); the
  item's own ``ttl`` lets Cosmos forget it after ``ledger_ttl_s`` (an event redelivered later than that
  would count again, so the TTL must comfortably exceed the time between dumps plus redelivery delays).

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

Ids: Cosmos ids cannot contain ``/ \\ ? #``; skus and event ids are percent-encoded (see
:func:`encode_id_part`). The sku itself is kept in the document, so queries never parse ids.

Throttling (429): the clients built here set the SDK's throttle retry explicitly (``retry_throttle_total``,
``retry_throttle_backoff_max``; it honours ``x-ms-retry-after-ms``). That covers a throttled batch
REQUEST; a batch whose response is 207 with one operation at 429 is raised by the SDK as
``CosmosBatchOperationError`` without a retry, so ``apply`` adds its own bounded backoff around batches.

This module imports the Azure SDK at module level; :mod:`shared.bootstrap` imports it lazily, only when
Cosmos DB is configured. Creating the database and container (:func:`ensure_container`) is for development
and tests; in Azure the infrastructure creates them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.core.events import SaleEvent, coalesce, dedupe, event_content, time_key
from shared.core.stock import Baseline
from shared.ports.stock import ApplyResult, BaselineInfo, RebaseResult, StockDoc

PARTITION_KEY_PATH = "/storeId"
BASELINE_ID = "baseline"

INDEXING_POLICY: dict[str, Any] = {
    "indexingMode": "consistent",
    "automatic": True,
    # Only what the queries filter on; everything else is excluded (cheaper writes). ``id`` is always
    # indexed; the partition key path is not, so it is listed.
    "includedPaths": [{"path": "/storeId/?"}, {"path": "/type/?"}, {"path": "/sku/?"}, {"path": "/occurredAt/?"}],
    "excludedPaths": [{"path": "/*"}],
}

MAX_BATCH_OPERATIONS = 100  # Cosmos limit per transactional batch
MAX_BATCH_BYTES = 1_800_000  # the request limit is 2 MB; keep room for the envelope and headers
_OP_OVERHEAD_BYTES = 128  # operationType, partition key, ifMatch... per operation, roughly

# SDK throttle retry for every request of the clients built here (its defaults, made explicit).
SDK_THROTTLE_RETRIES = 9
SDK_THROTTLE_MAX_WAIT_S = 30
# Our own backoff around batches whose 207 response carries a 429 (the SDK does not retry those).
BATCH_THROTTLE_RETRIES = 6
_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 10.0

_MAX_ATTEMPTS = 25  # per chunk (apply) or per round (rebase): a bound, not an expected count

_UNSAFE_ID_CHARS = frozenset("/\\?#%")
_MAX_ID_PART_CHARS = 240  # Cosmos ids may be 1,023 bytes; long parts are hashed well below that
_TIME_KEY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$")
_RETRY_AFTER_MS = "x-ms-retry-after-ms"

# The queries (all single-partition except stores()); storeId is in every WHERE clause on purpose.
_STOCK_DOCS = "SELECT * FROM c WHERE c.storeId = @s AND c.type = 'stock'"
_IDS_OF_TYPE = "SELECT c.id FROM c WHERE c.storeId = @s AND c.type = @t AND ARRAY_CONTAINS(@ids, c.id)"
_EVENTS_BY_ID = ("SELECT c.id, c.occurredAt, c.deltas FROM c WHERE c.storeId = @s AND c.type = 'event' "
                 "AND ARRAY_CONTAINS(@ids, c.id)")
_LEDGER_AFTER = "SELECT c.deltas FROM c WHERE c.storeId = @s AND c.type = 'event' AND c.occurredAt > @t"


def encode_id_part(raw: str) -> str:
    """``raw`` made safe for a Cosmos id: ``/ \\ ? # %`` and control characters become ``%XX`` (UTF-8).

    Injective, so two skus never share a document. Parts longer than 240 characters once encoded become
    ``%H`` + sha256 — ``%`` followed by a non-hex letter never comes out of the encoding, so a hashed part
    cannot equal an encoded one. (The Python SDK percent-encodes the request path and signs the raw id, so
    ``%`` in an id round-trips; some other tools mishandle ``%`` in ids — query by ``sku`` there.)
    """
    out = "".join(f"%{ord(ch):02X}" if ch in _UNSAFE_ID_CHARS or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
                  for ch in raw)
    if len(out) > _MAX_ID_PART_CHARS:
        return "%H" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    return out


def stock_doc_id(sku: str) -> str:
    return "stock:" + encode_id_part(sku)


def event_doc_id(event_id: str) -> str:
    return "event:" + encode_id_part(event_id)


def client_options() -> dict[str, Any]:
    """Keyword arguments for :class:`CosmosClient`: throttling (429) retried by the SDK, honouring the
    service's retry-after, up to 9 times or 30 s per request."""
    return {"retry_throttle_total": SDK_THROTTLE_RETRIES, "retry_throttle_backoff_max": SDK_THROTTLE_MAX_WAIT_S}


def ensure_container(target: CosmosClient | DatabaseProxy, container: str, database: str | None = None,
                     ) -> ContainerProxy:
    """Create (if missing) the database and the stock container: partition key ``/storeId``, TTL on with
    no default expiry (``default_ttl=-1``: only ledger items, which carry ``ttl``, expire), and an indexing
    policy covering exactly the queried paths. For development and tests; in Azure, infra creates them."""
    if isinstance(target, CosmosClient):
        if not database:
            raise ValueError("ensure_container needs the database name when given a client")
        target = target.create_database_if_not_exists(database)
    return target.create_container_if_not_exists(
        id=container, partition_key=PartitionKey(path=PARTITION_KEY_PATH), default_ttl=-1,
        indexing_policy=INDEXING_POLICY)


def _now() -> str:
    return time_key(datetime.now(UTC))


def _body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A read document without the system properties, ready to be written back."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _retry_after_s(error: HttpResponseError, attempt: int) -> float:
    """The service's ``x-ms-retry-after-ms`` if it sent one; else exponential backoff with jitter."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get(_RETRY_AFTER_MS)
    if value is not None:
        try:
            return min(_BACKOFF_MAX_S, max(0.0, float(value) / 1000.0))
        except (TypeError, ValueError):
            pass
    return min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * (2 ** attempt)) * random.uniform(0.5, 1.0)


class CosmosStockStore:
    """The :class:`~shared.ports.stock.StockStore` on one Cosmos DB for NoSQL container."""

    def __init__(self, container: ContainerProxy, ledger_ttl_s: int, *, client: CosmosClient | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (ledger_ttl_s == -1 or 0 < ledger_ttl_s <= 2_147_483_647):
            raise ValueError(f"ledger_ttl_s must be 1..2147483647 seconds (or -1: never expire), "
                             f"got {ledger_ttl_s}")
        self._container = container
        self.ledger_ttl_s = ledger_ttl_s
        self._client = client  # closed by close() when this store created it
        self._sleep = sleep
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
            if create_if_missing:
                proxy = ensure_container(client, container, database)
            else:
                proxy = client.get_database_client(database).get_container_client(container)
            return cls(proxy, ledger_ttl_s, client=client)
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

    # --- small helpers ----------------------------------------------------------------------------------

    def _query(self, sql: str, params: Mapping[str, Any], store_id: str | None) -> list[dict[str, Any]]:
        parameters = [{"name": k, "value": v} for k, v in params.items()]
        if store_id is None:
            items = self._container.query_items(sql, parameters=parameters, enable_cross_partition_query=True)
        else:
            # Single-partition query. The WHERE clause also filters on storeId: it costs nothing here and
            # keeps the query correct on servers that ignore the partition key of a query.
            items = self._container.query_items(sql, parameters=parameters, partition_key=store_id)
        return list(items)

    def _baseline_doc(self, store_id: str, result: ApplyResult | None = None) -> dict[str, Any]:
        """The store's baseline document; created (no dump yet: snapshotAt "") when missing."""
        ops = 1
        try:
            doc = self._container.read_item(BASELINE_ID, partition_key=store_id)
        except CosmosResourceNotFoundError:
            ops += 1
            try:
                doc = self._container.create_item({
                    "id": BASELINE_ID, "storeId": store_id, "type": "baseline", "snapshotAt": "", "dumpId": "",
                    "rebasedAt": "", "batches": 0})
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
            known = self._known_skus.setdefault(store_id, set())
            unknown = {k for e in chunk for k, _ in e.deltas} - known
            if unknown:
                self._create_stock_docs(store_id, base, sorted(unknown), result)
                self._remember(store_id, unknown)
            ops, targets = self._chunk_operations(store_id, cutoff, chunk)
            try:
                self._execute_batch(store_id, ops, result)
            except CosmosBatchOperationError as exc:
                status, target = exc.status_code, targets[exc.error_index]
                if target is None and status in (404, 412):
                    # The guard: a rebase moved the baseline since we read it (or it vanished): redo.
                    base = self._baseline_doc(store_id, result)
                elif isinstance(target, SaleEvent) and status == 409:
                    known = self._recorded_events(store_id, chunk, result)
                    for e in chunk:
                        if e.event_id in known:
                            same = known[e.event_id] == event_content(e.occurred_key, e.deltas)
                            if same:
                                result.duplicates.append(e.event_id)
                            else:
                                result.conflicting.append((store_id, e.event_id))
                    pending = [e for e in pending if e.event_id not in known]
                elif isinstance(target, str) and status == 404:  # a document we thought existed is gone
                    self._known_skus.pop(store_id, None)
                    self._create_stock_docs(store_id, base, sorted({k for e in chunk for k, _ in e.deltas}), result)
                else:
                    raise
                continue
            result.applied.extend(e.event_id for e in chunk)
            pending = pending[len(chunk):]
            attempts = 0

    _MAX_KNOWN_SKUS = 2_000_000  # bound on the cache above (about 100 MB at worst); forgotten wholesale

    def _remember(self, store_id: str, skus: Iterable[str]) -> None:
        if sum(len(v) for v in self._known_skus.values()) > self._MAX_KNOWN_SKUS:
            self._known_skus.clear()
        self._known_skus.setdefault(store_id, set()).update(skus)

    def _ledger_item(self, store_id: str, event: SaleEvent, now: str) -> dict[str, Any]:
        return {"id": event_doc_id(event.event_id), "storeId": store_id, "type": "event", "eventId": event.event_id,
                "occurredAt": event.occurred_key, "deltas": [[sku, delta] for sku, delta in event.deltas],
                "appliedAt": now, "ttl": self.ledger_ttl_s}

    @staticmethod
    def _stock_patch(sku: str, delta: int, now: str) -> tuple[str, tuple[Any, ...]]:
        return ("patch", (stock_doc_id(sku), [{"op": "incr", "path": "/onHand", "value": delta},
                                              {"op": "incr", "path": "/eventsDelta", "value": delta},
                                              {"op": "set", "path": "/updatedAt", "value": now}]))

    def _next_chunk(self, store_id: str, pending: Sequence[SaleEvent]) -> list[SaleEvent]:
        """The longest prefix of ``pending`` whose batch (1 guard + 1 create per event + 1 patch per distinct
        sku) stays within 100 operations and ~1.8 MB. One event always fits: at most 64 lines."""
        now = _now()
        chunk: list[SaleEvent] = []
        skus: set[str] = set()
        size = 2 * _OP_OVERHEAD_BYTES
        for event in pending:
            new_skus = {sku for sku, _ in event.deltas} - skus
            add = len(json.dumps(self._ledger_item(store_id, event, now))) + _OP_OVERHEAD_BYTES
            add += sum(len(json.dumps(self._stock_patch(k, 0, now))) + _OP_OVERHEAD_BYTES for k in new_skus)
            if chunk and (1 + len(chunk) + 1 + len(skus) + len(new_skus) > MAX_BATCH_OPERATIONS
                          or size + add > MAX_BATCH_BYTES):
                break
            chunk.append(event)
            skus |= new_skus
            size += add
        return chunk

    def _chunk_operations(self, store_id: str, cutoff: str, chunk: Sequence[SaleEvent],
                          ) -> tuple[list[tuple[Any, ...]], list[SaleEvent | str | None]]:
        """The batch for one chunk and, per operation, what it writes (None: the guard; an event; a sku)."""
        if cutoff and not _TIME_KEY.fullmatch(cutoff):
            raise ValueError(f"baseline snapshotAt {cutoff!r} is not a time key")  # it is inlined in SQL
        now = _now()
        guard = ("patch", (BASELINE_ID, [{"op": "incr", "path": "/batches", "value": 1}]),
                 {"filter_predicate": f"FROM c WHERE c.snapshotAt = '{cutoff}'"})
        ops: list[tuple[Any, ...]] = [guard]
        targets: list[SaleEvent | str | None] = [None]
        for event in chunk:
            ops.append(("create", (self._ledger_item(store_id, event, now),)))
            targets.append(event)
        for sku, delta in coalesce(chunk).items():
            ops.append(self._stock_patch(sku, delta, now))
            targets.append(sku)
        return ops, targets

    def _execute_batch(self, store_id: str, ops: Sequence[tuple[Any, ...]], result: ApplyResult) -> None:
        """One transactional batch, retried with backoff while it is throttled (429). A throttled batch
        changed nothing, so retrying it is safe; every attempt is counted."""
        for attempt in range(BATCH_THROTTLE_RETRIES + 1):
            result.operations += len(ops)
            try:
                self._container.execute_item_batch(batch_operations=list(ops), partition_key=store_id)
                return
            except (CosmosBatchOperationError, CosmosHttpResponseError) as exc:
                if exc.status_code != 429 or attempt == BATCH_THROTTLE_RETRIES:
                    raise
                self._sleep(_retry_after_s(exc, attempt))

    def _recorded_events(self, store_id: str, chunk: Sequence[SaleEvent], result: ApplyResult) -> dict[str, tuple]:
        """The chunk's events the ledger already holds, with the content it recorded (``event_content``): one
        single-partition query on ids."""
        by_id = {event_doc_id(e.event_id): e.event_id for e in chunk}
        rows = self._query(_EVENTS_BY_ID, {"@s": store_id, "@ids": list(by_id)}, store_id)
        result.operations += 1
        return {by_id[r["id"]]: event_content(r.get("occurredAt") or "", r.get("deltas") or [])
                for r in rows if r.get("id") in by_id}

    def _create_stock_docs(self, store_id: str, base: Mapping[str, Any], skus: Sequence[str],
                           result: ApplyResult) -> None:
        """Create the chunk's missing sku documents at zero, so the batch's patches have a target.

        They carry the baseline they were created under (``baselineDumpId``) but not ``rebasedDumpId``:
        only a rebase vouches for a document's dump count (see :meth:`rebase`)."""
        by_id = {stock_doc_id(k): k for k in skus}
        rows = self._query(_IDS_OF_TYPE, {"@s": store_id, "@t": "stock", "@ids": list(by_id)}, store_id)
        result.operations += 1
        existing = {r["id"] for r in rows}
        now = _now()
        for doc_id, sku in by_id.items():
            if doc_id in existing:
                continue
            result.operations += 1
            # 409: a concurrent apply or rebase created it, which is what we wanted.
            with contextlib.suppress(CosmosResourceExistsError):
                self._container.create_item({
                    "id": doc_id, "storeId": store_id, "type": "stock", "sku": sku, "onHand": 0, "baselineOnHand": 0,
                    "eventsDelta": 0, "baselineDumpId": base.get("dumpId") or None,
                    "baselineAt": base.get("snapshotAt") or None, "updatedAt": now})

    # --- rebase -------------------------------------------------------------------------------------------

    def rebase(self, baseline: Baseline) -> RebaseResult:
        store_id, dump_id = baseline.store_id, baseline.dump_id
        new_key = (time_key(baseline.snapshot_at), dump_id)
        snapshot = new_key[0]
        dump = dict(baseline.on_hand)

        # (1) Make it the baseline, unless it is not later than the current one.
        moved = False
        for _ in range(_MAX_ATTEMPTS):
            doc = self._baseline_doc(store_id)
            current = (doc.get("snapshotAt") or "", doc.get("dumpId") or "")
            if current > new_key:
                return RebaseResult("older", store_id, dump_id)
            if current == new_key:
                break
            body = {**_body(doc), "snapshotAt": snapshot, "dumpId": dump_id, "rebasedAt": _now()}
            try:
                self._container.replace_item(BASELINE_ID, body, etag=doc["_etag"],
                                             match_condition=MatchConditions.IfNotModified)
            except CosmosAccessConditionFailedError:
                continue  # an apply's guard counter or another rebase changed it: re-read, re-decide
            moved = True
            break
        else:
            raise RuntimeError(f"rebase of store {store_id!r}: the baseline document kept changing")

        # (2) The stock documents, THEN the ledger after the snapshot.
        docs = self._stock_docs(store_id)
        todo = {k for k, d in docs.items() if not self._rebased(d, dump_id, dump)} | (set(dump) - set(docs))
        if not moved and not todo:
            return RebaseResult("current", store_id, dump_id)
        ledger, events_after = self._ledger_after(store_id, snapshot)
        todo |= set(ledger) - set(docs)

        # (3) Each document := dump + ledger, conditional on what (2) read; redo the ones that moved.
        written: set[str] = set()
        for _ in range(_MAX_ATTEMPTS):
            failed = self._write_rebased(store_id, dump_id, snapshot, dump, ledger, docs, todo, written)
            if not failed:
                self._remember(store_id, set(docs) | written)
                return RebaseResult("rebased", store_id, dump_id, skus=len(written), events_after=events_after)
            doc = self._baseline_doc(store_id)
            if (doc.get("snapshotAt") or "", doc.get("dumpId") or "") != new_key:
                # A later dump took over meanwhile; its rebase rewrites every document itself.
                return RebaseResult("older", store_id, dump_id, skus=len(written), events_after=events_after)
            docs = self._stock_docs(store_id, failed)
            todo = {k for k in failed if k not in docs or not self._rebased(docs[k], dump_id, dump)}
            ledger, _ = self._ledger_after(store_id, snapshot)
        raise RuntimeError(f"rebase of store {store_id!r} to dump {dump_id!r}: documents kept changing")

    @staticmethod
    def _rebased(doc: Mapping[str, Any], dump_id: str, dump: Mapping[str, int]) -> bool:
        """Whether ``doc`` already holds dump + ledger for this dump: a rebase of this dump wrote it, or an
        apply created it under this baseline for a sku the dump does not count (its value is then the sum
        of the events after the snapshot — every one of them patched it after its creation)."""
        if doc.get("rebasedDumpId") == dump_id:
            return True
        return doc.get("baselineDumpId") == dump_id and doc.get("sku") not in dump

    def _stock_docs(self, store_id: str, skus: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        if skus is None:
            rows = self._query(_STOCK_DOCS, {"@s": store_id}, store_id)
        else:
            ids = [stock_doc_id(k) for k in skus]
            rows = self._query(_STOCK_DOCS + " AND ARRAY_CONTAINS(@ids, c.id)", {"@s": store_id, "@ids": ids}, store_id)
        return {r["sku"]: r for r in rows}

    def _ledger_after(self, store_id: str, snapshot: str) -> tuple[dict[str, int], int]:
        """Σ deltas per sku of the recorded events after ``snapshot``, and how many events that is."""
        rows = self._query(_LEDGER_AFTER, {"@s": store_id, "@t": snapshot}, store_id)
        sums: dict[str, int] = {}
        for row in rows:
            for sku, delta in row["deltas"]:
                sums[sku] = sums.get(sku, 0) + delta
        return sums, len(rows)

    def _write_rebased(self, store_id: str, dump_id: str, snapshot: str, dump: Mapping[str, int],
                       ledger: Mapping[str, int], docs: Mapping[str, Mapping[str, Any]], todo: Iterable[str],
                       written: set[str]) -> set[str]:
        """Write dump + ledger for each sku in ``todo``; return the skus whose write lost a race."""
        failed: set[str] = set()
        now = _now()
        for sku in sorted(todo):
            counted, after = dump.get(sku, 0), ledger.get(sku, 0)
            body = {"id": stock_doc_id(sku), "storeId": store_id, "type": "stock", "sku": sku,
                    "onHand": counted + after, "baselineOnHand": counted, "eventsDelta": after,
                    "baselineDumpId": dump_id, "baselineAt": snapshot, "rebasedDumpId": dump_id, "updatedAt": now}
            try:
                if sku in docs:
                    self._container.replace_item(body["id"], body, etag=docs[sku]["_etag"],
                                                 match_condition=MatchConditions.IfNotModified)
                else:
                    self._container.create_item(body)
            except (CosmosAccessConditionFailedError, CosmosResourceExistsError, CosmosResourceNotFoundError):
                failed.add(sku)  # an apply (or another rebase) got there first: re-read, re-sum, redo
                continue
            written.add(sku)
        return failed

    # --- reads --------------------------------------------------------------------------------------------

    def stock(self, store_id: str, sku: str | None = None) -> list[StockDoc]:
        sql = _STOCK_DOCS
        params: dict[str, Any] = {"@s": store_id}
        if sku is not None:
            sql += " AND c.sku = @k"
            params["@k"] = sku
        rows = sorted(self._query(sql, params, store_id), key=lambda r: r["sku"])
        return [StockDoc(store_id, r["sku"], r["onHand"], r["baselineOnHand"], r["eventsDelta"],
                         r.get("baselineDumpId") or None, r.get("baselineAt") or None, r.get("updatedAt", ""))
                for r in rows]

    def baseline(self, store_id: str) -> BaselineInfo | None:
        try:
            doc = self._container.read_item(BASELINE_ID, partition_key=store_id)
        except CosmosResourceNotFoundError:
            return None
        if not doc.get("dumpId"):
            return None  # created by an apply before any dump
        return BaselineInfo(doc["dumpId"], doc["snapshotAt"])

    def stores(self) -> list[str]:
        """Every store with a baseline document — which every apply and rebase creates before writing
        anything else, so it also covers stores that only have stock documents. One cross-partition query
        over one small document per store (distinct in Python: not every server has DISTINCT)."""
        rows = self._query("SELECT c.storeId FROM c WHERE c.type = 'baseline'", {}, None)
        return sorted({r["storeId"] for r in rows})
