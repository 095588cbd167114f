"""Checked by mypy in `make lint`: every adapter satisfies the port it implements (structurally, method by method).

Not a test module (pytest does not collect it): mypy reports an adapter whose method drops a parameter, renames
one or returns another type than its Protocol says. docs/architecture.md lists the ports and their adapters.
"""

from shared.adapters.delta_tables import DeltaTables
from shared.adapters.eventhub_sink import EventHubSink
from shared.adapters.lake_blob import BlobLake
from shared.adapters.lake_folder import FolderLake
from shared.adapters.parquet_files import PartitionSpool
from shared.adapters.queue_sqlite import EmbeddedQueue
from shared.adapters.sqlite_dump import DumpReader
from shared.adapters.stock_cosmos import CosmosStockStore
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import JsonLinesTelemetry, MemoryTelemetry
from shared.adapters.telemetry_azure import AzureMonitorTelemetry
from shared.ports.dumps import DumpSource, OpenDump
from shared.ports.events import EventSink
from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.tables import OpenSpool, OpenTables, Tables
from shared.ports.tables import PartitionSpool as SpoolPort
from shared.ports.telemetry import Telemetry


def lakes(folder: FolderLake, blob: BlobLake) -> list[Lake]:
    return [folder, blob]


def stock_stores(embedded: SqliteStockStore, cosmos: CosmosStockStore) -> list[StockStore]:
    return [embedded, cosmos]


def event_sinks(queue: EmbeddedQueue, hubs: EventHubSink) -> list[EventSink]:
    return [queue, hubs]


def telemetries(local: JsonLinesTelemetry, memory: MemoryTelemetry, azure: AzureMonitorTelemetry) -> list[Telemetry]:
    return [local, memory, azure]


def tables(delta: DeltaTables) -> Tables:
    return delta


def spools(spool: PartitionSpool) -> SpoolPort:
    return spool


def engines() -> tuple[OpenTables, OpenSpool]:
    """What shared/services/engines.py hands the services: the adapters' constructors, as the ports' factories."""
    return DeltaTables, PartitionSpool


def dump_readers(reader: DumpReader) -> DumpSource:
    return reader


def dump_opener() -> OpenDump:
    return DumpReader
