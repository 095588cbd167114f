"""A dump that cannot be ingested is quarantined, never lost: the file as received and ``reason.json`` go to
``quarantine/store=<id>/<key>/``, and the result says why (a reason code of :data:`QUARANTINE_REASONS`).
Every problem with a dump itself ends here; see docs/hostile-dumps.md."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import __version__
from shared.core import layout
from shared.core.ids import STORE_ID_PATTERN, InvalidStoreId, utc_iso
from shared.ports.dumps import DumpRejected
from shared.ports.lake import Lake
from shared.ports.telemetry import Telemetry
from shared.services.ingest.result import QUARANTINE_REASONS, IngestResult


@dataclass(frozen=True)
class Rejected:
    """A dump to quarantine, and why."""

    store_id: str  # the store whose folder it goes to (``_invalid`` for a path without a sound store id)
    key: str  # its folder: the dump id, or the first 24 hex digits of the received file's sha256
    source: Path  # the file as received
    source_name: str
    received_sha: str
    exc: DumpRejected
    started: float  # time.monotonic() when the ingest began


def quarantine(lake: Lake, telemetry: Telemetry, rejected: Rejected) -> IngestResult:
    """File the dump under ``quarantine/``, tell telemetry, and return the ``quarantined`` result."""
    folder = layout.quarantine(rejected.store_id, rejected.key)
    exc = rejected.exc
    reason = {
        "store_id": rejected.store_id, "reason_code": exc.code, "reason": exc.detail,
        "reason_description": QUARANTINE_REASONS.get(exc.code, exc.code),
        "source_name": rejected.source_name, "received_sha256": rejected.received_sha,
        "quarantined_at": utc_iso(datetime.now(UTC)), "pipeline_version": __version__,
    }
    lake.put_file(f"{folder}/{Path(rejected.source_name).name or 'dump'}", rejected.source)
    lake.put_bytes(f"{folder}/reason.json", json.dumps(reason, indent=2).encode())
    telemetry.event("DumpQuarantined", storeId=rejected.store_id, reasonCode=exc.code, reason=exc.detail,
                    source=rejected.source_name)
    telemetry.metric("dumps_quarantined", 1, storeId=rejected.store_id, reasonCode=exc.code)
    duration_s = round(time.monotonic() - rejected.started, 3)
    return IngestResult("quarantined", rejected.store_id, rejected.key,
                        {**reason, "quarantine_path": folder, "duration_s": duration_s}, exc.code, exc.detail)


def bad_path(lake_path: str, exc: ValueError) -> tuple[str, str]:
    """(reason code, store folder) for a landed dump whose path is not ``raw/store=<id>/date=<d>/<file>``: an
    unsafe store id goes under ``_invalid``; a sound one with another fault (a date that does not exist) is
    filed under that store."""
    found = re.match(r"^(?:lake/)?raw/store=(.*?)/date=", lake_path)
    if isinstance(exc, InvalidStoreId) or (found and not STORE_ID_PATTERN.fullmatch(found[1])):
        return "invalid_store_id", "_invalid"
    return "bad_path", found[1] if found else "_invalid"


def store_mismatch(claimed: str, store_id: str) -> DumpRejected:
    """A dump whose metadata names another store than its folder (it would become that folder's stock
    baseline): filed under the folder's store, whose identity wrote it (docs/security.md)."""
    return DumpRejected("store_mismatch", f"the dump's metadata says store_id={claimed[:80]!r} but it was "
                        f"uploaded under raw/store={store_id}/: a store agent configured with another store's id "
                        "(check its --store), or a store writing another store's data")


__all__ = ["Rejected", "bad_path", "quarantine", "store_mismatch"]
