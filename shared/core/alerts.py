"""Alert rules and their de-duplication: pure functions from plain facts to the alerts on-call should see.

The kinds are data (:data:`ALERT_KINDS`): the README, the telemetry names, the alert rules in Azure and the
tests share the list. Every alert names its store (and sku where it applies), a severity, and a reason a
person can act on without opening a log.

De-duplication (:func:`deduplicate`): an alert is keyed by kind + store + subject (sku, dump, day). It is
raised when first true; while it stays true it is raised again only after the cool-down, or at once when it
*worsens* (its severity rises: low stock that ran out, a dump that is now two days late). An alert that is
no longer true is forgotten, so if it comes back it is raised at once. The state is plain data the service
keeps in the lake between runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.core.events import time_key

# Azure Monitor severities: 0 critical, 1 error, 2 warning, 3 informational, 4 verbose.
CRITICAL, ERROR, WARNING, INFORMATIONAL = 0, 1, 2, 3
SEVERITY_NAMES = {CRITICAL: "critical", ERROR: "error", WARNING: "warning", INFORMATIONAL: "informational"}


@dataclass(frozen=True)
class AlertKind:
    name: str
    severity: int  # the usual severity; some rules raise it when the condition is worse
    when: str  # when it fires
    action: str  # what on-call (or the store) should do


ALERT_KINDS: tuple[AlertKind, ...] = (
    AlertKind("LowStock", WARNING, "an active item with a reorder point above zero has on hand <= reorder "
              "point (docs/ingestion.md); error when it has run out (on hand <= 0)",
              "reorder from the vendor (the alert suggests a quantity covering lead time + safety days)"),
    AlertKind("NegativeStock", ERROR, "on hand is below zero: more was sold than the counts and receipts "
              "explain", "recount the item in the store; check for unrecorded receipts or wrong skus at the till"),
    AlertKind("StaleDump", ERROR, "a store's latest ingested dump was taken more than ALERT_STALE_DUMP_HOURS "
              "ago; critical at twice that", "check the store agent (machine on? network? `inventory agent "
              "upload` by hand) and raw/ for uploads that did not ingest"),
    AlertKind("DumpQuarantined", ERROR, "a dump could not be read and was set aside in quarantine/",
              "read quarantine/store=<id>/<key>/reason.json; fix the source (or the mapping) and upload again"),
    AlertKind("IngestFailure", CRITICAL, "a dump landed in raw/ more than ALERT_INGEST_GRACE_MINUTES ago and "
              "has neither a manifest nor a quarantine record naming it or recording its content: the blob trigger "
              "failed",
              "look at the ingest_dump function's failures in Application Insights; rerun with "
              "`inventory ingest` once fixed"),
    AlertKind("DumpHistoryChanged", WARNING, "a store's dump brought other values for lines the lake already "
              "held (changed_since_ingested: an edited quantity, price, sku or time); once per dump that brought "
              "a change not reported before",
              "ask the store why past sales or receipts were edited (a void re-rung as an edit, a POS bug, a "
              "restored backup); the lake kept the first version, the new values are in rejected/<table> with "
              "reason_code changed_since_ingested and kept_dump_id"),
    AlertKind("UnusualSales", WARNING, "a store x sku sold far outside its forecast interval on the last "
              "complete day (at least 5 units off)", "check for a promotion, a pricing or scanning error, "
              "theft, or a stock-out; confirm the count"),
)
KINDS = {k.name: k for k in ALERT_KINDS}


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: int
    store_id: str
    reason: str
    subject: str = ""  # what within the store: the sku, the dump, the day ("" for store-wide alerts)
    sku: str | None = None
    dimensions: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.store_id}|{self.subject}"

    def to_json(self) -> dict:
        out: dict = {"kind": self.kind, "severity": SEVERITY_NAMES[self.severity], "severityLevel": self.severity,
                     "storeId": self.store_id}
        if self.sku is not None:
            out["sku"] = self.sku
        out["reason"] = self.reason
        out.update(self.dimensions)
        return out


# --- the facts the rules read ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemStock:
    """One store x sku: live stock joined with the item's master data and its forecast."""

    store_id: str
    sku: str
    name: str
    active: bool
    on_hand: int
    reorder_point: int
    reorder_qty: int = 0
    vendor_id: str = ""
    lead_time_days: int = 7
    mean_daily_demand: float | None = None  # from the forecast; None when there is none
    suggested_order: int | None = None


@dataclass(frozen=True)
class StoreDumps:
    """What the lake knows of one store's dumps."""

    store_id: str
    last_snapshot_at: datetime | None  # the latest ingested dump's snapshot time; None: never ingested
    quarantined: tuple[tuple[str, str, str], ...] = ()  # (key, reason_code, reason) of quarantined dumps
    unprocessed: tuple[tuple[str, datetime], ...] = ()  # (raw path, landed at) with no manifest/quarantine
    history_changed: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()  # (dump id, ((table, lines),))


@dataclass(frozen=True)
class DaySales:
    """A store x sku's units on the last complete day against its forecast interval for that day."""

    store_id: str
    sku: str
    day: str  # YYYY-MM-DD
    units: int
    expected: float
    lower: float
    upper: float


# --- the rules ---------------------------------------------------------------------------------------


def is_low_stock(item: ItemStock) -> bool:
    """Low on stock (docs/ingestion.md): active, reorder point above zero, on hand at or below the reorder point."""
    return item.active and item.reorder_point > 0 and item.on_hand <= item.reorder_point


def stock_alerts(items: Iterable[ItemStock]) -> list[Alert]:
    out: list[Alert] = []
    for it in items:
        label = f"{it.sku} ({it.name})" if it.name else it.sku
        if it.on_hand < 0:
            out.append(Alert("NegativeStock", ERROR, it.store_id,
                             f"{label} shows {it.on_hand} on hand in store {it.store_id}: recount it and check "
                             "recent receipts and till scans", it.sku, it.sku, {"onHand": it.on_hand}))
        if not is_low_stock(it):
            continue
        cover = None
        if it.mean_daily_demand is not None and it.mean_daily_demand > 0:
            cover = max(it.on_hand, 0) / it.mean_daily_demand
        dims: dict[str, object] = {"onHand": it.on_hand, "reorderPoint": it.reorder_point,
                                   "vendorId": it.vendor_id, "leadTimeDays": it.lead_time_days}
        text = f"{label} in store {it.store_id}: {it.on_hand} on hand, reorder point {it.reorder_point}"
        if cover is not None:
            dims["daysOfCover"] = round(cover, 1)
            text += f", about {cover:.1f} days of cover"
            if cover < it.lead_time_days:
                text += f" (less than the {it.lead_time_days}-day lead time of vendor {it.vendor_id or '?'})"
        if it.suggested_order:
            dims["suggestedOrder"] = it.suggested_order
            text += f"; order {it.suggested_order} from {it.vendor_id or 'the vendor'}"
        else:
            text += "; reorder"
        severity = ERROR if it.on_hand <= 0 else WARNING
        out.append(Alert("LowStock", severity, it.store_id, text, it.sku, it.sku, dims))
    return out


def dump_alerts(stores: Iterable[StoreDumps], *, now: datetime, stale_after: timedelta,
                ingest_grace: timedelta) -> list[Alert]:
    out: list[Alert] = []
    for s in stores:
        if s.last_snapshot_at is None:
            if not s.unprocessed and not s.quarantined:
                continue
            age = None
        else:
            age = now - s.last_snapshot_at
        if age is not None and age > stale_after:
            hours = age.total_seconds() / 3600
            severity = CRITICAL if age > 2 * stale_after else ERROR
            out.append(Alert("StaleDump", severity, s.store_id,
                             f"store {s.store_id}'s latest dump was taken {hours:.0f} h ago (at "
                             f"{time_key(s.last_snapshot_at)[:16]}Z; alert after "
                             f"{stale_after.total_seconds() / 3600:.0f} h): check the store agent and raw/",
                             dimensions={"ageHours": round(hours, 1),
                                         "lastSnapshotAt": time_key(s.last_snapshot_at)}))
        for key, code, reason in s.quarantined:
            out.append(Alert("DumpQuarantined", ERROR, s.store_id,
                             f"a dump of store {s.store_id} was quarantined ({code}): {reason}", key,
                             dimensions={"reasonCode": code, "quarantineKey": key}))
        for dump_id, changed in s.history_changed:
            lines = sum(n for _, n in changed)
            what = ", ".join(f"{n} {table} line(s)" for table, n in changed)
            out.append(Alert("DumpHistoryChanged", WARNING, s.store_id,
                             f"dump {dump_id} of store {s.store_id} changed {what} the lake already held: the lake "
                             "kept the first version; the new values are in rejected/ (changed_since_ingested)",
                             dump_id, dimensions={"dumpId": dump_id, "linesChanged": lines,
                                                  **{f"{table}Changed": n for table, n in changed}}))
        for path, landed in s.unprocessed:
            if now - landed > ingest_grace:
                minutes = (now - landed).total_seconds() / 60
                out.append(Alert("IngestFailure", CRITICAL, s.store_id,
                                 f"{path} landed {minutes:.0f} min ago and was neither ingested nor quarantined: "
                                 "the ingest_dump function is failing on it", path,
                                 dimensions={"rawPath": path, "minutesSinceLanding": round(minutes)}))
    return out


MIN_UNUSUAL_UNITS = 5  # a difference smaller than this is never worth a page, whatever the interval says


def unusual_sales_alerts(days: Iterable[DaySales]) -> list[Alert]:
    out: list[Alert] = []
    for d in days:
        high = d.units > d.upper and d.units - d.expected >= MIN_UNUSUAL_UNITS
        low = d.units < d.lower and d.expected - d.units >= MIN_UNUSUAL_UNITS
        if not (high or low):
            continue
        direction = "above" if high else "below"
        out.append(Alert("UnusualSales", WARNING, d.store_id,
                         f"{d.sku} in store {d.store_id} sold {d.units} units on {d.day}, {direction} its forecast "
                         f"interval {d.lower:.0f}-{d.upper:.0f} (expected {d.expected:.1f})", f"{d.sku}@{d.day}", d.sku,
                         {"day": d.day, "units": d.units, "expected": round(d.expected, 2),
                          "lower": round(d.lower, 2), "upper": round(d.upper, 2)}))
    return out


# --- de-duplication -----------------------------------------------------------------------------------


def deduplicate(candidates: Iterable[Alert], state: Mapping[str, Mapping[str, object]], *, now: datetime,
                cooldown: timedelta) -> tuple[list[Alert], dict[str, dict[str, object]]]:
    """(alerts to raise now, the new state). ``state`` maps alert key -> {"raisedAt", "severity"}.

    Raised: new keys; keys whose severity rose (a lower number is more severe); keys last raised longer
    than ``cooldown`` ago. Kept quiet: the rest. Forgotten: keys no longer among the candidates.
    """
    raised: list[Alert] = []
    new_state: dict[str, dict[str, object]] = {}
    for alert in candidates:
        prev = state.get(alert.key)
        if prev is not None:
            last = datetime.fromisoformat(str(prev["raisedAt"]).replace("Z", "+00:00"))
            worse = alert.severity < int(prev.get("severity", math.inf))  # type: ignore[arg-type]
            if not worse and now - last < cooldown:
                new_state[alert.key] = dict(prev)
                continue
        raised.append(alert)
        new_state[alert.key] = {"raisedAt": time_key(now), "severity": alert.severity}
    return raised, new_state
