"""The Synapse serverless views read Delta tables, every one of them: a view over loose Parquet files would show
rows of commits that never happened (an ingest still writing, an aggregates run that died) and rows a later
commit replaced."""

from __future__ import annotations

import re
from pathlib import Path

from shared.core.aggregates import OUTPUTS, curated_columns, synapse_views_sql
from shared.core.schema import TABLES

ROOT = Path(__file__).resolve().parents[2]
VIEW = re.compile(r"CREATE OR ALTER VIEW (\w+)\.(\w+) AS\n(.*?)\nGO\n", re.S)
ROWSET = re.compile(r"OPENROWSET\(\s*BULK '([^']*)',\s*DATA_SOURCE = 'inventory_lake',\s*FORMAT = '(\w+)'\s*\)"
                    r"\s*WITH \((.*?)\) AS r;", re.S)


def views(text: str) -> dict[str, str]:
    return {f"{schema}.{name}": body for schema, name, body in VIEW.findall(text)}


def test_every_curated_table_and_aggregate_has_a_view_over_its_delta_table() -> None:
    text = (ROOT / "infra/synapse/02_views.sql").read_text()
    assert text == synapse_views_sql(), "infra/synapse/02_views.sql is stale (see shared.core.aggregates)"
    found = views(text)
    wanted = {f"agg.{name}": o.path for name, o in OUTPUTS.items()}
    wanted |= {f"curated.{name}": f"curated/{name}" for name in TABLES}
    for view, table in wanted.items():
        assert view in found, f"no view {view}"
        (rowset,) = ROWSET.findall(found[view])
        bulk, fmt, _columns = rowset
        assert (bulk, fmt) == (f"{table}/", "DELTA"), f"{view} reads {bulk!r} as {fmt}"
    # No view reads files another way: every OPENROWSET is one of the above, none picks files by path.
    assert text.count("OPENROWSET(") == len(wanted) == text.count("FORMAT = 'DELTA'")
    assert "FORMAT = 'PARQUET'" not in text and ".parquet" not in text and "filepath(" not in text


def test_the_views_declare_every_column_of_their_tables() -> None:
    found = views(synapse_views_sql())
    for name, o in OUTPUTS.items():
        (rowset,) = ROWSET.findall(found[f"agg.{name}"])
        assert re.findall(r"\[(\w+)\]", rowset[2]) == list(o.column_names), name
    for name in TABLES:
        (rowset,) = ROWSET.findall(found[f"curated.{name}"])
        assert re.findall(r"\[(\w+)\]", rowset[2]) == [c for c, _ in curated_columns(name)], name
    # The snapshot tables' _latest views pick each store's latest dump from their curated view.
    for name, t in TABLES.items():
        assert (f"curated.{name}_latest" in found) == (not t.fact)
