"""Use case: accept sale events over HTTP (``POST /api/sales``) for POS systems that cannot speak AMQP.

The body is one event (a JSON object), a JSON array of events, or JSON lines. Every event is validated
with the same contract as the Event Hub trigger; valid ones are forwarded to the events sink (Event Hubs,
partition key = storeId; locally the embedded queue) exactly as received, invalid ones are dead-lettered
and reported back per event, so the sender can fix them.

Status codes: 202 at least one event accepted (per-event results in the body); 422 every event invalid;
400 the body is not JSON or JSON lines at all; 413 the body is over the size limit; 503 the sink failed
(nothing is lost: the sender retries, and the stock store recognises events already forwarded).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.core.events import InvalidEvent, SaleEvent, parse_event
from shared.ports.events import EventSink, OutgoingEvent
from shared.ports.lake import Lake
from shared.ports.telemetry import Telemetry
from shared.services.apply_sales import write_deadletters


@dataclass(frozen=True)
class IngressResponse:
    status: int
    body: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> str:
        return json.dumps(self.body)


class UnparseableBody(ValueError):
    pass


def split_body(body: bytes) -> list[bytes]:
    """The event bodies in a request: one object, a JSON array's elements, or JSON lines."""
    text = body.strip()
    if not text:
        raise UnparseableBody("the body is empty; send one event as a JSON object, a JSON array, or JSON lines")
    try:
        doc = json.loads(text)
    except ValueError:  # UnicodeDecodeError too: in JSON lines, a line that is not UTF-8 is that event's fault
        doc = None
    else:
        if isinstance(doc, dict):
            return [text]
        if isinstance(doc, list):
            # "surrogatepass": an element holding a lone surrogate ("\ud800", which Python's decoder lets
            # through) becomes bytes that are not UTF-8, so that event is rejected as bad_json, not the request.
            return [json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogatepass") for e in doc]
        raise UnparseableBody(f"the body is a JSON {type(doc).__name__}; send an object, an array, or JSON lines")
    lines = [line.strip() for line in text.split(b"\n") if line.strip()]
    if len(lines) < 2:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise UnparseableBody("the body is not UTF-8") from None
        raise UnparseableBody("the body is not valid JSON (nor JSON lines)")
    parsed = 0
    for line in lines:
        try:
            json.loads(line)
            parsed += 1
        except ValueError:
            pass
    if parsed == 0:
        raise UnparseableBody("no line of the body is JSON; send one event as a JSON object, an array, or JSON lines")
    return lines


def accept_sales(body: bytes, *, sink: EventSink, lake: Lake, telemetry: Telemetry, max_bytes: int,
                 now: datetime | None = None) -> IngressResponse:
    if len(body) > max_bytes:
        return IngressResponse(413, {"error": "payload_too_large",
                                     "message": f"the body is {len(body):,} bytes; the limit is {max_bytes:,}. "
                                                "Split the events over several requests."})
    try:
        bodies = split_body(body)
    except UnparseableBody as exc:
        return IngressResponse(400, {"error": "unparseable_body", "message": str(exc)})
    now = now or datetime.now(UTC)
    results: list[dict] = []
    valid: list[tuple[SaleEvent, bytes]] = []
    invalid: list[InvalidEvent] = []
    for i, raw in enumerate(bodies):
        parsed = parse_event(raw, source=f"http:{i}", now=now)
        if isinstance(parsed, SaleEvent):
            valid.append((parsed, raw))
            results.append({"index": i, "eventId": parsed.event_id, "status": "accepted"})
        else:
            invalid.append(parsed)
            event_id = _event_id(raw)
            results.append({"index": i, **({"eventId": event_id} if event_id else {}), "status": "rejected",
                            "reason": parsed.reason, "detail": parsed.detail})
    write_deadletters(lake, invalid, now=now)
    if valid:
        try:
            sink.send([OutgoingEvent(e.store_id, raw) for e, raw in valid])
        except Exception as exc:  # the sink is down: tell the sender to retry; nothing was half-accepted
            telemetry.event("SalesIngressFailed", error=f"{type(exc).__name__}: {exc}"[:300], events=len(valid))
            return IngressResponse(503, {"error": "events_unavailable",
                                         "message": "the event stream is unavailable; retry the same request "
                                                    "later (events already forwarded are recognised)"},
                                   {"Retry-After": "5"})
    telemetry.metric("sales_http_accepted", len(valid))
    if invalid:
        telemetry.metric("sales_http_rejected", len(invalid))
    status = 202 if valid else 422
    return IngressResponse(status, {"accepted": len(valid), "rejected": len(invalid), "results": results})


def _event_id(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    value = doc.get("eventId") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


__all__: Sequence[str] = ("IngressResponse", "accept_sales", "split_body")
