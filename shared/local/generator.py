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

This module is the public API; the work is done along the generator's seams by
:mod:`~shared.local.generator_catalogue` (the chain's items and vendors), :mod:`~shared.local.generator_tables`
(the schema, items, vendors, stock and receipts) and :mod:`~shared.local.generator_sales` (the sales history).
"""

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shared.core.ids import validate_store_id
from shared.local.generator_catalogue import Catalogue, chain_catalogue
from shared.local.generator_sales import MEAN_QTY, store_demand, write_sales
from shared.local.generator_tables import (
    SCHEMA,
    SNAPSHOT_TIME,
    TableTruth,
    write_items,
    write_receipts,
    write_stock,
    write_vendors,
)

__all__ = ["DEFAULT_END", "MAX_DIRTY_RATE", "SNAPSHOT_TIME", "StoreTruth", "TableTruth", "catalogue_skus",
           "generate_store", "generate_stores"]

DEFAULT_END = date(2026, 11, 26)  # fixed, so a seed gives the same file on any day (the demo passes yesterday)
MAX_DIRTY_RATE = 0.25  # above this the "about dirty_rate" budget could exceed the clean lines to dirty


@dataclass
class StoreTruth:
    """A generated dump and what its ingestion must produce."""

    store_id: str
    path: Path  # the SQLite file
    snapshot_at: datetime  # tz-aware UTC; also max(stock.counted_at)
    tables: dict[str, TableTruth]  # keys: items, vendors, stock, sales, receipts
    normalised_skus: int  # sale+stock rows whose sku is lower-case/padded (kept after normalisation)


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
    _check_arguments(store_id, n_items, n_vendors, days, sales_lines, dirty_rate)
    end = end or DEFAULT_END
    start = end - timedelta(days=days - 1)
    snapshot_at = datetime.combine(end, SNAPSHOT_TIME, tzinfo=UTC)
    rng = np.random.default_rng(seed)
    cat = chain_catalogue(n_items, n_vendors)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        # A generated file is disposable: no journal, no fsync; one transaction for everything.
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(SCHEMA)
        tables, normalised = _write_tables(con, rng, cat, store_id, start, days, snapshot_at, sales_lines,
                                           dirty_rate)
        con.commit()
    finally:
        con.close()
    return StoreTruth(store_id=store_id, path=path, snapshot_at=snapshot_at, tables=tables,
                      normalised_skus=normalised)


def _check_arguments(store_id: str, n_items: int, n_vendors: int, days: int, sales_lines: int,
                     dirty_rate: float) -> None:
    validate_store_id(store_id)
    if not 10 <= n_items <= 99_999:
        raise ValueError(f"n_items must be 10..99999, got {n_items}")
    if n_vendors < 1 or days < 1 or sales_lines < 0:
        raise ValueError("n_vendors and days must be positive and sales_lines non-negative")
    if not 0 <= dirty_rate <= MAX_DIRTY_RATE:
        raise ValueError(f"dirty_rate must be 0..{MAX_DIRTY_RATE}, got {dirty_rate}")


def _write_tables(con: sqlite3.Connection, rng: np.random.Generator, cat: Catalogue, store_id: str, start: date,
                  days: int, snapshot_at: datetime, sales_lines: int, dirty_rate: float,
                  ) -> tuple[dict[str, TableTruth], int]:
    """Every table of the dump, in the order that draws from ``rng`` as the files of a seed expect; their truths
    and the rows whose sku was written sloppily (kept after normalisation)."""
    items, unknown_vendor_items = write_items(con, rng, cat, dirty_rate)
    vendors = write_vendors(con, cat)
    demand = store_demand(rng, cat)
    daily_units = demand / demand.sum() * (sales_lines * MEAN_QTY / days)
    stock, stock_normalised = write_stock(con, rng, cat, snapshot_at, dirty_rate, daily_units)
    receipts = write_receipts(con, rng, cat, store_id, start, days, unknown_vendor_items)
    sales, sales_normalised = write_sales(con, rng, cat, store_id, start, days, sales_lines, dirty_rate, demand)
    tables = {"items": items, "vendors": vendors, "stock": stock, "sales": sales, "receipts": receipts}
    return tables, stock_normalised + sales_normalised


def catalogue_skus(n_items: int = 300, n_vendors: int = 12) -> list[str]:
    """The chain's skus for the default catalogue size (what :func:`generate_store` writes to items)."""
    return list(chain_catalogue(n_items, n_vendors).skus)


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
