"""Step 1, the bytes: receive a dump file, hash it, decompress it, and know whether it is new (the hashing
itself is :mod:`shared.services.dump_identity`, which the alerts use too)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from shared.core.ids import dump_id_from_sha256, validate_store_id
from shared.core.mapping import DEFAULT_MAPPING, Mapping, parse_mapping
from shared.ports.dumps import DumpRejected, DumpSource
from shared.ports.lake import Lake
from shared.services.dump_identity import gunzip_sha256, is_gzip, sha256_file
from shared.services.ingest.job import DumpJob
from shared.services.ingest.result import DatabaseInUse
from shared.services.scratch import scratch_folder, scratch_in_use, sweep_stale_scratch


def check_not_in_use(source: Path) -> None:
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


def load_store_mapping(lake: Lake, store_id: str) -> Mapping:
    """The mapping kept in the lake for a store (``config/mappings/store=<id>.toml``), else the default."""
    path = f"config/mappings/store={validate_store_id(store_id)}.toml"
    try:
        return parse_mapping(lake.get_bytes(path), source=path)
    except FileNotFoundError:
        return DEFAULT_MAPPING


def working_folder(job: DumpJob, in_use: contextlib.ExitStack) -> Path:
    """The ingest's working folder (``ingest-*`` under ``job.scratch``), removed when ``in_use`` closes.

    First the scratch folder is swept of the folders killed workers left, sparing the blob trigger's download
    of this very dump (its folder is marked in use)."""
    if job.scratch is not None:
        if job.source.resolve().parent.parent == Path(job.scratch).resolve():  # the blob trigger's download folder
            in_use.enter_context(scratch_in_use(job.source.parent))
        sweep_stale_scratch(job.scratch)
    return in_use.enter_context(scratch_folder("ingest-", job.scratch))


@dataclass
class Dump:
    """A dump as received."""

    received_sha: str  # of the file as received: the dump id of a plain file, the quarantine key
    early: DumpSource | None  # a plain file's reader, started while the file was hashed
    db: Path | None = None  # the SQLite file (decompressed into the working folder from gzip)
    sha: str = ""  # the SQLite file's sha256
    rejected: DumpRejected | None = None  # too large, or a damaged gzip stream

    @property
    def dump_id(self) -> str:
        return dump_id_from_sha256(self.sha)


def receive(job: DumpJob, work: Path, in_use: contextlib.ExitStack) -> Dump:
    """Hash the file once and, for gzip, decompress it into ``work``; a fault of the file is in ``rejected``.

    A plain SQLite file's reader child starts at once and runs quick_check while this process hashes the
    file (stopped again when ``in_use`` closes, e.g. if the dump turns out to be ingested already)."""
    source, limits = job.source, job.limits
    early = None
    if not is_gzip(source) and source.stat().st_size <= limits.max_dump_bytes:
        early = job.engines.open_dump(source, limits.read).start()
        in_use.callback(early.__exit__, None, None, None)
    dump = Dump(sha256_file(source), early)
    try:
        dump.db, dump.sha = prepare_source(source, dump.received_sha, work, limits.max_dump_bytes)
    except DumpRejected as exc:
        dump.rejected = exc
    return dump


__all__ = ["Dump", "check_not_in_use", "gunzip_sha256", "is_gzip", "load_store_mapping", "prepare_source",
           "receive", "sha256_file", "working_folder"]
