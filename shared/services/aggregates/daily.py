"""The daily sales outputs (sales_daily_sku, sales_daily_category): a store's days recomputed in batches of
at most ``batch_lines`` sale lines, each batch's lines streaming from delta-rs into DuckDB."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from shared.core import layout
from shared.core.aggregates import sales_daily_category_sql, sales_daily_sku_sql, with_margin_sql
from shared.core.sql import literal, sql_list
from shared.services.aggregates.days import batches, days_clause
from shared.services.aggregates.run import DAILY, Run
from shared.services.aggregates.schemas import empty, schema
from shared.services.aggregates.state import StoreState

if TYPE_CHECKING:
    import pyarrow as pa


def compute_days(run: Run, store: str, st: StoreState, days: list[str], history_from: str) -> pa.Table | None:
    """Recompute the daily outputs of ``days``; returns their (sku, date, units) from ``history_from`` on,
    for the forecast (so it need not read back what it has just written)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fresh, first = [], True
    for batch in batches(days, st.sales_days(), run.batch_lines):
        sku_table, cat_table = sales_batch(run, store, st, batch)
        where = f"store_id = {literal(store)}"
        if not (run.full and first):  # a full rebuild's first batch clears the store's rows
            where += f" AND {days_clause(batch)}"
        first = False
        run.writer.replace("sales_daily_sku", sku_table, where)
        run.writer.replace("sales_daily_category", cat_table, where)
        run.result.sales_lines += int(pc.sum(sku_table.column("lines")).as_py() or 0)
        run.result.partitions_recomputed += len(batch)
        recent = pc.greater_equal(sku_table.column("date"), pa.scalar(date.fromisoformat(history_from)))
        fresh.append(sku_table.filter(recent).select(["sku", "date", "units"]))
    if run.full and first:  # no day at all: a full rebuild still clears the store's rows
        for output in DAILY:
            run.writer.replace(output, empty(output), f"store_id = {literal(store)}")
    return pa.concat_tables(fresh) if fresh else None


def sales_batch(run: Run, store: str, st: StoreState, batch: list[str]) -> tuple[pa.Table, pa.Table]:
    """(sales_daily_sku sorted by date and sku, sales_daily_category) of a batch of days: the lines of the
    dumps that wrote to those days stream from delta-rs into DuckDB with those dumps' items."""
    dumps = sql_list(st.dumps_on(batch))
    months = sql_list(sorted({d[:7] for d in batch}))
    where = f"store_id = {literal(store)} AND dump_id IN {dumps}"
    sales = run.tables.query(f"SELECT store_id, sku, qty, unit_price, dump_id, date FROM s WHERE {where} "
                             f"AND month IN {months} AND {days_clause(batch)}", s=layout.curated("sales"))
    items = run.tables.query(f"SELECT dump_id, sku, category, unit_price, unit_cost, snapshot_at FROM i "
                             f"WHERE {where}", i=layout.curated("items"))
    con = run.con
    con.register("sales_in", sales if sales is not None else schema("sales").empty_table())
    con.register("items_in", items if items is not None else schema("items").empty_table())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE daily AS "
                    + with_margin_sql(f"({sales_daily_sku_sql('sales_in', 'items_in')})"))
    finally:
        con.unregister("sales_in")
        con.unregister("items_in")
    sku_table = con.sql("SELECT * FROM daily ORDER BY date, sku").to_arrow_table()
    cat_table = con.sql(sales_daily_category_sql("daily")).to_arrow_table()
    con.execute("DROP TABLE daily")
    return sku_table, cat_table


__all__ = ["compute_days", "sales_batch"]
