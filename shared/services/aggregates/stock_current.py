"""stock_current, per store on every run: the latest dump's items and vendors, the stock store's counts (the
store's previous rows with the documents written since laid over them: ``stock_counts.py``), and the demand
columns; then days of cover and the suggested order.

The demand columns depend on the sales (the dumps and the days they wrote), the latest dump (its items and
snapshot day) and the skus it covers. A store where none of these changed reuses the demand columns of its
previous rows (and keeps its forecast); otherwise they are recomputed with the forecast (``demand.py``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import TYPE_CHECKING

from shared.core import layout
from shared.core.aggregates import AGGREGATES_VERSION, DEFAULT_LEAD_TIME_DAYS, OUTPUTS, stock_current_sql
from shared.core.sql import literal
from shared.services.aggregates.days import parse_ts
from shared.services.aggregates.demand import compute_demand
from shared.services.aggregates.run import Run
from shared.services.aggregates.schemas import schema
from shared.services.aggregates.state import StoreState
from shared.services.lake_tables import dump_rows

if TYPE_CHECKING:
    import pyarrow as pa


def stock_current(run: Run, store: str, st: StoreState, days: list[str], fresh: pa.Table | None,
                  recomputed: set[str]) -> None:
    """Replace the store's stock_current rows (``days``: its days with sales; ``fresh``: the (sku, date, units)
    recomputed in this run, whose days are ``recomputed``)."""
    latest = st.latest()
    items = _latest_rows(run, store, "items", latest, schema("current_items"))
    vendors = _latest_rows(run, store, "vendors", st.latest("vendors"), schema("vendors"))
    previous = _previous_rows(run, store)
    stock = run.stock_counts.counts(store, previous)
    # The stock store can count skus the dump's items lack (a receipt for a new sku): its rows get a forecast
    # of their own, so a change in those skus recomputes the demand, as a full run would.
    skus = sorted({s for col in (items.column("sku"), stock.column("sku")) for s in col.to_pylist() if s is not None})
    key = _demand_key(st, latest, skus)
    demand, sales_through = None, None
    if key == st.demand_key:  # same sales, dumps and skus as when the demand was computed: reuse it
        demand, sales_through = _previous_demand(run, previous, len(skus))
    if demand is None:
        snapshot = parse_ts(st.dumps[latest]["snapshot_at"]) if latest else None
        demand, sales_through = compute_demand(run, store, days, skus, fresh, recomputed,
                                               snapshot.date() if snapshot else None)
        st.demand_key = key
    table = _with_cover(run, _joined(run, store, {"items_t": items, "stock_t": stock, "vendors_t": vendors,
                                                  "demand_t": demand}), sales_through)
    run.writer.replace("stock_current", table, f"store_id = {literal(store)}")
    run.result.stock_rows += table.num_rows


def _latest_rows(run: Run, store: str, table: str, dump_id: str | None, columns: pa.Schema) -> pa.Table:
    """The store's ``curated/<table>`` rows of one dump (the columns of ``columns``; empty without a dump)."""
    found = None
    if dump_id is not None:
        found = dump_rows(run.tables, layout.curated(table), store, dump_id, columns.names)
    return found.cast(columns) if found is not None else columns.empty_table()


def _demand_key(st: StoreState, latest: str | None, skus: list[str]) -> str:
    """Everything the demand columns depend on, hashed: the definitions, the latest dump, the sales (the dumps and
    the days they wrote) and the skus."""
    sales = {d: info.get("days", {}) for d, info in st.dumps.items()}
    return hashlib.sha256(json.dumps([AGGREGATES_VERSION, latest, sales, skus], sort_keys=True).encode()).hexdigest()


def _previous_rows(run: Run, store: str) -> pa.Table | None:
    """The store's current stock_current rows: their counts and demand columns (None: no table yet)."""
    return run.tables.read(f"SELECT sku, on_hand, units_28d, forecast_daily, forecast_14d, sales_through FROM t "
                           f"WHERE store_id = {literal(store)}", t=OUTPUTS["stock_current"].path)


def _previous_demand(run: Run, prev: pa.Table | None, n_skus: int) -> tuple[pa.Table | None, date | None]:
    """The demand columns of the store's current stock_current rows (None when they cannot be trusted: the
    forecast table is gone, or the rows are missing)."""
    if prev is None or (n_skus and not prev.num_rows) or run.tables.open(OUTPUTS["forecast"].path) is None:
        return None, None
    sales_through = prev.column("sales_through")[0].as_py() if prev.num_rows else None
    demand = prev.select(["sku", "units_28d", "forecast_daily", "forecast_14d"]).cast(schema("demand"))
    return demand, sales_through


def _joined(run: Run, store: str, inputs: dict[str, pa.Table]) -> pa.Table:
    """stock_current's SQL over the items, the counts, the vendors and the demand (registered under their keys)."""
    for name, t in inputs.items():
        run.con.register(name, t)
    try:
        return run.con.sql(stock_current_sql(store_id=store, items="items_t", stock="stock_t", vendors="vendors_t",
                                             demand="demand_t", default_lead_time=DEFAULT_LEAD_TIME_DAYS)
                           ).to_arrow_table()
    finally:
        for name in inputs:
            run.con.unregister(name)


def _with_cover(run: Run, table: pa.Table, sales_through: date | None) -> pa.Table:
    """The joined rows with days of cover and the suggested order (numpy), ``sales_through`` and ``as_of``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from shared.core.forecast import cover_and_reorder

    on_hand = table.column("on_hand")
    daily = table.column("forecast_daily")
    known = pc.and_(pc.is_valid(on_hand), pc.is_valid(daily)).to_numpy(zero_copy_only=False)
    cover, order = cover_and_reorder(
        on_hand.fill_null(0).to_numpy(), daily.fill_null(0.0).to_numpy(),
        table.column("lead_time_days").to_numpy(), table.column("reorder_qty").fill_null(0).to_numpy())
    cover_ok = known & np.isfinite(cover)
    same = np.zeros(table.num_rows, np.int64)  # indexes into a one-value array: the value repeated n times
    table = (table
             .append_column("days_of_cover", pa.array(cover, pa.float64(), mask=~cover_ok))
             .append_column("suggested_order_qty", pa.array(order, pa.int64(), mask=~known))
             .append_column("sales_through", pa.array([sales_through], pa.date32()).take(same))
             .append_column("as_of", pa.array([run.now], pa.timestamp("us", tz="UTC")).take(same)))
    return table.select(list(OUTPUTS["stock_current"].column_names))


__all__ = ["stock_current"]
