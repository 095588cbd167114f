"""The alert timer's stock alerts, kept from run to run: after sales, a new dump and a new forecast, the alerts
equal a full evaluation of the store, and a run reads only the documents written since the last one — on the
embedded store and on Cosmos DB (the Cosmos-API server through the dev shim)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.alerts import stock_alerts
from shared.core.events import SaleEvent
from shared.local.generator import generate_store
from shared.ports.stock import StockStore
from shared.services.engines import open_snapshots
from shared.services.ingest import ingest_dump
from shared.services.raise_alerts import raise_alerts
from shared.services.reconcile_stock import reconcile_after_ingest
from shared.services.stock_alerts import item_stock, stock_alerts_now

SNAPSHOT = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@pytest.fixture
def world(stock_store: StockStore, tmp_path: Path):
    """One generated store (fresh id: the Cosmos container is shared by the session), ingested and rebased."""
    store_id = "A" + uuid.uuid4().hex[:10]
    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    db = tmp_path / "store.sqlite"
    generate_store(db, store_id, n_items=120, days=14, sales_lines=3000, dirty_rate=0.0, seed=3)
    ingest(db, store_id, lake, stock_store, telemetry, SNAPSHOT, tmp_path)
    return lake, stock_store, telemetry, db, store_id


def ingest(db: Path, store_id: str, lake: FolderLake, stock: StockStore, telemetry: MemoryTelemetry,
           snapshot: datetime, tmp_path: Path) -> None:
    result = ingest_dump(db, store_id, lake=lake, telemetry=telemetry, snapshot_at=snapshot, scratch=tmp_path)
    reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)


def full_evaluation(lake: FolderLake, stock: StockStore, store_id: str) -> list:
    return stock_alerts(item_stock(lake, stock, store_id, open_snapshots(lake)))


def sell_down(stock: StockStore, store_id: str, n: int, minutes: int) -> set[str]:
    """Sell ``n`` skus that are above zero down to -1 (each becomes NegativeStock and LowStock); their skus."""
    docs = [d for d in stock.stock(store_id) if d.on_hand > 0][:n]
    at = SNAPSHOT + timedelta(minutes=minutes)
    stock.apply(store_id, [SaleEvent(f"e{minutes}-{d.sku}", store_id, "sale", at, ((d.sku, -(d.on_hand + 1)),))
                           for d in docs])
    return {d.sku for d in docs}


def test_kept_alerts_equal_a_full_evaluation_after_sales_a_dump_and_a_forecast(world, tmp_path: Path) -> None:
    lake, stock, telemetry, db, s = world
    first = stock_alerts_now(lake, stock, open_snapshots(lake), [s], None)
    assert first.alerts == full_evaluation(lake, stock, s) and first.alerts
    docs = len(stock.stock(s))
    assert first.docs_read == docs and first.stores_read == 1  # no cursor yet: the store whole

    sold = sell_down(stock, s, 3, minutes=60)
    after_sales = stock_alerts_now(lake, stock, open_snapshots(lake), [s], first.state)
    assert after_sales.alerts == full_evaluation(lake, stock, s)
    assert sold <= {a.sku for a in after_sales.alerts if a.kind == "NegativeStock"}
    assert after_sales.stores_read == 0  # the changed documents only, never the whole store again

    con = sqlite3.connect(db)  # the next night's dump: other counts, another reorder point
    con.execute("UPDATE stock SET on_hand = on_hand + 5")
    con.execute("UPDATE items SET reorder_point = reorder_point + 7")
    con.commit()
    con.close()
    ingest(db, s, lake, stock, telemetry, SNAPSHOT + timedelta(days=1), tmp_path)
    after_dump = stock_alerts_now(lake, stock, open_snapshots(lake), [s], after_sales.state)
    assert after_dump.alerts == full_evaluation(lake, stock, s)
    assert after_dump.alerts != after_sales.alerts

    from shared.services.aggregates import compute_aggregates

    compute_aggregates(lake=lake, stock=stock, telemetry=telemetry, scratch=tmp_path / "agg",
                       now=SNAPSHOT + timedelta(days=1, hours=2))
    after_forecast = stock_alerts_now(lake, stock, open_snapshots(lake), [s], after_dump.state)
    assert after_forecast.alerts == full_evaluation(lake, stock, s)
    assert after_forecast.stores_read == 1  # the forecast moved: the store is evaluated whole, once
    assert any("daysOfCover" in a.dimensions for a in after_forecast.alerts)

    quiet = stock_alerts_now(lake, stock, open_snapshots(lake), [s], after_forecast.state)
    assert quiet.alerts == after_forecast.alerts and quiet.stores_read == 0


def test_a_run_reads_only_what_changed(tmp_path: Path) -> None:
    """On the embedded store the count is exact (its cursor does not overlap): the first run reads every
    document, the next ones the documents sales touched, then none."""
    from shared.adapters.stock_sqlite import SqliteStockStore

    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    db = tmp_path / "S001.sqlite"
    generate_store(db, "S001", n_items=120, days=14, sales_lines=3000, dirty_rate=0.0, seed=3)
    ingest(db, "S001", lake, stock, telemetry, SNAPSHOT, tmp_path)
    now = SNAPSHOT + timedelta(hours=2)
    first = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now)
    assert first.stock_docs_read == len(stock.stock("S001"))
    sold = sell_down(stock, "S001", 4, minutes=60)
    second = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now + timedelta(minutes=15))
    assert second.stock_docs_read == len(sold) and second.stores_read_whole == 0
    assert {a.sku for a in second.raised if a.kind == "NegativeStock"} == sold
    third = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now + timedelta(minutes=30))
    assert third.stock_docs_read == 0 and third.raised == [] and third.true_now == second.true_now
    assert ("alerts_stock_docs_read", 0) in [(name, value) for name, value, _ in telemetry.metrics]
    stock.close()
