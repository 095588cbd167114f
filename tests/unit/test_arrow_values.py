"""Arrow values built from buffers (shared/core/arrow_values.py), against pyarrow's own conversions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.arrow_values import RowSet, int64_numpy

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
