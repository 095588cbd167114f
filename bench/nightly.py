"""Benchmark: what a night costs. A store's first dump, then its next night's dump (the same history plus
new lines), against the pipeline as it was before the Delta Lake curated zone, measured in the same run.

    python bench/nightly.py [--size 2000000] [--new 20000] [--baseline REV] [--out bench/out] [--keep]

* The store's dump: ``bench/ingest.py``'s cached dump of ``--size`` sale lines (365 days, 5,000 items, about
  1 % dirty rows). The next night's dump: a copy with ``--new`` sale lines on the next day and the stock
  counted a day later (a new dump id).
* **ours**: ``inventory ingest DUMP --snapshot-at T`` of this checkout, on a fresh folder lake: the first
  night (every line read, checked and committed to the Delta tables, the history digest recorded), then the
  next night (only the window after the mark read, once SQLite's digest shows the history unchanged).
* **baseline**: the same two ingests with the code of ``--baseline`` (default: the commit before the Delta
  Lake curated zone), checked out in a temporary git worktree and run with this venv.
* **peer**: dlt 1.31 (``sql_database`` with the connectorx backend, to filesystem Parquet), a plain copy of the
  first night's dump (no rules, no dedup, no Delta), in its own venv (``--peer-venv``; made on first use with
  ``pip install "dlt[filesystem,parquet,sql_database]==1.31.0" connectorx==0.4.6 sqlalchemy``), measured the
  same way.
* **bytes read from the lake** by the next night: the ingest's reads of the curated and rejected tables
  replayed in a fresh process with the same SQL (``inventory ingest`` also reads the dump, so its own I/O
  counters cannot tell them apart), measured as the bytes its ``read`` calls returned (``/proc/self/io``
  ``rchar``), against the size of the store's curated history.

Wall time, CPU time and peak memory as ``bench/harness.py`` measures them (per-process high-water marks, summed;
and ``/usr/bin/time``'s largest single process). Markdown report on stdout; not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # bench/harness.py: timing, the process-tree measurement, provenance, tables
import ingest as bench_ingest  # bench/ingest.py: the dump cache

ROOT = bench_ingest.ROOT
STORE = bench_ingest.STORE
BASELINE = "bb23317"  # main before issue 16 (the curated zone as loose Parquet)
NIGHT1_AT, NIGHT2_AT = "2026-11-26T23:00:00Z", "2026-11-27T23:00:00Z"
TARGET_RATIO = 0.2
TARGET_RSS_MB = 300
TARGET_BYTES_SHARE = 0.05
say = harness.say


def next_night(db: Path, out: Path, new: int) -> Path:
    """The next night's full snapshot: ``db`` plus ``new`` sale lines on 2026-11-27, stock counted that day."""
    target = out / f"{db.stem}.plus{new}.sqlite"
    if target.exists():
        return target
    partial = target.with_suffix(".partial")
    shutil.copyfile(db, partial)
    with sqlite3.connect(partial) as con:
        skus = [r[0] for r in con.execute("SELECT sku FROM items ORDER BY sku LIMIT 500")]
        con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, 2.5, ?)",
                        [(f"N2-{i // 3:06d}", i % 3 + 1, skus[i % len(skus)], 1 + i % 3,
                          f"2026-11-27 {8 + i * 12 // new:02d}:{i % 60:02d}:{(i * 7) % 60:02d}") for i in range(new)])
        con.execute("UPDATE stock SET counted_at = '2026-11-27 23:00:00'")
    os.replace(partial, target)
    return target


def cli(tree: Path) -> list[str]:
    """``inventory`` from the checkout at ``tree`` (its ``shared`` first on the path), with this venv."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); import shared.__main__"]


def ingest(tree: Path, dump: Path, home: Path, at: str) -> harness.Measured:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKE")}
    env.update(INVENTORY_HOME=str(home), TELEMETRY_CONSOLE="0")
    m = harness.measure([*cli(tree), "ingest", str(dump), "--store", STORE, "--quiet", "--snapshot-at", at],
                        env=env)
    if m.returncode != 0:
        raise SystemExit(f"ingest of {dump.name} failed (exit {m.returncode}): {m.stderr[-2000:]}")
    return m


def baseline_checkout(rev: str, work: Path) -> Path:
    tree = work / f"baseline-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)
    return tree


REPLAY = r"""
import json, sys
from pathlib import Path
def rchar():
    return int(next(l for l in open("/proc/self/io") if l.startswith("rchar")).split()[1])
from shared.adapters.delta_tables import DeltaTables
from shared.core.sql import literal
from shared.adapters.lake_folder import FolderLake
lake = FolderLake(Path(sys.argv[1]))
manifest = json.loads(sys.argv[2])
tables = DeltaTables(lake)
DeltaTables(lake).read("SELECT 1 AS x FROM t LIMIT 1", t="curated/items")  # warm the engine (first use reads libraries)
store, dump = manifest["store_id"], manifest["dump_id"]
low, high, mark = sys.argv[3], sys.argv[4], manifest["tables"]["sales"]["history"]["mark"]
before = rchar()
tables.read(f"SELECT sale_id, line_no, sku, qty, unit_price, sold_at, dump_id FROM t WHERE store_id = {literal(store)} "
            f"AND dump_id <> {literal(dump)} AND sale_id >= {literal(low)} AND sale_id <= {literal(high)}",
            t="curated/sales")
curated = rchar() - before
before = rchar()
tables.read(f"SELECT DISTINCT sale_id, line_no, sku, qty, unit_price, sold_at, reason_code FROM t WHERE "
            f"store_id = {literal(store)} AND dump_id <> {literal(dump)} AND sold_at > {literal(mark)}",
            t="rejected/sales")
print(json.dumps({"curated": curated, "rejected": rchar() - before}))
"""


DLT_COPY = r"""
import sys
import dlt
from dlt.sources.sql_database import sql_database
db, out = sys.argv[1], sys.argv[2]
pipeline = dlt.pipeline(pipeline_name="peer", destination=dlt.destinations.filesystem(out + "/data"),
                        dataset_name="store", pipelines_dir=out + "/pipelines")
info = pipeline.run(sql_database(f"sqlite:///{db}", backend="connectorx"), loader_file_format="parquet")
print(info.has_failed_jobs)
"""


def peer_venv(path: Path) -> Path | None:
    """The peer's python (created on first use); None when it cannot be installed."""
    python = path / "bin" / "python"
    if not python.exists():
        say(f"creating the peer's venv {path} (dlt, connectorx) ...")
        made = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "dlt[filesystem,parquet,sql_database]==1.31.0", "connectorx==0.4.6", "sqlalchemy"],
                             capture_output=True)
        if made.returncode or pip.returncode:
            say(f"the peer could not be installed: {pip.stderr.decode()[-300:]}")
            return None
    return python


def run_peer(python: Path, db: Path, out: Path) -> harness.Measured:
    out.mkdir()
    m = harness.measure([str(python), "-c", DLT_COPY, str(db), str(out)])
    if m.returncode != 0 or m.stdout.strip() != "False":
        raise SystemExit(f"the peer's copy failed (exit {m.returncode}): {m.stderr[-2000:]}")
    return m


def bytes_read(home: Path, manifest: dict) -> dict:
    """The next night's reads of the lake, replayed (see the module docstring), and the history's size."""
    lookup = manifest["tables"]["sales"]["lake_lookup"]  # the window's key range, as the ingest recorded it
    low, high = lookup["key_from"], lookup["key_to"]
    out = subprocess.run([sys.executable, "-c", REPLAY, str(home / "lake"), json.dumps(manifest), low, high],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    found = json.loads(out.stdout)
    history = sum(f.stat().st_size for f in (home / "lake" / "curated" / "sales").rglob("*.parquet")
                  if "_delta_log" not in f.parts)
    return {**found, "history": history}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2_000_000, help="sale lines of the store's history")
    ap.add_argument("--new", type=int, default=20_000, help="sale lines the next night brings")
    ap.add_argument("--baseline", default=BASELINE, help="git revision to compare with (skip: 'none')")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="dump cache and scratch folder")
    ap.add_argument("--keep", action="store_true", help="keep the lakes")
    ap.add_argument("--repeat", type=int, default=3, help="pairs of nights per code, interleaved (medians shown)")
    ap.add_argument("--peer-venv", type=Path, default=ROOT / "bench" / "out" / ".venv-dlt",
                    help="venv of the peer (dlt); 'none' to skip it")
    args = ap.parse_args(argv)

    db, _truth = bench_ingest.dump_for(args.size, args.out)
    night2 = next_night(db, args.out, args.new)
    work = Path(tempfile.mkdtemp(prefix="nightly-", dir=args.out))
    rows = []
    try:
        runs = [("ours", ROOT)]
        if args.baseline != "none":
            runs.insert(0, (f"baseline {args.baseline}", baseline_checkout(args.baseline, args.out)))
        detail = {}

        def two_nights(label: str, tree: Path):
            def run(n: int) -> tuple[harness.Measured, harness.Measured]:
                home = work / f"{label.replace(' ', '-')}-{n}"
                say(f"{label} ({n + 1}/{args.repeat}): first night ({args.size:,} lines) ...")
                first = ingest(tree, db, home, NIGHT1_AT)
                say(f"{label} ({n + 1}/{args.repeat}): next night (+{args.new:,}) ...")
                second = ingest(tree, night2, home, NIGHT2_AT)
                detail[label] = (home, json.loads(second.stdout))
                return first, second
            return label, run

        # interleaved: the machine's drift hits both codes alike
        walls = harness.interleave(args.repeat, [two_nights(label, tree) for label, tree in runs])
        for label, pairs in walls.items():
            rows.append((label, harness.median_run(p[0] for p in pairs), harness.median_run(p[1] for p in pairs)))
        peer = None
        if str(args.peer_venv) != "none" and (python := peer_venv(args.peer_venv)) is not None:
            peers = []
            for n in range(args.repeat):
                say(f"peer dlt ({n + 1}/{args.repeat}): a plain copy of the first night's dump ...")
                peers.append(run_peer(python, db, work / f"peer-{n}"))
            peer = harness.median_run(peers)
        ours_home, ours_manifest = detail["ours"]
        read = bytes_read(ours_home, ours_manifest)
    finally:
        if args.baseline != "none" and not args.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(args.out / f"baseline-{args.baseline}")], capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    mb = harness.mb
    cmd = harness.command(__file__)
    print(f"### Nightly ingest: {args.size:,}-line history + {args.new:,} new lines\n")
    print(f"{harness.provenance(cmd)} Median of {args.repeat} interleaved pairs; CPU = user + system of the "
          "ingest's process tree, in the run of median wall.\n")
    table = [[label, f"{first.wall_s:.2f} s", f"{second.wall_s:.2f} s", f"{second.wall_s / first.wall_s:.2f}x",
              f"{first.cpu_s:.2f} / {second.cpu_s:.2f} s", f"{mb(first.maxrss_kb):.0f} / {mb(second.maxrss_kb):.0f} MB"]
             for label, first, second in rows]
    if peer is not None:
        table.append(["peer: dlt 1.31 + connectorx, plain copy to Parquet", f"{peer.wall_s:.2f} s", "-", "-",
                      f"{peer.cpu_s:.2f} s", f"{mb(peer.maxrss_kb):.0f} MB"])
    print("\n".join(harness.md_table(["code", "first night", "next night", "next / first", "CPU first / next",
                                      "peak RSS first / next (largest process)"], table)))
    history = ours_manifest["tables"]["sales"]["history"]
    sales = ours_manifest["tables"]["sales"]
    print(f"\nNext night (ours): {history['read']} read, mark {history['mark']}, "
          f"{history.get('history_rows_checked', 0):,} history lines checked in SQLite, {sales['input']:,} lines "
          f"read, {sales['written']:,} written, {sales['already_in_lake']:,} already in the lake.")
    share = (read["curated"] + read["rejected"]) / read["history"]
    print(f"Bytes read from the lake's tables: {read['curated'] / 1e6:.2f} MB curated + "
          f"{read['rejected'] / 1e6:.2f} MB rejected, against {read['history'] / 1e6:.1f} MB of curated "
          f"history: {share:.1%} (target <= {TARGET_BYTES_SHARE:.0%}).")
    ours = next(r for r in rows if r[0] == "ours")
    print(f"Targets: next/first {ours[2].wall_s / ours[1].wall_s:.2f}x (<= {TARGET_RATIO}x); peak RSS "
          f"{mb(max(ours[1].maxrss_kb, ours[2].maxrss_kb)):.0f} MB (<= {TARGET_RSS_MB} MB).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
