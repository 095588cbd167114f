"""Reading the lake's Delta tables in tests, the way every reader does: through ``DeltaTables.query``."""

from __future__ import annotations

from shared.adapters.delta_tables import DeltaTables


def delta_rows(lake, table: str, where: str = "true", columns: str = "*"):
    """The rows of the Delta table at lake path ``table`` (e.g. ``curated/sales``) matching ``where``, as a
    pyarrow Table (empty when the table does not exist)."""
    import pyarrow as pa

    found = DeltaTables(lake).read(f"SELECT {columns} FROM t WHERE {where}", t=table)
    return found if found is not None else pa.table({})


def delta_count(lake, table: str, where: str = "true") -> int:
    """How many rows of the Delta table ``table`` match ``where`` (0 when the table does not exist)."""
    found = DeltaTables(lake).read(f"SELECT count(*) AS n FROM t WHERE {where}", t=table)
    return int(found.column("n")[0].as_py()) if found is not None else 0
