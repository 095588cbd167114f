"""The blob-triggered function, found through app.get_functions() and called with a real binding object:
the SDK-type binding hands the function an azure.storage.blob.BlobClient, here one for Azurite.

The lake is on Azurite on every backend (the binding is a blob; a folder lake has none). An ingested dump
becomes the store's stock baseline on both stock stores: the embedded one ("local") and the Cosmos-API
server ("emulators"); the tests that stop before the stock store (quarantines, a vanished blob, a missing
container) run on the embedded one only."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest

from tests.support.app import LOCAL, app_container
from tests.support.dumps import make_dump

pytestmark = pytest.mark.azurite


def test_binding_is_an_event_grid_blob_trigger_on_raw(functions):
    fn = functions["ingest_dump"]
    trigger = json.loads(fn.get_function_json())["bindings"][0]
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"  # what Flex Consumption requires
    assert trigger["path"] == "%LAKE_CONTAINER%/raw/{name}"
    assert trigger["connection"] == "LAKE"
    assert trigger["direction"] == "IN"


def test_the_parameter_is_an_sdk_type_blob_client(functions):
    import typing

    import azurefunctions.extensions.bindings.blob as blob

    annotation = typing.get_type_hints(functions["ingest_dump"].get_user_function())["client"]
    assert blob.BlobClientConverter.check_input_type_annotation(annotation)


@contextlib.contextmanager
def lake_on_azurite(monkeypatch, home, azurite_conn, backend=LOCAL):
    """The app on ``backend``, its lake on Azurite in any case (the emulators backend brings its own
    container; for the local one an isolated container is made here), deleted afterwards."""
    if backend.emulated:
        with app_container(monkeypatch, home, backend) as c:
            yield c
        return
    with app_container(monkeypatch, home, backend, LAKE=azurite_conn,
                       LAKE_CONTAINER=f"lake-{uuid.uuid4().hex[:10]}") as c:
        try:
            yield c
        finally:
            c.lake.delete_container()


@pytest.fixture
def azurite_app(azurite_conn, tmp_path, monkeypatch):
    """The app's container on an isolated Azurite container (the lake) and INVENTORY_HOME; the embedded
    stock store (for the tests that stop before the stock store)."""
    with lake_on_azurite(monkeypatch, tmp_path / "home", azurite_conn) as c:
        yield c


@pytest.fixture
def app_on_azurite(azurite_conn, tmp_path, monkeypatch, app_backend):
    """:func:`azurite_app` with the stock store of ``app_backend``: embedded, or on the Cosmos-API server."""
    with lake_on_azurite(monkeypatch, tmp_path / "home", azurite_conn, app_backend) as c:
        yield c


def trigger_with(c, functions, path):
    """What the host does when Event Grid reports the blob: hand the function a BlobClient for it."""
    client = c.lake.container.get_blob_client(path)
    functions["ingest_dump"].get_user_function()(client)


def test_an_uploaded_dump_is_ingested_exactly_once(functions, app_on_azurite, tmp_path):
    from inventory_agent import upload_dump

    app = app_on_azurite
    up = upload_dump(make_dump(tmp_path / "d.sqlite"), "S7", app.lake, scratch=tmp_path)
    trigger_with(app, functions, up.path)
    lake = app.lake
    manifests = list(lake.list("manifests/store=S7/"))
    assert len(manifests) == 1
    manifest = json.loads(lake.get_bytes(manifests[0].path))
    assert manifest["snapshot_source"] == "agent"
    assert manifest["received_sha256"] == up.sha256
    assert manifest["tables"]["sales"]["curated"] == 3
    from tests.support.delta import delta_rows

    sold = delta_rows(lake, "curated/sales", "store_id = 'S7'", "CAST(date AS VARCHAR) AS day, month").to_pylist()
    assert ("2026-11-25", "2026-11") in {(r["day"], r["month"]) for r in sold}
    # The dump is the store's stock baseline: its counts (no events yet).
    assert app.stock.baseline("S7").dump_id == manifest["dump_id"]
    stock = [(d.sku, d.on_hand, d.baseline_dump_id) for d in app.stock.stock("S7")]
    assert stock == [("A-1", 10, manifest["dump_id"]), ("A-2", 4, manifest["dump_id"])]
    # Delivered again (Event Grid is at-least-once; the host retries): a no-op.
    before = sorted((o.path, o.etag) for o in lake.list(""))
    trigger_with(app, functions, up.path)
    assert sorted((o.path, o.etag) for o in lake.list("")) == before
    assert [(d.sku, d.on_hand, d.baseline_dump_id) for d in app.stock.stock("S7")] == stock


def test_a_bad_dump_is_quarantined_without_raising(functions, azurite_app):
    path = "raw/store=S7/date=2026-11-27/x.sqlite"
    azurite_app.lake.put_bytes(path, b"not a database")
    trigger_with(azurite_app, functions, path)
    paths = [o.path for o in azurite_app.lake.list("quarantine/store=S7/")]
    assert any(p.endswith("reason.json") for p in paths)
    assert list(azurite_app.lake.list("curated/")) == []
    events = (azurite_app.settings.home / "telemetry" / "events.jsonl").read_text()
    assert '"DumpQuarantined"' in events and "not_sqlite" in events


def test_a_path_with_an_unsafe_store_id_is_quarantined_apart(functions, azurite_app, tmp_path):
    azurite_app.lake.put_file("raw/store=..%2Fx/date=2026-11-27/d.sqlite", make_dump(tmp_path / "d.sqlite"))
    trigger_with(azurite_app, functions, "raw/store=..%2Fx/date=2026-11-27/d.sqlite")
    quarantined = [o.path for o in azurite_app.lake.list("quarantine/")]
    assert quarantined and all(p.startswith("quarantine/store=_invalid/") for p in quarantined)


def test_a_dump_deleted_before_it_is_read_is_skipped_not_retried(functions, azurite_app):
    # Event Grid redelivers late, or someone removed the upload: the host's retries could never succeed.
    trigger_with(azurite_app, functions, "raw/store=S7/date=2026-11-27/gone.sqlite")
    assert list(azurite_app.lake.list("")) == []
    events = (azurite_app.settings.home / "telemetry" / "events.jsonl").read_text()
    assert '"DumpVanished"' in events and "gone.sqlite" in events


def test_a_missing_container_is_still_a_failure(functions, azurite_app):
    from azure.core.exceptions import ResourceNotFoundError

    azurite_app.lake.container.delete_container()
    with pytest.raises(ResourceNotFoundError):
        trigger_with(azurite_app, functions, "raw/store=S7/date=2026-11-27/d.sqlite")
    azurite_app.lake.container.create_container()  # for the fixture's clean-up
