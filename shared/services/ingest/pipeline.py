"""Use case: ingest one store dump into the lake (what the blob trigger and ``inventory ingest`` do).

The flow, one step of :func:`_ingest` each (and the module that does it):

    dump file
      1. receive: hash it, gunzip it into the working folder, its dump id;        source.py
         a dump whose manifest exists is not ingested again                       manifest.py
      2. read and clean: open it safely (a child process); the row stage,         row_stage.py
         DuckDB SQL over Arrow batches while the child reads the next batch;
         rows that passed spooled by event date + a narrow key file
         (which lines a night reads, and the history check: history.py)
      3. the duplicate stage on the keys                                          duplicates.py
      4. under the store lock, per table: lines already in the lake (one key      commit.py,
         join with the Delta table's keys) ──▶ one Delta commit of the curated      new_lines.py,
         rows, one of the rejected rows                                           rejected.py
      5. the manifest, last (the operator's record of the dump)                   manifest.py
    a fault of the dump itself, at step 1 or 2: quarantined instead               quarantine.py

Idempotent: the dump id is the hash of the SQLite content. A dump whose manifest exists is not ingested
again, and each Delta commit carries the dump id as an application transaction, so a retry after a crash
skips the tables already committed and commits the rest. Each commit is atomic: a reader sees the whole of
it or nothing, whatever happens to the writer. Dumps are full snapshots: sale and receipt lines whose key the
lake has (committed by another dump) are counted (``already_in_lake``) but not written again.

Ingests of one store are serialised from reading what the lake holds to writing the manifest by a lake
lock (``store=<id>``): reading and cleaning the dump, the bulk of the time, run outside it (commit.py).
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

from shared.core.ids import parse_utc, validate_store_id
from shared.core.layout import parse_raw_dump_path
from shared.core.mapping import Mapping
from shared.core.rules import FUTURE_TOLERANCE
from shared.ports.dumps import DumpRejected
from shared.ports.lake import Lake
from shared.ports.telemetry import Telemetry
from shared.services.engines import default_engines
from shared.services.ingest.commit import commit_dump
from shared.services.ingest.duplicates import find_duplicates
from shared.services.ingest.engine import open_engine
from shared.services.ingest.job import DumpJob
from shared.services.ingest.manifest import already_ingested, report_ingested, snapshot_of
from shared.services.ingest.quarantine import Rejected, bad_path, quarantine, store_mismatch
from shared.services.ingest.result import IngestLimits, IngestResult, ProgressFn
from shared.services.ingest.row_stage import read_dump
from shared.services.ingest.source import (
    Dump,
    check_not_in_use,
    load_store_mapping,
    receive,
    sha256_file,
    working_folder,
)


def ingest_dump(
    source: Path,
    store_id: str,
    *,
    lake: Lake,
    telemetry: Telemetry,
    limits: IngestLimits | None = None,
    mapping: Mapping | None = None,
    source_name: str | None = None,
    snapshot_at: datetime | None = None,
    landed_at: datetime | None = None,
    scratch: Path | None = None,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Ingest the dump at ``source`` (SQLite, or gzip of it) for ``store_id``.

    ``snapshot_at`` is the agent's recorded snapshot time (blob metadata); without it the latest
    ``stock.counted_at`` is used, failing that ``landed_at`` (default: now). Raises
    :class:`~shared.core.ids.InvalidStoreId` before touching the lake for an unsafe store id, and
    :class:`~shared.core.mapping.MappingError` for a broken mapping file, and :class:`DatabaseInUse` for a
    local database with changes still in its ``-wal`` file; every problem with the dump itself is a
    quarantine, returned as a result.
    """
    started = time.monotonic()
    source = Path(source)
    validate_store_id(store_id)
    check_not_in_use(source)
    if mapping is None:
        mapping = load_store_mapping(lake, store_id)
    landed_at = landed_at or datetime.now(UTC)
    job = DumpJob(source=source, store_id=store_id, source_name=source_name or source.name, lake=lake,
                  telemetry=telemetry, limits=limits or IngestLimits(), mapping=mapping, snapshot_at=snapshot_at,
                  landed_at=landed_at, not_after=datetime.now(UTC) + FUTURE_TOLERANCE, scratch=scratch,
                  say=progress or (lambda _msg: None), engines=default_engines(), started=started)
    return _ingest(job)


def _ingest(job: DumpJob) -> IngestResult:
    """The flow of the module docstring, one step a line."""
    with contextlib.ExitStack() as in_use:
        tmp = working_folder(job, in_use)  # (stale working folders swept first)
        dump = receive(job, tmp, in_use)  # 1.
        if dump.rejected is not None:
            return _quarantine(job, dump, dump.rejected, key=dump.received_sha[:24])
        if (done := already_ingested(job, dump.dump_id)) is not None:
            return done
        job.time("hash", job.started)  # and decompress, sweep
        con = in_use.enter_context(open_engine(job.limits, tmp, job.mapping.timezone))
        try:
            read = read_dump(con, job, dump, tmp, in_use)  # 2.
        except DumpRejected as exc:
            con.close()
            return _quarantine(job, dump, exc, key=dump.dump_id)
        finishing = find_duplicates(con, read.staged, job)  # 3.
        result = commit_dump(con, job, dump, read, finishing, snapshot_of(job, read.staged))  # 4. and 5.
    if result.status == "ingested":
        report_ingested(job, result)
    return result


def _quarantine(job: DumpJob, dump: Dump, exc: DumpRejected, *, key: str) -> IngestResult:
    return quarantine(job.lake, job.telemetry, Rejected(job.store_id, key, job.source, job.source_name,
                                                        dump.received_sha, exc, job.started))


def ingest_landed_dump(
    lake_path: str,
    local: Path,
    metadata: dict[str, str] | None,
    *,
    lake: Lake,
    telemetry: Telemetry,
    limits: IngestLimits | None = None,
    scratch: Path | None = None,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Ingest a dump that landed in ``raw/`` (what the blob trigger does), already copied to ``local``.

    The store id comes from the path (``raw/store=<id>/date=<d>/<file>``) and the snapshot time from the
    agent's metadata. A path with an unsafe store id is quarantined under ``quarantine/store=_invalid/``.
    """
    metadata = metadata or {}
    started = time.monotonic()
    try:
        store_id, _day, name = parse_raw_dump_path(lake_path)
    except ValueError as exc:  # InvalidStoreId, or a path of another shape (a date that does not exist)
        sha = sha256_file(local)
        code, store = bad_path(lake_path, exc)
        return quarantine(lake, telemetry, Rejected(store, sha[:24], local, lake_path.rsplit("/", 1)[-1], sha,
                                                    DumpRejected(code, str(exc)), started))
    # The agent records the store it uploads for (agents older than that send no store_id: accepted).
    # Metadata names are case-insensitive in Azure.
    claimed = next((v for k, v in metadata.items() if k.lower() == "store_id"), None)
    if claimed is not None and claimed != store_id:
        sha = sha256_file(local)
        return quarantine(lake, telemetry, Rejected(store_id, sha[:24], local, name, sha,
                                                    store_mismatch(claimed, store_id), started))
    return ingest_dump(local, store_id, lake=lake, telemetry=telemetry, limits=limits, source_name=name,
                       snapshot_at=_snapshot_at(metadata), scratch=scratch, progress=progress)


def _snapshot_at(metadata: dict[str, str]) -> datetime | None:
    """The agent's recorded snapshot time; None when absent or unreadable (the ingest falls back to
    ``stock.counted_at``; the manifest says which was used)."""
    if not metadata.get("snapshot_at"):
        return None
    try:
        return parse_utc(metadata["snapshot_at"])
    except ValueError:
        return None


__all__ = ["ingest_dump", "ingest_landed_dump"]
