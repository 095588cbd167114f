"""The Cosmos DB run of bench/events.py: ``apply_sales`` with ``CosmosStockStore`` on the npm Cosmos-API
server, every operation the store sends counted by kind (see bench/events.py's docstring), and the documented
request-unit costs the report estimates RU with."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import harness
from events_stream import STORES, Progress, _diff, raw_batches, sample_items
from harness import ROOT, say

# --- Cosmos DB request units (RU) per operation, from Microsoft's documentation ------------------------------
# Every item written here is well under 1 KB (the bench measures and reports their sizes), so the documented
# 1 KB figures are used as they are: a conservative (upper-bound) cost per operation.
#
# https://learn.microsoft.com/azure/cosmos-db/request-units
#   "A point read for a 1-KB item is equivalent to one Request Unit (RU)."
RU_POINT_READ = 1.0
# https://learn.microsoft.com/azure/cosmos-db/optimize-cost-reads-writes ("Writing data")
#   "Inserting a 1 KB item without indexing costs around ~5.5 RUs. Replacing an item costs two times the charge
#   required to insert the same item."  (The stock container indexes 4 paths + id, not nothing; 5.5 is the
#   documented floor for an insert and is used as the insert cost.)
RU_CREATE = 5.5
RU_REPLACE = 2 * RU_CREATE
RU_UPSERT = RU_REPLACE  # assumption: an upsert is billed like a replace of the item (the dearer case)
RU_DELETE = RU_CREATE  # assumption (apply never deletes)
# https://learn.microsoft.com/azure/cosmos-db/partial-document-update-faq ("How is RU/s pricing calculated?")
#   "Partial Document Update is normalized into request unit billing in the same way as other database
#   operations. Users shouldn't expect a significant reduction in RU."  -> a patch is billed like a replace.
RU_PATCH = RU_REPLACE
# Queries: the docs give no minimum charge. Assumption: 3 RU per single-partition query returning a few small
# items; the query-metrics example on optimize-cost-reads-writes (above) shows "Request Charge : 3.19 RUs" for
# a query that retrieves 1 document of ~10 KB ("Retrieved Document Count : 1", "... Size : 9,963 bytes").
RU_QUERY = 3.0
# Transactional batch: the docs give no RU rule for it. Assumption: a batch costs the sum of its operations
# (the .NET SDK reports a charge per operation inside a batch: https://github.com/Azure/azure-cosmos-dotnet-v3/pull/925),
# and a batch that fails is charged in full (an upper bound: the service stops at the failing operation).
RU_BATCH_OP = {"create": RU_CREATE, "patch": RU_PATCH, "replace": RU_REPLACE, "upsert": RU_UPSERT,
               "read": RU_POINT_READ, "delete": RU_DELETE}
RU_NAIVE_LINE = RU_POINT_READ + RU_REPLACE  # naive Cosmos design: read the sku's document, replace it
COSMOS_TARGET_RATIO = 0.5  # ours RU/event ÷ naive RU/event, at most
COSMOS_BATCH_LIMIT = 100  # operations per transactional batch (shared.adapters.stock_cosmos.MAX_BATCH_OPERATIONS)
COSMOS_SERVER_BIN = ROOT / "node_modules" / ".bin" / "cosmosdb-server"  # as tests.support.cosmos finds it


# --- the Cosmos child: apply_sales with CosmosStockStore on the npm server, operations counted -----------------

def _body_bytes(body: object) -> int:
    return len(json.dumps(body).encode("utf-8"))


class Tally:
    """What ``CosmosStockStore`` asked of Cosmos, by kind (shared by the per-store containers' wrappers)."""

    def __init__(self) -> None:
        self.point: Counter[str] = Counter()  # read / create / replace / upsert / patch / delete, outside batches
        self.queries: Counter[str] = Counter()  # by what the query looks up: event ids, stock ids, stock, other
        self.query_docs: Counter[str] = Counter()  # documents those queries returned, by the same kinds
        self.batch_ops: Counter[str] = Counter()  # operations inside committed batches, by kind
        self.failed: Counter[int] = Counter()  # failed batches by status (404: missing stock doc, 409: resend)
        self.failed_ops: dict[int, Counter[str]] = {}  # status -> operations inside those batches, by kind
        self.batches = 0  # committed batch requests
        self.events_per_batch: list[int] = []
        self.skus_per_batch: list[int] = []
        self.ops_per_batch: list[int] = []
        self.lines = 0  # lines (ledger deltas) of the committed batches
        self.sizes: dict[str, list[int]] = {k: [0, 0] for k in ("event", "stock", "baseline")}  # [n, Σ bytes]

    def size(self, body: object) -> None:
        kind = body.get("type") if isinstance(body, dict) else None
        if kind in self.sizes:
            self.sizes[kind][0] += 1
            self.sizes[kind][1] += _body_bytes(body)

    def snapshot(self) -> dict:
        return {"point": dict(self.point), "queries": dict(self.queries), "query_docs": dict(self.query_docs),
                "batches": self.batches, "batch_ops": dict(self.batch_ops),
                "failed": {str(k): v for k, v in self.failed.items()},
                "failed_ops": {str(k): dict(v) for k, v in self.failed_ops.items()}, "lines": self.lines,
                "events_per_batch": list(self.events_per_batch), "skus_per_batch": list(self.skus_per_batch),
                "ops_per_batch": list(self.ops_per_batch), "sizes": {k: list(v) for k, v in self.sizes.items()}}


class CountingContainer:
    """A thin ContainerProxy wrapper that counts, into a :class:`Tally`, what ``CosmosStockStore`` sends.

    It sits right under the store, above the emulation of transactional batch (which makes plain requests of
    its own on the npm server): what is counted is what the store would send to Azure. Point operations and
    queries count one request each (``query_items`` calls: every query of ``apply`` is single-partition and
    returns one page), and the documents each query returned (``Tally.query_docs``; ``query_kind`` names the
    key, a subclass may refine it); ``execute_item_batch`` counts one batch request and each operation in it
    by kind. It also records the serialized size of the ledger items and stock documents written
    (``json.dumps`` of the body as sent) and, per committed batch, its events (ledger creates), distinct skus
    (stock patches) and lines."""

    def __init__(self, inner, tally: Tally) -> None:
        self._inner = inner
        self.tally = tally

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def read_item(self, *args, **kwargs):
        self.tally.point["read"] += 1
        return self._inner.read_item(*args, **kwargs)

    def create_item(self, body, *args, **kwargs):
        self.tally.point["create"] += 1
        self.tally.size(body)
        return self._inner.create_item(body, *args, **kwargs)

    def replace_item(self, item, body, *args, **kwargs):
        self.tally.point["replace"] += 1
        self.tally.size(body)
        return self._inner.replace_item(item, body, *args, **kwargs)

    def upsert_item(self, body, *args, **kwargs):
        self.tally.point["upsert"] += 1
        self.tally.size(body)
        return self._inner.upsert_item(body, *args, **kwargs)

    def patch_item(self, *args, **kwargs):
        self.tally.point["patch"] += 1
        return self._inner.patch_item(*args, **kwargs)

    def delete_item(self, *args, **kwargs):
        self.tally.point["delete"] += 1
        return self._inner.delete_item(*args, **kwargs)

    def query_kind(self, query: str, kwargs: dict) -> str:
        """The key a query is counted under: what it looks up (event ids, stock ids, stock, other)."""
        params = {p["name"]: p["value"] for p in kwargs.get("parameters") or ()}
        return ("ids:" + str(params["@t"]) if "@t" in params and "@ids" in params
                else "stock" if "'stock'" in query else "other")

    def query_items(self, query, *args, **kwargs):
        what = self.query_kind(query, kwargs)
        rows = list(self._inner.query_items(query, *args, **kwargs))  # the store reads every query whole
        self.tally.queries[what] += 1
        self.tally.query_docs[what] += len(rows)
        return iter(rows)

    def execute_item_batch(self, batch_operations, *args, **kwargs):
        from azure.cosmos.exceptions import CosmosBatchOperationError

        t = self.tally
        ops = list(batch_operations)
        kinds = Counter(op[0].lower() for op in ops)
        try:
            result = self._inner.execute_item_batch(ops, *args, **kwargs)
        except CosmosBatchOperationError as exc:
            t.failed[exc.status_code] += 1
            t.failed_ops.setdefault(exc.status_code, Counter()).update(kinds)
            raise
        t.batches += 1
        t.batch_ops.update(kinds)
        events = skus = 0
        for op in ops:
            kind = op[0].lower()
            if kind == "create":
                body = op[1][0]
                t.size(body)
                if body.get("type") == "event":
                    events += 1
                    t.lines += len(body.get("deltas") or ())
            elif kind == "patch" and str(op[1][0]).startswith("stock:"):
                skus += 1
        t.events_per_batch.append(events)
        t.skus_per_batch.append(skus)
        t.ops_per_batch.append(len(ops))
        return result


def _patched(doc: dict, operations: Sequence[dict]) -> dict:
    """``doc`` with Cosmos patch operations applied (set / add / replace / remove / incr on object paths)."""
    out = json.loads(json.dumps(doc))
    for op in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        kind = op["op"].lower()
        if kind in ("set", "add", "replace"):
            node[last] = op["value"]
        elif kind == "incr":
            node[last] = node.get(last, 0) + op["value"]
        elif kind == "remove":
            node.pop(last, None)
        else:
            raise ValueError(f"(bench) unsupported patch operation {kind!r}")
    return out


def _batch_in_few_requests(tc) -> type:
    """``tests.support.cosmos.ServerShimContainer`` with a cheaper ``execute_item_batch`` (bench only).

    The test shim runs a batch one request per operation (and undoes them on failure): ~3 ms a request here,
    ~100 operations a batch, far too slow for 20,000 events. This one, under the same lock, reads the batch's
    targets in ONE query, checks every precondition locally (409 for a create whose id exists, 404 for a patch
    or replace of a missing item, 412 for a failed ``if_match_etag``; a ``filter_predicate`` is evaluated by
    the server as the shim does it, as a query), turns each patch into a replace of the patched body
    (``if_match`` the etag read) and sends the writes as ONE request to the npm server's own (non-atomic)
    batch route. A failed precondition raises ``CosmosBatchOperationError`` before anything is written, so a
    batch is still all-or-nothing within this process. What it cannot verify is what the test shim cannot.

    The npm server's batch route reads each replace / read / delete operation's partition key from the
    operation itself (``partitionKey``), which the SDK leaves out (Azure takes it from the request header), so
    the SDK's batch formatter is wrapped, in this process only, to add it to the batches sent from here."""
    from azure.cosmos import _base as sdk_base
    from azure.cosmos.exceptions import CosmosBatchOperationError

    state: dict[str, str | None] = {"pk": None}  # the partition key (JSON) of the batch being sent, if any
    format_ops = sdk_base._format_batch_operations

    def format_with_pk(operations):
        out = format_ops(operations)
        if state["pk"] is not None:
            for op in out:
                op.setdefault("partitionKey", state["pk"])
        return out

    sdk_base._format_batch_operations = format_with_pk

    class BatchInFewRequests(tc.ServerShimContainer):
        def execute_item_batch(self, batch_operations, partition_key, **kwargs):
            with self._lock:
                ops = list(batch_operations)
                targets = [op[1][0]["id"] if op[0].lower() in ("create", "upsert") else op[1][0] for op in ops]
                current = self._items(partition_key, targets)  # id -> stored item (one query)
                stored = dict(current)
                touched: set[str] = set()
                writes: list[tuple] = []
                for index, (op, item_id) in enumerate(zip(ops, targets, strict=True)):
                    kind, args = op[0].lower(), op[1]
                    options = dict(op[2]) if len(op) > 2 else {}
                    etag, predicate = options.pop("if_match_etag", None), options.pop("filter_predicate", None)
                    if options:
                        raise ValueError(f"(bench) unsupported batch operation options {sorted(options)}")
                    doc = current.get(item_id)
                    status = 0
                    if kind == "create":
                        status = 409 if doc is not None else 0
                    elif kind in ("patch", "replace", "delete", "read"):
                        if doc is None:
                            status = 404
                        elif etag is not None and doc.get("_etag") != etag:
                            status = 412
                    if not status and predicate is not None:
                        if item_id in touched:
                            raise ValueError("(bench) filter_predicate on an item changed earlier in the batch")
                        rows = self._inner.query_items(
                            self._full_condition(item_id, partition_key, predicate),
                            parameters=[{"name": "@id", "value": item_id}], enable_cross_partition_query=True)
                        status = 0 if any(True for _ in rows) else 412
                    if status:
                        responses: list[dict] = [{"statusCode": 424} for _ in ops]
                        responses[index] = {"statusCode": status}
                        raise CosmosBatchOperationError(
                            error_index=index, headers={}, status_code=status, operation_responses=responses,
                            message=f"(bench shim) operation {index} ({kind}) failed with {status}")
                    match = {"if_match_etag": stored[item_id]["_etag"]} if item_id in stored else {}
                    if kind == "create":
                        current[item_id] = args[0]
                        writes.append(("create", (args[0],)))
                    elif kind == "upsert":
                        current[item_id] = args[0]
                        writes.append(("upsert", (args[0],)))
                    elif kind in ("patch", "replace"):
                        body = _patched(doc, args[1]) if kind == "patch" else args[1]
                        body = {k: v for k, v in body.items() if not k.startswith("_")}
                        current[item_id] = body
                        writes.append(("replace", (item_id, body), match))
                    elif kind == "delete":
                        current.pop(item_id, None)
                        writes.append(("delete", (item_id,), match))
                    else:
                        writes.append(("read", (item_id,)))
                    touched.add(item_id)
                    stored.pop(item_id, None)  # later writes of the same item follow this one, unconditionally
                state["pk"] = json.dumps([partition_key])
                try:
                    return self._inner.execute_item_batch(writes, partition_key=partition_key)
                except CosmosBatchOperationError as exc:  # cannot happen under the lock: a bench bug
                    raise RuntimeError(f"(bench shim) the server refused a pre-checked batch: {exc}") from exc
                finally:
                    state["pk"] = None

    return BatchInFewRequests


class PerStoreStock:
    """The ``StockStore`` that ``apply_sales`` gets: one ``CosmosStockStore`` per store, each on its own
    container of the npm server. ``apply_batch`` hands each store's events to that store's own
    ``CosmosStockStore.apply_batch``. Every operation of ``apply`` is scoped to one store's partition, so this
    changes nothing the store sends; it is here because the npm server runs every query by scanning the whole
    container (≈ 45 ms per query at 4,000 items, 14 s with ``ARRAY_CONTAINS`` at 40,000)."""

    def __init__(self, stores: dict) -> None:
        self.stores = stores
        self.calls: list[tuple[int, int, int]] = []  # per apply call: (events, lines, distinct skus)

    def apply_batch(self, events_by_store):
        from shared.ports.stock import ApplyResult

        total = ApplyResult()
        for store_id, events in events_by_store.items():
            self.calls.append((len(events), sum(len(e.deltas) for e in events),
                               len({sku for e in events for sku, _ in e.deltas})))
            r = self.stores[store_id].apply_batch({store_id: events})
            total.applied += r.applied
            total.duplicates += r.duplicates
            total.before_baseline += r.before_baseline
            total.operations += r.operations
        return total


def _start_cosmos_server(tc, log: Path) -> tuple[subprocess.Popen, int]:
    """The npm server (``tc.COSMOS_SERVER_BIN``'s package) on a free port, like ``tests.support.cosmos`` starts
    it but with HTTP keep-alive: its CLI answers every request with ``connection: close``, and a TLS
    handshake per request doubled the time per request here (6.4 vs 3.0 ms). Same server code otherwise."""
    from tests.support import servers

    package = tc.COSMOS_SERVER_BIN.resolve().parent.parent  # node_modules/@vercel/cosmosdb-server

    def argv(port: int) -> list[str]:
        script = (f"require({json.dumps(str(package))}).createHttpsServer({{keepAlive: true}})"
                  f".listen({port}, {json.dumps(servers.HOST)}, () => console.log('listening'))")
        return ["node", "-e", script]

    return servers.start("the npm Cosmos DB server", argv, log)


def child_cosmos(args: argparse.Namespace) -> dict:
    """``apply_sales`` with ``CosmosStockStore`` on the npm Cosmos-API server (a fresh server and database),
    counted by :class:`CountingContainer`; then the stock documents are checked against ``expected_deltas``
    of the sample. Reuses ``tests.support.cosmos`` (port helpers, TLS transport, emulator key,
    ``ServerShimContainer``)."""
    import uuid

    sys.path.insert(0, str(ROOT))  # tests/ is not an installed package
    from azure.cosmos import CosmosClient

    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.stock_cosmos import CosmosStockStore, client_options, ensure_container
    from shared.adapters.telemetry import MemoryTelemetry
    from shared.local.pos_traffic import DUPLICATE, VALID, expected_deltas
    from shared.services.apply_sales import ApplyCounts, apply_sales
    from tests.support import cosmos as tc
    from tests.support import servers

    work = Path(tempfile.mkdtemp(prefix="cosmos-", dir=args.work))
    proc = client = None
    try:
        with tc.unverified_tls_ok():
            proc, port = _start_cosmos_server(tc, work / "cosmos-server.log")
            client = CosmosClient(f"https://{tc.HOST}:{port}/", credential=tc.EMULATOR_KEY, connection_verify=False,
                                  transport=tc.unverified_tls_transport(), **client_options())
            database = client.create_database(f"bench-{uuid.uuid4().hex[:12]}")
            shim = _batch_in_few_requests(tc)
            tally = Tally()
            stores = {store: CosmosStockStore(CountingContainer(shim(ensure_container(database, f"stock-{store}")),
                                                                tally), ledger_ttl_s=tc.LEDGER_TTL_S)
                      for store in STORES}
            stock = PerStoreStock(stores)
            lake, telemetry = FolderLake(work / "lake"), MemoryTelemetry()

            total = ApplyCounts()
            done = calls = 0
            progress = Progress("cosmos", args.limit)
            with harness.stopwatch() as t:
                for raw in raw_batches(args.bodies, args.keys, args.limit, args.batch_size):
                    counts = apply_sales(raw, stock=stock, lake=lake, telemetry=telemetry)
                    total.add(counts)
                    calls += counts.stores
                    done += len(raw)
                    progress.update(done)
            counted = tally.snapshot()  # before the check below, whose queries are not part of apply

            say("    cosmos: checking the stock documents against expected_deltas of the sample ...")
            items = list(sample_items(args.bodies, args.keys, args.limit))
            truth = expected_deltas(item for item, _ in items)
            got = {(store, d.sku): d.on_hand for store, st in stores.items() for d in st.stock(store)}
        kinds = Counter(item.kind for item, _ in items)
        ev, ln, sk = (sum(c[i] for c in stock.calls) for i in range(3))
        return {"wall_s": t.wall_s, "cpu_s": t.cpu_s, "events": done, "batch_size": args.batch_size,
                "apply_calls": calls, "operations": total.operations,
                "call_events": ev, "call_lines": ln, "call_skus": sk,
                "counts": total.to_json(), "kinds": dict(kinds),
                "valid_lines": sum(n for item, n in items if item.kind == VALID),
                "delivered_lines": sum(n for item, n in items if item.kind in (VALID, DUPLICATE)),
                "cells": len(truth), "stock_diff": _diff(got, truth), "counted": counted}
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            servers.stop(proc)
        shutil.rmtree(work, ignore_errors=True)

