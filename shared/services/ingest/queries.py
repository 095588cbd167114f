"""What the ingest asks the dump reader for: each canonical table's query (the store's mapping, else the
dump's own table), narrowed to the window on a window night, and the history digests (see history.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.core.mapping import Mapping
from shared.core.schema import READ_ORDER, TABLES
from shared.ports.dumps import DumpRejected
from shared.services.ingest.history import HistoryCheck, ReadPlan, digest_job, window_sql
from shared.services.ingest.job import DumpJob

FindTable = Callable[[str], "dict | None"]
"""The dump's table or view of a name, as the reader lists it (``DumpInfo.find``)."""


def table_query(find: FindTable, mapping: Mapping, name: str) -> tuple[str, set | None] | None:
    """The query that reads canonical table ``name`` (the mapping's, else ``SELECT *`` of the dump's table)
    and the dump's columns when it is the latter; None for an optional table the dump lacks."""
    table = TABLES[name]
    query = mapping.query_for(name)
    if query is not None:
        return query, None
    found = find(name)
    if found is None:
        if table.required:
            raise DumpRejected("missing_table", f"the dump has no table {name!r} (required: "
                               f"{', '.join(t for t in READ_ORDER if TABLES[t].required)}); "
                               "if the store's software names it differently, use a mapping file")
        return None
    if found.get("error"):
        raise DumpRejected("bad_query", f"{found['type']} {found['name']!r} cannot be read: {found['error']}")
    return f'SELECT * FROM "{found["name"].replace(chr(34), chr(34) * 2)}"', {c.lower() for c in found["columns"]}


def reader_jobs(find: FindTable, mapping: Mapping, plans: dict[str, ReadPlan], only: str | None = None,
                with_digest: bool = False) -> list[dict]:
    """The reader's jobs: each table's rows, a fact table read as a window narrowed to it; ``with_digest``:
    after a table read whole, its history digest too. ``only``: that table alone."""
    jobs = []
    for name in READ_ORDER:
        if (only is not None and name != only) or (found := table_query(find, mapping, name)) is None:
            continue
        query, present = found
        table, plan = TABLES[name], plans.get(name)
        rows = {"table": name, "sql": query, "want": list(table.column_names),
                "required": list(table.required_columns), "numeric": [c.name for c in table.columns if c.numeric]}
        if plan is not None and plan.incremental:
            rows["sql"] = window_sql(table, query, plan.hwm)
        jobs.append(rows)
        if plan is not None and with_digest and not plan.incremental:
            jobs.append(digest_job(table, query, plan.hwm, present))
    return jobs


def history_check(job: DumpJob, db: Path, plans: dict[str, ReadPlan]) -> HistoryCheck | None:
    """The history digests of ``plans``' tables, computed in the background by a reader of their own (None:
    no table to check)."""
    def jobs(find: FindTable) -> list[dict]:
        found = {name: table_query(find, job.mapping, name) for name in plans}
        return [digest_job(TABLES[name], q[0], plans[name].hwm, q[1]) for name, q in found.items() if q is not None]

    return HistoryCheck(db, job.limits.read, jobs, open_dump=job.engines.open_dump) if plans else None


__all__ = ["history_check", "reader_jobs", "table_query"]
