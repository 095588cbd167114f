"""Sale events (docs/stock-and-events.md): validation against the contract, reason codes as data, and the delta math.

Pure: bytes in, :class:`SaleEvent` or :class:`InvalidEvent` out. No I/O, no Azure. Every adapter and
service that touches events goes through :func:`parse_event`, so the HTTP ingress, the Event Hub trigger
and ``inventory events apply`` accept and refuse exactly the same things.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import msgspec
import orjson

from shared.core.ids import STORE_ID_PATTERN
from shared.core.rules import FUTURE_TOLERANCE, INNER_WHITESPACE, WHITESPACE

EVENT_TYPES = {"sale": -1, "return": +1, "receipt": +1, "adjustment": +1}  # sign applied to qty
MAX_EVENT_BYTES = 64 * 1024
# One event's ledger item and its stock patches share one Cosmos transactional batch (100 operations):
# 1 ledger item + 1 baseline guard + at most 64 distinct skus leaves room to coalesce a few events.
MAX_LINES = 64
MAX_ABS_QTY = 1_000_000
MAX_EVENT_ID_CHARS = 128

_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: safe as a document id part
_INNER_WHITESPACE = re.compile(INNER_WHITESPACE)


@dataclass(frozen=True)
class EventReason:
    code: str
    description: str


# The reasons an event is set aside (dead-lettered), as data: the docs, telemetry and tests share them.
EVENT_REASONS: tuple[EventReason, ...] = (
    EventReason("bad_json", "the body is not UTF-8 JSON, or not a JSON object"),
    EventReason("too_large", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB"),
    EventReason("missing_field", "eventId, storeId, type, occurredAt or lines is missing or null"),
    EventReason("bad_event_id", f"eventId is not 1-{MAX_EVENT_ID_CHARS} printable ASCII characters"),
    EventReason("bad_store_id", "storeId does not match ^[A-Za-z0-9_-]{1,64}$"),
    EventReason("unknown_type", "type is not one of sale, return, receipt, adjustment"),
    EventReason("bad_timestamp", "occurredAt is not ISO-8601 with a UTC offset (e.g. 2026-11-27T10:15:03+01:00)"),
    EventReason("future_timestamp", "occurredAt is more than 24 h in the future (sender clock or bug)"),
    EventReason("no_lines", "lines is not a non-empty list"),
    EventReason("too_many_lines", f"more than {MAX_LINES} lines in one event; split it"),
    EventReason("missing_sku", "a line has no sku, or a blank one"),
    EventReason("bad_qty", f"a line's qty is not a non-zero integer within ±{MAX_ABS_QTY:,} (sale, return "
                           "and receipt quantities must be positive; adjustments are signed)"),
    EventReason("bad_price", "a line's unitPrice is present but not a non-negative number"),
    EventReason("conflicting_duplicate", "the eventId was seen before with another time or other lines: the "
                                         "sender reused an id; the first version counts, this one is set aside"),
)
REASON_CODES = frozenset(r.code for r in EVENT_REASONS)


@dataclass(frozen=True)
class RawEvent:
    """One delivered message: its body as received and where it came from (for the dead-letter record)."""

    body: bytes
    source: str = ""


@dataclass(slots=True)
class SaleEvent:
    """A valid event: skus normalised, quantities as signed stock deltas, time in UTC.

    Treat as immutable. Not ``frozen``: a frozen dataclass costs 4x as much to build (1.8 vs 0.46 µs
    measured here), and one is built for every event."""

    event_id: str
    store_id: str
    type: str
    occurred_at: datetime  # aware, UTC
    deltas: tuple[tuple[str, int], ...]  # (sku, signed delta), one per line, in order
    # Fixed-width UTC text (``2026-11-27T09:15:03.000000Z``): sorts like the time it names. Derived from
    # occurred_at when not given; kept because every store compares and records it.
    occurred_key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.occurred_key:
            self.occurred_key = time_key(self.occurred_at)

    def sku_deltas(self) -> dict[str, int]:
        """Lines of one event summed per sku (an event may name a sku twice)."""
        out: dict[str, int] = {}
        for sku, delta in self.deltas:
            out[sku] = out.get(sku, 0) + delta
        return out


@dataclass(frozen=True)
class InvalidEvent:
    """An event set aside: the raw body (kept whole, to replay after a fix) and why."""

    reason: str
    detail: str
    body: bytes
    source: str = ""  # where it came from: "eventhub:<partition>:<seq>", "file:<line>", "http:<index>"
    store_id: str | None = field(default=None)  # when it could be read, for per-store counts

    def __post_init__(self) -> None:
        if self.reason not in REASON_CODES:
            raise ValueError(f"unknown event reason code {self.reason!r}")


def time_key(moment: datetime) -> str:
    """The canonical, lexicographically ordered text of a UTC instant (microseconds, ``Z``)."""
    if moment.tzinfo is None:
        raise ValueError("time_key needs an aware datetime")
    # isoformat is about twice as fast as strftime, and this runs for every event.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


_SKU_CACHE: dict[str, str] = {}  # a chain has thousands of skus, not millions: remember each spelling


def normalise_sku(raw: str) -> str:
    """The dump rule ``sku_normalised`` (:func:`shared.core.rules.normalise_skus`) for one sku, with the same
    result, so an event's sku and a dump's name the same stock document: trimmed of the dump rule's
    whitespace (space, tab, LF, VT, FF, CR; not Unicode spaces such as NBSP), each inner run of it one space,
    upper-cased as Arrow's ``utf8_upper`` does (one character for one: Python's ``str.upper()`` turns
    ``ß`` into ``SS``, Arrow into ``ẞ``). ASCII is done here; anything else by the Arrow kernel itself
    (once per spelling)."""
    done = _SKU_CACHE.get(raw)
    if done is None:
        text = _INNER_WHITESPACE.sub(" ", raw.strip(WHITESPACE))
        done = text.upper() if text.isascii() else _upper_as_the_dump_rule(text)
        if len(_SKU_CACHE) < 100_000:
            _SKU_CACHE[raw] = done
    return done


def _upper_as_the_dump_rule(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: never in a dump (SQLite text is UTF-8), and JSON refuses it
        return text.upper()
    from shared.core.arrow_values import string_array
    from shared.core.rules import normalise_skus

    return normalise_skus(string_array([text]))[0].as_py()


def _parse_time(value: object) -> datetime | None:
    if type(value) is not str or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 and 9999-12-31T23:30-01:00 have no UTC time
        return None


_REQUIRED = ("eventId", "storeId", "type", "occurredAt", "lines")
_INF = float("inf")


# --- the fast path: a typed decode of the exact contract shape (msgspec, in C) ------------------------------
# It accepts a subset of what the full check below accepts and, for what it accepts, builds the same event:
# any body it does not take (an unknown field anywhere, a wrong type, a value out of range, a bad time...) goes
# through the full check, which gives the reason code. Unknown fields are forbidden here because the full check
# parses the WHOLE body with orjson (which refuses, e.g., invalid UTF-8 or 1e400 in a field nobody reads) while
# msgspec skips unknown fields; with only the contract's fields, every byte is decoded and checked by both.
# tests/unit/test_events_fast.py holds the two paths equal on generated bodies.
_BIG = float.fromhex("0x1.fffffffffffffp+1023")  # the largest finite float: ±inf is no price


class _FastLine(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: Annotated[int, msgspec.Meta(ge=-MAX_ABS_QTY, le=MAX_ABS_QTY)]
    unitPrice: Annotated[float, msgspec.Meta(ge=0, le=_BIG)] | None = None


class _FastEvent(msgspec.Struct, forbid_unknown_fields=True):
    eventId: Annotated[str, msgspec.Meta(pattern=r"\A[\x21-\x7e]{1,128}\Z")]
    storeId: Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9_-]{1,64}\Z")]
    type: str
    occurredAt: str
    lines: Annotated[list[_FastLine], msgspec.Meta(min_length=1, max_length=MAX_LINES)]


_fast_decode = msgspec.json.Decoder(_FastEvent).decode


def _fast(raw: bytes, now: datetime | None) -> SaleEvent | None:
    """The event when the typed decode takes ``raw`` and every remaining check passes; else None."""
    try:
        doc = _fast_decode(raw)
    except Exception:  # DecodeError, ValidationError, UnicodeDecodeError...: the full check decides
        return None
    sign = EVENT_TYPES.get(doc.type)
    if sign is None:
        return None
    occurred = _parse_time(doc.occurredAt)
    if occurred is None or occurred > (now or datetime.now(UTC)) + FUTURE_TOLERANCE:
        return None
    signed = doc.type == "adjustment"
    deltas = []
    cache = _SKU_CACHE
    for line in doc.lines:
        sku = cache.get(line.sku) or normalise_sku(line.sku)
        qty = line.qty
        if not sku or not (qty > 0 or (signed and qty < 0)):
            return None
        deltas.append((sku, sign * qty))
    key = occurred.isoformat(timespec="microseconds")[:-6] + "Z"
    return SaleEvent(doc.eventId, doc.storeId, doc.type, occurred, tuple(deltas), key)


def parse_event(body: bytes | str, *, source: str = "", now: datetime | None = None) -> SaleEvent | InvalidEvent:
    """Validate one event against the contract; never raises for bad input.

    Two paths, one result: a typed decode of the exact contract shape (:func:`_fast`, what almost every event
    takes), else the full check below, which names the reason. The full check is written for speed too:
    exact ``type(...) is`` checks instead of isinstance (a bool is not an int here anyway), one pass over the
    lines."""
    raw = body.encode("utf-8", "surrogatepass") if type(body) is str else bytes(body)
    if len(raw) > MAX_EVENT_BYTES:
        return InvalidEvent("too_large", f"{len(raw):,} bytes; the limit is {MAX_EVENT_BYTES:,}", raw, source)
    fast = _fast(raw, now)
    if fast is not None:
        return fast
    return _parse_full(raw, source, now)


def _parse_full(raw: bytes, source: str, now: datetime | None) -> SaleEvent | InvalidEvent:
    try:
        doc = orjson.loads(raw)  # strict UTF-8 and RFC 8259 (no NaN); twice as fast as json here
    except orjson.JSONDecodeError as exc:
        return InvalidEvent("bad_json", f"not UTF-8 JSON: {exc}", raw, source)
    if type(doc) is not dict:
        return InvalidEvent("bad_json", f"expected a JSON object, got {type(doc).__name__}", raw, source)
    store_id = doc.get("storeId")
    store = store_id if type(store_id) is str else None
    if None in (doc.get("eventId"), store_id, doc.get("type"), doc.get("occurredAt"), doc.get("lines")):
        missing = [k for k in _REQUIRED if doc.get(k) is None]
        return InvalidEvent("missing_field", f"missing: {', '.join(missing)}", raw, source, store)
    event_id, kind = doc["eventId"], doc["type"]
    if type(event_id) is not str or not _EVENT_ID.fullmatch(event_id):
        return InvalidEvent("bad_event_id", f"eventId {str(event_id)[:80]!r} is not 1-128 printable ASCII "
                            "characters", raw, source, store)
    if store is None or not STORE_ID_PATTERN.fullmatch(store):
        return InvalidEvent("bad_store_id", f"storeId {str(store_id)[:80]!r} does not match "
                            "^[A-Za-z0-9_-]{1,64}$", raw, source)
    sign = EVENT_TYPES.get(kind) if type(kind) is str else None
    if sign is None:
        return InvalidEvent("unknown_type", f"type {str(kind)[:40]!r} is not one of {', '.join(EVENT_TYPES)}",
                            raw, source, store)
    occurred = _parse_time(doc["occurredAt"])
    if occurred is None:
        return InvalidEvent("bad_timestamp", f"occurredAt {str(doc['occurredAt'])[:60]!r} is not ISO-8601 with "
                            "an offset", raw, source, store)
    now = now or datetime.now(UTC)
    if occurred > now + FUTURE_TOLERANCE:
        return InvalidEvent("future_timestamp", f"occurredAt {doc['occurredAt']} is more than 24 h ahead of "
                            f"{time_key(now)}", raw, source, store)
    lines = doc["lines"]
    if type(lines) is not list or not lines:
        return InvalidEvent("no_lines", "lines must be a non-empty list", raw, source, store)
    if len(lines) > MAX_LINES:
        return InvalidEvent("too_many_lines", f"{len(lines)} lines; at most {MAX_LINES} per event", raw, source,
                            store)
    signed = kind == "adjustment"
    deltas: list[tuple[str, int]] = []
    for i, line in enumerate(lines, 1):
        if type(line) is not dict:
            return InvalidEvent("missing_sku", f"line {i} is not an object", raw, source, store)
        sku = line.get("sku")
        sku = normalise_sku(sku) if type(sku) is str else ""
        if not sku:
            return InvalidEvent("missing_sku", f"line {i} has no sku", raw, source, store)
        qty = line.get("qty")
        if type(qty) is not int or not (0 < qty <= MAX_ABS_QTY or (signed and -MAX_ABS_QTY <= qty < 0)):
            return InvalidEvent("bad_qty", f"line {i}: qty {str(qty)[:40]!r} is not valid for a {kind}", raw,
                                source, store)
        price = line.get("unitPrice")
        if price is not None and ((type(price) is not int and type(price) is not float)
                                  or not 0 <= price < _INF):
            return InvalidEvent("bad_price", f"line {i}: unitPrice {str(price)[:40]!r} is not a non-negative "
                                "number", raw, source, store)
        deltas.append((sku, sign * qty))
    key = occurred.isoformat(timespec="microseconds")[:-6] + "Z"  # occurred is UTC: "...+00:00" -> "...Z"
    return SaleEvent(event_id, store, kind, occurred, tuple(deltas), key)


def event_content(occurred_key: str, deltas: Iterable[Sequence]) -> tuple:
    """What makes two deliveries of one eventId the same event: its time and its deltas (in any line order).
    A resend carries the same; another content under the same id is a ``conflicting_duplicate``."""
    return occurred_key, tuple(sorted((str(sku), int(delta)) for sku, delta in deltas))


def dedupe(events: Iterable[SaleEvent]) -> tuple[list[SaleEvent], list[SaleEvent]]:
    """Split into (first delivery of each (store, eventId), repeats within the same batch)."""
    seen: set[tuple[str, str]] = set()
    first: list[SaleEvent] = []
    repeats: list[SaleEvent] = []
    for e in events:
        key = (e.store_id, e.event_id)
        (repeats if key in seen else first).append(e)
        seen.add(key)
    return first, repeats


def coalesce(events: Iterable[SaleEvent]) -> dict[str, int]:
    """The deltas of many events summed per sku (one store's events); zero sums are kept (the document
    is still touched, so a sku seen only in cancelling events exists)."""
    out: dict[str, int] = {}
    for e in events:
        for sku, delta in e.deltas:
            out[sku] = out.get(sku, 0) + delta
    return out


def counts_after(baseline_key: str | None, events: Sequence[SaleEvent]) -> list[SaleEvent]:
    """The events that add to a baseline taken at ``baseline_key`` (the stock invariant: occurredAt > T)."""
    if baseline_key is None:
        return list(events)
    return [e for e in events if e.occurred_key > baseline_key]


def event_json(event: SaleEvent) -> dict:
    """A valid event back as contract JSON (quantities unsigned again; the time in UTC)."""
    sign = EVENT_TYPES[event.type]
    return {"eventId": event.event_id, "storeId": event.store_id, "type": event.type,
            "occurredAt": event.occurred_key, "lines": [{"sku": s, "qty": d * sign} for s, d in event.deltas]}


def reasons_markdown() -> str:
    """The README's table of event reason codes, generated from :data:`EVENT_REASONS`."""
    rows = ["| reason code | the event is dead-lettered when |", "|---|---|"]
    rows += [f"| `{r.code}` | {r.description} |" for r in EVENT_REASONS]
    return "\n".join(rows)
