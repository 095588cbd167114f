"""Demand: the last 16 weeks of sales_daily_sku per sku (the days recomputed in this run from memory, the others
read back from the table), the forecast and the sales check they give (both replaced per store), and the demand
columns of stock_current."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from shared.core.aggregates import FORECAST_SUM_DAYS, OUTPUTS, WINDOW_DAYS, daily_units_sql
from shared.core.sql import literal
from shared.services.aggregates.days import days_clause, history_start
from shared.services.aggregates.run import Run
from shared.services.aggregates.schemas import empty, schema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

CHECK_Z = 3.0  # width of the sales_check interval (UnusualSales)


def compute_demand(run: Run, store: str, days: list[str], skus: list[str], fresh: pa.Table | None,
                   recomputed: set[str], snapshot_day: date | None = None) -> tuple[pa.Table, date | None]:
    """(sku, units_28d, forecast_daily, forecast_14d) from the last 16 weeks of sales_daily_sku, and the last
    day of sales history; replaces the store's forecast and sales_check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from shared.core.forecast import forecast_demand

    where = f"store_id = {literal(store)}"
    if not days:  # no sales: no forecast (rows of an earlier one go)
        for output in ("forecast", "sales_check"):
            run.writer.replace(output, empty(output), where)
        return schema("demand").empty_table(), None
    run.result.forecasts_recomputed += 1
    first, last = history_start(days), date.fromisoformat(days[-1])
    units = _units(run, store, days, fresh, recomputed, first, last)
    order = sorted(set(skus) | set(pc.unique(units.column("sku")).to_pylist()))
    history = _history(units, order, first, last)
    forecast_daily = forecast_14d = pa.nulls(len(order), pa.float64())
    forecast, check = empty("forecast"), empty("sales_check")
    if history.shape[1] >= 7 and order:
        f = forecast_demand(history, first)
        forecast_daily = pa.array(f.mean.mean(axis=1))
        forecast_14d = pa.array(f.mean[:, :FORECAST_SUM_DAYS].sum(axis=1))
        forecast = _forecast_table(store, order, f)
        check = _sales_check(store, history, first, last, order, snapshot_day)
    run.writer.replace("forecast", forecast, where)
    run.writer.replace("sales_check", check, where)
    return _demand_table(order, history, forecast_daily, forecast_14d), last


def _units(run: Run, store: str, days: list[str], fresh: pa.Table | None, recomputed: set[str], first: date,
           last: date) -> pa.Table:
    """(sku, date, units) of the history: the days recomputed in this run (``fresh``), the others read back."""
    import pyarrow as pa

    parts = [schema("units").empty_table()] + ([fresh.cast(schema("units"))] if fresh is not None else [])
    if any(d >= first.isoformat() and d not in recomputed for d in days):
        parts.append(_history_units(run, store, first, last, recomputed))
    return pa.concat_tables([p for p in parts if p is not None])


def _history_units(run: Run, store: str, first: date, last: date, recomputed: set[str]) -> pa.Table | None:
    """(sku, date, units) of sales_daily_sku from first to last, the days recomputed in this run left out."""
    where = f"store_id = {literal(store)}" + (f" AND NOT {days_clause(recomputed)}" if recomputed else "")
    found = run.tables.read(daily_units_sql(f"(SELECT sku, date, units FROM t WHERE {where}) AS d", first, last),
                            t=OUTPUTS["sales_daily_sku"].path)
    return found.cast(schema("units")) if found is not None else None


def _history(units: pa.Table, order: list[str], first: date, last: date) -> np.ndarray:
    """Units as a matrix: a row per sku of ``order``, a column per day from ``first`` to ``last``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    history = np.zeros((len(order), (last - first).days + 1))
    rows = pc.index_in(units.column("sku"), value_set=pa.array(order, pa.string())).to_numpy()
    cols = pc.days_between(pa.scalar(first, pa.date32()), units.column("date")).to_numpy()
    history[rows, cols] = units.column("units").to_numpy()
    return history


def _demand_table(order: list[str], history: np.ndarray, forecast_daily: pa.Array,
                  forecast_14d: pa.Array) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    units_28d = history[:, -WINDOW_DAYS:].sum(axis=1).astype(np.int64)
    return pa.table({"sku": pa.array(order, pa.string()), "units_28d": pa.array(units_28d, pa.int64()),
                     "forecast_daily": forecast_daily, "forecast_14d": forecast_14d})


def _sales_check(store: str, history: np.ndarray, first: date, last: date, order: list[str],
                 snapshot_day: date | None) -> pa.Table:
    """The last complete day against its one-day-ahead interval (for the UnusualSales alert). The dump's
    own snapshot day may be partial (a dump taken at noon), so the day checked is at most the day before."""
    import numpy as np
    import pyarrow as pa

    from shared.core.forecast import ForecastConfig, one_step_check

    day = last if snapshot_day is None or last < snapshot_day else snapshot_day - timedelta(days=1)
    upto = (day - first).days + 1  # history columns through the day checked
    if upto < 8:  # one_step_check needs a week before the day it checks
        return empty("sales_check")
    # z = 3 (about 1 day in 700 above the upper bound by chance) rather than the forecast's 1.96: this
    # interval decides pages, and a chain has thousands of sku-days a day.
    expected, lower, upper = one_step_check(history[:, :upto], first, ForecastConfig(z=CHECK_Z))
    units = history[:, upto - 1]
    keep = (units > 0) | (expected > 0)
    n = int(keep.sum())
    return pa.table({
        "store_id": pa.array([store] * n, pa.string()),
        "sku": pa.array(np.array(order, dtype=object)[keep], pa.string()),
        "date": pa.array([day] * n, pa.date32()),
        "units": pa.array(units[keep].astype(np.int64), pa.int64()),
        "expected": pa.array(expected[keep]), "lower": pa.array(lower[keep]), "upper": pa.array(upper[keep])})


def _forecast_table(store: str, order: list[str], f) -> pa.Table:  # noqa: ANN001 - core.forecast.Forecast
    import numpy as np
    import pyarrow as pa

    horizon = f.mean.shape[1]
    dates = pa.array([f.first_day + timedelta(days=h) for h in range(horizon)], pa.date32())
    n = len(order) * horizon
    return pa.table({
        "store_id": pa.array([store], pa.string()).take(np.zeros(n, dtype=np.int64)),
        "sku": pa.array(order, pa.string()).take(np.repeat(np.arange(len(order)), horizon)),
        "date": dates.take(np.tile(np.arange(horizon), len(order))),
        "mean": pa.array(f.mean.ravel()), "lower": pa.array(f.lower.ravel()), "upper": pa.array(f.upper.ravel())})


__all__ = ["CHECK_Z", "compute_demand"]
