"""The alert service on a real folder lake and embedded stock store: the alerts raised are exactly the true
ones (checked against SQL on the store's own database), none repeats, and pipeline-health alerts fire."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.ids import raw_dump_path
from shared.local.generator import generate_store
from shared.services.apply_sales import RawEvent, apply_sales
from shared.services.ingest_dump import ingest_dump
from shared.services.raise_alerts import AlertSettings, raise_alerts
from shared.services.reconcile_stock import reconcile_after_ingest

SNAPSHOT = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path):
    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    db = tmp_path / "S001.sqlite"
    generate_store(db, "S001", n_items=120, days=14, sales_lines=3000, dirty_rate=0.0, seed=3)
    result = ingest_dump(db, "S001", lake=lake, telemetry=telemetry, snapshot_at=SNAPSHOT, scratch=tmp_path)
    reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)
    yield lake, stock, telemetry, db
    stock.close()


def low_stock_by_sql(db: Path, extra: dict[str, int] | None = None) -> set[str]:
    """The handbook's one-line definition, on the store's own database."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT i.sku, s.on_hand, i.reorder_point FROM items i JOIN stock s ON s.sku = i.sku "
                       "WHERE i.active AND i.reorder_point > 0").fetchall()
    con.close()
    extra = extra or {}
    return {sku for sku, on_hand, rp in rows if on_hand + extra.get(sku, 0) <= rp}


def kinds(alerts: list) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a in alerts:
        out.setdefault(a.kind, set()).add(a.sku or a.subject)
    return out


def test_low_stock_alerts_are_exactly_the_true_ones_and_do_not_repeat(world) -> None:
    lake, stock, telemetry, db = world
    now = SNAPSHOT + timedelta(hours=2)
    run = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now)
    expected = low_stock_by_sql(db)
    assert expected, "the generator makes about 10 % of items low on stock"
    assert kinds(run.raised).get("LowStock", set()) == expected
    assert all(a.reason and a.store_id == "S001" for a in run.raised)
    names = {name for name, _ in telemetry.events}
    assert "LowStock" in names, "each alert is a telemetry custom event named after its kind"

    again = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now + timedelta(minutes=15))
    assert again.raised == [] and again.true_now == run.true_now

    # Sales take one more item under its reorder point: only that one is new.
    con = sqlite3.connect(db)
    sku, on_hand, rp = con.execute("SELECT i.sku, s.on_hand, i.reorder_point FROM items i JOIN stock s USING (sku) "
                                   "WHERE i.active AND i.reorder_point > 0 AND s.on_hand > i.reorder_point "
                                   "ORDER BY i.sku LIMIT 1").fetchone()
    con.close()
    sell = on_hand - rp
    body = json.dumps({"eventId": "e1", "storeId": "S001", "type": "sale", "occurredAt": "2026-11-27T08:00:00Z",
                       "lines": [{"sku": sku, "qty": sell}]}).encode()
    apply_sales([RawEvent(body)], stock=stock, lake=lake, telemetry=telemetry, now=now)
    third = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now + timedelta(minutes=30))
    assert kinds(third.raised) == {"LowStock": {sku}}
    assert low_stock_by_sql(db, {sku: -sell}) == expected | {sku}


def test_pipeline_health_alerts(world, tmp_path: Path) -> None:
    lake, stock, telemetry, _db = world
    settings = AlertSettings()
    # A dump that landed and was never processed (the trigger failed on it), and a quarantined one.
    lake.put_bytes(raw_dump_path("S001", SNAPSHOT.date(), "late.sqlite.gz"), b"...")
    lake.put_bytes(raw_dump_path("S002", SNAPSHOT.date(), "bad.sqlite"), b"not sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not sqlite at all" * 10)
    ingest_dump(bad, "S002", lake=lake, telemetry=telemetry, source_name="bad.sqlite", scratch=tmp_path)

    soon = datetime.now(UTC) + timedelta(minutes=5)
    first = kinds(raise_alerts(lake=lake, stock=stock, telemetry=telemetry, settings=settings, now=soon).raised)
    assert first.get("DumpQuarantined") and "IngestFailure" not in first, "within the grace period: no page yet"

    later = soon + timedelta(hours=2)
    second = kinds(raise_alerts(lake=lake, stock=stock, telemetry=telemetry, settings=settings, now=later).raised)
    assert second["IngestFailure"] == {"raw/store=S001/date=2026-11-26/late.sqlite.gz"}
    assert "DumpQuarantined" not in second, "already raised, and no worse"

    next_day = later + timedelta(days=1)  # S001's only dump (23:00 the day before the test) is now > 26 h old
    third = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, settings=settings, now=next_day).raised
    stale = [a for a in third if a.kind == "StaleDump"]
    assert [a.store_id for a in stale] == ["S001"] and "check the store agent" in stale[0].reason


def test_unusual_sales_flags_the_spike_and_little_else(tmp_path: Path) -> None:
    """A generated store, one sku sold ten times its usual on the last complete day: compute_aggregates
    writes the day's check, raise_alerts pages for that sku."""
    from shared.services.compute_aggregates import compute_aggregates

    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    db = tmp_path / "S001.sqlite"
    generate_store(db, "S001", n_items=80, days=42, sales_lines=20_000, dirty_rate=0.0, seed=5)
    con = sqlite3.connect(db)
    sku, daily = con.execute("SELECT sku, sum(qty) / 42.0 FROM sales GROUP BY sku ORDER BY 2 DESC LIMIT 1 OFFSET 5"
                             ).fetchone()
    spike = int(daily * 10) + 20
    con.executemany("INSERT INTO sales (sale_id, line_no, sku, qty, unit_price, sold_at) VALUES (?, 1, ?, ?, 1.0, ?)",
                    [(f"SPIKE{i}", sku, 1, "2026-11-25 12:00:00") for i in range(spike)])
    con.commit()
    con.close()
    result = ingest_dump(db, "S001", lake=lake, telemetry=telemetry, snapshot_at=SNAPSHOT, scratch=tmp_path)
    reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)
    compute_aggregates(lake=lake, stock=stock, telemetry=telemetry, scratch=tmp_path)
    unusual = [a for a in raise_alerts(lake=lake, stock=stock, telemetry=telemetry).raised
               if a.kind == "UnusualSales"]
    assert sku in {a.sku for a in unusual}
    flagged = next(a for a in unusual if a.sku == sku)
    assert flagged.dimensions["day"] == "2026-11-25" and "above its forecast interval" in flagged.reason
    assert len(unusual) <= 3, "on 80 ordinary skus, at most a couple of chance alerts"
    stock.close()
