"""The stock stores the contract suite runs on: the embedded store always; Cosmos DB variants are added by
``tests/support/cosmos.py`` (the Cosmos-API server from npm; a real endpoint with COSMOS_TEST_ENDPOINT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.stock_sqlite import SqliteStockStore
from shared.ports.stock import StockStore
from tests.support.cosmos import (  # noqa: F401 - fixtures, used through request.getfixturevalue
    cosmos_real_container,
    cosmos_real_store,
    cosmos_server_container,
    cosmos_server_port,
    cosmos_server_shim,
    cosmos_server_store,
)

# The npm server's certificate is self-signed and its test client does not verify it (nor the official
# emulator's with COSMOS_TEST_VERIFY_TLS=0): no warning per request (tests/support/cosmos.py).
_SELF_SIGNED = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
STOCK_STORES = ["sqlite", pytest.param("cosmos-server", marks=_SELF_SIGNED), pytest.param("cosmos", marks=_SELF_SIGNED)]


@pytest.fixture(params=STOCK_STORES)
def stock_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StockStore]:
    if request.param == "sqlite":
        store = SqliteStockStore(tmp_path / "stock.sqlite")
        yield store
        store.close()
        return
    if request.param == "cosmos-server":
        yield cosmos_server_store(request)
        return
    if request.param == "cosmos":
        yield cosmos_real_store(request)
        return
    raise AssertionError(f"unknown stock store {request.param}")
