"""The manifest: the record of one committed dump (``manifests/store=<id>/<dump id>.json``, docs/lake.md).

The ingest writes it last, so a dump whose manifest exists is in the lake whole; the stock rebase, the
aggregates, the alerts and the dashboard read it. One type for all of them: the fields they rely on are named
and checked here, once; a manifest missing one is refused with a :class:`ManifestError` naming it. Fields this
version does not name (and those of manifests written by older versions) are kept as they were read:
:meth:`Manifest.to_json` gives back the JSON unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

REQUIRED = ("store_id", "dump_id", "snapshot_at")


class ManifestError(ValueError):
    """A manifest that is not JSON, or lacks a field every reader relies on."""


@dataclass(frozen=True)
class TableCounts:
    """One canonical table's figures in a manifest (``tables.<name>``)."""

    input: int = 0  # rows read from the dump
    curated: int = 0  # rows that passed the rules
    rejected: int = 0  # rows set aside, with their reasons
    written: int | None = None  # fact tables: lines new to the lake (the others were there already)
    by_rule: dict[str, int] = field(default_factory=dict)  # rejected (or flagged) rows per rule code
    days_written: dict[str, int] = field(default_factory=dict)  # fact tables: UTC day -> lines written
    changed_written: int = 0  # fact tables: lines whose content changed since an earlier dump said otherwise

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableCounts:
        return cls(input=int(data.get("input", 0)), curated=int(data.get("curated", 0)),
                   rejected=int(data.get("rejected", 0)), written=data.get("written"),
                   by_rule={str(k): int(v) for k, v in (data.get("by_rule") or {}).items()},
                   days_written={str(k): int(v) for k, v in (data.get("days_written") or {}).items()},
                   changed_written=int(data.get("changed_written") or 0))


@dataclass(frozen=True)
class Manifest:
    store_id: str
    dump_id: str
    snapshot_at: str  # UTC text, as every row of the dump carries it
    ingested_at: str | None
    tables: dict[str, TableCounts]
    raw: dict[str, Any]  # the JSON as read

    @classmethod
    def from_json(cls, data: dict[str, Any] | bytes | str, *, where: str = "manifest") -> Manifest:
        """The manifest in ``data`` (parsed JSON, or its text); ``where`` names it in errors (its lake path)."""
        if isinstance(data, bytes | str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ManifestError(f"{where} is not JSON ({exc}); it was damaged after the ingest wrote it: "
                                    "ingest the dump again after removing it") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is not a JSON object")
        missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise ManifestError(f"{where} has no {', '.join(missing)}: not a manifest this pipeline wrote")
        tables = data.get("tables") or {}
        return cls(store_id=data["store_id"], dump_id=data["dump_id"], snapshot_at=data["snapshot_at"],
                   ingested_at=data.get("ingested_at"),
                   tables={name: TableCounts.from_json(t) for name, t in tables.items() if isinstance(t, dict)},
                   raw=data)

    def to_json(self) -> dict[str, Any]:
        """The manifest as it was read (or written)."""
        return self.raw

    @property
    def snapshot_time(self) -> datetime:
        """``snapshot_at`` as an aware UTC time."""
        moment = datetime.fromisoformat(self.snapshot_at.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)

    def rows_in(self) -> int:
        return sum(t.input for t in self.tables.values())

    def rows_rejected(self) -> int:
        return sum(t.rejected for t in self.tables.values())

    def changed_lines(self) -> list[list]:
        """``[[table, lines]]`` of the fact tables in which the dump brought changes not reported before."""
        return [[name, t.changed_written] for name, t in sorted(self.tables.items()) if t.changed_written]
