"""The stock stores the contract suite runs on: the embedded store always; Cosmos DB variants are added by
``tests/support/cosmos.py`` (the Cosmos-API server from npm; a real endpoint with COSMOS_TEST_ENDPOINT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.stock import StockStore
from shared.adapters.stock_sqlite import SqliteStockStore

STOCK_STORES = ["sqlite"]


@pytest.fixture(params=STOCK_STORES)
def stock_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StockStore]:
    if request.param == "sqlite":
        store = SqliteStockStore(tmp_path / "stock.sqlite")
        yield store
        store.close()
        return
    raise AssertionError(f"unknown stock store {request.param}")
