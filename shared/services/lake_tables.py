"""Reading the lake's Delta tables from the services: a run's snapshots (the alerts, the dashboard) and a dump's
rows of a snapshot table. Everything goes through the tables port (:class:`~shared.ports.tables.Tables`), whose
queries run in delta-rs's engine, naming the store (and the months) as literals so only their files are read.

Never read a Delta table through ``DeltaTable.to_pyarrow_dataset()`` / ``to_pyarrow_table()``: in this
environment 16 of 20 processes that did aborted at exit (an Arrow thread releasing delta-rs's Python filesystem
object while the interpreter stopped; docs/lake.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.core.sql import literal
from shared.ports.lake import Lake
from shared.ports.tables import OpenTables, Tables
from shared.services import engines

if TYPE_CHECKING:
    import pyarrow as pa


class Snapshots:
    """The lake's Delta tables as one run sees them, for reading: each opened when first used, then kept (the
    engines' keep-open tables, :func:`~shared.services.engines.open_snapshots`)."""

    def __init__(self, lake: Lake, *, open_tables: OpenTables = engines.open_snapshots) -> None:
        self.tables: Tables = open_tables(lake)

    def query(self, sql: str, **tables: str) -> pa.RecordBatchReader | None:
        """``sql`` over the named tables (``name=lake path``) as a stream; None when one does not exist."""
        return self.tables.query(sql, **tables)

    def read(self, sql: str, **tables: str) -> pa.Table | None:
        """:meth:`query`, read whole (for small results: a store's rows of an aggregate)."""
        return self.tables.read(sql, **tables)


def dump_rows(tables: Tables | Snapshots, path: str, store_id: str, dump_id: str,
              columns: Sequence[str]) -> pa.Table | None:
    """The rows one dump committed to a snapshot table (``curated/items`` …), or None when there are none."""
    found = tables.read(f"SELECT {', '.join(columns)} FROM t WHERE store_id = {literal(store_id)} "
                        f"AND dump_id = {literal(dump_id)}", t=path)
    return found if found is not None and found.num_rows else None


__all__ = ["Snapshots", "dump_rows"]
