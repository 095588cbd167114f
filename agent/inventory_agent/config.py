"""The agent's settings: command-line flags, then ``INVENTORY_AGENT_*`` environment variables, then the config
file (TOML), then the generic variables other tools set: azure-identity's ``AZURE_TENANT_ID``,
``AZURE_CLIENT_ID``, ``AZURE_CLIENT_CERTIFICATE_PATH`` and the pipeline's ``LAKE__blobServiceUri`` and
``LAKE_CONTAINER`` (what ``infra/scripts/store_access.py onboard`` prints). Those come last, so another
program's variables cannot override the agent's own file.

One table, :data:`SETTINGS`, says every key, its environment variable and what it means; the config file,
the environment, ``inventory-agent --help`` and docs/agent.md all use those names. Paths in the config
file are taken relative to the file's folder. The connection string (which carries an account key) is read
from the environment only, never from a file or a flag that other users could see.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory_agent.errors import ConfigError

CONNECTION_STRING_ENV = "INVENTORY_AGENT_CONNECTION_STRING"
CREDENTIALS = ("certificate", "managed-identity", "default")


@dataclass(frozen=True)
class Key:
    name: str
    env: str
    help: str
    is_path: bool = False
    fallback_env: str | None = None


SETTINGS = [
    Key("store_id", "INVENTORY_AGENT_STORE_ID", "the store's id, ^[A-Za-z0-9_-]{1,64}$ (the raw/store=<id>/ folder)"),
    Key("database", "INVENTORY_AGENT_DATABASE", "the store software's SQLite database (in use is fine)", True),
    Key("account_url", "INVENTORY_AGENT_ACCOUNT_URL",
        "the storage account's Blob endpoint, https://<account>.blob.core.windows.net",
        fallback_env="LAKE__blobServiceUri"),
    Key("container", "INVENTORY_AGENT_CONTAINER", "the lake container (default: lake)",
        fallback_env="LAKE_CONTAINER"),
    Key("folder", "INVENTORY_AGENT_FOLDER", "upload into this folder instead (a local lake, for trials)", True),
    Key("credential", "INVENTORY_AGENT_CREDENTIAL",
        "certificate, managed-identity or default (default: certificate when certificate_path is set, "
        "else default)"),
    Key("tenant_id", "INVENTORY_AGENT_TENANT_ID", "the Entra tenant of the store's identity",
        fallback_env="AZURE_TENANT_ID"),
    Key("client_id", "INVENTORY_AGENT_CLIENT_ID",
        "the app (client) id of the store's identity; with managed-identity, a user-assigned one",
        fallback_env="AZURE_CLIENT_ID"),
    Key("certificate_path", "INVENTORY_AGENT_CERTIFICATE_PATH",
        "PEM or PFX file with the identity's certificate and private key", True,
        fallback_env="AZURE_CLIENT_CERTIFICATE_PATH"),
    Key("home", "INVENTORY_AGENT_HOME", "the agent's working folder: snapshots are made in <home>/tmp", True),
    Key("log_file", "INVENTORY_AGENT_LOG_FILE", "also append each run's line to this file", True),
]
_BY_NAME = {k.name: k for k in SETTINGS}


@dataclass(frozen=True)
class Settings:
    store_id: str
    database: Path
    container: str
    home: Path
    account_url: str | None = None
    folder: Path | None = None
    connection_string: str | None = None
    credential: str = "default"
    tenant_id: str | None = None
    client_id: str | None = None
    certificate_path: Path | None = None
    log_file: Path | None = None

    @property
    def scratch(self) -> Path:
        return self.home / "tmp"


def default_home(env: dict[str, str] | None = None) -> Path:
    """Windows: ``%LOCALAPPDATA%\\inventory-agent``. Linux: systemd's ``$STATE_DIRECTORY`` (the unit's
    ``StateDirectory=``), else ``$XDG_STATE_HOME/inventory-agent``, else ``~/.local/state/inventory-agent``."""
    env = os.environ if env is None else env
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "inventory-agent"
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "inventory-agent"


def read_config_file(path: Path) -> dict[str, Any]:
    """The config file's keys, paths made absolute against its folder. Unknown keys are an error (a typo
    would otherwise be silently ignored)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}: see agent/deploy/agent.example.toml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc} (on Windows, write paths as "
                          "'C:\\POS\\store.db' in single quotes, or with doubled backslashes)") from None
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} in {path}: the settings are "
                          f"{', '.join(_BY_NAME)}")
    for name, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name} in {path} must be a non-empty string, got {value!r}")
        if _BY_NAME[name].is_path:
            data[name] = str(path.parent / Path(value).expanduser())
    return data


def load_settings(flags: dict[str, str | None], config_file: Path | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Flags (non-empty ones) over ``INVENTORY_AGENT_*`` variables over the config file over ``AZURE_*``
    variables; checked for completeness."""
    env = os.environ if environ is None else environ
    from_file = read_config_file(config_file) if config_file else {}
    values: dict[str, str] = {}
    generic: set[str] = set()  # the settings that came from another tool's variable
    for key in SETTINGS:
        value = flags.get(key.name) or env.get(key.env, "").strip() or from_file.get(key.name)
        if not value and key.fallback_env and env.get(key.fallback_env, "").strip():
            value = env[key.fallback_env]
            generic.add(key.name)
        if value:
            values[key.name] = value.strip()
    conn = env.get(CONNECTION_STRING_ENV, "").strip() or None
    if "account_url" in generic and ("folder" in values or conn):
        del values["account_url"]  # the pipeline's LAKE__blobServiceUri does not contradict an explicit choice

    missing = [k for k in ("store_id", "database") if k not in values]
    if missing:
        raise ConfigError("missing setting(s): " + ", ".join(
            f"{k} (--{'store' if k == 'store_id' else 'db'}, {_BY_NAME[k].env}, or {k} in the config file)"
            for k in missing))
    targets = [name for name, given in (("account_url", "account_url" in values), ("folder", "folder" in values),
                                        (CONNECTION_STRING_ENV, conn)) if given]
    if len(targets) != 1:
        raise ConfigError(
            "say where to upload with exactly one of account_url (Azure), folder (a local folder) or the "
            f"environment variable {CONNECTION_STRING_ENV} (Azurite, tests); "
            + (f"got {' and '.join(targets)}" if targets else "got none"))
    credential = values.get("credential") or ("certificate" if values.get("certificate_path") else "default")
    if credential not in CREDENTIALS:
        raise ConfigError(f"credential {credential!r} is not one of {', '.join(CREDENTIALS)}")
    if credential == "certificate":
        absent = [k for k in ("tenant_id", "client_id", "certificate_path") if k not in values]
        if absent:
            raise ConfigError(f"credential 'certificate' needs {', '.join(absent)} (in the config file, or "
                              "AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_CERTIFICATE_PATH)")

    def path(name: str) -> Path | None:
        return Path(values[name]).expanduser() if name in values else None

    return Settings(
        store_id=values["store_id"], database=path("database"), container=values.get("container", "lake"),
        home=path("home") or default_home(env), account_url=values.get("account_url"), folder=path("folder"),
        connection_string=conn, credential=credential, tenant_id=values.get("tenant_id"),
        client_id=values.get("client_id"), certificate_path=path("certificate_path"), log_file=path("log_file"),
    )


def build_credential(s: Settings) -> Any:
    """The azure-identity credential for ``s.credential`` (see docs/agent.md, "Authenticate")."""
    from azure.identity import CertificateCredential, DefaultAzureCredential, ManagedIdentityCredential

    if s.credential == "certificate":
        cert = s.certificate_path
        if not cert.is_file():
            raise ConfigError(f"no certificate file at {cert} (certificate_path): a PEM or PFX file with the "
                              "store identity's certificate and private key")
        chain = os.environ.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").strip().lower() in ("1", "true")
        try:
            return CertificateCredential(s.tenant_id, s.client_id, str(cert), send_certificate_chain=chain,
                                         password=os.environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot use the certificate {cert} ({exc}): it must hold the certificate and its private key "
                "(PEM, or PFX with AZURE_CLIENT_CERTIFICATE_PASSWORD if it has one)") from None
    if s.credential == "managed-identity":
        return ManagedIdentityCredential(client_id=s.client_id) if s.client_id else ManagedIdentityCredential()
    return DefaultAzureCredential()


def build_destination(s: Settings) -> Any:
    """The destination the settings name (exactly one is set: :func:`load_settings` checked)."""
    from inventory_agent.destinations import BlobDestination, FolderDestination

    if s.folder is not None:
        return FolderDestination(s.folder)
    if s.connection_string:
        return BlobDestination.from_connection_string(s.connection_string, s.container)
    return BlobDestination.from_account_url(s.account_url, s.container, build_credential(s))
