"""Commands for nightly dumps: ``agent upload``, ``ingest``, ``rules``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.local.cli.output import err, print_json, status_line


def cmd_agent_upload(args: argparse.Namespace) -> int:
    """The store agent (its own distribution, agent/) uploading to this environment's lake: a dev shortcut for
    ``inventory-agent``, which a store PC runs (docs/agent.md)."""
    try:
        from inventory_agent import AgentError, upload_dump
        from inventory_agent.cli import progress_bar
    except ImportError:
        err("the store agent is not installed here: pip install -e ./agent (make does it)")
        return 1
    from shared.bootstrap import build

    c = build()
    db = Path(args.db)
    if not db.is_file():
        err(f"no database file at {db}; give the path of the store's SQLite database")
        return 1
    try:
        with progress_bar(db.name, quiet=args.quiet) as progress:
            result = upload_dump(db, args.store, c.lake, scratch=c.scratch_dir, progress=progress)
    except AgentError as exc:
        err(str(exc))
        return 1
    verb = "uploaded" if result.uploaded else "already in the lake (same content); nothing uploaded"
    print(f"{result.path}: {verb}", file=sys.stderr)
    print_json({"path": result.path, "sha256": result.sha256, "size": result.size,
                 "snapshot_at": result.snapshot_at.isoformat(), "uploaded": result.uploaded,
                 "lake": c.lake.describe()})
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases
    from shared.services.ingest import DatabaseInUse

    c = build()
    dump = Path(args.dump)
    if not dump.is_file():
        err(f"no dump file at {dump}")
        return 1
    options = _ingest_options(args)
    if options is None:
        return 1
    try:
        receipt = use_cases(c).ingest_file(dump, args.store, **options,
                                           progress=None if args.quiet else status_line())
    except DatabaseInUse as exc:
        err(str(exc))
        return 1
    result = receipt.ingest
    if receipt.rebase is None:
        err(f"dump quarantined: {result.reason_code}: {result.reason}")
    else:
        if result.status == "already_ingested":
            print(f"dump {result.dump_id} was already ingested", file=sys.stderr)
        print(f"stock baseline of {result.store_id}: {_REBASE_SAYS[receipt.rebase.status]} ({c.stock.describe()})",
              file=sys.stderr)
    print_json(result.manifest)
    return result.exit_code


def _ingest_options(args: argparse.Namespace) -> dict | None:
    """``mapping`` and ``snapshot_at`` from ``--mapping`` and ``--snapshot-at``; None (said why) if unusable."""
    from shared.core.ids import parse_utc
    from shared.core.mapping import parse_mapping

    options: dict = {"mapping": None, "snapshot_at": None}
    if args.mapping:
        path = Path(args.mapping)
        if not path.is_file():
            err(f"no mapping file at {path}; see examples/mappings/ for the format")
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            err(f"cannot read the mapping file {path}: {exc.strerror or exc}")
            return None
        options["mapping"] = parse_mapping(data, source=str(path))  # bytes: it reports a file that is not UTF-8
    if args.snapshot_at:
        try:
            options["snapshot_at"] = parse_utc(args.snapshot_at)
        except ValueError as exc:
            err(f"--snapshot-at: {exc} (a time without an offset is taken as UTC)")
            return None
    return options


_REBASE_SAYS = {"rebased": "set from this dump", "current": "already this dump",
                "older": "a later dump is the baseline; this one changes nothing"}


def cmd_rules(args: argparse.Namespace) -> int:
    from shared.core.rules import RULES
    from shared.services.ingest import QUARANTINE_REASONS

    if args.markdown:
        print("| code | tables | action | description |\n|---|---|---|---|")
        for r in RULES:
            print(f"| `{r.code}` | {', '.join(r.tables)} | {r.action} | {r.description} |")
        print("\n| quarantine reason | meaning |\n|---|---|")
        for code, text in QUARANTINE_REASONS.items():
            print(f"| `{code}` | {text} |")
        return 0
    print_json({"rules": [r.__dict__ for r in RULES], "quarantine_reasons": QUARANTINE_REASONS})
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    """The dump commands' parsers."""
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
    ing.add_argument("--mapping", metavar="FILE", help="TOML mapping for a foreign schema (docs/ingestion.md)")
    ing.add_argument("--snapshot-at", metavar="ISO",
                     help="snapshot time, if known (else stock.counted_at); ISO-8601, UTC when it has no offset")
    ing.add_argument("--quiet", action="store_true", help="no progress messages")
    ing.set_defaults(func=cmd_ingest)

    rules = sub.add_parser("rules", help="print the business rules and quarantine reasons")
    rules.add_argument("--markdown", action="store_true", help="as Markdown tables (as in the README)")
    rules.set_defaults(func=cmd_rules)
