"""Deliver the embedded queue's events in batches, the way the Event Hubs trigger does: per partition, up to
``batch_size`` events, checkpoint after the handler returns. A crash before the checkpoint redelivers the
batch (at-least-once), which the stock store's ledger turns into exactly-once in effect."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol


class _Queued(Protocol):
    sequence: int
    body: bytes


class _Queue(Protocol):
    partitions: int

    def receive(self, consumer_group: str, partition: int, max_events: int) -> list: ...

    def checkpoint(self, consumer_group: str, partition: int, sequence: int) -> None: ...


def drain(queue: _Queue, consumer_group: str, handler: Callable[[int, Sequence[_Queued]], None], *,
          batch_size: int = 100, follow: bool = False, idle_wait_s: float = 0.5,
          stop: threading.Event | None = None) -> int:
    """Hand every pending batch to ``handler(partition, events)``, checkpointing after each; return how many
    events were delivered. With ``follow``, keep polling until ``stop`` is set."""
    delivered = 0
    stop = stop or threading.Event()
    while not stop.is_set():
        got = 0
        for partition in range(queue.partitions):
            batch = queue.receive(consumer_group, partition, batch_size)
            if not batch:
                continue
            handler(partition, batch)
            queue.checkpoint(consumer_group, partition, batch[-1].sequence)
            got += len(batch)
        delivered += got
        if got == 0:
            if not follow:
                break
            stop.wait(idle_wait_s)
    return delivered


def apply_queue(c, *, batch_size: int = 100, follow: bool = False, stop: threading.Event | None = None,  # noqa: ANN001
                counts: object = None, on_batch: Callable[[int, int, object], None] | None = None) -> object:
    """Deliver the container's embedded queue to the apply service (what ``inventory events consume`` does; the
    local runner, ``inventory serve``, delivers it to the registered ``apply_sales`` function instead); returns
    the summed ApplyCounts (``counts``, when given, is filled batch by batch, so a caller interrupted meanwhile
    still has them). ``on_batch(partition, events, counts so far)`` reports progress.
    ``c`` is the bootstrap Container."""
    from shared.bootstrap import use_cases
    from shared.core.events import RawEvent
    from shared.services.apply_sales import ApplyCounts

    counts = counts if counts is not None else ApplyCounts()
    apply = use_cases(c).apply_sales

    def handle(partition: int, events: Sequence[_Queued]) -> None:
        raw = [RawEvent(e.body, f"queue:{partition}:{e.sequence}") for e in events]
        counts.add(apply(raw))
        if on_batch is not None:
            on_batch(partition, len(raw), counts)

    drain(c.queue, c.settings.get("EVENTHUB_CONSUMER_GROUP"), handle, batch_size=batch_size, follow=follow,
          stop=stop)
    return counts
