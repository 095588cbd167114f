"""The agent's use case: snapshot a live SQLite database and upload it to the lake's raw zone.

The steps, and why:

1. Validate the store id first: it becomes part of a lake path, and nothing is read or written for a bad one.
2. Copy the database with SQLite's online backup API while the store's software keeps writing. The copy
   runs inside one read transaction on the source, so it is a single consistent point in time (orders and
   their lines always agree). See :func:`~inventory_agent.snapshot.snapshot_database`.
3. ``PRAGMA quick_check`` the copy, so a corrupt database is caught at the store, with a clear message,
   rather than quarantined in the cloud.
4. Gzip it deterministically (no timestamp or file name in the gzip header), so an unchanged database
   gives byte-identical uploads, then name the object after the sha256 of those bytes.
5. Upload with ``overwrite=False``: same content on the same day means the same path, and the upload is a
   no-op. The blob trigger therefore never sees the same dump twice from a retrying agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from inventory_agent import __version__
from inventory_agent.ids import raw_dump_path, utc_iso, validate_store_id
from inventory_agent.scratch import scratch_folder, sweep_stale_scratch
from inventory_agent.snapshot import check_is_sqlite, check_snapshot, gzip_deterministically, snapshot_database

AGENT_VERSION = __version__
"""Recorded in each dump's metadata, so a bad agent release can be traced to the dumps it sent."""


class Destination(Protocol):
    """Where dumps go. The agent's :mod:`~inventory_agent.destinations` and the pipeline's lakes have this."""

    def put_file(self, path: str, source: Path, *, metadata: dict[str, str] | None = None, overwrite: bool = True,
                 progress: Callable[[int], None] | None = None) -> bool:
        """Upload ``source`` to ``path``; with ``overwrite=False``, leave an existing object alone and return
        False. ``progress`` is called with the bytes sent since the last call."""
        ...


@dataclass(frozen=True)
class UploadResult:
    path: str
    """Lake path ``raw/store=<id>/date=<YYYY-MM-DD>/<id>-<sha256[:16]>.sqlite.gz``."""
    sha256: str
    """Of the uploaded (gzip) bytes, i.e. of the blob's content."""
    size: int
    """Bytes uploaded (gzip)."""
    snapshot_at: datetime
    """The moment the copy represents (UTC)."""
    uploaded: bool
    """False when the same content was already in the lake at that path (nothing was sent)."""
    uncompressed_bytes: int = 0
    """Size of the snapshot (the SQLite file) before gzip."""


def _header_safe(text: str) -> str:
    """Blob metadata values must be printable ASCII: percent-encode anything else (and '%' itself), so
    ``urllib.parse.unquote`` gives the original back. Plain ASCII names stay readable as they are."""
    return "".join(ch if " " <= ch <= "~" and ch != "%" else quote(ch, safe="") for ch in text)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def upload_dump(
    db: Path,
    store_id: str,
    destination: Destination,
    *,
    scratch: Path,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> UploadResult:
    """Snapshot the live database ``db`` of store ``store_id`` and upload it to ``destination``'s raw zone.

    ``scratch`` holds the copy and its gzip while they are made (removed afterwards, also on failure); it
    needs room for about 1.3× the database. ``now`` replaces the measured snapshot time (naive means UTC;
    for tests and replays). ``progress(bytes_sent, bytes_total)`` follows the upload.

    The blob's metadata: ``store_id`` (the ingest refuses a dump whose ``store_id`` differs from its path),
    ``sha256``, ``snapshot_at``, ``agent_version``, ``source_name``, ``uncompressed_bytes``.

    Returns ``uploaded=False`` when the destination already holds this content for this day: re-running
    the agent is safe. Raises :class:`~inventory_agent.errors.InvalidStoreId` before touching anything,
    FileNotFoundError / :class:`~inventory_agent.errors.NotASQLiteDatabase` for a wrong source,
    :class:`~inventory_agent.errors.SnapshotCheckFailed` for a damaged one, and the destination's error
    when the upload fails (:class:`~inventory_agent.errors.UploadFailed` for the agent's destinations).
    """
    store_id = validate_store_id(store_id)
    db = Path(db)
    check_is_sqlite(db)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    sweep_stale_scratch(scratch)  # a killed run's copy (about the database's size) goes once it is stale
    with scratch_folder(scratch) as tmp:
        copy = tmp / "snapshot.sqlite"
        measured = snapshot_database(db, copy)
        snapshot_at = measured if now is None else _as_utc(now)
        check_snapshot(copy)
        uncompressed = copy.stat().st_size

        packed = tmp / "snapshot.sqlite.gz"
        sha256, size = gzip_deterministically(copy, packed)
        copy.unlink()  # free the space before the (possibly long) upload

        path = raw_dump_path(store_id, snapshot_at.date(), f"{store_id}-{sha256[:16]}.sqlite.gz")
        metadata = {
            "store_id": store_id,
            "sha256": sha256,
            "snapshot_at": utc_iso(snapshot_at),
            "agent_version": AGENT_VERSION,
            "source_name": _header_safe(db.name),
            "uncompressed_bytes": str(uncompressed),
        }
        on_bytes = None
        if progress is not None:
            sent = 0
            progress(0, size)

            def on_bytes(n: int) -> None:
                nonlocal sent
                sent += n
                progress(sent, size)

        uploaded = destination.put_file(path, packed, metadata=metadata, overwrite=False, progress=on_bytes)
    return UploadResult(path=path, sha256=sha256, size=size, snapshot_at=snapshot_at, uploaded=uploaded,
                        uncompressed_bytes=uncompressed)
