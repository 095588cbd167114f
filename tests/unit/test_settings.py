"""Every setting the app reads is declared once, in shared/settings.py, and appears in the sample
settings file and the settings table of docs/settings.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.settings import SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "AzureWebJobsFeatureFlags"}


def test_sample_settings_hold_exactly_the_declared_names():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert set(sample) - HOST_SETTINGS == {s.name for s in SETTINGS}


def test_docs_document_every_setting():
    doc = (ROOT / "docs" / "settings.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in doc]
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def test_only_settings_module_reads_the_environment():
    offenders = []
    for path in (ROOT / "shared").rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        if re.search(r"os\.environ(?!\))|os\.getenv", text) and "sqlite_dump.py" not in path.name:
            offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def test_defaults_are_local_and_safe():
    s = Settings.from_env({})
    assert s.get("LAKE") == "" and s.get("LAKE__blobServiceUri") == ""
    assert s.get("LAKE_CONTAINER") == "lake"
    assert s.int("INGEST_MAX_CELL_BYTES") > 0


def test_a_value_that_cannot_be_used_stops_at_start_up_naming_the_setting():
    from shared.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ALERT_COOLDOWN_HOURS": "abc", "INGEST_MEMORY_LIMIT": "lots", "INGEST_BATCH_ROWS": "0",
                           "TELEMETRY_CONSOLE": "yes", "INGEST_QUERY_TIMEOUT_S": "nan"})
    message = str(caught.value)
    for part in ("ALERT_COOLDOWN_HOURS='abc' is not a number above 0", "INGEST_MEMORY_LIMIT='lots' is not a size",
                 "INGEST_BATCH_ROWS='0' is not a whole number, 1 or more", "TELEMETRY_CONSOLE='yes' is not 0 or 1",
                 "INGEST_QUERY_TIMEOUT_S='nan'"):
        assert part in message
    good = Settings.from_env({"ALERT_COOLDOWN_HOURS": "0.5", "INGEST_MEMORY_LIMIT": "1.5GB", "TELEMETRY_CONSOLE": "0"})
    assert good.get("INGEST_MEMORY_LIMIT") == "1.5GB"


def test_every_default_and_sample_value_is_valid():

    Settings.from_env({})
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    Settings.from_env({k: v for k, v in sample.items() if isinstance(v, str)})
