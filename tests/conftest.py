"""Fixtures for tests that touch real outside things: the lake on Azurite (Blob API) and on a folder.

Azurite comes from npm (``npm ci`` installs ``node_modules/.bin/azurite-blob``). When ``make test`` or
``scripts/devservers.sh start`` already runs one, ``AZURITE_BLOB_PORT`` points the tests at it; otherwise
the session starts its own on a free port and stops it at the end. On CI a missing Azurite is a failure,
never a silent skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from shared.adapters.lake_folder import FolderLake
from tests.support.servers import HOST, session_server

# No per-example deadline: the first example of a test pays for imports (pyarrow's kernels: ~0.2 s), and on a
# busy 2-core CI machine that alone passed Hypothesis's default 200 ms and failed a correct test as "flaky".
settings.register_profile("inventory", deadline=None)
settings.load_profile("inventory")

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"
# The same flags as scripts/devservers.sh: in memory (every start is empty), no telemetry, accept any
# API version the SDK sends, and be lenient about headers Azurite does not know.
AZURITE_FLAGS = [
    "--inMemoryPersistence",
    "--disableTelemetry",
    "--skipApiVersionCheck",
    "--loose",
    "--silent",
]

# The storage emulator's well-known development account and key. Microsoft publishes them; they only
# work against an emulator such as Azurite and are not a secret (no real account accepts them).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def dev_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{HOST}:{port}/{DEV_ACCOUNT};"
    )


@pytest.fixture(scope="session")
def azurite_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string for an Azurite Blob service on 127.0.0.1 (shared by the whole session)."""
    for port in session_server("Azurite", "AZURITE_BLOB_PORT", AZURITE_BIN,
                               lambda port: [str(AZURITE_BIN), "--blobHost", HOST, "--blobPort", str(port),
                                             *AZURITE_FLAGS], tmp_path_factory):
        yield dev_connection_string(port)


@pytest.fixture
def blob_lake(azurite_conn: str) -> Iterator[object]:
    """A BlobLake on a fresh, uniquely named container (deleted afterwards: Azurite keeps it in memory)."""
    from shared.adapters.lake_blob import BlobLake

    lake = BlobLake.from_connection_string(azurite_conn, f"test-{uuid.uuid4().hex[:16]}")
    try:
        yield lake
    finally:
        lake.delete_container()


@pytest.fixture(params=["folder", pytest.param("blob", marks=pytest.mark.azurite)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """The same contract on both lakes: the local default (a folder) and the Blob lake (on Azurite)."""
    if request.param == "folder":
        return FolderLake(tmp_path / "lake")
    return request.getfixturevalue("blob_lake")
