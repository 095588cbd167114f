"""Benchmark: the aggregates run (`compute_aggregates`) against a plain pandas groupby on the same data.

    python bench/aggregate.py [--lines 50000000] [--stores 50] [--days 365] [--skus 5000] [--out bench/out]
                              [--paths ours,pandas] [--pandas-lines N] [--keep]

**The lake.** A curated zone is built directly (numpy → pyarrow → delta-rs), as the Delta tables and with the
schemas the ingestion writes: for each of ``--stores`` stores one dump whose sale lines span ``--days`` days,
appended (one commit per store) to ``curated/sales`` (partitioned by store_id and month, with the UTC ``date``),
``curated/items`` and ``curated/vendors`` (partitioned by store_id), and the dump's manifest with its
``days_written``. Sales follow a Zipf law over ``--skus`` skus (a = 1.1), busier Fridays and Saturdays, 1-3
units a line; items carry a category, a price and a cost (2 % of items without a cost, 5 % of lines without a
price: the item's is used). It is cached under ``--out`` keyed by its parameters and this file's generator
version; reruns reuse it.

**The two paths**, each in its own process, one after the other, on the same files (in the page cache):

* **ours**: ``compute_aggregates`` — the first, full run on that lake (every day is new): it writes the Delta
  tables sales_daily_sku and sales_daily_category, data_quality, forecast, sales_check and stock_current (the
  stock store is an empty embedded one). ``memory_limit`` 512 MB, 2 threads.
* **pandas**: what a typical engineer would write: ``pd.read_parquet`` of the curated sales folder (the
  ``store_id`` partition column comes with it; the folder holds exactly the table's files, as nothing was ever
  removed from these tables — ``DeltaTable.to_pandas()`` would be the usual call, but reading Delta tables
  through pyarrow's datasets aborts processes at exit here) and of the items, the decimals as float, a merge
  on (store, sku), ``groupby(...).agg`` per (store, date, sku) and per (store, date, category), and
  ``to_parquet(partition_cols=["store_id", "date"])`` — the same two outputs, as Hive-partitioned Parquet.

Wall time, CPU time and peak RSS (the process's VmHWM, sampled every 50 ms: ``harness.measure``) are
reported with rows/s and the speed-up; the reach targets are ≥ 3× faster than pandas and ≤ 1 GB peak RSS
for ours. The correctness check compares both outputs: rows, and units, lines, revenue, cost and margin per
store, of both aggregates. If pandas needs more memory than the machine can give (``--pandas-max-gb``,
default 20 GB, estimated from a measured 2M-line run), it runs on the largest size that fits
(``--pandas-lines``) and the report says so. Markdown to stdout, progress to stderr; exit 0 unless a run
crashed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import harness  # bench/harness.py, beside this file
from harness import ROOT, mb, measure, say

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
GENERATOR_VERSION = 2  # bump when make_lake() changes what it writes (2: Delta tables)
SEED = 42
END = date(2026, 11, 26)
TARGET_SPEEDUP = 3.0
TARGET_RSS_MB = 1024.0
CATEGORIES = ("Dairy", "Bakery", "Produce", "Beverages", "Snacks", "Household", "Frozen", "Personal Care")
WEEKDAY_WEIGHTS = (0.95, 1.0, 1.0, 1.05, 1.2, 1.4, 0.7)


# --- the synthetic curated zone -------------------------------------------------------------------------------

def lake_dir(out: Path, lines: int, stores: int, days: int, skus: int) -> Path:
    return out / f"agg-lake-n{lines}-s{stores}-d{days}-k{skus}-seed{SEED}-v{GENERATOR_VERSION}"


def make_lake(root: Path, lines: int, stores: int, days: int, skus: int) -> dict:
    """Write the curated zone under ``root/lake`` (if not cached) and return its description."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    marker = root / "complete.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        say(f"using cached lake {root.name} ({info['lines']:,} sale lines, {info['files']:,} sales files)")
        return info
    shutil.rmtree(root, ignore_errors=True)
    lake = root / "lake"
    say(f"building a curated zone: {lines:,} sale lines, {stores} stores x {days} days, {skus:,} skus ...")
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    start = END - timedelta(days=days - 1)
    snapshot_at = datetime.combine(END, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
    snap = snapshot_at.isoformat().replace("+00:00", "Z")

    # The chain's catalogue: sku, category, price, cost (2 % unknown), reorder settings, vendor.
    numbers = rng.choice(99_999, size=skus, replace=False) + 1
    cat_idx = rng.integers(0, len(CATEGORIES), size=skus)
    sku_names = np.array([f"{CATEGORIES[c][0]}-{n:05d}" for c, n in zip(cat_idx, numbers, strict=True)])
    price = np.round(np.clip(rng.lognormal(1.0, 0.7, size=skus), 0.59, 39.99), 2)
    cost = np.round(price * rng.uniform(0.45, 0.75, size=skus), 2)
    cost_known = rng.random(skus) >= 0.02
    popularity = (np.arange(1, skus + 1, dtype=float)) ** -1.1
    rng.shuffle(popularity)
    sku_cdf = np.cumsum(popularity / popularity.sum())
    reorder_point = np.rint(40 * (popularity / popularity.max()) ** 0.4).astype(np.int64)
    reorder_qty = np.maximum(6, np.ceil(reorder_point * 1.5 / 6) * 6).astype(np.int64)
    vendor_ids = np.array([f"V{c + 1:03d}" for c in cat_idx])
    dec = pa.decimal128(18, 4)

    per_store = np.full(stores, lines // stores)
    per_store[: lines - per_store.sum()] += 1
    day_w = np.array([WEEKDAY_WEIGHTS[(start + timedelta(days=d)).weekday()] for d in range(days)])
    day_names = np.array([(start + timedelta(days=d)).isoformat() for d in range(days)])
    month_names = np.array([d[:7] for d in day_names])
    for s in range(stores):
        store = f"B{s + 1:03d}"
        dump_id = hashlib.sha256(f"{store}-{SEED}-{lines}".encode()).hexdigest()[:24]
        n = int(per_store[s])
        day = np.sort(rng.choice(days, size=n, p=day_w / day_w.sum()))
        secs = rng.integers(8 * 3600, 22 * 3600, size=n)
        order = np.lexsort((secs, day))
        day, secs = day[order], secs[order]
        item = np.minimum(np.searchsorted(sku_cdf, rng.random(n)), skus - 1)
        qty = np.minimum(rng.geometric(0.6, size=n), 12).astype(np.int64)
        line_price = price[item].copy()
        discounted = rng.random(n) < 0.05
        line_price[discounted] = np.round(line_price[discounted] * 0.8, 2)
        no_price = rng.random(n) < 0.05
        # Baskets of 1-4 lines: line_no restarts at each new sale.
        new_sale = rng.random(n) < 0.45
        new_sale[0] = True
        sale_no = np.cumsum(new_sale)
        starts = np.flatnonzero(new_sale)
        line_no = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n))) + 1
        epoch = (np.datetime64(start, "us") + day.astype("timedelta64[D]") + secs.astype("timedelta64[s]"))
        sale_ids = pc.binary_join_element_wise(pa.scalar(f"{store}-"), pc.utf8_lpad(
            pc.cast(pa.array(sale_no), pa.string()), 8, "0"), "")
        # Exact decimals: whole cents divided back (float → decimal would round at random places).
        unit_price = pc.if_else(pa.array(no_price), pa.nulls(n, dec), _money(line_price, dec))
        table = pa.table({
            "store_id": pa.array([store] * n, pa.string()),
            "sale_id": sale_ids,
            "line_no": pa.array(line_no.astype(np.int64)),
            "sku": pa.array(sku_names[item]),
            "qty": pa.array(qty),
            "unit_price": unit_price,
            "sold_at": pa.array(epoch, pa.timestamp("us", tz="UTC")),
            "flags": pa.nulls(n, pa.string()),
            "dump_id": pa.array([dump_id] * n, pa.string()),
            "snapshot_at": pa.array([snapshot_at] * n, pa.timestamp("us", tz="UTC")),
            "date": pa.array(np.datetime64(start, "D") + day.astype("timedelta64[D]"), pa.date32()),
            "month": pa.array(month_names[day]),
        })
        write_deltalake(lake / "curated/sales", table, mode="append", partition_by=["store_id", "month"])
        counts = np.bincount(day, minlength=days)
        days_written = {day_names[d]: int(counts[d]) for d in range(days) if counts[d]}
        # Items, vendors and the manifest of the store's dump.
        items = pa.table({
            "store_id": pa.array([store] * skus), "sku": pa.array(sku_names),
            "name": pa.array([f"Item {x}" for x in sku_names]), "category": pa.array(np.array(CATEGORIES)[cat_idx]),
            "vendor_id": pa.array(vendor_ids),
            "unit_cost": pc.if_else(pa.array(cost_known), _money(cost, dec), pa.nulls(skus, dec)),
            "unit_price": _money(price, dec), "reorder_point": pa.array(reorder_point),
            "reorder_qty": pa.array(reorder_qty), "active": pa.array(np.ones(skus, bool)),
            "flags": pa.nulls(skus, pa.string()), "dump_id": pa.array([dump_id] * skus),
            "snapshot_at": pa.array([snapshot_at] * skus, pa.timestamp("us", tz="UTC"))})
        vendors = pa.table({
            "store_id": pa.array([store] * len(CATEGORIES)),
            "vendor_id": pa.array([f"V{c + 1:03d}" for c in range(len(CATEGORIES))]),
            "name": pa.array([f"{c} Supplier" for c in CATEGORIES]),
            "email": pa.array([f"orders@{c.lower().replace(' ', '')}.example.com" for c in CATEGORIES]),
            "lead_time_days": pa.array(np.array([2, 1, 1, 5, 7, 9, 6, 8], dtype=np.int64)),
            "flags": pa.nulls(len(CATEGORIES), pa.string()), "dump_id": pa.array([dump_id] * len(CATEGORIES)),
            "snapshot_at": pa.array([snapshot_at] * len(CATEGORIES), pa.timestamp("us", tz="UTC"))})
        for name, t in (("items", items), ("vendors", vendors)):
            write_deltalake(lake / f"curated/{name}", t, mode="append", partition_by=["store_id"])
        manifest = {"store_id": store, "dump_id": dump_id, "snapshot_at": snap, "snapshot_source": "agent",
                    "ingested_at": snap, "tables": {
                        "items": {"input": skus, "curated": skus, "rejected": 0, "by_rule": {}},
                        "vendors": {"input": len(CATEGORIES), "curated": len(CATEGORIES), "rejected": 0,
                                    "by_rule": {}},
                        "sales": {"input": n, "curated": n, "rejected": 0, "by_rule": {}, "written": n,
                                  "already_in_lake": 0, "days_written": days_written}},
                    "generated_by": "bench/aggregate.py"}
        (lake / f"manifests/store={store}").mkdir(parents=True, exist_ok=True)
        (lake / f"manifests/store={store}/{dump_id}.json").write_text(json.dumps(manifest, indent=2))
        say(f"  {store}: {n:,} lines ({time.perf_counter() - t0:.0f} s)")
    sales_files = list((lake / "curated/sales").rglob("*.parquet"))
    info = {"lines": int(per_store.sum()), "stores": stores, "days": days, "skus": skus, "files": len(sales_files),
            "bytes": sum(p.stat().st_size for p in sales_files),
            "build_s": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info, indent=2))
    say(f"built in {info['build_s']} s: {info['files']:,} sales files, {info['bytes'] / 1e6:.0f} MB of Parquet")
    return info


def _money(values, dec):
    """Exact DECIMAL(18,4) from amounts in whole cents: the unscaled 128-bit integers built directly."""
    import numpy as np
    import pyarrow as pa

    unscaled = np.round(np.asarray(values, dtype=np.float64) * 100).astype(np.int64) * 100  # scale 4
    words = np.empty((len(unscaled), 2), dtype=np.int64)  # little-endian int128: low word, then sign word
    words[:, 0] = unscaled
    words[:, 1] = np.where(unscaled < 0, -1, 0)
    return pa.Array.from_buffers(dec, len(unscaled), [None, pa.py_buffer(words.tobytes())])


# --- the workers (each runs in its own process) -----------------------------------------------------------

def ours_worker(lake_root: Path, scratch: Path) -> dict:
    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.stock_sqlite import SqliteStockStore
    from shared.adapters.telemetry import MemoryTelemetry
    from shared.services.aggregates import compute_aggregates

    stock = SqliteStockStore(scratch / "stock.sqlite")
    try:
        result = compute_aggregates(lake=FolderLake(lake_root), stock=stock, telemetry=MemoryTelemetry(),
                                    scratch=scratch, progress=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        stock.close()
    return result.to_json()


def pandas_worker(lake_root: Path, out: Path, max_lines: int) -> dict:
    """The plain pandas way: read everything, merge with items, groupby, to_parquet with partition_cols."""
    import pandas as pd

    step = harness.Steps(digits=2)
    with step("read"):
        filters = None
        if max_lines:  # only when the full size would not fit in memory: the first stores, about max_lines lines
            stores = sorted(p.name.split("=", 1)[1] for p in (lake_root / "curated/sales").iterdir()
                            if p.name.startswith("store_id="))
            per_store = json.loads((lake_root.parent / "complete.json").read_text())["lines"] / len(stores)
            filters = [("store_id", "in", stores[: max(1, round(max_lines / per_store))])]
        sales = pd.read_parquet(lake_root / "curated/sales", columns=["sku", "qty", "unit_price", "store_id", "date"],
                                filters=filters)
        items = pd.read_parquet(lake_root / "curated/items",
                                columns=["store_id", "sku", "category", "unit_price", "unit_cost"])

    with step("merge"):
        sales["unit_price"] = sales["unit_price"].astype("float64")
        items["unit_price"] = items["unit_price"].astype("float64")
        items["unit_cost"] = items["unit_cost"].astype("float64")
        items = items.rename(columns={"unit_price": "item_price"})
        items["store_id"] = items["store_id"].astype(sales["store_id"].dtype)
        df = sales.merge(items, on=["store_id", "sku"], how="left")
        del sales
        df["revenue"] = df["qty"] * df["unit_price"].fillna(df["item_price"])
        df["cost"] = df["qty"] * df["unit_cost"]
        df["cost_known"] = df["unit_cost"].notna()

    with step("groupby"):
        sku = df.groupby(["store_id", "date", "sku"], observed=True, sort=True).agg(
            category=("category", "first"), units=("qty", "sum"), lines=("qty", "size"), revenue=("revenue", "sum"),
            cost=("cost", "sum"), costed=("cost_known", "sum")).reset_index()
        del df
        sku.loc[sku["costed"] != sku["lines"], "cost"] = float("nan")
        sku["margin"] = sku["revenue"] - sku["cost"]
        sku["revenue_with_cost"] = sku["revenue"].where(sku["cost"].notna())
        cat = sku.groupby(["store_id", "date", "category"], observed=True, sort=True).agg(
            units=("units", "sum"), lines=("lines", "sum"), skus=("sku", "size"), revenue=("revenue", "sum"),
            cost=("cost", "sum"), margin=("margin", "sum"), revenue_with_cost=("revenue_with_cost", "sum")
        ).reset_index()
        sku = sku.drop(columns=["costed", "revenue_with_cost"])

    with step("write"):
        # max_partitions: pyarrow refuses more than 1024 folders per write by default (the first thing one meets).
        sku.to_parquet(out / "sales_daily_sku", partition_cols=["store_id", "date"], index=False,
                       max_partitions=1 << 20)
        cat.to_parquet(out / "sales_daily_category", partition_cols=["store_id", "date"], index=False,
                       max_partitions=1 << 20)
    return {"timings_s": step.timings, "lines": int(sku["lines"].sum()), "sku_rows": len(sku),
            "category_rows": len(cat)}


# --- running and checking --------------------------------------------------------------------------------------

def run_path(path: str, lake_root: Path, work: Path, pandas_lines: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix=f"{path}-", dir=work))
    shutil.rmtree(lake_root / "aggregates", ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", path, str(lake_root), str(scratch),
           str(pandas_lines)]
    say(f"running {path} ...")
    m = measure(cmd)
    run = {"path": path, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_kb": m.largest_kb,
           "tree_peak_kb": m.tree_peak_kb, "maxrss_kb": m.maxrss_kb, "ok": m.returncode == 0,
           "scratch": scratch}
    if m.returncode != 0:
        run["error"] = f"exit {m.returncode}: {m.stderr[-3000:]}"
        say(f"  {path} FAILED: {run['error'][-800:]}")
        return run
    run["detail"] = json.loads(m.stdout)
    say(f"  {path}: {m.wall_s:.1f} s, CPU {m.cpu_s:.1f} s, peak RSS {mb(run['peak_kb']):.0f} MB")
    return run


def _totals_sql(source: str, category: bool) -> str:
    cols = ("sum(units), sum(lines), CAST(sum(revenue) AS DOUBLE), CAST(sum(cost) AS DOUBLE), "
            "CAST(sum(margin) AS DOUBLE), count(*)")
    if category:
        cols += ", sum(skus), CAST(sum(revenue_with_cost) AS DOUBLE)"
    return f"SELECT store_id, {cols} FROM {source} GROUP BY 1 ORDER BY 1"


def ours_totals(lake_root: Path, name: str) -> dict:
    """Per-store totals of our Delta output, read as every reader does (DeltaTables.query: delta-rs's engine)."""
    from shared.adapters.lake_folder import FolderLake
    from shared.services.engines import open_snapshots

    found = open_snapshots(FolderLake(lake_root)).read(_totals_sql("t", name.endswith("category")),
                                                  t=f"aggregates/{name}")
    return {r[0]: r[1:] for r in zip(*(c.to_pylist() for c in found.columns), strict=True)}


def pandas_totals(out: Path, name: str) -> dict:
    """Per-store totals of the pandas output (Hive-partitioned Parquet)."""
    import duckdb

    source = f"read_parquet('{out}/{name}/*/*/*.parquet', hive_partitioning = true, union_by_name = true)"
    return {r[0]: r[1:] for r in duckdb.sql(_totals_sql(source, name.endswith("category"))).fetchall()}


def compare(ours_lake: Path, pandas_out: Path, stores_limit: set[str] | None) -> list[str]:
    problems = []
    for name in ("sales_daily_sku", "sales_daily_category"):
        ours = ours_totals(ours_lake, name)
        theirs = pandas_totals(pandas_out, name)
        if stores_limit is not None:
            ours = {k: v for k, v in ours.items() if k in stores_limit}
        if set(ours) != set(theirs):
            problems.append(f"{name}: stores differ ({sorted(ours)[:3]}… vs {sorted(theirs)[:3]}…)")
            continue
        for store, a in ours.items():
            b = theirs[store]
            for label, x, y in zip(("units", "lines", "revenue", "cost", "margin", "rows", "skus",
                                    "revenue_with_cost"), a, b, strict=False):
                if x is None or y is None:
                    if x != y:
                        problems.append(f"{name} {store} {label}: {x} vs {y}")
                elif abs(float(x) - float(y)) > 1e-6 * max(1.0, abs(float(x))):
                    problems.append(f"{name} {store} {label}: ours {x} vs pandas {y}")
    return problems


def report(cmd: str, info: dict, ours: dict | None, pandas: dict | None, note: str,
           problems: list[str] | None) -> str:
    lines = info["lines"]
    pandas_lines = (pandas or {}).get("detail", {}).get("lines", lines)
    out = ["# Aggregates benchmark", "", harness.provenance(cmd), "",
           f"Curated zone: {lines:,} sale lines, {info['stores']} stores × {info['days']} days, {info['skus']:,} "
           f"skus (Zipf), Delta tables: {info['files']:,} sales files, {info['bytes'] / 1e6:.0f} MB of Parquet. "
           "CPU s = user + system of the path's process; peak RSS = its largest process's VmHWM.", ""]

    def row(r: dict, n: int, detail: str) -> list[str]:
        if not r["ok"]:
            return [r["path"], f"{n:,}", "FAILED", "", "", "", r.get("error", "")[-200:]]
        return [r["path"], f"{n:,}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{n / r['wall_s']:,.0f}",
                f"{mb(r['peak_kb']):.0f}", detail]

    rows = []
    if ours:
        d = ours.get("detail", {})
        t = d.get("timings_s", {})
        commits = sum(d.get("commits", {}).values())
        rows.append(row(ours, lines, ", ".join(f"{k} {v}" for k, v in t.items()) + f"; commits {commits:,}"))
    if pandas:
        d = pandas.get("detail", {})
        rows.append(row(pandas, pandas_lines, ", ".join(f"{k} {v}" for k, v in d.get("timings_s", {}).items())))
    out += [*harness.md_table(["path", "lines", "wall s", "CPU s", "rows/s", "peak RSS MB", "detail"], rows), ""]
    if ours and pandas and ours["ok"] and pandas["ok"]:
        ours_rate = lines / ours["wall_s"]
        pandas_rate = pandas_lines / pandas["wall_s"]
        speedup = ours_rate / pandas_rate
        same = "" if pandas_lines == lines else f" (per line: pandas ran on {pandas_lines:,} lines)"
        out.append(f"- speed-up (rows/s, ours ÷ pandas){same}: **{speedup:.1f}×** — target ≥ {TARGET_SPEEDUP:.0f}×: "
                   f"**{'met' if speedup >= TARGET_SPEEDUP else 'not met'}**")
        out.append(f"- pandas peak RSS: {mb(pandas['peak_kb']):,.0f} MB")
    if ours and ours["ok"]:
        peak = mb(ours["peak_kb"])
        out.append(f"- ours peak RSS: {peak:.0f} MB — target ≤ {TARGET_RSS_MB:.0f} MB: "
                   f"**{'met' if peak <= TARGET_RSS_MB else 'not met'}**")
    if note:
        out.append(f"- {note}")
    if problems is not None:
        scope = "" if not pandas or pandas_lines == lines else ", on the stores pandas ran on"
        out.append(f"- correctness (rows, units, lines, revenue, cost, margin per store, both aggregates{scope}): "
                   + ("**equal**" if not problems else f"**{len(problems)} difference(s)**: "
                      + "; ".join(problems[:10])))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=50_000_000, help="sale lines in the curated zone")
    ap.add_argument("--stores", type=int, default=50)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--skus", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="lake cache and scratch folder")
    ap.add_argument("--paths", default="ours,pandas", help="which paths to run, comma-separated")
    ap.add_argument("--pandas-lines", type=int, default=0, help="run pandas on only this many lines (0: all, or "
                    "the largest size that fits in --pandas-max-gb)")
    ap.add_argument("--pandas-max-gb", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="keep the outputs of both runs")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        path, lake_root, scratch, limit = args.worker
        if path == "ours":
            result = ours_worker(Path(lake_root), Path(scratch))
        else:
            result = pandas_worker(Path(lake_root), Path(scratch), int(limit))
        json.dump(result, sys.stdout, default=str)
        return 0

    cmd = harness.command(__file__, argv)
    out = args.out.resolve()
    work = out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    root = lake_dir(out, args.lines, args.stores, args.days, args.skus)
    info = make_lake(root, args.lines, args.stores, args.days, args.skus)
    lake = root / "lake"
    harness.warm((lake / "curated").rglob("*.parquet"))  # both paths start with the files in the page cache
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]

    pandas_lines, note = args.pandas_lines, ""
    ours = pandas = None
    crashed = False
    if "ours" in paths:
        ours = run_path("ours", lake, work, 0)
        crashed |= not ours["ok"]
    if "pandas" in paths:
        if not pandas_lines and info["lines"] > 2_000_000:
            # Estimate pandas' memory from a run on ~2M lines (whole stores) before trying the full size.
            probe = run_path("pandas", lake, work, 2_000_000)
            if probe["ok"]:
                probe_lines = probe["detail"]["lines"]
                need_gb = mb(probe["peak_kb"]) / 1024 * info["lines"] / probe_lines
                say(f"  pandas needs ~{need_gb:.1f} GB at {info['lines']:,} lines (peak RSS grows with the lines: "
                    f"{mb(probe['peak_kb']):,.0f} MB at {probe_lines:,})")
                if need_gb > args.pandas_max_gb:
                    pandas_lines = int(info["lines"] * args.pandas_max_gb / need_gb * 0.9)
                    note = (f"pandas would need ~{need_gb:.0f} GB for {info['lines']:,} lines (> "
                            f"{args.pandas_max_gb:.0f} GB): it ran on the first stores only, ~{pandas_lines:,} lines")
            shutil.rmtree(probe["scratch"], ignore_errors=True)
        pandas = run_path("pandas", lake, work, pandas_lines)
        crashed |= not pandas["ok"]

    problems = None
    if ours and pandas and ours["ok"] and pandas["ok"]:
        # ours' outputs were removed when pandas ran (run_path clears aggregates/): compute them once more for the
        # comparison, unmeasured.
        say("checking: ours again (unmeasured) for the comparison ...")
        ours_worker(lake, Path(tempfile.mkdtemp(prefix="check-", dir=work)))
        pandas_stores = {p.name.split("=", 1)[1] for p in (pandas["scratch"] / "sales_daily_sku").iterdir()
                         if p.name.startswith("store_id=")}
        problems = compare(lake, pandas["scratch"], pandas_stores)
        say(f"  {len(problems)} difference(s)")
    sys.stdout.write(report(cmd, info, ours, pandas, note, problems))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(lake / "aggregates", ignore_errors=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
