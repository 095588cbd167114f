"""Small Arrow values built from buffers, not from Python objects.

pyarrow's conversion of Python objects (``pa.array([...])``, ``pa.scalar(...)``, and a plain Python value
passed to a compute function) imports pandas the first time it runs when pandas is installed: ~40 MB of
memory and ~0.2 s (seen with pyarrow 26). The ingest path and the dump reader's child build the few values
they need here instead, and a test checks that an ingest never imports pandas.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
        import pyarrow as pa

        if not self.count or not len(values):
            return None
        v = int64_numpy(values)
        hit = (self._bits[v >> 3] >> (v & 7).astype(np.uint8)) & 1
        if not hit.any():
            return None
        return pa.Array.from_buffers(pa.bool_(), len(hit), [None, pa.py_buffer(np.packbits(hit, bitorder="little"))])


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
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if not valid.all() else None
    return pa.Array.from_buffers(pa.large_string(), len(values),
                                 [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]).cast(pa.string())
