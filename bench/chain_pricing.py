"""From what bench/chain_cost.py counted to money (see its docstring, **Converted**): Microsoft's prices and
limits and the stated assumptions; the RU of a tally (:class:`Parts`, :func:`tally_parts`); the cost model
(:class:`Model`: what the run measured, :class:`Run`, extrapolated to other chain sizes, with the storage, the
hourly peaks autoscale bills, :func:`hourly_peaks`, and the serverless limits); and the Markdown report
(:func:`report` and its tables).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields

import harness
from chain_day import (
    AGGREGATES_AT_MIN,
    PHASES,
    REBASE_WINDOW_MIN,
    SNAPSHOT_HOUR,
    WINDOW_HOUR,
    Day,
    Delivery,
    host_eventhubs,
    hour_of,
    per_store_per_batch,
)
from chain_store import ChainTally
from events_cosmos import (
    RU_BATCH_OP,
    RU_CREATE,
    RU_DELETE,
    RU_NAIVE_LINE,
    RU_PATCH,
    RU_POINT_READ,
    RU_QUERY,
    RU_REPLACE,
    RU_UPSERT,
)

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


# --- the cost model ------------------------------------------------------------------------------------------------

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
