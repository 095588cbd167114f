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

**The modules**, each read top to bottom: ``chain_day`` (the simulated day, its dumps, and its delivery in
batches), ``chain_store`` (the counter, the bench layer and the npm server under the stock store),
``chain_pricing`` (RU, prices, the cost model with its extrapolation and hourly peaks, the report); this one, the
run (:class:`Chain`, the timeline, the checks) and the command line.

Progress on stderr, the Markdown report on stdout. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import harness
from chain_day import (
    AGGREGATES_AT_MIN,
    ALERT_EVERY_MIN,
    DAY,
    NIGHTS,
    PHASES,
    REBASE_WINDOW_MIN,
    SNAPSHOT_HOUR,
    STORES_PER_PARTITION,
    WINDOW_HOUR,
    Day,
    DayMaker,
    Delivery,
    at,
    deliver,
    dump_counts,
    host_eventhubs,
    hour_of,
    stamp,
)
from chain_pricing import RU_PER_DOC, Parts, Run, report, tally_parts
from chain_store import ChainCounting, ChainTally, PartitionedContainer, SimClock, cosmos_database
from events_cosmos import COSMOS_SERVER_BIN
from events_stream import _diff
from harness import ROOT, say

# --- the run --------------------------------------------------------------------------------------------------

class NullTelemetry:
    def event(self, name: str, **properties: object) -> None:
        pass

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        pass


def _changes_read(t: ChainTally) -> tuple[int, int]:
    """Documents returned so far by the queries on ``_ts`` (the stock store's ``changes``), whole stocks among them."""
    kinds = [k for k in t.query_docs if "_ts" in k]
    return sum(t.query_docs[k] for k in kinds), sum(t.full_docs[k] for k in kinds)


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
