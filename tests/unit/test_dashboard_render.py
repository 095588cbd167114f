"""The dashboard's rendering pieces on hand-made data: charts, tables, formatting helpers and the page templates
(the whole page, its sections and its escaping are in test_dashboard.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.services.dashboard import DashboardData, DayUnits, ForecastDay, QualityDay, StockItem, StoreData
from shared.services.dashboard.charts import (
    quality_colour,
    render_quality_strip,
    render_stock_chart,
    render_trend_chart,
)
from shared.services.dashboard.render import (
    ALERT_ROWS,
    QUALITY_TABLE_DAYS,
    about,
    render_alerts,
    render_dashboard,
    render_quality_table,
    render_store,
    rules_text,
    template_text,
)
from shared.services.dashboard.text import anchor, coord, nice_max, num, severity, short, stamp

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
MONDAY = date(2026, 11, 23)


def test_the_templates_are_package_resources() -> None:
    page = template_text("dashboard.html")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    for name in ("css", "body", "script", "generated"):
        assert f"${{{name}}}" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert ":root{" in template_text("dashboard.css") and "store-filter" in template_text("dashboard.js")
    assert about().startswith('<section id="about">') and "\n" not in about()


def test_the_page_is_the_template_filled_in() -> None:
    data = DashboardData(as_of=NOW, lake="/l", stock_store="s")
    page = render_dashboard(data)
    assert page.startswith('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">')
    assert "<title>Inventory dashboard — 2026-11-27 08:00 UTC</title>" in page
    assert f"<style>\n{template_text('dashboard.css')}</style>" in page
    assert f"<script>\n{template_text('dashboard.js')}</script></body></html>\n" == page[page.index("<script>"):]
    assert page.count("$") == template_text("dashboard.js").count("$") + template_text("dashboard.css").count("$")


def test_template_placeholders_in_data_are_text() -> None:
    """Data that looks like a placeholder is not substituted (string.Template does not re-read what it inserts)."""
    data = DashboardData(as_of=NOW, lake="${css}", stock_store="$body", stores=[StoreData("${script}")],
                         problems=["$$ ${generated}"])
    page = render_dashboard(data)
    assert "lake: ${css} · stock store: $body" in page
    assert "<h2>Store ${script}" in page and '<div class="problem">$$ ${generated}</div>' in page
    assert page.count("<style>") == 1 and page.count("<script>") == 1


def test_trend_chart_bars_band_and_labels() -> None:
    sales = [DayUnits(MONDAY + timedelta(days=k), 10 * (k + 1), 5.5 if k == 0 else None) for k in range(7)]
    forecast = [ForecastDay(MONDAY + timedelta(days=7 + k), 40.0, 30.0, 55.0) for k in range(3)]
    svg = render_trend_chart(sales, forecast)
    assert svg.startswith('<svg class="chart" viewBox="0 0 600 200"') and svg.endswith("</svg>")
    bars = re.search(r'<g class="bar">(.*?)</g>', svg).group(1)
    assert bars.count("<rect") == 7
    assert "<title>Mon 2026-11-23: 10 units, revenue 5.50</title>" in bars
    assert "<title>Sun 2026-11-29: 70 units</title>" in bars
    # 10 days over 546 px: 54.6 px a day; the axis tops at 100 (the highest value, 70, rounded up).
    assert '<text class="ax end" x="42" y="13">100</text>' in svg
    assert '<rect x="51.5" y="159.4" width="43.7" height="16.6">' in svg
    assert svg.count('<text class="ax mid"') == 2, "a label each Monday: Nov 23 and Nov 30"
    assert ">Nov 23</text>" in svg and ">Nov 30</text>" in svg
    band = re.search(r'<polygon class="band" points="([^"]*)"', svg).group(1)
    assert len(band.split()) == 2 * len(forecast), "upper bounds forward, lower bounds back"
    assert svg.count("forecast: 40.0 units (band 30–55)") == 3
    assert render_trend_chart([], []) == ""
    only_forecast = render_trend_chart([], forecast)
    assert '<g class="bar"></g>' in only_forecast and "band" in only_forecast


def test_stock_chart_scales_each_item_to_its_reorder_point() -> None:
    items = [StockItem("LOW", "low item", 2, 4, 1.5), StockItem("OK", "", 6, 4), StockItem("HUGE", "", 900, 10),
             StockItem("NEG", "", -3, 5)]
    svg = render_stock_chart(items)
    rects = re.findall(r'<rect class="(\w+)" x="230" y="\d+" width="([\d.]+)"', svg)
    # the reorder point is at half the 280 px bar; bars stop at twice it; a negative count still shows a sliver
    assert rects == [("low", "70"), ("ok", "210"), ("ok", "280"), ("low", "1.5")]
    assert '<line class="rp" x1="370" x2="370"' in svg
    assert "<title>LOW: 2 on hand, reorder point 4, 1.5 days of cover</title>" in svg
    assert '<text class="val neg" x="516" y="28">2 / 4</text>' in svg and ">6 / 4</text>" in svg
    assert render_stock_chart([]) == ""


@pytest.mark.parametrize(("rejected", "rows_in", "colour"), [
    (0, 100, "q0"), (1, 1000, "q1"), (1, 100, "q2"), (4, 100, "q2"), (5, 100, "q3"), (3, 0, "q3")])
def test_quality_colours(rejected: int, rows_in: int, colour: str) -> None:
    assert quality_colour(QualityDay(MONDAY, "sales", rows_in, rows_in - rejected, rejected)) == colour
    assert quality_colour(None) == "none"


def test_quality_strip_one_path_per_colour_and_a_tooltip_per_day() -> None:
    d1, d2 = MONDAY, MONDAY + timedelta(days=1)
    quality = [QualityDay(d1, "sales", 100, 90, 10, (("bad_number", "reject", 10), ("sku_normalised", "fix", 2))),
               QualityDay(d1, "items", 50, 50, 0), QualityDay(d2, "sales", 100, 100, 0),
               QualityDay(d2, "extra", 5, 5, 0)]
    svg = render_quality_strip(quality)
    rows = re.findall(r'<text class="end" x="64" y="\d+">(\w+)</text>', svg)
    assert rows == ["items", "sales", "extra"], "the known tables in their order, then the others"
    assert re.findall(r'<path class="(\w+)"', svg) == ["none", "q0", "q3"]
    assert "<title>2026-11-23, rows rejected: items 0 of 50; sales 10 of 100 (bad_number 10)</title>" in svg
    assert "<title>2026-11-24, rows rejected: sales 0 of 100; extra 0 of 5</title>" in svg
    assert render_quality_strip([]) == ""


def test_quality_table_days_and_rules() -> None:
    assert rules_text([("b", "fix", 2), ("a", "reject", 1_234), ("c", "flag", 1), ("d", "other", 3)]) == (
        "rejected: a 1,234; flagged: c 1; fixed: b 2; other: d 3")
    quality = [QualityDay(MONDAY - timedelta(days=k), "sales", 10, 9, 1, (("r", "reject", 1),)) for k in range(10)]
    table = render_quality_table(quality)
    assert table.count('<td class="nw">') == QUALITY_TABLE_DAYS
    assert table.index(f">{MONDAY}<") < table.index(f">{MONDAY - timedelta(days=1)}<"), "latest day first"
    assert "<td>sales — rejected: r 1</td>" in table


def _alert(n: int, level: int | None, store: str = "S1") -> dict:
    return {"kind": "LowStock", "severityLevel": level, "storeId": store, "sku": f"A-{n}", "reason": "r",
            "raisedAt": "2026-11-27T07:00:00Z"}


def test_alerts_table_order_and_cap() -> None:
    alerts = [_alert(n, n % 4 if n % 5 else None) for n in range(ALERT_ROWS + 10)]
    html = render_alerts(DashboardData(as_of=NOW, lake="", stock_store="", alerts=alerts))
    sevs = re.findall(r'<span class="sev sev-(\w+)">', html)
    assert len(sevs) == ALERT_ROWS and f"Showing the {ALERT_ROWS} most severe of {ALERT_ROWS + 10}" in html
    order = ["critical", "error", "warning", "informational"]
    assert sevs == sorted(sevs, key=order.index)
    assert '<td class="nw">2026-11-27 07:00</td>' in html
    few = render_alerts(DashboardData(as_of=NOW, lake="", stock_store="", alerts=alerts[:3]))
    assert "Showing the" not in few and few.count("<tr data-store=") == 3


def test_store_section_messages() -> None:
    aggregated = StoreData("S1", NOW, aggregated=True, has_stock=True)
    html = render_store(aggregated, NOW)
    assert html.startswith('<section id="store-S1" data-store="S1">')
    assert "No sales for this store" in html and "No active item of this store has a reorder point." in html
    assert "Low on stock — what to reorder" in html and "No item is at or below its reorder point." in html
    assert "last dump 2026-11-27 08:00 UTC" in html
    manifests = StoreData("S2", quality=[QualityDay(MONDAY, "sales", 1, 1, 0)], quality_source="manifests")
    html = render_store(manifests, NOW)
    assert "from the manifests: the data_quality aggregate is not written yet" in html
    assert "No stock counts for this store yet" in html and "what to reorder" not in html


def test_formatting_helpers() -> None:
    assert (num(None), num(1234.5), num(2.0), num(1234.567, 2)) == ("–", "1,234", "2", "1,234.57")
    assert (coord(12.0), coord(12.34), coord(0.05)) == ("12", "12.3", "0.1")
    assert [nice_max(v) for v in (0, 0.3, 1, 1.1, 3, 7, 70, 101)] == [1, 0.5, 1, 2, 5, 10, 100, 200]
    assert anchor("S-1_a") == "store-S-1_a" and anchor('x"y z') == "store-x_y_z"
    assert short("abcdef", 6) == "abcdef" and short("abcdefg", 6) == "abcde…"
    assert stamp("2026-11-27T07:00:00Z") == "2026-11-27 07:00" and stamp("<late>") == "&lt;late&gt;"
    assert stamp("2026-11-27T09:00:00+02:00") == "2026-11-27 07:00" and stamp(None) == ""
    assert [severity(a) for a in ({"severity": "error"}, {"severityLevel": 0}, {"severity": "bogus"}, {})] == [
        "error", "critical", "informational", "informational"]
