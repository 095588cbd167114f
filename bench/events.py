"""Benchmark: POS sale events through `apply_sales` on the embedded stock store, against a naive baseline.

    python bench/events.py [--events 1000000] [--naive-events 100000] [--cosmos-events 20000] [--batch-size 500]
                           [--out bench/out] [--repeat N] [--seed 42]

The issue: "1M events (Zipf over 5k skus, 50 stores, avg. 3 lines) through the apply service on the embedded
store, against a naive baseline (one read-modify-write transaction per line) in the same run: events/s and
store operations per event."

**The stream** is generated once and cached in ``--out`` as JSON lines (one event body a line, what a POS
sends), a ``.keys`` file beside it (``storeId<TAB>kind<TAB>lines`` a line: the partition key, and the ground
truth of what the body is) and a ``.truth.json`` (``expected_deltas`` of the stream, counts). The cache is
keyed by the parameters and a hash of ``shared/local/pos_traffic.py`` and of the bench's generator, so a
generator change regenerates. 50 stores ``B001``..``B050``, 5,000 skus ``K-00000``..``K-04999``, about 2 %
resends (byte-for-byte, same ``eventId``) and 1 % malformed events. ``pos_traffic``'s basket mix (1-5 lines,
p = .40/.25/.17/.11/.07) averages ≈ 2.2 lines, well below the issue's 3, so the valid events and resends are
built here (``events_stream.bench_traffic``: the same Zipf law rank^-1.1 over the skus, the same event types and
quantities, stores of different sizes with 1-4 tills, 1-5 lines with p = .15/.20/.30/.20/.15, mean 3) and
only the malformed bodies come from ``pos_traffic`` (``malformed_share=1``: every reason code it can build).
Should ``pos_traffic`` ever average ≥ 2.7 lines, it is used as it is. The measured mean is reported.

**Delivery** is what Event Hubs does: each event goes to partition ``partition_for(storeId, 4)``, and each
partition is delivered in order, in batches of ``--batch-size`` (host.json's ``maxEventBatchSize``); a batch
is handed over as soon as its partition has that many events (the last ones at the end). The timed loop
reads the JSONL file, so reading and parsing are inside the timing, for both paths alike.

Each path runs in its own process (``--child ours|naive``), so peak RSS (the child's own VmHWM,
``harness.self_peak_kb``) does not mix; wall and CPU time are the child's delivery loop (``harness.stopwatch``),
so interpreter start, imports and creating the empty store are left out of both.

* **ours**: ``apply_sales`` over each batch with a fresh ``SqliteStockStore`` and ``FolderLake`` (temporary
  folders under ``--out``) and ``MemoryTelemetry``. Store operations per event = Σ
  ``ApplyCounts.operations`` / events delivered. Afterwards (untimed) the stock table is compared with
  ``expected_deltas`` of the stream, and the counts with the stream's (applied = distinct valid events,
  duplicates = resends, dead-lettered = malformed). Then the whole stream is delivered a second time to the
  same store (a full redelivery, timed too): the stock must not change.
* **naive**: per event ``json.loads``, a basic validity check, then per line ``BEGIN; SELECT on_hand ...;
  INSERT or UPDATE; COMMIT`` on a plain ``stock(store_id, sku, on_hand)`` table, with the SQLite settings of
  ``SqliteStockStore`` (WAL, synchronous=NORMAL) so only the design differs. It has no idempotency: resends
  count twice. One transaction per line takes minutes for 1M events, so it runs on the first
  ``--naive-events`` events of the same stream (same delivery), and its events/s is computed on that sample.
  Store operations per event = 2 per line applied (a read and a write) / events delivered.

* **cosmos** (once, not repeated; ``--cosmos-events 0``: none): the issue's "For Cosmos, count the operations
  and estimate request units per event from documented RU costs for your design and for the naive one (read +
  replace per line). Reach ≤ 0.5× the naive RU per event." ``apply_sales`` with ``CosmosStockStore`` on the
  npm Cosmos-API server (``@vercel/cosmosdb-server``; a fresh server and database), over the first
  ``--cosmos-events`` events of the same stream, same delivery. It imports and reuses
  ``tests.support.cosmos`` (emulator key, TLS transport, port helpers, ``ServerShimContainer``), with three
  bench-only speed-ups that change nothing the store sends: the server is started with HTTP keep-alive, each
  store gets its own container (the server scans the whole container per query), and a subclass of the shim
  emulates a transactional batch in 2-3 requests instead of one per operation. ``CountingContainer``,
  right under the store, counts what it sends by kind (point reads, creates, replaces, upserts, patches,
  queries; each operation inside ``execute_item_batch`` by kind, and the batch requests, failed ones apart) and
  the serialized size of ledger items and stock documents. RU are estimated from the documented costs at the
  top of bench/events_cosmos.py (``RU_*``, with their sources); the naive design is costed, not run: per line of a valid
  event a point read and a replace. Afterwards the stock documents are compared with ``expected_deltas`` of
  the sample. If the npm server is not installed, the report says so (exit status 0).

With ``--repeat`` > 1, each path runs that many times, ours and naive in turn (fresh stores each time), and the
median wall is reported. Progress goes to stderr, a Markdown report to stdout. The reach targets (ours ≥ 5× the naive
events/s; ours ≤ 0.5× the naive Cosmos RU/event) are informational: the exit status is 0 unless a run
crashed. Not part of the test suite.

The pieces: bench/events_stream.py (the stream, its cache, delivery, the ground truth), bench/events_cosmos.py
(the Cosmos DB child, its counting and the RU costs), bench/events_report.py (the Markdown report), and this file
(the embedded and naive children, the parent); timing, memory and provenance come from bench/harness.py.
"""


from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import harness
from events_cosmos import COSMOS_SERVER_BIN, child_cosmos
from events_report import report
from events_stream import (
    Progress,
    Stream,
    _diff,
    _stock_table,
    deliver,
    load_truth,
    raw_batches,
    sample_items,
    stream_for,
)
from harness import ROOT, say

NAIVE_SIGN = {"sale": -1, "return": 1, "receipt": 1, "adjustment": 1}


# --- the children --------------------------------------------------------------------------------------------

def _ours_pass(args: argparse.Namespace, stock, lake, telemetry) -> dict:
    from shared.services.apply_sales import ApplyCounts, apply_sales

    total = ApplyCounts()
    done = 0
    progress = Progress("ours", args.limit)
    sample: dict = {}
    with harness.stopwatch() as t:
        for raw in raw_batches(args.bodies, args.keys, args.limit, args.batch_size):
            total.add(apply_sales(raw, stock=stock, lake=lake, telemetry=telemetry))
            done += len(raw)
            progress.update(done)
            if not sample and done >= args.sample:  # the first batch boundary at or past the naive sample's size
                sample = {"events": done, "wall_s": t.lap(), "operations": total.operations}
    return {"wall_s": t.wall_s, "cpu_s": t.cpu_s, "events": done, "operations": total.operations,
            "counts": total.to_json(), "sample": sample}


def child_ours(args: argparse.Namespace) -> dict:
    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.stock_sqlite import SqliteStockStore
    from shared.adapters.telemetry import MemoryTelemetry

    work = Path(tempfile.mkdtemp(prefix="ours-", dir=args.work))
    try:
        db = work / "stock.sqlite"
        stock, lake, telemetry = SqliteStockStore(db), FolderLake(work / "lake"), MemoryTelemetry()
        first = _ours_pass(args, stock, lake, telemetry)
        first["peak_kb"] = harness.self_peak_kb()
        say(f"    ours: {first['wall_s']:.1f} s; checking the stock against expected_deltas ...")
        after_first = _stock_table(db)
        truth = load_truth(args.truth)
        first["cells"], first["stock_diff"] = len(after_first), _diff(after_first, truth)
        first["deadletter_files"] = sum(1 for _ in (work / "lake").rglob("*.jsonl"))
        say("    ours: full redelivery of the same stream to the same store ...")
        again = _ours_pass(args, stock, lake, telemetry)
        again["stock_diff"] = _diff(_stock_table(db), after_first)
        stock.close()
        first["db_mb"] = sum(f.stat().st_size for f in work.glob("stock.sqlite*")) / 1e6
        return {"first": first, "redelivery": again}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _naive_valid(doc: object) -> bool:
    """The basic check a typical consumer does: an object with a store, a known type, lines with sku and qty."""
    if not isinstance(doc, dict) or doc.get("type") not in NAIVE_SIGN or not isinstance(doc.get("eventId"), str):
        return False
    store, lines = doc.get("storeId"), doc.get("lines")
    if not isinstance(store, str) or not store or not isinstance(lines, list) or not lines:
        return False
    for line in lines:
        if not isinstance(line, dict):
            return False
        sku, qty = line.get("sku"), line.get("qty")
        if not isinstance(sku, str) or not sku.strip() or not isinstance(qty, int) or isinstance(qty, bool) or qty == 0:
            return False
    return True


def child_naive(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="naive-", dir=args.work))
    try:
        db = work / "stock.sqlite"
        con = sqlite3.connect(db, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA cache_size=-32768")  # as SqliteStockStore: only the design differs
        con.execute("CREATE TABLE stock (store_id TEXT NOT NULL, sku TEXT NOT NULL, on_hand INTEGER NOT NULL, "
                    "PRIMARY KEY (store_id, sku)) WITHOUT ROWID")
        applied = skipped = lines = ops = done = 0
        progress = Progress("naive", args.limit)
        with harness.stopwatch() as t:
            for _, batch in deliver(args.bodies, args.keys, args.limit, args.batch_size):
                for body in batch:
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        skipped += 1
                        continue
                    if not _naive_valid(doc):
                        skipped += 1
                        continue
                    store, sign = doc["storeId"], NAIVE_SIGN[doc["type"]]
                    for line in doc["lines"]:
                        sku = line["sku"].strip().upper()
                        con.execute("BEGIN")
                        row = con.execute("SELECT on_hand FROM stock WHERE store_id = ? AND sku = ?",
                                          (store, sku)).fetchone()
                        if row is None:
                            con.execute("INSERT INTO stock VALUES (?, ?, ?)", (store, sku, sign * line["qty"]))
                        else:
                            con.execute("UPDATE stock SET on_hand = ? WHERE store_id = ? AND sku = ?",
                                        (row[0] + sign * line["qty"], store, sku))
                        con.execute("COMMIT")
                        ops += 2
                        lines += 1
                    applied += 1
                done += len(batch)
                progress.update(done)
        peak = harness.self_peak_kb()
        con.close()

        # What the naive path got wrong, against the truth of its own sample (not timed).
        from shared.local.pos_traffic import DUPLICATE, VALID, expected_deltas

        items = list(sample_items(args.bodies, args.keys, args.limit))
        truth = expected_deltas(item for item, _ in items)
        kinds = Counter(item.kind for item, _ in items)
        dup_lines = sum(n for item, n in items if item.kind == DUPLICATE)
        delivered_lines = sum(n for item, n in items if item.kind in (VALID, DUPLICATE))
        return {"wall_s": t.wall_s, "cpu_s": t.cpu_s, "events": done, "applied": applied, "skipped": skipped,
                "lines": lines, "operations": ops, "peak_kb": peak, "kinds": dict(kinds),
                "delivered_lines": delivered_lines,
                "double_counted": kinds[DUPLICATE], "double_counted_lines": dup_lines,
                "malformed_accepted": applied - kinds[VALID] - kinds[DUPLICATE],
                "stock_diff": _diff(_stock_table(db), truth)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the parent ----------------------------------------------------------------------------------------------

@dataclass
class Run:
    path: str
    ok: bool
    result: dict = field(default_factory=dict)
    error: str = ""


def run_child(path: str, stream: Stream, limit: int, sample: int, batch_size: int, work: Path) -> Run:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", path, "--bodies", str(stream.bodies),
           "--keys", str(stream.keys), "--truth", str(stream.truth_file), "--limit", str(limit),
           "--sample", str(sample), "--batch-size", str(batch_size), "--work", str(work)]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # stderr: progress, passed through
    if proc.returncode != 0:
        return Run(path, False, error=f"exit {proc.returncode} (see stderr above)")
    try:
        return Run(path, True, json.loads(proc.stdout))
    except ValueError as exc:
        return Run(path, False, error=f"unreadable child output: {exc}: {proc.stdout[-500:]!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=1_000_000,
                    help="events in the stream (ours applies them all)")
    ap.add_argument("--naive-events", type=lambda s: int(s.replace("_", "")), default=100_000,
                    help="the naive path runs on the first N events of the same stream")
    ap.add_argument("--cosmos-events", type=lambda s: int(s.replace("_", "")), default=20_000,
                    help="the Cosmos DB run (npm server) on the first N events of the same stream; 0: none")
    ap.add_argument("--batch-size", type=int, default=500, help="events per delivered batch (maxEventBatchSize)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="stream cache and scratch folder")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path (median wall reported)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--child", choices=("ours", "naive", "cosmos"), help=argparse.SUPPRESS)
    for name in ("--bodies", "--keys", "--truth", "--work"):
        ap.add_argument(name, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        result = {"ours": child_ours, "naive": child_naive, "cosmos": child_cosmos}[args.child](args)
        json.dump(result, sys.stdout)
        return 0

    if args.events < 1 or args.naive_events < 1 or args.batch_size < 1 or args.repeat < 1:
        ap.error("--events, --naive-events, --batch-size and --repeat must be positive")
    if args.cosmos_events < 0:
        ap.error("--cosmos-events must be 0 (no Cosmos run) or positive")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="events-runs-", dir=out))  # this run's scratch (bench/ingest.py owns runs/)
    stream = stream_for(args.events, args.seed, out)
    naive_n = min(args.naive_events, args.events)
    harness.warm([stream.bodies, stream.keys])  # every path starts with the files in the page cache

    crashed = False

    def runner(path: str, limit: int):
        def run(i: int) -> Run:
            nonlocal crashed
            say(f"run {i + 1}/{args.repeat}: {path} on {limit:,} events ...")
            r = run_child(path, stream, limit, naive_n, args.batch_size, work)
            if not r.ok:
                crashed = True
                say(f"    {path}: FAILED: {r.error}")
            else:
                wall = r.result["first"]["wall_s"] if path == "ours" else r.result["wall_s"]
                say(f"    {path}: {wall:.1f} s, {limit / wall:,.0f} events/s")
            return r
        return path, run

    runs = harness.interleave(args.repeat, [runner("ours", args.events), runner("naive", naive_n)])
    ours, naive = runs["ours"], runs["naive"]

    cosmos_n = min(args.cosmos_events, args.events)
    if cosmos_n == 0:
        cosmos: dict = {"skipped": "`--cosmos-events 0`"}
    elif not COSMOS_SERVER_BIN.exists() or shutil.which("node") is None:
        cosmos = {"skipped": f"the npm Cosmos DB server is not installed (`{COSMOS_SERVER_BIN.relative_to(ROOT)}` "
                             "missing, or no `node`): run `npm ci`"}
        say(f"cosmos: skipped ({cosmos['skipped']})")
    else:
        say(f"cosmos: CosmosStockStore on the npm server, first {cosmos_n:,} events ...")
        r = run_child("cosmos", stream, cosmos_n, cosmos_n, args.batch_size, work)
        if r.ok:
            cosmos = r.result
            say(f"    cosmos: {r.result['wall_s']:.1f} s")
        else:
            crashed = True
            cosmos = {"error": r.error}
            say(f"    cosmos: FAILED: {r.error}")

    sys.stdout.write(report(harness.command(__file__, argv), args, stream, naive_n, ours, naive, cosmos))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
