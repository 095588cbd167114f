"""The store-dump generator: canonical schema, realistic shape, determinism, and a truth that matches the
file. The truth is checked against the file with plain SQL, independently of the generator's code."""

import re
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.local.generator import StoreTruth, TableTruth, generate_store, generate_stores

COLUMNS = {
    "items": [("sku", "TEXT"), ("name", "TEXT"), ("category", "TEXT"), ("vendor_id", "TEXT"),
              ("unit_cost", "REAL"), ("unit_price", "REAL"), ("reorder_point", "INTEGER"),
              ("reorder_qty", "INTEGER"), ("active", "INTEGER")],
    "vendors": [("vendor_id", "TEXT"), ("name", "TEXT"), ("email", "TEXT"), ("lead_time_days", "INTEGER")],
    "stock": [("sku", "TEXT"), ("on_hand", "INTEGER"), ("counted_at", "TEXT")],
    "sales": [("sale_id", "TEXT"), ("line_no", "INTEGER"), ("sku", "TEXT"), ("qty", "INTEGER"),
              ("unit_price", "REAL"), ("sold_at", "TEXT")],
    "receipts": [("receipt_id", "TEXT"), ("sku", "TEXT"), ("qty", "INTEGER"), ("received_at", "TEXT"),
                 ("vendor_id", "TEXT")],
}

# One SQL predicate per row-level defect (0/1, never NULL). A sku is sloppy when trimming and upper-casing
# changes it; the ingestion keeps such rows. Row-level defects exclude each other in generated data.
MISSING = "coalesce(sku IS NULL OR trim(sku) = '' OR qty IS NULL OR sold_at IS NULL OR sold_at = '', 0)"
NON_POSITIVE = "coalesce(qty <= 0, 0)"
# Valid when SQLite reads it and writes it back unchanged; going through julianday() also rolls impossible
# dates over ('2026-02-30' becomes '2026-03-02'), which datetime(sold_at) alone would echo unchanged.
VALID_TS = "datetime(julianday(sold_at)) IS sold_at"
BAD_TS = f"coalesce(sold_at <> '' AND NOT {VALID_TS}, 0)"
KNOWN = "upper(trim(sku)) IN (SELECT sku FROM items)"
UNKNOWN = f"coalesce(trim(sku) <> '' AND NOT {KNOWN}, 0)"
SLOPPY = "coalesce(trim(sku) <> '' AND sku <> upper(trim(sku)), 0)"
ROW_DEFECTS = f"({MISSING} + {NON_POSITIVE} + {BAD_TS} + {UNKNOWN} + {SLOPPY})"
CLEAN = f"{ROW_DEFECTS} = 0"


def scalar(con: sqlite3.Connection, sql: str) -> int:
    return con.execute(sql).fetchone()[0]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def observed(con: sqlite3.Connection) -> tuple[dict[str, TableTruth], int]:
    """What the file says the truth should be, computed with SQL only."""
    sales_rejected = {
        "missing_required": scalar(con, f"SELECT count(*) FROM sales WHERE {MISSING}"),
        "non_positive_qty": scalar(con, f"SELECT count(*) FROM sales WHERE {NON_POSITIVE}"),
        "bad_timestamp": scalar(con, f"SELECT count(*) FROM sales WHERE {BAD_TS}"),
        "unknown_sku": scalar(con, f"SELECT count(*) FROM sales WHERE {UNKNOWN}"),
        # every extra copy of an identical line
        "duplicate": scalar(con, "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM sales "
                                 "GROUP BY sale_id, line_no, sku, qty, unit_price, sold_at)"),
        # every row of a key whose rows disagree
        "conflicting_duplicate": scalar(con, "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n, "
                                             "count(DISTINCT qty) q FROM sales GROUP BY sale_id, line_no) "
                                             "WHERE q > 1"),
    }
    tables = {
        "items": TableTruth(
            input=scalar(con, "SELECT count(*) FROM items"),
            flagged=nonzero({"unknown_vendor": scalar(
                con, "SELECT count(*) FROM items WHERE vendor_id NOT IN (SELECT vendor_id FROM vendors)")}),
        ),
        "vendors": TableTruth(input=scalar(con, "SELECT count(*) FROM vendors")),
        "stock": TableTruth(
            input=scalar(con, "SELECT count(*) FROM stock"),
            flagged=nonzero({"negative_on_hand": scalar(con, "SELECT count(*) FROM stock WHERE on_hand < 0")}),
        ),
        "sales": TableTruth(input=scalar(con, "SELECT count(*) FROM sales"), rejected=nonzero(sales_rejected)),
        "receipts": TableTruth(input=scalar(con, "SELECT count(*) FROM receipts")),
    }
    normalised = scalar(con, f"SELECT count(*) FROM sales WHERE {SLOPPY} AND {KNOWN}")
    normalised += scalar(con, f"SELECT count(*) FROM stock WHERE {SLOPPY} AND {KNOWN}")
    return tables, normalised


def assert_one_defect_per_row(con: sqlite3.Connection) -> None:
    assert scalar(con, f"SELECT coalesce(max({ROW_DEFECTS}), 0) FROM sales") <= 1
    # Rows sharing a key are otherwise clean, and a key has at most one extra row.
    dup_keys = "SELECT sale_id, line_no FROM sales GROUP BY 1, 2 HAVING count(*) > 1"
    assert scalar(con, f"SELECT count(*) FROM sales WHERE (sale_id, line_no) IN ({dup_keys}) AND NOT {CLEAN}") == 0
    assert scalar(con, "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM sales GROUP BY sale_id, line_no)") <= 2
    assert scalar(con, f"SELECT count(*) FROM stock WHERE on_hand < 0 AND {SLOPPY}") == 0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> StoreTruth:
    # The dates asserted below are this end's (pinned: the demo passes its own, yesterday).
    return generate_store(tmp_path_factory.mktemp("gen") / "S001.sqlite", "S001", sales_lines=20_000, seed=7,
                          end=date(2026, 11, 26))


@pytest.fixture
def con(store: StoreTruth) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    yield c
    c.close()


def test_canonical_tables_and_columns(con: sqlite3.Connection) -> None:
    for table, columns in COLUMNS.items():
        info = con.execute(f"PRAGMA table_info({table})").fetchall()
        assert [(r[1], r[2]) for r in info] == columns, table
    for table in ("items", "stock", "sales"):  # dirty duplicates must be insertable
        assert con.execute(f"PRAGMA index_list({table})").fetchall() == [], table


def test_truth_matches_the_file(store: StoreTruth, con: sqlite3.Connection) -> None:
    tables, normalised = observed(con)
    assert store.tables == tables
    assert store.normalised_skus == normalised
    assert list(store.tables) == ["items", "vendors", "stock", "sales", "receipts"]
    # Every kind of defect is represented at the default dirty rate, and sales hold exactly sales_lines rows.
    sales = store.tables["sales"]
    assert sales.input == 20_000
    assert set(sales.rejected) == {"missing_required", "non_positive_qty", "bad_timestamp", "unknown_sku",
                                   "duplicate", "conflicting_duplicate"}
    assert sales.curated == 20_000 - sum(sales.rejected.values())
    assert 0.5 * 200 < sum(sales.rejected.values()) < 1.5 * 200  # about dirty_rate=1% of the lines
    assert store.tables["items"].flagged["unknown_vendor"] >= 2
    assert store.tables["stock"].flagged["negative_on_hand"] >= 2
    assert scalar(con, f"SELECT count(*) FROM stock WHERE {SLOPPY}") >= 2
    assert scalar(con, f"SELECT count(*) FROM sales WHERE {SLOPPY}") >= 2
    assert 100 <= store.tables["receipts"].input <= 1000


def test_each_dirty_row_has_exactly_one_defect(con: sqlite3.Connection) -> None:
    assert_one_defect_per_row(con)


def test_dirty_rate_zero_is_clean(tmp_path: Path) -> None:
    truth = generate_store(tmp_path / "clean.sqlite", "S009", sales_lines=5_000, dirty_rate=0, seed=3)
    assert all(t.rejected == {} and t.flagged == {} for t in truth.tables.values())
    assert truth.normalised_skus == 0
    with sqlite3.connect(truth.path) as c:
        assert observed(c) == (truth.tables, 0)
        assert scalar(c, f"SELECT count(*) FROM sales WHERE NOT {CLEAN}") == 0
        assert scalar(c, "SELECT count(*) FROM stock WHERE sku <> upper(trim(sku))") == 0
    assert truth.tables["sales"].curated == 5_000


def test_same_seed_same_bytes_other_seed_other_sales(tmp_path: Path) -> None:
    kwargs = {"sales_lines": 3_000, "n_items": 50, "days": 14}
    a = generate_store(tmp_path / "a.sqlite", "S001", seed=11, **kwargs)
    b = generate_store(tmp_path / "b.sqlite", "S001", seed=11, **kwargs)
    c = generate_store(tmp_path / "c.sqlite", "S001", seed=12, **kwargs)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.tables == b.tables
    assert a.path.read_bytes() != c.path.read_bytes()
    with sqlite3.connect(a.path) as ca, sqlite3.connect(c.path) as cc:
        assert ca.execute("SELECT * FROM sales").fetchall() != cc.execute("SELECT * FROM sales").fetchall()
        # The catalogue belongs to the chain, not the store: same skus, names and prices.
        catalogue = "SELECT sku, name, category, unit_price FROM items ORDER BY sku"
        assert ca.execute(catalogue).fetchall() == cc.execute(catalogue).fetchall()


def test_regenerating_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    generate_store(path, "S001", sales_lines=2_000, n_items=20, seed=1)
    truth = generate_store(path, "S001", sales_lines=500, n_items=20, seed=1)
    with sqlite3.connect(path) as c:
        assert observed(c)[0] == truth.tables


def test_items_vendors_and_receipts_look_real(con: sqlite3.Connection) -> None:
    items = con.execute("SELECT sku, name, category, vendor_id, unit_cost, unit_price, reorder_point, "
                        "reorder_qty, active FROM items").fetchall()
    assert len({r[0] for r in items}) == len(items) == 300
    assert all(re.fullmatch(r"[A-Z]-\d{5}", r[0]) for r in items)
    assert {r[2] for r in items} == {"Dairy", "Bakery", "Produce", "Beverages", "Snacks", "Household", "Frozen",
                                     "Personal Care"}
    assert all(0 < cost < price and 0.5 <= price <= 40 for *_, cost, price, _, _, _ in items)
    assert all(0 <= r[6] <= 40 and r[7] > 0 and r[8] in (0, 1) for r in items)
    assert 0 < sum(r[8] == 0 for r in items) <= 0.06 * len(items)
    vendors = con.execute("SELECT vendor_id, name, email, lead_time_days FROM vendors").fetchall()
    assert [v[0] for v in vendors] == [f"V{i:03d}" for i in range(1, 13)]
    assert all("@" in v[2] and 1 <= v[3] <= 14 for v in vendors)
    # Receipts come from the item's vendor, for known items, before the snapshot.
    assert scalar(con, "SELECT count(*) FROM receipts r JOIN items i USING (sku) "
                       "WHERE r.vendor_id = i.vendor_id AND r.qty > 0 AND r.received_at < '2026-11-26 23:00:00' "
                       "AND datetime(r.received_at) IS r.received_at") == scalar(con, "SELECT count(*) FROM receipts")


def test_sales_look_real(con: sqlite3.Connection) -> None:
    assert scalar(con, "SELECT count(*) FROM sales WHERE sale_id NOT GLOB 'S001-[0-9][0-9][0-9][0-9][0-9][0-9]'") == 0
    # Baskets of 1-5 lines numbered 1..k, all at the same time.
    per_sale = con.execute("SELECT count(DISTINCT line_no), min(line_no), max(line_no) FROM sales GROUP BY sale_id")
    assert all(lo == 1 and hi == n <= 5 for n, lo, hi in per_sale)
    assert scalar(con, f"SELECT max(n) FROM (SELECT count(DISTINCT sold_at) n FROM sales WHERE {VALID_TS} "
                       "GROUP BY sale_id)") == 1
    # Sale numbers run with time.
    assert scalar(con, f"SELECT count(*) FROM (SELECT sale_id, sold_at, lag(sold_at) OVER (ORDER BY sale_id) prev "
                       f"FROM sales WHERE {VALID_TS}) WHERE sold_at < prev") == 0
    clean = f"FROM sales WHERE {CLEAN}"
    assert scalar(con, f"SELECT count(*) {clean} AND qty <= 3") > 0.85 * scalar(con, f"SELECT count(*) {clean}")
    assert scalar(con, "SELECT count(*) FROM sales s JOIN items i USING (sku) WHERE s.unit_price <> i.unit_price") == 0
    # 56 days ending on 2026-11-26, opening hours 08:00-21:59.
    assert con.execute(f"SELECT min(sold_at), max(sold_at) {clean}").fetchone() >= ("2026-10-02 08:00:00",)
    assert con.execute(f"SELECT max(sold_at) {clean}").fetchone()[0] <= "2026-11-26 21:59:59"
    assert scalar(con, f"SELECT min(date(sold_at)) {clean}") == "2026-10-02"
    assert scalar(con, f"SELECT count(*) {clean} AND time(sold_at) NOT BETWEEN '08:00:00' AND '21:59:59'") == 0


def test_sales_are_zipf_skewed(con: sqlite3.Connection) -> None:
    units = [r[0] for r in con.execute(f"SELECT sum(qty) u FROM sales WHERE {CLEAN} GROUP BY sku ORDER BY u DESC")]
    top = units[: len(units) // 10]
    assert sum(top) > 0.4 * sum(units)


def test_weekday_seasonality(con: sqlite3.Connection) -> None:
    by_day = dict(con.execute(f"SELECT strftime('%w', sold_at), count(*) FROM sales WHERE {VALID_TS} GROUP BY 1"))
    saturday, sunday, tuesday, friday = by_day["6"], by_day["0"], by_day["2"], by_day["5"]
    assert saturday > friday > tuesday > sunday


def test_low_stock_exists(con: sqlite3.Connection) -> None:
    low = scalar(con, "SELECT count(*) FROM items i JOIN stock s USING (sku) "
                      "WHERE i.active = 1 AND i.reorder_point > 0 AND s.on_hand <= i.reorder_point")
    assert 0.05 * 300 <= low <= 0.2 * 300


LOW = ("SELECT count(*) FROM items i JOIN stock s ON upper(trim(s.sku)) = i.sku "
       "WHERE i.active = 1 AND i.reorder_point > 0 AND s.on_hand <= i.reorder_point")


@pytest.mark.parametrize("seed, dirty_rate, n_items", [(1, 0.01, 300), (2, 0.0, 300), (3, 0.05, 300), (4, 0.01, 1000)])
def test_only_a_few_percent_are_low_on_stock(tmp_path: Path, seed: int, dirty_rate: float, n_items: int) -> None:
    # About 5 % (the dirty negative counts included), not a tenth or a fifth: enough for the alerts to say
    # something, few enough that the shop looks run.
    truth = generate_store(tmp_path / "s.sqlite", "S001", sales_lines=20_000, n_items=n_items, seed=seed,
                           dirty_rate=dirty_rate)
    with sqlite3.connect(truth.path) as c:
        assert 0.04 * n_items <= scalar(c, LOW) <= 0.06 * n_items


def test_stock_above_the_reorder_point_covers_a_week_of_sales(con: sqlite3.Connection) -> None:
    # Stock follows demand: an item that is not low holds at least a week of this store's sales above its
    # reorder point, so a few busy days (the demo's POS traffic) do not push the best sellers under it.
    rows = con.execute(f"SELECT s.on_hand - i.reorder_point, coalesce(u.units, 0) / 56.0 FROM items i "
                       f"JOIN stock s USING (sku) LEFT JOIN (SELECT upper(trim(sku)) sku, sum(qty) units FROM sales "
                       f"WHERE {CLEAN} GROUP BY 1) u USING (sku) WHERE s.on_hand > i.reorder_point").fetchall()
    assert len(rows) >= 0.9 * 300
    covered = [(above, daily) for above, daily in rows if above >= 7 * daily]
    assert len(covered) >= 0.97 * len(rows)
    assert sum(daily for _, daily in covered) >= 0.97 * sum(daily for _, daily in rows)
    # ... and not absurdly more: the best seller holds weeks, not a year, of its sales.
    best_above, best_daily = max(rows, key=lambda r: r[1])
    assert 7 * best_daily <= best_above <= 35 * best_daily


def test_snapshot_is_the_last_count(store: StoreTruth, con: sqlite3.Connection) -> None:
    assert store.snapshot_at == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    last = scalar(con, "SELECT max(counted_at) FROM stock")
    assert datetime.fromisoformat(last).replace(tzinfo=UTC) == store.snapshot_at
    assert scalar(con, "SELECT count(*) FROM stock WHERE datetime(counted_at) IS NOT counted_at") == 0
    assert scalar(con, f"SELECT max(sold_at) FROM sales WHERE {VALID_TS}") < last


def test_end_and_days_move_the_window(tmp_path: Path) -> None:
    truth = generate_store(tmp_path / "s.sqlite", "S002", days=7, end=date(2027, 1, 3), sales_lines=2_000,
                           n_items=40)
    assert truth.snapshot_at == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)
    with sqlite3.connect(truth.path) as c:
        lo, hi = c.execute(f"SELECT min(date(sold_at)), max(date(sold_at)) FROM sales WHERE {VALID_TS}").fetchone()
        assert (lo, hi) == ("2026-12-28", "2027-01-03")
        assert scalar(c, "SELECT max(counted_at) FROM stock") == "2027-01-03 23:00:00"
        assert observed(c) == (truth.tables, truth.normalised_skus)


def test_generate_stores(tmp_path: Path) -> None:
    truths = generate_stores(tmp_path, 3, sales_lines=1_000, n_items=30, days=7, seed=5)
    assert [t.store_id for t in truths] == ["S001", "S002", "S003"]
    assert [t.path for t in truths] == [tmp_path / f"S00{i}.sqlite" for i in (1, 2, 3)]
    contents = set()
    for t in truths:
        with sqlite3.connect(t.path) as c:
            assert scalar(c, f"SELECT count(*) FROM sales WHERE sale_id NOT LIKE '{t.store_id}-%'") == 0
            assert observed(c) == (t.tables, t.normalised_skus)
            contents.add(tuple(c.execute("SELECT sku, qty, sold_at FROM sales ORDER BY rowid LIMIT 50")))
    assert len(contents) == 3  # each store its own seed
    again = generate_stores(tmp_path / "again", 3, sales_lines=1_000, n_items=30, days=7, seed=5)
    assert [t.path.read_bytes() for t in again] == [t.path.read_bytes() for t in truths]


@pytest.mark.parametrize("bad", [{"dirty_rate": -0.1}, {"dirty_rate": 0.9}, {"n_items": 3}, {"days": 0},
                                 {"sales_lines": -1}])
def test_rejects_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        generate_store(tmp_path / "x.sqlite", "S001", **bad)


def test_rejects_unsafe_store_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_store(tmp_path / "x.sqlite", "../evil")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sales_lines=st.integers(0, 3_000),
    dirty_rate=st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.25]) | st.floats(0, 0.25),
    n_items=st.integers(10, 80),
    days=st.integers(1, 21),
    seed=st.integers(0, 2**32 - 1),
)
def test_truth_matches_the_file_for_any_arguments(sales_lines: int, dirty_rate: float, n_items: int, days: int,
                                                  seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_store(Path(tmp) / "s.sqlite", "S042", n_items=n_items, n_vendors=5, days=days,
                               sales_lines=sales_lines, dirty_rate=dirty_rate, seed=seed)
        with sqlite3.connect(truth.path) as c:
            assert observed(c) == (truth.tables, truth.normalised_skus)
            assert_one_defect_per_row(c)
            assert scalar(c, "SELECT max(counted_at) FROM stock") == truth.snapshot_at.strftime("%Y-%m-%d %H:%M:%S")
        assert truth.tables["sales"].input == sales_lines
