"""The events port: where POS sale events go on their way to the Event Hub trigger (docs/stock-and-events.md).

In Azure the sink is Event Hubs (:mod:`shared.adapters.eventhub_sink`); locally it is the embedded durable
queue (:mod:`shared.adapters.queue_sqlite`). Both take the same :class:`OutgoingEvent`: the raw body, kept
byte for byte (a malformed event must reach the dead-letter store exactly as the POS sent it), and the
partition key, which is the store id so that one store's events stay in order in one partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class OutgoingEvent:
    """One event to publish. Not validated here: the consumer's ``parse_event`` is the only judge."""

    partition_key: str  # = storeId: one store's events stay in order in one partition
    body: bytes  # one event's JSON, UTF-8, exactly as received


@runtime_checkable
class EventSink(Protocol):
    """Publishes events; the consumer side (the Event Hub trigger or the local runner) is not part of it."""

    def send(self, events: Sequence[OutgoingEvent]) -> int:
        """Publish ``events`` and return how many were sent.

        Either every event of the call was accepted or an exception is raised; after an exception some of
        them may still have been published (Event Hubs sends one batch per partition key), so the caller
        retries the whole call and relies on ``eventId`` idempotency downstream.
        """
        ...

    def describe(self) -> str:
        """Where the events go, for people: ``embedded queue at /x/events.sqlite`` or ``Event Hubs sales@ns…``."""
        ...

    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""
        ...
