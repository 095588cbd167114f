"""What the dashboard shows, as plain data, and the functions that read it from the lake and the stock store.

Everything here is data and queries, no HTML: the ``render`` module turns a :class:`DashboardData` into the page.
The Delta tables are read through the lake's own location (:func:`~shared.services.engines.open_snapshots`), so a
Blob lake works like the folder one; each table is opened once per page and read for one store at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared.core import layout
from shared.core.aggregates import data_quality_rows
from shared.core.manifest import Manifest
from shared.core.sql import literal
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.tables import Tables
from shared.services.aggregates import aggregated_stores
from shared.services.engines import open_snapshots
from shared.services.raise_alerts import STATE_PATH as ALERTS_STATE_PATH
from shared.services.stock_alerts import item_stock

TREND_DAYS = 56  # ~8 weeks of daily units before the forecast
FORECAST_DAYS = 14  # forecast days drawn after the history
CHART_ITEMS = 30  # items in a store's stock vs reorder point chart
LOW_STOCK_ROWS = 20  # rows in a store's low-stock table
QUALITY_DAYS = 14  # days in a store's data quality strip and table
MANIFEST_FALLBACK = 30  # manifests read per store when the data_quality aggregate is missing
Z95 = 1.96  # the forecast intervals' half-width in standard deviations (core.forecast.ForecastConfig.z)


# --- the data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayUnits:
    day: date
    units: int
    revenue: float | None = None


@dataclass(frozen=True)
class ForecastDay:
    """A day's forecast for the store total: the sum of the skus' means, and an approximate ~95 % band.

    The band is not the sum of the skus' bounds: on sparse retail series nearly every lower bound is 0 and
    the upper bounds are several times the mean, so summed bounds give a band of 0 to ~3× the total, which
    says nothing. Each sku's interval is read as mean ± 1.96 σ (σ ≈ width / 3.92) and the σ's are combined
    as for independent skus (√Σσ²). Store traffic moves all skus together, so the true band is somewhat wider:
    the page says it is approximate."""

    day: date
    mean: float
    lower: float
    upper: float


@dataclass(frozen=True)
class StockItem:
    sku: str
    name: str
    on_hand: int
    reorder_point: int
    days_of_cover: float | None = None
    suggested_order: int | None = None
    vendor: str = ""
    active: bool = True

    @property
    def low(self) -> bool:
        """Low on stock, the LowStock alert's rule: active, reorder point above zero, on hand at or below it."""
        return self.active and self.reorder_point > 0 and self.on_hand <= self.reorder_point


@dataclass(frozen=True)
class QualityDay:
    """One UTC day of one store's dumps, one table: rows in, kept and set aside, and the rules that fired."""

    day: date
    table: str
    rows_in: int
    curated: int
    rejected: int
    rules: tuple[tuple[str, str, int], ...] = ()  # (rule code, action, rows)


@dataclass
class StoreData:
    store_id: str
    last_snapshot_at: datetime | None = None  # the stock store's baseline dump (None: no dump yet)
    skus: int = 0  # skus with a stock count
    low_stock: int = 0  # every low item, not only the ones shown
    sales: list[DayUnits] = field(default_factory=list)  # oldest first
    forecast: list[ForecastDay] = field(default_factory=list)  # oldest first
    chart_items: list[StockItem] = field(default_factory=list)  # closest to / below the reorder point first
    low_items: list[StockItem] = field(default_factory=list)  # most urgent first, capped
    quality: list[QualityDay] = field(default_factory=list)
    quality_source: str = ""  # "aggregates", "manifests" or "" (none)
    has_stock: bool = False  # the stock store has counts for this store
    aggregated: bool = False  # the aggregates have run for this store (their state names it), sales or not
    problems: list[str] = field(default_factory=list)  # inputs that could not be read


@dataclass
class DashboardData:
    as_of: datetime
    lake: str
    stock_store: str
    stores: list[StoreData] = field(default_factory=list)
    alerts: list[dict] | None = None  # alerts/state.json "active"; None: no alert run yet
    alerts_updated_at: str | None = None
    aggregates_present: bool = False  # any aggregate output exists in the lake
    skus: int = 0  # distinct skus over all stores
    problems: list[str] = field(default_factory=list)


# --- figures derived from the data (pure) -------------------------------------------------------------


def utc_day(as_of: datetime) -> date:
    """The UTC day of ``as_of`` (the sales aggregates' days are UTC days)."""
    return (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)).astimezone(UTC).date()


def units_in_days(sales: Sequence[DayUnits], last: date, days: int) -> int:
    """Units sold in the ``days`` calendar days ending on ``last`` (included). ``sales`` holds only the days
    that had sales, so the window is taken by date, never as the last ``days`` entries."""
    first = last - timedelta(days=days - 1)
    return sum(d.units for d in sales if first <= d.day <= last)


def week_units(sales: Sequence[DayUnits], as_of: datetime) -> tuple[int | None, int | None]:
    """(units in the 7 UTC days ending today, units in the 7 days before those). The first is None when the
    store has no sales aggregate; the second is None unless the sales history reaches back to its first day
    (a store that opened last week has nothing to compare with)."""
    if not sales:
        return None, None
    today = utc_day(as_of)
    week = units_in_days(sales, today, 7)
    covered = min(d.day for d in sales) <= today - timedelta(days=13)
    return week, units_in_days(sales, today - timedelta(days=7), 7) if covered else None


def forecast_day(day: date, mean: float, variance: float) -> ForecastDay:
    """The store total's approximate band from the summed mean and summed per-sku variances."""
    half = Z95 * math.sqrt(max(variance, 0.0))
    return ForecastDay(day, mean, max(mean - half, 0.0), mean + half)


def _urgency(it: StockItem) -> tuple:
    """Out of stock first, then the fewest days of cover, then the lowest share of the reorder point."""
    cover = it.days_of_cover if it.days_of_cover is not None else math.inf
    return (it.on_hand > 0, cover, it.on_hand / max(it.reorder_point, 1), it.sku)


def select_stock(items: Sequence[StockItem]) -> tuple[list[StockItem], list[StockItem], int]:
    """(chart items, low-stock table rows, number of low items) from every item of a store."""
    watched = [it for it in items if it.active and it.reorder_point > 0]
    chart = sorted(watched, key=lambda it: (it.on_hand / it.reorder_point, it.sku))[:CHART_ITEMS]
    low = sorted((it for it in watched if it.low), key=_urgency)
    return chart, low[:LOW_STOCK_ROWS], len(low)


def parse_time(text: str | None) -> datetime | None:
    """An ISO timestamp from the lake's JSON (``Z`` allowed; naive read as UTC); None when absent or unparsable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


# --- reading the lake ---------------------------------------------------------------------------------


def _read(lake: Lake, tables: Tables | None, output: str, sql: str) -> list[dict]:
    """The rows of ``sql`` over the aggregate ``output`` (named ``t``); none before the first aggregates run."""
    found = (tables or open_snapshots(lake)).read(sql, t=layout.aggregate(output))
    return found.to_pylist() if found is not None else []


def read_sales(lake: Lake, store_id: str, tables: Tables | None = None) -> list[DayUnits]:
    """Daily units (and revenue) of the last TREND_DAYS days with sales, from sales_daily_category."""
    rows = _read(lake, tables, "sales_daily_category",
                 f"SELECT date, sum(units) AS units, sum(revenue) AS revenue, count(revenue) AS priced FROM t "
                 f"WHERE store_id = {literal(store_id)} GROUP BY date ORDER BY date DESC LIMIT {TREND_DAYS}")
    return [DayUnits(r["date"], int(r["units"] or 0), float(r["revenue"]) if r["priced"] else None)
            for r in reversed(rows)]


def read_forecast(lake: Lake, store_id: str, tables: Tables | None = None) -> list[ForecastDay]:
    """The first FORECAST_DAYS forecast days, summed over skus (5,000 skus × a 28-day horizon is 140k rows per
    store: summed in the query, not row by row in Python)."""
    rows = _read(lake, tables, "forecast",
                 f"SELECT date, sum(coalesce(mean, 0.0)) AS m, "
                 f"sum(power((coalesce(upper, 0.0) - coalesce(lower, 0.0)) / {2 * Z95}, 2)) AS var FROM t "
                 f"WHERE store_id = {literal(store_id)} GROUP BY date ORDER BY date LIMIT {FORECAST_DAYS}")
    return [forecast_day(r["date"], r["m"], r["var"]) for r in rows]


def _add_quality_row(acc: dict[tuple[date, str], dict], r: dict) -> None:
    """Add one data_quality row (a table's totals when its rule is empty, else one rule's count) to ``acc``."""
    day = r["date"] if isinstance(r["date"], date) else _parse_day(str(r["date"])[:10])
    if day is None:
        return
    a = acc.setdefault((day, r["table_name"]), {"in": 0, "curated": 0, "rejected": 0, "rules": {}})
    if r["rule"] == "":
        a["in"] += int(r["rows_in"] or 0)
        a["curated"] += int(r["curated"] or 0)
        a["rejected"] += int(r["rejected"] or 0)
    else:
        key = (r["rule"], r["action"] or "")
        a["rules"][key] = a["rules"].get(key, 0) + int(r["rule_count"] or 0)


def _quality_from_rows(rows: Iterable[dict]) -> list[QualityDay]:
    """data_quality rows (long form, one totals row per table) summed per day and table; rules most rows first."""
    acc: dict[tuple[date, str], dict] = {}
    for r in rows:
        _add_quality_row(acc, r)
    out = []
    for (day, table), a in sorted(acc.items()):
        rules = sorted(((c, act, n) for (c, act), n in a["rules"].items()), key=lambda x: (-x[2], x[0]))
        out.append(QualityDay(day, table, a["in"], a["curated"], a["rejected"], tuple(rules)))
    return out


def _quality_from_manifests(lake: Lake, store_id: str) -> tuple[list[QualityDay], str]:
    """The data_quality rows of the store's latest MANIFEST_FALLBACK manifests, last QUALITY_DAYS days."""
    manifests = [o for o in lake.list(layout.manifests(store_id)) if o.path.endswith(".json")]
    manifests.sort(key=lambda o: (o.last_modified or datetime.min.replace(tzinfo=UTC), o.path))
    rows = []
    for obj in manifests[-MANIFEST_FALLBACK:]:
        rows += data_quality_rows(Manifest.from_json(lake.get_bytes(obj.path), where=obj.path))
    quality = _quality_from_rows(rows)
    days = sorted({q.day for q in quality})[-QUALITY_DAYS:]
    return [q for q in quality if q.day in set(days)], "manifests" if quality else ""


def read_quality(lake: Lake, store_id: str, tables: Tables | None = None) -> tuple[list[QualityDay], str]:
    """The last QUALITY_DAYS days of the data_quality aggregate; before the first aggregate run, the same rows
    derived from the store's latest manifests (so on-call sees rejections right after an ingest)."""
    store = literal(store_id)
    cols = ", ".join(f"t.{c}" for c in ("date", "table_name", "rule", "action", "rows_in", "curated", "rejected",
                                        "rule_count"))
    rows = _read(lake, tables, "data_quality",
                 f"WITH d AS (SELECT DISTINCT date FROM t WHERE store_id = {store} ORDER BY date DESC "
                 f"LIMIT {QUALITY_DAYS}) SELECT {cols} FROM t JOIN d ON t.date = d.date WHERE t.store_id = {store}")
    if rows:
        return _quality_from_rows(rows), "aggregates"
    return _quality_from_manifests(lake, store_id)


def read_stock(lake: Lake, stock: StockStore, store_id: str, tables: Tables | None = None) -> list[StockItem]:
    """Every item of the store with its live count, joined with the item master and the forecast exactly as the
    alert service does (:func:`shared.services.stock_alerts.item_stock`), so the page and LowStock agree."""
    out = []
    for it in item_stock(lake, stock, store_id, tables):
        cover = None
        if it.mean_daily_demand is not None and it.mean_daily_demand > 0:
            cover = max(it.on_hand, 0) / it.mean_daily_demand
        out.append(StockItem(it.sku, it.name, it.on_hand, it.reorder_point, cover, it.suggested_order,
                             it.vendor_id, it.active))
    return out


def _read_alerts(lake: Lake) -> tuple[list[dict] | None, str | None, str | None]:
    """(active alerts, updatedAt, problem) from the alert state; (None, None, None) before the first run."""
    try:
        state = json.loads(lake.get_bytes(ALERTS_STATE_PATH))
    except FileNotFoundError:
        return None, None, None
    except ValueError as e:
        return None, None, f"{ALERTS_STATE_PATH} is not valid JSON ({e}); the next `inventory alerts` rewrites it"
    active = state.get("active")
    if not isinstance(active, list):
        return None, state.get("updatedAt"), (f"{ALERTS_STATE_PATH} has no list of active alerts (written by an "
                                              "older version): run `inventory alerts`")
    return [a for a in active if isinstance(a, dict)], state.get("updatedAt"), None


# --- everything the page shows ------------------------------------------------------------------------


def gather_dashboard_data(*, lake: Lake, stock: StockStore, now: datetime | None = None) -> DashboardData:
    """Read everything the page shows. A store whose inputs cannot be read gets a problem note, not a crash:
    on-call opens the dashboard exactly when something is broken."""
    now = now or datetime.now(UTC)
    data = DashboardData(as_of=now, lake=lake.describe(), stock_store=stock.describe())
    data.alerts, data.alerts_updated_at, problem = _read_alerts(lake)
    if problem:
        data.problems.append(problem)
    data.aggregates_present = next(iter(lake.list(layout.AGGREGATES)), None) is not None
    aggregated = aggregated_stores(lake)  # every store of the last run, with sales or without
    tables = open_snapshots(lake)
    ids = set(stock.stores()) | aggregated
    ids |= {str(a["storeId"]) for a in data.alerts or [] if a.get("storeId")}
    skus: set[str] = set()
    for store_id in sorted(ids):
        s = StoreData(store_id, aggregated=store_id in aggregated)
        _read_store(s, lake, stock, skus, tables)
        data.stores.append(s)
    data.skus = len(skus)
    return data


def _read_store(s: StoreData, lake: Lake, stock: StockStore, skus: set[str], tables: Tables) -> None:
    """Fill ``s`` section by section; an input that cannot be read becomes a problem note of that section."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("stock", lambda: _fill_stock(s, lake, stock, skus, tables)),
        ("sales trend", lambda: setattr(s, "sales", read_sales(lake, s.store_id, tables))),
        ("forecast", lambda: setattr(s, "forecast", read_forecast(lake, s.store_id, tables))),
        ("data quality", lambda: _fill_quality(s, lake, tables)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as e:  # one unreadable input must not hide the rest of the page
            s.problems.append(f"could not read the {what} of store {s.store_id}: {type(e).__name__}: {e}")


def _fill_stock(s: StoreData, lake: Lake, stock: StockStore, skus: set[str], tables: Tables) -> None:
    base = stock.baseline(s.store_id)
    s.last_snapshot_at = parse_time(base.snapshot_at) if base else None
    items = read_stock(lake, stock, s.store_id, tables)
    s.has_stock = bool(items)
    s.skus = len(items)
    skus.update(it.sku for it in items)
    s.chart_items, s.low_items, s.low_stock = select_stock(items)


def _fill_quality(s: StoreData, lake: Lake, tables: Tables) -> None:
    s.quality, s.quality_source = read_quality(lake, s.store_id, tables)


__all__ = ["CHART_ITEMS", "FORECAST_DAYS", "LOW_STOCK_ROWS", "QUALITY_DAYS", "TREND_DAYS", "DashboardData", "DayUnits",
           "ForecastDay", "QualityDay", "StockItem", "StoreData", "forecast_day", "gather_dashboard_data",
           "parse_time", "read_forecast", "read_quality", "read_sales", "read_stock", "select_stock", "units_in_days",
           "utc_day", "week_units"]
