"""The partition spool and writer: every row lands once, in its partition, whatever the input order."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.parquet_files import PartitionSpool, read_parquet_bytes, write_partitions


def write_partitioned(reader, folder, column, file_name, *, max_open=128):
    """Spool ``reader`` by ``column`` and write one file per value (what ingestion does), removing the spool."""
    spool = PartitionSpool(folder / ".spool", column, max_open=max_open)
    try:
        for batch in reader:
            spool.add(batch)
        return sum(write_partitions(spool, folder, file_name).values())
    finally:
        spool.remove()


def reader_of(rows: list[tuple[int, dt.date]], batch: int):
    table = pa.table({"id": pa.array([r[0] for r in rows], pa.int64()),
                      "date": pa.array([r[1] for r in rows], pa.date32())})
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch))


def read_back(folder):
    return ds.dataset(folder, format="parquet", partitioning="hive").to_table()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=300), st.integers(1, 50), st.integers(1, 5))
def test_every_row_lands_once_in_its_partition(tmp_path_factory, days, batch, max_open):
    folder = tmp_path_factory.mktemp("out")
    start = dt.date(2026, 1, 1)
    rows = [(i, start + dt.timedelta(days=d)) for i, d in enumerate(days)]
    random.Random(len(rows)).shuffle(rows)
    written = write_partitioned(reader_of(rows, batch), folder, "date", "part-0", max_open=max_open)
    assert written == len(rows)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert files == sorted(f"date={d.isoformat()}/part-0.parquet" for d in {r[1] for r in rows})
    assert not (folder / ".spool").exists()
    if rows:
        back = read_back(folder)
        got = sorted(zip(back.column("id").to_pylist(), back.column("date").to_pylist(), strict=True))
        assert [(i, d.isoformat()) for i, d in sorted(rows)] == [(i, str(d)) for i, d in got]


def test_the_partition_column_is_not_repeated_inside_the_files(tmp_path):
    write_partitioned(reader_of([(1, dt.date(2026, 1, 2))], 10), tmp_path, "date", "x")
    import pyarrow.parquet as pq

    assert pq.read_schema(tmp_path / "date=2026-01-02" / "x.parquet").names == ["id"]


def test_a_null_partition_value_is_an_error(tmp_path):
    table = pa.table({"id": [1], "date": pa.array([None], pa.date32())})
    with pytest.raises(ValueError, match="NULL"):
        write_partitioned(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()), tmp_path,
                          "date", "x")


def test_a_transform_can_drop_rows_or_a_whole_partition(tmp_path):
    spool = PartitionSpool(tmp_path / ".spool", "date")
    rows = [(i, dt.date(2026, 1, 1 + i % 3)) for i in range(30)]
    for batch in reader_of(rows, 7):
        spool.add(batch)

    def keep_even_but_not_jan_2(day, table):
        import pyarrow.compute as pc

        return None if day == "2026-01-02" else table.filter(pc.equal(pc.bit_wise_and(table.column("id"), 1), 0))

    written = write_partitions(spool, tmp_path, "x", transform=keep_even_but_not_jan_2, column="day")
    assert written == {"2026-01-01": 5, "2026-01-03": 5}
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")) == [
        "day=2026-01-01/x.parquet", "day=2026-01-03/x.parquet"]
    spool.remove()
    assert not (tmp_path / ".spool").exists()


def test_read_parquet_bytes_reads_all_or_some_columns():
    import io

    import pyarrow.parquet as pq

    table = pa.table({"sku": ["A", "B", None], "on_hand": [3, -1, 0], "note": ["x", "y", "z"]})
    out = io.BytesIO()
    pq.write_table(table, out)
    data = out.getvalue()
    assert read_parquet_bytes(data).equals(table)
    got = read_parquet_bytes(data, ["sku", "on_hand"])
    assert got.column_names == ["sku", "on_hand"] and got.to_pylist() == table.select(["sku", "on_hand"]).to_pylist()
