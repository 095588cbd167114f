"""A dump whose blob metadata names another store than its folder is refused (store_mismatch), on both lakes.

What the blob trigger does, end to end against the lake: the agent's upload (put_file with metadata), the
trigger's properties read (head) and download, then ``ingest_landed_dump``. Per-store identities keep a store
from writing another store's folder (docs/security.md); this check catches the other way round: a dump that says
it is another store's (an agent configured with the wrong --store, or a store trying to pass its data off as
another's) never becomes the folder's stock baseline. Agents older than the store_id metadata send none: accepted.
"""

from __future__ import annotations

import json

import pytest

from shared.adapters.telemetry import MemoryTelemetry
from shared.services.ingest import QUARANTINE_REASONS, ingest_landed_dump
from tests.support.dumps import make_dump

PATH = "raw/store=S1/date=2026-11-27/S1-0123456789abcdef.sqlite"


def land_and_ingest(lake, tmp_path, metadata, path=PATH):
    """Upload like the agent, then read the properties and the bytes back and ingest like the blob trigger."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    dump = make_dump(tmp_path / "upload.sqlite")
    assert lake.put_file(path, dump, metadata=metadata, overwrite=False)
    props = lake.head(path)
    local = tmp_path / "download" / "dump"
    local.parent.mkdir()
    lake.get_to_file(path, local)
    tel = MemoryTelemetry()
    result = ingest_landed_dump(path, local, dict(props.metadata), lake=lake, telemetry=tel)
    return result, tel


def test_store_mismatch_is_a_registered_quarantine_reason():
    assert "store_mismatch" in QUARANTINE_REASONS


@pytest.mark.parametrize("claimed", ["S2", "s1", "S10", "S", ""])
def test_a_dump_naming_another_store_is_quarantined_under_its_folder(lake, tmp_path, claimed):
    # "s1", "S10", "S": store ids are case-sensitive and compared whole; "" is a store_id that names no store.
    # (No whitespace cases: HTTP trims it from header values, so Blob metadata cannot carry "S1 ".)
    result, tel = land_and_ingest(lake, tmp_path, {"store_id": claimed, "snapshot_at": "2026-11-27T22:00:00Z"})
    assert result.status == "quarantined" and result.reason_code == "store_mismatch", result.reason
    assert result.exit_code == 2 and repr(claimed) in result.reason and "raw/store=S1/" in result.reason
    # Nothing reached the tables or the manifests: the dump is no stock baseline of S1 (nor of the claimed store).
    paths = [o.path for o in lake.list("")]
    assert not [p for p in paths if p.startswith(("curated/", "rejected/", "manifests/"))], paths
    quarantined = [p for p in paths if p.startswith("quarantine/")]
    assert quarantined and all(p.startswith("quarantine/store=S1/") for p in quarantined), quarantined
    reason = json.loads(lake.get_bytes(next(p for p in quarantined if p.endswith("/reason.json"))))
    assert reason["reason_code"] == "store_mismatch" and reason["store_id"] == "S1"
    assert reason["reason_description"] == QUARANTINE_REASONS["store_mismatch"]
    assert [n for n, _ in tel.events] == ["DumpQuarantined"]
    assert tel.events[0][1]["reasonCode"] == "store_mismatch" and tel.events[0][1]["storeId"] == "S1"


def test_a_dump_naming_its_own_store_is_ingested(lake, tmp_path):
    result, _ = land_and_ingest(lake, tmp_path, {"store_id": "S1", "snapshot_at": "2026-11-27T22:00:00Z"})
    assert result.status == "ingested", result.reason
    assert result.store_id == "S1" and lake.head(f"manifests/store=S1/{result.dump_id}.json") is not None


def test_a_dump_without_store_id_metadata_is_ingested(lake, tmp_path):
    # Agents released before the store_id metadata: the path alone says whose dump it is, as before.
    result, _ = land_and_ingest(lake, tmp_path, {"snapshot_at": "2026-11-27T22:00:00Z", "agent_version": "0.9"})
    assert result.status == "ingested", result.reason


def test_the_metadata_name_is_case_insensitive(lake, tmp_path):
    # Azure metadata names are case-insensitive (Set Blob Metadata); a differently-cased key is still the check's.
    result, _ = land_and_ingest(lake, tmp_path, {"Store_Id": "S2"})
    assert result.reason_code == "store_mismatch", result.status


def test_a_mismatch_after_an_ingest_leaves_the_baseline_alone(lake, tmp_path):
    first, _ = land_and_ingest(lake, tmp_path / "a", {"store_id": "S1"})
    assert first.status == "ingested"
    manifests = sorted(o.path for o in lake.list("manifests/"))
    other = "raw/store=S1/date=2026-11-28/S1-fedcba9876543210.sqlite"
    second, _ = land_and_ingest(lake, tmp_path / "b", {"store_id": "S2"}, path=other)
    assert second.reason_code == "store_mismatch"
    assert sorted(o.path for o in lake.list("manifests/")) == manifests
