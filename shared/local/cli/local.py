"""The local pipeline: ``demo`` and ``serve`` (the function app's triggers on the local defaults)."""

from __future__ import annotations

import argparse
import sys

from shared.local.cli.output import err, number, print_json


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
        err(str(exc))
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
        err(str(exc))
        return 1
    if args.retry_poisoned:
        n = runner.retry_poisoned()
        print(f"{n} poisoned blob(s) will be tried again", file=sys.stderr)
    if args.once:
        counts = runner.run_once()
        print_json(counts)
        if counts["failed"]:
            err(f"{counts['failed']} invocation(s) failed (see above); a failed blob is tried again by the next "
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
        err(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; is another runner or `func start` "
             "running? Use --port to pick another port")
        return 1
    return 0


def cmd_wiring(args: argparse.Namespace) -> int:
    """Which adapter serves each port with these settings (the choice bootstrap makes), as JSON."""
    from shared.bootstrap import build, use_cases

    print_json(use_cases(build()).wiring())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shared.local.cosmos_devserver import check_loopback
    from shared.local.demo import run_demo

    try:
        cosmos_dev_server = check_loopback(args.cosmos_dev_server) if args.cosmos_dev_server else ""
    except ValueError as exc:
        err(str(exc))
        return 1
    try:
        return run_demo(stores=args.stores, sales_lines=args.sales_lines, days=args.days, fresh=not args.keep,
                        pos_events=args.pos_events, port=args.port, cosmos_dev_server=cosmos_dev_server)
    except ConnectionError as exc:  # the dev server is not running
        err(str(exc))
        return 1


_COSMOS_DEV_SERVER_HELP = ("the stock store on the npm Cosmos-API server (@vercel/cosmosdb-server) at this "
                           "loopback URL, e.g. https://127.0.0.1:8081/ (scripts/devservers.sh starts one): for "
                           "development only; it has no transactional batch, so batches are emulated, NOT "
                           "atomically (shared/local/cosmos_devserver.py). Not for Azure or the official emulator "
                           "(set COSMOS__accountEndpoint or COSMOS for those)")



def register(sub: argparse._SubParsersAction) -> None:
    """The demo's and the runner's parsers."""
    wiring = sub.add_parser("wiring", help="which adapter serves each port (lake, stock, events, telemetry) with "
                            "these settings; prints JSON")
    wiring.set_defaults(func=cmd_wiring)
    demo = sub.add_parser("demo", help="the whole pipeline on generated stores, locally; says where to look")
    demo.add_argument("--stores", type=number(int, 1, 999), default=3, help="how many stores to generate (default 3)")
    demo.add_argument("--sales-lines", type=number(int, 1, None), default=20_000,
                      help="sale lines per store (default 20000)")
    demo.add_argument("--days", type=number(int, 1, 3660), default=56, help="days of sales history (default 56)")
    demo.add_argument("--port", type=number(int, 0, 65535), default=7071,
                      help="port of the local runner's HTTP routes (default 7071; a free one if taken, or if 0)")
    demo.add_argument("--pos-events", type=number(int, 0, None), default=2000, metavar="N",
                      help="POS sale events POSTed to the runner (default 2000)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the previous demo's lake and stock and add to them (default: start clean)")
    demo.add_argument("--cosmos-dev-server", metavar="URL", help=_COSMOS_DEV_SERVER_HELP)
    demo.set_defaults(func=cmd_demo)

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
