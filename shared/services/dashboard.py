"""Use case: one self-contained HTML page of the lake and the stock (``inventory dashboard``).

    lake (Delta: aggregates, curated items; manifests/, alerts/state.json) ─┐
    stock store (live on-hand, baselines) ──────────────────────────────────┴─▶ DashboardData ─▶ render_* ─▶ HTML

Who reads it: store and category managers (stock against reorder points, the sales trend and its forecast,
what to reorder) and on-call (is every store's data fresh, what was rejected, which alerts are true now).

Why it is built this way:

* **Two steps.** :func:`gather_dashboard_data` does all the reading (the :class:`~shared.ports.lake.Lake`
  port, and the Delta tables through delta-rs at the lake's own location, so a Blob lake works like the folder
  one; each table opened once, read for one store at a time) and returns plain data; the ``render_*`` functions
  are pure functions of that data, so the page can be unit-tested without a lake and a broken input spoils
  one section, not the page.
* **Self-contained.** The file is mailed, attached to tickets and opened on machines without network access,
  so there is no external JS, CSS, font or CDN: inline CSS, SVG charts drawn here, and a few lines of inline JS
  (a store selector; the page is complete without it). A Content-Security-Policy forbids every network load,
  so a mistake shows up as a console error in the browser test rather than as a silent fetch.
* **Pictures first, numbers on hover.** Every bar, band and cell carries an SVG ``<title>`` with its numbers;
  the tables hold the numbers people act on (what to reorder, which rule rejected what).
* **Untrusted text.** Skus, names, vendors and alert reasons come from store databases: every piece of text is
  escaped with :func:`html.escape`, and no data is ever placed inside the script.
* **Bounded size.** Rows per section are capped (see the ``*_ROWS`` / ``*_DAYS`` constants), so 50 stores ×
  5,000 skus stay well under 2 MB whatever the lake holds; a note says when something was cut.
* **Live stock.** On-hand figures come from the stock store at page time, joined with the item master and the
  demand forecast exactly as the alert service does (:func:`shared.services.raise_alerts.item_stock`), so the
  low-stock table and the LowStock alerts agree.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shared.core import layout
from shared.core.aggregates import OUTPUTS, data_quality_rows
from shared.core.aggregates import ROOT as AGGREGATES_ROOT
from shared.core.alerts import ALERT_KINDS, SEVERITY_NAMES
from shared.core.sql import literal
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.services.compute_aggregates import aggregated_stores
from shared.services.lake_tables import Snapshots
from shared.services.raise_alerts import STATE_PATH as ALERTS_STATE_PATH
from shared.services.raise_alerts import item_stock

TREND_DAYS = 56  # ~8 weeks of daily units before the forecast
FORECAST_DAYS = 14  # forecast days drawn after the history
CHART_ITEMS = 30  # items in a store's stock vs reorder point chart
LOW_STOCK_ROWS = 20  # rows in a store's low-stock table
QUALITY_DAYS = 14  # days in a store's data quality strip and table
QUALITY_TABLE_DAYS = 7  # of those, days in the data quality table
MANIFEST_FALLBACK = 30  # manifests read per store when the data_quality aggregate is missing
ALERT_ROWS = 200  # rows in the alerts table
Z95 = 1.96  # the forecast intervals' half-width in standard deviations (core.forecast.ForecastConfig.z)
QUALITY_TABLES = ("items", "vendors", "stock", "sales", "receipts")
SEVERITY_COLOURS = {"critical": "#7a0010", "error": "#d62728", "warning": "#e08a00", "informational": "#4a78b0"}


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
        """Handbook §2: active, reorder point above zero, on hand at or below it."""
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


# --- reading the lake ---------------------------------------------------------------------------------


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read(lake: Lake, tables: Snapshots | None, output: str, sql: str) -> list[dict]:
    """The rows of ``sql`` over the aggregate ``output`` (named ``t``); none before the first aggregates run."""
    found = (tables or Snapshots(lake)).read(sql, t=OUTPUTS[output].path)
    return found.to_pylist() if found is not None else []


def read_sales(lake: Lake, store_id: str, tables: Snapshots | None = None) -> list[DayUnits]:
    """Daily units (and revenue) of the last TREND_DAYS days with sales, from sales_daily_category."""
    rows = _read(lake, tables, "sales_daily_category",
                 f"SELECT date, sum(units) AS units, sum(revenue) AS revenue, count(revenue) AS priced FROM t "
                 f"WHERE store_id = {literal(store_id)} GROUP BY date ORDER BY date DESC LIMIT {TREND_DAYS}")
    return [DayUnits(r["date"], int(r["units"] or 0), float(r["revenue"]) if r["priced"] else None)
            for r in reversed(rows)]


def read_forecast(lake: Lake, store_id: str, tables: Snapshots | None = None) -> list[ForecastDay]:
    """The first FORECAST_DAYS forecast days, summed over skus (5,000 skus × a 28-day horizon is 140k rows per
    store: summed in the query, not row by row in Python)."""
    rows = _read(lake, tables, "forecast",
                 f"SELECT date, sum(coalesce(mean, 0.0)) AS m, "
                 f"sum(power((coalesce(upper, 0.0) - coalesce(lower, 0.0)) / {2 * Z95}, 2)) AS var FROM t "
                 f"WHERE store_id = {literal(store_id)} GROUP BY date ORDER BY date LIMIT {FORECAST_DAYS}")
    return [forecast_day(r["date"], r["m"], r["var"]) for r in rows]


def forecast_day(day: date, mean: float, variance: float) -> ForecastDay:
    """The store total's approximate band from the summed mean and summed per-sku variances."""
    half = Z95 * math.sqrt(max(variance, 0.0))
    return ForecastDay(day, mean, max(mean - half, 0.0), mean + half)


def _quality_from_rows(rows: Iterable[dict]) -> list[QualityDay]:
    """data_quality rows (long form, one totals row per table) summed per day and table."""
    acc: dict[tuple[date, str], dict] = {}
    for r in rows:
        day = r["date"] if isinstance(r["date"], date) else _parse_day(str(r["date"])[:10])
        if day is None:
            continue
        a = acc.setdefault((day, r["table_name"]), {"in": 0, "curated": 0, "rejected": 0, "rules": {}})
        if r["rule"] == "":
            a["in"] += int(r["rows_in"] or 0)
            a["curated"] += int(r["curated"] or 0)
            a["rejected"] += int(r["rejected"] or 0)
        else:
            key = (r["rule"], r["action"] or "")
            a["rules"][key] = a["rules"].get(key, 0) + int(r["rule_count"] or 0)
    return [QualityDay(day, table, a["in"], a["curated"], a["rejected"],
                       tuple(sorted(((c, act, n) for (c, act), n in a["rules"].items()), key=lambda x: (-x[2], x[0]))))
            for (day, table), a in sorted(acc.items())]


def read_quality(lake: Lake, store_id: str, tables: Snapshots | None = None) -> tuple[list[QualityDay], str]:
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
    manifests = [o for o in lake.list(layout.manifests(store_id)) if o.path.endswith(".json")]
    manifests.sort(key=lambda o: (o.last_modified or datetime.min.replace(tzinfo=UTC), o.path))
    rows = []
    for obj in manifests[-MANIFEST_FALLBACK:]:
        rows += data_quality_rows(json.loads(lake.get_bytes(obj.path)))
    quality = _quality_from_rows(rows)
    days = sorted({q.day for q in quality})[-QUALITY_DAYS:]
    return [q for q in quality if q.day in set(days)], "manifests" if quality else ""


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


def read_stock(lake: Lake, stock: StockStore, store_id: str, tables: Snapshots | None = None) -> list[StockItem]:
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


def gather_dashboard_data(*, lake: Lake, stock: StockStore, now: datetime | None = None) -> DashboardData:
    """Read everything the page shows. A store whose inputs cannot be read gets a problem note, not a crash:
    on-call opens the dashboard exactly when something is broken."""
    now = now or datetime.now(UTC)
    data = DashboardData(as_of=now, lake=lake.describe(), stock_store=stock.describe())
    data.alerts, data.alerts_updated_at, problem = _read_alerts(lake)
    if problem:
        data.problems.append(problem)
    data.aggregates_present = next(iter(lake.list(f"{AGGREGATES_ROOT}/")), None) is not None
    aggregated = aggregated_stores(lake)  # every store of the last run, with sales or without
    tables = Snapshots(lake)
    ids = set(stock.stores()) | aggregated
    ids |= {str(a["storeId"]) for a in data.alerts or [] if a.get("storeId")}
    skus: set[str] = set()
    for store_id in sorted(ids):
        s = StoreData(store_id, aggregated=store_id in aggregated)
        steps = [
            ("stock", lambda s=s: _fill_stock(s, lake, stock, skus, tables)),
            ("sales trend", lambda s=s: setattr(s, "sales", read_sales(lake, s.store_id, tables))),
            ("forecast", lambda s=s: setattr(s, "forecast", read_forecast(lake, s.store_id, tables))),
            ("data quality", lambda s=s: _fill_quality(s, lake, tables)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as e:  # one unreadable input must not hide the rest of the page
                s.problems.append(f"could not read the {what} of store {store_id}: {type(e).__name__}: {e}")
        data.stores.append(s)
    data.skus = len(skus)
    return data


def _fill_stock(s: StoreData, lake: Lake, stock: StockStore, skus: set[str], tables: Snapshots) -> None:
    base = stock.baseline(s.store_id)
    s.last_snapshot_at = _parse_time(base.snapshot_at) if base else None
    items = read_stock(lake, stock, s.store_id, tables)
    s.has_stock = bool(items)
    s.skus = len(items)
    skus.update(it.sku for it in items)
    s.chart_items, s.low_items, s.low_stock = select_stock(items)


def _fill_quality(s: StoreData, lake: Lake, tables: Snapshots) -> None:
    s.quality, s.quality_source = read_quality(lake, s.store_id, tables)


# --- rendering: helpers -------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Escape text for HTML content and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if digits else f"{round(value):,}"


def _f(x: float) -> str:
    """An SVG coordinate: one decimal, no trailing zeros (the charts are most of the page's bytes)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def _stamp(text: object) -> str:
    """A UTC timestamp from the lake's JSON as ``YYYY-MM-DD HH:MM``; anything unparsable as it is (escaped)."""
    moment = _parse_time(str(text)) if text else None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else esc(text)


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "no dump yet"
    hours = (now - moment).total_seconds() / 3600
    return f"{hours:.0f} h ago" if hours < 72 else f"{hours / 24:.0f} days ago"


def _today(as_of: datetime) -> date:
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
    today = _today(as_of)
    week = units_in_days(sales, today, 7)
    covered = min(d.day for d in sales) <= today - timedelta(days=13)
    return week, units_in_days(sales, today - timedelta(days=7), 7) if covered else None


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _anchor(store_id: str) -> str:
    """An element id for a store (store ids are validated to [A-Za-z0-9_-], but be safe anyway)."""
    return "store-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in store_id)


def _nice_max(value: float) -> float:
    """The smallest 1/2/5 × 10^k at or above ``value``: a round top for a chart's axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _severity(alert: dict) -> str:
    sev = alert.get("severity")
    if sev in SEVERITY_COLOURS:
        return str(sev)
    level = alert.get("severityLevel")
    return SEVERITY_NAMES.get(level, "informational") if isinstance(level, int) else "informational"


# --- rendering: charts --------------------------------------------------------------------------------


def render_trend_chart(sales: Sequence[DayUnits], forecast: Sequence[ForecastDay]) -> str:
    """Daily units as bars, then the forecast as a band (summed bounds) around a dashed mean line."""
    if not sales and not forecast:
        return ""
    w, h, left, right, top, bottom = 600, 200, 46, 8, 10, 24
    first = (sales[0].day if sales else forecast[0].day)
    last = (forecast[-1].day if forecast else sales[-1].day)
    n_days = (last - first).days + 1
    slot = (w - left - right) / n_days
    top_value = _nice_max(max([d.units for d in sales] + [f.upper for f in forecast] + [1]))
    plot_h = h - top - bottom

    def x(day: date) -> float:
        return left + (day - first).days * slot

    def y(v: float) -> float:
        return top + plot_h * (1 - min(v, top_value) / top_value)

    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="daily units sold and forecast">']
    for i in range(5):
        v = top_value * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{_f(y(v))}" y2="{_f(y(v))}"/>'
                     f'<text class="ax end" x="{left - 4}" y="{_f(y(v) + 3)}">{_n(v)}</text>')
    day = first
    while day <= last:  # a label every Monday
        if day.weekday() == 0:
            parts.append(f'<text class="ax mid" x="{_f(x(day) + slot / 2)}" y="{h - 8}">'
                         f'{day:%b} {day.day}</text>')
        day += timedelta(days=1)
    bar_w = _f(max(slot * 0.8, 0.5))
    parts.append('<g class="bar">')
    for d in sales:
        rev = f", revenue {_n(d.revenue, 2)}" if d.revenue is not None else ""
        parts.append(f'<rect x="{_f(x(d.day) + slot * 0.1)}" y="{_f(y(d.units))}" width="{bar_w}" '
                     f'height="{_f(top + plot_h - y(d.units))}"><title>{d.day:%a %Y-%m-%d}: {_n(d.units)} units'
                     f'{rev}</title></rect>')
    parts.append("</g>")
    if forecast:
        xs = [x(f.day) + slot / 2 for f in forecast]
        upper = " ".join(f"{_f(a)},{_f(y(f.upper))}" for a, f in zip(xs, forecast, strict=True))
        lower = " ".join(f"{_f(a)},{_f(y(f.lower))}" for a, f in reversed(list(zip(xs, forecast, strict=True))))
        mean = " ".join(f"{_f(a)},{_f(y(f.mean))}" for a, f in zip(xs, forecast, strict=True))
        start = x(forecast[0].day)
        parts.append(f'<line class="now" x1="{_f(start)}" x2="{_f(start)}" y1="{top}" y2="{top + plot_h}"/>'
                     f'<text class="ax" x="{_f(start + 3)}" y="{top + 9}">forecast</text>'
                     f'<polygon class="band" points="{upper} {lower}"/><polyline class="fmean" points="{mean}"/>')
        parts.append('<g class="hit">')
        for a, f in zip(xs, forecast, strict=True):
            parts.append(f'<rect x="{_f(a - slot / 2)}" y="{top}" width="{_f(slot)}" height="{plot_h}">'
                         f'<title>{f.day:%a %Y-%m-%d} forecast: {_n(f.mean, 1)} units (band {_n(f.lower)}–'
                         f'{_n(f.upper)})</title></rect>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def render_stock_chart(items: Sequence[StockItem]) -> str:
    """One row per item: on hand as a bar scaled to the item's own reorder point (the marker), so items with
    reorder points of 5 and of 500 compare at a glance; red when at or below it. Numbers on the right."""
    if not items:
        return ""
    row, label_w, bar_w, value_w, top = 17, 230, 280, 90, 16
    w, h = label_w + bar_w + value_w, top + row * len(items) + 4
    cap = 2.0  # bars stop at twice the reorder point
    marker = label_w + bar_w / cap
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="on hand against reorder point">',
             f'<text class="ax" x="{label_w}" y="11">0</text>'
             f'<text class="ax mid" x="{_f(marker)}" y="11">reorder point</text>'
             f'<text class="ax end" x="{label_w + bar_w}" y="11">2×</text>']
    for i, it in enumerate(items):
        y0 = top + i * row
        ratio = max(it.on_hand, 0) / it.reorder_point if it.reorder_point > 0 else 0
        length = bar_w / cap * min(ratio, cap)
        cls = "low" if it.low else "ok"
        cover = f", {_n(it.days_of_cover, 1)} days of cover" if it.days_of_cover is not None else ""
        label = _short(f"{it.sku} {it.name}".strip(), 34)
        parts.append(
            f'<g><title>{esc(_short(it.sku, 40))}: {_n(it.on_hand)} on hand, reorder point '
            f'{_n(it.reorder_point)}{cover}</title>'
            f'<text class="end" x="{label_w - 6}" y="{y0 + 12}">{esc(label)}</text>'
            f'<rect class="{cls}" x="{label_w}" y="{y0 + 3}" width="{_f(max(length, 1.5))}" height="{row - 5}"/>'
            f'<text class="val{" neg" if it.low else ""}" x="{label_w + bar_w + 6}" y="{y0 + 12}">'
            f'{_n(it.on_hand)} / {_n(it.reorder_point)}</text></g>')
    parts.append(f'<line class="rp" x1="{_f(marker)}" x2="{_f(marker)}" y1="{top}" y2="{h - 2}"/></svg>')
    return "".join(parts)


def _quality_colour(q: QualityDay | None) -> str:
    if q is None:
        return "none"
    if q.rejected == 0:
        return "q0"
    share = q.rejected / max(q.rows_in, 1)
    return "q1" if share < 0.01 else "q2" if share < 0.05 else "q3"


def _rules_text(rules: Iterable[tuple[str, str, int]]) -> str:
    by_action: dict[str, list[str]] = {}
    for code, action, n in rules:
        by_action.setdefault(action, []).append(f"{code} {_n(n)}")
    names = {"reject": "rejected", "flag": "flagged", "fix": "fixed"}  # in this order: what was lost first
    order = sorted(by_action, key=lambda a: (list(names).index(a) if a in names else len(names), a))
    return "; ".join(f"{names.get(a, a)}: {', '.join(by_action[a])}" for a in order)


def render_quality_strip(quality: Sequence[QualityDay]) -> str:
    """Tables × days, each cell coloured by the share of rows rejected (grey: no dump that day); hovering a
    day shows every table's numbers (one tooltip per day keeps the page small)."""
    if not quality:
        return ""
    days = sorted({q.day for q in quality})
    tables = [t for t in QUALITY_TABLES if any(q.table == t for q in quality)]
    tables += sorted({q.table for q in quality} - set(tables))
    cell_w, cell_h, left, top = 30, 16, 70, 4
    w, h = left + cell_w * len(days) + 4, top + cell_h * len(tables) + 18
    by_key = {(q.day, q.table): q for q in quality}
    cells: dict[str, list[str]] = {}
    hits: list[str] = []
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="rows rejected per table and day">']
    for j, table in enumerate(tables):
        parts.append(f'<text class="end" x="{left - 6}" y="{top + j * cell_h + 12}">{esc(table)}</text>')
    for i, day in enumerate(days):
        x0 = left + i * cell_w
        if i % 2 == (len(days) - 1) % 2:  # label every other day, always the latest
            parts.append(f'<text class="ax mid" x="{x0 + cell_w // 2}" y="{h - 4}">{day:%m-%d}</text>')
        tips = []
        for j, table in enumerate(tables):
            q = by_key.get((day, table))
            cell = f"M{x0 + 1} {top + j * cell_h + 1}h{cell_w - 2}v{cell_h - 2}h{2 - cell_w}z"
            cells.setdefault(_quality_colour(q), []).append(cell)
            if q is not None:
                rejects = ", ".join(f"{code} {_n(n)}" for code, action, n in q.rules if action == "reject")
                tips.append(f"{esc(table)} {_n(q.rejected)} of {_n(q.rows_in)}"
                            + (f" ({esc(rejects)})" if rejects else ""))
        hits.append(f'<rect x="{x0}" y="{top}" width="{cell_w}" height="{cell_h * len(tables)}">'
                    f'<title>{day}, rows rejected: {"; ".join(tips) or "no dump"}</title></rect>')
    # One path per colour (the cells carry no numbers), then a transparent column per day with its tooltip.
    parts += [f'<path class="{cls}" d="{"".join(d)}"/>' for cls, d in sorted(cells.items())]
    parts.append(f'<g class="hit">{"".join(hits)}</g></svg>')
    return "".join(parts)


# --- rendering: sections ------------------------------------------------------------------------------

CSS = """
:root{--ink:#1d2330;--muted:#5b6475;--line:#dfe3ea;--bg:#f6f7f9;--low:#d62728;--ok:#3d7fc1}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#1f2a3d;color:#fff;padding:14px 24px}header h1{margin:0 0 4px;font-size:20px}
header .meta{color:#c9d2e3;font-size:13px}main{padding:16px 24px;max-width:1500px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;margin:0 0 16px}
h2{font-size:17px;margin:0 0 8px}h3{font-size:14px;margin:14px 0 6px;color:var(--muted)}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0 0}
.kpi{background:#2b3850;border-radius:6px;padding:6px 12px;min-width:110px}
.kpi b{display:block;font-size:20px}.kpi span{font-size:12px;color:#c9d2e3}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.nw{white-space:nowrap}tr.lowrow td:first-child{border-left:3px solid var(--low)}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px;font-weight:600}
.sev-critical{background:#7a0010}.sev-error{background:#d62728}.sev-warning{background:#e08a00}
.sev-informational{background:#4a78b0}
.note{color:var(--muted);font-size:12px;margin:4px 0}.empty{color:var(--muted);font-style:italic}
.problem{background:#fff4e5;border-left:4px solid #e08a00;padding:6px 10px;margin:6px 0}
.stale{color:var(--low);font-weight:600}.scroll{max-height:460px;overflow:auto}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:4px 28px}
.chart{max-width:100%;height:auto}.chart text{font-size:11px;fill:var(--ink)}
.chart .ax{fill:var(--muted);font-size:10px}.chart .mid{text-anchor:middle}.chart .end{text-anchor:end}
.grid{stroke:#eceff3}.bar{fill:var(--ok)}.bar rect:hover{fill-opacity:.75}.hit{fill:#c07800;fill-opacity:0}
.hit rect:hover{fill-opacity:.15}.band{fill:#f0a202;fill-opacity:.25;stroke:none}
.fmean{fill:none;stroke:#c07800;stroke-width:2;stroke-dasharray:5 3}.now{stroke:#999;stroke-dasharray:2 2}
.low{fill:var(--low)}.ok{fill:var(--ok)}.rp{stroke:var(--ink);stroke-width:1.5}
.val{fill:var(--muted)}.val.neg{fill:var(--low);font-weight:600}
.none{fill:#eceff3}.q0{fill:#9fd49f}.q1{fill:#ffe08a}.q2{fill:#f5a25d}.q3{fill:#d62728}
.legend i{display:inline-block;width:10px;height:10px;margin:0 3px 0 10px;vertical-align:-1px}
.k-bar{background:#3d7fc1}.k-band{background:#f7d9a0}.k-mean{background:#c07800;height:3px!important}
i.none{background:#eceff3}i.q0{background:#9fd49f}i.q1{background:#ffe08a}i.q2{background:#f5a25d}
i.q3{background:#d62728}
select{font:inherit;padding:2px 6px}[hidden]{display:none!important}a{color:#2456a6}
"""

SCRIPT = """
(function () {
  var sel = document.getElementById("store-filter");
  function show(value) {
    var els = document.querySelectorAll("[data-store]");
    for (var i = 0; i < els.length; i++) {
      els[i].hidden = value !== "" && els[i].getAttribute("data-store") !== value;
    }
  }
  if (sel) {
    var m = /^#store=(.+)$/.exec(window.location.hash || "");
    if (m) {
      var wanted = "";
      try { wanted = decodeURIComponent(m[1]); } catch (e) { wanted = ""; }
      for (var i = 0; i < sel.options.length; i++) {
        if (sel.options[i].value === wanted) { sel.value = wanted; }
      }
    }
    show(sel.value);
    sel.addEventListener("change", function () {
      show(sel.value);
      try { window.location.hash = sel.value ? "store=" + encodeURIComponent(sel.value) : ""; } catch (e) {}
    });
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
"""

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")


def _alert_counts(alerts: Sequence[dict] | None) -> dict[str, int]:
    counts = {name: 0 for name in SEVERITY_COLOURS}
    for a in alerts or []:
        counts[_severity(a)] = counts.get(_severity(a), 0) + 1
    return counts


def render_header(data: DashboardData) -> str:
    ids = [s.store_id for s in data.stores]
    shown = ", ".join(esc(i) for i in ids[:40]) + (f" and {len(ids) - 40} more" if len(ids) > 40 else "")
    low = sum(s.low_stock for s in data.stores)
    kpis = [(_n(len(ids)), "stores"), (_n(data.skus), "skus"), (_n(low), "low-stock items")]
    if data.alerts is None:
        kpis.append(("–", "alerts: no alert run yet"))
    else:
        kpis += [(_n(n), f"{name} alerts") for name, n in _alert_counts(data.alerts).items()]
    chips = "".join(f'<div class="kpi"><b>{v}</b><span>{esc(label)}</span></div>' for v, label in kpis)
    options = "".join(f'<option value="{esc(i)}">{esc(i)}</option>' for i in ids)
    selector = (f'<label>Store: <select id="store-filter"><option value="">all stores</option>{options}</select>'
                f'</label>') if ids else ""
    return (f'<header><h1>Inventory dashboard</h1><div class="meta">as of {_when(data.as_of)} · stores: '
            f'{shown or "none"}<br>lake: {esc(data.lake)} · stock store: {esc(data.stock_store)}'
            f'{" · alerts evaluated " + _stamp(data.alerts_updated_at) if data.alerts_updated_at else ""}</div>'
            f'<div class="kpis">{chips}</div><div class="meta" style="margin-top:8px">{selector}</div></header>')


def render_alerts(data: DashboardData) -> str:
    if data.alerts is None:
        body = '<p class="empty">No alert run yet: run <code>inventory alerts</code> (or wait for its timer).</p>'
    elif not data.alerts:
        body = '<p class="empty">No alert is true right now.</p>'
    else:
        rows = sorted(data.alerts, key=lambda a: (a.get("severityLevel", 9) if isinstance(a.get("severityLevel"),
                                                  int) else 9, str(a.get("storeId", "")), str(a.get("kind", "")),
                                                  str(a.get("sku", ""))))
        trs = []
        for a in rows[:ALERT_ROWS]:
            sev = _severity(a)
            trs.append(f'<tr data-store="{esc(a.get("storeId", ""))}"><td><span class="sev sev-{sev}">{esc(sev)}'
                       f'</span></td><td>{esc(a.get("kind", ""))}</td><td>{esc(a.get("storeId", ""))}</td>'
                       f'<td class="nw">{esc(_short(str(a.get("sku", "")), 40))}</td>'
                       f'<td>{esc(_short(str(a.get("reason", "")), 400))}</td>'
                       f'<td class="nw">{_stamp(a.get("raisedAt"))}</td></tr>')
        more = (f'<p class="note">Showing the {ALERT_ROWS} most severe of {len(rows)} alerts; '
                f'<code>alerts/state.json</code> in the lake lists them all.</p>') if len(rows) > ALERT_ROWS else ""
        body = ('<div class="scroll"><table><thead><tr><th>severity</th><th>kind</th><th>store</th><th>sku</th>'
                f'<th>reason</th><th>raised at (UTC)</th></tr></thead><tbody>{"".join(trs)}</tbody></table></div>'
                f'{more}')
    kinds = ", ".join(f'<abbr title="{esc(k.when)}">{esc(k.name)}</abbr>' for k in ALERT_KINDS)
    return (f'<section id="alerts"><h2>Alerts true now</h2>{body}<p class="note">Kinds: {kinds}. An alert is '
            'listed while its condition holds; on-call is paged once per cool-down (Application Insights rules).'
            '</p></section>')


def render_overview(data: DashboardData) -> str:
    """One row per store: freshness, size, low stock, alerts, last week's units, last rejections."""
    if not data.stores:
        return ('<section id="overview"><h2>Stores</h2><p class="empty">The lake has no stores yet: run '
                '<code>inventory demo</code>, or ingest a dump with <code>inventory ingest</code>.</p></section>')
    per_store: dict[str, dict[str, int]] = {}
    for a in data.alerts or []:
        c = per_store.setdefault(str(a.get("storeId", "")), {})
        c[_severity(a)] = c.get(_severity(a), 0) + 1
    trs = []
    for s in data.stores:
        week, prev = week_units(s.sales, data.as_of)
        change = f" ({(week - prev) / prev:+.0%})" if week is not None and prev else ""
        latest = max((q.day for q in s.quality), default=None)
        rin = sum(q.rows_in for q in s.quality if q.day == latest)
        rej = sum(q.rejected for q in s.quality if q.day == latest)
        rejected = f"{_n(rej)} of {_n(rin)}" if latest else "–"
        counts = per_store.get(s.store_id, {})
        chips = " ".join(f'<span class="sev sev-{k}">{counts[k]} {k}</span>' for k in SEVERITY_COLOURS if counts.get(k))
        stale = s.last_snapshot_at is None or data.as_of - s.last_snapshot_at > timedelta(hours=26)
        trs.append(f'<tr><td><a href="#{_anchor(s.store_id)}">{esc(s.store_id)}</a></td>'
                   f'<td class="{"num stale" if stale else "num"}">'
                   f'{_age(s.last_snapshot_at, data.as_of)}</td><td class="num">{_n(s.skus)}</td>'
                   f'<td class="num">{_n(s.low_stock)}</td><td>{chips or "–"}</td>'
                   f'<td class="num">{_n(week)}{change}</td><td class="num">{rejected}</td></tr>')
    return ('<section id="overview"><h2>Stores</h2><table><thead><tr><th>store</th><th class="num">last dump</th>'
            '<th class="num">skus</th><th class="num">low stock</th><th>alerts</th><th class="num">units, last 7 '
            'days</th><th class="num">rows rejected, last dump day</th></tr></thead><tbody>'
            f'{"".join(trs)}</tbody></table><p class="note">Last dump: the snapshot the stock store is based on '
            '(red: older than 26 h, or none). Units: sales aggregate, the 7 UTC days ending today, and in brackets the '
            'change from the 7 days before.</p></section>')


def render_low_stock_table(s: StoreData) -> str:
    if not s.low_items:
        return '<p class="empty">No item is at or below its reorder point.</p>'
    trs = "".join(
        f'<tr class="lowrow"><td>{esc(_short(it.sku, 40))}</td><td>{esc(_short(it.name, 60))}</td>'
        f'<td class="num">{_n(it.on_hand)}</td>'
        f'<td class="num">{_n(it.reorder_point)}</td><td class="num">{_n(it.days_of_cover, 1)}</td>'
        f'<td class="num">{_n(it.suggested_order)}</td><td>{esc(_short(it.vendor, 30))}</td></tr>'
        for it in s.low_items)
    more = (f'<p class="note">The {len(s.low_items)} most urgent of {_n(s.low_stock)} low-stock items; '
            f'<code>inventory alerts</code> lists them all.</p>') if s.low_stock > len(s.low_items) else ""
    return ('<table><thead><tr><th>sku</th><th>name</th><th class="num">on hand</th><th class="num">reorder point'
            '</th><th class="num">days of cover</th><th class="num">suggested order</th><th>vendor</th></tr></thead>'
            f'<tbody>{trs}</tbody></table>{more}')


def render_quality_table(quality: Sequence[QualityDay]) -> str:
    """The last QUALITY_TABLE_DAYS days in numbers (the strip above shows QUALITY_DAYS, numbers on hover)."""
    days = sorted({q.day for q in quality}, reverse=True)[:QUALITY_TABLE_DAYS]
    trs = []
    for day in days:
        rows = [q for q in quality if q.day == day]
        rules = "; ".join(f"{esc(q.table)} — {esc(_rules_text(q.rules))}" for q in rows if q.rules)
        trs.append(f'<tr><td class="nw">{day}</td><td class="num">{_n(sum(q.rows_in for q in rows))}</td>'
                   f'<td class="num">{_n(sum(q.curated for q in rows))}</td>'
                   f'<td class="num">{_n(sum(q.rejected for q in rows))}</td><td>{rules or "–"}</td></tr>')
    return ('<table><thead><tr><th>dump day</th><th class="num">rows in</th><th class="num">curated</th>'
            f'<th class="num">rejected</th><th>rules that fired (rows)</th></tr></thead><tbody>{"".join(trs)}'
            '</tbody></table>')


def render_store(s: StoreData, as_of: datetime) -> str:
    problems = "".join(f'<div class="problem">{esc(p)}</div>' for p in s.problems)
    # Sales trend
    if s.sales or s.forecast:
        today = _today(as_of)
        ahead = sum(f.mean for f in s.forecast)
        last_sale = max((d.day for d in s.sales if d.units > 0 and d.day <= today), default=None)
        quiet = f' (last sales on {last_sale})' if last_sale and last_sale < today - timedelta(days=6) else ""
        summary = (f'Last 7 days (UTC, to {today}): <b>{_n(units_in_days(s.sales, today, 7))}</b> units{quiet}'
                   + (f' · next {len(s.forecast)} days forecast: <b>≈{_n(ahead)}</b> units' if s.forecast else ""))
        trend = (f'<p class="note">{summary}</p>{render_trend_chart(s.sales, s.forecast)}'
                 '<p class="legend note"><i class="k-bar"></i>units sold per UTC day<i class="k-band"></i>forecast '
                 'band (approximate, <a href="#about">see below</a>)<i class="k-mean"></i>forecast mean</p>')
        if not s.forecast:
            trend += '<p class="note">No forecast yet (it needs at least 7 days of sales history).</p>'
    elif s.aggregated:  # the aggregates ran for this store and found no sale
        trend = ('<p class="empty">No sales for this store: the sales aggregates hold none (as of the last '
                 '<code>inventory aggregate</code> run).</p>')
    else:
        trend = ('<p class="empty">No sales aggregates yet: run <code>inventory aggregate</code> (or wait for its '
                 'timer).</p>')
    # Stock
    if s.chart_items:
        stock = (f'{render_stock_chart(s.chart_items)}<p class="note">The {len(s.chart_items)} items closest to or '
                 'below their reorder point (black line); red: at or below it.</p>')
    elif s.has_stock:
        stock = '<p class="empty">No active item of this store has a reorder point.</p>'
    else:
        stock = ('<p class="empty">No stock counts for this store yet: ingest a dump (<code>inventory ingest</code>)'
                 '.</p>')
    # Data quality
    if s.quality:
        source = (" (from the manifests: the data_quality aggregate is not written yet — run "
                  "<code>inventory aggregate</code>)") if s.quality_source == "manifests" else ""
        quality = (f'{render_quality_strip(s.quality)}<p class="legend note">rows rejected:<i class="q0"></i>none'
                   '<i class="q1"></i>&lt; 1 %<i class="q2"></i>&lt; 5 %<i class="q3"></i>5 % or more'
                   f'<i class="none"></i>no dump{source}</p>{render_quality_table(s.quality)}')
    else:
        quality = '<p class="empty">No ingested dump yet.</p>'
    low = f"<h3>Low on stock — what to reorder</h3>{render_low_stock_table(s)}" if s.has_stock else ""
    age = f" · last dump {_when(s.last_snapshot_at)}" if s.last_snapshot_at else " · no dump yet"
    return (f'<section id="{_anchor(s.store_id)}" data-store="{esc(s.store_id)}"><h2>Store {esc(s.store_id)}'
            f'<span class="note">{age} · {_n(s.skus)} skus · {_n(s.low_stock)} low on stock</span></h2>{problems}'
            f'<div class="grid2"><div><h3>Sales trend</h3>{trend}</div><div><h3>Stock vs reorder point</h3>{stock}'
            f'</div></div>{low}<h3>Data quality per dump day</h3>{quality}</section>')


ABOUT = (
    '<section id="about"><h2>About the numbers</h2><ul class="note">'
    '<li><b>Stock</b> is live: the stock store when the page was made (the latest dump\'s count plus the sales, '
    'returns and receipts since), joined with the item master of that dump. An item is low on stock when it is '
    'active, has a reorder point above zero and its on-hand count is at or below it — the LowStock alert\'s rule.</li>'
    '<li><b>Low on stock</b>: most urgent first — out of stock, then fewest days of cover (on hand ÷ forecast units '
    'per day). Suggested order: the forecast over the vendor\'s lead time + 3 safety days, minus on hand, in whole '
    'reorder quantities (–: no forecast yet).</li>'
    '<li><b>Stock vs reorder point</b>: each bar is on hand as a share of that item\'s own reorder point (the black '
    'line), up to twice it, so items with reorder points of 5 and 500 compare at a glance. Hover for numbers.</li>'
    '<li><b>Sales trend</b>: units per UTC day from the sales aggregate. The forecast mean is the sum of every sku\'s '
    'forecast. The band is an approximate 95 % range for the store total: each sku\'s interval is combined as if '
    'skus sold independently (summing the skus\' bounds would give a band of 0 to several times the mean). Busy '
    'days lift all skus together, so the real range is somewhat wider.</li>'
    '<li><b>Data quality</b>: per UTC day of the dumps\' snapshots and table, rows in the dump, kept (curated) and '
    'set aside (rejected, with the rule); flagged and fixed rows are kept. Hover a day for every table.</li>'
    '<li><b>Alerts</b>: what the last <code>inventory alerts</code> run found true; on-call is paged through '
    'Application Insights once per cool-down.</li></ul></section>'
)


def render_dashboard(data: DashboardData) -> str:
    """The whole page, from plain data (no I/O)."""
    notes = "".join(f'<div class="problem">{esc(p)}</div>' for p in data.problems)
    if data.stores and not data.aggregates_present:
        notes += ('<div class="problem">No aggregates in the lake yet: run <code>inventory aggregate</code> for the '
                  'sales trend, forecast and data quality history. Stock and alerts below are live.</div>')
    body = (render_header(data) + f"<main>{notes}" + render_overview(data) + render_alerts(data)
            + "".join(render_store(s, data.as_of) for s in data.stores) + ABOUT
            + f'<p class="note">Generated {_when(data.as_of)} by <code>inventory dashboard</code>. Self-contained: '
              'no network needed to view it.</p></main>')
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>Inventory dashboard — {_when(data.as_of)}</title><style>{CSS}</style></head>'
            f'<body>{body}<script>{SCRIPT}</script></body></html>\n')


# --- entry points -------------------------------------------------------------------------------------


def build_dashboard(*, lake: Lake, stock: StockStore, now: datetime | None = None) -> str:
    """The dashboard's HTML for the lake and stock store as they are now."""
    return render_dashboard(gather_dashboard_data(lake=lake, stock=stock, now=now))


def write_dashboard(path: Path | str, *, lake: Lake, stock: StockStore, now: datetime | None = None) -> Path:
    """Write the dashboard to ``path`` atomically (a reader never sees half a page); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    page = build_dashboard(lake=lake, stock=stock, now=now)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # same folder: the rename is atomic
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


__all__ = ["DashboardData", "DayUnits", "ForecastDay", "QualityDay", "StockItem", "StoreData", "build_dashboard",
           "gather_dashboard_data", "render_dashboard", "units_in_days", "week_units", "write_dashboard"]
