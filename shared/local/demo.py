"""`inventory demo`: the pipeline on generated stores, on this machine's local defaults.

Generates a few realistic stores (with about 1 % dirty rows), has the store agent upload each database
to the lake's raw/ zone, ingests every dump that landed (the blob trigger's code path), then ingests a
hostile dump to show a quarantine, and prints a summary and where the files are.
A run starts clean (the previous demo's lake is removed) unless ``--keep`` is given.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

from shared.bootstrap import build


def _say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(*, stores: int = 3, sales_lines: int = 20_000, days: int = 56, fresh: bool = True) -> int:
    from shared.core.ids import raw_dump_path
    from shared.local.generator import generate_stores
    from shared.services.ingest_dump import ingest_landed_dump
    from shared.services.upload_dump import upload_dump

    started = time.monotonic()
    c = build()
    home = c.settings.home
    demo_dir = home / "demo"
    if fresh:
        shutil.rmtree(demo_dir, ignore_errors=True)
        if not (c.settings.get("LAKE") or c.settings.get("LAKE__blobServiceUri")):
            shutil.rmtree(home / "lake", ignore_errors=True)
            c = build()  # the folder lake re-creates its root
    lake = c.lake
    _say(f"inventory demo: {stores} stores, {sales_lines:,} sale lines each, lake at {lake.describe()}")

    _say("1/3 generating store databases ...")
    truths = generate_stores(demo_dir / "stores", stores, sales_lines=sales_lines, days=days)

    _say("2/3 store agents upload their nightly dumps to raw/ ...")
    uploads = []
    for t in truths:
        r = upload_dump(t.path, t.store_id, lake, scratch=c.scratch_dir)
        uploads.append(r)
        _say(f"    {t.store_id}: {r.path} ({r.size / 1e6:.1f} MB{'' if r.uploaded else ', already there'})")

    _say("3/3 ingesting every dump under raw/ (what the blob trigger does) ...")
    results = []
    for up in uploads:
        obj = lake.head(up.path)
        local = c.scratch_dir / "demo-download.sqlite.gz"
        lake.get_to_file(up.path, local)
        results.append(ingest_landed_dump(up.path, local, obj.metadata if obj else {}, lake=lake,
                                          telemetry=c.telemetry, limits=c.ingest_limits,
                                          scratch=c.scratch_dir))
        local.unlink(missing_ok=True)

    # One hostile upload, so the demo shows what on-call sees when a dump is bad.
    bad = c.scratch_dir / "not-a-database.sqlite"
    bad.write_bytes(b"this is a spreadsheet export, not a SQLite database\n" * 10)
    hostile_path = raw_dump_path(truths[0].store_id, uploads[0].snapshot_at.date(), "not-a-database.sqlite")
    lake.put_file(hostile_path, bad)
    results.append(ingest_landed_dump(hostile_path, bad, {}, lake=lake, telemetry=c.telemetry,
                                      limits=c.ingest_limits, scratch=c.scratch_dir))
    bad.unlink(missing_ok=True)

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
    _say(f"Done in {time.monotonic() - started:.1f} s. Look at:")
    _say(f"  lake               {lake.describe()}")
    _say("    curated/         clean Parquet, Hive-partitioned (store=…/snapshot=… or date=…)")
    _say("    rejected/        rows set aside, original values + reason_code")
    _say("    manifests/       one JSON per dump: counts per table and rule, timings")
    _say("    quarantine/      dumps that could not be read, with reason.json")
    _say(f"  telemetry          {home / 'telemetry' / 'events.jsonl'}")
    _say("  try                inventory ingest <file.sqlite> --store S042   |   inventory rules")
    json.dump({"lake": lake.describe(), "results": [
        {"store_id": r.store_id, "status": r.status, "dump_id": r.dump_id, "reason_code": r.reason_code}
        for r in results]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    ok = all(r.status in ("ingested", "already_ingested") for r in results[:-1])
    return 0 if ok else 1

