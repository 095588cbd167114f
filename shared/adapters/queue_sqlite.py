"""The embedded durable queue: the local default for Event Hubs, in one SQLite file.

It keeps the Event Hubs semantics the consumer relies on, so code tested locally behaves the same in Azure:

* a fixed number of partitions, chosen when the file is created; a key's partition is a CRC-32 of the key
  (never Python's salted ``hash()``), so every process and every run agrees on it;
* the events of one partition key stay in order in one partition, numbered by a per-partition sequence
  number that starts at 0 and only grows (numbers are never reused, not even after :meth:`prune`);
* consumer groups read independently and keep a checkpoint per partition: the sequence number of the last
  event they are done with. :meth:`receive` returns the events after the checkpoint and removes nothing,
  so whatever was received but not checkpointed is received again (at-least-once, as with Event Hubs).

Several processes may share the file (a producer and a consumer, say): WAL lets readers work while a
writer commits, and every write is one ``BEGIN IMMEDIATE`` transaction that waits up to 30 s for the lock.
The file must live on a local filesystem (WAL does not work over network shares). There are no leases: two
consumers of the same group and partition would both get the same events, which at-least-once allows.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.core.events import time_key
from shared.ports.events import OutgoingEvent

QUEUE_KIND = "inventory-embedded-queue"
SCHEMA_VERSION = "1"
MAX_PARTITIONS = 1024
MAX_BODY_BYTES = 1024 * 1024  # the largest event Event Hubs (standard tier) accepts; bigger fails here too
MAX_KEY_CHARS = 128  # the Event Hubs limit on a partition key
BUSY_TIMEOUT_S = 30.0

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The last sequence number handed out per partition (-1: none yet). Kept apart from the events so that
    # pruning never lets a number be reused.
    "CREATE TABLE IF NOT EXISTS heads (part INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (part INTEGER NOT NULL, seq INTEGER NOT NULL, partition_key TEXT NOT NULL, "
    "body BLOB NOT NULL, enqueued_at TEXT NOT NULL, PRIMARY KEY (part, seq))",
    "CREATE TABLE IF NOT EXISTS checkpoints (consumer_group TEXT NOT NULL, part INTEGER NOT NULL, "
    "seq INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (consumer_group, part)) WITHOUT ROWID",
)
_OUR_TABLES = ("meta", "heads", "events", "checkpoints")

_RECEIVE = """
SELECT seq, partition_key, body, enqueued_at FROM events
WHERE part = ? AND seq > coalesce((SELECT seq FROM checkpoints WHERE consumer_group = ? AND part = ?), -1)
ORDER BY seq LIMIT ?
"""
_BACKLOG = """
SELECT h.part, (SELECT count(*) FROM events e WHERE e.part = h.part AND e.seq > coalesce(c.seq, -1))
FROM heads h LEFT JOIN checkpoints c ON c.part = h.part AND c.consumer_group = ?
ORDER BY h.part
"""
# Per partition, the lowest checkpoint over every known group; a group without a checkpoint on a partition
# still needs all of it (-1). No group known at all: min() over nothing is NULL and nothing is deleted.
_PRUNE = """
DELETE FROM events WHERE seq <= (
    SELECT min(coalesce(c.seq, -1)) FROM (SELECT DISTINCT consumer_group FROM checkpoints) g
    LEFT JOIN checkpoints c ON c.consumer_group = g.consumer_group AND c.part = events.part)
"""


class QueueError(RuntimeError):
    """The queue file cannot be used as asked; the message names the file and what to do."""


class PartitionCountMismatch(QueueError):
    """The file was created with another partition count (a key's partition depends on it)."""


@dataclass(frozen=True)
class QueuedEvent:
    partition: int
    sequence: int
    partition_key: str
    body: bytes
    enqueued_at: datetime  # aware, UTC


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: CRC-32 of its UTF-8 bytes modulo the count (stable across processes)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def _now_key() -> str:
    return time_key(datetime.now(UTC))


class EmbeddedQueue:
    """An :class:`~shared.ports.events.EventSink` with the consumer side of Event Hubs, on SQLite."""

    def __init__(self, path: Path, partitions: int = 4) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be an integer from 1 to {MAX_PARTITIONS}, not {partitions!r}")
        self.path = Path(path)
        self._partitions = partitions
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit; BEGIN IMMEDIATE takes the write lock up front, so
        # two producers never both read a partition's head and hand out the same sequence number.
        self._con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                    check_same_thread=False)
        self._lock = threading.Lock()  # one connection, shared by threads: one statement/transaction at a time
        try:
            self._con.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: a send that returned is the producer's acknowledgement (the HTTP ingress
            # answers 202 on it), so it must survive a power cut, not only a process crash.
            self._con.execute("PRAGMA synchronous=FULL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise QueueError(f"{self.path} cannot be opened as an embedded queue: {exc}") from exc
        except BaseException:
            self._con.close()
            raise

    def _init_schema(self) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")  # two processes creating the file at once: one does it, one checks
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            foreign = tables - set(_OUR_TABLES)
            if foreign and "meta" not in tables:
                raise QueueError(f"{self.path} is an SQLite file of something else (tables: "
                                 f"{', '.join(sorted(foreign)[:5])}); give the queue a file of its own")
            for statement in _TABLES:
                con.execute(statement)
            con.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", [
                ("kind", QUEUE_KIND), ("schema", SCHEMA_VERSION), ("partitions", str(self._partitions)),
                ("created_at", _now_key())])
            meta = dict(con.execute("SELECT key, value FROM meta"))
            if meta.get("kind") != QUEUE_KIND:
                raise QueueError(f"{self.path} is not an embedded queue (kind {meta.get('kind')!r})")
            if meta.get("schema") != SCHEMA_VERSION:
                raise QueueError(f"{self.path} has queue schema {meta.get('schema')!r}; this code reads "
                                 f"{SCHEMA_VERSION!r}. Drain it with the code that wrote it, or use a new file")
            existing = int(meta["partitions"])
            if existing != self._partitions:
                raise PartitionCountMismatch(
                    f"{self.path} was created with {existing} partitions but opened with partitions="
                    f"{self._partitions}: open it with {existing}, or use a new file (a key's partition depends "
                    "on the count, so changing it would break the order of a store's events)")
            con.executemany("INSERT OR IGNORE INTO heads (part, last_seq) VALUES (?, -1)",
                            [(p,) for p in range(self._partitions)])
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    # -- the sink ----------------------------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        return self._partitions

    def describe(self) -> str:
        return f"embedded queue at {self.path} ({self._partitions} partitions)"

    def partition_of(self, key: str) -> int:
        """The partition the events of ``key`` go to."""
        return partition_for(key, self._partitions)

    def send(self, events: Sequence[OutgoingEvent]) -> int:
        """Append ``events`` in one transaction: all of them are stored, or (on any error) none."""
        if not events:
            return 0
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                heads = dict(con.execute("SELECT part, last_seq FROM heads"))
                touched: set[int] = set()
                enqueued_at = _now_key()
                # Checked one by one inside the transaction: a bad event anywhere rolls back those before it.
                for index, event in enumerate(events):
                    key, body = _checked(event, index)
                    part = partition_for(key, self._partitions)
                    heads[part] += 1
                    touched.add(part)
                    con.execute("INSERT INTO events (part, seq, partition_key, body, enqueued_at) "
                                "VALUES (?, ?, ?, ?, ?)", (part, heads[part], key, body, enqueued_at))
                con.executemany("UPDATE heads SET last_seq = ? WHERE part = ?", [(heads[p], p) for p in touched])
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return len(events)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> EmbeddedQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the consumer side -------------------------------------------------------------------------------
    def receive(self, consumer_group: str, partition: int, max_events: int) -> list[QueuedEvent]:
        """Up to ``max_events`` events after the group's checkpoint on ``partition``, oldest first.

        Nothing is removed or marked: until :meth:`checkpoint` moves past them, the same events come again.
        """
        self._check_group(consumer_group)
        self._check_partition(partition)
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ValueError(f"max_events must be a positive integer, not {max_events!r}")
        with self._lock:
            rows = self._con.execute(_RECEIVE, (partition, consumer_group, partition, max_events)).fetchall()
        return [QueuedEvent(partition, seq, key, bytes(body), datetime.fromisoformat(at))
                for seq, key, body, at in rows]

    def checkpoint(self, consumer_group: str, partition: int, sequence: int) -> None:
        """Record that the group is done with ``partition`` up to and including ``sequence``.

        A checkpoint never moves backwards (a late, slower worker cannot make the group re-read), and may
        not point past the last event sent (that would silently skip events not yet written).
        """
        self._check_group(consumer_group)
        self._check_partition(partition)
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise ValueError(f"sequence must be a non-negative integer, not {sequence!r}")
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                (head,) = con.execute("SELECT last_seq FROM heads WHERE part = ?", (partition,)).fetchone()
                if sequence > head:
                    raise ValueError(f"checkpoint {sequence} on partition {partition} of {self.path} is past its "
                                     f"last event ({head})")
                con.execute(
                    "INSERT INTO checkpoints (consumer_group, part, seq, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (consumer_group, part) DO UPDATE SET seq = max(seq, excluded.seq), "
                    "updated_at = CASE WHEN excluded.seq > seq THEN excluded.updated_at ELSE updated_at END",
                    (consumer_group, partition, sequence, _now_key()))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def backlog(self, consumer_group: str) -> dict[int, int]:
        """Partition -> how many stored events the group has not checkpointed yet."""
        self._check_group(consumer_group)
        with self._lock:
            return dict(self._con.execute(_BACKLOG, (consumer_group,)).fetchall())

    def prune(self) -> int:
        """Delete the events every known consumer group has checkpointed; return how many.

        A group is known once it has checkpointed anything; a group that shows up later starts at the
        oldest event still kept (like a new consumer group on Event Hubs after retention).
        """
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                deleted = con.execute(_PRUNE).rowcount
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return deleted

    def _check_group(self, consumer_group: str) -> None:
        if not isinstance(consumer_group, str) or not consumer_group.strip():
            raise ValueError(f"consumer group must be a non-blank string, not {consumer_group!r}")

    def _check_partition(self, partition: int) -> None:
        if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < self._partitions:
            raise ValueError(f"partition must be 0-{self._partitions - 1} for {self.path}, not {partition!r}")


def _checked(event: OutgoingEvent, index: int) -> tuple[str, bytes]:
    """The key and body of one event, or a ValueError naming the event's place in the batch."""
    key, body = getattr(event, "partition_key", None), getattr(event, "body", None)
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"event {index}: partition key must be 1-{MAX_KEY_CHARS} characters, not {key!r:.80}")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"event {index}: body must be bytes, not {type(body).__name__}")
    body = bytes(body)
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"event {index}: {len(body):,} bytes; the largest event is {MAX_BODY_BYTES:,} bytes")
    return key, body
