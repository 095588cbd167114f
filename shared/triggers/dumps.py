"""Blob trigger for nightly dumps: translate the binding, call the ingest service, nothing else."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("inventory.dumps")

_CHUNK = 4 << 20


@bp.function_name("ingest_dump")
@bp.blob_trigger(
    arg_name="dump",
    path="%LAKE_CONTAINER%/raw/{name}",
    connection="LAKE",
    # Flex Consumption supports only the Event Grid-based blob trigger (no container polling).
    source=func.BlobSource.EVENT_GRID,
)
def ingest_dump(dump: func.InputStream) -> None:
    """A dump landed under raw/: ingest it. Quarantines are results, not failures (no retry);
    unexpected errors (lake unreachable, ...) raise so the host retries and finally poisons the message."""
    from shared.bootstrap import default_container
    from shared.services.ingest_dump import ingest_landed_dump

    c = default_container()
    container = c.settings.get("LAKE_CONTAINER")
    name = dump.name or ""
    lake_path = name[len(container) + 1:] if name.startswith(container + "/") else name
    with tempfile.TemporaryDirectory(prefix="blob-", dir=c.scratch_dir) as tmp:
        local = Path(tmp) / "dump"
        with open(local, "wb") as out:  # copied in chunks: our code never holds the dump whole
            shutil.copyfileobj(dump, out, _CHUNK)
        result = ingest_landed_dump(lake_path, local, dict(dump.metadata or {}), lake=c.lake,
                                    telemetry=c.telemetry, limits=c.ingest_limits, scratch=c.scratch_dir)
    if result.status == "quarantined":
        log.warning("dump %s quarantined: %s: %s", lake_path, result.reason_code, result.reason)
    else:
        log.info("dump %s %s as %s", lake_path, result.status, result.dump_id)
