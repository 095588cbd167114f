"""The process-wide container the registered functions use (``shared.bootstrap.default_container()``),
pointed at a fresh local home for one test: the one set-up the function and local-runner tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

# Settings that would send an adapter to Azure (or an emulator) instead of its local default.
AZURE_SETTINGS = ("LAKE", "LAKE__blobServiceUri", "COSMOS", "COSMOS__accountEndpoint", "EVENTS",
                  "EVENTS__fullyQualifiedNamespace", "APPLICATIONINSIGHTS_CONNECTION_STRING")


@contextlib.contextmanager
def app_container(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> Iterator[object]:
    """``default_container()`` on the local defaults under ``home`` (Azure settings removed, no telemetry
    lines on the console) plus ``env``; forgotten again afterwards."""
    import shared.bootstrap

    for name in AZURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INVENTORY_HOME", str(home))
    monkeypatch.setenv("TELEMETRY_CONSOLE", "0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    shared.bootstrap.reset_default_container()
    try:
        yield shared.bootstrap.default_container()
    finally:
        shared.bootstrap.reset_default_container()
