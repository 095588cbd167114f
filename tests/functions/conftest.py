from __future__ import annotations

import pytest

import shared.bootstrap


@pytest.fixture(scope="session")
def functions():
    """The registered functions by name. get_functions() may run once per process (see FACTS.md)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """An isolated INVENTORY_HOME with the folder lake; the app's container is rebuilt from it."""
    monkeypatch.setenv("INVENTORY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TELEMETRY_CONSOLE", "0")
    for name in ("LAKE", "LAKE__blobServiceUri"):
        monkeypatch.delenv(name, raising=False)
    shared.bootstrap.reset_default_container()
    yield shared.bootstrap.default_container()
    shared.bootstrap.reset_default_container()
