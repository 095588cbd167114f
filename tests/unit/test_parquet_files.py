"""The partition spool: every row lands once, in its partition, in arrival order, whatever the input order."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.parquet_files import PartitionSpool, read_parquet_bytes


def spool_of(reader, folder, column, *, max_open=128) -> PartitionSpool:
    """``reader`` spooled by ``column`` (what the ingest's row stage does)."""
    spool = PartitionSpool(folder / ".spool", column, max_open=max_open)
    for batch in reader:
        spool.add(batch)
    spool.close()
    return spool


def reader_of(rows: list[tuple[int, dt.date]], batch: int):
    table = pa.table({"id": pa.array([r[0] for r in rows], pa.int64()),
                      "date": pa.array([r[1] for r in rows], pa.date32())})
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=300), st.integers(1, 50), st.integers(1, 5))
def test_every_row_lands_once_in_its_partition_in_arrival_order(tmp_path_factory, days, batch, max_open):
    folder = tmp_path_factory.mktemp("out")
    start = dt.date(2026, 1, 1)
    rows = [(i, start + dt.timedelta(days=d)) for i, d in enumerate(days)]
    random.Random(len(rows)).shuffle(rows)
    spool = spool_of(reader_of(rows, batch), folder, "date", max_open=max_open)
    assert sorted(spool.keys()) == sorted({d.isoformat() for _, d in rows})
    for key in list(spool.keys()):
        got = spool.read(key)
        assert got.column_names == ["id"]  # the partition column is not repeated
        assert got.column("id").to_pylist() == [i for i, d in rows if d.isoformat() == key]
    spool.remove()
    assert not (folder / ".spool").exists()


def test_a_null_partition_value_is_an_error(tmp_path):
    table = pa.table({"id": [1], "date": pa.array([None], pa.date32())})
    with pytest.raises(ValueError, match="NULL"):
        spool_of(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()), tmp_path, "date")


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
