"""The agent's settings: where each comes from, what is refused and how it says so, the identities it builds,
and the example config files shipped in agent/deploy/."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path, PureWindowsPath

import pytest
from inventory_agent.certificate import make_certificate
from inventory_agent.config import (
    CONNECTION_STRING_ENV,
    SETTINGS,
    build_credential,
    build_destination,
    default_home,
    load_settings,
)
from inventory_agent.destinations import BlobDestination, FolderDestination
from inventory_agent.errors import AgentError, ConfigError

DEPLOY = Path(__file__).resolve().parents[2] / "agent" / "deploy"
BASE = {"store_id": "S042", "database": "/pos/store.db"}


def settings(flags=None, config=None, **env):
    return load_settings({**BASE, **(flags or {})}, config, environ=env)


def test_flags_over_agent_variables_over_the_file_over_generic_variables(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text('store_id = "FILE"\ndatabase = "pos.db"\nfolder = "lake"\ntenant_id = "file-tenant"\n'
                   'log_file = "logs/agent.log"\n')
    s = load_settings({"store_id": None}, cfg, environ={"AZURE_TENANT_ID": "azure-tenant", "AZURE_CLIENT_ID": "azure"})
    assert (s.store_id, s.tenant_id, s.client_id) == ("FILE", "file-tenant", "azure")
    assert s.database == tmp_path / "pos.db" and s.folder == tmp_path / "lake", "file paths: from the file's folder"
    assert s.log_file == tmp_path / "logs" / "agent.log"
    s = load_settings({"store_id": None}, cfg, environ={"INVENTORY_AGENT_STORE_ID": "ENV"})
    assert s.store_id == "ENV"
    s = load_settings({"store_id": "FLAG"}, cfg, environ={"INVENTORY_AGENT_STORE_ID": "ENV"})
    assert s.store_id == "FLAG"


def test_every_setting_has_its_own_variable():
    assert [k.env for k in SETTINGS] == [f"INVENTORY_AGENT_{k.name.upper()}" for k in SETTINGS]


@pytest.mark.parametrize("given, message", [
    ({}, "say where to upload with exactly one of account_url .* got none"),
    ({"account_url": "https://a.blob.core.windows.net", "folder": "/x"}, "got account_url and folder"),
    ({"folder": "/x", "credential": "password"}, "credential 'password' is not one of"),
    ({"account_url": "https://a.blob.core.windows.net", "credential": "certificate"},
     "credential 'certificate' needs tenant_id, client_id, certificate_path"),
])
def test_contradictory_or_incomplete_settings_are_refused(given, message):
    with pytest.raises(ConfigError, match=message):
        settings(given)


def test_a_missing_store_or_database_names_every_way_to_give_it():
    with pytest.raises(ConfigError, match=r"store_id \(--store, INVENTORY_AGENT_STORE_ID, or store_id in the "
                                          r"config file\), database \(--db"):
        load_settings({}, None, environ={})


def test_the_pipelines_lake_variables_fill_in_but_never_contradict(tmp_path):
    s = settings(LAKE__blobServiceUri="https://acct.blob.core.windows.net", LAKE_CONTAINER="lake2")
    assert (s.account_url, s.container) == ("https://acct.blob.core.windows.net", "lake2")
    s = settings({"folder": str(tmp_path)}, LAKE__blobServiceUri="https://acct.blob.core.windows.net")
    assert s.account_url is None and s.folder == tmp_path
    s = settings(**{CONNECTION_STRING_ENV: "UseDevelopmentStorage=true",
                    "LAKE__blobServiceUri": "https://acct.blob.core.windows.net"})
    assert s.account_url is None and s.connection_string


@pytest.mark.parametrize("text, message", [
    ('store_id = "S1"\nstoreid = "S2"\n', "unknown setting.s. storeid"),
    ("store_id = 42\n", "store_id in .* must be a non-empty string"),
    ('database = "C:\\POS\\store.db"\n', "not valid TOML.*single quotes"),
])
def test_config_file_mistakes_are_named(tmp_path, text, message):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, cfg, environ={})


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"no config file at .*nope\.toml"):
        load_settings({}, tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize("name", ["agent.example.toml", "agent.windows.example.toml"])
def test_the_example_configs_are_complete(name):
    s = load_settings({}, DEPLOY / name, environ={})
    assert s.store_id == "S042" and s.container == "lake" and s.credential == "certificate"
    assert s.account_url.startswith("https://") and s.certificate_path.name == "agent.pem"
    if "windows" in name:  # read here on Linux, where C:\... is not absolute: check the file's own values
        raw = tomllib.loads((DEPLOY / name).read_text())
        assert raw["database"] == r"C:\POS\Data\store.db", "single-quoted: the backslashes are kept"
        assert all(PureWindowsPath(raw[k]).is_absolute() for k in ("database", "log_file", "home"))


def test_default_home_per_platform(monkeypatch):
    home = Path.home()
    assert default_home({}) == home / ".local" / "state" / "inventory-agent"
    assert default_home({"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/inventory-agent")
    assert default_home({"STATE_DIRECTORY": "/var/lib/inventory-agent"}) == Path("/var/lib/inventory-agent")
    monkeypatch.setattr(sys, "platform", "win32")
    assert default_home({"LOCALAPPDATA": "/c/Users/pos/AppData/Local"}) == Path(
        "/c/Users/pos/AppData/Local/inventory-agent")


def test_the_certificate_identity_is_built_from_a_key_made_by_the_agent(tmp_path):
    from azure.identity import CertificateCredential, DefaultAzureCredential, ManagedIdentityCredential

    pem, crt = make_certificate("S042", tmp_path / "id")
    assert (pem.stat().st_mode & 0o777) == 0o600, "the private key is readable by its owner only"
    assert b"PRIVATE KEY" in pem.read_bytes() and b"PRIVATE KEY" not in crt.read_bytes()
    with pytest.raises(AgentError, match="exists"):
        make_certificate("S042", tmp_path / "id")

    s = settings({"account_url": "https://a.blob.core.windows.net"}, AZURE_TENANT_ID="t", AZURE_CLIENT_ID="c",
                 AZURE_CLIENT_CERTIFICATE_PATH=str(pem))
    assert s.credential == "certificate"
    assert isinstance(build_credential(s), CertificateCredential)
    destination = build_destination(s)
    assert isinstance(destination, BlobDestination) and destination.describe() == "https://a.blob.core.windows.net/lake"

    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"cannot use the certificate .*private key"):
        build_credential(settings({"account_url": "https://a", "certificate_path": str(broken), "tenant_id": "t",
                                   "client_id": "c"}))
    with pytest.raises(ConfigError, match="no certificate file at"):
        build_credential(settings({"account_url": "https://a", "certificate_path": str(tmp_path / "gone.pem"),
                                   "tenant_id": "t", "client_id": "c"}))
    assert isinstance(build_credential(settings({"account_url": "https://a", "credential": "managed-identity"})),
                      ManagedIdentityCredential)
    assert isinstance(build_credential(settings({"account_url": "https://a"})), DefaultAzureCredential)


def test_destinations_refuse_what_azure_would(tmp_path):
    with pytest.raises(ConfigError, match="must start with https://"):
        BlobDestination.from_account_url("http://a.blob.core.windows.net", "lake", object())
    with pytest.raises(ConfigError, match="invalid container name 'Lake'"):
        BlobDestination.from_connection_string("UseDevelopmentStorage=true", "Lake")
    with pytest.raises(ConfigError, match="the connection string is not usable"):
        BlobDestination.from_connection_string("AccountKey=secret-key", "lake")
    assert isinstance(build_destination(settings({"folder": str(tmp_path)})), FolderDestination)
