"""`inventory demo` as a user runs it (a subprocess on a temp INVENTORY_HOME): on the local defaults, and on
Azurite and the npm Cosmos-API server as ``make demo EMULATORS=1`` runs it.

Checked from what the demo prints: every generated store's dump ingested and the broken upload quarantined,
every POSTed event accounted for, alerts raised, the dashboard written, no function failing, the six
progress steps in order; and a second run (which starts clean) prints the same counts. The stores' history ends
yesterday (UTC) and is counted at 23:00 that night, and the POS traffic leaves hardly any count below zero.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

DEMO = ["demo", "--stores", "2", "--sales-lines", "3000", "--days", "21", "--port", "0"]
STORES = ["S001", "S002"]
EVENT_OUTCOMES = ("refused", "events_applied", "events_duplicate", "events_before_baseline", "events_deadlettered")


def demo_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment without any Azure or emulator setting (the local defaults), plus ``settings``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAKE", "COSMOS", "EVENTS", "APPLICATIONINSIGHTS")) and "__" not in k}
    return {**env, "INVENTORY_HOME": str(home), "TELEMETRY_CONSOLE": "0", **settings}


def run_demo(env: dict[str, str], *args: str, cwd: Path) -> dict:
    """Run the demo; check what every run must show; return the counts that must not change between runs."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    result = subprocess.run([sys.executable, "-m", "shared", *DEMO, *args], capture_output=True, text=True,
                            env=env, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout)

    # The history ends yesterday (the day before the run, UTC; either day if the run crossed midnight) and each
    # dump is that night's count, taken after the day's last sale.
    end = date.fromisoformat(out["history_end"])
    assert end in {yesterday, datetime.now(UTC).date() - timedelta(days=1)}
    for store in STORES:
        with sqlite3.connect(Path(env["INVENTORY_HOME"]) / "demo" / "stores" / f"{store}.sqlite") as con:
            last_sale = con.execute("SELECT max(date(sold_at)) FROM sales "
                                    "WHERE datetime(julianday(sold_at)) IS sold_at").fetchone()[0]
            assert last_sale == end.isoformat()
            assert con.execute("SELECT max(counted_at) FROM stock").fetchone()[0] == f"{end} 23:00:00"
        week = out["sales_last_7_days"][store]
        assert week["units_to_last_day"] > 0 and week["units"] > 0, week
    levels = out["stock_levels"]
    assert levels["counts"] == 300 * len(STORES), levels
    assert levels["negative"] <= 0.02 * levels["counts"], levels  # the dumps' ~1 % of dirty rows, few oversells

    ingested = {d["store_id"]: d["dump_id"] for d in out["dumps"] if d["status"] == "ingested"}
    assert sorted(ingested) == STORES, out["dumps"]
    others = [d for d in out["dumps"] if d["status"] != "ingested"]
    assert len(others) == 1 and others[0]["status"] == "quarantined", others
    assert others[0]["reason"].startswith("not_sqlite"), others

    events = out["events"]
    assert events["posted"] == sum(events[k] for k in EVENT_OUTCOMES), events
    assert events["events_applied"] > 0
    assert sum(out["alerts"].values()) > 0, out["alerts"]
    assert Path(out["dashboard"]).is_file()
    assert out["function_failures"] == {}, result.stderr[-4000:]

    steps = [m.group(1) for m in re.finditer(r"^([1-6])/6 ", result.stderr, re.MULTILINE)]
    assert steps == ["1", "2", "3", "4", "5", "6"], result.stderr[-4000:]
    return {"events": events, "alerts": out["alerts"], "dumps": ingested, "lake": out["lake"],
            "stock": out["stock"], "function_runs": out["function_runs"], "stderr": result.stderr}


def assert_same_counts(again: dict, first: dict) -> None:
    """The same counts. The demo's runner keeps the timers' schedules off and runs each timer once, in order,
    through the admin endpoint, so the alerts do not depend on the clock either."""
    for run in (again, first):
        assert {t: run["function_runs"].get(t) for t in ("compute_aggregates", "raise_alerts")} == \
            {"compute_aggregates": 1, "raise_alerts": 1}
    keys = ["events", "alerts", "dumps", "lake", "stock"]
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}


def test_the_demo_on_the_local_defaults_twice(tmp_path):
    env = demo_env(tmp_path / "home")
    first = run_demo(env, cwd=tmp_path)
    assert first["lake"] == str(tmp_path / "home" / "lake")
    assert "embedded stock store" in first["stock"]
    assert_same_counts(run_demo(env, cwd=tmp_path), first)  # starts clean: the same counts again


@pytest.mark.azurite
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # clean-up's client
def test_the_demo_on_azurite_and_the_cosmos_server_twice(tmp_path, azurite_conn, cosmos_server_port):
    # Names of its own on the shared servers (``make test`` keeps them running); the second run meets the
    # first one's lake objects and stock container there, and must start clean all the same.
    name = f"demo-{uuid.uuid4().hex[:12]}"
    env = demo_env(tmp_path / "home", LAKE=azurite_conn, LAKE_CONTAINER=name, COSMOS_DATABASE=name)
    url = f"https://127.0.0.1:{cosmos_server_port}/"
    fewer_events = ("--pos-events", "300")  # ~10 ms an event on this server: the run stays ~15 s
    try:
        first = run_demo(env, "--cosmos-dev-server", url, *fewer_events, cwd=tmp_path)
        assert first["lake"].endswith(f"/devstoreaccount1/{name}")
        assert f"dbs/{name}/colls/stock" in first["stock"] and url in first["stock"]
        assert not (tmp_path / "home" / "lake").exists() and not (tmp_path / "home" / "stock").exists()
        again = run_demo(env, "--cosmos-dev-server", url, *fewer_events, cwd=tmp_path)
        assert "emptied the lake on the emulator" in again["stderr"]
        assert "deleted the stock container of an earlier run" in again["stderr"]
        assert_same_counts(again, first)
    finally:
        from azure.cosmos import CosmosClient

        from shared.adapters.lake_blob import BlobLake
        from shared.local.cosmos_devserver import EMULATOR_KEY, unverified_tls_transport

        with contextlib.suppress(Exception):  # (not to hide why the test failed)
            BlobLake.from_connection_string(azurite_conn, name).delete_container()
        client = CosmosClient(url, credential=EMULATOR_KEY, connection_verify=False,
                              transport=unverified_tls_transport())
        with contextlib.suppress(Exception):
            client.delete_database(name)
        client.close()
