"""Event Hubs as the events port (in Azure: docs/architecture.md), with ``azure-eventhub`` 5.x.

Events are grouped by partition key (the store id) and each group goes out in as few
``EventDataBatch`` objects as they fill: one ``create_batch(partition_key=key)`` per batch, so Event Hubs hashes the
key and keeps a store's events in order in one partition. All batches of a call are built before the first
is sent, so an event too large for any batch fails the call before anything leaves; a network error halfway
through a call can still leave earlier batches sent, and the caller's retry then resends them (the
consumer deduplicates by ``eventId``).

The batching is :func:`plan_batches`, a pure function over "something with ``add`` that raises
``ValueError`` when full", so it is tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared.ports.events import OutgoingEvent

if TYPE_CHECKING:
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential


class BatchLike(Protocol):
    """What :func:`plan_batches` needs of a batch (``azure.eventhub.EventDataBatch`` is one)."""

    def add(self, event_data: Any) -> None:  # EventData, or whatever ``wrap`` makes
        """Add one event; raise ``ValueError`` when it does not fit."""
        ...

    def __len__(self) -> int: ...


BatchT = TypeVar("BatchT", bound=BatchLike)


def plan_batches(
    events: Sequence[OutgoingEvent], new_batch: Callable[[str], BatchT], wrap: Callable[[bytes], object]
) -> list[BatchT]:
    """Pack ``events`` into batches: one partition key per batch, keys in order of first appearance, each
    key's events in their original order, a new batch whenever the current one is full.

    ``new_batch(key)`` makes an empty batch for a key and ``wrap(body)`` the object to add (``EventData``).
    Raises ``ValueError`` naming the size of an event that does not fit even in an empty batch, and for an
    empty partition key (Event Hubs would then spread the store's events round-robin over partitions).
    """
    groups: dict[str, list[bytes]] = {}
    for event in events:
        if not event.partition_key:
            raise ValueError("an event has an empty partition key; the partition key is the store id")
        groups.setdefault(event.partition_key, []).append(event.body)
    batches: list[BatchT] = []
    for key, bodies in groups.items():
        batch = new_batch(key)
        for body in bodies:
            try:
                batch.add(wrap(body))
                continue
            except ValueError:
                if len(batch) == 0:
                    raise _too_large(key, body, batch) from None
            batches.append(batch)  # full: keep it and start the next one with this event
            batch = new_batch(key)
            try:
                batch.add(wrap(body))  # a fresh wrapper: ``add`` may have changed the first one
            except ValueError:
                raise _too_large(key, body, batch) from None
        if len(batch):
            batches.append(batch)
    return batches


def _too_large(key: str, body: bytes, batch: object) -> ValueError:
    limit = getattr(batch, "max_size_in_bytes", None)
    within = f" (a batch holds at most {limit:,} bytes with its overhead)" if isinstance(limit, int) else ""
    return ValueError(f"an event of {len(body):,} bytes for partition key {key!r} does not fit in an empty "
                      f"Event Hubs batch{within}")


class EventHubSink:
    """The :class:`~shared.ports.events.EventSink` on an ``EventHubProducerClient``."""

    def __init__(self, producer: Any, *, fully_qualified_namespace: str, eventhub_name: str) -> None:
        self._producer = producer
        self.fully_qualified_namespace = fully_qualified_namespace
        self.eventhub_name = eventhub_name

    @classmethod
    def from_connection_string(cls, conn: str, eventhub_name: str) -> EventHubSink:
        """A sink from a SAS connection string (development; production uses :meth:`from_namespace`)."""
        from azure.eventhub import EventHubProducerClient, parse_connection_string

        try:
            namespace = parse_connection_string(conn).fully_qualified_namespace
        except ValueError:
            # Never echo the string: it holds a key.
            raise ValueError("the Event Hubs connection string is malformed (expected Endpoint=sb://...;"
                             "SharedAccessKeyName=...;SharedAccessKey=...)") from None
        producer = EventHubProducerClient.from_connection_string(conn, eventhub_name=eventhub_name)
        return cls(producer, fully_qualified_namespace=namespace, eventhub_name=eventhub_name)

    @classmethod
    def from_namespace(
        cls,
        fully_qualified_namespace: str,
        eventhub_name: str,
        credential: TokenCredential | AzureSasCredential | AzureNamedKeyCredential,
    ) -> EventHubSink:
        """A sink on ``<namespace>.servicebus.windows.net`` with an identity (e.g. a managed identity)."""
        from azure.eventhub import EventHubProducerClient

        producer = EventHubProducerClient(
            fully_qualified_namespace=fully_qualified_namespace, eventhub_name=eventhub_name, credential=credential
        )
        return cls(producer, fully_qualified_namespace=fully_qualified_namespace, eventhub_name=eventhub_name)

    def describe(self) -> str:
        return f"Event Hubs {self.eventhub_name}@{self.fully_qualified_namespace}"

    def send(self, events: Sequence[OutgoingEvent]) -> int:
        if not events:
            return 0
        from azure.eventhub import EventData

        batches = plan_batches(events, lambda key: self._producer.create_batch(partition_key=key), EventData)
        for batch in batches:
            self._producer.send_batch(batch)
        return len(events)

    def close(self) -> None:
        self._producer.close()
