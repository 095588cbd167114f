"""The event stream of bench/events.py: generated once and cached, delivered as Event Hubs would, and the
ground truth the runs are checked against (see bench/events.py's docstring)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

from harness import ROOT, say

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


def raw_batches(bodies: Path, keys: Path, limit: int, batch_size: int) -> Iterator[list]:
    """:func:`deliver`'s batches as ``apply_sales`` takes them: ``RawEvent`` objects with their Event Hubs partition and
    sequence number."""
    from shared.services.apply_sales import RawEvent

    seq = [0] * PARTITIONS
    for p, batch in deliver(bodies, keys, limit, batch_size):
        s = seq[p]
        seq[p] = s + len(batch)
        yield [RawEvent(body, f"eventhub:{p}:seq={s + i}") for i, body in enumerate(batch)]


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

