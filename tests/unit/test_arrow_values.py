"""Arrow values built from buffers (shared/core/arrow_values.py), against pyarrow's own conversions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.arrow_values import RowSet, int64_numpy, plain_timestamps_utc, utc_dates

SIZE = 300
rows = st.lists(st.integers(min_value=0, max_value=SIZE), max_size=60)


def chunked(values: list[int], chunks: int) -> pa.ChunkedArray:
    step = max(1, len(values) // chunks)
    parts = [pa.array(values[i:i + step], pa.int64()) for i in range(0, len(values), step)]
    return pa.chunked_array(parts, pa.int64())  # zero chunks when values is empty


@settings(deadline=None)
@given(rows, rows, st.integers(min_value=1, max_value=4))
def test_a_row_set_answers_as_is_in(values: list[int], wanted: list[int], chunks: int) -> None:
    # The ingest's "leave these rows out" test (duplicates, lines already in the lake): a flag per row instead
    # of is_in's hash table per call. Same answer, for arrays and chunked arrays, sliced ones included.
    found = RowSet(SIZE)
    found.add(chunked(wanted, chunks))
    expected = pc.is_in(pa.array(values, pa.int64()), value_set=pa.array(wanted, pa.int64())).to_pylist()
    assert found.count == len(set(wanted))
    sliced = pa.array([-1, *values, -1], pa.int64()).slice(1, len(values))
    for given_values in (pa.array(values, pa.int64()), chunked(values, chunks), sliced):
        got = found.mask(given_values)
        assert (got.to_pylist() if got is not None else [False] * len(values)) == expected
        assert got is None or any(expected)  # None means: none of them


def test_a_row_set_refuses_rows_outside_its_range_and_nulls() -> None:
    found = RowSet(10)
    with pytest.raises(ValueError, match=r"outside 0\.\.10"):
        found.add(pa.array([11], pa.int64()))
    with pytest.raises(ValueError, match="without NULLs"):
        int64_numpy(pa.array([1, None], pa.int64()))


def _duckdb_utc(values: list[str | None]) -> list:
    """What the row stage's cast makes of each text in a UTC store (years 1..9999, else None)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("v", pa.table({"t": pa.array(values, pa.string())}))
    return [r[0] for r in con.sql(
        "SELECT CASE WHEN TRY_CAST(t AS TIMESTAMPTZ) BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND "
        "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00' THEN TRY_CAST(t AS TIMESTAMPTZ) END FROM v").fetchall()]


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=lo, max_value=hi).map(lambda v: f"{v:02d}")


# Plain-looking timestamps with every field pushed to and past its limits (Feb 29/30, month 0 and 13, hour 24,
# second 60, year 0), the T separator, and a few characters swapped for others.
plain_like = st.builds(
    lambda y, mo, d, sep, h, mi, s: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}",
    st.integers(min_value=0, max_value=9999), _two(0, 13), _two(0, 32), st.sampled_from([" ", "T", "t", "_"]),
    _two(0, 25), _two(0, 60), _two(0, 61))
mutated = st.tuples(plain_like, st.integers(min_value=0, max_value=18), st.sampled_from("0-:/ Zx9")).map(
    lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + 1:])
texts = st.lists(st.one_of(plain_like, mutated, st.none(), st.text(max_size=20)), max_size=40)


@settings(deadline=None, max_examples=300)
@given(texts, st.integers(min_value=0, max_value=3))
def test_plain_timestamps_agree_with_duckdbs_cast(values: list[str | None], skip: int) -> None:
    # Every value the numpy parse takes is what DuckDB's cast makes of it; what it leaves NULL goes to that cast.
    arr = pa.array(["pad"] * skip + values, pa.string()).slice(skip)  # an offset into the buffers too
    got = plain_timestamps_utc(arr).to_pylist()
    want = _duckdb_utc(values)
    for value, ours, theirs in zip(values, got, want, strict=True):
        if ours is not None:
            assert ours == theirs, value
            assert len(value) == 19
    every_plain = [v for v in values if v is not None and len(v) == 19 and v[10] in " T" and theirs_ok(v)]
    assert all(got[values.index(v)] is not None for v in every_plain)


def theirs_ok(value: str) -> bool:
    """A plain value of a real date and time in years 1..9999 (the numpy parse must take it)."""
    import datetime as dt

    try:
        parsed = dt.datetime.strptime(value.replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return parsed.strftime("%Y-%m-%d %H:%M:%S") == value.replace("T", " ")


def test_plain_timestamps_edges() -> None:
    values = ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "1970-01-01 00:00:00", "1969-12-31 23:59:59",
              "2000-02-29 12:00:00", "1900-02-29 12:00:00", "2026-11-20T10:00:00", "2026-11-20 24:00:00", None,
              "2026-11-20 10:00:00Z", ""]
    got = plain_timestamps_utc(pa.array(values)).to_pylist()
    assert [g is not None for g in got] == [True] * 5 + [False, True] + [False] * 4
    assert got == [*_duckdb_utc(values[:5]), None, *_duckdb_utc(values[6:7]), None, None, None, None]
    assert plain_timestamps_utc(pa.array([], pa.string())).to_pylist() == []
    with pytest.raises(TypeError):
        plain_timestamps_utc(pa.array([1]))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_utc_dates_floor_to_the_utc_day(unit: str) -> None:
    import datetime as dt

    times = [dt.datetime(1969, 12, 31, 23, 59, 59), dt.datetime(1970, 1, 1), dt.datetime(2026, 11, 20, 23, 59, 59),
             None, dt.datetime(1677, 9, 22) if unit == "ns" else dt.datetime(1, 1, 1)]
    for zone in ("UTC", "Asia/Tokyo"):  # the stored value is UTC whatever the zone shown
        arr = pa.array(times, pa.timestamp(unit)).cast(pa.timestamp(unit, tz=zone))
        assert utc_dates(arr).to_pylist() == [t.date() if t else None for t in times]
        assert utc_dates(pa.chunked_array([arr[:2], arr[2:]])).to_pylist() == [t.date() if t else None for t in times]
