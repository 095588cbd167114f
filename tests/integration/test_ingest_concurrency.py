"""Ingests that overlap or are retried: each sale line reaches the lake exactly once.

* Two dumps of one store ingested at the same time (the blob trigger runs two at once per instance, and
  Flex Consumption runs several instances): the second must skip the first one's lines.
* A retry after a crash while publishing: the dump's own half-published files are not "already in the
  lake"; the retry rewrites them and its manifest describes the whole dump.
* Files of an attempt that never committed (crashed, or lost its lock while frozen): they hide no line
  from the next dump, and they never count twice once their dump commits.
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

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.ids import dump_id_from_sha256, dump_id_of_output
from shared.local.generator import generate_store
from shared.services.ingest_dump import ingest_dump
from tests.support.dumps import next_night

STORE = "S9"


def sale_lines(lake) -> list[tuple[str, int]]:
    """Every (sale_id, line_no) of the store's curated sales, duplicates included."""
    paths = [o.path for o in lake.list(f"curated/sales/store={STORE}/") if o.path.endswith(".parquet")]
    if not paths:
        return []
    with lake.local_copy(paths) as files:
        listed = ", ".join(f"'{f}'" for f in files)
        return duckdb.sql(f"SELECT sale_id, line_no FROM read_parquet([{listed}], hive_partitioning = false)"
                          ).fetchall()


def ingest(dump, lake, tmp_path):
    return ingest_dump(dump.path, STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp_path)


def ingest_at_once(lake, dumps, tmp_path):
    with ThreadPoolExecutor(len(dumps)) as pool:
        return [f.result() for f in [pool.submit(ingest, d, lake, tmp_path) for d in dumps]]


class MeetBeforeReadingTheLake:
    """The lake, except that an ingest that has just listed the store's sale lines waits (up to ``patience``
    seconds) for the other ingest to have listed them too. Without a store lock, both then read the lake
    before either publishes, every time; with it, the second lists only once the first is done, so the
    first waits out its patience alone and the second finds the meeting called off."""

    def __init__(self, inner, patience: float = 3.0) -> None:
        self._inner = inner
        self._meeting = threading.Barrier(2, timeout=patience)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def list(self, prefix):
        found = list(self._inner.list(prefix))
        if prefix.startswith("curated/sales/"):
            with contextlib.suppress(threading.BrokenBarrierError):
                self._meeting.wait()
        return iter(found)


@pytest.fixture(scope="module")
def two_dumps(tmp_path_factory):
    """Two nightly dumps of one store whose sale lines overlap (sale ids restart at 1 in each dump, and the
    periods share 20 days)."""
    folder = tmp_path_factory.mktemp("dumps")
    return [generate_store(folder / f"{STORE}-{seed}.sqlite", STORE, sales_lines=30_000, days=40, seed=seed,
                           end=end)
            for seed, end in ((1, date(2026, 11, 6)), (2, date(2026, 11, 26)))]


def check_each_line_once(lake, results, reference_lake):
    sales = sorted((r.manifest["tables"]["sales"] for r in results), key=lambda t: t["already_in_lake"])
    first, second = sales
    # The first to take the lock saw none of the other's lines; the second skipped all of them.
    assert first["already_in_lake"] == 0 and first["written"] == first["curated"]
    assert second["already_in_lake"] > 0 and second["written"] + second["already_in_lake"] == second["curated"]
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


# -- a retry after a crash while publishing -------------------------------------------------------------

class CrashWhilePublishing:
    """The lake, except that publishing dies (as a killed worker would) after ``after`` sale files."""

    def __init__(self, inner, after: int) -> None:
        self._inner = inner
        self._left = after
        self._lock = threading.Lock()  # the Blob lake publishes several files at once

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def put_files(self, files, *, consume=False):
        """The files before the one that dies reach the lake (several at once on a remote lake)."""
        with self._lock:
            allowed = []
            for path, local in files:
                if path.startswith("curated/sales/"):
                    if self._left == 0:
                        break
                    self._left -= 1
                allowed.append((path, local))
        self._inner.put_files(allowed, consume=consume)
        if len(allowed) < len(files):
            raise OSError("simulated crash while publishing")


def test_a_retry_after_a_crash_while_publishing_rewrites_the_same_files(lake, two_dumps, reference, tmp_path):
    older, dump = two_dumps
    ingest(older, lake, tmp_path)  # lines of an older dump are in the lake: some of dump's are not new
    with pytest.raises(OSError, match="simulated crash"):
        ingest(dump, CrashWhilePublishing(lake, after=5), tmp_path)
    dump_id = dump_id_from_sha256(hashlib.sha256(dump.path.read_bytes()).hexdigest())
    half = [o.path for o in lake.list(f"curated/sales/store={STORE}/") if dump_id in o.path]
    assert len(half) == 5 and not list(lake.list(f"manifests/store={STORE}/{dump_id}"))

    result = ingest(dump, lake, tmp_path)
    assert result.status == "ingested" and result.dump_id == dump_id
    sales = result.manifest["tables"]["sales"]
    # As when the same two dumps were ingested without a crash:
    clean_sales = json.loads(reference.get_bytes(f"manifests/store={STORE}/{dump_id}.json"))["tables"]["sales"]
    assert sales["written"] == sales["curated"] - sales["already_in_lake"]
    assert (sales["written"], sales["already_in_lake"]) == (clean_sales["written"], clean_sales["already_in_lake"])
    own = {o.path for o in lake.list("curated/") if dump_id in o.path} | {
        o.path for o in lake.list("rejected/") if dump_id in o.path}
    assert own == set(result.manifest["outputs"])  # the manifest lists every file of the dump
    assert set(half) <= own
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines))  # none twice
    assert set(lines) == set(sale_lines(reference))  # none lost


# -- attempts that never committed ------------------------------------------------------------------------

def committed_dumps(lake) -> set[str]:
    return {o.path.rsplit("/", 1)[1][:-len(".json")] for o in lake.list(f"manifests/store={STORE}/")}


def committed_sale_lines(lake) -> list[tuple[str, int]]:
    """What readers that follow the manifests (the aggregates) see: lines of committed dumps' files only."""
    committed = committed_dumps(lake)
    paths = [o.path for o in lake.list(f"curated/sales/store={STORE}/")
             if dump_id_of_output(o.path) in committed]
    with lake.local_copy(paths) as files:
        listed = ", ".join(f"'{f}'" for f in files) or "''"
        return duckdb.sql(f"SELECT sale_id, line_no FROM read_parquet([{listed}], hive_partitioning = false)"
                          ).fetchall() if files else []


def dump_id_of(dump) -> str:
    return dump_id_from_sha256(hashlib.sha256(dump.path.read_bytes()).hexdigest())


def test_a_dump_that_never_commits_hides_none_of_its_lines_from_the_next_one(lake, two_dumps, tmp_path):
    older, dump = two_dumps
    with pytest.raises(OSError, match="simulated crash"):  # and never retried (a poisoned trigger)
        ingest(older, CrashWhilePublishing(lake, after=5), tmp_path)
    assert len(list(lake.list(f"curated/sales/store={STORE}/"))) == 5
    orphans = sorted(o.path for zone in ("curated", "rejected") for table in ("sales", "receipts")
                     for o in lake.list(f"{zone}/{table}/store={STORE}/"))
    assert any(p.startswith("rejected/sales/") for p in orphans)  # published before the crash, too

    result = ingest(dump, lake, tmp_path)
    assert sorted(result.manifest["removed"]) == orphans  # before, their lines counted as "in the lake"
    alone = FolderLake(tmp_path / "alone")
    ingest(dump, alone, tmp_path)
    lines = committed_sale_lines(lake)
    assert len(lines) == len(set(lines))
    assert set(lines) == set(sale_lines(alone))  # every line of the dump, none hidden by the dead attempt
    assert sale_lines(lake) == lines  # and no file of the dead attempt left for Synapse's views to read
    older_id = dump_id_of(older)
    assert not [o.path for o in lake.list("rejected/") if older_id in o.path and "/sales/" in o.path]
    sales = result.manifest["tables"]["sales"]
    assert sales["already_in_lake"] == 0 and sales["written"] == sales["curated"]


def test_files_of_an_attempt_that_lost_its_lock_never_count_twice(lake, two_dumps, tmp_path):
    """An attempt frozen past its lease publishes after the next holder read the lake: that holder (here the
    next night's dump, which has every line of this one) wrote the same lines under its own dump. The
    frozen attempt fails its lease check (no manifest); its retry must not commit its earlier files."""
    older = two_dumps[0]
    newer = next_night(older.path, tmp_path / "newer.sqlite", 25)
    lake_newer = ingest_dump(newer, STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp_path)
    frozen = FolderLake(tmp_path / "frozen")  # what the frozen attempt of the older dump had published
    ingest(older, frozen, tmp_path)
    published = [o.path for table in ("sales", "receipts") for o in frozen.list(f"curated/{table}/store={STORE}/")]
    for path in published:
        frozen.get_to_file(path, tmp_path / "f.parquet")
        lake.put_file(path, tmp_path / "f.parquet")

    result = ingest(older, lake, tmp_path)  # the retry
    assert result.status == "ingested" and result.dump_id == dump_id_of(older)
    sales = result.manifest["tables"]["sales"]
    assert sales["written"] == 0 and sales["already_in_lake"] == sales["curated"]  # all in the newer dump
    assert sorted(result.manifest["removed"]) == sorted(published)  # before, they stayed: every line twice
    lines = sale_lines(lake)
    assert len(lines) == len(set(lines)) == lake_newer.manifest["tables"]["sales"]["written"]
    assert set(lines) == set(committed_sale_lines(lake))


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


def play(plan, lake, snapshot_chain, tmp) -> None:
    """Dumps of one night or another arrive in any order; any ingest may die while publishing (after some
    of its sale files) and be retried later, or never. What the committed dumps hold is always exactly the
    union of their lines, each once; once every dump has been ingested, the lake holds every line once and
    no file of an attempt that died."""
    dumps, lines = snapshot_chain
    ids = [dump_id_from_sha256(hashlib.sha256(p.read_bytes()).hexdigest()) for p in dumps]
    for which, crash_after in plan:
        target = lake if crash_after is None else CrashWhilePublishing(lake, after=crash_after)
        try:
            ingest_dump(dumps[which], STORE, lake=target, telemetry=MemoryTelemetry(), scratch=tmp)
        except OSError as exc:
            assert "simulated crash" in str(exc)
        committed = committed_dumps(lake)
        seen = committed_sale_lines(lake)
        assert len(seen) == len(set(seen))  # never a line twice
        assert set(seen) == set().union(*(lines[i] for i in range(3) if ids[i] in committed))  # none hidden
    for path in dumps:  # every dump eventually gets through (in order, as a late retry would)
        ingest_dump(path, STORE, lake=lake, telemetry=MemoryTelemetry(), scratch=tmp)
    everything = sale_lines(lake)
    assert len(everything) == len(set(everything)) and set(everything) == lines[2]
    assert sorted(everything) == sorted(committed_sale_lines(lake))  # no file of a dead attempt left behind


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
    """The same on Azurite, where publishing and removing run several files at once (fewer examples: each
    costs more)."""
    from shared.adapters.lake_blob import BlobLake

    tmp = tmp_path_factory.mktemp("plan")
    lake = BlobLake.from_connection_string(azurite_conn, f"plan-{uuid.uuid4().hex[:12]}")
    try:
        play(plan, lake, snapshot_chain, tmp)
    finally:
        lake.delete_container()
