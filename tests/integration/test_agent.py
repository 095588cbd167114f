"""The store agent (inventory_agent.upload_dump) against both of the pipeline's lakes and its own two
destinations, and its snapshot under a live writer.

The store's database is a stand-in with two tables written together in every transaction (orders and
their lines, with a line count and a total on the order), so a copy that mixes two points in time is
caught by a query.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from inventory_agent import (
    AGENT_VERSION,
    AgentError,
    InvalidStoreId,
    NotASQLiteDatabase,
    SnapshotCheckFailed,
    UploadFailed,
    upload_dump,
)
from inventory_agent.destinations import BlobDestination, FolderDestination
from inventory_agent.snapshot import check_snapshot, gzip_deterministically, snapshot_database

from shared.adapters.lake_folder import FolderLake

NOW = datetime(2026, 11, 27, 23, 30, 5, tzinfo=UTC)


# -- a store database ---------------------------------------------------------------------------------


def make_store_db(path: Path, orders: int = 200, *, journal_mode: str = "wal", pad: int = 0) -> Path:
    """A POS-like database: every order has ``line_count`` lines whose qty add up to ``total``."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA journal_mode={journal_mode}")
    con.executescript(
        """
        CREATE TABLE orders (id INTEGER PRIMARY KEY, line_count INTEGER NOT NULL, total INTEGER NOT NULL);
        CREATE TABLE order_lines (order_id INTEGER NOT NULL REFERENCES orders(id), qty INTEGER NOT NULL,
                                  note TEXT);
        CREATE INDEX order_lines_order ON order_lines(order_id);
        """
    )
    rng = random.Random(7)
    con.execute("BEGIN")
    for _ in range(orders):
        _insert_order(con, rng, pad)
    con.execute("COMMIT")
    con.close()
    return path


def _insert_order(con: sqlite3.Connection, rng: random.Random, pad: int = 0) -> None:
    qtys = [rng.randint(1, 9) for _ in range(rng.randint(1, 4))]
    order_id = con.execute(
        "INSERT INTO orders (line_count, total) VALUES (?, ?)", (len(qtys), sum(qtys))
    ).lastrowid
    con.executemany(
        "INSERT INTO order_lines (order_id, qty, note) VALUES (?, ?, ?)",
        [(order_id, q, "x" * pad) for q in qtys],
    )


def inconsistencies(db: Path) -> list[str]:
    """What a torn copy would show: orders whose lines are missing or extra, and orphan lines."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        bad_orders = con.execute(
            """SELECT o.id FROM orders o LEFT JOIN
                   (SELECT order_id, count(*) AS n, sum(qty) AS q FROM order_lines GROUP BY order_id) l
                   ON l.order_id = o.id
               WHERE coalesce(l.n, 0) != o.line_count OR coalesce(l.q, 0) != o.total"""
        ).fetchall()
        orphans = con.execute(
            "SELECT count(*) FROM order_lines WHERE order_id NOT IN (SELECT id FROM orders)"
        ).fetchone()[0]
    finally:
        con.close()
    problems = [f"order {oid} disagrees with its lines" for (oid,) in bad_orders[:5]]
    if orphans:
        problems.append(f"{orphans} lines without their order")
    return problems


def count_orders(db: Path) -> int:
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM orders").fetchone()[0]
    finally:
        con.close()


class Writer(threading.Thread):
    """The store's POS: commits an order with its lines, in one transaction, as fast as it can."""

    def __init__(self, db: Path, max_seconds: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.db, self.max_seconds = db, max_seconds
        self.commits = 0
        self.error: BaseException | None = None
        self._stop_requested = threading.Event()
        self.started_writing = threading.Event()

    def run(self) -> None:
        try:
            con = sqlite3.connect(self.db, isolation_level=None, timeout=60)
            rng = random.Random(11)
            deadline = time.monotonic() + self.max_seconds
            while not self._stop_requested.is_set() and time.monotonic() < deadline:
                con.execute("BEGIN IMMEDIATE")
                _insert_order(con, rng)
                con.execute("COMMIT")
                self.commits += 1
                self.started_writing.set()
            con.close()
        except BaseException as exc:
            self.error = exc
            self.started_writing.set()

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(timeout=90)
        assert not self.is_alive(), "the writer did not stop"
        if self.error:
            raise self.error


def gunzip_to(blob: bytes, target: Path) -> Path:
    target.write_bytes(gzip.decompress(blob))
    return target


# -- upload_dump on both lakes ------------------------------------------------------------------------


def test_upload_lays_out_the_path_and_metadata(lake, tmp_path):
    db = make_store_db(tmp_path / "pos main.db")
    scratch = tmp_path / "scratch"
    calls: list[tuple[int, int]] = []

    result = upload_dump(
        db, "S001", lake, scratch=scratch, now=NOW, progress=lambda d, t: calls.append((d, t))
    )

    assert result.uploaded is True
    assert result.snapshot_at == NOW
    assert result.path == f"raw/store=S001/date=2026-11-27/S001-{result.sha256[:16]}.sqlite.gz"
    blob = lake.get_bytes(result.path)
    assert hashlib.sha256(blob).hexdigest() == result.sha256
    assert len(blob) == result.size
    assert blob[4:8] == b"\0\0\0\0"  # gzip mtime field: no timestamp

    obj = lake.head(result.path)
    assert obj.size == result.size
    restored = gunzip_to(blob, tmp_path / "restored.sqlite")
    assert obj.metadata == {
        "store_id": "S001",
        "sha256": result.sha256,
        "snapshot_at": "2026-11-27T23:30:05Z",
        "agent_version": AGENT_VERSION,
        "source_name": "pos main.db",
        "uncompressed_bytes": str(restored.stat().st_size),
    }
    assert count_orders(restored) == 200
    assert inconsistencies(restored) == []
    with open(restored, "rb") as f:
        header = f.read(20)
    assert header[18:20] == b"\x01\x01", (
        "the snapshot must be a self-contained rollback-journal file, not WAL"
    )

    assert calls[0] == (0, result.size) and calls[-1] == (result.size, result.size)
    assert list(scratch.iterdir()) == [], "scratch files must be cleaned up"


def test_snapshot_time_is_measured_in_utc_when_not_given(lake, tmp_path):
    db = make_store_db(tmp_path / "pos.db")
    before = datetime.now(UTC)
    result = upload_dump(db, "S1", lake, scratch=tmp_path / "scratch")
    after = datetime.now(UTC)
    assert before <= result.snapshot_at <= after
    assert result.snapshot_at.tzinfo is UTC
    assert f"/date={result.snapshot_at.date().isoformat()}/" in result.path
    assert lake.head(result.path).metadata["snapshot_at"].endswith("Z")


def test_reupload_of_an_unchanged_database_is_a_no_op(lake, tmp_path):
    db = make_store_db(tmp_path / "pos.db")
    first = upload_dump(db, "S001", lake, scratch=tmp_path / "scratch", now=NOW)
    sent: list[tuple[int, int]] = []
    second = upload_dump(
        db, "S001", lake, scratch=tmp_path / "scratch", now=NOW, progress=lambda d, t: sent.append((d, t))
    )

    assert first.uploaded is True
    assert second.uploaded is False
    assert (second.path, second.sha256, second.size) == (first.path, first.sha256, first.size)
    assert [o.path for o in lake.list("raw/")] == [first.path]
    assert all(done == 0 for done, _ in sent), "nothing is sent for content already in the lake"


def test_a_changed_database_is_a_new_blob(lake, tmp_path):
    db = make_store_db(tmp_path / "pos.db")
    first = upload_dump(db, "S001", lake, scratch=tmp_path / "scratch", now=NOW)
    con = sqlite3.connect(db, isolation_level=None)
    _insert_order(con, random.Random(1))
    con.close()
    second = upload_dump(db, "S001", lake, scratch=tmp_path / "scratch", now=NOW)

    assert second.uploaded is True
    assert second.sha256 != first.sha256
    assert sorted(o.path for o in lake.list("raw/store=S001/")) == sorted([first.path, second.path])
    assert lake.get_bytes(first.path) != lake.get_bytes(second.path)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, "S 1", "S1\n", None])
def test_invalid_store_ids_are_rejected_before_anything_is_written(lake, tmp_path, bad):
    db = make_store_db(tmp_path / "pos.db")
    scratch = tmp_path / "scratch"
    with pytest.raises(InvalidStoreId, match="invalid store id"):
        upload_dump(db, bad, lake, scratch=scratch, now=NOW)
    assert not scratch.exists()
    assert list(lake.list("")) == []


def test_non_ascii_file_names_are_percent_encoded_in_metadata(lake, tmp_path):
    db = make_store_db(tmp_path / "loja São Paulo 100%.db")
    result = upload_dump(db, "PT-042", lake, scratch=tmp_path / "scratch", now=NOW)
    source_name = lake.head(result.path).metadata["source_name"]
    assert source_name == "loja S%C3%A3o Paulo 100%25.db"
    assert unquote(source_name) == db.name


# -- bad sources --------------------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_clearly(lake, tmp_path):
    not_db = tmp_path / "export.csv"
    not_db.write_text("sku,name\nA-1,Widget\n")
    scratch = tmp_path / "scratch"
    with pytest.raises(NotASQLiteDatabase, match=r"export\.csv is not a SQLite database"):
        upload_dump(not_db, "S001", lake, scratch=scratch, now=NOW)
    assert list(lake.list("raw/")) == []
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_an_empty_file_is_not_a_database(lake, tmp_path):
    empty = tmp_path / "new.db"
    empty.touch()  # SQLite itself would open this as an empty database
    with pytest.raises(NotASQLiteDatabase, match="is empty"):
        upload_dump(empty, "S001", lake, scratch=tmp_path / "scratch", now=NOW)


def test_a_missing_database_names_the_path(lake, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no database file at .*missing\.db"):
        upload_dump(tmp_path / "missing.db", "S001", lake, scratch=tmp_path / "scratch", now=NOW)


def test_a_damaged_database_fails_the_check_before_upload(lake, tmp_path):
    db = make_store_db(tmp_path / "pos.db", orders=2000, journal_mode="delete")
    page_size = 4096
    with open(db, "r+b") as f:  # scribble over the middle of a b-tree page, leave the header alone
        f.seek(5 * page_size + 100)
        f.write(b"\xff" * 2000)
    scratch = tmp_path / "scratch"
    with pytest.raises(SnapshotCheckFailed, match="quick_check"):
        upload_dump(db, "S001", lake, scratch=scratch, now=NOW)
    assert list(lake.list("raw/")) == []
    assert list(scratch.iterdir()) == []


# -- snapshots ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_two_snapshots_of_an_unchanged_database_are_byte_identical(tmp_path, journal_mode):
    db = make_store_db(tmp_path / "pos.db", orders=3000, journal_mode=journal_mode)
    # Keep a connection open like the store software would, with WAL frames not yet checkpointed.
    live = sqlite3.connect(db, isolation_level=None)
    live.execute("UPDATE orders SET total = total WHERE id = 1")  # commits, changes nothing
    digests = []
    for i in range(3):
        snapshot_database(db, tmp_path / f"s{i}.sqlite", pages_per_step=7)
        digests.append(gzip_deterministically(tmp_path / f"s{i}.sqlite", tmp_path / f"s{i}.gz")[0])
        if journal_mode == "wal":
            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # pages move from the WAL to the file
    live.close()
    assert len(set(digests)) == 1
    assert (tmp_path / "s0.sqlite").read_bytes() == (tmp_path / "s2.sqlite").read_bytes()


def test_the_source_database_is_left_untouched(tmp_path, lake):
    db = make_store_db(tmp_path / "pos.db", orders=500, journal_mode="delete")
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    upload_dump(db, "S001", lake, scratch=tmp_path / "scratch", now=NOW)
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert list(tmp_path.glob("pos.db-*")) == [], "no journal or WAL files left beside the source"


def test_snapshot_reports_progress_in_pages(tmp_path):
    db = make_store_db(tmp_path / "pos.db", orders=3000)
    steps: list[tuple[int, int]] = []
    snapshot_database(
        db, tmp_path / "copy.sqlite", pages_per_step=5, progress=lambda d, t: steps.append((d, t))
    )
    assert len(steps) > 3
    assert steps[-1][0] == steps[-1][1] > 0
    check_snapshot(tmp_path / "copy.sqlite")


@pytest.mark.slow
@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_snapshot_is_consistent_while_a_writer_keeps_committing(tmp_path, journal_mode):
    """The copy is one point in time although orders and lines are committed throughout it.

    Small steps and a pause after each give the writer hundreds of chances to commit mid-copy. A plain
    step-wise backup would restart after each of those commits and never finish while the writer runs;
    a copy that did not restart would mix orders from one moment with lines from another.
    """
    db = make_store_db(tmp_path / "pos.db", orders=5000, journal_mode=journal_mode, pad=300)
    initial_orders = count_orders(db)
    steps: list[tuple[int, int]] = []

    def slow_progress(done: int, total: int) -> None:
        steps.append((done, total))
        time.sleep(0.002)

    writer = Writer(db, max_seconds=30)  # a snapshot that cannot finish while writes go on fails in 30 s
    writer.start()
    assert writer.started_writing.wait(10)
    commits_before = writer.commits
    started = time.monotonic()
    snapshot_database(db, tmp_path / "copy.sqlite", pages_per_step=8, progress=slow_progress)
    elapsed = time.monotonic() - started
    commits_during = writer.commits - commits_before
    still_writing = writer.is_alive()
    writer.stop()

    assert still_writing, "the snapshot only finished because the writer gave up"
    assert len(steps) > 50, f"the copy took {len(steps)} steps; make the database bigger"
    assert elapsed < 25
    copy = tmp_path / "copy.sqlite"
    check_snapshot(copy)
    assert inconsistencies(copy) == []
    assert count_orders(copy) >= initial_orders
    assert writer.commits > 0
    if journal_mode == "wal":
        # WAL: readers do not block writers, so the store keeps selling during the copy.
        assert commits_during > 10, f"only {commits_during} commits during the copy: the writer was blocked"
        assert count_orders(db) > count_orders(copy)


def test_upload_under_a_live_writer_is_consistent(lake, tmp_path):
    db = make_store_db(tmp_path / "pos.db", orders=3000, pad=100)
    writer = Writer(db, max_seconds=60)
    writer.start()
    assert writer.started_writing.wait(10)
    try:
        result = upload_dump(db, "S001", lake, scratch=tmp_path / "scratch", now=NOW)
    finally:
        writer.stop()
    restored = gunzip_to(lake.get_bytes(result.path), tmp_path / "restored.sqlite")
    check_snapshot(restored)
    assert inconsistencies(restored) == []
    assert count_orders(restored) >= 3000


def test_an_interrupted_pos_transaction_is_named_not_blamed_on_permissions(lake, tmp_path):
    # A POS killed mid-write leaves a hot rollback journal, which a read-only opener cannot roll back. The
    # message said to check this account's permissions, which were fine.
    import subprocess
    import sys

    db = make_store_db(tmp_path / "pos.db", orders=300, journal_mode="delete")
    writer = subprocess.Popen([sys.executable, "-c", f"""
import sqlite3, sys, time
c = sqlite3.connect({str(db)!r}); c.execute("PRAGMA cache_size=1")  # pages spill into the file mid-transaction
c.execute("BEGIN"); c.execute("UPDATE order_lines SET qty = qty + 1000"); c.execute("DELETE FROM orders")
print("ready", flush=True); time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    writer.kill()
    writer.wait()
    assert Path(f"{db}-journal").stat().st_size > 0
    with pytest.raises(AgentError, match="a transaction was interrupted"):
        upload_dump(db, "S1", lake, scratch=tmp_path / "scratch")
    sqlite3.connect(db).execute("SELECT count(*) FROM orders").fetchone()  # any writer's open rolls it back
    assert upload_dump(db, "S1", lake, scratch=tmp_path / "scratch").uploaded
    assert not list((tmp_path / "scratch").glob("agent-upload-*"))


def test_a_killed_agents_copy_is_swept_by_a_later_upload(lake, tmp_path):
    import os

    scratch = tmp_path / "scratch"
    left = scratch / "agent-upload-killed"
    left.mkdir(parents=True)
    (left / "snapshot.sqlite").write_bytes(b"x" * 1000)
    old = time.time() - 7 * 3600
    os.utime(left / "snapshot.sqlite", (old, old))
    os.utime(left, (old, old))
    upload_dump(make_store_db(tmp_path / "pos.db"), "S1", lake, scratch=scratch)
    assert not left.exists()


# -- the agent's own destinations (what a store PC uses), read back by the pipeline's lakes ------------


@pytest.fixture(params=["folder", pytest.param("blob", marks=pytest.mark.azurite)])
def agent_destination(request, tmp_path):
    """(the agent's destination, the pipeline's lake on the same place, to read back what the agent wrote).
    The Blob destination stages 16 KiB blocks, so a test database goes up in several."""
    if request.param == "folder":
        return FolderDestination(tmp_path / "lake"), FolderLake(tmp_path / "lake")
    lake = request.getfixturevalue("blob_lake")  # creates the container (the agent never does)
    conn = request.getfixturevalue("azurite_conn")
    return BlobDestination.from_connection_string(conn, lake.container.container_name, block_size=16 << 10), lake


def test_the_agents_destinations_write_what_the_pipeline_reads(agent_destination, tmp_path):
    destination, lake = agent_destination
    db = make_store_db(tmp_path / "pos.db", orders=3000, pad=100, journal_mode="delete")
    sent: list[tuple[int, int]] = []
    first = upload_dump(db, "S042", destination, scratch=tmp_path / "scratch", now=NOW,
                        progress=lambda d, t: sent.append((d, t)))

    assert first.uploaded and first.size > 3 * (16 << 10), "the database must need several blocks"
    obj = lake.head(first.path)
    assert obj.size == first.size
    assert obj.metadata["store_id"] == "S042" and obj.metadata["sha256"] == first.sha256
    assert obj.metadata["uncompressed_bytes"] == str(first.uncompressed_bytes)
    blob = lake.get_bytes(first.path)
    assert hashlib.sha256(blob).hexdigest() == first.sha256
    assert inconsistencies(gunzip_to(blob, tmp_path / "restored.sqlite")) == []
    assert sent[0] == (0, first.size) and sent[-1] == (first.size, first.size)

    again = upload_dump(db, "S042", destination, scratch=tmp_path / "scratch", now=NOW)
    assert not again.uploaded and again.path == first.path
    assert lake.head(first.path).metadata == obj.metadata


@pytest.mark.azurite
@pytest.mark.parametrize("block_size", [64 << 20, 64 << 10], ids=["one-request", "blocks"])
def test_a_blob_created_between_the_check_and_the_commit_is_left_alone(blob_lake, azurite_conn, tmp_path,
                                                                       monkeypatch, block_size):
    # Two runs racing on one path (a manual run during the nightly one): the check says "missing" to both, and
    # the conditional commit (If-None-Match: *) lets one win; the other gets False, not an error.
    source = tmp_path / "dump.gz"
    source.write_bytes(random.Random(3).randbytes(300_000))
    destination = BlobDestination.from_connection_string(azurite_conn, blob_lake.container.container_name,
                                                         block_size=block_size)
    blob_lake.put_bytes("raw/store=S1/date=2026-11-27/x.gz", b"the winner", metadata={"store_id": "S1"})
    monkeypatch.setattr(BlobDestination, "_exists", staticmethod(lambda blob: False))

    assert destination.put_file("raw/store=S1/date=2026-11-27/x.gz", source, metadata={"store_id": "S2"},
                                overwrite=False) is False
    assert blob_lake.get_bytes("raw/store=S1/date=2026-11-27/x.gz") == b"the winner"
    assert blob_lake.head("raw/store=S1/date=2026-11-27/x.gz").metadata == {"store_id": "S1"}


@pytest.mark.azurite
def test_blob_failures_name_the_problem_and_the_fix(azurite_conn, blob_lake, tmp_path):
    from azure.identity import CredentialUnavailableError
    from azure.storage.blob import ContainerClient, ExponentialRetry

    db = make_store_db(tmp_path / "pos.db")
    scratch = tmp_path / "scratch"

    missing = BlobDestination.from_connection_string(azurite_conn, "no-such-container")
    with pytest.raises(UploadFailed, match="the container does not exist"):
        upload_dump(db, "S1", missing, scratch=scratch)

    wrong_key = azurite_conn.replace("AccountKey=Eby8", "AccountKey=AAAA")
    with pytest.raises(UploadFailed, match=r"access was refused .*check its account key"):
        upload_dump(db, "S1", BlobDestination.from_connection_string(wrong_key, blob_lake.container.container_name),
                    scratch=scratch)

    class NoToken:
        def get_token(self, *scopes, **kwargs):
            raise CredentialUnavailableError("EnvironmentCredential: AZURE_TENANT_ID is not set")

    no_token = BlobDestination.from_account_url("https://127.0.0.1:9", "lake", NoToken())
    started = time.monotonic()
    with pytest.raises(UploadFailed, match=r"no token for the store's identity \(EnvironmentCredential"):
        no_token.check()  # what the command does before the snapshot
    with pytest.raises(UploadFailed, match=r"no token for the store's identity \(EnvironmentCredential"):
        upload_dump(db, "S1", no_token, scratch=scratch)
    assert time.monotonic() - started < 5, "a credential that gives no token is not retried for minutes"

    nobody = ContainerClient("http://127.0.0.1:9/devstoreaccount1", "lake",  # a closed port; no retries here
                             retry_policy=ExponentialRetry(retry_total=0), connection_timeout=2)
    with pytest.raises(UploadFailed, match="the storage endpoint did not answer"):
        upload_dump(db, "S1", BlobDestination(nobody), scratch=scratch)
    assert list(scratch.iterdir()) == [], "no snapshot left behind by a failed upload"
