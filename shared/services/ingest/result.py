"""What an ingest is given and what it returns: its limits, its result, the quarantine reasons, and the one
error that is not the dump's fault (:class:`DatabaseInUse`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.ports.dumps import ReadLimits
from shared.settings import Settings

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
    "store_mismatch": "the dump's metadata names another store than its path (raw/store=<id>/)",
}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class IngestLimits:
    max_dump_bytes: int = 8 << 30
    read: ReadLimits = field(default_factory=ReadLimits)
    memory_limit: str = "128MB"
    full_check_days: float = 7.0  # a full read of each fact table at least this often (see history.py)

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


class DatabaseInUse(RuntimeError):
    """A local SQLite database whose latest commits are still in its ``-wal`` file (not a dump's fault)."""


__all__ = ["QUARANTINE_REASONS", "DatabaseInUse", "IngestLimits", "IngestResult", "ProgressFn"]
