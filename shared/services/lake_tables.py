"""Reading the lake's Delta tables from the services: a dump's rows of a snapshot table. Everything goes through
the tables port (:class:`~shared.ports.tables.Tables`; a run's snapshots come from
:func:`~shared.services.engines.open_snapshots`), whose queries run in delta-rs's engine, naming the store (and
the months) as literals so only their files are read.

Never read a Delta table through ``DeltaTable.to_pyarrow_dataset()`` / ``to_pyarrow_table()``: in this
environment 16 of 20 processes that did aborted at exit (an Arrow thread releasing delta-rs's Python filesystem
object while the interpreter stopped; docs/lake.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.core.sql import literal
from shared.ports.tables import Tables

if TYPE_CHECKING:
    import pyarrow as pa


def dump_rows(tables: Tables, path: str, store_id: str, dump_id: str,
              columns: Sequence[str]) -> pa.Table | None:
    """The rows one dump committed to a snapshot table (``curated/items`` …), or None when there are none."""
    found = tables.read(f"SELECT {', '.join(columns)} FROM t WHERE store_id = {literal(store_id)} "
                        f"AND dump_id = {literal(dump_id)}", t=path)
    return found if found is not None and found.num_rows else None


__all__ = ["dump_rows"]
