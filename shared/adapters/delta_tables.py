"""Delta Lake tables in the lake (``curated/``, ``rejected/``), written and read with delta-rs (``deltalake``).

Every table a reader queries is a Delta table, so Synapse serverless (``OPENROWSET(... FORMAT = 'DELTA')``),
Spark, Fabric and Power BI see whole commits only: a half-finished ingest is invisible to all of them.

- **Where.** The lake adapter says where a table lives and how delta-rs reaches it
  (:meth:`~shared.adapters.lake.Lake.delta_location`): a folder on the folder lake; ``az://<container>/<path>``
  on Blob storage / ADLS Gen2 with the app's identity (an Entra token from ``azure-identity``) or, for
  development, Azurite. The same code runs on both.
- **Once.** A commit may carry an application transaction (``app_id``, the dump id): :meth:`committed`
  reads it back. delta-rs records it but does not refuse a repeat, so callers check before writing; two
  writers committing the same ``app_id`` at once: one gets ``CommitFailedError``.
- **Reads name their partitions.** :meth:`query` runs SQL in delta-rs's engine; a scan reads every file
  its filter does not exclude, so callers write the store (and the months) they need as literals.

This module imports ``deltalake`` and ``pyarrow`` inside its functions: the functions' cold start does not
pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.adapters.lake import Lake, LakeError

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


@dataclass(frozen=True)
class Commit:
    """A commit this process made, or found already made by an earlier attempt (``reused``)."""

    table: str
    version: int
    rows: int
    reused: bool = False


class DeltaTables:
    """The lake's Delta tables, addressed by their lake path (``curated/sales``)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def location(self, path: str) -> tuple[str, dict[str, str]]:
        """The table's URI and delta-rs storage options (fresh: a token is renewed when near expiry)."""
        return self.lake.delta_location(path)

    def open(self, path: str) -> DeltaTable | None:
        """The table at its latest version, or None when no table is there yet."""
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

    def append(
        self,
        path: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        partition_by: Sequence[str],
        app_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Append ``data`` as one commit (a new table on first write); returns the committed version.

        ``app_id`` is recorded as an application transaction (version 1) and ``metadata`` as the commit's
        custom metadata (``history()`` shows it); check :meth:`committed` before calling with an ``app_id``.
        """
        import uuid

        from deltalake import CommitProperties, Transaction, write_deltalake

        uri, options = self.location(path)
        commit_id = uuid.uuid4().hex  # finds this commit's version afterwards (delta-rs does not return it)
        props = CommitProperties(
            app_transactions=[Transaction(app_id=app_id, version=1)] if app_id else None,
            custom_metadata={**(metadata or {}), "commit_id": commit_id},
        )
        try:
            write_deltalake(uri, data, mode="append", partition_by=list(partition_by), storage_options=options,
                            commit_properties=props, configuration=TABLE_PROPERTIES)
        except OSError as exc:
            raise LakeError(f"cannot write the Delta table {path!r} at {uri}: {exc}") from None
        table = self.open(path)
        found = self.find_commit(table, "commit_id", commit_id, limit=100) if table is not None else None
        if found is None:  # pragma: no cover - a hundred commits by others within this call
            raise LakeError(f"the commit just made to the Delta table {path!r} is not among its last 100")
        return int(found["version"])

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


def literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def dump_rows(tables: DeltaTables, path: str, store_id: str, dump_id: str,
              columns: Sequence[str]) -> pa.Table | None:
    """The rows one dump committed to a snapshot table (``curated/items`` …), or None when there are none."""
    found = tables.read(f"SELECT {', '.join(columns)} FROM t WHERE store_id = {literal(store_id)} "
                        f"AND dump_id = {literal(dump_id)}", t=path)
    return found if found is not None and found.num_rows else None


__all__ = ["TABLE_PROPERTIES", "Commit", "DeltaTables", "dump_rows", "literal"]
