"""Use case: turn a lake of loose Parquet (the layout before Delta Lake) into Delta tables
(``inventory lake migrate``).

The old layout kept one file per dump and day, committed by the dump's manifest::

    curated/<fact>/store=<id>/date=<day>/<dump_id>-0.parquet          sales, receipts
    curated/<snapshot>/store=<id>/snapshot=<day>/<dump_id>.parquet    items, vendors, stock
    rejected/<table>/store=<id>/date=<day>/<dump_id>.parquet

For each store and table, the files of committed dumps (those with a manifest) become one Delta commit, with
the columns the ingest now writes (``date`` and ``month`` for the fact tables; timestamps in microseconds).
Files of dumps without a manifest (attempts that never committed) are not migrated. The commit carries the
application transaction ``migrate:store=<id>``, so a migration that stopped halfway is resumed by running it
again, and a table already migrated is not written twice. Once a store's tables are committed, its old files
are deleted (they sit inside the Delta tables' folders, where no reader looks, but they cost storage) and its
manifests gain the ``days_written`` and ``delta_versions`` the consumers read.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from shared.core import layout
from shared.core.arrow_values import date_scalar, string_scalar
from shared.core.schema import TABLES
from shared.ports.lake import Lake
from shared.ports.tables import OpenTables, Tables
from shared.services import engines
from shared.services.scratch import scratch_folder

if TYPE_CHECKING:
    import pyarrow as pa

ReadParquet = Callable[[bytes], "pa.Table"]
"""How the migration reads an old file: its bytes -> its rows."""

OLD_FILE = re.compile(r"^(?P<zone>curated|rejected)/(?P<table>\w+)/store=(?P<store>[A-Za-z0-9_-]{1,64})/"
                      r"(?P<kind>date|snapshot)=(?P<day>\d{4}-\d{2}-\d{2})/(?P<dump>[0-9a-f]+)(?:-\d+)?\.parquet$")


@dataclass
class MigrateResult:
    stores: int = 0
    files_migrated: int = 0
    rows_migrated: dict[str, int] = field(default_factory=dict)
    files_left_out: list[str] = field(default_factory=list)  # of dumps that never committed (deleted too)
    tables_already_migrated: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"stores": self.stores, "files_migrated": self.files_migrated,
                "rows_migrated": dict(sorted(self.rows_migrated.items())), "files_left_out": self.files_left_out,
                "tables_already_migrated": self.tables_already_migrated, "seconds": self.seconds}


def _old_files(lake: Lake, zone: str, table: str) -> dict[str, list[re.Match]]:
    """The old layout's files of ``zone/table``, by store."""
    found: dict[str, list[re.Match]] = {}
    for obj in lake.list(f"{zone}/{table}/store="):
        m = OLD_FILE.match(obj.path)
        if m is not None and m["zone"] == zone and m["table"] == table:
            found.setdefault(m["store"], []).append(m)
    return found


def _as_written_now(rows: pa.Table, fact: bool, day: str, zone: str) -> pa.Table:
    """An old file's rows with the columns the ingest writes today (``append_parts`` casts the types)."""
    import pyarrow as pa

    if fact and zone == "curated":
        rows = rows.append_column("date", pa.repeat(date_scalar(date.fromisoformat(day)), rows.num_rows))
        rows = rows.append_column("month", pa.repeat(string_scalar(day[:7]), rows.num_rows))
    return rows


def _migrate_table(lake: Lake, tables: Tables, zone: str, table: str, store: str, files: list[re.Match],
                   committed: set[str], result: MigrateResult, scratch: Path | None,
                   read_parquet: ReadParquet) -> dict[str, dict[str, int]]:
    """One store's table: its committed files as one commit. Returns rows per dump and day (fact tables)."""
    path = f"{zone}/{table}"
    fact = TABLES[table].fact
    app_id = f"migrate:store={store}"
    keep = [m for m in files if m["dump"] in committed]
    result.files_left_out += [m.string for m in files if m["dump"] not in committed]
    if tables.committed(tables.open(path), app_id):
        result.tables_already_migrated += 1
        return {}
    if not keep:
        return {}
    days: dict[str, dict[str, int]] = {}

    def parts() -> Iterator[pa.Table]:  # file by file: a store's history is never held whole
        for m in sorted(keep, key=lambda m: (m["day"], m.string)):
            rows = _as_written_now(read_parquet(lake.get_bytes(m.string)), fact, m["day"], zone)
            if fact and zone == "curated":
                days.setdefault(m["dump"], {})[m["day"]] = rows.num_rows
            result.rows_migrated[path] = result.rows_migrated.get(path, 0) + rows.num_rows
            yield rows

    with scratch_folder("migrate-", scratch) as work:
        tables.append_parts(path, parts(), scratch=Path(work), app_id=app_id,
                            partition_by=("store_id", "month") if fact and zone == "curated" else ("store_id",),
                            metadata={"store_id": store, "migrated_files": str(len(keep))})
    result.files_migrated += len(keep)
    return days


def migrate_lake(*, lake: Lake, progress: Callable[[str], None] | None = None, scratch: Path | None = None,
                 open_tables: OpenTables = engines.open_tables,
                 read_parquet: ReadParquet = engines.read_parquet) -> MigrateResult:
    """Migrate every store's old Parquet files to the Delta tables (see the module docstring)."""
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    result = MigrateResult()
    tables = open_tables(lake)
    old = {(zone, table): _old_files(lake, zone, table) for zone in ("curated", "rejected") for table in TABLES}
    stores = sorted({store for by_store in old.values() for store in by_store})
    for store in stores:
        committed = {o.path.rsplit("/", 1)[1][:-len(".json")] for o in lake.list(layout.manifests(store))
                     if o.path.endswith(".json")}
        days_by_dump: dict[str, dict[str, dict[str, int]]] = {}
        for (zone, table), by_store in old.items():
            days = _migrate_table(lake, tables, zone, table, store, by_store.get(store, []), committed, result,
                                  scratch, read_parquet)
            for dump, per_day in days.items():
                days_by_dump.setdefault(dump, {})[table] = per_day
        _update_manifests(lake, store, committed, days_by_dump)
        lake.delete_many([m.string for by_store in old.values() for m in by_store.get(store, [])])
        result.stores += 1
        say(f"store {store}: migrated ({len(committed)} dump(s))")
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _update_manifests(lake: Lake, store: str, committed: set[str], days_by_dump: dict) -> None:
    """The store's manifests gain what the consumers now read: the days each dump wrote to (its old files'
    days) and, as its Delta versions, none (the migration's commit holds every dump's rows)."""
    for dump in sorted(committed):
        path = layout.manifest(store, dump)
        manifest = json.loads(lake.get_bytes(path))
        if "delta_versions" in manifest:
            continue
        for table, per_day in days_by_dump.get(dump, {}).items():
            counts = manifest.get("tables", {}).get(table)
            if counts is not None:
                counts["days_written"] = dict(sorted(per_day.items()))
        manifest["delta_versions"] = {}
        manifest["migrated_from"] = manifest.pop("outputs", [])
        manifest.pop("removed", None)
        lake.put_bytes(path, json.dumps(manifest, indent=2).encode())


__all__ = ["MigrateResult", "migrate_lake"]
