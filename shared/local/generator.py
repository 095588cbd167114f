"""Synthetic store dumps with ground truth, for the demo, the tests and the benchmarks.

``generate_store`` writes one store's SQLite dump in the canonical schema (ARCHITECTURE.md §2) and returns
a :class:`StoreTruth`: for every table, how many rows it holds, how many the ingestion must reject (per
reason code) and how many it must keep but flag (per flag code). The truth is recorded while the rows are
written, so tests can compare an ingestion's manifest with it number for number.

What makes the data realistic enough to be worth looking at:

* a shared catalogue: items, vendors and prices depend only on ``n_items``/``n_vendors``, not on ``seed``,
  because the stores of a chain sell the same skus (chain-wide aggregates then make sense);
* sales follow a Zipf law over items (a few items sell a lot), quantities are mostly 1-3, baskets hold 1-5
  lines, sales happen in opening hours with a lunch and an after-work peak, and Fridays/Saturdays are busy;
* stock follows demand: an item's count is its reorder point plus one to three weeks of this store's own
  demand for it (and part of a delivery), so a day or two of extra sales does not push it under; only
  about 5% of items are at or below their reorder point (the dirty negative counts included), so the
  low-stock alerts have something to say without flagging a fifth of the shop.

What makes it useful as a test fixture:

* dirty rows, each with exactly one defect, so the expected reason code is never a matter of rule order;
* determinism: the same arguments give a byte-identical file;
* speed: sales are generated with numpy and inserted in chunks of ``CHUNK_LINES`` rows, so 5M lines take
  seconds and Python objects never exist for more than one chunk (only a few numbers per sale are kept
  for the whole run: ~230 MB peak at 5M lines).
"""

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from shared.core.ids import validate_store_id

DEFAULT_END = date(2026, 11, 26)  # fixed, so a seed gives the same file on any day (the demo passes yesterday)
SNAPSHOT_TIME = time(23, 0)  # the nightly count/export, after closing
CHUNK_LINES = 200_000  # sale lines per executemany: bounds memory, big enough to amortise the calls
MAX_DIRTY_RATE = 0.25  # above this the "about dirty_rate" budget could exceed the clean lines to dirty

# Opening hours 08:00-21:59 and the share of sales in each hour (lunch and after-work peaks).
OPEN_HOUR = 8
HOUR_WEIGHTS = np.array([0.5, 0.7, 0.9, 1.0, 1.4, 1.3, 0.9, 0.8, 0.9, 1.2, 1.5, 1.3, 0.8, 0.4])
CLOSE_HOUR = OPEN_HOUR + len(HOUR_WEIGHTS)
# Sales per weekday (Monday first) relative to mid-week.
WEEKDAY_WEIGHTS = np.array([0.95, 1.0, 1.0, 1.05, 1.2, 1.4, 0.7])
# Lines per sale, 1..5 (mean 2.2).
LINES_PER_SALE_P = np.array([0.40, 0.25, 0.17, 0.11, 0.07])
MEAN_LINES_PER_SALE = float(np.dot(np.arange(1, 6), LINES_PER_SALE_P))
# Quantity per line, 1..12, Zipf-ish: P(q) ~ q^-2.3, so ~94% of lines have qty 1-3.
_QTY_P = np.arange(1, 13, dtype=float) ** -2.3
QTY_CDF = np.cumsum(_QTY_P / _QTY_P.sum())
MEAN_QTY = float(np.dot(np.arange(1, 13), _QTY_P / _QTY_P.sum()))  # ~1.69 units a line
ZIPF_A = 1.1  # item popularity ~ rank^-a
INACTIVE_SHARE = 0.03
LOW_STOCK_SHARE = 0.05  # items at or below their reorder point in a dump (dirty negative counts included)
COVER_DAYS = (7.0, 21.0)  # the other items hold this many days of the store's demand above the reorder point

# category -> (sku letter, vendor name suffix, products with their typical shelf price)
CATEGORIES: dict[str, tuple[str, str, dict[str, float]]] = {
    "Dairy": ("D", "Dairies", {
        "Whole Milk 1 L": 1.19, "Semi-Skimmed Milk 1 L": 1.09, "Greek Yogurt 500 g": 2.29,
        "Natural Yogurt 500 g": 1.49, "Mature Cheddar 400 g": 3.79, "Mozzarella 125 g": 1.19,
        "Salted Butter 250 g": 2.49, "Cream Cheese 200 g": 1.79, "Double Cream 300 ml": 1.59, "Feta 200 g": 2.29}),
    "Bakery": ("B", "Bakehouse", {
        "Sourdough Loaf 800 g": 3.29, "Baguette": 0.99, "Croissants 4-pack": 2.49, "Bagels 5-pack": 1.99,
        "Rye Bread 500 g": 2.19, "Blueberry Muffins 4-pack": 2.79, "Brioche Buns 6-pack": 2.29,
        "Pita Bread 6-pack": 1.29, "Cinnamon Rolls 4-pack": 3.19}),
    "Produce": ("P", "Farms", {
        "Bananas 5-pack": 1.09, "Gala Apples 6-pack": 2.29, "Vine Tomatoes 500 g": 1.99, "Carrots 1 kg": 0.79,
        "Avocado": 0.89, "Lemons 4-pack": 1.49, "Baby Spinach 200 g": 1.69, "Potatoes 2.5 kg": 2.49,
        "Red Onions 1 kg": 1.19, "Strawberries 400 g": 2.99}),
    "Beverages": ("V", "Drinks Co.", {
        "Orange Juice 1 L": 2.19, "Sparkling Water 1.5 L": 0.69, "Cola 2 L": 1.99, "Green Tea 20 bags": 2.49,
        "Coffee Beans 1 kg": 14.99, "Apple Juice 1 L": 1.79, "Lemonade 1.5 L": 1.49, "Red Wine 750 ml": 8.99,
        "Craft Beer 4-pack": 7.49}),
    "Snacks": ("S", "Snack Foods", {
        "Potato Chips 150 g": 1.79, "Salted Peanuts 200 g": 1.59, "Dark Chocolate 100 g": 1.99,
        "Granola Bars 6-pack": 2.99, "Pretzels 175 g": 1.49, "Popcorn 100 g": 1.29, "Rice Crackers 100 g": 1.19,
        "Trail Mix 200 g": 3.49}),
    "Household": ("H", "Home Supply", {
        "Dish Soap 500 ml": 1.99, "Laundry Detergent 2 L": 9.99, "Paper Towels 4-pack": 4.49,
        "Toilet Paper 9-pack": 5.99, "Trash Bags 20-pack": 3.29, "Sponges 3-pack": 1.49,
        "Glass Cleaner 750 ml": 2.79, "Aluminium Foil 10 m": 2.19}),
    "Frozen": ("F", "Frozen Foods", {
        "Garden Peas 1 kg": 1.89, "Pepperoni Pizza": 3.49, "Vanilla Ice Cream 1 L": 3.99,
        "Fish Fingers 10-pack": 3.29, "Mixed Berries 500 g": 3.79, "Veggie Burgers 4-pack": 3.99,
        "Dumplings 500 g": 4.49}),
    "Personal Care": ("C", "Wellness", {
        "Shampoo 400 ml": 4.49, "Toothpaste 75 ml": 2.29, "Shower Gel 250 ml": 2.49, "Deodorant 150 ml": 3.49,
        "Hand Soap 300 ml": 1.99, "Razor Blades 4-pack": 12.99, "Sunscreen SPF30 200 ml": 9.99,
        "Face Cream 50 ml": 14.99}),
}
# Product lines: (name prefix, name suffix, price factor, share of items).
PRODUCT_LINES = (("", "", 1.0, 0.7), ("Organic ", "", 1.35, 0.15), ("", " Value Pack", 2.4, 0.15))
BRANDS = ("Acme", "Harvest", "Golden", "Nordic", "Sunny", "Blue Bay", "Evergreen", "Maple", "Urban",
          "Alpine", "Fresh Fields", "Northstar")
VENDOR_PREFIXES = ("Northwind", "Harbor", "Greenfield", "Summit", "Blue Ridge", "Riverside", "Oakwood",
                   "Silver Lake", "Meadowbrook", "Pinecrest", "Lakeside", "Redstone", "Willow Creek",
                   "Stonebridge", "Clearwater", "Highland")

SCHEMA = """
CREATE TABLE items (sku TEXT, name TEXT, category TEXT, vendor_id TEXT, unit_cost REAL, unit_price REAL,
                    reorder_point INTEGER, reorder_qty INTEGER, active INTEGER);
CREATE TABLE vendors (vendor_id TEXT PRIMARY KEY, name TEXT, email TEXT, lead_time_days INTEGER);
CREATE TABLE stock (sku TEXT, on_hand INTEGER, counted_at TEXT);
CREATE TABLE sales (sale_id TEXT, line_no INTEGER, sku TEXT, qty INTEGER, unit_price REAL, sold_at TEXT);
CREATE TABLE receipts (receipt_id TEXT, sku TEXT, qty INTEGER, received_at TEXT, vendor_id TEXT,
                       PRIMARY KEY (receipt_id, sku));
"""

# Sale-line defects, with their share of the dirty budget. Each dirty line gets exactly one of them:
#   missing_required       sku NULL, "" or "   "; or sold_at NULL or ""; or qty NULL
#   normalised (kept)      sku of a real item lower-cased and/or space-padded: "a-00017", "  A-00017 "
#   non_positive_qty       qty 0 or -1..-3
#   bad_timestamp          "yesterday", "not a date", month 13, hour 25, Feb 30, Apr 31 (never "")
#   unknown_sku            well-formed upper-case sku not in items: "Z-9xxxx", "<letter>-00000"
#   duplicate              an exact copy of a clean line, inserted after it (the copy is rejected)
#   conflicting_duplicate  a copy of a clean line with another qty (the copy and the original are rejected)
MISSING, NORMALISED, NON_POSITIVE, BAD_TS, UNKNOWN_SKU, DUPLICATE, CONFLICT = range(7)
SALES_DEFECTS: tuple[tuple[str, float], ...] = (
    ("missing_required", 0.15),
    ("normalised", 0.15),
    ("non_positive_qty", 0.15),
    ("bad_timestamp", 0.15),
    ("unknown_sku", 0.15),
    ("duplicate", 0.15),
    ("conflicting_duplicate", 0.10),
)


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


@dataclass
class StoreTruth:
    """A generated dump and what its ingestion must produce."""

    store_id: str
    path: Path  # the SQLite file
    snapshot_at: datetime  # tz-aware UTC; also max(stock.counted_at)
    tables: dict[str, TableTruth]  # keys: items, vendors, stock, sales, receipts
    normalised_skus: int  # sale+stock rows whose sku is lower-case/padded (kept after normalisation)


# --------------------------------------------------------------------------------------------- catalogue


@dataclass
class _Catalogue:
    """Items and vendors, shared by every store of the chain (arrays are aligned by item, sorted by sku)."""

    skus: list[str]
    names: list[str]
    categories: list[str]
    vendor_ids: list[str]
    unit_cost: np.ndarray
    unit_price: np.ndarray
    reorder_point: np.ndarray
    reorder_qty: np.ndarray
    active: np.ndarray  # bool
    popularity: np.ndarray  # Zipf weights, in shuffled rank order
    vendors: list[tuple[str, str, str, int]]  # (vendor_id, name, email, lead_time_days)


def _catalogue(n_items: int, n_vendors: int) -> _Catalogue:
    # Seeded by the sizes only, so every store of a chain (any seed) gets the same catalogue.
    rng = np.random.default_rng([0xCA7A, n_items, n_vendors])
    cat_names = list(CATEGORIES)

    # Vendors: vendor v mainly serves category v mod 8; fresh goods come quickly, the rest less often.
    vendors = []
    for v in range(n_vendors):
        cat = cat_names[v % len(cat_names)]
        prefix = VENDOR_PREFIXES[v % len(VENDOR_PREFIXES)]
        if v >= len(VENDOR_PREFIXES):
            prefix += f" {v // len(VENDOR_PREFIXES) + 1}"
        name = f"{prefix} {CATEGORIES[cat][1]}"
        slug = "".join(c if c.isalnum() else "-" for c in prefix.lower())
        lead = int(rng.integers(1, 4) if cat in ("Dairy", "Bakery", "Produce") else rng.integers(3, 11))
        vendors.append((f"V{v + 1:03d}", name, f"orders@{slug}.example.com", lead))

    # Items: unique 5-digit numbers (1..99999, so "X-00000" is never a real sku), category letter prefix.
    numbers = rng.choice(99_999, size=n_items, replace=False) + 1
    cat_idx = rng.integers(0, len(cat_names), size=n_items)
    line_p = np.array([share for *_, share in PRODUCT_LINES])
    rows = []
    for num, c in zip(numbers.tolist(), cat_idx.tolist(), strict=True):
        cat = cat_names[c]
        letter, _, products = CATEGORIES[cat]
        product = list(products)[rng.integers(len(products))]
        prefix, suffix, factor, _ = PRODUCT_LINES[rng.choice(len(PRODUCT_LINES), p=line_p)]
        name = f"{BRANDS[rng.integers(len(BRANDS))]} {prefix}{product}{suffix}"
        serving = [v for v in range(n_vendors) if v % len(cat_names) == c] or [c % n_vendors]
        vendor = serving[rng.integers(len(serving))]
        # Typical price, varied by brand and product line, as a shelf price ending in 9, within 0.59-39.89.
        p = float(np.clip(products[product] * factor * rng.lognormal(0.0, 0.12), 0.6, 39.9))
        price = round(round(p, 1) - 0.01, 2)
        cost = max(0.01, round(price * rng.uniform(0.45, 0.75), 2))  # a 25-55% margin
        rows.append((f"{letter}-{num:05d}", name, cat, f"V{vendor + 1:03d}", cost, price))
    rows.sort()

    # Popularity: Zipf weights over a shuffled rank order, loosely favouring cheap items (the best seller
    # is more likely bananas than sunscreen). Discontinued items still sell, but rarely.
    price = np.array([r[5] for r in rows])
    rank = np.argsort(np.argsort(np.log(price) + rng.normal(0.0, 1.5, size=n_items)))
    popularity = (rank + 1.0) ** -ZIPF_A
    active = np.ones(n_items, dtype=bool)
    active[rng.choice(n_items, size=round(INACTIVE_SHARE * n_items), replace=False)] = False
    popularity[~active] *= 0.02
    # Reorder points follow demand: the best seller gets 40, the long tail a few units; ~5% get none
    # (items that are ordered by hand). Reorder quantities come in cases of 6.
    reorder_point = np.rint(40 * (popularity / popularity.max()) ** 0.4).astype(np.int64)
    reorder_point[rng.random(n_items) < 0.05] = 0
    reorder_qty = np.maximum(6, np.ceil(reorder_point * 1.5 / 6) * 6).astype(np.int64)

    return _Catalogue(
        skus=[r[0] for r in rows], names=[r[1] for r in rows], categories=[r[2] for r in rows],
        vendor_ids=[r[3] for r in rows], unit_cost=np.array([r[4] for r in rows]),
        unit_price=price, reorder_point=reorder_point, reorder_qty=reorder_qty,
        active=active, popularity=popularity, vendors=vendors,
    )


# ---------------------------------------------------------------------------------------------- helpers


def _stamp(t: datetime) -> str:
    """Naive UTC ISO text, the way the store software writes it."""
    return t.strftime("%Y-%m-%d %H:%M:%S")


@cache
def _opening_hours_clock() -> list[str]:
    """'HH:MM:SS' for every second the store is open, indexed from opening: a lookup beats strftime."""
    return [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(OPEN_HOUR * 3600, CLOSE_HOUR * 3600)]


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder), so truth counts are exact."""
    shares = np.asarray(weights, dtype=float) / sum(weights) * total
    counts = np.floor(shares).astype(np.int64)
    for i in np.argsort(-(shares - counts), kind="stable")[: total - int(counts.sum())]:
        counts[i] += 1
    return counts.tolist()


def _small_dirty_count(n_rows: int, dirty_rate: float) -> int:
    """'A couple' of dirty rows in a small table: at least 2, ~dirty_rate, at most a tenth of the table."""
    if dirty_rate <= 0:
        return 0
    return min(max(2, round(n_rows * dirty_rate)), n_rows // 10)


def _pad_or_lower(sku: str, variant: int) -> str:
    """A real sku as sloppy store software writes it: normalises back to ``sku`` by strip().upper()."""
    return (sku.lower(), f"  {sku} ", f" {sku.lower()}  ", f"{sku} ")[variant % 4]


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# ------------------------------------------------------------------------------------------------ tables


def _write_vendors(con: sqlite3.Connection, cat: _Catalogue) -> TableTruth:
    con.executemany("INSERT INTO vendors VALUES (?, ?, ?, ?)", cat.vendors)
    return TableTruth(input=len(cat.vendors))


def _write_items(
    con: sqlite3.Connection, rng: np.random.Generator, cat: _Catalogue, dirty_rate: float
) -> tuple[TableTruth, set[int]]:
    """Items; a couple point at a vendor the vendors table does not have (kept, flagged unknown_vendor)."""
    n = len(cat.skus)
    k = _small_dirty_count(n, dirty_rate)
    unknown = {int(i) for i in rng.choice(n, size=k, replace=False)}
    vendor_ids = list(cat.vendor_ids)
    for j, i in enumerate(sorted(unknown)):
        vendor_ids[i] = f"V{len(cat.vendors) + 1 + j:03d}"  # a vendor added to items but not to vendors
    con.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        zip(cat.skus, cat.names, cat.categories, vendor_ids, cat.unit_cost.tolist(), cat.unit_price.tolist(),
            cat.reorder_point.tolist(), cat.reorder_qty.tolist(), cat.active.astype(int).tolist(), strict=True),
    )
    return TableTruth(input=n, flagged=_nonzero({"unknown_vendor": k})), unknown


def _write_stock(
    con: sqlite3.Connection, rng: np.random.Generator, cat: _Catalogue, snapshot_at: datetime, dirty_rate: float,
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
    k = _small_dirty_count(n, dirty_rate)
    picked = rng.choice(n, size=2 * k, replace=False)
    negative, sloppy = picked[:k], picked[k:]
    on_hand[negative] = -rng.integers(1, 6, size=k)

    watched = cat.active & (rp > 0)
    eligible = watched.copy()
    eligible[negative] = False
    target = max(1, round(LOW_STOCK_SHARE * n)) - int(watched[negative].sum())
    low = rng.choice(np.flatnonzero(eligible), size=min(int(eligible.sum()), max(0, target)), replace=False)
    on_hand[low] = rng.integers(0, rp[low] + 1)

    skus = list(cat.skus)
    for i in sloppy.tolist():
        skus[i] = _pad_or_lower(skus[i], int(rng.integers(4)))

    # Cycle counts in the last six days happen during the day shift (07:00-21:59).
    cycle = rng.random(n) < 0.2
    cycle[rng.integers(n)] = False  # at least one count at the snapshot: max(counted_at) == snapshot_at
    back, clock = rng.integers(1, 7, size=n), rng.integers(7 * 3600, 22 * 3600, size=n)
    night = snapshot_at.replace(tzinfo=None)
    counted_at = [
        _stamp(night - timedelta(days=b, hours=SNAPSHOT_TIME.hour) + timedelta(seconds=c)) if cyc else _stamp(night)
        for cyc, b, c in zip(cycle.tolist(), back.tolist(), clock.tolist(), strict=True)
    ]
    con.executemany("INSERT INTO stock VALUES (?, ?, ?)", zip(skus, on_hand.tolist(), counted_at, strict=True))
    return TableTruth(input=n, flagged=_nonzero({"negative_on_hand": k})), k


def _write_receipts(
    con: sqlite3.Connection, rng: np.random.Generator, cat: _Catalogue, store_id: str, start: date, days: int,
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
        (f"{store_id}-R{n:05d}", cat.skus[i], int(cat.reorder_qty[i]), _stamp(origin + timedelta(seconds=secs)),
         vendor_id)
        for n, (secs, vendor_id, items) in enumerate(deliveries, start=1)
        for i in items
    ]
    con.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, ?)", rows)
    return TableTruth(input=len(rows))


def _write_sales(
    con: sqlite3.Connection, rng: np.random.Generator, cat: _Catalogue, store_id: str, start: date, days: int,
    sales_lines: int, dirty_rate: float, weights: np.ndarray,
) -> tuple[TableTruth, int]:
    """Exactly ``sales_lines`` rows: clean baskets, with a dirty budget of ~dirty_rate spread over defects.
    Items are drawn in proportion to ``weights`` (the store's demand, see :func:`_store_demand`)."""
    # The dirty plan first, so the number of clean lines to generate is known: duplicates add rows.
    n_events = round(dirty_rate * sales_lines)
    per_kind = _apportion(n_events, [w for _, w in SALES_DEFECTS])
    n_base = sales_lines - per_kind[DUPLICATE] - per_kind[CONFLICT]
    # Distinct positions, one defect each: a duplicate's original is never itself dirty.
    positions = rng.choice(n_base, size=n_events, replace=False) if n_events else np.zeros(0, np.int64)
    kinds = np.repeat(np.arange(len(SALES_DEFECTS)), per_kind)
    order = np.argsort(positions)
    positions, kinds = positions[order], kinds[order]

    # Baskets: lines per sale until exactly n_base lines (the last basket is cut short).
    lines_cdf = np.cumsum(LINES_PER_SALE_P)
    n_lines = np.zeros(0, np.int64)
    while n_lines.sum() < n_base:
        more = int((n_base - n_lines.sum()) / MEAN_LINES_PER_SALE * 1.05) + 16
        n_lines = np.concatenate([n_lines, np.searchsorted(lines_cdf, rng.random(more), side="right") + 1])
    ends = np.cumsum(n_lines)
    n_sales = int(np.searchsorted(ends, n_base)) + 1 if n_base else 0
    n_lines, ends = n_lines[:n_sales], ends[:n_sales]
    if n_sales:
        n_lines[-1] -= ends[-1] - n_base
        ends[-1] = n_base

    # When: sales per day by weekday, within a day by hour; chronological, so sale numbers run with time.
    day_w = WEEKDAY_WEIGHTS[[(start + timedelta(days=d)).weekday() for d in range(days)]]
    per_day = rng.multinomial(n_sales, day_w / day_w.sum())
    hour = np.searchsorted(np.cumsum(HOUR_WEIGHTS / HOUR_WEIGHTS.sum()), rng.random(n_sales), side="right")
    hour = np.minimum(hour, len(HOUR_WEIGHTS) - 1)  # guards against the cdf's last value rounding below 1
    when = np.repeat(np.arange(days, dtype=np.int64) * 86400, per_day) + (OPEN_HOUR + hour) * 3600
    when = np.sort(when + rng.integers(0, 3600, size=n_sales))
    day_text = [f"{start + timedelta(days=d)} " for d in range(days)]
    clock_text = _opening_hours_clock()

    # What: the store's demand (Zipf popularity with a little store-to-store variation).
    sku_cdf = np.cumsum(weights / weights.sum())
    sku_obj = np.array(cat.skus, dtype=object)
    width = max(6, len(str(n_sales)))
    year = (start + timedelta(days=days - 1)).year

    counts = dict.fromkeys([name for name, _ in SALES_DEFECTS], 0)
    first_sale = 0
    while first_sale < n_sales:
        # A chunk is whole sales with about CHUNK_LINES lines between them.
        g0 = int(ends[first_sale - 1]) if first_sale else 0
        last_sale = max(first_sale + 1, int(np.searchsorted(ends, g0 + CHUNK_LINES, side="right")))
        g1 = int(ends[last_sale - 1])
        sale_lines = n_lines[first_sale:last_sale]
        n = g1 - g0

        sale_no = range(first_sale + 1, last_sale + 1)
        sale_ids = np.array([f"{store_id}-{s:0{width}d}" for s in sale_no], dtype=object)
        sec = when[first_sale:last_sale]
        day, clock = np.divmod(sec, 86400)
        stamps = np.array([day_text[d] + clock_text[c] for d, c in
                           zip(day.tolist(), (clock - OPEN_HOUR * 3600).tolist(), strict=True)], dtype=object)
        line_no = np.arange(n) - np.repeat(np.cumsum(sale_lines) - sale_lines, sale_lines) + 1
        item = np.minimum(np.searchsorted(sku_cdf, rng.random(n), side="right"), len(cat.skus) - 1)
        qty = np.minimum(np.searchsorted(QTY_CDF, rng.random(n), side="right") + 1, len(QTY_CDF))

        col_id = np.repeat(sale_ids, sale_lines).tolist()
        col_line = line_no.tolist()
        col_sku = sku_obj[item].tolist()
        col_qty = qty.tolist()
        col_price = cat.unit_price[item].tolist()
        col_at = np.repeat(stamps, sale_lines).tolist()

        # Dirty lines of this chunk: alter the row in place, or (duplicates) append a copy after it.
        extra = []
        lo, hi = np.searchsorted(positions, [g0, g1])
        for pos, kind in zip(positions[lo:hi].tolist(), kinds[lo:hi].tolist(), strict=True):
            i = pos - g0
            variant = int(rng.integers(6))
            if kind == MISSING:  # a required column NULL or blank
                if variant < 3:
                    col_sku[i] = (None, "", "   ")[variant]
                elif variant < 5:
                    col_at[i] = (None, "")[variant - 3]
                else:
                    col_qty[i] = None
            elif kind == NORMALISED:
                col_sku[i] = _pad_or_lower(col_sku[i], variant)
            elif kind == NON_POSITIVE:
                col_qty[i] = 0 if variant < 2 else -int(rng.integers(1, 4))
            elif kind == BAD_TS:  # garbage or impossible dates; never "" (that is missing_required)
                hhmmss = col_at[i][11:]
                col_at[i] = ("yesterday", "not a date", f"{year}-13-01 10:00:00", f"{year}-02-30 {hhmmss}",
                             f"{year}-04-31 {hhmmss}", f"{col_at[i][:10]} 25:10:00")[variant]
            elif kind == UNKNOWN_SKU:  # well-formed, upper-case, just not in items
                col_sku[i] = f"Z-{rng.integers(90_000, 100_000):05d}" if variant < 4 else f"{col_sku[i][0]}-00000"
            elif kind == DUPLICATE:  # the store software sent the same line twice
                extra.append((col_id[i], col_line[i], col_sku[i], col_qty[i], col_price[i], col_at[i]))
            else:  # CONFLICT: same (sale_id, line_no), different qty; both rows are rejected
                extra.append((col_id[i], col_line[i], col_sku[i], col_qty[i] + 1 + variant % 3, col_price[i],
                              col_at[i]))
            counts[SALES_DEFECTS[kind][0]] += 1

        rows = list(zip(col_id, col_line, col_sku, col_qty, col_price, col_at, strict=True))
        con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?)", rows + extra)
        first_sale = last_sale

    normalised = counts.pop("normalised")
    counts["conflicting_duplicate"] *= 2  # the clean original is rejected along with its conflicting copy
    return TableTruth(input=sales_lines, rejected=_nonzero(counts)), normalised


def _store_demand(rng: np.random.Generator, cat: _Catalogue) -> np.ndarray:
    """The store's relative demand per item: the chain's Zipf popularity with a little local variation."""
    return cat.popularity * rng.lognormal(0.0, 0.25, size=len(cat.skus))


# -------------------------------------------------------------------------------------------- public API


def generate_store(
    path: Path,
    store_id: str,
    *,
    n_items: int = 300,
    n_vendors: int = 12,
    days: int = 56,
    sales_lines: int = 20_000,
    end: date | None = None,
    dirty_rate: float = 0.01,
    seed: int = 0,
) -> StoreTruth:
    """Write one store's dump to ``path`` (replacing it) and return what its ingestion must produce.

    Sales span ``days`` days ending on ``end`` (inclusive; default 2026-11-26, a fixed day so that a seed's
    file does not depend on the day it is made: the demo passes yesterday); the snapshot is taken at 23:00
    UTC on ``end``. The sales table holds exactly ``sales_lines`` rows; about ``dirty_rate`` of them are
    dirty (plus a couple of rows in items and stock), none when it is 0. The stock counts do not depend on
    ``end``: the same seed and sizes count the same units, whichever day the history ends on.
    """
    validate_store_id(store_id)
    if not 10 <= n_items <= 99_999:
        raise ValueError(f"n_items must be 10..99999, got {n_items}")
    if n_vendors < 1 or days < 1 or sales_lines < 0:
        raise ValueError("n_vendors and days must be positive and sales_lines non-negative")
    if not 0 <= dirty_rate <= MAX_DIRTY_RATE:
        raise ValueError(f"dirty_rate must be 0..{MAX_DIRTY_RATE}, got {dirty_rate}")
    end = end or DEFAULT_END
    start = end - timedelta(days=days - 1)
    snapshot_at = datetime.combine(end, SNAPSHOT_TIME, tzinfo=UTC)
    rng = np.random.default_rng(seed)
    cat = _catalogue(n_items, n_vendors)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        # A generated file is disposable: no journal, no fsync; one transaction for everything.
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(SCHEMA)
        items, unknown_vendor_items = _write_items(con, rng, cat, dirty_rate)
        vendors = _write_vendors(con, cat)
        demand = _store_demand(rng, cat)
        daily_units = demand / demand.sum() * (sales_lines * MEAN_QTY / days)
        stock, stock_normalised = _write_stock(con, rng, cat, snapshot_at, dirty_rate, daily_units)
        receipts = _write_receipts(con, rng, cat, store_id, start, days, unknown_vendor_items)
        sales, sales_normalised = _write_sales(con, rng, cat, store_id, start, days, sales_lines, dirty_rate,
                                               demand)
        con.commit()
    finally:
        con.close()
    tables = {"items": items, "vendors": vendors, "stock": stock, "sales": sales, "receipts": receipts}
    return StoreTruth(store_id=store_id, path=path, snapshot_at=snapshot_at, tables=tables,
                      normalised_skus=stock_normalised + sales_normalised)


def catalogue_skus(n_items: int = 300, n_vendors: int = 12) -> list[str]:
    """The chain's skus for the default catalogue size (what :func:`generate_store` writes to items)."""
    return list(_catalogue(n_items, n_vendors).skus)


def generate_stores(folder: Path, n_stores: int, *, seed: int = 0, **kwargs: Any) -> list[StoreTruth]:
    """Stores S001..S<n> as ``<folder>/<store_id>.sqlite``; each store's seed derives from ``seed`` and its
    number, so stores differ from one another but the set is reproducible. Other arguments as
    :func:`generate_store`; the catalogue is shared by all stores."""
    folder = Path(folder)
    truths = []
    for n in range(1, n_stores + 1):
        store_seed = int(np.random.SeedSequence([seed, n]).generate_state(1)[0])
        store_id = f"S{n:03d}"
        truths.append(generate_store(folder / f"{store_id}.sqlite", store_id, seed=store_seed, **kwargs))
    return truths
