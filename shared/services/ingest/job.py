"""The small records the stages pass each other instead of long parameter lists.

- :class:`Engines`: how the ingest reaches the things it does not implement (the dump reader, the lake's Delta
  tables, the local spool): ports, built by :func:`~shared.services.engines.default_engines`;
- :class:`DumpJob`: one ingest as the caller asked for it, checked (store, source, lake, limits, clocks);
- :class:`Stamp`: what every row a dump commits carries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared.core.mapping import Mapping
from shared.ports.dumps import OpenDump
from shared.ports.lake import Lake
from shared.ports.tables import OpenSpool, OpenTables
from shared.ports.telemetry import Telemetry
from shared.services.ingest.result import IngestLimits, ProgressFn


@dataclass(frozen=True)
class Engines:
    open_dump: OpenDump  # (SQLite file, read limits) -> a dump reader, not started
    open_tables: OpenTables  # lake -> its Delta tables
    open_spool: OpenSpool  # (folder, partition column) -> a spool of rows by partition


@dataclass
class DumpJob:
    """One ingest: the dump at ``source`` for ``store_id``, and everything the stages need to know about it."""

    source: Path
    store_id: str
    source_name: str  # the file's name as uploaded (the quarantine keeps the file under it)
    lake: Lake
    telemetry: Telemetry
    limits: IngestLimits
    mapping: Mapping
    snapshot_at: datetime | None  # the agent's recorded snapshot time, if any
    landed_at: datetime
    not_after: datetime  # a sale or receipt dated after this is a till clock set ahead (future_timestamp)
    scratch: Path | None  # where working folders go (None: the system's temp folder)
    say: ProgressFn
    engines: Engines
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the manifest

    @property
    def planned_at(self) -> datetime:
        """The time the history windows are planned from: the agent's snapshot time, else when the dump landed."""
        return self.snapshot_at or self.landed_at

    def time(self, step: str, since: float) -> None:
        """Record the seconds ``step`` took, from ``since`` (a ``time.monotonic()``) to now."""
        self.timings[step] = round(time.monotonic() - since, 3)


@dataclass(frozen=True)
class Stamp:
    """What every row a dump commits carries: its store, its dump and the dump's snapshot time (UTC)."""

    store_id: str
    dump_id: str
    snapshot_at: datetime


__all__ = ["DumpJob", "Engines", "Stamp"]
