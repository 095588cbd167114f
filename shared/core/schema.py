"""The canonical dump schema (docs/ingestion.md), as data: tables, columns, types, keys.

Every column is read from a dump as text (SQLite is dynamically typed: one column can hold integers in
one row and text in the next), then parsed by the rules into the curated type given here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["key", "text", "int", "decimal", "timestamp", "bool"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    default_sql: str | None = None  # SQL value used when the column is absent or NULL

    @property
    def numeric(self) -> bool:
        """An int or decimal column: the reader passes it as the numbers SQLite stored, when it can."""
        return self.kind in ("int", "decimal")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool  # must the dump contain this table?
    fact: bool  # facts (sales, receipts) are appended once; snapshots (items, stock) are per dump
    event_time: str | None = None  # the column that partitions a fact table by date

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


C = Column
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "items",
            (
                C("sku", "key", True),
                C("name", "text", True),
                C("category", "text"),
                C("vendor_id", "key"),
                C("unit_cost", "decimal"),
                C("unit_price", "decimal"),
                C("reorder_point", "int"),
                C("reorder_qty", "int"),
                C("active", "bool", default_sql="TRUE"),
            ),
            key=("sku",),
            required=True,
            fact=False,
        ),
        Table(
            "vendors",
            (C("vendor_id", "key", True), C("name", "text"), C("email", "text"), C("lead_time_days", "int")),
            key=("vendor_id",),
            required=False,
            fact=False,
        ),
        Table(
            "stock",
            (C("sku", "key", True), C("on_hand", "int", True), C("counted_at", "timestamp")),
            key=("sku",),
            required=True,
            fact=False,
        ),
        Table(
            "sales",
            (
                C("sale_id", "key", True),
                C("line_no", "int", default_sql="1"),
                C("sku", "key", True),
                C("qty", "int", True),
                C("unit_price", "decimal"),
                C("sold_at", "timestamp", True),
            ),
            key=("sale_id", "line_no"),
            required=True,
            fact=True,
            event_time="sold_at",
        ),
        Table(
            "receipts",
            (
                C("receipt_id", "key", True),
                C("sku", "key", True),
                C("qty", "int", True),
                C("received_at", "timestamp", True),
                C("vendor_id", "key"),
            ),
            key=("receipt_id", "sku"),
            required=False,
            fact=True,
            event_time="received_at",
        ),
    )
}

# Vendors, then items: items are checked against vendors, the other tables against items.
READ_ORDER: tuple[str, ...] = ("vendors", "items", "stock", "sales", "receipts")
