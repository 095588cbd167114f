"""A real foreign schema (Northwind) through a mapping file: views, a table name with a space, text booleans,
millisecond timestamps and integer keys. The dataset is third-party and read from ../shared/datasets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.mapping import parse_mapping
from shared.services.ingest import ingest_dump

ROOT = Path(__file__).resolve().parents[2]
NORTHWIND_SQL = ROOT.parent / "shared" / "datasets" / "northwind" / "northwind.sql"
MAPPING = ROOT / "examples" / "mappings" / "northwind.toml"

pytestmark = pytest.mark.skipif(not NORTHWIND_SQL.is_file(),
                                reason="Northwind dataset not present (../shared/datasets/northwind)")


@pytest.fixture(scope="module")
def northwind(tmp_path_factory):
    db = tmp_path_factory.mktemp("nw") / "northwind.sqlite"
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous = OFF")  # 6000 autocommitted INSERTs: no fsync each
    con.execute("PRAGMA journal_mode = MEMORY")
    con.executescript(NORTHWIND_SQL.read_text(encoding="utf-8"))
    con.commit()
    con.close()
    return db


def test_northwind_through_its_mapping(northwind, tmp_path):
    lake = FolderLake(tmp_path / "lake")
    mapping = parse_mapping(MAPPING.read_text(), source=str(MAPPING))
    result = ingest_dump(northwind, "NW1", lake=lake, telemetry=MemoryTelemetry(), mapping=mapping)
    assert result.status == "ingested", result.reason
    t = result.manifest["tables"]
    src = sqlite3.connect(northwind)
    one = lambda sql: src.execute(sql).fetchone()[0]  # noqa: E731
    assert t["items"]["input"] == t["items"]["curated"] == one("SELECT count(*) FROM Products")
    assert t["vendors"]["curated"] == one("SELECT count(*) FROM Suppliers")
    assert t["sales"]["input"] == t["sales"]["curated"] == one('SELECT count(*) FROM "Order Details"')
    assert t["stock"]["curated"] == one("SELECT count(*) FROM Products")
    assert result.manifest["snapshot_source"] == "landed_at"  # Northwind records no count time

    from tests.support.delta import delta_rows

    con = duckdb.connect()
    for table in ("items", "stock", "sales"):
        con.register(table, delta_rows(lake, f"curated/{table}"))
    items, stock = "items", "stock"
    # Keys are text whatever the dump stores; text booleans parsed.
    assert con.sql(f"SELECT typeof(sku) FROM {items} LIMIT 1").fetchall()[0][0] == "VARCHAR"
    assert con.sql(f"SELECT count(*) FROM {items} WHERE NOT active").fetchall()[0][0] == one(
        "SELECT count(*) FROM Products WHERE Discontinued = '1'")
    # The low-stock definition (docs/ingestion.md), on curated data, equals the one-line SQL on the source.
    low = con.sql(f"SELECT count(*) FROM {items} i JOIN {stock} s USING (sku) "
                     "WHERE i.active AND i.reorder_point > 0 AND s.on_hand <= i.reorder_point").fetchall()[0][0]
    assert low == one("SELECT count(*) FROM Products WHERE Discontinued = '0' AND ReorderLevel > 0 "
                      "AND UnitsInStock <= ReorderLevel") == 18
    # Millisecond, naive timestamps, read in the mapping's zone (Los Angeles: UTC-7 in July 1996).
    first = con.sql("SELECT min(sold_at) AT TIME ZONE 'UTC' FROM sales").fetchall()[0][0]
    assert first.isoformat() == "1996-07-04T07:00:00"
    units = con.sql("SELECT sum(qty) FROM sales").fetchall()[0][0]
    assert units == one('SELECT sum(Quantity) FROM "Order Details"')


def test_northwind_without_a_mapping_is_quarantined_naming_the_missing_tables(northwind, tmp_path):
    lake = FolderLake(tmp_path / "lake")
    result = ingest_dump(northwind, "NW1", lake=lake, telemetry=MemoryTelemetry())
    assert result.status == "quarantined" and result.reason_code == "missing_table"
    assert "'items'" in result.reason and "mapping file" in result.reason


def test_northwind_low_stock_alerts_are_the_one_line_sql(northwind, tmp_path):
    """The issue's check: the alerts a run raises are exactly the true ones."""
    from shared.adapters.stock_sqlite import SqliteStockStore
    from shared.services.raise_alerts import raise_alerts
    from shared.services.reconcile_stock import reconcile_after_ingest

    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    mapping = parse_mapping(MAPPING.read_text(), source=str(MAPPING))
    result = ingest_dump(northwind, "NW1", lake=lake, telemetry=telemetry, mapping=mapping)
    reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)
    raised = raise_alerts(lake=lake, stock=stock, telemetry=telemetry).raised
    src = sqlite3.connect(northwind)
    expected = {str(r[0]) for r in src.execute("SELECT ProductID FROM Products WHERE Discontinued = '0' AND "
                                                "ReorderLevel > 0 AND UnitsInStock <= ReorderLevel")}
    assert {a.sku for a in raised if a.kind == "LowStock"} == expected and len(expected) == 18
    assert raise_alerts(lake=lake, stock=stock, telemetry=telemetry).raised == []
    stock.close()
