"""The DuckDB connection the stages share (one per ingest), and what they ask of it in common."""

from __future__ import annotations

from pathlib import Path

from shared.core.arrow_values import RowSet
from shared.services.ingest.result import IngestLimits


def open_engine(limits: IngestLimits, work: Path, timezone: str):  # noqa: ANN201 - a DuckDB connection
    """A DuckDB connection within ``INGEST_MEMORY_LIMIT``, spilling under ``work``, in the store's time zone.
    One thread while the reader child streams (it has the other core); the duplicate stage sets two."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": limits.memory_limit, "threads": 1,
                                 "temp_directory": str(work / "spill"),
                                 "preserve_insertion_order": False})
    try:
        con.execute(f"SET TimeZone = '{timezone}'")
    except BaseException:
        con.close()
        raise
    return con


_MEMORY_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def memory_limit_bytes(con) -> int | None:  # noqa: ANN001 - a DuckDB connection
    """DuckDB's memory limit in bytes (it reports e.g. ``122.0 MiB``); None if it says something else."""
    number, _, unit = str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]).partition(" ")
    try:
        return int(float(number) * _MEMORY_UNITS[unit])
    except (KeyError, ValueError):
        return None


def row_set(relation, rows: int) -> RowSet:  # noqa: ANN001 - a DuckDB relation of one column, _row
    """The row numbers of ``relation``, streamed into a :class:`RowSet` (never materialised whole)."""
    found = RowSet(rows)
    for batch in relation.to_arrow_reader(1 << 20):
        found.add(batch.column(0))
    return found


__all__ = ["memory_limit_bytes", "open_engine", "row_set"]
