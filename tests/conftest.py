"""Fixtures for tests that touch real outside things: the lake on Azurite (Blob API) and on a folder.

Azurite comes from npm (``npm ci`` installs ``node_modules/.bin/azurite-blob``). When ``make test`` or
``scripts/devservers.sh start`` already runs one, ``AZURITE_BLOB_PORT`` points the tests at it; otherwise
the session starts its own on a free port and stops it at the end. On CI a missing Azurite is a failure,
never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30
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


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _start_azurite(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start Azurite Blob on a free port; retry on the rare port race with another process."""
    last_error = ""
    for _ in range(3):
        port = _free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(AZURITE_BIN), "--blobHost", HOST, "--blobPort", str(port), *AZURITE_FLAGS],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=log.parent,
                start_new_session=True,  # Ctrl-C on pytest does not reach it first; _stop ends it
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _port_answers(port):
                return proc, port
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            _stop(proc)
            pytest.fail(f"Azurite did not answer on {HOST}:{port} within {START_TIMEOUT_S} s; see {log}")
        last_error = f"Azurite exited with code {proc.returncode} while starting on port {port}"
    pytest.fail(f"{last_error}; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def azurite_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string for an Azurite Blob service on 127.0.0.1 (shared by the whole session)."""
    env_port = os.environ.get("AZURITE_BLOB_PORT", "").strip()
    if env_port:
        if not env_port.isdigit():
            pytest.fail(f"AZURITE_BLOB_PORT={env_port!r} is not a port number")
        if _port_answers(int(env_port)):
            yield dev_connection_string(int(env_port))
            return
        # Set but nothing answers (e.g. a stale variable): start our own rather than fail.
    if not AZURITE_BIN.exists():
        message = f"Azurite not installed ({AZURITE_BIN} missing): run `npm ci` in {REPO}"
        if _in_ci():
            pytest.fail(message + " (CI must run the Azurite tests, not skip them)")
        pytest.skip("Azurite not installed: run `npm ci`")
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    proc, port = _start_azurite(log)
    try:
        yield dev_connection_string(port)
    finally:
        _stop(proc)


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
