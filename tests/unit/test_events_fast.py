"""The fast path of ``parse_event`` (a typed msgspec decode) against the full check: same result, always.

``parse_event`` tries :func:`shared.core.events._fast` first and falls back to the full check. The fast path
may only ever return an event the full check would also return, equal field by field; everything else must
fall through (so the reason codes come from one place). These tests compare the two on generated bodies
close to the contract (where a divergence would hide) and on bodies built to trip the known differences
between msgspec and orjson (unknown fields, invalid UTF-8, out-of-range numbers, duplicate keys).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.core.events import SaleEvent, _fast, _parse_full, parse_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def full(raw: bytes) -> object:
    return _parse_full(raw, "", NOW)


def assert_same(raw: bytes) -> None:
    """The fast path either declines or agrees with the full check; parse_event equals the full check."""
    fast = _fast(raw, NOW)
    slow = full(raw)
    if fast is not None:
        assert isinstance(slow, SaleEvent), (raw, slow)
        assert (fast.event_id, fast.store_id, fast.type, fast.occurred_at, fast.deltas, fast.occurred_key) == (
            slow.event_id, slow.store_id, slow.type, slow.occurred_at, slow.deltas, slow.occurred_key)
    assert parse_event(raw, now=NOW) == slow


def doc(**overrides: object) -> dict:
    d: dict = {"eventId": "pos7-20261127-000123", "storeId": "S001", "type": "sale",
               "occurredAt": "2026-11-27T10:15:03+01:00", "lines": [{"sku": "A-100", "qty": 2, "unitPrice": 3.49}]}
    d.update(overrides)
    return d


def test_a_contract_event_takes_the_fast_path() -> None:
    raw = json.dumps(doc()).encode()
    assert isinstance(_fast(raw, NOW), SaleEvent)  # else the fast path is dead code and the others prove nothing
    assert_same(raw)


@pytest.mark.parametrize("raw", [
    json.dumps(doc(extra=1)).encode(),  # unknown field: full check only
    json.dumps(doc(lines=[{"sku": "a", "qty": 1, "note": "x"}])).encode(),
    b'{"x":"\xff",' + json.dumps(doc()).encode()[1:],  # invalid UTF-8 in a field nobody reads: bad_json
    b'{"x":1e400,' + json.dumps(doc()).encode()[1:],  # infinity in a field nobody reads: bad_json
    b'{"x":"\xed\xa0\x80",' + json.dumps(doc()).encode()[1:],  # an encoded surrogate
    json.dumps(doc(eventId="a\n")).encode(),  # "$" would match before a final newline; \\Z does not
    json.dumps(doc(storeId="S1\n")).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": True}])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 1.0}])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 10 ** 30}])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 1, "unitPrice": True}])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 1, "unitPrice": -0.0}])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 1, "unitPrice": None}])).encode(),
    b'{"eventId":"e1","eventId":null,' + json.dumps(doc())[1:].replace('"eventId": "pos7-20261127-000123", ',
                                                                       "").encode(),  # duplicate key, last wins
    json.dumps(doc(type="adjustment", lines=[{"sku": "  a  b ", "qty": -3}])).encode(),
    json.dumps(doc(type="sale", lines=[{"sku": "a", "qty": -3}])).encode(),
    json.dumps(doc(lines=[{"sku": "   ", "qty": 1}])).encode(),
    json.dumps(doc(lines=[])).encode(),
    json.dumps(doc(lines=[{"sku": "a", "qty": 1}] * 65)).encode(),
    json.dumps(doc(occurredAt="2026-11-27T10:15:03")).encode(),
    json.dumps(doc(occurredAt="2026-11-29T12:00:01Z")).encode(),  # > 24 h ahead
    json.dumps(doc(occurredAt="2026-11-27T10:15:03.1234567z")).encode(),
])
def test_known_differences_between_the_decoders_fall_through(raw: bytes) -> None:
    assert_same(raw)


_text = st.one_of(st.text(max_size=6), st.sampled_from(["A-100", " a b ", "", "S001", "x\n", "é", "\x00"]))
_number = st.one_of(st.integers(-2_000_000, 2_000_000), st.sampled_from([0, 1, -1, 10 ** 20, 1_000_000, 1_000_001]),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())
_line = st.fixed_dictionaries(
    {"sku": st.one_of(_text, _number)},
    optional={"qty": _number, "unitPrice": st.one_of(_number, _text), "extra": _number})
_times = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2026-11-27T10:15:03+01:00", "2026-11-27T10:15:03.5-05:00", "2026-11-27 10:15:03Z",
                     "2026-11-27T10:15:03", "2026-02-30T10:00:00Z", "20261127T101503Z", "2026-11-28T11:59:59Z",
                     "2026-11-28T12:00:01Z"]),
    _text)
_event = st.fixed_dictionaries(
    {"eventId": st.one_of(st.sampled_from(["pos7-1", "e", "x" * 128, "x" * 129, "a b"]), _text, _number),
     "storeId": st.one_of(st.sampled_from(["S001", "s_1-2", "x" * 65, "../x"]), _text, _number),
     "type": st.one_of(st.sampled_from(["sale", "return", "receipt", "adjustment", "refund"]), _number),
     "occurredAt": st.one_of(_times, _number),
     "lines": st.one_of(st.lists(_line, max_size=4), _number, _text)},
    optional={"extra": _number})


@settings(max_examples=600, deadline=None)
@given(_event, st.sets(st.sampled_from(["eventId", "storeId", "type", "occurredAt", "lines"]), max_size=1))
@example(doc(), set())
def test_fast_and_full_agree_on_generated_events(event: dict, drop: set[str]) -> None:
    for key in drop:
        event.pop(key, None)
    assert_same(json.dumps(event).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 200))
def test_fast_and_full_agree_on_damaged_bodies(noise: bytes, at: int) -> None:
    raw = json.dumps(doc()).encode()
    at = min(at, len(raw))
    assert_same(raw[:at] + noise + raw[at:])
