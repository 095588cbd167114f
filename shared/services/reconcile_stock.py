"""Use case: make an ingested dump the stock baseline of its store: every sku becomes the dump's count plus
the store's events after the dump's snapshot, if the dump is later than the current baseline
(docs/stock-and-events.md, "The stock invariant").

Called after ``ingest_dump`` by the blob trigger and ``inventory ingest``, for a dump just ingested *and*
for one already ingested: if the process died between the manifest and the rebase, the retry finishes the
job (a rebase is idempotent, and a dump older than the store's baseline changes nothing).
"""

from __future__ import annotations

from shared.core import layout
from shared.core.manifest import Manifest
from shared.core.stock import Baseline
from shared.ports.lake import Lake
from shared.ports.stock import RebaseResult, StockStore
from shared.ports.tables import OpenTables
from shared.ports.telemetry import Telemetry
from shared.services import engines
from shared.services.ingest import IngestResult
from shared.services.lake_tables import dump_rows


def baseline_from_manifest(manifest: Manifest, lake: Lake, *,
                           open_tables: OpenTables = engines.open_tables) -> Baseline:
    """The dump's curated stock counts (its rows of the ``curated/stock`` Delta table)."""
    on_hand: dict[str, int] = {}
    rows = dump_rows(open_tables(lake), layout.curated("stock"), manifest.store_id, manifest.dump_id,
                     ["sku", "on_hand"])
    if rows is not None:
        for sku, count in zip(rows.column("sku").to_pylist(), rows.column("on_hand").to_pylist(), strict=True):
            on_hand[sku] = on_hand.get(sku, 0) + int(count)
    return Baseline(manifest.store_id, manifest.dump_id, manifest.snapshot_time, on_hand)


def reconcile_dump(manifest: Manifest, *, lake: Lake, stock: StockStore, telemetry: Telemetry) -> RebaseResult:
    baseline = baseline_from_manifest(manifest, lake)
    result = stock.rebase(baseline)
    if result.status == "rebased":
        telemetry.event("StockRebased", storeId=result.store_id, dumpId=result.dump_id, skus=result.skus,
                        eventsAfter=result.events_after, snapshotAt=manifest.snapshot_at)
    return result


def reconcile_after_ingest(result: IngestResult, *, lake: Lake, stock: StockStore,
                           telemetry: Telemetry) -> RebaseResult | None:
    """Rebase the store on a dump that is in the lake (ingested now or before); nothing for a quarantine."""
    if result.status not in ("ingested", "already_ingested"):
        return None
    return reconcile_dump(Manifest.from_json(result.manifest), lake=lake, stock=stock, telemetry=telemetry)
