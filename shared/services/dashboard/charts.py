"""The page's SVG charts, drawn from plain data: the sales trend with its forecast, stock against reorder points,
and the data quality strip. Every bar, band and cell carries an SVG ``<title>`` with its numbers (hover)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import ClassVar

from shared.services.dashboard.read_model import DayUnits, ForecastDay, QualityDay, StockItem
from shared.services.dashboard.text import coord, esc, nice_max, num, short

QUALITY_TABLES = ("items", "vendors", "stock", "sales", "receipts")  # the strip's row order; other tables after

# --- the sales trend ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrendScale:
    """Days to x and units to y on the trend chart (600 × 200, axis labels left and below)."""

    w: ClassVar[int] = 600
    h: ClassVar[int] = 200
    left: ClassVar[int] = 46
    right: ClassVar[int] = 8
    top: ClassVar[int] = 10
    bottom: ClassVar[int] = 24
    plot_h: ClassVar[int] = h - top - bottom

    first: date
    slot: float  # the width of one day
    top_value: float  # the axis' top

    @classmethod
    def over(cls, first: date, last: date, top_value: float) -> _TrendScale:
        """The scale that fits the days ``first`` to ``last`` (both drawn), ``top_value`` at the top."""
        return cls(first, (cls.w - cls.left - cls.right) / ((last - first).days + 1), top_value)

    def x(self, day: date) -> float:
        return self.left + (day - self.first).days * self.slot

    def y(self, v: float) -> float:
        return self.top + self.plot_h * (1 - min(v, self.top_value) / self.top_value)


def _trend_axes(sc: _TrendScale, last: date) -> list[str]:
    """Five horizontal grid lines with their values, and a day label every Monday."""
    parts = []
    for i in range(5):
        v = sc.top_value * i / 4
        parts.append(f'<line class="grid" x1="{sc.left}" x2="{sc.w - sc.right}" y1="{coord(sc.y(v))}" '
                     f'y2="{coord(sc.y(v))}"/><text class="ax end" x="{sc.left - 4}" y="{coord(sc.y(v) + 3)}">'
                     f'{num(v)}</text>')
    day = sc.first
    while day <= last:
        if day.weekday() == 0:
            parts.append(f'<text class="ax mid" x="{coord(sc.x(day) + sc.slot / 2)}" y="{sc.h - 8}">'
                         f'{day:%b} {day.day}</text>')
        day += timedelta(days=1)
    return parts


def _sales_bars(sc: _TrendScale, sales: Sequence[DayUnits]) -> list[str]:
    bar_w = coord(max(sc.slot * 0.8, 0.5))
    parts = ['<g class="bar">']
    for d in sales:
        rev = f", revenue {num(d.revenue, 2)}" if d.revenue is not None else ""
        parts.append(f'<rect x="{coord(sc.x(d.day) + sc.slot * 0.1)}" y="{coord(sc.y(d.units))}" width="{bar_w}" '
                     f'height="{coord(sc.top + sc.plot_h - sc.y(d.units))}"><title>{d.day:%a %Y-%m-%d}: '
                     f'{num(d.units)} units{rev}</title></rect>')
    parts.append("</g>")
    return parts


def _forecast_band(sc: _TrendScale, forecast: Sequence[ForecastDay]) -> list[str]:
    """A line where the forecast starts, the band around a dashed mean line, and a hover column per day."""
    xs = [sc.x(f.day) + sc.slot / 2 for f in forecast]
    upper = " ".join(f"{coord(a)},{coord(sc.y(f.upper))}" for a, f in zip(xs, forecast, strict=True))
    lower = " ".join(f"{coord(a)},{coord(sc.y(f.lower))}" for a, f in reversed(list(zip(xs, forecast, strict=True))))
    mean = " ".join(f"{coord(a)},{coord(sc.y(f.mean))}" for a, f in zip(xs, forecast, strict=True))
    start = sc.x(forecast[0].day)
    parts = [f'<line class="now" x1="{coord(start)}" x2="{coord(start)}" y1="{sc.top}" y2="{sc.top + sc.plot_h}"/>'
             f'<text class="ax" x="{coord(start + 3)}" y="{sc.top + 9}">forecast</text>'
             f'<polygon class="band" points="{upper} {lower}"/><polyline class="fmean" points="{mean}"/>',
             '<g class="hit">']
    for a, f in zip(xs, forecast, strict=True):
        parts.append(f'<rect x="{coord(a - sc.slot / 2)}" y="{sc.top}" width="{coord(sc.slot)}" height="{sc.plot_h}">'
                     f'<title>{f.day:%a %Y-%m-%d} forecast: {num(f.mean, 1)} units (band {num(f.lower)}–'
                     f'{num(f.upper)})</title></rect>')
    parts.append("</g>")
    return parts


def render_trend_chart(sales: Sequence[DayUnits], forecast: Sequence[ForecastDay]) -> str:
    """Daily units as bars, then the forecast as a band around a dashed mean line."""
    if not sales and not forecast:
        return ""
    first = sales[0].day if sales else forecast[0].day
    last = forecast[-1].day if forecast else sales[-1].day
    top_value = nice_max(max([d.units for d in sales] + [f.upper for f in forecast] + [1]))
    sc = _TrendScale.over(first, last, top_value)
    parts = [f'<svg class="chart" viewBox="0 0 {sc.w} {sc.h}" width="{sc.w}" height="{sc.h}" role="img" '
             f'aria-label="daily units sold and forecast">']
    parts += _trend_axes(sc, last) + _sales_bars(sc, sales)
    if forecast:
        parts += _forecast_band(sc, forecast)
    parts.append("</svg>")
    return "".join(parts)


# --- stock against reorder points ---------------------------------------------------------------------


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
             f'<text class="ax mid" x="{coord(marker)}" y="11">reorder point</text>'
             f'<text class="ax end" x="{label_w + bar_w}" y="11">2×</text>']
    for i, it in enumerate(items):
        y0 = top + i * row
        ratio = max(it.on_hand, 0) / it.reorder_point if it.reorder_point > 0 else 0
        length = bar_w / cap * min(ratio, cap)
        cls = "low" if it.low else "ok"
        cover = f", {num(it.days_of_cover, 1)} days of cover" if it.days_of_cover is not None else ""
        label = short(f"{it.sku} {it.name}".strip(), 34)
        parts.append(
            f'<g><title>{esc(short(it.sku, 40))}: {num(it.on_hand)} on hand, reorder point '
            f'{num(it.reorder_point)}{cover}</title>'
            f'<text class="end" x="{label_w - 6}" y="{y0 + 12}">{esc(label)}</text>'
            f'<rect class="{cls}" x="{label_w}" y="{y0 + 3}" width="{coord(max(length, 1.5))}" height="{row - 5}"/>'
            f'<text class="val{" neg" if it.low else ""}" x="{label_w + bar_w + 6}" y="{y0 + 12}">'
            f'{num(it.on_hand)} / {num(it.reorder_point)}</text></g>')
    parts.append(f'<line class="rp" x1="{coord(marker)}" x2="{coord(marker)}" y1="{top}" y2="{h - 2}"/></svg>')
    return "".join(parts)


# --- the data quality strip ---------------------------------------------------------------------------


def quality_colour(q: QualityDay | None) -> str:
    """The strip's cell class: none (no dump), q0 (nothing rejected), q1 < 1 %, q2 < 5 %, q3 5 % or more."""
    if q is None:
        return "none"
    if q.rejected == 0:
        return "q0"
    share = q.rejected / max(q.rows_in, 1)
    return "q1" if share < 0.01 else "q2" if share < 0.05 else "q3"


def _quality_tip(table: str, q: QualityDay) -> str:
    rejects = ", ".join(f"{code} {num(n)}" for code, action, n in q.rules if action == "reject")
    return f"{esc(table)} {num(q.rejected)} of {num(q.rows_in)}" + (f" ({esc(rejects)})" if rejects else "")


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
    parts += [f'<text class="end" x="{left - 6}" y="{top + j * cell_h + 12}">{esc(t)}</text>'
              for j, t in enumerate(tables)]
    for i, day in enumerate(days):
        x0 = left + i * cell_w
        if i % 2 == (len(days) - 1) % 2:  # label every other day, always the latest
            parts.append(f'<text class="ax mid" x="{x0 + cell_w // 2}" y="{h - 4}">{day:%m-%d}</text>')
        for j, table in enumerate(tables):
            cell = f"M{x0 + 1} {top + j * cell_h + 1}h{cell_w - 2}v{cell_h - 2}h{2 - cell_w}z"
            cells.setdefault(quality_colour(by_key.get((day, table))), []).append(cell)
        tips = [_quality_tip(t, by_key[(day, t)]) for t in tables if (day, t) in by_key]
        hits.append(f'<rect x="{x0}" y="{top}" width="{cell_w}" height="{cell_h * len(tables)}">'
                    f'<title>{day}, rows rejected: {"; ".join(tips) or "no dump"}</title></rect>')
    # One path per colour (the cells carry no numbers), then a transparent column per day with its tooltip.
    parts += [f'<path class="{cls}" d="{"".join(d)}"/>' for cls, d in sorted(cells.items())]
    parts.append(f'<g class="hit">{"".join(hits)}</g></svg>')
    return "".join(parts)


__all__ = ["QUALITY_TABLES", "quality_colour", "render_quality_strip", "render_stock_chart", "render_trend_chart"]
