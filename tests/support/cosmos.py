"""Cosmos DB for the tests (set-up, not product): the Cosmos-API server from npm, and a real endpoint.

**The npm server** (``@vercel/cosmosdb-server``, ``node_modules/.bin/cosmosdb-server``) runs for the whole
session on 127.0.0.1. When ``make test`` or ``scripts/devservers.sh start`` already runs one,
``COSMOS_SERVER_PORT`` points the tests at it; otherwise the session starts its own on a free port and
stops it at the end. It serves HTTPS with a self-signed certificate, so its clients (tests, the demo; never
the product's) use ``connection_verify=False``, and the emulator's published well-known key.
On CI a missing server is a failure, never a silent skip; locally the Cosmos tests are skipped.

Its gaps (no transactional batch, a 500 for a missing read, lower-cased patch conditions) are worked
around in the set-up, never in the product, by ``ServerShimContainer`` — which lives, with the TLS helpers
and the key, in the dev-tooling module :mod:`shared.local.cosmos_devserver`, since ``inventory demo`` and
``inventory serve --cosmos-dev-server`` use it too. Its docstring says what the shim fills in and what it
therefore cannot verify: **the atomicity of a real transactional batch** (only tested against Azure,
``COSMOS_TEST_ENDPOINT``).

**A real endpoint** when ``COSMOS_TEST_ENDPOINT`` is set: ``COSMOS_TEST_KEY`` for the official emulator
(``COSMOS_TEST_VERIFY_TLS=0`` if its certificate is not trusted), else ``DefaultAzureCredential``. The
session creates a uniquely named database and deletes it at the end; no shim.

``tests/integration/conftest.py`` imports the fixtures below and adds the ``cosmos-server`` and ``cosmos``
params of ``stock_store`` with :func:`cosmos_server_store` and :func:`cosmos_real_store`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The dev-server pieces, shared with the demo (re-exported for the tests and bench/).
from shared.local.cosmos_devserver import (  # noqa: F401 - re-exported
    EMULATOR_KEY,
    ServerShimContainer,
    server_connection_string,
    unverified_tls_ok,
    unverified_tls_transport,
)
from tests.support.servers import HOST, session_server

REPO = Path(__file__).resolve().parents[2]
COSMOS_SERVER_BIN = REPO / "node_modules" / ".bin" / "cosmosdb-server"
CONTAINER = "stock"
LEDGER_TTL_S = 8 * 86400


def _stock_in_a_new_database(client: Any, prefix: str) -> Iterator[Any]:
    """The stock container, made by the product's ensure_container in a uniquely named database that is
    deleted afterwards (with the client closed): the body of both container fixtures."""
    from shared.adapters.stock_cosmos import ensure_container

    database = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        with unverified_tls_ok():
            container = ensure_container(client, CONTAINER, database)
        yield container
    finally:
        with unverified_tls_ok(), contextlib.suppress(Exception):
            client.delete_database(database)
        client.close()


# --- fixtures: the npm server ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cosmos_server_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running npm Cosmos DB server on 127.0.0.1 (shared by the whole session)."""
    yield from session_server("the Cosmos DB server (@vercel/cosmosdb-server)", "COSMOS_SERVER_PORT",
                              COSMOS_SERVER_BIN,
                              lambda port: [str(COSMOS_SERVER_BIN), "--host", HOST, "--port", str(port)],
                              tmp_path_factory)


@pytest.fixture(scope="session")
def cosmos_server_container(cosmos_server_port: int) -> Iterator[Any]:
    """The stock container on the npm server, created by the product's ensure_container in a uniquely
    named database (deleted afterwards: a server started by ``make test`` outlives the session)."""
    from azure.cosmos import CosmosClient

    from shared.adapters.stock_cosmos import client_options

    client = CosmosClient(f"https://{HOST}:{cosmos_server_port}/", credential=EMULATOR_KEY,
                          connection_verify=False, transport=unverified_tls_transport(), **client_options())
    yield from _stock_in_a_new_database(client, "test")


@pytest.fixture(scope="session")
def cosmos_server_shim(cosmos_server_container: Any) -> ServerShimContainer:
    """One shim per session: its lock must be shared by every store on the container."""
    with unverified_tls_ok():
        return ServerShimContainer(cosmos_server_container)


def cosmos_server_store(request: pytest.FixtureRequest) -> Any:
    """A CosmosStockStore on the npm server (through the shim). Tests use fresh store ids, so one
    container serves the session."""
    from shared.adapters.stock_cosmos import CosmosStockStore

    return CosmosStockStore(request.getfixturevalue("cosmos_server_shim"), ledger_ttl_s=LEDGER_TTL_S)


# --- fixtures: a real endpoint (Azure, or the official emulator) -----------------------------------------------


@pytest.fixture(scope="session")
def cosmos_real_container() -> Iterator[Any]:
    endpoint = os.environ.get("COSMOS_TEST_ENDPOINT", "").strip()
    if not endpoint:
        pytest.skip("COSMOS_TEST_ENDPOINT not set (a real Cosmos DB account or the official emulator)")
    from azure.cosmos import CosmosClient

    from shared.adapters.stock_cosmos import client_options

    key = os.environ.get("COSMOS_TEST_KEY", "").strip()
    if key:
        credential: Any = key
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    options = client_options()
    if os.environ.get("COSMOS_TEST_VERIFY_TLS", "1").strip().lower() in ("0", "false", "no"):
        options["connection_verify"] = False  # the official emulator's certificate, when not trusted
    client = CosmosClient(endpoint, credential=credential, **options)
    yield from _stock_in_a_new_database(client, "inventory-test")


def cosmos_real_store(request: pytest.FixtureRequest) -> Any:
    """A CosmosStockStore on COSMOS_TEST_ENDPOINT (skipped when unset); no shim."""
    from shared.adapters.stock_cosmos import CosmosStockStore

    return CosmosStockStore(request.getfixturevalue("cosmos_real_container"), ledger_ttl_s=LEDGER_TTL_S)
