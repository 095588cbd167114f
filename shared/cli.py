"""The ``inventory`` command (also ``python -m shared``): the same services the functions call.

Machine-readable results go to stdout as JSON; progress and messages go to stderr.
Exit codes: 0 done, 1 error (message on stderr), 2 dump quarantined (and argparse's usage errors).
"""

from __future__ import annotations

import argparse
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
    from tqdm import tqdm

    from shared.bootstrap import build
    from shared.services.upload_dump import upload_dump

    c = build()
    db = Path(args.db)
    if not db.is_file():
        _err(f"no database file at {db}; give the path of the store's SQLite database")
        return 1
    bar = tqdm(total=0, unit="B", unit_scale=True, desc=f"upload {db.name}", file=sys.stderr,
               disable=args.quiet or None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = upload_dump(db, args.store, c.lake, scratch=c.scratch_dir, progress=progress)
    finally:
        bar.close()
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
    from datetime import datetime

    from shared.bootstrap import build
    from shared.core.mapping import parse_mapping
    from shared.services.ingest_dump import ingest_dump

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
        mapping = parse_mapping(path.read_text(encoding="utf-8"), source=str(path))
    snapshot_at = datetime.fromisoformat(args.snapshot_at) if args.snapshot_at else None
    say = None if args.quiet else _status_line()
    result = ingest_dump(dump, args.store, lake=c.lake, telemetry=c.telemetry, limits=c.ingest_limits,
                         mapping=mapping, snapshot_at=snapshot_at, scratch=c.scratch_dir, progress=say)
    if result.status == "quarantined":
        _err(f"dump quarantined: {result.reason_code}: {result.reason}")
    elif result.status == "already_ingested":
        print(f"dump {result.dump_id} was already ingested; nothing to do", file=sys.stderr)
    _print_json(result.manifest)
    return result.exit_code


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
    from shared.local.demo import run_demo

    return run_demo(stores=args.stores, sales_lines=args.sales_lines, days=args.days, fresh=not args.keep)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"inventory {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole pipeline on generated stores, locally; says where to look")
    demo.add_argument("--stores", type=int, default=3, help="how many stores to generate (default 3)")
    demo.add_argument("--sales-lines", type=int, default=20_000, help="sale lines per store (default 20000)")
    demo.add_argument("--days", type=int, default=56, help="days of sales history (default 56)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the previous demo's lake and add to it (default: start clean)")
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
    ing.add_argument("--snapshot-at", metavar="ISO", help="snapshot time, if known (else stock.counted_at)")
    ing.add_argument("--quiet", action="store_true", help="no progress messages")
    ing.set_defaults(func=cmd_ingest)

    rules = sub.add_parser("rules", help="print the business rules and quarantine reasons")
    rules.add_argument("--markdown", action="store_true", help="as Markdown tables (as in the README)")
    rules.set_defaults(func=cmd_rules)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from shared.core.ids import InvalidStoreId
    from shared.core.mapping import MappingError
    from shared.services.upload_dump import AgentError

    try:
        return args.func(args)
    except (InvalidStoreId, MappingError, AgentError, FileNotFoundError) as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
