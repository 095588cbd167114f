"""Sale events (handbook §4): validation against the contract, reason codes as data, and the delta math.

Pure: bytes in, :class:`SaleEvent` or :class:`InvalidEvent` out. No I/O, no Azure. Every adapter and
service that touches events goes through :func:`parse_event`, so the HTTP ingress, the Event Hub trigger
and ``inventory events apply`` accept and refuse exactly the same things.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.core.ids import STORE_ID_PATTERN

EVENT_TYPES = {"sale": -1, "return": +1, "receipt": +1, "adjustment": +1}  # sign applied to qty
MAX_EVENT_BYTES = 64 * 1024
# One event's ledger item and its stock patches share one Cosmos transactional batch (100 operations):
# 1 ledger item + 1 baseline guard + at most 64 distinct skus leaves room to coalesce a few events.
MAX_LINES = 64
MAX_ABS_QTY = 1_000_000
MAX_EVENT_ID_CHARS = 128
FUTURE_TOLERANCE = timedelta(hours=24)  # clock skew we accept; later timestamps are sender bugs

_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: safe as a document id part
_WS = re.compile(r"\s+")


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
)
REASON_CODES = frozenset(r.code for r in EVENT_REASONS)


@dataclass(frozen=True)
class SaleEvent:
    """A valid event: skus normalised, quantities as signed stock deltas, time in UTC."""

    event_id: str
    store_id: str
    type: str
    occurred_at: datetime  # aware, UTC
    deltas: tuple[tuple[str, int], ...]  # (sku, signed delta), one per line, in order

    @property
    def occurred_key(self) -> str:
        """Fixed-width UTC text (``2026-11-27T09:15:03.000000Z``): sorts like the time it names."""
        return time_key(self.occurred_at)

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
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_sku(raw: str) -> str:
    """The dump rule ``sku_normalised`` in Python: trim, upper-case, inner whitespace to one space."""
    return _WS.sub(" ", raw.strip()).upper()


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_event(body: bytes | str, *, source: str = "", now: datetime | None = None) -> SaleEvent | InvalidEvent:
    """Validate one event against the contract; never raises for bad input."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)

    def bad(reason: str, detail: str, store: str | None = None) -> InvalidEvent:
        return InvalidEvent(reason, detail, raw, source, store)

    if len(raw) > MAX_EVENT_BYTES:
        return bad("too_large", f"{len(raw):,} bytes; the limit is {MAX_EVENT_BYTES:,}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return bad("bad_json", f"not UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return bad("bad_json", f"expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in ("eventId", "storeId", "type", "occurredAt", "lines") if doc.get(k) is None]
    store = doc.get("storeId") if isinstance(doc.get("storeId"), str) else None
    if missing:
        return bad("missing_field", f"missing: {', '.join(missing)}", store)
    event_id, store_id, kind = doc["eventId"], doc["storeId"], doc["type"]
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        return bad("bad_event_id", f"eventId {str(event_id)[:80]!r} is not 1-128 printable ASCII characters", store)
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.fullmatch(store_id):
        return bad("bad_store_id", f"storeId {str(store_id)[:80]!r} does not match ^[A-Za-z0-9_-]{{1,64}}$")
    if kind not in EVENT_TYPES:
        return bad("unknown_type", f"type {str(kind)[:40]!r} is not one of {', '.join(EVENT_TYPES)}", store_id)
    occurred = _parse_time(doc["occurredAt"])
    if occurred is None:
        return bad("bad_timestamp", f"occurredAt {str(doc['occurredAt'])[:60]!r} is not ISO-8601 with an offset",
                   store_id)
    now = now or datetime.now(UTC)
    if occurred > now + FUTURE_TOLERANCE:
        return bad("future_timestamp", f"occurredAt {doc['occurredAt']} is more than 24 h ahead of {time_key(now)}",
                   store_id)
    lines = doc["lines"]
    if not isinstance(lines, list) or not lines:
        return bad("no_lines", "lines must be a non-empty list", store_id)
    if len(lines) > MAX_LINES:
        return bad("too_many_lines", f"{len(lines)} lines; at most {MAX_LINES} per event", store_id)
    sign = EVENT_TYPES[kind]
    deltas: list[tuple[str, int]] = []
    for i, line in enumerate(lines, 1):
        if not isinstance(line, dict):
            return bad("missing_sku", f"line {i} is not an object", store_id)
        sku = line.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            return bad("missing_sku", f"line {i} has no sku", store_id)
        qty = line.get("qty")
        if not _is_int(qty) or qty == 0 or abs(qty) > MAX_ABS_QTY or (kind != "adjustment" and qty < 0):
            return bad("bad_qty", f"line {i}: qty {str(qty)[:40]!r} is not valid for a {kind}", store_id)
        price = line.get("unitPrice")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                                  or not price >= 0 or price == float("inf")):
            return bad("bad_price", f"line {i}: unitPrice {str(price)[:40]!r} is not a non-negative number",
                       store_id)
        deltas.append((normalise_sku(sku), sign * qty))
    return SaleEvent(event_id, store_id, kind, occurred, tuple(deltas))


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
    """The events that add to a baseline taken at ``baseline_key`` (handbook §5: occurredAt > T)."""
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
