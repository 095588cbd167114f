"""Use case: ingest one store dump into the lake (what the blob trigger and `inventory ingest` do).

    dump file ──▶ open safely (child process) ──▶ row stage (DuckDB SQL over Arrow batches, while the child
              reads the next batch) ──▶ rows that passed spooled by event date + a narrow key file
              ──▶ duplicate stage on the keys
              ──▶ under the store lock, per table: lines already in the lake (one key join with the Delta
                  table's keys) ──▶ one Delta commit of the curated rows, one of the rejected rows
              ──▶ manifest last (the operator's record of the dump)

Idempotent: the dump id is the hash of the SQLite content. A dump whose manifest exists is not ingested
again, and each Delta commit carries the dump id as an application transaction, so a retry after a crash
skips the tables already committed and commits the rest. Each commit is atomic: a reader sees the whole of
it or nothing, whatever happens to the writer. Dumps are full snapshots: sale and receipt lines whose key the
lake has (committed by another dump) are counted (``already_in_lake``) but not written again.

Ingests of one store are serialised from reading what the lake holds to writing the manifest by a lake
lock (``store=<id>``: a file lock on the folder lake, a renewed blob lease on Blob storage): Delta appends
never conflict with each other, so two dumps of a store ingested at once would otherwise both append the
lines they share. Reading and cleaning the dump, the bulk of the time, run outside the lock.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from shared import __version__
from shared.adapters.delta_tables import DeltaTables
from shared.adapters.parquet_files import PartitionSpool
from shared.adapters.sqlite_dump import DumpReader, DumpRejected, ReadLimits
from shared.core import layout
from shared.core.arrow_values import (
    RowSet,
    date_scalar,
    null_scalar,
    string_scalar,
    utc_dates,
    utc_datetime,
    utc_timestamp_scalar,
)
from shared.core.ids import (
    STORE_ID_PATTERN,
    InvalidStoreId,
    dump_id_from_sha256,
    parse_utc,
    utc_iso,
    validate_store_id,
)
from shared.core.mapping import DEFAULT_MAPPING, Mapping, MappingError, parse_mapping
from shared.core.rules import (
    FLAG_CODES,
    FUTURE_TOLERANCE,
    REJECT_CODES,
    RULES,
    arrivals,
    duplicate_keys_sql,
    duplicate_reason_sql,
    has_flags,
    is_utc,
    key_hash_sql,
    passes_through,
    prepare_batch,
    q,
    row_stage_sql,
    values_hash_sql,
)
from shared.core.schema import READ_ORDER, SCHEMA_VERSION, TABLES, Table
from shared.core.sql import literal
from shared.ports.lake import Lake, LockTimeout
from shared.ports.telemetry import Telemetry
from shared.services.ingest_history import (
    HistoryCheck,
    ReadPlan,
    digest_job,
    digest_of,
    history_rows,
    load_state,
    plan_reads,
    recorded,
    save_state,
    window_mark,
    window_sql,
)
from shared.services.scratch import scratch_folder, scratch_in_use, sweep_stale_scratch
from shared.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa

QUARANTINE_REASONS: dict[str, str] = {
    "not_sqlite": "the file is not a SQLite database",
    "bad_gzip": "the file looks gzip-compressed but cannot be decompressed",
    "too_large": "the decompressed dump is larger than INGEST_MAX_DUMP_BYTES (or a gzip bomb)",
    "corrupt": "SQLite's quick_check found damage",
    "missing_table": "a required table (items, stock, sales) is absent",
    "missing_column": "a required column is absent",
    "unsafe_query": "a query would do more than read (refused by the authorizer)",
    "bad_query": "a table or mapping query cannot run on this dump (e.g. a view calling a forbidden function)",
    "query_timeout": "reading a table took longer than INGEST_QUERY_TIMEOUT_S",
    "unbounded_query": "a view or mapping query yields more rows, or costs more, than the file's stored rows could",
    "too_many_rows": "a table has more rows than INGEST_MAX_ROWS_PER_TABLE",
    "cell_too_large": "a value is larger than INGEST_MAX_CELL_BYTES",
    "reader_failed": "SQLite failed while reading the file",
    "invalid_store_id": "the store id in the path is not ^[A-Za-z0-9_-]{1,64}$",
    "bad_path": "the path is not raw/store=<id>/date=<YYYY-MM-DD>/<file> (e.g. a date that does not exist)",
    "store_mismatch": "the dump's store_id metadata names another store than its path (raw/store=<id>/)",
}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class IngestLimits:
    max_dump_bytes: int = 8 << 30
    read: ReadLimits = field(default_factory=ReadLimits)
    memory_limit: str = "128MB"
    full_check_days: float = 7.0  # a full read of each fact table at least this often (ingest_history)

    @classmethod
    def from_settings(cls, s: Settings) -> IngestLimits:
        return cls(
            max_dump_bytes=s.int("INGEST_MAX_DUMP_BYTES"),
            read=ReadLimits(
                max_cell_bytes=s.int("INGEST_MAX_CELL_BYTES"),
                max_rows_per_table=s.int("INGEST_MAX_ROWS_PER_TABLE"),
                query_timeout_s=float(s.get("INGEST_QUERY_TIMEOUT_S")),
                batch_rows=s.int("INGEST_BATCH_ROWS"),
            ),
            memory_limit=s.get("INGEST_MEMORY_LIMIT"),
            full_check_days=float(s.get("INGEST_FULL_CHECK_DAYS")),
        )


@dataclass
class IngestResult:
    status: str  # "ingested" | "already_ingested" | "quarantined"
    store_id: str
    dump_id: str
    manifest: dict
    reason_code: str | None = None
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        return 2 if self.status == "quarantined" else 0


# --- step 1: the bytes -----------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip_sha256(source: Path, max_bytes: int, out: BinaryIO | None = None) -> str:
    """The sha256 of what gzip file ``source`` decompresses to, streamed (into ``out`` too, when given).
    Raises :class:`DumpRejected`: ``too_large`` past ``max_bytes`` (a gzip bomb costs at most that much), and
    ``bad_gzip`` for a damaged or truncated stream (zlib's own error included: it is no OSError)."""
    h = hashlib.sha256()
    total = 0
    try:
        with gzip.open(source, "rb") as inp:
            while chunk := inp.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise DumpRejected("too_large", f"the dump decompresses to more than {max_bytes} bytes "
                                       "(INGEST_MAX_DUMP_BYTES); a gzip bomb, or raise the limit")
                h.update(chunk)
                if out is not None:
                    out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DumpRejected("bad_gzip", f"the gzip stream is damaged or truncated: {exc}") from None
    return h.hexdigest()


class DatabaseInUse(RuntimeError):
    """A local SQLite database whose latest commits are still in its ``-wal`` file (not a dump's fault)."""


def _check_not_in_use(source: Path) -> None:
    """A dump is opened immutable (safe on untrusted files), which reads the main file only. A database in WAL
    mode that is still open, or was copied with its ``-wal`` file, has commits there: they would be left out
    without a word (100 of 103 sale lines, in the case found). Refused instead; an uploaded dump is one file,
    so this concerns ``inventory ingest`` of a local file."""
    wal = source.with_name(source.name + "-wal")
    try:
        size = wal.stat().st_size
    except OSError:
        return
    if size:
        raise DatabaseInUse(
            f"{source} has {size:,} bytes of changes in {wal.name} that are not in the file yet: the database is "
            "in use, or was copied with its -wal file. Snapshot it with `inventory agent upload` (a consistent "
            f"copy while the POS writes), or checkpoint it first: sqlite3 {source} 'PRAGMA wal_checkpoint(TRUNCATE)'")


def prepare_source(source: Path, received_sha: str, scratch: Path, max_bytes: int) -> tuple[Path, str]:
    """Return (SQLite file, its sha256), given the sha256 of the file as received.

    A gzip file (recognised by its magic bytes, not its name) is decompressed into ``scratch`` while
    counting: past ``max_bytes`` it is refused as ``too_large``, so a gzip bomb costs at most that much disk.
    """
    if not is_gzip(source):
        if source.stat().st_size > max_bytes:
            raise DumpRejected("too_large", f"the dump is {source.stat().st_size} bytes, above "
                               f"INGEST_MAX_DUMP_BYTES={max_bytes}")
        return source, received_sha
    target = scratch / "dump.sqlite"
    with open(target, "wb") as out:
        return target, gunzip_sha256(source, max_bytes, out)


# --- step 2: read and clean ------------------------------------------------------------------------------

def _table_query(info_find: Callable[[str], dict | None], mapping: Mapping, name: str) -> tuple[str, set | None] | None:
    """The query that reads canonical table ``name`` (the mapping's, else ``SELECT *`` of the dump's table)
    and the dump's columns when it is the latter; None for an optional table the dump lacks."""
    table = TABLES[name]
    query = mapping.query_for(name)
    if query is not None:
        return query, None
    found = info_find(name)
    if found is None:
        if table.required:
            raise DumpRejected("missing_table", f"the dump has no table {name!r} (required: "
                               f"{', '.join(t for t in READ_ORDER if TABLES[t].required)}); "
                               "if the store's software names it differently, use a mapping file")
        return None
    if found.get("error"):
        raise DumpRejected("bad_query", f"{found['type']} {found['name']!r} cannot be read: {found['error']}")
    return f'SELECT * FROM "{found["name"].replace(chr(34), chr(34) * 2)}"', {c.lower() for c in found["columns"]}


def _jobs(info_find: Callable[[str], dict | None], mapping: Mapping, plans: dict[str, ReadPlan],
          only: str | None = None, with_digest: bool = False) -> list[dict]:
    """The reader's jobs: each table's rows, a fact table read as a window narrowed to it; ``with_digest``:
    after a table read whole, its history digest too. ``only``: that table alone."""
    jobs = []
    for name in READ_ORDER:
        if (only is not None and name != only) or (found := _table_query(info_find, mapping, name)) is None:
            continue
        query, present = found
        table, plan = TABLES[name], plans.get(name)
        rows = {"table": name, "sql": query, "want": list(table.column_names),
                "required": list(table.required_columns), "numeric": [c.name for c in table.columns if c.numeric]}
        if plan is not None and plan.incremental:
            rows["sql"] = window_sql(table, query, plan.hwm)
        jobs.append(rows)
        if plan is not None and with_digest and not plan.incremental:
            jobs.append(digest_job(table, query, plan.hwm, present))
    return jobs


def _history_check(db: Path, limits: ReadLimits, mapping: Mapping, plans: dict[str, ReadPlan]) -> HistoryCheck | None:
    """The history digests of ``plans``' tables, computed in the background (None: no table to check)."""
    def jobs(info_find: Callable[[str], dict | None]) -> list[dict]:
        found = {name: _table_query(info_find, mapping, name) for name in plans}
        return [digest_job(TABLES[name], q[0], plans[name].hwm, q[1]) for name, q in found.items() if q is not None]

    return HistoryCheck(db, limits, jobs) if plans else None


@dataclass
class StagedTable:
    """One table after the row stage.

    - ``spool``: the rows that passed, typed (``_row``, ``p_<col>``, ``flags``), spooled by partition: a fact
      table by event date (UTC), a snapshot table in one partition (``all``);
    - ``keys``: a narrow Parquet file of the same rows (``_row``, the key, ``_vh`` a hash of all values,
      ``flags``, ``sku_normalised``) for the duplicate stage and the counts;
    - ``rejected_raw``: the rows set aside by row-level rules, as read, with their reason.
    """

    table: Table
    spool: PartitionSpool
    keys: Path
    rejected_raw: Path
    rows: int = 0
    passed: int = 0
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    wait_s: float = 0.0  # time spent waiting for the reader (the rest of the read time is the row stage)
    latest_counted_at: datetime | None = None  # stock only: the latest count among rows that passed

    def discard(self) -> None:
        """Remove the table's working files (before it is read again)."""
        self.spool.remove()
        for path in (self.keys, self.rejected_raw):
            path.unlink(missing_ok=True)


SNAPSHOT_PARTITION = "all"


def _stage_sql(table: Table, row_sql: str) -> str:
    """The row stage plus what the later stages need: 64-bit hashes of all values (``_vh``: copies of a key
    with equal hashes are the same line) and of the key (``_kh``, for the duplicate stage). The partition
    (``_part``) is added in Arrow (:func:`_partitions`).

    Only computed columns come back: the columns that pass through unchanged (:func:`passes_through`) are
    taken from the prepared batch, and ``flags`` only for tables with flag rules. Turning DuckDB's result
    into Arrow costs per value, most for text (the sale id and sku alone were ~10 % of the row stage).
    """
    computed = ", ".join(f"p_{c.name}" for c in table.columns if not passes_through(c))
    return (f"SELECT _row, {computed + ', ' if computed else ''}reason_code, "
            f"{'flags, ' if has_flags(table) else ''}sku_normalised, {values_hash_sql(table)} AS _vh, "
            f"{key_hash_sql(table)} AS _kh FROM ({row_sql})")


def _partitions(table: Table, rows):  # noqa: ANN001 - a pyarrow.Table of rows that passed
    """Each row's partition: a fact table's event date in UTC (numpy on the stored UTC values: DuckDB's
    ``CAST(t AT TIME ZONE 'UTC' AS DATE)`` cost ~0.18 s per million rows), a snapshot table's one value."""
    import pyarrow as pa

    if table.fact:
        return utc_dates(rows.column(f"p_{table.event_time}"))
    return pa.repeat(string_scalar(SNAPSHOT_PARTITION), rows.num_rows)


def _with_passed_through(out, prepared, table: Table):  # noqa: ANN001
    """DuckDB's row-stage output with the pass-through columns from the prepared batch (same rows, same order:
    checked on ``_row``), and ``flags`` NULL for tables without flag rules."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pc.all(pc.equal(out.column("_row"), prepared.column("_row"))).as_py():
        out = out.take(pc.sort_indices(out.column("_row")))  # not expected (one thread, a projection)
        if not pc.all(pc.equal(out.column("_row"), prepared.column("_row"))).as_py():
            raise RuntimeError("the row stage lost or added rows")
    for c in table.columns:
        if passes_through(c):
            out = out.append_column(f"p_{c.name}", prepared.column(c.name))  # text: prepare_batch
    if not has_flags(table):
        out = out.append_column("flags", pa.nulls(out.num_rows, pa.string()))
    return out


def _row_stage(con, table: Table, batches, work: Path, *, items: str | None,  # noqa: ANN001
               vendors: str | None, progress: ProgressFn | None, not_after: datetime,
               naive_utc: bool = False) -> StagedTable:
    """Run the row stage on each batch as it arrives (while the reader reads the next one). ``naive_utc``:
    the store's time zone is UTC (see :func:`~shared.core.rules.prepare_batch`).

    Rows that pass are spooled, typed, by partition (Arrow IPC: no encoding cost) and their keys written to
    a narrow Parquet file; rows set aside go, as read (as text), to ``<table>.rejected.parquet`` with their
    reason. Nothing of the table is held whole in memory.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    staged = StagedTable(table, PartitionSpool(work / f"{table.name}.spool", "_part"),
                         work / f"{table.name}.keys.parquet", work / f"{table.name}.rejected.parquet")
    sql_for: dict[tuple, str] = {}  # one SQL per way the columns arrive (text, or numbers SQLite stored)
    as_text = pa.schema([("_row", pa.int64()), *[(c, pa.string()) for c in table.column_names]])
    spooled = ["_row", *(f"p_{c}" for c in table.column_names), "flags", "_part"]
    narrow = ["_row", *(f"p_{k}" for k in table.key), "_vh", "_kh", "flags", "sku_normalised"]
    keys_writer = rejected_writer = None
    waited = time.monotonic()
    try:
        for batch in batches:
            staged.wait_s += time.monotonic() - waited
            n = batch.num_rows
            prepared = prepare_batch(batch, table, staged.rows + 1, naive_utc=naive_utc)
            staged.rows += n
            arrived = arrivals(prepared, table)
            if arrived not in sql_for:
                sql_for[arrived] = _stage_sql(table, row_stage_sql(table, "incoming_batch", items=items,
                                                                   vendors=vendors, arrived=arrived,
                                                                   not_after=not_after))
            con.register("incoming_batch", prepared)
            out = _with_passed_through(con.sql(sql_for[arrived]).to_arrow_table(), prepared, table)
            con.unregister("incoming_batch")
            failed = pc.is_valid(out.column("reason_code"))
            any_failed = pc.any(failed).as_py()
            passed = out.filter(pc.invert(failed)) if any_failed else out
            staged.passed += passed.num_rows
            staged.spool.add(passed.append_column("_part", _partitions(table, passed)).select(spooled))
            keys = passed.select(narrow)
            if keys_writer is None:
                # Plain (no dictionary, no compression): 3x cheaper to write here, and read as fast.
                keys_writer = pq.ParquetWriter(staged.keys, keys.schema, compression="none", use_dictionary=False)
            keys_writer.write_table(keys)
            if table.name == "stock" and passed.num_rows:
                latest = utc_datetime(pc.max(passed.column("p_counted_at")))
                if latest is not None and (staged.latest_counted_at is None or latest > staged.latest_counted_at):
                    staged.latest_counted_at = latest
            if any_failed:
                bad = out.filter(failed).select(["_row", "reason_code"]).sort_by("_row")
                numbered = batch.add_column(0, "_row", prepared.column("_row"))
                raw = pa.Table.from_batches([numbered]).filter(pc.is_in(numbered.column("_row"),
                                                                         bad.column("_row")))
                raw = pa.table([raw.column(c) if c in raw.column_names else pa.nulls(raw.num_rows, pa.string())
                                for c in as_text.names], names=as_text.names).cast(as_text)
                raw = raw.append_column("reason_code", bad.column("reason_code"))
                if rejected_writer is None:
                    rejected_writer = pq.ParquetWriter(staged.rejected_raw, raw.schema, compression="lz4")
                rejected_writer.write_table(raw)
                for item in pc.value_counts(bad.column("reason_code")).to_pylist():
                    code = item["values"]
                    staged.rejected_by_rule[code] = staged.rejected_by_rule.get(code, 0) + item["counts"]
            if progress:
                progress(f"{table.name}: {staged.rows:,} rows read")
            waited = time.monotonic()
    finally:
        staged.spool.close()
        for w in (keys_writer, rejected_writer):
            if w is not None:
                w.close()
    return staged


def _read_tables(con, reader: DumpReader, jobs: list[dict], staged: dict[str, StagedTable],  # noqa: ANN001
                 timings: dict[str, float], *, work: Path, say: ProgressFn, not_after: datetime,
                 naive_utc: bool) -> dict[str, list[str]]:
    """Run ``jobs`` through the reader: each table's rows through the row stage (into ``staged``), each
    history digest collected. Returns the digests by table."""
    digests: dict[str, list[str]] = {}
    for name, _schema, batches in reader.read(jobs):
        t0 = time.monotonic()
        if name.endswith("#history"):
            digests[name.split("#")[0]] = digest_of(batches)
            timings[f"check_{name.split('#')[0]}"] = round(time.monotonic() - t0, 3)
            continue
        items = "items_keys" if name != "items" else None
        vendors = "vendors_keys" if "vendors" in staged else None
        staged[name] = _row_stage(con, TABLES[name], batches, work, items=items, vendors=vendors, progress=say,
                                  not_after=not_after, naive_utc=naive_utc)
        timings[f"read_{name}"] = round(time.monotonic() - t0, 3)
        timings[f"read_{name}_waiting"] = round(staged[name].wait_s, 3)
        if name in ("vendors", "items"):  # reference keys for the tables that follow
            _curated_keys(con, staged[name])
    return digests


def _history_note(plan: ReadPlan, digest: list[str] | None) -> dict:
    """The manifest's account of how a fact table was read tonight."""
    note = {"read": "window" if plan.incremental else "whole", "mark": plan.hwm, "reason": plan.reason}
    if plan.incremental and digest is not None:
        note["history_rows_checked"] = history_rows(digest)  # not read: summed in SQLite, equal to the record
    return note


def _record_history(lake: Lake, store_id: str, plans: dict[str, ReadPlan], digests: dict[str, list[str]], *,
                    dump_id: str) -> None:
    """After a dump's commits: the tables read whole leave their mark and history digest for the next nights
    (called under the store's lock)."""
    state = load_state(lake, store_id)
    full = {name: plan for name, plan in plans.items() if not plan.incremental and name in digests}
    if not full:
        return
    now = datetime.now(UTC)
    state["tables"] = {**state.get("tables", {}),
                       **{name: recorded(plan, digests[name], dump_id=dump_id, now=now) for name, plan in full.items()}}
    save_state(lake, store_id, state)


def _history_changed(plans: dict[str, ReadPlan], digests: dict[str, list[str]]) -> list[str]:
    """The tables read as a window whose history digest is not the one the last full read recorded (or could
    not be computed)."""
    return [name for name, plan in plans.items() if plan.incremental and digests.get(name) != plan.expected]


def _differs(plan: ReadPlan, digest: list[str] | None) -> str:
    """What differs, for the manifest: e.g. ``rows 1,999,980 -> 1,999,978``."""
    if digest is None:
        return "the check could not be computed"
    was, now = history_rows(plan.expected or ["0"]), history_rows(digest)
    return f"rows {was:,} -> {now:,}" if was != now else "same row count, other values"


def _curated_keys(con, staged: StagedTable) -> None:  # noqa: ANN001
    """``<table>_keys``: the keys that will be curated (a conflicting duplicate's key is not)."""
    table = staged.table
    key = table.key[0]
    if not staged.passed:
        con.execute(f"CREATE TABLE {table.name}_keys ({key} VARCHAR)")
        return
    con.execute(f"CREATE TABLE {table.name}_keys AS SELECT p_{key} AS {key} FROM read_parquet('{staged.keys}') "
                f"GROUP BY p_{key} HAVING min(_vh) = max(_vh)")


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


def _duplicates(con, staged: StagedTable) -> Finishing:  # noqa: ANN001
    """The duplicate stage and the counts: nothing here reads or writes the lake."""
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
    if _sort_in_memory(staged.passed, _memory_limit_bytes(con)):
        repeated = f"repeated_{name}"
        con.register(repeated, _repeated_key_hashes(staged.keys, staged.passed))
    con.execute(f"CREATE TABLE dups_{name} AS "
                f"{duplicate_keys_sql(table, f'keys_{name}', values_hash='_vh', key_hash='_kh', repeated=repeated)}")
    if repeated:
        con.unregister(repeated)
    con.execute(f"CREATE TABLE dropped_{name} AS SELECT _row, reason_code FROM "
                f"({duplicate_reason_sql(table, f'keys_{name}', f'dups_{name}')}) WHERE reason_code IS NOT NULL")
    lap("duplicates")

    # Counts among the rows that will be curated: fixes and flags; rejections by rule.
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
    rejected = sum(n for code, n in by_rule.items() if code in REJECT_CODES)
    lap("counts")
    dropped = _row_set(con.sql(f"SELECT _row FROM dropped_{name}"), staged.rows)
    return Finishing({"input": staged.rows, "curated": staged.rows - rejected, "rejected": rejected,
                      "by_rule": dict(sorted(by_rule.items())), "timings_s": steps},
                     dropped if dropped.count else None, staged.keys.with_name(f"{name}.dropped.parquet"))


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


_MEMORY_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def _memory_limit_bytes(con) -> int | None:  # noqa: ANN001 - a DuckDB connection
    """DuckDB's memory limit in bytes (it reports e.g. ``122.0 MiB``); None if it says something else."""
    number, _, unit = str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]).partition(" ")
    try:
        return int(float(number) * _MEMORY_UNITS[unit])
    except (KeyError, ValueError):
        return None


def _row_set(relation, rows: int) -> RowSet:  # noqa: ANN001 - a DuckDB relation of one column, _row
    """The row numbers of ``relation``, streamed into a :class:`RowSet` (never materialised whole)."""
    found = RowSet(rows)
    for batch in relation.to_arrow_reader(1 << 20):
        found.add(batch.column(0))
    return found


def _curated_columns(table: Table, rows, *, store_id: str, dump_id: str, snapshot_at: datetime):  # noqa: ANN001
    """The curated schema from spooled rows: store_id, the columns, flags (NULL when none), dump_id,
    snapshot_at. Timestamps are stored as UTC."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = rows.num_rows
    cols = {"store_id": pa.repeat(string_scalar(store_id), n)}
    for c in table.column_names:
        arr = rows.column(f"p_{c}")
        if pa.types.is_timestamp(arr.type):  # Delta Lake keeps microseconds
            arr = arr.cast(pa.timestamp("us", tz="UTC"))
        cols[c] = arr
    flags = rows.column("flags")
    cols["flags"] = pc.if_else(pc.equal(flags, string_scalar("")), null_scalar(pa.string()), flags)
    cols["dump_id"] = pa.repeat(string_scalar(dump_id), n)
    cols["snapshot_at"] = pa.repeat(utc_timestamp_scalar(snapshot_at), n)
    return pa.table(cols)


def _leave_out(fin: Finishing, rows):  # noqa: ANN001
    """``rows`` without the rows the duplicate stage left out (set aside in ``fin.spill``)."""
    import pyarrow.compute as pc

    if fin.dropped is None:
        return rows
    out = fin.dropped.mask(rows.column("_row"))
    if out is None:
        return rows
    fin.set_aside(rows.filter(out))
    return rows.filter(pc.invert(out))


def _rejected_rows(con, tables: DeltaTables, staged: StagedTable, fin: Finishing, *,  # noqa: ANN001
                   store_id: str, dump_id: str, window: str | None = None) -> Iterator[pa.Table]:
    """This table's rejected rows, in dump order, as a stream of tables (none when there are none): rows set aside by
    row-level rules as read; duplicates and changed lines as parsed (the values of a duplicate are, by
    definition, those of the copy kept). A changed line names the dump whose version the lake kept
    (``kept_dump_id``). Rows the store's rejected table already holds (same values, same reason: history
    rejected on an earlier night) are not written again. Call after the curated rows were built: the rows
    the duplicate stage and the lake comparison set aside are spilled meanwhile."""
    table, name = staged.table, staged.table.name
    fin.counts["rejected_written"] = 0
    if not fin.counts["rejected"]:
        return iter(())
    reasons = "CASE reason_code " + " ".join(
        f"WHEN '{r.code}' THEN '{r.description.replace(chr(39), chr(39) * 2)}'" for r in RULES) + " END"
    parts = []
    if staged.rejected_raw.exists():
        parts.append(f"SELECT * FROM read_parquet('{staged.rejected_raw}')")
    if fin.spilled():
        as_text = ", ".join(f"CAST(p_{c} AS VARCHAR) AS {q(c)}" for c in table.column_names)
        parts.append(f"SELECT _row, {as_text}, reason_code FROM read_parquet('{fin.spill}') "
                     f"JOIN dropped_{name} USING (_row)")
    # Two steps: DuckDB (2.0) ran out of memory sorting a UNION whose side joins the dropped rows (a dump with
    # a million duplicate lines); it sorts one file within its limit, spilling to disk.
    unsorted = staged.keys.with_name(f"{name}.rejected-unsorted.parquet")
    con.execute(f"COPY (SELECT * FROM ({' UNION ALL BY NAME '.join(parts)})) TO '{unsorted}' "
                "(FORMAT parquet, COMPRESSION lz4)")
    columns = ", ".join(f"CAST(r.{q(c)} AS VARCHAR) AS {q(c)}" for c in table.column_names)
    kept = (f"LEFT JOIN match_{name} m USING (_row)" if table.fact else "")
    fresh = _not_rejected_before(con, tables, table, store_id=store_id, dump_id=dump_id, window=window)
    sql = (f"SELECT '{store_id}' AS store_id, _row AS row_number, {columns}, reason_code, {reasons} AS reason, "
           f"'{dump_id}' AS dump_id, {'m.kept_dump_id' if table.fact else 'NULL::VARCHAR'} AS kept_dump_id "
           f"FROM read_parquet('{unsorted}') r {kept} WHERE {fresh} ORDER BY _row")
    if table.fact:  # changes not reported before (a change seen again on a later night was reported then)
        fin.counts["changed_written"] = 0
    return _counted(con.sql(sql).to_arrow_reader(REJECTED_BATCH), fin.counts, fact=table.fact)


def _counted(reader: pa.RecordBatchReader, counts: dict, *, fact: bool) -> Iterator[pa.Table]:
    """The rejected rows as tables, counted into ``rejected_written`` (and ``changed_written``) as they pass:
    the commit takes every row before the manifest is written, and the sort runs once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    changed = string_scalar("changed_since_ingested")
    for batch in reader:
        counts["rejected_written"] += batch.num_rows
        if fact:
            counts["changed_written"] += int(pc.sum(pc.equal(batch.column("reason_code"), changed)).as_py() or 0)
        yield pa.Table.from_batches([batch])


def _not_rejected_before(con, tables: DeltaTables, table: Table, *, store_id: str, dump_id: str,  # noqa: ANN001
                         window: str | None) -> str:
    """A condition on the rejected rows (alias ``r``) that keeps those the store's rejected table does not
    hold yet from another dump (same values as text, same reason); ``true`` when there is no such table.
    ``window``: only the window was read (its rows' event time, as text, is after this mark), so only the
    rejected rows of the window can be the same."""
    cols = ", ".join(q(c) for c in table.column_names)
    where = f"store_id = {literal(store_id)} AND dump_id <> {literal(dump_id)}"
    if window is not None:
        where += f" AND {table.event_time} > {literal(window)}"
    prior = tables.query(f"SELECT DISTINCT {cols}, reason_code FROM t WHERE {where}", t=layout.rejected(table.name))
    if prior is None:
        return "true"
    con.register("prior_stream", prior)
    con.execute(f"CREATE OR REPLACE TEMP TABLE prior_{table.name} AS SELECT * FROM prior_stream")
    con.unregister("prior_stream")
    same = " AND ".join(f"p.{q(c)} IS NOT DISTINCT FROM CAST(r.{q(c)} AS VARCHAR)" for c in table.column_names)
    return f"NOT EXISTS (SELECT 1 FROM prior_{table.name} p WHERE {same} AND p.reason_code = r.reason_code)"


REJECTED_BATCH = 131_072  # rows per batch streamed from DuckDB to the Delta writer


def _snapshot_rows(staged: StagedTable, fin: Finishing, *, store_id: str, dump_id: str,
                   snapshot_at: datetime) -> pa.Table | None:
    """A snapshot table's curated rows: the dump's whole table, in dump order (None when none passed)."""
    if not staged.passed:
        return None
    rows = _leave_out(fin, staged.spool.read(SNAPSHOT_PARTITION))
    return _curated_columns(staged.table, rows, store_id=store_id, dump_id=dump_id, snapshot_at=snapshot_at)


@dataclass
class LakeMatch:
    """How a fact table's rows compare with the lines the lake holds for the store (from other dumps)."""

    known: RowSet | None = None  # rows whose key the lake has: not written again
    changed: RowSet | None = None  # of those, rows whose values differ from the lake's: changed_since_ingested
    not_in_dump: int = 0  # the store's lines in the lake that this dump does not have (pruned history)
    looked_up: tuple[str, str] | None = None  # on a window night: the range of the first key column read


def _match_lake(con, tables: DeltaTables, staged: StagedTable, *, store_id: str,  # noqa: ANN001
                dump_id: str, windowed: bool = False) -> LakeMatch:
    """Compare the dump's rows with the store's lines in ``curated/<table>`` committed by other dumps (this
    dump's own lines are left out, so a retry after a crash counts them as the first attempt did).

    A row whose key the lake has is "known"; when its values hash differently from the lake's line (the
    same DuckDB ``hash()`` as the duplicate stage, over the same types), it is "changed": the lake keeps the
    first version, the row goes to ``dropped_<table>`` with reason ``changed_since_ingested``, and
    ``match_<table>`` records the dump that wrote the kept version.

    Read: the store's partitions; with ``windowed`` (only the window's rows were read) just the lines whose
    first key column falls in the range of the rows' own (the log's file statistics prune the rest: POS ids
    grow, so that is the last days' files), and lines that left the dump are not counted (the history check
    showed none did)."""
    table, name = staged.table, staged.table.name
    on = " AND ".join(f"e.{k} = k.p_{k}" for k in table.key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE match_{name} (_row BIGINT, same BOOLEAN, kept_dump_id VARCHAR)")
    if not staged.passed:
        return LakeMatch()
    where = f"store_id = {literal(store_id)} AND dump_id <> {literal(dump_id)}"
    looked_up = None
    if windowed:
        first = table.key[0]
        looked_up = con.sql(f"SELECT min(p_{first}), max(p_{first}) FROM keys_{name}").fetchall()[0]
        where += f" AND {first} >= {literal(looked_up[0])} AND {first} <= {literal(looked_up[1])}"
    lake = tables.query(f"SELECT {', '.join(table.column_names)}, dump_id FROM t WHERE {where}",
                        t=layout.curated(name))
    if lake is None:
        return LakeMatch(looked_up=looked_up)
    limit = _memory_limit_bytes(con)
    if limit:  # half the engine's memory: the store's history spills to disk instead
        con.execute(f"SET memory_limit = '{limit // 2}B'")
    try:
        con.register("lake_stream", lake)
        con.execute(f"CREATE OR REPLACE TEMP TABLE lake_{name} AS SELECT * FROM lake_stream")
        con.unregister("lake_stream")
        lake_hash = "hash(" + ", ".join(f"e.{c}" for c in table.column_names) + ")"
        con.execute(f"INSERT INTO match_{name} SELECT k._row, bool_and(k._vh = {lake_hash}), min(e.dump_id) "
                    f"FROM keys_{name} k JOIN lake_{name} e ON {on} "
                    f"WHERE k._row NOT IN (SELECT _row FROM dropped_{name}) GROUP BY k._row")
        con.execute(f"INSERT INTO dropped_{name} SELECT _row, 'changed_since_ingested' FROM match_{name} "
                    "WHERE NOT same")
        not_in_dump = 0 if windowed else con.sql(
            f"SELECT count(*) FROM lake_{name} e ANTI JOIN keys_{name} k ON {on}").fetchall()[0][0]
        con.execute(f"DROP TABLE lake_{name}")
        known = _row_set(con.sql(f"SELECT _row FROM match_{name}"), staged.rows)
        changed = _row_set(con.sql(f"SELECT _row FROM match_{name} WHERE NOT same"), staged.rows)
    finally:
        if limit:
            con.execute(f"SET memory_limit = '{limit}B'")
    return LakeMatch(known if known.count else None, changed if changed.count else None, int(not_in_dump),
                     looked_up)


def _count_changed(fin: Finishing, match: LakeMatch) -> None:
    """The counts once the lake was compared: changed lines are rejections of their own rule."""
    counts = fin.counts
    changed = match.changed.count if match.changed is not None else 0
    counts.update(changed_since_ingested=changed, not_in_dump=match.not_in_dump)
    if match.looked_up is not None:
        counts["lake_lookup"] = {"key_from": match.looked_up[0], "key_to": match.looked_up[1]}
    if changed:
        counts["by_rule"] = dict(sorted({**counts["by_rule"], "changed_since_ingested": changed}.items()))
        counts["rejected"] += changed
        counts["curated"] -= changed


def _new_lines(con, tables: DeltaTables, staged: StagedTable, fin: Finishing, *,  # noqa: ANN001
               store_id: str, dump_id: str, snapshot_at: datetime, windowed: bool = False) -> Iterator[pa.Table]:
    """A fact table's curated rows, day by day: the lines that passed, without duplicates and without the
    lines whose key the lake already has (a changed one is set aside). Adds ``written``, ``already_in_lake``,
    ``changed_since_ingested``, ``not_in_dump`` and ``days_written`` to the counts as the rows are taken."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = staged.table
    match = _match_lake(con, tables, staged, store_id=store_id, dump_id=dump_id, windowed=windowed)
    _count_changed(fin, match)
    fin.counts.update(written=0, already_in_lake=0, days_written={})
    days_written: dict[str, int] = fin.counts["days_written"]
    for day in sorted(staged.spool.keys()) if staged.passed else ():
        rows = _leave_out(fin, staged.spool.read(day))
        if match.changed is not None and (changed := match.changed.mask(rows.column("_row"))) is not None:
            fin.set_aside(rows.filter(changed))  # for the rejected rows, with their values as parsed
        if match.known is not None and (known := match.known.mask(rows.column("_row"))) is not None:
            rows = rows.filter(pc.invert(known))
        if not rows.num_rows:
            continue
        out = _curated_columns(table, rows, store_id=store_id, dump_id=dump_id, snapshot_at=snapshot_at)
        out = out.append_column("date", pa.repeat(date_scalar(date.fromisoformat(day)), out.num_rows))
        out = out.append_column("month", pa.repeat(string_scalar(day[:7]), out.num_rows))
        days_written[day] = out.num_rows
        fin.counts["written"] += out.num_rows
        yield out
    fin.counts["already_in_lake"] = fin.counts["curated"] - fin.counts["written"]


FACT_PARTITIONS = ("store_id", "month")  # see docs/lake.md: a store's month makes files of useful size
SNAPSHOT_PARTITIONS = ("store_id",)  # a dump's snapshot is small: compaction merges a store's dumps


def _commit(tables: DeltaTables, path: str, parts: Iterable[pa.Table], *, partition_by: Sequence[str],
            store_id: str, dump_id: str, held, versions: dict[str, int], scratch: Path,  # noqa: ANN001
            plain: Sequence[str] = ()) -> None:
    """Append ``parts`` (each the rows of one partition) to the Delta table at ``path`` in one commit carrying
    the dump id (an application transaction and commit metadata); nothing when there are no rows. An earlier
    attempt of this dump that committed already is found by its transaction: its version is recorded and
    nothing is written again (the parts are still taken: the counts come from them)."""
    table = tables.open(path)
    if tables.committed(table, dump_id):
        found = tables.find_commit(table, "dump_id", dump_id)
        if found is not None:
            versions[path] = int(found["version"])
        for _ in parts:
            pass
        return
    version = tables.append_parts(path, _checked(parts, held), partition_by=partition_by, scratch=scratch,
                                  app_id=dump_id, metadata={"dump_id": dump_id, "store_id": store_id,
                                                            "pipeline_version": __version__}, plain=plain)
    if version is not None:
        versions[path] = version


def _checked(parts: Iterable[pa.Table], held) -> Iterator[pa.Table]:  # noqa: ANN001 - a HeldLock
    """``parts``, then a check that the store's lock is still ours (a Blob lease renewed in time) before the
    commit: nobody else wrote meanwhile."""
    yield from parts
    held.check()


def _commit_tables(con, tables: DeltaTables, staged: dict[str, StagedTable],  # noqa: ANN001
                   finishing: dict[str, Finishing], held, *, store_id: str, dump_id: str,  # noqa: ANN001
                   snapshot_at: datetime, say: ProgressFn, scratch: Path, windowed: dict[str, str]) -> dict[str, int]:
    """Commit each table's curated rows, then its rejected rows, one Delta commit each; returns the version
    of each commit (``{"curated/sales": 7, ...}``). Called holding the store's lock."""
    versions: dict[str, int] = {}
    for name, st in staged.items():
        fin = finishing[name]
        if st.table.fact:
            curated = _new_lines(con, tables, st, fin, store_id=store_id, dump_id=dump_id, snapshot_at=snapshot_at,
                                 windowed=name in windowed)
        else:
            snapshot = _snapshot_rows(st, fin, store_id=store_id, dump_id=dump_id, snapshot_at=snapshot_at)
            curated = [snapshot] if snapshot is not None else []
        common = {"store_id": store_id, "dump_id": dump_id, "held": held, "versions": versions, "scratch": scratch}
        _commit(tables, layout.curated(name), curated, plain=(st.table.key[0], st.table.event_time or ""),
                partition_by=FACT_PARTITIONS if st.table.fact else SNAPSHOT_PARTITIONS, **common)
        rejected = _rejected_rows(con, tables, st, fin, store_id=store_id, dump_id=dump_id,
                                  window=windowed.get(name))
        _commit(tables, layout.rejected(name), rejected, partition_by=SNAPSHOT_PARTITIONS, **common)
        counts = fin.counts
        say(f"{name}: {counts['curated']:,} curated, {counts['rejected']:,} rejected"
            + (f", {counts['written']:,} new to the lake" if st.table.fact else ""))
    return versions


def _quarantine(lake: Lake, telemetry: Telemetry, *, store_id: str, key: str, source: Path,
                source_name: str, exc: DumpRejected, started: float, received_sha: str) -> IngestResult:
    folder = layout.quarantine(store_id, key)
    reason = {
        "store_id": store_id, "reason_code": exc.code, "reason": exc.detail,
        "reason_description": QUARANTINE_REASONS.get(exc.code, exc.code),
        "source_name": source_name, "received_sha256": received_sha,
        "quarantined_at": utc_iso(datetime.now(UTC)), "pipeline_version": __version__,
    }
    lake.put_file(f"{folder}/{Path(source_name).name or 'dump'}", source)
    lake.put_bytes(f"{folder}/reason.json", json.dumps(reason, indent=2).encode())
    telemetry.event("DumpQuarantined", storeId=store_id, reasonCode=exc.code, reason=exc.detail,
                    source=source_name)
    telemetry.metric("dumps_quarantined", 1, storeId=store_id, reasonCode=exc.code)
    return IngestResult("quarantined", store_id, key, {**reason, "quarantine_path": folder,
                                                       "duration_s": round(time.monotonic() - started, 3)},
                        exc.code, exc.detail)


def load_store_mapping(lake: Lake, store_id: str) -> Mapping:
    """The mapping kept in the lake for a store (``config/mappings/store=<id>.toml``), else the default."""
    path = f"config/mappings/store={validate_store_id(store_id)}.toml"
    try:
        return parse_mapping(lake.get_bytes(path), source=path)
    except FileNotFoundError:
        return DEFAULT_MAPPING


def ingest_dump(
    source: Path,
    store_id: str,
    *,
    lake: Lake,
    telemetry: Telemetry,
    limits: IngestLimits | None = None,
    mapping: Mapping | None = None,
    source_name: str | None = None,
    snapshot_at: datetime | None = None,
    landed_at: datetime | None = None,
    scratch: Path | None = None,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Ingest the dump at ``source`` (SQLite, or gzip of it) for ``store_id``.

    ``snapshot_at`` is the agent's recorded snapshot time (blob metadata); without it the latest
    ``stock.counted_at`` is used, failing that ``landed_at`` (default: now). Raises
    :class:`~shared.core.ids.InvalidStoreId` before touching the lake for an unsafe store id, and
    :class:`~shared.core.mapping.MappingError` for a broken mapping file, and :class:`DatabaseInUse` for a
    local database with changes still in its ``-wal`` file; every problem with the dump itself is a
    quarantine, returned as a result.
    """
    import duckdb

    started = time.monotonic()
    limits = limits or IngestLimits()
    source = Path(source)
    source_name = source_name or source.name
    validate_store_id(store_id)
    _check_not_in_use(source)
    if mapping is None:
        mapping = load_store_mapping(lake, store_id)
    landed_at = landed_at or datetime.now(UTC)
    # A sale or receipt dated after this is a till clock set ahead (future_timestamp): the events' tolerance.
    not_after = datetime.now(UTC) + FUTURE_TOLERANCE
    say = progress or (lambda _msg: None)

    with contextlib.ExitStack() as in_use:
        if scratch is not None:
            if source.resolve().parent.parent == Path(scratch).resolve():  # the blob trigger's download folder
                in_use.enter_context(scratch_in_use(source.parent))
            sweep_stale_scratch(scratch)
        tmp = in_use.enter_context(scratch_folder("ingest-", scratch))
        early = None
        if not is_gzip(source) and source.stat().st_size <= limits.max_dump_bytes:
            # A plain SQLite file: the reader child starts now and runs quick_check while this process
            # hashes the file (stopped again below if the dump turns out to be ingested already).
            early = DumpReader(source, limits.read).start()
            in_use.callback(early.__exit__, None, None, None)
        received_sha = sha256_file(source)  # once: the dump id of a plain file, the quarantine key
        try:
            db, sha = prepare_source(source, received_sha, tmp, limits.max_dump_bytes)
        except DumpRejected as exc:
            return _quarantine(lake, telemetry, store_id=store_id, key=received_sha[:24], source=source,
                               source_name=source_name, exc=exc, started=started, received_sha=received_sha)
        dump_id = dump_id_from_sha256(sha)
        manifest_path = layout.manifest(store_id, dump_id)
        if lake.head(manifest_path) is not None:
            manifest = json.loads(lake.get_bytes(manifest_path))
            say(f"dump {dump_id} of store {store_id} was already ingested; nothing to do")
            telemetry.event("DumpAlreadyIngested", storeId=store_id, dumpId=dump_id)
            return IngestResult("already_ingested", store_id, dump_id, manifest)

        timings: dict[str, float] = {"hash": round(time.monotonic() - started, 3)}  # + decompress, sweep
        # Which lines of the fact tables to read (ingest_history); the window's history check starts now, in a
        # reader of its own, so that it runs while the window is read.
        plans = plan_reads(load_state(lake, store_id), [TABLES["sales"], TABLES["receipts"]],
                           snapshot_at=snapshot_at or landed_at, now=datetime.now(UTC),
                           full_check_days=limits.full_check_days)
        check = _history_check(db, limits.read, mapping, {n: p for n, p in plans.items() if p.incremental})
        if check is not None:
            in_use.callback(check.close)
        staged: dict[str, StagedTable] = {}
        tables: dict[str, dict] = {}
        work = tmp / "work"
        work.mkdir()
        stage_args = {"work": work, "say": say, "not_after": not_after, "naive_utc": is_utc(mapping.timezone)}
        # One DuckDB thread while the reader child streams (it has the other core), two afterwards.
        con = duckdb.connect(config={"memory_limit": limits.memory_limit, "threads": 1,
                                     "temp_directory": str(tmp / "spill"),
                                     "preserve_insertion_order": False})
        try:
            con.execute(f"SET TimeZone = '{mapping.timezone}'")
            t0 = time.monotonic()
            with early if early is not None and db == source else DumpReader(db, limits.read) as reader:
                timings["open"] = round(time.monotonic() - t0, 3)  # the child: start, quick_check, schema
                find = reader.info.find
                triggers = reader.info.triggers
                _read_tables(con, reader, _jobs(find, mapping, plans), staged, timings, **stage_args)
            t0 = time.monotonic()
            digests = check.result() if check is not None else {}
            timings["check_history"] = round(time.monotonic() - t0, 3)  # the wait for it, once the window is read
            for name in _history_changed(plans, digests):  # read it whole after all, with a new mark
                say(f"{name}: the history differs from what the lake recorded; reading the whole table")
                plans[name] = ReadPlan(name, window_mark(snapshot_at or landed_at), None,
                                       f"the history up to {plans[name].hwm} differs from the one recorded "
                                       f"on the last full read ({_differs(plans[name], digests.get(name))})")
                staged.pop(name).discard()
                with DumpReader(db, limits.read) as reader:
                    digests.update(_read_tables(con, reader, _jobs(find, mapping, plans, only=name, with_digest=True),
                                                staged, timings, **stage_args))
            # The digests of the tables read whole, while they are committed (the other core is idle then).
            full = {n: p for n, p in plans.items() if not p.incremental and n not in digests}
            if (full_check := _history_check(db, limits.read, mapping, full)) is not None:
                in_use.callback(full_check.close)
        except DumpRejected as exc:
            con.close()
            return _quarantine(lake, telemetry, store_id=store_id, key=dump_id, source=source,
                               source_name=source_name, exc=exc, started=started, received_sha=received_sha)
        except BaseException:
            con.close()  # an unexpected failure (disk full, ...) propagates: the trigger retries
            raise

        # The snapshot time T of handbook §5.
        if snapshot_at is not None:
            snap, snap_source = snapshot_at.astimezone(UTC), "agent"
        else:
            counted = staged["stock"].latest_counted_at
            if counted is not None:
                snap, snap_source = counted.astimezone(UTC), "stock.counted_at"
            else:
                snap, snap_source = landed_at.astimezone(UTC), "landed_at"
        snap_iso = utc_iso(snap)

        t0 = time.monotonic()
        con.execute("SET threads = 2")
        try:
            finishing: dict[str, Finishing] = {}
            for name, st in staged.items():
                finishing[name] = _duplicates(con, st)
                tables[name] = finishing[name].counts
            timings["duplicates"] = round(time.monotonic() - t0, 3)

            # The store lock, from reading what the lake holds to the manifest: two dumps of one store
            # ingested at once (parallel triggers, several instances) would otherwise each read the lake
            # without the other's lines, and both append them (appends never conflict in Delta Lake).
            t0 = time.monotonic()
            try:
                with lake.lock(f"store={store_id}") as held:
                    timings["lock_wait"] = round(time.monotonic() - t0, 3)
                    if lake.head(manifest_path) is not None:  # the same dump, ingested meanwhile elsewhere
                        say(f"dump {dump_id} of store {store_id} was ingested meanwhile; nothing to do")
                        telemetry.event("DumpAlreadyIngested", storeId=store_id, dumpId=dump_id)
                        return IngestResult("already_ingested", store_id, dump_id,
                                            json.loads(lake.get_bytes(manifest_path)))
                    t0 = time.monotonic()
                    versions = _commit_tables(con, DeltaTables(lake), staged, finishing, held, store_id=store_id,
                                              dump_id=dump_id, snapshot_at=snap, say=say, scratch=work,
                                              windowed={n: p.hwm for n, p in plans.items() if p.incremental})
                    timings["commit"] = round(time.monotonic() - t0, 3)
                    timings["total"] = round(time.monotonic() - started, 3)
                    manifest = {
                        "schema_version": SCHEMA_VERSION,
                        "pipeline_version": __version__,
                        "store_id": store_id,
                        "dump_id": dump_id,
                        "sha256": sha,
                        "received_sha256": received_sha,
                        "source_name": source_name,
                        "snapshot_at": snap_iso,
                        "snapshot_source": snap_source,
                        "ingested_at": utc_iso(datetime.now(UTC)),
                        "mapping": mapping.source,
                        "timezone": mapping.timezone,
                        "tables": tables,
                        "warnings": ([f"the dump defines {len(triggers)} trigger(s) ({', '.join(triggers[:5])}); "
                                      "they were never run (the dump is opened read-only)"] if triggers else []),
                        "timings_s": timings,
                        "delta_versions": versions,
                    }
                    if full_check is not None:
                        digests.update(full_check.result())
                    for name, plan in plans.items():
                        if name in tables:
                            tables[name]["history"] = _history_note(plan, digests.get(name))
                    held.check()
                    lake.put_bytes(manifest_path, json.dumps(manifest, indent=2).encode())
                    _record_history(lake, store_id, plans, digests, dump_id=dump_id)
            except LockTimeout as exc:
                raise LockTimeout(f"dump {dump_id} of store {store_id} waited for another ingest of the same "
                                  f"store to finish, in vain: {exc}") from exc
        finally:
            con.close()

    rows_in = sum(t["input"] for t in tables.values())
    rejected = sum(t["rejected"] for t in tables.values())
    telemetry.event("DumpIngested", storeId=store_id, dumpId=dump_id, rowsIn=rows_in, rowsRejected=rejected,
                    durationS=timings["total"], snapshotAt=snap_iso)
    for name, t in tables.items():
        telemetry.metric("rows_ingested", t["curated"], storeId=store_id, table=name)
        telemetry.metric("rows_rejected", t["rejected"], storeId=store_id, table=name)
    return IngestResult("ingested", store_id, dump_id, manifest)


def ingest_landed_dump(
    lake_path: str,
    local: Path,
    metadata: dict[str, str] | None,
    *,
    lake: Lake,
    telemetry: Telemetry,
    limits: IngestLimits | None = None,
    scratch: Path | None = None,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Ingest a dump that landed in ``raw/`` (what the blob trigger does), already copied to ``local``.

    The store id comes from the path (``raw/store=<id>/date=<d>/<file>``) and the snapshot time from the
    agent's metadata. A path with an unsafe store id is quarantined under ``quarantine/store=_invalid/``.
    """
    metadata = metadata or {}
    started = time.monotonic()
    try:
        store_id, _day, name = layout.parse_raw_dump_path(lake_path)
    except ValueError as exc:  # InvalidStoreId, or a path of another shape (a date that does not exist)
        sha = sha256_file(local)
        found = re.match(r"^(?:lake/)?raw/store=(.*?)/date=", lake_path)
        if isinstance(exc, InvalidStoreId) or (found and not STORE_ID_PATTERN.fullmatch(found[1])):
            code, store = "invalid_store_id", "_invalid"
        else:  # a sound store id and another fault (a date that does not exist): filed under that store
            code, store = "bad_path", found[1] if found else "_invalid"
        return _quarantine(lake, telemetry, store_id=store, key=sha[:24], source=local,
                           source_name=lake_path.rsplit("/", 1)[-1], started=started, received_sha=sha,
                           exc=DumpRejected(code, str(exc)))
    # The agent records the store it uploads for (agents older than that send no store_id: accepted). A dump
    # that names another store than its folder would become that folder's stock baseline: refused, filed under
    # the folder's store (whose identity wrote it; docs/security.md). Metadata names are case-insensitive in Azure.
    claimed = next((v for k, v in metadata.items() if k.lower() == "store_id"), None)
    if claimed is not None and claimed != store_id:
        sha = sha256_file(local)
        return _quarantine(lake, telemetry, store_id=store_id, key=sha[:24], source=local, source_name=name,
                           started=started, received_sha=sha, exc=DumpRejected(
                               "store_mismatch", f"the dump's metadata says store_id={claimed[:80]!r} but it was "
                               f"uploaded under raw/store={store_id}/: a store agent configured with another store's "
                               "id (check its --store), or a store writing another store's data"))
    snapshot_at = None
    if metadata.get("snapshot_at"):
        try:
            snapshot_at = parse_utc(metadata["snapshot_at"])
        except ValueError:
            snapshot_at = None  # falls back to stock.counted_at; the manifest says which was used
    return ingest_dump(local, store_id, lake=lake, telemetry=telemetry, limits=limits, source_name=name,
                       snapshot_at=snapshot_at, scratch=scratch, progress=progress)


__all__ = ["QUARANTINE_REASONS", "DatabaseInUse", "IngestLimits", "IngestResult", "InvalidStoreId", "MappingError",
           "ingest_dump", "ingest_landed_dump", "load_store_mapping", "prepare_source"]
