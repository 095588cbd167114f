"""The dump port: what the ingest needs from a reader of an untrusted SQLite dump.

The adapter is :class:`shared.adapters.sqlite_dump.DumpReader`: a child process that opens the file
read-only and immutable, refuses anything but reads, and streams each table as Arrow record batches under
hard limits (see docs/hostile-dumps.md). Every fault of the dump itself is a :class:`DumpRejected` whose
``code`` is a quarantine reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


class DumpRejected(Exception):
    """The dump cannot be ingested; ``code`` is a quarantine reason code, ``detail`` says why and what to do."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ReadLimits:
    max_cell_bytes: int = 1 << 20
    max_rows_per_table: int = 100_000_000
    query_timeout_s: float = 900.0
    batch_rows: int = 65_536
    # False only for a second reader of a dump whose first reader runs quick_check (the ingest's history
    # check): a damaged file still fails the ingest there, and here only makes the check fail.
    quick_check: bool = True
    nice: int = 0  # > 0: the child runs at a lower CPU priority (a background check yields to the ingest)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_rows <= 4_194_304:
            raise ValueError(f"INGEST_BATCH_ROWS={self.batch_rows} is out of range (1 to 4194304 rows)")


@dataclass
class DumpInfo:
    """What an opened dump holds."""

    tables: dict[str, dict]  # lower-cased name -> {"name", "type": "table"|"view", "columns": [...]}
    triggers: list[str] = field(default_factory=list)
    sqlite_version: str = ""

    def find(self, name: str) -> dict | None:
        return self.tables.get(name.lower())


class DumpSource(Protocol):
    """An opened dump (a context manager): ``info`` once entered, ``read(jobs)`` streams tables."""

    info: DumpInfo | None

    def start(self) -> DumpSource:
        """Begin opening and checking the file (``with`` waits for it): lets the caller work meanwhile."""
        ...

    def __enter__(self) -> DumpSource:
        """Wait for the file to be opened and checked; raises :class:`DumpRejected`."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Stop reading (the reader may be stopped while a table is being read)."""
        ...

    def read(self, jobs: list[dict]) -> Iterator[tuple[str, pa.Schema, Iterator[pa.RecordBatch]]]:
        """Yield ``(table, schema, batches)`` for each job in order.

        A job is ``{"table", "sql", "want": [canonical columns], "required": [columns], "numeric": [columns]}``;
        each batch has exactly the ``want`` columns, as text, except that a ``numeric`` column may come as
        int64/float64. ``batches`` must be consumed before the next table is asked for. Raises
        :class:`DumpRejected` for anything wrong with the dump (a missing column, a query too costly, ...).
        """
        ...


OpenDump = Callable[[Path, ReadLimits], DumpSource]
"""How the ingest opens a dump: ``open_dump(path, limits)`` (not started yet)."""


__all__ = ["DumpInfo", "DumpRejected", "DumpSource", "OpenDump", "ReadLimits"]
