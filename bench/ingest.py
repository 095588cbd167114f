"""Benchmark: `inventory ingest` against a naive pandas pipeline and the `sqlite3` CSV-export floor.

    python bench/ingest.py [--sizes 1000000,5000000] [--out bench/out] [--keep] [--repeat N]
                           [--paths floor,ours,naive,nightly]

For each size, a store dump is generated once (``generate_store(..., sales_lines=N, n_items=5000,
days=365, seed=42)``) and cached in ``--out`` under a name keyed by size, seed, items and days, with its
ground truth beside it (``.truth.json``); reruns reuse it. Then the paths read the same file, in the same
run, each in its own process so that wall time and memory are measured the same way:

* **ours**: ``inventory ingest DUMP --store B001 --quiet`` with a fresh ``INVENTORY_HOME`` (a first
  ingest into an empty folder lake). The ingest spawns reader children
  (``python -m shared.adapters.sqlite_dump_child``: the read, and a second one for the history digest), so the
  peak RSS in the main table is the parent's peak plus each child's peak (each the kernel's per-process
  high-water mark, VmHWM, sampled every 50 ms): an upper bound, since the peaks need not coincide and pages of
  the shared libraries count twice. The memory
  target is judged on the tree's simultaneous PSS peak and on the largest single process (the issue's
  ``/usr/bin/time -v``), both shown in the targets table with the sum beside them.
* **naive**: what a typical engineer would write (bench/ingest_naive.py): ``pandas.read_sql("SELECT *
  FROM t")`` per table over a stdlib ``sqlite3`` connection, the same rules in plain pandas, then
  ``DataFrame.to_parquet`` of the curated and the rejected rows (one file per table and kind, pandas'
  defaults, *not* partitioned by date: that makes the naive path a little faster than a like-for-like
  copy of ours, so the speed-up reported is conservative).
* **nightly**: the steady state, not in the issue's list: a first ingest of the dump (untimed), then
  ``inventory ingest`` of the store's next full snapshot (a copy with one stock count changed, so a new dump
  id), whose lines are all in the lake already; checked to write no line again.
* **floor**: ``sqlite3 -csv DUMP "SELECT * FROM t" > /dev/null`` for each table (times summed, peak RSS
  is the largest of the per-table processes).

Every path is measured by ``harness.measure`` (bench/harness.py): wall and CPU time, and memory by polling
``/proc`` every 50 ms for the process tree (VmHWM of each process: its own peak, the figure used; VmRSS and PSS
of every process, summed at each instant: the simultaneous tree peak) and by ``/usr/bin/time -f %M`` ("Maximum
resident set size" of ``time -v``: the largest single process of the tree, not a sum). The paths run in turn,
``--repeat`` rounds (``harness.interleave``); wall is the median.

rows/s counts every input row of every table (sales dominate). Progress goes to stderr, a Markdown report
to stdout. The reach targets are informational: the exit status is 0 unless a run crashed.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import Measured, mb, measure, median, say

ROOT = harness.ROOT
STORE = "B001"
SEED = 42
N_ITEMS = 5000
DAYS = 365
TABLE_NAMES = ("vendors", "items", "stock", "sales", "receipts")
TARGET_SPEEDUP = 3.0  # naive wall / ours wall, at least
TARGET_FLOOR = 2.0  # ours wall / floor wall, at most
TARGET_RSS_MB = 300.0  # ours peak: the tree's simultaneous PSS and the largest process (time -v), at most


# --- the dumps -----------------------------------------------------------------------------------------------

def _generator_sha() -> str:
    # The generator is shared/local/generator.py and the generator_*.py modules it is split into.
    sources = sorted((ROOT / "shared/local").glob("generator*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]


def dump_for(size: int, out: Path) -> tuple[Path, dict]:
    """The cached dump for ``size`` sale lines (generated on first use) and its ground truth."""
    stem = f"dump-n{size}-seed{SEED}-items{N_ITEMS}-days{DAYS}"
    db, truth_file = out / f"{stem}.sqlite", out / f"{stem}.truth.json"
    if db.exists() and truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth.get("generator_sha") != _generator_sha():
            say(f"note: {db.name} was made by another version of shared/local/generator.py; "
                "delete it to regenerate")
        say(f"using cached {db.name} ({db.stat().st_size / 1e6:.0f} MB)")
        return db, truth
    from shared.local.generator import generate_store

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{stem}.sqlite.partial"
    say(f"generating {db.name} ({size:,} sale lines, {N_ITEMS} items, {DAYS} days, seed {SEED}) ...")
    t0 = time.perf_counter()
    st = generate_store(tmp, STORE, sales_lines=size, n_items=N_ITEMS, days=DAYS, seed=SEED)
    os.replace(tmp, db)
    truth = {
        "generator_sha": _generator_sha(),
        "snapshot_at": st.snapshot_at.isoformat(),
        "normalised_skus": st.normalised_skus,
        "tables": {name: {"input": t.input, "curated": t.curated, "rejected": t.rejected, "flagged": t.flagged}
                   for name, t in st.tables.items()},
    }
    truth_file.write_text(json.dumps(truth, indent=2))
    say(f"generated in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
    return db, truth


def check_counts(tables: dict, truth: dict, *, nightly: bool = False) -> list[str]:
    """Differences between a run's per-table counts (manifest-shaped) and the generator's truth. A first
    ingest writes every curated line; the next night's dump (``nightly``) none, all being in the lake."""
    problems = []
    for name, t in truth["tables"].items():
        got = tables.get(name)
        if got is None:
            problems.append(f"{name}: missing")
            continue
        for k in ("input", "curated"):
            if got[k] != t[k]:
                problems.append(f"{name}.{k} = {got[k]:,}, expected {t[k]:,}")
        if got["curated"] + got["rejected"] != got["input"]:
            problems.append(f"{name}: curated + rejected != input")
        by_rule = got.get("by_rule", {})
        for code, n in {**t["rejected"], **t["flagged"]}.items():
            if by_rule.get(code, 0) != n:
                problems.append(f"{name}.{code} = {by_rule.get(code, 0):,}, expected {n:,}")
        if "written" in got and not nightly and (got["written"] != got["curated"] or got.get("already_in_lake")):
            problems.append(f"{name}: written {got['written']:,} of {got['curated']:,} curated (first ingest)")
        if "written" in got and nightly and (got["written"] or got.get("already_in_lake") != got["curated"]):
            problems.append(f"{name}: written {got['written']:,}, already in the lake "
                            f"{got.get('already_in_lake', 0):,} of {got['curated']:,} (the next night's dump)")
    normalised = sum(t.get("by_rule", {}).get("sku_normalised", 0) for n, t in tables.items()
                     if n in ("stock", "sales"))
    if normalised != truth["normalised_skus"]:
        problems.append(f"sku_normalised (stock+sales) = {normalised:,}, expected {truth['normalised_skus']:,}")
    return problems


# --- the three paths -----------------------------------------------------------------------------------------

@dataclass
class Run:
    path: str
    wall_s: float
    peak_kb: int  # the "honest" peak: sum of per-process peaks of the tree
    ok: bool
    detail: dict = field(default_factory=dict)
    cpu_s: float = float("nan")  # user + system CPU of the process tree (harness.measure)


def _inventory_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("inventory")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("inventory")
    return [found] if found else [sys.executable, "-m", "shared"]


def _memory_detail(m: Measured, **extra: object) -> dict:
    """A measured run's memory figures (the report's memory detail), with ``extra``; ``error`` when it failed."""
    detail: dict = {"tree_peak_kb": m.tree_peak_kb, "maxrss_kb": m.maxrss_kb, "tree_pss_peak_kb": m.tree_pss_peak_kb,
                    "samples": m.samples, "processes": [(p.cmd, p.hwm_kb, p.anon_max_kb) for p in m.procs], **extra}
    if m.returncode != 0:
        detail["error"] = f"exit {m.returncode}: {m.stderr[-2000:]}"
    return detail


def _ingest_detail(m: Measured, home: Path) -> tuple[dict, dict | None]:
    """The memory figures of one ``inventory ingest`` run, with its manifest's timings and tables; the
    manifest (None when the run failed: the error is in the detail)."""
    detail = _memory_detail(m, parent_kb=m.root_kb, readers_kb=m.peaks_kb("sqlite_dump_child"), home=str(home))
    if m.returncode != 0:
        return detail, None
    manifest = json.loads(m.stdout)
    detail["timings_s"] = manifest.get("timings_s", {})
    detail["tables"] = manifest.get("tables", {})
    return detail, manifest


def run_ours(db: Path, truth: dict, work: Path, keep: bool) -> Run:
    home = Path(tempfile.mkdtemp(prefix="ours-", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKE")}  # the folder lake, never Azure
    env.update(INVENTORY_HOME=str(home), TELEMETRY_CONSOLE="0")
    try:
        m = measure([*_inventory_cmd(), "ingest", str(db), "--store", STORE, "--quiet"], env=env)
        detail, manifest = _ingest_detail(m, home)
        if manifest is None:
            return Run("ours", m.wall_s, m.sum_of_peaks_kb, False, detail, m.cpu_s)
        problems = check_counts(manifest.get("tables", {}), truth)
        problems += _check_lake_rows(home / "lake", manifest.get("tables", {}))
        detail["problems"] = problems
        return Run("ours", m.wall_s, m.sum_of_peaks_kb, True, detail, m.cpu_s)
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def next_night_dump(db: Path, work: Path) -> Path:
    """The store's next nightly dump: the same sale lines (all in the lake after the first ingest) with one
    stock count changed, so that its sha256, the dump id, differs. (A real one also has one more day of
    lines, ~1/365 of them.)"""
    import sqlite3

    copy = work / f"{db.stem}.next-night.sqlite"
    if not copy.exists():
        shutil.copyfile(db, copy)
        con = sqlite3.connect(copy)
        con.execute("UPDATE stock SET on_hand = on_hand + 1 WHERE rowid = (SELECT min(rowid) FROM stock)")
        con.commit()
        con.close()
    return copy


def run_nightly(db: Path, truth: dict, work: Path, keep: bool) -> Run:
    """``inventory ingest`` of the next night's dump into the lake a first ingest of ``db`` made (untimed):
    the steady state, where every line of the full snapshot is already in the lake."""
    home = Path(tempfile.mkdtemp(prefix="nightly-", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKE")}
    env.update(INVENTORY_HOME=str(home), TELEMETRY_CONSOLE="0")
    cmd = [*_inventory_cmd(), "ingest"]
    try:
        first = measure([*cmd, str(db), "--store", STORE, "--quiet"], env=env)
        if first.returncode != 0:
            return Run("nightly", first.wall_s, 0, False, {"error": f"first ingest: exit {first.returncode}: "
                                                                     f"{first.stderr[-2000:]}"})
        before = json.loads(first.stdout)["tables"]["sales"]["written"]
        m = measure([*cmd, str(next_night_dump(db, work)), "--store", STORE, "--quiet"], env=env)
        detail, manifest = _ingest_detail(m, home)
        if manifest is None:
            return Run("nightly", m.wall_s, m.sum_of_peaks_kb, False, detail, m.cpu_s)
        problems = check_counts(manifest.get("tables", {}), truth, nightly=True)
        import pyarrow.parquet as pq

        in_lake = sum(pq.ParquetFile(f).metadata.num_rows
                      for f in (home / "lake" / "curated" / "sales").rglob("*.parquet"))
        if in_lake != before:
            problems.append(f"lake curated/sales: {in_lake:,} rows after the next night's dump, {before:,} before")
        detail["problems"] = problems
        return Run("nightly", m.wall_s, m.sum_of_peaks_kb, True, detail, m.cpu_s)
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def _check_lake_rows(lake: Path, tables: dict) -> list[str]:
    """Rows actually in the lake's curated Parquet (from footers) against the manifest's counts."""
    import pyarrow.parquet as pq

    problems = []
    for name, t in tables.items():
        files = list((lake / "curated" / name).rglob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if rows != t.get("written", t["curated"]):
            problems.append(f"lake curated/{name}: {rows:,} rows in {len(files)} files, manifest says "
                            f"{t.get('written', t['curated']):,}")
    return problems


def run_naive(db: Path, truth: dict, work: Path, keep: bool) -> Run:
    out = Path(tempfile.mkdtemp(prefix="naive-", dir=work))
    try:
        m = measure([sys.executable, str(Path(__file__).resolve().with_name("ingest_naive.py")), str(db), str(out)])
        detail = _memory_detail(m, out=str(out))
        if m.returncode != 0:
            return Run("naive", m.wall_s, m.sum_of_peaks_kb, False, detail, m.cpu_s)
        result = json.loads(m.stdout)
        detail["timings_s"] = result["timings_s"]
        detail["tables"] = result["tables"]
        detail["problems"] = check_counts(result["tables"], truth)
        return Run("naive", m.wall_s, max(m.sum_of_peaks_kb, m.maxrss_kb), True, detail, m.cpu_s)
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def run_floor(db: Path, truth: dict) -> Run:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        return Run("floor", float("nan"), 0, False, {"error": "no sqlite3 CLI (apt-get install -y sqlite3)"})
    wall, cpu, peak, per_table = 0.0, 0.0, 0, {}
    for name in TABLE_NAMES:
        if name not in truth["tables"]:
            continue
        m = measure([sqlite3, "-csv", str(db), f"SELECT * FROM {name}"], stdout_to_null=True)
        if m.returncode != 0:
            return Run("floor", wall, peak, False, {"error": f"sqlite3 exit {m.returncode}: {m.stderr[-500:]}"})
        wall += m.wall_s
        cpu += m.cpu_s
        peak = max(peak, m.sum_of_peaks_kb, m.maxrss_kb)
        per_table[name] = round(m.wall_s, 3)
    return Run("floor", wall, peak, True, {"timings_s": per_table}, cpu)

# --- the report ----------------------------------------------------------------------------------------------

def _label(cmd: str) -> str:
    if "sqlite_dump_child" in cmd:
        return "reader child"
    if "ingest_naive" in cmd:
        return "naive"
    if " ingest " in cmd:
        return "parent"
    return cmd[:40]


def _fmt_rate(rows: float, wall: float) -> str:
    return f"{rows / wall / 1e6:.2f} M" if wall > 0 else "-"


def _summary(runs: list[Run]) -> dict:
    ok = [r for r in runs if r.ok]
    walls = [r.wall_s for r in ok]
    return {"ok": bool(ok) and len(ok) == len(runs), "wall": median(walls), "cpu": median(r.cpu_s for r in ok),
            "walls": walls, "peak_kb": max((r.peak_kb for r in ok), default=0), "runs": runs}


def _step_table(results: dict, path: str, title: str) -> list[str]:
    """Markdown rows: each timing key of ``path``'s runs, the median per size ([] when there are none)."""
    keys: list[str] = []
    for res in results.values():
        for r in res.get(path, {}).get("runs", []):
            keys += [k for k in r.detail.get("timings_s", {}) if k not in keys]
    if not keys:
        return []
    sizes = list(results)
    rows = []
    for k in keys:
        vals = ([r.detail["timings_s"][k] for r in results[s].get(path, {}).get("runs", [])
                 if k in r.detail.get("timings_s", {})] for s in sizes)
        rows.append([k, *(f"{median(v):.2f}" if v else "-" for v in vals)])
    return ["", title, "", *harness.md_table(["step", *(f"{s:,}" for s in sizes)], rows)]


NAMES = {"ours": "ours (`inventory ingest`)", "naive": "naive (pandas read_sql → to_parquet)",
         "floor": "floor (`sqlite3 -csv` → /dev/null)",
         "nightly": "ours, the next night's dump (every line already in the lake)"}


def _main_rows(results: dict[int, dict], truths: dict[int, dict]) -> list[list[str]]:
    rows = []
    for size, res in results.items():
        n = sum(t["input"] for t in truths[size]["tables"].values())
        for path in ("ours", "nightly", "naive", "floor"):
            s = res.get(path)
            if s is None:
                continue
            wall = f"{s['wall']:.2f}" if s["ok"] else "FAILED"
            if len(s["walls"]) > 1:
                wall += f" ({min(s['walls']):.2f}–{max(s['walls']):.2f})"
            peak = f"{mb(s['peak_kb']):.0f}"
            if path in ("ours", "nightly") and s["ok"]:
                top = max(s["runs"], key=lambda r: r.peak_kb).detail
                readers = top["readers_kb"]
                peak += (f" = {mb(top['parent_kb']):.0f} parent + " + " + ".join(f"{mb(r):.0f}" for r in readers)
                         + (" reader" if len(readers) == 1 else " readers"))
            rows.append([NAMES[path], f"{size:,}", wall, f"{s['cpu']:.2f}" if s["ok"] else "-",
                         _fmt_rate(n, s["wall"]) if s["ok"] else "-", peak])
    return rows


def _target_rows(results: dict[int, dict]) -> list[list[str]]:
    rows = []
    for size, res in results.items():
        ours, naive, floor = res.get("ours"), res.get("naive"), res.get("floor")
        cells = [f"{size:,}"]
        if ours and naive and ours["ok"] and naive["ok"]:
            x = naive["wall"] / ours["wall"]
            cells.append(f"{x:.2f}× {'PASS' if x >= TARGET_SPEEDUP else 'FAIL'}")
        else:
            cells.append("-")
        if ours and floor and ours["ok"] and floor["ok"]:
            x = ours["wall"] / floor["wall"]
            cells.append(f"{x:.2f}× {'PASS' if x <= TARGET_FLOOR else 'FAIL'}")
        else:
            cells.append("-")
        if ours and ours["ok"]:
            # Judged on what is resident at once (the tree's PSS: shared library pages counted once) and on
            # the issue's own measure (`/usr/bin/time -v`: the largest single process); the sum of the two
            # processes' separate peaks, an upper bound that counts shared pages twice, is shown beside them.
            pss = max(mb(r.detail["tree_pss_peak_kb"]) for r in ours["runs"])
            single = max(mb(r.detail["maxrss_kb"]) for r in ours["runs"])
            ok = pss <= TARGET_RSS_MB and single <= TARGET_RSS_MB
            cells.append(f"tree PSS {pss:.0f}, largest process {single:.0f} {'PASS' if ok else 'FAIL'} "
                         f"(sum of separate peaks {mb(ours['peak_kb']):.0f})")
        else:
            cells.append("-")
        rows.append(cells)
    return rows


def _memory_rows(results: dict[int, dict]) -> list[list[str]]:
    rows = []
    for size, res in results.items():
        for path in ("ours", "nightly", "naive"):
            s = res.get(path)
            if not s or not s["runs"]:
                continue
            r = s["runs"][-1]
            d = r.detail
            if "tree_peak_kb" not in d:
                continue
            procs = "; ".join(f"{_label(cmd)} {mb(hwm):.0f} / {mb(anon):.0f}" for cmd, hwm, anon in d["processes"])
            rows.append([f"{size:,}", path, f"{mb(r.peak_kb):.0f}", f"{mb(d['tree_peak_kb']):.0f}",
                         f"{mb(d['tree_pss_peak_kb']):.0f}", f"{mb(d['maxrss_kb']):.0f}", procs])
    return rows


def _checks(results: dict[int, dict]) -> list[str]:
    lines = []
    for size, res in results.items():
        for path in ("ours", "nightly", "naive", "floor"):
            s = res.get(path)
            if not s:
                continue
            for i, r in enumerate(s["runs"], 1):
                if not r.ok:
                    lines.append(f"- {size:,} {path} run {i}: **failed**: {r.detail.get('error', '?')}")
                elif r.detail.get("problems"):
                    lines.append(f"- {size:,} {path} run {i}: counts differ from the generator's truth: "
                                 + "; ".join(r.detail["problems"]))
                elif path != "floor":
                    t = r.detail["tables"]["sales"]
                    lines.append(f"- {size:,} {path} run {i}: counts match the truth (sales: {t['curated']:,} "
                                 f"curated, {t['rejected']:,} rejected)"
                                 + (", lake Parquet row counts match the manifest" if path == "ours" else "")
                                 + (", nothing written again" if path == "nightly" else ""))
    return lines


def report(cmd: str, results: dict[int, dict], truths: dict[int, dict], repeat: int) -> str:
    lines = ["# Ingest benchmark", "", harness.provenance(cmd), "",
             f"Dumps: `generate_store(sales_lines=N, n_items={N_ITEMS}, days={DAYS}, seed={SEED})`; "
             f"wall = median of {repeat} run(s) (the paths in turn, run by run), CPU s = user + system of the "
             "process tree (median), peak RSS = largest of them. "
             "rows/s counts the rows of every table. ours' peak RSS = parent peak + each reader child's peak "
             "(the ingest starts a second reader for the history digest). "
             "ours writes zstd Parquet partitioned by day (as in the lake); naive writes one Parquet file per table "
             "and kind, pandas defaults (snappy), not partitioned.", "",
             *harness.md_table(["path", "lines", "wall s", "CPU s", "rows/s", "peak RSS MB"],
                               _main_rows(results, truths))]

    lines += ["", "## Reach targets (informational)", "",
              *harness.md_table(["lines", f"naive/ours (≥ {TARGET_SPEEDUP:g})", f"ours/floor (≤ {TARGET_FLOOR:g})",
                                 f"ours peak memory MB, largest of the runs (≤ {TARGET_RSS_MB:g})"],
                                _target_rows(results))]

    # Where ours spends its time: the manifest's timings_s (median per key over the runs).
    ours_steps = _step_table(results, "ours", "## ours: manifest `timings_s` (median over runs)")
    lines += ours_steps
    if ours_steps:
        row = []
        for s in results:
            walls = results[s].get("ours", {}).get("walls", [])
            tot = [r.detail["timings_s"].get("total") for r in results[s].get("ours", {}).get("runs", [])]
            tot = [t for t in tot if t is not None]
            row.append(f"{median(walls) - median(tot):.2f}" if walls and tot else "-")
        lines.append("| (wall − total: interpreter start, imports, exit) | " + " | ".join(row) + " |")

    lines += _step_table(results, "nightly", "## nightly: manifest `timings_s` (median over runs)")

    lines += ["", "## Memory detail (last run of each)", "",
              "Sum of per-process peaks: each process's VmHWM, summed (what the table above reports). Tree "
              "RSS/PSS: largest sum sampled at one instant (PSS splits shared library pages between the processes "
              "that map them). Largest single process: `/usr/bin/time -f %M`.", "",
              *harness.md_table(["lines", "path", "sum of per-process peaks MB", "tree RSS peak MB",
                                 "tree PSS peak MB", "largest single process MB",
                                 "per process: peak RSS / peak private (RssAnon) MB"], _memory_rows(results))]

    lines += _step_table(results, "naive", "## naive: time per step (median over runs)")
    lines += ["", "## Checks", "", *_checks(results)]
    return "\n".join(lines) + "\n"


def _run_path(path: str, db: Path, truth: dict, work: Path, keep: bool) -> Run:
    if path == "ours":
        return run_ours(db, truth, work, keep)
    if path == "naive":
        return run_naive(db, truth, work, keep)
    if path == "nightly":
        return run_nightly(db, truth, work, keep)
    return run_floor(db, truth)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,5000000", help="sale lines per dump, comma-separated")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="dump cache and scratch folder")
    ap.add_argument("--keep", action="store_true", help="keep each run's lake / Parquet output (under --out)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path per size (median wall reported)")
    ap.add_argument("--paths", default="floor,ours,naive,nightly",
                    help="which paths to run, comma-separated (nightly: the next night's dump of the store)")
    args = ap.parse_args(argv)

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - {"floor", "ours", "naive", "nightly"}
    if unknown:
        ap.error(f"unknown path(s) {sorted(unknown)}")
    out = args.out.resolve()
    work = out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    say(f"sqlite3 CLI: {shutil.which('sqlite3') or 'MISSING'}; inventory: {' '.join(_inventory_cmd())}")

    results: dict[int, dict] = {}
    truths: dict[int, dict] = {}
    crashed = False
    for size in sizes:
        db, truth = dump_for(size, out)
        truths[size] = truth
        harness.warm([db])  # every path starts with the file in the page cache

        def runner(path: str, size: int = size, db: Path = db, truth: dict = truth):
            def run(i: int) -> Run:
                nonlocal crashed
                say(f"{size:,} lines, run {i + 1}/{args.repeat}: {path} ...")
                r = _run_path(path, db, truth, work, args.keep)
                if r.ok:
                    say(f"    {path}: {r.wall_s:.2f} s, CPU {r.cpu_s:.2f} s, peak RSS {mb(r.peak_kb):.0f} MB"
                        + (f" ({len(r.detail['problems'])} count problem(s))" if r.detail.get("problems") else ""))
                else:
                    crashed = True
                    say(f"    {path}: FAILED: {r.detail.get('error', '?')[-500:]}")
                return r
            return path, run

        runs = harness.interleave(args.repeat, [runner(p) for p in paths])
        results[size] = {p: _summary(rs) for p, rs in runs.items()}

    sys.stdout.write(report(harness.command(__file__, argv), results, truths, args.repeat))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
