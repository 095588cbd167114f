"""The process-wide container the registered functions use (``shared.bootstrap.default_container()``),
pointed at a fresh local home for one test: the one set-up the function and local-runner tests share.

Two backends (the ``app_backend`` fixture's params, for tests that touch the lake or the stock store):

- ``local``: the local defaults under the home (a folder lake, the embedded stock store);
- ``emulators``: the lake on Azurite (a uniquely named Blob container) and the stock store on the npm
  Cosmos-API server (a uniquely named database, through ``build_on_dev_server(env, URL)``, as
  ``inventory demo|serve --cosmos-dev-server`` does), both deleted afterwards. The servers are the session's
  (``azurite_conn``, ``cosmos_server_port``: those of ``make test`` when AZURITE_BLOB_PORT and
  COSMOS_SERVER_PORT name running ones, else started for the session); on CI a missing server fails.

Events stay on the embedded queue in both: Event Hubs has no emulator installable here (docs/platform-notes.md), and the
functions never read the queue themselves (the tests hand ``apply_sales`` its batch)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Settings that would send an adapter to Azure (or an emulator) instead of its local default.
AZURE_SETTINGS = ("LAKE", "LAKE__blobServiceUri", "COSMOS", "COSMOS__accountEndpoint", "EVENTS",
                  "EVENTS__fullyQualifiedNamespace", "APPLICATIONINSIGHTS_CONNECTION_STRING")

# The npm server's certificate is self-signed and the dev-server client does not verify it. The Cosmos SDK
# also checks the endpoint's health from a background thread started with each client, so such a request may
# warn during whichever test runs next: tests/functions/conftest.py puts this mark on every function test.
LOOPBACK_TLS = pytest.mark.filterwarnings(
    r"ignore:Unverified HTTPS request is being made to host '127\.0\.0\.1':urllib3.exceptions.InsecureRequestWarning")
BACKENDS = ["local", pytest.param("emulators", marks=[pytest.mark.azurite, LOOPBACK_TLS])]


@dataclass
class Backend:
    """Where one test's app keeps its lake and stock: ``env`` (settings) and the Cosmos dev server's URL."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    cosmos_url: str = ""  # the npm Cosmos-API server (build_on_dev_server), or "" for the default
    cosmos_port: int = 0

    @property
    def emulated(self) -> bool:
        return self.name == "emulators"


LOCAL = Backend("local")


def emulators(azurite_conn: str, cosmos_port: int) -> Backend:
    """Fresh names on both servers: nothing is shared with another test (or another run on the servers)."""
    suffix = uuid.uuid4().hex[:12]
    return Backend("emulators", {"LAKE": azurite_conn, "LAKE_CONTAINER": f"fn-{suffix}",
                                 "COSMOS_DATABASE": f"fn-{suffix}"},
                   f"https://127.0.0.1:{cosmos_port}/", cosmos_port)


@pytest.fixture(params=BACKENDS)
def app_backend(request: pytest.FixtureRequest) -> Backend:
    """``local`` or ``emulators`` (Azurite lake + Cosmos-API stock store); for :func:`app_container`."""
    if request.param == "local":
        return LOCAL
    return emulators(request.getfixturevalue("azurite_conn"), request.getfixturevalue("cosmos_server_port"))


@contextlib.contextmanager
def app_container(monkeypatch: pytest.MonkeyPatch, home: Path, backend: Backend = LOCAL,
                  **env: str) -> Iterator[Any]:
    """``default_container()`` under ``home`` (Azure settings removed, no telemetry lines on the console) on
    ``backend``, plus ``env``; forgotten again afterwards. On the emulators, the lake container and the Cosmos
    database it created are deleted at the end."""
    import shared.bootstrap
    from shared.local.cosmos_devserver import build_on_dev_server

    for name in AZURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INVENTORY_HOME", str(home))
    monkeypatch.setenv("TELEMETRY_CONSOLE", "0")
    for name, value in {**backend.env, **env}.items():
        monkeypatch.setenv(name, value)
    shared.bootstrap.reset_default_container()
    c = None
    try:
        if backend.cosmos_url:
            c = build_on_dev_server(None, backend.cosmos_url)
            shared.bootstrap.use_default_container(c)
        else:
            c = shared.bootstrap.default_container()
        yield c
    finally:
        shared.bootstrap.reset_default_container()
        if c is not None and backend.emulated:
            _clean_up(c, backend)


def _clean_up(c: Any, backend: Backend) -> None:
    """Delete what the container made on the servers (only what it built: a lake or stock never used made
    nothing). Both are attempted even if one fails."""
    built = vars(c)  # cached_property values live in the instance dict
    try:
        if "lake" in built:
            built["lake"].delete_container()
    finally:
        if "stock" in built:
            built["stock"].close()
            drop_database(backend.cosmos_port, backend.env["COSMOS_DATABASE"])


def drop_database(port: int, database: str) -> None:
    """Delete ``database`` on the npm Cosmos-API server at ``port`` (gone already is fine)."""
    from azure.cosmos import CosmosClient
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    from shared.adapters.stock_cosmos import client_options
    from tests.support.cosmos import EMULATOR_KEY, HOST, unverified_tls_ok, unverified_tls_transport

    with unverified_tls_ok():
        client = CosmosClient(f"https://{HOST}:{port}/", credential=EMULATOR_KEY, connection_verify=False,
                              transport=unverified_tls_transport(), **client_options())
        try:
            with contextlib.suppress(CosmosResourceNotFoundError):
                client.delete_database(database)
        finally:
            client.close()
