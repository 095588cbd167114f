"""Where delta-rs finds a Delta table of each lake, and with which credentials: a folder path; on Azure the
app's identity as an Entra token (never an account key); on Azurite the emulator setup that commits reliably."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import ContainerClient

from shared.adapters.lake_blob import BlobLake
from shared.adapters.lake_folder import FolderLake
from shared.ports.lake import LakeError


class FakeIdentity:
    """A TokenCredential as azure-identity's credentials are (no network)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{len(self.scopes)}", 2_000_000_000)


def test_the_folder_lake_gives_the_tables_folder(tmp_path: Path) -> None:
    lake = FolderLake(tmp_path / "lake")
    assert lake.delta_location("curated/sales") == (str(tmp_path.resolve() / "lake" / "curated" / "sales"), {})
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.delta_location("../outside")


def test_azure_uses_a_fresh_entra_token_of_the_apps_identity_and_no_key() -> None:
    identity = FakeIdentity()
    client = ContainerClient("https://acct.blob.core.windows.net", "lake", credential=identity)
    lake = BlobLake(client, create_container=False)
    uri, options = lake.delta_location("curated/sales")
    assert uri == "az://lake/curated/sales"
    assert options == {"azure_storage_account_name": "acct", "bearer_token": "token-1"}
    assert identity.scopes == [("https://storage.azure.com/.default",)]
    assert lake.delta_location("rejected/sales")[1]["bearer_token"] == "token-2"  # asked again each time


def test_azurite_gets_the_emulator_flag_and_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURITE_BLOB_STORAGE_URL", raising=False)
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1;")
    lake = BlobLake(ContainerClient.from_connection_string(conn, "lake"), create_container=False)
    uri, options = lake.delta_location("curated/items")
    assert uri == "az://lake/curated/items"
    assert options == {"azure_storage_use_emulator": "true", "azure_storage_account_name": "devstoreaccount1"}
    assert os.environ["AZURITE_BLOB_STORAGE_URL"] == "http://127.0.0.1:41234"
