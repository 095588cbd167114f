"""`inventory demo`: the pipeline on generated stores, on this machine's local defaults.

Generates a few realistic stores (with about 1 % dirty rows), has the store agent upload each database
to the lake's raw/ zone, ingests every dump that landed (the blob trigger's code path) and makes it the
store's stock baseline, ingests a hostile dump to show a quarantine, then streams simulated POS traffic
(with duplicates and malformed events) through the HTTP ingress into the embedded queue and applies it
(the Event Hub trigger's code path). Prints a summary and where the files are.
A run starts clean (the previous demo's lake, stock and queue are removed) unless ``--keep`` is given.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

from shared.bootstrap import build


def _say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def skus_by_stock(stock, stores: list[str]) -> list[str]:  # noqa: ANN001 - a StockStore
    """The stores' skus, most stocked first: a proxy for demand, since pos_traffic's Zipf ranks follow the
    order given (the best seller should be a well-stocked item, not the first sku in alphabetical order)."""
    stocked: dict[str, int] = {}
    for s in stores:
        for d in stock.stock(s):
            stocked[d.sku] = stocked.get(d.sku, 0) + max(d.on_hand, 0)
    return sorted(stocked, key=lambda k: (-stocked[k], k))


def _pos_traffic(c, stores: list[str], *, count: int) -> dict:  # noqa: ANN001 - the bootstrap Container
    """Simulated POS traffic for the stores' real skus, posted in requests of 50 through the HTTP ingress's
    service into the embedded queue, then applied from the queue the way the Event Hub trigger does."""
    from datetime import UTC, datetime

    from shared.local.pos_traffic import pos_traffic
    from shared.local.queue_consumer import apply_queue
    from shared.services.pos_ingress import accept_sales

    skus = skus_by_stock(c.stock, stores)
    start = datetime.now(UTC)  # after the dumps' snapshots, so every event counts on top of the baseline
    items = list(pos_traffic(stores, skus, count=count, seed=1, start=start, rate_per_s=20))
    rejected = 0
    for i in range(0, len(items), 50):
        body = b"\n".join(item.body for item in items[i:i + 50])
        resp = accept_sales(body, sink=c.events, lake=c.lake, telemetry=c.telemetry,
                            max_bytes=c.settings.int("SALES_HTTP_MAX_BYTES"))
        rejected += resp.body.get("rejected", 0)
    counts = apply_queue(c, batch_size=500)
    return {"sent": len(items), "http_rejected": rejected, **counts.to_json()}


def run_demo(*, stores: int = 3, sales_lines: int = 20_000, days: int = 56, fresh: bool = True,
             pos_events: int = 2000) -> int:
    from shared.core.ids import raw_dump_path
    from shared.local.generator import generate_stores
    from shared.services.ingest_dump import ingest_landed_dump
    from shared.services.reconcile_stock import reconcile_after_ingest
    from shared.services.upload_dump import upload_dump

    started = time.monotonic()
    c = build()
    home = c.settings.home
    demo_dir = home / "demo"
    if fresh:
        shutil.rmtree(demo_dir, ignore_errors=True)
        if not (c.settings.get("LAKE") or c.settings.get("LAKE__blobServiceUri")):
            shutil.rmtree(home / "lake", ignore_errors=True)
        for local_default in ("stock", "events"):  # the embedded stock store and queue
            shutil.rmtree(home / local_default, ignore_errors=True)
        c = build()  # the local adapters re-create their files
    lake = c.lake
    _say(f"inventory demo: {stores} stores, {sales_lines:,} sale lines each, lake at {lake.describe()}")

    _say("1/5 generating store databases ...")
    truths = generate_stores(demo_dir / "stores", stores, sales_lines=sales_lines, days=days)

    _say("2/5 store agents upload their nightly dumps to raw/ ...")
    uploads = []
    for t in truths:
        r = upload_dump(t.path, t.store_id, lake, scratch=c.scratch_dir)
        uploads.append(r)
        _say(f"    {t.store_id}: {r.path} ({r.size / 1e6:.1f} MB{'' if r.uploaded else ', already there'})")

    _say("3/5 ingesting every dump under raw/ and setting each store's stock baseline (the blob trigger) ...")
    results = []
    for up in uploads:
        obj = lake.head(up.path)
        local = c.scratch_dir / "demo-download.sqlite.gz"
        lake.get_to_file(up.path, local)
        results.append(ingest_landed_dump(up.path, local, obj.metadata if obj else {}, lake=lake,
                                          telemetry=c.telemetry, limits=c.ingest_limits,
                                          scratch=c.scratch_dir))
        reconcile_after_ingest(results[-1], lake=lake, stock=c.stock, telemetry=c.telemetry)
        local.unlink(missing_ok=True)

    # One hostile upload, so the demo shows what on-call sees when a dump is bad.
    bad = c.scratch_dir / "not-a-database.sqlite"
    bad.write_bytes(b"this is a spreadsheet export, not a SQLite database\n" * 10)
    hostile_path = raw_dump_path(truths[0].store_id, uploads[0].snapshot_at.date(), "not-a-database.sqlite")
    lake.put_file(hostile_path, bad)
    results.append(ingest_landed_dump(hostile_path, bad, {}, lake=lake, telemetry=c.telemetry,
                                      limits=c.ingest_limits, scratch=c.scratch_dir))
    bad.unlink(missing_ok=True)

    _say("4/5 POS systems post sales over HTTP; the Event Hub trigger's code applies them to stock ...")
    events = _pos_traffic(c, [t.store_id for t in truths], count=pos_events)

    _say("5/5 the timers: aggregates and forecasts, then alerts; and the dashboard ...")
    from shared.services.compute_aggregates import compute_aggregates
    from shared.services.dashboard import write_dashboard
    from shared.services.raise_alerts import AlertSettings, raise_alerts

    aggregates = compute_aggregates(lake=lake, stock=c.stock, telemetry=c.telemetry, scratch=c.scratch_dir,
                                    memory_limit=c.settings.get("INGEST_MEMORY_LIMIT"))
    alert_run = raise_alerts(lake=lake, stock=c.stock, telemetry=c.telemetry,
                             settings=AlertSettings.from_settings(c.settings))
    dashboard = write_dashboard(home / "dashboard.html", lake=lake, stock=c.stock).resolve()

    _say("")
    _say(f"{'store':<8} {'status':<17} {'table':<9} {'input':>9} {'curated':>9} {'rejected':>9}  by rule")
    for r in results:
        if r.status == "quarantined":
            _say(f"{r.store_id:<8} {r.status:<17} {r.reason_code}: {r.reason}")
            continue
        for name, t in r.manifest["tables"].items():
            rules = ", ".join(f"{k}={v}" for k, v in t["by_rule"].items()) or "-"
            _say(f"{r.store_id:<8} {r.status:<17} {name:<9} {t['input']:>9,} {t['curated']:>9,} "
                 f"{t['rejected']:>9,}  {rules}")
    _say("")
    _say(f"POS events: {events['sent']:,} sent over HTTP ({events['http_rejected']:,} refused at the door), "
         f"{events['applied']:,} applied, {events['duplicate']:,} duplicates ignored, "
         f"{events['before_baseline']:,} already in a dump's count, {events['deadlettered']:,} dead-lettered")
    first = truths[0].store_id
    moved = [d for d in c.stock.stock(first) if d.events_delta][:5]
    for d in moved:
        _say(f"  {first} {d.sku:<8} counted {d.baseline_on_hand:>4} at the snapshot, {d.events_delta:+5} since "
             f"= {d.on_hand:>4} on hand")
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(alert_run.by_kind.items())) or "none"
    _say(f"Aggregates: {aggregates.partitions_recomputed:,} store-days recomputed, {aggregates.stock_rows:,} "
         f"stock rows with forecasts. Alerts raised: {len(alert_run.raised)} ({by_kind}).")
    _say("")
    _say(f"Done in {time.monotonic() - started:.1f} s. Look at:")
    _say(f"  lake               {lake.describe()}")
    _say("    curated/         clean Parquet, Hive-partitioned (store=…/snapshot=… or date=…)")
    _say("    rejected/        rows set aside, original values + reason_code")
    _say("    manifests/       one JSON per dump: counts per table and rule, timings")
    _say("    quarantine/      dumps that could not be read, with reason.json")
    _say("    deadletter/      events that failed validation, raw body + reason")
    _say("    aggregates/      daily sales, current stock, forecasts, data quality (Parquet for Synapse)")
    _say(f"  stock              {c.stock.describe()}")
    _say(f"  telemetry          {home / 'telemetry' / 'events.jsonl'}")
    _say(f"  dashboard          {dashboard.as_uri()}")
    _say(f"  try                inventory stock {first} | head -30    then    inventory pos simulate --rate 50 "
         "--count 500 && inventory events consume && inventory stock " + first)
    json.dump({"lake": lake.describe(), "events": events, "dashboard": str(dashboard),
               "alerts_raised": len(alert_run.raised), "results": [
        {"store_id": r.store_id, "status": r.status, "dump_id": r.dump_id, "reason_code": r.reason_code}
        for r in results]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    ok = all(r.status in ("ingested", "already_ingested") for r in results[:-1])
    return 0 if ok else 1

