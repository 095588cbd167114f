"""Every setting the app reads, as data: name, default, and what it means.

Azure Functions passes app settings as environment variables, and so does the CLI, so this is the only
module that reads ``os.environ``. ``local.settings.sample.json`` and the README's settings table hold the
same names (a test checks it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["text", "count", "number", "size", "flag"]


class SettingsError(ValueError):
    """A setting's value cannot be used; the message names the setting, its value and what it should be."""


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(x := float(value)) and x > 0
    except ValueError:
        return False


_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)
_KINDS: dict[str, tuple[object, str]] = {
    "count": (lambda v: v.isascii() and v.isdigit() and int(v) >= 1, "a whole number, 1 or more"),
    "number": (_is_number, "a number above 0"),
    "size": (lambda v: bool(_SIZE.fullmatch(v.strip())), "a size such as 128MB or 1GB"),
    "flag": (lambda v: v in ("0", "1"), "0 or 1"),
}


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    local_sample: str | None = None  # value for local.settings.sample.json (None: same as default)
    kind: Kind = "text"  # what a value must look like (checked when the settings are read)


SETTINGS: tuple[Setting, ...] = (
    Setting("INVENTORY_HOME", ".inventory", "Folder for every local default's files (folder lake, "
            "embedded stores, telemetry) and for scratch space. One variable isolates a run. In Azure "
            "`/tmp/inventory` (the app's folder is read-only there; only scratch files go to it)."),
    Setting("LAKE", "", "Connection string of the lake's Blob endpoint, for development against Azurite "
            "(`UseDevelopmentStorage=true`). Empty: use LAKE__blobServiceUri, else the folder lake."),
    Setting("LAKE__blobServiceUri", "", "Azure: the lake account's Blob endpoint "
            "(https://<account>.blob.core.windows.net); authenticates with DefaultAzureCredential "
            "(the Function App's managed identity). Also used by the blob trigger's connection."),
    Setting("LAKE__queueServiceUri", "", "Azure: the lake account's Queue endpoint, needed by the "
            "blob trigger's identity-based connection (poison messages)."),
    Setting("LAKE__credential", "", "Azure: `managedidentity` for identity-based connections."),
    Setting("LAKE__clientId", "", "Azure: client id of a user-assigned managed identity, if one is used."),
    Setting("LAKE_CONTAINER", "lake", "Name of the lake container (the blob trigger path uses `lake`)."),
    Setting("INGEST_MAX_DUMP_BYTES", str(8 << 30), "Largest decompressed dump accepted (bytes); "
            "larger dumps, and gzip bombs, are quarantined.", kind="count"),
    Setting("INGEST_MAX_CELL_BYTES", str(1 << 20), "Largest text or blob value in a dump (bytes).", kind="count"),
    Setting("INGEST_MAX_ROWS_PER_TABLE", "100000000", "Most rows read from one table of a dump.", kind="count"),
    Setting("INGEST_QUERY_TIMEOUT_S", "900", "Longest time reading one table of a dump may take.", kind="number"),
    Setting("INGEST_BATCH_ROWS", "65536", "Rows per batch read from a dump and cleaned at once: bounds the "
            "ingest's working memory (each batch in flight costs about 1 KB per row in the two processes).",
            kind="count"),
    Setting("INGEST_MEMORY_LIMIT", "128MB", "Memory the cleaning engine (DuckDB) may use before it "
            "spills to disk.", kind="size"),
    Setting("COSMOS", "", "Connection string of a Cosmos DB emulator, for development only. Empty: use "
            "COSMOS__accountEndpoint, else the embedded stock store (SQLite under INVENTORY_HOME)."),
    Setting("COSMOS__accountEndpoint", "", "Azure: the Cosmos DB account endpoint "
            "(https://<account>.documents.azure.com:443/); authenticates with DefaultAzureCredential."),
    Setting("COSMOS__credential", "", "Azure: `managedidentity` for the identity-based Cosmos connection."),
    Setting("COSMOS__clientId", "", "Azure: client id of a user-assigned managed identity for Cosmos DB."),
    Setting("COSMOS_DATABASE", "inventory", "Cosmos DB database of the stock container."),
    Setting("COSMOS_CONTAINER", "stock", "Cosmos DB container of stock documents (partition key /storeId)."),
    Setting("STOCK_LEDGER_TTL_DAYS", "8", "How long the event ledger remembers an event id (days). Longer "
            "than the dump cadence and than Event Hubs retention, so a redelivery is always recognised.", kind="count"),
    Setting("EVENTS", "", "Connection string of an Event Hubs emulator, for development only. Empty: use "
            "EVENTS__fullyQualifiedNamespace, else the embedded queue (SQLite under INVENTORY_HOME)."),
    Setting("EVENTS__fullyQualifiedNamespace", "", "Azure: the Event Hubs namespace "
            "(<namespace>.servicebus.windows.net); used by the trigger's identity-based connection and by "
            "the producers (HTTP ingress, `inventory pos`)."),
    Setting("EVENTS__credential", "", "Azure: `managedidentity` for the identity-based Event Hubs connection."),
    Setting("EVENTS__clientId", "", "Azure: client id of a user-assigned managed identity for Event Hubs."),
    Setting("EVENTHUB_NAME", "sales", "The event hub POS sale events go to."),
    Setting("EVENTHUB_CONSUMER_GROUP", "apply-sales", "The consumer group the `apply_sales` trigger reads with."),
    Setting("EVENTS_QUEUE_PARTITIONS", "4", "Partitions of the embedded queue (local default for Event Hubs).",
            kind="count"),
    Setting("SALES_HTTP_MAX_BYTES", str(1 << 20), "Largest request body `POST /api/sales` accepts (bytes); "
            "larger ones get 413.", kind="count"),
    Setting("AGGREGATES_SCHEDULE", "0 20 * * * *", "NCRONTAB schedule of the `compute_aggregates` timer "
            "(default: hourly at :20; a run only recomputes what changed)."),
    Setting("ALERTS_SCHEDULE", "0 */15 * * * *", "NCRONTAB schedule of the `raise_alerts` timer (default: "
            "every 15 minutes)."),
    Setting("INGEST_FULL_CHECK_DAYS", "7", "A store's nightly dump is read whole (every line checked and compared "
            "with the lake) at least this often (days); on the nights between, only the last days' lines are "
            "read once SQLite shows the older history unchanged.", kind="number"),
    Setting("MAINTAIN_SCHEDULE", "0 30 4 * * *", "NCRONTAB schedule of the `maintain_lake` timer: compaction, "
            "vacuum and checkpoints of the lake's Delta tables (default: daily at 04:30 UTC)."),
    Setting("LAKE_VACUUM_RETENTION_HOURS", "168", "Vacuum deletes a Delta table's files only once unreferenced "
            "for this long (hours; at least 168, 7 days: a reader of an older snapshot may still need them).",
            kind="count"),
    Setting("ALERT_STALE_DUMP_HOURS", "26", "StaleDump: a store whose latest ingested dump was taken longer "
            "ago than this (hours); critical at twice it.", kind="number"),
    Setting("ALERT_INGEST_GRACE_MINUTES", "60", "IngestFailure: a dump in raw/ with neither manifest nor "
            "quarantine record this long after it landed (minutes).", kind="number"),
    Setting("ALERT_COOLDOWN_HOURS", "24", "An alert still true is raised again only after this long (hours), "
            "or at once when it gets worse.", kind="number"),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "", "Azure: Application Insights connection string. Set: "
            "telemetry (alerts as custom events, pipeline metrics) goes to Application Insights through "
            "azure-monitor-opentelemetry. Empty: JSON lines under INVENTORY_HOME."),
    Setting("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "", "Azure: `Authorization=AAD` (with `;ClientId=<id>` "
            "for a user-assigned identity) sends telemetry with the managed identity, so Application Insights "
            "can refuse key-based ingestion."),
    Setting("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "", "Azure: `true` makes the Functions Python worker "
            "export the app's logs and custom events itself (OpenTelemetry), and the host stop copying them: each "
            "record reaches Application Insights once. The app then does not configure the exporter again."),
    Setting("PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME", "inventory", "Azure: the logger the worker exports: "
            "`inventory`, the parent of every logger of the app (custom events, function failures). The app "
            "stops these records from also reaching the root logger, which the host would log a second time."),
    Setting("TELEMETRY_CONSOLE", "1", "`1`: print one readable line per telemetry event to stderr.", kind="flag"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Settings resolved from an environment mapping (``os.environ`` by default)."""

    values: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, validate: bool = True) -> Settings:
        """The settings from ``env``; raises :class:`SettingsError` naming every value that cannot be used
        (at start-up, not in the middle of a run that reads it). ``validate=False``: as they are, for the one
        caller that must not fail on a bad value (reporting a function's failure)."""
        env = os.environ if env is None else env
        settings = cls({s.name: env.get(s.name, s.default) for s in SETTINGS})
        if not validate:
            return settings
        problems = [f"{s.name}={settings.values[s.name]!r} is not {_KINDS[s.kind][1]} (default {s.default})"
                    for s in SETTINGS if s.kind != "text" and not _KINDS[s.kind][0](settings.values[s.name])]
        if problems:
            raise SettingsError("setting " + "; ".join(problems))
        return settings

    def get(self, name: str) -> str:
        if name not in _BY_NAME:
            raise KeyError(f"unknown setting {name!r}; declare it in shared/settings.py")
        return self.values[name]

    def int(self, name: str) -> int:
        raw = self.get(name)
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"setting {name}={raw!r} is not an integer") from None

    @property
    def home(self) -> Path:
        return Path(self.get("INVENTORY_HOME")).expanduser().resolve()


PROCESS_DEFAULTS = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
"""Environment defaults for this process and the processes it starts (see :func:`configure_process`)."""


def configure_process() -> None:
    """Process-wide settings that must be in place before the first heavy import; the Functions app and the
    CLI call this first. Each is a default: an environment variable already set wins.

    - ``ARROW_DEFAULT_MEMORY_POOL=system``: pyarrow allocates with the C library's malloc instead of its
      bundled mimalloc, which keeps freed batches for reuse. Over a 5M-line ingest mimalloc held 40-60 MB
      more at the peak (the parent's peak RSS 308-314 vs 261-263 MB, same run, same speed within the
      noise). Arrow reads it once, when it first allocates, so it is set before pyarrow is imported.
    """
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)


def export_to_libraries(name: str, value: str) -> None:
    """Set a process environment variable a library reads instead of taking an argument: delta-rs finds
    Azurite's endpoint only in ``AZURITE_BLOB_STORAGE_URL`` (see ``BlobLake.delta_location``). The one place
    outside :func:`configure_process` that writes the environment."""
    os.environ[name] = value
