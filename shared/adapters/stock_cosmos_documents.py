"""The documents of the Cosmos DB stock store, the transactional batches that write them, and the queries that
read them (docs/cosmos.md).

Everything of one store lives in one logical partition (partition key ``/storeId``):

- ``id="baseline"``: the store's current baseline (``snapshotAt``, ``dumpId``; both ``""`` before the first
  dump) and ``batches``, a counter every apply batch increments through its guard operation.
- ``id="stock:<sku>"``: one per sku — ``onHand = baselineOnHand + eventsDelta``.
- ``id="event:<eventId>"``: the ledger, one item per counted event (its deltas and ``occurredAt``); the
  item's own ``ttl`` lets Cosmos forget it after the store's ledger TTL.

Ids: Cosmos ids cannot contain ``/ \\ ? #``; skus and event ids are percent-encoded (see
:func:`encode_id_part`). The sku itself is kept in the document, so queries never parse ids.

:class:`shared.adapters.stock_cosmos.CosmosStockStore` decides what to write and when; this module only says
what the documents and batches look like.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.cosmos import ContainerProxy

from shared.core.events import SaleEvent, coalesce, time_key
from shared.ports.stock import StockDoc

PARTITION_KEY_PATH = "/storeId"
BASELINE_ID = "baseline"

INDEXING_POLICY: dict[str, Any] = {
    "indexingMode": "consistent",
    "automatic": True,
    # Only what the queries filter on; everything else is excluded (cheaper writes). ``id`` is always
    # indexed; the partition key path is not, so it is listed.
    # ``_ts`` (the server's last-write time, seconds) serves the range query of ``changes``.
    "includedPaths": [{"path": "/storeId/?"}, {"path": "/type/?"}, {"path": "/sku/?"}, {"path": "/occurredAt/?"},
                      {"path": "/_ts/?"}],
    "excludedPaths": [{"path": "/*"}],
}

MAX_BATCH_OPERATIONS = 100  # Cosmos limit per transactional batch
MAX_BATCH_BYTES = 1_800_000  # the request limit is 2 MB; keep room for the envelope and headers
_OP_OVERHEAD_BYTES = 128  # operationType, partition key, ifMatch... per operation, roughly

_UNSAFE_ID_CHARS = frozenset("/\\?#%")
_MAX_ID_PART_CHARS = 240  # Cosmos ids may be 1,023 bytes; long parts are hashed well below that
_TIME_KEY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$")

# The queries (all single-partition except the one of stores()); storeId is in every WHERE clause on purpose.
STOCK_DOCS = "SELECT * FROM c WHERE c.storeId = @s AND c.type = 'stock'"
STORES = "SELECT c.storeId FROM c WHERE c.type = 'baseline'"
STOCK_SINCE = "SELECT * FROM c WHERE c.type = 'stock' AND c._ts >= @since"
_IDS_OF_TYPE = "SELECT c.id FROM c WHERE c.storeId = @s AND c.type = @t AND ARRAY_CONTAINS(@ids, c.id)"
_EVENTS_BY_ID = ("SELECT c.id, c.occurredAt, c.deltas FROM c WHERE c.storeId = @s AND c.type = 'event' "
                 "AND ARRAY_CONTAINS(@ids, c.id)")
_LEDGER_AFTER = "SELECT c.deltas FROM c WHERE c.storeId = @s AND c.type = 'event' AND c.occurredAt > @t"


# -- ids -----------------------------------------------------------------------------------------------
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


# -- documents -----------------------------------------------------------------------------------------
def now_key() -> str:
    """The current time as the documents store it (a time key)."""
    return time_key(datetime.now(UTC))


def body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A read document without the system properties, ready to be written back."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def new_baseline(store_id: str) -> dict[str, Any]:
    """A store's baseline document before its first dump (snapshotAt "")."""
    return {"id": BASELINE_ID, "storeId": store_id, "type": "baseline", "snapshotAt": "", "dumpId": "",
            "rebasedAt": "", "batches": 0}


def zero_stock_doc(store_id: str, sku: str, base: Mapping[str, Any], now: str) -> dict[str, Any]:
    """A sku's stock document at zero, created under the baseline ``base`` (``baselineDumpId``; no
    ``rebasedDumpId``: only a rebase vouches for a document's dump count)."""
    return {"id": stock_doc_id(sku), "storeId": store_id, "type": "stock", "sku": sku, "onHand": 0,
            "baselineOnHand": 0, "eventsDelta": 0, "baselineDumpId": base.get("dumpId") or None,
            "baselineAt": base.get("snapshotAt") or None, "updatedAt": now}


def rebased_stock_doc(store_id: str, sku: str, counted: int, after: int, dump_id: str, snapshot: str,
                      now: str) -> dict[str, Any]:
    """A sku's stock document as a rebase writes it: the dump's count plus the ledger's events after it."""
    return {"id": stock_doc_id(sku), "storeId": store_id, "type": "stock", "sku": sku,
            "onHand": counted + after, "baselineOnHand": counted, "eventsDelta": after,
            "baselineDumpId": dump_id, "baselineAt": snapshot, "rebasedDumpId": dump_id, "updatedAt": now}


def stock_doc(store_id: str, row: Mapping[str, Any]) -> StockDoc:
    """A stock document as the port returns it."""
    return StockDoc(store_id, row["sku"], row["onHand"], row["baselineOnHand"], row["eventsDelta"],
                    row.get("baselineDumpId") or None, row.get("baselineAt") or None, row.get("updatedAt", ""))


def ledger_item(store_id: str, event: SaleEvent, now: str, ttl_s: int) -> dict[str, Any]:
    """The ledger item that records ``event`` as counted; Cosmos deletes it ``ttl_s`` seconds later."""
    return {"id": event_doc_id(event.event_id), "storeId": store_id, "type": "event", "eventId": event.event_id,
            "occurredAt": event.occurred_key, "deltas": [[sku, delta] for sku, delta in event.deltas],
            "appliedAt": now, "ttl": ttl_s}


# -- apply batches -------------------------------------------------------------------------------------
def _stock_patch(sku: str, delta: int, now: str) -> tuple[str, tuple[Any, ...]]:
    return ("patch", (stock_doc_id(sku), [{"op": "incr", "path": "/onHand", "value": delta},
                                          {"op": "incr", "path": "/eventsDelta", "value": delta},
                                          {"op": "set", "path": "/updatedAt", "value": now}]))


def next_chunk(store_id: str, pending: Sequence[SaleEvent], ttl_s: int) -> list[SaleEvent]:
    """The longest prefix of ``pending`` whose batch (1 guard + 1 create per event + 1 patch per distinct
    sku) stays within 100 operations and ~1.8 MB. One event always fits: at most 64 lines."""
    now = now_key()
    chunk: list[SaleEvent] = []
    skus: set[str] = set()
    size = 2 * _OP_OVERHEAD_BYTES
    for event in pending:
        new_skus = {sku for sku, _ in event.deltas} - skus
        add = len(json.dumps(ledger_item(store_id, event, now, ttl_s))) + _OP_OVERHEAD_BYTES
        add += sum(len(json.dumps(_stock_patch(k, 0, now))) + _OP_OVERHEAD_BYTES for k in new_skus)
        if chunk and (1 + len(chunk) + 1 + len(skus) + len(new_skus) > MAX_BATCH_OPERATIONS
                      or size + add > MAX_BATCH_BYTES):
            break
        chunk.append(event)
        skus |= new_skus
        size += add
    return chunk


def chunk_operations(store_id: str, cutoff: str, chunk: Sequence[SaleEvent], ttl_s: int,
                     ) -> tuple[list[tuple[Any, ...]], list[SaleEvent | str | None]]:
    """The batch for one chunk and, per operation, what it writes (None: the guard; an event; a sku).

    The guard patches the baseline document on condition that its snapshot is still ``cutoff``; then one
    ledger ``create`` per event and one ``incr`` patch per sku, with the chunk's deltas summed."""
    if cutoff and not _TIME_KEY.fullmatch(cutoff):
        raise ValueError(f"baseline snapshotAt {cutoff!r} is not a time key")  # it is inlined in SQL
    now = now_key()
    guard = ("patch", (BASELINE_ID, [{"op": "incr", "path": "/batches", "value": 1}]),
             {"filter_predicate": f"FROM c WHERE c.snapshotAt = '{cutoff}'"})
    ops: list[tuple[Any, ...]] = [guard]
    targets: list[SaleEvent | str | None] = [None]
    for event in chunk:
        ops.append(("create", (ledger_item(store_id, event, now, ttl_s),)))
        targets.append(event)
    for sku, delta in coalesce(chunk).items():
        ops.append(_stock_patch(sku, delta, now))
        targets.append(sku)
    return ops, targets


# -- queries -------------------------------------------------------------------------------------------
def query(container: ContainerProxy, sql: str, params: Mapping[str, Any], store_id: str | None,
          ) -> list[dict[str, Any]]:
    """The rows of ``sql``: in the partition of ``store_id``, or across partitions when it is None."""
    parameters = [{"name": k, "value": v} for k, v in params.items()]
    if store_id is None:
        items = container.query_items(sql, parameters=parameters, enable_cross_partition_query=True)
    else:
        # Single-partition query. The WHERE clause also filters on storeId: it costs nothing here and
        # keeps the query correct on servers that ignore the partition key of a query.
        items = container.query_items(sql, parameters=parameters, partition_key=store_id)
    return list(items)


def existing_ids(container: ContainerProxy, store_id: str, doc_type: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` (documents of ``doc_type``) exist in the store's partition."""
    rows = query(container, _IDS_OF_TYPE, {"@s": store_id, "@t": doc_type, "@ids": ids}, store_id)
    return {r["id"] for r in rows}


def events_by_id(container: ContainerProxy, store_id: str, ids: list[str]) -> list[dict[str, Any]]:
    """The ledger items among ``ids``: their ``id``, ``occurredAt`` and ``deltas``."""
    return query(container, _EVENTS_BY_ID, {"@s": store_id, "@ids": ids}, store_id)


def stock_docs(container: ContainerProxy, store_id: str, skus: Iterable[str] | None = None,
               ) -> dict[str, dict[str, Any]]:
    """The store's stock documents (of ``skus`` only, when given), by sku."""
    if skus is None:
        rows = query(container, STOCK_DOCS, {"@s": store_id}, store_id)
    else:
        ids = [stock_doc_id(k) for k in skus]
        rows = query(container, STOCK_DOCS + " AND ARRAY_CONTAINS(@ids, c.id)", {"@s": store_id, "@ids": ids},
                     store_id)
    return {r["sku"]: r for r in rows}


def ledger_after(container: ContainerProxy, store_id: str, snapshot: str) -> tuple[dict[str, int], int]:
    """Σ deltas per sku of the recorded events after ``snapshot``, and how many events that is."""
    rows = query(container, _LEDGER_AFTER, {"@s": store_id, "@t": snapshot}, store_id)
    sums: dict[str, int] = {}
    for row in rows:
        for sku, delta in row["deltas"]:
            sums[sku] = sums.get(sku, 0) + delta
    return sums, len(rows)


__all__ = ["BASELINE_ID", "INDEXING_POLICY", "MAX_BATCH_BYTES", "MAX_BATCH_OPERATIONS",
           "PARTITION_KEY_PATH", "STOCK_DOCS", "STOCK_SINCE", "STORES", "body", "chunk_operations", "encode_id_part",
           "event_doc_id", "events_by_id", "existing_ids", "ledger_after", "ledger_item", "new_baseline", "next_chunk",
           "now_key", "query", "rebased_stock_doc", "stock_doc", "stock_doc_id", "stock_docs", "zero_stock_doc"]
