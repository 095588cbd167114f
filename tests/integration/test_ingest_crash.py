"""SIGKILL in the middle of an ingest: nothing half-visible, and the next run completes it exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pytest

from shared.local.generator import generate_store

pytestmark = pytest.mark.slow


def start(dump, home):
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0"}
    env.pop("LAKE", None)
    return subprocess.Popen([sys.executable, "-m", "shared", "ingest", str(dump), "--store", "S1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def visible_state(lake):
    """Every Parquet file in the lake is whole, and a manifest exists only with all its outputs."""
    for path in lake.rglob("*.parquet"):
        if "/." not in path.as_posix():
            pq.read_metadata(path)  # raises on a truncated file
    for manifest in lake.glob("manifests/store=S1/*.json"):
        for output in json.loads(manifest.read_text())["outputs"]:
            assert (lake / output).is_file(), output


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return generate_store(tmp_path_factory.mktemp("s") / "S1.sqlite", "S1", sales_lines=150_000, days=60, seed=3)


def test_killed_ingests_leave_nothing_half_visible_and_the_rerun_is_exact(store, tmp_path):
    home = tmp_path / "home"
    timed = start(store.path, tmp_path / "timing")
    t0 = time.monotonic()
    assert timed.wait(timeout=120) == 0
    duration = time.monotonic() - t0
    for fraction in (0.25, 0.5, 0.7, 0.85, 0.95):
        proc = start(store.path, home)
        time.sleep(duration * fraction)
        os.killpg(proc.pid, signal.SIGKILL)  # the ingest and its reader child
        proc.wait()
        visible_state(home / "lake")
    final = start(store.path, home)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    visible_state(home / "lake")
    sales = json.loads(out)["tables"]["sales"]
    assert sales["curated"] == store.tables["sales"].curated
    lake = home / "lake"
    rows, keys = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (sale_id, line_no)) FROM read_parquet('{lake}/curated/sales/*/*/*.parquet')"
    ).fetchall()[0]
    assert rows == keys == store.tables["sales"].curated  # every line once, none lost, none twice


def test_working_folders_of_killed_ingests_are_swept(tmp_path):
    from shared.services.ingest_dump import sweep_stale_scratch

    old, fresh = tmp_path / "ingest-old", tmp_path / "ingest-running"
    for folder in (old, fresh):
        (folder / "stage").mkdir(parents=True)
    long_ago = time.time() - 7 * 3600
    os.utime(old, (long_ago, long_ago))
    assert sweep_stale_scratch(tmp_path) == 1
    assert not old.exists() and fresh.exists()
