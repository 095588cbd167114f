"""The dashboard: rendering from hand-made data (sections, numbers, escaping, messages for missing inputs, size),
the lake readers on hand-written aggregate Delta tables, and the whole path on a small generated lake."""

from __future__ import annotations

import importlib
import json
import random
import re
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.aggregates import arrow_schema
from shared.core.events import parse_event
from shared.services.dashboard import (
    CHART_ITEMS,
    FORECAST_DAYS,
    LOW_STOCK_ROWS,
    QUALITY_DAYS,
    TREND_DAYS,
    DashboardData,
    DayUnits,
    QualityDay,
    StockItem,
    StoreData,
    forecast_day,
    gather_dashboard_data,
    read_forecast,
    read_quality,
    read_sales,
    render_dashboard,
    select_stock,
    units_in_days,
    week_units,
    write_dashboard,
)

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
EVIL_SKU = "<script>alert('sku')</script>"
EVIL_NAME = '"><img src=x onerror=alert(1)>'


def sample_data(n_stores: int = 3, n_items: int = 120, seed: int = 0, evil: bool = True) -> DashboardData:
    """A plausible chain: 8 weeks of sales with a weekly pattern, a 14-day forecast, items around their reorder
    points, two weeks of dumps with a few rejections, and alerts of several severities. With ``evil``, store
    S001 has an item whose sku and name are HTML injections."""
    rng = random.Random(seed)
    last = date(2026, 11, 26)
    stores, alerts = [], []
    for n in range(1, n_stores + 1):
        sid = f"S{n:03d}"
        base = rng.uniform(200, 600)
        weekday = [0.95, 1.0, 1.0, 1.05, 1.2, 1.4, 0.7]
        sales = [DayUnits(d, int(base * weekday[d.weekday()] * rng.uniform(0.85, 1.15)), round(base * 3.1, 2))
                 for d in (last - timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1))]
        forecast = [forecast_day(d, base * weekday[d.weekday()], base * 1.5)
                    for d in (last + timedelta(days=i) for i in range(1, FORECAST_DAYS + 1))]
        items = []
        for i in range(n_items):
            rp = rng.randint(3, 40)
            on_hand = rng.randint(-3, rp) if i % 9 == 0 else rng.randint(rp, rp * 4)
            daily = rng.uniform(0.2, 4)
            items.append(StockItem(f"A-{i:05d}", f"Item {i} of {sid}", on_hand, rp, max(on_hand, 0) / daily,
                                   rng.choice([0, 12, 24]), f"V{i % 7:03d}"))
        if evil and n == 1:
            items.append(StockItem(EVIL_SKU, EVIL_NAME, -7, 10, 0.0, 24, "V<b>1</b>"))
        chart, low, n_low = select_stock(items)
        quality = []
        for k in range(QUALITY_DAYS):
            d = last - timedelta(days=k)
            for table, rows in (("items", n_items), ("vendors", 12), ("stock", n_items), ("sales", 3000 + k),
                                ("receipts", 40)):
                rejected = (k % 4) * (3 if table == "sales" else 1)
                rules = (("bad_number", "reject", rejected), ("sku_normalised", "fix", 2)) if rejected else ()
                quality.append(QualityDay(d, table, rows, rows - rejected, rejected, rules))
        stores.append(StoreData(sid, datetime(2026, 11, 26, 23, tzinfo=UTC) - timedelta(hours=30 * (n == 3)),
                                len(items), n_low, sales, forecast, chart, low, quality, "aggregates", True))
        for it in low[:5]:
            sev = ("error", 1) if it.on_hand <= 0 else ("warning", 2)
            alerts.append({"kind": "LowStock", "severity": sev[0], "severityLevel": sev[1], "storeId": sid,
                           "sku": it.sku, "reason": f"{it.sku} ({it.name}) in store {sid}: {it.on_hand} on hand",
                           "raisedAt": "2026-11-27T07:00:00Z", "onHand": it.on_hand})
    alerts.append({"kind": "StaleDump", "severity": "critical", "severityLevel": 0, "storeId": "S003",
                   "reason": "store S003's latest dump was taken 57 h ago: check the store agent and raw/",
                   "raisedAt": "2026-11-27T06:00:00Z"})
    return DashboardData(as_of=NOW, lake="/data/lake", stock_store="embedded stock store", stores=stores,
                         alerts=alerts, alerts_updated_at="2026-11-27T07:55:00Z", aggregates_present=True,
                         skus=n_items + 1)


class _Collect(HTMLParser):
    """Parses the page (a syntax check of sorts) and collects ids, tags and script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.scripts: list[str] = []
        self._in_script = False
        self.attrs_with_handlers: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in_script = tag == "script"
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k.startswith("on") or k == "src":
                self.attrs_with_handlers.append((tag, k))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


def test_sections_and_numbers() -> None:
    data = sample_data()
    page = render_dashboard(data)
    doc = parse(page)
    assert {"overview", "alerts", "store-S001", "store-S002", "store-S003", "store-filter"} <= doc.ids
    for heading in ("Sales trend", "Stock vs reorder point", "Low on stock — what to reorder",
                    "Data quality per dump day", "Alerts true now"):
        assert page.count(heading) >= 1, heading
    assert doc.tags["svg"] == 3 * 3, "per store: trend, stock and data quality charts"
    assert doc.tags["script"] == 1 and doc.tags.get("link", 0) == 0, "one inline script, no external resources"
    assert "http://" not in page and "https://" not in page and "//cdn" not in page

    s1 = data.stores[0]
    # Header counts: stores, skus, low stock, alerts per severity.
    assert re.search(r"<b>3</b><span>stores</span>", page)
    assert f"<b>{sum(s.low_stock for s in data.stores)}</b><span>low-stock items</span>" in page
    assert "<b>1</b><span>critical alerts</span>" in page
    # The low-stock table holds the numbers people act on.
    it = next(i for i in s1.low_items if i.sku.startswith("A-"))
    row = re.search(rf'<tr class="lowrow"><td>{it.sku}</td>.*?</tr>', page).group(0)
    assert f'<td class="num">{it.on_hand}</td><td class="num">{it.reorder_point}</td>' in row
    assert f"{it.days_of_cover:.1f}" in row and it.vendor in row
    # Hover numbers on charts.
    d = s1.sales[-1]
    assert f"<title>{d.day:%a %Y-%m-%d}: {d.units:,} units" in page
    f = s1.forecast[0]
    assert f"{f.day:%a %Y-%m-%d} forecast: {f.mean:,.1f} units" in page
    assert "approximate 95 % range" in page
    # Data quality: per-day numbers and the rules that fired.
    q_day = [q for q in s1.quality if q.day == date(2026, 11, 25)]
    assert (f'<td class="nw">2026-11-25</td><td class="num">{sum(q.rows_in for q in q_day):,}</td>'
            f'<td class="num">{sum(q.curated for q in q_day):,}</td>') in page
    assert "rejected: bad_number 3; fixed: sku_normalised 2" in page
    # Alerts: most severe first, severity coloured, store freshness flagged.
    assert page.index("sev-critical\">critical") < page.index("sev-error\">error") < page.index(
        "sev-warning\">warning")
    assert '<td class="num stale">' in page, "S003's dump is older than 26 h"


def test_untrusted_text_is_escaped() -> None:
    page = render_dashboard(sample_data())
    doc = parse(page)
    assert EVIL_SKU not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;sku&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "V&lt;b&gt;1&lt;/b&gt;" in page
    assert doc.attrs_with_handlers == [], "no element got an event handler or a src from data"
    assert len(doc.scripts) == 1 and "alert(" not in doc.scripts[0]

    data = sample_data(evil=False)
    data.lake = "<script>x</script>"
    data.alerts[0]["reason"] = "</td><script>evil()</script>"
    data.alerts[0]["storeId"] = '" onmouseover="x'
    data.problems.append("<b>bad</b>")
    page = render_dashboard(data)
    assert "<script>x" not in page and "<script>evil" not in page and "<b>bad" not in page
    assert parse(page).attrs_with_handlers == []


def test_missing_inputs_are_explained() -> None:
    empty = DashboardData(as_of=NOW, lake="/l", stock_store="s")
    page = render_dashboard(empty)
    assert "The lake has no stores yet" in page and "No alert run yet" in page
    assert "<code>inventory alerts</code>" in page
    assert parse(page).tags["script"] == 1

    # Stores with live stock but no aggregate run yet, and an alert run with nothing true.
    store = StoreData("S009", NOW - timedelta(hours=3), 2, 0,
                      chart_items=[StockItem("A", "a", 5, 3)], has_stock=True)
    page = render_dashboard(DashboardData(as_of=NOW, lake="/l", stock_store="s", stores=[store], alerts=[]))
    assert "No sales aggregates yet: run <code>inventory aggregate</code>" in page
    assert "No aggregates in the lake yet" in page
    assert "No alert is true right now." in page
    assert "No item is at or below its reorder point." in page
    assert "No ingested dump yet." in page

    # A store known only from an alert: no stock, no dump.
    ghost = StoreData("S010")
    page = render_dashboard(DashboardData(as_of=NOW, lake="/l", stock_store="s", stores=[ghost], alerts=[],
                                          aggregates_present=True))
    assert "No stock counts for this store yet" in page and "no dump yet" in page
    assert "what to reorder</h3>" not in page and "No aggregates in the lake yet" not in page

    # Sales without a forecast (under 7 days of history).
    short = StoreData("S011", NOW, sales=[DayUnits(date(2026, 11, 26), 10)])
    assert "No forecast yet" in render_dashboard(DashboardData(as_of=NOW, lake="/l", stock_store="s",
                                                               stores=[short]))


def _overview_row(page: str, store_id: str) -> str:
    return re.search(rf'<tr><td><a href="#store-{store_id}">{store_id}</a></td>.*?</tr>', page).group(0)


def test_last_7_days_are_calendar_days_ending_today() -> None:
    """read_sales holds only the days that had sales: the week is the 7 UTC days ending on the page's date, not
    the last 7 entries, and the comparison week is the 7 days before it."""
    today = NOW.date()  # 2026-11-27
    # Sales stopped three weeks ago: nothing sold in the last 7 days, nor in the 7 before.
    stopped = [DayUnits(date(2026, 10, 20) + timedelta(days=k), 100) for k in range(18)]  # to 2026-11-06
    # Closed two days of the last week: 5 days × 10 units, against 7 × 10 the week before.
    closed = [DayUnits(today - timedelta(days=k), 10) for k in range(20) if k not in (2, 3)]
    # Opened 10 days ago: no full week before this one to compare with.
    opened = [DayUnits(today - timedelta(days=k), 10) for k in range(10)]
    # A sale dated tomorrow (a till clock ahead) is not in the week ending today.
    ahead = [DayUnits(today - timedelta(days=k), 1) for k in range(-1, 14)]
    assert week_units(stopped, NOW) == (0, 0)
    assert week_units(closed, NOW) == (50, 70)
    assert week_units(opened, NOW) == (70, None)
    assert week_units(ahead, NOW) == (7, 7)
    assert week_units([], NOW) == (None, None)
    assert units_in_days(closed, today - timedelta(days=7), 7) == 70
    # "now" is the data's as_of, in UTC: 00:30 on the 28th at +02:00 is still the 27th in UTC.
    assert week_units(closed, datetime(2026, 11, 28, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == (50, 70)

    stores = [StoreData(sid, NOW - timedelta(hours=2), sales=sales, aggregated=True)
              for sid, sales in (("S1", stopped), ("S2", closed), ("S3", opened))]
    page = render_dashboard(DashboardData(as_of=NOW, lake="/l", stock_store="s", stores=stores, alerts=[],
                                          aggregates_present=True))
    assert '<td class="num">0</td>' in _overview_row(page, "S1") and "%" not in _overview_row(page, "S1")
    assert '<td class="num">50 (-29%)</td>' in _overview_row(page, "S2")
    assert '<td class="num">70</td>' in _overview_row(page, "S3") and "%" not in _overview_row(page, "S3")
    # The store section's summary counts the same calendar week and says when the last sale was.
    assert "Last 7 days (UTC, to 2026-11-27): <b>0</b> units (last sales on 2026-11-06)" in page
    assert "Last 7 days (UTC, to 2026-11-27): <b>50</b> units</p>" in page


def _receipt(stock: SqliteStockStore, store_id: str) -> None:
    """A receipt applied to the stock store: the store has a count, and no dump or sale."""
    event = parse_event(f'{{"eventId": "r-{store_id}", "storeId": "{store_id}", "type": "receipt", "occurredAt": '
                        '"2026-11-27T06:00:00Z", "lines": [{"sku": "A-1", "qty": 4}]}', now=NOW)
    assert stock.apply(store_id, [event]).applied == [f"r-{store_id}"]


def test_a_store_without_sales_is_told_apart_from_no_aggregate_run(tmp_path: Path) -> None:
    """After the aggregates ran for a store (their state names every store of the run), a store with no sales
    says so instead of asking for an aggregate run; a store the aggregates have not seen yet still asks."""
    from shared.services.aggregates import compute_aggregates

    lake = FolderLake(tmp_path / "lake")
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    try:
        _receipt(stock, "S1")
        run = compute_aggregates(lake=lake, stock=stock, telemetry=MemoryTelemetry(), scratch=tmp_path / "s", now=NOW)
        assert run.stores == ["S1"] and run.stock_rows == 1
        lake.put_bytes("alerts/state.json", json.dumps({"updatedAt": "2026-11-27T07:00:00Z", "active": [
            {"kind": "StaleDump", "severity": "error", "severityLevel": 1, "storeId": "S2", "reason": "x"}]}).encode())
        data = gather_dashboard_data(lake=lake, stock=stock, now=NOW)
    finally:
        stock.close()
    assert [(s.store_id, s.aggregated, s.sales) for s in data.stores] == [("S1", True, []), ("S2", False, [])]
    page = render_dashboard(data)
    s1 = re.search(r'<section id="store-S1".*?</section>', page).group(0)
    s2 = re.search(r'<section id="store-S2".*?</section>', page).group(0)
    assert "No sales for this store" in s1 and "No sales aggregates yet" not in s1
    assert "No sales aggregates yet: run <code>inventory aggregate</code>" in s2 and "No sales for this" not in s2


def test_stock_selection_orders_and_caps() -> None:
    items = [StockItem(f"S{i:03d}", "", on_hand=i - 5, reorder_point=10, days_of_cover=float(i)) for i in range(60)]
    items += [StockItem("INACTIVE", "", 0, 10, active=False), StockItem("NORP", "", 0, 0)]
    chart, low, n_low = select_stock(items)
    assert len(chart) == CHART_ITEMS and chart[0].sku == "S000" and "INACTIVE" not in {c.sku for c in chart}
    assert n_low == 16 and len(low) == 16  # on_hand -5..10 are at or below 10
    assert [i.sku for i in low[:6]] == ["S000", "S001", "S002", "S003", "S004", "S005"], "out of stock first"
    many = [StockItem(f"X{i}", "", 0, 5) for i in range(100)]
    assert len(select_stock(many)[1]) == LOW_STOCK_ROWS and select_stock(many)[2] == 100


def test_size_is_bounded_for_a_big_chain() -> None:
    """50 stores: every section at its cap (the caps, not the skus per store, bound the page), long rule lists,
    the full alerts table."""
    data = sample_data(n_stores=50, n_items=400, seed=1)
    data.alerts = (data.alerts * 10)[:300]
    assert all(len(s.chart_items) == CHART_ITEMS and len(s.low_items) == LOW_STOCK_ROWS for s in data.stores)
    page = render_dashboard(data)
    assert len(page.encode()) < 2_000_000, len(page.encode())
    assert "Showing the 200 most severe of 300 alerts" in page


# --- reading the lake ---------------------------------------------------------------------------------


def _write(lake: FolderLake, name: str, rows: list[dict]) -> None:
    """Append ``rows`` to the Delta table ``aggregates/<name>`` as the contract describes it (partitioned by
    store_id), with delta-rs directly, not with the service that writes them."""
    from deltalake import write_deltalake

    uri, options = lake.delta_location(f"aggregates/{name}")
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=arrow_schema(name)), mode="append",
                    partition_by=["store_id"], storage_options=options)


def test_readers_on_hand_written_aggregates(tmp_path: Path) -> None:
    """The readers follow the layouts of shared.core.aggregates, independently of the service that writes them."""
    lake = FolderLake(tmp_path / "lake")
    first = date(2026, 9, 1)
    for k in range(70):  # more days than the trend shows
        d = first + timedelta(days=k)
        rows = [{"store_id": "S1", "date": d, "category": c, "units": k + u, "lines": 1, "skus": 1, "revenue": None,
                 "cost": None, "margin": None, "revenue_with_cost": None} for c, u in (("Dairy", 1), (None, 2))]
        _write(lake, "sales_daily_category", rows)  # a commit per day, as an incremental run makes
    _write(lake, "sales_daily_category", [{**rows[0], "store_id": "S'2"}])  # another store's day, quoted right
    sales = read_sales(lake, "S1")
    assert len(sales) == TREND_DAYS and sales[-1].day == first + timedelta(days=69)
    assert sales[-1].units == 69 * 2 + 3 and sales[-1].revenue is None

    fc = [{"store_id": "S1", "sku": sku, "date": first + timedelta(days=70 + h), "mean": 2.0, "lower": 0.04,
           "upper": 3.96} for sku in ("A", "B", "C", "D") for h in range(28)]
    _write(lake, "forecast", fc)
    band = read_forecast(lake, "S1")
    assert len(band) == FORECAST_DAYS and band[0].day == first + timedelta(days=70)
    assert band[0].mean == pytest.approx(8.0)
    # each sku: σ = 3.92 / 3.92 = 1; four skus: σ = 2; band 8 ± 1.96·2
    assert (band[0].lower, band[0].upper) == (pytest.approx(8 - 3.92), pytest.approx(8 + 3.92))

    for k in range(20):
        d = first + timedelta(days=k)
        base = {"store_id": "S1", "date": d, "dump_id": f"d{k}", "snapshot_at": datetime(2026, 9, 1, tzinfo=UTC),
                "ingested_at": None, "table_name": "sales", "rows_in": 100, "curated": 100 - k, "rejected": k,
                "written": 100 - k}
        rows = [{**base, "rule": "", "action": "total", "rule_count": k}]
        if k:
            rows.append({**base, "rule": "bad_number", "action": "reject", "rule_count": k})
        _write(lake, "data_quality", rows)
    quality, source = read_quality(lake, "S1")
    assert source == "aggregates" and len(quality) == QUALITY_DAYS
    assert quality[-1] == QualityDay(first + timedelta(days=19), "sales", 100, 81, 19, (("bad_number", "reject", 19),))

    assert read_sales(lake, "S2") == [] and read_forecast(lake, "S2") == []
    assert read_quality(lake, "S2") == ([], "")
    assert [d.units for d in read_sales(lake, "S'2")] == [70]


def test_a_broken_input_spoils_one_section_not_the_page(tmp_path: Path) -> None:
    lake = FolderLake(tmp_path / "lake")
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    try:
        _receipt(stock, "S1")
        _write(lake, "forecast", [{"store_id": "S1", "sku": "A-1", "date": date(2026, 11, 28), "mean": 1.0,
                                   "lower": 0.0, "upper": 2.0}])
        for data_file in (tmp_path / "lake/aggregates/forecast").rglob("*.parquet"):
            data_file.write_bytes(b"not parquet")  # a damaged data file of the forecast table
        lake.put_bytes("alerts/state.json", b"{not json")
        data = gather_dashboard_data(lake=lake, stock=stock, now=NOW)
    finally:
        stock.close()
    assert [s.store_id for s in data.stores] == ["S1"]
    assert [p for p in data.stores[0].problems if "forecast of store S1" in p]
    assert data.alerts is None and any("not valid JSON" in p for p in data.problems)
    page = render_dashboard(data)
    assert "could not read the forecast of store S1" in page and "No alert run yet" in page


# --- the whole path on a generated lake ---------------------------------------------------------------


def _compute_aggregates():
    """shared.services.aggregates.compute_aggregates when it exists and imports, else None."""
    try:
        return importlib.import_module("shared.services.aggregates").compute_aggregates
    except (ImportError, AttributeError):
        return None


def build_lake(tmp_path: Path, *, stores: int = 2, n_items: int = 60, days: int = 28, sales_lines: int = 3000,
               aggregate: bool = True) -> tuple[FolderLake, SqliteStockStore, bool]:
    """Generate and ingest ``stores`` stores, rebase the stock store, compute the aggregates (when the service
    exists) and run the alerts: a lake as a day of the pipeline leaves it. Returns (lake, stock, aggregated)."""
    from shared.local.generator import generate_store
    from shared.services.ingest import ingest_dump
    from shared.services.raise_alerts import raise_alerts
    from shared.services.reconcile_stock import reconcile_after_ingest

    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    for n in range(1, stores + 1):
        sid = f"S{n:03d}"
        db = tmp_path / f"{sid}.sqlite"
        truth = generate_store(db, sid, n_items=n_items, days=days, sales_lines=sales_lines, dirty_rate=0.01, seed=n)
        result = ingest_dump(db, sid, lake=lake, telemetry=telemetry, snapshot_at=truth.snapshot_at, scratch=tmp_path)
        assert result.status == "ingested"
        reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)
    compute = _compute_aggregates() if aggregate else None
    if compute is not None:
        compute(lake=lake, stock=stock, telemetry=telemetry, scratch=tmp_path / "scratch", now=NOW)
    raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=NOW)
    return lake, stock, compute is not None


def test_dashboard_of_a_generated_lake(tmp_path: Path) -> None:
    lake, stock, aggregated = build_lake(tmp_path)
    try:
        data = gather_dashboard_data(lake=lake, stock=stock, now=NOW)
        out = write_dashboard(tmp_path / "out" / "dashboard.html", lake=lake, stock=stock, now=NOW)
    finally:
        stock.close()
    assert [s.store_id for s in data.stores] == ["S001", "S002"]
    assert data.problems == [] and all(s.problems == [] for s in data.stores)
    assert all(s.has_stock and s.skus == 60 and s.low_stock > 0 and s.quality for s in data.stores)
    assert data.skus == 60 and data.alerts is not None

    page = out.read_text(encoding="utf-8")
    assert out.name == "dashboard.html" and page == render_dashboard(data)
    assert not list(out.parent.glob(".*.tmp")), "the temporary file is renamed, not left behind"
    state = json.loads(lake.get_bytes("alerts/state.json"))
    low_alerts = {(a["storeId"], a["sku"]) for a in state["active"] if a["kind"] == "LowStock"}
    shown = {(s.store_id, it.sku) for s in data.stores for it in s.low_items}
    assert shown == low_alerts, "the low-stock tables and the LowStock alerts agree"
    assert sum(s.low_stock for s in data.stores) == len(low_alerts)
    for a in state["active"]:
        assert a["reason"].split(" (")[0].split(" ")[0] in page
    if aggregated:
        assert data.aggregates_present and all(len(s.sales) == 28 and len(s.forecast) == FORECAST_DAYS
                                               for s in data.stores)
        assert all(s.quality_source == "aggregates" for s in data.stores)
        assert "run <code>inventory aggregate</code>" not in page
        assert any(it.days_of_cover is not None for s in data.stores for it in s.low_items)
    else:  # before compute_aggregates exists: live stock, data quality from the manifests
        assert "No sales aggregates yet: run <code>inventory aggregate</code>" in page
        assert all(s.quality_source == "manifests" for s in data.stores)
