"""Use case: one self-contained HTML page of the lake and the stock (``inventory dashboard``).

    lake (Delta: aggregates, curated items; manifests/, alerts/state.json) ─┐
    stock store (live on-hand, baselines) ──────────────────────────────────┴─▶ DashboardData ─▶ render ─▶ HTML

Who reads it: store and category managers (stock against reorder points, the sales trend and its forecast,
what to reorder) and on-call (is every store's data fresh, what was rejected, which alerts are true now).

Why it is built this way:

* **Two steps.** :mod:`.read_model` does all the reading (:func:`gather_dashboard_data`: the
  :class:`~shared.ports.lake.Lake` and :class:`~shared.ports.stock.StockStore` ports, the Delta tables through
  delta-rs at the lake's own location, each table opened once and read for one store at a time) and returns
  plain data; :mod:`.render` (with :mod:`.charts` and :mod:`.text`) is pure functions of that data, so the page
  can be unit-tested without a lake and a broken input spoils one section, not the page.
* **Self-contained.** The file is mailed, attached to tickets and opened on machines without network access,
  so there is no external JS, CSS, font or CDN: inline CSS, SVG charts drawn here, and a few lines of inline JS
  (a store selector; the page is complete without it). A Content-Security-Policy forbids every network load,
  so a mistake shows up as a console error in the browser test rather than as a silent fetch. The skeleton, CSS
  and script are files in ``templates/`` (``string.Template``; no template engine).
* **Pictures first, numbers on hover.** Every bar, band and cell carries an SVG ``<title>`` with its numbers;
  the tables hold the numbers people act on (what to reorder, which rule rejected what).
* **Untrusted text.** Skus, names, vendors and alert reasons come from store databases: every piece of text is
  escaped with :func:`html.escape`, and no data is ever placed inside the script.
* **Bounded size.** Rows per section are capped (see the ``*_ROWS`` / ``*_DAYS`` constants), so 50 stores ×
  5,000 skus stay well under 2 MB whatever the lake holds; a note says when something was cut.
* **Live stock.** On-hand figures come from the stock store at page time, joined with the item master and the
  demand forecast exactly as the alert service does (:func:`shared.services.stock_alerts.item_stock`), so the
  low-stock table and the LowStock alerts agree.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.services.dashboard.read_model import (
    CHART_ITEMS,
    FORECAST_DAYS,
    LOW_STOCK_ROWS,
    QUALITY_DAYS,
    TREND_DAYS,
    DashboardData,
    DayUnits,
    ForecastDay,
    QualityDay,
    StockItem,
    StoreData,
    forecast_day,
    gather_dashboard_data,
    read_forecast,
    read_quality,
    read_sales,
    select_stock,
    units_in_days,
    week_units,
)
from shared.services.dashboard.render import render_dashboard


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


__all__ = ["CHART_ITEMS", "FORECAST_DAYS", "LOW_STOCK_ROWS", "QUALITY_DAYS", "TREND_DAYS", "DashboardData",
           "DayUnits", "ForecastDay", "QualityDay", "StockItem", "StoreData", "build_dashboard", "forecast_day",
           "gather_dashboard_data", "read_forecast", "read_quality", "read_sales", "render_dashboard", "select_stock",
           "units_in_days", "week_units", "write_dashboard"]
