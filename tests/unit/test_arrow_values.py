"""Arrow values built from buffers (shared/core/arrow_values.py), against pyarrow's own conversions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.arrow_values import member_mask, sorted_rows

rows = st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=60)


@settings(deadline=None)
@given(rows, rows, st.integers(min_value=1, max_value=4))
def test_member_mask_is_is_in(values: list[int], wanted: list[int], chunks: int) -> None:
    # The ingest's membership test for "left out" and "already in the lake" rows: a binary search over the
    # sorted set instead of is_in's hash table per call. Same answer, chunked input included.
    array = pa.array(values, pa.int64())
    step = max(1, len(values) // chunks)
    chunked = pa.chunked_array([array[i:i + step] for i in range(0, len(values), step)] or [array], pa.int64())
    expected = pc.is_in(array, value_set=pa.array(wanted, pa.int64())).to_pylist()
    for given_values in (array, chunked):
        got = member_mask(sorted_rows(pa.array(wanted, pa.int64())), given_values)
        assert (got.to_pylist() if got is not None else [False] * len(values)) == expected
        assert got is None or any(expected)  # None means: none of them


def test_sorted_rows_sorts_and_drops_repeats() -> None:
    assert sorted_rows(pa.chunked_array([[5, 1], [5, 3]], pa.int64())).tolist() == [1, 3, 5]
