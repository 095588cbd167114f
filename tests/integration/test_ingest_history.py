"""History that changed between a store's nightly dumps is reported, never ignored; history that is gone is
counted; rows rejected on an earlier night are not written again. On the folder lake and Azurite."""

from __future__ import annotations

import sqlite3

import pytest

from shared.adapters.telemetry import MemoryTelemetry
from shared.local.generator import generate_store
from shared.services.ingest import ingest_dump
from tests.support.delta import delta_count, delta_rows
from tests.support.dumps import next_night


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    return generate_store(folder / "S1.sqlite", "S1", sales_lines=4000, days=21, dirty_rate=0.02, seed=11)


def ingest(path, lake):
    result = ingest_dump(path, "S1", lake=lake, telemetry=MemoryTelemetry())
    assert result.status == "ingested", result.reason
    return result


def edit(path, *statements):
    with sqlite3.connect(path) as con:
        for sql in statements:
            con.execute(sql)
    return path


def sale(lake, where):
    return delta_rows(lake, "curated/sales", where, "sale_id, line_no, qty, dump_id").to_pylist()


def test_an_edited_line_is_set_aside_as_changed_and_the_lake_keeps_the_first_version(first, lake, tmp_path):
    night1 = ingest(first.path, lake)
    target = sqlite3.connect(first.path).execute(
        "SELECT sale_id, line_no, qty FROM sales WHERE rowid = 100").fetchone()
    night2_path = edit(next_night(first.path, tmp_path / "n2.sqlite", 10),
                       f"UPDATE sales SET qty = qty + 5 WHERE sale_id = '{target[0]}' AND line_no = {target[1]}")
    night2 = ingest(night2_path, lake)
    sales = night2.manifest["tables"]["sales"]
    assert sales["changed_since_ingested"] == 1
    assert sales["by_rule"]["changed_since_ingested"] == 1
    assert sales["written"] == 10 and sales["curated"] + sales["rejected"] == sales["input"]
    where = f"sale_id = '{target[0]}' AND line_no = {target[1]}"
    assert sale(lake, where) == [{"sale_id": target[0], "line_no": target[1], "qty": target[2],
                                  "dump_id": night1.dump_id}]  # the first version, once
    (changed,) = delta_rows(lake, "rejected/sales", f"reason_code = 'changed_since_ingested' AND {where}",
                            "qty, dump_id, kept_dump_id, reason").to_pylist()
    assert changed["qty"] == str(target[2] + 5)  # its new values
    assert (changed["dump_id"], changed["kept_dump_id"]) == (night2.dump_id, night1.dump_id)
    assert "first version" in changed["reason"]
    # Every rejection of night 1 is in the dump again: none is written a second time.
    assert sales["rejected_written"] == 1
    assert delta_count(lake, "rejected/sales", f"dump_id = '{night2.dump_id}'") == 1

    # Night 3 has the same edit (and one line more): the change is counted again, not written again.
    night3 = ingest(edit(next_night(night2_path, tmp_path / "n3.sqlite", 0),
                         "INSERT INTO sales SELECT 'N3-1', 1, sku, 1, 1.0, '2026-11-27 13:00:00' FROM items LIMIT 1"),
                    lake)
    sales3 = night3.manifest["tables"]["sales"]
    assert (sales3["changed_since_ingested"], sales3["rejected_written"], sales3["written"]) == (1, 0, 1)
    assert delta_count(lake, "rejected/sales", "reason_code = 'changed_since_ingested'") == 1


def test_lines_gone_from_a_later_dump_are_counted_not_flagged(first, lake, tmp_path):
    ingest(first.path, lake)
    pruned = edit(next_night(first.path, tmp_path / "n2.sqlite", 3),
                  "DELETE FROM sales WHERE rowid IN (SELECT rowid FROM sales ORDER BY sold_at LIMIT 40)")
    sales = ingest(pruned, lake).manifest["tables"]["sales"]
    lake_keys = {(r["sale_id"], r["line_no"]) for r in sale(lake, "store_id = 'S1'")}
    left = set(sqlite3.connect(pruned).execute("SELECT sale_id, CAST(line_no AS INTEGER) FROM sales").fetchall())
    # The 40 oldest rows, less those the rules had rejected (never in the lake) or whose key is there twice.
    assert sales["not_in_dump"] == len(lake_keys - left) > 20
    assert sales["changed_since_ingested"] == 0 and "changed_since_ingested" not in sales["by_rule"]
    assert sales["written"] == 3
