"""Commands for sale events and stock: ``events apply|consume``, ``pos send|simulate``, ``stock``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from shared.local.cli.output import err, number, print_json


def _read_event_lines(path: str, *, deadletter: bool):  # generator of (RawEvent | None, bytes read)
    """Events of a JSON-lines file (``-`` for stdin), one raw body per non-blank line. With ``deadletter``
    each line is a dead-letter record and its original body is replayed."""
    import base64
    import json

    from shared.core.events import RawEvent

    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        for n, line in enumerate(stream, 1):
            size = len(line)
            line = line.strip()
            if not line:
                yield None, size
                continue
            if deadletter:
                try:
                    rec = json.loads(line)
                    line = (rec["body"].encode("utf-8") if "body" in rec
                            else base64.b64decode(rec["bodyBase64"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass  # not a dead-letter record: replay the line itself (it will be dead-lettered again)
            yield RawEvent(line, f"file:{Path(path).name}:{n}"), size
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def cmd_events_apply(args: argparse.Namespace) -> int:
    import os

    from tqdm import tqdm

    from shared.bootstrap import build, use_cases
    from shared.services.apply_sales import ApplyCounts

    c = build()
    apply = use_cases(c).apply_sales
    if args.file != "-" and not Path(args.file).is_file():
        err(f"no events file at {args.file}; give a JSON-lines file of sale events (or - for stdin)")
        return 1
    total = os.path.getsize(args.file) if args.file != "-" else None
    counts = ApplyCounts()
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="apply events", file=sys.stderr,
               disable=args.quiet or None)
    batch, pending_bytes = [], 0

    def flush() -> None:
        nonlocal batch, pending_bytes
        if batch:
            counts.add(apply(batch))
        bar.update(pending_bytes)
        bar.set_postfix(applied=counts.applied, dup=counts.duplicate, dead=counts.deadlettered, refresh=False)
        batch, pending_bytes = [], 0

    try:
        for raw, size in _read_event_lines(args.file, deadletter=args.deadletter):
            pending_bytes += size
            if raw is not None:
                batch.append(raw)
            if len(batch) >= args.batch_size:
                flush()
        flush()
    finally:
        bar.close()
    out = counts.to_json()
    out["stock_store"] = c.stock.describe()
    print_json(out)
    return 0


def cmd_events_consume(args: argparse.Namespace) -> int:
    import signal
    import threading

    from shared.bootstrap import build
    from shared.local.queue_consumer import apply_queue
    from shared.services.apply_sales import ApplyCounts

    c = build()
    if c.uses_event_hubs:
        err("EVENTS is set: in Azure the apply_sales function consumes Event Hubs; this command reads the "
             "embedded queue (unset EVENTS and EVENTS__fullyQualifiedNamespace to use it)")
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    group = c.settings.get("EVENTHUB_CONSUMER_GROUP")

    def say(partition: int, n: int, counts: ApplyCounts) -> None:
        print(f"partition {partition}: {n} events -> applied {counts.applied:,}, duplicate "
              f"{counts.duplicate:,}, dead-lettered {counts.deadlettered:,} so far", file=sys.stderr)

    counts = ApplyCounts()  # filled as batches apply, so Ctrl-C still prints what was done
    with contextlib.suppress(KeyboardInterrupt):
        apply_queue(c, batch_size=args.batch_size, follow=args.follow, stop=stop, counts=counts,
                    on_batch=None if args.quiet else say)
    out = counts.to_json()
    out["backlog"] = sum(c.queue.backlog(group).values())
    print_json(out)
    return 0


def cmd_stock(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.core.events import normalise_sku
    from shared.core.ids import validate_store_id

    c = build()
    validate_store_id(args.store)
    docs = c.stock.stock(args.store, normalise_sku(args.sku) if args.sku else None)
    if not docs:
        known = c.stock.stores()
        what = f"sku {args.sku!r} in store {args.store}" if args.sku else f"store {args.store}"
        hint = f"known stores: {', '.join(known[:20])}" if known else "no store has stock yet: ingest a dump " \
               "or apply events first"
        print(f"no stock documents for {what} ({hint})", file=sys.stderr)
    print_json([d.to_json() for d in docs])
    return 0


def _partition_key(body: bytes) -> str:
    import json

    try:
        doc = json.loads(body)
        key = doc.get("storeId") if isinstance(doc, dict) else None
    except ValueError:
        key = None
    from shared.core.ids import STORE_ID_PATTERN

    # Malformed events still travel (the consumer dead-letters them), under a placeholder key if need be.
    return key if isinstance(key, str) and STORE_ID_PATTERN.fullmatch(key) else "_unknown"


def cmd_pos_send(args: argparse.Namespace) -> int:
    import dataclasses
    from datetime import UTC, datetime

    from shared.bootstrap import build
    from shared.core.events import MAX_EVENT_BYTES, InvalidEvent, parse_event
    from shared.ports.events import OutgoingEvent
    from shared.services.apply_sales import write_deadletters

    c = build()
    if args.file != "-" and not Path(args.file).is_file():
        err(f"no events file at {args.file}; give a JSON-lines file of sale events (or - for stdin)")
        return 1
    sent = 0
    batch: list = []
    too_large: list[InvalidEvent] = []
    for raw, _size in _read_event_lines(args.file, deadletter=False):
        if raw is not None and len(raw.body) > MAX_EVENT_BYTES:
            # The consumer would dead-letter it, and above 1 MiB Event Hubs refuses it (and with it the whole
            # send): set it aside here, with the same reason code, instead of failing the file.
            key = _partition_key(raw.body)
            bad = parse_event(raw.body, source=raw.source)  # too_large, with the consumer's own detail
            too_large.append(dataclasses.replace(bad, store_id=None if key == "_unknown" else key))
            err(f"{raw.source}: {too_large[-1].detail}: not sent, dead-lettered")
        elif raw is not None:
            batch.append(OutgoingEvent(_partition_key(raw.body), raw.body))
        if len(batch) >= 500:
            sent += c.events.send(batch)
            batch = []
    if batch:
        sent += c.events.send(batch)
    path = write_deadletters(c.lake, too_large, now=datetime.now(UTC))
    print(f"sent {sent:,} events to {c.events.describe()}"
          + (f"; {len(too_large):,} too large, dead-lettered in {path}" if path else ""), file=sys.stderr)
    print_json({"sent": sent, "sink": c.events.describe(), "deadlettered": len(too_large),
                 **({"deadletter_path": path} if path else {})})
    return 0


def cmd_pos_simulate(args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, datetime

    from shared.bootstrap import build
    from shared.local.pos_traffic import pos_traffic
    from shared.ports.events import OutgoingEvent

    if args.duplicates + args.malformed > 1:
        err(f"--duplicates {args.duplicates:g} and --malformed {args.malformed:g} add up to more than 1")
        return 1
    c = build()
    stores = [f"S{n:03d}" for n in range(1, args.stores + 1)]
    from shared.local.demo import skus_by_stock

    skus = skus_by_stock(c.stock, stores)
    if not skus:
        from shared.local.generator import catalogue_skus

        skus = catalogue_skus()
        print("no stock documents yet: using the generator's catalogue skus (run `make demo` or ingest dumps "
              "to simulate traffic for real stores)", file=sys.stderr)
    traffic = pos_traffic(stores, skus, count=args.count, seed=args.seed, start=datetime.now(UTC),
                          rate_per_s=args.rate, duplicate_share=args.duplicates, malformed_share=args.malformed)
    kinds: dict[str, int] = {}
    started = time.monotonic()
    batch: list = []
    sent = 0
    for i, item in enumerate(traffic, 1):
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
        batch.append(OutgoingEvent(item.store_id, item.body))
        wait = 0.0 if args.fast else started + i / args.rate - time.monotonic()
        if len(batch) >= 200 or wait > 0:
            sent += c.events.send(batch)
            batch = []
            if not args.quiet:
                print(f"\rsent {sent:,}/{args.count:,} events", end="", file=sys.stderr, flush=True)
            if wait > 0:
                time.sleep(wait)
    if batch:
        sent += c.events.send(batch)
    if not args.quiet:
        print(f"\rsent {sent:,}/{args.count:,} events to {c.events.describe()}", file=sys.stderr)
    print_json({"sent": sent, "kinds": dict(sorted(kinds.items())), "sink": c.events.describe()})
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    """The event and stock commands' parsers."""
    events = sub.add_parser("events", help="apply sale events to stock").add_subparsers(
        dest="events_cmd", required=True, metavar="ACTION")
    ap = events.add_parser("apply", help="what the Event Hub trigger does, for a JSON-lines file; prints counts",
                           description="Apply sale events from a JSON-lines file (one event per line). Invalid "
                           "events go to the lake's deadletter/ with a reason; each eventId counts once however "
                           "often it is applied. Exit 0 when every event was applied, recognised as a "
                           "duplicate or already in the baseline dump, or dead-lettered.")
    ap.add_argument("file", metavar="FILE", help="JSON lines of events, or - for stdin")
    ap.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000)")
    ap.add_argument("--deadletter", action="store_true",
                    help="FILE holds dead-letter records (deadletter/...jsonl): replay their original bodies")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.set_defaults(func=cmd_events_apply)
    co = events.add_parser("consume", help="apply what the embedded queue holds (local stand-in for the trigger)")
    co.add_argument("--follow", action="store_true", help="keep waiting for new events until Ctrl-C")
    co.add_argument("--batch-size", type=int, default=100, help="events per batch (default 100)")
    co.add_argument("--quiet", action="store_true", help="no progress lines")
    co.set_defaults(func=cmd_events_consume)

    stock = sub.add_parser("stock", help="current stock of a store as JSON documents")
    stock.add_argument("store", metavar="STORE", help="store id")
    stock.add_argument("--sku", help="one sku only")
    stock.set_defaults(func=cmd_stock)

    pos = sub.add_parser("pos", help="POS producers: send events, simulate traffic").add_subparsers(
        dest="pos_cmd", required=True, metavar="ACTION")
    ps = pos.add_parser("send", help="send a JSON-lines file of events (Event Hubs, else the embedded queue)")
    ps.add_argument("file", metavar="FILE", help="JSON lines of events, or - for stdin")
    ps.set_defaults(func=cmd_pos_send)
    sim = pos.add_parser("simulate", help="realistic POS traffic: Zipf skus, returns, receipts, a few duplicates "
                         "and malformed events")
    sim.add_argument("--stores", type=number(int, 1, 999), default=3, help="stores S001..S<n> (default 3)")
    sim.add_argument("--rate", type=number(float, 0, None, low_open=True), default=20.0,
                     help="events per second (default 20)")
    sim.add_argument("--count", type=number(int, 0, None), default=1000, help="how many events (default 1000)")
    sim.add_argument("--fast", action="store_true", help="send as fast as possible (event times still follow --rate)")
    sim.add_argument("--duplicates", type=number(float, 0, 1), default=0.02,
                     help="share of resent events, 0-1 (default 0.02)")
    sim.add_argument("--malformed", type=number(float, 0, 1), default=0.01,
                     help="share of malformed events, 0-1 (default 0.01)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--quiet", action="store_true", help="no progress")
    sim.set_defaults(func=cmd_pos_simulate)
