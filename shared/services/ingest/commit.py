"""Steps 4 and 5, under the store's lock: per table, the lines already in the lake, then one Delta commit of
the curated rows and one of the rejected rows; the manifest last.

Ingests of one store are serialised from reading what the lake holds to writing the manifest by a lake lock
(``store=<id>``: a file lock on the folder lake, a renewed blob lease on Blob storage): Delta appends never
conflict with each other, so two dumps of a store ingested at once would otherwise both append the lines they
share. Each commit carries the dump id as an application transaction, so a retry after a crash skips the
tables already committed and commits the rest; each is atomic (docs/lake.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import __version__
from shared.core import layout
from shared.ports.lake import HeldLock, LockTimeout
from shared.ports.tables import Tables
from shared.services.ingest.duplicates import Finishing
from shared.services.ingest.history import ReadPlan, record_history
from shared.services.ingest.job import DumpJob, Stamp
from shared.services.ingest.manifest import Snapshot, already_ingested, build_manifest, note_history
from shared.services.ingest.new_lines import new_lines, snapshot_rows
from shared.services.ingest.rejected import rejected_rows
from shared.services.ingest.result import IngestResult, ProgressFn
from shared.services.ingest.row_stage import DumpRead, StagedTable
from shared.services.ingest.source import Dump

if TYPE_CHECKING:
    import pyarrow as pa

FACT_PARTITIONS = ("store_id", "month")  # see docs/lake.md: a store's month makes files of useful size
SNAPSHOT_PARTITIONS = ("store_id",)  # a dump's snapshot is small: compaction merges a store's dumps


def commit_dump(con: Any, job: DumpJob, dump: Dump, read: DumpRead, finishing: dict[str, Finishing],
                snapshot: Snapshot) -> IngestResult:
    """Commit the dump's tables and write its manifest, holding the store's lock: two dumps of one store
    ingested at once (parallel triggers, several instances) would otherwise each read the lake without the
    other's lines, and both append them (appends never conflict in Delta Lake)."""
    t0 = time.monotonic()
    try:
        with job.lake.lock(f"store={job.store_id}") as held:
            job.time("lock_wait", t0)
            if (done := already_ingested(job, dump.dump_id, meanwhile=True)) is not None:
                return done  # the same dump, ingested meanwhile elsewhere
            t0 = time.monotonic()
            committer = Committer(con, job.engines.open_tables(job.lake), held,
                                  Stamp(job.store_id, dump.dump_id, snapshot.at), read.work, job.say)
            for name, staged in read.staged.items():
                committer.commit_table(staged, finishing[name], read.plans.get(name))
            job.time("commit", t0)
            job.time("total", job.started)
            manifest = build_manifest(job, dump, read, finishing, snapshot, committer.versions)
            note_history(read, manifest["tables"])
            held.check()
            job.lake.put_bytes(layout.manifest(job.store_id, dump.dump_id), json.dumps(manifest, indent=2).encode())
            record_history(job.lake, job.store_id, read.plans, read.digests, dump_id=dump.dump_id)
    except LockTimeout as exc:
        raise LockTimeout(f"dump {dump.dump_id} of store {job.store_id} waited for another ingest of the same "
                          f"store to finish, in vain: {exc}") from exc
    return IngestResult("ingested", job.store_id, dump.dump_id, manifest)


@dataclass
class Committer:
    """Commits one dump's tables; ``versions``: the Delta version of each commit (``{"curated/sales": 7}``)."""

    con: Any  # the DuckDB connection of the earlier stages
    tables: Tables
    held: HeldLock  # the store's lock
    stamp: Stamp
    scratch: Path
    say: ProgressFn
    versions: dict[str, int] = field(default_factory=dict)

    def commit_table(self, staged: StagedTable, fin: Finishing, plan: ReadPlan | None) -> None:
        """Commit a table's curated rows, then its rejected rows, one Delta commit each. ``plan``: how a fact
        table was read (a window: only the lake's lines near it are compared)."""
        table, name = staged.table, staged.table.name
        window = plan.hwm if plan is not None and plan.incremental else None
        if table.fact:
            curated = new_lines(self.con, self.tables, staged, fin, self.stamp,
                                windowed=plan is not None and plan.incremental)
        else:
            snapshot = snapshot_rows(staged, fin, self.stamp)
            curated = [snapshot] if snapshot is not None else []
        self._append(layout.curated(name), curated, plain=(table.key[0], table.event_time or ""),
                     partition_by=FACT_PARTITIONS if table.fact else SNAPSHOT_PARTITIONS)
        rejected = rejected_rows(self.con, self.tables, staged, fin, self.stamp, window=window)
        self._append(layout.rejected(name), rejected, partition_by=SNAPSHOT_PARTITIONS)
        counts = fin.counts
        self.say(f"{name}: {counts['curated']:,} curated, {counts['rejected']:,} rejected"
                 + (f", {counts['written']:,} new to the lake" if table.fact else ""))

    def _append(self, path: str, parts: Iterable[pa.Table], *, partition_by: Sequence[str],
                plain: Sequence[str] = ()) -> None:
        """Append ``parts`` (each the rows of one partition) to the Delta table at ``path`` in one commit
        carrying the dump id (an application transaction and commit metadata); nothing when there are no rows.
        An earlier attempt of this dump that committed already is found by its transaction: its version is
        recorded and nothing is written again (the parts are still taken: the counts come from them)."""
        dump_id = self.stamp.dump_id
        table = self.tables.open(path)
        if self.tables.committed(table, dump_id):
            found = self.tables.find_commit(table, "dump_id", dump_id)
            if found is not None:
                self.versions[path] = int(found["version"])
            for _ in parts:
                pass
            return
        version = self.tables.append_parts(
            path, _checked(parts, self.held), partition_by=partition_by, scratch=self.scratch, app_id=dump_id,
            metadata={"dump_id": dump_id, "store_id": self.stamp.store_id, "pipeline_version": __version__},
            plain=plain)
        if version is not None:
            self.versions[path] = version


def _checked(parts: Iterable[pa.Table], held: HeldLock) -> Iterator[pa.Table]:
    """``parts``, then a check that the store's lock is still ours (a Blob lease renewed in time) before the
    commit: nobody else wrote meanwhile."""
    yield from parts
    held.check()


__all__ = ["FACT_PARTITIONS", "SNAPSHOT_PARTITIONS", "Committer", "commit_dump"]
