"""The store-dump generator's tables other than sales (:mod:`shared.local.generator`): the schema, the truth
recorded per table, the helpers the writers share, and the items, vendors, stock and receipts writers.

Each writer inserts its rows into the open dump and returns its :class:`TableTruth`; the dirty rows (a couple
per table) each have exactly one defect.
"""

import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np

from shared.local.generator_catalogue import Catalogue

SNAPSHOT_TIME = time(23, 0)  # the nightly count/export, after closing
LOW_STOCK_SHARE = 0.05  # items at or below their reorder point in a dump (dirty negative counts included)
COVER_DAYS = (7.0, 21.0)  # the other items hold this many days of the store's demand above the reorder point

SCHEMA = """
CREATE TABLE items (sku TEXT, name TEXT, category TEXT, vendor_id TEXT, unit_cost REAL, unit_price REAL,
                    reorder_point INTEGER, reorder_qty INTEGER, active INTEGER);
CREATE TABLE vendors (vendor_id TEXT PRIMARY KEY, name TEXT, email TEXT, lead_time_days INTEGER);
CREATE TABLE stock (sku TEXT, on_hand INTEGER, counted_at TEXT);
CREATE TABLE sales (sale_id TEXT, line_no INTEGER, sku TEXT, qty INTEGER, unit_price REAL, sold_at TEXT);
CREATE TABLE receipts (receipt_id TEXT, sku TEXT, qty INTEGER, received_at TEXT, vendor_id TEXT,
                       PRIMARY KEY (receipt_id, sku));
"""


@dataclass
class TableTruth:
    """What the ingestion must make of one table of a generated dump."""

    input: int  # rows written to the table
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> rows rejected with it (no zeros)
    flagged: dict[str, int] = field(default_factory=dict)  # flag code -> rows kept but flagged (no zeros)

    @property
    def curated(self) -> int:
        """Rows that reach curated/: everything not rejected (flagged rows included)."""
        return self.input - sum(self.rejected.values())


# ---------------------------------------------------------------------------------------------- helpers


def stamp(t: datetime) -> str:
    """Naive UTC ISO text, the way the store software writes it."""
    return t.strftime("%Y-%m-%d %H:%M:%S")


def small_dirty_count(n_rows: int, dirty_rate: float) -> int:
    """'A couple' of dirty rows in a small table: at least 2, ~dirty_rate, at most a tenth of the table."""
    if dirty_rate <= 0:
        return 0
    return min(max(2, round(n_rows * dirty_rate)), n_rows // 10)


def pad_or_lower(sku: str, variant: int) -> str:
    """A real sku as sloppy store software writes it: normalises back to ``sku`` by strip().upper()."""
    return (sku.lower(), f"  {sku} ", f" {sku.lower()}  ", f"{sku} ")[variant % 4]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# ------------------------------------------------------------------------------------------------ tables


def write_vendors(con: sqlite3.Connection, cat: Catalogue) -> TableTruth:
    con.executemany("INSERT INTO vendors VALUES (?, ?, ?, ?)", cat.vendors)
    return TableTruth(input=len(cat.vendors))


def write_items(
    con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, dirty_rate: float
) -> tuple[TableTruth, set[int]]:
    """Items; a couple point at a vendor the vendors table does not have (kept, flagged unknown_vendor)."""
    n = len(cat.skus)
    k = small_dirty_count(n, dirty_rate)
    unknown = {int(i) for i in rng.choice(n, size=k, replace=False)}
    vendor_ids = list(cat.vendor_ids)
    for j, i in enumerate(sorted(unknown)):
        vendor_ids[i] = f"V{len(cat.vendors) + 1 + j:03d}"  # a vendor added to items but not to vendors
    con.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        zip(cat.skus, cat.names, cat.categories, vendor_ids, cat.unit_cost.tolist(), cat.unit_price.tolist(),
            cat.reorder_point.tolist(), cat.reorder_qty.tolist(), cat.active.astype(int).tolist(), strict=True),
    )
    return TableTruth(input=n, flagged=nonzero({"unknown_vendor": k})), unknown


def write_stock(
    con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, snapshot_at: datetime, dirty_rate: float,
    daily_units: np.ndarray,
) -> tuple[TableTruth, int]:
    """One count per item. Most were counted at the nightly snapshot, some in a cycle count earlier.

    ``daily_units`` is the store's expected demand per item and day: a healthy item holds its reorder point,
    one unit more, ``COVER_DAYS`` of that demand and part of a delivery. ``LOW_STOCK_SHARE`` of the items are
    at or below their reorder point: the dirty negative counts that fall on watched items, and enough
    others (active, reorder point above zero) to make up the share.
    """
    n = len(cat.skus)
    rp, rq = cat.reorder_point, cat.reorder_qty
    cover = rng.uniform(*COVER_DAYS, size=n)
    on_hand = rp + 1 + np.ceil(daily_units * cover).astype(np.int64) + rng.integers(0, rq + 1)

    # Dirty: negative counts (kept, flagged) and sloppy skus (kept, normalised), on distinct items.
    k = small_dirty_count(n, dirty_rate)
    picked = rng.choice(n, size=2 * k, replace=False)
    negative, sloppy = picked[:k], picked[k:]
    on_hand[negative] = -rng.integers(1, 6, size=k)
    _make_low(rng, cat, on_hand, negative)

    skus = list(cat.skus)
    for i in sloppy.tolist():
        skus[i] = pad_or_lower(skus[i], int(rng.integers(4)))
    counted_at = _counted_at(rng, n, snapshot_at)
    con.executemany("INSERT INTO stock VALUES (?, ?, ?)", zip(skus, on_hand.tolist(), counted_at, strict=True))
    return TableTruth(input=n, flagged=nonzero({"negative_on_hand": k})), k


def _make_low(rng: np.random.Generator, cat: Catalogue, on_hand: np.ndarray, negative: np.ndarray) -> None:
    """Bring enough watched items (active, reorder point above zero) that are not already negative down to their
    reorder point or below, in place, for ``LOW_STOCK_SHARE`` of the items to be low."""
    n, rp = len(cat.skus), cat.reorder_point
    watched = cat.active & (rp > 0)
    eligible = watched.copy()
    eligible[negative] = False
    target = max(1, round(LOW_STOCK_SHARE * n)) - int(watched[negative].sum())
    low = rng.choice(np.flatnonzero(eligible), size=min(int(eligible.sum()), max(0, target)), replace=False)
    on_hand[low] = rng.integers(0, rp[low] + 1)


def _counted_at(rng: np.random.Generator, n: int, snapshot_at: datetime) -> list[str]:
    """When each of ``n`` items was counted: at the snapshot, or in a cycle count in the last six days, during
    the day shift (07:00-21:59)."""
    cycle = rng.random(n) < 0.2
    cycle[rng.integers(n)] = False  # at least one count at the snapshot: max(counted_at) == snapshot_at
    back, clock = rng.integers(1, 7, size=n), rng.integers(7 * 3600, 22 * 3600, size=n)
    night = snapshot_at.replace(tzinfo=None)
    return [
        stamp(night - timedelta(days=b, hours=SNAPSHOT_TIME.hour) + timedelta(seconds=c)) if cyc else stamp(night)
        for cyc, b, c in zip(cycle.tolist(), back.tolist(), clock.tolist(), strict=True)
    ]


def write_receipts(
    con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, store_id: str, start: date, days: int,
    skip_items: set[int],
) -> TableTruth:
    """Roughly weekly deliveries from each vendor of a few of its items, a reorder quantity each.

    Items whose vendor is unknown get no receipts, so receipts stay clean and the item flag stays the
    only consequence of that defect.
    """
    by_vendor: dict[str, list[int]] = {}
    for i, v in enumerate(cat.vendor_ids):
        if i not in skip_items:
            by_vendor.setdefault(v, []).append(i)
    deliveries = []  # (seconds since start, vendor_id, item indexes)
    for vendor_id, _, _, _ in cat.vendors:
        items = by_vendor.get(vendor_id)
        if not items:
            continue
        day = int(rng.integers(0, 7))
        while day < days:
            secs = day * 86400 + int(rng.integers(6 * 3600, 11 * 3600))  # morning deliveries, 06:00-10:59
            k = min(len(items), int(rng.integers(3, 9)))
            deliveries.append((secs, vendor_id, sorted(rng.choice(items, size=k, replace=False).tolist())))
            day += int(rng.integers(5, 10))
    deliveries.sort()
    origin = datetime.combine(start, time())
    rows = [
        (f"{store_id}-R{n:05d}", cat.skus[i], int(cat.reorder_qty[i]), stamp(origin + timedelta(seconds=secs)),
         vendor_id)
        for n, (secs, vendor_id, items) in enumerate(deliveries, start=1)
        for i in items
    ]
    con.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, ?)", rows)
    return TableTruth(input=len(rows))
