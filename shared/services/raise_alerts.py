"""Use case: decide which alerts are true now, raise the ones on-call has not heard of (the timer
``raise_alerts`` and ``inventory alerts``).

    lake (manifests/, quarantine/, raw/; Delta: curated items, aggregates) ─┐
    stock store (live on-hand) ─────────────────────────────────────────────┼─▶ core.alerts rules ─▶ deduplicate
                                                                             │       (state: alerts/state.json)
                                                                             └─▶ telemetry: a custom event per alert

Telemetry is how alerts leave the app: each raised alert is a custom event named after its kind (with its
dimensions as properties) and an ``alerts_raised`` metric; Azure Monitor alert rules on Application
Insights turn them into pages. The app never pages anyone itself.

The item master, the forecast and the sales check are read from Delta tables (``curated/items``,
``curated/vendors``, ``aggregates/forecast``, ``aggregates/sales_check``) with delta-rs's engine, each table
opened once per run (:func:`~shared.services.engines.open_snapshots`) and read for the store at hand only.
The stock alerts are kept from run to run, so a run reads from the stock store only the documents written
since the last one (:mod:`shared.services.stock_alerts`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.core import layout
from shared.core.aggregates import OUTPUTS
from shared.core.alerts import (
    SEVERITY_NAMES,
    Alert,
    DaySales,
    StoreDumps,
    deduplicate,
    dump_alerts,
    unusual_sales_alerts,
)
from shared.core.events import time_key
from shared.core.ids import InvalidStoreId
from shared.core.layout import parse_raw_dump_path
from shared.core.manifest import TableCounts
from shared.core.sql import sql_list
from shared.ports.lake import Lake, LakeError, LakeObject
from shared.ports.stock import StockStore
from shared.ports.tables import Tables
from shared.ports.telemetry import Telemetry
from shared.services.engines import open_snapshots
from shared.services.stock_alerts import stock_alerts_now

STATE_PATH = "alerts/state.json"
LOOKBACK = timedelta(days=7)  # quarantines and unprocessed uploads older than this are history, not alerts
# Hashing a raw blob's content stops past this many decompressed bytes (INGEST_MAX_DUMP_BYTES's default): the
# ingest quarantines a larger dump under the hash of the bytes as received, which is always computed.
MAX_HASHED_BYTES = 8 << 30
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AlertSettings:
    stale_after: timedelta = timedelta(hours=26)
    ingest_grace: timedelta = timedelta(minutes=60)
    cooldown: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, s) -> AlertSettings:  # noqa: ANN001 - shared.settings.Settings
        return cls(timedelta(hours=float(s.get("ALERT_STALE_DUMP_HOURS"))),
                   timedelta(minutes=float(s.get("ALERT_INGEST_GRACE_MINUTES"))),
                   timedelta(hours=float(s.get("ALERT_COOLDOWN_HOURS"))))


@dataclass
class AlertRun:
    raised: list[Alert] = field(default_factory=list)
    true_now: int = 0  # alerts whose condition holds (raised or kept quiet by the cool-down)
    by_kind: dict[str, int] = field(default_factory=dict)  # true now, per kind
    stock_docs_read: int = 0  # stock documents read from the stock store (what changed, and whole stores)
    stores_read_whole: int = 0  # stores whose every document was read (baseline or forecast moved, no state)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cached_records(lake: Lake, records: dict[str, dict], zone: str, suffix: str, stores: set[str],
                    summary: Callable[[str, dict], dict]) -> dict[str, dict]:
    """The JSON records under ``<zone>/store=<id>/…<suffix>``, each read once and kept as ``summary(store,
    record)`` (with the object's etag) in ``records`` (part of the alert state). A record rewritten in place (a
    quarantine of the same content under another name rewrites its ``reason.json``) is read again, keeping
    the ``sources`` and ``shas`` it had; records no longer in the lake are dropped. Adds the stores seen to
    ``stores``."""
    listed: set[str] = set()
    for obj in lake.list(f"{zone}/"):
        store = layout.store_in(obj.path, zone)
        if store is None or not obj.path.endswith(suffix):
            continue
        stores.add(store)
        listed.add(obj.path)
        prev = records.get(obj.path)
        if prev is None or prev.get("etag") != obj.etag:  # new, rewritten, or cached before etags were kept
            rec = summary(store, json.loads(lake.get_bytes(obj.path)))
            for key in ("sources", "shas"):
                rec[key] = sorted(set(rec[key]) | set((prev or {}).get(key, [])))
            records[obj.path] = {**rec, "etag": obj.etag}
    for path in set(records) - listed:
        del records[path]
    return records


def _present(*values: object) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def _metadata_sha(lake: Lake, obj: LakeObject) -> str | None:
    """The sha256 the store agent recorded in the blob's metadata: of the blob's bytes as uploaded (gzip), what
    a manifest or quarantine record keeps as ``received_sha256``. None for a blob put by other means. The
    folder lake lists without metadata: one ``head`` then (the caller caches the answer per etag)."""
    meta = obj.metadata
    if not meta:
        found = lake.head(obj.path)
        meta = found.metadata if found is not None else {}
    value = next((v for k, v in meta.items() if k.lower() == "sha256"), "").strip().lower()
    return value if _SHA256.fullmatch(value) else None


def _file_shas(local: Path) -> set[str]:
    """The sha256 of a file and, when it is gzip, of what it decompresses to: what the ingest records as a
    dump's ``received_sha256`` and ``sha256`` (the same functions as ``prepare_source``)."""
    from shared.services.dump_identity import content_shas

    return content_shas(local, MAX_HASHED_BYTES)


def _content_processed(lake: Lake, obj: LakeObject, known: set[str], seen: dict[str, dict],
                        kept: dict[str, dict]) -> bool:
    """Whether a raw blob that no manifest or quarantine record names has content that one of them records
    (``known``: their ``sha256`` and ``received_sha256``): the same dump sent again under another name, which
    the ingest answers with "already_ingested" and writes nothing for. Also True when the blob has gone
    meanwhile (nothing left to alert about).

    First the agent's metadata ``sha256``; failing that (no metadata: put by hand or another tool, or no
    match), the blob's content is hashed, once per blob version: ``seen`` (the alert state) keeps what was
    learnt per path and etag, ``kept`` receives the entries still in use."""
    if not known:  # nothing of the store was ever ingested or quarantined: no content to compare with
        return False
    entry = seen.get(obj.path)
    if entry is None or entry.get("etag") != obj.etag:
        entry = {"etag": obj.etag, "shas": _present(_metadata_sha(lake, obj)), "hashed": False}
    kept[obj.path] = entry
    if known.intersection(entry["shas"]):
        return True
    if not entry["hashed"]:
        try:
            with lake.local_copy([obj.path]) as [local]:
                found = _file_shas(local)
        except FileNotFoundError:
            del kept[obj.path]
            return True
        except (OSError, LakeError):  # unreadable now: it stays unprocessed (a page rather than a miss); retried
            return False
        entry["shas"] = sorted(set(entry["shas"]) | found)
        entry["hashed"] = True
    return bool(known.intersection(entry["shas"]))


def store_dumps(lake: Lake, cache: dict, *, now: datetime, ingest_grace: timedelta = timedelta(0)
                ) -> list[StoreDumps]:
    """Every store the lake has seen (raw/, manifests/, quarantine/), with its latest ingested snapshot,
    recent quarantines and recent uploads that were never processed. ``cache`` (part of the alert state)
    remembers what each manifest and quarantine record said, so each is read once.

    An upload counts as processed when a manifest or quarantine record of its store names it
    (``source_name``) or, once it is older than ``ingest_grace`` (before, the ingest may still be running),
    when one records its content's hash (:func:`_content_processed`): a dump sent again under another name
    is "already ingested" and leaves no record of its own."""
    stores: set[str] = set()
    manifests = _cached_records(lake, cache.setdefault("manifests", {}), "manifests", ".json", stores,
                                _manifest_summary)
    quarantines = _cached_records(lake, cache.setdefault("quarantines", {}), "quarantine", "/reason.json", stores,
                                  _quarantine_summary)
    known = _Known()
    latest = _latest_snapshots(manifests, known)
    changed = _recent_changes(manifests, now)
    recent_q = _recent_quarantines(quarantines, known, now)
    unprocessed = _unprocessed_uploads(lake, cache, stores, known, now=now, ingest_grace=ingest_grace)
    return [StoreDumps(s, latest.get(s), tuple(sorted(recent_q.get(s, []))), tuple(sorted(unprocessed.get(s, []))),
                       tuple(sorted(changed.get(s, [])))) for s in sorted(stores)]


def _manifest_summary(store: str, m: dict) -> dict:
    """What the alerts keep of a manifest (in the alert state)."""
    return {"store": store, "snapshotAt": m.get("snapshot_at"), "sources": _present(m.get("source_name")),
            "shas": _present(m.get("sha256"), m.get("received_sha256")), "dump": m.get("dump_id"),
            "ingestedAt": m.get("ingested_at"), "changed": _changed_lines(m)}


def _quarantine_summary(store: str, r: dict) -> dict:
    """What the alerts keep of a quarantine record (in the alert state)."""
    return {"store": store, "code": r.get("reason_code", "?"), "reason": r.get("reason", ""),
            "at": r.get("quarantined_at"), "sources": _present(r.get("source_name")),
            "shas": _present(r.get("received_sha256"))}


@dataclass
class _Known:
    """Per store, what its manifests and quarantine records name: the uploads (``source_name``) they processed,
    and the content hashes they record."""

    processed: dict[str, set[str]] = field(default_factory=dict)
    contents: dict[str, set[str]] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        self.processed.setdefault(record["store"], set()).update(record["sources"])
        self.contents.setdefault(record["store"], set()).update(record["shas"])


def _latest_snapshots(manifests: dict[str, dict], known: _Known) -> dict[str, datetime]:
    """Per store, the latest snapshot ingested; the manifests added to ``known``."""
    latest: dict[str, datetime] = {}
    for m in manifests.values():
        known.add(m)
        snap = _parse_time(m["snapshotAt"])
        if snap is not None and (m["store"] not in latest or snap > latest[m["store"]]):
            latest[m["store"]] = snap
    return latest


def _recent_changes(manifests: dict[str, dict], now: datetime,
                    ) -> dict[str, list[tuple[str, tuple[tuple[str, int], ...]]]]:
    """Per store, the dumps ingested within ``LOOKBACK`` that brought changes not reported before."""
    changed: dict[str, list[tuple[str, tuple[tuple[str, int], ...]]]] = {}
    for m in manifests.values():
        at = _parse_time(m.get("ingestedAt"))
        if m.get("changed") and at is not None and now - at <= LOOKBACK:
            changed.setdefault(m["store"], []).append((m["dump"], tuple(tuple(c) for c in m["changed"])))
    return changed


def _recent_quarantines(quarantines: dict[str, dict], known: _Known, now: datetime,
                        ) -> dict[str, list[tuple[str, str, str]]]:
    """Per store, the quarantines within ``LOOKBACK`` as (key, code, reason); the records added to ``known``."""
    recent_q: dict[str, list[tuple[str, str, str]]] = {}
    for path, q in quarantines.items():
        known.add(q)
        at = _parse_time(q["at"])
        if at is not None and now - at <= LOOKBACK:
            key = path.rsplit("/", 2)[-2]
            recent_q.setdefault(q["store"], []).append((key, q["code"], q["reason"]))
    return recent_q


def _unprocessed_uploads(lake: Lake, cache: dict, stores: set[str], known: _Known, *, now: datetime,
                         ingest_grace: timedelta) -> dict[str, list[tuple[str, datetime]]]:
    """Per store, the uploads within ``LOOKBACK`` that were never processed (see :func:`store_dumps`), as (path,
    landed). Adds the stores seen to ``stores``; keeps what was learnt of the raw blobs in ``cache["raw"]``."""
    unprocessed: dict[str, list[tuple[str, datetime]]] = {}
    seen: dict[str, dict] = cache.get("raw", {})
    kept: dict[str, dict] = {}
    for obj in lake.list(layout.RAW):
        try:
            store, _day, name = parse_raw_dump_path(obj.path)
        except (InvalidStoreId, ValueError):
            continue  # quarantined under store=_invalid by the trigger
        stores.add(store)
        landed = obj.last_modified
        if landed is None or now - landed > LOOKBACK or name in known.processed.get(store, set()):
            continue
        if now - landed > ingest_grace and _content_processed(lake, obj, known.contents.get(store, set()), seen,
                                                              kept):
            continue
        unprocessed.setdefault(store, []).append((obj.path, landed))
    cache["raw"] = kept
    return unprocessed


def _changed_lines(manifest: dict) -> list[list]:
    """[[table, lines]] of the fact tables in which the dump brought changes not reported before (read leniently:
    a manifest too damaged for :class:`Manifest` still counts as processed here)."""
    tables = {name: TableCounts.from_json(t) for name, t in (manifest.get("tables") or {}).items()
              if isinstance(t, dict)}
    return [[name, t.changed_written] for name, t in sorted(tables.items()) if t.changed_written]


def day_sales(lake: Lake, stores: Iterable[str], tables: Tables | None = None) -> list[DaySales]:
    """The last complete day's units against the forecast interval, as written by compute_aggregates."""
    wanted = sorted(stores)
    if not wanted:
        return []
    found = (tables or open_snapshots(lake)).read(
        f"SELECT store_id, sku, date, units, expected, lower, upper FROM c WHERE store_id IN {sql_list(wanted)} "
        f"ORDER BY store_id, sku", c=OUTPUTS["sales_check"].path)
    return [DaySales(r["store_id"], r["sku"], str(r["date"]), int(r["units"]), float(r["expected"]),
                     float(r["lower"]), float(r["upper"])) for r in (found.to_pylist() if found is not None else [])]


def raise_alerts(*, lake: Lake, stock: StockStore, telemetry: Telemetry, settings: AlertSettings | None = None,
                 now: datetime | None = None) -> AlertRun:
    settings = settings or AlertSettings()
    now = now or datetime.now(UTC)
    try:
        state = json.loads(lake.get_bytes(STATE_PATH))
    except FileNotFoundError:
        state = {}
    cache = state.setdefault("cache", {})
    dumps = store_dumps(lake, cache, now=now, ingest_grace=settings.ingest_grace)
    stock_stores = stock.stores()
    tables = open_snapshots(lake)  # each Delta table opened once for the whole run
    candidates: list[Alert] = dump_alerts(dumps, now=now, stale_after=settings.stale_after,
                                          ingest_grace=settings.ingest_grace)
    stock_now = stock_alerts_now(lake, stock, tables, stock_stores, state.get("stock"))
    state["stock"] = stock_now.state
    candidates += stock_now.alerts
    candidates += unusual_sales_alerts(day_sales(lake, {d.store_id for d in dumps} | set(stock_stores), tables))

    raised, state["alerts"] = deduplicate(candidates, state.get("alerts", {}), now=now, cooldown=settings.cooldown)
    run = AlertRun(raised=raised, true_now=len(candidates), stock_docs_read=stock_now.docs_read,
                   stores_read_whole=stock_now.stores_read)
    for a in candidates:
        run.by_kind[a.kind] = run.by_kind.get(a.kind, 0) + 1
    for a in raised:
        props = {k: v for k, v in a.to_json().items() if k not in ("kind",)}
        telemetry.event(a.kind, **props)
        telemetry.metric("alerts_raised", 1, kind=a.kind, severity=SEVERITY_NAMES[a.severity], storeId=a.store_id)
    for kind, n in run.by_kind.items():
        telemetry.metric("alerts_active", n, kind=kind)
    telemetry.metric("alerts_stock_docs_read", run.stock_docs_read)
    # What is true now, with when each was last raised: for the dashboard and for people reading the lake.
    state["active"] = [{**a.to_json(), "raisedAt": state["alerts"][a.key]["raisedAt"]} for a in candidates]
    state["updatedAt"] = time_key(now)
    lake.put_bytes(STATE_PATH, json.dumps(state, sort_keys=True).encode())  # last: a crash re-raises, never loses
    return run
