"""What bench/chain_cost.py puts under the product's ``CosmosStockStore`` (see its docstring, **On the npm
Cosmos-API server** and **Counted**): the simulated clock (:class:`SimClock`); the bench layer between the
counter and the npm Cosmos-API server (:class:`PartitionedContainer`, the one container the store sees, over one
:class:`MirrorContainer` per store); the counter right under the store (:class:`ChainCounting`, counting into a
:class:`ChainTally`); and the server itself (:func:`cosmos_database`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from events_cosmos import CountingContainer, Tally, _patched, _start_cosmos_server
from harness import ROOT

FAN_OUT_THREADS = 3  # a cross-partition query's requests to the stores' containers in flight at once


# --- the bench layer under the counter ----------------------------------------------------------------------------

class SimClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


_BATCH_PK = threading.local()  # .pk: the partition key (JSON) of the flush this thread is sending


def _install_batch_partition_key() -> None:
    """The npm server's batch route reads an upsert's partition key from the operation, which the SDK leaves out
    (Azure takes it from the header): add it to the flushes sent from here (as events_cosmos does)."""
    from azure.cosmos import _base as sdk_base

    if getattr(sdk_base._format_batch_operations, "_chain_cost", False):
        return
    original = sdk_base._format_batch_operations

    def with_pk(operations):
        out = original(operations)
        pk = getattr(_BATCH_PK, "pk", None)
        if pk is not None:
            for op in out:
                op.setdefault("partitionKey", pk)
        return out

    with_pk._chain_cost = True
    sdk_base._format_batch_operations = with_pk


_TS = re.compile(r"\b(\w+)\._ts\s*(>=|<=|>|<|=)\s*(@\w+)")
_TYPE = re.compile(r"\b\w+\.type\s*=\s*(?:'([^']*)'|(@\w+))")
SIM_TS = "_bench_ts"  # on the server's copy of a document: the simulated time of its last write
_TS_ANY = re.compile(r"\._ts\b|\[\s*[\"']_ts[\"']\s*\]")
_PREDICATE = re.compile(r"^\s*FROM\s+(\w+)\s+WHERE\s+(.+)$", re.IGNORECASE | re.DOTALL)
_EQUALS = re.compile(r"^\s*(\w+)\.(\w+)\s*=\s*'([^']*)'\s*$")


def predicate_holds(doc: dict, predicate: str) -> bool:
    """A ``filter_predicate`` of equalities joined by AND (``FROM c WHERE c.f = 'v' AND ...``), on ``doc``."""
    match = _PREDICATE.match(predicate)
    if match is None:
        raise ValueError(f"(bench) unsupported filter predicate {predicate!r}")
    alias, condition = match.groups()
    for part in re.split(r"\s+AND\s+", condition, flags=re.IGNORECASE):
        eq = _EQUALS.match(part)
        if eq is None or eq.group(1) != alias:
            raise ValueError(f"(bench) unsupported filter predicate {predicate!r}")
        if doc.get(eq.group(2)) != eq.group(3):
            return False
    return True


def _errors():
    from azure.cosmos import exceptions as e

    return e


class MirrorContainer:
    """One store's documents on the npm server, and this process's copy of them (see chain_cost's docstring). On
    the server they are kept in one container per document type (``make(type)`` creates it), since it scans a
    whole container per query: a query that names a type (``c.type = 'stock'`` or ``= @t``) goes to that type's
    container, any other to all of them."""

    FLUSH_AT = 1_000  # pending documents before a flush

    def __init__(self, make, pk: str, clock: SimClock) -> None:
        self._make, self.pk, self._clock = make, pk, clock
        self._inner: dict[str, object] = {}  # document type -> its container on the server
        self.docs: dict[str, dict] = {}  # id -> document with _etag and _ts
        self._pending: dict[str, tuple[str, dict | None]] = {}  # id -> (type, body to upsert, or None: delete)
        self._on_server: set[str] = set()
        self.stock_docs = 0
        self.requests = 0  # requests sent to the server
        self._etags = itertools.count(1)

    # -- the copy
    def _put(self, doc_id: str, body: dict) -> dict:
        clean = {k: v for k, v in body.items() if not k.startswith("_")}
        self.stock_docs += doc_id.startswith("stock:") and doc_id not in self.docs
        ts = int(self._clock())
        self.docs[doc_id] = {**clean, "_etag": f'"bench-{next(self._etags):09d}"', "_ts": ts}
        self._pending[doc_id] = (str(clean.get("type")), {**clean, SIM_TS: ts})  # with the simulated write time
        if len(self._pending) >= self.FLUSH_AT:
            self.flush()
        return dict(self.docs[doc_id])

    def _drop(self, doc_id: str) -> None:
        self.stock_docs -= doc_id.startswith("stock:")
        self._pending[doc_id] = (str(self.docs.pop(doc_id).get("type")), None)

    def _current(self, doc_id: str) -> dict:
        doc = self.docs.get(doc_id)
        if doc is None:
            raise _errors().CosmosResourceNotFoundError(status_code=404, message=f"(bench) {doc_id!r} not found")
        return doc

    def _server(self, doc_type: str):  # a ContainerProxy
        if doc_type not in self._inner:
            self._inner[doc_type] = self._make(doc_type)
        return self._inner[doc_type]

    def flush(self) -> None:
        """Send the pending writes to the server, 100 operations a request."""
        ops: dict[str, list[tuple]] = defaultdict(list)
        for doc_id, (doc_type, body) in self._pending.items():
            if body is not None:
                ops[doc_type].append(("upsert", (body,)))
                self._on_server.add(doc_id)
            elif doc_id in self._on_server:
                ops[doc_type].append(("delete", (doc_id,)))
                self._on_server.discard(doc_id)
        self._pending.clear()
        _BATCH_PK.pk = json.dumps([self.pk])
        try:
            for doc_type, todo in ops.items():
                for i in range(0, len(todo), 100):
                    self._server(doc_type).execute_item_batch(todo[i:i + 100], partition_key=self.pk)
                    self.requests += 1
        finally:
            _BATCH_PK.pk = None

    # -- point operations
    def read_item(self, item: str, partition_key: str, **kwargs) -> dict:
        return dict(self._current(item))

    def create_item(self, body: dict, **kwargs) -> dict:
        if body["id"] in self.docs:
            raise _errors().CosmosResourceExistsError(status_code=409, message=f"(bench) {body['id']!r} exists")
        return self._put(body["id"], body)

    def upsert_item(self, body: dict, **kwargs) -> dict:
        return self._put(body["id"], body)

    def replace_item(self, item: str, body: dict, etag: str | None = None, match_condition=None, **kwargs) -> dict:
        self._check_etag(self._current(item), etag, match_condition)
        return self._put(item, body)

    def patch_item(self, item: str, partition_key: str, patch_operations: list, filter_predicate: str | None = None,
                   etag: str | None = None, match_condition=None, **kwargs) -> dict:
        doc = self._current(item)
        self._check_etag(doc, etag, match_condition)
        if filter_predicate is not None and not predicate_holds(doc, filter_predicate):
            raise _errors().CosmosAccessConditionFailedError(status_code=412, message="(bench) predicate false")
        return self._put(item, _patched(doc, patch_operations))

    def delete_item(self, item: str, partition_key: str, **kwargs) -> None:
        self._current(item)
        self._drop(item)

    @staticmethod
    def _check_etag(doc: dict, etag: str | None, match_condition) -> None:
        from azure.core import MatchConditions

        if etag is not None and match_condition == MatchConditions.IfNotModified and doc["_etag"] != etag:
            raise _errors().CosmosAccessConditionFailedError(status_code=412, message="(bench) etag changed")

    # -- transactional batch, checked against the copy
    def execute_item_batch(self, batch_operations, partition_key: str, **kwargs) -> list[dict]:
        ops = list(batch_operations)
        staged: dict[str, dict | None] = {}
        for index, op in enumerate(ops):
            status = self._stage(op, staged)
            if status:
                responses = [{"statusCode": 424} for _ in ops]
                responses[index] = {"statusCode": status}
                raise _errors().CosmosBatchOperationError(
                    error_index=index, headers={}, status_code=status, operation_responses=responses,
                    message=f"(bench) batch operation {index} ({op[0]}) failed with {status}")
        out = []
        for doc_id, body in staged.items():
            if body is None:
                self._drop(doc_id)
            else:
                out.append({"statusCode": 200, "resourceBody": self._put(doc_id, body)})
        return out

    def _stage(self, op: tuple, staged: dict[str, dict | None]) -> int:
        """Apply one batch operation to ``staged`` (id -> document after the operations so far); the status of
        its failure, or 0."""
        kind, args = op[0].lower(), op[1]
        options = dict(op[2]) if len(op) > 2 else {}
        etag, predicate = options.pop("if_match_etag", None), options.pop("filter_predicate", None)
        if options:
            raise ValueError(f"(bench) unsupported batch operation options {sorted(options)}")
        doc_id = args[0]["id"] if kind in ("create", "upsert") else args[0]
        doc = staged[doc_id] if doc_id in staged else self.docs.get(doc_id)
        if kind == "create" and doc is not None:
            return 409
        if kind in ("replace", "patch", "delete", "read"):
            if doc is None:
                return 404
            if etag is not None and doc_id not in staged and doc["_etag"] != etag:
                return 412
            if predicate is not None and not predicate_holds(doc, predicate):
                return 412
        if kind in ("create", "upsert"):
            staged[doc_id] = args[0]
        elif kind == "replace":
            staged[doc_id] = args[1]
        elif kind == "patch":
            staged[doc_id] = _patched(doc, args[1])
        elif kind == "delete":
            staged[doc_id] = None
        return 0

    # -- queries: answered by the server
    def query_items(self, query: str, parameters: list | None = None) -> list[dict]:
        self.flush()
        params = list(parameters or ())
        types = self._types(query, params)
        query, params = self._simulated_ts(query, params)
        rows = []
        for doc_type in types:
            rows += self._server(doc_type).query_items(query, parameters=params, enable_cross_partition_query=True)
            self.requests += 1
        return [self._stamped(r) for r in rows]

    def _types(self, query: str, params: list[dict]) -> list[str]:
        """The document types a query can return: the one its WHERE clause names, else every one stored."""
        match = _TYPE.search(query)
        if match is None or re.search(r"\bOR\b|\bNOT\b", query, re.IGNORECASE):
            return sorted(self._inner)
        named = match.group(1) or {p["name"]: p["value"] for p in params}[match.group(2)]
        return [named] if named in self._inner else []

    @staticmethod
    def _simulated_ts(query: str, params: list[dict]) -> tuple[str, list[dict]]:
        """A ``c._ts <op> @p`` comparison made on the simulated write time each document carries on the server."""
        query = _TS.sub(lambda m: f"{m.group(1)}.{SIM_TS} {m.group(2)} {m.group(3)}", query)
        if _TS_ANY.search(query):
            raise ValueError(f"(bench) unsupported use of _ts in {query!r}")
        return query, params

    def _stamped(self, row: dict) -> dict:
        """A row with the copy's etag and simulated ``_ts`` instead of the server's."""
        row.pop(SIM_TS, None)
        if "_ts" in row or "_etag" in row:
            if row.get("id") not in self.docs:
                raise ValueError("(bench) a query projected _ts or _etag without the document's id")
            doc = self.docs[row["id"]]
            row.update({k: doc[k] for k in ("_ts", "_etag") if k in row})
        return row

    def server_rows(self) -> dict[str, dict]:
        """Every document as the server holds it (system properties left out), after a flush."""
        self.flush()
        rows = [r for c in self._inner.values() for r in c.query_items("SELECT * FROM c",
                                                                        enable_cross_partition_query=True)]
        return {r["id"]: {k: v for k, v in r.items() if not k.startswith("_")} for r in rows}


_CROSS_REFUSED = re.compile(r"\b(ORDER\s+BY|TOP|DISTINCT|GROUP\s+BY|OFFSET|COUNT|SUM|MIN|MAX|AVG)\b", re.IGNORECASE)


class PartitionedContainer:
    """The one container the store sees: each operation goes to its partition's (store's) container; a query
    without a partition key goes to every one of them, its rows concatenated."""

    def __init__(self, database, clock: SimClock) -> None:
        from shared.adapters.stock_cosmos import ensure_container

        self._database, self._clock, self._ensure = database, clock, ensure_container
        self.parts: dict[str, MirrorContainer] = {}
        self.id = "stock"
        self.container_link = "dbs/bench/colls/stock (one container per store on the npm server)"
        self.last_full_docs = 0  # documents of the last query that were a store's whole stock
        self._pool = ThreadPoolExecutor(max_workers=FAN_OUT_THREADS, thread_name_prefix="fan-out")

    def part(self, pk: str) -> MirrorContainer:
        if pk not in self.parts:
            self.parts[pk] = MirrorContainer(lambda t: self._ensure(self._database, f"{pk}-{t}"), pk, self._clock)
        return self.parts[pk]

    def read_item(self, item, partition_key, **kwargs):
        return self.part(partition_key).read_item(item, partition_key, **kwargs)

    def create_item(self, body, **kwargs):
        return self.part(body["storeId"]).create_item(body, **kwargs)

    def upsert_item(self, body, **kwargs):
        return self.part(body["storeId"]).upsert_item(body, **kwargs)

    def replace_item(self, item, body, **kwargs):
        return self.part(body["storeId"]).replace_item(item, body, **kwargs)

    def patch_item(self, item, partition_key, **kwargs):
        return self.part(partition_key).patch_item(item, partition_key, **kwargs)

    def delete_item(self, item, partition_key, **kwargs):
        return self.part(partition_key).delete_item(item, partition_key, **kwargs)

    def execute_item_batch(self, batch_operations, partition_key, **kwargs):
        return self.part(partition_key).execute_item_batch(batch_operations, partition_key, **kwargs)

    def query_items(self, query, parameters=None, partition_key=None, enable_cross_partition_query=None, **kwargs):
        if partition_key is not None:
            targets = [self.parts[partition_key]] if partition_key in self.parts else []
        elif enable_cross_partition_query:
            if _CROSS_REFUSED.search(query):
                raise ValueError(f"(bench) a cross-partition query this layer cannot merge: {query!r}")
            targets = [self.parts[k] for k in sorted(self.parts)]
        else:
            raise ValueError("(bench) a query with neither a partition key nor enable_cross_partition_query")
        rows, self.last_full_docs = [], 0
        for part, got in zip(targets, self._fan_out(targets, query, parameters), strict=True):
            stock = sum(1 for r in got if str(r.get("id", "")).startswith("stock:"))
            self.last_full_docs += stock if stock and stock == part.stock_docs else 0
            rows += got
        return iter(rows)

    def _fan_out(self, targets: list[MirrorContainer], query: str, parameters) -> list[list[dict]]:
        """Each container's rows, several asked at once (as Cosmos asks its physical partitions)."""
        if len(targets) < 2:
            return [part.query_items(query, parameters) for part in targets]
        return list(self._pool.map(lambda part: part.query_items(query, parameters), targets))


class ChainTally(Tally):
    """:class:`events_cosmos.Tally` plus what the cost model needs: per query kind, the documents that were a
    store's whole stock and the cross-partition queries; stock documents written outside batches."""

    def __init__(self) -> None:
        super().__init__()
        self.full_docs: Counter[str] = Counter()
        self.cross: Counter[str] = Counter()
        self.stock_writes: Counter[str] = Counter()


def query_label(query: str, cross: bool) -> str:
    """A short name for a query of the store (labels only: nothing depends on them)."""
    q = " ".join(query.split())
    label = ("stock written since a cursor (_ts)" if "_ts" in q
             else "stores (baseline documents)" if "'baseline'" in q
             else "ledger items by id (after a 409)" if "'event'" in q and "ARRAY_CONTAINS" in q
             else "ledger after a snapshot" if "'event'" in q
             else "which documents exist (ids)" if "@t" in q and "@ids" in q
             else "stock documents by id" if "'stock'" in q and "ARRAY_CONTAINS" in q
             else "stock documents" if "'stock'" in q
             else q[:60])
    return ("cross-partition: " if cross else "") + label


class ChainCounting(CountingContainer):
    """The counter right under the store (``events_cosmos.CountingContainer``), with finer query kinds, whole-stock
    documents and cross-partition queries; ``tally`` is switched per phase."""

    def query_kind(self, query: str, kwargs: dict) -> str:
        return query_label(query, kwargs.get("partition_key") is None)

    def query_items(self, query, *args, **kwargs):
        """One request; its documents counted as the caller takes them (a caller that stops early, as
        ``changes`` does past ``max_docs``, is charged for what it took, and for no whole-stock read)."""
        what, t = self.query_kind(query, kwargs), self.tally
        rows = list(self._inner.query_items(query, *args, **kwargs))
        t.queries[what] += 1
        if kwargs.get("partition_key") is None:
            t.cross[what] += 1
        return self._taken(rows, what, self._inner.last_full_docs, t)

    @staticmethod
    def _taken(rows: list[dict], what: str, full: int, t: ChainTally) -> Iterator[dict]:
        taken = 0
        try:
            for row in rows:
                taken += 1
                yield row
        finally:
            t.query_docs[what] += taken
            t.full_docs[what] += full if taken == len(rows) else 0

    def _stock_write(self, kind: str, body: dict) -> None:
        if str(body.get("id", "")).startswith("stock:"):
            self.tally.stock_writes[kind] += 1

    def create_item(self, body, *args, **kwargs):
        self._stock_write("create", body)
        return super().create_item(body, *args, **kwargs)

    def replace_item(self, item, body, *args, **kwargs):
        self._stock_write("replace", body)
        return super().replace_item(item, body, *args, **kwargs)

    def upsert_item(self, body, *args, **kwargs):
        self._stock_write("upsert", body)
        return super().upsert_item(body, *args, **kwargs)


# --- the server -------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def cosmos_database(work: Path) -> Iterator[object]:
    """A database on a fresh npm Cosmos-API server on a free loopback port (stopped at the end)."""
    import uuid

    sys.path.insert(0, str(ROOT))  # tests/ is not an installed package
    from azure.cosmos import CosmosClient

    from shared.adapters.stock_cosmos import client_options
    from tests.support import cosmos as tc
    from tests.support import servers

    proc = client = None
    try:
        with tc.unverified_tls_ok():
            proc, port = _start_cosmos_server(tc, work / "cosmos-server.log")
            client = CosmosClient(f"https://{tc.HOST}:{port}/", credential=tc.EMULATOR_KEY, connection_verify=False,
                                  transport=tc.unverified_tls_transport(), **client_options())
            _install_batch_partition_key()
            yield client.create_database(f"chain-{uuid.uuid4().hex[:12]}")
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            servers.stop(proc)
