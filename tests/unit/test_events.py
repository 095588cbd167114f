"""The event contract (docs/stock-and-events.md): what is accepted, what is set aside and why, and the delta math."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.events import (
    EVENT_REASONS,
    MAX_LINES,
    InvalidEvent,
    SaleEvent,
    coalesce,
    counts_after,
    dedupe,
    event_json,
    normalise_sku,
    parse_event,
    time_key,
)
from shared.core.stock import Baseline, expected_stock

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def body(**overrides: object) -> bytes:
    doc = {"eventId": "pos7-20261127-000123", "storeId": "S001", "type": "sale",
           "occurredAt": "2026-11-27T10:15:03+01:00", "lines": [{"sku": "A-100", "qty": 2, "unitPrice": 3.49}]}
    for k, v in overrides.items():
        if v is ...:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


def reason(raw: bytes | str) -> str | None:
    parsed = parse_event(raw, now=NOW)
    return parsed.reason if isinstance(parsed, InvalidEvent) else None


def test_the_documented_example_is_valid() -> None:
    e = parse_event(body(), now=NOW)
    assert isinstance(e, SaleEvent)
    assert (e.event_id, e.store_id, e.type, e.deltas) == ("pos7-20261127-000123", "S001", "sale", (("A-100", -2),))
    assert e.occurred_at == datetime(2026, 11, 27, 9, 15, 3, tzinfo=UTC)
    assert e.occurred_key == "2026-11-27T09:15:03.000000Z"


@pytest.mark.parametrize(("kind", "qty", "delta"), [("sale", 2, -2), ("return", 2, 2), ("receipt", 24, 24),
                                                      ("adjustment", -3, -3), ("adjustment", 5, 5)])
def test_signs_by_type(kind: str, qty: int, delta: int) -> None:
    e = parse_event(body(type=kind, lines=[{"sku": "x", "qty": qty}]), now=NOW)
    assert e.deltas == (("X", delta),)


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "bad_json"),
    (b"\xff\xfe{}", "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b"null", "bad_json"),
    (body(eventId=...), "missing_field"),
    (body(storeId=None), "missing_field"),
    (body(lines=...), "missing_field"),
    (body(eventId=""), "bad_event_id"),
    (body(eventId="has space"), "bad_event_id"),
    (body(eventId=42), "bad_event_id"),
    (body(eventId="x" * 129), "bad_event_id"),
    (body(storeId="../etc"), "bad_store_id"),
    (body(storeId="S 1"), "bad_store_id"),
    (body(type="refund"), "unknown_type"),
    (body(type=1), "unknown_type"),
    (body(occurredAt="2026-11-27T10:15:03"), "bad_timestamp"),  # naive: which zone? refused
    (body(occurredAt="yesterday"), "bad_timestamp"),
    (body(occurredAt="2026-02-30T10:00:00Z"), "bad_timestamp"),
    (body(occurredAt=1764000000), "bad_timestamp"),
    (body(occurredAt="0001-01-01T00:00:00+01:00"), "bad_timestamp"),  # before year 1 in UTC: no such time
    (body(occurredAt="9999-12-31T23:30:00-01:00"), "bad_timestamp"),  # after year 9999 in UTC
    (body(occurredAt="2026-11-29T12:00:01Z"), "future_timestamp"),
    (body(lines=[]), "no_lines"),
    (body(lines={"sku": "A", "qty": 1}), "no_lines"),
    (body(lines=[{"sku": "A", "qty": 1}] * (MAX_LINES + 1)), "too_many_lines"),
    (body(lines=[{"qty": 1}]), "missing_sku"),
    (body(lines=[{"sku": "  ", "qty": 1}]), "missing_sku"),
    (body(lines=[{"sku": 7, "qty": 1}]), "missing_sku"),
    (body(lines=["A"]), "missing_sku"),
    (body(lines=[{"sku": "A", "qty": 0}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": 1.5}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": 2.0}]), "bad_qty"),  # 2.0 is a float: a POS bug, not an integer
    (body(lines=[{"sku": "A", "qty": "2"}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": True}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": -1}]), "bad_qty"),  # negative sale
    (body(type="adjustment", lines=[{"sku": "A", "qty": 0}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": 10**7}]), "bad_qty"),
    (body(lines=[{"sku": "A", "qty": 1, "unitPrice": -0.01}]), "bad_price"),
    (body(lines=[{"sku": "A", "qty": 1, "unitPrice": "3.49"}]), "bad_price"),
    (body(lines=[{"sku": "A", "qty": 1, "unitPrice": float("nan")}]), "bad_json"),  # NaN is not JSON (RFC 8259)
    (body(lines=[{"sku": "A", "qty": 1, "unitPrice": 1e400}]), "bad_json"),  # Infinity: not JSON either
    (b" " * 70_000, "too_large"),
])
def test_invalid_events_get_their_reason(raw: bytes, code: str) -> None:
    assert reason(raw) == code


def test_every_reason_code_is_reachable_by_the_table_above() -> None:
    import inspect

    source = inspect.getsource(test_invalid_events_get_their_reason)
    validation = {r.code for r in EVENT_REASONS} - {"conflicting_duplicate"}  # the apply's (test_apply_sales)
    assert validation <= {c for c in validation if f'"{c}"' in source}


def test_invalid_events_keep_the_raw_body_and_store() -> None:
    raw = body(lines=[{"sku": "A", "qty": 0}])
    bad = parse_event(raw, source="eventhub:seq=7", now=NOW)
    assert (bad.body, bad.source, bad.store_id) == (raw, "eventhub:seq=7", "S001")


def test_unknown_reason_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown event reason"):
        InvalidEvent("nope", "", b"")


@given(st.binary(max_size=300))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(parse_event(raw, now=NOW), SaleEvent | InvalidEvent)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["eventId", "storeId", "type", "occurredAt", "lines", "x"]), json_values))
def test_parse_never_raises_on_arbitrary_json(doc: dict) -> None:
    assert isinstance(parse_event(json.dumps(doc), now=NOW), SaleEvent | InvalidEvent)


@given(st.text(alphabet=st.sampled_from("ab-1 \t\n"), min_size=1, max_size=12).filter(str.strip))
def test_sku_normalisation_is_idempotent_and_matches_the_dump_rule(raw: str) -> None:
    once = normalise_sku(raw)
    assert normalise_sku(once) == once
    assert once == once.strip().upper() and "  " not in once


def dump_rule_sku(raw: str) -> str | None:
    """What ingestion makes of ``raw`` in a dump's sku column (``prepare_batch``: trim, blank -> NULL, the
    sku rule), as the reconciliation compares it with an event's sku."""
    import pyarrow as pa

    from shared.core.arrow_values import string_array
    from shared.core.rules import prepare_batch
    from shared.core.schema import TABLES

    batch = pa.RecordBatch.from_arrays([string_array([raw])], names=["sku"])
    return prepare_batch(batch, TABLES["sales"], 1).column("sku")[0].as_py()


TRICKY = " \t\n\v\f\r\xa0\u2003\u3000\x1c\x85ßﬁŉǰΐᾳİıﬀ-ab1"


@given(st.text(alphabet=st.sampled_from(TRICKY) | st.characters(exclude_categories=("Cs",)), max_size=10))
def test_an_event_sku_is_normalised_exactly_as_a_dump_sku(raw: str) -> None:
    # Events and dumps must name the same stock document; Python's own strip()/upper() differ from the dump
    # rule on Unicode spaces (NBSP is not trimmed there) and on ß, ligatures and other one-to-many cases.
    assert (normalise_sku(raw) or None) == dump_rule_sku(raw)


@pytest.mark.parametrize(("raw", "expected"), [
    ("\xa0a-1\xa0", "\xa0A-1\xa0"),  # NBSP is no dump whitespace: kept, as the dump keeps it
    ("straße 1", "STRAẞE 1"),  # one character for one, as Arrow's utf8_upper (str.upper() gives STRASSE)
    ("  k \t\n 9 ", "K 9"),
])
def test_sku_normalisation_examples(raw: str, expected: str) -> None:
    assert normalise_sku(raw) == expected == dump_rule_sku(raw)


events_strategy = st.lists(st.builds(
    SaleEvent,
    event_id=st.sampled_from([f"e{i}" for i in range(8)]),
    store_id=st.just("S"),
    type=st.just("adjustment"),
    occurred_at=st.integers(0, 100).map(lambda m: NOW + timedelta(minutes=m)),
    deltas=st.lists(st.tuples(st.sampled_from("ABC"), st.integers(-9, 9).filter(bool)), min_size=1,
                    max_size=4).map(tuple),
), max_size=20)


@given(events_strategy)
def test_coalesce_equals_the_per_line_sum(events: list[SaleEvent]) -> None:
    total: dict[str, int] = {}
    for e in events:
        for sku, d in e.deltas:
            total[sku] = total.get(sku, 0) + d
    assert coalesce(events) == total


@given(events_strategy)
def test_dedupe_keeps_first_delivery_and_loses_nothing(events: list[SaleEvent]) -> None:
    first, repeats = dedupe(events)
    assert len(first) + len(repeats) == len(events)
    assert len({e.event_id for e in first}) == len(first)
    assert {e.event_id for e in first} == {e.event_id for e in events}


@given(events_strategy, st.integers(0, 100))
def test_counts_after_is_strictly_after(events: list[SaleEvent], cut: int) -> None:
    key = time_key(NOW + timedelta(minutes=cut))
    kept = counts_after(key, events)
    assert all(e.occurred_at > NOW + timedelta(minutes=cut) for e in kept)
    assert len(kept) == sum(e.occurred_at > NOW + timedelta(minutes=cut) for e in events)
    assert counts_after(None, events) == events


@given(events_strategy, st.permutations(range(20)))
def test_reference_invariant_does_not_depend_on_delivery_order(events: list[SaleEvent], perm: list[int]) -> None:
    # With one content per event id (as senders promise), order cannot matter.
    by_id = {e.event_id: e for e in events}
    events = [by_id[e.event_id] for e in events]
    shuffled = [events[i] for i in perm if i < len(events)]
    dumps = [Baseline("S", "d1", NOW + timedelta(minutes=30), {"A": 5}),
             Baseline("S", "d0", NOW + timedelta(minutes=10), {"A": 50, "B": 1})]
    assert expected_stock(dumps, events) == expected_stock(list(reversed(dumps)), shuffled)


def test_time_key_sorts_like_time() -> None:
    a = datetime(2026, 11, 27, 9, 59, 59, 999999, tzinfo=UTC)
    b = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert time_key(a) < time_key(b)
    with pytest.raises(ValueError):
        time_key(datetime(2026, 1, 1))


def test_event_json_round_trips() -> None:
    e = parse_event(body(type="return"), now=NOW)
    again = parse_event(json.dumps(event_json(e)), now=NOW)
    assert again == e
