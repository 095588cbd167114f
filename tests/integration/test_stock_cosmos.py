"""What only the Cosmos DB stock store has: document ids, batch splitting, conflicts inside a batch, races
between the steps of a rebase, a rebase cut short, and throttling.

Runs on the npm Cosmos-API server through the test shim (tests/support/cosmos.py: batches there are
all-or-nothing because the shim makes them so, not the server). Races and crashes are provoked
deterministically by :class:`Spy`, a wrapper that counts operations, records batch failures and runs a
callback at a chosen point; throttling by raising the SDK's own 429 errors.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.stock_cosmos import (
    BATCH_THROTTLE_RETRIES,
    INDEXING_POLICY,
    MAX_BATCH_BYTES,
    CosmosStockStore,
    encode_id_part,
    event_doc_id,
    stock_doc_id,
)
from shared.core.events import SaleEvent
from shared.core.stock import Baseline, expected_stock
from tests.support.cosmos import LEDGER_TTL_S, server_connection_string

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def ev(event_id: str, minutes: float, *lines: tuple[str, int], store: str) -> SaleEvent:
    return SaleEvent(event_id, store, "adjustment", T0 + timedelta(minutes=minutes), tuple(lines))


def dump(store: str, dump_id: str, minutes: float, **on_hand: int) -> Baseline:
    return Baseline(store, dump_id, T0 + timedelta(minutes=minutes), dict(on_hand))


def counts(store: CosmosStockStore, store_id: str) -> dict[str, int]:
    return {d.sku: d.on_hand for d in store.stock(store_id)}


def new_store_id() -> str:
    return "C" + uuid.uuid4().hex[:12]


class SimulatedCrash(RuntimeError):
    """The process dying at this point (raised instead of the Cosmos call)."""


class Spy:
    """Wraps a container: counts operations the way ApplyResult does (a batch of n counts n), records
    batch failures, and can run a callback once after a matching query, before a batch, or crash
    after a number of writes. Anything else goes to the wrapped container."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.operations = 0
        self.batches: list[tuple[int, int | None]] = []  # per attempt: operations, failing status or None
        self.batch_errors: list[Exception] = []
        self.after_query: list[tuple[str, Callable[[], None]]] = []
        self.before_batch: list[Callable[[list[Any]], None]] = []
        self.crash_after_writes: int | None = None
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _write(self) -> None:
        if self.crash_after_writes is not None and self.writes >= self.crash_after_writes:
            raise SimulatedCrash(f"crash after {self.writes} writes")
        self.writes += 1

    def read_item(self, *args: Any, **kwargs: Any) -> Any:
        self.operations += 1
        return self.inner.read_item(*args, **kwargs)

    def create_item(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        self.operations += 1
        return self.inner.create_item(*args, **kwargs)

    def replace_item(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        self.operations += 1
        return self.inner.replace_item(*args, **kwargs)

    def query_items(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.operations += 1
        rows = self.inner.query_items(query, *args, **kwargs)
        for i, (needle, callback) in enumerate(self.after_query):
            if needle in query:
                del self.after_query[i]
                callback()
                break
        return rows

    def execute_item_batch(self, batch_operations: list[Any], partition_key: Any, **kwargs: Any) -> Any:
        if self.before_batch:
            self.before_batch.pop(0)(batch_operations)
        self._write()
        self.operations += len(batch_operations)
        try:
            result = self.inner.execute_item_batch(batch_operations=batch_operations, partition_key=partition_key,
                                                   **kwargs)
        except Exception as exc:
            self.batches.append((len(batch_operations), getattr(exc, "status_code", -1)))
            self.batch_errors.append(exc)
            raise
        self.batches.append((len(batch_operations), None))
        return result

    def committed(self) -> list[int]:
        """The sizes of the batches that committed."""
        return [n for n, failed in self.batches if failed is None]


@pytest.fixture
def shim(cosmos_server_shim: Any) -> Any:
    return cosmos_server_shim


@pytest.fixture
def store(shim: Any) -> CosmosStockStore:
    """A store on the server through the shim (other tests build theirs over a Spy)."""
    return CosmosStockStore(shim, ledger_ttl_s=LEDGER_TTL_S)


# --- ids ----------------------------------------------------------------------------------------------------


def test_id_encoding_is_safe_and_injective() -> None:
    raws = ["A/B", "A%2FB", "A%B", "A?B", "A#B", "A\\B", "A B", "A\x01B", "plain-SKU_1.2", "É/Ü"]
    encoded = [encode_id_part(r) for r in raws]
    assert len(set(encoded)) == len(raws)
    for part in encoded:
        assert not set(part) & set("/\\?#") and not any(ord(c) < 0x20 for c in part)
    assert encode_id_part("A/B") == "A%2FB" and encode_id_part("A%2FB") == "A%252FB"
    assert encode_id_part("plain-SKU_1.2") == "plain-SKU_1.2"
    long_a, long_b = encode_id_part("X" * 300), encode_id_part("X" * 299 + "Y")
    assert long_a.startswith("%H") and len(long_a) == 66 and long_a != long_b


def test_skus_and_event_ids_with_reserved_characters_round_trip(store: CosmosStockStore, shim: Any) -> None:
    s = new_store_id()
    skus = ["A/B", "C?D", "E#F", "G%2FH", "I\\J", "K L", "100%"]
    events = [ev(f"e/{i}?#%\\x", i + 1, (sku, -(i + 1)), store=s) for i, sku in enumerate(skus)]
    assert sorted(store.apply(s, events).applied) == sorted(e.event_id for e in events)
    assert counts(store, s) == {sku: -(i + 1) for i, sku in enumerate(skus)}
    assert sorted(store.apply(s, events).duplicates) == sorted(e.event_id for e in events)
    for sku in skus:  # the point reads by id work too, not only the queries
        assert shim.read_item(stock_doc_id(sku), partition_key=s)["sku"] == sku
    ledger = shim.read_item(event_doc_id(events[0].event_id), partition_key=s)
    assert ledger["eventId"] == "e/0?#%\\x" and ledger["ttl"] == LEDGER_TTL_S
    assert [d.sku for d in store.stock(s, "G%2FH")] == ["G%2FH"]
    store.rebase(dump(s, "d1", 0, **{"A/B": 10, "100%": 5}))
    assert counts(store, s) == {**{sku: -(i + 1) for i, sku in enumerate(skus)}, "A/B": 9, "100%": 5 - 7}


# --- batches ------------------------------------------------------------------------------------------------


def test_chunks_respect_the_operation_and_size_limits() -> None:
    s = "S"
    store = CosmosStockStore(None, ledger_ttl_s=LEDGER_TTL_S)  # type: ignore[arg-type]  # pure: no calls
    shared = [ev(f"e{i}", i, ("ONE", -1), store=s) for i in range(200)]
    assert len(store._next_chunk(s, shared)) == 98  # 1 guard + 98 creates + 1 patch = 100
    wide = [ev(f"w{i}", i, *((f"K{i}-{j}", 1) for j in range(64)), store=s) for i in range(3)]
    assert len(store._next_chunk(s, wide)) == 1  # 1 + 1 + 64 = 66; a second event would need 131
    # Events near the 64 KiB limit (one 60,000-character sku each): the size splits, not the count.
    big = [ev(f"b{i}", i, (f"{i:02d}" + "X" * 60_000, 1), store=s) for i in range(40)]
    chunk = store._next_chunk(s, big)
    ops, _ = store._chunk_operations(s, "", chunk)
    more, _ = store._chunk_operations(s, "", big[:len(chunk) + 1])
    assert len(chunk) < 40 and len(ops) < 100
    assert len(json.dumps(ops)) <= MAX_BATCH_BYTES < len(json.dumps(more)) + 2 * 128 * len(more)


def test_many_events_are_split_into_batches_and_counted_once(shim: Any) -> None:
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    events = [ev(f"e{i}", i, (f"K{i % 45}", -1), (f"K{(i + 1) % 45}", 2), store=s) for i in range(130)]
    result = store.apply(s, events)
    assert sorted(result.applied) == sorted(e.event_id for e in events) and not result.duplicates
    assert max(n for n, _ in spy.batches) <= 100
    # 54 events (naming all 45 skus) + 54 + the last 22 (naming 23 skus)
    assert spy.committed() == [1 + 54 + 45, 1 + 54 + 45, 1 + 22 + 23]
    assert result.operations == spy.operations  # every read, query, create and batched operation
    assert counts(store, s) == expected_stock([], events)
    again = store.apply(s, events)
    assert sorted(again.duplicates) == sorted(e.event_id for e in events) and not again.applied
    assert counts(store, s) == expected_stock([], events)


def test_events_with_many_distinct_skus_take_a_batch_each(shim: Any) -> None:
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    events = [ev(f"w{i}", i, *((f"K{i}-{j}", j + 1) for j in range(64)), store=s) for i in range(3)]
    result = store.apply(s, events)
    assert len(result.applied) == 3 and result.operations == spy.operations
    assert spy.committed() == [66, 66, 66]  # 1 guard + 1 ledger item + 64 patches: one event per batch
    # New skus' documents are created before the batch that patches them: no batch fails (and is charged).
    assert {status for _, status in spy.batches} == {None}
    assert counts(store, s) == expected_stock([], events)


def test_a_document_gone_behind_our_back_is_recreated_after_the_404(shim: Any) -> None:
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    store.apply(s, [ev("e1", 1, ("A", -1), store=s)])
    shim.delete_item(stock_doc_id("A"), partition_key=s)  # e.g. removed by hand: our cache says it exists
    result = store.apply(s, [ev("e2", 2, ("A", -2), store=s)])
    assert result.applied == ["e2"] and 404 in {status for _, status in spy.batches}
    assert counts(store, s) == {"A": -2}  # the deleted document's history is gone with it; e2 counted once


def test_a_duplicate_in_the_middle_of_a_chunk_keeps_the_others(shim: Any) -> None:
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    store.apply(s, [ev("e2", 2, ("A", -2), store=s)])
    spy.batch_errors.clear()
    result = store.apply(s, [ev("e1", 1, ("A", -1), store=s), ev("e2", 2, ("A", -2), store=s),
                             ev("e3", 3, ("A", -3), ("B", 1), store=s)])
    assert (sorted(result.applied), result.duplicates) == (["e1", "e3"], ["e2"])
    conflict = spy.batch_errors[0]
    assert (conflict.status_code, conflict.error_index) == (409, 2)  # guard, e1, e2 <- here
    assert counts(store, s) == {"A": -6, "B": 1}


def test_a_rebase_that_moved_the_baseline_makes_a_waiting_apply_redo_its_chunk(shim: Any) -> None:
    """The guard: an apply that read the old snapshot time fails once the rebase has moved it, re-reads
    the baseline and sorts its events again (e10 is now inside the dump's count)."""
    spy = Spy(shim)
    store, other = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S), CosmosStockStore(shim, LEDGER_TTL_S)
    s = new_store_id()
    d1, d2 = dump(s, "d1", 0, A=10), dump(s, "d2", 30, A=7)
    store.rebase(d1)
    spy.before_batch.append(lambda _ops: other.rebase(d2))
    events = [ev("e10", 10, ("A", -3), store=s), ev("e40", 40, ("A", -1), store=s)]
    result = store.apply(s, events)
    assert spy.batch_errors[0].status_code == 412 and spy.batch_errors[0].error_index == 0
    assert (result.before_baseline, result.applied) == (["e10"], ["e40"])
    assert counts(store, s) == expected_stock([d1, d2], events) == {"A": 6}


@pytest.mark.parametrize("between", ["stock documents read and ledger summed", "ledger summed and documents written"])
def test_an_apply_committing_between_the_steps_of_a_rebase_is_counted_once(shim: Any, between: str) -> None:
    spy = Spy(shim)
    store, other = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S), CosmosStockStore(shim, LEDGER_TTL_S)
    s = new_store_id()
    d1, d2 = dump(s, "d1", 0, A=10, B=4), dump(s, "d2", 30, A=7, B=3)
    before = [ev("e10", 10, ("A", -1), store=s), ev("e40", 40, ("A", -1), ("B", -1), store=s)]
    racing = ev("e50", 50, ("A", -2), ("NEW", 5), store=s)
    store.rebase(d1)
    store.apply(s, before)
    needle = "c.type = 'stock'" if between.startswith("stock") else "c.occurredAt > @t"
    spy.after_query.append((needle, lambda: other.apply(s, [racing])))
    result = store.rebase(d2)
    assert result.status == "rebased" and not spy.after_query  # the race really happened
    assert counts(store, s) == expected_stock([d1, d2], [*before, racing]) == {"A": 4, "B": 2, "NEW": 5}
    assert store.rebase(d2).status == "current"


def test_a_rebase_cut_short_after_moving_the_baseline_is_finished_by_running_it_again(shim: Any) -> None:
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    d1, d2 = dump(s, "d1", 0, A=10, B=5, C=1), dump(s, "d2", 30, A=7, B=2, D=9)
    events = [ev("e10", 10, ("A", -1), store=s), ev("e40", 40, ("B", -1), ("C", 3), store=s)]
    store.rebase(d1)
    store.apply(s, events)
    spy.writes, spy.crash_after_writes = 0, 2  # (1) moves the baseline, one document is rewritten, crash
    with pytest.raises(SimulatedCrash):
        store.rebase(d2)
    spy.crash_after_writes = None
    assert store.baseline(s).dump_id == "d2"  # step (1) committed
    assert counts(store, s) != expected_stock([d1, d2], events)  # the rest not yet
    late = ev("e50", 50, ("A", -2), ("D", -1), store=s)  # an event counted in between, on the new baseline
    events.append(late)
    assert store.apply(s, [late]).applied == ["e50"]
    finished = store.rebase(d2)
    assert finished.status == "rebased" and 0 < finished.skus < 4  # only the documents still to do
    assert counts(store, s) == expected_stock([d1, d2], events) == {"A": 5, "B": 1, "C": 3, "D": 8}
    assert store.rebase(d2).status == "current"
    assert {d.baseline_dump_id for d in store.stock(s)} == {"d2"}


def test_a_rebase_writes_only_the_documents_whose_count_it_moves(shim: Any) -> None:
    """Tonight's dump mostly agrees with the stock the events kept: only the skus it counts otherwise are
    rewritten (11 RU each); the others keep their count and the breakdown of the dump that last wrote them."""
    spy = Spy(shim)
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S)
    s = new_store_id()
    d1 = dump(s, "d1", 0, A=10, B=5, C=1)
    events = [ev("e10", 10, ("A", -1), store=s), ev("e20", 20, ("B", -2), ("C", 4), store=s)]
    store.rebase(d1)
    store.apply(s, events)
    assert counts(store, s) == {"A": 9, "B": 3, "C": 5}
    d2 = dump(s, "d2", 30, A=9, B=3, C=4)  # C counted one short (a shrinkage); A and B as the events left them
    spy.writes = 0
    result = store.rebase(d2)
    assert (result.status, result.skus) == ("rebased", 1) and spy.writes == 2  # the baseline document and C
    late = ev("e40", 40, ("A", -2), store=s)
    store.apply(s, [late])
    assert counts(store, s) == expected_stock([d1, d2], [*events, late]) == {"A": 7, "B": 3, "C": 4}
    by_sku = {d.sku: d for d in store.stock(s)}
    assert (by_sku["C"].baseline_dump_id, by_sku["C"].baseline_on_hand, by_sku["C"].events_delta) == ("d2", 4, 0)
    a = by_sku["A"]  # untouched by d2: its breakdown is still d1's, and still adds up
    assert (a.baseline_dump_id, a.baseline_on_hand, a.events_delta, a.on_hand) == ("d1", 10, -3, 7)
    spy.writes = 0
    assert store.rebase(d2).status == "current" and spy.writes == 0  # run again: nothing to write


# --- throttling ---------------------------------------------------------------------------------------------


def _throttle(kind: str) -> Exception:
    from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

    if kind == "operation":  # 207 with one operation at 429: the SDK raises it without retrying
        return CosmosBatchOperationError(error_index=0, headers={"x-ms-retry-after-ms": "7"}, status_code=429,
                                         message="throttled", operation_responses=[{"statusCode": 429}])
    return CosmosHttpResponseError(status_code=429, message="throttled")  # the SDK's own retries ran out


@pytest.mark.parametrize("kind", ["operation", "request"])
def test_a_throttled_batch_is_retried_with_backoff(shim: Any, kind: str) -> None:
    spy = Spy(shim)
    sleeps: list[float] = []
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S, sleep=sleeps.append)
    s = new_store_id()
    store.apply(s, [ev("e0", 0, ("A", 1), store=s)])  # the sku document exists: one batch per apply below

    def throttled(_ops: list[Any]) -> None:
        raise _throttle(kind)

    spy.before_batch.extend([throttled, throttled])
    result = store.apply(s, [ev("e1", 1, ("A", -1), store=s)])
    assert result.applied == ["e1"] and counts(store, s) == {"A": 0}
    assert len(sleeps) == 2 and all(0 < t <= 10 for t in sleeps)
    if kind == "operation":
        assert sleeps == [0.007, 0.007]  # the service's x-ms-retry-after-ms, honoured
    # 1 baseline read + 3 attempts of 3 operations (guard, ledger item, patch): throttled ones count too
    assert result.operations == 1 + 3 * 3


def test_throttling_that_does_not_stop_fails_the_apply_and_changes_nothing(shim: Any) -> None:
    spy = Spy(shim)
    sleeps: list[float] = []
    store = CosmosStockStore(spy, ledger_ttl_s=LEDGER_TTL_S, sleep=sleeps.append)
    s = new_store_id()
    store.apply(s, [ev("e0", 0, ("A", 1), store=s)])

    def throttled(_ops: list[Any]) -> None:
        raise _throttle("operation")

    spy.before_batch.extend([throttled] * (BATCH_THROTTLE_RETRIES + 1))
    with pytest.raises(Exception, match="throttled") as info:
        store.apply(s, [ev("e1", 1, ("A", -5), store=s)])
    assert getattr(info.value, "status_code", None) == 429 and len(sleeps) == BATCH_THROTTLE_RETRIES
    assert counts(store, s) == {"A": 1}


# --- construction and the other reads ---------------------------------------------------------------------


def test_from_connection_string_creates_the_container_as_infra_would(cosmos_server_port: int) -> None:
    from azure.cosmos import CosmosClient

    from shared.local.cosmos_devserver import EMULATOR_KEY, unverified_tls_ok

    database = f"test-{uuid.uuid4().hex[:12]}"
    conn = server_connection_string(cosmos_server_port)
    with unverified_tls_ok():
        store = CosmosStockStore.from_connection_string(conn, database, "stock", ledger_ttl_s=LEDGER_TTL_S,
                                                        verify_tls=False)
        try:
            props = store._container.read()
            assert props["partitionKey"]["paths"] == ["/storeId"] and props["defaultTtl"] == -1
            assert props["indexingPolicy"]["includedPaths"] == INDEXING_POLICY["includedPaths"]
            assert "Cosmos DB stock store" in store.describe() and "stock" in store.describe()
            # (No point read here: without the shim, this server answers 500 for a missing item.)
            assert store.stores() == [] and store.stock("S1") == []
        finally:
            store.close()
            client = CosmosClient(f"https://127.0.0.1:{cosmos_server_port}/", credential=EMULATOR_KEY,
                                  connection_verify=False)
            client.delete_database(database)
            client.close()


def test_stores_and_baseline(store: CosmosStockStore) -> None:
    a, b = sorted([new_store_id(), new_store_id()])
    store.apply(b, [ev("e1", 1, ("A", 1), store=b)])
    store.rebase(dump(a, "d1", 0, A=3))
    assert {a, b} <= set(store.stores()) and store.stores() == sorted(store.stores())
    assert store.baseline(b) is None  # an apply made its baseline document, but no dump yet
    info = store.baseline(a)
    assert (info.dump_id, info.snapshot_at) == ("d1", "2026-11-26T23:00:00.000000Z")
    with pytest.raises(ValueError):
        CosmosStockStore(None, ledger_ttl_s=0)  # type: ignore[arg-type]
