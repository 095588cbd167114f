"""`inventory demo`: the whole pipeline on generated stores, on this machine's local defaults, driven by the
local runner (``inventory serve``) the way Azure drives the function app.

Generates a few realistic stores (with about 1 % dirty rows) whose sales history ends yesterday (UTC, or
``end``), counted at 23:00 that night; the store agent uploads each database to the lake's raw/ zone as that
nightly dump, plus one broken upload; then the local runner starts (in this process) and its blob trigger
ingests each dump and sets the store's stock baseline; simulated POS traffic (with duplicates and malformed
events; each store sells what it has on hand) is POSTed over HTTP to the runner's ``/api/sales`` with the
function key, lands in the embedded queue and reaches ``apply_sales`` in batches; the timers
``compute_aggregates`` and ``raise_alerts`` are run through the runner's admin endpoint (as with ``func
start``); the dashboard is written. The summary comes from what the functions left behind: manifests,
quarantine reasons, telemetry, and the dashboard's read model (units sold in the last 7 days, the share of
counts low on stock or below zero).

Where: the local defaults (a folder lake, the embedded stock store), or the emulators — ``LAKE`` set to an
Azurite connection string, and ``cosmos_dev_server`` (``--cosmos-dev-server URL``) for the npm Cosmos-API
server through the dev shim (:mod:`shared.local.cosmos_devserver`: batches emulated, not atomic);
``make demo EMULATORS=1`` starts both and passes both. The POS events always go through the embedded queue
(the runner cannot read Event Hubs).

A run starts clean unless ``fresh=False`` (``--keep``): the previous demo's generated stores, queue, runner
state (blob receipts, timer status) and embedded stock store are removed; the lake is emptied when it is the
folder lake or a Blob container on a loopback address (Azurite: every object in the container is deleted,
since a server still running from an earlier demo keeps them); on the Cosmos dev server the stock container
is deleted and created again, empty. The same container names are used every run (``LAKE_CONTAINER``,
``COSMOS_DATABASE``/``COSMOS_CONTAINER``: the blob trigger's path names the lake container), so a re-run
against servers still running gives the same counts. A lake elsewhere (an Azure account) is never emptied.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.bootstrap import use_default_container
from shared.core import layout
from shared.local.cosmos_devserver import LOOPBACK_HOSTS, build_on_dev_server
from shared.local.demo_report import (
    Summary,
    dump_outcomes,
    print_findings,
    print_ingests,
    print_json,
    print_where,
    sales_last_7_days,
    stock_levels,
    telemetry_counts,
    telemetry_since,
)

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.local.generator import StoreTruth
    from shared.local.pos_traffic import TrafficItem
    from shared.local.runner import Runner


def _say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def yesterday_utc(now: datetime | None = None) -> date:
    """The last whole UTC day before ``now`` (default: the present): where the demo's sales history ends."""
    return (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=1)


def stock_by_store(stock, stores: list[str]) -> dict[str, dict[str, int]]:  # noqa: ANN001 - a StockStore
    """Units on hand per store and sku, as the stock store has them now."""
    return {s: {d.sku: d.on_hand for d in stock.stock(s)} for s in stores}


def most_stocked_first(on_hand: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The skus of ``on_hand`` (store -> sku -> units), most stocked over all stores first: a proxy for demand,
    since pos_traffic's Zipf ranks follow the order given and the generator stocks items by their demand (the
    best seller should be a well-stocked item, not the first sku in alphabetical order)."""
    stocked: dict[str, int] = {}
    for counts in on_hand.values():
        for sku, n in counts.items():
            stocked[sku] = stocked.get(sku, 0) + max(n, 0)
    return sorted(stocked, key=lambda k: (-stocked[k], k))


def skus_by_stock(stock, stores: list[str]) -> list[str]:  # noqa: ANN001 - a StockStore
    """The stores' skus, most stocked first (see :func:`most_stocked_first`)."""
    return most_stocked_first(stock_by_store(stock, stores))


def generate_demo_stores(folder: Path, stores: int, *, sales_lines: int, days: int,
                         end: date | None = None) -> list[StoreTruth]:
    """The demo's stores: ``days`` days of sales ending on ``end`` (default: yesterday, UTC), each counted at
    23:00 UTC that night, as a nightly dump taken after the day's last sale."""
    from shared.local.generator import generate_stores

    return generate_stores(folder, stores, sales_lines=sales_lines, days=days, end=end or yesterday_utc())


def demo_traffic(on_hand: Mapping[str, Mapping[str, int]], *, count: int, start: datetime, seed: int = 1,
                 rate_per_s: float = 20.0) -> list[TrafficItem]:
    """The demo's POS messages for the stores of ``on_hand`` (store -> sku -> units): skus ranked by stock,
    and each store selling what it has (rarely more)."""
    from shared.local.pos_traffic import pos_traffic

    return list(pos_traffic(list(on_hand), most_stocked_first(on_hand), count=count, seed=seed, start=start,
                            rate_per_s=rate_per_s, on_hand=on_hand))


def _free_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1 (0: any), else a free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, key: str) -> dict:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"x-functions-key": key, "content-type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST {url} answered {exc.code}: {exc.read()[:300]!r}") from None


def _wait(what: str, done, timeout_s: float = 300.0) -> None:  # noqa: ANN001 - a () -> bool
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local runner did not finish {what} within {timeout_s:.0f} s; see its log above")
        time.sleep(0.1)


def _empty_emulator_lake(lake) -> int | None:  # noqa: ANN001 - a Lake
    """Delete every object of a Blob lake on a loopback address (Azurite); how many, or None (not such a lake:
    left alone)."""
    container = getattr(lake, "container", None)
    if container is None or urlsplit(container.url).hostname not in LOOPBACK_HOSTS:
        return None
    from concurrent.futures import ThreadPoolExecutor

    names = [b.name for b in container.list_blobs()]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one request per object; a few in flight
        for _ in pool.map(container.delete_blob, names):
            pass
    return len(names)


def run_demo(*, stores: int = 3, sales_lines: int = 20_000, days: int = 56, fresh: bool = True,
             pos_events: int = 2000, port: int = 7071, cosmos_dev_server: str = "", end: date | None = None) -> int:
    """The demo; ``end`` is the last day of the generated sales history (default: yesterday, UTC).

    Its steps: a clean start, the stores generated and their dumps uploaded, the local runner ingesting them,
    POS traffic through it, its timers, the dashboard, then the summary of what the functions left behind."""
    for dependency in ("inventory_agent", "shared.local.runner", "shared.services.dashboard"):
        importlib.import_module(dependency)  # a missing one fails the demo before anything is removed

    started = time.monotonic()
    end = end or yesterday_utc()
    since = datetime.now(UTC).isoformat()
    c, cleaned = _demo_container(fresh, cosmos_dev_server)
    _announce(c, stores, sales_lines, cosmos_dev_server, cleaned)

    _say(f"1/6 generating store databases: {days} days of sales to {end}, counted at 23:00 UTC that night ...")
    truths = generate_demo_stores(c.settings.home / "demo" / "stores", stores, sales_lines=sales_lines, days=days,
                                  end=end)
    uploads = _upload_dumps(c, truths, end)
    runner = _start_runner(c, port)
    posted, refused = _serve(c, runner, truths, pos_events)
    dashboard, now, levels, sales = _write_dashboard(c, end)
    if runner.stats.failed:
        _say(f"some invocations failed: {runner.stats.failed}; see the log above")

    # -- the summary, from what the functions left in the lake and in telemetry ------------------------
    outcomes = dump_outcomes(c.lake, uploads)
    metric, alerts = telemetry_counts(telemetry_since(c.settings.home / "telemetry" / "events.jsonl", since))
    summary = Summary(dashboard=dashboard, now=now, levels=levels, sales=sales, outcomes=outcomes, posted=posted,
                       refused=refused, metric=metric, alerts=alerts)
    print_ingests(summary.outcomes)
    print_findings(c, runner, summary, truths[0].store_id, end)
    print_where(c, summary, truths[0].store_id, cosmos_dev_server, started)
    print_json(c, runner, summary, end)
    ok = not runner.stats.failed and all(st == "ingested" for _, st, _ in summary.outcomes[:-1])
    return 0 if ok else 1


def _demo_container(fresh: bool, cosmos_dev_server: str) -> tuple[Container, list[str]]:
    """The container the functions will use, after a clean start unless not ``fresh``; what was cleaned, to say."""
    # The environment with one default of its own: no telemetry line per event on the console unless asked
    # for (the runner's one line per invocation is the progress). Adapters are built on first use: nothing
    # is opened yet.
    c = build_on_dev_server({"TELEMETRY_CONSOLE": "0", **dict(os.environ)}, cosmos_dev_server)
    cleaned = _start_clean(c, cosmos_dev_server) if fresh else []
    use_default_container(c)  # the container the functions use, so the runner and they share adapters
    return c, cleaned


def _start_clean(c: Container, cosmos_dev_server: str) -> list[str]:
    """Remove what an earlier demo left (see the module's notes); what was cleaned or kept, to say."""
    home = c.settings.home
    cleaned: list[str] = []
    shutil.rmtree(home / "demo", ignore_errors=True)
    if not (c.settings.get("LAKE") or c.settings.get("LAKE__blobServiceUri")):
        shutil.rmtree(home / "lake", ignore_errors=True)
    elif (n := _empty_emulator_lake(c.lake)) is None:
        cleaned.append(f"the lake at {c.lake.describe()} is not on this machine: kept as it is")
    elif n:
        cleaned.append(f"emptied the lake on the emulator: {n:,} objects of an earlier run deleted")
    for local_default in ("stock", "events", "runner"):  # the embedded stock store and queue, receipts
        shutil.rmtree(home / local_default, ignore_errors=True)
    if cosmos_dev_server:
        from shared.local.cosmos_devserver import drop_stock_container

        if drop_stock_container(cosmos_dev_server, c.settings):
            cleaned.append("deleted the stock container of an earlier run on the Cosmos dev server")
    return cleaned


def _announce(c: Container, stores: int, sales_lines: int, cosmos_dev_server: str, cleaned: list[str]) -> None:
    lake = c.lake
    stock_at = c.stock.describe() + (" (the npm Cosmos-API server: batches emulated, not atomic)"
                                     if cosmos_dev_server else "")
    _say(f"inventory demo: {stores} stores, {sales_lines:,} sale lines each, lake at {lake.describe()}, "
         f"stock in {stock_at}")
    for line in cleaned:
        _say(f"    ({line})")


def _upload_dumps(c: Container, truths: list[StoreTruth], end: date) -> list[tuple[str, str]]:
    """Step 2: each store's dump uploaded as its agent does, and one upload that is not a database; per upload,
    (store, sha256 as received)."""
    from inventory_agent import upload_dump

    _say("2/6 store agents upload their nightly dumps to raw/ (and one upload is not a database) ...")
    uploads = []
    for t in truths:  # taken at the nightly count, after the day's last sale
        r = upload_dump(t.path, t.store_id, c.lake, scratch=c.scratch_dir, now=t.snapshot_at)
        uploads.append((t.store_id, r.sha256))
        _say(f"    {t.store_id}: {r.path} ({r.size / 1e6:.1f} MB{'' if r.uploaded else ', already there'})")
    bad = b"this is a spreadsheet export, not a SQLite database\n" * 10
    c.lake.put_bytes(layout.raw_dump_path(truths[0].store_id, end, "not-a-database.sqlite"), bad)
    uploads.append((truths[0].store_id, hashlib.sha256(bad).hexdigest()))
    return uploads


def _start_runner(c: Container, port: int) -> Runner:
    """The local runner on ``c``, its log on the console (not serving yet)."""
    from shared.local.runner import Runner

    logging.basicConfig(level=logging.WARNING, format="    %(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    logging.getLogger("inventory.runner").setLevel(logging.INFO)
    return Runner(c, port=_free_port(port), poll_s=0.2, schedules=False)  # timers: once each, in order


def _serve(c: Container, runner: Runner, truths: list[StoreTruth], pos_events: int) -> tuple[int, int]:
    """Steps 3 to 5, while the runner serves: the dumps ingested, POS traffic applied, the timers run. Returns
    (events POSTed, refused at the door)."""
    _say(f"3/6 the local runner starts (inventory serve, HTTP on {runner.base_url}); its blob trigger "
         "ingests each dump and sets the store's stock baseline ...")
    serving = threading.Thread(target=runner.serve, name="demo-runner", daemon=True)
    serving.start()
    try:
        _wait("the dumps", lambda: not runner.unsettled_blobs())
        traffic = _post_traffic(c, runner, [t.store_id for t in truths], pos_events)
        _run_timers(runner)
    finally:
        runner.stop.set()
        serving.join()
    return traffic


def _post_traffic(c: Container, runner: Runner, store_ids: list[str], pos_events: int) -> tuple[int, int]:
    """Step 4: the stores' POS traffic POSTed to the runner, until the queue is drained; (POSTed, refused)."""
    _say(f"4/6 POS systems POST {pos_events:,} sale events to {runner.base_url}/api/sales; apply_sales gets "
         "them from the queue in batches ...")
    items = demo_traffic(stock_by_store(c.stock, store_ids), count=pos_events, start=datetime.now(UTC))
    refused = 0
    for i in range(0, len(items), 200):
        reply = _post(f"{runner.base_url}/api/sales", b"\n".join(x.body for x in items[i:i + 200]),
                      runner.keys.default)
        refused += reply.get("rejected", 0)
    group = c.settings.get("EVENTHUB_CONSUMER_GROUP")
    _wait("the events", lambda: sum(c.queue.backlog(group).values()) == 0)
    return len(items), refused


def _run_timers(runner: Runner) -> None:
    _say("5/6 the timers: compute_aggregates, then raise_alerts (run now through POST /admin/functions/…) ...")
    for name in ("compute_aggregates", "raise_alerts"):
        req = urllib.request.Request(f"{runner.base_url}/admin/functions/{name}", data=b"{}", method="POST",
                                     headers={"x-functions-key": runner.keys.master})
        with urllib.request.urlopen(req, timeout=600):
            pass


def _write_dashboard(c: Container, end: date,
                     ) -> tuple[Path, datetime, dict[str, int], dict[str, dict[str, int | None]]]:
    """Step 6: the dashboard written (its path, and when), and its figures read back for the summary: the stock
    levels and the sales of the last 7 days."""
    from shared.services.dashboard import gather_dashboard_data, write_dashboard

    _say("6/6 writing the dashboard ...")
    now = datetime.now(UTC)
    dashboard = write_dashboard(c.settings.home / "dashboard.html", lake=c.lake, stock=c.stock, now=now).resolve()
    view = gather_dashboard_data(lake=c.lake, stock=c.stock, now=now)
    return dashboard, now, stock_levels(view, c.stock), sales_last_7_days(view, end)


