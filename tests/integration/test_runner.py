"""The local runner (``inventory serve``): the app's registered functions, driven by the runner's blob receipts,
queue batches, timers and HTTP routes on a temp INVENTORY_HOME (folder lake, embedded stock store and queue);
the blob trigger also on Azurite, where the function gets a real ``azure.storage.blob.BlobClient``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from shared.core.events import parse_event
from shared.core.stock import expected_stock
from shared.local import runner as runner_mod
from shared.local.runner import Function, RetryPolicy, Runner, RunnerError, discover
from shared.ports.events import OutgoingEvent
from tests.support.app import AZURE_SETTINGS, app_container
from tests.support.dumps import make_dump


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The default container (what the functions use) on a fresh INVENTORY_HOME with the local defaults."""
    with app_container(monkeypatch, tmp_path / "home") as c:
        yield c


def app_runner(**kw) -> Runner:
    return Runner(port=0, poll_s=0.05, retry_scale=0, **kw)


def telemetry(c) -> list[dict]:
    path = c.settings.home / "telemetry" / "events.jsonl"
    return [json.loads(line) for line in path.open()] if path.exists() else []


def event(eid: str, store: str, sku: str, qty: int, at: datetime, kind: str = "sale") -> bytes:
    return json.dumps({"eventId": eid, "type": kind, "storeId": store, "occurredAt": at.isoformat(),
                       "lines": [{"sku": sku, "qty": qty}]}).encode()


# -- discovery ---------------------------------------------------------------------------------------------

def test_discovers_every_registered_function_from_the_app():
    found = {f.name: f.kind for f in discover()}
    assert found == {"ingest_dump": "blobTrigger", "apply_sales": "eventHubTrigger", "post_sales": "httpTrigger",
                     "compute_aggregates": "timerTrigger", "raise_alerts": "timerTrigger",
                     "maintain_lake": "timerTrigger"}
    apply_sales = next(f for f in discover() if f.name == "apply_sales")
    assert apply_sales.retry == RetryPolicy("exponential_backoff", 5, 0.0, 2.0, 60.0)
    assert [apply_sales.retry.delay(n) for n in (1, 2, 3, 6, 7)] == [2, 4, 8, 60, 60]


def test_a_trigger_the_runner_cannot_honour_is_refused_by_name():
    other = func.FunctionApp()

    @other.queue_trigger(arg_name="msg", queue_name="q", connection="X")
    def on_queue(msg: func.QueueMessage) -> None: ...

    with pytest.raises(RunnerError, match=r"on_queue: trigger \['queueTrigger'\] is not supported"):
        discover(tuple(other.get_functions()))


def test_a_bad_timer_schedule_fails_at_start_up(home, monkeypatch):
    import shared.bootstrap

    monkeypatch.setenv("ALERTS_SCHEDULE", "every 5 minutes")
    shared.bootstrap.reset_default_container()
    with pytest.raises(RunnerError, match="not a 6-field NCRONTAB"):
        app_runner()


# -- blob trigger ------------------------------------------------------------------------------------------

def test_each_dump_in_raw_is_ingested_once_and_a_changed_blob_again(home, tmp_path):
    from inventory_agent import upload_dump

    up = upload_dump(make_dump(tmp_path / "d.sqlite"), "S7", home.lake, scratch=tmp_path)
    r = app_runner()
    assert r.run_once()["blobs"] == 1
    assert [o.path for o in home.lake.list("manifests/store=S7/")], "ingested through the blob trigger"
    assert home.stock.baseline("S7") is not None, "and made the store's stock baseline"
    assert app_runner().run_once()["blobs"] == 0, "a receipt per (path, etag): not again, not after a restart"
    home.lake.put_bytes(up.path, b"now it is not a database")  # the same name, new content: a new etag
    assert app_runner().run_once()["blobs"] == 1
    assert any(o.path.endswith("reason.json") for o in home.lake.list("quarantine/store=S7/"))


def test_a_failing_blob_is_retried_then_poisoned_and_can_be_retried_after_a_fix(home):
    calls = []

    def flaky(client) -> None:
        calls.append(client.blob_name)
        if not ok:
            raise ConnectionError("lake unreachable")

    ok = False
    fn = Function("flaky", {"type": "blobTrigger", "name": "client", "path": "%LAKE_CONTAINER%/raw/{name}"},
                  flaky, None)
    home.lake.put_bytes("raw/store=S1/date=2026-11-27/x.sqlite", b"x")
    r = app_runner(functions=[fn])
    for _ in range(7):
        r.run_once()
    assert len(calls) == runner_mod.BLOB_MAX_ATTEMPTS, "5 attempts, then poisoned: no more"
    assert r.stats.failed == {"flaky": 5}
    assert [p[:2] for p in r._receipts.poisoned()] == [("flaky", "raw/store=S1/date=2026-11-27/x.sqlite")]
    ok = True
    assert r.retry_poisoned() == 1
    assert r.run_once()["blobs"] == 1 and r.stats.ok == {"flaky": 1}
    assert r.run_once()["blobs"] == 0


def test_the_folder_blob_client_refuses_a_blob_changed_since_its_properties_were_read(home):
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    from shared.local.runner.bindings import FolderBlobClient

    home.lake.put_bytes("raw/a", b"one")
    client = FolderBlobClient(home.lake, "raw/a")
    props = client.get_blob_properties()
    assert props.size == 3 and props.etag
    home.lake.put_bytes("raw/a", b"two, longer")
    with pytest.raises(ResourceModifiedError):
        client.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)


def test_the_folder_blob_client_reports_a_missing_blob_as_the_sdk_does(home):
    # The dump trigger skips a blob deleted before it was read (error code BlobNotFound) and fails on
    # anything else: the folder lake's stand-in must say it the same way.
    from azure.core.exceptions import ResourceNotFoundError

    from shared.local.runner.bindings import FolderBlobClient

    with pytest.raises(ResourceNotFoundError) as caught:
        FolderBlobClient(home.lake, "raw/gone").get_blob_properties()
    assert caught.value.error_code == "BlobNotFound"


@pytest.mark.azurite
def test_on_azurite_the_function_gets_a_real_blob_client(azurite_conn, tmp_path, monkeypatch):
    from inventory_agent import upload_dump

    with app_container(monkeypatch, tmp_path / "home", LAKE=azurite_conn,
                       LAKE_CONTAINER=f"lake-{uuid.uuid4().hex[:10]}") as c:
        try:
            upload_dump(make_dump(tmp_path / "d.sqlite"), "S3", c.lake, scratch=tmp_path)
            seen = []
            real = next(f for f in discover() if f.name == "ingest_dump")

            def spy(client) -> None:  # the real function, after noting what the binding handed it
                seen.append(type(client).__module__ + "." + type(client).__qualname__)
                real.user_function(client)

            r = app_runner(functions=[Function(real.name, real.trigger, spy, None)])
            assert r.run_once()["blobs"] == 1
            assert seen == ["azure.storage.blob._blob_client.BlobClient"]
            assert list(c.lake.list("manifests/store=S3/"))
        finally:
            c.lake.delete_container()


# -- Event Hub trigger -------------------------------------------------------------------------------------

def test_queued_events_reach_apply_sales_in_host_json_batches_and_the_stock_is_exact(home):
    at = datetime.now(UTC)
    bodies = [event(f"e{i}", f"S{i % 3}", f"SKU{i % 7:03d}", 1 + i % 4, at, "sale" if i % 5 else "receipt")
              for i in range(1300)]
    bodies += bodies[:40]  # resent by the tills
    bodies.append(b"{not json")
    home.queue.send([OutgoingEvent(json.loads(b)["storeId"] if b.startswith(b'{"') else "S0", b) for b in bodies])
    r = app_runner()
    assert r.run_once()["events"] == len(bodies)
    sizes = [int(i.detail.split("(")[1].split()[0]) for i in r.stats.last if i.function == "apply_sales"]
    assert max(sizes) <= json.loads((runner_mod.APP_ROOT / "host.json").read_text())["extensions"]["eventHubs"][
        "maxEventBatchSize"]
    events = [parse_event(b) for b in bodies[:1300]]
    for store in ("S0", "S1", "S2"):
        got = {d.sku: d.on_hand for d in home.stock.stock(store)}
        assert got == expected_stock([], [e for e in events if e.store_id == store])
    assert sum(home.queue.backlog("apply-sales").values()) == 0
    assert list(home.lake.list("deadletter/events/")), "the malformed event was set aside, with its reason"
    assert app_runner().run_once()["events"] == 0, "checkpointed: nothing is delivered twice after a restart"


def test_a_partial_batch_waits_for_max_wait_time(home, tmp_path):
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"extensions": {"eventHubs": {"maxEventBatchSize": 100, "minEventBatchSize": 10,
                                                                  "maxWaitTime": "00:00:00.6"}}}))
    home.queue.send([OutgoingEvent("S1", event(f"e{i}", "S1", "A", 1, datetime.now(UTC))) for i in range(3)])
    r = app_runner(host_json=host_json)
    assert r.poll_events() == 0, "3 < minEventBatchSize: wait for more"
    r.stop.wait(0.7)
    assert r.poll_events() == 3, "after maxWaitTime the partial batch goes"


def test_the_retry_policy_retries_with_the_retry_context_and_the_checkpoint_moves_on_after_the_last(home):
    contexts: list[tuple[int, int]] = []

    def failing(events: list[func.EventHubEvent], context: func.Context) -> None:
        contexts.append((context.retry_context.retry_count, context.retry_context.max_retry_count))
        raise RuntimeError("stock store down")

    fn = Function("failing", {"type": "eventHubTrigger", "name": "events", "cardinality": "MANY",
                              "consumerGroup": "%EVENTHUB_CONSUMER_GROUP%"}, failing,
                  RetryPolicy("fixed_delay", 2, delay_s=5))
    home.queue.send([OutgoingEvent("S1", b"{}")])
    r = app_runner(functions=[fn])
    assert r.run_once()["events"] == 1
    assert contexts == [(0, 2), (1, 2), (2, 2)]
    assert sum(home.queue.backlog("apply-sales").values()) == 0, "given up after the last retry: checkpointed"


def test_a_stop_during_a_retry_wait_leaves_the_batch_for_the_next_start(home):
    def failing(events: list[func.EventHubEvent]) -> None:
        r.stop.set()
        raise RuntimeError("boom")

    fn = Function("failing", {"type": "eventHubTrigger", "name": "events", "cardinality": "MANY",
                              "consumerGroup": "%EVENTHUB_CONSUMER_GROUP%"}, failing,
                  RetryPolicy("fixed_delay", 3, delay_s=60))
    home.queue.send([OutgoingEvent("S1", b"{}")])
    r = Runner(functions=[fn], port=0)
    with pytest.raises(runner_mod._Stopping):
        r.poll_events(drain=True)
    assert sum(home.queue.backlog("apply-sales").values()) == 1, "not checkpointed: redelivered next time"


# -- timers ------------------------------------------------------------------------------------------------

def test_a_timer_missed_while_down_runs_past_due_at_start_up(home):
    seen = []
    fn = Function("tick", {"type": "timerTrigger", "name": "timer", "schedule": "0 */15 * * * *",
                           "useMonitor": True}, lambda timer: seen.append(timer.past_due), None)
    assert app_runner(functions=[fn]).run_once()["timers"] == 0, "first start: nothing is past due"
    status_file = home.settings.home / "runner" / "timers.json"
    status = json.loads(status_file.read_text())
    assert status["tick"]["schedule"] == "0 */15 * * * *"
    status["tick"]["next"] = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()  # down for a while
    status_file.write_text(json.dumps(status))
    assert app_runner(functions=[fn]).run_once()["timers"] == 1
    assert seen == [True]
    nxt = datetime.fromisoformat(json.loads(status_file.read_text())["tick"]["next"])
    assert datetime.now(UTC) < nxt <= datetime.now(UTC) + timedelta(minutes=15)
    assert app_runner(functions=[fn]).run_once()["timers"] == 0


def test_serve_fires_timers_on_their_schedule_and_stops_cleanly(home, monkeypatch):
    import threading

    import shared.bootstrap

    monkeypatch.setenv("ALERTS_SCHEDULE", "* * * * * *")  # every second
    monkeypatch.setenv("AGGREGATES_SCHEDULE", "0 0 0 1 1 *")
    monkeypatch.setenv("MAINTAIN_SCHEDULE", "0 0 0 1 1 *")
    shared.bootstrap.reset_default_container()
    r = app_runner()
    t = threading.Thread(target=r.serve)
    t.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while r.stats.count("raise_alerts") < 2 and datetime.now(UTC) < deadline:
            r.stop.wait(0.1)
        assert r.stats.count("raise_alerts") >= 2, r.stats
    finally:
        r.stop.set()
        t.join(timeout=30)
    assert not t.is_alive()
    assert r.stats.failed == {}
    assert r.stats.count("compute_aggregates") == 0, "its schedule (once a year) did not come"


# -- HTTP --------------------------------------------------------------------------------------------------

def request(url, *, data=None, key=None, method=None):
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if key:
        req.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("length", ["-1", "abc"])
def test_a_body_that_cannot_be_delimited_gets_400_not_a_hang(home, length):
    import socket

    r = app_runner()
    server = r.start_http()
    try:
        host, port = r.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(f"POST /api/sales?code={r.keys.default} HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: {length}\r\n\r\n{{}}".encode())
            chunks = []
            while chunk := conn.recv(65536):  # the server closes the connection after the reply
                chunks.append(chunk)
            reply = b"".join(chunks).decode()
        assert reply.startswith("HTTP/1.1 400") or reply.startswith("HTTP/1.0 400"), reply
        assert "Content-Length" in reply and "bad_request" in reply
    finally:
        server.shutdown()
        server.server_close()


def test_http_routes_check_the_function_key_and_feed_the_queue(home):
    r = app_runner()
    server = r.start_http()
    try:
        url = f"{r.base_url}/api/sales"
        body = event("h1", "S1", "SKU001", 2, datetime.now(UTC))
        assert request(url, data=body)[0] == 401, "function auth: no key, no entry"
        assert request(url, data=body, key="wrong")[0] == 401
        status, reply = request(url, data=body, key=r.keys.default)
        assert status == 202 and json.loads(reply)["accepted"] == 1
        assert request(url + f"?code={r.keys.default}", data=b"{oops")[0] == 400
        assert request(url, key=r.keys.default)[0] == 405, "POST only"
        assert request(f"{r.base_url}/api/nope", data=b"", key=r.keys.default)[0] == 404
        too_big = b"x" * (home.settings.int("SALES_HTTP_MAX_BYTES") + 1)
        assert request(url, data=too_big, key=r.keys.default)[0] == 413
        assert sum(home.queue.backlog("apply-sales").values()) == 1
        # the host's admin endpoints: master key only
        admin = f"{r.base_url}/admin/functions/raise_alerts"
        assert request(admin, data=b"{}", key=r.keys.default)[0] == 401
        assert request(admin, data=b"{}", key=r.keys.master)[0] == 202
        assert r.stats.count("raise_alerts") == 1
        assert request(f"{r.base_url}/admin/functions/apply_sales", data=b"{}", key=r.keys.master)[0] == 400
        status, reply = request(f"{r.base_url}/admin/host/status", key=r.keys.master)
        assert status == 200 and json.loads(reply)["state"] == "Running"
    finally:
        server.shutdown()
        server.server_close()
    assert r.run_once()["events"] == 1
    assert [d.on_hand for d in home.stock.stock("S1")] == [-2]


def test_keys_are_kept_between_starts_and_readable_by_the_owner_only(home):
    a, b = app_runner(), app_runner()
    assert a.keys == b.keys and a.keys.master != a.keys.default
    mode = os.stat(home.settings.home / "runner" / "host_keys.json").st_mode & 0o777
    assert mode == 0o600


# -- the command -------------------------------------------------------------------------------------------

def test_inventory_serve_once_from_another_directory(home, tmp_path):
    from inventory_agent import upload_dump

    upload_dump(make_dump(tmp_path / "d.sqlite"), "S9", home.lake, scratch=tmp_path)
    home.queue.send([OutgoingEvent("S9", event("c1", "S9", "SKU001", 1, datetime.now(UTC)))])
    env = {k: v for k, v in os.environ.items() if k not in AZURE_SETTINGS}
    out = subprocess.run([sys.executable, "-m", "shared", "serve", "--once"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"blobs": 1, "events": 1, "timers": 0, "failed": 0}
    assert "ingest_dump          ok" in out.stderr and "apply_sales          ok" in out.stderr


def test_inventory_serve_once_exits_1_when_an_invocation_failed(home, tmp_path):
    # Before, a failed ingest printed FAILED and the command still exited 0, counting the blob as delivered.
    from inventory_agent import upload_dump

    home.lake.put_bytes("config/mappings/store=S8.toml", b"tables = 5\n")  # a broken mapping: the ingest fails
    upload_dump(make_dump(tmp_path / "d.sqlite"), "S8", home.lake, scratch=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in AZURE_SETTINGS}
    out = subprocess.run([sys.executable, "-m", "shared", "serve", "--once"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout) == {"blobs": 1, "events": 0, "timers": 0, "failed": 1}
    assert "1 invocation(s) failed" in out.stderr
