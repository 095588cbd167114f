"""One contract for every stock store: the stock invariant (docs/stock-and-events.md), and attempts to break it.

Runs on the embedded store always, and on Cosmos DB through the fixtures in ``tests/support/cosmos.py``
(the Cosmos-API server from npm, and a real endpoint when ``COSMOS_TEST_ENDPOINT`` is set). Every test
uses fresh store ids, so one container serves the session.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.events import SaleEvent
from shared.core.stock import Baseline, expected_stock
from shared.ports.stock import StockStore

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def ev(event_id: str, minutes: float, *lines: tuple[str, int], store: str = "S", kind: str = "sale") -> SaleEvent:
    """An event ``minutes`` after T0 with (sku, signed delta) lines."""
    return SaleEvent(event_id, store, kind, T0 + timedelta(minutes=minutes), tuple(lines))


def dump(store: str, dump_id: str, minutes: float, **on_hand: int) -> Baseline:
    return Baseline(store, dump_id, T0 + timedelta(minutes=minutes), dict(on_hand))


def counts(store: StockStore, store_id: str) -> dict[str, int]:
    return {d.sku: d.on_hand for d in store.stock(store_id)}


def same(actual: dict[str, int], expected: dict[str, int]) -> bool:
    """Equal as stock: a sku missing on one side is a count of zero."""
    keys = set(actual) | set(expected)
    return all(actual.get(k, 0) == expected.get(k, 0) for k in keys)


def new_store_id() -> str:
    return "T" + uuid.uuid4().hex[:12]


def with_store(events: list[SaleEvent], store_id: str) -> list[SaleEvent]:
    return [SaleEvent(e.event_id, store_id, e.type, e.occurred_at, e.deltas) for e in events]


def test_events_without_a_dump_sum_from_zero(stock_store: StockStore) -> None:
    s = new_store_id()
    r = stock_store.apply(s, with_store([ev("e1", 1, ("A", -2)), ev("e2", 2, ("A", -1), ("B", 5))], s))
    assert sorted(r.applied) == ["e1", "e2"] and not r.duplicates and not r.before_baseline
    assert counts(stock_store, s) == {"A": -3, "B": 5}


def test_redelivery_counts_once(stock_store: StockStore) -> None:
    s = new_store_id()
    batch = with_store([ev("e1", 1, ("A", -2)), ev("e2", 2, ("B", -1))], s)
    stock_store.apply(s, batch)
    again = stock_store.apply(s, [*batch, *with_store([ev("e3", 3, ("A", 4))], s)])
    assert sorted(again.duplicates) == ["e1", "e2"] and again.applied == ["e3"]
    assert counts(stock_store, s) == {"A": 2, "B": -1}


def test_an_id_reused_with_other_content_is_conflicting_and_changes_nothing(stock_store: StockStore) -> None:
    # A sender reusing an eventId: the first version counts; another time or other lines under the same id is
    # told apart from a resend (which may list its lines in another order).
    s = new_store_id()
    stock_store.apply(s, with_store([ev("e1", 1, ("A", -2), ("B", -1))], s))
    again = stock_store.apply(s, with_store([ev("e1", 1, ("B", -1), ("A", -2)), ev("e2", 2, ("A", -1))], s))
    assert again.duplicates == ["e1"] and again.applied == ["e2"] and not again.conflicting
    other = stock_store.apply(s, with_store([ev("e1", 1, ("A", -5)), ev("e2", 3, ("A", -1)), ev("e3", 4, ("C", 1))], s))
    assert sorted(other.conflicting) == [(s, "e1"), (s, "e2")] and other.applied == ["e3"] and not other.duplicates
    assert counts(stock_store, s) == {"A": -3, "B": -1, "C": 1}


def test_dump_then_events_before_and_after_the_snapshot(stock_store: StockStore) -> None:
    s = new_store_id()
    assert stock_store.rebase(dump(s, "d1", 0, A=10, B=3)).status == "rebased"
    r = stock_store.apply(s, with_store([ev("old", -5, ("A", -4)), ev("at", 0, ("A", -4)),
                                         ev("new", 5, ("A", -1), ("C", 2))], s))
    assert sorted(r.before_baseline) == ["at", "old"] and r.applied == ["new"]
    assert counts(stock_store, s) == {"A": 9, "B": 3, "C": 2}
    doc = stock_store.stock(s, "A")[0]
    assert (doc.baseline_on_hand, doc.events_delta, doc.on_hand, doc.baseline_dump_id) == (10, -1, 9, "d1")


def test_events_applied_before_a_later_dump_lands(stock_store: StockStore) -> None:
    """The dump's count includes the events before its snapshot; the ones after still count."""
    s = new_store_id()
    stock_store.rebase(dump(s, "d1", 0, A=10))
    stock_store.apply(s, with_store([ev("e1", 10, ("A", -1)), ev("e2", 20, ("A", -2)), ev("e3", 40, ("A", -3))], s))
    assert counts(stock_store, s) == {"A": 4}
    r = stock_store.rebase(dump(s, "d2", 30, A=7))  # counted A=7 at +30 min: e1, e2 are in it, e3 is not
    assert (r.status, r.events_after) == ("rebased", 1)
    assert counts(stock_store, s) == {"A": 4}
    assert stock_store.baseline(s).dump_id == "d2"


def test_a_late_older_dump_changes_nothing(stock_store: StockStore) -> None:
    s = new_store_id()
    stock_store.rebase(dump(s, "d2", 60, A=5))
    stock_store.apply(s, with_store([ev("e1", 70, ("A", -1))], s))
    assert stock_store.rebase(dump(s, "d1", 0, A=100, B=1)).status == "older"
    assert stock_store.rebase(dump(s, "d2", 60, A=5)).status == "current"
    assert counts(stock_store, s) == {"A": 4}


def test_rebase_covers_skus_missing_from_the_dump(stock_store: StockStore) -> None:
    s = new_store_id()
    stock_store.apply(s, with_store([ev("e1", 10, ("GONE", -1)), ev("e2", 50, ("NEW", 3))], s))
    stock_store.rebase(dump(s, "d1", 30, A=1))
    assert same(counts(stock_store, s), {"A": 1, "NEW": 3})


def test_tie_on_snapshot_time_is_broken_by_dump_id(stock_store: StockStore) -> None:
    s = new_store_id()
    stock_store.rebase(dump(s, "b", 0, A=2))
    assert stock_store.rebase(dump(s, "a", 0, A=1)).status == "older"
    assert counts(stock_store, s) == {"A": 2}


def test_apply_batch_spans_stores_like_separate_applies(stock_store: StockStore) -> None:
    a, b = new_store_id(), new_store_id()
    stock_store.rebase(dump(b, "d1", 30, A=10))
    ea = with_store([ev("e1", 1, ("A", -1)), ev("e2", 2, ("B", 2))], a)
    eb = with_store([ev("e1", 10, ("A", -1)), ev("e2", 40, ("A", -2))], b)  # same ids, another store
    r = stock_store.apply_batch({a: ea, b: eb})
    assert (len(r.applied), len(r.before_baseline), len(r.duplicates)) == (3, 1, 0)
    assert counts(stock_store, a) == {"A": -1, "B": 2} and counts(stock_store, b) == {"A": 8}
    again = stock_store.apply_batch({a: ea, b: eb})
    assert (len(again.applied), len(again.duplicates)) == (0, 3)


def test_concurrent_deliveries_of_the_same_events_count_once(stock_store: StockStore) -> None:
    s = new_store_id()
    events = with_store([ev(f"e{i}", i, (f"K{i % 7}", -1)) for i in range(60)], s)
    errors: list[BaseException] = []

    def deliver(order: list[SaleEvent]) -> None:
        try:
            for i in range(0, len(order), 10):
                stock_store.apply(s, order[i:i + 10])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(list(events),)),
               threading.Thread(target=deliver, args=(list(reversed(events)),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert counts(stock_store, s) == expected_stock([], events)


# --- Property: any interleaving of dumps and deliveries ends at the invariant -------------------------

SKUS = ("A", "B", "C")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Baseline], list[SaleEvent], list[tuple[str, list[int]]]]:
    n_events = draw(st.integers(1, 12))
    events = []
    for i in range(n_events):
        lines = draw(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(-5, 5).filter(bool)), min_size=1,
                              max_size=3))
        events.append(ev(f"e{i}", draw(st.integers(0, 8)) * 10, *lines))
    dumps = [dump("S", f"d{j}", draw(st.integers(0, 8)) * 10 + draw(st.sampled_from([0, 5])),
                  **{k: draw(st.integers(0, 20)) for k in draw(st.sets(st.sampled_from(SKUS)))})
             for j in range(draw(st.integers(0, 3)))]
    # A delivery plan: every event delivered at least once, some again (redelivered batches), in any order.
    deliveries = [("events", draw(st.permutations(range(n_events))))]
    for _ in range(draw(st.integers(0, 3))):
        deliveries.append(("events", draw(st.lists(st.integers(0, n_events - 1), min_size=1, max_size=5))))
    deliveries += [("dump", [j]) for j in range(len(dumps))]
    order = draw(st.permutations(deliveries))
    # Split the first full delivery into random batches so dumps can land between them.
    plan: list[tuple[str, list[int]]] = []
    for kind, idx in order:
        if kind == "events":
            cut = draw(st.integers(1, max(1, len(idx))))
            plan += [("events", list(idx[:cut])), ("events", list(idx[cut:]))]
        else:
            plan.append((kind, list(idx)))
    return dumps, events, draw(st.permutations(plan))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_any_interleaving_ends_at_the_invariant(stock_store: StockStore,
                                                history: tuple[list[Baseline], list[SaleEvent], list]) -> None:
    dumps, events, plan = history
    s = new_store_id()
    dumps = [Baseline(s, d.dump_id, d.snapshot_at, d.on_hand) for d in dumps]
    events = with_store(events, s)
    for kind, idx in plan:
        if kind == "dump":
            stock_store.rebase(dumps[idx[0]])
        elif idx:
            batch = list({events[i].event_id: events[i] for i in idx}.values())  # callers dedupe a batch
            stock_store.apply(s, batch)
    assert same(counts(stock_store, s), expected_stock(dumps, events))


# --- changes: a reader that keeps its own view pays only for what changed -----------------------------------

def follow(stock_store: StockStore, store_id: str, cursor: str, view: dict[str, int]) -> str:
    """Read the changes after ``cursor`` into ``view`` (the store's counts), return the next cursor."""
    found = stock_store.changes(cursor)
    assert found is not None
    keys = [(d.store_id, d.sku) for d in found.docs]
    assert keys == sorted(keys)
    view.update({d.sku: d.on_hand for d in found.docs if d.store_id == store_id})
    return found.cursor


def test_changes_hold_every_write_after_the_cursor(stock_store: StockStore) -> None:
    s = new_store_id()
    stock_store.apply(s, with_store([ev("e1", 1, ("A", -2))], s))
    cursor = stock_store.cursor()
    view = counts(stock_store, s)
    stock_store.apply(s, with_store([ev("e2", 2, ("A", -1), ("B", -4))], s))
    cursor = follow(stock_store, s, cursor, view)
    assert view == counts(stock_store, s) == {"A": -3, "B": -4}
    stock_store.rebase(dump(s, "d1", 1.5, A=10, C=7))  # every document rewritten: dump + events after it
    cursor = follow(stock_store, s, cursor, view)
    assert view == counts(stock_store, s) == {"A": 9, "B": -4, "C": 7}
    stock_store.apply(s, with_store([ev("e2", 2, ("A", -1), ("B", -4))], s))  # a resend changes nothing
    follow(stock_store, s, cursor, view)
    assert view == counts(stock_store, s)


def test_changes_refuse_a_foreign_cursor_and_too_many_documents(stock_store: StockStore) -> None:
    s = new_store_id()
    cursor = stock_store.cursor()
    stock_store.apply(s, with_store([ev("e1", 1, ("A", -2), ("B", 1), ("C", 3))], s))
    assert stock_store.changes("not a cursor") is None
    assert stock_store.changes(cursor, max_docs=2) is None  # the caller reads what it needs whole instead
    found = stock_store.changes(cursor, max_docs=1000)
    assert found is not None and {d.sku for d in found.docs if d.store_id == s} == {"A", "B", "C"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_a_view_kept_from_changes_stays_equal_to_the_stock(stock_store: StockStore,
                                                          history: tuple[list[Baseline], list[SaleEvent], list],
                                                          ) -> None:
    dumps, events, plan = history
    s = new_store_id()
    dumps = [Baseline(s, d.dump_id, d.snapshot_at, d.on_hand) for d in dumps]
    events = with_store(events, s)
    view: dict[str, int] = {}
    cursor = stock_store.cursor()
    for kind, idx in plan:
        if kind == "dump":
            stock_store.rebase(dumps[idx[0]])
        elif idx:
            stock_store.apply(s, list({events[i].event_id: events[i] for i in idx}.values()))
        cursor = follow(stock_store, s, cursor, view)
        assert view == counts(stock_store, s)
    assert same(view, expected_stock(dumps, events))
