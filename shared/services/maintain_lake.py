"""Use case: keep the lake's Delta tables healthy (what the daily ``maintain_lake`` timer and
``inventory lake maintain`` do).

For every Delta table in the lake (``curated/``, ``rejected/``, ``aggregates/``):

- **compaction** (``OPTIMIZE``): each night's commit adds a file per partition it touches; compaction
  rewrites a partition's small files into few large ones (never across partitions). Readers keep their
  snapshot: the old files are only marked removed;
- **vacuum**: deletes files no longer referenced by the table for at least the retention (7 days, never
  less: a reader, e.g. a long Synapse query, may still be reading an older snapshot), and the data files of
  commits that failed (a writer killed between its files and its log entry), which no snapshot ever named;
- **checkpoint** and log cleanup: readers replay the log from the latest checkpoint, not from version 0.

Compaction does not conflict with the ingest's appends (Delta's conflict rules: a rewrite of files an append
did not touch), so the timer need not wait for the night's ingests to end.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from shared.core import layout
from shared.core.schema import TABLES
from shared.ports.lake import Lake
from shared.ports.tables import OpenTables, Tables
from shared.ports.telemetry import Telemetry
from shared.services import engines

MIN_RETENTION_HOURS = 168
"""Vacuum never removes a file unreferenced for less than 7 days (Delta's default safety margin)."""

@dataclass
class TableMaintenance:
    table: str
    version_before: int
    files_before: int
    files_after: int
    files_compacted: int
    files_added: int
    files_vacuumed: int
    seconds: float


@dataclass
class MaintainResult:
    tables: list[TableMaintenance] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"tables": [asdict(t) for t in self.tables], "seconds": self.seconds,
                "files_vacuumed": sum(t.files_vacuumed for t in self.tables),
                "files_compacted": sum(t.files_compacted for t in self.tables)}


def lake_tables(lake: Lake) -> list[str]:
    """The Delta tables the lake holds, of those it may hold: the curated and rejected tables of the schema
    and the aggregates' outputs."""
    from shared.core.aggregates import OUTPUTS

    candidates = [f"{zone}/{name}" for zone in ("curated", "rejected") for name in TABLES]
    candidates += [layout.aggregate(name) for name in OUTPUTS]
    return [path for path in candidates if next(iter(lake.list(f"{path}/_delta_log/")), None) is not None]


def maintain_table(tables: Tables, path: str, *, retention_hours: int) -> TableMaintenance | None:
    """Compact, vacuum and checkpoint one table; None when it does not exist."""
    started = time.monotonic()
    done = tables.maintain(path, retention_hours=retention_hours)
    if done is None:
        return None
    return TableMaintenance(path, done.version_before, done.files_before, done.files_after, done.files_compacted,
                            done.files_added, done.files_vacuumed, round(time.monotonic() - started, 3))


def maintain_lake(*, lake: Lake, telemetry: Telemetry, retention_hours: int = MIN_RETENTION_HOURS,
                  open_tables: OpenTables = engines.open_tables) -> MaintainResult:
    """Maintain every Delta table of the lake; one ``LakeTableMaintained`` event per table, and the totals as
    metrics. A retention under 7 days is refused (a reader may still be reading an older snapshot)."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"a vacuum retention of {retention_hours} h is below the {MIN_RETENTION_HOURS} h (7 days) "
                         "a reader of an older snapshot may need: use 168 or more")
    started = time.monotonic()
    result = MaintainResult()
    tables = open_tables(lake)
    for path in lake_tables(lake):
        done = maintain_table(tables, path, retention_hours=retention_hours)
        if done is None:
            continue
        result.tables.append(done)
        telemetry.event("LakeTableMaintained", table=path, filesBefore=done.files_before, filesAfter=done.files_after,
                        filesCompacted=done.files_compacted, filesVacuumed=done.files_vacuumed, durationS=done.seconds)
    result.seconds = round(time.monotonic() - started, 3)
    totals = result.to_json()
    telemetry.metric("lake_files_compacted", totals["files_compacted"])
    telemetry.metric("lake_files_vacuumed", totals["files_vacuumed"])
    return result


__all__ = ["MIN_RETENTION_HOURS", "MaintainResult", "TableMaintenance", "lake_tables", "maintain_lake"]
