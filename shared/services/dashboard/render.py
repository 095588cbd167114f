"""The page, from a :class:`~shared.services.dashboard.read_model.DashboardData`: pure functions, no lake or stock
access, so every section can be tested on hand-made data and a broken input spoils one section, not the page.

Every piece of text from the data (skus, names, vendors, alert reasons: they come from store databases) goes
through :func:`~shared.services.dashboard.text.esc`, and no data is ever placed inside the script. The page's
skeleton, its CSS and script, and the "About the numbers" section are files in ``templates/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from string import Template

from shared.core.alerts import ALERT_KINDS
from shared.services.dashboard.charts import render_quality_strip, render_stock_chart, render_trend_chart
from shared.services.dashboard.read_model import (
    DashboardData,
    QualityDay,
    StoreData,
    units_in_days,
    utc_day,
    week_units,
)
from shared.services.dashboard.text import SEVERITY_COLOURS, age, anchor, esc, num, severity, short, stamp, when

QUALITY_TABLE_DAYS = 7  # days in a store's data quality table (the strip above shows QUALITY_DAYS)
ALERT_ROWS = 200  # rows in the alerts table
STALE_AFTER = timedelta(hours=26)  # a store's last dump older than this is shown in red


# --- templates ----------------------------------------------------------------------------------------


def template_text(name: str) -> str:
    """The text of ``templates/<name>`` (packaged with the module: pyproject.toml's package-data)."""
    return resources.files(__package__).joinpath(f"templates/{name}").read_text(encoding="utf-8")


@cache
def _page() -> tuple[Template, str, str]:
    """The page's skeleton (``dashboard.html``: head with the Content-Security-Policy, ``${generated}``, ``${css}``,
    ``${body}``, ``${script}``), its CSS and its script. The skeleton's line breaks are the page's."""
    return Template(template_text("dashboard.html")), template_text("dashboard.css"), template_text("dashboard.js")


@cache
def about() -> str:
    """The "About the numbers" section (``about.html``); its line breaks are for reading only and are dropped."""
    return "".join(template_text("about.html").splitlines())


# --- header, alerts and the stores' overview ----------------------------------------------------------


def _alert_counts(alerts: Sequence[dict] | None) -> dict[str, int]:
    counts = {name: 0 for name in SEVERITY_COLOURS}
    for a in alerts or []:
        counts[severity(a)] = counts.get(severity(a), 0) + 1
    return counts


def render_header(data: DashboardData) -> str:
    ids = [s.store_id for s in data.stores]
    shown = ", ".join(esc(i) for i in ids[:40]) + (f" and {len(ids) - 40} more" if len(ids) > 40 else "")
    low = sum(s.low_stock for s in data.stores)
    kpis = [(num(len(ids)), "stores"), (num(data.skus), "skus"), (num(low), "low-stock items")]
    if data.alerts is None:
        kpis.append(("–", "alerts: no alert run yet"))
    else:
        kpis += [(num(n), f"{name} alerts") for name, n in _alert_counts(data.alerts).items()]
    chips = "".join(f'<div class="kpi"><b>{v}</b><span>{esc(label)}</span></div>' for v, label in kpis)
    options = "".join(f'<option value="{esc(i)}">{esc(i)}</option>' for i in ids)
    selector = (f'<label>Store: <select id="store-filter"><option value="">all stores</option>{options}</select>'
                f'</label>') if ids else ""
    evaluated = f" · alerts evaluated {stamp(data.alerts_updated_at)}" if data.alerts_updated_at else ""
    return (f'<header><h1>Inventory dashboard</h1><div class="meta">as of {when(data.as_of)} · stores: '
            f'{shown or "none"}<br>lake: {esc(data.lake)} · stock store: {esc(data.stock_store)}{evaluated}</div>'
            f'<div class="kpis">{chips}</div><div class="meta" style="margin-top:8px">{selector}</div></header>')


def _alert_order(a: dict) -> tuple:
    """Most severe first (by level; none: last), then by store, kind and sku."""
    level = a.get("severityLevel")
    return (level if isinstance(level, int) else 9, str(a.get("storeId", "")), str(a.get("kind", "")),
            str(a.get("sku", "")))


def _alert_row(a: dict) -> str:
    sev = severity(a)
    return (f'<tr data-store="{esc(a.get("storeId", ""))}"><td><span class="sev sev-{sev}">{esc(sev)}'
            f'</span></td><td>{esc(a.get("kind", ""))}</td><td>{esc(a.get("storeId", ""))}</td>'
            f'<td class="nw">{esc(short(str(a.get("sku", "")), 40))}</td>'
            f'<td>{esc(short(str(a.get("reason", "")), 400))}</td>'
            f'<td class="nw">{stamp(a.get("raisedAt"))}</td></tr>')


def _alerts_table(alerts: Sequence[dict]) -> str:
    """The ALERT_ROWS most severe alerts, and a note when there are more."""
    rows = sorted(alerts, key=_alert_order)
    more = (f'<p class="note">Showing the {ALERT_ROWS} most severe of {len(rows)} alerts; '
            f'<code>alerts/state.json</code> in the lake lists them all.</p>') if len(rows) > ALERT_ROWS else ""
    return ('<div class="scroll"><table><thead><tr><th>severity</th><th>kind</th><th>store</th><th>sku</th>'
            f'<th>reason</th><th>raised at (UTC)</th></tr></thead><tbody>{"".join(map(_alert_row, rows[:ALERT_ROWS]))}'
            f'</tbody></table></div>{more}')


def render_alerts(data: DashboardData) -> str:
    if data.alerts is None:
        body = '<p class="empty">No alert run yet: run <code>inventory alerts</code> (or wait for its timer).</p>'
    elif not data.alerts:
        body = '<p class="empty">No alert is true right now.</p>'
    else:
        body = _alerts_table(data.alerts)
    kinds = ", ".join(f'<abbr title="{esc(k.when)}">{esc(k.name)}</abbr>' for k in ALERT_KINDS)
    return (f'<section id="alerts"><h2>Alerts true now</h2>{body}<p class="note">Kinds: {kinds}. An alert is '
            'listed while its condition holds; on-call is paged once per cool-down (Application Insights rules).'
            '</p></section>')


def _overview_row(s: StoreData, counts: dict[str, int], as_of: datetime) -> str:
    """A store's freshness, size, low stock, alerts, last week's units and its last dump day's rejections."""
    week, prev = week_units(s.sales, as_of)
    change = f" ({(week - prev) / prev:+.0%})" if week is not None and prev else ""
    latest = max((q.day for q in s.quality), default=None)
    rin = sum(q.rows_in for q in s.quality if q.day == latest)
    rej = sum(q.rejected for q in s.quality if q.day == latest)
    rejected = f"{num(rej)} of {num(rin)}" if latest else "–"
    chips = " ".join(f'<span class="sev sev-{k}">{counts[k]} {k}</span>' for k in SEVERITY_COLOURS if counts.get(k))
    stale = s.last_snapshot_at is None or as_of - s.last_snapshot_at > STALE_AFTER
    return (f'<tr><td><a href="#{anchor(s.store_id)}">{esc(s.store_id)}</a></td>'
            f'<td class="{"num stale" if stale else "num"}">'
            f'{age(s.last_snapshot_at, as_of)}</td><td class="num">{num(s.skus)}</td>'
            f'<td class="num">{num(s.low_stock)}</td><td>{chips or "–"}</td>'
            f'<td class="num">{num(week)}{change}</td><td class="num">{rejected}</td></tr>')


def render_overview(data: DashboardData) -> str:
    """One row per store: freshness, size, low stock, alerts, last week's units, last rejections."""
    if not data.stores:
        return ('<section id="overview"><h2>Stores</h2><p class="empty">The lake has no stores yet: run '
                '<code>inventory demo</code>, or ingest a dump with <code>inventory ingest</code>.</p></section>')
    per_store: dict[str, dict[str, int]] = {}
    for a in data.alerts or []:
        c = per_store.setdefault(str(a.get("storeId", "")), {})
        c[severity(a)] = c.get(severity(a), 0) + 1
    trs = "".join(_overview_row(s, per_store.get(s.store_id, {}), data.as_of) for s in data.stores)
    return ('<section id="overview"><h2>Stores</h2><table><thead><tr><th>store</th><th class="num">last dump</th>'
            '<th class="num">skus</th><th class="num">low stock</th><th>alerts</th><th class="num">units, last 7 '
            'days</th><th class="num">rows rejected, last dump day</th></tr></thead><tbody>'
            f'{trs}</tbody></table><p class="note">Last dump: the snapshot the stock store is based on '
            '(red: older than 26 h, or none). Units: sales aggregate, the 7 UTC days ending today, and in brackets the '
            'change from the 7 days before.</p></section>')


# --- a store's section --------------------------------------------------------------------------------


def render_low_stock_table(s: StoreData) -> str:
    if not s.low_items:
        return '<p class="empty">No item is at or below its reorder point.</p>'
    trs = "".join(
        f'<tr class="lowrow"><td>{esc(short(it.sku, 40))}</td><td>{esc(short(it.name, 60))}</td>'
        f'<td class="num">{num(it.on_hand)}</td>'
        f'<td class="num">{num(it.reorder_point)}</td><td class="num">{num(it.days_of_cover, 1)}</td>'
        f'<td class="num">{num(it.suggested_order)}</td><td>{esc(short(it.vendor, 30))}</td></tr>'
        for it in s.low_items)
    more = (f'<p class="note">The {len(s.low_items)} most urgent of {num(s.low_stock)} low-stock items; '
            f'<code>inventory alerts</code> lists them all.</p>') if s.low_stock > len(s.low_items) else ""
    return ('<table><thead><tr><th>sku</th><th>name</th><th class="num">on hand</th><th class="num">reorder point'
            '</th><th class="num">days of cover</th><th class="num">suggested order</th><th>vendor</th></tr></thead>'
            f'<tbody>{trs}</tbody></table>{more}')


def rules_text(rules: Iterable[tuple[str, str, int]]) -> str:
    """``rejected: a 3; fixed: b 2``: the rules that fired, grouped by action, what was lost first."""
    by_action: dict[str, list[str]] = {}
    for code, action, n in rules:
        by_action.setdefault(action, []).append(f"{code} {num(n)}")
    names = {"reject": "rejected", "flag": "flagged", "fix": "fixed"}  # in this order: what was lost first
    order = sorted(by_action, key=lambda a: (list(names).index(a) if a in names else len(names), a))
    return "; ".join(f"{names.get(a, a)}: {', '.join(by_action[a])}" for a in order)


def render_quality_table(quality: Sequence[QualityDay]) -> str:
    """The last QUALITY_TABLE_DAYS days in numbers (the strip above shows QUALITY_DAYS, numbers on hover)."""
    days = sorted({q.day for q in quality}, reverse=True)[:QUALITY_TABLE_DAYS]
    trs = []
    for day in days:
        rows = [q for q in quality if q.day == day]
        rules = "; ".join(f"{esc(q.table)} — {esc(rules_text(q.rules))}" for q in rows if q.rules)
        trs.append(f'<tr><td class="nw">{day}</td><td class="num">{num(sum(q.rows_in for q in rows))}</td>'
                   f'<td class="num">{num(sum(q.curated for q in rows))}</td>'
                   f'<td class="num">{num(sum(q.rejected for q in rows))}</td><td>{rules or "–"}</td></tr>')
    return ('<table><thead><tr><th>dump day</th><th class="num">rows in</th><th class="num">curated</th>'
            f'<th class="num">rejected</th><th>rules that fired (rows)</th></tr></thead><tbody>{"".join(trs)}'
            '</tbody></table>')


def _trend_block(s: StoreData, as_of: datetime) -> str:
    """The sales trend: a summary line, the chart and its legend; or why there is none."""
    if not (s.sales or s.forecast):
        if s.aggregated:  # the aggregates ran for this store and found no sale
            return ('<p class="empty">No sales for this store: the sales aggregates hold none (as of the last '
                    '<code>inventory aggregate</code> run).</p>')
        return ('<p class="empty">No sales aggregates yet: run <code>inventory aggregate</code> (or wait for its '
                'timer).</p>')
    today = utc_day(as_of)
    last_sale = max((d.day for d in s.sales if d.units > 0 and d.day <= today), default=None)
    quiet = f' (last sales on {last_sale})' if last_sale and last_sale < today - timedelta(days=6) else ""
    ahead = f' · next {len(s.forecast)} days forecast: <b>≈{num(sum(f.mean for f in s.forecast))}</b> units'
    summary = (f'Last 7 days (UTC, to {today}): <b>{num(units_in_days(s.sales, today, 7))}</b> units{quiet}'
               + (ahead if s.forecast else ""))
    trend = (f'<p class="note">{summary}</p>{render_trend_chart(s.sales, s.forecast)}'
             '<p class="legend note"><i class="k-bar"></i>units sold per UTC day<i class="k-band"></i>forecast '
             'band (approximate, <a href="#about">see below</a>)<i class="k-mean"></i>forecast mean</p>')
    if not s.forecast:
        trend += '<p class="note">No forecast yet (it needs at least 7 days of sales history).</p>'
    return trend


def _stock_block(s: StoreData) -> str:
    if s.chart_items:
        return (f'{render_stock_chart(s.chart_items)}<p class="note">The {len(s.chart_items)} items closest to or '
                'below their reorder point (black line); red: at or below it.</p>')
    if s.has_stock:
        return '<p class="empty">No active item of this store has a reorder point.</p>'
    return '<p class="empty">No stock counts for this store yet: ingest a dump (<code>inventory ingest</code>).</p>'


def _quality_block(s: StoreData) -> str:
    if not s.quality:
        return '<p class="empty">No ingested dump yet.</p>'
    source = (" (from the manifests: the data_quality aggregate is not written yet — run "
              "<code>inventory aggregate</code>)") if s.quality_source == "manifests" else ""
    return (f'{render_quality_strip(s.quality)}<p class="legend note">rows rejected:<i class="q0"></i>none'
            '<i class="q1"></i>&lt; 1 %<i class="q2"></i>&lt; 5 %<i class="q3"></i>5 % or more'
            f'<i class="none"></i>no dump{source}</p>{render_quality_table(s.quality)}')


def render_store(s: StoreData, as_of: datetime) -> str:
    """A store's section: problems reading it, sales trend, stock, what to reorder, data quality."""
    problems = "".join(f'<div class="problem">{esc(p)}</div>' for p in s.problems)
    low = f"<h3>Low on stock — what to reorder</h3>{render_low_stock_table(s)}" if s.has_stock else ""
    dump = f" · last dump {when(s.last_snapshot_at)}" if s.last_snapshot_at else " · no dump yet"
    return (f'<section id="{anchor(s.store_id)}" data-store="{esc(s.store_id)}"><h2>Store {esc(s.store_id)}'
            f'<span class="note">{dump} · {num(s.skus)} skus · {num(s.low_stock)} low on stock</span></h2>{problems}'
            f'<div class="grid2"><div><h3>Sales trend</h3>{_trend_block(s, as_of)}</div><div><h3>Stock vs reorder '
            f'point</h3>{_stock_block(s)}</div></div>{low}<h3>Data quality per dump day</h3>{_quality_block(s)}'
            '</section>')


# --- the page -----------------------------------------------------------------------------------------


def render_dashboard(data: DashboardData) -> str:
    """The whole page, from plain data (no I/O but reading the package's templates)."""
    notes = "".join(f'<div class="problem">{esc(p)}</div>' for p in data.problems)
    if data.stores and not data.aggregates_present:
        notes += ('<div class="problem">No aggregates in the lake yet: run <code>inventory aggregate</code> for the '
                  'sales trend, forecast and data quality history. Stock and alerts below are live.</div>')
    body = (render_header(data) + f"<main>{notes}" + render_overview(data) + render_alerts(data)
            + "".join(render_store(s, data.as_of) for s in data.stores) + about()
            + f'<p class="note">Generated {when(data.as_of)} by <code>inventory dashboard</code>. Self-contained: '
              'no network needed to view it.</p></main>')
    page, css, script = _page()
    return page.substitute(generated=when(data.as_of), css=css, body=body, script=script)


__all__ = ["ALERT_ROWS", "QUALITY_TABLE_DAYS", "about", "render_alerts", "render_dashboard", "render_header",
           "render_low_stock_table", "render_overview", "render_quality_table", "render_store", "rules_text",
           "template_text"]
