"""Faults on the running local runner (``inventory serve`` as a subprocess on a temp INVENTORY_HOME).

SIGKILL in the middle of ingesting a dump and in the middle of applying queued events, then a restart:
no dump is half-visible, no event is lost or counted twice (the stock invariant of docs/stock-and-events.md, checked
with :func:`shared.core.stock.expected_stock`), and every raw dump is ingested exactly once. "In the
middle" is observed, not guessed: the ingest's working folder under ``$INVENTORY_HOME/tmp`` says which
step it is in, and the embedded queue's backlog says how far the checkpoints are; each test fails if its
kill did not land while work was pending. Two kills land between a commit and the next write of the same
invocation, by holding that write's SQLite lock (as a slow disk would) while the runner reaches it: after a
dump's manifest and before its stock rebase, and after a batch's apply and before its checkpoint. Also:
``serve`` stops cleanly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from inventory_agent import upload_dump

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.bootstrap import build
from shared.core.events import SaleEvent, normalise_sku, parse_event
from shared.core.ids import dump_id_from_sha256
from shared.core.stock import Baseline, expected_stock
from shared.local.generator import StoreTruth, catalogue_skus, generate_store
from shared.local.pos_traffic import VALID, pos_traffic
from shared.local.runner import Receipts
from shared.ports.events import OutgoingEvent
from tests.support.delta import delta_count, delta_rows

pytestmark = pytest.mark.slow

# The POS traffic runs from START for SPAN; the dumps' snapshot times fall inside it, so every store with a
# dump has events on both sides of its snapshot (those before it must not count).
START = datetime.now(UTC) - timedelta(hours=2)
SPAN = timedelta(seconds=7000)
T_OLD, T_MID, T_BIG = (START + timedelta(minutes=m) for m in (30, 60, 80))
SKUS = catalogue_skus()[:80]  # skus the dumps count too, so events and counts meet
STORES = ("S1", "S2", "S3", "S4")  # embedded-queue partitions 2, 0, 2 and 1 (of 4)
BIG_LINES = 600_000  # sale lines of the dump killed mid-ingest: about 4 s of ingest on 2 cores

AZURE_SETTINGS = ("LAKE", "COSMOS", "EVENTS", "EVENTS__fullyQualifiedNamespace", "LAKE__blobServiceUri",
                  "COSMOS__accountEndpoint", "APPLICATIONINSIGHTS_CONNECTION_STRING")
# The timers would fire on the quarter hour (a run of compute_aggregates takes seconds): keep them out of
# the way, so each test does the same work whenever it runs.
NO_TIMERS = {"AGGREGATES_SCHEDULE": "0 0 0 1 1 *", "ALERTS_SCHEDULE": "0 0 0 1 1 *", "MAINTAIN_SCHEDULE": "0 0 0 1 1 *"}
SERVE = [sys.executable, "-m", "shared", "serve", "--no-http", "--poll", "0.2"]
INGEST_OK = re.compile(r"ingest_dump\s+ok\s+.*?\s(raw/\S+) \(")


# -- the runner and its home ---------------------------------------------------------------------------

class Home:
    """An INVENTORY_HOME, the ``serve`` processes run on it (every run's stderr in one log), and the
    runner's adapters, built by the composition root from the same environment."""

    def __init__(self, path: Path) -> None:
        self.env = {**os.environ, "INVENTORY_HOME": str(path), "TELEMETRY_CONSOLE": "0", **NO_TIMERS}
        for name in AZURE_SETTINGS:
            self.env.pop(name, None)
        self.c = build(self.env)
        self.lake = self.c.lake
        assert isinstance(self.lake, FolderLake)
        self.queue = self.c.queue
        self.group = self.c.settings.get("EVENTHUB_CONSUMER_GROUP")
        self.scratch = self.c.settings.home / "tmp"  # the container's scratch_dir: the ingests' working folders
        self.log = path.parent / f"{path.name}-serve.log"
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        with open(self.log, "ab") as err:
            proc = subprocess.Popen(SERVE, env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its dump-reader child
        proc.wait()

    def once(self) -> dict:
        with open(self.log, "ab") as err:
            proc = subprocess.run([*SERVE, "--once"], env=self.env, stdout=subprocess.PIPE, stderr=err, timeout=180)
        assert proc.returncode == 0, self.tail()
        return json.loads(proc.stdout)

    def tail(self, n: int = 25) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "serve log:\n" + "\n".join(lines[-n:])

    def wait(self, proc: subprocess.Popen, what: str, ready: Callable[[], bool], *, timeout: float = 60) -> None:
        """Poll ``ready`` every 10 ms while ``proc`` runs; fail clearly if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"serve exited ({proc.returncode}) before {what}\n{self.tail()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s\n{self.tail()}"
            time.sleep(0.01)

    def backlog(self) -> int:
        return sum(self.queue.backlog(self.group).values())

    def stock(self) -> tuple[dict[str, dict[str, int]], dict[str, str | None]]:
        """store -> sku -> on hand, and store -> its baseline dump id, as the embedded store holds them."""
        store = build(self.env).stock
        assert isinstance(store, SqliteStockStore)
        try:
            stores = store.stores()
            counts = {s: {d.sku: d.on_hand for d in store.stock(s)} for s in stores}
            bases = {s: (b.dump_id if (b := store.baseline(s)) else None) for s in stores}
        finally:
            store.close()
        return counts, bases

    @property
    def stock_db(self) -> Path:
        return self.c.settings.home / "stock" / "stock.sqlite"

    def ledger(self) -> set[tuple[str, str]]:
        """(store, event id) of the events the stock store counts on top of its baselines."""
        with sqlite3.connect(f"file:{self.stock_db}?mode=ro", uri=True, timeout=5) as con:
            return set(con.execute("SELECT store_id, event_id FROM ledger"))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        self.queue.close()


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Hold the write lock of the SQLite file ``db`` (WAL: readers go on); the runner's next write
    transaction on it waits (up to its busy timeout, 30 s or more), so it can be killed just before it."""
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.execute("BEGIN IMMEDIATE")
        yield
    finally:
        con.close()  # rolls back: nothing was written


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path / "home")
    try:
        yield h
    finally:
        h.close()


# -- dumps ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Landed:
    """A dump in the lake's raw/ zone, what its ingestion must produce, and the baseline it stands for."""

    truth: StoreTruth
    path: str  # raw/store=<id>/date=<d>/<file>
    baseline: Baseline


def baseline_of(lake: FolderLake, path: str, truth: StoreTruth, snapshot_at: datetime) -> Baseline:
    """The invariant's D for a landed dump: the counts of its stock table (skus normalised as the dump rule
    does), at the agent's snapshot time; the dump id is the sha256 of the SQLite file in the blob."""
    assert not truth.tables["stock"].rejected  # every count reaches curated/: the baseline is the whole table
    dump_id = dump_id_from_sha256(hashlib.sha256(gzip.decompress(lake.get_bytes(path))).hexdigest())
    on_hand: dict[str, int] = {}
    with sqlite3.connect(f"file:{truth.path}?mode=ro", uri=True) as con:
        for sku, count in con.execute("SELECT sku, on_hand FROM stock"):
            on_hand[normalise_sku(sku)] = on_hand.get(normalise_sku(sku), 0) + count
    return Baseline(truth.store_id, dump_id, snapshot_at, on_hand)


def land(home: Home, folder: Path, store: str, snapshot_at: datetime, *, sales_lines: int, seed: int) -> Landed:
    """Generate a store's dump and upload it under raw/ as the store agent does."""
    truth = generate_store(folder / f"{store}-{seed}.sqlite", store, sales_lines=sales_lines, days=30, seed=seed)
    up = upload_dump(truth.path, store, home.lake, scratch=folder / "agent", now=snapshot_at)
    assert up.uploaded
    return Landed(truth, up.path, baseline_of(home.lake, up.path, truth, snapshot_at))


@dataclass(frozen=True)
class BigDump:
    truth: StoreTruth
    path: str
    source: Path  # the uploaded blob
    metadata: dict[str, str]
    baseline: Baseline
    sqlite_bytes: int  # size of the decompressed dump in the ingest's working folder


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> BigDump:
    """S1's big dump (snapshot at T_BIG), uploaded once to a template lake; tests copy the blob."""
    folder = tmp_path_factory.mktemp("big")
    lake = FolderLake(folder / "lake")
    truth = generate_store(folder / "S1.sqlite", "S1", sales_lines=BIG_LINES, days=60, seed=3)
    up = upload_dump(truth.path, "S1", lake, scratch=folder / "agent", now=T_BIG)
    return BigDump(truth, up.path, lake.root / up.path, lake.head(up.path).metadata,
                   baseline_of(lake, up.path, truth, T_BIG), len(gzip.decompress(lake.get_bytes(up.path))))


def land_big(home: Home, big: BigDump) -> Landed:
    assert home.lake.put_file(big.path, big.source, metadata=big.metadata, overwrite=False)
    return Landed(big.truth, big.path, big.baseline)


# The steps of an ingest, told by its working folder ($INVENTORY_HOME/tmp/ingest-*, shared/services/ingest_dump):
# dump.sqlite (the decompressed dump), then work/ (the row stage, table by table), then the Parquet files of
# each Delta commit (work/part-*.parquet, moved into the table just before its commit), then the manifest.
STEPS: dict[str, Callable[[Path], bool]] = {
    "reading the sales": lambda d: (d / "work" / "sales.keys.parquet").exists() and not any(
        (d / "work").glob("part-*.parquet")),
    "writing curated Parquet": lambda d: any((d / "work").glob("part-*.parquet")),
}


def ingest_at(home: Home, big: BigDump, step: str, before: set[Path]) -> Callable[[], bool]:
    """True once an ingest of the big dump, started after ``before`` was taken, is at ``step``; fails if the
    big dump got its manifest first (the ingest finished: the kill would come too late)."""
    def ready() -> bool:
        assert not manifests_of(home, big.truth.store_id, big.path), f"the ingest finished before {step!r}"
        for d in set(home.scratch.glob("ingest-*")) - before:
            try:
                if (d / "dump.sqlite").stat().st_size >= big.sqlite_bytes and STEPS[step](d):
                    return True
            except FileNotFoundError:  # not decompressed yet, or just removed
                continue
        return False
    return ready


# -- events --------------------------------------------------------------------------------------------

def traffic(stores: tuple[str, ...], count: int, seed: int) -> list[OutgoingEvent]:
    """Realistic POS traffic over START..START+SPAN (with its own resends and malformed events), then
    5 % of the valid events sent again much later (a till replaying its journal): same eventIds."""
    items = list(pos_traffic(list(stores), SKUS, count=count, seed=seed, start=START,
                             rate_per_s=count / SPAN.total_seconds()))
    valid = [i for i in items if i.kind == VALID]
    resent = random.Random(seed).sample(valid, len(valid) // 20)
    return [OutgoingEvent(i.store_id, i.body) for i in items + resent]


def partition_streams(home: Home, sent: list[OutgoingEvent]) -> dict[int, list[tuple[str, str] | None]]:
    """Partition -> the (store, eventId) of each event sent to it, in order (None: not a valid event). The
    queue holds exactly ``sent``, so an event's place in its stream is its sequence number."""
    streams: dict[int, list[tuple[str, str] | None]] = {}
    for ev in sent:
        e = parse_event(ev.body)
        key = (e.store_id, e.event_id) if isinstance(e, SaleEvent) else None
        streams.setdefault(home.queue.partition_of(ev.partition_key), []).append(key)
    return streams


def applied_not_checkpointed(home: Home, streams: dict[int, list[tuple[str, str] | None]]) -> int:
    """Events the stock store counts although the queue has not checkpointed their first delivery: their
    batch was applied and the runner died before its checkpoint, so the batch will be delivered again."""
    left = home.queue.backlog(home.group)
    done = {k for part, keys in streams.items() for k in keys[:len(keys) - left[part]]}
    pending = {k for part, keys in streams.items() for k in keys[len(keys) - left[part]:]}
    return len((pending - done - {None}) & home.ledger())


def parsed(events: list[OutgoingEvent]) -> list[SaleEvent]:
    """Every delivery that is a valid event, repeats included (expected_stock counts each eventId once)."""
    return [e for e in (parse_event(ev.body) for ev in events) if isinstance(e, SaleEvent)]


# -- checks --------------------------------------------------------------------------------------------

def manifests_of(home: Home, store: str, path: str) -> list[dict]:
    name = path.rsplit("/", 1)[-1]
    return [m for m in map(json.loads, (p.read_text() for p in home.lake.root.glob(f"manifests/store={store}/*.json")))
            if m["source_name"] == name]


def check_lake(home: Home, *, killed: Landed | None = None) -> None:
    """Nothing half-visible: every Delta table reads whole and holds each sale line once; every manifest
    names commits that carry its dump and hold exactly the rows it counts; the dump killed mid-ingest has
    no manifest."""
    lake = home.lake
    for file in lake.root.glob("manifests/store=*/*.json"):
        manifest = json.loads(file.read_text())
        dump = manifest["dump_id"]
        for table, counts in manifest["tables"].items():
            curated = delta_count(lake, f"curated/{table}", f"dump_id = '{dump}'")
            assert curated == counts.get("written", counts["curated"]), (file, table)
            rejected = delta_count(lake, f"rejected/{table}", f"dump_id = '{dump}'")
            assert rejected == counts.get("rejected_written", counts["rejected"]), (file, table)
    if killed is not None:
        assert not manifests_of(home, killed.truth.store_id, killed.path), \
            f"{killed.path} has a manifest: the kill did not land in the middle of its ingest"


def check_ingested_once(home: Home, dumps: list[Landed]) -> None:
    """Every raw dump: one manifest, with the counts the generator recorded; a receipt, so the runner will
    not deliver it again; one successful ingest_dump invocation over all the runs; no sale line twice."""
    assert sorted(o.path for o in home.lake.list("raw/")) == sorted(d.path for d in dumps)
    manifests = sorted(p.name for p in home.lake.root.glob("manifests/store=*/*.json"))
    assert len(manifests) == len(dumps), f"{len(manifests)} manifests for {len(dumps)} dumps: {manifests}"
    receipts = Receipts(home.c.settings.home / "runner" / "blob_receipts.sqlite")
    ok = Counter(INGEST_OK.findall(home.log.read_text()))
    for d in dumps:
        (manifest,) = manifests_of(home, d.truth.store_id, d.path)
        assert manifest["dump_id"] == d.baseline.dump_id
        assert datetime.fromisoformat(manifest["snapshot_at"]) == d.baseline.snapshot_at
        for table, truth in d.truth.tables.items():
            counts = manifest["tables"][table]
            changed = counts.get("changed_since_ingested", 0)  # another dump of the store had the key
            assert counts["curated"] + changed == truth.curated, (d.path, table)
            assert counts["rejected"] - changed == sum(truth.rejected.values()), (d.path, table)
        obj = home.lake.head(d.path)
        assert not receipts.due("ingest_dump", d.path, obj.etag), f"{d.path} would be ingested again"
        assert ok[d.path] == 1, f"{d.path}: {ok[d.path]} successful ingest_dump invocations\n{home.tail()}"
    for store in {d.truth.store_id for d in dumps}:
        found = delta_rows(home.lake, "curated/sales", f"store_id = '{store}'",
                           "count(*) AS n, count(DISTINCT concat(sale_id, '/', line_no)) AS k").to_pylist()[0]
        rows, keys = found["n"], found["k"]
        assert rows == keys, f"store {store}: {rows - keys} sale lines are in curated/ twice"
        if len(mine := [d for d in dumps if d.truth.store_id == store]) == 1:
            assert rows == mine[0].truth.tables["sales"].curated


def diff(got: dict[str, int], want: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(stored, expected) for every sku where they differ; a sku absent on one side counts as 0."""
    return {k: (got.get(k, 0), want.get(k, 0)) for k in sorted(set(got) | set(want))
            if got.get(k, 0) != want.get(k, 0)}


def check_invariant(home: Home, dumps: list[Landed], events: list[SaleEvent]) -> None:
    """The stock invariant for every (store, sku): the latest dump's count plus each distinct later event once."""
    stock, bases = home.stock()
    for store in set(stock) | {d.truth.store_id for d in dumps} | {e.store_id for e in events}:
        mine = [d.baseline for d in dumps if d.truth.store_id == store]
        want = expected_stock(mine, [e for e in events if e.store_id == store])
        wrong = diff(stock.get(store, {}), want)
        assert not wrong, f"store {store}: {len(wrong)} skus off the invariant, (stored, expected): " \
                          f"{dict(list(wrong.items())[:6])}"
        if mine:
            assert bases[store] == max(mine, key=lambda b: b.key).dump_id


def check_consistent(home: Home, dumps: list[Landed], events: list[SaleEvent]) -> None:
    """Right after a kill: each store's stock is its current baseline (a dump with a manifest) plus exactly
    the events in its ledger, each once; so no batch and no rebase was left half-applied."""
    stock, bases = home.stock()
    ledger = home.ledger()
    by_id = {d.baseline.dump_id: d for d in dumps}
    for store, counts in stock.items():
        base = by_id[bases[store]] if bases[store] else None
        if base is not None:
            assert manifests_of(home, store, base.path), f"store {store} is on a dump without a manifest"
        counted = [e for e in events if e.store_id == store and (store, e.event_id) in ledger]
        wrong = diff(counts, expected_stock([base.baseline] if base else [], counted))
        assert not wrong, f"store {store}: stock is not baseline + ledger after the kill, (stored, expected): " \
                          f"{dict(list(wrong.items())[:6])}"


def non_trivial(dumps: list[Landed], events: list[SaleEvent]) -> None:
    """The invariant has something to catch: repeated eventIds, and events on both sides of each snapshot."""
    ids = Counter((e.store_id, e.event_id) for e in events)
    assert sum(n > 1 for n in ids.values()) > 100
    for d in dumps:
        times = [e.occurred_at for e in events if e.store_id == d.truth.store_id]
        assert min(times) < d.baseline.snapshot_at < max(times), d.path


# -- the tests -----------------------------------------------------------------------------------------

def test_sigterm_while_idle_stops_cleanly(home: Home) -> None:
    """What a service manager does: SIGTERM, and serve stops after its invocations in progress, exit 0."""
    proc = home.start()
    home.wait(proc, "start-up banner", lambda: "local runner:" in home.log.read_text())
    time.sleep(0.5)  # a couple of idle polls of the blob and event loops
    assert proc.poll() is None, home.tail()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, home.tail()
    log = home.log.read_text()
    assert "SIGTERM: stopping" in log and log.rstrip().endswith("stopped") and "Traceback" not in log, log


def test_sigkill_in_the_middle_of_ingestion_then_restart_ingests_each_dump_once(
        home: Home, big_dump: BigDump, tmp_path: Path) -> None:
    """Killed while reading the big dump's sales, while writing its Parquet, and after its manifest but
    before its rebase (with a second dump in flight); then ``serve --once`` finishes each dump once."""
    big = land_big(home, big_dump)
    other = land(home, tmp_path, "S2", T_MID, sales_lines=100_000, seed=8)  # ingested alongside (2 at a time)
    dumps = [big, other]
    for step in STEPS:  # two runs, each killed at a later step of the big dump's ingest
        before = set(home.scratch.glob("ingest-*"))
        proc = home.start()
        home.wait(proc, f"ingest of {big.path} {step}", ingest_at(home, big_dump, step, before))
        home.kill(proc)
        check_lake(home, killed=big)
        check_consistent(home, dumps, [])

    # Last, the ingest commits (the manifest) and the runner dies before the dump is the store's baseline.
    with write_locked(home.stock_db):  # made by check_consistent; the rebase waits for this lock
        proc = home.start()
        home.wait(proc, f"the manifest of {big.path}", lambda: bool(manifests_of(home, "S1", big.path)))
        home.kill(proc)
    check_lake(home)
    assert home.stock()[1].get("S1") != big.baseline.dump_id, "the rebase was not held up"
    check_consistent(home, dumps, [])

    counts = home.once()
    assert counts["blobs"] >= 1 and counts["events"] == 0
    check_lake(home)
    check_ingested_once(home, dumps)
    check_invariant(home, dumps, [])


def test_sigkill_in_the_middle_of_event_application_loses_and_doubles_nothing(home: Home, tmp_path: Path) -> None:
    """42k queued events over 4 stores and 3 partitions (two stores with a dump, resends included): three
    kills during their application, then ``serve --once``; the stock is the invariant's, event by event."""
    dumps = [land(home, tmp_path, "S1", T_MID, sales_lines=5_000, seed=1),
             land(home, tmp_path, "S2", T_OLD, sales_lines=5_000, seed=2)]  # S3, S4: no dump
    assert home.once()["blobs"] == 2
    sent = traffic(STORES, 40_000, seed=11)
    events = parsed(sent)
    non_trivial(dumps, events)
    assert len({home.queue.partition_of(s) for s in STORES}) >= 3
    home.queue.send(sent)
    total = home.backlog()
    assert total == len(sent)
    streams = partition_streams(home, sent)

    # Three runs, each killed further into the backlog; the last one between a batch's apply and its
    # checkpoint (the queue's write lock is held, so the checkpoint waits): that batch must come again.
    for share, stall in ((0.15, False), (0.45, False), (0.75, True)):
        proc = home.start()
        home.wait(proc, f"{share:.0%} of the events checkpointed", lambda s=share: home.backlog() <= total * (1 - s))
        with write_locked(home.queue.path) if stall else contextlib.nullcontext():
            if stall:
                home.wait(proc, "a batch applied, its checkpoint not written",
                          lambda: applied_not_checkpointed(home, streams) > 0)
            home.kill(proc)
        assert not stall or applied_not_checkpointed(home, streams) > 0
        left = home.backlog()
        assert 0 < left < total, f"the kill did not land in the middle of the events ({left} of {total} left)"
        check_consistent(home, dumps, events)

    left = home.backlog()
    counts = home.once()
    assert counts["events"] == left and home.backlog() == 0
    check_invariant(home, dumps, events)
    check_ingested_once(home, dumps)
    check_lake(home)


def test_sigkill_with_a_dump_and_events_in_flight_then_restart_is_exact(
        home: Home, big_dump: BigDump, tmp_path: Path) -> None:
    """A new dump of S1 being ingested while events (of S1 among others) arrive and are applied: one kill,
    then a normal restart until everything is delivered, and SIGTERM."""
    dumps = [land(home, tmp_path, "S1", T_OLD, sales_lines=5_000, seed=1),  # S1's baseline until the big dump
             land(home, tmp_path, "S2", T_MID, sales_lines=5_000, seed=2)]
    assert home.once()["blobs"] == 2
    sent = traffic(STORES, 30_000, seed=12)
    events = parsed(sent)
    first, rest = sent[:10_000], sent[10_000:]  # the resends of `first` are at the end of `rest`
    big = land_big(home, big_dump)
    dumps.append(big)
    non_trivial(dumps, events)
    home.queue.send(first)

    before = set(home.scratch.glob("ingest-*"))
    proc = home.start()
    home.wait(proc, f"ingest of {big.path} reading the sales", ingest_at(home, big_dump, "reading the sales", before))
    home.queue.send(rest)  # POS traffic arriving while the dump is being ingested
    waiting = home.backlog()
    home.wait(proc, "events applied during the ingest", lambda: home.backlog() < waiting)
    home.kill(proc)
    left = home.backlog()
    assert 0 < left < len(sent), f"the kill did not land in the middle of the events ({left} of {len(sent)} left)"
    check_lake(home, killed=big)
    check_consistent(home, dumps, events)

    # A normal restart, run until everything is delivered, then stopped as a service manager would.
    receipts = Receipts(home.c.settings.home / "runner" / "blob_receipts.sqlite")
    proc = home.start()
    home.wait(proc, "the backlog and the big dump delivered",
              lambda: home.backlog() == 0 and not receipts.due("ingest_dump", big.path, home.lake.head(big.path).etag))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, home.tail()
    check_lake(home)
    check_ingested_once(home, dumps)
    check_invariant(home, dumps, events)
