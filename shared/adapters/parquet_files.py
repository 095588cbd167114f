"""Writing Hive-partitioned Parquet from a stream of Arrow batches, fast and in bounded memory.

DuckDB's ``COPY … PARTITION_BY`` and pyarrow's dataset writer were measured on 5M sale lines over 365 days
(2 cores): DuckDB took 7.4 s (4x an unpartitioned write), pyarrow's writer 2.8 s but 510+ MB, because both
keep every partition's rows buffered while the input is unordered. Here the stream is first spooled to one
Arrow IPC file per partition (each batch is sorted by the partition key and its runs appended: no
buffering), then each partition is read back and written as one Parquet file. Memory is bounded by one
batch plus the largest partition.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def write_partitioned(
    reader: pa.RecordBatchReader,
    folder: Path,
    column: str,
    file_name: str,
    *,
    compression: str = "zstd",
    max_open: int = 128,
    threads: int = 2,
) -> int:
    """Write ``reader`` under ``folder/<column>=<value>/<file_name>`` (the column itself is dropped).

    Returns the number of rows written. At most ``max_open`` spool files are open at once; a partition
    whose spool was closed gets another spool chunk, so any number of partitions works.
    """
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    folder = Path(folder)
    spool = folder / ".spool"
    spool.mkdir(parents=True, exist_ok=True)
    keep = [name for name in reader.schema.names if name != column]
    schema = reader.schema
    data_schema = schema.remove(schema.get_field_index(column))
    open_writers: OrderedDict[str, tuple] = OrderedDict()
    ids: dict[str, int] = {}  # partition key -> spool id, in order of first appearance
    chunks: dict[str, int] = {}  # partition key -> spool chunks written
    total = 0

    def writer_for(key: str):
        if key in open_writers:
            open_writers.move_to_end(key)
            return open_writers[key][1]
        if len(open_writers) >= max_open:
            _, (sink, old) = open_writers.popitem(last=False)
            old.close()
            sink.close()
        pid = ids.setdefault(key, len(ids) + 1)
        n = chunks.get(key, 0)
        chunks[key] = n + 1
        sink = open(spool / f"{pid:06d}-{n}.arrow", "wb")  # noqa: SIM115 - closed with its writer
        writer = ipc.new_stream(sink, data_schema)
        open_writers[key] = (sink, writer)
        return writer

    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            total += batch.num_rows
            ordered = batch.take(pc.sort_indices(batch.column(column)))
            keys = ordered.column(column)
            data = ordered.select(keep)
            runs = pc.value_counts(keys)  # in order of first appearance: sorted order here
            offset = 0
            for key, count in zip(runs.field("values").to_pylist(), runs.field("counts").to_pylist(),
                                  strict=True):
                if key is None:
                    raise ValueError(f"partition column {column!r} is NULL in {count} row(s)")
                writer_for(str(key)).write_batch(data.slice(offset, count))
                offset += count
    finally:
        for sink, writer in open_writers.values():
            writer.close()
            sink.close()

    # Second pass: one Parquet file per partition, from its spool chunks.
    import pyarrow as pa

    def write_one(key: str) -> None:
        pid = ids[key]
        tables = []
        for n in range(chunks[key]):
            with open(spool / f"{pid:06d}-{n}.arrow", "rb") as f:
                tables.append(ipc.open_stream(f).read_all())
        target = folder / f"{column}={key}" / f"{file_name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), target, compression=compression, row_group_size=262_144)

    # Parquet encoding releases the GIL: two partitions at a time use both cores.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write_one, ids))
    shutil.rmtree(spool, ignore_errors=True)
    return total
