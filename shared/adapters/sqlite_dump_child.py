"""The dump reader's child process (see ``sqlite_dump``). Run as ``python -m shared.adapters.sqlite_dump_child``.

argv: the dump's path and the limits as JSON. stdin: one JSON line with the jobs. stdout: frames.
Errors are reported as frames ``{"error": code, "detail": text}``, then the process exits.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

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


def stream_table(adbc_con, job: dict, limits: dict, out) -> None:  # noqa: ANN001
    """Stream one table as Arrow IPC: a frame ``{"table", "stream": true}`` and a stream, then either a final
    frame (``ok`` or ``error``) or, when the typed read met a value of another kind, a frame with
    ``"more": true`` and a second stream, all text, with the rest of the rows (the same query, ``OFFSET``
    the rows already sent: an immutable file gives the same rows in the same order)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = job["table"]
    cols = job["want"]
    numeric = set(job.get("numeric", ()))
    max_cell = int(limits["max_cell_bytes"])
    max_rows = int(limits["max_rows_per_table"])
    rows = 0
    error = None
    typed = bool(numeric & {c for c, src in zip(cols, job["source_columns"], strict=True) if src})
    first = True
    while True:
        select = _select(job, typed=typed)
        # The newline ends a -- comment the mapping query may end with (it would swallow the parenthesis).
        sql = f"SELECT {select} FROM ({job['sql']}\n)" + (f" LIMIT -1 OFFSET {rows}" if rows else "")
        write_frame(out, {"table": table, "stream": True, **({} if first else {"more": True})})
        first = False
        writer = schema = stmt = None
        retry_as_text = False
        try:
            stmt, reader = adbc_query(adbc_con, sql, limits["batch_rows"])
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                if rows + batch.num_rows > max_rows:
                    error = ("too_many_rows", f"table {table} has more than {max_rows} rows "
                             "(INGEST_MAX_ROWS_PER_TABLE)")
                    break
                arrays = []
                for name, arr in zip(cols, batch.columns, strict=True):
                    if typed and name in numeric and not pa.types.is_null(arr.type):
                        if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
                            # Numbers mixed with text in the first batch: ADBC formats the numbers its own
                            # way (1.000000e+00), not SQLite's. Read the table as text from here.
                            raise _TypeMismatch(f"{table}.{name} holds numbers and text")
                        arrays.append(arr)  # a number, as SQLite stored it
                        continue
                    arr, error = _text_column(arr, table, name, max_cell)
                    if error:
                        break
                    arrays.append(arr)
                if error:
                    break
                out_batch = pa.RecordBatch.from_arrays(arrays, names=cols)
                if writer is None:
                    schema = out_batch.schema
                    writer = ipc.new_stream(out, schema)
                elif out_batch.schema != schema:
                    out_batch = out_batch.cast(schema)
                writer.write_batch(out_batch)
                rows += batch.num_rows
        except Exception as exc:  # SQLite errors during the read (corruption quick_check missed, limits)
            if typed and _is_type_mismatch(exc):
                retry_as_text = True
            else:
                error = ("reader_failed", f"reading table {table} failed: {exc}")
        finally:
            if stmt is not None:
                stmt.close()
        if writer is None:  # no batch at all: an empty stream
            writer = ipc.new_stream(out, pa.schema([(c, pa.string()) for c in cols]))
        writer.close()
        if retry_as_text and not error:
            typed = False
            continue
        break
    if error:
        write_frame(out, {"error": error[0], "detail": error[1]})
        raise SystemExit(0)
    write_frame(out, {"ok": True, "rows": rows})


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
        write_frame(out, describe(con))
        line = sys.stdin.readline()
        if not line:
            return 0
        jobs = json.loads(line)
        for job in jobs:  # validate every job before streaming anything
            job["source_columns"] = resolve_columns(job, check_query(con, job["table"], job["sql"]))
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
                stream_table(adbc_con, job, limits, out)
    except Fail as f:
        write_frame(out, {"error": f.code, "detail": f.detail})
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
