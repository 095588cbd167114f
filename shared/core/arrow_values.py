"""Small Arrow values built from buffers, not from Python objects.

pyarrow's conversion of Python objects (``pa.array([...])``, ``pa.scalar(...)``, and a plain Python value
passed to a compute function) imports pandas the first time it runs when pandas is installed: ~40 MB of
memory and ~0.2 s (seen with pyarrow 26). The ingest path and the dump reader's child build the few values
they need here instead, and a test checks that an ingest never imports pandas.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def int64_array(values: np.ndarray | list[int] | range) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    arr = np.ascontiguousarray(np.asarray(values, dtype=np.int64))
    return pa.Array.from_buffers(pa.int64(), len(arr), [None, pa.py_buffer(arr)])


def int64_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 array without NULLs as numpy, read from its buffers (``to_numpy()`` imports pandas)."""
    import numpy as np
    import pyarrow as pa

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    parts = []
    for chunk in chunks:
        if chunk.type != pa.int64() or chunk.null_count:
            raise ValueError(f"expected int64 without NULLs, got {chunk.type} with {chunk.null_count} NULL(s)")
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=len(chunk), offset=chunk.offset * 8))
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class RowSet:
    """A set of row numbers ``0..size`` as a bitmap (one bit per row: 625 KB for 5M rows, 12.5 MB at the
    100M-row table limit), for the ingest's "leave these rows out" tests over many batches.

    ``pyarrow.compute.is_in`` builds a hash table of its whole value set on every call; once per daily
    partition, over the million rows of a nightly dump already in the lake, that took 22 s. The bitmap is
    filled once, from a stream (0.2 s for 5M rows), and each test is one gather."""

    def __init__(self, size: int) -> None:
        import numpy as np

        self.size = size
        self._bits = np.zeros((size >> 3) + 1, dtype=np.uint8)
        self.count = 0

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        import numpy as np

        v = int64_numpy(values)
        if len(v) and (v.min() < 0 or v.max() > self.size):
            raise ValueError(f"row numbers outside 0..{self.size}")
        np.bitwise_or.at(self._bits, v >> 3, np.left_shift(1, v & 7).astype(np.uint8))
        self.count = int(np.bitwise_count(self._bits).sum())

    def mask(self, values: pa.Array | pa.ChunkedArray) -> pa.Array | None:
        """Which of ``values`` are in the set, as a boolean array; None when none are."""
        import numpy as np

        if not self.count or not len(values):
            return None
        v = int64_numpy(values)
        hit = (self._bits[v >> 3] >> (v & 7).astype(np.uint8)) & 1
        if not hit.any():
            return None
        return bool_array(hit)  # 0/1 values: packed as the bits


def row_numbers(first: int, n: int) -> pa.Array:
    """``first, first + 1, …`` (n values) as int64."""
    import numpy as np

    return int64_array(np.arange(first, first + n, dtype=np.int64))


def string_scalar(value: str) -> pa.Scalar:
    import numpy as np
    import pyarrow as pa

    data = value.encode()
    offsets = np.array([0, len(data)], dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])[0]


def null_scalar(type_: pa.DataType) -> pa.Scalar:
    import pyarrow as pa

    return pa.nulls(1, type_)[0]


def date_scalar(value: date) -> pa.Scalar:
    """A ``date32`` scalar, built from its day number (``pa.scalar(date)`` imports pandas on first use)."""
    import numpy as np
    import pyarrow as pa

    days = np.array([(value - date(1970, 1, 1)).days], dtype=np.int32)
    return pa.Array.from_buffers(pa.date32(), 1, [None, pa.py_buffer(days)])[0]


def utc_timestamp_scalar(value: datetime) -> pa.Scalar:
    """A ``timestamp[us, tz=UTC]`` scalar; a naive ``value`` is taken as UTC."""
    import numpy as np
    import pyarrow as pa

    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    micros = (aware - _EPOCH) // timedelta(microseconds=1)
    arr = np.array([micros], dtype=np.int64)
    return pa.Array.from_buffers(pa.timestamp("us", tz="UTC"), 1, [None, pa.py_buffer(arr)])[0]


def utc_datetime(scalar: pa.TimestampScalar) -> datetime | None:
    """A timestamp scalar as an aware UTC datetime, or None for NULL (``as_py()`` of a zoned timestamp
    imports pandas)."""
    if not scalar.is_valid:
        return None
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[scalar.type.unit]
    return _EPOCH + timedelta(microseconds=scalar.value * 1_000_000 // per_second)


def string_array(values: list[str | None]) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.array([v is not None for v in values], dtype=bool)
    return pa.Array.from_buffers(pa.large_string(), len(values), [_bitmap(valid), pa.py_buffer(offsets),
                                                                  pa.py_buffer(b"".join(encoded))]).cast(pa.string())


def _validity(arr: pa.Array) -> np.ndarray:
    """Which values of ``arr`` are not NULL, as a numpy bool array (from the validity bitmap)."""
    import numpy as np

    if not arr.null_count:
        return np.ones(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + len(arr)].astype(bool)


def bool_numpy(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy bool array (NULL as False), from its buffers."""
    import numpy as np

    bits = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + len(arr)].astype(bool) & _validity(arr)


def _bitmap(valid: np.ndarray) -> pa.Buffer | None:
    """An Arrow validity bitmap from a numpy bool array; None (no NULLs) when every value is valid."""
    import numpy as np
    import pyarrow as pa

    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def bool_array(mask: np.ndarray) -> pa.Array:
    """A numpy bool (or 0/1) array as a boolean Arrow array without NULLs."""
    import numpy as np
    import pyarrow as pa

    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])


_DIGIT_AT = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)  # YYYY-MM-DD HH:MM:SS


@cache
def _calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables for :func:`plain_timestamps_utc` (gathers instead of divisions: 4x faster): per year
    0..9999 whether it is a leap year and the days from 1970-01-01 to its 1 January (proleptic Gregorian);
    per ``leap * 16 + month`` the month's length and the days of the year before it (0 for months 0, 13..15)."""
    import numpy as np

    years = np.arange(10_000, dtype=np.int64)
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    y = np.maximum(years - 1, 0)
    year_days = (y * 365 + y // 4 - y // 100 + y // 400 - 719_162).astype(np.int32)
    month_days = np.zeros(32, dtype=np.int32)
    days_before = np.zeros(32, dtype=np.int32)
    for is_leap in (0, 1):
        before = 0
        for month, days in enumerate((31, 28 + is_leap, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1):
            month_days[is_leap * 16 + month] = days
            days_before[is_leap * 16 + month] = before
            before += days
    return leap.astype(np.int32), year_days, month_days, days_before


def plain_timestamps_utc(arr: pa.Array) -> pa.Array:
    """The values of a string array that are exactly ``YYYY-MM-DD HH:MM:SS`` (or with ``T``), a real date and
    time of years 1..9999, read as UTC: ``timestamp[us, tz=UTC]``, NULL for every other value (NULL, another
    form, or no such date: Feb 30, hour 24).

    The form nearly every till writes, parsed with numpy on the string bytes (~0.05 s per million values)
    instead of by DuckDB's cast to TIMESTAMPTZ (~0.3 s, and it ran twice). Values it leaves NULL go to that
    cast, which decides them (it takes offsets, fractions and a few forms this refuses, e.g. ``24:00:00``).
    Checked against DuckDB's cast on random dates of all 9999 years in the tests.
    """
    import numpy as np
    import pyarrow as pa

    n = len(arr)
    out_type = pa.timestamp("us", tz="UTC")
    if not pa.types.is_string(arr.type):
        raise TypeError(f"expected a string array, got {arr.type}")
    if not n:
        return pa.nulls(0, out_type)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * arr.offset)
    fixed = (np.diff(offsets) == 19) & _validity(arr)
    whole = bool(fixed.all())
    sub = arr if whole else arr.filter(bool_array(fixed))  # the 19-byte values, their bytes contiguous
    k = len(sub)
    if not k:
        return pa.nulls(n, out_type)
    sub_offsets = np.frombuffer(sub.buffers()[1], dtype=np.int32, count=k + 1, offset=4 * sub.offset)
    m = np.ascontiguousarray(  # one row per character position
        np.frombuffer(sub.buffers()[2], dtype=np.uint8)[sub_offsets[0]:sub_offsets[-1]].reshape(k, 19).T)
    d = m - np.uint8(48)  # a non-digit wraps above 9
    form = ((d[list(_DIGIT_AT)] <= 9).all(axis=0) & (m[4] == 45) & (m[7] == 45) & ((m[10] == 32) | (m[10] == 84))
            & (m[13] == 58) & (m[16] == 58))
    d = d.astype(np.int32)
    year = np.minimum(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3], 9999)
    month, day = d[5] * 10 + d[6], d[8] * 10 + d[9]
    hour, minute, second = d[11] * 10 + d[12], d[14] * 10 + d[15], d[17] * 10 + d[18]
    leap, year_days, month_days, days_before = _calendar()
    ym = leap[year] * 16 + np.minimum(month, 15)
    good = (form & (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days[ym])
            & (hour <= 23) & (minute <= 59) & (second <= 59))
    days = (year_days[year] + days_before[ym] + day - 1).astype(np.int64)
    micros = days * 86_400_000_000 + (hour * 3600 + minute * 60 + second).astype(np.int64) * 1_000_000
    if whole:
        values, valid = micros, good
    else:
        at = np.flatnonzero(fixed)
        values = np.zeros(n, dtype=np.int64)
        values[at] = micros
        valid = np.zeros(n, dtype=bool)
        valid[at] = good
    return pa.Array.from_buffers(out_type, n, [_bitmap(valid), pa.py_buffer(np.where(valid, values, 0))])


def utc_dates(times: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The UTC calendar date of each timestamp (any unit, any zone: the stored value is UTC), as date32;
    NULL stays NULL."""
    import numpy as np
    import pyarrow as pa

    if isinstance(times, pa.ChunkedArray):
        times = times.combine_chunks()
    per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[times.type.unit]
    raw = times.view(pa.int64())
    values = np.frombuffer(raw.buffers()[1], dtype=np.int64, count=len(raw), offset=raw.offset * 8)
    days = np.floor_divide(values, per_day).astype(np.int32)
    return pa.Array.from_buffers(pa.date32(), len(days), [_bitmap(_validity(times)), pa.py_buffer(days)])
