"""The dump reader's child process (see ``sqlite_dump``). Run as ``python -m shared.adapters.sqlite_dump_child``.

argv: the dump's path and the limits as JSON. stdin: one JSON line with the jobs. stdout: frames.
Errors are reported as frames ``{"error": code, "detail": text}``, then the process exits.

Every job is bounded by the file itself before any row is streamed (:func:`check_bounded`, and
docs/hostile-dumps.md): a read of stored rows can yield no more rows than the file can store, and costs SQLite
no more than its compiled program's length in steps per such row. A job that reads one stored table in one
pass is within both by construction; any other (a view, a join, a subquery, a CTE) is first run under a
step budget of that size, so a recursive view or a cross join is refused in a fraction of a second instead of
at the parent's deadline.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.sqlite_dump import write_frame

# Authorizer action codes allowed while compiling statements: reading and selecting, nothing else.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


class Fail(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_checked(path: str, limits: dict) -> sqlite3.Connection:
    with open(path, "rb") as f:
        header = f.read(16)
    if header != b"SQLite format 3\x00":
        raise Fail("not_sqlite", "the file is not a SQLite 3 database (its header is wrong); "
                   "upload the .sqlite file the store agent produces")
    uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(int(limits["max_cell_bytes"]), 1_000_000))
    for pragma in ("query_only=ON", "trusted_schema=OFF", "mmap_size=0", "cell_size_check=ON",
                   "temp_store=MEMORY"):
        con.execute(f"PRAGMA {pragma}")
    if not limits.get("quick_check", True):  # a second reader of a file the first one checks (ingest_history)
        return con
    try:
        result = [r[0] for r in con.execute("PRAGMA quick_check(20)")]
    except sqlite3.DatabaseError as exc:
        raise Fail("corrupt", f"SQLite cannot read the file: {exc}") from None
    if result != ["ok"]:
        raise Fail("corrupt", "PRAGMA quick_check found damage: " + "; ".join(result)[:500])
    return con


# --- bounds: what a read of stored rows can yield and cost, from the file's size alone -----------------------

MIN_ROW_BYTES = 5
"""Fewest bytes of the file one stored row takes (SQLite file format, https://www.sqlite.org/fileformat2.html,
§1.6 "B-tree Pages" and §2.1 "Record Format"). A row is one cell of a b-tree page, and the page's cell pointer
array holds a 2-byte offset to each cell. A table leaf cell is a payload-size varint, a rowid varint and the
record, whose header is a size varint and "one or more additional varints, one per column": at least
1 + 1 + 2 bytes. A WITHOUT ROWID table's row is an index cell: a payload-size varint and the record, at least
1 + 2 bytes (and 4 more for a child page number on an interior page). So 5 bytes a row at the least, and a file
of B bytes stores at most B / 5 rows, whatever its tables (the file header, page headers, interior pages and
SQLite's padding of a cell to 4 bytes only make it fewer). Cells sharing bytes, the one way round this, are
damage that ``quick_check`` reports ("Multiple uses for byte ...")."""

_PROGRESS_EVERY = 1000  # VM steps between two calls of the progress handler that counts them


class OverBudget(Exception):
    """A statement used its whole step budget."""


@dataclass(frozen=True)
class FileBounds:
    """What reading the rows stored in a file of ``file_bytes`` bytes can at most yield and cost."""

    file_bytes: int

    @property
    def rows(self) -> int:
        """Rows the file can store at most: every row it yields comes from one it stores."""
        return self.file_bytes // MIN_ROW_BYTES

    def steps(self, program_length: int) -> int:
        """SQLite VM steps a read of stored rows takes at most: each instruction of its program runs at most
        once per pass of the loop it is in, and each loop passes at most once per stored row (a scan, a
        lookup by key, a sort, an automatic index, one side of a many-to-one join), plus once outside any loop."""
        return program_length * (self.rows + 1)


def file_bounds(con: sqlite3.Connection) -> FileBounds:
    """The bounds of the file ``con`` reads: its size as SQLite sees it, page count × page size."""
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    page_count = con.execute("PRAGMA page_count").fetchone()[0]
    return FileBounds(page_size * page_count)


def reads_one_stored_table(con: sqlite3.Connection, sql: str) -> bool:
    """True when SQLite's plan for ``sql`` is one pass over one stored table: a single ``SCAN`` or ``SEARCH``
    of a b-tree (the table or one of its indexes), or a single ``MULTI-INDEX OR`` of such searches, and nothing
    else: no subquery, co-routine, CTE, temporary b-tree, virtual table, constant row or second loop. Its work
    is then linear in the rows the table stores, by construction: it needs no trial run."""
    plan = con.execute("EXPLAIN QUERY PLAN " + sql).fetchall()  # rows: (id, parent, notused, detail)
    parent_of = {node: parent for node, parent, _, _ in plan}
    multi_or = {node for node, _, _, detail in plan if detail == "MULTI-INDEX OR"}

    def in_multi_or(node: int) -> bool:
        seen = set()
        while node in parent_of and node not in seen:
            seen.add(node)
            node = parent_of[node]
            if node in multi_or:
                return True
        return False

    loops = 0
    for node, _, _, detail in plan:
        one_btree = detail.startswith(("SCAN ", "SEARCH ")) and "VIRTUAL TABLE" not in detail \
            and detail != "SCAN CONSTANT ROW"
        if detail == "MULTI-INDEX OR" and not in_multi_or(node):
            loops += 1
        elif in_multi_or(node) and (one_btree or detail.startswith("INDEX ")):
            continue  # one of the OR's index searches: part of its single pass
        elif one_btree:
            loops += 1
        else:
            return False
    return loops == 1


@contextlib.contextmanager
def step_budget(con: sqlite3.Connection, budget: int) -> Iterator[None]:
    """Interrupt the statements run in the block once they have taken more than ``budget`` VM steps; the
    statement's error is turned into :class:`OverBudget`."""
    used = 0

    def tick() -> int:
        nonlocal used
        used += _PROGRESS_EVERY
        return 1 if used > budget else 0

    con.set_progress_handler(tick, _PROGRESS_EVERY)
    try:
        yield
    except sqlite3.OperationalError:
        if used > budget:
            raise OverBudget() from None
        raise
    finally:
        con.set_progress_handler(None, 0)


def check_bounded(con: sqlite3.Connection, job: dict, bounds: FileBounds) -> None:
    """Refuse (``unbounded_query``) a job that would yield more rows than the file can store, or do more work
    than reading them can take: a recursive view, a cross join, a sort of an endless source. A job reading one
    stored table is within both by construction; any other is run once here, in full, under a step budget of
    its program's length per row the file can store, the values computed and counted, not sent."""
    table = job["table"]
    sql = _stream_sql(job, typed=False)
    with contextlib.suppress(sqlite3.DatabaseError):  # a plan SQLite cannot show: run it, to be sure
        if reads_one_stored_table(con, sql):
            return
    # The rows counted, and each value computed and counted: the work of every column (a subquery in one
    # included) is done as the real read would do it.
    counted = f"SELECT count(*), {', '.join(f'count({quote(c)})' for c in job['want'])} FROM ({sql})"
    try:
        program = len(con.execute("EXPLAIN " + counted).fetchall())
        budget = bounds.steps(program)
        with step_budget(con, budget):
            rows = con.execute(counted).fetchone()[0]
    except OverBudget:
        raise Fail("unbounded_query", f"the query for table {table} did not finish within {budget:,} SQLite steps: "
                   f"reading every row a {bounds.file_bytes:,}-byte file can store ({bounds.rows:,} at most) takes "
                   f"at most {program} steps a row, the length of its program. It never ends, or its work grows "
                   "faster than the data (a recursive view, a cross join, a subquery run for every row). Fix the "
                   "store's view, or the mapping's query (join on a key); nothing of the dump was ingested") from None
    except sqlite3.DatabaseError as exc:
        raise Fail("bad_query", f"the query for table {table} cannot run on this dump: {exc}") from None
    if rows > bounds.rows:
        raise Fail("unbounded_query", _too_many_rows(table, rows, bounds))


def _too_many_rows(table: str, rows: int, bounds: FileBounds) -> str:
    return (f"the query for table {table} yields {rows:,} rows or more, more than the {bounds.rows:,} a "
            f"{bounds.file_bytes:,}-byte SQLite file can store (a stored row takes at least {MIN_ROW_BYTES} "
            "bytes): a recursive view or a cross join? Fix the store's view, or the mapping's query; nothing "
            "of the dump was ingested")


def deny_writes(action: int, *args: object) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def describe(con: sqlite3.Connection) -> dict:
    rows = con.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table','view','trigger')").fetchall()
    con.set_authorizer(deny_writes)
    tables: dict[str, dict] = {}
    triggers = []
    for kind, name in rows:
        if kind == "trigger":
            triggers.append(name)
            continue
        if name.startswith("sqlite_"):
            continue
        try:
            cur = con.execute(f"SELECT * FROM {quote(name)} LIMIT 0")
            cols = [d[0] for d in cur.description]
            error = None
        except sqlite3.DatabaseError as exc:  # e.g. a view calling a function trusted_schema forbids
            cols, error = [], str(exc)
        tables[name.lower()] = {"name": name, "type": kind, "columns": cols, "error": error}
    return {"tables": tables, "triggers": triggers, "sqlite_version": sqlite3.sqlite_version}


def check_query(con: sqlite3.Connection, table: str, sql: str) -> list[str]:
    """Compile the job's query under the authorizer (reads only) and return its column names."""
    deadline = time.monotonic() + 10
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        cur = con.execute(f"SELECT * FROM ({sql}\n) LIMIT 0")  # \n: the query may end in a -- comment
    except sqlite3.DatabaseError as exc:
        raise Fail("unsafe_query" if "not authorized" in str(exc) else "bad_query",
                   f"the query for table {table} cannot run on this dump: {exc}") from None
    finally:
        con.set_progress_handler(None, 0)
    return [d[0] for d in cur.description]


def resolve_columns(job: dict, found: list[str]) -> list[str | None]:
    """For each wanted (canonical) column, the query's column that provides it (case-insensitive)."""
    by_lower = {c.lower(): c for c in found}
    missing = [c for c in job["required"] if c.lower() not in by_lower]
    if missing:
        raise Fail("missing_column", f"table {job['table']} lacks required column(s) {', '.join(missing)} "
                   f"(it has: {', '.join(found) or 'none'}); rename them, or map them with a mapping file")
    return [by_lower.get(c.lower()) for c in job["want"]]


def adbc_query(adbc_con, sql: str, batch_rows: int | None = None):  # noqa: ANN001, ANN201
    """Run ``sql`` through ADBC's low-level API; return (statement, pyarrow.RecordBatchReader).

    The DB-API wrapper (adbc_driver_sqlite.dbapi) imports pyarrow.dataset and pandas: ~55 MB and 0.25 s
    this process does not need.
    """
    import adbc_driver_manager
    import pyarrow as pa

    stmt = adbc_driver_manager.AdbcStatement(adbc_con)
    if batch_rows:
        stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(int(batch_rows))})
    stmt.set_sql_query(sql)
    stream, _ = stmt.execute_query()
    return stmt, pa.RecordBatchReader._import_from_c(stream.address)


# NULL in a text column is read as this one-character text and turned back into NULL: ADBC would type a
# column whose first batch is all NULL as int64 and stop at the first text value after it.
_NULL = "\x00"


def _select(job: dict, *, typed: bool) -> str:
    """The job's columns: text as text; with ``typed``, the int/decimal columns (``job["numeric"]``) as the
    numbers SQLite stored.

    Reading a number as a number costs SQLite and the row stage a third of what turning it into text and
    parsing it back does. ADBC fixes each column's type from the first batch (int64 if every value there
    is an integer or NULL, float64 if some are reals, text if some are text); a later value of another
    kind stops the stream with a type mismatch, and the rest of the table is read as text
    (:func:`stream_table`). Text is every value as text (a SQLite column may hold an integer in one row and
    text in the next); a blob becomes its bytes, and invalid UTF-8 is replaced, never passed on.
    """
    numeric = set(job.get("numeric", ())) if typed else set()
    return ", ".join(f"NULL AS {quote(c)}" if not src else
                     f"{quote(src)} AS {quote(c)}" if c in numeric else
                     f"ifnull(CAST({quote(src)} AS TEXT), char(0)) AS {quote(c)}"
                     for c, src in zip(job["want"], job["source_columns"], strict=True))


def _stream_sql(job: dict, *, typed: bool, offset: int = 0) -> str:
    """The statement that streams a job's rows (from row ``offset`` on)."""
    # The newline ends a -- comment the job's query may end with (it would swallow the parenthesis).
    return (f"SELECT {_select(job, typed=typed)} FROM ({job['sql']}\n)"
            + (f" LIMIT -1 OFFSET {offset}" if offset else ""))


def _text_column(arr, table: str, name: str, max_cell: int):  # noqa: ANN001
    """A column read as text, checked: (array, None) or (None, error). Blobs and invalid UTF-8 are turned
    into valid text (bad bytes replaced); the NULL marker back into NULL."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(arr.type) or pa.types.is_binary(arr.type)):
        arr = pc.cast(arr, pa.string())  # an all-NULL column (NULL AS c) comes typed null
    lengths = pc.min_max(pc.binary_length(arr)).as_py()
    if (lengths["max"] or 0) > max_cell:
        return None, ("cell_too_large", f"a value in {table}.{name} is {lengths['max']} bytes, above "
                      f"the limit of {max_cell} (INGEST_MAX_CELL_BYTES)")
    try:
        if pa.types.is_binary(arr.type):
            arr = arr.cast(pa.string())  # raises for invalid UTF-8
        arr.validate(full=True)
    except pa.ArrowInvalid:  # invalid UTF-8 stored as TEXT or a blob: keep it, replacing bad bytes
        from shared.core.arrow_values import string_array

        arr = string_array([None if v is None else v.decode("utf-8", "replace")
                            for v in arr.cast(pa.binary()).to_pylist()])
    if lengths["min"] is not None and lengths["min"] <= 1:  # cheap test first: the marker is one byte
        from shared.core.arrow_values import null_scalar, string_scalar

        marker = pc.equal(arr, string_scalar(_NULL))
        if pc.any(marker).as_py():
            arr = pc.if_else(marker, null_scalar(pa.string()), arr)
    return arr, None


class _TypeMismatch(Exception):
    """A numeric column of a typed read holds another kind of value."""


def _is_type_mismatch(exc: Exception) -> bool:
    return isinstance(exc, _TypeMismatch) or "Type mismatch" in str(exc)


def stream_table(adbc_con, job: dict, limits: dict, out, bounds: FileBounds | None = None) -> None:  # noqa: ANN001
    """Stream one table as Arrow IPC: a frame ``{"table", "stream": true}`` and a stream, then either a final
    frame (``ok`` or ``error``) or, when the typed read met a value of another kind, a frame with
    ``"more": true`` and a second stream, all text, with the rest of the rows (the same query, ``OFFSET``
    the rows already sent: an immutable file gives the same rows in the same order). With ``bounds``, more
    rows than the file can store stop the read (``unbounded_query``): :func:`check_bounded` has refused such a
    job already, but ADBC runs its own build of SQLite, and this check costs nothing."""
    import pyarrow.ipc  # noqa: F401 - the reading libraries, before any frame is written

    read = _TableRead(table=job["table"], cols=job["want"], numeric=set(job.get("numeric", ())),
                      max_cell=int(limits["max_cell_bytes"]), max_rows=int(limits["max_rows_per_table"]),
                      bounds=bounds)
    typed = bool(read.numeric & {c for c, src in zip(read.cols, job["source_columns"], strict=True) if src})
    first = True
    while True:
        sql = _stream_sql(job, typed=typed, offset=read.rows)
        write_frame(out, {"table": read.table, "stream": True, **({} if first else {"more": True})})
        first = False
        retry_as_text = _stream_pass(adbc_con, read, sql, typed=typed, limits=limits, out=out)
        if retry_as_text and not read.error:
            typed = False
            continue
        break
    if read.error:
        write_frame(out, {"error": read.error[0], "detail": read.error[1]})
        raise SystemExit(0)
    write_frame(out, {"ok": True, "rows": read.rows})


@dataclass
class _TableRead:
    """One table's read, over its one or two streams: the job's columns and limits, the rows sent so far, and
    the error that ended it, as ``(code, detail)``."""

    table: str
    cols: list[str]
    numeric: set[str]
    max_cell: int
    max_rows: int
    bounds: FileBounds | None
    rows: int = 0
    error: tuple[str, str] | None = None
    max_stored: int | None = field(init=False)  # the rows the file can store, with bounds

    def __post_init__(self) -> None:
        self.max_stored = self.bounds.rows if self.bounds is not None else None

    def over_limits(self, batch_rows: int) -> bool:
        """Whether ``batch_rows`` more rows pass a bound (then the error is set): the rows a table may have
        (INGEST_MAX_ROWS_PER_TABLE), or those the file can store."""
        rows = self.rows + batch_rows
        if rows > self.max_rows:
            self.error = ("too_many_rows", f"table {self.table} has more than {self.max_rows} rows "
                          "(INGEST_MAX_ROWS_PER_TABLE)")
            return True
        if self.bounds is not None and self.max_stored is not None and rows > self.max_stored:
            self.error = ("unbounded_query", _too_many_rows(self.table, rows, self.bounds))
            return True
        return False


def _stream_pass(adbc_con, read: _TableRead, sql: str, *, typed: bool, limits: dict, out) -> bool:  # noqa: ANN001
    """One stream of the read: the rows of ``sql`` as Arrow IPC (an empty stream when there are none), until
    its end or an error (``read.error``). True when the typed read met a value of another kind: the rest is
    to be read as text."""
    writer = _StreamWriter(out, read.cols)
    stmt = None
    retry_as_text = False
    try:
        stmt, reader = adbc_query(adbc_con, sql, limits["batch_rows"])
        for batch in reader:
            if batch.num_rows == 0:
                continue
            if read.over_limits(batch.num_rows):
                break
            arrays = _checked_arrays(read, batch, typed=typed)
            if arrays is None:
                break
            writer.write(arrays)
            read.rows += batch.num_rows
    except Exception as exc:  # SQLite errors during the read (corruption quick_check missed, limits)
        if typed and _is_type_mismatch(exc):
            retry_as_text = True
        else:
            read.error = ("reader_failed", f"reading table {read.table} failed: {exc}")
    finally:
        if stmt is not None:
            stmt.close()
    writer.close()
    return retry_as_text


def _checked_arrays(read: _TableRead, batch, *, typed: bool) -> list | None:  # noqa: ANN001
    """The batch's columns as sent: a number of a typed read as SQLite stored it, anything else as checked text
    (:func:`_text_column`). None when a value breaks a limit (``read.error`` set); raises
    :class:`_TypeMismatch` when a numeric column of a typed read holds text."""
    import pyarrow as pa

    arrays = []
    for name, arr in zip(read.cols, batch.columns, strict=True):
        if typed and name in read.numeric and not pa.types.is_null(arr.type):
            if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
                # Numbers mixed with text in the first batch: ADBC formats the numbers its own
                # way (1.000000e+00), not SQLite's. Read the table as text from here.
                raise _TypeMismatch(f"{read.table}.{name} holds numbers and text")
            arrays.append(arr)  # a number, as SQLite stored it
            continue
        arr, read.error = _text_column(arr, read.table, name, read.max_cell)
        if read.error:
            return None
        arrays.append(arr)
    return arrays


class _StreamWriter:
    """An Arrow IPC stream opened on the first batch, whose schema the later batches are cast to; closed as an
    empty stream of text columns when no batch came."""

    def __init__(self, out, cols: list[str]) -> None:  # noqa: ANN001
        self.out, self.cols = out, cols
        self.writer: Any = None  # a pyarrow RecordBatchStreamWriter, from the first batch on
        self.schema: Any = None  # the first batch's

    def write(self, arrays: list) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        out_batch = pa.RecordBatch.from_arrays(arrays, names=self.cols)
        if self.writer is None:
            self.schema = out_batch.schema
            self.writer = ipc.new_stream(self.out, self.schema)
        elif out_batch.schema != self.schema:
            out_batch = out_batch.cast(self.schema)
        self.writer.write_batch(out_batch)

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        if self.writer is None:  # no batch at all: an empty stream
            self.writer = ipc.new_stream(self.out, pa.schema([(c, pa.string()) for c in self.cols]))
        self.writer.close()


def _preload() -> None:
    """Import the reading libraries (~0.15 s) while ``quick_check`` runs (sqlite3 releases the GIL)."""
    try:
        import adbc_driver_manager  # noqa: F401
        import adbc_driver_sqlite  # noqa: F401
        import pyarrow.compute
        import pyarrow.ipc  # noqa: F401
    except ImportError:  # reported where the import is needed
        pass


def main() -> int:
    path, limits = sys.argv[1], json.loads(sys.argv[2])
    out = sys.stdout.buffer
    import threading

    threading.Thread(target=_preload, daemon=True).start()
    try:
        con = open_checked(path, limits)
        bounds = file_bounds(con)  # before describe() installs the authorizer, which refuses PRAGMAs
        write_frame(out, describe(con))
        line = sys.stdin.readline()
        if not line:
            return 0
        jobs = json.loads(line)
        for job in jobs:  # validate every job before streaming anything
            job["source_columns"] = resolve_columns(job, check_query(con, job["table"], job["sql"]))
            check_bounded(con, job, bounds)
        import adbc_driver_manager
        import adbc_driver_sqlite

        uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro&immutable=1"
        with adbc_driver_sqlite.connect(uri) as db, adbc_driver_manager.AdbcConnection(db) as adbc_con:
            # ADBC bundles its own SQLite: the same defences as the checking connection.
            for pragma in ("query_only=ON", "trusted_schema=OFF", "mmap_size=0", "cell_size_check=ON",
                           "temp_store=MEMORY"):
                stmt, reader = adbc_query(adbc_con, f"PRAGMA {pragma}")
                reader.read_all()
                stmt.close()
            for job in jobs:
                stream_table(adbc_con, job, limits, out, bounds)
    except Fail as f:
        write_frame(out, {"error": f.code, "detail": f.detail})
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
