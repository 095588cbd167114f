from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app import (
    LOOPBACK_TLS,
    app_backend,  # noqa: F401 - fixture: the "local" and "emulators" backends
)
from tests.support.cosmos import cosmos_server_port  # noqa: F401 - fixture, used through app_backend

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every function test ignores the loopback Cosmos server's TLS warning (see LOOPBACK_TLS)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(LOOPBACK_TLS)


@pytest.fixture(scope="session")
def functions():
    """The registered functions by name. get_functions() may run once per process (docs/platform-notes.md), so this
    shares the local runner's cached call."""
    from shared.local.runner import app_functions

    return {f.get_function_name(): f for f in app_functions()}
