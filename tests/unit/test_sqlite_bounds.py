"""The bound a dump's own size puts on reading it (sqlite_dump_child.check_bounded, docs/hostile-dumps.md).

A read of stored rows yields at most as many rows as the file can store (one per 5 bytes) and takes at most its
program's length in SQLite steps per such row. Hostile queries break one or the other within a fraction of a
second; legitimate ones, the densest table SQLite can store included, stay inside both."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from shared.adapters import sqlite_dump_child as child
from shared.adapters.sqlite_dump import DumpReader

LIMITS = {"max_cell_bytes": 1 << 20, "max_rows_per_table": 10**9, "batch_rows": 65_536}
ENDLESS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"


def make_db(path: Path, script: str) -> Path:
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()
    return path


@pytest.fixture
def db(tmp_path):
    """A small store file: 1,000 numbers, 3 sale lines, 2 items, and views hostile and not."""
    return make_db(tmp_path / "d.sqlite", f"""
        CREATE TABLE d(n INTEGER);
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 1000) INSERT INTO d SELECT n FROM r;
        CREATE TABLE sales(sale_id, sku, qty);
        INSERT INTO sales VALUES ('1', 'A-1', 2), ('2', 'A-2', 1), ('3', 'A-1', 5);
        CREATE TABLE items(sku, name);
        INSERT INTO items VALUES ('A-1', 'Milk'), ('A-2', 'Bread');
        CREATE VIEW plain AS SELECT sale_id, sku, qty FROM sales;
        CREATE VIEW joined AS SELECT s.sale_id, i.name AS sku, s.qty FROM sales s JOIN items i ON i.sku = s.sku;
        CREATE VIEW sorted AS SELECT * FROM sales ORDER BY qty DESC;
        CREATE VIEW endless AS {ENDLESS} SELECT n AS sale_id, 'A-1' AS sku, 1 AS qty FROM r;
        CREATE VIEW endless_empty AS {ENDLESS} SELECT n AS sale_id, 'A-1' AS sku, 1 AS qty FROM r WHERE n < 0;
        CREATE VIEW endless_sorted AS {ENDLESS} SELECT n AS sale_id, 'A-1' AS sku, 1 AS qty FROM r ORDER BY n DESC;
        CREATE VIEW crossed AS SELECT a.n AS sale_id, b.n AS sku, c.n AS qty FROM d a, d b, d c;
        CREATE VIEW crossed_empty AS SELECT a.n AS sale_id, b.n AS sku, c.n AS qty FROM d a, d b, d c
            WHERE a.n + b.n + c.n < 0;
        CREATE VIEW crossed_count AS SELECT count(*) AS sale_id, 'A-1' AS sku, 1 AS qty FROM d a, d b, d c;
        CREATE VIEW endless_column AS SELECT sale_id, sku, ({ENDLESS} SELECT count(*) FROM r) AS qty FROM sales;
        """)


def opened(path: Path) -> tuple[sqlite3.Connection, child.FileBounds]:
    """The child's checking connection and bounds, as ``main`` sets them up."""
    con = child.open_checked(str(path), LIMITS)
    bounds = child.file_bounds(con)
    con.set_authorizer(child.deny_writes)
    return con, bounds


def job_for(con: sqlite3.Connection, sql: str, want: tuple[str, ...] = ("sale_id", "sku", "qty")) -> dict:
    job = {"table": "sales", "sql": sql, "want": list(want), "required": [], "numeric": []}
    job["source_columns"] = child.resolve_columns(job, child.check_query(con, "sales", sql))
    return job


def test_the_bounds_come_from_the_file_size(db):
    _, bounds = opened(db)
    size = db.stat().st_size
    assert bounds.file_bytes == size
    assert bounds.rows == size // 5
    assert bounds.steps(100) == 100 * (size // 5 + 1)


@pytest.mark.parametrize("sql, plain", [
    ('SELECT * FROM "sales"', True),
    ("SELECT * FROM plain", True),  # a view SQLite flattens into a scan of its table
    ("SELECT * FROM (SELECT * FROM sales) WHERE qty > 1", True),
    ("SELECT count(*), total(qty) FROM (SELECT * FROM sales) WHERE (qty <= 1 OR qty IS NULL)", True),
    ("SELECT * FROM joined", False),
    ("SELECT * FROM sorted", False),
    ("SELECT * FROM endless", False),
    ("SELECT * FROM crossed", False),
    ("SELECT * FROM endless_column", False),
    ("SELECT a.sale_id FROM sales a, sales b", False),
    ("SELECT sale_id, (SELECT max(qty) FROM sales) FROM sales", False),
    ("SELECT sale_id FROM sales UNION ALL SELECT sale_id FROM sales", False),
    ("SELECT 1", False),
])
def test_one_pass_over_one_stored_table_needs_no_trial_run(db, sql, plain):
    con, _ = opened(db)
    assert child.reads_one_stored_table(con, sql) is plain


def test_an_index_read_and_a_multi_index_or_are_one_pass(tmp_path):
    path = make_db(tmp_path / "i.sqlite", "CREATE TABLE s(a, t); CREATE INDEX s_t ON s(t);"
                                          "INSERT INTO s VALUES (1, 'x'), (2, 'y');")
    con, _ = opened(path)
    assert child.reads_one_stored_table(con, "SELECT * FROM s WHERE t > 'a'")
    plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM s WHERE t <= 'x' OR t IS NULL")]
    assert "MULTI-INDEX OR" in plan
    assert child.reads_one_stored_table(con, "SELECT count(*) FROM s WHERE t <= 'x' OR t IS NULL")
    assert not child.reads_one_stored_table(con, "SELECT a.a FROM s a JOIN s b ON b.t = a.t")


@pytest.mark.parametrize("view", ["plain", "joined", "sorted"])
def test_legitimate_views_pass(db, view):
    con, bounds = opened(db)
    child.check_bounded(con, job_for(con, f"SELECT * FROM {view}"), bounds)


@pytest.mark.parametrize("view", ["endless", "endless_empty", "endless_sorted", "crossed", "crossed_empty",
                                  "crossed_count", "endless_column"])
def test_hostile_views_are_refused_at_once(db, view):
    con, bounds = opened(db)
    job = job_for(con, f"SELECT * FROM {view}")
    started = time.monotonic()
    with pytest.raises(child.Fail) as failed:
        child.check_bounded(con, job, bounds)
    assert time.monotonic() - started < 5
    assert failed.value.code == "unbounded_query"
    assert "sales" in failed.value.detail and "nothing of the dump was ingested" in failed.value.detail


def test_a_history_digest_over_a_cross_join_is_refused(db):
    # An aggregate yields one row: only the step budget sees the billion rows it counts.
    con, bounds = opened(db)
    job = job_for(con, "SELECT count(*) AS d0 FROM (SELECT * FROM crossed) WHERE (qty <= 5 OR qty IS NULL)",
                  want=("d0",))
    with pytest.raises(child.Fail, match="did not finish within"):
        child.check_bounded(con, job, bounds)


def test_more_rows_than_the_file_can_store_is_refused_even_within_the_step_budget(tmp_path):
    # 60 x 60 = 3,600 rows, cheap per row, from a file that can store far fewer: the row bound, not the budget.
    path = make_db(tmp_path / "small.sqlite", "CREATE TABLE d(n); WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL "
                                              "SELECT n + 1 FROM r LIMIT 60) INSERT INTO d SELECT n FROM r;")
    con, bounds = opened(path)
    assert bounds.rows < 3600
    job = job_for(con, "SELECT a.n AS sale_id FROM d a, d b", want=("sale_id",))
    with pytest.raises(child.Fail, match=r"yields 3,600 rows or more, more than the [\d,]+ a [\d,]+-byte"):
        child.check_bounded(con, job, bounds)


def test_the_stream_stops_past_the_rows_the_file_can_store(db):
    # check_bounded refuses such a job first; ADBC runs another SQLite build, so the stream counts too.
    import adbc_driver_manager
    import adbc_driver_sqlite

    job = {"table": "sales", "sql": "SELECT n AS sale_id FROM d", "want": ["sale_id"],
           "source_columns": ["sale_id"], "numeric": []}
    out = io.BytesIO()
    with adbc_driver_sqlite.connect(f"file:{db}?mode=ro&immutable=1") as database, \
            adbc_driver_manager.AdbcConnection(database) as con, pytest.raises(SystemExit):
        child.stream_table(con, job, LIMITS, out, child.FileBounds(500 * child.MIN_ROW_BYTES))
    data = out.getvalue()
    at = data.rindex(b'{"error"')  # the last frame: b"J" + u32 length + JSON
    frame = json.loads(data[at:at + struct.unpack("<I", data[at - 4:at])[0]])
    assert frame["error"] == "unbounded_query" and "1,000 rows or more" in frame["detail"]


@pytest.mark.slow
def test_the_densest_table_sqlite_can_store_passes_through_a_view(tmp_path):
    # 3M rows of one NULL column: 8.3 bytes a row, the fewest SQLite stores a row of a million-row table in
    # (1-byte payload size, 3-byte rowid, 2-byte record, 2-byte cell pointer). Read through a view SQLite
    # cannot flatten (a sort), it is run under the step budget in full: it must pass, every row streamed.
    path = make_db(tmp_path / "dense.sqlite", """
        CREATE TABLE t(x);
        WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 3000000) INSERT INTO t SELECT NULL FROM r;
        CREATE VIEW sorted AS SELECT x AS sale_id FROM t ORDER BY x;""")
    _, bounds = opened(path)
    assert 3_000_000 <= bounds.rows < 2 * 3_000_000  # about as dense as the bound allows
    jobs = [{"table": "sales", "sql": "SELECT * FROM sorted", "want": ["sale_id"], "required": [], "numeric": []},
            {"table": "t", "sql": 'SELECT * FROM "t"', "want": ["x"], "required": [], "numeric": []}]
    started = time.monotonic()
    with DumpReader(path) as reader:
        counts = {name: sum(b.num_rows for b in batches) for name, _, batches in reader.read(jobs)}
    assert counts == {"sales": 3_000_000, "t": 3_000_000}
    assert time.monotonic() - started < 60
