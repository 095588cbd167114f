"""``inventory events apply``, ``inventory stock`` and ``inventory pos`` as a user runs them (subprocesses on a
temp INVENTORY_HOME), including a SIGKILL in the middle of applying events."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.local.pos_traffic import expected_deltas, pos_traffic

START = datetime.now(UTC) - timedelta(hours=2)


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0"}
    for name in ("LAKE", "COSMOS", "EVENTS", "LAKE__blobServiceUri", "COSMOS__accountEndpoint",
                 "EVENTS__fullyQualifiedNamespace"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "shared", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def write_traffic(path: Path, count: int, stores: tuple[str, ...] = ("S001", "S002")) -> dict:
    items = list(pos_traffic(list(stores), [f"K-{i:03d}" for i in range(50)], count=count, seed=7, start=START,
                             rate_per_s=20))
    path.write_bytes(b"".join(item.body + b"\n" for item in items))
    return expected_deltas(items)


def stock_of(home: Path, store: str) -> dict[str, int]:
    docs = json.loads(run(home, "stock", store).stdout)
    return {d["sku"]: d["onHand"] for d in docs}


def test_events_apply_prints_counts_and_stock_moves(tmp_path: Path) -> None:
    home = tmp_path / "home"
    events = tmp_path / "events.jsonl"
    expected = write_traffic(events, 600)
    out = json.loads(run(home, "events", "apply", str(events), "--batch-size", "100").stdout)
    assert out["received"] == 600
    assert out["applied"] + out["duplicate"] + out["deadlettered"] == 600
    assert out["deadlettered"] > 0 and out["duplicate"] > 0 and set(out["reasons"]) <= {
        "bad_json", "missing_field", "bad_store_id", "unknown_type", "bad_qty", "too_many_lines", "missing_sku"}
    for store in ("S001", "S002"):
        want = {sku: d for (s, sku), d in expected.items() if s == store}
        assert stock_of(home, store) == want

    again = json.loads(run(home, "events", "apply", str(events)).stdout)
    assert again["applied"] == 0 and again["duplicate"] == out["applied"] + out["duplicate"]

    one = json.loads(run(home, "stock", "S001", "--sku", next(iter(stock_of(home, "S001"))).lower()).stdout)
    assert len(one) == 1 and {"storeId", "sku", "onHand"} <= set(one[0])


def test_stock_of_an_unknown_store_says_so(tmp_path: Path) -> None:
    proc = run(tmp_path / "home", "stock", "S999")
    assert json.loads(proc.stdout) == [] and "no stock documents for store S999" in proc.stderr
    bad = run(tmp_path / "home", "stock", "../x", check=False)
    assert bad.returncode == 1 and "invalid store id" in bad.stderr


def test_events_apply_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = run(tmp_path / "home", "events", "apply", str(tmp_path / "nope.jsonl"), check=False)
    assert proc.returncode == 1 and "no events file" in proc.stderr


def test_pos_send_then_consume_reaches_stock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    events = tmp_path / "events.jsonl"
    expected = write_traffic(events, 300)
    sent = json.loads(run(home, "pos", "send", str(events)).stdout)
    assert sent["sent"] == 300 and "embedded queue" in sent["sink"]
    consumed = json.loads(run(home, "events", "consume", "--quiet").stdout)
    assert consumed["received"] == 300 and consumed["backlog"] == 0
    assert stock_of(home, "S001") == {sku: d for (s, sku), d in expected.items() if s == "S001"}
    assert json.loads(run(home, "events", "consume", "--quiet").stdout)["received"] == 0  # checkpointed


def test_pos_simulate_sends_realistic_traffic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = json.loads(run(home, "pos", "simulate", "--stores", "2", "--count", "400", "--fast").stdout)
    assert out["sent"] == 400 and out["kinds"]["valid"] > 300
    consumed = json.loads(run(home, "events", "consume", "--quiet").stdout)
    assert consumed["applied"] == out["kinds"]["valid"]
    assert consumed["duplicate"] == out["kinds"].get("duplicate", 0)


def _ledger_rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM ledger").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_sigkill_in_the_middle_of_events_apply_then_rerun_is_exact(tmp_path: Path) -> None:
    home = tmp_path / "home"
    events = tmp_path / "events.jsonl"
    expected = write_traffic(events, 20_000, stores=("S001", "S002", "S003"))
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "shared", "events", "apply", str(events), "--batch-size", "50",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "stock" / "stock.sqlite"
    deadline = time.monotonic() + 60
    while _ledger_rows(db) < 2000 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    applied_before = _ledger_rows(db)
    assert 0 < applied_before < 19_000, "the kill must land in the middle of the run"

    out = json.loads(run(home, "events", "apply", str(events), "--quiet").stdout)
    assert out["applied"] > 0 and out["duplicate"] >= applied_before
    for store in ("S001", "S002", "S003"):
        assert stock_of(home, store) == {sku: d for (s, sku), d in expected.items() if s == store}


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "pos", "simulate", "--stores", "1", "--count", "200", "--fast", "--quiet")
    run(home, "events", "consume", "--quiet")
    env = {**os.environ, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0"}
    proc = subprocess.run(f"{sys.executable} -m shared stock S001 | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout == "[\n" and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_pos_send_dead_letters_an_event_too_large_to_send_and_sends_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    now = datetime.now(UTC).isoformat()
    good = [json.dumps({"eventId": f"e{i}", "storeId": "S001", "type": "sale", "occurredAt": now,
                        "lines": [{"sku": "A-1", "qty": 1}]}) for i in range(2)]
    huge = json.dumps({"eventId": "big", "storeId": "S001", "type": "sale", "occurredAt": now,
                       "lines": [{"sku": "A-1", "qty": 1}], "note": "x" * (1100 * 1024)})
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([good[0], huge, good[1]]) + "\n")
    proc = run(home, "pos", "send", str(events))
    out = json.loads(proc.stdout)
    assert out["sent"] == 2 and out["deadlettered"] == 1
    assert "events.jsonl:2" in proc.stderr and "too large" in proc.stderr
    [record] = [json.loads(line) for line in (home / "lake" / out["deadletter_path"]).read_text().splitlines()]
    assert record["reason"] == "too_large" and record["storeId"] == "S001"
    run(home, "serve", "--once")
    assert stock_of(home, "S001") == {"A-1": -2}


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "0"], "argument --rate: '0' is not a number above 0"),
    (["--stores", "0"], "argument --stores: '0' is not an integer at least 1"),
    (["--duplicates", "2"], "argument --duplicates: '2' is not a number at least 0 and at most 1"),
    (["--duplicates", "0.6", "--malformed", "0.6"], "add up to more than 1"),
])
def test_pos_simulate_refuses_options_out_of_range_without_a_traceback(tmp_path: Path, args, message) -> None:
    proc = run(tmp_path / "home", "pos", "simulate", "--fast", *args, check=False)
    assert proc.returncode in (1, 2) and message in proc.stderr and "Traceback" not in proc.stderr
