"""The event contract (docs/stock-and-events.md) pinned at every boundary, so a wrong answer anywhere in
``shared/core/events.py`` fails a fast unit test (docs/testing.md, "Mutation testing").

- every limit at the boundary and one past it, on both paths of ``parse_event`` (the msgspec fast path for
  a contract-shaped body; the full check for the same body with one unknown field, which the fast path
  declines), with the constants imported and their documented values asserted;
- every reason code with what the dead letter records: body, source, store and detail;
- ``event_content`` (the conflicting-duplicate check) directly and after ``dedupe``;
- time handling in zones other than UTC (DST on both hemispheres), since a test machine on UTC cannot tell
  UTC from local time;
- invariants of dedupe, coalesce, counts_after and the event_json round trip (hypothesis).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core import events
from shared.core.events import (
    EVENT_REASONS,
    EVENT_TYPES,
    MAX_ABS_QTY,
    MAX_EVENT_BYTES,
    MAX_EVENT_ID_CHARS,
    MAX_LINES,
    REASON_CODES,
    InvalidEvent,
    SaleEvent,
    _fast,
    _parse_full,
    _parse_time,
    coalesce,
    counts_after,
    dedupe,
    event_content,
    event_json,
    normalise_sku,
    parse_event,
    reasons_markdown,
    time_key,
)
from shared.core.rules import FUTURE_TOLERANCE

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW_KEY = "2026-11-27T12:00:00.000000Z"


def doc(**overrides: object) -> dict:
    d: dict = {"eventId": "pos7-20261127-000123", "storeId": "S001", "type": "sale",
               "occurredAt": "2026-11-27T10:15:03+01:00", "lines": [{"sku": "A-100", "qty": 2, "unitPrice": 3.49}]}
    for k, v in overrides.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def encode(d: dict, path: str) -> bytes:
    """The body for one path: "fast" is the contract shape; "full" adds an unknown field, which the fast path
    declines and the full check ignores."""
    return json.dumps({**d, "x-note": 0} if path == "full" else d).encode()


@pytest.fixture(autouse=True)
def cold_sku_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts with an empty sku cache: a spelling remembered by an earlier test (or by the warm process
    # mutmut forks from) would hide what normalise_sku does.
    monkeypatch.setattr(events, "_SKU_CACHE", {})


# --- the constants, as the contract documents them ---------------------------------------------------------


def test_the_documented_limits() -> None:
    assert MAX_EVENT_BYTES == 64 * 1024 == 65_536  # "larger than 64 KiB"
    assert MAX_LINES == 64  # "1–64 lines"
    assert MAX_ABS_QTY == 1_000_000  # "within ±1,000,000"
    assert MAX_EVENT_ID_CHARS == 128  # "1-128 printable ASCII characters"
    assert FUTURE_TOLERANCE.total_seconds() == 24 * 3600  # "more than 24 h in the future"
    assert EVENT_TYPES == {"sale": -1, "return": 1, "receipt": 1, "adjustment": 1}


README_TABLE = """\
| reason code | the event is dead-lettered when |
|---|---|
| `bad_json` | the body is not UTF-8 JSON, or not a JSON object |
| `too_large` | the event is larger than 64 KiB |
| `missing_field` | eventId, storeId, type, occurredAt or lines is missing or null |
| `bad_event_id` | eventId is not 1-128 printable ASCII characters |
| `bad_store_id` | storeId does not match ^[A-Za-z0-9_-]{1,64}$ |
| `unknown_type` | type is not one of sale, return, receipt, adjustment |
| `bad_timestamp` | occurredAt is not ISO-8601 with a UTC offset (e.g. 2026-11-27T10:15:03+01:00) |
| `future_timestamp` | occurredAt is more than 24 h in the future (sender clock or bug) |
| `no_lines` | lines is not a non-empty list |
| `too_many_lines` | more than 64 lines in one event; split it |
| `missing_sku` | a line has no sku, or a blank one |
| `bad_qty` | a line's qty is not a non-zero integer within ±1,000,000 (sale, return and receipt quantities must \
be positive; adjustments are signed) |
| `bad_price` | a line's unitPrice is present but not a non-negative number |
| `conflicting_duplicate` | the eventId was seen before with another time or other lines: the sender reused \
an id; the first version counts, this one is set aside |"""


def test_reasons_markdown_is_the_documented_table() -> None:
    assert reasons_markdown() == README_TABLE
    assert [r.code for r in EVENT_REASONS] == [line.split("`")[1] for line in README_TABLE.splitlines()[2:]]
    assert frozenset(r.code for r in EVENT_REASONS) == REASON_CODES


def test_every_reason_code_builds_an_invalid_event_and_nothing_else_does() -> None:
    for code in REASON_CODES:
        assert InvalidEvent(code, "d", b"b").reason == code
    for code in ("", "BAD_JSON", "apply_failed", "bad json"):
        with pytest.raises(ValueError, match=f"unknown event reason code {code!r}"):
            InvalidEvent(code, "d", b"b")


# --- limits: the boundary and one past it, on both paths -----------------------------------------------------

LONGEST_TIME = "2026-11-27T10:15:03." + "1" * 14 + "+01:00"  # 40 characters: ISO-8601, any number of digits
TOO_LONG_TIME = "2026-11-27T10:15:03." + "1" * 15 + "+01:00"  # 41: refused before parsing (a size guard)
assert (len(LONGEST_TIME), len(TOO_LONG_TIME)) == (40, 41)


def lines(n: int, qty: int = 1) -> list[dict]:
    return [{"sku": f"k{i}", "qty": qty} for i in range(n)]


OK = "ok"
LIMITS: list[tuple[str, dict, object]] = [
    # (what, overrides, OK or reason code)
    ("lines: the most", {"lines": lines(MAX_LINES)}, OK),
    ("lines: one too many", {"lines": lines(MAX_LINES + 1)}, "too_many_lines"),
    ("lines: one", {"lines": lines(1)}, OK),
    ("lines: none", {"lines": []}, "no_lines"),
    *[(f"{kind} qty {q}", {"type": kind, "lines": [{"sku": "a", "qty": q}]}, want)
      for kind in ("sale", "return", "receipt")
      for q, want in [(1, OK), (MAX_ABS_QTY, OK), (MAX_ABS_QTY + 1, "bad_qty"), (0, "bad_qty"), (-1, "bad_qty"),
                      (-MAX_ABS_QTY, "bad_qty")]],
    *[(f"adjustment qty {q}", {"type": "adjustment", "lines": [{"sku": "a", "qty": q}]}, want)
      for q, want in [(1, OK), (-1, OK), (MAX_ABS_QTY, OK), (-MAX_ABS_QTY, OK), (MAX_ABS_QTY + 1, "bad_qty"),
                      (-MAX_ABS_QTY - 1, "bad_qty"), (0, "bad_qty")]],
    ("qty on the second line", {"lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}]}, "bad_qty"),
    ("eventId: longest", {"eventId": "e" * MAX_EVENT_ID_CHARS}, OK),
    ("eventId: one too long", {"eventId": "e" * (MAX_EVENT_ID_CHARS + 1)}, "bad_event_id"),
    ("eventId: shortest", {"eventId": "e"}, OK),
    ("eventId: empty", {"eventId": ""}, "bad_event_id"),
    ("eventId: lowest printable", {"eventId": "!"}, OK),
    ("eventId: highest printable", {"eventId": "~"}, OK),
    ("eventId: space", {"eventId": "a b"}, "bad_event_id"),
    ("eventId: DEL", {"eventId": "a\x7f"}, "bad_event_id"),
    ("eventId: non-ASCII", {"eventId": "é"}, "bad_event_id"),
    ("eventId: final newline", {"eventId": "a\n"}, "bad_event_id"),
    ("storeId: longest", {"storeId": "s" * 64}, OK),
    ("storeId: one too long", {"storeId": "s" * 65}, "bad_store_id"),
    ("storeId: shortest", {"storeId": "s"}, OK),
    ("storeId: empty", {"storeId": ""}, "bad_store_id"),
    ("storeId: every class", {"storeId": "aZ09_-"}, OK),
    ("storeId: a dot", {"storeId": "s.1"}, "bad_store_id"),
    ("storeId: final newline", {"storeId": "s\n"}, "bad_store_id"),
    ("unitPrice: zero", {"lines": [{"sku": "a", "qty": 1, "unitPrice": 0}]}, OK),
    ("unitPrice: 0.0", {"lines": [{"sku": "a", "qty": 1, "unitPrice": 0.0}]}, OK),
    ("unitPrice: -0.0", {"lines": [{"sku": "a", "qty": 1, "unitPrice": -0.0}]}, OK),
    ("unitPrice: largest float", {"lines": [{"sku": "a", "qty": 1, "unitPrice": 1.7976931348623157e308}]}, OK),
    ("unitPrice: integer", {"lines": [{"sku": "a", "qty": 1, "unitPrice": 3}]}, OK),
    ("unitPrice: null", {"lines": [{"sku": "a", "qty": 1, "unitPrice": None}]}, OK),
    ("unitPrice: just below zero", {"lines": [{"sku": "a", "qty": 1, "unitPrice": -5e-324}]}, "bad_price"),
    ("unitPrice: -1", {"lines": [{"sku": "a", "qty": 1, "unitPrice": -1}]}, "bad_price"),
    ("unitPrice: a bool", {"lines": [{"sku": "a", "qty": 1, "unitPrice": True}]}, "bad_price"),
    ("unitPrice: text", {"lines": [{"sku": "a", "qty": 1, "unitPrice": "1"}]}, "bad_price"),
    ("occurredAt: exactly 24 h ahead", {"occurredAt": "2026-11-28T12:00:00Z"}, OK),
    ("occurredAt: 24 h and 1 us ahead", {"occurredAt": "2026-11-28T12:00:00.000001Z"}, "future_timestamp"),
    ("occurredAt: 24 h ahead, as an offset", {"occurredAt": "2026-11-28T13:00:00+01:00"}, OK),
    ("occurredAt: 1 us more, as an offset", {"occurredAt": "2026-11-28T13:00:00.000001+01:00"}, "future_timestamp"),
    ("occurredAt: 40 characters", {"occurredAt": LONGEST_TIME}, OK),
    ("occurredAt: 41 characters", {"occurredAt": TOO_LONG_TIME}, "bad_timestamp"),
    ("occurredAt: shortest (11)", {"occurredAt": "2026W48T10Z"}, OK),
    ("occurredAt: lower-case z", {"occurredAt": "2026-11-27T10:00:00z"}, OK),
    ("occurredAt: empty", {"occurredAt": ""}, "bad_timestamp"),
    ("occurredAt: Z alone", {"occurredAt": "Z"}, "bad_timestamp"),
    ("occurredAt: X for Z", {"occurredAt": "2026-11-27T10:00:00X"}, "bad_timestamp"),
    ("occurredAt: Z after an offset", {"occurredAt": "2026-11-27T10:00:00+01:00Z"}, "bad_timestamp"),
    ("occurredAt: naive", {"occurredAt": "2026-11-27T10:15:03"}, "bad_timestamp"),
    ("occurredAt: date and Z", {"occurredAt": "2026-11-27Z"}, "bad_timestamp"),
]


@pytest.mark.parametrize("path", ["fast", "full"])
@pytest.mark.parametrize(("what", "overrides", "want"), LIMITS, ids=[c[0] for c in LIMITS])
def test_limits_at_the_boundary_and_one_past(what: str, overrides: dict, want: object, path: str) -> None:
    raw = encode(doc(**overrides), path)
    got = parse_event(raw, source="t", now=NOW)
    fast = _fast(raw, NOW)
    if want == OK:
        assert isinstance(got, SaleEvent), got
        assert got.event_id == doc(**overrides)["eventId"]
        assert (fast is not None) == (path == "fast")  # every contract-shaped valid body takes the fast path
        if fast is not None:
            assert (fast, fast.occurred_key) == (got, got.occurred_key)
    else:
        assert isinstance(got, InvalidEvent), got
        assert (got.reason, got.body, got.source) == (want, raw, "t")
        assert fast is None
    assert _parse_full(raw, "t", NOW) == got


def test_a_contract_shaped_event_never_reaches_the_full_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast path is what almost every event takes (parse_event's docstring; bench/events.py): a change that
    # sent every event through the full check would give the same answers, 4x slower, and nothing else would fail.
    def full_check(raw: bytes, source: str, now: datetime | None) -> None:
        raise AssertionError(f"the full check was called for {raw!r}")

    monkeypatch.setattr(events, "_parse_full", full_check)
    for d in (doc(), doc(type="adjustment", lines=lines(MAX_LINES, -MAX_ABS_QTY)), doc(occurredAt=LONGEST_TIME)):
        for body in (json.dumps(d).encode(), json.dumps(d)):
            assert isinstance(parse_event(body, now=NOW), SaleEvent)
    with pytest.raises(AssertionError, match="the full check was called"):
        parse_event(encode(doc(), "full"), now=NOW)


def test_limit_deltas_are_the_quantities_signed() -> None:
    e = parse_event(encode(doc(type="adjustment", lines=[{"sku": " a ", "qty": -MAX_ABS_QTY},
                                                         {"sku": "b", "qty": MAX_ABS_QTY}]), "fast"), now=NOW)
    assert e.deltas == (("A", -MAX_ABS_QTY), ("B", MAX_ABS_QTY))
    e = parse_event(encode(doc(lines=lines(MAX_LINES, 3)), "full"), now=NOW)
    assert e.deltas == tuple((f"K{i}", -3) for i in range(MAX_LINES))


def padded(size: int, *, inside: bool, as_text: bool = False) -> bytes | str:
    """A valid event of exactly ``size`` UTF-8 bytes: padded after the object (fast path) or in an unknown
    field (full path); as text, the padding is two-byte characters, so characters < bytes."""
    if inside:
        base = json.dumps(doc(note=""), ensure_ascii=False)
        if as_text:
            fill = size - len(base.encode())
            text = base.replace('"note": ""', '"note": "' + "é" * (fill // 2) + "a" * (fill % 2) + '"')
            assert len(text.encode()) == size
            return text
        return base.replace('"note": ""', '"note": "' + "a" * (size - len(base)) + '"').encode()
    base = json.dumps(doc()).encode()
    return base + b" " * (size - len(base))


@pytest.mark.parametrize(("inside", "as_text"), [(False, False), (True, False), (True, True)])
def test_body_size_at_the_boundary_and_one_past(inside: bool, as_text: bool) -> None:
    at = padded(MAX_EVENT_BYTES, inside=inside, as_text=as_text)
    assert isinstance(parse_event(at, now=NOW), SaleEvent)
    past = padded(MAX_EVENT_BYTES + 1, inside=inside, as_text=as_text)
    bad = parse_event(past, source="http:3", now=NOW)
    raw = past.encode() if as_text else past
    assert (bad.reason, bad.detail, bad.body, bad.source, bad.store_id) == (
        "too_large", "65,537 bytes; the limit is 65,536", raw, "http:3", None)
    if as_text:
        assert len(past) <= MAX_EVENT_BYTES  # counted in bytes, not characters


# --- every reason code, with what the dead letter records ---------------------------------------------------

S = "S001"
REASONS: list[tuple[str, bytes, str, str, str | None]] = [
    # (case, body, reason, detail (or its start, ending in "…"), store recorded)
    ("not json", b"{not json", "bad_json", "not UTF-8 JSON: …", None),
    ("not utf-8", b'{"a": "\xff"}', "bad_json", "not UTF-8 JSON: …", None),
    ("an array", b"[1, 2]", "bad_json", "expected a JSON object, got list", None),
    ("a string", b'"x"', "bad_json", "expected a JSON object, got str", None),
    ("null", b"null", "bad_json", "expected a JSON object, got NoneType", None),
    ("too large", b" " * (MAX_EVENT_BYTES + 1), "too_large", "65,537 bytes; the limit is 65,536", None),
    ("no eventId", encode(doc(eventId=...), "fast"), "missing_field", "missing: eventId", S),
    ("null type and lines", encode(doc(type=None, lines=...), "fast"), "missing_field", "missing: type, lines", S),
    ("no storeId", encode(doc(storeId=...), "fast"), "missing_field", "missing: storeId", None),
    ("all missing", b"{}", "missing_field", "missing: eventId, storeId, type, occurredAt, lines", None),
    ("no occurredAt, numeric store", encode(doc(occurredAt=..., storeId=7), "fast"), "missing_field",
     "missing: occurredAt", None),
    ("eventId a number", encode(doc(eventId=42), "fast"), "bad_event_id",
     "eventId '42' is not 1-128 printable ASCII characters", S),
    ("eventId long", encode(doc(eventId="x" * 200), "fast"), "bad_event_id",
     f"eventId {'x' * 80!r} is not 1-128 printable ASCII characters", S),
    ("eventId a list", encode(doc(eventId=["e1"]), "fast"), "bad_event_id",
     "eventId \"['e1']\" is not 1-128 printable ASCII characters", S),
    ("storeId a path", encode(doc(storeId="../etc"), "fast"), "bad_store_id",
     "storeId '../etc' does not match ^[A-Za-z0-9_-]{1,64}$", None),
    ("storeId long", encode(doc(storeId="s" * 100), "fast"), "bad_store_id",
     f"storeId {'s' * 80!r} does not match ^[A-Za-z0-9_-]{{1,64}}$", None),
    ("storeId a number", encode(doc(storeId=5), "fast"), "bad_store_id",
     "storeId '5' does not match ^[A-Za-z0-9_-]{1,64}$", None),
    ("type unknown", encode(doc(type="refund"), "fast"), "unknown_type",
     "type 'refund' is not one of sale, return, receipt, adjustment", S),
    ("type long", encode(doc(type="t" * 50), "fast"), "unknown_type",
     f"type {'t' * 40!r} is not one of sale, return, receipt, adjustment", S),
    ("type upper-case", encode(doc(type="SALE"), "fast"), "unknown_type",
     "type 'SALE' is not one of sale, return, receipt, adjustment", S),
    ("type a list", encode(doc(type=["sale"]), "fast"), "unknown_type",
     "type \"['sale']\" is not one of sale, return, receipt, adjustment", S),
    ("type an object", encode(doc(type={"sale": 1}), "fast"), "unknown_type",
     "type \"{'sale': 1}\" is not one of sale, return, receipt, adjustment", S),
    ("time words", encode(doc(occurredAt="yesterday"), "fast"), "bad_timestamp",
     "occurredAt 'yesterday' is not ISO-8601 with an offset", S),
    ("time long", encode(doc(occurredAt="y" * 70), "fast"), "bad_timestamp",
     f"occurredAt {'y' * 60!r} is not ISO-8601 with an offset", S),
    ("time a list", encode(doc(occurredAt=["2026-11-27T10:15:03Z"]), "fast"), "bad_timestamp",
     "occurredAt \"['2026-11-27T10:15:03Z']\" is not ISO-8601 with an offset", S),
    ("time ahead", encode(doc(occurredAt="2026-11-29T12:00:01Z"), "fast"), "future_timestamp",
     f"occurredAt 2026-11-29T12:00:01Z is more than 24 h ahead of {NOW_KEY}", S),
    ("lines empty", encode(doc(lines=[]), "fast"), "no_lines", "lines must be a non-empty list", S),
    ("lines an object", encode(doc(lines={"sku": "a", "qty": 1}), "fast"), "no_lines",
     "lines must be a non-empty list", S),
    ("lines text", encode(doc(lines="a"), "fast"), "no_lines", "lines must be a non-empty list", S),
    ("lines too many", encode(doc(lines=lines(65)), "fast"), "too_many_lines", "65 lines; at most 64 per event", S),
    ("line not an object", encode(doc(lines=[{"sku": "a", "qty": 1}, ["b", 1]]), "fast"), "missing_sku",
     "line 2 is not an object", S),
    ("line without sku", encode(doc(lines=[{"sku": "a", "qty": 1}, {"qty": 1}]), "fast"), "missing_sku",
     "line 2 has no sku", S),
    ("line blank sku", encode(doc(lines=[{"sku": " \t", "qty": 1}]), "fast"), "missing_sku", "line 1 has no sku", S),
    ("line sku a list", encode(doc(lines=[{"sku": ["a"], "qty": 1}]), "fast"), "missing_sku", "line 1 has no sku", S),
    ("qty zero", encode(doc(lines=[{"sku": "a", "qty": 0}]), "fast"), "bad_qty",
     "line 1: qty '0' is not valid for a sale", S),
    ("qty negative return", encode(doc(type="return", lines=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -2}]),
                                   "fast"), "bad_qty", "line 2: qty '-2' is not valid for a return", S),
    ("qty long text", encode(doc(lines=[{"sku": "a", "qty": "9" * 50}]), "fast"), "bad_qty",
     f"line 1: qty {'9' * 40!r} is not valid for a sale", S),
    ("qty missing", encode(doc(type="receipt", lines=[{"sku": "a"}]), "fast"), "bad_qty",
     "line 1: qty 'None' is not valid for a receipt", S),
    ("qty a list", encode(doc(lines=[{"sku": "a", "qty": [1]}]), "fast"), "bad_qty",
     "line 1: qty '[1]' is not valid for a sale", S),
    ("price negative", encode(doc(lines=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 1, "unitPrice": -0.01}]),
                              "fast"), "bad_price", "line 2: unitPrice '-0.01' is not a non-negative number", S),
    ("price long text", encode(doc(lines=[{"sku": "a", "qty": 1, "unitPrice": "p" * 50}]), "fast"), "bad_price",
     f"line 1: unitPrice {'p' * 40!r} is not a non-negative number", S),
    ("price an object", encode(doc(lines=[{"sku": "a", "qty": 1, "unitPrice": {"eur": 1}}]), "fast"), "bad_price",
     "line 1: unitPrice \"{'eur': 1}\" is not a non-negative number", S),
]


def test_the_reason_table_covers_every_validation_code() -> None:
    assert {r[2] for r in REASONS} == REASON_CODES - {"conflicting_duplicate"}  # that one is the apply's


def check_recorded(bad: object, raw: bytes, source: str, reason: str, detail: str, store: str | None) -> None:
    assert isinstance(bad, InvalidEvent), bad
    assert (bad.reason, bad.body, bad.source, bad.store_id) == (reason, raw, source, store)
    assert type(bad.body) is bytes
    if detail.endswith("…"):
        assert bad.detail.startswith(detail[:-1]) and len(bad.detail) > len(detail)
    else:
        assert bad.detail == detail


@pytest.mark.parametrize(("case", "raw", "reason", "detail", "store"), REASONS, ids=[r[0] for r in REASONS])
def test_each_reason_records_body_source_store_and_detail(case: str, raw: bytes, reason: str, detail: str,
                                                          store: str | None) -> None:
    source = f"eventhub:0:{len(case)}"
    check_recorded(parse_event(raw, source=source, now=NOW), raw, source, reason, detail, store)
    check_recorded(parse_event(raw, now=NOW), raw, "", reason, detail, store)  # source defaults to ""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return
    # A str body is recorded as its UTF-8 bytes, with the same reason.
    check_recorded(parse_event(text, source=source, now=NOW), raw, source, reason, detail, store)


def test_missing_field_names_each_missing_one_in_contract_order() -> None:
    for missing in ("eventId", "storeId", "type", "occurredAt", "lines"):
        for absent in (..., None):
            bad = parse_event(encode(doc(**{missing: absent}), "fast"), now=NOW)
            assert (bad.reason, bad.detail) == ("missing_field", f"missing: {missing}")


# --- bad input of every JSON type never raises ---------------------------------------------------------------

ODD_VALUES = [["sale"], {"a": 1}, [], {}, [["x"]], True, False, 0, -1, 1.5, "", "x", None]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("field", ["eventId", "storeId", "type", "occurredAt", "lines", "sku", "qty",
                                   "unitPrice", "line"])
def test_a_field_of_any_json_type_gives_an_invalid_event_not_an_exception(field: str, value: object) -> None:
    if field in ("sku", "qty", "unitPrice"):
        d = doc(lines=[{"sku": "a", "qty": 1, field: value}])
    elif field == "line":
        d = doc(lines=[value])
    else:
        d = doc(**{field: value})
    raw = json.dumps(d).encode()
    got = parse_event(raw, source="s", now=NOW)
    if isinstance(got, SaleEvent):  # a few of them are valid values (an empty string id is not)
        assert (field, type(value), value) in {("sku", str, "x"), ("qty", int, 1), ("unitPrice", int, 0),
                                               ("unitPrice", float, 1.5), ("unitPrice", type(None), None),
                                               ("eventId", str, "x"), ("storeId", str, "x")}
    else:
        assert got.reason in REASON_CODES and got.body == raw and got.source == "s"


# --- str bodies and lone surrogates --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["sku", "eventId", "x-note"])
def test_a_str_body_with_a_lone_surrogate_is_bad_json_kept_whole(where: str) -> None:
    d = doc()
    if where == "sku":
        d["lines"][0]["sku"] = "A\ud800"
    else:
        d[where] = "e\udcff"
    text = json.dumps(d, ensure_ascii=False)  # the character itself, not an escape
    bad = parse_event(text, source="http:0", now=NOW)
    raw = text.encode("utf-8", "surrogatepass")
    assert isinstance(bad, InvalidEvent)
    assert (bad.reason, bad.body, bad.source) == ("bad_json", raw, "http:0")
    assert bad.detail.startswith("not UTF-8 JSON: ")
    assert bad.body.decode("utf-8", "surrogatepass") == text  # the body replays exactly


def test_an_escaped_lone_surrogate_is_bad_json() -> None:
    raw = json.dumps(doc(eventId="e\ud800")).encode()  # ASCII JSON with the escape \ud800
    assert b"\\ud800" in raw
    assert _fast(raw, NOW) is None
    bad = parse_event(raw, now=NOW)
    assert (bad.reason, bad.body) == ("bad_json", raw)


def test_a_str_body_is_read_as_utf8() -> None:
    text = json.dumps(doc(lines=[{"sku": "straße", "qty": 1}]), ensure_ascii=False)
    e = parse_event(text, now=NOW)
    assert e.deltas == (("STRAẞE", -1),)
    assert parse_event(text.encode(), now=NOW) == e
    assert parse_event(bytearray(text.encode()), now=NOW) == e


def test_a_sku_with_a_lone_surrogate_is_upper_cased_without_raising() -> None:
    # Not from an event (JSON refuses it), but from the command line: `inventory stock --sku` gets
    # undecodable argv bytes as surrogate escapes. The sku can match nothing; it must not crash.
    assert normalise_sku(" a\udcff b\t") == "A\udcff B"
    assert normalise_sku("é\ud800") == "É\ud800"
    assert events._SKU_CACHE == {" a\udcff b\t": "A\udcff B", "é\ud800": "É\ud800"}


# --- the sku cache ---------------------------------------------------------------------------------------------


def test_sku_normalisation_on_a_cold_cache() -> None:
    assert normalise_sku(" x\t\ty ") == "X Y"
    assert normalise_sku("ß-1") == "ẞ-1"
    assert normalise_sku("\u00a0a") == "\u00a0A"
    assert normalise_sku("\v\f\r") == ""
    assert events._SKU_CACHE == {" x\t\ty ": "X Y", "ß-1": "ẞ-1", "\u00a0a": "\u00a0A", "\v\f\r": ""}
    assert normalise_sku(" x\t\ty ") == "X Y"  # and from the cache


def test_the_fast_path_normalises_skus_on_a_cold_cache() -> None:
    raw = encode(doc(lines=[{"sku": " a  b ", "qty": 1}, {"sku": "é", "qty": 2}]), "fast")
    e = _fast(raw, NOW)
    assert e is not None and e.deltas == (("A B", -1), ("É", -2))
    assert _fast(raw, NOW) == e  # warm


def test_ascii_in_python_and_the_arrow_kernel_once_per_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/stock-and-events.md: ASCII skus normalised in Python; non-ASCII ones by the Arrow kernel, once per spelling.
    kernel_calls: list[str] = []
    kernel = events._upper_as_the_dump_rule

    def counting(text: str) -> str:
        kernel_calls.append(text)
        return kernel(text)

    monkeypatch.setattr(events, "_upper_as_the_dump_rule", counting)
    for _ in range(3):
        assert normalise_sku(" ab c ") == "AB C"
        assert normalise_sku(" é b ") == "É B"
        assert normalise_sku("ß") == "ẞ"
    assert kernel_calls == ["é b", "ß"]
    raw = encode(doc(lines=[{"sku": "ñ", "qty": 1}]), "fast")
    assert _fast(raw, NOW).deltas == _parse_full(raw, "", NOW).deltas == _fast(raw, NOW).deltas == (("Ñ", -1),)
    assert kernel_calls == ["é b", "ß", "ñ"]


def test_the_sku_cache_is_bounded_at_100_000_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = {f"k{i}": f"K{i}" for i in range(99_999)}
    monkeypatch.setattr(events, "_SKU_CACHE", cache)
    assert normalise_sku("new1") == "NEW1"
    assert len(cache) == 100_000 and cache["new1"] == "NEW1"
    assert normalise_sku("new2") == "NEW2"
    assert len(cache) == 100_000 and "new2" not in cache


# --- event_content: the conflicting-duplicate check -----------------------------------------------------------


def test_event_content_is_time_and_deltas_in_any_line_order() -> None:
    key = "2026-11-27T09:15:03.000000Z"
    a = event_content(key, [("A", -2), ("B", 1)])
    assert a == (key, (("A", -2), ("B", 1)))
    assert event_content(key, [("B", 1), ("A", -2)]) == a  # lines reordered: the same event
    assert event_content(key, (["A", "-2"], ["B", 1])) == a  # as a ledger's JSON gives them back
    assert event_content(key, [("A", -2), ("C", 1)]) != a  # another sku
    assert event_content(key, [("A", -3), ("B", 1)]) != a  # another quantity
    assert event_content(key, [("A", -2)]) != a  # a line less
    assert event_content(key, [("A", -2), ("B", 1), ("B", 1)]) != a  # a line more
    assert event_content("2026-11-27T09:15:03.000001Z", [("A", -2), ("B", 1)]) != a  # another time
    assert event_content(key, []) == (key, ())


def test_event_content_through_dedupe_finds_the_conflicting_repeats() -> None:
    def event(eid: str, store: str, minute: int, *deltas: tuple[str, int]) -> SaleEvent:
        return SaleEvent(eid, store, "adjustment", NOW - timedelta(minutes=minute), deltas)

    batch = [
        event("e1", "S1", 1, ("A", 1), ("B", 2)),
        event("e1", "S1", 1, ("B", 2), ("A", 1)),  # a resend, lines reordered
        event("e1", "S2", 5, ("A", 9)),  # same id, another store: its own event
        event("e1", "S1", 1, ("A", 1), ("C", 2)),  # another sku under the id: conflicting
        event("e1", "S1", 2, ("A", 1), ("B", 2)),  # another time: conflicting
        event("e2", "S1", 1, ("A", 1), ("B", 3)),
        event("e2", "S1", 1, ("A", 1), ("B", 3)),  # a plain resend
    ]
    first, repeats = dedupe(batch)
    assert first == [batch[0], batch[2], batch[5]]
    assert repeats == [batch[1], batch[3], batch[4], batch[6]]
    content = {(e.store_id, e.event_id): event_content(e.occurred_key, e.deltas) for e in first}
    conflicting = [e for e in repeats if event_content(e.occurred_key, e.deltas) != content[(e.store_id, e.event_id)]]
    assert conflicting == [batch[3], batch[4]]


# --- time handling, in zones other than UTC --------------------------------------------------------------------


@contextlib.contextmanager
def local_zone(name: str) -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


ZONES = ["America/Santiago", "Europe/London", "Asia/Kathmandu"]


@pytest.fixture(params=ZONES)
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    with local_zone(request.param):
        # the zone took effect: in July, none of them is UTC (Santiago -04, London +01, Kathmandu +05:45)
        assert datetime(2026, 7, 1, 12, tzinfo=UTC).astimezone().utcoffset() != timedelta(0)
        yield request.param


def test_local_zone_is_restored() -> None:
    before = datetime(2026, 7, 1, 12).astimezone().utcoffset()
    with local_zone("Asia/Kathmandu"):
        assert datetime(2026, 7, 1, 12).astimezone().utcoffset() == timedelta(hours=5, minutes=45)
    assert datetime(2026, 7, 1, 12).astimezone().utcoffset() == before


@pytest.mark.usefixtures("zone")
def test_time_key_is_utc_whatever_the_local_zone() -> None:
    instant = datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert time_key(instant) == "2026-07-01T12:00:00.000005Z"
    assert time_key(instant.astimezone()) == "2026-07-01T12:00:00.000005Z"  # local, aware
    assert time_key(instant.astimezone(timezone(timedelta(hours=-3)))) == "2026-07-01T12:00:00.000005Z"
    # London's autumn fold: 01:30 happens twice, an hour apart
    london = ZoneInfo("Europe/London")
    assert time_key(datetime(2026, 10, 25, 1, 30, tzinfo=london)) == "2026-10-25T00:30:00.000000Z"
    assert time_key(datetime(2026, 10, 25, 1, 30, tzinfo=london, fold=1)) == "2026-10-25T01:30:00.000000Z"
    # Santiago's autumn (April): 23:30 on the 4th happens twice
    santiago = ZoneInfo("America/Santiago")
    assert time_key(datetime(2026, 4, 4, 23, 30, tzinfo=santiago)) == "2026-04-05T02:30:00.000000Z"
    assert time_key(datetime(2026, 4, 4, 23, 30, tzinfo=santiago, fold=1)) == "2026-04-05T03:30:00.000000Z"
    with pytest.raises(ValueError, match=r"^time_key needs an aware datetime$"):
        time_key(datetime(2026, 7, 1, 12))  # naive: never read as local time


@pytest.mark.usefixtures("zone")
@pytest.mark.parametrize("path", ["fast", "full"])
@pytest.mark.parametrize(("occurred", "key"), [
    ("2026-07-01T12:00:00Z", "2026-07-01T12:00:00.000000Z"),
    ("2026-07-01T12:00:00+00:00", "2026-07-01T12:00:00.000000Z"),
    ("2026-07-01T12:00:00-00:00", "2026-07-01T12:00:00.000000Z"),
    ("2026-07-01T08:00:00-04:00", "2026-07-01T12:00:00.000000Z"),
    ("2026-07-01T17:45:00.25+05:45", "2026-07-01T12:00:00.250000Z"),
    ("2026-10-25T01:30:00+01:00", "2026-10-25T00:30:00.000000Z"),  # London's fold, first 01:30 (BST)
    ("2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00.000000Z"),  # and the second (GMT)
    ("2026-03-29T00:59:59.999999+00:00", "2026-03-29T00:59:59.999999Z"),  # London, just before spring forward
    ("2026-03-29T02:00:00+01:00", "2026-03-29T01:00:00.000000Z"),  # and just after
    ("2026-04-04T23:30:00-03:00", "2026-04-05T02:30:00.000000Z"),  # Santiago's fold
    ("2026-04-04T23:30:00-04:00", "2026-04-05T03:30:00.000000Z"),
    ("2026-09-06T00:30:00-03:00", "2026-09-06T03:30:00.000000Z"),  # Santiago's spring gap, given an offset
    ("2026-11-27T00:30:00+14:00", "2026-11-26T10:30:00.000000Z"),
    ("2026-11-27T23:30:00-12:00", "2026-11-28T11:30:00.000000Z"),
    ("2026-12-31T23:59:59.999999-01:00", "2027-01-01T00:59:59.999999Z"),
])
def test_occurred_at_is_read_as_the_instant_it_names(occurred: str, key: str, path: str) -> None:
    now = datetime(2027, 1, 2, tzinfo=UTC)
    e = parse_event(encode(doc(occurredAt=occurred), path), now=now)
    assert isinstance(e, SaleEvent), e
    assert e.occurred_key == key
    assert e.occurred_at.tzinfo is UTC
    assert e.occurred_at == datetime.fromisoformat(key[:-1] + "+00:00")
    assert time_key(e.occurred_at) == key
    assert event_json(e)["occurredAt"] == key


@pytest.mark.usefixtures("zone")
@pytest.mark.parametrize("occurred", ["2026-07-01T12:00:00", "2026-07-01 12:00:00", "2026-07-01",
                                      "2026-07-01T12:00:00 UTC", "2026-07-01T12:00:00GMT"])
def test_a_time_without_offset_is_refused_in_any_local_zone(occurred: str) -> None:
    for path in ("fast", "full"):
        assert parse_event(encode(doc(occurredAt=occurred), path), now=NOW).reason == "bad_timestamp"
    assert _parse_time(occurred) is None


@pytest.mark.usefixtures("zone")
def test_parse_time_returns_utc() -> None:
    got = _parse_time("2026-07-01T08:00:00-04:00")
    assert got == datetime(2026, 7, 1, 12, tzinfo=UTC) and got.tzinfo is UTC
    got = _parse_time("2026-07-01T12:00:00z")
    assert got == datetime(2026, 7, 1, 12, tzinfo=UTC) and got.tzinfo is UTC
    for no_time in (None, 20260701, "", "Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"):
        assert _parse_time(no_time) is None
    assert _parse_time("0001-01-01T00:00:00+00:00") == datetime(1, 1, 1, tzinfo=UTC)  # the edges themselves
    assert _parse_time("9999-12-31T23:59:59.999999Z") == datetime.max.replace(tzinfo=UTC)


@pytest.mark.usefixtures("zone")
@pytest.mark.parametrize("path", ["fast", "full"])
def test_now_defaults_to_the_clock_in_utc(path: str) -> None:
    clock = datetime.now(UTC)

    def at(delta: timedelta) -> bytes:
        return encode(doc(occurredAt=time_key(clock + delta)), path)

    assert isinstance(parse_event(at(-timedelta(days=400))), SaleEvent)
    assert isinstance(parse_event(at(timedelta(hours=23))), SaleEvent)  # ahead, within the tolerance
    assert parse_event(at(timedelta(hours=25))).reason == "future_timestamp"
    assert parse_event(at(-timedelta(hours=1)), source="s").occurred_key == time_key(clock - timedelta(hours=1))
    if path == "fast":
        assert _fast(at(-timedelta(hours=1)), None) is not None
        assert _fast(at(timedelta(hours=25)), None) is None


@pytest.mark.usefixtures("zone")
def test_sale_event_key_from_a_local_time() -> None:
    local = datetime(2026, 7, 1, 12, tzinfo=UTC).astimezone()
    e = SaleEvent("e", "S", "sale", local, (("A", -1),))
    assert e.occurred_key == "2026-07-01T12:00:00.000000Z"
    given_key = SaleEvent("e", "S", "sale", local, (("A", -1),), "given")
    assert given_key.occurred_key == "given"
    assert given_key == e  # the key is derived data: not compared


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2026, 11, 26)),
       st.integers(-(23 * 60 + 59), 23 * 60 + 59), st.sampled_from(ZONES), st.booleans())
def test_any_offset_round_trips_in_any_zone(moment: datetime, offset_minutes: int, zone_name: str,
                                            full: bool) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    text = aware.isoformat()
    with local_zone(zone_name):
        e = parse_event(encode(doc(occurredAt=text), "full" if full else "fast"), now=NOW)
        assert isinstance(e, SaleEvent), (text, e)
        assert e.occurred_at == aware and e.occurred_at.tzinfo is UTC
        assert e.occurred_key == time_key(aware) == time_key(aware.astimezone())
        again = parse_event(json.dumps(event_json(e)), now=NOW)
        assert again == e and again.occurred_key == e.occurred_key


# --- dedupe, coalesce, counts_after, sku_deltas, event_json ----------------------------------------------------

valid_events = st.builds(
    SaleEvent,
    event_id=st.sampled_from(["e0", "e1", "e2", "e3"]),
    store_id=st.sampled_from(["S1", "S2"]),
    type=st.sampled_from(sorted(EVENT_TYPES)),
    occurred_at=st.integers(-600, 600).map(lambda s: NOW - timedelta(seconds=s)),
    deltas=st.lists(st.tuples(st.sampled_from(["A", "B", "C D"]), st.integers(-5, 5)), max_size=4).map(tuple),
)


@given(st.lists(valid_events, max_size=12))
def test_dedupe_keeps_the_first_of_each_store_and_id_in_order(batch: list[SaleEvent]) -> None:
    first, repeats = dedupe(batch)
    seen: set[tuple[str, str]] = set()
    want_first, want_repeats = [], []
    for e in batch:
        (want_repeats if (e.store_id, e.event_id) in seen else want_first).append(e)
        seen.add((e.store_id, e.event_id))
    assert [id(e) for e in first] == [id(e) for e in want_first]
    assert [id(e) for e in repeats] == [id(e) for e in want_repeats]
    assert dedupe(iter(batch)) == (first, repeats)  # any iterable, read once


def test_dedupe_keys_on_store_and_event_id() -> None:
    a = SaleEvent("e1", "S1", "sale", NOW, (("A", -1),))
    b = SaleEvent("e1", "S2", "sale", NOW, (("A", -1),))
    c = SaleEvent("e2", "S1", "sale", NOW, (("A", -1),))
    d = SaleEvent("e1", "S1", "sale", NOW, (("A", -1),))
    assert dedupe([a, b, c, d]) == ([a, b, c], [d])
    assert dedupe([]) == ([], [])


@given(st.lists(valid_events, max_size=12))
def test_coalesce_sums_every_line_and_keeps_zero_sums(batch: list[SaleEvent]) -> None:
    want: dict[str, int] = {}
    for e in batch:
        for sku, d in e.deltas:
            want[sku] = want.get(sku, 0) + d
    assert coalesce(batch) == want
    assert coalesce(iter(batch)) == want
    assert set(coalesce(batch)) == {sku for e in batch for sku, _ in e.deltas}


def test_coalesce_examples() -> None:
    up = SaleEvent("e1", "S", "receipt", NOW, (("A", 3), ("B", 1)))
    down = SaleEvent("e2", "S", "sale", NOW, (("A", -3), ("A", -1)))
    assert coalesce([up, down]) == {"A": -1, "B": 1}
    assert coalesce([up, SaleEvent("e3", "S", "sale", NOW, (("A", -3),))]) == {"A": 0, "B": 1}
    assert coalesce([]) == {}
    assert down.sku_deltas() == {"A": -4}
    assert up.sku_deltas() == {"A": 3, "B": 1}
    assert SaleEvent("e", "S", "sale", NOW, ()).sku_deltas() == {}


@given(st.lists(valid_events, max_size=12))
def test_sku_deltas_is_coalesce_of_one_event(batch: list[SaleEvent]) -> None:
    for e in batch:
        assert e.sku_deltas() == coalesce([e])


@given(st.lists(valid_events, max_size=12), st.integers(-700, 700))
def test_counts_after_keeps_the_events_strictly_after_the_baseline(batch: list[SaleEvent], cut: int) -> None:
    moment = NOW - timedelta(seconds=cut)
    kept = counts_after(time_key(moment), batch)
    assert [id(e) for e in kept] == [id(e) for e in batch if e.occurred_at > moment]
    everything = counts_after(None, batch)
    assert everything == batch and everything is not batch  # a new list: the caller's is not shared


def test_counts_after_at_the_baseline_instant() -> None:
    at = SaleEvent("at", "S", "sale", NOW, (("A", -1),))
    after = SaleEvent("after", "S", "sale", NOW + timedelta(microseconds=1), (("A", -1),))
    before = SaleEvent("before", "S", "sale", NOW - timedelta(microseconds=1), (("A", -1),))
    assert counts_after(NOW_KEY, [before, at, after]) == [after]
    assert counts_after(None, (before, at)) == [before, at]


contract_events = st.builds(
    lambda eid, store, kind, seconds, skus, qtys: doc(
        eventId=eid, storeId=store, type=kind, occurredAt=time_key(NOW - timedelta(seconds=seconds)),
        lines=[{"sku": s, "qty": q if kind == "adjustment" else abs(q)} for s, q in zip(skus, qtys, strict=False)]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_EVENT_ID_CHARS),
    st.text(alphabet="abcXYZ09_-", min_size=1, max_size=64),
    st.sampled_from(sorted(EVENT_TYPES)),
    st.integers(0, 10**9),
    st.lists(st.sampled_from(["A", "b c", "ß", "x-1"]), min_size=MAX_LINES, max_size=MAX_LINES),
    st.lists(st.integers(-MAX_ABS_QTY, MAX_ABS_QTY).filter(bool), min_size=1, max_size=MAX_LINES),
)


@settings(max_examples=150, deadline=None)
@given(contract_events, st.booleans())
def test_event_json_round_trips_every_valid_event(d: dict, full: bool) -> None:
    e = parse_event(encode(d, "full" if full else "fast"), now=NOW)
    assert isinstance(e, SaleEvent), e
    out = event_json(e)
    assert out == {"eventId": d["eventId"], "storeId": d["storeId"], "type": d["type"],
                   "occurredAt": e.occurred_key,
                   "lines": [{"sku": normalise_sku(li["sku"]), "qty": li["qty"]} for li in d["lines"]]}
    again = parse_event(json.dumps(out), now=NOW)
    assert again == e and again.occurred_key == e.occurred_key
    assert [d for _, d in e.deltas] == [EVENT_TYPES[d["type"]] * li["qty"] for li in d["lines"]]


def test_event_json_example() -> None:
    e = SaleEvent("e9", "S2", "sale", datetime(2026, 11, 27, 9, 15, 3, tzinfo=UTC), (("A", -2), ("B", -1)))
    assert event_json(e) == {"eventId": "e9", "storeId": "S2", "type": "sale",
                             "occurredAt": "2026-11-27T09:15:03.000000Z",
                             "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
    adj = SaleEvent("e9", "S2", "adjustment", datetime(2026, 11, 27, 9, 15, 3, tzinfo=UTC), (("A", -2),))
    assert event_json(adj)["lines"] == [{"sku": "A", "qty": -2}]
