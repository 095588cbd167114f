"""Use case: compute the aggregates under ``aggregates/`` (what the timer and ``inventory aggregate`` do).

    curated/sales (changed partitions only) ──DuckDB──▶ sales_daily_sku, sales_daily_category   (store × day)
    manifests (not seen before)             ─────────▶ data_quality                            (one file per dump)
    sales_daily_sku (16 weeks) + forecast   ─────────▶ forecast                                (per store)
    latest items/vendors + the stock store  ─────────▶ stock_current                           (per store, each run)

**Incremental.** The state object ``aggregates/_state/sales_inputs.json`` remembers, per store and day, the
curated sales files that fed the day's outputs (name → size and etag, as the lake lists them), and which
dumps' manifests have been turned into data_quality rows. A run lists the lake, and recomputes only the
(store, day) partitions whose files are new, changed or gone, or whose output file is missing; a day whose
files are all gone gets empty outputs (the port has no delete, and an empty file is the truth). Output names
are deterministic (``part-0.parquet``, ``<dump_id>.parquet``) and rows are sorted, so a rerun overwrites
with the same bytes. The state is written last: a crash before it only means the next run redoes the work.

Only committed dumps count: sales files whose dump has no manifest yet (an ingest in progress, or one that
crashed before its commit marker) are left for a later run.

**Bounded.** Store by store, days in batches of at most ``batch_bytes`` of input Parquet; DuckDB runs with
``memory_limit``, 2 threads and a spill folder under ``scratch``. Remote lakes copy each batch's inputs to
``scratch`` (``lake.local_copy``) and delete them after. Output files are written and published by one
background thread while DuckDB computes the next batch; at most ~96 MB of results wait for it.

**Demand.** The forecast and the demand columns of stock_current use the last 16 weeks of sales_daily_sku:
the days recomputed in this run from memory, the others read back from the lake. A store whose sales, dumps
and skus (the latest items and the skus the stock store counts) did not change keeps its forecast, and
stock_current reuses the demand columns of its previous file; the stock columns are refreshed from the stock
store on every run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.adapters.lake import Lake, LakeObject
from shared.adapters.parquet_files import read_parquet_bytes
from shared.adapters.stock import StockStore
from shared.adapters.telemetry import Telemetry
from shared.core.aggregates import (
    AGGREGATES_VERSION,
    DEFAULT_LEAD_TIME_DAYS,
    FORECAST_SUM_DAYS,
    HISTORY_DAYS,
    OUTPUTS,
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
from shared.core.ids import dump_id_of_output, utc_iso

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

ProgressFn = Callable[[str], None]
CHECK_Z = 3.0  # width of the sales_check interval (UnusualSales)
STATE_VERSION = 1
DEFAULT_BATCH_BYTES = 256 << 20


@dataclass
class AggregateResult:
    stores: list[str] = field(default_factory=list)
    partitions_recomputed: int = 0  # (store, day) partitions of the daily sales outputs rewritten
    partitions_emptied: int = 0  # of which: days whose sales files are gone (outputs written empty)
    skipped_unchanged: int = 0  # (store, day) partitions whose inputs and outputs were already in place
    sales_lines: int = 0  # curated sale lines read
    forecasts_recomputed: int = 0  # stores whose forecast (and demand columns) were recomputed
    stock_rows: int = 0  # stock_current rows written
    manifests_added: int = 0  # dumps added to data_quality
    outputs_written: dict[str, int] = field(default_factory=dict)  # output name -> files written
    paths: list[str] = field(default_factory=list)  # every object written (not in to_json: can be long)
    timings_s: dict[str, float] = field(default_factory=dict)
    full_rebuild: bool = False  # no usable state (first run, or the definitions changed)

    def to_json(self) -> dict:
        return {"stores": self.stores, "partitions_recomputed": self.partitions_recomputed,
                "partitions_emptied": self.partitions_emptied, "skipped_unchanged": self.skipped_unchanged,
                "sales_lines": self.sales_lines, "forecasts_recomputed": self.forecasts_recomputed,
                "stock_rows": self.stock_rows, "manifests_added": self.manifests_added,
                "outputs_written": dict(sorted(self.outputs_written.items())),
                "files_written": len(self.paths), "full_rebuild": self.full_rebuild,
                "state": STATE_PATH, "timings_s": self.timings_s}


# --- the state --------------------------------------------------------------------------------------------

@dataclass
class StoreState:
    sales: dict[str, dict[str, str]] = field(default_factory=dict)  # day -> {file name: "size/etag"}
    dumps: dict[str, dict] = field(default_factory=dict)  # dump id -> {snapshot_at, items, vendors}
    demand_key: str = ""  # what the store's forecast and demand columns were computed from

    def to_json(self) -> dict:
        return {"sales": self.sales, "dumps": self.dumps, "demand_key": self.demand_key}


def load_state(lake: Lake) -> tuple[dict[str, StoreState], bool]:
    """(state per store, usable). A missing, unreadable or outdated state means a full rebuild."""
    try:
        raw = json.loads(lake.get_bytes(STATE_PATH))
    except FileNotFoundError:
        return {}, False
    except ValueError:
        return {}, False
    if raw.get("version") != STATE_VERSION or raw.get("aggregates_version") != AGGREGATES_VERSION:
        return {}, False
    return {s: StoreState(v.get("sales", {}), v.get("dumps", {}), v.get("demand_key", ""))
            for s, v in raw.get("stores", {}).items()}, True


def _save_state(lake: Lake, stores: dict[str, StoreState], now: datetime) -> None:
    body = {"version": STATE_VERSION, "aggregates_version": AGGREGATES_VERSION, "updated_at": utc_iso(now),
            "stores": {s: stores[s].to_json() for s in sorted(stores)}}
    lake.put_bytes(STATE_PATH, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _signature(o: LakeObject) -> str:
    return f"{o.size}/{o.etag}"


# --- writing outputs ------------------------------------------------------------------------------------

_PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": False, "store_schema": False}
"""For the many small files: snappy and plain encoding cost a third of zstd + dictionaries per file (measured on
365 daily files of ~800 rows: 0.26 s against 0.42 s) for a few KB more each. The Parquet logical types carry
every column's type, so the Arrow schema is not stored again."""


class _Publisher:
    """Writes Parquet into a staging folder and publishes it into the lake, in the background.

    DuckDB releases the GIL while it computes, so one writer thread overlaps with it; on the folder lake a
    second writer only competed for the GIL (writing hundreds of small files is mostly Python overhead per
    file), so there is one. It writes a batch's files, then hands them to ``Lake.put_files``, which keeps
    several uploads in flight on a remote lake and renames them in on the folder lake. Tables of at
    most ``max_pending_bytes`` wait in the queue: when writing falls behind computing, the computing waits
    rather than piling tables up in memory. Rows keep their order and the options are fixed, so the same
    table gives the same bytes.
    """

    def __init__(self, lake: Lake, stage: Path, result: AggregateResult, max_pending_bytes: int = 96 << 20) -> None:
        self.lake, self.stage, self.result = lake, stage, result
        self.stage.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggregates-write")
        self.pending: list[tuple[Future, int]] = []
        self.max_pending_bytes = max_pending_bytes
        self.lock = threading.Lock()
        self.counter = 0

    def _local(self) -> Path:
        with self.lock:
            self.counter += 1
            return self.stage / f"{self.counter:09d}.parquet"

    def _queue(self, nbytes: int, fn: Callable[..., None], *args: object) -> None:
        while self.pending and sum(n for _, n in self.pending) + nbytes > self.max_pending_bytes:
            self.pending.pop(0)[0].result()  # re-raises a failed write
        self.pending.append((self.pool.submit(fn, *args), nbytes))

    def submit(self, output: str, files: list[tuple[str, pa.Table]]) -> None:
        """Write each (lake path, table) as one file."""
        if files:
            self._queue(sum(t.nbytes for _, t in files), self._write, output, files)

    def submit_days(self, output: str, store: str, table: pa.Table, empty_days: list[str]) -> None:
        """Write ``table`` (sorted by date) as ``aggregates/<output>/store=<store>/date=<d>/part-0.parquet``, one
        file per date, and an empty file for each of ``empty_days``."""
        self._queue(table.nbytes, self._write_days, output, store, table, empty_days)

    def _write_days(self, output: str, store: str, table: pa.Table, empty_days: list[str]) -> None:
        import pyarrow.compute as pc

        files = []
        table = table.cast(arrow_schema(output))  # once, not per day
        if table.num_rows:
            counts = pc.value_counts(table.column("date"))  # runs, in order: the table is sorted by date
            offset = 0
            for day, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
                files.append((day.isoformat(), table.slice(offset, n)))
                offset += n
        empty = arrow_schema(output).empty_table()
        files += [(day, empty) for day in empty_days]
        self._write(output, [(f"aggregates/{output}/store={store}/date={day}/part-0.parquet", t)
                             for day, t in sorted(files, key=lambda f: f[0])])

    def _write(self, output: str, files: list[tuple[str, pa.Table]]) -> None:
        import pyarrow.parquet as pq

        schema = arrow_schema(output)
        written = []
        try:
            for path, table in files:
                written.append((path, self._local()))
                pq.write_table(table if table.schema == schema else table.cast(schema), written[-1][1],
                               **_PARQUET_OPTIONS)
            self.lake.put_files(written, consume=True)
        finally:  # what a failure left behind (the lake took the others)
            for _, local in written:
                local.unlink(missing_ok=True)
        with self.lock:
            self.result.paths.extend(p for p, _ in files)
            self.result.outputs_written[output] = self.result.outputs_written.get(output, 0) + len(files)

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        for f, _ in pending:
            f.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)


# --- the use case ----------------------------------------------------------------------------------------

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


def _files_sql(paths: list[Path], *, hive: bool = False) -> str:
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    extra = ", hive_partitioning = true, hive_types = {'date': DATE}" if hive else ", hive_partitioning = false"
    return f"read_parquet([{files}], union_by_name = true{extra})"


def _history_start(days: list[str]) -> date:
    """The first day of the forecast's history: 16 weeks back from the last day with sales, or the first."""
    last = date.fromisoformat(days[-1])
    return max(date.fromisoformat(days[0]), last - timedelta(days=HISTORY_DAYS - 1))


class _Run:
    def __init__(self, *, lake: Lake, stock: StockStore, work: Path, now: datetime, memory_limit: str, threads: int,
                 batch_bytes: int, progress: ProgressFn | None) -> None:
        self.lake, self.stock, self.work, self.now = lake, stock, work, now
        self.batch_bytes = batch_bytes
        self.say = progress or (lambda _msg: None)
        self.result = AggregateResult()
        self.con = _connect(work, memory_limit, threads)
        self.publisher = _Publisher(lake, work / "stage", self.result)

    def close(self) -> None:
        try:
            self.publisher.close()
        finally:
            self.con.close()

    # -- discovery ---------------------------------------------------------------------------------------
    def committed_dumps(self) -> dict[str, set[str]]:
        """store -> dump ids that have a manifest (the ingest's commit marker)."""
        out: dict[str, set[str]] = {}
        for o in self.lake.list("manifests/"):
            parts = o.path.split("/")
            if len(parts) != 3 or not parts[1].startswith("store=") or not parts[2].endswith(".json"):
                continue
            out.setdefault(parts[1][len("store="):], set()).add(parts[2][:-len(".json")])
        return out

    # -- data quality ------------------------------------------------------------------------------------
    def add_manifests(self, store: str, st: StoreState, dump_ids: Iterable[str]) -> None:
        import pyarrow as pa

        for dump_id in sorted(set(dump_ids) - set(st.dumps)):
            manifest = json.loads(self.lake.get_bytes(f"manifests/store={store}/{dump_id}.json"))
            rows = data_quality_rows(manifest)
            for r in rows:
                r["date"] = date.fromisoformat(r["date"])
                r["snapshot_at"] = _parse_ts(r["snapshot_at"])
                r["ingested_at"] = _parse_ts(r["ingested_at"])
            table = pa.Table.from_pylist(rows, schema=arrow_schema("data_quality"))
            day = manifest["snapshot_at"][:10]
            self.publisher.submit("data_quality",
                                  [(f"aggregates/data_quality/store={store}/date={day}/{dump_id}.parquet", table)])
            st.dumps[dump_id] = {"snapshot_at": manifest["snapshot_at"],
                                 "items": self._snapshot_path(manifest, "items", day),
                                 "vendors": self._snapshot_path(manifest, "vendors", day)}
            self.result.manifests_added += 1

    def _snapshot_path(self, manifest: dict, table: str, day: str) -> str | None:
        """The curated file of a snapshot table written by this dump, or None (an empty or absent table)."""
        store, dump_id = manifest["store_id"], manifest["dump_id"]
        prefix = f"curated/{table}/store={store}/"
        if "outputs" in manifest:
            return next((p for p in manifest["outputs"] if p.startswith(prefix)), None)
        path = f"{prefix}snapshot={day}/{dump_id}.parquet"
        return path if self.lake.head(path) is not None else None

    # -- daily sales ---------------------------------------------------------------------------------------
    def sales_partitions(self, store: str, st: StoreState, committed: set[str]) -> tuple[dict, list, list]:
        """(files per day now, days to recompute, days whose files are all gone)."""
        now_files: dict[str, dict[str, str]] = {}
        for o in self.lake.list(f"curated/sales/store={store}/"):
            parts = o.path.split("/")
            if len(parts) != 5 or not parts[3].startswith("date=") or not o.path.endswith(".parquet"):
                continue
            name = parts[4]
            if dump_id_of_output(name) not in committed:
                continue  # a dump whose manifest is not written yet: its ingest is not committed
            now_files.setdefault(parts[3][len("date="):], {})[name] = _signature(o)
        have = {name: self._output_days(name, store) for name in ("sales_daily_sku", "sales_daily_category")}
        changed = sorted(d for d, files in now_files.items()
                         if st.sales.get(d) != files or any(d not in days for days in have.values()))
        gone = sorted(set(st.sales) - set(now_files))
        self.result.skipped_unchanged += len(now_files) - len(changed)
        return now_files, changed, gone

    def _output_days(self, output: str, store: str) -> set[str]:
        days = set()
        for o in self.lake.list(f"aggregates/{output}/store={store}/"):
            parts = o.path.split("/")
            if len(parts) == 5 and parts[3].startswith("date=") and parts[4] == "part-0.parquet":
                days.add(parts[3][len("date="):])
        return days

    def _batches(self, days: list[str], files: dict[str, dict[str, str]]) -> Iterable[list[str]]:
        batch: list[str] = []
        size = 0
        for d in days:
            day_bytes = sum(int(sig.split("/", 1)[0]) for sig in files[d].values())
            if batch and size + day_bytes > self.batch_bytes:
                yield batch
                batch, size = [], 0
            batch.append(d)
            size += day_bytes
        if batch:
            yield batch

    def compute_days(self, store: str, st: StoreState, files: dict[str, dict[str, str]], days: list[str],
                     history_from: str) -> pa.Table | None:
        """Recompute the daily outputs of ``days``; returns their (sku, date, units) from ``history_from`` on,
        for the forecast (so it need not read back the files it has just written)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        fresh = []
        for batch in self._batches(days, files):
            sales_paths = [f"curated/sales/store={store}/date={d}/{name}" for d in batch for name in sorted(files[d])]
            dump_ids = sorted({dump_id_of_output(p) for p in sales_paths})
            item_paths = [st.dumps[d]["items"] for d in dump_ids if st.dumps.get(d, {}).get("items")]
            with self.lake.local_copy(sales_paths + item_paths, into=self.work) as local:
                sales_local, items_local = local[:len(sales_paths)], local[len(sales_paths):]
                self.con.execute(f"CREATE OR REPLACE TEMP VIEW sales_in AS SELECT store_id, sku, qty, unit_price, "
                                 f"dump_id, date FROM {_files_sql(sales_local, hive=True)}")
                if items_local:
                    self.con.execute("CREATE OR REPLACE TEMP VIEW items_in AS SELECT dump_id, sku, category, "
                                     f"unit_price, unit_cost, snapshot_at FROM {_files_sql(items_local)}")
                else:
                    self.con.execute("CREATE OR REPLACE TEMP VIEW items_in AS SELECT NULL::VARCHAR AS dump_id, "
                                     "NULL::VARCHAR AS sku, NULL::VARCHAR AS category, NULL::DECIMAL(18,4) AS "
                                     "unit_price, NULL::DECIMAL(18,4) AS unit_cost, NULL::TIMESTAMPTZ AS "
                                     "snapshot_at WHERE false")
                self.con.execute("CREATE OR REPLACE TEMP TABLE daily AS "
                                 + with_margin_sql(f"({sales_daily_sku_sql('sales_in', 'items_in')})"))
            sku_table = self.con.sql("SELECT * FROM daily ORDER BY date, sku").to_arrow_table()
            cat_table = self.con.sql(sales_daily_category_sql("daily")).to_arrow_table()
            self.con.execute("DROP TABLE daily")
            self.result.sales_lines += int(pc.sum(sku_table.column("lines")).as_py() or 0)
            self._publish_days(store, batch, {"sales_daily_sku": sku_table, "sales_daily_category": cat_table})
            self.result.partitions_recomputed += len(batch)
            recent = pc.greater_equal(sku_table.column("date"), pa.scalar(date.fromisoformat(history_from)))
            fresh.append(sku_table.filter(recent).select(["sku", "date", "units"]))
        return pa.concat_tables(fresh) if fresh else None

    def _publish_days(self, store: str, days: list[str], tables: dict[str, pa.Table]) -> None:
        import pyarrow.compute as pc

        for output, table in tables.items():
            present = {d.isoformat() for d in pc.unique(table.column("date")).to_pylist()}
            self.publisher.submit_days(output, store, table, sorted(set(days) - present))

    def empty_days(self, store: str, days: list[str]) -> None:
        import pyarrow as pa

        schemas = {o: arrow_schema(o) for o in ("sales_daily_sku", "sales_daily_category")}
        self._publish_days(store, days, {o: pa.Table.from_pylist([], schema=s) for o, s in schemas.items()})
        self.result.partitions_recomputed += len(days)
        self.result.partitions_emptied += len(days)

    # -- demand, forecast, stock -----------------------------------------------------------------------------
    def _read_lake_parquet(self, path: str) -> pa.Table | None:
        try:
            return read_parquet_bytes(self.lake.get_bytes(path))
        except FileNotFoundError:
            return None

    def _snapshot_table(self, path: str | None, columns: list[str], empty: pa.Schema) -> pa.Table:
        table = self._read_lake_parquet(path) if path else None
        return table.select(columns) if table is not None else empty.empty_table()

    def stock_current(self, store: str, st: StoreState, days: list[str], fresh: pa.Table | None,
                      recomputed: set[str]) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from shared.core.forecast import cover_and_reorder

        dumps = sorted(st.dumps.items(), key=lambda kv: (kv[1]["snapshot_at"], kv[0]))
        latest = dumps[-1][0] if dumps else ""
        items = self._snapshot_table(
            dumps[-1][1].get("items") if dumps else None,
            ["sku", "name", "category", "vendor_id", "active", "reorder_point", "reorder_qty"],
            pa.schema([("sku", pa.string()), ("name", pa.string()), ("category", pa.string()),
                       ("vendor_id", pa.string()), ("active", pa.bool_()), ("reorder_point", pa.int64()),
                       ("reorder_qty", pa.int64())]))
        vendors_path = next((info["vendors"] for _, info in reversed(dumps) if info.get("vendors")), None)
        vendors = self._snapshot_table(vendors_path, ["vendor_id", "lead_time_days"],
                                       pa.schema([("vendor_id", pa.string()), ("lead_time_days", pa.int64())]))
        docs = self.stock.stock(store)
        stock = pa.table({"sku": pa.array([d.sku for d in docs], pa.string()),
                          "on_hand": pa.array([d.on_hand for d in docs], pa.int64())})

        # Everything _demand depends on: the sales, the latest dump (its items and snapshot day) and the skus it
        # covers. The stock store can count skus the dump's items lack (a receipt for a new sku): its rows get a
        # forecast of their own, so a change in those skus recomputes the demand, as a full run would.
        skus = sorted({s for col in (items.column("sku"), stock.column("sku")) for s in col.to_pylist()
                       if s is not None})
        key = hashlib.sha256(json.dumps([AGGREGATES_VERSION, latest, st.sales, skus],
                                        sort_keys=True).encode()).hexdigest()
        demand, sales_through = None, None
        if key == st.demand_key:  # same sales, dumps and skus as when the demand was computed: reuse it
            demand, sales_through = self._previous_demand(store)
        if demand is None:
            snapshot = _parse_ts(dumps[-1][1].get("snapshot_at")) if dumps else None
            demand, sales_through = self._demand(store, days, [items.column("sku"), stock.column("sku")], fresh,
                                                 recomputed, snapshot.date() if snapshot else None)
            st.demand_key = key
        self.con.register("items_t", items)
        self.con.register("stock_t", stock)
        self.con.register("vendors_t", vendors)
        self.con.register("demand_t", demand)
        try:
            table = self.con.sql(stock_current_sql(store_id=store, items="items_t", stock="stock_t",
                                                   vendors="vendors_t", demand="demand_t",
                                                   default_lead_time=DEFAULT_LEAD_TIME_DAYS)).to_arrow_table()
        finally:
            for name in ("items_t", "stock_t", "vendors_t", "demand_t"):
                self.con.unregister(name)

        on_hand = table.column("on_hand")
        daily = table.column("forecast_daily")
        known = pc.and_(pc.is_valid(on_hand), pc.is_valid(daily)).to_numpy(zero_copy_only=False)
        cover, order = cover_and_reorder(
            on_hand.fill_null(0).to_numpy(), daily.fill_null(0.0).to_numpy(),
            table.column("lead_time_days").to_numpy(), table.column("reorder_qty").fill_null(0).to_numpy())
        cover_ok = known & np.isfinite(cover)
        n = table.num_rows
        same = np.zeros(n, np.int64)  # indexes into a one-value array: the value repeated n times
        table = (table
                 .append_column("days_of_cover", pa.array(cover, pa.float64(), mask=~cover_ok))
                 .append_column("suggested_order_qty", pa.array(order, pa.int64(), mask=~known))
                 .append_column("sales_through", pa.array([sales_through], pa.date32()).take(same))
                 .append_column("as_of", pa.array([self.now], pa.timestamp("us", tz="UTC")).take(same)))
        table = table.select(list(OUTPUTS["stock_current"].column_names))
        self.publisher.submit("stock_current", [(f"aggregates/stock_current/store={store}/part-0.parquet", table)])
        self.result.stock_rows += n

    def _previous_demand(self, store: str) -> tuple[pa.Table | None, date | None]:
        prev = self._read_lake_parquet(f"aggregates/stock_current/store={store}/part-0.parquet")
        if prev is None or self.lake.head(f"aggregates/forecast/store={store}/part-0.parquet") is None:
            return None, None
        through = prev.column("sales_through")
        sales_through = through[0].as_py() if prev.num_rows else None
        return prev.select(["sku", "units_28d", "forecast_daily", "forecast_14d"]), sales_through

    def _demand(self, store: str, days: list[str], sku_columns: list, fresh: pa.Table | None,
                recomputed: set[str], snapshot_day: date | None = None) -> tuple[pa.Table, date | None]:
        """(sku, units_28d, forecast_daily, forecast_14d) from the last 16 weeks of sales_daily_sku, and the last
        day of sales history; writes the store's forecast. The days recomputed in this run come from ``fresh``
        (their files may still be in the writer's queue), the others are read back from the lake."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from shared.core.forecast import forecast_demand

        skus = set()
        for col in sku_columns:
            skus.update(v for v in col.to_pylist() if v is not None)
        empty = pa.schema([("sku", pa.string()), ("units_28d", pa.int64()), ("forecast_daily", pa.float64()),
                           ("forecast_14d", pa.float64())])
        if not days:
            return empty.empty_table(), None
        last = date.fromisoformat(days[-1])
        first = _history_start(days)
        window = [d for d in days if d >= first.isoformat()]
        parts = [fresh] if fresh is not None else []
        paths = [f"aggregates/sales_daily_sku/store={store}/date={d}/part-0.parquet" for d in window
                 if d not in recomputed]
        if paths:
            with self.lake.local_copy(paths, into=self.work) as local:
                parts.append(self.con.sql(daily_units_sql(_files_sql(local), first, last)).to_arrow_table())
        units = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        skus.update(pc.unique(units.column("sku")).to_pylist())
        order = sorted(skus)
        n_days = (last - first).days + 1
        history = np.zeros((len(order), n_days))
        rows = pc.index_in(units.column("sku"), value_set=pa.array(order, pa.string())).to_numpy()
        cols = pc.days_between(pa.scalar(first, pa.date32()), units.column("date")).to_numpy()
        history[rows, cols] = units.column("units").to_numpy()
        units_28d = history[:, -WINDOW_DAYS:].sum(axis=1).astype(np.int64)
        forecast_daily = forecast_14d = pa.nulls(len(order), pa.float64())
        if n_days >= 7 and order:
            f = forecast_demand(history, first)
            forecast_daily = pa.array(f.mean.mean(axis=1))
            forecast_14d = pa.array(f.mean[:, :FORECAST_SUM_DAYS].sum(axis=1))
            horizon = f.mean.shape[1]
            dates = pa.array([f.first_day + timedelta(days=h) for h in range(horizon)], pa.date32())
            n = len(order) * horizon
            fc = pa.table({
                "store_id": pa.array([store], pa.string()).take(np.zeros(n, dtype=np.int64)),
                "sku": pa.array(order, pa.string()).take(np.repeat(np.arange(len(order)), horizon)),
                "date": dates.take(np.tile(np.arange(horizon), len(order))),
                "mean": pa.array(f.mean.ravel()), "lower": pa.array(f.lower.ravel()),
                "upper": pa.array(f.upper.ravel())})
            self.publisher.submit("forecast", [(f"aggregates/forecast/store={store}/part-0.parquet", fc)])
            self._sales_check(store, history, first, last, order, snapshot_day)
        self.result.forecasts_recomputed += 1
        demand = pa.table({"sku": pa.array(order, pa.string()), "units_28d": pa.array(units_28d, pa.int64()),
                           "forecast_daily": forecast_daily, "forecast_14d": forecast_14d})
        return demand, last


    def _sales_check(self, store: str, history: np.ndarray, first: date, last: date, order: list[str],
                     snapshot_day: date | None) -> None:
        """The last complete day against its one-day-ahead interval (for the UnusualSales alert). The dump's
        own snapshot day may be partial (a dump taken at noon), so the day checked is at most the day before."""
        import numpy as np
        import pyarrow as pa

        from shared.core.forecast import ForecastConfig, one_step_check

        day = last if snapshot_day is None or last < snapshot_day else snapshot_day - timedelta(days=1)
        upto = (day - first).days + 1  # history columns through the day checked
        if upto < 8:  # one_step_check needs a week before the day it checks
            return
        # z = 3 (about 1 day in 700 above the upper bound by chance) rather than the forecast's 1.96: this
        # interval decides pages, and a chain has thousands of sku-days a day.
        expected, lower, upper = one_step_check(history[:, :upto], first, ForecastConfig(z=CHECK_Z))
        units = history[:, upto - 1]
        keep = (units > 0) | (expected > 0)
        n = int(keep.sum())
        table = pa.table({
            "store_id": pa.array([store] * n, pa.string()),
            "sku": pa.array(np.array(order, dtype=object)[keep], pa.string()),
            "date": pa.array([day] * n, pa.date32()),
            "units": pa.array(units[keep].astype(np.int64), pa.int64()),
            "expected": pa.array(expected[keep]), "lower": pa.array(lower[keep]), "upper": pa.array(upper[keep])})
        self.publisher.submit("sales_check", [(f"aggregates/sales_check/store={store}/part-0.parquet", table)])


def compute_aggregates(
    *,
    lake: Lake,
    stock: StockStore,
    telemetry: Telemetry,
    scratch: Path,
    now: datetime | None = None,
    memory_limit: str = "512MB",
    threads: int = 2,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
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

    state, usable = load_state(lake)
    work = Path(tempfile.mkdtemp(prefix="aggregates-", dir=scratch))
    run = _Run(lake=lake, stock=stock, work=work, now=now, memory_limit=memory_limit, threads=threads,
               batch_bytes=batch_bytes, progress=progress)
    result = run.result
    result.full_rebuild = not usable
    try:
        committed = run.committed_dumps()
        stores = sorted(set(committed) | set(stock.stores()))
        result.stores = stores
        lap("discover")
        for store in stores:
            st = state.setdefault(store, StoreState())
            run.add_manifests(store, st, committed.get(store, set()))
            lap("data_quality")
            files, changed, gone = run.sales_partitions(store, st, committed.get(store, set()))
            lap("list")
            days = sorted(files)
            if changed or gone:
                run.say(f"{store}: {len(changed)} day(s) to recompute, {len(gone)} gone, "
                        f"{len(files) - len(changed)} unchanged")
            fresh = run.compute_days(store, st, files, changed, _history_start(days).isoformat()) if days else None
            if gone:
                run.empty_days(store, gone)
            st.sales = files
            lap("sales_daily")
            run.stock_current(store, st, days, fresh, set(changed))
            lap("stock_forecast")
        run.publisher.drain()
        lap("write")
        _save_state(lake, state, now)  # last: a crash before this only means redoing work
        lap("state")
    finally:
        run.close()
        shutil.rmtree(work, ignore_errors=True)
    timings["total"] = round(time.monotonic() - started, 3)
    result.timings_s = timings
    telemetry.event("AggregatesComputed", stores=len(result.stores),
                    partitionsRecomputed=result.partitions_recomputed, skippedUnchanged=result.skipped_unchanged,
                    partitionsEmptied=result.partitions_emptied, salesLines=result.sales_lines,
                    forecastsRecomputed=result.forecasts_recomputed, stockRows=result.stock_rows,
                    manifestsAdded=result.manifests_added, filesWritten=len(result.paths),
                    fullRebuild=result.full_rebuild, durationS=timings["total"])
    telemetry.metric("aggregates_partitions_recomputed", result.partitions_recomputed)
    telemetry.metric("aggregates_sales_lines", result.sales_lines)
    telemetry.metric("aggregates_duration_s", timings["total"])
    return result


__all__ = ["AggregateResult", "StoreState", "compute_aggregates", "load_state"]
