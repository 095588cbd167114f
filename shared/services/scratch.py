"""Working folders on the local disk (the function's temp folder), and the sweep of those a killed worker left.

Every scratch folder of the app is made by :func:`scratch_folder` with one of :data:`SCRATCH_KINDS`, so the
sweep knows every prefix there is: a kind missing from the list cannot be made. A folder is marked in use (a
shared ``flock``) while its block runs; the sweep removes a folder only when no live process holds it and
nothing in it changed for :data:`STALE_SCRATCH_S`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STALE_SCRATCH_S = 6 * 3600  # far beyond the function timeout (30 min): nobody is using such a folder

SCRATCH_KINDS = {
    "ingest-": "the ingest's working folder (spools, the decompressed dump)",
    "blob-": "the blob trigger's download of a dump (shared/triggers/dumps.py)",
    "aggregates-": "the aggregates' working folder (compute_aggregates)",
    "migrate-": "the Delta migration's working folder (inventory lake migrate)",
    "agent-upload-": "the store agent's snapshot copy (inventory_agent, e.g. `inventory agent upload` here)",
}
"""Prefix -> what makes it. The one list: :func:`scratch_folder` refuses any other prefix."""


@contextlib.contextmanager
def scratch_in_use(folder: Path) -> Iterator[None]:
    """Mark a scratch folder as in use for the block: a shared ``flock`` on the folder itself.

    :func:`sweep_stale_scratch` never removes a folder someone holds, however old it looks; the kernel
    drops the lock when its process dies, so a killed worker's folder becomes sweepable.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def scratch_folder(kind: str, scratch: Path | None) -> Iterator[Path]:
    """A new working folder ``<kind><random>`` under ``scratch``, marked in use while the block runs and
    removed afterwards. ``kind`` is one of :data:`SCRATCH_KINDS`."""
    if kind not in SCRATCH_KINDS:
        raise ValueError(f"unknown scratch kind {kind!r}: add it to SCRATCH_KINDS so the sweep knows it")
    with tempfile.TemporaryDirectory(prefix=kind, dir=scratch) as name, scratch_in_use(Path(name)):
        yield Path(name)


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of the folder and of the files anywhere in it: a folder's own mtime
    changes only when entries are added or removed, not while a file in it (a download, a spill) is being
    written."""
    newest = folder.lstat().st_mtime
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _remove_if_stale(folder: Path, cutoff: float) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # gone, not a folder, or a symlink: not ours to remove
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # held by a live worker (scratch_in_use)
        # Untouched for a long time as well: a folder a worker has not locked yet (the trigger's download
        # runs before the ingest takes the lock) is kept for as long as it is recent.
        if _newest_mtime(folder) > cutoff:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def sweep_stale_scratch(scratch: Path, max_age_s: float = STALE_SCRATCH_S) -> int:
    """Remove working folders of every kind (:data:`SCRATCH_KINDS`) left by workers that were killed (SIGKILL,
    host recycled): a folder goes when no live process holds it (:func:`scratch_in_use`) and nothing in it
    changed for ``max_age_s``. Returns how many were removed."""
    cutoff = time.time() - max_age_s
    removed = 0
    for prefix in SCRATCH_KINDS:
        for folder in sorted(Path(scratch).glob(f"{prefix}*")):
            removed += _remove_if_stale(folder, cutoff)
    return removed
