"""The alert service on a real folder lake and embedded stock store: the alerts raised are exactly the true
ones (checked against SQL on the store's own database), none repeats, and pipeline-health alerts fire."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from inventory_agent import upload_dump

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.layout import raw_dump_path
from shared.local.generator import generate_store
from shared.services.apply_sales import RawEvent, apply_sales
from shared.services.ingest import ingest_dump, ingest_landed_dump
from shared.services.raise_alerts import AlertSettings, raise_alerts
from shared.services.reconcile_stock import reconcile_after_ingest
from tests.support.delta import delta_rows
from tests.support.dumps import make_dump

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
    """The one-line low-stock definition (docs/ingestion.md), on the store's own database."""
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


def test_low_stock_alerts_carry_the_baseline_items_vendors_and_forecast(world, tmp_path: Path) -> None:
    """The item master (the baseline dump's rows of curated/items and curated/vendors) and the demand (the
    forecast aggregate) are read from the Delta tables: every LowStock alert's lead time and days of cover
    match those tables, read here independently."""
    from shared.services.aggregates import compute_aggregates

    lake, stock, telemetry, db = world
    now = SNAPSHOT + timedelta(hours=2)
    compute_aggregates(lake=lake, stock=stock, telemetry=telemetry, scratch=tmp_path / "agg", now=now)
    run = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now)
    low = [a for a in run.raised if a.kind == "LowStock"]
    assert {a.sku for a in low} == low_stock_by_sql(db)
    dump_id = stock.baseline("S001").dump_id
    where = f"store_id = 'S001' AND dump_id = '{dump_id}'"
    vendor = dict(zip(*(delta_rows(lake, "curated/items", where, "sku, vendor_id").column(c).to_pylist()
                        for c in ("sku", "vendor_id")), strict=True))
    lead = dict(zip(*(delta_rows(lake, "curated/vendors", where, "vendor_id, lead_time_days").column(c).to_pylist()
                      for c in ("vendor_id", "lead_time_days")), strict=True))
    forecast = delta_rows(lake, "aggregates/forecast", "store_id = 'S001'", "sku, mean").to_pylist()
    means: dict[str, list[float]] = {}
    for r in forecast:
        means.setdefault(r["sku"], []).append(r["mean"])
    with_cover = 0
    for a in low:
        assert a.dimensions["leadTimeDays"] == lead.get(vendor[a.sku], 7), a.sku
        mean = sum(means[a.sku]) / len(means[a.sku])
        if mean > 0:
            with_cover += 1
            cover = max(a.dimensions["onHand"], 0) / mean  # the alert shows it to one decimal
            assert a.dimensions["daysOfCover"] == pytest.approx(cover, abs=0.05 + 1e-9), a.sku
    assert with_cover, "some low items sell, so they have a cover"


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


def test_a_dump_that_changed_history_alerts_once_and_a_later_night_with_the_same_change_does_not(
        world, tmp_path: Path) -> None:
    from tests.support.dumps import next_night

    lake, stock, telemetry, db = world
    edited = next_night(db, tmp_path / "n2.sqlite", 4)
    with sqlite3.connect(edited) as con:
        con.execute("UPDATE sales SET qty = qty + 2 WHERE rowid IN (1, 2)")
    night2 = ingest_dump(edited, "S001", lake=lake, telemetry=telemetry, scratch=tmp_path)
    assert night2.manifest["tables"]["sales"]["changed_written"] == 2, night2.manifest["tables"]["sales"]
    now = datetime.now(UTC) + timedelta(minutes=5)
    raised = [a for a in raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now).raised
              if a.kind == "DumpHistoryChanged"]
    assert [(a.store_id, a.subject) for a in raised] == [("S001", night2.dump_id)]
    assert raised[0].to_json()["salesChanged"] == 2 and "kept the first version" in raised[0].reason
    events = [props for name, props in telemetry.events if name == "DumpHistoryChanged"]
    assert events and events[-1]["dumpId"] == night2.dump_id

    night3 = next_night(edited, tmp_path / "n3.sqlite", 0)  # the same edit again, and a new count time
    with sqlite3.connect(night3) as con:
        con.execute("UPDATE stock SET counted_at = '2026-11-28 23:00:00'")
    from shared.services.ingest import IngestLimits

    # Read whole (a full night: the change is seen again), it counts the change but reports nothing new.
    third = ingest_dump(night3, "S001", lake=lake, telemetry=telemetry, scratch=tmp_path,
                        limits=IngestLimits(full_check_days=0))
    assert third.manifest["tables"]["sales"]["changed_since_ingested"] == 2
    assert third.manifest["tables"]["sales"]["changed_written"] == 0  # reported on night 2
    later = [a for a in raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=now).raised
             if a.kind == "DumpHistoryChanged"]
    assert later == []


def test_unusual_sales_flags_the_spike_and_little_else(tmp_path: Path) -> None:
    """A generated store, one sku sold ten times its usual on the last complete day: compute_aggregates
    writes the day's check, raise_alerts pages for that sku."""
    from shared.services.aggregates import compute_aggregates

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


class CountingLake(FolderLake):
    """A folder lake that counts the object reads the alert service makes (besides listing)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[tuple[str, str]] = []

    def get_bytes(self, path: str) -> bytes:
        self.reads.append(("get_bytes", path))
        return super().get_bytes(path)

    def head(self, path: str):
        self.reads.append(("head", path))
        return super().head(path)

    def local_copy(self, paths: list[str], *, into: Path | None = None):
        self.reads.extend(("local_copy", p) for p in paths)
        return super().local_copy(paths, into=into)


def landed_dump(lake: FolderLake, telemetry: MemoryTelemetry, path: str, tmp_path: Path) -> str:
    """What the blob trigger does with a blob that landed in raw/: copy it out, ingest it; the status."""
    local = tmp_path / "download" / path.rsplit("/", 1)[-1]
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(lake.get_bytes(path))
    found = lake.head(path)
    assert found is not None
    return ingest_landed_dump(path, local, found.metadata, lake=lake, telemetry=telemetry, scratch=tmp_path).status


def dump_reads(lake: CountingLake) -> list[tuple[str, str]]:
    return [r for r in lake.reads if r[1].startswith(("raw/", "manifests/", "quarantine/"))]


def ingest_failures(run) -> set[str]:
    return {a.subject for a in run.raised if a.kind == "IngestFailure"}


@pytest.fixture
def uploaded(tmp_path: Path):
    """Store S1's dump uploaded by the agent and ingested by the blob trigger."""
    lake, telemetry = CountingLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    db = make_dump(tmp_path / "S1.sqlite")
    up = upload_dump(db, "S1", lake, scratch=tmp_path / "agent", now=SNAPSHOT)
    assert landed_dump(lake, telemetry, up.path, tmp_path) == "ingested"
    yield lake, stock, telemetry, up
    stock.close()


def test_the_same_dump_sent_again_under_another_name_is_no_ingest_failure(uploaded, tmp_path: Path) -> None:
    """The store's database put in raw/ again under other names: uncompressed by hand (no metadata), and a
    copy of the agent's blob with its metadata. The trigger says "already_ingested" and writes nothing:
    nothing failed, so nobody is paged."""
    lake, stock, telemetry, up = uploaded
    day = SNAPSHOT.date()
    plain = raw_dump_path("S1", day, "S1-resent.sqlite")
    lake.put_bytes(plain, gzip.decompress(lake.get_bytes(up.path)))
    copy = raw_dump_path("S1", day, "S1-copy.sqlite.gz")
    found = lake.head(up.path)
    assert found is not None and found.metadata["sha256"] == up.sha256
    lake.put_bytes(copy, lake.get_bytes(up.path), metadata=found.metadata)
    assert landed_dump(lake, telemetry, plain, tmp_path) == "already_ingested"
    assert landed_dump(lake, telemetry, copy, tmp_path) == "already_ingested"
    assert [n for n, _ in telemetry.events].count("DumpAlreadyIngested") == 2

    lake.reads.clear()
    later = datetime.now(UTC) + timedelta(hours=2)  # past the grace period
    run = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=later)
    assert ingest_failures(run) == set()
    assert "IngestFailure" not in run.by_kind
    # The copy is told by its metadata; only the blob without metadata is read, once.
    assert [r for r in lake.reads if r[0] == "local_copy"] == [("local_copy", plain)]

    lake.reads.clear()
    again = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=later + timedelta(minutes=15))
    assert "IngestFailure" not in again.by_kind
    assert not dump_reads(lake), "the next run reads no upload, manifest or quarantine record again"


def test_an_upload_never_ingested_still_alerts(uploaded, tmp_path: Path) -> None:
    """Uploads the trigger never processed page on-call, whether or not they carry the agent's metadata,
    even for a store whose other dumps were ingested; within the grace period they are not even read."""
    lake, stock, telemetry, _up = uploaded
    day = SNAPSHOT.date()
    other = make_dump(tmp_path / "S1-next.sqlite", "INSERT INTO sales VALUES ('3', 1, 'A-1', 1, 1.0, "
                      "'2026-11-26 20:00:00');")
    agent = upload_dump(other, "S1", lake, scratch=tmp_path / "agent", now=SNAPSHOT + timedelta(days=1))
    by_hand = raw_dump_path("S1", day, "S1-by-hand.sqlite")
    lake.put_bytes(by_hand, gzip.decompress(lake.get_bytes(agent.path)))  # the same database, no metadata

    lake.reads.clear()
    soon = datetime.now(UTC) + timedelta(minutes=5)
    first = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=soon)
    assert "IngestFailure" not in first.by_kind, "within the grace period: no page yet"
    assert not [r for r in dump_reads(lake) if r[1].startswith("raw/")], "nor any read of the uploads"

    later = soon + timedelta(hours=2)
    second = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=later)
    assert ingest_failures(second) == {agent.path, by_hand}
    assert all(a.severity == 0 for a in second.raised if a.kind == "IngestFailure")

    # Once the trigger ingests the agent's upload, both are processed: the copy by hand is the same database.
    assert landed_dump(lake, telemetry, agent.path, tmp_path) == "ingested"
    lake.reads.clear()
    third = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=later + timedelta(minutes=15))
    assert "IngestFailure" not in third.by_kind
    assert not [r for r in dump_reads(lake) if r[0] == "local_copy"], "its content was hashed once, last run"


def test_the_same_unreadable_file_quarantined_under_two_names_is_no_ingest_failure(tmp_path: Path) -> None:
    """The second quarantine of the same bytes rewrites the first one's reason.json (same key) with its own
    name: the first upload is still known as processed, by its content."""
    lake, telemetry = FolderLake(tmp_path / "lake"), MemoryTelemetry()
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    paths = [raw_dump_path("S2", SNAPSHOT.date(), name) for name in ("bad.sqlite", "bad-again.sqlite")]
    for path in paths:
        lake.put_bytes(path, b"not sqlite at all" * 10)
        assert landed_dump(lake, telemetry, path, tmp_path) == "quarantined"
    run = raise_alerts(lake=lake, stock=stock, telemetry=telemetry, now=datetime.now(UTC) + timedelta(hours=2))
    assert "IngestFailure" not in run.by_kind and run.by_kind["DumpQuarantined"] == 1
    stock.close()
