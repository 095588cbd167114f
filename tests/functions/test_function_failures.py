"""Every registered function's failure reaches on-call: the failure is re-raised (the host retries as before)
and leaves exactly one FunctionFailed event, which the alert rule infra/alerts/FunctionFailures.kql selects
with the function's name as its dimension. Blob and timer triggers write no failed `requests` rows under
OpenTelemetry, so this event is the only trace of their failure.

A broken lake and a successful run are tried on both backends (tests/support/app.py): on the local defaults
the folder lake is a file, on the emulators the Azurite container is deleted behind the app's back. A
setting that cannot be used fails before any adapter is built, so those tests need no backend."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobClient

from shared.local.runner.bindings import LocalContext, LocalRetryContext
from shared.settings import SettingsError
from tests.support.app import AZURE_SETTINGS, app_container
from tests.support.kql import custom_events, run_rule

RULE = Path(__file__).resolve().parents[2] / "infra" / "alerts" / "FunctionFailures.kql"
UNREACHABLE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
               "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")  # port 9 (discard): nothing listens
DUMP = "raw/store=S001/date=2026-11-26/S001-0123456789abcdef.sqlite.gz"


def invocation(name: str, blob: BlobClient | None = None) -> dict:
    """The bindings the host would pass to ``name`` (the blob client: ``blob``, else one pointing at a closed
    port, no retries)."""
    if name == "ingest_dump":
        return {"client": blob or BlobClient.from_connection_string(UNREACHABLE, "lake", DUMP, retry_total=0)}
    if name == "apply_sales":
        event = func.EventHubEvent(body=b'{"type": "sale"}', sequence_number=1)
        return {"events": [event], "context": LocalContext(name, LocalRetryContext(0, 5))}
    if name == "post_sales":
        return {"req": func.HttpRequest("POST", "http://localhost:7071/api/sales?code=x", body=b"{}")}
    return {"timer": TimerRequest(past_due=False)}


@contextlib.contextmanager
def broken_settings(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[None]:
    """The local defaults under ``home`` plus a setting that cannot be used: the container will not build."""
    import shared.bootstrap

    for name in AZURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INVENTORY_HOME", str(home))
    monkeypatch.setenv("TELEMETRY_CONSOLE", "0")
    monkeypatch.setenv("INGEST_BATCH_ROWS", "0")
    shared.bootstrap.reset_default_container()
    try:
        yield
    finally:
        shared.bootstrap.reset_default_container()


def failures_selected(home: Path) -> list[dict]:
    path = home / "telemetry" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return run_rule(RULE, {"customEvents": custom_events(json.loads(line) for line in lines)})


ALL = ["ingest_dump", "apply_sales", "post_sales", "compute_aggregates", "raise_alerts", "maintain_lake"]


def test_every_registered_function_is_covered(functions):
    assert sorted(functions) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_a_setting_that_cannot_be_used_fails_the_function_and_pages(functions, name, tmp_path, monkeypatch):
    """The container cannot even be built: the failure is still reported (telemetry from the raw settings)."""
    home = tmp_path / "home"
    with broken_settings(monkeypatch, home), pytest.raises(SettingsError, match="INGEST_BATCH_ROWS"):
        functions[name].get_user_function()(**invocation(name))
    [row] = failures_selected(home)
    assert row["functionName"] == name and row["failures"] == 1
    assert row["errors"] == ["SettingsError"]
    if name == "apply_sales":
        assert row["subjects"] == ["1 events"]


@pytest.mark.parametrize("name", ["ingest_dump", "compute_aggregates", "raise_alerts", "maintain_lake"])
def test_an_unreachable_or_broken_lake_fails_the_function_and_pages_once(functions, name, tmp_path, monkeypatch,
                                                                         app_backend):
    """A real fault inside the use case: the blob cannot be read, or the folder lake is not a folder, or
    the lake's Blob container is gone (the blob trigger's blob with it)."""
    home = tmp_path / "home"
    with app_container(monkeypatch, home, app_backend) as c:
        blob = None
        if app_backend.emulated:
            blob = c.lake.container.get_blob_client(DUMP)
            c.lake.container.delete_container()
        else:
            home.mkdir(parents=True, exist_ok=True)
            (home / "lake").write_text("not a folder")
        fn = functions[name].get_user_function()
        with pytest.raises(Exception) as raised:
            fn(**invocation(name, blob))
        assert not isinstance(raised.value, SettingsError)
    [row] = failures_selected(home)
    assert row["functionName"] == name and row["failures"] == 1
    assert row["errors"] == [type(raised.value).__name__]
    if name == "ingest_dump":
        assert row["subjects"] == [DUMP]


def test_a_successful_run_reports_nothing(functions, tmp_path, monkeypatch, app_backend):
    home = tmp_path / "home"
    with app_container(monkeypatch, home, app_backend):
        functions["raise_alerts"].get_user_function()(TimerRequest(past_due=False))
    assert failures_selected(home) == []


def test_the_apply_sales_retry_attempt_is_recorded(functions, tmp_path, monkeypatch):
    home = tmp_path / "home"
    with broken_settings(monkeypatch, home), pytest.raises(SettingsError):
        functions["apply_sales"].get_user_function()(**invocation("apply_sales"))
    [event] = [json.loads(line) for line in (home / "telemetry" / "events.jsonl").read_text().splitlines()]
    assert event["name"] == "FunctionFailed" and event["properties"]["attempt"] == "0/5"
