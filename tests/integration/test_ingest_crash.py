"""SIGKILL in the middle of an ingest: nothing half-visible, and the next run completes it exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from deltalake import DeltaTable

from shared.adapters.lake_folder import FolderLake
from shared.local.generator import generate_store
from tests.support.delta import delta_count, delta_rows

pytestmark = pytest.mark.slow


def start(dump, home, lake_env):
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0", **lake_env}
    if "LAKE" not in lake_env:
        env.pop("LAKE", None)
    return subprocess.Popen([sys.executable, "-m", "shared", "ingest", str(dump), "--store", "S1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


TABLES = ("items", "vendors", "stock", "sales", "receipts")


def visible_state(lake, store):
    """What any reader sees: every Delta table reads whole; a table holds each sale line at most once and a
    dump's snapshot whole or not at all; a manifest exists only once every commit it names is in place."""
    for name in TABLES:
        count = delta_count(lake, f"curated/{name}")
        if name == "sales":
            keys = delta_rows(lake, "curated/sales", "true", "count(DISTINCT concat(sale_id, '/', line_no)) AS n")
            assert count == (keys.column("n")[0].as_py() if keys.num_rows else 0)
            assert count in (0, store.tables["sales"].curated)  # one commit: all of the dump's lines or none
        elif name in ("items", "stock"):
            assert count in (0, store.tables[name].curated)
    for obj in lake.list("manifests/store=S1/"):
        manifest = json.loads(lake.get_bytes(obj.path))
        for table, version in manifest["delta_versions"].items():
            uri, options = lake.delta_location(table)
            history = {h["version"]: h for h in DeltaTable(uri, storage_options=options).history()}
            assert history[version]["dump_id"] == manifest["dump_id"], table


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return generate_store(tmp_path_factory.mktemp("s") / "S1.sqlite", "S1", sales_lines=150_000, days=60, seed=3)


@pytest.fixture(params=["folder", pytest.param("blob", marks=pytest.mark.azurite)])
def where(request, tmp_path):
    """(lake, the environment that points `inventory ingest` at it): the folder lake, or a fresh container on
    Azurite."""
    if request.param == "folder":
        return FolderLake(tmp_path / "home" / "lake"), {}
    blob = request.getfixturevalue("blob_lake")
    return blob, {"LAKE": request.getfixturevalue("azurite_conn"), "LAKE_CONTAINER": blob.container.container_name}


def test_killed_ingests_leave_nothing_half_visible_and_the_rerun_is_exact(store, tmp_path, where):
    lake, lake_env = where
    home = tmp_path / "home"
    timed = start(store.path, tmp_path / "timing", {})
    t0 = time.monotonic()
    assert timed.wait(timeout=120) == 0
    duration = time.monotonic() - t0
    for fraction in (0.25, 0.5, 0.7, 0.85, 0.95):
        proc = start(store.path, home, lake_env)
        time.sleep(duration * fraction)
        os.killpg(proc.pid, signal.SIGKILL)  # the ingest and its reader child
        proc.wait()
        visible_state(lake, store)
    final = start(store.path, home, lake_env)
    out, err = final.communicate(timeout=180)
    assert final.returncode == 0, err
    visible_state(lake, store)
    sales = json.loads(out)["tables"]["sales"]
    assert sales["curated"] == store.tables["sales"].curated
    assert delta_count(lake, "curated/sales") == store.tables["sales"].curated  # every line once, none lost


def test_working_folders_of_killed_ingests_are_swept(tmp_path):
    from shared.services.scratch import sweep_stale_scratch

    old, fresh = tmp_path / "ingest-old", tmp_path / "ingest-running"
    for folder in (old, fresh):
        (folder / "stage").mkdir(parents=True)
    long_ago = time.time() - 7 * 3600
    os.utime(old, (long_ago, long_ago))
    assert sweep_stale_scratch(tmp_path) == 1
    assert not old.exists() and fresh.exists()
