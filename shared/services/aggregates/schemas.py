"""The Arrow schemas of a run's intermediate tables (daily units, demand, the inputs it reads) and its outputs'
empty tables."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from shared.core.aggregates import arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def schema(name: str) -> pa.Schema:
    """``units`` (sku, date, units), ``demand`` (stock_current's demand columns), and the inputs read: ``sales``
    and ``items`` (a batch of days), ``current_items`` and ``vendors`` (the latest dump's, for stock_current)."""
    import pyarrow as pa

    money, text = pa.decimal128(18, 4), pa.string()
    return {
        "units": pa.schema([("sku", text), ("date", pa.date32()), ("units", pa.int64())]),
        "demand": pa.schema([("sku", text), ("units_28d", pa.int64()), ("forecast_daily", pa.float64()),
                             ("forecast_14d", pa.float64())]),
        "sales": pa.schema([("store_id", text), ("sku", text), ("qty", pa.int64()), ("unit_price", money),
                            ("dump_id", text), ("date", pa.date32())]),
        "items": pa.schema([("dump_id", text), ("sku", text), ("category", text), ("unit_price", money),
                            ("unit_cost", money), ("snapshot_at", pa.timestamp("us", tz="UTC"))]),
        "current_items": pa.schema([("sku", text), ("name", text), ("category", text), ("vendor_id", text),
                                    ("active", pa.bool_()), ("reorder_point", pa.int64()),
                                    ("reorder_qty", pa.int64())]),
        "vendors": pa.schema([("vendor_id", text), ("lead_time_days", pa.int64())]),
    }[name]


def empty(output: str) -> pa.Table:
    """No rows of ``output`` (replacing a store's rows by none)."""
    return arrow_schema(output).empty_table()


__all__ = ["empty", "schema"]
