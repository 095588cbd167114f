"""The embedded stock store (local default): one SQLite file under ``$INVENTORY_HOME``.

Each ``apply`` and ``rebase`` is one ``BEGIN IMMEDIATE`` transaction, so several processes may share the
file and a crash (even SIGKILL) leaves every event either fully applied and recorded in the ledger, or not
at all. The ledger holds the events counted after the current baseline: an event id found there is a
duplicate; events at or before the baseline need no record (the snapshot already counts them), so a
rebase deletes them and the ledger stays as small as one day's traffic.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from shared.core.events import SaleEvent, counts_after, event_content, time_key
from shared.core.stock import Baseline
from shared.ports.stock import MAX_CHANGES, ApplyResult, BaselineInfo, RebaseResult, StockChanges, StockDoc

SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline (
    store_id TEXT PRIMARY KEY, dump_id TEXT NOT NULL, snapshot_at TEXT NOT NULL, rebased_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock (
    store_id TEXT NOT NULL, sku TEXT NOT NULL, on_hand INTEGER NOT NULL, baseline_on_hand INTEGER NOT NULL,
    events_delta INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (store_id, sku)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    store_id TEXT NOT NULL, event_id TEXT NOT NULL, occurred_at TEXT NOT NULL, deltas BLOB NOT NULL,
    applied_at TEXT NOT NULL, PRIMARY KEY (store_id, event_id)) WITHOUT ROWID;
"""
# ``stock.seq`` (added by _add_change_seq, also to files made before it existed) numbers the transaction that last
# wrote the row: ``changes`` reads the rows after a number through its index.
_CHANGE_SEQ = "ALTER TABLE stock ADD COLUMN seq INTEGER NOT NULL DEFAULT 0"
_CHANGE_SEQ_INDEX = "CREATE INDEX IF NOT EXISTS stock_seq ON stock (seq)"
# No index on the ledger's time: a rebase scans one store's ledger (its key prefix), which holds only the
# events since the last dump; a second B-tree would cost every insert more than it saves once a day.

_UPSERT = """
INSERT INTO stock (store_id, sku, on_hand, baseline_on_hand, events_delta, updated_at, seq)
VALUES (?, ?, ?, 0, ?, ?, ?)
ON CONFLICT (store_id, sku) DO UPDATE SET on_hand = on_hand + excluded.events_delta,
    events_delta = events_delta + excluded.events_delta, updated_at = excluded.updated_at, seq = excluded.seq
"""
_NEXT_SEQ = "SELECT coalesce(max(seq), 0) + 1 FROM stock"
WAL_AUTOCHECKPOINT_PAGES = 10_000
_LEDGER_ROWS = 100  # ledger rows per INSERT statement (500 parameters)
_IN_CHUNK = 500  # bound on "IN (?, ...)" parameters per statement


@functools.lru_cache(maxsize=_LEDGER_ROWS)
def _ledger_insert_sql(rows: int) -> str:
    """An INSERT of ``rows`` ledger rows that skips ids already recorded and returns the keys it inserted."""
    return ("INSERT OR IGNORE INTO ledger VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * rows)
            + " RETURNING store_id, event_id")


def _now() -> str:
    return time_key(datetime.now(UTC))


_LedgerRow = tuple[str, str, str, bytes, str]  # store_id, event_id, occurred_at, deltas (JSON), applied_at


def _ledger_rows(stores: Sequence[str], events_by_store: Mapping[str, Sequence[SaleEvent]], cutoffs: dict[str, str],
                 now: str, result: ApplyResult) -> tuple[list[_LedgerRow], list[SaleEvent]]:
    """The ledger rows of the events after their store's baseline, keyed by the store they were handed in for
    (the mapping's key, as the store's documents are), and the events they record; the events at or before the
    baseline go to ``result.before_baseline``."""
    dumps = orjson.dumps
    rows: list[_LedgerRow] = []
    after: list[SaleEvent] = []
    for store_id in stores:
        events = events_by_store[store_id]
        cutoff = cutoffs.get(store_id)
        if cutoff is not None:
            kept = counts_after(cutoff, events)
            if len(kept) < len(events):
                result.before_baseline += [e.event_id for e in events if e.occurred_key <= cutoff]
            events = kept
        rows += [(store_id, e.event_id, e.occurred_key, dumps(e.deltas), now) for e in events]
        after += events
    return rows, after


class SqliteStockStore:
    """The :class:`~shared.ports.stock.StockStore` on a local SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE takes the write lock up front,
        # so two processes never both read-then-write the same counts).
        self._con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._con.execute("PRAGMA cache_size=-32768")  # 32 MB: the hot stock pages stay in memory
        # Checkpoint (copy the WAL back into the database file) every ~40 MB of WAL instead of SQLite's 4 MB: a
        # batch rewrites hundreds of scattered stock pages, and each checkpoint copied many of them again (half
        # of the commit time at 1M events). Durability is the same (WAL, synchronous=NORMAL); a crash replays
        # at most that much WAL on the next open.
        self._con.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        self._con.executescript(SCHEMA)
        self._add_change_seq()
        self._lock = threading.Lock()  # one connection, shared by threads: one transaction at a time

    def _add_change_seq(self) -> None:
        """Give ``stock`` its ``seq`` column and index (a file made before ``changes`` existed gets them too)."""
        columns = {r[1] for r in self._con.execute("PRAGMA table_info(stock)")}
        if "seq" not in columns:
            try:
                self._con.execute(_CHANGE_SEQ)
            except sqlite3.OperationalError as exc:  # another process added it between our check and now
                if "duplicate column" not in str(exc):
                    raise
        self._con.execute(_CHANGE_SEQ_INDEX)

    def describe(self) -> str:
        return f"embedded stock store at {self.path}"

    def close(self) -> None:
        self._con.close()

    def apply(self, store_id: str, events: Sequence[SaleEvent]) -> ApplyResult:
        return self.apply_batch({store_id: events})

    def apply_batch(self, events_by_store: Mapping[str, Sequence[SaleEvent]]) -> ApplyResult:
        """Every store's events of a delivered batch in one transaction (one commit per batch, not per store),
        with one statement of each kind for the whole batch: one baseline read, one ledger insert, one stock
        upsert (SQLite's cost here is per statement and per row; per store, the statements were 40 % of it)."""
        result = ApplyResult()
        stores = [s for s, events in events_by_store.items() if events]
        if not stores:
            return result
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                self._apply(stores, events_by_store, _now(), result)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return result

    def _baseline_keys(self, stores: Sequence[str]) -> dict[str, str]:
        keys: dict[str, str] = {}
        for i in range(0, len(stores), _IN_CHUNK):
            chunk = stores[i:i + _IN_CHUNK]
            keys.update(self._con.execute(f"SELECT store_id, snapshot_at FROM baseline WHERE store_id IN "
                                          f"({','.join('?' * len(chunk))})", chunk).fetchall())
        return keys

    def _apply(self, stores: Sequence[str], events_by_store: Mapping[str, Sequence[SaleEvent]], now: str,
               result: ApplyResult) -> None:
        cutoffs = self._baseline_keys(stores)
        result.operations += 1  # the baseline read
        rows, after = _ledger_rows(stores, events_by_store, cutoffs, now, result)
        if not rows:
            return
        inserted = self._insert_ledger(rows)
        result.operations += len(rows)  # ledger inserts
        if len(inserted) != len(rows):  # some were recorded before (or, against the contract, repeated here)
            rows, after = self._set_repeats_aside(rows, after, inserted, result)
        sums: dict[tuple[str, str], int] = {}
        get = sums.get
        for row, e in zip(rows, after, strict=True):
            store_id = row[0]
            for sku, delta in e.deltas:
                key = (store_id, sku)
                sums[key] = get(key, 0) + delta
        seq = self._con.execute(_NEXT_SEQ).fetchone()[0]
        self._con.executemany(_UPSERT, [(store_id, sku, d, d, now, seq) for (store_id, sku), d in sums.items()])
        result.applied += [e.event_id for e in after]
        result.operations += len(sums)  # stock upserts

    def _insert_ledger(self, rows: Sequence[_LedgerRow]) -> set[tuple[str, str]]:
        """One INSERT OR IGNORE per chunk of rows, RETURNING the rows it inserted: an id already in the ledger is
        not returned, so the new events and the duplicates come out of the insert itself (no lookup, no undo).
        Returns the (store, event id) keys inserted."""
        inserted: set[tuple[str, str]] = set()
        for i in range(0, len(rows), _LEDGER_ROWS):
            chunk = rows[i:i + _LEDGER_ROWS]
            inserted.update(self._con.execute(_ledger_insert_sql(len(chunk)), [v for r in chunk for v in r]).fetchall())
        return inserted

    def _set_repeats_aside(self, rows: list[_LedgerRow], after: list[SaleEvent], inserted: set[tuple[str, str]],
                           result: ApplyResult) -> tuple[list[_LedgerRow], list[SaleEvent]]:
        """The rows (and their events) the ledger insert took; the others are recorded in ``result`` as duplicates
        (the same event as recorded) or conflicting (the same id with another time or other lines)."""
        fresh_rows, fresh, repeated = [], [], []
        for r, e in zip(rows, after, strict=True):
            if r[:2] in inserted:
                inserted.discard(r[:2])  # a key counts once, however often it is in this call
                fresh_rows.append(r)
                fresh.append(e)
            else:
                repeated.append((r, e))
        recorded = self._recorded([(r[0], r[1]) for r, _ in repeated], result)
        for r, e in repeated:
            was = recorded.get((r[0], r[1]))
            # A resend is the same bytes (deltas in the same order): compared as recorded, no parsing.
            same = was is not None and was[0] == r[2] and (
                was[1] == r[3] or event_content(was[0], orjson.loads(was[1])) == event_content(r[2], e.deltas))
            if same:
                result.duplicates.append(e.event_id)
            else:
                result.conflicting.append((r[0], e.event_id))
        return fresh_rows, fresh

    def _recorded(self, keys: Sequence[tuple[str, str]], result: ApplyResult) -> dict[tuple[str, str], tuple]:
        """``(occurred_at, deltas)`` as the ledger recorded them for these (store, event id) keys: per store, one
        ``event_id IN (...)`` query per chunk, which the ledger's primary key answers (a row-value
        ``(store_id, event_id) IN (VALUES ...)`` was a scan of the whole ledger: a redelivered batch of 500
        took seconds). Only the repeats are looked up (a few percent of the traffic)."""
        by_store: dict[str, list[str]] = {}
        for store_id, event_id in keys:
            by_store.setdefault(store_id, []).append(event_id)
        found: dict[tuple[str, str], tuple] = {}
        for store_id, ids in by_store.items():
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i:i + _IN_CHUNK]
                sql = (f"SELECT event_id, occurred_at, deltas FROM ledger WHERE store_id = ? AND event_id IN "
                       f"({','.join('?' * len(chunk))})")
                for event_id, occurred, deltas in self._con.execute(sql, [store_id, *chunk]):
                    found[(store_id, event_id)] = (occurred, deltas)
                result.operations += 1
        return found

    def rebase(self, baseline: Baseline) -> RebaseResult:
        with self._lock:
            return self._rebase(baseline)

    def _rebase(self, baseline: Baseline) -> RebaseResult:
        store_id, dump_id = baseline.store_id, baseline.dump_id
        new_key = (time_key(baseline.snapshot_at), dump_id)
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("SELECT snapshot_at, dump_id FROM baseline WHERE store_id = ?", (store_id,)).fetchone()
            if row is not None and tuple(row) >= new_key:
                con.execute("ROLLBACK")
                return RebaseResult("current" if tuple(row) == new_key else "older", store_id, dump_id)
            cutoff = new_key[0]
            events_after: dict[str, int] = {}
            n_events = 0
            for (deltas,) in con.execute("SELECT deltas FROM ledger WHERE store_id = ? AND occurred_at > ?",
                                         (store_id, cutoff)):
                n_events += 1
                for sku, delta in orjson.loads(deltas):
                    events_after[sku] = events_after.get(sku, 0) + delta
            existing = [r[0] for r in con.execute("SELECT sku FROM stock WHERE store_id = ?", (store_id,))]
            skus = set(baseline.on_hand) | set(events_after) | set(existing)
            now = _now()
            seq = con.execute(_NEXT_SEQ).fetchone()[0]
            rows = [(store_id, k, baseline.on_hand.get(k, 0) + events_after.get(k, 0), baseline.on_hand.get(k, 0),
                     events_after.get(k, 0), now, seq) for k in sorted(skus)]
            con.execute("DELETE FROM stock WHERE store_id = ?", (store_id,))
            con.executemany("INSERT INTO stock (store_id, sku, on_hand, baseline_on_hand, events_delta, updated_at, "
                            "seq) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            # Events at or before the new snapshot can never count again: the ledger forgets them.
            con.execute("DELETE FROM ledger WHERE store_id = ? AND occurred_at <= ?", (store_id, cutoff))
            con.execute("INSERT INTO baseline VALUES (?, ?, ?, ?) ON CONFLICT (store_id) DO UPDATE SET "
                        "dump_id = excluded.dump_id, snapshot_at = excluded.snapshot_at, "
                        "rebased_at = excluded.rebased_at", (store_id, dump_id, cutoff, now))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return RebaseResult("rebased", store_id, dump_id, skus=len(rows), events_after=n_events)

    def baseline(self, store_id: str) -> BaselineInfo | None:
        with self._lock:
            row = self._con.execute("SELECT dump_id, snapshot_at FROM baseline WHERE store_id = ?",
                                    (store_id,)).fetchone()
        return BaselineInfo(row[0], row[1]) if row else None

    def stock(self, store_id: str, sku: str | None = None) -> list[StockDoc]:
        base = self.baseline(store_id)
        sql = ("SELECT sku, on_hand, baseline_on_hand, events_delta, updated_at FROM stock WHERE store_id = ?"
               + (" AND sku = ?" if sku is not None else "") + " ORDER BY sku")
        params = (store_id, sku) if sku is not None else (store_id,)
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        return [StockDoc(store_id, k, on_hand, b, d, base.dump_id if base else None,
                         base.snapshot_at if base else None, upd) for k, on_hand, b, d, upd in rows]

    def cursor(self) -> str:
        with self._lock:
            return str(self._con.execute("SELECT coalesce(max(seq), 0) FROM stock").fetchone()[0])

    def changes(self, since: str, *, max_docs: int = MAX_CHANGES) -> StockChanges | None:
        """The rows written by transactions after the one numbered ``since``; the cursor is the highest number
        read. Writers are serial (``BEGIN IMMEDIATE``) and one statement reads one snapshot, so no row committed
        later can carry a number up to the cursor."""
        if not since.isdigit():
            return None
        sql = ("SELECT s.store_id, s.sku, s.on_hand, s.baseline_on_hand, s.events_delta, s.updated_at, s.seq, "
               "b.dump_id, b.snapshot_at FROM stock s LEFT JOIN baseline b ON b.store_id = s.store_id "
               "WHERE s.seq > ? ORDER BY s.store_id, s.sku LIMIT ?")
        with self._lock:
            rows = self._con.execute(sql, (int(since), max_docs + 1)).fetchall()
        if len(rows) > max_docs:
            return None
        docs = [StockDoc(store_id, k, on_hand, b, d, dump_id, snapshot, upd)
                for store_id, k, on_hand, b, d, upd, _seq, dump_id, snapshot in rows]
        return StockChanges(docs, str(max((r[6] for r in rows), default=int(since))))

    def stores(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._con.execute(
                "SELECT store_id FROM baseline UNION SELECT store_id FROM stock ORDER BY 1")]
