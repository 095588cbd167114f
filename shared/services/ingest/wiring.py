"""The one module of the ingest that knows the concrete adapters: every other module depends on the ports
(``shared.ports.dumps``, ``shared.ports.tables``) and receives these through :class:`~.job.Engines`.

The adapters are imported when an ingest starts, not when the package is imported (a function's cold start
does not pay for them). An import-linter contract can allow ``shared.services.ingest.wiring`` alone to
import ``shared.adapters``.
"""

from __future__ import annotations

from shared.services.ingest.job import Engines


def default_engines() -> Engines:
    """The production adapters: the SQLite dump reader (a child process), delta-rs tables, Arrow IPC spools."""
    from shared.adapters.delta_tables import DeltaTables
    from shared.adapters.parquet_files import PartitionSpool
    from shared.adapters.sqlite_dump import DumpReader

    return Engines(open_dump=DumpReader, open_tables=DeltaTables, open_spool=PartitionSpool)


__all__ = ["default_engines"]
