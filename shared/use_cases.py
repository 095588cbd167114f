"""The application's use cases, bound once to the adapters bootstrap chose.

Triggers, the CLI and the local runner call these methods; none of them passes ``lake=``, ``stock=`` or
``telemetry=`` by hand, and a sequence of steps (a dump is ingested, then becomes its store's stock baseline)
is written once, here. Services are imported inside the methods: a function's cold start loads only what its
own call path needs (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.core.events import RawEvent
    from shared.core.mapping import Mapping
    from shared.ports.stock import RebaseResult
    from shared.services.aggregates import AggregateResult
    from shared.services.apply_sales import ApplyCounts
    from shared.services.ingest import IngestResult
    from shared.services.maintain_lake import MaintainResult
    from shared.services.migrate_lake import MigrateResult
    from shared.services.pos_ingress import IngressResponse
    from shared.services.raise_alerts import AlertRun

Say = Callable[[str], None]


@dataclass(frozen=True)
class DumpReceipt:
    """What became of a dump: its ingest, and the store's stock baseline after it (None when quarantined)."""

    ingest: IngestResult
    rebase: RebaseResult | None


class UseCases:
    """Each use case with the container's adapters; build one with :func:`shared.bootstrap.use_cases`."""

    def __init__(self, container: Container) -> None:
        self.c = container

    def wiring(self) -> dict[str, str]:
        """Which adapter serves each port, for people (``inventory wiring``, the local runner's banner)."""
        c = self.c
        telemetry = type(c.telemetry).__name__ + (f" at {c.telemetry.path}" if hasattr(c.telemetry, "path") else "")
        return {"lake": c.lake.describe(), "stock": c.stock.describe(), "events": c.events.describe(),
                "telemetry": telemetry}

    # --- nightly dumps -----------------------------------------------------------------------------------

    def receive_dump(self, lake_path: str, fetch: Callable[[Path], dict[str, str] | None]) -> DumpReceipt | None:
        """A dump that landed at ``lake_path``: ingest it, then rebase its store.

        ``fetch(local)`` writes the dump to the scratch file ``local`` and returns its metadata, or None when
        the dump is gone (deleted before it could be read: then nothing is ingested, a ``DumpVanished`` event
        says so, and None is returned). Also rebases for a dump already ingested: a retry after a crash between
        manifest and rebase finishes the job (a rebase is idempotent)."""
        from shared.services.ingest import ingest_landed_dump
        from shared.services.scratch import scratch_folder

        c = self.c
        with scratch_folder("blob-", c.scratch_dir) as tmp:  # marked in use: a scratch sweep leaves it alone
            local = Path(tmp) / "dump"
            metadata = fetch(local)
            if metadata is None:
                c.telemetry.event("DumpVanished", path=lake_path)
                return None
            result = ingest_landed_dump(lake_path, local, metadata, lake=c.lake, telemetry=c.telemetry,
                                        limits=c.ingest_limits, scratch=c.scratch_dir)
        return self._rebased(result)

    def ingest_file(self, dump: Path, store_id: str, *, mapping: Mapping | None = None,
                    snapshot_at: datetime | None = None, progress: Say | None = None) -> DumpReceipt:
        """``inventory ingest``: a local dump file of ``store_id``, then the store's rebase (as above)."""
        from shared.services.ingest import ingest_dump

        c = self.c
        result = ingest_dump(dump, store_id, lake=c.lake, telemetry=c.telemetry, limits=c.ingest_limits,
                             mapping=mapping, snapshot_at=snapshot_at, scratch=c.scratch_dir, progress=progress)
        return self._rebased(result)

    def _rebased(self, result: IngestResult) -> DumpReceipt:
        from shared.services.reconcile_stock import reconcile_after_ingest

        c = self.c
        return DumpReceipt(result, reconcile_after_ingest(result, lake=c.lake, stock=c.stock, telemetry=c.telemetry))

    # --- sale events -------------------------------------------------------------------------------------

    def apply_sales(self, raw: Sequence[RawEvent]) -> ApplyCounts:
        """Validate a batch, dead-letter the bad events, apply the rest once each."""
        from shared.services.apply_sales import apply_sales

        c = self.c
        return apply_sales(raw, stock=c.stock, lake=c.lake, telemetry=c.telemetry)

    def apply_delivered_batch(self, raw: Sequence[RawEvent], *, last_attempt: bool) -> ApplyCounts | str:
        """The Event Hub trigger's batch: as :meth:`apply_sales`, but on its last attempt a failing batch is
        set aside in the lake (its path returned) instead of raised."""
        from shared.services.apply_sales import apply_delivered_batch

        c = self.c
        return apply_delivered_batch(raw, stock=c.stock, lake=c.lake, telemetry=c.telemetry,
                                     last_attempt=last_attempt)

    def accept_sales(self, body: bytes) -> IngressResponse:
        """``POST /api/sales``: split the body into events and send them on to the events sink."""
        from shared.services.pos_ingress import accept_sales

        c = self.c
        return accept_sales(body, sink=c.events, lake=c.lake, telemetry=c.telemetry,
                            max_bytes=c.settings.int("SALES_HTTP_MAX_BYTES"))

    # --- timers ------------------------------------------------------------------------------------------

    def compute_aggregates(self, progress: Say | None = None) -> AggregateResult:
        from shared.services.aggregates import compute_aggregates

        c = self.c
        return compute_aggregates(lake=c.lake, stock=c.stock, telemetry=c.telemetry, scratch=c.scratch_dir,
                                  memory_limit=c.settings.get("INGEST_MEMORY_LIMIT"), progress=progress)

    def raise_alerts(self) -> AlertRun:
        from shared.services.raise_alerts import AlertSettings, raise_alerts

        c = self.c
        return raise_alerts(lake=c.lake, stock=c.stock, telemetry=c.telemetry,
                            settings=AlertSettings.from_settings(c.settings))

    def maintain_lake(self) -> MaintainResult:
        from shared.services.maintain_lake import maintain_lake

        c = self.c
        return maintain_lake(lake=c.lake, telemetry=c.telemetry,
                             retention_hours=c.settings.int("LAKE_VACUUM_RETENTION_HOURS"))

    # --- operators' tools --------------------------------------------------------------------------------

    def migrate_lake(self, progress: Say | None = None) -> MigrateResult:
        from shared.services.migrate_lake import migrate_lake

        return migrate_lake(lake=self.c.lake, progress=progress, scratch=self.c.scratch_dir)

    def write_dashboard(self, out: Path) -> Path:
        from shared.services.dashboard import write_dashboard

        return write_dashboard(out, lake=self.c.lake, stock=self.c.stock)
