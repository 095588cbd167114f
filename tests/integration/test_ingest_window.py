"""A night costs what the night brought: after a full night, a store's next dumps are read from the mark on
(the last days' lines), once SQLite's digest of the older history matches the one recorded; any change in
that history sends the night back to the whole read. The lake ends up the same either way."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.local.generator import generate_store
from shared.services.ingest import IngestLimits, ingest_dump
from shared.services.ingest.history import load_state, state_path
from tests.support.delta import delta_rows

NIGHT1 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
NIGHT2 = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
NIGHT3 = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("window")
    return generate_store(folder / "S1.sqlite", "S1", sales_lines=5000, days=30, end=date(2026, 11, 26),
                          dirty_rate=0.02, seed=21)


def nightly(src, dst, day: str, lines: int, prefix: str, *statements: str):
    """The next full snapshot: everything in ``src``, ``lines`` sale lines on ``day``, then ``statements``."""
    dst.write_bytes(src.read_bytes())
    with sqlite3.connect(dst) as con:
        sku = con.execute("SELECT sku FROM items LIMIT 1").fetchone()[0]
        con.executemany("INSERT INTO sales VALUES (?, 1, ?, 2, 1.5, ?)",
                        [(f"{prefix}-{i:05d}", sku, f"{day} {8 + i % 10:02d}:00:00") for i in range(lines)])
        for sql in statements:
            con.execute(sql)
    return dst


def ingest(path, lake, at, **kw):
    result = ingest_dump(path, "S1", lake=lake, telemetry=MemoryTelemetry(), snapshot_at=at, **kw)
    assert result.status == "ingested", result.reason
    return result


def lines(lake):
    rows = delta_rows(lake, "curated/sales", "store_id = 'S1'", "sale_id, line_no, qty, sold_at").to_pylist()
    return sorted((r["sale_id"], r["line_no"], r["qty"], r["sold_at"]) for r in rows)


def test_the_next_night_reads_only_its_window_and_the_lake_is_as_after_whole_reads(store, lake, tmp_path):
    first = ingest(store.path, lake, NIGHT1)
    assert first.manifest["tables"]["sales"]["history"]["read"] == "whole"
    state = load_state(lake, "S1")["tables"]["sales"]
    assert state["hwm"] == "2026-11-24" and state["dump_id"] == first.dump_id

    night2 = nightly(store.path, tmp_path / "n2.sqlite", "2026-11-27", 300, "N2")
    second = ingest(night2, lake, NIGHT2)
    sales = second.manifest["tables"]["sales"]
    assert sales["history"]["read"] == "window"
    assert sales["history"]["history_rows_checked"] > 4000  # not read: summed in SQLite
    assert sales["input"] < 1000  # the last days' lines and the new ones
    assert sales["written"] == 300 and sales["changed_since_ingested"] == 0
    assert load_state(lake, "S1")["tables"]["sales"] == state  # a window night keeps the full night's record

    whole = FolderLake(tmp_path / "whole")  # the same two nights, each read whole
    for path, at in ((store.path, NIGHT1), (night2, NIGHT2)):
        ingest(path, whole, at, limits=IngestLimits(full_check_days=0))
    assert lines(lake) == lines(whole)


def test_an_edit_below_the_mark_sends_the_night_back_to_the_whole_read_and_is_reported(store, lake, tmp_path):
    ingest(store.path, lake, NIGHT1)
    old = sqlite3.connect(store.path).execute(
        "SELECT sale_id, line_no, qty FROM sales WHERE sold_at < '2026-11-10' AND qty > 0 LIMIT 1").fetchone()
    night2 = nightly(store.path, tmp_path / "n2.sqlite", "2026-11-27", 50, "N2",
                     f"UPDATE sales SET qty = qty + 1 WHERE sale_id = '{old[0]}' AND line_no = {old[1]}")
    sales = ingest(night2, lake, NIGHT2).manifest["tables"]["sales"]
    assert sales["history"]["read"] == "whole"
    assert "differs" in sales["history"]["reason"] and "same row count" in sales["history"]["reason"]
    assert sales["changed_since_ingested"] == 1 and sales["written"] == 50
    assert load_state(lake, "S1")["tables"]["sales"]["hwm"] == "2026-11-25"  # a new mark

    # Removed history (a store pruning old lines) is a fallback too, counted, not flagged.
    night3 = nightly(night2, tmp_path / "n3.sqlite", "2026-11-28", 10, "N3",
                     "DELETE FROM sales WHERE rowid IN (SELECT rowid FROM sales WHERE sold_at LIKE '2026-11-0%' "
                     "AND qty > 0 LIMIT 5)")
    sales3 = ingest(night3, lake, NIGHT3).manifest["tables"]["sales"]
    assert sales3["history"]["read"] == "whole" and "rows " in sales3["history"]["reason"]
    assert sales3["not_in_dump"] > 0 and sales3["written"] == 10


def test_a_window_line_reusing_an_old_key_is_not_written_twice(store, lake, tmp_path):
    ingest(store.path, lake, NIGHT1)
    old = sqlite3.connect(store.path).execute(
        "SELECT sale_id, line_no FROM sales WHERE sold_at < '2026-11-10' LIMIT 1").fetchone()
    night2 = nightly(store.path, tmp_path / "n2.sqlite", "2026-11-27", 20, "N2",
                     f"INSERT INTO sales SELECT '{old[0]}', {old[1]}, sku, 9, 1.0, '2026-11-27 20:00:00' "
                     "FROM items LIMIT 1")
    sales = ingest(night2, lake, NIGHT2).manifest["tables"]["sales"]
    # The dump holds the key twice (old and new line); read as a window, the new one meets the lake's.
    assert sales["history"]["read"] == "window"
    assert sales["changed_since_ingested"] == 1 and sales["written"] == 20
    assert [r[:2] for r in lines(lake)].count((old[0], old[1])) == 1


def test_a_full_read_comes_back_every_full_check_days_and_without_a_state(store, lake, tmp_path):
    ingest(store.path, lake, NIGHT1)
    night2 = nightly(store.path, tmp_path / "n2.sqlite", "2026-11-27", 5, "N2")
    limits = IngestLimits(full_check_days=0)  # the record is always too old
    assert ingest(night2, lake, NIGHT2, limits=limits).manifest["tables"]["sales"]["history"]["read"] == "whole"
    lake.put_bytes(state_path("S1"), b"{not json")
    night3 = nightly(night2, tmp_path / "n3.sqlite", "2026-11-28", 5, "N3")
    history = ingest(night3, lake, NIGHT3).manifest["tables"]["sales"]["history"]
    assert history["read"] == "whole" and history["reason"] == "no history recorded for this store yet"
    assert json.loads(lake.get_bytes(state_path("S1")))["version"] == 2  # recorded again
