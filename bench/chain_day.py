"""The simulated day of bench/chain_cost.py (see its docstring, **The day**): the day's constants (the date, the
nights, the phases, the timers' and the nightly rebases' times), the stores' events as Event Hubs receives them
and their SQLite dumps (:class:`DayMaker`, seeded), and the events' delivery in batches as the Event Hubs trigger
forms them (:func:`deliver`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path

from events_stream import LINES_P
from harness import ROOT

# --- the day's constants -------------------------------------------------------------------------------------------
PHASES = ("apply", "rebase", "alerts", "aggregates")
DAY = date(2026, 11, 24)  # a Tuesday, fixed (the events must not be in the future: apply_sales checks)
ALERT_EVERY_MIN, AGGREGATES_AT_MIN = 15, 20  # settings: ALERTS_SCHEDULE "0 */15 * * * *", AGGREGATES_SCHEDULE
SNAPSHOT_HOUR = 23  # the nightly count (generator.SNAPSHOT_TIME)
REBASE_WINDOW_MIN = (5, 55)  # minutes after the snapshot when the dumps' rebases run
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
    """The day's events and the stores' dumps, seeded: see chain_cost's docstring. Reuses pos_traffic's and the
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
