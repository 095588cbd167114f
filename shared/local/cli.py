"""The ``inventory`` command (also ``python -m shared``): the same services the functions call.

Machine-readable results go to stdout as JSON; progress and messages go to stderr.
Exit codes: 0 done, 1 error (message on stderr), 2 dump quarantined (and argparse's usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from shared import __version__


def _print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _err(msg: str) -> None:
    print(f"inventory: {msg}", file=sys.stderr)


def cmd_agent_upload(args: argparse.Namespace) -> int:
    """The store agent (its own distribution, agent/) uploading to this environment's lake: a dev shortcut for
    ``inventory-agent``, which a store PC runs (docs/agent.md)."""
    try:
        from inventory_agent import AgentError, upload_dump
        from inventory_agent.cli import progress_bar
    except ImportError:
        _err("the store agent is not installed here: pip install -e ./agent (make does it)")
        return 1
    from shared.bootstrap import build

    c = build()
    db = Path(args.db)
    if not db.is_file():
        _err(f"no database file at {db}; give the path of the store's SQLite database")
        return 1
    try:
        with progress_bar(db.name, quiet=args.quiet) as progress:
            result = upload_dump(db, args.store, c.lake, scratch=c.scratch_dir, progress=progress)
    except AgentError as exc:
        _err(str(exc))
        return 1
    verb = "uploaded" if result.uploaded else "already in the lake (same content); nothing uploaded"
    print(f"{result.path}: {verb}", file=sys.stderr)
    _print_json({"path": result.path, "sha256": result.sha256, "size": result.size,
                 "snapshot_at": result.snapshot_at.isoformat(), "uploaded": result.uploaded,
                 "lake": c.lake.describe()})
    return 0


def _status_line() -> Callable[[str], None]:
    """Progress messages on stderr: a table's "rows read" count rewritten in place on a terminal, every
    other message on its own line; plain lines when stderr is not a terminal (logs, CI)."""
    if not sys.stderr.isatty():
        return lambda msg: print(msg, file=sys.stderr)
    inline = {"table": None}

    def say(msg: str) -> None:
        table = msg.split(":", 1)[0] if "rows read" in msg else None
        if inline["table"] is not None and table != inline["table"]:
            print(file=sys.stderr)  # keep the finished table's count on screen
        if table is None:
            print(msg, file=sys.stderr, flush=True)
        else:
            print(f"\r{msg:<60}", end="", file=sys.stderr, flush=True)
        inline["table"] = table

    return say


def cmd_ingest(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.core.ids import parse_utc
    from shared.core.mapping import parse_mapping
    from shared.services.ingest_dump import DatabaseInUse, ingest_dump

    c = build()
    dump = Path(args.dump)
    if not dump.is_file():
        _err(f"no dump file at {dump}")
        return 1
    mapping = None
    if args.mapping:
        path = Path(args.mapping)
        if not path.is_file():
            _err(f"no mapping file at {path}; see examples/mappings/ for the format")
            return 1
        try:
            data = path.read_bytes()
        except OSError as exc:
            _err(f"cannot read the mapping file {path}: {exc.strerror or exc}")
            return 1
        mapping = parse_mapping(data, source=str(path))  # bytes: parse_mapping reports a file that is not UTF-8
    snapshot_at = None
    if args.snapshot_at:
        try:
            snapshot_at = parse_utc(args.snapshot_at)
        except ValueError as exc:
            _err(f"--snapshot-at: {exc} (a time without an offset is taken as UTC)")
            return 1
    say = None if args.quiet else _status_line()
    try:
        result = ingest_dump(dump, args.store, lake=c.lake, telemetry=c.telemetry, limits=c.ingest_limits,
                             mapping=mapping, snapshot_at=snapshot_at, scratch=c.scratch_dir, progress=say)
    except DatabaseInUse as exc:
        _err(str(exc))
        return 1
    if result.status == "quarantined":
        _err(f"dump quarantined: {result.reason_code}: {result.reason}")
    else:
        from shared.services.reconcile_stock import reconcile_after_ingest

        if result.status == "already_ingested":
            print(f"dump {result.dump_id} was already ingested", file=sys.stderr)
        rebase = reconcile_after_ingest(result, lake=c.lake, stock=c.stock, telemetry=c.telemetry)
        print(f"stock baseline of {result.store_id}: {_REBASE_SAYS[rebase.status]} ({c.stock.describe()})",
              file=sys.stderr)
    _print_json(result.manifest)
    return result.exit_code


_REBASE_SAYS = {"rebased": "set from this dump", "current": "already this dump",
                "older": "a later dump is the baseline; this one changes nothing"}


def _read_event_lines(path: str, *, deadletter: bool):  # generator of (RawEvent | None, bytes read)
    """Events of a JSON-lines file (``-`` for stdin), one raw body per non-blank line. With ``deadletter``
    each line is a dead-letter record and its original body is replayed."""
    import base64
    import json

    from shared.services.apply_sales import RawEvent

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

    from shared.bootstrap import build
    from shared.services.apply_sales import ApplyCounts, apply_sales

    c = build()
    if args.file != "-" and not Path(args.file).is_file():
        _err(f"no events file at {args.file}; give a JSON-lines file of sale events (or - for stdin)")
        return 1
    total = os.path.getsize(args.file) if args.file != "-" else None
    counts = ApplyCounts()
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="apply events", file=sys.stderr,
               disable=args.quiet or None)
    batch, pending_bytes = [], 0

    def flush() -> None:
        nonlocal batch, pending_bytes
        if batch:
            counts.add(apply_sales(batch, stock=c.stock, lake=c.lake, telemetry=c.telemetry))
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
    _print_json(out)
    return 0


def cmd_events_consume(args: argparse.Namespace) -> int:
    import signal
    import threading

    from shared.bootstrap import build
    from shared.local.queue_consumer import apply_queue
    from shared.services.apply_sales import ApplyCounts

    c = build()
    if c.uses_event_hubs:
        _err("EVENTS is set: in Azure the apply_sales function consumes Event Hubs; this command reads the "
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
    _print_json(out)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal

    from shared.bootstrap import use_default_container
    from shared.local.cosmos_devserver import build_on_dev_server
    from shared.local.runner import Runner, RunnerError

    try:
        c = build_on_dev_server(None, args.cosmos_dev_server or "")
        if args.cosmos_dev_server:
            c.stock  # noqa: B018 - reach the dev server now, not at the first invocation (which would fail)
    except (ValueError, ConnectionError) as exc:
        _err(str(exc))
        return 1
    use_default_container(c)  # what the functions' default_container() returns in this process
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    logging.getLogger("inventory").setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("inventory.runner").setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        runner = Runner(c, host=args.host, port=args.port, poll_s=args.poll)
    except RunnerError as exc:
        _err(str(exc))
        return 1
    if args.retry_poisoned:
        n = runner.retry_poisoned()
        print(f"{n} poisoned blob(s) will be tried again", file=sys.stderr)
    if args.once:
        counts = runner.run_once()
        _print_json(counts)
        if counts["failed"]:
            _err(f"{counts['failed']} invocation(s) failed (see above); a failed blob is tried again by the next "
                 "run, and set aside as poisoned after its last attempt")
            return 1
        return 0

    def stop(signum: int, _frame: object) -> None:
        if runner.stop.is_set():  # a second Ctrl-C: do not wait for the invocations in progress
            os._exit(130)
        print(f"\n{signal.Signals(signum).name}: stopping after the invocations in progress (again to quit now)",
              file=sys.stderr)
        runner.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        runner.serve(http=not args.no_http)
    except OSError as exc:
        _err(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; is another runner or `func start` "
             "running? Use --port to pick another port")
        return 1
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
    _print_json([d.to_json() for d in docs])
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
        _err(f"no events file at {args.file}; give a JSON-lines file of sale events (or - for stdin)")
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
            _err(f"{raw.source}: {too_large[-1].detail}: not sent, dead-lettered")
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
    _print_json({"sent": sent, "sink": c.events.describe(), "deadlettered": len(too_large),
                 **({"deadletter_path": path} if path else {})})
    return 0


def cmd_pos_simulate(args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, datetime

    from shared.bootstrap import build
    from shared.local.pos_traffic import pos_traffic
    from shared.ports.events import OutgoingEvent

    if args.duplicates + args.malformed > 1:
        _err(f"--duplicates {args.duplicates:g} and --malformed {args.malformed:g} add up to more than 1")
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
    _print_json({"sent": sent, "kinds": dict(sorted(kinds.items())), "sink": c.events.describe()})
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.services.compute_aggregates import compute_aggregates

    c = build()
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = compute_aggregates(lake=c.lake, stock=c.stock, telemetry=c.telemetry, scratch=c.scratch_dir,
                                memory_limit=c.settings.get("INGEST_MEMORY_LIMIT"), progress=say)
    _print_json(result.to_json())
    return 0


def cmd_lake_maintain(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.services.maintain_lake import maintain_lake

    c = build()
    result = maintain_lake(lake=c.lake, telemetry=c.telemetry,
                           retention_hours=c.settings.int("LAKE_VACUUM_RETENTION_HOURS"))
    for t in result.tables:
        print(f"{t.table}: {t.files_before} -> {t.files_after} files ({t.files_compacted} compacted, "
              f"{t.files_vacuumed} vacuumed) in {t.seconds:.2f} s", file=sys.stderr)
    _print_json(result.to_json())
    return 0


def cmd_lake_migrate(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.services.migrate_lake import migrate_lake

    c = build()
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = migrate_lake(lake=c.lake, progress=say, scratch=c.scratch_dir)
    if result.files_left_out:
        print(f"{len(result.files_left_out)} file(s) of ingests that never committed were not migrated "
              "(and are deleted with the rest)", file=sys.stderr)
    _print_json(result.to_json())
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.services.raise_alerts import AlertSettings, raise_alerts

    c = build()
    run = raise_alerts(lake=c.lake, stock=c.stock, telemetry=c.telemetry,
                       settings=AlertSettings.from_settings(c.settings))
    held = run.true_now - len(run.raised)
    print(f"{len(run.raised)} alert(s) raised; {held} still true but already raised (cool-down)"
          + (f"; true now by kind: {run.by_kind}" if run.by_kind else ""), file=sys.stderr)
    _print_json([a.to_json() for a in run.raised])
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from shared.bootstrap import build
    from shared.services.dashboard import write_dashboard

    c = build()
    out = Path(args.out).expanduser() if args.out else c.settings.home / "dashboard.html"
    path = write_dashboard(out, lake=c.lake, stock=c.stock).resolve()
    print(f"dashboard written; open {path.as_uri()} in a browser (no network needed)", file=sys.stderr)
    _print_json({"path": str(path), "url": path.as_uri(), "lake": c.lake.describe()})
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from shared.core.rules import RULES
    from shared.services.ingest_dump import QUARANTINE_REASONS

    if args.markdown:
        print("| code | tables | action | description |\n|---|---|---|---|")
        for r in RULES:
            print(f"| `{r.code}` | {', '.join(r.tables)} | {r.action} | {r.description} |")
        print("\n| quarantine reason | meaning |\n|---|---|")
        for code, text in QUARANTINE_REASONS.items():
            print(f"| `{code}` | {text} |")
        return 0
    _print_json({"rules": [r.__dict__ for r in RULES], "quarantine_reasons": QUARANTINE_REASONS})
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shared.local.cosmos_devserver import check_loopback
    from shared.local.demo import run_demo

    try:
        cosmos_dev_server = check_loopback(args.cosmos_dev_server) if args.cosmos_dev_server else ""
    except ValueError as exc:
        _err(str(exc))
        return 1
    try:
        return run_demo(stores=args.stores, sales_lines=args.sales_lines, days=args.days, fresh=not args.keep,
                        pos_events=args.pos_events, port=args.port, cosmos_dev_server=cosmos_dev_server)
    except ConnectionError as exc:  # the dev server is not running
        _err(str(exc))
        return 1


_COSMOS_DEV_SERVER_HELP = ("the stock store on the npm Cosmos-API server (@vercel/cosmosdb-server) at this "
                           "loopback URL, e.g. https://127.0.0.1:8081/ (scripts/devservers.sh starts one): for "
                           "development only; it has no transactional batch, so batches are emulated, NOT "
                           "atomically (shared/local/cosmos_devserver.py). Not for Azure or the official emulator "
                           "(set COSMOS__accountEndpoint or COSMOS for those)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"inventory {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole pipeline on generated stores, locally; says where to look")
    demo.add_argument("--stores", type=_number(int, 1, 999), default=3, help="how many stores to generate (default 3)")
    demo.add_argument("--sales-lines", type=_number(int, 1, None), default=20_000,
                      help="sale lines per store (default 20000)")
    demo.add_argument("--days", type=_number(int, 1, 3660), default=56, help="days of sales history (default 56)")
    demo.add_argument("--port", type=_number(int, 0, 65535), default=7071,
                      help="port of the local runner's HTTP routes (default 7071; a free one if taken, or if 0)")
    demo.add_argument("--pos-events", type=_number(int, 0, None), default=2000, metavar="N",
                      help="POS sale events POSTed to the runner (default 2000)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the previous demo's lake and stock and add to them (default: start clean)")
    demo.add_argument("--cosmos-dev-server", metavar="URL", help=_COSMOS_DEV_SERVER_HELP)
    demo.set_defaults(func=cmd_demo)

    agent = sub.add_parser("agent", help="the store agent").add_subparsers(dest="agent_cmd", required=True,
                                                                             metavar="ACTION")
    up = agent.add_parser("upload", help="snapshot a live SQLite database and upload it to raw/")
    up.add_argument("db", metavar="DB", help="the store's SQLite database (may be in use by the POS)")
    up.add_argument("--store", required=True, metavar="ID", help="store id, ^[A-Za-z0-9_-]{1,64}$")
    up.add_argument("--quiet", action="store_true", help="no progress bar")
    up.set_defaults(func=cmd_agent_upload)

    ing = sub.add_parser("ingest", help="ingest one dump (what the blob trigger does); prints the manifest",
                         description="Ingest one dump. Exit 0: ingested or already ingested; "
                         "2: quarantined (reason on stderr); 1: other errors.")
    ing.add_argument("dump", metavar="DUMP", help="SQLite file, or gzip of one")
    ing.add_argument("--store", required=True, metavar="ID", help="store id, ^[A-Za-z0-9_-]{1,64}$")
    ing.add_argument("--mapping", metavar="FILE", help="TOML mapping for a foreign schema (handbook §2)")
    ing.add_argument("--snapshot-at", metavar="ISO",
                     help="snapshot time, if known (else stock.counted_at); ISO-8601, UTC when it has no offset")
    ing.add_argument("--quiet", action="store_true", help="no progress messages")
    ing.set_defaults(func=cmd_ingest)

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

    srv = sub.add_parser("serve", help="the local runner: the function app's triggers on the local defaults",
                         description="Run the functions registered in function_app.py with their bindings' "
                         "semantics: new dumps under the lake's raw/ (blob trigger), the embedded queue's events in "
                         "batches (Event Hub trigger), the timers' NCRONTAB schedules, and the HTTP routes on "
                         "http://HOST:PORT/api/ (function keys in $INVENTORY_HOME/runner/host_keys.json). One log "
                         "line per invocation; Ctrl-C or SIGTERM stops after the invocations in progress.")
    srv.add_argument("--once", action="store_true",
                     help="deliver what is pending (dumps, queued events, past-due timers), print counts, exit")
    srv.add_argument("--host", default="127.0.0.1", help="address of the HTTP routes (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=7071, help="port of the HTTP routes (default 7071, as func start)")
    srv.add_argument("--no-http", action="store_true", help="do not serve the HTTP routes")
    srv.add_argument("--poll", type=float, default=1.0, metavar="S",
                     help="seconds between looks at the lake and the queue when idle (default 1)")
    srv.add_argument("--retry-poisoned", action="store_true",
                     help="try again the blobs that failed 5 times (after fixing the cause)")
    srv.add_argument("--verbose", action="store_true", help="also the functions' own log lines")
    srv.add_argument("--cosmos-dev-server", metavar="URL", help=_COSMOS_DEV_SERVER_HELP)
    srv.set_defaults(func=cmd_serve)

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
    sim.add_argument("--stores", type=_number(int, 1, 999), default=3, help="stores S001..S<n> (default 3)")
    sim.add_argument("--rate", type=_number(float, 0, None, low_open=True), default=20.0,
                     help="events per second (default 20)")
    sim.add_argument("--count", type=_number(int, 0, None), default=1000, help="how many events (default 1000)")
    sim.add_argument("--fast", action="store_true", help="send as fast as possible (event times still follow --rate)")
    sim.add_argument("--duplicates", type=_number(float, 0, 1), default=0.02,
                     help="share of resent events, 0-1 (default 0.02)")
    sim.add_argument("--malformed", type=_number(float, 0, 1), default=0.01,
                     help="share of malformed events, 0-1 (default 0.01)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--quiet", action="store_true", help="no progress")
    sim.set_defaults(func=cmd_pos_simulate)

    agg = sub.add_parser("aggregate", help="what the compute_aggregates timer does: aggregates and forecasts "
                         "for what changed; prints a summary")
    agg.add_argument("--quiet", action="store_true", help="no progress messages")
    agg.set_defaults(func=cmd_aggregate)
    lake = sub.add_parser("lake", help="the lake's Delta tables: maintain, migrate").add_subparsers(
        dest="lake_cmd", required=True, metavar="LAKE_COMMAND")
    lm = lake.add_parser("maintain", help="what the maintain_lake timer does: compact, vacuum (files unreferenced "
                         "for LAKE_VACUUM_RETENTION_HOURS) and checkpoint every Delta table; prints the figures")
    lm.set_defaults(func=cmd_lake_maintain)
    lg = lake.add_parser("migrate", help="turn a lake of loose Parquet (the layout before Delta Lake) into the "
                         "Delta tables; safe to run again")
    lg.add_argument("--quiet", action="store_true", help="no progress on stderr")
    lg.set_defaults(func=cmd_lake_migrate)
    al = sub.add_parser("alerts", help="what the raise_alerts timer does; prints the alerts this run raised",
                        description="Evaluate every alert rule and print, as a JSON list, the alerts this run "
                        "raised (each with kind, severity, storeId, sku where it applies, and reason). Alerts "
                        "already raised and still true are not repeated within ALERT_COOLDOWN_HOURS unless they "
                        "got worse, so a second run with nothing changed prints [].")
    al.set_defaults(func=cmd_alerts)

    dash = sub.add_parser("dashboard", help="write a self-contained HTML dashboard of the lake and the stock",
                          description="Write one self-contained HTML file (no network needed to view it): stores "
                          "at a glance, alerts true now, and per store the sales trend with its forecast, stock "
                          "against reorder points, what to reorder and data quality per dump day. Prints its path "
                          "as JSON.")
    dash.add_argument("--out", metavar="FILE", help="where to write it (default: $INVENTORY_HOME/dashboard.html)")
    dash.set_defaults(func=cmd_dashboard)

    rules = sub.add_parser("rules", help="print the business rules and quarantine reasons")
    rules.add_argument("--markdown", action="store_true", help="as Markdown tables (as in the README)")
    rules.set_defaults(func=cmd_rules)
    return p


def _number(kind: type, low: float | None, high: float | None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: ``kind`` (int or float) within [low, high] (``(low, high]`` with ``low_open``), so a
    value out of range is a usage error naming the option, not a traceback from deep inside."""
    lo = "" if low is None else ("above " if low_open else "at least ") + f"{low:g}"
    hi = "" if high is None else f"at most {high:g}"
    want = f"{'an integer' if kind is int else 'a number'} {' and '.join(x for x in (lo, hi) if x)}".strip()

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    from shared.settings import configure_process

    configure_process()
    args = build_parser().parse_args(argv)
    from shared.core.ids import InvalidStoreId
    from shared.core.mapping import MappingError
    from shared.ports.lake import LakeError
    from shared.settings import SettingsError

    try:
        return args.func(args)
    except (InvalidStoreId, MappingError, FileNotFoundError, SettingsError, LakeError) as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `inventory stock S1 | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # a full disk, an unreadable file, a folder where a file should be: not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _err(f"{exc.strerror or exc}{where}")
        return 1
