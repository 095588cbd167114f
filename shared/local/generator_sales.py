"""The store-dump generator's sales history (:mod:`shared.local.generator`): baskets in opening hours, items by
the store's demand, and the dirty lines, each with exactly one defect.

Sales are generated with numpy and inserted in chunks of ``CHUNK_LINES`` rows, so 5M lines take seconds and
Python objects never exist for more than one chunk (only a few numbers per sale are kept for the whole run).
"""

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np

from shared.local.generator_catalogue import Catalogue
from shared.local.generator_tables import TableTruth, nonzero, pad_or_lower

CHUNK_LINES = 200_000  # sale lines per executemany: bounds memory, big enough to amortise the calls

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

_Row = tuple  # (sale_id, line_no, sku, qty, unit_price, sold_at), as inserted


def store_demand(rng: np.random.Generator, cat: Catalogue) -> np.ndarray:
    """The store's relative demand per item: the chain's Zipf popularity with a little local variation."""
    return cat.popularity * rng.lognormal(0.0, 0.25, size=len(cat.skus))


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


@dataclass
class _History:
    """A store's sales history as planned before any row is written: the sales (lines and time of each), the
    dirty lines (position and defect), and what is needed to spell the rows."""

    store_id: str
    n_lines: np.ndarray  # lines per sale
    ends: np.ndarray  # lines up to and including each sale
    when: np.ndarray  # seconds from the first day's midnight, per sale, chronological
    positions: np.ndarray  # the dirty lines (clean line numbers, sorted)
    kinds: np.ndarray  # the defect of each dirty line
    day_text: list[str]  # "YYYY-MM-DD " per day
    year: int  # of the last day, for impossible dates
    width: int  # digits of a sale number

    @property
    def n_sales(self) -> int:
        return len(self.n_lines)


@dataclass
class _Chunk:
    """The columns of one chunk of sale lines, as lists (altered in place by the defects)."""

    sale_id: list
    line_no: list
    sku: list
    qty: list
    price: list
    sold_at: list

    def row(self, i: int) -> _Row:
        return (self.sale_id[i], self.line_no[i], self.sku[i], self.qty[i], self.price[i], self.sold_at[i])

    def rows(self) -> list[_Row]:
        return list(zip(self.sale_id, self.line_no, self.sku, self.qty, self.price, self.sold_at, strict=True))


def write_sales(
    con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, store_id: str, start: date, days: int,
    sales_lines: int, dirty_rate: float, weights: np.ndarray,
) -> tuple[TableTruth, int]:
    """Exactly ``sales_lines`` rows: clean baskets, with a dirty budget of ~dirty_rate spread over defects.
    Items are drawn in proportion to ``weights`` (the store's demand, see :func:`store_demand`)."""
    history = _plan(rng, store_id, start, days, sales_lines, dirty_rate)
    # What: the store's demand (Zipf popularity with a little store-to-store variation).
    sku_cdf = np.cumsum(weights / weights.sum())
    counts = dict.fromkeys([name for name, _ in SALES_DEFECTS], 0)
    first_sale = 0
    while first_sale < history.n_sales:
        first_sale = _write_chunk(con, rng, cat, history, sku_cdf, first_sale, counts)
    normalised = counts.pop("normalised")
    counts["conflicting_duplicate"] *= 2  # the clean original is rejected along with its conflicting copy
    return TableTruth(input=sales_lines, rejected=nonzero(counts)), normalised


def _plan(rng: np.random.Generator, store_id: str, start: date, days: int, sales_lines: int,
          dirty_rate: float) -> _History:
    """The dirty plan first, so the number of clean lines to generate is known (duplicates add rows); then the
    baskets of those clean lines, and when each sale happens."""
    n_events = round(dirty_rate * sales_lines)
    per_kind = _apportion(n_events, [w for _, w in SALES_DEFECTS])
    n_base = sales_lines - per_kind[DUPLICATE] - per_kind[CONFLICT]
    # Distinct positions, one defect each: a duplicate's original is never itself dirty.
    positions = rng.choice(n_base, size=n_events, replace=False) if n_events else np.zeros(0, np.int64)
    kinds = np.repeat(np.arange(len(SALES_DEFECTS)), per_kind)
    order = np.argsort(positions)
    n_lines, ends = _baskets(rng, n_base)
    n_sales = len(n_lines)
    return _History(store_id=store_id, n_lines=n_lines, ends=ends, when=_sale_times(rng, start, days, n_sales),
                    positions=positions[order], kinds=kinds[order],
                    day_text=[f"{start + timedelta(days=d)} " for d in range(days)],
                    year=(start + timedelta(days=days - 1)).year, width=max(6, len(str(n_sales))))


def _baskets(rng: np.random.Generator, n_base: int) -> tuple[np.ndarray, np.ndarray]:
    """(lines per sale, lines up to each sale): lines per sale until exactly ``n_base`` lines (the last basket
    is cut short)."""
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
    return n_lines, ends


def _sale_times(rng: np.random.Generator, start: date, days: int, n_sales: int) -> np.ndarray:
    """When: sales per day by weekday, within a day by hour; chronological, so sale numbers run with time."""
    day_w = WEEKDAY_WEIGHTS[[(start + timedelta(days=d)).weekday() for d in range(days)]]
    per_day = rng.multinomial(n_sales, day_w / day_w.sum())
    hour = np.searchsorted(np.cumsum(HOUR_WEIGHTS / HOUR_WEIGHTS.sum()), rng.random(n_sales), side="right")
    hour = np.minimum(hour, len(HOUR_WEIGHTS) - 1)  # guards against the cdf's last value rounding below 1
    when = np.repeat(np.arange(days, dtype=np.int64) * 86400, per_day) + (OPEN_HOUR + hour) * 3600
    return np.sort(when + rng.integers(0, 3600, size=n_sales))


def _write_chunk(con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, history: _History,
                 sku_cdf: np.ndarray, first_sale: int, counts: dict[str, int]) -> int:
    """Insert the chunk of sales that starts at ``first_sale``: whole sales with about CHUNK_LINES lines between
    them, the dirty lines among them altered (``counts``: per defect). Returns the next chunk's first sale."""
    ends = history.ends
    g0 = int(ends[first_sale - 1]) if first_sale else 0
    last_sale = max(first_sale + 1, int(np.searchsorted(ends, g0 + CHUNK_LINES, side="right")))
    g1 = int(ends[last_sale - 1])
    chunk = _clean_chunk(rng, cat, history, sku_cdf, first_sale, last_sale, g1 - g0)
    extra = _make_dirty(rng, history, chunk, g0, g1, counts)
    con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?)", chunk.rows() + extra)
    return last_sale


def _clean_chunk(rng: np.random.Generator, cat: Catalogue, history: _History, sku_cdf: np.ndarray,
                 first_sale: int, last_sale: int, n: int) -> _Chunk:
    """The ``n`` clean lines of sales ``first_sale`` up to ``last_sale`` (excluded)."""
    sale_lines = history.n_lines[first_sale:last_sale]
    sale_no = range(first_sale + 1, last_sale + 1)
    sale_ids = np.array([f"{history.store_id}-{s:0{history.width}d}" for s in sale_no], dtype=object)
    day, clock = np.divmod(history.when[first_sale:last_sale], 86400)
    day_text, clock_text = history.day_text, _opening_hours_clock()
    stamps = np.array([day_text[d] + clock_text[c] for d, c in
                       zip(day.tolist(), (clock - OPEN_HOUR * 3600).tolist(), strict=True)], dtype=object)
    line_no = np.arange(n) - np.repeat(np.cumsum(sale_lines) - sale_lines, sale_lines) + 1
    item = np.minimum(np.searchsorted(sku_cdf, rng.random(n), side="right"), len(cat.skus) - 1)
    qty = np.minimum(np.searchsorted(QTY_CDF, rng.random(n), side="right") + 1, len(QTY_CDF))
    sku_obj = np.array(cat.skus, dtype=object)
    return _Chunk(sale_id=np.repeat(sale_ids, sale_lines).tolist(), line_no=line_no.tolist(),
                  sku=sku_obj[item].tolist(), qty=qty.tolist(), price=cat.unit_price[item].tolist(),
                  sold_at=np.repeat(stamps, sale_lines).tolist())


def _make_dirty(rng: np.random.Generator, history: _History, chunk: _Chunk, g0: int, g1: int,
                counts: dict[str, int]) -> list[_Row]:
    """Dirty lines of the chunk (lines ``g0`` up to ``g1``): alter the row in place, or (duplicates) return a
    copy to insert after the chunk's rows."""
    extra = []
    lo, hi = np.searchsorted(history.positions, [g0, g1])
    for pos, kind in zip(history.positions[lo:hi].tolist(), history.kinds[lo:hi].tolist(), strict=True):
        variant = int(rng.integers(6))
        copy = _DEFECTS[kind](chunk, pos - g0, variant, rng, history.year)
        if copy is not None:
            extra.append(copy)
        counts[SALES_DEFECTS[kind][0]] += 1
    return extra


# Each defect: (chunk, line, variant 0..5, rng, year) -> None (the line altered in place) or a copy to insert.

def _missing(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> None:
    """A required column NULL or blank."""
    if variant < 3:
        chunk.sku[i] = (None, "", "   ")[variant]
    elif variant < 5:
        chunk.sold_at[i] = (None, "")[variant - 3]
    else:
        chunk.qty[i] = None


def _normalised(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> None:
    chunk.sku[i] = pad_or_lower(chunk.sku[i], variant)


def _non_positive(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> None:
    chunk.qty[i] = 0 if variant < 2 else -int(rng.integers(1, 4))


def _bad_timestamp(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> None:
    """Garbage or impossible dates; never "" (that is missing_required)."""
    at = chunk.sold_at[i]
    hhmmss = at[11:]
    chunk.sold_at[i] = ("yesterday", "not a date", f"{year}-13-01 10:00:00", f"{year}-02-30 {hhmmss}",
                        f"{year}-04-31 {hhmmss}", f"{at[:10]} 25:10:00")[variant]


def _unknown_sku(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> None:
    """Well-formed, upper-case, just not in items."""
    chunk.sku[i] = f"Z-{rng.integers(90_000, 100_000):05d}" if variant < 4 else f"{chunk.sku[i][0]}-00000"


def _duplicate(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> _Row:
    """The store software sent the same line twice."""
    return chunk.row(i)


def _conflict(chunk: _Chunk, i: int, variant: int, rng: np.random.Generator, year: int) -> _Row:
    """Same (sale_id, line_no), different qty; both rows are rejected."""
    sale_id, line_no, sku, qty, price, sold_at = chunk.row(i)
    return (sale_id, line_no, sku, qty + 1 + variant % 3, price, sold_at)


_DEFECTS: dict[int, Callable[[_Chunk, int, int, np.random.Generator, int], _Row | None]] = {
    MISSING: _missing, NORMALISED: _normalised, NON_POSITIVE: _non_positive, BAD_TS: _bad_timestamp,
    UNKNOWN_SKU: _unknown_sku, DUPLICATE: _duplicate, CONFLICT: _conflict,
}
