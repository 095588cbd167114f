"""Benchmark: a year of one store's nightly commits to ``curated/sales``, partitioned by month (the layout)
against by day, before and after ``maintain_lake`` (compaction, vacuum, checkpoint).

    python bench/lake_layout.py [--lines-per-day 5500] [--days 365] [--out bench/out] [--keep]

Each night appends that day's lines as one commit, with the ingest's own writer
(``DeltaTables.append_parts``), so the table looks as a year of window nights leaves it. Reads go through
``DeltaTables.query`` (delta-rs's engine), as every reader of the lake does: one month of the store, and the
whole year summed by day. Each read is run 3 times in a fresh process and the median kept (the first read
of a process pays for loading the engine, measured apart). Markdown on stdout; not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import harness  # bench/harness.py, beside this file
from harness import ROOT, say

sys.path.insert(0, str(ROOT))


def day_rows(day: date, n: int, offset: int):  # a pyarrow.Table of one day's sale lines
    import numpy as np
    import pyarrow as pa

    from shared.core.arrow_values import date_scalar, string_scalar, utc_timestamp_scalar

    rng = np.random.default_rng(offset)
    start = utc_timestamp_scalar(__import__("datetime").datetime(day.year, day.month, day.day, 8)).value
    sold = np.sort(start + rng.integers(0, 12 * 3600 * 10**6, n))
    return pa.table({
        "store_id": pa.repeat(string_scalar("S001"), n),
        "sale_id": pa.array([f"S001-{offset + i:09d}" for i in range(n)]),
        "line_no": pa.array(np.ones(n, dtype=np.int64)),
        "sku": pa.array([f"SKU-{k:05d}" for k in rng.integers(0, 5000, n)]),
        "qty": pa.array(rng.integers(1, 4, n)),
        "unit_price": pa.array(rng.integers(100, 5000, n) / 100).cast(pa.decimal128(18, 4)),
        "sold_at": pa.array(sold, pa.timestamp("us", tz="UTC")),
        "flags": pa.nulls(n, pa.string()),
        "dump_id": pa.repeat(string_scalar(f"d{day.isoformat()}"), n),
        "date": pa.repeat(date_scalar(day), n),
        "month": pa.repeat(string_scalar(day.isoformat()[:7]), n),
        "day": pa.repeat(string_scalar(day.isoformat()), n),
    })


def build(lake_root: Path, partition_by: tuple[str, ...], days: int, per_day: int) -> None:
    from shared.adapters.delta_tables import DeltaTables
    from shared.adapters.lake_folder import FolderLake

    tables = DeltaTables(FolderLake(lake_root))
    first = date(2025, 11, 27)
    scratch = Path(tempfile.mkdtemp(dir=lake_root.parent))
    for i in range(days):
        day = first + timedelta(days=i)
        rows = day_rows(day, per_day, i * per_day)
        if "day" not in partition_by:
            rows = rows.drop_columns(["day"])
        tables.append_parts("curated/sales", [rows], partition_by=partition_by, scratch=scratch,
                            app_id=f"night-{i}")
    shutil.rmtree(scratch, ignore_errors=True)


READ = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import harness
with harness.stopwatch() as first:
    from shared.adapters.delta_tables import DeltaTables
    from shared.adapters.lake_folder import FolderLake
    tables = DeltaTables(FolderLake(Path(sys.argv[1])))
    tables.read("SELECT count(*) AS n FROM t WHERE store_id = 'S001' AND month = '2026-06'", t="curated/sales")
month = "SELECT sku, sum(qty) AS units FROM t WHERE store_id = 'S001' AND month = '2026-06' GROUP BY sku"
year = "SELECT date, sum(qty) AS units FROM t WHERE store_id = 'S001' GROUP BY date"
times = harness.interleave(3, [(k, lambda n, q=q: harness.timed(lambda: tables.read(q, t="curated/sales"))[0].wall_s)
                               for k, q in (("month", month), ("year", year))])
print(json.dumps({"first": first.wall_s, **{k: harness.median(v) for k, v in times.items()}}))
"""


def measure(lake_root: Path) -> dict:
    from deltalake import DeltaTable

    table = DeltaTable(str(lake_root / "curated/sales"))
    files = table.file_uris()
    size = sum(Path(f).stat().st_size for f in files)
    out = subprocess.run([sys.executable, "-c", READ, str(lake_root), str(ROOT / "bench")], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return {"files": len(files), "mb": size / 1e6, "avg_kb": size / len(files) / 1e3, **json.loads(out.stdout)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines-per-day", type=int, default=5500, help="sale lines a night adds (2M a year)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.telemetry import MemoryTelemetry
    from shared.services.maintain_lake import maintain_lake

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="layout-", dir=args.out))
    rows = []
    try:
        for label, partition_by in (("store x month (the layout)", ("store_id", "month")),
                                    ("store x day", ("store_id", "day"))):
            root = work / label.split()[2] / "lake"
            root.mkdir(parents=True)
            say(f"{label}: {args.days} nightly commits of {args.lines_per_day:,} lines ...")
            with harness.stopwatch() as built:
                build(root, partition_by, args.days, args.lines_per_day)
            before = measure(root)
            say(f"{label}: maintain_lake ...")
            with harness.stopwatch() as maintained:
                maintain_lake(lake=FolderLake(root), telemetry=MemoryTelemetry())
            after = measure(root)
            rows.append((label, built.wall_s, before, maintained.wall_s, after))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cmd = f"python bench/lake_layout.py --days {args.days} --lines-per-day {args.lines_per_day}"
    print(f"### A year of one store's nightly commits: {args.days} x {args.lines_per_day:,} sale lines\n")
    print(f"{harness.provenance(cmd)} Folder lake. Reads through delta-rs's engine, median of 3 in a fresh process "
          "(the process's first read, which loads the engine, apart).\n")
    table = [[label, when, f"{m['files']:,}", f"{m['avg_kb']:,.0f} KB", f"{m['month'] * 1000:.0f} ms",
              f"{m['year'] * 1000:.0f} ms", f"{m['first'] * 1000:.0f} ms"]
             for label, built, before, maintained, after in rows
             for when, m in ((f"after {args.days} nights ({built:.0f} s)", before),
                             (f"after maintain_lake ({maintained:.1f} s)", after))]
    print("\n".join(harness.md_table(["partitioned by", "when", "files", "avg file", "one month by sku",
                                      "the year by day", "first read"], table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
