"""Step 4, the curated rows: what each table commits. Dumps are full snapshots, so a fact table's lines whose
key the lake already has (committed by another dump) are counted (``already_in_lake``) but not written again;
one whose values changed since is rejected (``changed_since_ingested``: the lake keeps the first version). A
snapshot table (items, vendors, stock) commits the dump's whole table.

Called holding the store's lock (commit.py): what the lake holds cannot change meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from shared.core import layout
from shared.core.arrow_values import RowSet, date_scalar, null_scalar, string_scalar, utc_timestamp_scalar
from shared.core.schema import Table
from shared.core.sql import literal
from shared.ports.tables import Tables
from shared.services.ingest.duplicates import Finishing
from shared.services.ingest.engine import memory_limit_bytes, row_set
from shared.services.ingest.job import Stamp
from shared.services.ingest.row_stage import SNAPSHOT_PARTITION, StagedTable

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class LakeMatch:
    """How a fact table's rows compare with the lines the lake holds for the store (from other dumps)."""

    known: RowSet | None = None  # rows whose key the lake has: not written again
    changed: RowSet | None = None  # of those, rows whose values differ from the lake's: changed_since_ingested
    not_in_dump: int = 0  # the store's lines in the lake that this dump does not have (pruned history)
    looked_up: tuple[str, str] | None = None  # on a window night: the range of the first key column read


def new_lines(con: Any, tables: Tables, staged: StagedTable, fin: Finishing, stamp: Stamp, *,
              windowed: bool = False) -> Iterator[pa.Table]:
    """A fact table's curated rows, day by day: the lines that passed, without duplicates and without the
    lines whose key the lake already has (a changed one is set aside). Adds ``written``, ``already_in_lake``,
    ``changed_since_ingested``, ``not_in_dump`` and ``days_written`` to the counts as the rows are taken."""
    import pyarrow as pa
    import pyarrow.compute as pc

    match = match_lake(con, tables, staged, stamp, windowed=windowed)
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
        out = _curated_columns(staged.table, rows, stamp)
        out = out.append_column("date", pa.repeat(date_scalar(date.fromisoformat(day)), out.num_rows))
        out = out.append_column("month", pa.repeat(string_scalar(day[:7]), out.num_rows))
        days_written[day] = out.num_rows
        fin.counts["written"] += out.num_rows
        yield out
    fin.counts["already_in_lake"] = fin.counts["curated"] - fin.counts["written"]


def snapshot_rows(staged: StagedTable, fin: Finishing, stamp: Stamp) -> pa.Table | None:
    """A snapshot table's curated rows: the dump's whole table, in dump order (None when none passed)."""
    if not staged.passed:
        return None
    rows = _leave_out(fin, staged.spool.read(SNAPSHOT_PARTITION))
    return _curated_columns(staged.table, rows, stamp)


def match_lake(con: Any, tables: Tables, staged: StagedTable, stamp: Stamp, *, windowed: bool = False) -> LakeMatch:
    """Compare the dump's rows with the store's lines in ``curated/<table>`` committed by other dumps (this
    dump's own lines are left out, so a retry after a crash counts them as the first attempt did).

    Read: the store's partitions; with ``windowed`` (only the window's rows were read) just the lines whose
    first key column falls in the range of the rows' own (the log's file statistics prune the rest: POS ids
    grow, so that is the last days' files), and lines that left the dump are not counted (the history check
    showed none did). ``match_<table>`` records, per known row, the dump that wrote the kept version."""
    table, name = staged.table, staged.table.name
    con.execute(f"CREATE OR REPLACE TEMP TABLE match_{name} (_row BIGINT, same BOOLEAN, kept_dump_id VARCHAR)")
    if not staged.passed:
        return LakeMatch()
    where = f"store_id = {literal(stamp.store_id)} AND dump_id <> {literal(stamp.dump_id)}"
    looked_up = None
    if windowed:
        first = table.key[0]
        looked_up = con.sql(f"SELECT min(p_{first}), max(p_{first}) FROM keys_{name}").fetchall()[0]
        where += f" AND {first} >= {literal(looked_up[0])} AND {first} <= {literal(looked_up[1])}"
    lake = tables.query(f"SELECT {', '.join(table.column_names)}, dump_id FROM t WHERE {where}",
                        t=layout.curated(name))
    if lake is None:
        return LakeMatch(looked_up=looked_up)
    limit = memory_limit_bytes(con)
    if limit:  # half the engine's memory: the store's history spills to disk instead
        con.execute(f"SET memory_limit = '{limit // 2}B'")
    try:
        match = _join_lake(con, staged, lake, windowed=windowed)
    finally:
        if limit:
            con.execute(f"SET memory_limit = '{limit}B'")
    match.looked_up = looked_up
    return match


def _join_lake(con: Any, staged: StagedTable, lake: pa.RecordBatchReader, *, windowed: bool) -> LakeMatch:
    """One key join of the dump's keys with the store's lines (``lake``). A row whose key the lake has is
    "known"; when its values hash differently from the lake's line (the same DuckDB ``hash()`` as the
    duplicate stage, over the same types), it is "changed": it goes to ``dropped_<table>`` with reason
    ``changed_since_ingested``."""
    table, name = staged.table, staged.table.name
    on = " AND ".join(f"e.{k} = k.p_{k}" for k in table.key)
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
    known = row_set(con.sql(f"SELECT _row FROM match_{name}"), staged.rows)
    changed = row_set(con.sql(f"SELECT _row FROM match_{name} WHERE NOT same"), staged.rows)
    return LakeMatch(known if known.count else None, changed if changed.count else None, int(not_in_dump))


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


def _leave_out(fin: Finishing, rows: Any) -> Any:
    """``rows`` (a pyarrow.Table) without the rows the duplicate stage left out (set aside in ``fin.spill``)."""
    import pyarrow.compute as pc

    if fin.dropped is None:
        return rows
    out = fin.dropped.mask(rows.column("_row"))
    if out is None:
        return rows
    fin.set_aside(rows.filter(out))
    return rows.filter(pc.invert(out))


def _curated_columns(table: Table, rows: Any, stamp: Stamp) -> pa.Table:
    """The curated schema from spooled rows: store_id, the columns, flags (NULL when none), dump_id,
    snapshot_at. Timestamps are stored as UTC."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = rows.num_rows
    cols = {"store_id": pa.repeat(string_scalar(stamp.store_id), n)}
    for c in table.column_names:
        arr = rows.column(f"p_{c}")
        if pa.types.is_timestamp(arr.type):  # Delta Lake keeps microseconds
            arr = arr.cast(pa.timestamp("us", tz="UTC"))
        cols[c] = arr
    flags = rows.column("flags")
    cols["flags"] = pc.if_else(pc.equal(flags, string_scalar("")), null_scalar(pa.string()), flags)
    cols["dump_id"] = pa.repeat(string_scalar(stamp.dump_id), n)
    cols["snapshot_at"] = pa.repeat(utc_timestamp_scalar(stamp.snapshot_at), n)
    return pa.table(cols)


__all__ = ["LakeMatch", "match_lake", "new_lines", "snapshot_rows"]
