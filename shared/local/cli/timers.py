"""Commands that run a timer's work once, and the lake's tools: ``aggregate``, ``alerts``, ``lake maintain|migrate``,
``dashboard``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.local.cli.output import print_json


def cmd_aggregate(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases

    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = use_cases(build()).compute_aggregates(progress=say)
    print_json(result.to_json())
    return 0


def cmd_lake_maintain(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases

    result = use_cases(build()).maintain_lake()
    for t in result.tables:
        print(f"{t.table}: {t.files_before} -> {t.files_after} files ({t.files_compacted} compacted, "
              f"{t.files_vacuumed} vacuumed) in {t.seconds:.2f} s", file=sys.stderr)
    print_json(result.to_json())
    return 0


def cmd_lake_migrate(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases

    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = use_cases(build()).migrate_lake(progress=say)
    if result.files_left_out:
        print(f"{len(result.files_left_out)} file(s) of ingests that never committed were not migrated "
              "(and are deleted with the rest)", file=sys.stderr)
    print_json(result.to_json())
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases

    run = use_cases(build()).raise_alerts()
    held = run.true_now - len(run.raised)
    print(f"{len(run.raised)} alert(s) raised; {held} still true but already raised (cool-down)"
          + (f"; true now by kind: {run.by_kind}" if run.by_kind else ""), file=sys.stderr)
    print_json([a.to_json() for a in run.raised])
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from shared.bootstrap import build, use_cases

    c = build()
    out = Path(args.out).expanduser() if args.out else c.settings.home / "dashboard.html"
    path = use_cases(c).write_dashboard(out).resolve()
    print(f"dashboard written; open {path.as_uri()} in a browser (no network needed)", file=sys.stderr)
    print_json({"path": str(path), "url": path.as_uri(), "lake": c.lake.describe()})
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    """The timers' and the lake's commands' parsers."""
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
