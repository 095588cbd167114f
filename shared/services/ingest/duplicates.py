"""Step 3, the duplicate stage: within the dump, copies of a key are one line (same values: the first copy is
kept) or a conflict (different values: every copy is rejected), decided on the narrow key files alone. Then
the counts of each table. Nothing here reads or writes the lake."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.core.arrow_values import RowSet
from shared.core.rules import FLAG_CODES, REJECT_CODES, duplicate_keys_sql, duplicate_reason_sql
from shared.services.ingest.engine import memory_limit_bytes, row_set
from shared.services.ingest.job import DumpJob
from shared.services.ingest.row_stage import StagedTable

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Finishing:
    """What the duplicate stage decided for a table: the rows to leave out (``dropped``: their ``_row``
    numbers; the reasons stay in DuckDB's ``dropped_<table>``), and the counts so far. The left-out rows, as
    parsed, are set aside to ``spill`` (a Parquet file) while the curated files are written, for the rejected
    file: a dump made mostly of duplicates must not hold them in memory."""

    counts: dict
    dropped: RowSet | None = None
    spill: Path | None = None
    _writer: object = None
    _spilled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list = field(default_factory=list)  # set-aside rows not yet written (one row group per flush)
    _pending_rows: int = 0

    SPILL_ROWS = 65_536  # rows set aside are written in row groups of about this many

    def set_aside(self, rows) -> None:  # noqa: ANN001 - a pyarrow.Table; called from the writer threads
        with self._lock:
            self._pending.append(rows)
            self._pending_rows += rows.num_rows
            if self._pending_rows >= self.SPILL_ROWS:
                self._flush()

    def _flush(self) -> None:
        """Writes the pending rows as one row group (a day's few duplicates each as a row group cost ~0.5 ms
        a partition). Called with the lock held."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending:
            return
        rows = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.spill, rows.schema, compression="lz4")
        self._writer.write_table(rows)

    def spilled(self) -> bool:
        """Closes the spill file; whether any row was set aside."""
        with self._lock:
            self._flush()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                self._spilled = True
            return self._spilled


def find_duplicates(con: Any, staged: dict[str, StagedTable], job: DumpJob) -> dict[str, Finishing]:
    """The duplicate stage and the counts of every table, on two DuckDB threads (the reader child is done)."""
    t0 = time.monotonic()
    con.execute("SET threads = 2")
    finishing = {name: _duplicates(con, st) for name, st in staged.items()}
    job.time("duplicates", t0)
    return finishing


def _duplicates(con: Any, staged: StagedTable) -> Finishing:
    """One table's duplicate stage (DuckDB's ``dups_<table>``, ``dropped_<table>``) and its counts."""
    table, name = staged.table, staged.table.name
    if not staged.passed:
        return Finishing({"input": staged.rows, "curated": 0, "rejected": staged.rows,
                          "by_rule": dict(sorted(staged.rejected_by_rule.items())), "timings_s": {}})
    clock = time.monotonic()
    steps: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal clock
        steps[step] = round(time.monotonic() - clock, 3)
        clock = time.monotonic()

    con.execute(f"CREATE VIEW keys_{name} AS SELECT * FROM read_parquet('{staged.keys}')")
    repeated = None  # None: DuckDB groups the key hashes, within its memory limit (it spills to disk)
    if _sort_in_memory(staged.passed, memory_limit_bytes(con)):
        repeated = f"repeated_{name}"
        con.register(repeated, _repeated_key_hashes(staged.keys, staged.passed))
    con.execute(f"CREATE TABLE dups_{name} AS "
                f"{duplicate_keys_sql(table, f'keys_{name}', values_hash='_vh', key_hash='_kh', repeated=repeated)}")
    if repeated:
        con.unregister(repeated)
    con.execute(f"CREATE TABLE dropped_{name} AS SELECT _row, reason_code FROM "
                f"({duplicate_reason_sql(table, f'keys_{name}', f'dups_{name}')}) WHERE reason_code IS NOT NULL")
    lap("duplicates")
    by_rule = _by_rule(con, staged)
    rejected = sum(n for code, n in by_rule.items() if code in REJECT_CODES)
    lap("counts")
    dropped = row_set(con.sql(f"SELECT _row FROM dropped_{name}"), staged.rows)
    return Finishing({"input": staged.rows, "curated": staged.rows - rejected, "rejected": rejected,
                      "by_rule": dict(sorted(by_rule.items())), "timings_s": steps},
                     dropped if dropped.count else None, staged.keys.with_name(f"{name}.dropped.parquet"))


def _by_rule(con: Any, staged: StagedTable) -> dict[str, int]:
    """The table's counts by rule: rejections by the row stage and by the duplicate stage; among the rows that
    will be curated, fixes (``sku_normalised``) and flags."""
    name = staged.table.name
    by_rule = dict(staged.rejected_by_rule)
    for reason, n in con.execute(f"SELECT reason_code, count(*) FROM dropped_{name} GROUP BY ALL").fetchall():
        by_rule[reason] = by_rule.get(reason, 0) + n
    flag_counts = ", ".join(f"count(*) FILTER (WHERE list_contains(string_split(flags, ','), '{code}'))"
                            for code in FLAG_CODES)
    normalised, *flags = con.execute(
        f"SELECT count(*) FILTER (WHERE sku_normalised), {flag_counts} FROM keys_{name} "
        f"WHERE _row NOT IN (SELECT _row FROM dropped_{name})").fetchall()[0]
    if normalised:
        by_rule["sku_normalised"] = normalised
    by_rule.update({code: k for code, k in zip(FLAG_CODES, flags, strict=True) if k})
    return by_rule


HASH_SORT_SHARE = 0.5  # of the engine's memory limit, for the key hashes sorted in memory (8 bytes a row)


def _sort_in_memory(rows: int, memory_limit: int | None) -> bool:
    """Whether the duplicate stage sorts the key hashes with numpy (:func:`_repeated_key_hashes`: its arrays
    live outside DuckDB's memory limit, ~8-20 bytes a row at their peak) or leaves the grouping to DuckDB,
    which spills to disk. Up to ``HASH_SORT_SHARE`` of ``INGEST_MEMORY_LIMIT`` in hashes (8M rows at 128 MB):
    a dump near the table limit (100M rows) would otherwise need ~1-2 GB in this process."""
    return memory_limit is not None and rows * 8 <= memory_limit * HASH_SORT_SHARE


def _repeated_key_hashes(keys: Path, rows: int) -> pa.Table:
    """The key hashes (``_kh``) that occur more than once in the keys file of ``rows`` rows, as a table of one
    column ``kh``: read into one numpy array, sorted in place (8 bytes a row: 40 MB for 5M rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    hashes = np.empty(rows, dtype=np.uint64)
    filled = 0
    with pq.ParquetFile(keys) as f:
        for group in range(f.num_row_groups):
            for chunk in f.read_row_group(group, columns=["_kh"]).column(0).chunks:
                if chunk.null_count:
                    raise RuntimeError("a key hash is NULL")  # hash() never returns NULL
                part = np.frombuffer(chunk.buffers()[1], dtype=np.uint64, count=len(chunk), offset=chunk.offset * 8)
                hashes[filled:filled + len(part)] = part
                filled += len(part)
    if filled != rows:
        raise RuntimeError(f"the keys file has {filled} rows, expected {rows}")
    hashes.sort()
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    del hashes
    return pa.table({"kh": pa.Array.from_buffers(pa.uint64(), len(repeated), [None, pa.py_buffer(repeated)])})


__all__ = ["HASH_SORT_SHARE", "Finishing", "find_duplicates"]
