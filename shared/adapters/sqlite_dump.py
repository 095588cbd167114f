"""Reading an untrusted SQLite dump: safely, fast, and with hard limits.

A dump comes from a store's machine and is treated as hostile input. It is read by a **child process**
(`python -m shared.adapters.sqlite_dump_child`) so that the limits are real:

- the parent kills the child when one table's read passes its deadline (SQLite reads through ADBC cannot
  be interrupted from Python). It is the last resort: before streaming, the child refuses a view or mapping
  query that yields more rows, or takes more SQLite steps, than reading every row the file can store would
  (``unbounded_query``; a recursive view or a cross join is stopped in well under a second; see
  ``sqlite_dump_child.check_bounded`` and docs/hostile-dumps.md);
- a crash or memory blow-up in SQLite's parsing of a crafted file takes down the child, not the host;
- reading (child, one core) overlaps with cleaning and writing (parent, the other core).

The child opens the file twice, both times read-only and immutable: once with Python's ``sqlite3`` for the
checks (``quick_check``, schema listing, an authorizer that allows only reads, ``trusted_schema=OFF``, no
ATTACH, a length limit), and once with ADBC's SQLite driver, which streams Arrow record batches several
times faster than a ``sqlite3`` cursor (docs/hostile-dumps.md). Text columns are read as text; the int and
decimal columns as the numbers SQLite stored, falling back to text for the rest of a table the moment a value
of another kind turns up (SQLite columns can mix types from row to row); the rules parse and check both.

The types the ingest sees (:class:`DumpRejected`, :class:`ReadLimits`, :class:`DumpInfo`) are the port's:
``shared/ports/dumps.py``.

Wire protocol on the child's stdout: frames of ``b"J" + u32 length + JSON``; a JSON frame with
``"stream": true`` is followed by one Arrow IPC stream; after a stream, a frame with ``"more": true`` and
another stream (the rest of the table, as text), or the table's final frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import shared
from shared.ports.dumps import DumpInfo, DumpRejected, ReadLimits
from shared.settings import PROCESS_DEFAULTS

if TYPE_CHECKING:
    import pyarrow as pa

_F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity


def write_frame(out: IO[bytes], obj: dict) -> None:
    data = json.dumps(obj).encode()
    out.write(b"J" + struct.pack("<I", len(data)) + data)
    out.flush()


def read_frame(inp: IO[bytes]) -> dict | None:
    head = inp.read(5)
    if not head:
        return None
    if len(head) != 5 or head[:1] != b"J":
        raise DumpRejected("reader_failed", "the dump reader sent a malformed frame")
    (length,) = struct.unpack("<I", head[1:])
    return json.loads(inp.read(length))


class DumpReader:
    """Context manager around the reader child. ``info`` after start; ``read(jobs)`` streams tables.
    Implements :class:`shared.ports.dumps.DumpSource`."""

    def __init__(self, path: Path, limits: ReadLimits | None = None) -> None:
        self.path = Path(path).absolute()  # the child runs in the package's folder
        self.limits = limits or ReadLimits()
        self.proc: subprocess.Popen | None = None
        self.info: DumpInfo | None = None
        self._killed_because: str | None = None
        self._stderr: list[bytes] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> DumpReader:
        """Start the child (it opens and checks the file meanwhile); ``with`` waits for it. Starting early
        lets the caller do other work (hash the file) while the child runs ``quick_check``."""
        if self.proc is not None:
            return self
        root = str(Path(shared.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        # The C allocator, not pyarrow's mimalloc: it hands freed batches back, so the child stays at one
        # batch in flight (mimalloc kept ~15 MB more here, measured at 5M lines). An explicit choice wins.
        for name, value in PROCESS_DEFAULTS.items():
            env.setdefault(name, value)
        cmd = [sys.executable, "-m", "shared.adapters.sqlite_dump_child", str(self.path),
               json.dumps(self.limits.__dict__)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=root,
                                     preexec_fn=(lambda: os.nice(self.limits.nice)) if self.limits.nice else None)
        with contextlib.suppress(OSError):  # a 1 MiB pipe lets the child read ahead of the parent
            fcntl.fcntl(self.proc.stdout.fileno(), _F_SETPIPE_SZ, 1 << 20)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self

    def __enter__(self) -> DumpReader:
        self.start()
        with self._deadline("opening the dump"):
            frame = self._guarded(lambda: read_frame(self.proc.stdout), "opening the dump")
        self._raise_if_error(frame, "opening the dump")
        self.info = DumpInfo(frame["tables"], frame.get("triggers", []), frame.get("sqlite_version", ""))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            if sum(map(len, self._stderr)) < 64_000:
                self._stderr.append(line)

    @contextlib.contextmanager
    def _deadline(self, what: str) -> Iterator[None]:
        """Kill the child if the block (e.g. reading one table) outlasts INGEST_QUERY_TIMEOUT_S."""
        timer = threading.Timer(self.limits.query_timeout_s, self._kill, args=(what,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _guarded(self, fn, what: str):  # noqa: ANN001
        """Run ``fn`` (a blocking read from the child), turning a dead child into a DumpRejected."""
        try:
            return fn()
        except DumpRejected:
            raise
        except Exception as exc:
            if self._killed_because:
                raise DumpRejected("query_timeout", self._killed_because) from None
            raise self._crash(what, exc) from None

    def _kill(self, what: str) -> None:
        self._killed_because = (f"{what} took longer than {self.limits.query_timeout_s:g} s "
                                "(INGEST_QUERY_TIMEOUT_S); a view or mapping query that never ends?")
        self.proc.kill()

    def _crash(self, what: str, exc: BaseException | None) -> DumpRejected:
        if self._killed_because:
            return DumpRejected("query_timeout", self._killed_because)
        self.proc.wait(timeout=10)
        tail = b"".join(self._stderr)[-800:].decode(errors="replace").strip()
        return DumpRejected("reader_failed", f"the dump reader stopped while {what} "
                            f"(exit {self.proc.returncode}): {tail or exc}")

    def _raise_if_error(self, frame: dict | None, what: str) -> None:
        if frame is None:
            raise self._crash(what, None)
        if "error" in frame:
            raise DumpRejected(frame["error"], frame["detail"])

    # -- reading -------------------------------------------------------------------------------------
    def read(self, jobs: list[dict]) -> Iterator[tuple[str, pa.Schema, Iterator[pa.RecordBatch]]]:
        """Send ``jobs`` and yield ``(table, schema, batches)`` in order.

        A job is ``{"table", "sql", "want": [canonical columns], "required": [columns], "numeric": [columns]}``;
        the child checks every job (authorizer, required columns) before streaming any. Each batch has
        exactly the ``want`` columns: as text, except that a ``numeric`` column may come as int64/float64
        when SQLite stored numbers there (a table can switch from typed batches to all-text ones once).
        ``batches`` yields ``pyarrow.RecordBatch`` objects and must be consumed before the next table is
        asked for.
        """
        import pyarrow.ipc as ipc

        self.proc.stdin.write(json.dumps(jobs).encode() + b"\n")
        self.proc.stdin.flush()
        for job in jobs:
            what = f"reading table {job['table']}"
            # One deadline per table, from the moment the parent asks for it (checks included).
            with self._deadline(what):
                frame = self._guarded(lambda: read_frame(self.proc.stdout), what)
                self._raise_if_error(frame, what)
                reader = self._guarded(lambda: ipc.open_stream(self.proc.stdout), what)

                def batches(reader=reader, what: str = what) -> Iterator:  # noqa: ANN001
                    while True:
                        batch = self._guarded(lambda: _next_or_none(reader), what)  # noqa: B023
                        if batch is not None:
                            yield batch
                            continue
                        tail = self._guarded(lambda: read_frame(self.proc.stdout), what)
                        self._raise_if_error(tail, what)
                        if not tail.get("more"):
                            break
                        # The typed read met a value of another kind: the rest of the table comes as text.
                        reader = self._guarded(lambda: ipc.open_stream(self.proc.stdout), what)

                yield job["table"], reader.schema, batches()


def _next_or_none(reader):  # noqa: ANN001
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
