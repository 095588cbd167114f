"""The apply service on real local adapters (folder lake, embedded stock store): dead-letters, duplicates,
a failing store, and reconciliation with an ingested dump."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.services.apply_sales import RawEvent, apply_delivered_batch, apply_sales
from shared.services.ingest import ingest_dump
from shared.services.reconcile_stock import reconcile_after_ingest
from tests.support.dumps import make_dump

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def event(event_id: str, when: str, *lines: tuple[str, int], store: str = "S001", kind: str = "sale") -> bytes:
    return json.dumps({"eventId": event_id, "storeId": store, "type": kind, "occurredAt": when,
                       "lines": [{"sku": s, "qty": q} for s, q in lines]}).encode()


@pytest.fixture
def env(tmp_path: Path) -> tuple[FolderLake, SqliteStockStore, MemoryTelemetry]:
    store = SqliteStockStore(tmp_path / "stock.sqlite")
    yield FolderLake(tmp_path / "lake"), store, MemoryTelemetry()
    store.close()


def deadletters(lake: FolderLake) -> list[dict]:
    out = []
    for obj in lake.list("deadletter/"):
        out += [json.loads(line) for line in lake.get_bytes(obj.path).decode().splitlines()]
    return out


def stock_of(store: SqliteStockStore, store_id: str = "S001") -> dict[str, int]:
    return {d.sku: d.on_hand for d in store.stock(store_id)}


def test_a_mixed_batch_applies_the_valid_and_sets_aside_the_rest(env) -> None:
    lake, store, telemetry = env
    batch = [
        RawEvent(event("e1", "2026-11-27T10:00:00Z", ("a-1", 2)), "t:1"),
        RawEvent(b"{oops", "t:2"),
        RawEvent(event("e2", "2026-11-27T10:01:00Z", ("A-1", 0)), "t:3"),
        RawEvent(event("e3", "2026-11-27T10:02:00Z", ("A-2", 1), ("A-1", 1), store="S002"), "t:4"),
        RawEvent(event("e1", "2026-11-27T10:00:00Z", ("a-1", 2)), "t:5"),  # duplicate within the batch
        RawEvent(b"\xff\xfe not utf-8", "t:6"),
    ]
    counts = apply_sales(batch, stock=store, lake=lake, telemetry=telemetry, now=NOW)
    assert counts.to_json() == {"received": 6, "applied": 2, "duplicate": 1, "before_baseline": 0,
                                "deadlettered": 3, "reasons": {"bad_json": 2, "bad_qty": 1}, "stores": 2}
    assert stock_of(store) == {"A-1": -2}
    assert stock_of(store, "S002") == {"A-1": -1, "A-2": -1}
    dead = deadletters(lake)
    assert [(d["reason"], d["source"]) for d in dead] == [("bad_json", "t:2"), ("bad_qty", "t:3"), ("bad_json", "t:6")]
    assert dead[1]["body"] == batch[2].body.decode() and dead[1]["storeId"] == "S001"
    assert "bodyBase64" in dead[2]  # not UTF-8: kept byte for byte
    assert ("EventsDeadLettered", {"count": 3, "reasons": {"bad_json": 2, "bad_qty": 1},
                                   "path": counts.deadletter_path}) in telemetry.events

    lag = {dims["stat"]: v for name, v, dims in telemetry.metrics if name == "events_lag_s"}
    assert lag == {"median": 7140.0, "max": 7200.0}, "e1 at 10:00, e3 at 10:02, applied at 12:00"
    again = apply_sales(batch, stock=store, lake=lake, telemetry=telemetry, now=NOW)  # a redelivery
    assert (again.applied, again.duplicate, again.deadlettered) == (0, 3, 3)
    assert stock_of(store) == {"A-1": -2}
    assert len(deadletters(lake)) == 3, "a redelivered batch rewrites its dead-letter file, no second copy"


def test_a_failing_store_is_retried_then_the_batch_is_set_aside_and_replayable(env, tmp_path: Path) -> None:
    lake, store, telemetry = env
    batch = [RawEvent(event(f"e{i}", "2026-11-27T10:00:00Z", ("A-1", 1)), f"t:{i}") for i in range(3)]
    broken = SqliteStockStore(tmp_path / "broken.sqlite")
    broken.close()  # every call now fails, like a store that is down

    with pytest.raises(Exception, match="closed"):
        apply_delivered_batch(batch, stock=broken, lake=lake, telemetry=telemetry, last_attempt=False)
    assert not deadletters(lake)
    path = apply_delivered_batch(batch, stock=broken, lake=lake, telemetry=telemetry, last_attempt=True, now=NOW)
    assert path.startswith("deadletter/failed-batches/date=2026-11-27/")
    records = deadletters(lake)
    assert [r["reason"] for r in records] == ["apply_failed"] * 3
    assert [r["body"].encode() for r in records] == [r.body for r in batch]

    # Replay once the store is back: the bodies are events again.
    replay = [RawEvent(r["body"].encode(), "replay") for r in records]
    counts = apply_sales(replay, stock=store, lake=lake, telemetry=telemetry, now=NOW)
    assert counts.applied == 3 and stock_of(store) == {"A-1": -3}


def test_ingested_dump_becomes_the_baseline_and_later_events_add(env, tmp_path: Path) -> None:
    lake, store, telemetry = env
    dump = make_dump(tmp_path / "s.sqlite")  # stock A-1=10, A-2=4 counted by 2026-11-26 23:00 (UTC)
    snapshot = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    # Events arrive first: one before the snapshot (in the count already), one after.
    apply_sales([RawEvent(event("before", "2026-11-26T20:00:00Z", ("A-1", 3))),
                 RawEvent(event("after", "2026-11-27T08:00:00Z", ("A-1", 1), ("A-2", 1)))],
                stock=store, lake=lake, telemetry=telemetry, now=NOW)
    result = ingest_dump(dump, "S001", lake=lake, telemetry=telemetry, snapshot_at=snapshot, scratch=tmp_path)
    rebase = reconcile_after_ingest(result, lake=lake, stock=store, telemetry=telemetry)
    assert (rebase.status, rebase.events_after) == ("rebased", 1)
    assert stock_of(store) == {"A-1": 9, "A-2": 3}
    assert store.baseline("S001").dump_id == result.dump_id

    # The same dump again (a retried trigger): no change; an event at the snapshot instant is in the count.
    again = ingest_dump(dump, "S001", lake=lake, telemetry=telemetry, snapshot_at=snapshot, scratch=tmp_path)
    assert reconcile_after_ingest(again, lake=lake, stock=store, telemetry=telemetry).status == "current"
    counts = apply_sales([RawEvent(event("at", "2026-11-26T23:00:00Z", ("A-1", 5)))], stock=store, lake=lake,
                         telemetry=telemetry, now=NOW)
    assert counts.before_baseline == 1 and stock_of(store) == {"A-1": 9, "A-2": 3}


def test_an_event_id_reused_with_other_content_is_dead_lettered_not_counted_as_a_duplicate(env) -> None:
    # Before, a second sale under a reused id was silently a "duplicate": a real sale lost with no signal.
    lake, store, telemetry = env
    first = [RawEvent(event("e1", "2026-11-27T10:00:00Z", ("A-1", 2)), "t:1"),
             RawEvent(event("e1", "2026-11-27T10:05:00Z", ("A-1", 7)), "t:2"),  # same id, another sale, same batch
             RawEvent(event("e1", "2026-11-27T10:00:00Z", ("a-1", 2)), "t:3")]  # a true resend
    counts = apply_sales(first, stock=store, lake=lake, telemetry=telemetry, now=NOW)
    assert (counts.applied, counts.duplicate, counts.deadlettered) == (1, 1, 1)
    assert counts.reasons == {"conflicting_duplicate": 1}
    later = [RawEvent(event("e1", "2026-11-27T11:00:00Z", ("A-1", 1)), "t:4")]  # a later batch reuses it
    counts = apply_sales(later, stock=store, lake=lake, telemetry=telemetry, now=NOW)
    assert (counts.applied, counts.duplicate, counts.deadlettered) == (0, 0, 1)
    assert stock_of(store) == {"A-1": -2}
    records = [r for r in deadletters(lake) if r["reason"] == "conflicting_duplicate"]
    assert sorted(r["source"] for r in records) == ["t:2", "t:4"]
    assert all("eventId e1" in r["detail"] and r["storeId"] == "S001" for r in records)
    assert json.loads(records[0]["body"])["eventId"] == "e1"
    assert any(name == "EventsDeadLettered" and props["reasons"] == {"conflicting_duplicate": 1}
               for name, props in telemetry.events)
    assert ("events_deadlettered", 1, {"reason": "conflicting_duplicate"}) in telemetry.metrics
    again = apply_sales(later, stock=store, lake=lake, telemetry=telemetry, now=NOW)  # redelivered: same file
    assert again.deadlettered == 1 and len([r for r in deadletters(lake) if r["source"] == "t:4"]) == 1


def test_a_conflict_in_one_store_does_not_set_aside_another_stores_event_of_the_same_id(env) -> None:
    lake, store, telemetry = env
    apply_sales([RawEvent(event("e1", "2026-11-27T10:00:00Z", ("A-1", 2)), "t:1")], stock=store, lake=lake,
                telemetry=telemetry, now=NOW)
    counts = apply_sales([RawEvent(event("e1", "2026-11-27T10:05:00Z", ("A-1", 7)), "t:2"),  # S001: conflicting
                          RawEvent(event("e1", "2026-11-27T10:05:00Z", ("A-1", 7), store="S002"), "t:3")],
                         stock=store, lake=lake, telemetry=telemetry, now=NOW)
    assert (counts.applied, counts.deadlettered) == (1, 1)
    assert [r["source"] for r in deadletters(lake) if r["reason"] == "conflicting_duplicate"] == ["t:2"]
    assert stock_of(store) == {"A-1": -2} and stock_of(store, "S002") == {"A-1": -7}
