"""Memory footprint guards for ingestion.

Allocator: the Functions app and the CLI run pyarrow on the C library's allocator
(``ARROW_DEFAULT_MEMORY_POOL=system``, :func:`shared.settings.configure_process`), and so does the dump
reader's child; pyarrow's bundled mimalloc kept 40-60 MB of freed batches at a 5M-line ingest's peak.

pyarrow imports pandas (~40 MB resident, ~0.2 s) the first time it converts a Python object into Arrow
(``pa.array([...])``, ``pa.scalar(...)``, a Python value handed to a compute function, ``as_py()`` of a
zoned timestamp). Neither the ingest process nor the dump reader's child needs pandas; these tests fail
when a change brings the conversion back (it happened once: the child grew from 112 to 158 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.local.generator import generate_store

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_ingest_never_imports_pandas(tmp_path):
    # A generated dump has every kind of dirty row, duplicates (the rejected file) and flags.
    generate_store(tmp_path / "s.sqlite", "S1", sales_lines=3000)
    found = run_python(f"""
import json, sys
from pathlib import Path
from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.services.ingest import ingest_dump
lake = FolderLake(Path({str(tmp_path / 'lake')!r}))
results = [ingest_dump(Path({str(tmp_path / 's.sqlite')!r}), "S1", lake=lake, telemetry=MemoryTelemetry(),
                       scratch=Path({str(tmp_path)!r})).status for _ in range(2)]
print(json.dumps({{"results": results, "pandas": "pandas" in sys.modules}}))
""")
    assert found == {"results": ["ingested", "already_ingested"], "pandas": False}


def test_inventory_ingest_with_its_stock_rebase_never_imports_pandas(tmp_path):
    generate_store(tmp_path / "s.sqlite", "S1", sales_lines=3000)
    found = run_python(f"""
import json, os, sys
os.environ["INVENTORY_HOME"] = {str(tmp_path / 'home')!r}
from shared.local.cli import main
code = main(["ingest", {str(tmp_path / 's.sqlite')!r}, "--store", "S1", "--quiet"])
print(json.dumps({{"exit": code, "pandas": "pandas" in sys.modules}}))
""")
    assert found == {"exit": 0, "pandas": False}


def test_the_dump_reader_child_never_imports_pandas(tmp_path):
    # The child's table streaming, run in one process over a dump with NULL-only batches, one-character
    # values (the NULL marker's fast path), numbers, text and a blob.
    generate_store(tmp_path / "s.sqlite", "S1", sales_lines=3000)
    import sqlite3

    con = sqlite3.connect(tmp_path / "s.sqlite")
    con.execute("DROP TABLE IF EXISTS receipts")
    con.execute("CREATE TABLE receipts (receipt_id TEXT, sku TEXT, qty, received_at TEXT, vendor_id TEXT)")
    con.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, ?)",
                    [(f"r{i}", "x", 1 if i % 3 else "2.5", "2026-11-26 08:00:00", None if i < 50 else X)
                     for i, X in ((i, b"\xff" if i == 70 else "V") for i in range(100))])
    con.commit()
    con.close()
    found = run_python(f"""
import json, sys
import adbc_driver_manager, adbc_driver_sqlite
from shared.adapters import sqlite_dump_child as child
from shared.core.schema import TABLES
path = {str(tmp_path / 's.sqlite')!r}
limits = {{"max_cell_bytes": 1 << 20, "max_rows_per_table": 10**9, "batch_rows": 40}}
with adbc_driver_sqlite.connect("file:" + path + "?mode=ro&immutable=1") as db, \\
        adbc_driver_manager.AdbcConnection(db) as con, open("/dev/null", "wb") as out:
    for t in TABLES.values():
        job = {{"table": t.name, "sql": f"SELECT * FROM {{t.name}}", "want": list(t.column_names),
               "source_columns": list(t.column_names),
               "numeric": [c.name for c in t.columns if c.numeric]}}
        child.stream_table(con, job, limits, out)
print(json.dumps({{"pandas": "pandas" in sys.modules}}))
""")
    assert found == {"pandas": False}


def test_the_app_the_cli_and_the_reader_child_allocate_with_the_system_allocator(tmp_path):
    generate_store(tmp_path / "s.sqlite", "S1", sales_lines=300)
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    found = json.loads(subprocess.run([sys.executable, "-c", f"""
import json, sys
import function_app  # noqa: F401 - its import configures the process
from shared.adapters.sqlite_dump import DumpReader
app_pool = __import__("pyarrow").default_memory_pool().backend_name
with DumpReader(__import__("pathlib").Path({str(tmp_path / 's.sqlite')!r})) as reader:
    child_env = open(f"/proc/{{reader.proc.pid}}/environ", "rb").read().split(b"\\0")
print(json.dumps({{"app": app_pool, "child": b"ARROW_DEFAULT_MEMORY_POOL=system" in child_env}}))
"""], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True).stdout.splitlines()[-1])
    assert found == {"app": "system", "child": True}
    cli = subprocess.run([sys.executable, "-c", """
import contextlib, io, os
from shared.local.cli import main
before = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
print(before, os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))
"""], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert cli.stdout.split() == ["None", "system"]  # importing the CLI changes nothing; main() configures
    # An explicit choice wins.
    mine = subprocess.run([sys.executable, "-c", "import function_app, pyarrow; "
                           "print(pyarrow.default_memory_pool().backend_name)"], cwd=ROOT,
                          env={**env, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}, capture_output=True, text=True,
                          timeout=60, check=True)
    assert mine.stdout.strip() == "jemalloc"
