"""Hostile and broken dumps: each is quarantined with a reason, nothing reaches curated/, nothing hangs."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.ids import InvalidStoreId
from shared.core.mapping import parse_mapping
from shared.ports.dumps import ReadLimits
from shared.services.ingest import IngestLimits, ingest_dump, ingest_landed_dump
from tests.support.dumps import MINIMAL, make_dump


@pytest.fixture
def lake(tmp_path):
    return FolderLake(tmp_path / "lake")


def ingest(path, lake, limits=None, store="S1", mapping=None):
    tel = MemoryTelemetry()
    result = ingest_dump(path, store, lake=lake, telemetry=tel, limits=limits, mapping=mapping)
    return result, tel


def assert_quarantined(result, tel, lake, code):
    assert result.status == "quarantined", result.manifest
    assert result.reason_code == code, result.reason
    assert result.exit_code == 2
    assert list(lake.list("curated/")) == []
    assert list(lake.list("manifests/")) == []
    reasons = [o.path for o in lake.list("quarantine/") if o.path.endswith("reason.json")]
    assert len(reasons) == 1
    reason = json.loads(lake.get_bytes(reasons[0]))
    assert reason["reason_code"] == code and reason["reason"]
    assert tuple(n for n, _ in tel.events) == ("DumpQuarantined",)
    return reason


def test_a_valid_minimal_dump_is_ingested(tmp_path, lake):
    result, _ = ingest(make_dump(tmp_path / "ok.sqlite"), lake)
    assert result.status == "ingested"
    assert result.manifest["tables"]["sales"]["curated"] == 3


def test_not_sqlite(tmp_path, lake):
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"id,sku\n1,A-1\n" * 100)
    assert_quarantined(*ingest(bad, lake), lake, "not_sqlite")


def test_truncated_database(tmp_path, lake):
    full = make_dump(tmp_path / "full.sqlite",
                     "".join(f"INSERT INTO sales VALUES ('x{i}', 1, 'A-1', 1, 1.0, '2026-11-25 10:00:00');"
                             for i in range(3000)))
    data = full.read_bytes()
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(data[: len(data) // 2])
    result, tel = ingest(cut, lake)
    assert_quarantined(result, tel, lake, result.reason_code)
    assert result.reason_code in ("corrupt", "reader_failed")


def test_truncated_gzip(tmp_path, lake):
    gz = tmp_path / "d.sqlite.gz"
    gz.write_bytes(gzip.compress(make_dump(tmp_path / "d.sqlite").read_bytes())[:-40])
    assert_quarantined(*ingest(gz, lake), lake, "bad_gzip")


def test_a_gzip_with_damaged_deflate_data_is_quarantined_not_a_crash(tmp_path, lake):
    # zlib's own error ("invalid bit length repeat") is no OSError: it used to escape as an exception, so the
    # blob trigger retried the dump until it was poisoned.
    data = bytearray(gzip.compress(make_dump(tmp_path / "d.sqlite").read_bytes()))
    for i in range(20, 60):
        data[i] ^= 0xFF
    gz = tmp_path / "d.sqlite.gz"
    gz.write_bytes(bytes(data))
    assert_quarantined(*ingest(gz, lake), lake, "bad_gzip")


def test_gzip_bomb_stops_at_the_limit(tmp_path, lake):
    bomb = tmp_path / "bomb.sqlite.gz"
    with gzip.open(bomb, "wb") as f:  # 64 MB of zeros compress to ~64 KB
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert bomb.stat().st_size < 200_000
    result, tel = ingest(bomb, lake, IngestLimits(max_dump_bytes=8 << 20))
    assert_quarantined(result, tel, lake, "too_large")


# --- queries that never end, or outgrow the file: refused in seconds (docs/hostile-dumps.md) -----------------

# MINIMAL with its sales lines in sales_old, so that a view can take the name sales.
SALES_OLD = MINIMAL.replace("CREATE TABLE sales(", "CREATE TABLE sales_old(").replace("INSERT INTO sales ",
                                                                                   "INSERT INTO sales_old ")
ENDLESS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"
LINE = "1 AS line_no, 'A-1' AS sku, 1 AS qty, 1.0 AS unit_price, '2026-11-25 10:00:00' AS sold_at"
NUMBERS = """CREATE TABLE n(i);
    WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1000) INSERT INTO n SELECT i FROM r;"""


def refused_in_seconds(dump, lake, mapping=None):
    """Quarantined as unbounded_query within a few seconds, the deadline left at its default 900 s."""
    limits = IngestLimits()
    assert limits.read.query_timeout_s == 900
    started = time.monotonic()
    result, tel = ingest(dump, lake, limits, mapping=mapping)
    elapsed = time.monotonic() - started
    reason = assert_quarantined(result, tel, lake, "unbounded_query")
    assert elapsed < 15, elapsed
    assert "table sales" in reason["reason"] and "nothing of the dump was ingested" in reason["reason"]
    assert reason["reason_description"] != "unbounded_query"  # registered with a meaning
    return reason


@pytest.mark.parametrize("view", [
    pytest.param(f"{ENDLESS} SELECT 's' || n AS sale_id, {LINE} FROM r", id="recursive-endless-rows"),
    pytest.param(f"{ENDLESS} SELECT 's' || n AS sale_id, {LINE} FROM r WHERE n < 0", id="recursive-no-row-never-ends"),
    pytest.param(f"{ENDLESS} SELECT 's' || n AS sale_id, {LINE} FROM r ORDER BY n DESC",
                 id="sort-of-an-endless-source"),
    pytest.param(f"SELECT a.i || '-' || b.i || '-' || c.i AS sale_id, {LINE} FROM n a, n b, n c", id="cross-join"),
    pytest.param(f"SELECT a.i AS sale_id, {LINE} FROM n a, n b, n c WHERE a.i + b.i + c.i < 0",
                 id="cross-join-no-row"),
    pytest.param(f"SELECT sale_id, line_no, sku, ({ENDLESS} SELECT count(*) FROM r) AS qty, unit_price, sold_at "
                 "FROM sales_old", id="endless-subquery-per-row"),
])
def test_a_view_that_never_ends_or_outgrows_the_file_is_refused_in_seconds(tmp_path, lake, view):
    # A required table replaced by a view that never ends, or yields more rows than the file could store.
    # Before, only the deadline (INGEST_QUERY_TIMEOUT_S, 900 s) stopped these, holding the function 15 minutes.
    dump = make_dump(tmp_path / "v.sqlite", f"{NUMBERS} CREATE VIEW sales AS {view};", base=SALES_OLD)
    refused_in_seconds(dump, lake)


def test_a_mapping_query_with_a_cross_join_is_refused_in_seconds(tmp_path, lake):
    # 3 sale lines x 1,000 x 1,000: 3M rows from a 28 KB file that can store about 6,000.
    dump = make_dump(tmp_path / "m.sqlite", NUMBERS)
    mapping = parse_mapping('''[tables.sales]
query = """
SELECT s.sale_id || '-' || a.i || '-' || b.i AS sale_id, s.line_no, s.sku, s.qty, s.unit_price, s.sold_at
FROM sales s, n a, n b
"""
''')
    refused_in_seconds(dump, lake, mapping)


@pytest.mark.parametrize("view, lines", [
    pytest.param("SELECT * FROM sales_old", 3, id="plain"),
    pytest.param("SELECT s.sale_id, s.line_no, s.sku, s.qty, i.unit_price, s.sold_at FROM sales_old s "
                 "JOIN items i ON i.sku = s.sku ORDER BY s.sold_at", 3, id="join-and-sort"),
    pytest.param("SELECT sale_id, line_no, sku, qty, unit_price, sold_at FROM sales_old WHERE qty > 0 "
                 "UNION ALL SELECT 'x' || i, 1, 'A-1', 1, 1.0, '2026-11-25 10:00:00' FROM n WHERE i <= 10",
                 13, id="union"),
])
def test_legitimate_views_still_pass(tmp_path, lake, view, lines):
    dump = make_dump(tmp_path / "ok.sqlite", f"{NUMBERS} CREATE VIEW sales AS {view};", base=SALES_OLD)
    result, _ = ingest(dump, lake)
    assert result.status == "ingested", result.reason
    assert result.manifest["tables"]["sales"]["curated"] == lines


def test_a_legitimate_join_mapping_still_passes(tmp_path, lake):
    dump = make_dump(tmp_path / "j.sqlite", "")
    mapping = parse_mapping('''[tables.sales]
query = """
SELECT s.sale_id, s.line_no, i.sku, s.qty, i.unit_price, s.sold_at
FROM sales s JOIN items i ON i.sku = s.sku LEFT JOIN vendors v ON v.vendor_id = i.vendor_id
"""
''')
    result, _ = ingest(dump, lake, mapping=mapping)
    assert result.status == "ingested", result.reason
    assert result.manifest["tables"]["sales"]["curated"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("through", ["table", "view"])
def test_a_huge_legitimate_table_still_passes(tmp_path, lake, through):
    # 2M narrow sale lines (~36 bytes each), as a table, and through a view joining items that SQLite cannot
    # flatten: that one is run in full under the step budget before it is streamed, and must fit in it.
    lines = 2_000_000
    base = SALES_OLD if through == "view" else MINIMAL
    table = "sales_old" if through == "view" else "sales"
    extra = f"""DELETE FROM {table};
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT {lines})
        INSERT INTO {table} SELECT n, 1, 'A-' || (1 + n % 2), 1, 1, '2026-11-25 10:00:00' FROM r;"""
    if through == "view":
        extra += ("CREATE VIEW sales AS SELECT s.sale_id, s.line_no, s.sku, s.qty, i.unit_price, s.sold_at "
                  "FROM sales_old s JOIN items i ON i.sku = s.sku ORDER BY s.sale_id;")
    dump = make_dump(tmp_path / "huge.sqlite", extra, base=base)
    started = time.monotonic()
    result, _ = ingest(dump, lake)
    assert result.status == "ingested", result.reason
    assert result.manifest["tables"]["sales"]["curated"] == lines
    assert time.monotonic() - started < 60


def test_the_deadline_still_stops_what_the_bound_lets_run_long(tmp_path, lake):
    # The bound grows with the file: 30 MB of padding lets an endless view run for seconds of SQLite work
    # before its budget is spent. The deadline, kept as the last resort, stops it first here.
    dump = make_dump(tmp_path / "padded.sqlite", f"""
        CREATE TABLE pad(b);
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 30) INSERT INTO pad
            SELECT zeroblob(1000000) FROM r;
        CREATE VIEW sales AS {ENDLESS} SELECT 's' || n AS sale_id, {LINE} FROM r WHERE n < 0;""", base=SALES_OLD)
    started = time.monotonic()
    result, tel = ingest(dump, lake, IngestLimits(read=ReadLimits(query_timeout_s=1)))
    assert time.monotonic() - started < 20
    assert_quarantined(result, tel, lake, "query_timeout")


def test_triggers_never_run_and_are_reported(tmp_path, lake):
    dump = make_dump(tmp_path / "trig.sqlite", """
        CREATE TABLE audit(x);
        CREATE TRIGGER wipe AFTER INSERT ON sales BEGIN DELETE FROM items; END;
        CREATE TRIGGER spy BEFORE DELETE ON stock BEGIN INSERT INTO audit VALUES (1); END;""")
    before = dump.read_bytes()
    result, _ = ingest(dump, lake)
    assert result.status == "ingested"
    assert any("2 trigger" in w for w in result.manifest["warnings"])
    assert result.manifest["tables"]["items"]["curated"] == 2
    assert dump.read_bytes() == before  # opened read-only: not a byte changed


def test_view_calling_an_unsafe_function_is_refused(tmp_path, lake):
    # With trusted_schema=OFF, views may not call functions that are not marked innocuous.
    base = MINIMAL.replace("CREATE TABLE items(", "CREATE TABLE items_t(").replace("INSERT INTO items ",
                                                                                 "INSERT INTO items_t ")
    dump = make_dump(tmp_path / "fn.sqlite", """
        CREATE VIEW items AS SELECT sku, name, category, vendor_id, unit_cost, unit_price, reorder_point,
               reorder_qty, active, load_extension('/tmp/evil.so') AS x FROM items_t;""", base=base)
    result, tel = ingest(dump, lake)
    assert_quarantined(result, tel, lake, "bad_query")


@pytest.mark.parametrize("table", ["items", "stock", "sales"])
def test_missing_required_table(tmp_path, lake, table):
    dump = make_dump(tmp_path / "m.sqlite", f"DROP TABLE {table};")
    result, tel = ingest(dump, lake)
    reason = assert_quarantined(result, tel, lake, "missing_table")
    assert repr(table) in reason["reason"]


def test_missing_optional_tables_are_fine(tmp_path, lake):
    result, _ = ingest(make_dump(tmp_path / "o.sqlite", "DROP TABLE vendors;"), lake)
    assert result.status == "ingested"
    assert "vendors" not in result.manifest["tables"]


def test_missing_required_column(tmp_path, lake):
    dump = make_dump(tmp_path / "c.sqlite", "ALTER TABLE sales DROP COLUMN qty;")
    result, tel = ingest(dump, lake)
    reason = assert_quarantined(result, tel, lake, "missing_column")
    assert "sales" in reason["reason"] and "qty" in reason["reason"]


def test_missing_optional_column_is_null(tmp_path, lake):
    result, _ = ingest(make_dump(tmp_path / "c.sqlite", "ALTER TABLE sales DROP COLUMN line_no;"), lake)
    assert result.status == "ingested"


def test_huge_cell(tmp_path, lake):
    dump = make_dump(tmp_path / "huge.sqlite",
                     "INSERT INTO items VALUES ('A-9', printf('%.*c', 3000000, 'x'), 'X', 'V1', 1, 2, 0, 0, 1);")
    result, tel = ingest(dump, lake, IngestLimits(read=ReadLimits(max_cell_bytes=1 << 20)))
    reason = assert_quarantined(result, tel, lake, "cell_too_large")
    assert "items.name" in reason["reason"]


def test_too_many_rows(tmp_path, lake):
    result, tel = ingest(make_dump(tmp_path / "r.sqlite"), lake, IngestLimits(read=ReadLimits(max_rows_per_table=2)))
    assert_quarantined(result, tel, lake, "too_many_rows")


@pytest.mark.parametrize("store", ["../x", "a/b", "", "x" * 65, "S 1", "s1;rm"])
def test_unsafe_store_id_is_refused_before_anything_is_written(tmp_path, lake, store):
    with pytest.raises(InvalidStoreId):
        ingest(make_dump(tmp_path / "s.sqlite"), lake, store=store)
    assert list(lake.list("")) == []


def test_unsafe_store_id_in_a_landed_path_is_quarantined_apart(tmp_path, lake):
    dump = make_dump(tmp_path / "s.sqlite")
    result = ingest_landed_dump("raw/store=../../etc/date=2026-11-27/d.sqlite", dump, {}, lake=lake,
                                telemetry=MemoryTelemetry())
    assert result.status == "quarantined" and result.reason_code == "invalid_store_id"
    assert all(o.path.startswith("quarantine/store=_invalid/") for o in lake.list(""))


def test_a_landed_path_with_a_bad_date_is_bad_path_under_its_own_store(tmp_path, lake):
    # It was quarantined as invalid_store_id under store=_invalid, with a reason contradicting the code.
    dump = make_dump(tmp_path / "s.sqlite")
    result = ingest_landed_dump("raw/store=S1/date=2026-13-01/d.sqlite", dump, {}, lake=lake,
                                telemetry=MemoryTelemetry())
    assert result.status == "quarantined" and result.reason_code == "bad_path" and "2026-13-01" in result.reason
    assert all(o.path.startswith("quarantine/store=S1/") for o in lake.list(""))


def test_mixed_types_and_blobs_in_a_column_are_rows_not_crashes(tmp_path, lake):
    dump = make_dump(tmp_path / "mixed.sqlite", """
        INSERT INTO sales VALUES ('3', 1, 'A-1', 'two', 1.0, '2026-11-26 10:00:00'),
                                 ('4', 1, X'FFFE', 1, 1.0, '2026-11-26 10:00:00'),
                                 ('5', 1, 'A-1', 2.5, 1.0, 1732700000),
                                 (6, 1.0, 'A-2', 3.0, '1.5', '2026-11-26 11:00:00');""")
    result, _ = ingest(dump, lake)
    sales = result.manifest["tables"]["sales"]
    assert sales["input"] == 7 and sales["curated"] == 4
    assert sales["by_rule"]["bad_number"] == 2 and sales["by_rule"]["unknown_sku"] == 1


@pytest.mark.parametrize("bad_value, code", [("'two'", "bad_number"), ("2.5", "bad_number"), ("X'FF'", "bad_number")])
def test_a_type_change_deep_in_a_table_is_one_rejected_row_not_a_lost_batch(tmp_path, lake, bad_value, code):
    # Batches of 100 rows; row 650 breaks the column's type (Arrow readers type a column from its first
    # values): that row alone is set aside, with its number, and no row is lost or repeated.
    rows = ",".join(f"('m{i}', 1, 'A-1', {bad_value if i == 650 else 1}, 1.0, '2026-11-26 10:00:00')"
                    for i in range(1, 1001))
    dump = make_dump(tmp_path / "late.sqlite", f"DELETE FROM sales; INSERT INTO sales VALUES {rows};")
    result, _ = ingest(dump, lake, IngestLimits(read=ReadLimits(batch_rows=100)))
    sales = result.manifest["tables"]["sales"]
    assert sales["input"] == 1000 and sales["curated"] == 999
    assert sales["by_rule"] == {code: 1}
    from tests.support.delta import delta_rows

    rejected = delta_rows(lake, "rejected/sales", "true", "row_number, sale_id").to_pylist()
    assert rejected == [{"row_number": 650, "sale_id": "m650"}]
    curated = delta_rows(lake, "curated/sales", "true", "count(DISTINCT sale_id) AS n").to_pylist()
    assert curated == [{"n": 999}]


@pytest.mark.parametrize("late_price", ["2.5", "'abc'"])
def test_a_column_null_for_whole_batches_then_set_loses_no_row(tmp_path, lake, late_price):
    # Arrow readers type a column from its first batch. Here sales.unit_price (numeric, read as numbers) and
    # receipts.vendor_id (text) are NULL for the first 250 rows (batches of 100), then set: the reader must
    # neither stop (reader_failed) nor lose or repeat a row at the switch.
    sales_rows = ",".join(f"('n{i}', 1, 'A-1', 1, {'NULL' if i <= 250 else late_price}, '2026-11-26 10:00:00')"
                          for i in range(1, 501))
    vendor = {True: "NULL", False: "'V1'"}
    receipt_rows = ",".join(f"('r{i}', 'A-1', 2, '2026-11-26 08:00:00', {vendor[i <= 250]})" for i in range(1, 501))
    dump = make_dump(tmp_path / "nulls.sqlite", f"DELETE FROM sales; INSERT INTO sales VALUES {sales_rows}; "
                     "CREATE TABLE receipts (receipt_id TEXT, sku TEXT, qty INTEGER, received_at TEXT, vendor_id TEXT);"
                     f"INSERT INTO receipts VALUES {receipt_rows};")
    result, _ = ingest(dump, lake, IngestLimits(read=ReadLimits(batch_rows=100)))
    assert result.status == "ingested", result.reason
    sales = result.manifest["tables"]["sales"]
    bad = 250 if late_price == "'abc'" else 0
    assert (sales["input"], sales["curated"]) == (500, 500 - bad)
    assert sales["by_rule"] == ({"bad_number": bad} if bad else {})
    receipts = result.manifest["tables"]["receipts"]
    assert (receipts["input"], receipts["curated"]) == (500, 500)
    from tests.support.delta import delta_rows

    def lake_sql(table, columns):
        return tuple(delta_rows(lake, f"curated/{table}", "true", columns).to_pylist()[0].values())

    assert lake_sql("receipts", "count(DISTINCT receipt_id), count(vendor_id)") == (500, 250)
    got = lake_sql("sales", "count(DISTINCT sale_id), count(unit_price), sum(unit_price)")
    assert got[:2] == (500 - bad, 0 if bad else 250)
    assert got[2] == (None if bad else 625)
