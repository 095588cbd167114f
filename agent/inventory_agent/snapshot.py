"""A consistent copy of a live SQLite database, its check, and its deterministic gzip.

Only the standard library: this is the part that must work on any store PC (Linux or Windows) with
Python 3.11+.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from inventory_agent.errors import AgentError, NotASQLiteDatabase, SnapshotCheckFailed

GZIP_LEVEL = 6
_CHUNK = 1 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _ro_uri(path: Path) -> str:
    # as_uri() percent-encodes '?', '#' and spaces, which SQLite's URI parser would otherwise misread; on
    # Windows it gives file:///C:/..., which SQLite reads as a local path.
    return path.resolve().as_uri() + "?mode=ro"


def check_is_sqlite(db: Path) -> None:
    """Raise FileNotFoundError, :class:`NotASQLiteDatabase` or :class:`AgentError` unless ``db`` is a
    readable file that starts with the SQLite 3 header."""
    try:
        with open(db, "rb") as f:
            header = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no database file at {db}: give the path of the store's SQLite database"
        ) from None
    except IsADirectoryError:
        raise NotASQLiteDatabase(f"{db} is a folder, not a SQLite database: give the database file") from None
    except PermissionError as exc:  # on Windows, also what opening a folder gives
        if Path(db).is_dir():
            raise NotASQLiteDatabase(f"{db} is a folder, not a SQLite database: give the database file") from None
        raise AgentError(f"cannot read the database {db} ({exc.strerror or exc}): check that this account may "
                         "read it") from None
    except OSError as exc:  # an I/O error
        raise AgentError(f"cannot read the database {db} ({exc.strerror or exc}): check that this account may "
                         "read it") from None
    if header != _SQLITE_MAGIC:
        what = "is empty" if not header else "does not start with the SQLite 3 header"
        raise NotASQLiteDatabase(
            f"{db} is not a SQLite database (the file {what}): point the agent at the store software's "
            "SQLite file (often *.db, *.sqlite or *.sqlite3); encrypted databases cannot be uploaded"
        )


def _remove_database_files(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def snapshot_database(
    db: Path,
    target: Path,
    *,
    pages_per_step: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> datetime:
    """Copy the live database ``db`` to ``target`` as one consistent snapshot; return its time (UTC).

    Uses ``sqlite3.Connection.backup`` (the online backup API) ``pages_per_step`` pages at a time, calling
    ``progress(pages_copied, pages_total)`` after each step.

    Why the copy runs inside an explicit read transaction on the source: between steps, the backup API
    releases its lock, and a commit by any other connection makes it *restart from page one*. Against a
    busy POS writing every few milliseconds it never finishes (measured: a 10 MB database with a writer
    committing continuously did not complete in 60 s; tests/integration/test_agent.py checks this).
    Holding one read transaction across all steps pins the snapshot instead: it cannot restart and
    cannot mix two points in time. In WAL mode (what most store software uses) writers carry on
    meanwhile; in rollback-journal mode they wait for the copy to finish (SQLite's locking allows
    nothing else for a consistent copy), for as long as their busy timeout allows.

    The copy is switched to ``journal_mode=DELETE`` so it is one self-contained file (no ``-wal`` needed
    to read it). The bytes of the copy depend only on the database's content and the SQLite library
    version: the backup writes a fresh header (change counter, schema cookie), so two copies of an
    unchanged database are identical, whatever the source's journal mode, commits that changed
    nothing, or checkpoints in between (tested).
    """
    db, target = Path(db), Path(target)
    if pages_per_step == 0 or pages_per_step < -1:
        raise ValueError(f"pages_per_step must be positive (or -1 for all at once), got {pages_per_step}")
    check_is_sqlite(db)
    _remove_database_files(target)
    # timeout: in rollback-journal mode a writer's commit briefly locks readers out; wait for it.
    src = sqlite3.connect(_ro_uri(db), uri=True, isolation_level=None, timeout=30)
    try:
        try:
            src.execute("BEGIN")
            # BEGIN is deferred: the first read takes the snapshot. This also reads the header and schema,
            # so a file that only looks like SQLite fails here, before anything is written.
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:  # locked, unreadable, -shm cannot be created, ...
            journal = db.with_name(db.name + "-journal")
            if journal.is_file() and journal.stat().st_size and "readonly" in str(exc):
                raise AgentError(
                    f"cannot read the database {db}: a transaction was interrupted (the POS stopped in the middle "
                    f"of a write: {journal.name} is left), and the agent opens the database read-only, so it "
                    "cannot roll that back. SQLite does it the next time the POS software (or any program that "
                    "writes) opens the database; then run the upload again"
                ) from exc
            raise AgentError(
                f"cannot read the database {db} ({exc}): check that this account may read the file and "
                "write to its folder (SQLite needs the -wal/-shm files of a WAL database), and that no "
                "program holds an exclusive lock on it for long"
            ) from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", malformed schema, ...
            raise NotASQLiteDatabase(
                f"{db} cannot be read as a SQLite database ({exc}): point the agent at the store "
                "software's SQLite file; if it is that file, it is damaged"
            ) from exc
        # Taken once the read transaction holds its snapshot: the copy has every commit made before
        # this moment and none made after it (to within the microseconds between the two calls).
        snapshot_at = datetime.now(UTC)

        def step(_status: int, remaining: int, total: int) -> None:
            if progress:
                progress(total - remaining, total)

        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst, pages=pages_per_step, progress=step, sleep=0.05)
            dst.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError as exc:  # the copy's side: "disk I/O error", "database or disk is full"
            raise AgentError(f"cannot write the snapshot of {db} to {target} ({exc}): is the disk of the "
                             f"agent's scratch folder ({target.parent}) full? The snapshot needs about the "
                             "database's size") from exc
        finally:
            dst.close()
        src.execute("COMMIT")
    except BaseException:
        _remove_database_files(target)
        raise
    finally:
        src.close()
    return snapshot_at


def check_snapshot(path: Path) -> None:
    """Run ``PRAGMA quick_check`` on a copy; raise :class:`SnapshotCheckFailed` with SQLite's findings.

    The copy is opened read-only, so checking it changes nothing about the bytes that get uploaded.
    """
    try:
        con = sqlite3.connect(_ro_uri(Path(path)), uri=True)
        try:
            findings = [row[0] for row in con.execute("PRAGMA quick_check(20)")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        findings = [str(exc)]
    if findings != ["ok"]:
        raise SnapshotCheckFailed(
            f"the snapshot of the database failed PRAGMA quick_check: {'; '.join(findings[:5])}. The store's "
            "database is damaged: run PRAGMA integrity_check on it, repair or restore it, then upload again"
        )


class _HashingWriter:
    """A file-like sink that hashes and counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def gzip_deterministically(source: Path, target: Path) -> tuple[str, int]:
    """Gzip ``source`` into ``target`` streaming; return (sha256 hex, size) of the gzip bytes.

    ``mtime=0`` and an empty file name keep the gzip header free of time and path, so equal input gives
    equal output (on one zlib version): the content hash, and so the lake path, depend on content alone.
    """
    with open(source, "rb") as src, open(target, "wb") as out:
        sink = _HashingWriter(out)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0) as gz:
            shutil.copyfileobj(src, gz, _CHUNK)
    return sink.sha256.hexdigest(), sink.size
