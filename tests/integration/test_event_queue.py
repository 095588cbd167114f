"""The embedded queue on real SQLite files: Event Hubs semantics (partitions, order, sequence numbers,
consumer groups, checkpoints), at-least-once across crashes, and a producer in another process."""

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.queue_sqlite import EmbeddedQueue, PartitionCountMismatch, QueueError, partition_for
from shared.ports.events import EventSink, OutgoingEvent

GROUP = "stock"
KEYS = [f"S{i:03d}" for i in range(1, 9)]


def ev(key: str, n: int) -> OutgoingEvent:
    return OutgoingEvent(key, json.dumps({"key": key, "n": n}).encode())


def numbered(count: int, start: int = 0) -> list[OutgoingEvent]:
    """Events ``start`` .. ``start + count - 1`` of one stream that deals them to KEYS in turn: event g goes to
    key ``g % 8`` as that key's number ``g // 8``, so consecutive calls continue each key's numbering."""
    return [ev(KEYS[g % len(KEYS)], g // len(KEYS)) for g in range(start, start + count)]


def receive_all(q: EmbeddedQueue, group: str = GROUP) -> list:
    return [e for p in range(q.partitions) for e in q.receive(group, p, 100_000)]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "queue" / "events.sqlite"


@pytest.fixture
def queue(path):
    q = EmbeddedQueue(path, partitions=4)
    yield q
    q.close()


def test_send_receive_checkpoint(queue, path):
    assert isinstance(queue, EventSink)
    assert queue.describe() == f"embedded queue at {path} (4 partitions)"
    before = datetime.now(UTC)
    assert queue.send(numbered(20)) == 20
    assert queue.send([]) == 0
    got = receive_all(queue)
    assert len(got) == 20
    for e in got:
        assert e.partition == queue.partition_of(e.partition_key)
        assert json.loads(e.body)["key"] == e.partition_key
        assert e.enqueued_at.tzinfo is not None and e.enqueued_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= e.enqueued_at <= datetime.now(UTC) + timedelta(seconds=1)
    for p in range(4):  # sequence numbers per partition: 0, 1, 2, ...
        seqs = [e.sequence for e in got if e.partition == p]
        assert seqs == list(range(len(seqs)))

    busy = max(range(4), key=lambda p: len(queue.receive(GROUP, p, 100)))
    first = queue.receive(GROUP, busy, 100)
    assert queue.receive(GROUP, busy, 100) == first, "receiving removes nothing"
    assert queue.receive(GROUP, busy, 2) == first[:2], "oldest first, at most max_events"
    queue.checkpoint(GROUP, busy, first[1].sequence)
    assert queue.receive(GROUP, busy, 100) == first[2:]
    assert queue.receive("audit", busy, 100) == first, "consumer groups are independent"


def test_one_keys_events_stay_in_order_in_one_partition(queue):
    for b in range(10):  # several sends, keys interleaved within each
        queue.send(numbered(37, start=b * 100))
    by_key = defaultdict(list)
    partitions_of = defaultdict(set)
    for e in receive_all(queue):
        by_key[e.partition_key].append(json.loads(e.body)["n"])
        partitions_of[e.partition_key].add(e.partition)
    assert all(len(parts) == 1 for parts in partitions_of.values())
    for key, ns in by_key.items():
        assert ns == sorted(ns), key
    assert sum(map(len, by_key.values())) == 370


def test_partitioning_is_stable_across_instances_and_runs(path):
    keys = [f"store-{i}" for i in range(200)]
    a = EmbeddedQueue(path, partitions=8)
    b = EmbeddedQueue(path, partitions=8)
    try:
        assert [a.partition_of(k) for k in keys] == [b.partition_of(k) for k in keys]
        assert len({a.partition_of(k) for k in keys}) == 8, "keys spread over every partition"
    finally:
        a.close()
        b.close()
    # Pinned values: files written by earlier runs (and other processes) rely on the same mapping.
    assert [partition_for(f"S{i:03d}", 4) for i in range(1, 13)] == [1, 3, 1, 2, 0, 2, 0, 1, 3, 2, 0, 2]
    assert partition_for("store_north-7", 32) == 18


def test_redelivery_after_a_crash_without_checkpoint(path):
    q1 = EmbeddedQueue(path)
    q1.send(numbered(12))
    received = receive_all(q1)
    del q1  # "crash": no checkpoint, not even a close
    q2 = EmbeddedQueue(path)
    try:
        assert receive_all(q2) == received, "everything not checkpointed comes again, same numbers and bytes"
    finally:
        q2.close()


def _consume_then_die(path: str, checkpoint_upto: int) -> None:
    """Child: checkpoint part of partition 0, receive the rest, then die hard before checkpointing it."""
    q = EmbeddedQueue(path)
    got = q.receive(GROUP, 0, 1000)
    q.checkpoint(GROUP, 0, got[checkpoint_upto].sequence)
    q.receive(GROUP, 0, 1000)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_consumer_killed_mid_batch_loses_nothing(path):
    q = EmbeddedQueue(path)
    try:
        q.send([ev("S001", n) for n in range(10)])  # one key: all in one partition
        assert q.partition_of("S001") == 1
        q.send([ev("S005", n) for n in range(10)])  # S005 is on partition 0
        child = mp.get_context("spawn").Process(target=_consume_then_die, args=(str(path), 3))
        child.start()
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        rest = q.receive(GROUP, 0, 1000)
        assert [json.loads(e.body)["n"] for e in rest] == [4, 5, 6, 7, 8, 9]
        assert q.backlog(GROUP) == {0: 6, 1: 10, 2: 0, 3: 0}
    finally:
        q.close()


def test_a_checkpoint_never_moves_backwards_nor_past_the_end(queue):
    queue.send([ev("S001", n) for n in range(10)])
    p = queue.partition_of("S001")
    queue.checkpoint(GROUP, p, 6)
    queue.checkpoint(GROUP, p, 2)  # a slow worker reporting late
    assert [e.sequence for e in queue.receive(GROUP, p, 100)] == [7, 8, 9]
    queue.checkpoint(GROUP, p, 6)  # the same again: harmless
    assert queue.backlog(GROUP)[p] == 3
    with pytest.raises(ValueError, match="past its last event"):
        queue.checkpoint(GROUP, p, 10)
    with pytest.raises(ValueError, match="non-negative"):
        queue.checkpoint(GROUP, p, -1)
    with pytest.raises(ValueError, match="partition must be 0-3"):
        queue.checkpoint(GROUP, 4, 0)
    queue.checkpoint(GROUP, p, 9)
    assert queue.receive(GROUP, p, 100) == []


def test_backlog_counts_what_each_group_has_not_checkpointed(queue):
    assert queue.backlog(GROUP) == {0: 0, 1: 0, 2: 0, 3: 0}
    events = numbered(40)
    queue.send(events)
    expected = Counter(queue.partition_of(e.partition_key) for e in events)
    assert queue.backlog(GROUP) == {p: expected[p] for p in range(4)}
    queue.checkpoint(GROUP, 0, 4)  # five events of partition 0 done
    assert queue.backlog(GROUP)[0] == expected[0] - 5
    assert queue.backlog("other") == {p: expected[p] for p in range(4)}
    assert sum(queue.backlog(GROUP).values()) == 35


def test_a_batch_is_stored_whole_or_not_at_all(queue):
    queue.send(numbered(8))
    before = receive_all(queue)
    bad_type = [*numbered(5, start=100), OutgoingEvent("S001", "a str, not bytes"), *numbered(5, start=200)]
    with pytest.raises(TypeError, match="event 5: body must be bytes"):
        queue.send(bad_type)
    too_big = [*numbered(5, start=300), OutgoingEvent("S002", b"x" * (1024 * 1024 + 1))]
    with pytest.raises(ValueError, match="event 5: 1,048,577 bytes"):
        queue.send(too_big)
    with pytest.raises(ValueError, match="partition key"):
        queue.send([*numbered(3, start=400), OutgoingEvent("", b"{}")])
    assert receive_all(queue) == before, "the failed sends left nothing behind"
    # ... and used up no sequence numbers: the next event follows on without a gap.
    queue.send([ev("S001", 999)])
    p = queue.partition_of("S001")
    seqs = [e.sequence for e in queue.receive(GROUP, p, 100)]
    assert seqs == list(range(len(seqs)))


def test_prune_drops_what_every_group_is_done_with(queue):
    queue.send([ev("S005", n) for n in range(10)])  # partition 0
    assert queue.prune() == 0, "no group known yet: keep everything"
    queue.checkpoint("a", 0, 9)
    queue.checkpoint("b", 0, 3)
    assert queue.prune() == 4
    assert [e.sequence for e in queue.receive("b", 0, 100)] == [4, 5, 6, 7, 8, 9]
    assert [e.sequence for e in queue.receive("late", 0, 100)] == [4, 5, 6, 7, 8, 9]
    queue.checkpoint("b", 0, 9)
    assert queue.prune() == 6
    queue.send([ev("S005", 10)])
    assert [e.sequence for e in queue.receive("a", 0, 100)] == [10], "numbers are never reused"
    assert queue.backlog("late") == {0: 1, 1: 0, 2: 0, 3: 0}


def test_a_different_partition_count_is_refused(path):
    EmbeddedQueue(path, partitions=4).close()
    with pytest.raises(PartitionCountMismatch) as err:
        EmbeddedQueue(path, partitions=8)
    message = str(err.value)
    assert str(path) in message and "created with 4 partitions" in message and "partitions=8" in message
    EmbeddedQueue(path, partitions=4).close()  # still fine with the right count


def test_files_that_are_not_a_queue_are_refused(tmp_path):
    other = tmp_path / "stock.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE stock (sku TEXT)")
    con.close()
    with pytest.raises(QueueError, match="something else"):
        EmbeddedQueue(other)
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all, but long enough to have a header " * 20)
    with pytest.raises(QueueError, match="cannot be opened as an embedded queue"):
        EmbeddedQueue(text)


@pytest.mark.parametrize("call, message", [
    (lambda q: q.receive(GROUP, 4, 10), "partition must be 0-3"),
    (lambda q: q.receive(GROUP, 0, 0), "max_events"),
    (lambda q: q.receive(" ", 0, 10), "consumer group"),
    (lambda q: q.backlog(""), "consumer group"),
])
def test_bad_arguments(queue, call, message):
    with pytest.raises(ValueError, match=message):
        call(queue)


def test_bad_partition_counts(path):
    for bad in (0, -1, 1025, 2.0, True):
        with pytest.raises(ValueError, match="partitions must be"):
            EmbeddedQueue(path, partitions=bad)


# -- a producer process and a consumer at the same time -------------------------------------------------
PRODUCER_BATCHES = 40
BATCH = 25
PARTITIONS = 3


def _produce(path: str, half_sent, go_on) -> None:
    """Child: send numbered events; halfway, wait until the consumer has taken some (so the two overlap)."""
    q = EmbeddedQueue(path, partitions=PARTITIONS)
    for b in range(PRODUCER_BATCHES):
        if b == PRODUCER_BATCHES // 2:
            half_sent.set()
            if not go_on.wait(30):
                raise SystemExit(3)
        q.send(numbered(BATCH, start=b * BATCH))
    q.close()


def test_a_producer_process_and_a_crashing_consumer_lose_and_duplicate_nothing(path):
    ctx = mp.get_context("spawn")
    half_sent, go_on = ctx.Event(), ctx.Event()
    producer = ctx.Process(target=_produce, args=(str(path), half_sent, go_on))
    producer.start()  # both processes may create the file: one does, the other checks it
    consumer = EmbeddedQueue(path, partitions=PARTITIONS)
    processed = []
    receives = crashes = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            took = False
            for p in range(PARTITIONS):
                batch = consumer.receive(GROUP, p, 23)
                if not batch:
                    continue
                receives += 1
                if receives % 7 == 0:  # "crash" before the checkpoint: a new consumer gets the batch again
                    consumer.close()
                    consumer = EmbeddedQueue(path, partitions=PARTITIONS)
                    crashes += 1
                    continue
                processed.extend(batch)
                consumer.checkpoint(GROUP, p, batch[-1].sequence)
                took = True
            if half_sent.is_set() and processed:
                go_on.set()
            if not producer.is_alive() and not any(consumer.backlog(GROUP).values()):
                break
            if not took:
                time.sleep(0.005)
        producer.join(30)
        assert producer.exitcode == 0
    finally:
        consumer.close()
        if producer.is_alive():
            producer.kill()

    total = PRODUCER_BATCHES * BATCH
    assert crashes > 0
    bodies = Counter(e.body for e in processed)
    assert len(bodies) == total and set(bodies.values()) == {1}, "every event processed exactly once"
    per_key = defaultdict(list)
    for e in processed:
        assert e.partition == partition_for(e.partition_key, PARTITIONS), "the child agrees on partitions"
        per_key[e.partition_key].append(json.loads(e.body)["n"])
    for key, ns in per_key.items():
        assert ns == list(range(total // len(KEYS))), f"{key}: in order, none missing"
    for p in range(PARTITIONS):
        seqs = [e.sequence for e in processed if e.partition == p]
        assert seqs == list(range(len(seqs)))
