"""Step 4, the rejected rows: what each table commits to ``rejected/<table>``, in dump order, with the reason
of each row. Rows the store's rejected table already holds (same values, same reason: history rejected on an
earlier night) are not written again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.core import layout
from shared.core.arrow_values import string_scalar
from shared.core.rules import RULES, q
from shared.core.schema import Table
from shared.core.sql import literal
from shared.ports.tables import Tables
from shared.services.ingest.duplicates import Finishing
from shared.services.ingest.job import Stamp
from shared.services.ingest.row_stage import StagedTable

if TYPE_CHECKING:
    import pyarrow as pa

REJECTED_BATCH = 131_072  # rows per batch streamed from DuckDB to the Delta writer


def rejected_rows(con: Any, tables: Tables, staged: StagedTable, fin: Finishing, stamp: Stamp, *,
                  window: str | None = None) -> Iterator[pa.Table]:
    """This table's rejected rows, in dump order, as a stream of tables (none when there are none): rows set
    aside by row-level rules as read; duplicates and changed lines as parsed (the values of a duplicate are, by
    definition, those of the copy kept). A changed line names the dump whose version the lake kept
    (``kept_dump_id``). ``window``: only the window was read (see :func:`_not_rejected_before`). Call after
    the curated rows were built: the rows the duplicate stage and the lake comparison set aside are spilled
    meanwhile."""
    table, name = staged.table, staged.table.name
    fin.counts["rejected_written"] = 0
    if not fin.counts["rejected"]:
        return iter(())
    reasons = "CASE reason_code " + " ".join(
        f"WHEN '{r.code}' THEN '{r.description.replace(chr(39), chr(39) * 2)}'" for r in RULES) + " END"
    parts = []
    if staged.rejected_raw.exists():
        parts.append(f"SELECT * FROM read_parquet('{staged.rejected_raw}')")
    if fin.spilled():
        as_text = ", ".join(f"CAST(p_{c} AS VARCHAR) AS {q(c)}" for c in table.column_names)
        parts.append(f"SELECT _row, {as_text}, reason_code FROM read_parquet('{fin.spill}') "
                     f"JOIN dropped_{name} USING (_row)")
    # Two steps: DuckDB (2.0) ran out of memory sorting a UNION whose side joins the dropped rows (a dump with
    # a million duplicate lines); it sorts one file within its limit, spilling to disk.
    unsorted = staged.keys.with_name(f"{name}.rejected-unsorted.parquet")
    con.execute(f"COPY (SELECT * FROM ({' UNION ALL BY NAME '.join(parts)})) TO '{unsorted}' "
                "(FORMAT parquet, COMPRESSION lz4)")
    columns = ", ".join(f"CAST(r.{q(c)} AS VARCHAR) AS {q(c)}" for c in table.column_names)
    kept = (f"LEFT JOIN match_{name} m USING (_row)" if table.fact else "")
    fresh = _not_rejected_before(con, tables, table, stamp, window=window)
    sql = (f"SELECT '{stamp.store_id}' AS store_id, _row AS row_number, {columns}, reason_code, {reasons} AS reason, "
           f"'{stamp.dump_id}' AS dump_id, {'m.kept_dump_id' if table.fact else 'NULL::VARCHAR'} AS kept_dump_id "
           f"FROM read_parquet('{unsorted}') r {kept} WHERE {fresh} ORDER BY _row")
    if table.fact:  # changes not reported before (a change seen again on a later night was reported then)
        fin.counts["changed_written"] = 0
    return _counted(con.sql(sql).to_arrow_reader(REJECTED_BATCH), fin.counts, fact=table.fact)


def _counted(reader: pa.RecordBatchReader, counts: dict, *, fact: bool) -> Iterator[pa.Table]:
    """The rejected rows as tables, counted into ``rejected_written`` (and ``changed_written``) as they pass:
    the commit takes every row before the manifest is written, and the sort runs once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    changed = string_scalar("changed_since_ingested")
    for batch in reader:
        counts["rejected_written"] += batch.num_rows
        if fact:
            counts["changed_written"] += int(pc.sum(pc.equal(batch.column("reason_code"), changed)).as_py() or 0)
        yield pa.Table.from_batches([batch])


def _not_rejected_before(con: Any, tables: Tables, table: Table, stamp: Stamp, *, window: str | None) -> str:
    """A condition on the rejected rows (alias ``r``) that keeps those the store's rejected table does not
    hold yet from another dump (same values as text, same reason); ``true`` when there is no such table.
    ``window``: only the window was read (its rows' event time, as text, is after this mark), so only the
    rejected rows of the window can be the same."""
    cols = ", ".join(q(c) for c in table.column_names)
    where = f"store_id = {literal(stamp.store_id)} AND dump_id <> {literal(stamp.dump_id)}"
    if window is not None:
        where += f" AND {table.event_time} > {literal(window)}"
    prior = tables.query(f"SELECT DISTINCT {cols}, reason_code FROM t WHERE {where}", t=layout.rejected(table.name))
    if prior is None:
        return "true"
    con.register("prior_stream", prior)
    con.execute(f"CREATE OR REPLACE TEMP TABLE prior_{table.name} AS SELECT * FROM prior_stream")
    con.unregister("prior_stream")
    same = " AND ".join(f"p.{q(c)} IS NOT DISTINCT FROM CAST(r.{q(c)} AS VARCHAR)" for c in table.column_names)
    return f"NOT EXISTS (SELECT 1 FROM prior_{table.name} p WHERE {same} AND p.reason_code = r.reason_code)"


__all__ = ["REJECTED_BATCH", "rejected_rows"]
