"""Benchmark: a chain's day in Cosmos DB request units, and what it would cost per month (issue 19, part 1).

    python bench/chain_cost.py [--stores 50] [--skus 2000] [--events-per-store-day 1500] [--seed 1]
                               [--at-skus 5000] [--ru-per-doc 0.05] [--timer-run-s 120] [--out bench/out]

**The day** (seeded, deterministic): ``--stores`` stores of different sizes (0.5-2x the mean), each carrying
``--skus`` skus sold by a Zipf law (rank^-1.1, pos_traffic's), open 08:00-21:59 with the dump generator's
intraday profile (``generator_sales.HOUR_WEIGHTS``: a morning ramp, lunch and after-work peaks), on average
``--events-per-store-day`` events a store (pos_traffic's mix of sales, returns, receipts and adjustments) of
1-5 lines (mean 3, ``events_stream.LINES_P``); ``--resend-share`` of them delivered a second time, the same
bytes, 2 s to 5 min later (a till retrying after a timeout). An event reaches Event Hubs 0.2-2 s after the
sale; stores are hashed onto ``--partitions`` partitions (``partition_for``) and each partition delivers as the
trigger does with host.json's settings: a batch once ``minEventBatchSize`` events wait, or ``maxWaitTime``
after its first one, at most ``maxEventBatchSize``. The report gives the measured events per store per batch.

**What runs**, the product's code unchanged, on the app's container (``shared.bootstrap.build`` with a
temporary ``INVENTORY_HOME``: a folder lake; its stock store ONE ``CosmosStockStore`` over every store's
documents, as in Azure): ``apply_sales`` on each delivered batch at its delivery time; ``raise_alerts`` every
15 minutes (96 runs; ``--alert-every-min``) and ``compute_aggregates`` at 20 past each hour (24 runs;
``--aggregate-every-h``), called as the use cases call them but with the simulated ``now``; and each store's
nightly dump (``generate_store``: the catalogue's skus, one day of sales, counted at 23:00) ingested between
23:05 and 23:55 by ``UseCases.ingest_file`` -- ``ingest_dump`` into the lake, then ``reconcile_after_ingest``,
which rebases the store -- as the blob trigger does. The simulated 24 hours run from 06:00 to 06:00, so the
timer runs that read the night's rebased documents fall inside them. Simulated time is also the store's
clock. Before the day, uncounted: the previous night's dumps ingested and rebased into empty containers, then
one run of each timer (the aggregates first), so that the day's runs are steady-state ones. After it,
uncounted: the stock is checked against the dumps plus the day's distinct events just before the first
nightly rebase and against tonight's dumps at the end, and the bench layer's copy of every document against
the server's.

**Counted**, by kind and by phase (apply, rebase, alerts timer, aggregates timer): every request the store
sends (``events_cosmos.CountingContainer``, right under the store), the documents each query returned, and
which of those documents were a store's whole stock (a query that returns every stock document of a store
costs in proportion to the skus; any other, in proportion to the events).

**On the npm Cosmos-API server**, started here on a free loopback port with keep-alive (as events.py does),
with a bench layer between the counter and the server (:class:`PartitionedContainer`, :class:`MirrorContainer`)
that changes nothing the store sends or receives: each store's documents live in containers of their own, one
per document type (the server scans a whole container per query), a query without a partition key runs on
every store's and returns the rows concatenated (ORDER BY, TOP, DISTINCT and aggregates are refused, not
emulated); the layer keeps a copy of each store's documents (every write goes through this process) and
answers point reads and the preconditions of writes from it (409, 404, 412, ``filter_predicate``
equalities), numbering etags itself and giving each document's ``_ts`` the simulated time of its last write
(the server's copy carries it, and a ``c._ts`` comparison is made on it), because the day runs in minutes;
writes reach the server in batches before the next query. Every query is answered by the server.

**Converted** to RU with the documented per-operation figures of ``events_cosmos`` (``RU_*``, which cite
Microsoft's pages) and, for a query, ``RU_QUERY`` plus ``--ru-per-doc`` per document returned (an assumption:
the docs give no per-document figure) and ``RU_QUERY`` per physical partition for a cross-partition query;
then to money with the prices Microsoft's pages give (see ``PAGES``; read on 2026-12-07). Extrapolated to
100, 1,000 and 5,000 stores at ``--at-skus`` skus a store: everything per store scales linearly with the
stores, the whole-stock reads and the stock-document writes outside batches also with the skus; the
cross-partition queries' base charge scales with the physical partitions, estimated from the storage. The
hourly peaks for autoscale are derived from the measured RU per simulated hour (see :func:`hourly_peaks`).

Progress on stderr, the Markdown report on stdout. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import math
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path

import harness
from events_cosmos import (
    COSMOS_SERVER_BIN,
    RU_BATCH_OP,
    RU_CREATE,
    RU_DELETE,
    RU_NAIVE_LINE,
    RU_PATCH,
    RU_POINT_READ,
    RU_QUERY,
    RU_REPLACE,
    RU_UPSERT,
    CountingContainer,
    Tally,
    _patched,
    _start_cosmos_server,
)
from events_stream import LINES_P, _diff
from harness import ROOT, say

# --- prices and service limits, from Microsoft's pages (read on 2026-12-07) -------------------------------------
READ_ON = "2026-12-07"
PAGES = {
    "serverless and provisioned prices": "https://learn.microsoft.com/azure/cosmos-db/throughput-serverless",
    "billing examples": "https://learn.microsoft.com/azure/cosmos-db/understand-your-bill",
    "autoscale billing": "https://learn.microsoft.com/azure/cosmos-db/autoscale-faq",
    "limits": "https://learn.microsoft.com/azure/cosmos-db/concepts-limits",
    "serverless throughput": "https://learn.microsoft.com/azure/cosmos-db/serverless-performance",
    "physical partitions": "https://learn.microsoft.com/azure/cosmos-db/partitioning-overview",
    "query charges": "https://learn.microsoft.com/azure/cosmos-db/optimize-cost-reads-writes",
    "TTL deletes": "https://learn.microsoft.com/azure/cosmos-db/nosql/time-to-live",
    "the price list (authoritative, by region)": "https://azure.microsoft.com/pricing/details/cosmos-db/",
}
# throughput-serverless: "$0.25 * 20 = $5.00" for 20 million RU; understand-your-bill: "$0.25/million".
PRICE_SERVERLESS_PER_MILLION_RU = 0.25
# throughput-serverless and understand-your-bill: "$0.008 (per 100 RU/sec per hour)", single write region.
PRICE_PROVISIONED_PER_100_RUS_HOUR = 0.008
# autoscale-faq: "In single-write region accounts, the autoscale rate per 100 RU/s is 1.5 times the rate of
# standard (manual) provisioned throughput"; "Each hour, you're billed for the highest throughput T the system
# scaled to within that hour ... or ... the minimum of 0.1 x Tmax".
AUTOSCALE_RATE = 1.5
AUTOSCALE_MIN_SHARE = 0.1
AUTOSCALE_MIN_TMAX = 1_000  # concepts-limits: MAX(1000, ..., current storage in GB * 10), rounded up to 1000
AUTOSCALE_RUS_PER_GB = 10
# understand-your-bill: "Storage bill ... 250 GB ... $0.25/GB" a month.
PRICE_STORAGE_GB_MONTH = 0.25
HOURS_PER_MONTH = 730  # throughput-serverless: "$0.008 * 5 * 730"
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
# partitioning-overview: a physical partition serves up to 10,000 RU/s and stores up to 50 GB.
PARTITION_GB, PARTITION_RUS = 50, 10_000
# concepts-limits (serverless): 1 TB a container; serverless-performance: 5,000 RU/s a container up to 250 GB
# (5 physical partitions), then 1,000 RU/s more per physical partition (20,000 RU/s at 1 TB).
SERVERLESS_MAX_GB = 1_000
SERVERLESS_BASE_RUS, SERVERLESS_BASE_GB, SERVERLESS_RUS_PER_EXTRA_PARTITION = 5_000, 250, 1_000

# --- stated assumptions (not Microsoft figures) -------------------------------------------------------------------
RU_PER_DOC = 0.05  # default charge per document a query returns, on top of RU_QUERY (see the report)
DOC_OVERHEAD_BYTES = 200  # system properties (_rid, _self, _etag, _ts, _attachments) a document adds
INDEX_OVERHEAD = 1.25  # storage of the index (5 indexed paths) on top of the documents
PEAK_Z = 3.7  # the busiest second of an hour: mean + 3.7 standard deviations of a Poisson count (1 in 10,000)
SCALES = (100, 1_000, 5_000)
WINDOWS_MIN = (50, 180, 360)  # the dumps' arrival windows the report compares

POINT_RU = {"read": RU_POINT_READ, "create": RU_CREATE, "replace": RU_REPLACE, "upsert": RU_UPSERT,
            "patch": RU_PATCH, "delete": RU_DELETE}
PHASES = ("apply", "rebase", "alerts", "aggregates")
DAY = date(2026, 11, 24)  # a Tuesday, fixed (the events must not be in the future: apply_sales checks)
ALERT_EVERY_MIN, AGGREGATES_AT_MIN = 15, 20  # settings: ALERTS_SCHEDULE "0 */15 * * * *", AGGREGATES_SCHEDULE
SNAPSHOT_HOUR = 23  # the nightly count (generator.SNAPSHOT_TIME)
REBASE_WINDOW_MIN = (5, 55)  # minutes after the snapshot when the dumps' rebases run
FAN_OUT_THREADS = 3  # a cross-partition query's requests to the stores' containers in flight at once
STORES_PER_PARTITION = 31  # the default partitions: as dense as 1,000 stores on 32 partitions
WINDOW_HOUR = 6  # the simulated 24 hours run from 06:00 to 06:00, so the night's rebases are read inside them
VENDORS = 12  # generate_store's default
NIGHTS = (DAY - timedelta(days=2), DAY - timedelta(days=1), DAY)  # the first load, last night, tonight


# --- the day --------------------------------------------------------------------------------------------------

@dataclass
class Arrival:
    """One event as Event Hubs receives it: when (simulated epoch seconds), from which store, the body."""

    t: float
    store: str
    body: bytes
    kind: str  # pos_traffic.VALID or DUPLICATE (a resend)
    lines: int


@dataclass
class Day:
    stores: list[str]
    skus: list[str]
    arrivals: list[Arrival]
    dumps: dict[str, dict[date, Path]] = field(default_factory=dict)  # store -> night -> its SQLite dump
    truth: dict[tuple[str, str], int] = field(default_factory=dict)  # (store, sku) -> the day's delta


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def at(day: date, hour: int, minute: float = 0, second: float = 0.0) -> float:
    return epoch(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute,
                                                                             seconds=second))


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_of(t: float) -> int:
    """The clock hour (0-23) of a simulated time."""
    return int((t - at(DAY, 0)) // 3600) % 24


class DayMaker:
    """The day's events and the stores' dumps, seeded: see the module docstring. Reuses pos_traffic's and the
    dump generator's constants; the skus are the generator's catalogue, ranked by its popularity."""

    def __init__(self, args: argparse.Namespace) -> None:
        from shared.local import generator_sales as gs
        from shared.local import pos_traffic as pt
        from shared.local.generator_catalogue import chain_catalogue

        self.pt, self.rng, self.args = pt, random.Random(args.seed), args
        self.open_hour, weights = gs.OPEN_HOUR, [float(w) for w in gs.HOUR_WEIGHTS]
        self.hour_cum = list(accumulate(w / sum(weights) for w in weights))
        cat = chain_catalogue(args.skus, VENDORS)
        self.skus = [k for _, k in sorted(zip(-cat.popularity, cat.skus, strict=True))]
        self.price = dict(zip(cat.skus, (float(x) for x in cat.unit_price), strict=True))
        self.sku_cum = list(accumulate((rank + 1) ** -pt.ZIPF_A for rank in range(args.skus)))
        self.stores = [f"B{i:03d}" for i in range(1, args.stores + 1)]

    def make(self) -> Day:
        sizes = [self.rng.uniform(0.5, 2.0) for _ in self.stores]
        mean = sum(sizes) / len(sizes)
        arrivals: list[Arrival] = []
        for store, size in zip(self.stores, sizes, strict=True):
            arrivals += self._store_day(store, round(self.args.events_per_store_day * size / mean))
        arrivals.sort(key=lambda a: a.t)
        return Day(self.stores, self.skus, arrivals)

    def _store_day(self, store: str, n: int) -> list[Arrival]:
        times = sorted(self._sale_time() for _ in range(n))
        tills = self.rng.randint(1, self.pt.MAX_TILLS)
        seq: Counter[int] = Counter()
        out = []
        for t in times:
            till = self.rng.randint(1, tills)
            seq[till] += 1
            body, lines = self._body(store, f"{store}-pos{till}-{seq[till]:08d}", t)
            arrive = t + self.rng.uniform(0.2, 2.0)
            out.append(Arrival(arrive, store, body, self.pt.VALID, lines))
            if self.rng.random() < self.args.resend_share:
                out.append(Arrival(arrive + self.rng.uniform(2.0, 300.0), store, body, self.pt.DUPLICATE, lines))
        return out

    def _sale_time(self) -> float:
        hour = self.rng.choices(range(len(self.hour_cum)), cum_weights=self.hour_cum)[0]
        return at(DAY, self.open_hour + hour, second=self.rng.uniform(0.0, 3600.0))

    def _body(self, store: str, event_id: str, t: float) -> tuple[bytes, int]:
        pt = self.pt
        kind = self.rng.choices(list(pt.EVENT_TYPE_WEIGHTS), list(pt.EVENT_TYPE_WEIGHTS.values()))[0]
        qtys, weights = {"receipt": pt.RECEIPT_QTY, "adjustment": pt.ADJUSTMENT_QTY}.get(kind, pt.SALE_QTY)
        n = self.rng.choices(range(1, len(LINES_P) + 1), LINES_P)[0]
        lines = []
        for sku in self.rng.choices(self.skus, cum_weights=self.sku_cum, k=n):
            line: dict = {"sku": sku, "qty": self.rng.choices(qtys, weights)[0]}
            if kind in ("sale", "return"):
                line["unitPrice"] = self.price[sku]
            lines.append(line)
        doc = {"eventId": event_id, "storeId": store, "type": kind, "occurredAt": stamp(t), "lines": lines}
        return json.dumps(doc, separators=(",", ":")).encode("ascii"), n

    def truth(self, day: Day) -> None:
        """The day's stock change per (store, sku): the distinct valid events' deltas."""
        from shared.local.pos_traffic import TrafficItem, expected_deltas

        day.truth = expected_deltas((TrafficItem(a.body, a.store, a.kind) for a in day.arrivals),
                                    now=datetime.fromtimestamp(at(DAY, 23), UTC))

    def dumps(self, day: Day, folder: Path) -> None:
        """Each store's SQLite dumps of three nights (``generate_store``: the catalogue's skus, one day of sales,
        counted at 23:00, no dirty rows): the first load, last night's and tonight's. Each night's counts are the
        night before's plus the day's events (the shelves the tills sold from; no events before the simulated
        day), ``--miscount-share`` of the skus counted 1-3 units off."""
        from shared.local.generator import generate_store

        for n, store in enumerate(day.stores, 1):
            for night in NIGHTS:
                path = folder / f"{store}-{night.isoformat()}.sqlite"
                generate_store(path, store, n_items=self.args.skus, n_vendors=VENDORS, days=1,
                               sales_lines=self.args.events_per_store_day * 3, end=night, dirty_rate=0.0,
                               seed=self.args.seed * 1000 + n)
                day.dumps.setdefault(store, {})[night] = path
            for before, night in itertools.pairwise(NIGHTS):
                counts = dump_counts(day.dumps[store][before])
                deltas = day.truth if night == DAY else {}
                self._recount(day.dumps[store][night], {k: c + deltas.get((store, k), 0) + self._miscount()
                                                        for k, c in counts.items()})

    def _miscount(self) -> int:
        if self.rng.random() >= self.args.miscount_share:
            return 0
        return self.rng.choice((-1, 1)) * self.rng.randint(1, 3)

    @staticmethod
    def _recount(path: Path, counts: dict[str, int]) -> None:
        import sqlite3

        con = sqlite3.connect(path)
        try:
            con.executemany("UPDATE stock SET on_hand = ? WHERE sku = ?", [(c, k) for k, c in counts.items()])
            con.commit()
        finally:
            con.close()


def dump_counts(path: Path) -> dict[str, int]:
    """sku -> units counted, from a generated dump (no dirty rows: as the ingest normalises them)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, int] = Counter()
        for sku, n in con.execute("SELECT sku, on_hand FROM stock"):
            out[sku] += n
        return dict(out)
    finally:
        con.close()


# --- delivery, as the Event Hubs trigger batches -------------------------------------------------------------------

@dataclass
class Delivery:
    t: float
    partition: int
    arrivals: list[Arrival]


def host_eventhubs() -> tuple[float, int, int]:
    """(maxWaitTime in seconds, minEventBatchSize, maxEventBatchSize) from host.json."""
    hubs = json.loads((ROOT / "host.json").read_text())["extensions"]["eventHubs"]
    h, m, s = (float(x) for x in hubs["maxWaitTime"].split(":"))
    return h * 3600 + m * 60 + s, int(hubs.get("minEventBatchSize", 1)), int(hubs["maxEventBatchSize"])


def deliver(arrivals: Sequence[Arrival], partitions: int, wait_s: float, min_batch: int, max_batch: int,
            ) -> list[Delivery]:
    """Each partition's events in batches: a batch is handed over once ``min_batch`` events wait, or ``wait_s``
    after its first event arrived, with at most ``max_batch`` events. All partitions' batches, by time."""
    from shared.adapters.queue_sqlite import partition_for

    by_partition: dict[int, list[Arrival]] = defaultdict(list)
    for a in arrivals:
        by_partition[partition_for(a.store, partitions)].append(a)
    out = []
    for p, queue in by_partition.items():
        i = 0
        while i < len(queue):
            deadline, j = queue[i].t + wait_s, i + 1
            while j < len(queue) and queue[j].t <= deadline and j - i < max_batch and j - i < min_batch:
                j += 1
            out.append(Delivery(queue[j - 1].t if j - i >= min_batch else deadline, p, queue[i:j]))
            i = j
    out.sort(key=lambda d: (d.t, d.partition))
    return out


def per_store_per_batch(deliveries: Sequence[Delivery]) -> Counter[int]:
    """How many events each store had in each batch it appeared in: events -> number of (batch, store)."""
    return Counter(n for d in deliveries for n in Counter(a.store for a in d.arrivals).values())


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
    """One store's documents on the npm server, and this process's copy of them (see the module docstring). On
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


# --- RU of what was counted ----------------------------------------------------------------------------------------

@dataclass
class Parts:
    """What was spent (by a phase, in an hour, by a run), split by how it grows with the chain: RU per store or
    per event (``base``, and ``docs`` returned by queries), RU that grow with the skus too (``sku_writes``, the
    stock documents written outside batches; ``full``, the documents of whole-stock reads) and cross-partition
    queries (``cross``), whose base charge grows with the physical partitions. Documents are counted, not
    charged: the charge per document is a parameter (``per_doc``)."""

    base: float = 0.0
    docs: float = 0.0
    sku_writes: float = 0.0
    full: float = 0.0
    cross: float = 0.0

    def __sub__(self, other: Parts) -> Parts:
        return Parts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Parts)))

    def __add__(self, other: Parts) -> Parts:
        return Parts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Parts)))

    def at(self, per_doc: float, stores: float = 1.0, skus: float = 1.0, partitions: int = 1) -> float:
        """The RU at ``stores`` times the bench's stores and ``skus`` times its skus, on ``partitions``."""
        return (stores * (self.base + self.docs * per_doc + skus * (self.sku_writes + self.full * per_doc))
                + self.cross * RU_QUERY * partitions)


def tally_parts(t: ChainTally) -> Parts:
    """Everything in ``t`` (failed batches charged in full, as events_report does)."""
    point = sum(n * POINT_RU.get(k, RU_REPLACE) for k, n in t.point.items())
    batch = sum(n * RU_BATCH_OP.get(k, RU_REPLACE) for k, n in t.batch_ops.items())
    failed = sum(n * RU_BATCH_OP.get(k, RU_REPLACE) for ops in t.failed_ops.values() for k, n in ops.items())
    cross = sum(t.cross.values())
    sku_writes = sum(n * POINT_RU[k] for k, n in t.stock_writes.items())
    full = sum(t.full_docs.values())
    base = point + batch + failed + (sum(t.queries.values()) - cross) * RU_QUERY - sku_writes
    return Parts(base, sum(t.query_docs.values()) - full, sku_writes, full, cross)


# --- the run --------------------------------------------------------------------------------------------------

class NullTelemetry:
    def event(self, name: str, **properties: object) -> None:
        pass

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        pass


@dataclass
class Run:
    """What the run measured."""

    tallies: dict[str, ChainTally]
    wall: dict[str, float]
    hourly: dict[str, list[Parts]]  # phase -> Parts per clock hour (0-23)
    runs: dict[str, list[tuple[int, Parts]]]  # timer -> (clock hour, Parts) per run
    changes_read: list[tuple[int, int]]  # per timer run: documents its `_ts` queries returned, whole stocks among them
    apply_counts: dict
    checks: dict
    server_requests: int


class Chain:
    """The app's container (``shared.bootstrap.build``) with its stock store on the bench layer, the simulated
    clock and the counters; runs the day's steps."""

    def __init__(self, database, work: Path, args: argparse.Namespace) -> None:
        from shared.bootstrap import build, use_cases

        self.clock = SimClock(at(NIGHTS[0], SNAPSHOT_HOUR))
        self.container = PartitionedContainer(database, self.clock)
        self.tallies = {name: ChainTally() for name in ("setup", *PHASES, "check")}
        self.counting = ChainCounting(self.container, self.tallies["setup"])
        env = {"INVENTORY_HOME": str(work / "home"), "STOCK_LEDGER_TTL_DAYS": str(args.ledger_ttl_days)}
        self.c = build(env, stock_factory=self._stock)
        self.c.telemetry = NullTelemetry()  # the functions' telemetry is not what is measured
        self.uc, self.args = use_cases(self.c), args
        self.wall: dict[str, float] = Counter()
        self.hourly: dict[str, list[Parts]] = {p: [Parts() for _ in range(24)] for p in PHASES}
        self.runs: dict[str, list[tuple[int, Parts]]] = {"alerts": [], "aggregates": []}
        self.changes_read: list[tuple[int, int]] = []  # per timer run: (documents, of which whole stocks) of _ts
        self.apply_counts = None

    def _stock(self, settings):  # the container's stock_factory
        """``CosmosStockStore`` as bootstrap builds it (ledger TTL from the settings), on the counter, with the
        simulated clock when the store takes one."""
        from shared.adapters.stock_cosmos import CosmosStockStore

        extra = {"clock": self.clock} if "clock" in inspect.signature(CosmosStockStore).parameters else {}
        return CosmosStockStore(self.counting, ledger_ttl_s=settings.int("STOCK_LEDGER_TTL_DAYS") * 86400, **extra)

    @contextlib.contextmanager
    def phase(self, name: str, t: float):
        """Count into ``name``'s tally at simulated time ``t``; the RU spent go to its clock hour (and run)."""
        self.clock.t = t
        self.counting.tally = tally = self.tallies[name]
        before, changed, w0 = tally_parts(tally), _changes_read(tally), time.perf_counter()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - w0
            spent = tally_parts(tally) - before
            if name in self.hourly:
                self.hourly[name][hour_of(t)] += spent
            if name in self.runs:
                self.runs[name].append((hour_of(t), spent))
                after = _changes_read(tally)
                self.changes_read.append((after[0] - changed[0], after[1] - changed[1]))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.t, UTC)

    def rebase(self, store: str, dump: Path) -> None:
        """A nightly dump as the blob trigger handles it: ingested into the lake, then the store rebased on it
        (``UseCases.ingest_file``: ``ingest_dump`` then ``reconcile_after_ingest``)."""
        receipt = self.uc.ingest_file(dump, store)
        status = receipt.rebase.status if receipt.rebase else receipt.ingest.status
        if status != "rebased":
            raise RuntimeError(f"(bench) the dump {dump.name} of {store} was {status!r}, not rebased")

    def apply(self, delivery: Delivery, seq: dict[int, int]) -> None:
        from shared.services.apply_sales import ApplyCounts, RawEvent, apply_sales

        first = seq.get(delivery.partition, 0)
        seq[delivery.partition] = first + len(delivery.arrivals)
        raw = [RawEvent(a.body, f"eventhub:{delivery.partition}:seq={first + i}")
               for i, a in enumerate(delivery.arrivals)]
        c = self.c
        counts = apply_sales(raw, stock=c.stock, lake=c.lake, telemetry=c.telemetry, now=self.now())
        self.apply_counts = self.apply_counts or ApplyCounts()
        self.apply_counts.add(counts)

    def alerts(self) -> None:
        """``UseCases.raise_alerts`` with the simulated ``now``."""
        from shared.services.raise_alerts import AlertSettings, raise_alerts

        c = self.c
        raise_alerts(lake=c.lake, stock=c.stock, telemetry=c.telemetry,
                     settings=AlertSettings.from_settings(c.settings), now=self.now())

    def aggregates(self) -> None:
        """``UseCases.compute_aggregates`` with the simulated ``now``."""
        from shared.services.aggregates import compute_aggregates

        c = self.c
        compute_aggregates(lake=c.lake, stock=c.stock, telemetry=c.telemetry, scratch=c.scratch_dir,
                           memory_limit=c.settings.get("INGEST_MEMORY_LIMIT"), now=self.now())

    def stock_diff(self, stores: Sequence[str], want: dict[tuple[str, str], int]) -> tuple[int, int]:
        got = {(s, d.sku): d.on_hand for s in stores for d in self.c.stock.stock(s)}
        return _diff(got, want)


def timeline(day: Day, deliveries: Sequence[Delivery], rng: random.Random, args: argparse.Namespace,
             ) -> list[tuple[float, int, str, object]]:
    """The simulated 24 hours from 06:00 (``WINDOW_HOUR``) by time: (t, order, what, payload)."""
    start = at(DAY, WINDOW_HOUR)
    steps: list[tuple[float, int, str, object]] = [(d.t, 2, "apply", d) for d in deliveries]
    steps += [(start + m * 60, 0, "alerts", None) for m in range(0, 24 * 60, args.alert_every_min)]
    steps += [(start + h * 3600 + AGGREGATES_AT_MIN * 60, 1, "aggregates", None)
              for h in range(0, 24, args.aggregate_every_h)]
    steps += [(at(DAY, SNAPSHOT_HOUR, rng.uniform(*REBASE_WINDOW_MIN)), 3, "rebase", s) for s in day.stores]
    steps.sort(key=lambda s: (s[0], s[1]))
    if steps[0][0] < start or steps[-1][0] >= start + 86400:
        raise RuntimeError("(bench) a step falls outside the simulated 24 hours")
    return steps


def setup(chain: Chain, day: Day, rng: random.Random) -> None:
    """Uncounted, so that the day starts as a day after a day ends: the first load (every store's first dump
    ingested: every stock document created), a first run of each timer (their cursors start there), last
    night's dumps ingested between 23:05 and 23:55, then one run of each timer before 06:00 (the aggregates
    first: the alerts read their forecast's key)."""
    first, last = NIGHTS[0], NIGHTS[1]
    for i, store in enumerate(day.stores):
        with chain.phase("setup", at(last, 12, i)):
            chain.rebase(store, day.dumps[store][first])
    _timers(chain, at(last, SNAPSHOT_HOUR - 1, 50))
    for t, store in sorted((at(last, SNAPSHOT_HOUR, rng.uniform(*REBASE_WINDOW_MIN)), s) for s in day.stores):
        with chain.phase("setup", t):
            chain.rebase(store, day.dumps[store][last])
    _timers(chain, at(DAY, WINDOW_HOUR - 1, 50))


def _timers(chain: Chain, t: float) -> None:
    """compute_aggregates at ``t``, raise_alerts five minutes later (uncounted)."""
    for offset, timer in ((0, chain.aggregates), (300, chain.alerts)):
        with chain.phase("setup", t + offset):
            timer()


def run_day(chain: Chain, day: Day, deliveries: Sequence[Delivery], maker: DayMaker) -> dict:
    """The day's steps in time order; the stock checked (uncounted) just before the first nightly rebase and at
    the end."""
    steps = timeline(day, deliveries, maker.rng, chain.args)
    checks: dict = {}
    seq: dict[int, int] = {}
    progress, started = max(len(steps) // 10, 1), time.perf_counter()
    for i, (t, _, what, payload) in enumerate(steps):
        if what == "rebase" and "before_rebase" not in checks:
            want = _plus({s: dump_counts(d[NIGHTS[1]]) for s, d in day.dumps.items()}, day.truth)
            checks["before_rebase"] = check_stock(chain, day, want, t)
        with chain.phase(what, t):
            if what == "apply":
                chain.apply(payload, seq)
            elif what == "rebase":
                chain.rebase(payload, day.dumps[payload][DAY])
            else:
                getattr(chain, what)()
        if (i + 1) % progress == 0:
            say(f"    {i + 1:,}/{len(steps):,} steps (simulated {stamp(t)[11:16]}), "
                f"{time.perf_counter() - started:.0f} s")
    want = _plus({s: dump_counts(d[DAY]) for s, d in day.dumps.items()}, {})
    checks["after_rebase"] = check_stock(chain, day, want, at(DAY, WINDOW_HOUR) + 86400)
    return checks


def _plus(counts: dict[str, dict[str, int]], deltas: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """(store, sku) -> a dump's count plus the deltas (skus only in the deltas: the deltas alone)."""
    out = {(s, k): c for s, by_sku in counts.items() for k, c in by_sku.items()}
    for key, d in deltas.items():
        out[key] = out.get(key, 0) + d
    return out


def check_stock(chain: Chain, day: Day, want: dict[tuple[str, str], int], t: float) -> tuple[int, int]:
    with chain.phase("check", t):
        return chain.stock_diff(day.stores, want)


def check_server(chain: Chain) -> int:
    """Documents whose copy in this process differs from the server's (uncounted)."""
    bad = 0
    for part in chain.container.parts.values():
        server = part.server_rows()
        mine = {i: {k: v for k, v in d.items() if not k.startswith("_")} for i, d in part.docs.items()}
        bad += sum(1 for i in set(server) | set(mine) if server.get(i) != mine.get(i))
    return bad


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


def measure(args: argparse.Namespace, day: Day, deliveries: Sequence[Delivery], maker: DayMaker,
            work: Path) -> Run:
    with cosmos_database(work) as database:
        chain = Chain(database, work, args)
        say(f"setup: the first load and last night's dumps ingested for {len(day.stores)} stores, the timers' "
            "first runs ...")
        setup(chain, day, maker.rng)
        say(f"the day: {len(deliveries):,} batches, {24 * 60 // args.alert_every_min} alert runs, "
            f"{24 // args.aggregate_every_h} aggregate runs, {len(day.stores)} rebases ...")
        checks = run_day(chain, day, deliveries, maker)
        say("checking the bench layer's copy of every document against the server ...")
        checks["server_mismatches"] = check_server(chain)
        requests = sum(p.requests for p in chain.container.parts.values())
    return Run(chain.tallies, dict(chain.wall), chain.hourly, chain.runs, chain.changes_read,
               chain.apply_counts.to_json(), checks,
               requests)


# --- the cost model ------------------------------------------------------------------------------------------------

@dataclass
class Scale:
    """One chain size: RU per day by phase, storage, peaks and money."""

    stores: int
    skus: int
    ru: dict[str, float]
    gb: float
    partitions: int
    peaks: list[float]  # RU/s, the busiest second of each hour
    tmax: int
    serverless_month: float
    autoscale_month: float
    storage_month: float
    serverless_limit: str


class Model:
    """The measured day turned into RU and money at other sizes (see the report's assumptions)."""

    def __init__(self, args: argparse.Namespace, run: Run, day: Day) -> None:
        self.args, self.run, self.day = args, run, day
        self.n, self.k = len(day.stores), len(day.skus)
        self.parts = {p: tally_parts(run.tallies[p]) for p in PHASES}
        self.doc = args.ru_per_doc
        self.events = sum(1 for a in day.arrivals if a.kind == "valid")  # distinct events: ledger items
        self.rates = self._hourly_event_rates()

    def _hourly_event_rates(self) -> list[float]:
        """Events a second per store, by hour of the day (arrivals, resends included)."""
        per_hour = Counter(hour_of(a.t) for a in self.day.arrivals)
        return [per_hour.get(h, 0) / 3600 / self.n for h in range(24)]

    def doc_bytes(self) -> tuple[float, float]:
        """Mean serialized size of a stock document and of a ledger item, as written in this run."""
        sizes = {k: [0, 0] for k in ("stock", "event")}
        for t in self.run.tallies.values():
            for k in sizes:
                sizes[k][0] += t.sizes[k][0]
                sizes[k][1] += t.sizes[k][1]
        return tuple(b / n if n else 0.0 for n, b in sizes.values())

    def storage_gb(self, stores: int, skus: int) -> float:
        stock, event = self.doc_bytes()
        per_store = (skus * (stock + DOC_OVERHEAD_BYTES)
                     + self.events / self.n * self.args.ledger_ttl_days * (event + DOC_OVERHEAD_BYTES))
        return stores * per_store * INDEX_OVERHEAD / 1e9

    def scale(self, stores: int, skus: int, window_min: float = 0) -> Scale:
        """RU, storage, peaks and money at ``stores`` × ``skus`` (``window_min``: the dumps' arrival window)."""
        f, g = stores / self.n, skus / self.k
        gb = self.storage_gb(stores, skus)
        partitions = max(1, math.ceil(gb / PARTITION_GB))
        peaks = hourly_peaks(self, f, g, partitions, window_min)
        partitions = max(partitions, math.ceil(max(peaks) / PARTITION_RUS))
        peaks = hourly_peaks(self, f, g, partitions, window_min)
        ru = {p: self.parts[p].at(self.doc, f, g, partitions) for p in PHASES}
        tmax = _round_up(max(AUTOSCALE_MIN_TMAX, max(peaks), gb * AUTOSCALE_RUS_PER_GB), 1_000)
        billed = sum(max(_round_up(p, 100), AUTOSCALE_MIN_SHARE * tmax) for p in peaks)
        return Scale(stores, skus, ru, gb, partitions, peaks, tmax,
                     sum(ru.values()) * DAYS_PER_MONTH * PRICE_SERVERLESS_PER_MILLION_RU / 1e6,
                     billed / 100 * PRICE_PROVISIONED_PER_100_RUS_HOUR * AUTOSCALE_RATE * DAYS_PER_MONTH,
                     gb * PRICE_STORAGE_GB_MONTH, serverless_limit(gb, max(peaks)))


def _round_up(x: float, step: int) -> int:
    return int(math.ceil(x / step) * step)


def hourly_peaks(model: Model, f: float, g: float, partitions: int, window_min: float = 0) -> list[float]:
    """RU/s of the busiest second of each hour of the day, at ``f`` times the stores and ``g`` times the skus:

    - apply: the hour's measured RU spread over its seconds, times 1 + PEAK_Z/sqrt(events a second) (the
      busiest second of a Poisson stream of that rate);
    - a timer run: its measured RU spent evenly over ``--timer-run-s`` seconds; the alert and aggregate runs
      do not overlap (:00/:15/:30/:45 and :20), so the larger one counts;
    - the nightly rebases: their RU spread evenly over the window in which the dumps arrive (``window_min``
      from 23:05; the simulated one by default), each hour it touches at that rate."""
    args = model.args
    window_min = window_min or REBASE_WINDOW_MIN[1] - REBASE_WINDOW_MIN[0]
    rebase_rate = sum(h.at(model.doc, f, g, partitions) for h in model.run.hourly["rebase"]) / (window_min * 60)
    rebase_hours = {(SNAPSHOT_HOUR + i) % 24 for i in range(math.ceil((REBASE_WINDOW_MIN[0] + window_min) / 60))}
    out = []
    for h in range(24):
        rate = model.rates[h] * model.n * f
        apply = model.run.hourly["apply"][h].at(model.doc, f, g, partitions) / 3600
        apply *= 1 + PEAK_Z / math.sqrt(rate) if rate > 0 else 1
        timers = max((r.at(model.doc, f, g, partitions) / args.timer_run_s for name in ("alerts", "aggregates")
                      for r in _runs_in_hour(model.run.runs[name], h)), default=0.0)
        out.append(apply + timers + (rebase_rate if h in rebase_hours else 0.0))
    return out


def _runs_in_hour(runs: list[tuple[int, Parts]], hour: int) -> list[Parts]:
    return [parts for h, parts in runs if h == hour]


def serverless_limit(gb: float, peak: float) -> str:
    """What a serverless container could not take: the storage (1 TB) or the peak (5,000 RU/s up to 250 GB, then
    1,000 RU/s more per 50 GB physical partition); empty when neither."""
    capacity = SERVERLESS_BASE_RUS + max(0, math.ceil(gb / PARTITION_GB) - SERVERLESS_BASE_GB // PARTITION_GB) \
        * SERVERLESS_RUS_PER_EXTRA_PARTITION
    notes = []
    if gb > SERVERLESS_MAX_GB:
        notes.append(f"storage {gb:,.0f} GB > {SERVERLESS_MAX_GB:,} GB a container")
    if peak > capacity:
        notes.append(f"busiest second {peak:,.0f} RU/s > the {capacity:,} RU/s a container serves: throttled "
                     f"(429) and stretched")
    return "; ".join(notes)


# --- the report ----------------------------------------------------------------------------------------------------

def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def _money(x: float) -> str:
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def phase_rows(model: Model) -> list[list[str]]:
    """Per phase: requests and documents counted, RU, RU per store-day, share, wall time."""
    rows, total = [], sum(p.at(model.doc) for p in model.parts.values())
    for name in PHASES:
        t, ru = model.run.tallies[name], model.parts[name].at(model.doc)
        failed = sum(t.failed.values())
        rows.append([name, _n(sum(t.point.values())), f"{_n(t.batches + failed)} ({_n(failed)} failed)",
                     _n(sum(t.batch_ops.values()) + sum(sum(c.values()) for c in t.failed_ops.values())),
                     _n(sum(t.queries.values())), _n(sum(t.query_docs.values())), _n(ru),
                     _n(ru / model.n), f"{ru / total:.0%}" if total else "-",
                     f"{model.run.wall.get(name, 0):.0f} s"])
    rows.append(["**total**", "", "", "", "", "", f"**{_n(total)}**", f"**{_n(total / model.n)}**", "100%",
                 f"{sum(model.run.wall.get(p, 0) for p in PHASES):.0f} s"])
    return rows


def _batch_ops(t: ChainTally) -> Counter[str]:
    """Committed batches' operations by kind, the guard (a patch of the baseline document, one per batch) apart."""
    ops = Counter(t.batch_ops)
    if t.batches:
        ops["patch"] -= t.batches
        ops["guard"] = t.batches
    return ops


def _batch_label(kind: str) -> str:
    return {"guard": "batch op patch (the guard: baseline document, 1 per batch)",
            "patch": "batch op patch (stock document incr, 1 per distinct sku)",
            "create": "batch op create (ledger item, 1 per event)"}.get(kind, f"batch op {kind}")


def detail_rows(model: Model) -> list[list[str]]:
    """Per phase and kind of request: count, documents returned, RU, RU per store-day."""
    rows = []
    doc = model.args.ru_per_doc
    for name in PHASES:
        t = model.run.tallies[name]
        items = [(f"point {k}", n, "", n * POINT_RU.get(k, RU_REPLACE)) for k, n in t.point.items()]
        items += [(_batch_label(k), n, "", n * RU_BATCH_OP.get(k, RU_REPLACE)) for k, n in _batch_ops(t).items()]
        items += [(f"failed batch ({s}) op {k}", n, "", n * RU_BATCH_OP.get(k, RU_REPLACE))
                  for s, c in t.failed_ops.items() for k, n in c.items()]
        items += [(f"query: {k}", n, _docs(t, k), n * RU_QUERY + t.query_docs[k] * doc) for k, n in t.queries.items()]
        for label, n, docs, ru in sorted(items, key=lambda i: -i[3]):
            rows.append([name, label, _n(n), docs or "", _n(ru), _n(ru / model.n, 1)])
    return rows


def _docs(t: ChainTally, kind: str) -> str:
    """Documents a kind of query returned (how many of them in whole-stock reads)."""
    full = t.full_docs[kind]
    return _n(t.query_docs[kind]) + (f" ({_n(full)} whole stocks)" if full else "")


def apply_vs_naive(model: Model) -> list[str]:
    counts, t = model.run.apply_counts, model.run.tallies["apply"]
    delivered = counts["received"]
    valid_lines = sum(a.lines for a in model.day.arrivals if a.kind == "valid")
    ours, naive = model.parts["apply"].at(model.doc) / delivered, RU_NAIVE_LINE * valid_lines / delivered
    return [f"Apply phase only: {ours:.2f} RU per delivered event (ours, as counted: {_n(t.batches)} batch requests, "
            f"{_n(sum(t.failed.values()))} failed with 409 on a resend) against {naive:.2f} RU per event for the "
            f"naive design in the same run (a point read and a replace per line of a valid event, "
            f"RU_NAIVE_LINE = {RU_NAIVE_LINE:g}): **{ours / naive:.2f}x**."]


def scale_rows(scales: Sequence[Scale]) -> list[list[str]]:
    rows = []
    for s in scales:
        total = sum(s.ru.values())
        rows.append([_n(s.stores), *(_n(s.ru[p] / 1e6, 2) for p in PHASES), f"**{_n(total / 1e6, 1)}**",
                     _money(s.serverless_month) + (" (see limits)" if s.serverless_limit else ""),
                     _n(s.tmax), _money(s.autoscale_month), f"{_n(s.gb, 1)} GB, {_money(s.storage_month)}",
                     str(s.partitions), s.serverless_limit or "-"])
    return rows


def window_rows(model: Model, skus: int) -> list[list[str]]:
    """Autoscale Tmax and bill by the window in which the stores' dumps arrive (their rebases' RU spread over it)."""
    rows = []
    for n in SCALES:
        cells = []
        for window in WINDOWS_MIN:
            s = model.scale(n, skus, window)
            cells += [_n(s.tmax), _money(s.autoscale_month)]
        rows.append([_n(n), *cells])
    return rows


def peak_rows(scales: Sequence[Scale]) -> list[list[str]]:
    hours = [0, 6, 9, 12, 17, 20, 23]
    return [[_n(s.stores), *(_n(s.peaks[h]) for h in hours), _n(max(s.peaks)),
             _n(sum(s.peaks) / 24)] for s in scales]


def sensitivity_rows(args: argparse.Namespace, run: Run, day: Day) -> list[list[str]]:
    """RU a day at 1,000 stores and --at-skus skus for other per-document query charges."""
    rows = []
    for per_doc in (0.0, 0.02, args.ru_per_doc, 0.2, 1.0):
        model = Model(argparse.Namespace(**{**vars(args), "ru_per_doc": per_doc}), run, day)
        s = model.scale(1_000, args.at_skus)
        rows.append([f"{per_doc:g}" + (" (used)" if per_doc == args.ru_per_doc else ""),
                     *(_n(s.ru[p] / 1e6, 2) for p in PHASES), _n(sum(s.ru.values()) / 1e6, 1),
                     _money(s.serverless_month), _money(s.autoscale_month)])
    return rows


def shape_lines(args: argparse.Namespace, day: Day, deliveries: Sequence[Delivery]) -> list[str]:
    per = per_store_per_batch(deliveries)
    pairs = sum(per.values())
    mean = sum(k * v for k, v in per.items()) / pairs
    valid = [a for a in day.arrivals if a.kind == "valid"]
    dist = ", ".join(f"{k}: {v / pairs:.1%}" for k, v in sorted(per.items()) if k <= 4)
    wait, low, high = host_eventhubs()
    return [f"- {len(day.stores)} stores × {len(day.skus):,} skus; {len(valid):,} events "
            f"({len(valid) / len(day.stores):,.0f} a store, {sum(a.lines for a in valid) / len(valid):.2f} lines "
            f"each) and {len(day.arrivals) - len(valid):,} resends; open 08:00-21:59 (generator_sales.HOUR_WEIGHTS).",
            f"- Delivery: {args.partitions} Event Hubs partitions, batches at {low} events or {wait:g} s after the "
            f"first (at most {high}; host.json): {len(deliveries):,} batches, "
            f"{sum(len(d.arrivals) for d in deliveries) / len(deliveries):.2f} events a batch; **{mean:.2f} events "
            f"per store per batch** (share of (batch, store) pairs with 1, 2, ... events: {dist}).",
            f"- Ledger TTL {args.ledger_ttl_days} days; timers: raise_alerts every {args.alert_every_min} min "
            f"({24 * 60 // args.alert_every_min} runs), compute_aggregates at :{AGGREGATES_AT_MIN} every "
            f"{args.aggregate_every_h} h ({24 // args.aggregate_every_h} runs); nightly rebases {REBASE_WINDOW_MIN[0]}-"
            f"{REBASE_WINDOW_MIN[1]} min after the 23:00 snapshot, each dump (generate_store: the skus, one day of "
            "sales) ingested into the folder lake and the store rebased on it (UseCases.ingest_file: ingest_dump, "
            f"reconcile_after_ingest). The simulated 24 hours run from {WINDOW_HOUR:02d}:00 to {WINDOW_HOUR:02d}:00, "
            "so the timer runs that read the night's rebased documents are inside them."]


def assumption_lines(args: argparse.Namespace, model: Model) -> list[str]:
    stock, event = model.doc_bytes()
    return [
        f"- Per operation (bench/events_cosmos.py, from Microsoft's pages): point read {RU_POINT_READ:g}, create "
        f"{RU_CREATE:g}, replace / patch / upsert {RU_REPLACE:g} RU; a batch costs the sum of its operations, a "
        "failed one in full. Documents here are below 1 KB "
        f"(stock {stock:.0f} B, ledger item {event:.0f} B as serialized), so the 1 KB figures are upper bounds.",
        f"- **Assumption, queries**: {RU_QUERY:g} RU a query plus **{args.ru_per_doc:g} RU per document returned**. "
        "Microsoft's page on query charges says a query's RU depend on the items loaded and returned, the index "
        "lookups and the compilation, and shows one query returning one ~10 KB document for 3.19 RU; it gives no "
        "per-document figure. The sensitivity table below shows how the total moves with it (1.0 = as dear as a "
        "point read per document, an upper bound).",
        f"- **Assumption, cross-partition queries**: {RU_QUERY:g} RU per physical partition (a query without the "
        "partition key is sent to every physical partition), plus the documents.",
        f"- **Assumption, storage**: documents as serialized here + {DOC_OVERHEAD_BYTES} B of system properties, "
        f"× {INDEX_OVERHEAD:g} for the index; ledger items kept {args.ledger_ttl_days} days (the ledger TTL). "
        f"Physical partitions: one per {PARTITION_GB} GB or {PARTITION_RUS:,} RU/s (partitioning-overview).",
        f"- **Assumption, peaks (autoscale)**: each hour billed at its busiest second (:func:`hourly_peaks`): the "
        f"apply RU measured in that simulated hour × (1 + {PEAK_Z:g}/√events per second); a timer run's RU spent "
        f"over {args.timer_run_s:g} s (`--timer-run-s`); the rebases' RU over their "
        f"{REBASE_WINDOW_MIN[1] - REBASE_WINDOW_MIN[0]}-minute window. Tmax = the day's busiest second, at least "
        f"{AUTOSCALE_MIN_TMAX:,} RU/s and {AUTOSCALE_RUS_PER_GB} RU/s per GB stored, rounded up to 1,000; every hour "
        f"billed at least 10 % of Tmax, at {AUTOSCALE_RATE:g} × ${PRICE_PROVISIONED_PER_100_RUS_HOUR} per 100 "
        "RU/s-hour (single write region).",
        f"- Money: serverless ${PRICE_SERVERLESS_PER_MILLION_RU} per million RU; provisioned "
        f"${PRICE_PROVISIONED_PER_100_RUS_HOUR} per 100 RU/s-hour (autoscale 1.5×); storage "
        f"${PRICE_STORAGE_GB_MONTH} per GB-month; {HOURS_PER_MONTH} hours a month. These are the US (non-government) "
        "example prices Microsoft's pages use; the price list is by region and currency.",
        f"- Not included: ledger items expiring (TTL deletes, one per event after {args.ledger_ttl_days} days): on "
        "provisioned throughput they use left-over RU and autoscale does not bill them (time-to-live, autoscale-faq); "
        f"for serverless the pages do not say — if billed like a delete, +{RU_DELETE:g} RU per event "
        f"({RU_DELETE * model.events / model.n:,.0f} RU per store-day). Also not included: the lake, Functions, "
        "Event Hubs, egress, backups, and a second region.",
    ]


def scaling_lines(args: argparse.Namespace, model: Model) -> list[str]:
    biggest = _largest_run(model, max(SCALES), args.at_skus)
    limit = _max_changes()
    return [
        f"- **Measured** at {model.n} stores × {model.k:,} skus: every phase's requests and documents, per "
        "simulated hour and per timer run.",
        "- **Scaled linearly with the stores**: everything per store — apply (per event, and the events per store "
        "per batch do not depend on the chain's size at these rates), each store's rebase, the timers' per-store "
        "reads, and the documents of cross-partition queries (one per store or per changed document).",
        f"- **Scaled linearly with the skus as well** (to {args.at_skus:,}): the documents of queries that returned "
        "a store's whole stock, and stock documents written outside batches (a rebase writes those whose count "
        f"moved: here the miscounted ones, {args.miscount_share:.0%} of the skus).",
        "- **Scaled with the physical partitions**: the base charge of cross-partition queries.",
        "- **Extrapolated, not measured**: the peaks that autoscale bills (from the measured hourly RU and the "
        "stated burst assumptions), the storage, the physical partitions, and anything that would change at scale "
        "but cannot show at this size: throttling (429) and its retries, a timer run that outlasts its interval, "
        "partition splits. The timers read every store whole when more than MAX_CHANGES "
        f"({limit:,}) documents changed since their last run; the largest `changes` of a run here, scaled to "
        f"{max(SCALES):,} stores × {args.at_skus:,} skus, returns {biggest:,.0f} documents "
        f"({'below it: not reached' if biggest <= limit else 'above it: such runs would read the whole stock'}).",
    ]


def _largest_run(model: Model, stores: int, skus: int) -> float:
    """The most documents one timer run's ``changes`` (``_ts``) queries returned, scaled to ``stores`` × ``skus``."""
    f, g = stores / model.n, skus / model.k
    return max(((docs - full) * f + full * f * g for docs, full in model.run.changes_read), default=0.0)


def _changes_read(t: ChainTally) -> tuple[int, int]:
    """Documents returned so far by the queries on ``_ts`` (the stock store's ``changes``), whole stocks among them."""
    kinds = [k for k in t.query_docs if "_ts" in k]
    return sum(t.query_docs[k] for k in kinds), sum(t.full_docs[k] for k in kinds)


def _max_changes() -> int:
    from shared.ports import stock

    return int(getattr(stock, "MAX_CHANGES", 0))


def check_lines(run: Run) -> list[str]:
    c = run.checks
    ok = "exact" if c["before_rebase"] == (0, 0) and c["after_rebase"] == (0, 0) else "DIFFERENT"
    return [f"- Stock against the truth: {ok} (before the first nightly rebase: the previous dump plus the day's "
            f"distinct events, {c['before_rebase'][0]} cells off; after the last: tonight's dumps, "
            f"{c['after_rebase'][0]} cells off). Bench layer's copy against the server: "
            f"{c['server_mismatches']} documents differ. Requests the bench layer sent to the server: "
            f"{run.server_requests:,}."]


def headline(scales: Sequence[Scale]) -> list[str]:
    """One line per chain size: RU a day, its split, and the two bills."""
    out = []
    for s in scales:
        total = sum(s.ru.values())
        split = ", ".join(f"{p} {s.ru[p] / total:.0%}" for p in PHASES)
        out.append(f"- **{s.stores:,} stores × {s.skus:,} skus**: {total / 1e6:,.1f} million RU a day ({split}); "
                   f"serverless {_money(s.serverless_month)} a month, autoscale {_money(s.autoscale_month)} a month "
                   f"(max {s.tmax:,} RU/s), plus storage {_money(s.storage_month)} ({s.gb:,.1f} GB).")
    return out


def report(cmdline: str, args: argparse.Namespace, day: Day, deliveries: Sequence[Delivery], run: Run,
           wall_s: float) -> str:
    model = Model(args, run, day)
    scales = [model.scale(n, args.at_skus) for n in SCALES]
    out = ["## A chain's day in Cosmos DB request units, and the monthly bill (issue 19, part 1)", "",
           harness.provenance(cmdline), f"Wall {wall_s:.0f} s.", "", *headline(scales), "",
           "### The simulated day", "",
           *shape_lines(args, day, deliveries), "", "### Measured: per phase, per simulated store-day", "",
           *harness.md_table(["phase", "point ops", "batch requests", "batch ops", "queries", "docs returned", "RU",
                              "RU / store-day", "share", "wall"], phase_rows(model), "lrrrrrrrrr"), "",
           *apply_vs_naive(model), "", "<details><summary>By kind of request</summary>", "",
           *harness.md_table(["phase", "request", "count", "docs", "RU", "RU / store-day"], detail_rows(model),
                             "llrrrr"), "", "</details>", "",
           f"### Extrapolated: RU a day (millions) and the monthly bill, {args.at_skus:,} skus a store", "",
           *harness.md_table(["stores", *PHASES, "total", "serverless / month", "autoscale Tmax RU/s",
                              "autoscale / month", "storage", "phys. partitions", "serverless limits exceeded"],
                             scale_rows(scales), "rrrrrrrrrrrl"), "",
           "Autoscale by the window in which the nightly dumps arrive (their rebases' RU spread over it; "
           f"{REBASE_WINDOW_MIN[1] - REBASE_WINDOW_MIN[0]} min is what was simulated):", "",
           *harness.md_table(["stores", *(f"{w:g} min: {what}" for w in WINDOWS_MIN for what in ("Tmax", "/ month"))],
                             window_rows(model, args.at_skus), "r" * (1 + 2 * len(WINDOWS_MIN))), "",
           "Busiest second of some hours (RU/s; the autoscale bill follows these):", "",
           *harness.md_table(["stores", "00h", "06h", "09h", "12h", "17h", "20h", "23h", "max", "mean of hours"],
                             peak_rows(scales), "rrrrrrrrrr"), "",
           f"Sensitivity to the per-document query charge, 1,000 stores × {args.at_skus:,} skus (RU a day, "
           "millions):", "",
           *harness.md_table(["RU per returned doc", *PHASES, "total", "serverless / month", "autoscale / month"],
                             sensitivity_rows(args, run, day), "lrrrrrrr"), "",
           "### What scales how", "", *scaling_lines(args, model), "", "### Assumptions", "",
           *assumption_lines(args, model), "", f"### Sources (read on {READ_ON})", "",
           *(f"- {what}: {url}" for what, url in PAGES.items()), "", "### Checks", "", *check_lines(run), ""]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from shared.settings import Settings

    ttl_days = int(Settings.from_env({}, validate=False).get("STOCK_LEDGER_TTL_DAYS"))
    count = lambda s: int(s.replace("_", ""))  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", type=count, default=50, help="stores simulated")
    ap.add_argument("--skus", type=count, default=2000, help="skus a store carries (all in its dump)")
    ap.add_argument("--events-per-store-day", type=count, default=1500, help="mean events a store sends a day")
    ap.add_argument("--resend-share", type=float, default=0.015, help="events delivered a second time")
    ap.add_argument("--miscount-share", type=float, default=0.02,
                    help="skus whose nightly count differs from the stock the events kept")
    ap.add_argument("--partitions", type=int, default=0, help="Event Hubs partitions (0: one per 31 stores)")
    ap.add_argument("--ledger-ttl-days", type=int, default=ttl_days, help="STOCK_LEDGER_TTL_DAYS (storage)")
    ap.add_argument("--at-skus", type=count, default=5000, help="skus a store for the extrapolated table")
    ap.add_argument("--ru-per-doc", type=float, default=RU_PER_DOC, help="RU per document a query returns")
    ap.add_argument("--timer-run-s", type=float, default=120.0, help="seconds a timer run spends its RU over")
    ap.add_argument("--alert-every-min", type=int, default=ALERT_EVERY_MIN, help="raise_alerts every N minutes")
    ap.add_argument("--aggregate-every-h", type=int, default=1, help="compute_aggregates every N hours (at :20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="scratch folder")
    args = ap.parse_args(argv)
    if min(args.stores, args.skus, args.events_per_store_day) < 1 or args.timer_run_s <= 0:
        ap.error("--stores, --skus, --events-per-store-day and --timer-run-s must be positive")
    if 24 * 60 % max(args.alert_every_min, 1) or 24 % max(args.aggregate_every_h, 1) \
            or min(args.alert_every_min, args.aggregate_every_h) < 1:
        ap.error("--alert-every-min must divide a day (5, 10, 15, 30, 60 ...), --aggregate-every-h 24")
    args.partitions = args.partitions or max(1, math.ceil(args.stores / STORES_PER_PARTITION))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not COSMOS_SERVER_BIN.exists() or shutil.which("node") is None:
        say(f"the npm Cosmos DB server is not installed ({COSMOS_SERVER_BIN.relative_to(ROOT)} or node missing): "
            "run `npm ci`")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="chain-cost-", dir=args.out))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the server, remove the scratch
    try:
        with harness.stopwatch() as t:
            say(f"generating the day: {args.stores} stores × {args.skus:,} skus, ~{args.events_per_store_day:,} "
                "events a store ...")
            maker = DayMaker(args)
            day = maker.make()
            maker.truth(day)
            say(f"generating {len(NIGHTS) * args.stores} SQLite dumps ({args.skus:,} items each) ...")
            (work / "dumps").mkdir()
            maker.dumps(day, work / "dumps")
            deliveries = deliver(day.arrivals, args.partitions, *host_eventhubs())
            run = measure(args, day, deliveries, maker, work)
        sys.stdout.write(report(harness.command(__file__, argv), args, day, deliveries, run, t.wall_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
