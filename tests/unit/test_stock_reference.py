"""The reference stock function (shared/core/stock.py, docs/stock-and-events.md) held to hand-computed answers, then to
laws checked against a naive model that works on datetimes instead of time keys (hypothesis).

The adapters are compared with ``expected_stock`` by the integration tests, so a wrong reference would make
a wrong adapter pass: these tests are what says the reference itself is right."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.events import SaleEvent, time_key
from shared.core.stock import Baseline, expected_stock, expected_stock_by_store, latest

T = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # the snapshot time of the dumps below
LISBON_WINTER = timezone(timedelta(hours=0))
PLUS_ONE = timezone(timedelta(hours=1))
US_EAST = timezone(timedelta(hours=-5))
US = timedelta(microseconds=1)


def ev(event_id: str, at: datetime | float, *lines: tuple[str, int], store: str = "S") -> SaleEvent:
    """An adjustment (signed deltas as given) at ``at``, or ``at`` minutes after T."""
    when = at if isinstance(at, datetime) else T + timedelta(minutes=at)
    return SaleEvent(event_id, store, "adjustment", when, tuple(lines))


def dump(dump_id: str, at: datetime | float, store: str = "S", **on_hand: int) -> Baseline:
    when = at if isinstance(at, datetime) else T + timedelta(minutes=at)
    return Baseline(store, dump_id, when, dict(on_hand))


# --- no dump yet: every distinct event ---------------------------------------------------------------------


def test_nothing_at_all_is_no_stock() -> None:
    assert expected_stock([], []) == {}
    assert latest([]) is None


def test_without_a_dump_every_event_counts_from_zero() -> None:
    events = [ev("e1", -600, ("A", -2)), ev("e2", 0, ("A", 5), ("B", -1)), ev("e3", 600, ("B", -3), ("A", -1))]
    assert expected_stock([], events) == {"A": 2, "B": -4}  # A: -2 + 5 - 1, B: -1 - 3 (negative: oversold)


def test_a_line_naming_a_sku_twice_adds_both() -> None:
    assert expected_stock([], [ev("e1", 0, ("A", -2), ("A", -3), ("B", 1))]) == {"A": -5, "B": 1}


def test_an_event_id_counts_once_the_first_delivery_wins() -> None:
    first = ev("e1", 5, ("A", -2))
    resend = ev("e1", 5, ("A", -2))
    conflicting = ev("e1", 50, ("A", -7), ("B", 1))  # a sender reusing the id: set aside, not counted
    after = ev("e2", 60, ("A", -1))
    assert expected_stock([], [first, resend, after, conflicting]) == {"A": -3}
    # A repeat does not stop the count: the events after it still add (once each).
    assert expected_stock([], [first, first, first, after, after]) == {"A": -3}
    assert expected_stock([], [conflicting, first, after]) == {"A": -8, "B": 1}


def test_cancelling_events_leave_the_sku_at_zero_not_absent() -> None:
    assert expected_stock([], [ev("e1", 1, ("NEW", 4)), ev("e2", 2, ("NEW", -4))]) == {"NEW": 0}


# --- one dump: its counts plus the events strictly after its snapshot ------------------------------------------


def test_the_dump_counts_plus_the_events_after_it() -> None:
    d = dump("d1", 0, A=10, B=3, C=0)
    events = [ev("e1", -30, ("A", -4)),  # before the snapshot: already in the dump's count
              ev("e2", 10, ("A", -3), ("B", -5)),  # after: B goes negative
              ev("e3", 20, ("NEW", 2)),  # a sku the dump does not list: from zero
              ev("e4", -10, ("GONE", 9))]  # before, and a sku the dump does not list: not named at all
    assert expected_stock([d], events) == {"A": 7, "B": -2, "C": 0, "NEW": 2}


def test_an_event_at_the_snapshot_instant_is_in_the_dump_one_microsecond_later_is_not() -> None:
    d = dump("d1", 0, A=10)
    assert expected_stock([d], [ev("at", T, ("A", -1))]) == {"A": 10}
    assert expected_stock([d], [ev("before", T - US, ("A", -1))]) == {"A": 10}
    assert expected_stock([d], [ev("after", T + US, ("A", -1))]) == {"A": 9}


def test_the_time_comparison_is_of_instants_not_of_local_clock_text() -> None:
    d = dump("d1", T.astimezone(PLUS_ONE), A=10)  # 2026-11-27T00:00+01:00 == T
    at = ev("at", T.astimezone(US_EAST), ("A", -1))  # 18:00-05:00, the same instant: in the dump
    later = ev("later", (T + timedelta(minutes=1)).astimezone(US_EAST), ("A", -2))  # text sorts earlier
    earlier = ev("earlier", (T - timedelta(minutes=1)).astimezone(PLUS_ONE), ("A", -4))  # text sorts later
    assert expected_stock([d], [at, later, earlier]) == {"A": 8}


def test_events_before_the_dump_are_skipped_not_a_stop() -> None:
    d = dump("d1", 0, A=10)
    events = [ev("b1", -5, ("A", -1)), ev("a1", 5, ("A", -2)), ev("b2", -1, ("A", -4)), ev("a2", 6, ("A", -3))]
    assert expected_stock([d], events) == {"A": 5}


def test_a_dump_with_no_counts_still_cuts_the_events_before_it() -> None:
    assert expected_stock([dump("d1", 0)], [ev("e1", -1, ("A", -1)), ev("e2", 1, ("B", 2))]) == {"B": 2}


def test_the_result_is_a_new_dict_the_dump_is_not_changed() -> None:
    counts = {"A": 10}
    d = Baseline("S", "d1", T, counts)
    out = expected_stock([d], [ev("e1", 1, ("A", -1))])
    assert out == {"A": 9} and counts == {"A": 10}
    out["A"] = 0
    assert expected_stock([d], []) == {"A": 10}


def test_an_event_before_the_dump_still_uses_up_its_id() -> None:
    """The first delivery of an id decides; a later delivery with the same id (another time: a sender
    reusing ids) is set aside even though the first one fell inside the dump's count."""
    d = dump("d1", 0, A=10)
    assert expected_stock([d], [ev("e1", -5, ("A", -1)), ev("e1", 5, ("A", -3))]) == {"A": 10}


# --- several dumps: the latest wins, then the greater dump id ---------------------------------------------


def test_the_latest_dump_is_the_baseline_whatever_the_order() -> None:
    old, new = dump("d-old", -60, A=50, B=1), dump("d-new", 0, A=10)
    events = [ev("e1", -30, ("A", -5)), ev("e2", 30, ("A", -1), ("B", -1))]
    want = {"A": 9, "B": -1}  # B is not in the latest dump: the old dump's B=1 does not count
    assert expected_stock([old, new], events) == expected_stock([new, old], events) == want
    assert latest([old, new]) is new and latest([new, old]) is new


def test_a_later_snapshot_wins_over_a_greater_dump_id() -> None:
    early, later = dump("ffff", 0, A=1), dump("0000", T + US, A=2)  # 1 µs later
    assert latest([early, later]) is later and latest([later, early]) is later
    assert expected_stock([early, later], []) == {"A": 2}


@pytest.mark.parametrize("order", [0, 1])
def test_a_tie_on_the_snapshot_goes_to_the_greater_dump_id(order: int) -> None:
    """Two dumps of one store with the same snapshot_at (an agent resending a re-exported file, a clock with
    second resolution): both stock stores keep the dump whose (snapshot time key, dump id) is greatest
    (``rebase`` returns "older" for the other, in either arrival order), so the reference does too."""
    a = dump("0a1b2c3d4e5f6a7b8c9d0e1f", 0, A=7, B=1)
    b = dump("f0e1d2c3b4a5968778695a4b", T.astimezone(PLUS_ONE), A=3)  # the same instant, another offset
    dumps = [a, b] if order == 0 else [b, a]
    assert latest(dumps) is b
    events = [ev("e1", 0, ("A", -1)), ev("e2", 1, ("A", -1))]
    assert expected_stock(dumps, events) == {"A": 2}


def test_the_dump_id_tie_break_is_text_order() -> None:
    """Compared as text (code points), as the adapters compare it: "9" < "a", "Z" < "a", and a prefix first."""
    for low, high in [("9", "a"), ("Z", "a"), ("ab", "abc"), ("d10", "d9")]:
        assert latest([dump(low, 0, A=1), dump(high, 0, A=2)]).dump_id == high
        assert latest([dump(high, 0, A=2), dump(low, 0, A=1)]).dump_id == high


def test_the_baseline_key_is_the_utc_time_key_then_the_dump_id() -> None:
    d = dump("d1", T.astimezone(US_EAST))
    assert d.key == ("2026-11-26T23:00:00.000000Z", "d1") == (time_key(T), "d1")


def test_a_dump_is_a_baseline_even_if_it_is_the_only_one() -> None:
    d = dump("d1", 0, A=4)
    assert latest([d]) is d
    assert latest(iter([d])) is d  # any iterable, read once


def test_the_same_dump_twice_is_one_baseline() -> None:
    d = dump("d1", 0, A=4)
    assert expected_stock([d, d], [ev("e1", 1, ("A", -1))]) == {"A": 3}


def test_iterators_are_read_once() -> None:
    dumps = [dump("d0", -10, A=1), dump("d1", 0, A=4)]
    events = [ev("e1", 1, ("A", -1)), ev("e2", -1, ("A", -100))]
    assert expected_stock(iter(dumps), iter(events)) == {"A": 3}
    assert expected_stock((d for d in dumps), (e for e in events)) == {"A": 3}


# --- several stores -----------------------------------------------------------------------------------------


def test_one_store_at_a_time_mixing_stores_is_refused() -> None:
    """Before: another store's dump could become this store's baseline and another store's events (whose ids
    are only unique per store) were added to it, silently."""
    with pytest.raises(ValueError, match=r"^expected_stock is for one store, got S1, S2$"):
        expected_stock([dump("d1", 0, store="S2", A=1), dump("d2", 10, store="S1", A=5)], [])
    with pytest.raises(ValueError, match=r"got S1, S2$"):
        expected_stock([dump("d1", 0, store="S1", A=1)], [ev("e1", 1, ("A", -1), store="S2")])
    with pytest.raises(ValueError, match=r"got S1, S2$"):
        expected_stock([], [ev("e1", 1, ("A", -1), store="S2"), ev("e1", 1, ("A", -1), store="S1")])
    assert expected_stock([dump("d1", 0, store="S1", A=1)], [ev("e1", 1, ("A", -1), store="S1")]) == {"A": 0}


def test_by_store_each_store_on_its_own_dump_and_its_own_events() -> None:
    dumps = [dump("d-late", 60, store="S1", A=10), dump("d-early", 0, store="S2", A=20, B=2),
             dump("d-old", -60, store="S2", A=99)]
    events = [ev("e1", 30, ("A", -1), store="S1"),  # before S1's dump
              ev("e1", 30, ("A", -2), store="S2"),  # the same id in another store: its own event, counted
              ev("e2", 90, ("A", -3), ("C", 1), store="S1"),
              ev("e2", 90, ("A", -3), ("C", 1), store="S1"),  # a resend
              ev("e9", -90, ("B", -1), store="S3")]  # a store with events and no dump
    want = {"S1": {"A": 7, "C": 1}, "S2": {"A": 18, "B": 2}, "S3": {"B": -1}}
    got = expected_stock_by_store(dumps, events)
    assert got == want and list(got) == ["S1", "S2", "S3"]
    assert got == expected_stock_by_store(reversed(dumps), reversed(events))
    for store, counts in want.items():
        mine = [d for d in dumps if d.store_id == store]
        assert expected_stock(mine, [e for e in events if e.store_id == store]) == counts


def test_by_store_with_dumps_only_or_nothing() -> None:
    assert expected_stock_by_store([], []) == {}
    assert expected_stock_by_store(iter([dump("d1", 0, store="S1", A=2)]), iter([])) == {"S1": {"A": 2}}
    assert expected_stock_by_store([], iter([ev("e1", 1, ("A", -1), store="S1")])) == {"S1": {"A": -1}}


# --- laws, against a naive model ----------------------------------------------------------------------------

STORES = ("S1", "S2")
SKUS = ("A", "B", "C")
OFFSETS = st.sampled_from([UTC, PLUS_ONE, US_EAST, LISBON_WINTER])
# Times on a coarse grid (10-minute steps, some 1 µs off it), so events land before, at and after dumps.
instants = st.builds(lambda m, nudge, tz: (T + timedelta(minutes=10 * m) + nudge * US).astimezone(tz),
                     st.integers(-3, 3), st.sampled_from([0, 0, 0, -1, 1]), OFFSETS)
events_st = st.lists(st.builds(
    SaleEvent,
    event_id=st.sampled_from([f"e{i}" for i in range(6)]),
    store_id=st.sampled_from(STORES),
    type=st.just("adjustment"),
    occurred_at=instants,
    deltas=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(-9, 9).filter(bool)), min_size=1,
                    max_size=3).map(tuple),
), max_size=12)
dumps_st = st.lists(st.builds(
    Baseline,
    store_id=st.sampled_from(STORES),
    dump_id=st.sampled_from(["d0", "d1", "d2", "D9", "d10"]),
    snapshot_at=instants,
    on_hand=st.dictionaries(st.sampled_from(SKUS), st.integers(-3, 30), max_size=3),
), max_size=4, unique_by=lambda d: (d.store_id, d.dump_id))  # a dump id names one file (its content hash)


def model(dumps: list[Baseline], events: list[SaleEvent], store: str) -> dict[str, int]:
    """The stock invariant spelled out on datetimes, one store: the baseline is the dump with the greatest (instant,
    dump id) by sorting; each event id's first delivery counts if it happened strictly after that instant."""
    mine = sorted((d for d in dumps if d.store_id == store), key=lambda d: (d.snapshot_at, d.dump_id))
    out = dict(mine[-1].on_hand) if mine else {}
    firsts: dict[str, SaleEvent] = {}
    for e in events:
        if e.store_id == store:
            firsts.setdefault(e.event_id, e)
    for e in firsts.values():
        if not mine or e.occurred_at > mine[-1].snapshot_at:
            for sku, delta in e.deltas:
                out[sku] = out.get(sku, 0) + delta
    return out


def one_content_per_id(events: list[SaleEvent]) -> list[SaleEvent]:
    """What senders promise: a resend of an id carries the same time and lines."""
    first: dict[tuple[str, str], SaleEvent] = {}
    for e in events:
        first.setdefault((e.store_id, e.event_id), e)
    return [first[(e.store_id, e.event_id)] for e in events]


@given(dumps_st, events_st)
def test_the_reference_equals_the_model(dumps: list[Baseline], events: list[SaleEvent]) -> None:
    by_store = expected_stock_by_store(dumps, events)
    stores = {d.store_id for d in dumps} | {e.store_id for e in events}
    assert set(by_store) == stores
    for store in STORES:
        if store in stores:
            mine = [e for e in events if e.store_id == store]
            want = model(dumps, events, store)
            assert by_store[store] == want
            assert expected_stock([d for d in dumps if d.store_id == store], mine) == want


@given(dumps_st, events_st, st.randoms(use_true_random=False), st.integers(0, 3))
def test_order_and_repeats_do_not_matter(dumps: list[Baseline], events: list[SaleEvent], rnd: random.Random,
                                         repeats: int) -> None:
    events = one_content_per_id(events)
    shuffled_events = events + [rnd.choice(events) for _ in range(repeats if events else 0)]
    rnd.shuffle(shuffled_events)
    shuffled_dumps = list(dumps)
    rnd.shuffle(shuffled_dumps)
    assert expected_stock_by_store(shuffled_dumps, shuffled_events) == expected_stock_by_store(dumps, events)


@given(dumps_st.filter(bool), events_st)
def test_a_dump_after_every_event_is_the_whole_answer(dumps: list[Baseline], events: list[SaleEvent]) -> None:
    """A new dump later than everything absorbs every event: the store's stock is what it counted."""
    store = dumps[0].store_id
    final = Baseline(store, "d-final", T + timedelta(hours=1), {"A": 4})
    mine = [e for e in events if e.store_id == store]
    assert expected_stock([*[d for d in dumps if d.store_id == store], final], mine) == {"A": 4}


@given(dumps_st, events_st, events_st)
def test_events_after_the_baseline_add_up(dumps: list[Baseline], first: list[SaleEvent],
                                          more: list[SaleEvent]) -> None:
    """Stock minus the baseline's count is additive over batches of events with distinct ids."""
    store = "S1"
    base = [d for d in dumps if d.store_id == store]
    first = [e for e in first if e.store_id == store]
    more = [SaleEvent("m" + e.event_id, store, e.type, e.occurred_at, e.deltas) for e in more]
    counted = latest(base).on_hand if base else {}

    def delta(events: list[SaleEvent]) -> dict[str, int]:
        got = expected_stock(base, events)
        return {k: v - counted.get(k, 0) for k, v in got.items()}

    both, a, b = delta(first + more), delta(first), delta(more)
    for sku in set(both) | set(a) | set(b):
        assert both.get(sku, 0) == a.get(sku, 0) + b.get(sku, 0)


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(["d0", "d1", "d2", "D9", "d10"]), st.integers(0, 2), OFFSETS),
                min_size=1, max_size=4, unique_by=lambda t: t[0]))
def test_the_embedded_stock_store_keeps_the_same_baseline(dumps: list[tuple[str, int, timezone]]) -> None:
    """The product's choice, rebased in any order: the store ends on the dump ``latest`` picks."""
    from shared.adapters.stock_sqlite import SqliteStockStore

    baselines = [Baseline("S", dump_id, (T + timedelta(minutes=m)).astimezone(tz), {"A": i})
                 for i, (dump_id, m, tz) in enumerate(dumps)]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStockStore(Path(tmp) / "stock.sqlite")
        try:
            for b in baselines:
                store.rebase(b)
            chosen = store.baseline("S")
            assert (chosen.snapshot_at, chosen.dump_id) == latest(baselines).key
            assert {d.sku: d.on_hand for d in store.stock("S")} == expected_stock(baselines, [])
        finally:
            store.close()
