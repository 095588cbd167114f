"""Ingests that overlap or are retried: each sale line reaches the lake exactly once.

* Two dumps of one store ingested at the same time (the blob trigger runs two at once per instance, and
  Flex Consumption runs several instances): the second must skip the first one's lines. Delta appends
  never conflict, so the store lock is what serialises them.
* A retry after a crash between the Delta commits of a dump: the tables it committed are recognised by
  the dump id (an application transaction) and not written again; the others are committed.
* Data files of a commit that never happened (a writer killed between its files and its log entry) are
  invisible to every reader and hide no line from the next dump.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.delta_tables import DeltaTables
from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.ids import dump_id_from_sha256
from shared.local.generator import generate_store
from shared.services.ingest import ingest_dump
from tests.support.delta import delta_rows
from tests.support.dumps import next_night

STORE = "S9"


def sale_lines(lake) -> list[tuple[str, int]]:
    """Every (sale_id, line_no) of the store's curated sales as readers see them, duplicates included."""
    rows = delta_rows(lake, "curated/sales", f"store_id = '{STORE}'", "sale_id, line_no")
    return [(r["sale_id"], r["line_no"]) for r in rows.to_pylist()]


def ingest(dump, lake, tmp_path):
    return ingest_dump(dump.path, STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp_path)


def ingest_at_once(lake, dumps, tmp_path):
    with ThreadPoolExecutor(len(dumps)) as pool:
        return [f.result() for f in [pool.submit(ingest, d, lake, tmp_path) for d in dumps]]


class MeetBeforeReadingTheLake:
    """The lake, except that an ingest about to read the store's sale lines from the Delta table waits (up to
    ``patience`` seconds) for the other ingest to get there too. Without a store lock, both then read the
    lake before either commits, every time; with it, the second reads only once the first is done, so the
    first waits out its patience alone and the second finds the meeting called off."""

    def __init__(self, inner, patience: float = 3.0) -> None:
        self._inner = inner
        self._meeting = threading.Barrier(2, timeout=patience)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def delta_location(self, path):
        if path == "curated/sales":
            with contextlib.suppress(threading.BrokenBarrierError):
                self._meeting.wait()
        return self._inner.delta_location(path)


@pytest.fixture(scope="module")
def two_dumps(tmp_path_factory):
    """Two nightly dumps of one store whose sale lines overlap (sale ids restart at 1 in each dump, and the
    periods share 20 days)."""
    folder = tmp_path_factory.mktemp("dumps")
    return [generate_store(folder / f"{STORE}-{seed}.sqlite", STORE, sales_lines=30_000, days=40, seed=seed,
                           end=end)
            for seed, end in ((1, date(2026, 11, 6)), (2, date(2026, 11, 26)))]


def check_each_line_once(lake, results, reference_lake):
    sales = sorted((r.manifest["tables"]["sales"] for r in results),
                   key=lambda t: t["already_in_lake"] + t["changed_since_ingested"])
    first, second = sales
    # The first to take the lock saw none of the other's lines; the second skipped all of them.
    assert first["already_in_lake"] == first["changed_since_ingested"] == 0 and first["written"] == first["curated"]
    # (The two generated dumps reuse sale ids with other values: those lines count as changed, not written.)
    assert second["already_in_lake"] + second["changed_since_ingested"] > 0
    assert second["written"] + second["already_in_lake"] == second["curated"]
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines)) == first["written"] + second["written"]  # once each, none twice
    assert set(lines) == set(sale_lines(reference_lake))  # none lost: the union of both dumps' lines


@pytest.fixture(scope="module")
def reference(two_dumps, tmp_path_factory):
    """The two dumps ingested one after the other."""
    tmp = tmp_path_factory.mktemp("reference")
    lake = FolderLake(tmp / "lake")
    for dump in two_dumps:
        ingest(dump, lake, tmp)
    return lake


def test_two_dumps_of_a_store_ingested_at_once_write_each_line_once(lake, two_dumps, reference, tmp_path):
    results = ingest_at_once(MeetBeforeReadingTheLake(lake), two_dumps, tmp_path)
    assert [r.status for r in results] == ["ingested", "ingested"]
    check_each_line_once(lake, results, reference)
    assert all(r.manifest["timings_s"]["lock_wait"] >= 0 for r in results)


def test_the_same_dump_delivered_twice_at_once_is_ingested_once(lake, two_dumps, tmp_path):
    dump = two_dumps[0]
    results = ingest_at_once(MeetBeforeReadingTheLake(lake, patience=0.5), [dump, dump], tmp_path)
    assert sorted(r.status for r in results) == ["already_ingested", "ingested"]
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines)) == dump.tables["sales"].curated
    assert len(list(lake.list(f"manifests/store={STORE}/"))) == 1


@pytest.mark.slow
def test_two_200k_line_dumps_ingested_at_once_by_two_threads(tmp_path):
    """The fault test as found: 200k lines each, seeds 1 and 2, no help to make the race likely."""
    dumps = [generate_store(tmp_path / f"d{seed}.sqlite", STORE, sales_lines=200_000, days=60, seed=seed,
                            end=end)
             for seed, end in ((1, date(2026, 11, 6)), (2, date(2026, 11, 26)))]
    reference_lake = FolderLake(tmp_path / "reference")
    for dump in dumps:
        ingest(dump, reference_lake, tmp_path)
    lake = FolderLake(tmp_path / "lake")
    check_each_line_once(lake, ingest_at_once(lake, dumps, tmp_path), reference_lake)


# -- a retry after a crash between commits ---------------------------------------------------------------

class CrashAfterCommits:
    """Lake Delta tables whose writer dies (as a killed worker would) before its commit number ``after`` + 1,
    or before its first commit to ``at``: that commit's data files are in the table's folder already, and no
    log entry names them, as when a kill falls between the files and the commit."""

    def __init__(self, after: int = -1, at: str | None = None) -> None:
        self.left = after
        self.at = at

    @property
    def commit_files(self):
        """A function to put in place of ``DeltaTables._commit_files`` (plain, so it binds ``self``)."""
        return lambda tables, path, *args, **kwargs: self.commit(tables, path, *args, **kwargs)

    def commit(self, tables, path, *args, **kwargs):
        if self.left == 0 or path == self.at:
            raise OSError(f"simulated crash while committing {path}")
        self.left -= 1
        return REAL_COMMIT(tables, path, *args, **kwargs)


REAL_COMMIT = DeltaTables._commit_files


def test_a_retry_after_a_crash_between_commits_commits_the_rest_once(lake, two_dumps, reference, tmp_path,
                                                                    monkeypatch):
    older, dump = two_dumps
    ingest(older, lake, tmp_path)  # lines of an older dump are in the lake: some of dump's are not new
    monkeypatch.setattr(DeltaTables, "_commit_files", CrashAfterCommits(at="curated/receipts").commit_files)
    with pytest.raises(OSError, match="simulated crash"):
        ingest(dump, lake, tmp_path)
    monkeypatch.setattr(DeltaTables, "_commit_files", REAL_COMMIT)
    dump_id = dump_id_of(dump)
    assert not list(lake.list(f"manifests/store={STORE}/{dump_id}"))

    result = ingest(dump, lake, tmp_path)
    assert result.status == "ingested" and result.dump_id == dump_id
    sales = result.manifest["tables"]["sales"]
    # As when the same two dumps were ingested without a crash:
    clean_sales = json.loads(reference.get_bytes(f"manifests/store={STORE}/{dump_id}.json"))["tables"]["sales"]
    assert sales["written"] == sales["curated"] - sales["already_in_lake"]
    assert (sales["written"], sales["already_in_lake"]) == (clean_sales["written"], clean_sales["already_in_lake"])
    # Every table the dump touched carries its commit, once; the manifest names each version.
    for table, version in result.manifest["delta_versions"].items():
        uri, options = lake.delta_location(table)
        from deltalake import DeltaTable

        history = DeltaTable(uri, storage_options=options).history()
        mine = [h["version"] for h in history if h.get("dump_id") == dump_id]
        assert mine == [version], table
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines))  # none twice
    assert set(lines) == set(sale_lines(reference))  # none lost
    stock = delta_rows(lake, "curated/stock", f"dump_id = '{dump_id}'", "count(*) AS n").column("n")[0].as_py()
    assert stock == dump.tables["stock"].curated  # the snapshot once, not once per attempt


def dump_id_of(dump) -> str:
    return dump_id_from_sha256(hashlib.sha256(dump.path.read_bytes()).hexdigest())


def test_a_dump_that_never_commits_hides_none_of_its_lines_from_the_next_one(lake, two_dumps, tmp_path,
                                                                              monkeypatch):
    older, dump = two_dumps
    monkeypatch.setattr(DeltaTables, "_commit_files", CrashAfterCommits(at="curated/sales").commit_files)
    with pytest.raises(OSError, match="simulated crash while committing curated/sales"):
        ingest(older, lake, tmp_path)  # and never retried (a poisoned trigger)
    monkeypatch.setattr(DeltaTables, "_commit_files", REAL_COMMIT)
    assert [o.path for o in lake.list("curated/sales/") if o.path.endswith(".parquet")]  # the orphan files
    assert sale_lines(lake) == []  # no reader sees it

    result = ingest(dump, lake, tmp_path)
    alone = FolderLake(tmp_path / "alone")
    ingest(dump, alone, tmp_path)
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines))
    assert set(lines) == set(sale_lines(alone))  # every line of the dump, none hidden by the dead attempt
    sales = result.manifest["tables"]["sales"]
    assert sales["already_in_lake"] == 0 and sales["written"] == sales["curated"]


# -- any order of crashes and retries ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def snapshot_chain(two_dumps, tmp_path_factory):
    """Three dumps of one store as its nights produce them (each a full snapshot: the previous one's lines
    plus new ones), and the lines each holds (from an ingest of it alone)."""
    folder = tmp_path_factory.mktemp("chain")
    first = two_dumps[0].path
    second = next_night(first, folder / "n2.sqlite", 40)
    third = next_night(second, folder / "n3.sqlite", 0)  # the same lines and counts ...
    con = sqlite3.connect(third)  # ... and 30 more
    con.executemany("INSERT INTO sales VALUES (?, 1, (SELECT sku FROM items LIMIT 1), 1, 1.0, ?)",
                    [(f"THIRD-{i}", "2026-11-28 12:00:00") for i in range(30)])
    con.commit()
    con.close()
    dumps = [first, second, third]
    lines = []
    for i, path in enumerate(dumps):
        alone = FolderLake(folder / f"alone-{i}")
        ingest_dump(path, STORE, lake=alone, telemetry=MemoryTelemetry(), scratch=folder)
        lines.append(set(sale_lines(alone)))
    assert lines[0] < lines[1] < lines[2]
    return dumps, lines


PLANS = st.lists(st.tuples(st.integers(0, 2), st.one_of(st.none(), st.integers(0, 12))), min_size=1, max_size=4)


def committed_dumps(lake, table: str = "curated/sales") -> set[str]:
    """The dumps whose commit to ``table`` readers see."""
    rows = delta_rows(lake, table, f"store_id = '{STORE}'", "DISTINCT dump_id")
    return set(rows.column("dump_id").to_pylist()) if rows.num_rows else set()


def play(plan, lake, snapshot_chain, tmp) -> None:
    """Dumps of one night or another arrive in any order; any ingest may die before any of its commits
    (leaving that commit's data files behind) and be retried later, or never. What readers see is always
    exactly the union of the lines of the dumps whose sales commit happened, each once; once every dump
    has been ingested, the lake holds every line once."""
    dumps, lines = snapshot_chain
    ids = [dump_id_from_sha256(hashlib.sha256(p.read_bytes()).hexdigest()) for p in dumps]
    for which, crash_after in plan:
        DeltaTables._commit_files = (REAL_COMMIT if crash_after is None
                                     else CrashAfterCommits(after=crash_after).commit_files)
        try:
            ingest_dump(dumps[which], STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp)
        except OSError as exc:
            assert "simulated crash" in str(exc)
        finally:
            DeltaTables._commit_files = REAL_COMMIT
        seen = sale_lines(lake)
        assert len(seen) == len(set(seen))  # never a line twice
        # Each dump whose sales commit happened wrote the lines the lake did not have: none hidden.
        assert set(seen) == set().union(*(lines[i] for i in range(3) if ids[i] in committed_dumps(lake)))
    for path in dumps:  # every dump eventually gets through (in order, as a late retry would)
        result = ingest_dump(path, STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp)
        assert result.status in ("ingested", "already_ingested")
    everything = sale_lines(lake)
    assert len(everything) == len(set(everything)) and set(everything) == lines[2]
    assert len(list(lake.list(f"manifests/store={STORE}/"))) == 3


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=PLANS)
def test_any_order_of_dumps_crashes_and_retries_keeps_each_line_once(plan, snapshot_chain, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    play(plan, FolderLake(tmp / "lake"), snapshot_chain, tmp)


@pytest.mark.slow
@pytest.mark.azurite
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=PLANS)
def test_on_the_blob_lake_any_order_of_dumps_crashes_and_retries_keeps_each_line_once(
        plan, snapshot_chain, azurite_conn, tmp_path_factory):
    """The same on Azurite (fewer examples: each costs more)."""
    from shared.adapters.lake_blob import BlobLake

    tmp = tmp_path_factory.mktemp("plan")
    lake = BlobLake.from_connection_string(azurite_conn, f"plan-{uuid.uuid4().hex[:12]}")
    try:
        play(plan, lake, snapshot_chain, tmp)
    finally:
        lake.delete_container()
