"""The lake's Delta tables over time: migrating a lake of loose Parquet (the layout before Delta), and the
daily maintenance (compaction, vacuum, checkpoints). On both lakes."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.schema import TABLES
from shared.local.generator import generate_store
from shared.services.ingest import ingest_dump
from shared.services.maintain_lake import maintain_lake
from shared.services.migrate_lake import migrate_lake
from tests.support.delta import delta_count, delta_rows
from tests.support.dumps import next_night


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nights")
    first = generate_store(folder / "S1.sqlite", "S1", sales_lines=3000, days=20, dirty_rate=0.02, seed=5)
    return [first.path, next_night(first.path, folder / "n2.sqlite", 30),
            next_night(first.path, folder / "n3.sqlite", 60)]


def ingest_all(lake, dumps, store="S1"):
    return [ingest_dump(d, store, lake=lake, telemetry=MemoryTelemetry()) for d in dumps]


def table_rows(lake, table, columns):
    return sorted(tuple(r.values()) for r in delta_rows(lake, table, "true", columns).to_pylist())


# -- migration --------------------------------------------------------------------------------------------

def write_old_layout(source: FolderLake, target, tmp_path) -> list[str]:
    """``target`` as the pipeline left a lake before Delta: each committed dump's rows as files per day (fact
    tables) or per snapshot, its manifest with ``outputs``; plus the files of an attempt that never committed.
    Built from ``source`` (a Delta lake ingested by today's code). Returns the dead attempt's files."""
    for obj in source.list("manifests/"):
        manifest = json.loads(source.get_bytes(obj.path))
        store, dump = manifest["store_id"], manifest["dump_id"]
        outputs = []
        for zone in ("curated", "rejected"):
            for name, table in TABLES.items():
                rows = delta_rows(source, f"{zone}/{name}", f"dump_id = '{dump}'")
                if not rows.num_rows:
                    continue
                rows = rows.cast(pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f
                                            for f in rows.schema]))
                if zone == "curated" and table.fact:
                    for day in sorted({d.isoformat() for d in rows.column("date").to_pylist()}):
                        part = rows.filter(pa.compute.equal(rows.column("date"), pa.scalar(
                            __import__("datetime").date.fromisoformat(day)))).drop_columns(["date", "month"])
                        outputs.append(put(target, f"curated/{name}/store={store}/date={day}/{dump}-0.parquet",
                                           part, tmp_path))
                else:
                    kind = "date" if zone == "rejected" else "snapshot"
                    day = manifest["snapshot_at"][:10]
                    outputs.append(put(target, f"{zone}/{name}/store={store}/{kind}={day}/{dump}.parquet", rows,
                                       tmp_path))
        manifest.pop("delta_versions")
        for t in manifest["tables"].values():
            t.pop("days_written", None)
        manifest["outputs"] = outputs
        target.put_bytes(obj.path, json.dumps(manifest).encode())
    # An attempt that died before its manifest: its file must not be migrated.
    dead = "f" * 24
    some = delta_rows(source, "curated/sales", "true").slice(0, 5).drop_columns(["date", "month"])
    some = some.cast(pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f for f in some.schema]))
    return [put(target, f"curated/sales/store=S1/date=2026-11-01/{dead}-0.parquet", some, tmp_path)]


def put(lake, path, rows, tmp_path):
    local = tmp_path / f"{uuid.uuid4().hex}.parquet"
    pq.write_table(rows, local)
    lake.put_file(path, local)
    return path


def test_a_lake_of_loose_parquet_migrates_to_the_same_delta_tables(lake, nights, tmp_path):
    reference = FolderLake(tmp_path / "reference")
    ingest_all(reference, nights)
    dead = write_old_layout(reference, lake, tmp_path)

    result = migrate_lake(lake=lake)
    assert result.stores == 1 and result.files_left_out == dead
    for zone in ("curated", "rejected"):
        for name, table in TABLES.items():
            key = ", ".join((*table.key, "dump_id"))
            assert table_rows(lake, f"{zone}/{name}", key) == table_rows(reference, f"{zone}/{name}", key), (zone, name)
    sold = "sale_id, line_no, sku, qty, sold_at, date, month"
    assert table_rows(lake, "curated/sales", sold) == table_rows(reference, "curated/sales", sold)
    # Old files are gone (the dead attempt's too); the manifests carry what consumers read now.
    assert not [o.path for o in lake.list("curated/sales/store=")]
    for obj in lake.list("manifests/store=S1/"):
        manifest = json.loads(lake.get_bytes(obj.path))
        ref = json.loads(reference.get_bytes(obj.path))
        assert manifest["tables"]["sales"]["days_written"] == ref["tables"]["sales"]["days_written"]
        assert "outputs" not in manifest and manifest["migrated_from"]
    # A next night's ingest on the migrated lake adds only its new lines.
    n4 = next_night(nights[2], tmp_path / "n4.sqlite", 0)
    with sqlite3.connect(n4) as con:
        con.executemany("INSERT INTO sales SELECT ?, 1, sku, 1, 1.0, '2026-11-28 09:00:00' FROM items LIMIT 1",
                        [(f"N4-{i}",) for i in range(7)])
    later = ingest_dump(n4, "S1", lake=lake, telemetry=MemoryTelemetry())
    assert later.manifest["tables"]["sales"]["written"] == 7
    # Running it again changes nothing.
    before = delta_count(lake, "curated/sales")
    assert migrate_lake(lake=lake).files_migrated == 0
    assert delta_count(lake, "curated/sales") == before


# -- maintenance ------------------------------------------------------------------------------------------

def test_maintenance_compacts_each_partition_and_keeps_what_readers_see(lake, nights):
    for i, night in enumerate(nights):  # three nights: three files in the current month's partition
        ingest_all(lake, [night], store="S1")
        ingest_all(lake, [night], store=f"S{i + 2}")
    before = {t: delta_count(lake, t) for t in ("curated/sales", "curated/stock", "rejected/sales")}
    uri, options = lake.delta_location("curated/sales")
    files_before = len(DeltaTable(uri, storage_options=options).file_uris())
    telemetry = MemoryTelemetry()

    result = maintain_lake(lake=lake, telemetry=telemetry)
    sales = next(t for t in result.tables if t.table == "curated/sales")
    assert sales.files_before == files_before and sales.files_after < files_before
    after = DeltaTable(uri, storage_options=options)
    partitions = {tuple(sorted(p.items())) for p in after.partitions()}
    assert len(after.file_uris()) == len(partitions)  # one file per store and month
    assert {t: delta_count(lake, t) for t in before} == before
    assert sales.files_vacuumed == 0  # the replaced files stay for the retention (7 days)
    events = [props for name, props in telemetry.events if name == "LakeTableMaintained"]
    assert {e["table"] for e in events} == {t.table for t in result.tables}
    assert maintain_lake(lake=lake, telemetry=MemoryTelemetry()).tables  # and again: nothing breaks


def test_vacuum_removes_files_of_failed_commits_after_the_retention(tmp_path):
    lake = FolderLake(tmp_path / "lake")
    ingest_all(lake, [generate_store(tmp_path / "s.sqlite", "S1", sales_lines=500, days=5, seed=1).path])
    orphan = lake.root / "curated/sales/store_id=S1/month=2026-11/part-00000-dead-c000.zstd.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": [1]}), orphan)
    assert maintain_lake(lake=lake, telemetry=MemoryTelemetry()).to_json()["files_vacuumed"] == 0  # too recent
    old = time.time() - 8 * 24 * 3600
    import os

    os.utime(orphan, (old, old))
    result = maintain_lake(lake=lake, telemetry=MemoryTelemetry())
    assert next(t for t in result.tables if t.table == "curated/sales").files_vacuumed == 1
    assert not orphan.exists()


def test_a_retention_under_seven_days_is_refused(tmp_path):
    with pytest.raises(ValueError, match="168"):
        maintain_lake(lake=FolderLake(tmp_path / "lake"), telemetry=MemoryTelemetry(), retention_hours=24)
