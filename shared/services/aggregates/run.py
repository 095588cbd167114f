"""One run of the aggregates: what every step shares (the lake's tables as the run sees them, the DuckDB
connection, the writer, the result), and the discovery of what there is to do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shared.core import layout
from shared.core.aggregates import OUTPUTS, arrow_schema
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.tables import Tables
from shared.services.aggregates.result import AggregateResult, ProgressFn
from shared.services.aggregates.stock_counts import StockCounts
from shared.services.aggregates.writer import Writer

if TYPE_CHECKING:
    import duckdb

DAILY = ("sales_daily_sku", "sales_daily_category")


class Run:
    """A run's shared things. ``tables`` keeps each table as first opened (one version for every read of the
    run); ``full`` is set once the state has been read (a full rebuild)."""

    def __init__(self, *, lake: Lake, stock: StockStore, tables: Tables, work: Path, now: datetime,
                 memory_limit: str, threads: int, batch_lines: int, flush_bytes: int,
                 progress: ProgressFn | None) -> None:
        self.lake, self.stock, self.tables, self.work, self.now = lake, stock, tables, work, now
        self.batch_lines = batch_lines
        self.say = progress or (lambda _msg: None)
        self.result = AggregateResult()
        self.full = False
        self.stock_counts: StockCounts  # set once the state has been read (its cursor)
        self.con = connect(work, memory_limit, threads)
        self.writer = Writer(tables, self.result, flush_bytes=flush_bytes, replace_whole=changed_tables(tables))

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.con.close()

    def committed_dumps(self) -> dict[str, set[str]]:
        """store -> dump ids that have a manifest (the ingest's commit marker)."""
        out: dict[str, set[str]] = {}
        for o in self.lake.list(layout.MANIFESTS):
            parts = o.path.split("/")
            if len(parts) != 3 or not parts[1].startswith("store=") or not parts[2].endswith(".json"):
                continue
            out.setdefault(parts[1][len("store="):], set()).add(parts[2][:-len(".json")])
        return out

    def output_days(self) -> dict[str, set[str]]:
        """store -> the days that have rows in both daily outputs."""
        per_output = []
        for output in DAILY:
            rows = self.tables.read("SELECT DISTINCT store_id, CAST(date AS VARCHAR) AS day FROM t",
                                    t=OUTPUTS[output].path)
            have: dict[str, set[str]] = {}
            for r in rows.to_pylist() if rows is not None else []:
                have.setdefault(r["store_id"], set()).add(r["day"])
            per_output.append(have)
        sku, category = per_output
        return {store: days & category.get(store, set()) for store, days in sku.items()}


def changed_tables(tables: Tables) -> set[str]:
    """Outputs whose Delta table has other columns than the definitions: replaced whole (a full rebuild)."""
    changed = set()
    for name, o in OUTPUTS.items():
        columns = tables.columns(o.path)
        if columns is not None and columns != arrow_schema(name).names:
            changed.add(name)
    return changed


def connect(scratch: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """The run's DuckDB: bounded memory, spilling under the working folder, times in UTC."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads,
                                 "temp_directory": str(scratch / "spill"), "preserve_insertion_order": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


__all__ = ["DAILY", "Run", "changed_tables", "connect"]
