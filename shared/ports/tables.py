"""The tables port: the lake's Delta tables as the services use them, and the local spool of rows waiting
to be committed to one.

The adapters are :class:`shared.adapters.delta_tables.DeltaTables` (delta-rs; docs/lake.md) and
:class:`shared.adapters.parquet_files.PartitionSpool` (Arrow IPC files on the local disk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from shared.ports.lake import Lake

DeltaTable = Any
"""A table as :meth:`Tables.open` returns it (a ``deltalake.DeltaTable``): only handed back to the port."""


@dataclass(frozen=True)
class Maintained:
    """What :meth:`Tables.maintain` did to one table: its files before and after, and what changed them."""

    version_before: int  # the table's version before the maintenance
    files_before: int  # data files of that version
    files_after: int  # data files of the version after it
    files_compacted: int  # small files compaction rewrote (removed from the table)
    files_added: int  # the files compaction wrote in their place
    files_vacuumed: int  # unreferenced files deleted


class Tables(Protocol):
    """The lake's Delta tables (``curated/sales``, ``rejected/items``, ``aggregates/...``), by lake path."""

    def location(self, path: str) -> tuple[str, dict[str, str]]:
        """The table's URI and delta-rs storage options."""
        ...

    def open(self, path: str, *, fresh: bool = False) -> DeltaTable | None:
        """The table at its latest version, or None when no table is there yet."""
        ...

    def committed(self, table: DeltaTable | None, app_id: str) -> bool:
        """Whether a commit carrying application transaction ``app_id`` (a dump id) is in ``table``."""
        ...

    def find_commit(self, table: DeltaTable, key: str, value: str, *, limit: int = 2000) -> dict | None:
        """The newest commit whose metadata has ``key == value`` (its ``version`` among others), or None."""
        ...

    def append_parts(self, path: str, parts: Iterable[pa.Table], *, partition_by: Sequence[str], scratch: Path,
                     app_id: str | None = None, metadata: dict[str, str] | None = None,
                     plain: Sequence[str] = ()) -> int | None:
        """Append ``parts`` (each the rows of one partition) as one commit; the version, None when no rows."""
        ...

    def replace(self, path: str, data: pa.Table, predicate: str | None, *, partition_by: Sequence[str] = ("store_id",),
                metadata: dict[str, str] | None = None) -> None:
        """Replace the rows matching ``predicate`` with ``data`` in one commit (None: the whole table)."""
        ...

    def query(self, sql: str, **tables: str) -> pa.RecordBatchReader | None:
        """Run ``sql`` over the named tables (``name=lake path``) as a stream; None when one does not exist."""
        ...

    def read(self, sql: str, **tables: str) -> pa.Table | None:
        """:meth:`query`, read whole."""
        ...

    def columns(self, path: str) -> list[str] | None:
        """The table's columns in schema order (of the version :meth:`open` gives), or None when no table."""
        ...

    def maintain(self, path: str, *, retention_hours: int) -> Maintained | None:
        """Compact the table's small files (within each partition), delete the files no version has referenced
        for ``retention_hours``, checkpoint and trim the log; None when no table is there."""
        ...


class PartitionSpool(Protocol):
    """Rows spooled to local files by the value of one column (dropped from the rows), in arrival order."""

    def add(self, batch: pa.RecordBatch | pa.Table) -> None: ...

    def close(self) -> None:
        """End writing (reading may follow)."""
        ...

    def keys(self) -> list[str]:
        """The partition values, in order of first appearance."""
        ...

    def read(self, key: str) -> pa.Table:
        """A partition's rows as one table."""
        ...

    def remove(self) -> None:
        """Close and delete the spool's files."""
        ...


OpenTables = Callable[["Lake"], Tables]
"""How a service gets the lake's tables: ``open_tables(lake)``."""

OpenSpool = Callable[[Path, str], PartitionSpool]
"""How a service makes a spool: ``open_spool(folder, partition column)``."""


__all__ = ["DeltaTable", "Maintained", "OpenSpool", "OpenTables", "PartitionSpool", "Tables"]
