"""The manifest, the operator's record of a dump (``manifests/store=<id>/<dump id>.json``): written last, so a
dump whose manifest exists is ingested whole and is not ingested again. And the dump's snapshot time, which
the manifest and every committed row carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from shared import __version__
from shared.core import layout
from shared.core.ids import utc_iso
from shared.core.manifest import Manifest
from shared.core.schema import SCHEMA_VERSION
from shared.services.ingest.duplicates import Finishing
from shared.services.ingest.history import history_note
from shared.services.ingest.job import DumpJob
from shared.services.ingest.result import IngestResult
from shared.services.ingest.row_stage import DumpRead, StagedTable
from shared.services.ingest.source import Dump


@dataclass(frozen=True)
class Snapshot:
    """When the store's database was as the dump shows it (UTC), and what says so."""

    at: datetime
    source: str  # "agent" (recorded at upload), "stock.counted_at" (the latest count), or "landed_at"


def snapshot_of(job: DumpJob, staged: dict[str, StagedTable]) -> Snapshot:
    """The agent's recorded snapshot time; without it the latest ``stock.counted_at`` among the rows that
    passed; failing that, when the dump landed."""
    if job.snapshot_at is not None:
        return Snapshot(job.snapshot_at.astimezone(UTC), "agent")
    counted = staged["stock"].latest_counted_at
    if counted is not None:
        return Snapshot(counted.astimezone(UTC), "stock.counted_at")
    return Snapshot(job.landed_at.astimezone(UTC), "landed_at")


def already_ingested(job: DumpJob, dump_id: str, *, meanwhile: bool = False) -> IngestResult | None:
    """The result of an ingest that finds the dump's manifest (``meanwhile``: found under the store's lock,
    written by another ingest of the same dump since this one began); None when there is no manifest."""
    path = layout.manifest(job.store_id, dump_id)
    if job.lake.head(path) is None:
        return None
    manifest = json.loads(job.lake.get_bytes(path))
    job.say(f"dump {dump_id} of store {job.store_id} was {'ingested meanwhile' if meanwhile else 'already ingested'}"
            "; nothing to do")
    job.telemetry.event("DumpAlreadyIngested", storeId=job.store_id, dumpId=dump_id)
    return IngestResult("already_ingested", job.store_id, dump_id, manifest)


def build_manifest(job: DumpJob, dump: Dump, read: DumpRead, finishing: dict[str, Finishing], snapshot: Snapshot,
                   versions: dict[str, int]) -> dict:
    """The manifest of a dump just committed (``versions``: the Delta version of each commit)."""
    triggers = read.triggers
    return {
        "schema_version": SCHEMA_VERSION,
        "pipeline_version": __version__,
        "store_id": job.store_id,
        "dump_id": dump.dump_id,
        "sha256": dump.sha,
        "received_sha256": dump.received_sha,
        "source_name": job.source_name,
        "snapshot_at": utc_iso(snapshot.at),
        "snapshot_source": snapshot.source,
        "ingested_at": utc_iso(datetime.now(UTC)),
        "mapping": job.mapping.source,
        "timezone": job.mapping.timezone,
        "tables": {name: fin.counts for name, fin in finishing.items()},
        "warnings": ([f"the dump defines {len(triggers)} trigger(s) ({', '.join(triggers[:5])}); "
                      "they were never run (the dump is opened read-only)"] if triggers else []),
        "timings_s": job.timings,
        "delta_versions": versions,
    }


def note_history(read: DumpRead, tables: dict[str, dict]) -> None:
    """Add to each fact table's counts how it was read tonight (waits for the digests of the tables read whole:
    they are recorded for the next nights)."""
    if read.full_check is not None:
        read.digests.update(read.full_check.result())
    for name, plan in read.plans.items():
        if name in tables:
            tables[name]["history"] = history_note(plan, read.digests.get(name))


def report_ingested(job: DumpJob, result: IngestResult) -> None:
    """The telemetry of a dump ingested: one event, and the rows curated and rejected per table."""
    manifest, store_id = Manifest.from_json(result.manifest), job.store_id
    job.telemetry.event("DumpIngested", storeId=store_id, dumpId=result.dump_id, rowsIn=manifest.rows_in(),
                        rowsRejected=manifest.rows_rejected(), durationS=manifest.raw["timings_s"]["total"],
                        snapshotAt=manifest.snapshot_at)
    for name, t in manifest.tables.items():
        job.telemetry.metric("rows_ingested", t.curated, storeId=store_id, table=name)
        job.telemetry.metric("rows_rejected", t.rejected, storeId=store_id, table=name)


__all__ = ["Snapshot", "already_ingested", "build_manifest", "note_history", "report_ingested", "snapshot_of"]
