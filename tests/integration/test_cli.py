"""The `inventory` command as a user runs it: JSON on stdout, messages on stderr, documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.dumps import make_dump


def inventory(*args, home, cwd=None, tz=None):
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0", **({"TZ": tz} if tz else {})}
    for name in ("LAKE", "LAKE__blobServiceUri"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "shared", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def test_a_dump_named_relative_to_the_current_folder_is_ingested(tmp_path):
    # The dump reader's child process runs in the package's folder: it was handed the relative path as given,
    # and a valid dump was quarantined as reader_failed.
    make_dump(tmp_path / "d.sqlite")
    result = inventory("ingest", "d.sqlite", "--store", "S1", home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tables"]["sales"]["curated"] == 3


def test_snapshot_at_without_an_offset_is_utc_whatever_the_machine_zone(tmp_path):
    result = inventory("ingest", str(make_dump(tmp_path / "d.sqlite")), "--store", "S1",
                       "--snapshot-at", "2026-11-27T10:00:00", home=tmp_path / "home", tz="America/New_York")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["snapshot_at"] == "2026-11-27T10:00:00Z"


def test_ingest_prints_the_manifest_and_exits_0_then_0_again(tmp_path):
    dump = make_dump(tmp_path / "d.sqlite")
    first = inventory("ingest", str(dump), "--store", "S1", home=tmp_path / "home")
    assert first.returncode == 0, first.stderr
    manifest = json.loads(first.stdout)
    assert manifest["tables"]["sales"]["curated"] == 3
    again = inventory("ingest", str(dump), "--store", "S1", home=tmp_path / "home")
    assert again.returncode == 0
    assert "already ingested" in again.stderr
    assert json.loads(again.stdout)["dump_id"] == manifest["dump_id"]


def test_a_quarantined_dump_exits_2_with_the_reason_on_stderr(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database")
    result = inventory("ingest", str(bad), "--store", "S1", home=tmp_path / "home")
    assert result.returncode == 2
    assert "not_sqlite" in result.stderr
    assert json.loads(result.stdout)["reason_code"] == "not_sqlite"


@pytest.mark.parametrize("args, message", [
    (["--store", "../x"], "invalid store id"),
    (["--store", "S1", "--mapping", "/nonexistent.toml"], "nonexistent.toml"),
    (["--store", "S1", "--snapshot-at", "yesterday 10:00"], "--snapshot-at: 'yesterday 10:00' is not an ISO-8601"),
])
def test_usage_problems_exit_1_with_a_message(tmp_path, args, message):
    dump = make_dump(tmp_path / "d.sqlite")
    result = inventory("ingest", str(dump), *args, home=tmp_path / "home")
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "home" / "lake" / "curated").exists()


def test_a_broken_mapping_file_is_named(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('[tables.sales]\nquery = "DELETE FROM sales"\n')
    result = inventory("ingest", str(make_dump(tmp_path / "d.sqlite")), "--store", "S1", "--mapping",
                       str(mapping), home=tmp_path / "home")
    assert result.returncode == 1
    assert "must be one SELECT" in result.stderr


def test_agent_upload_then_ingest_from_the_lake(tmp_path):
    home = tmp_path / "home"
    up = inventory("agent", "upload", str(make_dump(tmp_path / "pos.db")), "--store", "S9", "--quiet", home=home)
    assert up.returncode == 0, up.stderr
    uploaded = json.loads(up.stdout)
    assert uploaded["uploaded"] is True and uploaded["path"].startswith("raw/store=S9/date=")
    again = inventory("agent", "upload", str(tmp_path / "pos.db"), "--store", "S9", "--quiet", home=home)
    assert json.loads(again.stdout)["uploaded"] is False
    assert "already in the lake" in again.stderr


@pytest.mark.parametrize("command", [[], ["ingest"], ["agent", "upload"], ["demo"], ["rules"]])
def test_help_everywhere(tmp_path, command):
    result = inventory(*command, "--help", home=tmp_path)
    assert result.returncode == 0 and "usage: inventory" in result.stdout


def test_demo_options_out_of_range_are_usage_errors_that_leave_the_last_demo_alone(tmp_path):
    home = tmp_path / "home"
    (home / "lake").mkdir(parents=True)
    (home / "lake" / "kept").write_text("the previous demo's lake")
    result = inventory("demo", "--stores", "0", home=home)
    assert result.returncode == 2 and "argument --stores" in result.stderr and "Traceback" not in result.stderr
    assert (home / "lake" / "kept").exists()


def test_a_setting_that_cannot_be_used_is_one_line_not_a_traceback(tmp_path):
    env_home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-m", "shared", "alerts"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "INVENTORY_HOME": str(env_home), "ALERT_COOLDOWN_HOURS": "abc"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "ALERT_COOLDOWN_HOURS='abc' is not a number above 0" in proc.stderr


def test_a_live_database_with_commits_in_its_wal_file_is_refused_not_half_read(tmp_path):
    import sqlite3

    db = make_dump(tmp_path / "pos.db", "PRAGMA journal_mode=WAL;")
    pos = sqlite3.connect(db)  # the POS keeps it open: its last commits stay in pos.db-wal
    pos.execute("PRAGMA wal_autocheckpoint=0")
    pos.executemany("INSERT INTO sales VALUES (?, 1, 'A-1', 1, 1.0, '2026-11-26 12:00:00')",
                    [(f"W{i}",) for i in range(100)])
    pos.commit()
    try:
        result = inventory("ingest", str(db), "--store", "S1", home=tmp_path / "home")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "pos.db-wal" in result.stderr and "inventory agent upload" in result.stderr
        assert not (tmp_path / "home" / "lake" / "curated").exists()
        assert not (tmp_path / "home" / "lake" / "quarantine").exists()
    finally:
        pos.close()  # the last connection checkpoints: now the file holds everything
    result = inventory("ingest", str(db), "--store", "S1", home=tmp_path / "home")
    assert result.returncode == 0 and json.loads(result.stdout)["tables"]["sales"]["curated"] == 103


def test_lake_maintain_and_migrate_print_their_figures(tmp_path):
    home = tmp_path / "home"
    for night in range(2):  # two commits of the same store: something to compact
        lines = ", ".join(f"('n{night}-{i}', 1, 'A-1', 1, 1.0, '2026-11-26 10:00:00')" for i in range(night + 1))
        dump = make_dump(tmp_path / f"d{night}.sqlite", f"INSERT INTO sales VALUES {lines};")
        assert inventory("ingest", str(dump), "--store", "S1", home=home).returncode == 0
    maintained = inventory("lake", "maintain", home=home)
    assert maintained.returncode == 0, maintained.stderr
    tables = {t["table"]: t for t in json.loads(maintained.stdout)["tables"]}
    assert tables["curated/sales"]["files_before"] == 2 and tables["curated/sales"]["files_after"] == 1
    assert "curated/sales: 2 -> 1 files" in maintained.stderr
    migrated = inventory("lake", "migrate", "--quiet", home=home)  # nothing of the old layout: nothing to do
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["files_migrated"] == 0


def test_wiring_names_the_adapter_of_each_port(tmp_path):
    local = inventory("wiring", home=tmp_path)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == {
        "lake": str(tmp_path / "lake"), "stock": f"embedded stock store at {tmp_path / 'stock' / 'stock.sqlite'}",
        "events": f"embedded queue at {tmp_path / 'events' / 'queue.sqlite'} (4 partitions)",
        "telemetry": f"JsonLinesTelemetry at {tmp_path / 'telemetry' / 'events.jsonl'}"}
