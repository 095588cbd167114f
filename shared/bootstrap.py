"""The composition root: settings in, adapters and use cases out. The only place that chooses.

Local defaults (a folder lake, an embedded stock store and queue, JSON-lines telemetry) are used unless
Azure settings are present:
- lake: ``LAKE`` (connection string, e.g. Azurite) or ``LAKE__blobServiceUri`` (managed identity).
- stock store: ``COSMOS`` (emulator connection string) or ``COSMOS__accountEndpoint`` (managed identity).
- events: ``EVENTS`` (emulator connection string) or ``EVENTS__fullyQualifiedNamespace`` (managed identity).
Azure SDKs are imported lazily, inside the branch that needs them, to keep cold start low.

One seam for local tools, not an app setting: ``build(stock_factory=...)`` builds the stock store another way
(``inventory demo|serve --cosmos-dev-server`` put it on the npm Cosmos-API server; the dev tooling, which is
not deployed, supplies that factory), and :func:`use_default_container` makes such a container the one the
functions' ``default_container()`` returns in that process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from shared.adapters.telemetry import JsonLinesTelemetry
from shared.ports.events import EventSink
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.telemetry import Telemetry
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.use_cases import UseCases


def azure_credential(client_id: str = ""):  # noqa: ANN201 - azure.identity type imported lazily
    """DefaultAzureCredential (managed identity in Azure, developer login locally); never keys."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id or None)


@dataclass
class Container:
    """Adapters built on first use from one Settings object."""

    settings: Settings
    stock_factory: Callable[[Settings], StockStore] | None = None  # local tools only (module docstring)

    @cached_property
    def lake(self) -> Lake:
        s = self.settings
        container = s.get("LAKE_CONTAINER")
        if s.get("LAKE"):
            from shared.adapters.lake_blob import BlobLake

            return BlobLake.from_connection_string(s.get("LAKE"), container)
        if s.get("LAKE__blobServiceUri"):
            from shared.adapters.lake_blob import BlobLake

            cred = azure_credential(s.get("LAKE__clientId"))
            return BlobLake.from_service_uri(s.get("LAKE__blobServiceUri"), container, cred)
        from shared.adapters.lake_folder import FolderLake

        return FolderLake(s.home / "lake")

    @cached_property
    def stock(self) -> StockStore:
        s = self.settings
        ttl_s = s.int("STOCK_LEDGER_TTL_DAYS") * 86400
        db, container = s.get("COSMOS_DATABASE"), s.get("COSMOS_CONTAINER")
        if self.stock_factory is not None:
            return self.stock_factory(s)
        if s.get("COSMOS"):
            from shared.adapters.stock_cosmos import CosmosStockStore

            return CosmosStockStore.from_connection_string(s.get("COSMOS"), db, container, ledger_ttl_s=ttl_s)
        if s.get("COSMOS__accountEndpoint"):
            from shared.adapters.stock_cosmos import CosmosStockStore

            cred = azure_credential(s.get("COSMOS__clientId"))
            return CosmosStockStore.from_endpoint(s.get("COSMOS__accountEndpoint"), cred, db, container,
                                                  ledger_ttl_s=ttl_s)
        from shared.adapters.stock_sqlite import SqliteStockStore

        return SqliteStockStore(s.home / "stock" / "stock.sqlite")

    @cached_property
    def queue(self):  # noqa: ANN201 - EmbeddedQueue, imported lazily
        """The embedded durable queue: the local default for Event Hubs (producers write, the local runner
        and ``inventory events consume`` read)."""
        from shared.adapters.queue_sqlite import EmbeddedQueue

        return EmbeddedQueue(self.settings.home / "events" / "queue.sqlite",
                             partitions=self.settings.int("EVENTS_QUEUE_PARTITIONS"))

    @property
    def uses_event_hubs(self) -> bool:
        return bool(self.settings.get("EVENTS") or self.settings.get("EVENTS__fullyQualifiedNamespace"))

    @cached_property
    def events(self) -> EventSink:
        """Where producers (HTTP ingress, ``inventory pos``) send events: Event Hubs, else the embedded queue."""
        s = self.settings
        if s.get("EVENTS"):
            from shared.adapters.eventhub_sink import EventHubSink

            return EventHubSink.from_connection_string(s.get("EVENTS"), s.get("EVENTHUB_NAME"))
        if s.get("EVENTS__fullyQualifiedNamespace"):
            from shared.adapters.eventhub_sink import EventHubSink

            cred = azure_credential(s.get("EVENTS__clientId"))
            return EventHubSink.from_namespace(s.get("EVENTS__fullyQualifiedNamespace"), s.get("EVENTHUB_NAME"),
                                               cred)
        return self.queue

    @cached_property
    def telemetry(self) -> Telemetry:
        return telemetry_from(self.settings)

    @cached_property
    def ingest_limits(self):  # noqa: ANN201
        from shared.services.ingest import IngestLimits

        return IngestLimits.from_settings(self.settings)

    @property
    def scratch_dir(self):  # noqa: ANN201
        """Local temporary space (same filesystem as the folder lake, so outputs move without copying)."""
        path = self.settings.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path


def build(env: dict[str, str] | None = None, *,
          stock_factory: Callable[[Settings], StockStore] | None = None) -> Container:
    """A container from ``env`` (the environment by default); ``stock_factory``: local tools only."""
    return Container(Settings.from_env(env), stock_factory)


_DEFAULT: Container | None = None


def default_container() -> Container:
    """The process-wide container the function triggers use (built from the environment once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = build()
    return _DEFAULT


def use_default_container(c: Container) -> None:
    """Make ``c`` the process-wide container, so the functions' ``default_container()`` returns it (local
    tools that run the functions in-process with a container they built: ``inventory demo|serve``)."""
    global _DEFAULT
    _DEFAULT = c


def use_cases(c: Container | None = None) -> UseCases:
    """The application's use cases bound to ``c``'s adapters (the process-wide container by default)."""
    from shared.use_cases import UseCases

    return UseCases(c if c is not None else default_container())


def telemetry_from(s: Settings) -> Telemetry:
    """Application Insights when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, else JSON lines locally."""
    if s.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        from shared.adapters.telemetry_azure import AzureMonitorTelemetry

        auth = dict(part.split("=", 1) for part in s.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING").split(";")
                    if "=" in part)
        credential = azure_credential(auth.get("ClientId", "")) if auth.get("Authorization") == "AAD" else None
        return AzureMonitorTelemetry(s.get("APPLICATIONINSIGHTS_CONNECTION_STRING"), credential=credential,
                                     worker_configured=s.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY") == "true")
    console = os.sys.stderr if s.get("TELEMETRY_CONSOLE") == "1" else None
    return JsonLinesTelemetry(s.home / "telemetry" / "events.jsonl", console=console)


def failure_telemetry() -> Telemetry:
    """Where a function's failure is reported: the app's telemetry, or, when the container itself cannot be
    built (a bad setting is a failure too), telemetry from the raw environment, which never refuses."""
    try:
        return default_container().telemetry
    except Exception:
        return telemetry_from(Settings.from_env(validate=False))


def reset_default_container() -> None:
    """Forget the process-wide container, so the next call re-reads the environment (tests, local runner)."""
    global _DEFAULT
    _DEFAULT = None
