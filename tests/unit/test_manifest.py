"""The manifest type: the fields every reader relies on are checked once, the JSON is kept as written."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.core.aggregates import data_quality_rows
from shared.core.manifest import Manifest, ManifestError, TableCounts

WRITTEN = {
    "schema_version": 3, "store_id": "S001", "dump_id": "ab" * 12, "snapshot_at": "2026-12-06T23:00:00Z",
    "ingested_at": "2026-12-07T01:00:00Z", "future_field": {"kept": True},
    "tables": {"sales": {"input": 10, "curated": 7, "rejected": 3, "written": 5, "by_rule": {"bad_qty": 2, "x": 1},
                         "days_written": {"2026-12-06": 5}, "changed_written": 1},
               "items": {"input": 4, "curated": 4, "rejected": 0}},
}


def test_a_manifest_as_written_reads_back_whole():
    m = Manifest.from_json(json.dumps(WRITTEN).encode())
    assert (m.store_id, m.dump_id, m.snapshot_at, m.ingested_at) == ("S001", "ab" * 12, "2026-12-06T23:00:00Z",
                                                                     "2026-12-07T01:00:00Z")
    assert m.snapshot_time == datetime(2026, 12, 6, 23, tzinfo=UTC)
    assert m.tables["sales"] == TableCounts(10, 7, 3, 5, {"bad_qty": 2, "x": 1}, {"2026-12-06": 5}, 1)
    assert m.tables["items"] == TableCounts(4, 4, 0)
    assert (m.rows_in(), m.rows_rejected(), m.changed_lines()) == (14, 3, [["sales", 1]])
    assert m.to_json() == WRITTEN  # fields this version does not name are kept


@pytest.mark.parametrize("broken, says", [
    (b"{not json", "is not JSON"), (b"[1, 2]", "is not a JSON object"),
    ({**WRITTEN, "dump_id": ""}, "has no dump_id"), ({k: v for k, v in WRITTEN.items() if k != "snapshot_at"},
                                                     "has no snapshot_at"),
    ({**WRITTEN, "store_id": 7}, "has no store_id"),
])
def test_a_manifest_missing_what_readers_rely_on_is_refused_by_name(broken, says):
    with pytest.raises(ManifestError, match=says) as caught:
        Manifest.from_json(broken, where="manifests/store=S001/x.json")
    assert "manifests/store=S001/x.json" in str(caught.value)


def test_an_older_manifest_without_counts_reads_with_zeros():
    m = Manifest.from_json({"store_id": "S1", "dump_id": "d", "snapshot_at": "2026-01-01T00:00:00+01:00"})
    assert (m.tables, m.ingested_at, m.rows_in()) == ({}, None, 0)
    assert m.snapshot_time == datetime(2025, 12, 31, 23, tzinfo=UTC)


def test_data_quality_rows_take_the_typed_manifest_or_its_json():
    rows = data_quality_rows(Manifest.from_json(WRITTEN))
    assert rows == data_quality_rows(WRITTEN)
    assert [(r["table_name"], r["rule"], r["rule_count"]) for r in rows] == [
        ("items", "", 0), ("sales", "", 3), ("sales", "bad_qty", 2), ("sales", "x", 1)]
    assert {r["date"] for r in rows} == {"2026-12-06"}
