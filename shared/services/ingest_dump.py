"""Use case: ingest one store dump into the lake (what the blob trigger and `inventory ingest` do).

    dump file ──▶ open safely (child process) ──▶ rules (DuckDB SQL over Arrow) ──▶ staged Parquet
              ──▶ publish: rejected/, curated/, then the manifest last (the commit marker)

Idempotent: the dump id is the hash of the SQLite content, and a dump whose manifest exists is not
ingested again. Output names are deterministic (``<dump_id>…parquet``), so a retry after a crash rewrites
the same objects. Dumps are full snapshots: sale and receipt lines already in the lake for the store are
counted (``already_in_lake``) but not written again, so a late, older dump adds only what is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from shared import __version__
from shared.adapters.lake import Lake
from shared.adapters.sqlite_dump import DumpReader, DumpRejected, ReadLimits
from shared.adapters.telemetry import Telemetry
from shared.core.ids import InvalidStoreId, dump_id_from_sha256, parse_raw_dump_path, utc_iso, validate_store_id
from shared.core.mapping import DEFAULT_MAPPING, Mapping, MappingError, parse_mapping
from shared.core.rules import FLAG_CODES, RULES, clean_sql, q
from shared.core.schema import READ_ORDER, SCHEMA_VERSION, TABLES, Table
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
    "too_many_rows": "a table has more rows than INGEST_MAX_ROWS_PER_TABLE",
    "cell_too_large": "a value is larger than INGEST_MAX_CELL_BYTES",
    "reader_failed": "SQLite failed while reading the file",
    "invalid_store_id": "the store id in the path is not ^[A-Za-z0-9_-]{1,64}$",
}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class IngestLimits:
    max_dump_bytes: int = 8 << 30
    read: ReadLimits = field(default_factory=ReadLimits)
    memory_limit: str = "192MB"

    @classmethod
    def from_settings(cls, s: Settings) -> IngestLimits:
        return cls(
            max_dump_bytes=s.int("INGEST_MAX_DUMP_BYTES"),
            read=ReadLimits(
                max_cell_bytes=s.int("INGEST_MAX_CELL_BYTES"),
                max_rows_per_table=s.int("INGEST_MAX_ROWS_PER_TABLE"),
                query_timeout_s=float(s.get("INGEST_QUERY_TIMEOUT_S")),
            ),
            memory_limit=s.get("INGEST_MEMORY_LIMIT"),
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

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def prepare_source(source: Path, scratch: Path, max_bytes: int) -> tuple[Path, str, str]:
    """Return (SQLite file, its sha256, sha256 of the file as received).

    A gzip file (recognised by its magic bytes, not its name) is decompressed into ``scratch`` while
    counting: past ``max_bytes`` it is refused as ``too_large``, so a gzip bomb costs at most that much disk.
    """
    with open(source, "rb") as f:
        magic = f.read(2)
    received_sha = _sha256_file(source)
    if magic != b"\x1f\x8b":
        if source.stat().st_size > max_bytes:
            raise DumpRejected("too_large", f"the dump is {source.stat().st_size} bytes, above "
                               f"INGEST_MAX_DUMP_BYTES={max_bytes}")
        return source, received_sha, received_sha
    target = scratch / "dump.sqlite"
    h = hashlib.sha256()
    total = 0
    try:
        with gzip.open(source, "rb") as inp, open(target, "wb") as out:
            while chunk := inp.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise DumpRejected("too_large", f"the dump decompresses to more than {max_bytes} bytes "
                                       "(INGEST_MAX_DUMP_BYTES); a gzip bomb, or raise the limit")
                h.update(chunk)
                out.write(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DumpRejected("bad_gzip", f"the gzip stream is damaged or truncated: {exc}") from None
    return target, h.hexdigest(), received_sha


# --- step 2: read and clean ------------------------------------------------------------------------------

def _jobs(info_find: Callable[[str], dict | None], mapping: Mapping) -> list[dict]:
    jobs = []
    for name in READ_ORDER:
        table = TABLES[name]
        query = mapping.query_for(name)
        if query is None:
            found = info_find(name)
            if found is None:
                if table.required:
                    raise DumpRejected("missing_table", f"the dump has no table {name!r} (required: "
                                       f"{', '.join(t for t in READ_ORDER if TABLES[t].required)}); "
                                       "if the store's software names it differently, use a mapping file")
                continue
            if found.get("error"):
                raise DumpRejected("bad_query", f"{found['type']} {found['name']!r} cannot be read: "
                                   f"{found['error']}")
            query = f'SELECT * FROM "{found["name"].replace(chr(34), chr(34) * 2)}"'
        jobs.append({"table": name, "sql": query, "want": list(table.column_names),
                     "required": list(table.required_columns)})
    return jobs


def _load_raw(con, table: Table, schema, batches, progress: ProgressFn | None) -> int:  # noqa: ANN001
    """Insert the text batches into ``raw_<table>`` with a ``_row`` number (1-based dump order)."""
    import numpy as np
    import pyarrow as pa

    cols = ", ".join(f"{q(c)} VARCHAR" for c in table.column_names)
    con.execute(f"CREATE TABLE raw_{table.name} (_row BIGINT, {cols})")
    rows = 0
    for batch in batches:
        numbered = pa.RecordBatch.from_arrays(
            [pa.array(np.arange(rows + 1, rows + 1 + batch.num_rows, dtype=np.int64)), *batch.columns],
            names=["_row", *batch.schema.names])
        con.register("incoming_batch", numbered)
        con.execute(f"INSERT INTO raw_{table.name} SELECT * FROM incoming_batch")
        con.unregister("incoming_batch")
        rows += batch.num_rows
        if progress:
            progress(f"{table.name}: {rows:,} rows read")
    return rows


def _counts(con, table: Table) -> dict:  # noqa: ANN001
    by_reason = dict(con.execute(
        f"SELECT reason_code, count(*) FROM clean_{table.name} WHERE reason_code IS NOT NULL "
        "GROUP BY ALL ORDER BY 1").fetchall())
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason_code IS NULL), "
        "count(*) FILTER (WHERE sku_normalised AND reason_code IS NULL), "
        + ", ".join(f"count(*) FILTER (WHERE reason_code IS NULL AND list_contains(string_split(flags, ','), "
                    f"'{code}'))" for code in FLAG_CODES)
        + f" FROM clean_{table.name}").fetchone()
    total, curated, normalised, *flags = row
    by_rule = {code: n for code, n in by_reason.items()}
    if normalised:
        by_rule["sku_normalised"] = normalised
    by_rule.update({code: n for code, n in zip(FLAG_CODES, flags, strict=True) if n})
    return {"input": total, "curated": curated, "rejected": total - curated,
            "by_rule": dict(sorted(by_rule.items()))}


# --- step 3: outputs -------------------------------------------------------------------------------------

def _curated_select(table: Table, store_id: str, dump_id: str, snapshot_at: str) -> str:
    cols = ", ".join(f"p_{c} AS {q(c)}" for c in table.column_names)
    return (f"SELECT '{store_id}' AS store_id, {cols}, nullif(flags, '') AS flags, '{dump_id}' AS dump_id, "
            f"TIMESTAMPTZ '{snapshot_at}' AS snapshot_at")


def _stage_outputs(con, table: Table, stage: Path, store_id: str, dump_id: str,  # noqa: ANN001
                   snapshot_at: str, snapshot_day: date, existing: list[Path]) -> dict:
    """Write this table's curated and rejected Parquet under ``stage`` (lake layout). Returns counts."""
    out: dict = {}
    parquet = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144"
    rejected_cols = ", ".join(f"r_{c} AS {q(c)}" for c in table.column_names)
    n_rej = con.execute(f"SELECT count(*) FROM clean_{table.name} WHERE reason_code IS NOT NULL").fetchone()[0]
    if n_rej:
        target = stage / f"rejected/{table.name}/store={store_id}/date={snapshot_day}/{dump_id}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        reasons = "CASE reason_code " + " ".join(
            f"WHEN '{r.code}' THEN '{r.description.replace(chr(39), chr(39) * 2)}'" for r in RULES) + " END"
        con.execute(
            f"COPY (SELECT '{store_id}' AS store_id, _row AS row_number, {rejected_cols}, reason_code, "
            f"{reasons} AS reason, '{dump_id}' AS dump_id FROM clean_{table.name} "
            f"WHERE reason_code IS NOT NULL ORDER BY _row) TO '{target}' ({parquet})")
    select = _curated_select(table, store_id, dump_id, snapshot_at)
    if not table.fact:
        target = stage / f"curated/{table.name}/store={store_id}/snapshot={snapshot_day}/{dump_id}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY ({select} FROM clean_{table.name} WHERE reason_code IS NULL ORDER BY _row) "
                    f"TO '{target}' ({parquet})")
        return out
    # Facts: only lines whose key is not already in the lake for this store.
    key = ", ".join(table.key)
    new_rows = f"clean_{table.name}"
    if existing:
        files = ", ".join(f"'{p}'" for p in existing)
        con.execute(f"CREATE TABLE existing_{table.name} AS SELECT DISTINCT {key} "
                    f"FROM read_parquet([{files}], hive_partitioning = false)")
        new_rows = (f"(SELECT * FROM clean_{table.name} c WHERE reason_code IS NOT NULL OR NOT EXISTS "
                    f"(SELECT 1 FROM existing_{table.name} e WHERE "
                    + " AND ".join(f"e.{k} = c.p_{k}" for k in table.key) + "))")
    con.execute(f"CREATE TABLE new_{table.name} AS SELECT * FROM {new_rows} WHERE reason_code IS NULL")
    written = con.execute(f"SELECT count(*) FROM new_{table.name}").fetchone()[0]
    out["written"] = written
    out["already_in_lake"] = con.execute(
        f"SELECT count(*) FROM clean_{table.name} WHERE reason_code IS NULL").fetchone()[0] - written
    if written:
        folder = stage / f"curated/{table.name}/store={store_id}"
        folder.mkdir(parents=True, exist_ok=True)
        ts = table.event_time
        con.execute(
            f"COPY ({select}, strftime(p_{ts} AT TIME ZONE 'UTC', '%Y-%m-%d') AS date FROM new_{table.name}) "
            f"TO '{folder}' ({parquet}, PARTITION_BY (date), FILENAME_PATTERN '{dump_id}-{{i}}', "
            "OVERWRITE_OR_IGNORE true)")
    con.execute(f"DROP TABLE new_{table.name}")
    return out


def _publish(lake: Lake, stage: Path) -> list[str]:
    """Upload staged files into the lake: rejected, then curated. Each object is written atomically."""
    published = []
    files = sorted(p for p in stage.rglob("*.parquet"))
    files.sort(key=lambda p: 0 if p.relative_to(stage).parts[0] == "rejected" else 1)
    move_in = getattr(lake, "move_in", None)
    for f in files:
        path = f.relative_to(stage).as_posix()
        if move_in:
            move_in(path, f)
        else:
            lake.put_file(path, f)
        published.append(path)
    return published


# --- the use case ----------------------------------------------------------------------------------------

def _quarantine(lake: Lake, telemetry: Telemetry, *, store_id: str, key: str, source: Path,
                source_name: str, exc: DumpRejected, started: float, received_sha: str) -> IngestResult:
    folder = f"quarantine/store={store_id}/{key}"
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
        return parse_mapping(lake.get_bytes(path).decode(), source=path)
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
    :class:`~shared.core.mapping.MappingError` for a broken mapping file; every problem with the dump
    itself is a quarantine, returned as a result.
    """
    import duckdb

    started = time.monotonic()
    limits = limits or IngestLimits()
    source = Path(source)
    source_name = source_name or source.name
    validate_store_id(store_id)
    if mapping is None:
        mapping = load_store_mapping(lake, store_id)
    landed_at = landed_at or datetime.now(UTC)
    say = progress or (lambda _msg: None)

    with tempfile.TemporaryDirectory(prefix="ingest-", dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        received_sha = ""
        try:
            db, sha, received_sha = prepare_source(source, tmp, limits.max_dump_bytes)
        except DumpRejected as exc:
            received_sha = received_sha or _sha256_file(source)
            return _quarantine(lake, telemetry, store_id=store_id, key=received_sha[:24], source=source,
                               source_name=source_name, exc=exc, started=started, received_sha=received_sha)
        dump_id = dump_id_from_sha256(sha)
        manifest_path = f"manifests/store={store_id}/{dump_id}.json"
        if lake.head(manifest_path) is not None:
            manifest = json.loads(lake.get_bytes(manifest_path))
            say(f"dump {dump_id} of store {store_id} was already ingested; nothing to do")
            telemetry.event("DumpAlreadyIngested", storeId=store_id, dumpId=dump_id)
            return IngestResult("already_ingested", store_id, dump_id, manifest)

        timings: dict[str, float] = {}
        tables: dict[str, dict] = {}
        stage = tmp / "stage"
        con = duckdb.connect(config={"memory_limit": limits.memory_limit, "threads": 2,
                                     "temp_directory": str(tmp / "spill"),
                                     "preserve_insertion_order": False})
        try:
            con.execute(f"SET TimeZone = '{mapping.timezone}'")
            with DumpReader(db, limits.read) as reader:
                jobs = _jobs(reader.info.find, mapping)
                triggers = reader.info.triggers
                for name, _schema, batches in reader.read(jobs):
                    t0 = time.monotonic()
                    table = TABLES[name]
                    _load_raw(con, table, _schema, batches, say)
                    timings[f"read_{name}"] = round(time.monotonic() - t0, 3)
                    t0 = time.monotonic()
                    items = "items_keys" if name != "items" else None
                    vendors = "vendors_keys" if "vendors" in tables else None
                    con.execute(f"CREATE TABLE clean_{name} AS "
                                + clean_sql(table, f"raw_{name}", items=items, vendors=vendors))
                    con.execute(f"DROP TABLE raw_{name}")
                    if name == "items":
                        con.execute("CREATE TABLE items_keys AS SELECT p_sku AS sku FROM clean_items "
                                    "WHERE reason_code IS NULL")
                    if name == "vendors":
                        con.execute("CREATE TABLE vendors_keys AS SELECT p_vendor_id AS vendor_id "
                                    "FROM clean_vendors WHERE reason_code IS NULL")
                    tables[name] = _counts(con, table)
                    timings[f"clean_{name}"] = round(time.monotonic() - t0, 3)
        except DumpRejected as exc:
            con.close()
            return _quarantine(lake, telemetry, store_id=store_id, key=dump_id, source=source,
                               source_name=source_name, exc=exc, started=started, received_sha=received_sha)

        # The snapshot time T of handbook §5.
        if snapshot_at is not None:
            snap, snap_source = snapshot_at.astimezone(UTC), "agent"
        else:
            counted = con.execute("SELECT max(p_counted_at) FROM clean_stock WHERE reason_code IS NULL"
                                  ).fetchone()[0]
            if counted is not None:
                snap, snap_source = counted.astimezone(UTC), "stock.counted_at"
            else:
                snap, snap_source = landed_at.astimezone(UTC), "landed_at"
        snap_iso = utc_iso(snap)
        snap_day = snap.date()

        t0 = time.monotonic()
        for name in tables:
            table = TABLES[name]
            existing: list[str] = []
            if table.fact:
                existing = [o.path for o in lake.list(f"curated/{name}/store={store_id}/")
                            if o.path.endswith(".parquet")]
            with lake.local_copy(existing) as local:
                tables[name].update(_stage_outputs(con, table, stage, store_id, dump_id, snap_iso, snap_day,
                                                   local))
            say(f"{name}: {tables[name]['curated']:,} curated, {tables[name]['rejected']:,} rejected")
        con.close()
        timings["write"] = round(time.monotonic() - t0, 3)

        t0 = time.monotonic()
        outputs = _publish(lake, stage) if stage.exists() else []
        timings["publish"] = round(time.monotonic() - t0, 3)
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
            "outputs": outputs,
        }
        lake.put_bytes(manifest_path, json.dumps(manifest, indent=2).encode())

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
        store_id, _day, name = parse_raw_dump_path(lake_path)
    except (InvalidStoreId, ValueError) as exc:
        sha = _sha256_file(local)
        return _quarantine(lake, telemetry, store_id="_invalid", key=sha[:24], source=local,
                           source_name=lake_path.rsplit("/", 1)[-1], started=started, received_sha=sha,
                           exc=DumpRejected("invalid_store_id", str(exc)))
    snapshot_at = None
    if metadata.get("snapshot_at"):
        try:
            snapshot_at = datetime.fromisoformat(metadata["snapshot_at"].replace("Z", "+00:00"))
            if snapshot_at.tzinfo is None:
                snapshot_at = snapshot_at.replace(tzinfo=UTC)
        except ValueError:
            snapshot_at = None  # falls back to stock.counted_at; the manifest says which was used
    return ingest_dump(local, store_id, lake=lake, telemetry=telemetry, limits=limits, source_name=name,
                       snapshot_at=snapshot_at, scratch=scratch, progress=progress)


__all__ = ["QUARANTINE_REASONS", "IngestLimits", "IngestResult", "InvalidStoreId", "MappingError",
           "ingest_dump", "ingest_landed_dump", "load_store_mapping", "prepare_source"]
