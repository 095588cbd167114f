"""Use case: apply a batch of POS sale events to the stock store (what the Event Hub trigger does).

    raw bodies ──validate──▶ invalid ──▶ deadletter/events/date=<d>/<batch>.jsonl (raw body + reason)
                      └────▶ valid ──dedupe within the batch──▶ per store ──▶ StockStore.apply

The dead-letter file is written before anything is applied and is named by the batch's content, so a
redelivered batch rewrites the same file instead of adding a second copy. The stock store makes each event
count once (its ledger), so redelivery after a crash is safe. An eventId delivered again with another time
or other lines (a sender reusing ids) is not applied: it is dead-lettered as ``conflicting_duplicate``
after the apply (the first version counts).
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.core import layout
from shared.core.events import InvalidEvent, RawEvent, SaleEvent, dedupe, event_content, parse_event, time_key
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.telemetry import Telemetry


@dataclass
class ApplyCounts:
    received: int = 0
    applied: int = 0
    duplicate: int = 0  # seen before (earlier batch, or twice in this one)
    before_baseline: int = 0  # already in the latest dump's count (occurredAt <= snapshot)
    deadlettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # dead-letter reason code -> count
    stores: int = 0
    operations: int = 0  # stock-store operations
    deadletter_path: str | None = None

    def add(self, other: ApplyCounts) -> None:
        for name in ("received", "applied", "duplicate", "before_baseline", "deadlettered", "stores", "operations"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, n in other.reasons.items():
            self.reasons[code] = self.reasons.get(code, 0) + n

    def to_json(self) -> dict:
        return {"received": self.received, "applied": self.applied, "duplicate": self.duplicate,
                "before_baseline": self.before_baseline, "deadlettered": self.deadlettered,
                "reasons": dict(sorted(self.reasons.items())), "stores": self.stores}


def _body_fields(body: bytes) -> dict:
    """The raw body as kept in a dead-letter record: text when it is UTF-8, else base64 (byte for byte)."""
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"bodyBase64": base64.b64encode(body).decode("ascii")}


def deadletter_record(bad: InvalidEvent, received_at: str) -> dict:
    return {"reason": bad.reason, "detail": bad.detail, "source": bad.source, "storeId": bad.store_id,
            "receivedAt": received_at, **_body_fields(bad.body)}


def write_deadletters(lake: Lake, invalid: Sequence[InvalidEvent], *, now: datetime) -> str | None:
    """Write the batch's invalid events as one JSON-lines file; returns its lake path."""
    if not invalid:
        return None
    digest = hashlib.sha256()
    for bad in invalid:
        digest.update(bad.source.encode() + b"\0" + bad.body + b"\0")
    path = layout.dead_lettered_events(now.date(), digest.hexdigest()[:24])
    received_at = time_key(now)
    lines = [json.dumps(deadletter_record(bad, received_at), ensure_ascii=False) for bad in invalid]
    lake.put_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def apply_sales(raw: Sequence[RawEvent], *, stock: StockStore, lake: Lake, telemetry: Telemetry,
                now: datetime | None = None) -> ApplyCounts:
    """Validate, dead-letter and apply one batch. Raises only when the lake or the stock store fails (the
    caller retries the whole batch; nothing counts twice)."""
    now = now or datetime.now(UTC)
    counts = ApplyCounts(received=len(raw))
    valid, raw_of, invalid = _parse_batch(raw, now)
    counts.deadletter_path = write_deadletters(lake, invalid, now=now)
    counts.deadlettered = len(invalid)
    for bad in invalid:
        counts.reasons[bad.reason] = counts.reasons.get(bad.reason, 0) + 1

    first, repeats = dedupe(valid)
    conflicting = _conflicting_repeats(first, repeats)
    counts.duplicate = len(repeats) - len(conflicting)
    by_store: dict[str, list[SaleEvent]] = {}
    for e in first:
        by_store.setdefault(e.store_id, []).append(e)
    counts.stores = len(by_store)
    result = stock.apply_batch(by_store)
    counts.applied = len(result.applied)
    counts.duplicate += len(result.duplicates)
    counts.before_baseline = len(result.before_baseline)
    counts.operations = result.operations
    if result.conflicting:
        keys = set(result.conflicting)
        conflicting += [(e, "this eventId was applied before with another time or other lines")
                        for e in first if (e.store_id, e.event_id) in keys]
    if conflicting:  # after the stock's commit: a redelivery finds them conflicting again, and rewrites this file
        _set_conflicting_aside(lake, conflicting, raw_of, counts, now)
    _report(telemetry, counts, first, now)
    return counts


def _parse_batch(raw: Sequence[RawEvent], now: datetime,
                 ) -> tuple[list[SaleEvent], dict[int, RawEvent], list[InvalidEvent]]:
    """(valid events, id(event) -> its delivery (to set a conflicting one aside whole), invalid events)."""
    valid: list[SaleEvent] = []
    raw_of: dict[int, RawEvent] = {}
    invalid: list[InvalidEvent] = []
    for r in raw:
        parsed = parse_event(r.body, source=r.source, now=now)
        if isinstance(parsed, SaleEvent):
            valid.append(parsed)
            raw_of[id(parsed)] = r
        else:
            invalid.append(parsed)
    return valid, raw_of, invalid


def _conflicting_repeats(first: list[SaleEvent], repeats: list[SaleEvent]) -> list[tuple[SaleEvent, str]]:
    """The repeats of an eventId in the batch whose time or lines differ from its first version's, with why.
    Compared by content only when an id repeats in the batch (a few percent of batches)."""
    if not repeats:
        return []
    again = {(e.store_id, e.event_id) for e in repeats}
    content = {k: event_content(e.occurred_key, e.deltas)
               for e in first if (k := (e.store_id, e.event_id)) in again}
    return [(e, "the same eventId came earlier in this batch with another time or other lines")
            for e in repeats
            if event_content(e.occurred_key, e.deltas) != content[(e.store_id, e.event_id)]]


def _set_conflicting_aside(lake: Lake, conflicting: list[tuple[SaleEvent, str]], raw_of: dict[int, RawEvent],
                           counts: ApplyCounts, now: datetime) -> None:
    """Dead-letter the conflicting events as ``conflicting_duplicate`` (the first version counts)."""
    set_aside = [InvalidEvent("conflicting_duplicate", f"eventId {e.event_id}: {why}; the first version "
                              "counts", raw_of[id(e)].body, raw_of[id(e)].source, store_id=e.store_id)
                 for e, why in conflicting]
    path = write_deadletters(lake, set_aside, now=now)
    counts.deadletter_path = counts.deadletter_path or path
    counts.deadlettered += len(set_aside)
    counts.reasons["conflicting_duplicate"] = len(set_aside)


def _report(telemetry: Telemetry, counts: ApplyCounts, first: list[SaleEvent], now: datetime) -> None:
    """The batch's telemetry: what was dead-lettered, applied, ignored, and how far behind the tills it is."""
    if counts.deadlettered:
        telemetry.event("EventsDeadLettered", count=counts.deadlettered, reasons=dict(counts.reasons),
                        path=counts.deadletter_path)
        for code, n in counts.reasons.items():
            telemetry.metric("events_deadlettered", n, reason=code)
    telemetry.metric("events_applied", counts.applied)
    if first:  # how far behind the tills the stock is: seconds from the sale to its application
        lags = [(now - e.occurred_at).total_seconds() for e in first]
        telemetry.metric("events_lag_s", round(statistics.median(lags), 3), stat="median")
        telemetry.metric("events_lag_s", round(max(lags), 3), stat="max")
    if counts.duplicate:
        telemetry.metric("events_duplicate", counts.duplicate)
    if counts.before_baseline:
        telemetry.metric("events_before_baseline", counts.before_baseline)


def deadletter_failed_batch(lake: Lake, raw: Sequence[RawEvent], error: BaseException, *,
                            now: datetime | None = None) -> str:
    """Set a whole batch aside after the stock store failed on its last retry, so the checkpoint can move on
    without losing it. Replay with ``inventory events apply`` once the store is healthy (duplicates of
    anything that did apply are recognised)."""
    now = now or datetime.now(UTC)
    digest = hashlib.sha256(b"".join(r.source.encode() + b"\0" + r.body + b"\0" for r in raw)).hexdigest()[:24]
    path = layout.failed_batch(now.date(), digest)
    detail = f"{type(error).__name__}: {error}"[:500]
    lines = [json.dumps({"reason": "apply_failed", "detail": detail, "source": r.source, "storeId": None,
                         "receivedAt": time_key(now), **_body_fields(r.body)}, ensure_ascii=False) for r in raw]
    lake.put_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def apply_delivered_batch(raw: Sequence[RawEvent], *, stock: StockStore, lake: Lake, telemetry: Telemetry,
                          last_attempt: bool, now: datetime | None = None) -> ApplyCounts | str:
    """What the Event Hub trigger runs: :func:`apply_sales`, and on the last retry of a failing batch,
    :func:`deadletter_failed_batch` instead of an exception, because Event Hubs moves the checkpoint past a
    batch whose function failed and the events would otherwise be lost. Returns the counts, or the
    dead-letter path of a batch set aside. Earlier attempts re-raise so the trigger's retry policy runs."""
    try:
        return apply_sales(raw, stock=stock, lake=lake, telemetry=telemetry, now=now)
    except Exception as exc:
        if not last_attempt:
            raise
        path = deadletter_failed_batch(lake, raw, exc, now=now)
        telemetry.event("EventBatchSetAside", events=len(raw), path=path,
                        error=f"{type(exc).__name__}: {exc}"[:300])
        telemetry.metric("events_set_aside", len(raw))
        return path
