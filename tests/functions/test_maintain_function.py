"""The ``maintain_lake`` timer, found through app.get_functions() and called with a real TimerRequest, on the
folder lake ("local") and on Azurite ("emulators"; maintenance never touches the stock store), after three
nights of one store were ingested."""

from __future__ import annotations

import json

from azure.functions.timer import TimerRequest

from shared.local.generator import generate_store
from shared.services.ingest import ingest_dump
from tests.support.app import app_container
from tests.support.delta import delta_count
from tests.support.dumps import next_night


def test_maintain_lake_binding(functions) -> None:
    trigger = json.loads(functions["maintain_lake"].get_function_json())["bindings"][0]
    assert trigger["type"] == "timerTrigger" and trigger["schedule"] == "%MAINTAIN_SCHEDULE%"
    assert trigger["useMonitor"] is True


def test_maintain_lake_compacts_the_nights_files_and_reports_them(functions, tmp_path, monkeypatch, app_backend):
    with app_container(monkeypatch, tmp_path / "home", app_backend) as c:
        first = generate_store(tmp_path / "S1.sqlite", "S1", n_items=40, days=10, sales_lines=800, seed=2).path
        for i, dump in enumerate([first, next_night(first, tmp_path / "n2.sqlite", 5),
                                  next_night(first, tmp_path / "n3.sqlite", 9)]):
            assert ingest_dump(dump, "S1", lake=c.lake, telemetry=c.telemetry).status == "ingested", i
        lines = delta_count(c.lake, "curated/sales")

        functions["maintain_lake"].get_user_function()(TimerRequest(past_due=False))

        assert delta_count(c.lake, "curated/sales") == lines
        events = [json.loads(line) for line in (c.settings.home / "telemetry" / "events.jsonl").open()]
        done = {e["properties"]["table"]: e["properties"] for e in events if e.get("name") == "LakeTableMaintained"}
        assert done["curated/sales"]["filesCompacted"] >= 2
        assert done["curated/sales"]["filesAfter"] < done["curated/sales"]["filesBefore"]
        assert type(c.lake).__name__ == ("BlobLake" if app_backend.emulated else "FolderLake")
