"""Broken mapping files are refused with a MappingError naming the file and the problem, never a traceback; a
mapping query ending in a -- comment is read like any other (docs/ingestion.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.mapping import MappingError, parse_mapping
from shared.ports.dumps import ReadLimits
from shared.services.ingest import IngestLimits, ingest_dump, load_store_mapping
from tests.support.dumps import make_dump

ROOT = Path(__file__).resolve().parents[2]
LATIN1 = "# mapping for the Caf\u00e9 store\ntimezone = 'Europe/Lisbon'\n".encode("latin-1")

# (file text, what the message must say)
BAD_SHAPES = [
    pytest.param("tables = 5\n", "tables must be [tables.<name>] sections", id="tables-int"),
    pytest.param("tables = ['SELECT 1']\n", "not an array", id="tables-array"),
    pytest.param("tables = 'SELECT 1'\n", "not a string", id="tables-string"),
    pytest.param("tables = []\n", "not an array", id="tables-empty-array"),
    pytest.param("tables = false\n", "not a boolean", id="tables-bool"),
    pytest.param("[[tables]]\nquery = 'SELECT 1'\n", "not an array", id="tables-array-of-tables"),
    pytest.param("[tables]\nsales = 3\n", "tables.sales must be a [tables.sales] section", id="entry-int"),
    pytest.param("[tables]\nsales = 'SELECT 1'\n", "tables.sales must be a [tables.sales] section", id="entry-string"),
    pytest.param("[tables]\nsales = ['SELECT 1']\n", "not an array", id="entry-array"),
    pytest.param("[tables.sales]\nquery = 3\n", "needs query = \"SELECT ...\", not a number", id="query-int"),
    pytest.param("[tables.sales]\nquery = ['SELECT 1']\n", "not an array", id="query-array"),
    pytest.param("[tables.sales]\nquery = { sql = 'SELECT 1' }\n", "not a table", id="query-table"),
    pytest.param("[tables.sales]\n", "needs query", id="query-missing"),
    pytest.param("[tables.sales]\nqurey = 'SELECT 1'\n", "'qurey' (did you mean 'query'?)", id="query-typo"),
    pytest.param("[tables.sales]\nquery = 'SELECT 1'\ncols = 3\n", "unknown key(s) 'cols'", id="entry-unknown-key"),
    pytest.param("timezone = 5\n", "timezone must be a string", id="tz-int"),
    pytest.param("timezone = ['Europe/Lisbon']\n", "timezone must be a string", id="tz-array"),
    pytest.param("timezone = 1979-05-27\n", "not a date/time", id="tz-date"),
    pytest.param("timezone = { name = 'UTC' }\n", "not a table", id="tz-table"),
    pytest.param("timzone = 'Europe/Lisbon'\n", "'timzone' (did you mean 'timezone'?)", id="timezone-typo"),
    pytest.param("[table.sales]\nquery = 'SELECT 1'\n", "'table' (did you mean 'tables'?)", id="tables-typo"),
    # a folder of the zone database (zoneinfo: IsADirectoryError), a name too long for a file (OSError)
    pytest.param("timezone = 'Europe'\n", "unknown time zone 'Europe'", id="tz-folder"),
    pytest.param(f"timezone = '{'x' * 5000}'\n", "unknown time zone", id="tz-too-long"),
    # zones zoneinfo knows and DuckDB does not
    pytest.param("timezone = 'posix/Europe/Lisbon'\n", "unknown time zone 'posix/Europe/Lisbon'", id="tz-posix"),
    pytest.param("timezone = 'right/UTC'\n", "unknown time zone 'right/UTC'", id="tz-right"),
    pytest.param("timezone = 'localtime'\n", "unknown time zone 'localtime'", id="tz-localtime"),
    pytest.param("timezone = \"Europe/Lisbon'; SET x = '1\"\n", "unknown time zone", id="tz-quote"),
]


@pytest.mark.parametrize("text, message", BAD_SHAPES)
def test_a_malformed_mapping_is_a_mapping_error_naming_the_file(text, message):
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, source="m.toml")
    assert str(caught.value).startswith("m.toml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("text, message", BAD_SHAPES)
def test_the_blob_triggers_mapping_from_the_lake_raises_a_mapping_error_too(tmp_path, text, message):
    lake = FolderLake(tmp_path / "lake")
    lake.put_bytes("config/mappings/store=S1.toml", text.encode())
    with pytest.raises(MappingError, match=r"store=S1\.toml: "):
        load_store_mapping(lake, "S1")


def test_a_mapping_file_that_is_not_utf8_is_a_mapping_error():
    with pytest.raises(MappingError, match=r"^m\.toml: not UTF-8 text \(byte 21 is 0xe9\); save .* as UTF-8"):
        parse_mapping(LATIN1, source="m.toml")
    assert parse_mapping(LATIN1.decode("latin-1").encode()).timezone == "Europe/Lisbon"


def test_a_lake_mapping_that_is_not_utf8_is_a_mapping_error(tmp_path):
    lake = FolderLake(tmp_path / "lake")
    lake.put_bytes("config/mappings/store=S1.toml", LATIN1)
    with pytest.raises(MappingError, match="not UTF-8"):
        load_store_mapping(lake, "S1")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Lisbon", "America/Los_Angeles", "Asia/Kolkata", "Etc/GMT+5"])
def test_zones_both_zoneinfo_and_duckdb_know_are_accepted(zone):
    assert parse_mapping(f"timezone = '{zone}'\n").timezone == zone


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "mappings").glob("*.toml")), ids=lambda p: p.name)
def test_the_example_mappings_are_valid(path):
    assert parse_mapping(path.read_bytes(), source=str(path)).queries


# -- a query ending in a -- comment ------------------------------------------------------------------------

COMMENTED = '''timezone = "Europe/Lisbon"

[tables.sales]
query = """
SELECT sale_id, line_no, sku, qty, unit_price, sold_at
FROM sales   -- every line, the POS keeps no voids here
"""

[tables.items]
query = "SELECT * FROM items -- all of them"
'''


@pytest.mark.parametrize("batch_rows", [65_536, 2])
def test_a_mapping_query_ending_in_a_line_comment_is_ingested(tmp_path, batch_rows):
    # With batches of 2 rows, the text in the third sale's qty makes the reader re-read the rest of the table as
    # text (the same query again, with OFFSET): both wrappers must end the comment before their parenthesis.
    dump = make_dump(tmp_path / "d.sqlite", "UPDATE sales SET qty = 'two' WHERE sale_id = '2';")
    lake = FolderLake(tmp_path / "lake")
    result = ingest_dump(dump, "S1", lake=lake, telemetry=MemoryTelemetry(),
                         limits=IngestLimits(read=ReadLimits(batch_rows=batch_rows)),
                         mapping=parse_mapping(COMMENTED, source="m.toml"))
    assert result.status == "ingested", result.reason
    sales = result.manifest["tables"]["sales"]
    assert (sales["input"], sales["curated"], sales["by_rule"]) == (3, 2, {"bad_number": 1})
    assert result.manifest["tables"]["items"]["curated"] == 2


# -- the command line -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (b"tables = 5\n", "tables must be [tables.<name>] sections"),
    (b"[tables]\nsales = 3\n", "tables.sales must be a [tables.sales] section"),
    (LATIN1, "not UTF-8 text"),
    (b"timezone = 'posix/Europe/Lisbon'\n", "unknown time zone 'posix/Europe/Lisbon'"),
], ids=["tables-int", "table-entry-int", "latin-1", "posix-zone"])
def test_inventory_ingest_names_a_malformed_mapping_and_exits_1(tmp_path, data, message):
    mapping = tmp_path / "m.toml"
    mapping.write_bytes(data)
    env = {**os.environ, "INVENTORY_HOME": str(tmp_path / "home"), "TELEMETRY_CONSOLE": "0"}
    for name in ("LAKE", "LAKE__blobServiceUri"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "shared", "ingest", str(make_dump(tmp_path / "d.sqlite")),
                             "--store", "S1", "--mapping", str(mapping)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"inventory: {mapping}: " in result.stderr and message in result.stderr
    assert not (tmp_path / "home" / "lake" / "curated").exists()
