"""Delta Lake tables in the lake (``curated/``, ``rejected/``), written and read with delta-rs (``deltalake``).

Every table a reader queries is a Delta table, so Synapse serverless (``OPENROWSET(... FORMAT = 'DELTA')``),
Spark, Fabric and Power BI see whole commits only: a half-finished ingest is invisible to all of them.

- **Where.** The lake adapter says where a table lives and how delta-rs reaches it
  (:meth:`~shared.ports.lake.Lake.delta_location`): a folder on the folder lake; ``az://<container>/<path>``
  on Blob storage / ADLS Gen2 with the app's identity (an Entra token from ``azure-identity``) or, for
  development, Azurite. The same code runs on both.
- **Written in bounded memory.** :meth:`append_parts` writes the Parquet files with pyarrow, one partition
  at a time, and commits them with delta-rs (its ``write_deltalake`` held ~200 MB more than the data).
- **Once.** A commit may carry an application transaction (``app_id``, the dump id): :meth:`committed`
  reads it back. delta-rs records it but does not refuse a repeat, so callers check before writing; two
  writers committing the same ``app_id`` at once: one gets ``CommitFailedError``.
- **Reads name their partitions.** :meth:`query` runs SQL in delta-rs's engine; a scan reads every file
  its filter does not exclude, so callers write the store (and the months) they need as literals.

This module imports ``deltalake`` and ``pyarrow`` inside its functions: the functions' cold start does not
pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared.ports.lake import Lake, LakeError
from shared.ports.tables import Maintained

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

TABLE_PROPERTIES = {
    # A dump id is an application transaction of each table it commits to; without an expiry every one would
    # stay in the table's state (and its checkpoints) for ever. The manifest keeps the dump's record after that.
    "delta.setTransactionRetentionDuration": "interval 30 days",
    # Failed or superseded files are kept for a week at least (a reader may still hold an older snapshot).
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.logRetentionDuration": "interval 30 days",
}


ROW_GROUP_ROWS = 65_536
"""Rows per Parquet row group of the files this module writes (and compaction rewrites: see
:meth:`DeltaTables.maintain`). A store's month of sale lines is a few row groups; a reader that names a range of ids or
times (the ingest's lookup of a window night's lines) reads the row groups that hold it, not the month:
with 262,144 the lookup (and the rejected rows') read 10.4 % of a 2M-line history, with 65,536 4.5 %
(bench/nightly.py)."""


def writer_properties():  # a deltalake.WriterProperties
    """delta-rs's writer settings matching this module's files (zstd, ``ROW_GROUP_ROWS``), for compaction."""
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)


class DeltaTables:
    """The lake's Delta tables, addressed by their lake path (``curated/sales``).

    With ``keep_open`` (a run's snapshots: the aggregates, the alerts, the dashboard), each table is opened
    once and every query of the run reads that version: a run over 50 stores replays a table's log once
    instead of once per query. Writes always open the table afresh."""

    def __init__(self, lake: Lake, *, keep_open: bool = False) -> None:
        self.lake = lake
        self.keep_open = keep_open
        self._opened: dict[str, DeltaTable | None] = {}

    def location(self, path: str) -> tuple[str, dict[str, str]]:
        """The table's URI and delta-rs storage options (fresh: a token is renewed when near expiry)."""
        return self.lake.delta_location(path)

    def open(self, path: str, *, fresh: bool = False) -> DeltaTable | None:
        """The table at its latest version (with ``keep_open``: as first opened in this run, unless ``fresh``),
        or None when no table is there yet."""
        if self.keep_open and not fresh:
            if path not in self._opened:
                self._opened[path] = self.open(path, fresh=True)
            return self._opened[path]
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        uri, options = self.location(path)
        try:
            return DeltaTable(uri, storage_options=options)
        except TableNotFoundError:
            return None
        except OSError as exc:
            raise LakeError(f"cannot open the Delta table {path!r} at {uri}: {exc}") from None

    def committed(self, table: DeltaTable | None, app_id: str) -> bool:
        """Whether a commit carrying application transaction ``app_id`` is in ``table``."""
        return table is not None and table.transaction_version(app_id) is not None

    def find_commit(self, table: DeltaTable, key: str, value: str, *, limit: int = 2000) -> dict | None:
        """The newest commit whose metadata has ``key == value`` (e.g. ``dump_id``), among the last ``limit``
        commits; None if not found. Used when a retry finds its commit already made, for its version."""
        for entry in table.history(limit):
            if entry.get(key) == value:
                return entry
        return None

    def append_parts(
        self,
        path: str,
        parts: Iterable[pa.Table],
        *,
        partition_by: Sequence[str],
        scratch: Path,
        app_id: str | None = None,
        metadata: dict[str, str] | None = None,
        plain: Sequence[str] = (),
    ) -> int | None:
        """Append ``parts`` as one commit, streaming: each part holds the rows of one partition (the values
        of ``partition_by`` in its first row name it); consecutive parts of one partition go to one Parquet
        file, written with pyarrow while the next part is built, then the files are moved into the table and
        committed with delta-rs. Returns the committed version, or None when there was no row.

        Why not ``write_deltalake``: it held ~200 MB more than the data it was given (a 2M-line ingest
        over 13 month partitions peaked at 460-510 MB against 277 MB to read the same rows; no writer
        property changed that). Here one row group is in memory at a time.
        """
        table = self.open(path, fresh=True)  # once: its schema for the files, then the commit
        files, schema = self._write_files(table, parts, partition_by, Path(scratch), plain)
        if not files:
            return None
        self.lake.put_files([(f"{path}/{rel}", local) for rel, local, _ in files], consume=True)
        return self._commit_files(path, table, [add for _, _, add in files], schema, partition_by, app_id, metadata)

    def _write_files(self, table: DeltaTable | None, parts: Iterable[pa.Table], partition_by: Sequence[str],
                     scratch: Path, plain: Sequence[str] = ()) -> tuple[list[tuple], pa.Schema | None]:
        """Write the parts as Parquet files under ``scratch``: (path in the table, local file, AddAction).

        One thread encodes a part while the caller's generator builds the next (Parquet encoding releases
        the GIL): at most two parts in memory."""
        from concurrent.futures import Future, ThreadPoolExecutor

        import pyarrow as pa

        files: list[tuple[str, Path, object]] = []
        schema = pa.schema(table.schema()) if table is not None else None  # the table's, when there is one
        file: _PartitionFile | None = None
        pending: Future | None = None

        def drain() -> None:
            nonlocal pending
            if pending is not None:
                pending.result()
                pending = None

        def encode(parts: list[pa.Table] | None) -> None:  # after the previous group: two in memory at most
            nonlocal pending
            if parts:
                drain()
                pending = encoder.submit(file.write, parts)

        def finish() -> None:
            encode(file.take())
            drain()
            files.append(file.close())

        with ThreadPoolExecutor(1, thread_name_prefix="parquet") as encoder:
            try:
                for part in parts:
                    if not part.num_rows:
                        continue
                    schema = schema or delta_ready(part.schema)
                    part = part.select(schema.names).cast(schema)
                    values = {c: str(part.column(c)[0].as_py()) for c in partition_by}
                    if file is None or values != file.values:
                        if file is not None:
                            finish()
                        file = _PartitionFile(scratch, values, schema, partition_by, plain)
                    encode(file.add(part))
                if file is not None:
                    finish()
                    file = None
            finally:
                if file is not None:
                    file.abandon()
        return files, schema

    def _commit_files(self, path: str, table: DeltaTable | None, adds: list, schema: pa.Schema,
                      partition_by: Sequence[str], app_id: str | None, metadata: dict[str, str] | None) -> int:
        """One commit adding ``adds`` to ``table`` (as opened before the files were written: delta-rs checks
        the commit against what others committed since), or a new table when there was none (a racing creator
        wins: then append)."""
        import uuid

        from deltalake import CommitProperties, Schema, Transaction
        from deltalake.exceptions import DeltaError
        from deltalake.transaction import create_table_with_add_actions

        uri, options = self.location(path)
        commit_id = uuid.uuid4().hex
        props = CommitProperties(
            app_transactions=[Transaction(app_id=app_id, version=1)] if app_id else None,
            custom_metadata={**(metadata or {}), "commit_id": commit_id},
        )
        if table is None:
            try:
                create_table_with_add_actions(uri, Schema.from_arrow(schema), adds, mode="error",
                                              partition_by=list(partition_by), configuration=TABLE_PROPERTIES,
                                              storage_options=options, commit_properties=props)
            except DeltaError:  # another writer created it meanwhile
                table = self.open(path, fresh=True)
                if table is None:
                    raise
        if table is not None:
            table.create_write_transaction(adds, mode="append", schema=schema, partition_by=list(partition_by),
                                           commit_properties=props)
        table = self.open(path, fresh=True)
        found = self.find_commit(table, "commit_id", commit_id, limit=100) if table is not None else None
        if found is None:  # pragma: no cover - a hundred commits by others within this call
            raise LakeError(f"the commit just made to the Delta table {path!r} is not among its last 100")
        return int(found["version"])

    def replace(self, path: str, data: pa.Table, predicate: str | None, *, partition_by: Sequence[str] = ("store_id",),
                metadata: dict[str, str] | None = None) -> None:
        """Replace the rows matching ``predicate`` (SQL, e.g. ``store_id = 'S001' AND date BETWEEN DATE
        '2026-11-01' AND DATE '2026-11-30'``) with ``data`` in one commit (Delta's *replaceWhere*; delta-rs
        refuses rows outside the predicate); the table is created on the first write. ``predicate=None``
        replaces the whole table, schema included (a table whose columns changed). For the aggregates'
        small outputs: ``write_deltalake`` holds ~200 MB more than the data (see :meth:`append_parts`)."""
        from deltalake import CommitProperties, write_deltalake

        uri, options = self.location(path)
        try:
            write_deltalake(uri, data, mode="overwrite", predicate=predicate, partition_by=list(partition_by),
                            schema_mode="overwrite" if predicate is None else None, storage_options=options,
                            configuration=TABLE_PROPERTIES,
                            commit_properties=CommitProperties(custom_metadata=metadata))
        except OSError as exc:
            raise LakeError(f"cannot write the Delta table {path!r} at {uri}: {exc}") from None
        self._opened.pop(path, None)

    def query(self, sql: str, **tables: str) -> pa.RecordBatchReader | None:
        """Run ``sql`` over the named tables (``name=lake path``) with delta-rs's own engine (DataFusion), as
        a stream of Arrow batches; None when one of the tables does not exist yet.

        Partition filters written as literals (``store_id = 'S001' AND month IN ('2026-11')``) prune files
        before anything is read. The files are read inside delta-rs: going through pyarrow's dataset API
        instead made 16 of 20 processes abort at exit ("terminate called without an active exception", an
        Arrow thread releasing a Python filesystem object after the interpreter had begun to stop).
        """
        import pyarrow as pa
        from deltalake import QueryBuilder

        builder = QueryBuilder()
        for name, path in tables.items():
            table = self.open(path)
            if table is None:
                return None
            builder = builder.register(name, table)
        try:
            return pa.RecordBatchReader.from_stream(builder.execute(sql))
        except Exception as exc:  # delta-rs raises its own error types for engine failures
            raise LakeError(f"a query over {', '.join(tables.values())} failed: {exc}") from None

    def read(self, sql: str, **tables: str) -> pa.Table | None:
        """:meth:`query`, read whole (for small results: a dump's snapshot rows, a store's keys)."""
        found = self.query(sql, **tables)
        return found.read_all() if found is not None else None

    def columns(self, path: str) -> list[str] | None:
        """The table's columns in schema order (of the version :meth:`open` gives), or None when no table."""
        table = self.open(path)
        return None if table is None else [f.name for f in table.schema().fields]

    def maintain(self, path: str, *, retention_hours: int) -> Maintained | None:
        """Compact, vacuum and checkpoint the table; None when there is none (the daily ``maintain_lake``).

        - compaction (``OPTIMIZE``) rewrites a partition's small files into few large ones, never across
          partitions, with this module's writer settings; readers keep their snapshot (the old files are only
          marked removed);
        - vacuum deletes the files no version has referenced for ``retention_hours`` (delta-rs refuses less
          than the table's ``delta.deletedFileRetentionDuration``), and, being ``full``, the data files of
          commits that failed, which no version ever named;
        - a checkpoint, then the log entries older than ``delta.logRetentionDuration`` go.
        """
        table = self.open(path, fresh=True)
        if table is None:
            return None
        version, files_before = table.version(), len(table.file_uris())
        compacted = table.optimize.compact(writer_properties=writer_properties())
        table = self.open(path, fresh=True)
        vacuumed = table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=True,
                                full=True)
        table.create_checkpoint()
        table.cleanup_metadata()
        self._opened.pop(path, None)
        files_after = len(self.open(path, fresh=True).file_uris())
        return Maintained(version_before=version, files_before=files_before, files_after=files_after,
                          files_compacted=int(compacted.get("numFilesRemoved", 0)),
                          files_added=int(compacted.get("numFilesAdded", 0)), files_vacuumed=len(vacuumed))


class _PartitionFile:
    """One Parquet file of a commit: the rows of one partition, written as they come, in row groups of about
    ``ROW_GROUP_ROWS`` (a night's day of a store is a few thousand rows: one row group each would make small
    groups that compress and read worse). Columns in ``plain`` (unique per row: ids, times) are written without
    a dictionary: that made a day of 5M sale lines 35 % smaller and its write ~15 % faster."""

    def __init__(self, scratch: Path, values: dict[str, str], schema: pa.Schema, partition_by: Sequence[str],
                 plain: Sequence[str]) -> None:
        import uuid

        import pyarrow.parquet as pq

        self.values, self.partition_by = values, list(partition_by)
        self.local = scratch / f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        file_schema = pa_schema_without(schema, partition_by)
        self.writer = pq.ParquetWriter(self.local, file_schema, compression="zstd",
                                       use_dictionary=[n for n in file_schema.names if n not in plain])
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, part: pa.Table) -> list[pa.Table] | None:
        """Keep ``part``; the parts to write now as one row group when there are enough of them."""
        self.pending.append(part.drop_columns(self.partition_by))
        self.pending_rows += part.num_rows
        return self.take() if self.pending_rows >= ROW_GROUP_ROWS // 2 else None

    def take(self) -> list[pa.Table] | None:
        parts, self.pending, self.pending_rows = self.pending, [], 0
        return parts or None

    def write(self, parts: list[pa.Table]) -> None:
        import pyarrow as pa

        self.writer.write_table(pa.concat_tables(parts), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> tuple[str, Path, object]:
        self.writer.close()
        return _added(self.values, self.local, self.partition_by)

    def abandon(self) -> None:
        self.writer.close()
        self.local.unlink(missing_ok=True)


def delta_ready(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the types Delta Lake keeps: timestamps in microseconds (UTC), plain strings."""
    import pyarrow as pa

    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type):
            f = f.with_type(pa.string())
        fields.append(f)
    return pa.schema(fields)


def pa_schema_without(schema: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    """``schema`` without ``columns`` (a data file of a partitioned table leaves its partition columns out)."""
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name not in columns])


def _added(values: dict[str, str], local: Path, partition_by: Sequence[str]) -> tuple[str, Path, object]:
    """(path in the table, the local file, its AddAction with statistics for data skipping)."""
    import time

    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    rel = "/".join(f"{c}={values[c]}" for c in partition_by) + "/" + local.name
    meta = pq.ParquetFile(local).metadata
    stats = json.dumps(_stats(meta), default=str)
    return rel, local, AddAction(rel, local.stat().st_size, dict(values), int(time.time() * 1000), True, stats)


def _stats(meta) -> dict:  # noqa: ANN001 - pyarrow FileMetaData
    """Delta file statistics from the Parquet footer: numRecords, nullCount, and min/max of the columns readers
    filter on (integers, floats, dates, timestamps, short text: a store's sale ids prune a store's files when
    the ingest looks up the window's keys). Raw footer values are used: pyarrow's converted ones
    (``statistics.min`` of a zoned timestamp) import pandas (~40 MB, ~0.2 s) on first use."""
    nulls: dict[str, int] = {}
    lo: dict[str, object] = {}
    hi: dict[str, object] = {}
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        kind = column.logical_type.type
        wanted = kind in ("TIMESTAMP", "DATE", "STRING") or (kind in ("NONE", "INT") and column.physical_type in (
            "INT32", "INT64", "FLOAT", "DOUBLE"))
        groups = [meta.row_group(g).column(i).statistics for g in range(meta.num_row_groups)]
        if all(st is not None and st.has_null_count for st in groups):
            nulls[column.name] = sum(st.null_count for st in groups)
        bounds = [(st.min_raw, st.max_raw) for st in groups if st is not None and st.has_min_max]
        if wanted and bounds and len(bounds) == len(groups):
            low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
            if kind == "STRING" and (len(low) > MAX_STRING_STAT or len(high) > MAX_STRING_STAT):
                continue  # Parquet may have truncated them: not exact bounds (ids and skus are short)
            lo[column.name] = _stat_value(low, column)
            hi[column.name] = _stat_value(high, column)
    return {"numRecords": meta.num_rows, "nullCount": nulls, "minValues": lo, "maxValues": hi}


MAX_STRING_STAT = 32
"""Text bounds longer than this are left out of a file's statistics (Parquet writers may truncate them)."""


def _stat_value(raw: int | float | bytes, column) -> object:  # noqa: ANN001 - a pyarrow ColumnSchema
    """A footer's raw min/max as Delta's statistics write it (ISO text for dates and timestamps)."""
    import datetime as dt

    kind = column.logical_type.type
    if kind == "STRING":
        return raw.decode("utf-8", errors="replace")
    if kind == "DATE":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(raw))).isoformat()
    if kind == "TIMESTAMP":
        unit = json.loads(column.logical_type.to_json()).get("timeUnit", "microseconds")
        per_second = {"milliseconds": 1_000, "microseconds": 1_000_000, "nanoseconds": 1_000_000_000}[unit]
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(raw) * 1_000_000 // per_second)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return raw


__all__ = ["TABLE_PROPERTIES", "DeltaTables", "delta_ready"]
