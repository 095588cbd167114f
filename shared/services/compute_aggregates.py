"""Use case: compute the aggregates under ``aggregates/`` (what the timer and ``inventory aggregate`` do).

    curated/sales + items (changed days only) ──DuckDB──▶ sales_daily_sku, sales_daily_category   (store × day)
    manifests (not seen before)               ─────────▶ data_quality                            (per dump)
    sales_daily_sku (16 weeks) + forecast     ─────────▶ forecast, sales_check                   (per store)
    latest items/vendors + the stock store    ─────────▶ stock_current                           (per store, each run)

Every input and output is a Delta Lake table. Inputs are read with delta-rs's engine
(:class:`~shared.services.lake_tables.Snapshots`: each table opened once per run), naming the store (and the
months) as literals so only their files are read; outputs are Delta tables ``aggregates/<name>`` partitioned
by ``store_id``, whose rows a run **replaces** (``write_deltalake(mode="overwrite", predicate=...)``): a
store's recomputed days, a store's rows, a dump's data-quality rows. Readers (Synapse, Power BI, the alerts,
the dashboard) see the old rows or the new ones, never a half-written run.

**Incremental.** Sale lines are only ever added, and only by dumps: each manifest lists the UTC days in which
its dump added lines (``tables.sales.days_written``). The state object ``aggregates/_state/sales_inputs.json``
remembers, per store, the dumps whose manifests were processed (with those days). A run recomputes the days
written by dumps it has not seen, and the days with sales that are missing from the daily outputs; the
others are left alone (no commit at all when nothing changed). Only committed dumps count: lines are read
only for dumps that have a manifest (the ingest writes it after its Delta commits), so an ingest still
running, or one that died before its manifest, waits for a later run. The state is written last: a crash
before it only means the next run redoes the work, and replacing rows is idempotent.

**Few commits.** Replacements are collected per output and committed together (the predicates OR-ed) once
they reach ``flush_bytes`` or at the end, by one background thread while DuckDB computes the next batch: a
run over 50 stores makes a handful of commits per output, not one per store or day.

**Bounded.** Store by store, days in batches of at most ``batch_lines`` sale lines (counted from the
manifests); the batch's lines stream from delta-rs into DuckDB, which runs with ``memory_limit``, 2 threads
and a spill folder under ``scratch``; at most ``flush_bytes`` of results wait per output.

**Demand.** The forecast and the demand columns of stock_current use the last 16 weeks of sales_daily_sku:
the days recomputed in this run from memory, the others read back from the table. A store whose dumps and
skus (the latest items and the skus the stock store counts) did not change keeps its forecast, and
stock_current reuses the demand columns of its previous rows; the stock columns are refreshed from the stock
store on every run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.adapters.delta_tables import column_names
from shared.core import layout
from shared.core.aggregates import (
    AGGREGATES_VERSION,
    DEFAULT_LEAD_TIME_DAYS,
    FORECAST_SUM_DAYS,
    HISTORY_DAYS,
    OUTPUTS,
    PARTITION_BY,
    STATE_PATH,
    WINDOW_DAYS,
    arrow_schema,
    daily_units_sql,
    data_quality_rows,
    sales_daily_category_sql,
    sales_daily_sku_sql,
    stock_current_sql,
    with_margin_sql,
)
from shared.core.ids import utc_iso
from shared.core.sql import literal, sql_list
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.telemetry import Telemetry
from shared.services.lake_tables import Snapshots
from shared.services.scratch import scratch_folder

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

ProgressFn = Callable[[str], None]
CHECK_Z = 3.0  # width of the sales_check interval (UnusualSales)
STATE_VERSION = 2  # 2: dumps and the days they wrote (Delta tables), instead of the curated files per day
DEFAULT_BATCH_LINES = 8_000_000
DEFAULT_FLUSH_BYTES = 16 << 20
DAILY = ("sales_daily_sku", "sales_daily_category")


@dataclass
class AggregateResult:
    stores: list[str] = field(default_factory=list)
    partitions_recomputed: int = 0  # (store, day) pairs of the daily sales outputs rewritten
    skipped_unchanged: int = 0  # (store, day) pairs with sales whose outputs were already up to date
    sales_lines: int = 0  # curated sale lines read
    forecasts_recomputed: int = 0  # stores whose forecast (and demand columns) were recomputed
    stock_rows: int = 0  # stock_current rows written
    manifests_added: int = 0  # dumps added to data_quality
    rows_written: dict[str, int] = field(default_factory=dict)  # output -> rows written
    commits: dict[str, int] = field(default_factory=dict)  # output -> Delta commits made
    timings_s: dict[str, float] = field(default_factory=dict)
    full_rebuild: bool = False  # no usable state (first run, the definitions changed, or a table's columns)

    def to_json(self) -> dict:
        return {"stores": self.stores, "partitions_recomputed": self.partitions_recomputed,
                "skipped_unchanged": self.skipped_unchanged, "sales_lines": self.sales_lines,
                "forecasts_recomputed": self.forecasts_recomputed, "stock_rows": self.stock_rows,
                "manifests_added": self.manifests_added, "rows_written": dict(sorted(self.rows_written.items())),
                "commits": dict(sorted(self.commits.items())), "full_rebuild": self.full_rebuild,
                "state": STATE_PATH, "timings_s": self.timings_s}


# --- the state --------------------------------------------------------------------------------------------

@dataclass
class StoreState:
    dumps: dict[str, dict] = field(default_factory=dict)  # dump id -> {snapshot_at, days, items, vendors}
    demand_key: str = ""  # what the store's forecast and demand columns were computed from

    def to_json(self) -> dict:
        return {"dumps": self.dumps, "demand_key": self.demand_key}

    def sales_days(self) -> dict[str, int]:
        """UTC day -> sale lines the store has on it (every line was added by exactly one dump)."""
        out: dict[str, int] = {}
        for info in self.dumps.values():
            for day, n in info.get("days", {}).items():
                out[day] = out.get(day, 0) + int(n)
        return out

    def dumps_on(self, days: Iterable[str]) -> list[str]:
        """The dumps that added lines to any of ``days`` (the only ones whose lines those days hold)."""
        wanted = set(days)
        return sorted(d for d, info in self.dumps.items() if wanted.intersection(info.get("days", {})))

    def latest(self, table: str | None = None) -> str | None:
        """The latest dump (snapshot time, then id); with ``table``, the latest whose curated ``table`` has rows."""
        found = [(info["snapshot_at"], d) for d, info in self.dumps.items() if table is None or info.get(table)]
        return max(found)[1] if found else None


def load_state(lake: Lake) -> tuple[dict[str, StoreState], bool]:
    """(state per store, usable). A missing, unreadable or outdated state means a full rebuild."""
    try:
        raw = json.loads(lake.get_bytes(STATE_PATH))
    except (FileNotFoundError, ValueError):
        return {}, False
    if raw.get("version") != STATE_VERSION or raw.get("aggregates_version") != AGGREGATES_VERSION:
        return {}, False
    return {s: StoreState(v.get("dumps", {}), v.get("demand_key", "")) for s, v in raw.get("stores", {}).items()}, True


def aggregated_stores(lake: Lake) -> set[str]:
    """The stores the last aggregates run covered (its state), whether or not they had sales or skus."""
    try:
        return set(json.loads(lake.get_bytes(STATE_PATH)).get("stores", {}))
    except (FileNotFoundError, ValueError, AttributeError):
        return set()


def _save_state(lake: Lake, stores: dict[str, StoreState], now: datetime) -> None:
    body = {"version": STATE_VERSION, "aggregates_version": AGGREGATES_VERSION, "updated_at": utc_iso(now),
            "stores": {s: stores[s].to_json() for s in sorted(stores)}}
    lake.put_bytes(STATE_PATH, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


# --- writing outputs ------------------------------------------------------------------------------------

class _Writer:
    """Replaces rows of the aggregates' Delta tables, in few commits, in the background.

    :meth:`replace` collects (rows, predicate) per output; when an output's rows reach ``flush_bytes`` (and at
    :meth:`close`) they become one commit whose predicate is the collected predicates OR-ed. One thread
    commits, so commits to a table never race each other (and delta-rs releases the GIL while it writes, so
    DuckDB computes the next batch meanwhile); at most two commits wait for it. An output listed in
    ``replace_whole`` (its table's columns changed) is replaced whole by its first commit.
    """

    def __init__(self, snapshots: Snapshots, result: AggregateResult, *, flush_bytes: int,
                 replace_whole: set[str]) -> None:
        self.tables, self.result, self.flush_bytes = snapshots, result, flush_bytes
        self.replace_whole = set(replace_whole)
        self.pending: dict[str, tuple[list[pa.Table], list[str]]] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggregates-write")
        self.running: list[Future] = []
        self.lock = threading.Lock()

    def replace(self, output: str, table: pa.Table, where: str) -> None:
        """Replace the rows of ``output`` matching ``where`` by ``table`` (every row of which matches it)."""
        schema = arrow_schema(output)
        tables, clauses = self.pending.setdefault(output, ([], []))
        tables.append(table.select(schema.names).cast(schema))
        clauses.append(where)
        if sum(t.nbytes for t in tables) >= self.flush_bytes:
            self.flush(output)

    def flush(self, output: str) -> None:
        import pyarrow as pa

        tables, clauses = self.pending.pop(output, ([], []))
        if not clauses:
            return
        predicate = clauses[0] if len(clauses) == 1 else " OR ".join(f"({c})" for c in clauses)
        if output in self.replace_whole:
            predicate = None
            self.replace_whole.discard(output)
        while len(self.running) >= 2:
            self.running.pop(0).result()  # re-raises a failed commit
        self.running.append(self.pool.submit(self._commit, output, pa.concat_tables(tables), predicate))

    def _commit(self, output: str, table: pa.Table, predicate: str | None) -> None:
        self.tables.replace(OUTPUTS[output].path, table, predicate, partition_by=PARTITION_BY,
                            metadata={"writer": "compute_aggregates", "aggregates_version": str(AGGREGATES_VERSION)})
        with self.lock:
            self.result.commits[output] = self.result.commits.get(output, 0) + 1
            self.result.rows_written[output] = self.result.rows_written.get(output, 0) + table.num_rows

    def drain(self) -> None:
        for output in list(self.pending):
            self.flush(output)
        running, self.running = self.running, []
        for f in running:
            f.result()

    def close(self) -> None:
        try:
            for f in self.running:  # what is under way ends; what was not flushed is dropped (a failed run)
                f.result()
        finally:
            self.pool.shutdown(wait=True)


# --- helpers ----------------------------------------------------------------------------------------------

def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _connect(scratch: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads,
                                 "temp_directory": str(scratch / "spill"), "preserve_insertion_order": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _history_start(days: list[str]) -> date:
    """The first day of the forecast's history: 16 weeks back from the last day with sales, or the first."""
    last = date.fromisoformat(days[-1])
    return max(date.fromisoformat(days[0]), last - timedelta(days=HISTORY_DAYS - 1))


def days_clause(days: Iterable[str]) -> str:
    """SQL true for the rows whose ``date`` is one of ``days`` (ISO): runs of consecutive days as one BETWEEN,
    so a year of days is one short condition (for delta-rs's predicates and DataFusion's filters alike)."""
    runs: list[list[date]] = []
    for d in sorted({date.fromisoformat(x) for x in days}):
        if runs and d - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    parts = [f"date = DATE '{a}'" if a == b else f"date BETWEEN DATE '{a}' AND DATE '{b}'" for a, b in runs]
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _batches(days: list[str], lines: dict[str, int], limit: int) -> Iterator[list[str]]:
    """``days`` in order, in batches of at most ``limit`` sale lines (a day larger than that alone)."""
    batch: list[str] = []
    size = 0
    for d in days:
        if batch and size + lines.get(d, 0) > limit:
            yield batch
            batch, size = [], 0
        batch.append(d)
        size += lines.get(d, 0)
    if batch:
        yield batch


def _empty(output: str) -> pa.Table:
    return arrow_schema(output).empty_table()


# --- the use case ----------------------------------------------------------------------------------------

class _Run:
    def __init__(self, *, lake: Lake, stock: StockStore, work: Path, now: datetime, memory_limit: str, threads: int,
                 batch_lines: int, flush_bytes: int, progress: ProgressFn | None) -> None:
        self.lake, self.stock, self.work, self.now = lake, stock, work, now
        self.batch_lines = batch_lines
        self.say = progress or (lambda _msg: None)
        self.result = AggregateResult()
        self.tables = Snapshots(lake)
        self.full = False
        self.con = _connect(work, memory_limit, threads)
        self.writer = _Writer(self.tables, self.result, flush_bytes=flush_bytes, replace_whole=self.changed_tables())

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.con.close()

    # -- discovery ---------------------------------------------------------------------------------------
    def changed_tables(self) -> set[str]:
        """Outputs whose Delta table has other columns than the definitions: replaced whole (a full rebuild)."""
        changed = set()
        for name, o in OUTPUTS.items():
            table = self.tables.table(o.path)
            if table is not None and column_names(table) != arrow_schema(name).names:
                changed.add(name)
        return changed

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

    # -- data quality ------------------------------------------------------------------------------------
    def add_manifests(self, store: str, st: StoreState, dump_ids: Iterable[str]) -> set[str]:
        """Turn the manifests of dumps not seen before into data_quality rows and remember the dumps; returns
        the days they added sale lines to."""
        import pyarrow as pa

        rows, days, new = [], set(), sorted(set(dump_ids) - set(st.dumps))
        for dump_id in new:
            manifest = json.loads(self.lake.get_bytes(layout.manifest(store, dump_id)))
            for r in data_quality_rows(manifest):
                rows.append({**r, "date": date.fromisoformat(r["date"]), "snapshot_at": _parse_ts(r["snapshot_at"]),
                             "ingested_at": _parse_ts(r["ingested_at"])})
            tables = manifest.get("tables", {})
            written = self._days_written(store, dump_id, tables.get("sales"))
            st.dumps[dump_id] = {"snapshot_at": manifest["snapshot_at"], "days": written,
                                 "items": tables.get("items", {}).get("curated", 0),
                                 "vendors": tables.get("vendors", {}).get("curated", 0)}
            days.update(written)
        where = f"store_id = {literal(store)}"
        if new or self.full:  # a full rebuild also clears rows of dumps whose manifests are gone
            self.writer.replace("data_quality", pa.Table.from_pylist(rows, schema=arrow_schema("data_quality")),
                                where if self.full else f"{where} AND dump_id IN {sql_list(new)}")
        self.result.manifests_added += len(new)
        return days

    def _days_written(self, store: str, dump_id: str, sales: dict | None) -> dict[str, int]:
        """The UTC days the dump added sale lines to, with how many: from its manifest, or (a manifest without
        them, from before they were recorded) counted in curated/sales."""
        if not sales or not sales.get("written", sales.get("curated", 0)):
            return {}
        if "days_written" in sales:
            return {d: int(n) for d, n in sales["days_written"].items() if n}
        found = self.tables.read(f"SELECT CAST(date AS VARCHAR) AS day, count(*) AS n FROM s WHERE store_id = "
                                 f"{literal(store)} AND dump_id = {literal(dump_id)} GROUP BY date",
                                 s=layout.curated("sales"))
        return {} if found is None else dict(zip(found.column("day").to_pylist(), found.column("n").to_pylist(),
                                                 strict=True))

    # -- daily sales ---------------------------------------------------------------------------------------
    def compute_days(self, store: str, st: StoreState, days: list[str], history_from: str) -> pa.Table | None:
        """Recompute the daily outputs of ``days``; returns their (sku, date, units) from ``history_from`` on,
        for the forecast (so it need not read back what it has just written)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        fresh, first = [], True
        lines = st.sales_days()
        for batch in _batches(days, lines, self.batch_lines):
            sku_table, cat_table = self._sales_batch(store, st, batch)
            where = f"store_id = {literal(store)}"
            if not (self.full and first):  # a full rebuild's first batch clears the store's rows
                where += f" AND {days_clause(batch)}"
            first = False
            self.writer.replace("sales_daily_sku", sku_table, where)
            self.writer.replace("sales_daily_category", cat_table, where)
            self.result.sales_lines += int(pc.sum(sku_table.column("lines")).as_py() or 0)
            self.result.partitions_recomputed += len(batch)
            recent = pc.greater_equal(sku_table.column("date"), pa.scalar(date.fromisoformat(history_from)))
            fresh.append(sku_table.filter(recent).select(["sku", "date", "units"]))
        if self.full and first:  # no day at all: a full rebuild still clears the store's rows
            for output in DAILY:
                self.writer.replace(output, _empty(output), f"store_id = {literal(store)}")
        return pa.concat_tables(fresh) if fresh else None

    def _sales_batch(self, store: str, st: StoreState, batch: list[str]) -> tuple[pa.Table, pa.Table]:
        """(sales_daily_sku sorted by date and sku, sales_daily_category) of a batch of days: the lines of the
        dumps that wrote to those days stream from delta-rs into DuckDB with those dumps' items."""
        dumps = sql_list(st.dumps_on(batch))
        months = sql_list(sorted({d[:7] for d in batch}))
        where = f"store_id = {literal(store)} AND dump_id IN {dumps}"
        sales = self.tables.query(f"SELECT store_id, sku, qty, unit_price, dump_id, date FROM s WHERE {where} "
                                  f"AND month IN {months} AND {days_clause(batch)}", s=layout.curated("sales"))
        items = self.tables.query(f"SELECT dump_id, sku, category, unit_price, unit_cost, snapshot_at FROM i "
                                  f"WHERE {where}", i=layout.curated("items"))
        self.con.register("sales_in", sales if sales is not None else _schema("sales").empty_table())
        self.con.register("items_in", items if items is not None else _schema("items").empty_table())
        try:
            self.con.execute("CREATE OR REPLACE TEMP TABLE daily AS "
                             + with_margin_sql(f"({sales_daily_sku_sql('sales_in', 'items_in')})"))
        finally:
            self.con.unregister("sales_in")
            self.con.unregister("items_in")
        sku_table = self.con.sql("SELECT * FROM daily ORDER BY date, sku").to_arrow_table()
        cat_table = self.con.sql(sales_daily_category_sql("daily")).to_arrow_table()
        self.con.execute("DROP TABLE daily")
        return sku_table, cat_table

    # -- demand, forecast, stock -----------------------------------------------------------------------------
    def _dump_rows(self, store: str, table: str, dump_id: str | None, schema: pa.Schema) -> pa.Table:
        """The store's ``curated/<table>`` rows of one dump (the columns of ``schema``; empty without a dump)."""
        found = None
        if dump_id is not None:
            found = self.tables.read(f"SELECT {', '.join(schema.names)} FROM t WHERE store_id = {literal(store)} "
                                     f"AND dump_id = {literal(dump_id)}", t=layout.curated(table))
        return found.cast(schema) if found is not None else schema.empty_table()

    def stock_current(self, store: str, st: StoreState, days: list[str], fresh: pa.Table | None,
                      recomputed: set[str]) -> None:
        import pyarrow as pa

        latest = st.latest()
        items = self._dump_rows(store, "items", latest, pa.schema([
            ("sku", pa.string()), ("name", pa.string()), ("category", pa.string()), ("vendor_id", pa.string()),
            ("active", pa.bool_()), ("reorder_point", pa.int64()), ("reorder_qty", pa.int64())]))
        vendors = self._dump_rows(store, "vendors", st.latest("vendors"),
                                  pa.schema([("vendor_id", pa.string()), ("lead_time_days", pa.int64())]))
        docs = self.stock.stock(store)
        stock = pa.table({"sku": pa.array([d.sku for d in docs], pa.string()),
                          "on_hand": pa.array([d.on_hand for d in docs], pa.int64())})

        # Everything _demand depends on: the sales (the dumps and the days they wrote), the latest dump (its items
        # and snapshot day) and the skus it covers. The stock store can count skus the dump's items lack (a receipt
        # for a new sku): its rows get a forecast of their own, so a change in those skus recomputes the demand,
        # as a full run would.
        skus = sorted({s for col in (items.column("sku"), stock.column("sku")) for s in col.to_pylist()
                       if s is not None})
        sales = {d: info.get("days", {}) for d, info in st.dumps.items()}
        key = hashlib.sha256(json.dumps([AGGREGATES_VERSION, latest, sales, skus], sort_keys=True).encode()).hexdigest()
        demand, sales_through = None, None
        if key == st.demand_key:  # same sales, dumps and skus as when the demand was computed: reuse it
            demand, sales_through = self._previous_demand(store, len(skus))
        if demand is None:
            snapshot = _parse_ts(st.dumps[latest]["snapshot_at"]) if latest else None
            demand, sales_through = self._demand(store, days, skus, fresh, recomputed,
                                                 snapshot.date() if snapshot else None)
            st.demand_key = key
        table = self._stock_table(store, items, stock, vendors, demand, sales_through)
        self.writer.replace("stock_current", table, f"store_id = {literal(store)}")
        self.result.stock_rows += table.num_rows

    def _stock_table(self, store: str, items: pa.Table, stock: pa.Table, vendors: pa.Table, demand: pa.Table,
                     sales_through: date | None) -> pa.Table:
        """stock_current's rows: the SQL join, then days of cover and the suggested order (numpy)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from shared.core.forecast import cover_and_reorder

        inputs = {"items_t": items, "stock_t": stock, "vendors_t": vendors, "demand_t": demand}
        for name, t in inputs.items():
            self.con.register(name, t)
        try:
            table = self.con.sql(stock_current_sql(store_id=store, items="items_t", stock="stock_t",
                                                   vendors="vendors_t", demand="demand_t",
                                                   default_lead_time=DEFAULT_LEAD_TIME_DAYS)).to_arrow_table()
        finally:
            for name in inputs:
                self.con.unregister(name)
        on_hand = table.column("on_hand")
        daily = table.column("forecast_daily")
        known = pc.and_(pc.is_valid(on_hand), pc.is_valid(daily)).to_numpy(zero_copy_only=False)
        cover, order = cover_and_reorder(
            on_hand.fill_null(0).to_numpy(), daily.fill_null(0.0).to_numpy(),
            table.column("lead_time_days").to_numpy(), table.column("reorder_qty").fill_null(0).to_numpy())
        cover_ok = known & np.isfinite(cover)
        same = np.zeros(table.num_rows, np.int64)  # indexes into a one-value array: the value repeated n times
        table = (table
                 .append_column("days_of_cover", pa.array(cover, pa.float64(), mask=~cover_ok))
                 .append_column("suggested_order_qty", pa.array(order, pa.int64(), mask=~known))
                 .append_column("sales_through", pa.array([sales_through], pa.date32()).take(same))
                 .append_column("as_of", pa.array([self.now], pa.timestamp("us", tz="UTC")).take(same)))
        return table.select(list(OUTPUTS["stock_current"].column_names))

    def _previous_demand(self, store: str, n_skus: int) -> tuple[pa.Table | None, date | None]:
        """The demand columns of the store's current stock_current rows (None when they cannot be trusted: the
        forecast table is gone, or the rows are missing)."""
        prev = self.tables.read(f"SELECT sku, units_28d, forecast_daily, forecast_14d, sales_through FROM t "
                                f"WHERE store_id = {literal(store)}", t=OUTPUTS["stock_current"].path)
        if prev is None or (n_skus and not prev.num_rows) or self.tables.table(OUTPUTS["forecast"].path) is None:
            return None, None
        sales_through = prev.column("sales_through")[0].as_py() if prev.num_rows else None
        demand = prev.select(["sku", "units_28d", "forecast_daily", "forecast_14d"]).cast(_schema("demand"))
        return demand, sales_through

    def _history_units(self, store: str, first: date, last: date, recomputed: set[str]) -> pa.Table | None:
        """(sku, date, units) of sales_daily_sku from first to last, the days recomputed in this run left out."""
        where = f"store_id = {literal(store)}" + (f" AND NOT {days_clause(recomputed)}" if recomputed else "")
        found = self.tables.read(daily_units_sql(f"(SELECT sku, date, units FROM t WHERE {where}) AS d", first, last),
                                 t=OUTPUTS["sales_daily_sku"].path)
        return found.cast(_schema("units")) if found is not None else None

    def _demand(self, store: str, days: list[str], skus: list[str], fresh: pa.Table | None,
                recomputed: set[str], snapshot_day: date | None = None) -> tuple[pa.Table, date | None]:
        """(sku, units_28d, forecast_daily, forecast_14d) from the last 16 weeks of sales_daily_sku, and the last
        day of sales history; replaces the store's forecast and sales_check."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from shared.core.forecast import forecast_demand

        where = f"store_id = {literal(store)}"
        if not days:  # no sales: no forecast (rows of an earlier one go)
            for output in ("forecast", "sales_check"):
                self.writer.replace(output, _empty(output), where)
            return _schema("demand").empty_table(), None
        self.result.forecasts_recomputed += 1
        last = date.fromisoformat(days[-1])
        first = _history_start(days)
        parts = [_schema("units").empty_table()] + ([fresh.cast(_schema("units"))] if fresh is not None else [])
        if any(d >= first.isoformat() and d not in recomputed for d in days):
            parts.append(self._history_units(store, first, last, recomputed))
        units = pa.concat_tables([p for p in parts if p is not None])
        order = sorted(set(skus) | set(pc.unique(units.column("sku")).to_pylist()))
        n_days = (last - first).days + 1
        history = np.zeros((len(order), n_days))
        rows = pc.index_in(units.column("sku"), value_set=pa.array(order, pa.string())).to_numpy()
        cols = pc.days_between(pa.scalar(first, pa.date32()), units.column("date")).to_numpy()
        history[rows, cols] = units.column("units").to_numpy()
        units_28d = history[:, -WINDOW_DAYS:].sum(axis=1).astype(np.int64)
        forecast_daily = forecast_14d = pa.nulls(len(order), pa.float64())
        forecast, check = _empty("forecast"), _empty("sales_check")
        if n_days >= 7 and order:
            f = forecast_demand(history, first)
            forecast_daily = pa.array(f.mean.mean(axis=1))
            forecast_14d = pa.array(f.mean[:, :FORECAST_SUM_DAYS].sum(axis=1))
            forecast = _forecast_table(store, order, f)
            check = self._sales_check(store, history, first, last, order, snapshot_day)
        self.writer.replace("forecast", forecast, where)
        self.writer.replace("sales_check", check, where)
        demand = pa.table({"sku": pa.array(order, pa.string()), "units_28d": pa.array(units_28d, pa.int64()),
                           "forecast_daily": forecast_daily, "forecast_14d": forecast_14d})
        return demand, last

    def _sales_check(self, store: str, history: np.ndarray, first: date, last: date, order: list[str],
                     snapshot_day: date | None) -> pa.Table:
        """The last complete day against its one-day-ahead interval (for the UnusualSales alert). The dump's
        own snapshot day may be partial (a dump taken at noon), so the day checked is at most the day before."""
        import numpy as np
        import pyarrow as pa

        from shared.core.forecast import ForecastConfig, one_step_check

        day = last if snapshot_day is None or last < snapshot_day else snapshot_day - timedelta(days=1)
        upto = (day - first).days + 1  # history columns through the day checked
        if upto < 8:  # one_step_check needs a week before the day it checks
            return _empty("sales_check")
        # z = 3 (about 1 day in 700 above the upper bound by chance) rather than the forecast's 1.96: this
        # interval decides pages, and a chain has thousands of sku-days a day.
        expected, lower, upper = one_step_check(history[:, :upto], first, ForecastConfig(z=CHECK_Z))
        units = history[:, upto - 1]
        keep = (units > 0) | (expected > 0)
        n = int(keep.sum())
        return pa.table({
            "store_id": pa.array([store] * n, pa.string()),
            "sku": pa.array(np.array(order, dtype=object)[keep], pa.string()),
            "date": pa.array([day] * n, pa.date32()),
            "units": pa.array(units[keep].astype(np.int64), pa.int64()),
            "expected": pa.array(expected[keep]), "lower": pa.array(lower[keep]), "upper": pa.array(upper[keep])})


def _forecast_table(store: str, order: list[str], f) -> pa.Table:  # noqa: ANN001 - core.forecast.Forecast
    import numpy as np
    import pyarrow as pa

    horizon = f.mean.shape[1]
    dates = pa.array([f.first_day + timedelta(days=h) for h in range(horizon)], pa.date32())
    n = len(order) * horizon
    return pa.table({
        "store_id": pa.array([store], pa.string()).take(np.zeros(n, dtype=np.int64)),
        "sku": pa.array(order, pa.string()).take(np.repeat(np.arange(len(order)), horizon)),
        "date": dates.take(np.tile(np.arange(horizon), len(order))),
        "mean": pa.array(f.mean.ravel()), "lower": pa.array(f.lower.ravel()), "upper": pa.array(f.upper.ravel())})


@functools.cache
def _schema(name: str) -> pa.Schema:
    """The Arrow schemas of this module's intermediate tables: daily units, demand, and the inputs read."""
    import pyarrow as pa

    money, text = pa.decimal128(18, 4), pa.string()
    return {
        "units": pa.schema([("sku", text), ("date", pa.date32()), ("units", pa.int64())]),
        "demand": pa.schema([("sku", text), ("units_28d", pa.int64()), ("forecast_daily", pa.float64()),
                             ("forecast_14d", pa.float64())]),
        "sales": pa.schema([("store_id", text), ("sku", text), ("qty", pa.int64()), ("unit_price", money),
                            ("dump_id", text), ("date", pa.date32())]),
        "items": pa.schema([("dump_id", text), ("sku", text), ("category", text), ("unit_price", money),
                            ("unit_cost", money), ("snapshot_at", pa.timestamp("us", tz="UTC"))]),
    }[name]


def compute_aggregates(
    *,
    lake: Lake,
    stock: StockStore,
    telemetry: Telemetry,
    scratch: Path,
    now: datetime | None = None,
    memory_limit: str = "512MB",
    threads: int = 2,
    batch_lines: int = DEFAULT_BATCH_LINES,
    flush_bytes: int = DEFAULT_FLUSH_BYTES,
    progress: ProgressFn | None = None,
) -> AggregateResult:
    """Bring ``aggregates/`` up to date with the curated zone, the manifests and the stock store (see module doc)."""
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(timings.get(step, 0.0) + time.monotonic() - clock, 3)
        clock = time.monotonic()

    in_use = contextlib.ExitStack()
    work = in_use.enter_context(scratch_folder("aggregates-", scratch))
    run = _Run(lake=lake, stock=stock, work=work, now=now, memory_limit=memory_limit, threads=threads,
               batch_lines=batch_lines, flush_bytes=flush_bytes, progress=progress)
    try:
        state, usable = load_state(lake)
        run.full = not usable or bool(run.writer.replace_whole)
        if run.full:
            state = {}
        committed = run.committed_dumps()
        present = {} if run.full else run.output_days()
        stores = sorted(set(committed) | set(stock.stores()))
        run.result.stores, run.result.full_rebuild = stores, run.full
        lap("discover")
        for store in stores:
            _store(run, state.setdefault(store, StoreState()), store, committed.get(store, set()),
                   present.get(store, set()), lap)
        run.writer.drain()
        lap("write")
        _save_state(lake, state, now)  # last: a crash before this only means redoing work
        lap("state")
    finally:
        run.close()
        in_use.close()  # removes the working folder
    result = run.result
    timings["total"] = round(time.monotonic() - started, 3)
    result.timings_s = timings
    _report(telemetry, result)
    return result


def _store(run: _Run, st: StoreState, store: str, committed: set[str], present: set[str],
           lap: Callable[[str], None]) -> None:
    """One store: its new manifests, the days to recompute, then stock, demand and forecast."""
    new_days = run.add_manifests(store, st, committed)
    lap("data_quality")
    lines = st.sales_days()
    days = sorted(lines)
    todo = sorted(set(new_days) | (set(lines) - present)) if not run.full else days
    run.result.skipped_unchanged += len(days) - len(todo)
    if todo:
        run.say(f"{store}: {len(todo)} day(s) to recompute, {len(days) - len(todo)} unchanged")
    history_from = _history_start(days).isoformat() if days else ""
    fresh = run.compute_days(store, st, todo, history_from)
    lap("sales_daily")
    run.stock_current(store, st, days, fresh, set(todo))
    lap("stock_forecast")


def _report(telemetry: Telemetry, result: AggregateResult) -> None:
    telemetry.event("AggregatesComputed", stores=len(result.stores),
                    partitionsRecomputed=result.partitions_recomputed, skippedUnchanged=result.skipped_unchanged,
                    salesLines=result.sales_lines, forecastsRecomputed=result.forecasts_recomputed,
                    stockRows=result.stock_rows, manifestsAdded=result.manifests_added,
                    commits=sum(result.commits.values()), fullRebuild=result.full_rebuild,
                    durationS=result.timings_s["total"])
    telemetry.metric("aggregates_partitions_recomputed", result.partitions_recomputed)
    telemetry.metric("aggregates_sales_lines", result.sales_lines)
    telemetry.metric("aggregates_duration_s", result.timings_s["total"])


__all__ = ["AggregateResult", "StoreState", "aggregated_stores", "compute_aggregates", "days_clause", "load_state"]
