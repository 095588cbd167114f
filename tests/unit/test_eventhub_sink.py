"""The Event Hubs sink without a server: the batching (on plain size-limited batches and on the SDK's own
``EventDataBatch``, which packs events client-side) and the constructors (which do not connect)."""

import itertools

import pytest
from azure.core.credentials import AzureSasCredential
from azure.eventhub import EventData, EventDataBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.eventhub_sink import EventHubSink, plan_batches
from shared.ports.events import EventSink, OutgoingEvent


class SizedBatch:
    """A batch that holds at most ``limit`` body bytes; ``add`` raises ValueError when full, like the SDK's."""

    def __init__(self, key: str, limit: int) -> None:
        self.key, self.limit, self.bodies = key, limit, []

    def add(self, event_data: bytes) -> None:
        if sum(map(len, self.bodies)) + len(event_data) > self.limit:
            raise ValueError("full")
        self.bodies.append(event_data)

    def __len__(self) -> int:
        return len(self.bodies)


def plan(events, limit=100):
    return plan_batches(events, lambda key: SizedBatch(key, limit), lambda body: body)


def ev(key: str, body: str) -> OutgoingEvent:
    return OutgoingEvent(key, body.encode())


def test_groups_by_key_in_first_seen_order_keeping_each_keys_order():
    events = [ev("S2", "a"), ev("S1", "b"), ev("S2", "c"), ev("S3", "d"), ev("S1", "e")]
    batches = plan(events)
    assert [(b.key, b.bodies) for b in batches] == [("S2", [b"a", b"c"]), ("S1", [b"b", b"e"]), ("S3", [b"d"])]


def test_a_full_batch_is_closed_and_the_event_starts_the_next():
    events = [ev("S1", "x" * 40) for _ in range(5)]
    batches = plan(events, limit=100)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(b.key == "S1" for b in batches)


def test_an_event_too_large_for_an_empty_batch_names_its_size_and_nothing_is_planned():
    with pytest.raises(ValueError, match=r"an event of 1,500 bytes for partition key 'S9'"):
        plan([ev("S1", "ok"), ev("S9", "y" * 1500)], limit=1000)
    # Also when it comes right after a full batch (the second, fresh batch refuses it too).
    with pytest.raises(ValueError, match=r"of 101 bytes"):
        plan([ev("S1", "x" * 60), ev("S1", "z" * 101)], limit=100)


def test_nothing_to_send_and_empty_keys():
    assert plan([]) == []
    with pytest.raises(ValueError, match="empty partition key"):
        plan([ev("S1", "a"), ev("", "b")])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S1", "S2", "S3"]), st.integers(1, 50)), max_size=60),
       st.integers(50, 200))
def test_every_event_is_planned_once_in_order_and_batches_respect_the_limit(spec, limit):
    events = [ev(key, f"{i:03d}".ljust(size, "-")) for i, (key, size) in enumerate(spec)]
    batches = plan(events, limit)
    for key in {"S1", "S2", "S3"}:
        planned = [body for b in batches if b.key == key for body in b.bodies]
        assert planned == [e.body for e in events if e.partition_key == key]
    assert all(0 < sum(map(len, b.bodies)) <= limit for b in batches)
    # A batch is only closed when the next event of its key did not fit.
    for first, second in itertools.pairwise(batches):
        if first.key == second.key:
            assert sum(map(len, first.bodies)) + len(second.bodies[0]) > limit


def test_with_the_sdks_own_event_data_batch():
    """EventDataBatch computes AMQP sizes client-side and raises ValueError when full: the contract we rely on."""
    made = []

    def new_batch(key):
        made.append(key)
        return EventDataBatch(max_size_in_bytes=1024, partition_key=key)

    events = [ev("S1", "a" * 300) for _ in range(7)] + [ev("S2", "b" * 10)]
    batches = plan_batches(events, new_batch, EventData)
    assert sum(len(b) for b in batches) == len(events)
    assert all(b.size_in_bytes <= 1024 for b in batches)
    assert len([k for k in made if k == "S1"]) >= 3  # 7 × ~340 bytes need at least three 1 KiB batches
    assert made[-1] == "S2" and len(batches[-1]) == 1
    with pytest.raises(ValueError, match=r"an event of 2,000 bytes .* at most 1,024 bytes"):
        plan_batches([ev("S1", "c" * 2000)], new_batch, EventData)


CONN = "Endpoint=sb://contoso-pos.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def test_constructors_describe_without_connecting_or_leaking_the_key():
    sink = EventHubSink.from_connection_string(CONN, "sales")
    try:
        assert isinstance(sink, EventSink)
        assert sink.describe() == "Event Hubs sales@contoso-pos.servicebus.windows.net"
        assert "c2VjcmV0" not in sink.describe()
        assert sink.send([]) == 0
    finally:
        sink.close()
    sink = EventHubSink.from_namespace("contoso-pos.servicebus.windows.net", "sales", AzureSasCredential("sig"))
    try:
        assert sink.describe() == "Event Hubs sales@contoso-pos.servicebus.windows.net"
    finally:
        sink.close()


def test_a_malformed_connection_string_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="malformed") as err:
        EventHubSink.from_connection_string("SharedAccessKey=topsecret;nonsense", "sales")
    assert "topsecret" not in str(err.value)
