"""The blob-triggered function, found through app.get_functions() and called with real binding objects."""

from __future__ import annotations

import json

import azure.functions as func

from tests.support.dumps import make_dump


def test_binding_is_an_event_grid_blob_trigger_on_raw(functions):
    fn = functions["ingest_dump"]
    trigger = json.loads(fn.get_function_json())["bindings"][0]
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"  # what Flex Consumption requires
    assert trigger["path"] == "%LAKE_CONTAINER%/raw/{name}"
    assert trigger["connection"] == "LAKE"
    assert trigger["direction"] == "IN"


def blob(data: bytes, name: str, metadata: dict | None = None) -> func.blob.InputStream:
    return func.blob.InputStream(data=data, name=name, length=len(data), metadata=metadata or {},
                                 uri=f"http://127.0.0.1:10000/devstoreaccount1/{name}")


def test_a_landed_dump_is_ingested(functions, local_env, tmp_path):
    data = make_dump(tmp_path / "d.sqlite").read_bytes()
    name = "lake/raw/store=S7/date=2026-11-27/S7-abc.sqlite"
    functions["ingest_dump"].get_user_function()(
        blob(data, name, {"snapshot_at": "2026-11-27T01:00:00Z", "sha256": "x"}))
    manifests = list(local_env.lake.list("manifests/store=S7/"))
    assert len(manifests) == 1
    manifest = json.loads(local_env.lake.get_bytes(manifests[0].path))
    assert manifest["snapshot_at"] == "2026-11-27T01:00:00Z" and manifest["snapshot_source"] == "agent"
    assert manifest["tables"]["sales"]["curated"] == 3
    # Delivered again (the host retries, Event Grid redelivers): a no-op.
    functions["ingest_dump"].get_user_function()(blob(data, name))
    assert len(list(local_env.lake.list("manifests/store=S7/"))) == 1


def test_a_bad_dump_is_quarantined_without_raising(functions, local_env):
    functions["ingest_dump"].get_user_function()(
        blob(b"not a database", "lake/raw/store=S7/date=2026-11-27/x.sqlite"))
    paths = [o.path for o in local_env.lake.list("quarantine/store=S7/")]
    assert any(p.endswith("reason.json") for p in paths)
    assert list(local_env.lake.list("curated/")) == []
    events = (local_env.settings.home / "telemetry" / "events.jsonl").read_text()
    assert '"DumpQuarantined"' in events and "not_sqlite" in events


def test_a_path_with_an_unsafe_store_id_is_quarantined_apart(functions, local_env, tmp_path):
    data = make_dump(tmp_path / "d.sqlite").read_bytes()
    functions["ingest_dump"].get_user_function()(blob(data, "lake/raw/store=..%2F..%2Fx/date=2026-11-27/d.sqlite"))
    assert all(o.path.startswith("quarantine/store=_invalid/") for o in local_env.lake.list("quarantine/"))
    assert list(local_env.lake.list("quarantine/"))
