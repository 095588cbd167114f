"""The Cosmos DB client as the stock store uses it: its options (throttling retried by the SDK), the creation of
the database and container for development and tests, and the store's own retry of throttled batches.

Throttling (429): the clients built with :func:`client_options` set the SDK's throttle retry explicitly
(``retry_throttle_total``, ``retry_throttle_backoff_max``; it honours ``x-ms-retry-after-ms``). That covers a
throttled batch REQUEST; a batch whose response is 207 with one operation at 429 is raised by the SDK as
``CosmosBatchOperationError`` without a retry, so :func:`execute_batch` adds its own bounded backoff.

In Azure the infrastructure creates the database and container; :func:`ensure_container` is for emulators.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

from shared.adapters.stock_cosmos_documents import INDEXING_POLICY, PARTITION_KEY_PATH
from shared.ports.stock import ApplyResult

# SDK throttle retry for every request of the clients built here (its defaults, made explicit).
SDK_THROTTLE_RETRIES = 9
SDK_THROTTLE_MAX_WAIT_S = 30
# Our own backoff around batches whose 207 response carries a 429 (the SDK does not retry those).
BATCH_THROTTLE_RETRIES = 6
_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 10.0
_RETRY_AFTER_MS = "x-ms-retry-after-ms"


def client_options() -> dict[str, Any]:
    """Keyword arguments for :class:`CosmosClient`: throttling (429) retried by the SDK, honouring the
    service's retry-after, up to 9 times or 30 s per request."""
    return {"retry_throttle_total": SDK_THROTTLE_RETRIES, "retry_throttle_backoff_max": SDK_THROTTLE_MAX_WAIT_S}


def ensure_container(target: CosmosClient | DatabaseProxy, container: str, database: str | None = None,
                     ) -> ContainerProxy:
    """Create (if missing) the database and the stock container: partition key ``/storeId``, TTL on with
    no default expiry (``default_ttl=-1``: only ledger items, which carry ``ttl``, expire), and an indexing
    policy covering exactly the queried paths. For development and tests; in Azure, infra creates them."""
    if isinstance(target, CosmosClient):
        if not database:
            raise ValueError("ensure_container needs the database name when given a client")
        target = target.create_database_if_not_exists(database)
    return target.create_container_if_not_exists(
        id=container, partition_key=PartitionKey(path=PARTITION_KEY_PATH), default_ttl=-1,
        indexing_policy=INDEXING_POLICY)


def open_container(client: CosmosClient, database: str, container: str, create_if_missing: bool,
                   ) -> ContainerProxy:
    """The stock container, created first (with its database) when ``create_if_missing``."""
    if create_if_missing:
        return ensure_container(client, container, database)
    return client.get_database_client(database).get_container_client(container)


def _retry_after_s(error: HttpResponseError, attempt: int) -> float:
    """The service's ``x-ms-retry-after-ms`` if it sent one; else exponential backoff with jitter."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get(_RETRY_AFTER_MS)
    if value is not None:
        try:
            return min(_BACKOFF_MAX_S, max(0.0, float(value) / 1000.0))
        except (TypeError, ValueError):
            pass
    return min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * (2 ** attempt)) * random.uniform(0.5, 1.0)


def execute_batch(container: ContainerProxy, store_id: str, ops: Sequence[tuple[Any, ...]], result: ApplyResult,
                  sleep: Callable[[float], None]) -> None:
    """One transactional batch, retried with backoff (``sleep``) while it is throttled (429). A throttled
    batch changed nothing, so retrying it is safe; every attempt is counted in ``result.operations``."""
    for attempt in range(BATCH_THROTTLE_RETRIES + 1):
        result.operations += len(ops)
        try:
            container.execute_item_batch(batch_operations=list(ops), partition_key=store_id)
            return
        except (CosmosBatchOperationError, CosmosHttpResponseError) as exc:
            if exc.status_code != 429 or attempt == BATCH_THROTTLE_RETRIES:
                raise
            sleep(_retry_after_s(exc, attempt))


__all__ = ["BATCH_THROTTLE_RETRIES", "SDK_THROTTLE_MAX_WAIT_S", "SDK_THROTTLE_RETRIES", "client_options",
           "ensure_container", "execute_batch", "open_container"]
