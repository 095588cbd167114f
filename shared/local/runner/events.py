"""The Event Hub trigger on the embedded durable queue: batches per partition, sized and timed by host.json
(``maxEventBatchSize``, ``minEventBatchSize``, ``maxWaitTime``), delivered as ``func.EventHubEvent`` lists
(or one event per call without ``cardinality=MANY``). The checkpoint moves after the call returns, or after
the retry policy's last attempt failed, as with Event Hubs: a crash redelivers the batch (at-least-once)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from shared.local.runner import bindings
from shared.local.runner.functions import Function, Invoke, resolve, seconds

log = logging.getLogger("inventory.runner")


class _Stopping(Exception):
    """The runner is stopping: leave the work undelivered (it is delivered again on the next start)."""


class EventHubTrigger:
    """Delivers the embedded queue's events; ``eventhubs`` is host.json's ``extensions.eventHubs`` and
    ``retry_scale`` multiplies the retry policies' delays."""

    def __init__(self, container: Any, eventhubs: dict[str, Any], invoke: Invoke, stop: threading.Event, *,
                 retry_scale: float) -> None:
        self.c, self.eventhubs, self.invoke, self.stop = container, eventhubs, invoke, stop
        self.retry_scale = retry_scale
        self._partial_since: dict[tuple[str, int], float] = {}

    def poll(self, functions: list[Function], *, drain: bool = False) -> int:
        """Deliver the queue's ready batches to ``functions``; with ``drain``, every pending event without
        waiting for a fuller batch. Returns how many events were delivered."""
        delivered = 0
        for f in functions:
            group = resolve(f.trigger["consumerGroup"], self.c.settings)
            max_n = int(self.eventhubs.get("maxEventBatchSize", 100))
            min_n = min(int(self.eventhubs.get("minEventBatchSize", 1)), max_n)
            wait = seconds(self.eventhubs.get("maxWaitTime", "00:01:00"))
            queue = self.c.queue
            for p in range(queue.partitions):
                if self.stop.is_set():
                    return delivered
                batch = queue.receive(group, p, max_n)
                if not self._ready((f.name, p), batch, min_n, wait, drain):
                    continue
                self._deliver(f, p, batch)
                queue.checkpoint(group, p, batch[-1].sequence)
                delivered += len(batch)
        return delivered

    def _ready(self, key: tuple[str, int], batch: list[Any], min_n: int, wait: float, drain: bool) -> bool:
        """Whether ``batch`` (from one function's partition) goes now: a partial batch waits up to
        ``wait`` seconds (``maxWaitTime``) for more events, unless draining."""
        if not batch:
            self._partial_since.pop(key, None)
            return False
        if not drain and len(batch) < min_n:
            since = self._partial_since.setdefault(key, time.monotonic())
            if time.monotonic() - since < wait:
                return False
        self._partial_since.pop(key, None)
        return True

    def _deliver(self, f: Function, partition: int, batch: list[Any]) -> None:
        many = str(f.trigger.get("cardinality", "ONE")).upper() == "MANY"
        items = [bindings.eventhub_events(batch)] if many else [[e] for e in bindings.eventhub_events(batch)]
        for item in items:
            arg = item if many else item[0]
            detail = (f"partition {partition} seq {item[0].sequence_number}..{item[-1].sequence_number} "
                      f"({len(item)} events)")
            self._with_retries(f, arg, detail)

    def _with_retries(self, f: Function, arg: object, detail: str) -> None:
        """The trigger's retry policy; after the last attempt the batch counts as delivered (the checkpoint
        moves on, as with Event Hubs). A stop during a retry wait leaves it undelivered."""
        policy = f.retry
        max_retries = policy.max_retry_count if policy else 0
        for retry in range(max_retries + 1):
            ctx = bindings.LocalContext(f.name, bindings.LocalRetryContext(retry, max_retries))
            try:
                self.invoke(f, arg, detail + (f" retry {retry}/{max_retries}" if retry else ""), ctx)
                return
            except Exception:
                if retry == max_retries:
                    log.error("%s: giving up on %s after %d retries; the checkpoint moves on", f.name, detail,
                              max_retries)
                    return
                if self.stop.wait(policy.delay(retry + 1) * self.retry_scale):  # type: ignore[union-attr]
                    raise _Stopping from None
