"""What the demo prints when it is over: per upload what became of it, what became of the POS events, the
sales and stock levels as the dashboard counts them, the alerts raised, and where to look next (stderr), and
the same as JSON (stdout). Read from what the functions left in the lake and in telemetry."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.core import layout

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.local.runner import Runner


def _say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def stock_levels(data, stock) -> dict[str, int]:  # noqa: ANN001 - a DashboardData, a StockStore
    """Counts of the dashboard's stores: how many (store, sku) there are, low on stock (the dashboard's and the
    alerts' rule) and below zero."""
    counts = sum(s.skus for s in data.stores)
    negative = sum(d.on_hand < 0 for s in data.stores for d in stock.stock(s.store_id))
    return {"counts": counts, "low": sum(s.low_stock for s in data.stores), "negative": negative}


def sales_last_7_days(data, last_day: date) -> dict[str, dict[str, int | None]]:  # noqa: ANN001 - DashboardData
    """Per store: units in the 7 days ending today and in the 7 before, as the dashboard counts them, and the
    same for the 7 days ending on ``last_day`` (the last day the dumps cover)."""
    from shared.services.dashboard import units_in_days, week_units

    out: dict[str, dict[str, int | None]] = {}
    for s in data.stores:
        week, previous = week_units(s.sales, data.as_of)
        out[s.store_id] = {"units": week, "previous": previous,
                           "units_to_last_day": units_in_days(s.sales, last_day, 7),
                           "previous_to_last_day": units_in_days(s.sales, last_day - timedelta(days=7), 7)}
    return out


def _change(units: int | None, previous: int | None) -> str:
    return f" ({(units - previous) / previous:+.0%})" if units is not None and previous else ""


def telemetry_since(path, since: str) -> list[dict]:  # noqa: ANN001 - a Path
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r.get("time", "") >= since]


@dataclass
class Summary:
    """What the demo found when it was over: the dashboard's figures, what became of each upload and each POS
    event, and the alerts raised (from the lake and from telemetry)."""

    dashboard: Path  # the file written
    now: datetime  # when it was written
    levels: dict[str, int]  # see stock_levels
    sales: dict[str, dict[str, int | None]]  # see sales_last_7_days
    outcomes: list[tuple[str, str, object]]  # see dump_outcomes
    posted: int  # POS events POSTed
    refused: int  # of them, refused at the door
    metric: dict[str, float]  # events_* metrics summed, by name
    alerts: dict[str, int]  # alerts raised, by kind


def telemetry_counts(records: list[dict]) -> tuple[dict[str, float], dict[str, int]]:
    """(the events_* metrics summed, by name; the alerts raised, by kind) in telemetry ``records``."""
    metric = {name: sum(r["value"] for r in records if r["type"] == "metric" and r["name"] == name)
              for name in ("events_applied", "events_duplicate", "events_before_baseline", "events_deadlettered")}
    alerts: dict[str, int] = {}
    for r in records:  # each alert raised is a custom event named by its kind, and one alerts_raised count
        if r["type"] == "metric" and r["name"] == "alerts_raised":
            kind = r["dimensions"].get("kind", "?")
            alerts[kind] = alerts.get(kind, 0) + int(r["value"])
    return metric, alerts


def print_ingests(outcomes: list[tuple[str, str, object]]) -> None:
    """Per upload, its tables' rows in and out and by rule, or why it was not ingested."""
    _say("")
    _say(f"{'store':<8} {'dump':<18} {'table':<9} {'input':>9} {'curated':>9} {'rejected':>9}  by rule")
    for store, status, detail in outcomes:
        if status != "ingested":
            _say(f"{store:<8} {status:<18} {detail}")
            continue
        for name, t in detail["tables"].items():
            rules = ", ".join(f"{k}={v}" for k, v in t["by_rule"].items()) or "-"
            _say(f"{store:<8} {detail['dump_id'][:16]:<18} {name:<9} {t['input']:>9,} {t['curated']:>9,} "
                 f"{t['rejected']:>9,}  {rules}")


def print_findings(c: Container, runner: Runner, s: Summary, first: str, end: date) -> None:
    """What became of the POS events, a few of the first store's counts, the sales, stock levels and alerts."""
    metric = s.metric
    _say("")
    _say(f"POS events: {s.posted:,} POSTed ({s.refused:,} refused at the door), {int(metric['events_applied']):,} "
         f"applied, {int(metric['events_duplicate']):,} duplicates ignored, "
         f"{int(metric['events_before_baseline']):,} already in a dump's count, "
         f"{int(metric['events_deadlettered']):,} dead-lettered")
    for d in [d for d in c.stock.stock(first) if d.events_delta][:3]:
        _say(f"  {first} {d.sku:<8} counted {d.baseline_on_hand:>4} at the snapshot, {d.events_delta:+5} since "
             f"= {d.on_hand:>4} on hand")
    _say(f"Sales, last 7 days (UTC, to {s.now.date()}, as the dashboard counts them; today's come with tonight's "
         "dump): " + ", ".join(f"{st} {_n(v['units'])} units{_change(v['units'], v['previous'])}"
                               for st, v in s.sales.items()))
    _say(f"Sales, the 7 days to {end} (the last day dumped): "
         + ", ".join(f"{st} {v['units_to_last_day']:,} units"
                     f"{_change(v['units_to_last_day'], v['previous_to_last_day'])}" for st, v in s.sales.items()))
    levels = s.levels
    share = max(levels["counts"], 1)
    _say(f"Stock: {levels['low']:,} of {levels['counts']:,} counts low (at or below the reorder point, "
         f"{levels['low'] / share:.1%}), {levels['negative']:,} below zero ({levels['negative'] / share:.1%}).")
    runs = ", ".join(f"{name} {n}" for name, n in sorted(runner.stats.ok.items()))
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(s.alerts.items())) or "none"
    _say(f"Alerts raised: {sum(s.alerts.values())} ({by_kind}). Function runs: {runs}.")


def print_where(c: Container, s: Summary, first: str, cosmos_dev_server: str, started: float) -> None:
    """How long it took, and where to look next."""
    home = c.settings.home
    _say("")
    _say(f"Done in {time.monotonic() - started:.1f} s. Look at:")
    _say(f"  dashboard          {s.dashboard.as_uri()}")
    _say(f"  lake               {c.lake.describe()}  (curated/ rejected/ manifests/ quarantine/ deadletter/ "
         "aggregates/)")
    if cosmos_dev_server:
        _say(f"  stock              {c.stock.describe()}  (in the dev server's memory until it stops)")
    else:
        _say(f"  stock              {c.stock.describe()}     e.g. inventory stock {first} | head -30")
    _say(f"  telemetry          {home / 'telemetry' / 'events.jsonl'}")
    serve = "inventory serve" + (f" --cosmos-dev-server {cosmos_dev_server}" if cosmos_dev_server else "")
    _say(f"  run it yourself    {serve}    then, in another terminal,    inventory pos simulate --rate 50 "
         "--count 500")


def print_json(c: Container, runner: Runner, s: Summary, end: date) -> None:
    """The summary as JSON on stdout (what tests and scripts read)."""
    json.dump({"lake": c.lake.describe(), "stock": c.stock.describe(), "dashboard": str(s.dashboard),
               "events": {"posted": s.posted,
               "refused": s.refused, **{k: int(v) for k, v in s.metric.items()}}, "alerts": s.alerts,
               "history_end": end.isoformat(), "sales_last_7_days": s.sales, "stock_levels": s.levels,
               "function_runs": runner.stats.ok, "function_failures": runner.stats.failed,
               "dumps": [{"store_id": st, "status": status, **({"dump_id": d["dump_id"]} if status == "ingested" else
                                                               {"reason": d})} for st, status, d in s.outcomes]},
              sys.stdout, indent=2)
    sys.stdout.write("\n")


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def dump_outcomes(lake, uploads: list[tuple[str, str]]) -> list[tuple[str, str, object]]:  # noqa: ANN001 - a Lake
    """Per upload (store, sha256 as received): ("ingested", manifest), ("quarantined", reason) or ("missing", ...),
    found by the received sha256 the manifests and quarantine reasons record."""
    found: dict[str, tuple[str, object]] = {}
    for obj in lake.list(layout.MANIFESTS):
        m = json.loads(lake.get_bytes(obj.path))
        found[m.get("received_sha256", "")] = ("ingested", m)
    for obj in lake.list(layout.QUARANTINE):
        if obj.path.endswith("/reason.json"):
            q = json.loads(lake.get_bytes(obj.path))
            found.setdefault(q.get("received_sha256", ""), ("quarantined", f"{q['reason_code']}: {q['reason']}"))
    return [(store, *found.get(sha, ("missing", "no manifest and no quarantine: see the runner's log")))
            for store, sha in uploads]
