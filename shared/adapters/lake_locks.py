"""What the lake adapters share: waiting for a lock with backoff (the folder lake's file lock, the Blob lake's
lease). The port itself (:class:`~shared.ports.lake.Lake`) is in :mod:`shared.ports.lake`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from shared.ports.lake import LockTimeout


def wait_for_lock(attempt: Callable[[], bool], *, name: str, where: str, timeout_s: float,
                  holder: Callable[[], str], frees: str) -> float:
    """Call ``attempt`` until it returns True (the lock is ours), backing off from 50 ms to 2 s with jitter.

    Returns the seconds waited. Past ``timeout_s`` raises :class:`LockTimeout`, naming the lock, the lake,
    the current holder as ``holder()`` describes it, and ``frees`` (when the lock frees itself).
    """
    started = time.monotonic()
    deadline = started + max(0.0, timeout_s)
    delay = 0.05
    while not attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(
                f"could not take the lock {name!r} in the lake at {where}: another worker has held it for "
                f"the {timeout_s:g} s this one waited ({holder()}). It is released when that worker finishes; "
                f"{frees}. Retry later; if it stays held, look for a stuck worker"
            )
        time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
        delay = min(delay * 2, 2.0)
    return time.monotonic() - started
