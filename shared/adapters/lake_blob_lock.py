"""The Blob lake's named locks: a lease on the empty blob ``locks/<name>``.

A lease is finite (30 s by default, the service allows 15-60 s) and renewed by a background thread while
the lock is held, so a holder that crashes frees the lock when its lease lapses. Waiting for a lock held
by another worker (backoff, timeout, the message naming the holder) is shared with the folder lake
(:func:`shared.adapters.lake_locks.wait_for_lock`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient

from shared.adapters.lake_blob_client import SDK_ERRORS, container_missing, describe, fail
from shared.adapters.lake_locks import wait_for_lock
from shared.ports.lake import LakeError, check_lock_name

LOCK_LEASE_S = 30
"""Lease of a held lock, renewed every third of it. The service allows 15-60 s (or infinite, which a crashed
holder would keep forever): 30 s frees a dead holder's lock soon, and leaves two renewals to fail before
the lease lapses."""

log = logging.getLogger(__name__)


class BlobLock:
    """A held Blob lock: its lease, and the thread that renews it every third of the lease.

    A renewal that fails is retried every second; if none succeeds before the lease would lapse, the lock
    is lost (another worker may take it) and :meth:`check` says so.
    """

    def __init__(self, name: str, lease: BlobLeaseClient, lease_s: int, *, describe: str) -> None:
        self.name = name
        self.lease_s = lease_s
        self.acquired_at = time.monotonic()
        self.renewals = 0
        self._lease = lease
        self._describe = describe
        self._renewed_at = self.acquired_at  # when the last successful acquire/renew was *sent*
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lake-lock-{name}", daemon=True)

    def start(self) -> None:
        self._renewed_at = self.acquired_at
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _keep(self) -> None:
        every = self.lease_s / 3
        while not self._stop.wait(every if self._error is None else 1.0):
            sent = time.monotonic()
            if sent - self._renewed_at >= self.lease_s:
                return  # lapsed: renewing now could not undo it (check() reports it)
            try:
                # One try, short timeouts: this loop retries itself, well inside the lease.
                self._lease.renew(retry_total=0, connection_timeout=5, read_timeout=every)
            except Exception as exc:  # any failure: retried (below) until the lease would lapse
                self._error = exc
                continue
            self._renewed_at = sent
            self._error = None
            self.renewals += 1

    def check(self) -> None:
        """Raise LakeError if the lease may have lapsed (no renewal went through in time)."""
        if time.monotonic() - self._renewed_at >= self.lease_s:
            reason = f": {(str(self._error).splitlines() or [''])[0]}" if self._error else ""
            raise LakeError(
                f"lost the lock {self.name!r} ({self._describe}): its {self.lease_s} s lease could not be "
                f"renewed in time{reason}; another worker may hold it now. Stop before committing "
                "anything that relies on the lock, and retry the operation"
            )


@contextlib.contextmanager
def hold_lock(container: ContainerClient, name: str, *, timeout_s: float, lease_s: int) -> Iterator[BlobLock]:
    """Hold the lock ``name`` of the lake on ``container`` (what :meth:`BlobLake.lock` does): take a lease of
    ``lease_s`` seconds on ``locks/<name>``, waiting with backoff up to ``timeout_s`` while another lease is
    active; renew it in the background until the block ends, then release it."""
    if not 15 <= lease_s <= 60:
        raise ValueError(f"lease_s {lease_s} out of range: the service allows leases of 15 to 60 s")
    path = f"locks/{check_lock_name(name)}"
    blob = container.get_blob_client(path)
    lease = BlobLeaseClient(blob)  # a fresh lease id per holder
    lake = describe(container)
    held = BlobLock(name, lease, lease_s, describe=f"{path!r} in {lake}")
    wait_for_lock(lambda: _acquire(held, blob, lease, f"{path!r} in {lake}"), name=name, where=lake,
                  timeout_s=timeout_s, holder=lambda: _holder(blob),
                  frees="a worker that died frees it when its lease lapses (15 to 60 s)")
    held.start()
    try:
        with contextlib.suppress(*SDK_ERRORS):
            # Who holds it, for the message of a worker that gives up waiting (informational only).
            holder_text = f"held by pid {os.getpid()} on {socket.gethostname()} with a {lease_s} s lease"
            blob.set_blob_metadata({"holder": holder_text}, lease=lease, retry_total=0)
        yield held
    finally:
        held.stop()
        try:
            lease.release()
        except SDK_ERRORS as exc:
            # Harmless: the lease lapses by itself within lease_s.
            log.warning("could not release the lock %s (it frees itself within %d s): %s", path, lease_s,
                        (str(exc).splitlines() or [""])[0])


def _acquire(held: BlobLock, blob: BlobClient, lease: BlobLeaseClient, where: str) -> bool:
    """One attempt at the lease (two when the lock blob has to be created first); False while another
    holder has it. On success ``held.acquired_at`` is when the request was sent (the lease runs from then)."""
    for _ in range(2):
        sent = time.monotonic()
        try:
            lease.acquire(lease_duration=held.lease_s)
        except ResourceNotFoundError as exc:
            if container_missing(exc):
                fail(exc, "lock", where)
            _create_lock_blob(blob, where)  # the first use of this lock: create it, try again
            continue
        except SDK_ERRORS as exc:
            if isinstance(exc, HttpResponseError) and exc.status_code == 409:
                return False  # LeaseAlreadyPresent: another holder
            fail(exc, "lock", where)
        held.acquired_at = sent
        return True
    return False


def _holder(blob: BlobClient) -> str:
    """Who holds the lock, as its holder wrote it in the lock blob's metadata (for the timeout message)."""
    try:
        props = blob.get_blob_properties()
    except SDK_ERRORS:
        return "holder unknown"
    return f"{(props.metadata or {}).get('holder', 'holder unknown')}; lease {props.lease.state}"


def _create_lock_blob(blob: BlobClient, where: str) -> None:
    try:
        blob.upload_blob(b"", length=0, match_condition=MatchConditions.IfMissing)
    except (ResourceExistsError, ResourceModifiedError):
        return  # created meanwhile by another worker
    except SDK_ERRORS as exc:
        if isinstance(exc, HttpResponseError) and exc.status_code in (409, 412):
            return  # exists (and leased) already
        fail(exc, "create the lock", where)


__all__ = ["LOCK_LEASE_S", "BlobLock", "hold_lock"]
