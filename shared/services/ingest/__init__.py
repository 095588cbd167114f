"""Use case: ingest one store dump into the lake. Start with ``pipeline.py``: its docstring is the flow, and
:func:`~shared.services.ingest.pipeline._ingest` runs it one step a line.

The modules, in the order a dump meets them:

- ``pipeline.py``   the entry points :func:`ingest_dump` and :func:`ingest_landed_dump`, and the orchestrator
- ``result.py``     what an ingest is given and returns: ``IngestLimits``, ``IngestResult``, ``QUARANTINE_REASONS``
- ``job.py``        the records the stages pass each other (``DumpJob``, ``Engines``, ``Stamp``); the engines
                    themselves come from ``shared/services/engines.py``, the one services module that imports adapters
- ``source.py``     1. receive: hashing, gzip, the database-in-use check, the store's mapping, scratch folders
- ``history.py``    which lines of the fact tables a night reads, and the history check
- ``queries.py``    what the dump reader is asked for
- ``row_stage.py``  2. read and clean, batch by batch
- ``engine.py``     the DuckDB connection the stages share
- ``duplicates.py`` 3. the duplicate stage and the counts
- ``new_lines.py``  4. the curated rows: lines already in the lake, changed lines
- ``rejected.py``   4. the rejected rows
- ``commit.py``     4.-5. under the store's lock: the Delta commits, then the manifest
- ``manifest.py``   5. the manifest, the snapshot time, the telemetry of an ingest
- ``quarantine.py`` a dump that cannot be ingested
"""

from shared.core.ids import InvalidStoreId
from shared.core.mapping import MappingError
from shared.services.ingest.pipeline import ingest_dump, ingest_landed_dump
from shared.services.ingest.result import QUARANTINE_REASONS, DatabaseInUse, IngestLimits, IngestResult
from shared.services.ingest.source import gunzip_sha256, is_gzip, load_store_mapping, prepare_source, sha256_file

__all__ = ["QUARANTINE_REASONS", "DatabaseInUse", "IngestLimits", "IngestResult", "InvalidStoreId", "MappingError",
           "gunzip_sha256", "ingest_dump", "ingest_landed_dump", "is_gzip", "load_store_mapping", "prepare_source",
           "sha256_file"]
