"""data_quality: the manifests of dumps a run has not seen, as rows (per dump), and the days those dumps added
sale lines to (what the daily outputs must recompute)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from shared.core import layout
from shared.core.aggregates import arrow_schema, data_quality_rows
from shared.core.manifest import Manifest, TableCounts
from shared.core.sql import literal, sql_list
from shared.services.aggregates.days import parse_ts
from shared.services.aggregates.run import Run
from shared.services.aggregates.state import StoreState


def add_manifests(run: Run, store: str, st: StoreState, dump_ids: Iterable[str]) -> set[str]:
    """Turn the manifests of dumps not seen before into data_quality rows and remember the dumps; returns
    the days they added sale lines to."""
    import pyarrow as pa

    rows: list[dict] = []
    days: set[str] = set()
    new = sorted(set(dump_ids) - set(st.dumps))
    for dump_id in new:
        path = layout.manifest(store, dump_id)
        manifest = Manifest.from_json(run.lake.get_bytes(path), where=path)
        rows += _quality_rows(manifest)
        tables = manifest.tables
        written = days_written(run, store, dump_id, tables.get("sales"))
        st.dumps[dump_id] = {"snapshot_at": manifest.snapshot_at, "days": written,
                             "items": tables["items"].curated if "items" in tables else 0,
                             "vendors": tables["vendors"].curated if "vendors" in tables else 0}
        days.update(written)
    where = f"store_id = {literal(store)}"
    if new or run.full:  # a full rebuild also clears rows of dumps whose manifests are gone
        run.writer.replace("data_quality", pa.Table.from_pylist(rows, schema=arrow_schema("data_quality")),
                           where if run.full else f"{where} AND dump_id IN {sql_list(new)}")
    run.result.manifests_added += len(new)
    return days


def _quality_rows(manifest: Manifest) -> list[dict]:
    """The manifest's data_quality rows, dates and times as Arrow takes them."""
    return [{**r, "date": date.fromisoformat(r["date"]), "snapshot_at": parse_ts(r["snapshot_at"]),
             "ingested_at": parse_ts(r["ingested_at"])} for r in data_quality_rows(manifest)]


def days_written(run: Run, store: str, dump_id: str, sales: TableCounts | None) -> dict[str, int]:
    """The UTC days the dump added sale lines to, with how many: from its manifest, or (a manifest without
    them, from before they were recorded) counted in curated/sales."""
    if sales is None or not (sales.written if sales.written is not None else sales.curated):
        return {}
    if sales.days_written:  # a dump that wrote lines records their days (older manifests did not)
        return {d: n for d, n in sales.days_written.items() if n}
    found = run.tables.read(f"SELECT CAST(date AS VARCHAR) AS day, count(*) AS n FROM s WHERE store_id = "
                            f"{literal(store)} AND dump_id = {literal(dump_id)} GROUP BY date",
                            s=layout.curated("sales"))
    return {} if found is None else dict(zip(found.column("day").to_pylist(), found.column("n").to_pylist(),
                                             strict=True))


__all__ = ["add_manifests", "days_written"]
