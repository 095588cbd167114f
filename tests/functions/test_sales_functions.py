"""The Event Hub trigger and the HTTP ingress, found through app.get_functions() and called with real
``azure.functions`` objects (EventHubEvent lists, HttpRequest), under a temp home: on the local defaults, and
those that touch the lake or the stock store also on the emulators (the lake on Azurite, the stock store on
the Cosmos-API server). Accepted events go to the embedded queue on both (no Event Hubs emulator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from shared.adapters.queue_sqlite import EmbeddedQueue
from shared.local.runner.bindings import LocalContext, LocalRetryContext
from tests.support.app import app_container


def Context(retry: LocalRetryContext | None = None) -> LocalContext:
    """The worker's func.Context for apply_sales, with the host's retry context (the local runner's own)."""
    return LocalContext("apply_sales", retry)


def Retry(count: int, max_count: int) -> LocalRetryContext:
    return LocalRetryContext(count, max_count)


@pytest.fixture
def app_home(tmp_path, monkeypatch, app_backend):
    """The app on each backend: for the tests whose outcome is in the lake (dead letters) or the stock."""
    with app_container(monkeypatch, tmp_path / "home", app_backend, SALES_HTTP_MAX_BYTES="4096") as c:
        yield c


@pytest.fixture
def local_home(tmp_path, monkeypatch):
    """The app on the local defaults only: for the tests of the request itself (its shape, its size), which
    end at the queue and never reach the lake or the stock store."""
    with app_container(monkeypatch, tmp_path / "home", SALES_HTTP_MAX_BYTES="4096") as c:
        yield c


def sale(event_id: str, sku: str = "A-1", qty: int = 1, store: str = "S001", minutes_ago: int = 5) -> dict:
    when = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    return {"eventId": event_id, "storeId": store, "type": "sale", "occurredAt": when,
            "lines": [{"sku": sku, "qty": qty, "unitPrice": 1.5}]}


def hub_events(*bodies: bytes) -> list[func.EventHubEvent]:
    return [func.EventHubEvent(body=b, sequence_number=i, partition_key="S001") for i, b in enumerate(bodies)]


# --- bindings -----------------------------------------------------------------------------------------


def test_apply_sales_binding(functions) -> None:
    fn = functions["apply_sales"]
    spec = json.loads(fn.get_function_json())
    trigger = spec["bindings"][0]
    assert trigger["type"] == "eventHubTrigger"
    assert (trigger["connection"], trigger["eventHubName"], trigger["consumerGroup"]) == (
        "EVENTS", "%EVENTHUB_NAME%", "%EVENTHUB_CONSUMER_GROUP%")
    assert trigger["cardinality"].lower() == "many"
    retry = fn.get_setting("retry_policy").get_dict_repr()  # the worker sends it to the host as the policy
    assert retry["strategy"] == "exponential_backoff" and int(retry["max_retry_count"]) >= 3


def test_post_sales_binding(functions) -> None:
    trigger = json.loads(functions["post_sales"].get_function_json())["bindings"][0]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "sales" and [m.upper() for m in trigger["methods"]] == ["POST"]
    assert trigger["authLevel"].lower() == "function"


# --- apply_sales ---------------------------------------------------------------------------------------


def test_apply_sales_applies_once_and_deadletters_bad_events(functions, app_home) -> None:
    fn = functions["apply_sales"].get_user_function()
    batch = hub_events(json.dumps(sale("e1", qty=2)).encode(), b"not json",
                       json.dumps(sale("e2", qty=1.5)).encode(), json.dumps(sale("e3", sku="b-2")).encode())
    fn(batch, Context())
    fn(batch, Context())  # redelivered after a crash before the checkpoint
    stock = {d.sku: d.on_hand for d in app_home.stock.stock("S001")}
    assert stock == {"A-1": -2, "B-2": -1}
    dead = [json.loads(line) for o in app_home.lake.list("deadletter/events/")
            for line in app_home.lake.get_bytes(o.path).decode().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["bad_json", "bad_qty"]
    assert {d["source"] for d in dead} == {"eventhub:seq=1", "eventhub:seq=2"}


def test_apply_sales_retries_then_sets_the_batch_aside(functions, app_home, monkeypatch) -> None:
    fn = functions["apply_sales"].get_user_function()
    app_home.stock.close()  # the store is down: every apply fails
    batch = hub_events(json.dumps(sale("e1")).encode())
    with pytest.raises(Exception, match="closed"):
        fn(batch, Context(Retry(0, 5)))  # the host will retry
    fn(batch, Context(Retry(5, 5)))  # last attempt: no exception, the checkpoint may move on
    aside = list(app_home.lake.list("deadletter/failed-batches/"))
    assert len(aside) == 1
    record = json.loads(app_home.lake.get_bytes(aside[0].path))
    assert record["reason"] == "apply_failed" and json.loads(record["body"])["eventId"] == "e1"


# --- post_sales ----------------------------------------------------------------------------------------


def post(functions, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = func.HttpRequest("POST", "http://localhost:7071/api/sales", body=body, headers=headers or {})
    resp = functions["post_sales"].get_user_function()(req)
    assert resp.mimetype == "application/json"
    return resp.status_code, json.loads(resp.get_body())


def queued(app_home) -> list[dict]:
    q: EmbeddedQueue = app_home.queue
    group = app_home.settings.get("EVENTHUB_CONSUMER_GROUP")
    return [json.loads(e.body) for p in range(q.partitions) for e in q.receive(group, p, 1000)]


@pytest.mark.parametrize("shape", ["object", "array", "lines"])
def test_post_sales_accepts_each_body_shape(functions, local_home, shape: str) -> None:
    events = [sale("h1"), sale("h2", store="S002")]
    body = {"object": json.dumps(events[0]), "array": json.dumps(events),
            "lines": "\n".join(json.dumps(e) for e in events) + "\n"}[shape].encode()
    status, out = post(functions, body)
    expected = events[:1] if shape == "object" else events
    assert status == 202
    assert out["accepted"] == len(expected) and out["rejected"] == 0
    assert sorted(e["eventId"] for e in queued(local_home)) == [e["eventId"] for e in expected]


def test_post_sales_reports_each_bad_event_and_forwards_the_rest(functions, app_home) -> None:
    body = "\n".join([json.dumps(sale("ok")), "{broken", json.dumps(sale("zero", qty=0))]).encode()
    status, out = post(functions, body)
    assert status == 202
    assert [(r["index"], r["status"], r.get("reason")) for r in out["results"]] == [
        (0, "accepted", None), (1, "rejected", "bad_json"), (2, "rejected", "bad_qty")]
    assert out["results"][2]["eventId"] == "zero" and "qty" in out["results"][2]["detail"]
    assert [e["eventId"] for e in queued(app_home)] == ["ok"]
    assert len(list(app_home.lake.list("deadletter/events/"))) == 1


@pytest.mark.parametrize("shape", ["array", "lines"])
def test_post_sales_a_bad_encoding_in_one_event_rejects_that_event_only(functions, app_home, shape) -> None:
    # A lone surrogate escape ("\ud800") in an array element, or a line that is not UTF-8 in JSON lines: that
    # event is bad_json, the others go through (these were a 500 and a 400 for the whole request).
    if shape == "array":
        body = ("[" + json.dumps(sale("ok")) + "," + json.dumps(sale("bad")).replace('"A-1"', '"A\\ud800"')
                + "]").encode()
    else:
        body = json.dumps(sale("ok")).encode() + b"\n" + json.dumps(sale("bad")).encode().replace(
            b"A-1", b"A\xff") + b"\n"
    status, out = post(functions, body)
    assert status == 202, out
    assert [(r["status"], r.get("reason")) for r in out["results"]] == [("accepted", None), ("rejected", "bad_json")]
    assert [e["eventId"] for e in queued(app_home)] == ["ok"]
    assert len(list(app_home.lake.list("deadletter/events/"))) == 1


def test_post_sales_all_invalid_is_422(functions, app_home) -> None:
    status, out = post(functions, json.dumps(sale("neg", qty=-1)).encode())
    assert status == 422 and out["rejected"] == 1 and not queued(app_home)
    assert len(list(app_home.lake.list("deadletter/events/"))) == 1  # kept, with its reason, for a replay


@pytest.mark.parametrize("body", [b"", b"   ", b"hello", b"42", b'"a string"', b"no\njson\nhere",
                                  b'{"eventId": "\xff"}'])
def test_post_sales_unparseable_body_is_400(functions, local_home, body: bytes) -> None:
    status, out = post(functions, body)
    assert status == 400 and out["error"] == "unparseable_body" and out["message"]


def test_post_sales_too_large_is_413(functions, local_home) -> None:
    big = json.dumps([sale(f"e{i}") for i in range(40)]).encode()  # > SALES_HTTP_MAX_BYTES=4096
    status, out = post(functions, big)
    assert status == 413 and "4,096" in out["message"]
    status, _ = post(functions, b"{}", headers={"Content-Length": "999999"})
    assert status == 413
    assert not queued(local_home)


def test_posted_events_reach_stock_through_the_queue(functions, app_home) -> None:
    """HTTP in, queue, trigger, stock: the path a POS without AMQP takes."""
    post(functions, json.dumps([sale("p1", qty=3), sale("p2", qty=1), sale("p1", qty=3)]).encode())
    q = app_home.queue
    group = app_home.settings.get("EVENTHUB_CONSUMER_GROUP")
    for p in range(q.partitions):
        batch = q.receive(group, p, 100)
        if batch:
            functions["apply_sales"].get_user_function()(
                [func.EventHubEvent(body=e.body, sequence_number=e.sequence) for e in batch], Context())
            q.checkpoint(group, p, batch[-1].sequence)
    assert {d.sku: d.on_hand for d in app_home.stock.stock("S001")} == {"A-1": -4}
