"""The store agent: snapshot a store's live SQLite database and upload it to the lake's ``raw/`` zone.

A distribution of its own (``pip install ./agent``, console script ``inventory-agent``) so that a store PC
needs only what the agent uses: azure-storage-blob, azure-identity and tqdm. It imports nothing of the
pipeline (``shared``), and the pipeline's deployed app imports nothing of it; the few rules both sides must
agree on (the store id, the raw path) are written twice and a test checks that they agree. Operator's guide:
``docs/agent.md``.

The modules: :mod:`~inventory_agent.upload` (the use case), :mod:`~inventory_agent.snapshot` (copy, check,
gzip), :mod:`~inventory_agent.destinations` (Blob storage, a folder), :mod:`~inventory_agent.scratch`
(working folders and their locks), :mod:`~inventory_agent.config` and :mod:`~inventory_agent.cli`.
"""

__version__ = "0.1.0"

from inventory_agent.errors import AgentError, InvalidStoreId, NotASQLiteDatabase, SnapshotCheckFailed, UploadFailed
from inventory_agent.upload import AGENT_VERSION, Destination, UploadResult, upload_dump

__all__ = [
    "AGENT_VERSION",
    "AgentError",
    "Destination",
    "InvalidStoreId",
    "NotASQLiteDatabase",
    "SnapshotCheckFailed",
    "UploadFailed",
    "UploadResult",
    "__version__",
    "upload_dump",
]
