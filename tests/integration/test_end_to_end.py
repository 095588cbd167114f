"""The whole pipeline on local defaults: generate stores → agent upload → ingest (+ stock baseline) → POS
events → aggregates → alerts, every number checked against sums computed here from the stores' own
databases and the event stream (not from our outputs)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from inventory_agent import upload_dump

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.local.generator import generate_stores
from shared.local.pos_traffic import expected_deltas, pos_traffic
from shared.services.aggregates import compute_aggregates
from shared.services.apply_sales import RawEvent, apply_sales
from shared.services.ingest import ingest_landed_dump
from shared.services.raise_alerts import raise_alerts
from shared.services.reconcile_stock import reconcile_after_ingest
from tests.support.delta import delta_rows


def test_generate_ingest_apply_aggregate_alert(tmp_path: Path) -> None:
    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    truths = generate_stores(tmp_path / "stores", 2, n_items=80, days=28, sales_lines=4000, dirty_rate=0.0)
    for t in truths:
        up = upload_dump(t.path, t.store_id, lake, scratch=tmp_path)
        local = tmp_path / f"{t.store_id}.download"
        lake.get_to_file(up.path, local)
        result = ingest_landed_dump(up.path, local, lake.head(up.path).metadata, lake=lake, telemetry=telemetry,
                                    scratch=tmp_path)
        assert result.status == "ingested"
        reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=telemetry)

    # POS traffic after the snapshots (the agent's snapshot_at is the upload time), for the stores' own skus.
    con = {t.store_id: sqlite3.connect(t.path) for t in truths}
    skus = [r[0] for r in con["S001"].execute("SELECT sku FROM items ORDER BY sku")]
    items = list(pos_traffic(["S001", "S002"], skus, count=1500, seed=9, start=datetime.now(UTC), rate_per_s=50))
    counts = apply_sales([RawEvent(i.body) for i in items], stock=stock, lake=lake, telemetry=telemetry)
    assert counts.applied + counts.duplicate + counts.deadlettered == 1500
    deltas = expected_deltas(items)

    compute_aggregates(lake=lake, stock=stock, telemetry=telemetry, scratch=tmp_path)
    raised = raise_alerts(lake=lake, stock=stock, telemetry=telemetry).raised

    for t in truths:
        s, db = t.store_id, con[t.store_id]
        # Daily units per day = the store database's own sales, summed by UTC day.
        want_days = {d: u for d, u in db.execute("SELECT date(sold_at), sum(qty) FROM sales GROUP BY 1")}
        got_days: dict[str, int] = {}
        for r in delta_rows(lake, "aggregates/sales_daily_sku", f"store_id = '{s}'").to_pylist():
            got_days[r["date"].isoformat()] = got_days.get(r["date"].isoformat(), 0) + r["units"]
        assert got_days == want_days
        # Current stock = the dump's count + the events' deltas (the stock invariant), item by item.
        counted = dict(db.execute("SELECT sku, on_hand FROM stock"))
        want_stock = {k: counted.get(k, 0) + deltas.get((s, k), 0)
                      for k in set(counted) | {k for (st, k) in deltas if st == s}}
        current = delta_rows(lake, "aggregates/stock_current", f"store_id = '{s}'").to_pylist()
        got_stock = {r["sku"]: r["on_hand"] for r in current}
        assert set(want_stock) <= set(got_stock), "every counted or sold sku has a stock row"
        assert {k: v for k, v in got_stock.items() if v is not None} == {k: v for k, v in want_stock.items()
                                                                         if k in got_stock}
        # LowStock alerts = the low-stock rule on those numbers.
        rp = {k: (bool(a), p) for k, a, p in db.execute("SELECT sku, active, reorder_point FROM items")}
        want_low = {k for k, (active, p) in rp.items() if active and p > 0 and want_stock.get(k, 0) <= p}
        assert want_low and {a.sku for a in raised if a.kind == "LowStock" and a.store_id == s} == want_low
        neg = {a.sku for a in raised if a.kind == "NegativeStock" and a.store_id == s}
        assert neg == {k for k, v in want_stock.items() if v < 0}
    stock.close()
