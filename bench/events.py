"""Benchmark: POS sale events through `apply_sales` on the embedded stock store, against a naive baseline.

    python bench/events.py [--events 1000000] [--naive-events 100000] [--batch-size 500] [--out bench/out]
                           [--repeat N] [--seed 42]

The issue: "1M events (Zipf over 5k skus, 50 stores, avg. 3 lines) through the apply service on the embedded
store, against a naive baseline (one read-modify-write transaction per line) in the same run: events/s and
store operations per event."

**The stream** is generated once and cached in ``--out`` as JSON lines (one event body a line, what a POS
sends), a ``.keys`` file beside it (``storeId<TAB>kind<TAB>lines`` a line: the partition key, and the ground
truth of what the body is) and a ``.truth.json`` (``expected_deltas`` of the stream, counts). The cache is
keyed by the parameters and a hash of ``shared/local/pos_traffic.py`` and of this file's generator, so a
generator change regenerates. 50 stores ``B001``..``B050``, 5,000 skus ``K-00000``..``K-04999``, about 2 %
resends (byte-for-byte, same ``eventId``) and 1 % malformed events. ``pos_traffic``'s basket mix (1-5 lines,
p = .40/.25/.17/.11/.07) averages ≈ 2.2 lines, well below the issue's 3, so the valid events and resends are
built here (:func:`bench_traffic`: the same Zipf law rank^-1.1 over the skus, the same event types and
quantities, stores of different sizes with 1-4 tills, 1-5 lines with p = .15/.20/.30/.20/.15, mean 3) and
only the malformed bodies come from ``pos_traffic`` (``malformed_share=1``: every reason code it can build).
Should ``pos_traffic`` ever average ≥ 2.7 lines, it is used as it is. The measured mean is reported.

**Delivery** is what Event Hubs does: each event goes to partition ``partition_for(storeId, 4)``, and each
partition is delivered in order, in batches of ``--batch-size`` (host.json's ``maxEventBatchSize``); a batch
is handed over as soon as its partition has that many events (the last ones at the end). The timed loop
reads the JSONL file, so reading and parsing are inside the timing, for both paths alike.

Each path runs in its own process (``--child ours|naive``), so peak RSS (the child's own VmHWM from
``/proc/self/status``) does not mix; wall time is the child's delivery loop (``time.perf_counter``), so
interpreter start, imports and creating the empty store are left out of both.

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

With ``--repeat`` > 1, each path runs that many times (fresh stores each time) and the median wall is
reported. Progress goes to stderr, a Markdown report to stdout. The reach target (ours ≥ 5× the naive
events/s) is informational: the exit status is 0 unless a run crashed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POS_TRAFFIC = ROOT / "shared" / "local" / "pos_traffic.py"
STORES = tuple(f"B{i:03d}" for i in range(1, 51))
SKUS = tuple(f"K-{i:05d}" for i in range(5000))
START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # fixed, and in the past (no future_timestamp)
RATE_PER_S = 50.0
DUPLICATE_SHARE = 0.02
MALFORMED_SHARE = 0.01
PARTITIONS = 4
LINES_P = (0.15, 0.20, 0.30, 0.20, 0.15)  # 1..5 lines per event: mean 3.0
LINES_TARGET = 3.0
POS_SAMPLE = 20_000  # events of pos_traffic's own mix measured for its mean lines/event
TARGET_SPEEDUP = 5.0  # ours events/s ÷ naive events/s, at least
NAIVE_SIGN = {"sale": -1, "return": 1, "receipt": 1, "adjustment": 1}

# --- Cosmos DB request units (RU) per operation, from Microsoft's documentation ------------------------------
# Every item written here is well under 1 KB (the bench measures and reports their sizes), so the documented
# 1 KB figures are used as they are: a conservative (upper-bound) cost per operation.
#
# https://learn.microsoft.com/azure/cosmos-db/request-units
#   "A point read for a 1-KB item is equivalent to one Request Unit (RU)."
RU_POINT_READ = 1.0
# https://learn.microsoft.com/azure/cosmos-db/optimize-cost-reads-writes ("Writing data")
#   "Inserting a 1 KB item without indexing costs around ~5.5 RUs. Replacing an item costs two times the charge
#   required to insert the same item."  (The stock container indexes 4 paths + id, not nothing; 5.5 is the
#   documented floor for an insert and is used as the insert cost.)
RU_CREATE = 5.5
RU_REPLACE = 2 * RU_CREATE
RU_UPSERT = RU_REPLACE  # assumption: an upsert is billed like a replace of the item (the dearer case)
RU_DELETE = RU_CREATE  # assumption (apply never deletes)
# https://learn.microsoft.com/azure/cosmos-db/partial-document-update-faq ("How is RU/s pricing calculated?")
#   "Partial Document Update is normalized into request unit billing in the same way as other database
#   operations. Users shouldn't expect a significant reduction in RU."  -> a patch is billed like a replace.
RU_PATCH = RU_REPLACE
# Queries: the docs give no minimum charge. Assumption: 3 RU per single-partition query returning a few small
# items; the query-metrics example on optimize-cost-reads-writes (above) shows "Request Charge : 3.19 RUs" for
# a query that retrieves 1 document.
RU_QUERY = 3.0
# Transactional batch: the docs give no RU rule for it. Assumption: a batch costs the sum of its operations
# (the .NET SDK reports a charge per operation inside a batch: https://github.com/Azure/azure-cosmos-dotnet-v3/pull/925),
# and a batch that fails is charged in full (an upper bound: the service stops at the failing operation).
RU_BATCH_OP = {"create": RU_CREATE, "patch": RU_PATCH, "replace": RU_REPLACE, "upsert": RU_UPSERT,
               "read": RU_POINT_READ, "delete": RU_DELETE}
RU_NAIVE_LINE = RU_POINT_READ + RU_REPLACE  # naive Cosmos design: read the sku's document, replace it
COSMOS_TARGET_RATIO = 0.5  # ours RU/event ÷ naive RU/event, at most


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def vm_hwm_kb() -> int:
    """This process's peak RSS (the kernel's high-water mark of its own address space)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB (may include the forking parent)


# --- the stream ----------------------------------------------------------------------------------------------

def bench_traffic(stores: Sequence[str], skus: Sequence[str], *, count: int, seed: int, start: datetime,
                  rate_per_s: float, duplicate_share: float, malformed_share: float) -> Iterator[tuple[object, int]]:
    """(TrafficItem, lines) like ``pos_traffic`` but with 1-5 lines per event averaging 3 (``LINES_P``).

    Valid events and resends are built here with pos_traffic's constants (Zipf law, event types, quantities,
    store offsets, tills, resend window); malformed bodies are drawn from ``pos_traffic`` itself. ``lines``
    is the event's line count for valid events and resends, 0 for malformed ones."""
    from shared.local import pos_traffic as pt

    rng = random.Random(seed)
    sku_cum = list(accumulate((rank + 1) ** -pt.ZIPF_A for rank in range(len(skus))))
    tills: list[list] = []  # [store, number, tz or None (UTC "Z"), seq]
    till_cum: list[float] = []
    for store in stores:
        offset = timezone(rng.choice(pt.STORE_OFFSETS))
        size = rng.uniform(0.5, 2.0)
        n_tills = rng.randint(1, pt.MAX_TILLS)
        for n in range(1, n_tills + 1):
            tills.append([store, n, None if rng.random() < pt.UTC_SHARE else offset, 0])
            till_cum.append((till_cum[-1] if till_cum else 0.0) + size / n_tills)
    malformed = pt.pos_traffic(stores, skus, count=count, seed=seed + 1, start=start, rate_per_s=rate_per_s,
                               duplicate_share=0.0, malformed_share=1.0)
    types, type_w = list(pt.EVENT_TYPE_WEIGHTS), list(pt.EVENT_TYPE_WEIGHTS.values())
    qty_for = {"receipt": pt.RECEIPT_QTY, "adjustment": pt.ADJUSTMENT_QTY}
    n_lines = range(1, len(LINES_P) + 1)
    recent: deque[tuple[object, int]] = deque(maxlen=pt.RESEND_WINDOW)
    elapsed = 0.0
    for _ in range(count):
        elapsed += rng.expovariate(rate_per_s)
        draw = rng.random()
        if draw < duplicate_share and recent:
            original, n = rng.choice(recent)
            yield pt.TrafficItem(original.body, original.store_id, pt.DUPLICATE), n
        elif duplicate_share <= draw < duplicate_share + malformed_share:
            yield next(malformed), 0
        else:
            till = rng.choices(tills, cum_weights=till_cum)[0]
            till[3] += 1
            moment = start + timedelta(seconds=elapsed)
            if till[2] is None:
                stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            else:
                stamp = moment.astimezone(till[2]).isoformat(timespec="milliseconds")
            kind = rng.choices(types, type_w)[0]
            qtys, weights = qty_for.get(kind, pt.SALE_QTY)
            n = rng.choices(n_lines, LINES_P)[0]
            lines = []
            for sku in rng.choices(skus, cum_weights=sku_cum, k=n):
                line: dict = {"sku": sku, "qty": rng.choices(qtys, weights)[0]}
                if kind in ("sale", "return"):
                    line["unitPrice"] = 0.99 + int(sku[2:]) % 40
                lines.append(line)
            doc = {"eventId": f"{till[0]}-pos{till[1]}-{till[3]:08d}", "storeId": till[0], "type": kind,
                   "occurredAt": stamp, "lines": lines}
            item = pt.TrafficItem(json.dumps(doc, separators=(",", ":")).encode("ascii"), till[0], pt.VALID)
            recent.append((item, n))
            yield item, n


def _pos_traffic_items(count: int, seed: int) -> Iterator[tuple[object, int]]:
    """pos_traffic as it is, with each item's line count (used only if its mix already averages ≈ 3)."""
    from shared.local.pos_traffic import DUPLICATE, VALID, pos_traffic

    for item in pos_traffic(STORES, SKUS, count=count, seed=seed, start=START, rate_per_s=RATE_PER_S,
                            duplicate_share=DUPLICATE_SHARE, malformed_share=MALFORMED_SHARE):
        yield item, (len(json.loads(item.body)["lines"]) if item.kind in (VALID, DUPLICATE) else 0)


def pos_traffic_mean_lines(seed: int) -> float:
    """Mean lines per valid event of pos_traffic's own mix, measured on POS_SAMPLE events."""
    from shared.local.pos_traffic import VALID, pos_traffic

    n = lines = 0
    for item in pos_traffic(STORES, SKUS, count=POS_SAMPLE, seed=seed, start=START, rate_per_s=RATE_PER_S,
                            duplicate_share=DUPLICATE_SHARE, malformed_share=MALFORMED_SHARE):
        if item.kind == VALID:
            n += 1
            lines += len(json.loads(item.body)["lines"])
    return lines / n if n else 0.0


def _generator_sha() -> str:
    h = hashlib.sha256(POS_TRAFFIC.read_bytes())
    for fn in (bench_traffic, _pos_traffic_items):
        h.update(inspect.getsource(fn).encode())
    h.update(repr((STORES, SKUS, START, RATE_PER_S, LINES_P)).encode())
    return h.hexdigest()[:12]


@dataclass
class Stream:
    bodies: Path
    keys: Path
    truth_file: Path
    meta: dict


def stream_for(n: int, seed: int, out: Path) -> Stream:
    """The cached stream of ``n`` events (generated on first use), its keys and its ground truth."""
    from shared.local.pos_traffic import DUPLICATE, VALID, expected_deltas

    sha = _generator_sha()
    stem = (f"events-n{n}-seed{seed}-s{len(STORES)}-k{len(SKUS)}-d{DUPLICATE_SHARE:g}-m{MALFORMED_SHARE:g}"
            f"-{sha}")
    bodies, keys, truth_file = out / f"{stem}.jsonl", out / f"{stem}.keys", out / f"{stem}.truth.json"
    if bodies.exists() and keys.exists() and truth_file.exists():
        meta = json.loads(truth_file.read_text())["meta"]
        say(f"using cached {bodies.name} ({bodies.stat().st_size / 1e6:.0f} MB)")
        return Stream(bodies, keys, truth_file, meta)

    out.mkdir(parents=True, exist_ok=True)
    say(f"measuring pos_traffic's own mix on {POS_SAMPLE:,} events ...")
    pos_mean = pos_traffic_mean_lines(seed)
    own = pos_mean < LINES_TARGET - 0.3
    source = "bench_traffic" if own else "pos_traffic"
    say(f"pos_traffic averages {pos_mean:.2f} lines/event: generating {n:,} events with {source} ...")
    items = (bench_traffic(STORES, SKUS, count=n, seed=seed, start=START, rate_per_s=RATE_PER_S,
                           duplicate_share=DUPLICATE_SHARE, malformed_share=MALFORMED_SHARE) if own
             else _pos_traffic_items(n, seed))
    kinds: Counter[str] = Counter()
    valid_lines = delivered_lines = 0
    t0 = time.perf_counter()
    tmp_b, tmp_k = bodies.with_suffix(".jsonl.partial"), keys.with_suffix(".keys.partial")
    with open(tmp_b, "wb") as fb, open(tmp_k, "w") as fk:

        def tee() -> Iterator[object]:
            nonlocal valid_lines, delivered_lines
            for i, (item, lines) in enumerate(items, 1):
                fb.write(item.body + b"\n")
                fk.write(f"{item.store_id}\t{item.kind}\t{lines}\n")
                kinds[item.kind] += 1
                if item.kind == VALID:
                    valid_lines += lines
                if item.kind in (VALID, DUPLICATE):
                    delivered_lines += lines
                if i % 200_000 == 0:
                    say(f"    {i:,} events ({time.perf_counter() - t0:.0f} s)")
                yield item

        truth = expected_deltas(tee())
    os.replace(tmp_b, bodies)
    os.replace(tmp_k, keys)
    meta = {"generator_sha": sha, "source": source, "events": n, "seed": seed, "kinds": dict(kinds),
            "valid_lines": valid_lines, "delivered_lines": delivered_lines,
            "mean_lines": valid_lines / kinds[VALID] if kinds[VALID] else 0.0,
            "pos_traffic_mean_lines": pos_mean, "cells": len(truth)}
    truth_file.write_text(json.dumps({"meta": meta, "deltas": {f"{s}\t{k}": d for (s, k), d in truth.items()}}))
    say(f"generated in {time.perf_counter() - t0:.1f} s ({bodies.stat().st_size / 1e6:.0f} MB, "
        f"mean {meta['mean_lines']:.2f} lines/event)")
    return Stream(bodies, keys, truth_file, meta)


def load_truth(path: Path) -> dict[tuple[str, str], int]:
    return {tuple(k.split("\t", 1)): d for k, d in json.loads(path.read_text())["deltas"].items()}


# --- delivery (inside the timed loop) ------------------------------------------------------------------------

def deliver(bodies: Path, keys: Path, limit: int, batch_size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(partition, batch of bodies): the first ``limit`` events routed by ``partition_for(storeId, 4)`` and
    handed over per partition, in order, ``batch_size`` at a time (the remainders at the end)."""
    from shared.adapters.queue_sqlite import partition_for

    buffers: list[list[bytes]] = [[] for _ in range(PARTITIONS)]
    with open(bodies, "rb") as fb, open(keys) as fk:
        for i, (body, key) in enumerate(zip(fb, fk, strict=True)):
            if i >= limit:
                break
            p = partition_for(key[:key.index("\t")], PARTITIONS)
            buf = buffers[p]
            buf.append(body[:-1] if body.endswith(b"\n") else body)
            if len(buf) >= batch_size:
                yield p, buf
                buffers[p] = []
    for p, buf in enumerate(buffers):
        if buf:
            yield p, buf


def sample_items(stream_bodies: Path, keys: Path, limit: int) -> Iterator[tuple[object, int]]:
    """The first ``limit`` items of the stream as TrafficItems (for ground truth; not timed)."""
    from shared.local.pos_traffic import TrafficItem

    with open(stream_bodies, "rb") as fb, open(keys) as fk:
        for i, (body, key) in enumerate(zip(fb, fk, strict=True)):
            if i >= limit:
                break
            store, kind, lines = key.rstrip("\n").split("\t")
            yield TrafficItem(body[:-1] if body.endswith(b"\n") else body, store, kind), int(lines)


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.t0 = label, total, time.perf_counter()
        self.step = max(total // 10, 1)
        self.next = self.step

    def update(self, done: int) -> None:
        if done >= self.next:
            el = time.perf_counter() - self.t0
            say(f"    {self.label}: {done:,}/{self.total:,} events, {el:.1f} s, {done / el:,.0f} events/s")
            while self.next <= done:
                self.next += self.step


# --- the children --------------------------------------------------------------------------------------------

def _stock_table(path: Path) -> dict[tuple[str, str], int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {(s, k): q for s, k, q in con.execute("SELECT store_id, sku, on_hand FROM stock")}
    finally:
        con.close()


def _diff(got: dict, want: dict) -> tuple[int, int]:
    """(cells that differ, Σ |difference|) between two (store, sku) -> quantity maps (absent = missing)."""
    cells = units = 0
    for key in set(got) | set(want):
        if key not in got or key not in want or got[key] != want[key]:
            cells += 1
            units += abs(got.get(key, 0) - want.get(key, 0))
    return cells, units


def _ours_pass(args: argparse.Namespace, stock, lake, telemetry) -> dict:
    from shared.services.apply_sales import ApplyCounts, RawEvent, apply_sales

    total = ApplyCounts()
    seq = [0] * PARTITIONS
    done = 0
    progress = Progress("ours", args.limit)
    sample: dict = {}
    t0 = time.perf_counter()
    for p, batch in deliver(args.bodies, args.keys, args.limit, args.batch_size):
        s = seq[p]
        raw = [RawEvent(body, f"eventhub:{p}:seq={s + i}") for i, body in enumerate(batch)]
        seq[p] = s + len(batch)
        total.add(apply_sales(raw, stock=stock, lake=lake, telemetry=telemetry))
        done += len(batch)
        progress.update(done)
        if not sample and done >= args.sample:  # the first batch boundary at or past the naive sample's size
            sample = {"events": done, "wall_s": time.perf_counter() - t0, "operations": total.operations}
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "events": done, "operations": total.operations, "counts": total.to_json(),
            "sample": sample}


def child_ours(args: argparse.Namespace) -> dict:
    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.stock_sqlite import SqliteStockStore
    from shared.adapters.telemetry import MemoryTelemetry

    work = Path(tempfile.mkdtemp(prefix="ours-", dir=args.work))
    try:
        db = work / "stock.sqlite"
        stock, lake, telemetry = SqliteStockStore(db), FolderLake(work / "lake"), MemoryTelemetry()
        first = _ours_pass(args, stock, lake, telemetry)
        first["peak_kb"] = vm_hwm_kb()
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
        t0 = time.perf_counter()
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
        wall = time.perf_counter() - t0
        peak = vm_hwm_kb()
        con.close()

        # What the naive path got wrong, against the truth of its own sample (not timed).
        from shared.local.pos_traffic import DUPLICATE, VALID, expected_deltas

        items = list(sample_items(args.bodies, args.keys, args.limit))
        truth = expected_deltas(item for item, _ in items)
        kinds = Counter(item.kind for item, _ in items)
        dup_lines = sum(n for item, n in items if item.kind == DUPLICATE)
        delivered_lines = sum(n for item, n in items if item.kind in (VALID, DUPLICATE))
        return {"wall_s": wall, "events": done, "applied": applied, "skipped": skipped, "lines": lines,
                "operations": ops, "peak_kb": peak, "kinds": dict(kinds), "delivered_lines": delivered_lines,
                "double_counted": kinds[DUPLICATE], "double_counted_lines": dup_lines,
                "malformed_accepted": applied - kinds[VALID] - kinds[DUPLICATE],
                "stock_diff": _diff(_stock_table(db), truth)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the Cosmos child: apply_sales with CosmosStockStore on the npm server, operations counted -----------------

def _body_bytes(body: object) -> int:
    return len(json.dumps(body).encode("utf-8"))


class CountingContainer:
    """A thin ContainerProxy wrapper that counts what ``CosmosStockStore`` asks of Cosmos, by kind.

    Sits between the store and ``ServerShimContainer`` (which emulates transactional batch on the npm server
    with many plain requests of its own): what is counted is what the store would send to Azure. Point
    operations and queries count one request each (``query_items`` calls: every query here is single-partition
    and returns one page); ``execute_item_batch`` counts one batch request and each operation in it by kind.
    Also records the serialized size of the ledger items and stock documents written (``json.dumps`` of the
    body as sent) and, per batch, its events (ledger creates), distinct skus (stock patches) and lines."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.point: Counter[str] = Counter()  # read / create / replace / upsert / patch / delete, outside batches
        self.queries: Counter[str] = Counter()  # by what the query looks up: event ids, stock ids, stock, other
        self.batch_ops: Counter[str] = Counter()  # operations inside committed batches, by kind
        self.failed_ops: Counter[str] = Counter()  # operations inside batches that failed, by kind
        self.failed: Counter[int] = Counter()  # failed batches by status (404: missing stock doc, 409: resend)
        self.batches = 0  # committed batch requests
        self.events_per_batch: list[int] = []
        self.skus_per_batch: list[int] = []
        self.ops_per_batch: list[int] = []
        self.lines = 0  # lines (ledger deltas) of committed batches
        self.sizes: dict[str, list[int]] = {k: [0, 0] for k in ("event", "stock", "baseline")}  # [n, Σ bytes]

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def _size(self, body: object) -> None:
        kind = body.get("type") if isinstance(body, dict) else None
        if kind in self.sizes:
            self.sizes[kind][0] += 1
            self.sizes[kind][1] += _body_bytes(body)

    def read_item(self, *args, **kwargs):
        self.point["read"] += 1
        return self._inner.read_item(*args, **kwargs)

    def create_item(self, body, *args, **kwargs):
        self.point["create"] += 1
        self._size(body)
        return self._inner.create_item(body, *args, **kwargs)

    def replace_item(self, item, body, *args, **kwargs):
        self.point["replace"] += 1
        self._size(body)
        return self._inner.replace_item(item, body, *args, **kwargs)

    def upsert_item(self, body, *args, **kwargs):
        self.point["upsert"] += 1
        self._size(body)
        return self._inner.upsert_item(body, *args, **kwargs)

    def patch_item(self, *args, **kwargs):
        self.point["patch"] += 1
        return self._inner.patch_item(*args, **kwargs)

    def delete_item(self, *args, **kwargs):
        self.point["delete"] += 1
        return self._inner.delete_item(*args, **kwargs)

    def query_items(self, query, *args, **kwargs):
        params = {p["name"]: p["value"] for p in kwargs.get("parameters") or ()}
        what = ("ids:" + str(params["@t"]) if "@t" in params and "@ids" in params
                else "stock" if "'stock'" in query else "other")
        self.queries[what] += 1
        return self._inner.query_items(query, *args, **kwargs)

    def execute_item_batch(self, batch_operations, *args, **kwargs):
        from azure.cosmos.exceptions import CosmosBatchOperationError

        ops = list(batch_operations)
        kinds = Counter(op[0].lower() for op in ops)
        try:
            result = self._inner.execute_item_batch(ops, *args, **kwargs)
        except CosmosBatchOperationError as exc:
            self.failed[exc.status_code] += 1
            self.failed_ops.update(kinds)
            raise
        self.batches += 1
        self.batch_ops.update(kinds)
        events = skus = 0
        for op in ops:
            kind = op[0].lower()
            if kind == "create":
                body = op[1][0]
                self._size(body)
                if body.get("type") == "event":
                    events += 1
                    self.lines += len(body.get("deltas") or ())
            elif kind == "patch" and str(op[1][0]).startswith("stock:"):
                skus += 1
        self.events_per_batch.append(events)
        self.skus_per_batch.append(skus)
        self.ops_per_batch.append(len(ops))
        return result

    def snapshot(self) -> dict:
        return {"point": dict(self.point), "queries": dict(self.queries), "batches": self.batches,
                "batch_ops": dict(self.batch_ops), "failed": {str(k): v for k, v in self.failed.items()},
                "failed_ops": dict(self.failed_ops), "lines": self.lines,
                "events_per_batch": self.events_per_batch, "skus_per_batch": self.skus_per_batch,
                "ops_per_batch": self.ops_per_batch, "sizes": self.sizes}


def child_cosmos(args: argparse.Namespace) -> dict:
    """``apply_sales`` with a ``CosmosStockStore`` on the npm Cosmos-API server, through
    ``tests.support.cosmos`` (server start-up, TLS transport, ``ServerShimContainer``), counted by
    :class:`CountingContainer`. Then the stock documents are checked against ``expected_deltas`` of the
    sample. A fresh server (and database) per run."""
    import uuid

    sys.path.insert(0, str(ROOT))  # tests/ is not an installed package
    import pytest
    from azure.cosmos import CosmosClient

    from shared.adapters.lake_folder import FolderLake
    from shared.adapters.stock_cosmos import CosmosStockStore, client_options, ensure_container
    from shared.adapters.telemetry import MemoryTelemetry
    from shared.local.pos_traffic import DUPLICATE, VALID, expected_deltas
    from shared.services.apply_sales import ApplyCounts, RawEvent, apply_sales
    from tests.support import cosmos as tc

    work = Path(tempfile.mkdtemp(prefix="cosmos-", dir=args.work))
    proc = client = None
    try:
        with tc._unverified_tls_ok():
            try:
                proc, port = tc._start_server(work / "cosmos-server.log")
            except pytest.fail.Exception as exc:  # the helper reports start-up failures through pytest.fail
                raise RuntimeError(str(exc)) from None
            client = CosmosClient(f"https://{tc.HOST}:{port}/", credential=tc.EMULATOR_KEY, connection_verify=False,
                                  transport=tc._unverified_tls_transport(), **client_options())
            container = ensure_container(client, tc.CONTAINER, f"bench-{uuid.uuid4().hex[:12]}")
            counting = CountingContainer(tc.ServerShimContainer(container))
            stock = CosmosStockStore(counting, ledger_ttl_s=tc.LEDGER_TTL_S)
            lake, telemetry = FolderLake(work / "lake"), MemoryTelemetry()

            total = ApplyCounts()
            seq = [0] * PARTITIONS
            done = calls = 0
            progress = Progress("cosmos", args.limit)
            t0 = time.perf_counter()
            for p, batch in deliver(args.bodies, args.keys, args.limit, args.batch_size):
                s = seq[p]
                raw = [RawEvent(body, f"eventhub:{p}:seq={s + i}") for i, body in enumerate(batch)]
                seq[p] = s + len(batch)
                counts = apply_sales(raw, stock=stock, lake=lake, telemetry=telemetry)
                total.add(counts)
                calls += counts.stores
                done += len(batch)
                progress.update(done)
            wall = time.perf_counter() - t0
            counted = counting.snapshot()  # before the check below, whose queries are not part of apply

            say("    cosmos: checking the stock documents against expected_deltas of the sample ...")
            items = list(sample_items(args.bodies, args.keys, args.limit))
            truth = expected_deltas(item for item, _ in items)
            got = {(store, d.sku): d.on_hand for store in STORES for d in stock.stock(store)}
        kinds = Counter(item.kind for item, _ in items)
        return {"wall_s": wall, "events": done, "apply_calls": calls, "operations": total.operations,
                "counts": total.to_json(), "kinds": dict(kinds),
                "valid_lines": sum(n for item, n in items if item.kind == VALID),
                "delivered_lines": sum(n for item, n in items if item.kind in (VALID, DUPLICATE)),
                "cells": len(truth), "stock_diff": _diff(got, truth), "counted": counted}
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            tc._stop(proc)
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


def cosmos_section(ours: dict, naive: dict, stream: dict) -> str:
    """Cosmos DB RU estimates for the same stream (Markdown section, or "" for none).

    TODO(lead): fill in the RU estimates (ours' ledger + patch batches vs naive read + replace per line);
    until then this section is left out of the report."""
    return ""


def _cmdline() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = [sys.executable, *sys.argv]
    return shlex.join(argv)


def _median(runs: list[Run], get) -> float:
    vals = [get(r.result) for r in runs if r.ok]
    return statistics.median(vals) if vals else float("nan")


def _rate(n: float, s: float) -> str:
    return f"{n / s:,.0f}" if s > 0 else "-"


def report(cmdline: str, args: argparse.Namespace, stream: Stream, naive_n: int, ours: list[Run],
           naive: list[Run]) -> str:
    m = stream.meta
    kinds = m["kinds"]
    n = m["events"]
    malformed = n - kinds.get("valid", 0) - kinds.get("duplicate", 0)
    lines = ["# Events benchmark: `apply_sales` on the embedded store vs one transaction per line", "",
             f"Command: `{cmdline}`", "",
             f"Stream: {n:,} events ({kinds.get('valid', 0):,} valid, {kinds.get('duplicate', 0):,} resends, "
             f"{malformed:,} malformed), {len(STORES)} stores, {len(SKUS):,} skus (Zipf rank^-1.1), seed "
             f"{m['seed']}, built by `{m['source']}`; **mean lines/event {m['mean_lines']:.2f}** (valid events; "
             f"pos_traffic's own mix: {m['pos_traffic_mean_lines']:.2f} on {POS_SAMPLE:,} events). Delivered as "
             f"Event Hubs would: {PARTITIONS} partitions by `partition_for(storeId, {PARTITIONS})`, in order, "
             f"batches of {args.batch_size}. {os.cpu_count()} CPUs. Wall = the child's delivery loop (reading "
             f"the JSONL file, parsing, applying), median of {args.repeat} run(s); peak RSS = the child's VmHWM "
             "(largest run). lines/s counts the lines of the delivered valid events and resends.", "",
             "| path | events | wall s | events/s | lines/s | store ops/event | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    rates: dict[str, float] = {}
    ok_ours, ok_naive = [r for r in ours if r.ok], [r for r in naive if r.ok]
    if ok_ours:
        wall = _median(ours, lambda r: r["first"]["wall_s"])
        first = ok_ours[0].result["first"]
        rates["ours"] = first["events"] / wall
        peak = max(r.result["first"]["peak_kb"] for r in ok_ours) / 1024
        lines.append(f"| ours (`apply_sales`, `SqliteStockStore`) | {first['events']:,} | {wall:.2f} "
                     f"| {_rate(first['events'], wall)} | {_rate(m['delivered_lines'], wall)} "
                     f"| {first['operations'] / first['events']:.2f} | {peak:.0f} |")
        wall2 = _median(ours, lambda r: r["redelivery"]["wall_s"])
        again = ok_ours[0].result["redelivery"]
        s0 = first["sample"]
        if s0 and s0["events"] < first["events"]:
            s_wall = _median(ours, lambda r: r["first"]["sample"]["wall_s"])
            rates["ours_sample"] = s0["events"] / s_wall
            lines.append(f"| ours, its first {s0['events']:,} events (≈ the naive sample; batch boundary) "
                         f"| {s0['events']:,} | {s_wall:.2f} | {_rate(s0['events'], s_wall)} | - "
                         f"| {s0['operations'] / s0['events']:.2f} | - |")
        lines.append(f"| ours, full redelivery (same store) | {again['events']:,} | {wall2:.2f} "
                     f"| {_rate(again['events'], wall2)} | {_rate(m['delivered_lines'], wall2)} "
                     f"| {again['operations'] / again['events']:.2f} | - |")
    else:
        lines.append("| ours | - | FAILED | - | - | - | - |")
    if ok_naive:
        wall = _median(naive, lambda r: r["wall_s"])
        r0 = ok_naive[0].result
        rates["naive"] = r0["events"] / wall
        peak = max(r.result["peak_kb"] for r in ok_naive) / 1024
        lines.append(f"| naive (1 transaction per line; first {r0['events']:,} events) | {r0['events']:,} "
                     f"| {wall:.2f} | {_rate(r0['events'], wall)} | {_rate(r0['delivered_lines'], wall)} "
                     f"| {r0['operations'] / r0['events']:.2f} | {peak:.0f} |")
    else:
        lines.append("| naive | - | FAILED | - | - | - | - |")

    lines += ["", "## Reach target (informational)", "", "| target | value | |", "|---|---|---|"]
    if "ours" in rates and "naive" in rates:
        x = rates["ours"] / rates["naive"]
        verdict = "met" if x >= TARGET_SPEEDUP else "NOT met"
        lines.append(f"| ours events/s ≥ {TARGET_SPEEDUP:g}× naive events/s | {x:.1f}× "
                     f"({rates['ours']:,.0f} vs {rates['naive']:,.0f}) | {verdict} |")
        if "ours_sample" in rates:
            x = rates["ours_sample"] / rates["naive"]
            lines.append(f"| (like for like: ours on its first ≈ {naive_n:,} events vs naive on the same) | {x:.1f}× "
                         f"({rates['ours_sample']:,.0f} vs {rates['naive']:,.0f}) | "
                         f"{'met' if x >= TARGET_SPEEDUP else 'NOT met'} |")
    else:
        lines.append(f"| ours events/s ≥ {TARGET_SPEEDUP:g}× naive events/s | - | a run failed |")

    lines += ["", "## Checks", ""]
    for i, r in enumerate(ours, 1):
        if not r.ok:
            lines.append(f"- ours run {i}: **failed**: {r.error}")
            continue
        first, again = r.result["first"], r.result["redelivery"]
        cells, units = first["stock_diff"]
        lines.append(f"- ours run {i}: stock vs `expected_deltas` of the stream ({m['cells']:,} (store, sku) "
                     f"cells): " + ("**OK**" if cells == 0 else f"**MISMATCH** in {cells:,} cells (Σ|diff| "
                                                                  f"{units:,})"))
        c = first["counts"]
        want = {"applied": kinds.get("valid", 0), "duplicate": kinds.get("duplicate", 0), "deadlettered": malformed}
        bad = [f"{k} {c[k]:,} ≠ {v:,}" for k, v in want.items() if c[k] != v]
        lines.append(f"- ours run {i}: counts: applied {c['applied']:,}, duplicates {c['duplicate']:,}, "
                     f"dead-lettered {c['deadlettered']:,} in {first['deadletter_files']:,} files (by reason: "
                     + ", ".join(f"{k} {v:,}" for k, v in c["reasons"].items()) + "): "
                     + ("**OK** (= valid events, resends, malformed)" if not bad
                        else "**MISMATCH**: " + "; ".join(bad)))
        cells2, units2 = again["stock_diff"]
        c2 = again["counts"]
        lines.append(f"- ours run {i}: full redelivery: stock "
                     + ("**unchanged (OK)**" if cells2 == 0
                        else f"**CHANGED** in {cells2:,} cells (Σ|diff| {units2:,})")
                     + f"; applied {c2['applied']:,}, duplicates {c2['duplicate']:,}; "
                     f"stock file {first['db_mb']:.0f} MB after both passes")
    for i, r in enumerate(naive, 1):
        if not r.ok:
            lines.append(f"- naive run {i}: **failed**: {r.error}")
            continue
        x = r.result
        cells, units = x["stock_diff"]
        lines.append(f"- naive run {i}: applied {x['applied']:,} of {x['events']:,} events ({x['lines']:,} lines, "
                     f"{x['skipped']:,} skipped as bad); **double-counted {x['double_counted']:,} resends** "
                     f"({x['double_counted_lines']:,} lines); accepted {x['malformed_accepted']:,} malformed events "
                     f"its basic check let through; its stock differs from the truth of its sample in {cells:,} "
                     f"(store, sku) cells (Σ|diff| {units:,} units)")

    lines += ["", "## Notes", "",
              f"- The naive path runs on the first {naive_n:,} events of the same stream (same partitions and "
              "batches) because one transaction per line takes minutes for 1M events; its events/s is computed "
              "on that sample. It has no idempotency, so resends count twice (above).",
              "- ours' store operations: per `apply` call 1 baseline read, 1 ledger lookup per event id, 1 "
              "ledger insert per new event and 1 upsert per distinct (store, sku) of the call "
              "(`ApplyResult.operations`); all of one call in one `BEGIN IMMEDIATE` transaction. naive: a read "
              "and a write per line, one transaction each.",
              "- Both paths use WAL with synchronous=NORMAL; the naive table has only (store_id, sku, on_hand), "
              "so its writes are, if anything, smaller than ours."]
    cosmos = cosmos_section(ours[0].result if ok_ours else {}, naive[0].result if ok_naive else {}, m)
    if cosmos:
        lines += ["", cosmos.rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=1_000_000,
                    help="events in the stream (ours applies them all)")
    ap.add_argument("--naive-events", type=lambda s: int(s.replace("_", "")), default=100_000,
                    help="the naive path runs on the first N events of the same stream")
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
    cmdline = _cmdline()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="events-runs-", dir=out))  # this run's scratch (bench/ingest.py owns runs/)
    stream = stream_for(args.events, args.seed, out)
    naive_n = min(args.naive_events, args.events)
    for f in (stream.bodies, stream.keys):  # every path starts with the files in the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass

    ours: list[Run] = []
    naive: list[Run] = []
    crashed = False
    for i in range(1, args.repeat + 1):
        for path, limit, runs in (("ours", args.events, ours), ("naive", naive_n, naive)):
            say(f"run {i}/{args.repeat}: {path} on {limit:,} events ...")
            r = run_child(path, stream, limit, naive_n, args.batch_size, work)
            runs.append(r)
            if not r.ok:
                crashed = True
                say(f"    {path}: FAILED: {r.error}")
            else:
                wall = r.result["first"]["wall_s"] if path == "ours" else r.result["wall_s"]
                say(f"    {path}: {wall:.1f} s, {limit / wall:,.0f} events/s")

    sys.stdout.write(report(cmdline, args, stream, naive_n, ours, naive))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
