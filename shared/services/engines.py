"""The engines the services run on: Delta tables on the lake (delta-rs), the Parquet spool, the SQLite dump
reader. The only services module that imports adapters: every other one depends on the ports
(``shared.ports.tables``, ``shared.ports.dumps``) and gets its engines here, or through a parameter that
defaults to a function of this module (a test may pass another).

The adapters are imported when an engine is first asked for, not when this module is imported (a function's
cold start does not pay for delta-rs or pyarrow). The import-linter contract on the services allows
``shared.services.engines`` alone to import ``shared.adapters``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from shared.ports.lake import Lake
    from shared.ports.tables import Tables
    from shared.services.ingest.job import Engines


def open_tables(lake: Lake) -> Tables:
    """The lake's Delta tables, each opened at its latest version whenever it is used (writers: the ingest, the
    maintenance, the migration)."""
    from shared.adapters.delta_tables import DeltaTables

    return DeltaTables(lake)


def open_snapshots(lake: Lake) -> Tables:
    """The lake's Delta tables as one run sees them (the aggregates, the alerts, the dashboard): each opened when
    first used, then that version kept for every read of the run (a run over 50 stores replays a table's log
    once). A table the run replaces is opened afresh after."""
    from shared.adapters.delta_tables import DeltaTables

    return DeltaTables(lake, keep_open=True)


def read_parquet(data: bytes) -> pa.Table:
    """A small Parquet object read whole from memory (a file of the lake's layout before Delta Lake)."""
    from shared.adapters.parquet_files import read_parquet_bytes

    return read_parquet_bytes(data)


def default_engines() -> Engines:
    """The ingest's engines: the SQLite dump reader (a child process), delta-rs tables, Arrow IPC spools."""
    from shared.adapters.delta_tables import DeltaTables
    from shared.adapters.parquet_files import PartitionSpool
    from shared.adapters.sqlite_dump import DumpReader
    from shared.services.ingest.job import Engines  # here: the ingest package imports this module

    return Engines(open_dump=DumpReader, open_tables=DeltaTables, open_spool=PartitionSpool)


__all__ = ["default_engines", "open_snapshots", "open_tables", "read_parquet"]
