"""The business rules, one by one, and the laws that hold for any input (hypothesis)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.rules import REJECT_CODES, RULES, clean_arrow, rules_for
from shared.core.schema import TABLES


def sales(**cols):
    n = len(next(iter(cols.values())))
    base = {"sale_id": [str(i) for i in range(n)], "line_no": ["1"] * n, "sku": ["A-1"] * n,
            "qty": ["1"] * n, "unit_price": ["1.50"] * n, "sold_at": ["2026-11-20 10:00:00"] * n}
    base.update(cols)
    return pa.table({k: pa.array(v, pa.string()) for k, v in base.items()})


def reasons(out):
    return out.column("reason_code").to_pylist()


def test_every_rule_has_a_unique_code_and_a_description():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert all(r.description and r.action in ("fix", "reject", "flag") for r in RULES)
    assert all(set(r.tables) <= set(TABLES) for r in RULES)


@pytest.mark.parametrize("raw, expected", [
    ("a-1", "A-1"), ("  A-1  ", "A-1"), ("a\t-1", "A -1"), ("A  -  1", "A - 1"), ("A-1", "A-1"),
])
def test_sku_normalisation(raw, expected):
    out = clean_arrow("sales", sales(sku=[raw]), items=[expected])
    assert out.column("p_sku").to_pylist() == [expected]
    assert reasons(out) == [None]
    assert out.column("sku_normalised").to_pylist() == [raw != expected]


@pytest.mark.parametrize("col, value", [("sku", None), ("sku", "   "), ("sale_id", ""), ("qty", None),
                                        ("sold_at", None)])
def test_missing_required(col, value):
    out = clean_arrow("sales", sales(**{col: [value]}), items=["A-1"])
    assert reasons(out) == ["missing_required"]


@pytest.mark.parametrize("qty, reason", [("2", None), ("2.0", None), ("2.5", "bad_number"), ("two", "bad_number"),
                                         ("0", "non_positive_qty"), ("-3", "non_positive_qty"), ("1e3", "bad_number")])
def test_quantities_are_positive_whole_numbers(qty, reason):
    out = clean_arrow("sales", sales(qty=[qty]), items=["A-1"])
    assert reasons(out) == [reason]


@pytest.mark.parametrize("price, reason", [("0", None), ("3.49", None), ("-0.01", "negative_price"),
                                           ("abc", "bad_number"), (None, None)])
def test_prices_are_non_negative_numbers(price, reason):
    out = clean_arrow("sales", sales(unit_price=[price]), items=["A-1"])
    assert reasons(out) == [reason]


@pytest.mark.parametrize("price", ["0.00001", "0.00004", "0.00005", "0.00009999", "-0.00001", ".00001", "00.00002"])
def test_a_non_zero_price_below_a_ten_thousandth_is_refused_not_rounded(price):
    out = clean_arrow("sales", sales(unit_price=[price]), items=["A-1"])
    assert reasons(out) == ["bad_number"]


@pytest.mark.parametrize("text, utc", [
    ("2026-11-20 10:00:00", dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)),
    ("2026-11-20T10:00:00+01:00", dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)),
    ("1996-07-04 00:00:00.000", dt.datetime(1996, 7, 4, tzinfo=dt.UTC)),
    ("2026-11-20", dt.datetime(2026, 11, 20, tzinfo=dt.UTC)),
    ("2026-02-30 10:00:00", None), ("2026-13-01 10:00:00", None), ("yesterday", None), ("1732700000", None),
])
def test_timestamps_are_iso_8601_and_stored_as_utc(text, utc):
    out = clean_arrow("sales", sales(sold_at=[text]), items=["A-1"])
    if utc is None:
        assert reasons(out) == ["bad_timestamp"]
    else:
        assert reasons(out) == [None]
        assert out.column("p_sold_at").to_pylist()[0] == utc


@pytest.mark.parametrize("text", [
    "epoch", "EPOCH", "2026/11/25 10:00", "2026-11-25 10:00 IST", "2026-11-25 10:00:00 America/New_York",
    "2026-11-25 10:00:00 UTC", "2026-1-2 3:4:5", "2026-11-20  10:00", "2026-11-20 10:00:00.", "2026-11-20t10:00",
    "2026-11-20 10:00:00+01:00:30", "2026-11-20 10:00:00+99", "0010-01-01 (BC)", "-0010-01-01",
])
def test_a_timestamp_duckdb_would_read_but_not_iso_8601_is_bad_timestamp(text):
    # DuckDB's cast is lenient ('epoch' is 1970-01-01, 'IST' one of three zones): the rule says ISO-8601.
    assert reasons(clean_arrow("sales", sales(sold_at=[text]), items=["A-1"])) == ["bad_timestamp"]


@pytest.mark.parametrize("text, utc", [
    ("2026-11-20T10:00", dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)),
    ("2026-11-20 10:00:00Z", dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)),
    ("2026-11-20T10:00:00.5z", dt.datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=dt.UTC)),
    ("2026-11-20 10:00+0100", dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)),
    ("2026-11-20 10:00:00-03", dt.datetime(2026, 11, 20, 13, tzinfo=dt.UTC)),
    ("0001-01-01 00:00:00+00:00", dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
    ("9999-12-31 23:59:59.999999z", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
])
def test_every_iso_8601_form_is_read(text, utc):
    out = clean_arrow("sales", sales(sold_at=[text]), items=["A-1"])
    assert reasons(out) == [None]
    assert out.column("p_sold_at").to_pylist() == [utc]


@pytest.mark.parametrize("text", ["infinity", "-infinity", "10000-01-01", "0001-01-01 00:00:00+01:00",
                                  "9999-12-31 23:00:00-02:00", "0000-06-01 10:00:00"])
def test_a_timestamp_outside_utc_years_1_to_9999_is_bad_timestamp(text):
    # Python (and the partition's date32) cannot hold it: before, it crashed the whole ingest.
    assert reasons(clean_arrow("sales", sales(sold_at=[text]), items=["A-1"])) == ["bad_timestamp"]
    stock = pa.table({"sku": ["A-1"], "on_hand": ["3"], "counted_at": [text]})
    assert reasons(clean_arrow("stock", stock, items=["A-1"])) == ["bad_timestamp"]


def test_a_naive_timestamp_the_store_zone_moves_out_of_year_1_is_bad_timestamp():
    out = clean_arrow("sales", sales(sold_at=["0001-01-01 00:00:00", "0001-01-02 00:00:00"]), items=["A-1"],
                      timezone="Asia/Tokyo")
    assert reasons(out) == ["bad_timestamp", None]


def test_naive_timestamps_are_read_in_the_store_time_zone():
    out = clean_arrow("sales", sales(sold_at=["2026-07-01 10:00:00"]), items=["A-1"], timezone="Europe/Lisbon")
    assert out.column("p_sold_at").to_pylist()[0] == dt.datetime(2026, 7, 1, 9, tzinfo=dt.UTC)


def test_duplicates_keep_the_first_copy_and_conflicts_reject_every_version():
    t = sales(sale_id=["1", "1", "1", "2", "2", "3"], qty=["1", "1", "1", "1", "5", "1"])
    out = clean_arrow("sales", t, items=["A-1"])
    assert reasons(out) == [None, "duplicate", "duplicate", "conflicting_duplicate", "conflicting_duplicate", None]


def test_line_no_defaults_to_one_and_is_part_of_the_key():
    t = sales(sale_id=["1", "1", "1"], line_no=[None, "2", "1"])
    out = clean_arrow("sales", t, items=["A-1"])
    assert out.column("p_line_no").to_pylist() == [1, 2, 1]
    assert reasons(out) == [None, None, "duplicate"]


def test_unknown_sku_is_rejected_for_facts_and_stock():
    out = clean_arrow("sales", sales(sku=["A-1", "Z-9"]), items=["A-1"])
    assert reasons(out) == [None, "unknown_sku"]
    stock = pa.table({"sku": ["A-1", "Z-9"], "on_hand": ["3", "1"], "counted_at": [None, None]})
    assert reasons(clean_arrow("stock", stock, items=["A-1"])) == [None, "unknown_sku"]


def test_flags_keep_the_row():
    items = pa.table({"sku": ["A-1", "A-2"], "name": ["x", "y"], "vendor_id": ["V1", "V9"]})
    out = clean_arrow("items", items, vendors=["V1"])
    assert reasons(out) == [None, None]
    assert out.column("flags").to_pylist() == ["", "unknown_vendor"]
    stock = pa.table({"sku": ["A-1", "A-2"], "on_hand": ["-2", "0"]})
    out = clean_arrow("stock", stock, items=["A-1", "A-2"])
    assert reasons(out) == [None, None]
    assert out.column("flags").to_pylist() == ["negative_on_hand", ""]


@pytest.mark.parametrize("value, parsed, reason", [
    (None, True, None), ("1", True, None), ("0", False, None), ("yes", True, None), ("FALSE", False, None),
    ("1.0", True, None), ("0.0", False, None),  # a SQLite REAL 1.0 / 0.0, read as text
    ("maybe", None, "bad_boolean"), ("2.0", None, "bad_boolean"), ("0.5", None, "bad_boolean"),
])
def test_active_flag(value, parsed, reason):
    items = pa.table({"sku": ["A-1"], "name": ["Milk"], "active": pa.array([value], pa.string())})
    out = clean_arrow("items", items)
    assert reasons(out) == [reason]
    if reason is None:
        assert out.column("p_active").to_pylist() == [parsed]


def test_keys_are_text_whatever_the_dump_stores():
    out = clean_arrow("sales", sales(sale_id=["42"], sku=["17"]), items=["17"])
    assert out.column("p_sale_id").to_pylist() == ["42"]
    assert out.schema.field("p_sku").type == pa.string()


# --- laws over arbitrary input -----------------------------------------------------------------------------

messy_text = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list("aA-1 0.\t+-xZ:T")), max_size=8))
sku_text = st.one_of(st.none(), st.sampled_from(["A-1", "a-1", " A-1 ", "A-2", "Z-9", "", "  ", "a\t-2"]))
qty_text = st.one_of(st.none(), st.sampled_from(["1", "2", "0", "-1", "2.5", "3.0", "x", ""]), messy_text)
time_text = st.one_of(st.none(), st.sampled_from(["2026-11-20 10:00:00", "2026-02-30 01:00:00", "bad", "", "epoch",
                                                "infinity", "0001-01-01 00:00:00+01:00", "2026-11-20T10:00Z"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.sampled_from([None, "1", "2"]), sku_text,
                          qty_text, time_text), max_size=25))
def test_every_row_is_curated_or_rejected_with_a_known_code(rows):
    t = sales(sale_id=[r[0] for r in rows], line_no=[r[1] for r in rows], sku=[r[2] for r in rows],
              qty=[r[3] for r in rows], sold_at=[r[4] for r in rows]) if rows else sales(sale_id=[])
    out = clean_arrow("sales", t, items=["A-1", "A-2"])
    codes = reasons(out)
    assert out.num_rows == t.num_rows  # curated + rejected = input
    assert set(c for c in codes if c) <= set(REJECT_CODES) & {r.code for r in rules_for("sales")}
    curated = [i for i, c in enumerate(codes) if c is None]
    keys = [(out.column("p_sale_id")[i].as_py(), out.column("p_line_no")[i].as_py()) for i in curated]
    assert len(keys) == len(set(keys))  # curated keys are unique
    for i in curated:  # and every curated row satisfies the rules
        assert out.column("p_qty")[i].as_py() > 0
        assert out.column("p_sku")[i].as_py() in ("A-1", "A-2")
        assert out.column("p_sold_at")[i].as_py() is not None


_WS = " \t\n\x0b\x0c\r"


def normalise_oracle(raw: str) -> str | None:
    """The documented rule, independently: trim whitespace, collapse inner runs to one space, upper-case."""
    import re

    out = re.sub(f"[{_WS}]+", " ", raw).strip(" ").upper()
    return out or None


@given(st.lists(st.text(alphabet=st.sampled_from(list("aAbZ-_09 .") + list(_WS) + ["\x1f", "é"]), max_size=12),
                min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_sku_normalisation_matches_the_rule_and_is_idempotent(raws):
    once = clean_arrow("sales", sales(sku=raws), items=[]).column("p_sku").to_pylist()
    assert once == [normalise_oracle(r) for r in raws]
    kept = [s for s in once if s is not None]
    if kept:
        assert clean_arrow("sales", sales(sku=kept), items=[]).column("p_sku").to_pylist() == kept


@given(st.sampled_from(["", " ", "\t", " \r\n "]))
def test_blank_skus_are_missing_not_curated(raw):
    out = clean_arrow("sales", sales(sku=[raw]), items=["A-1"])
    assert reasons(out) == ["missing_required"]


# --- numbers SQLite stored as numbers (the reader passes int/decimal columns typed when it can) ----------

def typed_sales(**cols):
    """Like ``sales`` but with the given columns as Arrow arrays of their own type."""
    t = sales(**{k: ["0"] * len(v) for k, v in cols.items()})
    for name, values in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(values))
    return t


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qty=st.integers(-10**19, 10**19), line=st.integers(-5, 10**18 + 5))
def test_an_integer_stored_as_a_number_is_judged_as_its_text(qty, line):
    qty, line = max(min(qty, 2**63 - 1), -2**63), min(line, 2**63 - 1)
    as_text = clean_arrow("sales", sales(qty=[str(qty)], line_no=[str(line)]), items=["A-1"])
    as_number = clean_arrow("sales", typed_sales(qty=[qty], line_no=[line]), items=["A-1"])
    assert as_number.to_pylist() == as_text.to_pylist()


def sqlite_text(value: float) -> str:
    """The text SQLite makes of a REAL (``CAST(x AS TEXT)``), from SQLite itself."""
    import sqlite3

    return sqlite3.connect(":memory:").execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(price=st.one_of(st.decimals(min_value=-10**15, max_value=10**15, places=2, allow_nan=False),
                       st.decimals(min_value=-10**4, max_value=10**4, places=6, allow_nan=False),
                       st.decimals(min_value=-1, max_value=1, places=9, allow_nan=False)),
       qty=st.one_of(st.integers(-3, 10**6), st.integers(10**14, 10**17)).map(float))
def test_a_real_stored_as_a_number_is_judged_as_its_text(price, qty):
    # The text is what SQLite writes for a REAL (printf %!.15g): up to 15 significant digits, in exponent form
    # below 1e-4 and from 1e15 (both refused, as text and as numbers). Beyond 15 digits the text path rounds
    # where the number path does not: the number path is the more exact of the two. Whole reals are
    # quantities (3.0 is 3).
    price_f = float(price.quantize(1) if len(price.as_tuple().digits) > 15 else price)
    as_text = clean_arrow("sales", sales(unit_price=[sqlite_text(price_f)], qty=[sqlite_text(qty)]), items=["A-1"])
    as_number = clean_arrow("sales", typed_sales(unit_price=[price_f], qty=[qty]), items=["A-1"])
    assert as_number.to_pylist() == as_text.to_pylist()


@pytest.mark.parametrize("qty, reason", [(2.0, None), (2.5, "bad_number"), (float("inf"), "bad_number"),
                                         (-1.0, "non_positive_qty"), (1e18, "bad_number")])
def test_real_quantities_must_be_whole(qty, reason):
    assert reasons(clean_arrow("sales", typed_sales(qty=[qty]), items=["A-1"])) == [reason]


def test_a_price_as_text_and_as_a_real_give_the_same_result():
    # Tiny non-zero prices refused both ways; more than 4 decimals rounded alike (1.23456 -> 1.2346).
    texts = ["0.00001", "0.00004", "0.00005", "0.00009999", "-0.00001", "0.0001", "0.00015", "1.23456", "1.23455",
             "12.00001", "1.99999", "0.0", "3.49", "-0.01", "3556874280959.97"]
    as_text = clean_arrow("sales", sales(unit_price=texts), items=["A-1"])
    as_real = clean_arrow("sales", typed_sales(unit_price=[float(x) for x in texts]), items=["A-1"])
    assert as_text.to_pylist() == as_real.to_pylist()
    assert reasons(as_text)[:6] == ["bad_number"] * 5 + [None]
    assert as_text.column("p_unit_price").to_pylist()[7] == Decimal("1.2346")


def test_numbers_and_text_may_arrive_in_one_table_batch_by_batch():
    # A typed batch, then the same rows as text (the reader's fallback): the same results.
    typed = clean_arrow("sales", typed_sales(qty=[1, 0, 7], unit_price=[1.5, -2.0, 3.25]), items=["A-1"])
    text = clean_arrow("sales", sales(qty=["1", "0", "7"], unit_price=["1.5", "-2.0", "3.25"]), items=["A-1"])
    assert typed.to_pylist() == text.to_pylist()
    assert reasons(typed) == [None, "non_positive_qty", None]


def test_a_sale_dated_after_the_latest_allowed_time_is_future_timestamp():
    not_after = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)  # the ingest's time plus a day of clock skew
    times = ["2026-11-28 12:00:00", "2026-11-28T13:00:00+02:00", "2026-11-28 12:00:01", "2027-11-26 10:00:00",
             "2026-02-30 10:00:00"]
    out = clean_arrow("sales", sales(sold_at=times), items=["A-1"], not_after=not_after)
    assert reasons(out) == [None, None, "future_timestamp", "future_timestamp", "bad_timestamp"]
    assert reasons(clean_arrow("sales", sales(sold_at=times[3:4]), items=["A-1"])) == [None]  # no limit given


def test_plain_timestamps_parsed_in_arrow_are_rejected_alike_in_any_zone():
    # In a UTC store the plain values are parsed with numpy before DuckDB sees them, in other zones by
    # DuckDB's cast: the values that are 19 characters but not a plain timestamp are bad either way, and a
    # batch mixing them with good values keeps the good ones.
    import re

    from shared.core.rules import ISO_TIMESTAMP

    plain = ["2026-11-20 10:00:00", "2026-11-20T23:59:59"]
    odd19 = ["2026/11/20 10:00:00", "2026-11-20 10:00:0Z", "2026-11-20 1:00:000", " 2026-11-20 10:00:0",
             "20261120 10:00:00::", "2026-02-30 10:00:00", "2026-11-20 25:00:00", "0000-01-01 00:00:00"]
    for bad in odd19:
        for zone in ("UTC", "Europe/Lisbon"):
            out = clean_arrow("sales", sales(sold_at=[*plain, bad], sale_id=["a", "b", "c"]), items=["A-1"],
                              timezone=zone)
            assert reasons(out) == [None, None, "bad_timestamp"], (bad, zone)
    assert not re.fullmatch(ISO_TIMESTAMP[1:-1], "2026/11/20 10:00:00")


def test_the_utc_fast_path_gives_what_the_cast_gives():
    # The same dirty column through the row stage with and without the numpy parse: same reasons, same times.
    import duckdb

    from shared.core.rules import arrivals, prepare_batch, row_stage_sql

    times = ["2026-11-20 10:00:00", "2026-11-20T10:00:00", "2024-02-29 23:59:59", "2023-02-29 00:00:00",
             "2026-11-20 24:00:00", "2026-11-20 10:00:00Z", "2026-11-20 10:00:00.5", "2026-11-20 10:00:00z",
             "2026-11-20T10:00:00+02:00", "2026-11-20", "yesterday", None, "  2026-11-20 10:00:00 ",
             "0001-01-01 00:00:00", "9999-12-31 23:59:59", "1969-12-31 23:59:59", "2026-13-01 00:00:00"]
    batch = sales(sold_at=times, sale_id=[str(i) for i in range(len(times))]).to_batches()[0]
    results = []
    for naive_utc in (False, True):
        prepared = prepare_batch(batch, TABLES["sales"], 1, naive_utc=naive_utc)
        assert ("_utc_sold_at" in prepared.schema.names) is naive_utc
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("b", prepared)
        con.register("items_keys", pa.table({"sku": ["A-1"]}))
        sql = row_stage_sql(TABLES["sales"], "b", items="items_keys", vendors=None,
                            arrived=arrivals(prepared, TABLES["sales"]))
        results.append(con.sql(f"SELECT _row, p_sold_at, reason_code FROM ({sql}) ORDER BY _row").fetchall())
    assert results[0] == results[1]
    bad = {4: "bad_timestamp", 11: "bad_timestamp", 12: "missing_required", 17: "bad_timestamp"}
    assert [r[2] for r in results[1]] == [bad.get(i) for i in range(1, len(times) + 1)]


