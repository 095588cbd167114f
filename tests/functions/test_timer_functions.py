"""The timers, found through app.get_functions() and called with real azure.functions TimerRequest objects
on a temp INVENTORY_HOME with a generated, ingested store: on the local defaults, and on the emulators
(the lake on Azurite, the stock store on the Cosmos-API server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.functions.timer import TimerRequest

from shared.core.aggregates import OUTPUTS
from shared.local.generator import generate_store
from shared.services.ingest import ingest_dump
from shared.services.reconcile_stock import reconcile_after_ingest
from tests.support.app import app_container
from tests.support.delta import delta_count


@pytest.fixture
def app_home(tmp_path, monkeypatch, app_backend):
    with app_container(monkeypatch, tmp_path / "home", app_backend) as c:
        db = tmp_path / "S001.sqlite"
        generate_store(db, "S001", n_items=60, days=21, sales_lines=3000, dirty_rate=0.0, seed=4)
        result = ingest_dump(db, "S001", lake=c.lake, telemetry=c.telemetry,
                             snapshot_at=datetime(2026, 11, 26, 23, 0, tzinfo=UTC), scratch=c.scratch_dir)
        reconcile_after_ingest(result, lake=c.lake, stock=c.stock, telemetry=c.telemetry)
        yield c


@pytest.mark.parametrize(("name", "setting"), [("compute_aggregates", "%AGGREGATES_SCHEDULE%"),
                                               ("raise_alerts", "%ALERTS_SCHEDULE%")])
def test_timer_bindings(functions, name: str, setting: str) -> None:
    trigger = json.loads(functions[name].get_function_json())["bindings"][0]
    assert trigger["type"] == "timerTrigger" and trigger["schedule"] == setting and trigger["useMonitor"] is True


def test_compute_aggregates_timer_writes_the_aggregates(functions, app_home) -> None:
    functions["compute_aggregates"].get_user_function()(TimerRequest(past_due=False))
    for name in OUTPUTS:  # every aggregate is a Delta table with the store's rows
        assert delta_count(app_home.lake, f"aggregates/{name}", "store_id = 'S001'") > 0, name
    functions["compute_aggregates"].get_user_function()(TimerRequest(past_due=True))  # catching up: no harm
    events = [json.loads(line) for line in (app_home.settings.home / "telemetry" / "events.jsonl").open()]
    runs = [e["properties"] for e in events if e.get("name") == "AggregatesComputed"]
    assert len(runs) == 2
    assert runs[0]["commits"] == len(OUTPUTS) and runs[1]["commits"] == 1, "the second run only refreshes the stock"


def test_raise_alerts_timer_emits_each_alert_once(functions, app_home) -> None:
    fn = functions["raise_alerts"].get_user_function()
    fn(TimerRequest(past_due=False))
    fn(TimerRequest(past_due=False))
    events = [json.loads(line) for line in (app_home.settings.home / "telemetry" / "events.jsonl").open()]
    low = [e for e in events if e.get("name") == "LowStock"]
    assert low, "the generator makes some items low on stock"
    assert len(low) == len({e["properties"]["sku"] for e in low}), "each raised once, not again on the 2nd run"
    assert all(e["properties"]["reason"] and e["properties"]["storeId"] == "S001" for e in low)


def test_each_backend_is_the_one_it_names_and_leaves_nothing_behind(app_backend, tmp_path, monkeypatch) -> None:
    """What the functions get from default_container() on each backend; on the emulators, the lake container
    and the Cosmos database exist while the test runs and are gone after it."""
    import shared.bootstrap

    with app_container(monkeypatch, tmp_path / "home", app_backend) as c:
        assert shared.bootstrap.default_container() is c
        lake, stock = type(c.lake).__name__, type(c.stock).__name__
        assert (lake, stock) == (("BlobLake", "CosmosStockStore") if app_backend.emulated
                                 else ("FolderLake", "SqliteStockStore"))
        assert c.queue is c.events  # no Event Hubs emulator: events stay on the embedded queue on both
        if app_backend.emulated:
            assert f"127.0.0.1:{app_backend.cosmos_port}" in c.stock.describe()
            assert existing(app_backend) == (True, True)
    if app_backend.emulated:
        assert existing(app_backend) == (False, False)


def existing(backend) -> tuple[bool, bool]:
    """Whether the backend's lake container and Cosmos database exist on the servers."""
    from azure.cosmos import CosmosClient
    from azure.storage.blob import BlobServiceClient

    from tests.support.cosmos import EMULATOR_KEY, unverified_tls_ok, unverified_tls_transport

    name = backend.env["LAKE_CONTAINER"]
    with BlobServiceClient.from_connection_string(backend.env["LAKE"]) as blobs:
        lake = any(x.name == name for x in blobs.list_containers(name_starts_with=name))
    with unverified_tls_ok():
        client = CosmosClient(backend.cosmos_url, credential=EMULATOR_KEY, connection_verify=False,
                              transport=unverified_tls_transport())
        try:
            database = any(d["id"] == backend.env["COSMOS_DATABASE"] for d in client.list_databases())
        finally:
            client.close()
    return lake, database
