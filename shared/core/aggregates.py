"""The aggregates the timer writes to ``aggregates/`` (for Synapse serverless SQL and Power BI), as data and SQL.

Every output is a Delta Lake table ``aggregates/<name>`` partitioned by ``store_id``. One list of outputs —
name, grain and every column with its type and meaning — is shared by the service that writes them (the
Arrow schema of every table comes from it), the Synapse views
(:func:`synapse_views_sql` generates ``infra/synapse/02_views.sql``), the docs (:func:`schemas_markdown`)
and the tests. The SQL is DuckDB's dialect over plain relations: no I/O happens here.

Definitions that matter to a reader of the numbers:

* A sale line is priced and costed with the **items snapshot of the dump that brought it** (its
  ``dump_id``): ``revenue = qty × (the line's unit_price, else that item's unit_price)``, ``cost = qty ×
  that item's unit_cost``. So a day's rows depend only on that day's sale lines, and a later price list
  never rewrites history.
* ``cost`` and ``margin`` are NULL when a cost is unknown for any line of the row (never a partial sum).
  At category level they cover the skus whose cost is known, and ``revenue_with_cost`` is the revenue of
  those skus, so ``margin / revenue_with_cost`` is an honest margin rate.
* Dates are UTC days (the ``date`` column of ``curated/sales``).
* Stock figures come from the stock store (the stock invariant, docs/stock-and-events.md) at ``as_of``; an
  item is **low on stock** when it is active, its reorder point is above zero and its on-hand count is at or
  below the reorder point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from shared.core import layout
from shared.core.manifest import Manifest
from shared.core.schema import TABLES

if TYPE_CHECKING:
    import pyarrow as pa

AGGREGATES_VERSION = 2  # 2: a category set to NULL in the latest dump is NULL (arg_max_null), not the older one
"""Bumped when an aggregate's definition changes: the next run then recomputes every store and day."""

ROOT = "aggregates"
STATE_PATH = f"{ROOT}/_state/sales_inputs.json"
DEFAULT_LEAD_TIME_DAYS = 7  # when the item's vendor, or its lead time, is unknown
WINDOW_DAYS = 28  # units_28d, turnover_28d
HISTORY_DAYS = 16 * 7  # the forecast's history: the last 16 weeks of daily units
FORECAST_SUM_DAYS = 14  # forecast_14d sums the first 14 forecast days (or all of them if the horizon is shorter)

Col = tuple[str, str, str]  # (column, DuckDB type, description)


PARTITION_BY = ("store_id",)
"""Every output's Delta partitioning: a store's rows are replaced store by store (and day by day)."""


@dataclass(frozen=True)
class Output:
    name: str
    replaced: str  # what a run replaces at once (the rows of a store, of a store's days, of a dump)
    grain: tuple[str, ...]  # the columns that identify a row
    description: str
    columns: tuple[Col, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c[0] for c in self.columns)

    @property
    def path(self) -> str:
        """The Delta table's lake path (``aggregates/forecast``)."""
        return f"{ROOT}/{self.name}"


_MONEY = "DECIMAL(18,4)"
OUTPUTS: dict[str, Output] = {o.name: o for o in (
    Output(
        "sales_daily_sku", "a store's recomputed days",
        ("store_id", "date", "sku"),
        "Units, lines, revenue, cost and margin per store, UTC day and sku, from the curated sale lines.",
        (
            ("store_id", "VARCHAR", "store"),
            ("date", "DATE", "UTC day of the sale"),
            ("sku", "VARCHAR", "item"),
            ("category", "VARCHAR", "the item's category (NULL when the item has none)"),
            ("units", "BIGINT", "sum of qty"),
            ("lines", "BIGINT", "sale lines"),
            ("revenue", _MONEY, "sum of qty × unit price (the line's, else the item's; lines with neither add "
                                "nothing)"),
            ("cost", _MONEY, "sum of qty × the item's unit_cost; NULL when the cost of any line is unknown"),
            ("margin", _MONEY, "revenue − cost; NULL when cost is NULL"),
        )),
    Output(
        "sales_daily_category", "a store's recomputed days",
        ("store_id", "date", "category"),
        "sales_daily_sku summed per store, UTC day and category.",
        (
            ("store_id", "VARCHAR", "store"),
            ("date", "DATE", "UTC day of the sale"),
            ("category", "VARCHAR", "category (NULL: items without one)"),
            ("units", "BIGINT", "sum of qty"),
            ("lines", "BIGINT", "sale lines"),
            ("skus", "BIGINT", "distinct skus sold"),
            ("revenue", _MONEY, "sum of revenue"),
            ("cost", _MONEY, "sum of cost over the skus whose cost is known (NULL: none is)"),
            ("margin", _MONEY, "sum of margin over the same skus"),
            ("revenue_with_cost", _MONEY, "revenue of the skus whose cost is known: margin / revenue_with_cost "
                                          "is the margin rate"),
        )),
    Output(
        "stock_current", "a store's rows, every run",
        ("store_id", "sku"),
        "Current stock per store and sku (items of the store's latest dump, joined with the stock store), "
        "with demand, days of cover and a suggested order. Rewritten every run.",
        (
            ("store_id", "VARCHAR", "store"),
            ("sku", "VARCHAR", "item (every item of the latest dump, and every sku the stock store counts)"),
            ("name", "VARCHAR", "item name (NULL: the sku is not in the latest dump's items)"),
            ("category", "VARCHAR", "item category"),
            ("vendor_id", "VARCHAR", "the item's vendor"),
            ("active", "BOOLEAN", "the item is active"),
            ("on_hand", "BIGINT", "units on hand now, from the stock store (NULL: the store has no count)"),
            ("reorder_point", "BIGINT", "the item's reorder point"),
            ("reorder_qty", "BIGINT", "the item's reorder quantity"),
            ("lead_time_days", "BIGINT", f"the vendor's lead time (from the latest vendors snapshot; "
                                         f"{DEFAULT_LEAD_TIME_DAYS} when unknown)"),
            ("low_stock", "BOOLEAN", "active AND reorder_point > 0 AND on_hand <= reorder_point (docs/ingestion.md); "
                                     "false when on_hand is NULL"),
            ("units_28d", "BIGINT", f"units sold in the {WINDOW_DAYS} days ending on sales_through"),
            ("avg_daily_units_28d", "DOUBLE", f"units_28d / {WINDOW_DAYS}"),
            ("turnover_28d", "DOUBLE", "units_28d / max(on_hand, 1): how many times the stock on hand sold in "
                                       "the last 28 days (NULL when on_hand is NULL)"),
            ("forecast_daily", "DOUBLE", "forecast mean units per day over the forecast horizon (NULL: no "
                                         "forecast, e.g. under 7 days of sales history)"),
            ("forecast_14d", "DOUBLE", f"forecast units over the first {FORECAST_SUM_DAYS} forecast days "
                                       "(sum of the daily means)"),
            ("days_of_cover", "DOUBLE", "on_hand / forecast_daily: days the stock lasts (0 when on_hand <= 0; "
                                        "NULL when nothing is expected to sell or on_hand/forecast is NULL)"),
            ("suggested_order_qty", "BIGINT", "units to order now to last the lead time + 3 safety days, in "
                                              "whole cases of reorder_qty (0: none needed; NULL: on_hand or "
                                              "forecast unknown)"),
            ("sales_through", "DATE", "the last day of sales history the demand columns use"),
            ("as_of", "TIMESTAMPTZ", "when the stock store was read (UTC)"),
        )),
    Output(
        "forecast", "a store's rows, when its sales, latest dump or skus changed",
        ("store_id", "sku", "date"),
        "Daily demand forecast per store and sku for the days after the last day of sales history.",
        (
            ("store_id", "VARCHAR", "store"),
            ("sku", "VARCHAR", "item"),
            ("date", "DATE", "forecast day (the first is the day after sales_through)"),
            ("mean", "DOUBLE", "expected units"),
            ("lower", "DOUBLE", "lower bound of the prediction interval"),
            ("upper", "DOUBLE", "upper bound of the prediction interval"),
        )),
    Output(
        "sales_check", "a store's rows, with its forecast",
        ("store_id", "sku", "date"),
        "The last complete day of sales (the day before the latest dump's snapshot day, at most) per store and "
        "sku, against the one-day-ahead forecast interval fitted on the days before it: what the UnusualSales "
        "alert reads. Skus with no sales and no expected sales that day are left out.",
        (
            ("store_id", "VARCHAR", "store"),
            ("sku", "VARCHAR", "item"),
            ("date", "DATE", "the day checked"),
            ("units", "BIGINT", "units sold that day"),
            ("expected", "DOUBLE", "forecast for that day from the history before it"),
            ("lower", "DOUBLE", "lower bound of its prediction interval"),
            ("upper", "DOUBLE", "upper bound of its prediction interval"),
        )),
    Output(
        "data_quality", "the rows of the dumps new to it",
        ("store_id", "dump_id", "table_name", "rule"),
        "Per ingested dump and table: rows in, curated and rejected, and one row per rule that fired (long "
        "form, from the manifests). Each dump's rows are written once.",
        (
            ("store_id", "VARCHAR", "store"),
            ("date", "DATE", "UTC day of the dump's snapshot"),
            ("dump_id", "VARCHAR", "the dump"),
            ("snapshot_at", "TIMESTAMPTZ", "the dump's snapshot time (UTC)"),
            ("ingested_at", "TIMESTAMPTZ", "when it was ingested (UTC)"),
            ("table_name", "VARCHAR", "items, vendors, stock, sales or receipts"),
            ("rule", "VARCHAR", "'' on the table's totals row, else the rule code"),
            ("action", "VARCHAR", "'total', or the rule's action: reject, flag, fix"),
            ("rows_in", "BIGINT", "rows the table had in the dump"),
            ("curated", "BIGINT", "rows kept"),
            ("rejected", "BIGINT", "rows set aside"),
            ("written", "BIGINT", "fact tables: lines new to the lake (the others were already in it); NULL "
                                  "for snapshot tables"),
            ("rule_count", "BIGINT", "rows the rule applied to (totals row: rejected)"),
        )),
)}

SCHEMAS: dict[str, list[Col]] = {name: list(o.columns) for name, o in OUTPUTS.items()}
"""name → [(column, type, description)]: the stable contract of every aggregate."""


# --- Arrow schemas ------------------------------------------------------------------------------------------

def arrow_type(sql_type: str) -> pa.DataType:
    import pyarrow as pa

    if sql_type.startswith("DECIMAL("):
        p, s = sql_type[8:-1].split(",")
        return pa.decimal128(int(p), int(s))
    return {
        "VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }[sql_type]


def arrow_schema(name: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(c, arrow_type(t)) for c, t, _ in OUTPUTS[name].columns])


# --- the SQL --------------------------------------------------------------------------------------------------

def sales_daily_sku_sql(sales: str, items: str) -> str:
    """Daily units, lines, revenue and cost per (store, date, sku); :func:`with_margin_sql` adds the margin.

    ``sales``: curated sale lines with a DATE column ``date`` (their UTC day); ``items``: the items rows of the
    dumps that brought them (``dump_id``, ``sku``, ``category``, ``unit_price``, ``unit_cost``, ``snapshot_at``).
    The lines are summed per dump first (``priced``: the revenue of lines with their own price, ``unpriced``:
    the units of lines without), so the join with the items touches one row per (day, sku, dump) instead of
    one per line. A sku whose lines came with several dumps takes the category of the latest dump whose items
    have it, NULL included (``arg_max_null``: plain ``arg_max`` skips NULL values, so a category removed in the
    newer dump kept the older one); dumps whose items lack the sku (no join partner) have no say.
    """
    return f"""
WITH per_dump AS (
    SELECT store_id, date, sku, dump_id, sum(qty) AS units, count(*) AS lines,
           sum(qty * unit_price) AS priced, sum(qty) FILTER (WHERE unit_price IS NULL) AS unpriced
    FROM {sales}
    GROUP BY store_id, date, sku, dump_id
)
SELECT g.store_id, g.date, g.sku,
       arg_max_null(i.category, CASE WHEN i.dump_id IS NOT NULL
                                     THEN {{'at': i.snapshot_at, 'dump': i.dump_id}} END) AS category,
       CAST(sum(g.units) AS BIGINT) AS units,
       CAST(sum(g.lines) AS BIGINT) AS lines,
       CAST(sum(CASE WHEN g.priced IS NOT NULL OR i.unit_price IS NOT NULL
                     THEN coalesce(g.priced, 0) + coalesce(g.unpriced * i.unit_price, 0) END) AS {_MONEY}) AS revenue,
       CASE WHEN count(i.unit_cost) = count(*) THEN CAST(sum(g.units * i.unit_cost) AS {_MONEY}) END AS cost
FROM per_dump g LEFT JOIN {items} i ON i.dump_id = g.dump_id AND i.sku = g.sku
GROUP BY g.store_id, g.date, g.sku"""


def with_margin_sql(daily_sku: str) -> str:
    """The sales_daily_sku columns in contract order, margin added."""
    return (f"SELECT store_id, date, sku, category, units, lines, revenue, cost, "
            f"CAST(revenue - cost AS {_MONEY}) AS margin FROM {daily_sku}")


def sales_daily_category_sql(daily_sku: str) -> str:
    """sales_daily_category from sales_daily_sku rows."""
    return f"""
SELECT store_id, date, category,
       CAST(sum(units) AS BIGINT) AS units,
       CAST(sum(lines) AS BIGINT) AS lines,
       CAST(count(*) AS BIGINT) AS skus,
       CAST(sum(revenue) AS {_MONEY}) AS revenue,
       CAST(sum(cost) AS {_MONEY}) AS cost,
       CAST(sum(margin) AS {_MONEY}) AS margin,
       CAST(sum(revenue) FILTER (WHERE cost IS NOT NULL) AS {_MONEY}) AS revenue_with_cost
FROM {daily_sku}
GROUP BY store_id, date, category
ORDER BY date, category NULLS LAST"""


def daily_units_sql(daily_sku: str, first: date, last: date) -> str:
    """(sku, date, units) for the forecast's history window, from sales_daily_sku rows (plain SQL: it also runs in
    delta-rs's engine, over the Delta table)."""
    return (f"SELECT sku, date, CAST(sum(units) AS BIGINT) AS units FROM {daily_sku} "
            f"WHERE date BETWEEN DATE '{first}' AND DATE '{last}' GROUP BY sku, date")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stock_current_sql(*, store_id: str, items: str, stock: str, vendors: str, demand: str,
                      default_lead_time: int = DEFAULT_LEAD_TIME_DAYS) -> str:
    """stock_current without the columns the forecast module computes (days_of_cover, suggested_order_qty).

    ``items``: the latest dump's items; ``stock``: (sku, on_hand) from the stock store; ``vendors``: (vendor_id,
    lead_time_days); ``demand``: (sku, units_28d, forecast_daily, forecast_14d). Ordered by sku.
    """
    return f"""
WITH j AS (
    SELECT coalesce(it.sku, st.sku) AS sku, it.name, it.category, it.vendor_id, it.active, st.on_hand,
           it.reorder_point, it.reorder_qty
    FROM {items} it FULL OUTER JOIN {stock} st ON st.sku = it.sku
)
SELECT {_lit(store_id)} AS store_id, j.sku, j.name, j.category, j.vendor_id, j.active,
       CAST(j.on_hand AS BIGINT) AS on_hand, j.reorder_point, j.reorder_qty,
       CAST(coalesce(v.lead_time_days, {int(default_lead_time)}) AS BIGINT) AS lead_time_days,
       coalesce(j.active AND j.reorder_point > 0 AND j.on_hand <= j.reorder_point, false) AS low_stock,
       CAST(coalesce(d.units_28d, 0) AS BIGINT) AS units_28d,
       coalesce(d.units_28d, 0) / {WINDOW_DAYS}.0 AS avg_daily_units_28d,
       CASE WHEN j.on_hand IS NOT NULL THEN coalesce(d.units_28d, 0) / greatest(j.on_hand, 1)::DOUBLE END
           AS turnover_28d,
       d.forecast_daily,
       d.forecast_14d
FROM j
LEFT JOIN (SELECT vendor_id, any_value(lead_time_days) AS lead_time_days FROM {vendors}
           WHERE lead_time_days IS NOT NULL AND lead_time_days >= 0 GROUP BY vendor_id) v
       ON v.vendor_id = j.vendor_id
LEFT JOIN {demand} d ON d.sku = j.sku
ORDER BY j.sku"""


# --- data quality from a manifest ----------------------------------------------------------------------------

def data_quality_rows(manifest: Manifest | dict) -> list[dict]:
    """The data_quality rows of one manifest (typed, or its JSON): per table a totals row (rule ''), then one
    row per rule."""
    from shared.core.rules import RULES

    m = manifest if isinstance(manifest, Manifest) else Manifest.from_json(manifest)
    action = {r.code: r.action for r in RULES}
    common = {"store_id": m.store_id, "date": m.snapshot_at[:10], "dump_id": m.dump_id,
              "snapshot_at": m.snapshot_at, "ingested_at": m.ingested_at}
    rows = []
    for table, t in sorted(m.tables.items()):
        base = {**common, "table_name": table, "rows_in": t.input, "curated": t.curated, "rejected": t.rejected,
                "written": t.written}
        rows.append({**base, "rule": "", "action": "total", "rule_count": t.rejected})
        for code, n in sorted(t.by_rule.items()):
            rows.append({**base, "rule": code, "action": action.get(code, "other"), "rule_count": n})
    return rows


# --- docs and Synapse ----------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def schemas_markdown() -> str:
    """One Markdown section per output: table, grain, then a table of columns (for the README)."""
    parts = []
    for o in OUTPUTS.values():
        lines = [f"**`{o.name}`** — Delta table `{o.path}/` (partitioned by {', '.join(PARTITION_BY)}; a run "
                 f"replaces {o.replaced}) — one row per ({', '.join(o.grain)}). {o.description}", "",
                 "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c}` | {t} | {_cell(d)} |" for c, t, d in o.columns]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


_TEXT_LENGTH = {"store_id": 64, "sku": 100, "dump_id": 64, "vendor_id": 100, "sale_id": 200, "receipt_id": 200,
                "table_name": 32, "rule": 64, "action": 16, "month": 7}
_UTF8 = "COLLATE Latin1_General_100_BIN2_UTF8"


def tsql_type(column: str, sql_type: str) -> str:
    """The T-SQL type a Synapse serverless view declares for a Delta column of this DuckDB type."""
    if sql_type == "VARCHAR":
        return f"VARCHAR({_TEXT_LENGTH.get(column, 400)}) {_UTF8}"
    if sql_type.startswith("DECIMAL"):
        return sql_type
    return {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "FLOAT", "BOOLEAN": "BIT",
            "TIMESTAMPTZ": "DATETIME2(6)"}[sql_type]


_CURATED_KIND = {"key": "VARCHAR", "text": "VARCHAR", "int": "BIGINT", "decimal": _MONEY,
                 "timestamp": "TIMESTAMPTZ", "bool": "BOOLEAN"}


def curated_partitions(table: str) -> tuple[str, ...]:
    """The Delta partition columns of ``curated/<table>``: facts by store and month, snapshots by store."""
    return ("store_id", "month") if TABLES[table].fact else ("store_id",)


def curated_columns(table: str) -> list[tuple[str, str]]:
    """(column, DuckDB type) of the Delta table ``curated/<table>``; facts add the UTC ``date`` of the event and
    its ``month`` ('YYYY-MM', the partition)."""
    t = TABLES[table]
    return ([("store_id", "VARCHAR")] + [(c.name, _CURATED_KIND[c.kind]) for c in t.columns]
            + [("flags", "VARCHAR"), ("dump_id", "VARCHAR"), ("snapshot_at", "TIMESTAMPTZ")]
            + ([("date", "DATE"), ("month", "VARCHAR")] if t.fact else []))


def _view(schema: str, name: str, table: str, columns: list[tuple[str, str]], comment: str) -> str:
    """CREATE OR ALTER VIEW over OPENROWSET(FORMAT = 'DELTA') of the table's root folder (the one holding
    ``_delta_log``). Synapse reads the table's latest commit, never a file of an unfinished write, and
    eliminates partitions on filters on the partition columns (no filepath() needed)."""
    width = max(len(c) for c, _ in columns) + 2
    with_cols = ",\n".join(f"        {('[' + c + ']').ljust(width)} {tsql_type(c, t)}" for c, t in columns)
    select = ",\n       ".join(f"r.[{c}]" for c, _ in columns)
    return (f"-- {comment}\n"
            f"CREATE OR ALTER VIEW {schema}.{name} AS\nSELECT {select}\n"
            f"FROM OPENROWSET(\n        BULK '{table}/',\n        DATA_SOURCE = 'inventory_lake',\n"
            f"        FORMAT = 'DELTA'\n    )\n    WITH (\n{with_cols}\n    ) AS r;\nGO\n")


def synapse_views_sql() -> str:
    """``infra/synapse/02_views.sql``: a view per aggregate (schema ``agg``) and per curated table (``curated``),
    each over its Delta table.

    Filters on a table's partition columns (``store_id``; ``month`` of the curated facts) make Synapse read only
    the matching folders (partition elimination), so Power BI reads only the files a report needs.
    """
    out = [
        "-- Generated by shared.core.aggregates.synapse_views_sql(): edit the schemas there, then regenerate with",
        "--   python -c \"from shared.core.aggregates import synapse_views_sql as s; print(s(), end='')\" "
        "> infra/synapse/02_views.sql",
        "-- Run in the `inventory` database after 01_database.sql. Every view reads a Delta table (committed data",
        "-- only). Filter on store_id (and month, 'YYYY-MM', for curated sales and receipts): they are the",
        "-- tables' partition columns, so Synapse reads only the matching folders.",
        "",
        "IF SCHEMA_ID('agg') IS NULL EXEC('CREATE SCHEMA agg');",
        "GO",
        "IF SCHEMA_ID('curated') IS NULL EXEC('CREATE SCHEMA curated');",
        "GO",
        "",
    ]
    for o in OUTPUTS.values():
        out.append(_view("agg", o.name, o.path, [(c, t) for c, t, _ in o.columns], o.description))
    for name, t in TABLES.items():
        cols = curated_columns(name)
        parts = ", ".join(curated_partitions(name))
        what = (f"curated {name}: every line once, with the dump that brought it (partitioned by {parts})"
                if t.fact else f"curated {name}: every dump's snapshot (partitioned by {parts}); {name}_latest "
                f"has each store's latest")
        out.append(_view("curated", name, layout.curated(name), cols, what))
        if not t.fact:
            names = ", ".join(f"[{c}]" for c, _ in cols)
            out.append(
                f"-- curated {name} of each store's latest dump (latest snapshot_at, then dump_id)\n"
                f"CREATE OR ALTER VIEW curated.{name}_latest AS\n"
                f"SELECT {names}\nFROM (\n    SELECT *, DENSE_RANK() OVER (PARTITION BY [store_id] "
                f"ORDER BY [snapshot_at] DESC, [dump_id] DESC) AS [rank_latest]\n    FROM curated.{name}\n) AS t\n"
                f"WHERE [rank_latest] = 1;\nGO\n")
    return "\n".join(out)


__all__ = ["AGGREGATES_VERSION", "DEFAULT_LEAD_TIME_DAYS", "FORECAST_SUM_DAYS", "HISTORY_DAYS", "OUTPUTS",
           "PARTITION_BY", "SCHEMAS", "STATE_PATH", "WINDOW_DAYS", "Output", "arrow_schema", "arrow_type",
           "curated_columns", "curated_partitions", "daily_units_sql", "data_quality_rows",
           "sales_daily_category_sql", "sales_daily_sku_sql", "schemas_markdown", "stock_current_sql",
           "synapse_views_sql", "tsql_type", "with_margin_sql"]
