"""The npm Cosmos-API server (``@vercel/cosmosdb-server``) as a stock store for development: dev tooling,
not product. ``inventory demo|serve --cosmos-dev-server URL`` (``make demo EMULATORS=1``) and the tests
(``tests/support/cosmos.py``) use it; the deployed functions never import this module.

The server speaks HTTPS with a self-signed certificate, so its clients (only) do not verify TLS
(:func:`unverified_tls_transport`), and accepts the Cosmos DB emulator's published well-known key
(:data:`EMULATOR_KEY`). It is only ever reached on a loopback address (:func:`check_loopback`).

Its gaps are worked around HERE, never in the product (``shared/adapters/stock_cosmos.py``), by
:class:`ServerShimContainer`:

- It has no transactional batch (and its batch route refuses ``patch``). The shim runs a batch's
  operations one by one with the same preconditions (``if_match_etag``, ``filter_predicate``), undoes what
  it did when one fails and raises the SDK's own ``CosmosBatchOperationError`` (failing index and status,
  424 for the others). It holds one lock over every operation made through it, so within this process a
  batch is all-or-nothing and isolated like a real one. **What this cannot verify:** the atomicity of a
  real transactional batch — the server's own batch semantics, and a process killed in the middle of a
  shimmed batch (that would leave half of it written). Batch atomicity is only tested against Azure
  (``COSMOS_TEST_ENDPOINT``). Likewise, two processes on one server (``inventory serve`` and a second
  tool) do not share the lock: their batches are not isolated from each other.
- Its conditional patch lower-cases the condition (so ``c.snapshotAt`` never matches): the shim sends the
  equivalent full query, which the server evaluates verbatim, restricted to the item's id and partition.
- A point read of a missing item answers 500 (which the SDK retries as a server error): the shim asks
  whether the item exists first and raises ``CosmosResourceNotFoundError`` (404) like Azure when not.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from shared.adapters.stock_cosmos import CosmosStockStore
    from shared.bootstrap import Container
    from shared.settings import Settings

# The Cosmos DB emulator's published well-known key. Microsoft documents it; it only works against an
# emulator and is not a secret. The SDK base64-decodes the key, so an arbitrary string would not do.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def server_connection_string(port: int, host: str = "127.0.0.1") -> str:
    return f"AccountEndpoint=https://{host}:{port}/;AccountKey={EMULATOR_KEY};"


def check_loopback(endpoint: str) -> str:
    """``endpoint`` (``https://127.0.0.1:8081/``) if it is an https URL on this machine's loopback address;
    else ValueError. A client that does not verify TLS and sends the emulator's key goes nowhere else."""
    try:
        url = urlsplit(endpoint.strip())
        host, port = url.hostname, url.port
    except ValueError as exc:
        raise ValueError(f"the Cosmos dev server URL {endpoint!r} is not a URL ({exc}); e.g. "
                         "https://127.0.0.1:8081/") from None
    if url.scheme != "https" or host not in LOOPBACK_HOSTS:
        raise ValueError(f"the Cosmos dev server URL {endpoint!r} must be https:// on 127.0.0.1, localhost or "
                         "[::1] (e.g. https://127.0.0.1:8081/): it is for the npm Cosmos-API server on this "
                         "machine only; for Azure or the official emulator set COSMOS__accountEndpoint or COSMOS")
    netloc = f"[{host}]" if ":" in host else host
    return f"https://{netloc}{f':{port}' if port else ''}/"


def unverified_tls_transport() -> Any:
    """An SDK transport for the npm server: TLS without verification, with ONE prebuilt SSL context.

    The server closes the connection after every response, and without a given context urllib3 builds
    a new one per connection and loads the system CA store into it (~40 ms here): 10x slower. For this
    server only; the product's clients use the SDK's default transport, which keeps connections open."""
    import ssl

    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.trust_env = False  # no proxy lookup per request: the server is on the loopback address
    session.mount("https://", _Adapter())
    return RequestsTransport(session=session, session_owner=True, use_env_settings=False)


@contextlib.contextmanager
def unverified_tls_ok() -> Iterator[None]:
    """No InsecureRequestWarning per request from a client that does not verify the server's self-signed
    certificate, within this block (test fixtures' set-up and tear-down; tests get the same through a
    filterwarnings mark). Not thread-safe (``warnings.catch_warnings``): a long-running process uses
    :func:`_quiet_loopback_tls_warnings` instead."""
    import urllib3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


def _quiet_loopback_tls_warnings() -> None:
    """For the whole process: no InsecureRequestWarning for requests to a loopback host (the dev server);
    an unverified request to any other host still warns."""
    import urllib3

    warnings.filterwarnings("ignore", message=r"Unverified HTTPS request is being made to host "
                            r"'(127\.0\.0\.1|localhost|::1|\[::1\])'",
                            category=urllib3.exceptions.InsecureRequestWarning)


def _client(endpoint: str) -> Any:
    """A client of the server at ``endpoint``; ConnectionError (with the fix) when nothing answers there."""
    from azure.core.exceptions import ServiceRequestError
    from azure.cosmos import CosmosClient

    from shared.adapters.stock_cosmos import client_options

    url = check_loopback(endpoint)
    try:
        return CosmosClient(url, credential=EMULATOR_KEY, connection_verify=False,
                            transport=unverified_tls_transport(), **client_options())
    except ServiceRequestError as exc:
        reason = "connection refused" if "refused" in str(exc) else str(exc)
        raise ConnectionError(f"no Cosmos-API server answers at {url} ({reason}); start one with "
                              "`scripts/devservers.sh start` (it listens on COSMOS_SERVER_PORT, default 8081)"
                              ) from None


def dev_server_stock_store(endpoint: str, settings: Settings) -> CosmosStockStore:
    """The product's ``CosmosStockStore`` on the npm server at ``endpoint`` (loopback only), through
    :class:`ServerShimContainer`: the database and container (``COSMOS_DATABASE``, ``COSMOS_CONTAINER``)
    created by the product's ``ensure_container`` (the server starts empty), ledger TTL from
    ``STOCK_LEDGER_TTL_DAYS``. Batches are emulated, not atomic (see the module docstring)."""
    from shared.adapters.stock_cosmos import CosmosStockStore, ensure_container

    ttl_s = settings.int("STOCK_LEDGER_TTL_DAYS") * 86400
    _quiet_loopback_tls_warnings()
    client = _client(endpoint)
    try:
        container = ensure_container(client, settings.get("COSMOS_CONTAINER"), settings.get("COSMOS_DATABASE"))
        return CosmosStockStore(ServerShimContainer(container), ledger_ttl_s=ttl_s, client=client)
    except BaseException:
        client.close()
        raise


def drop_stock_container(endpoint: str, settings: Settings) -> bool:
    """Delete the stock container (``COSMOS_DATABASE``/``COSMOS_CONTAINER``) on the npm server at
    ``endpoint`` (loopback only), so the next :func:`dev_server_stock_store` starts empty (``inventory demo``
    without ``--keep``, against a server still running from an earlier demo). True if there was one."""
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    _quiet_loopback_tls_warnings()
    client = _client(endpoint)
    try:
        database = client.get_database_client(settings.get("COSMOS_DATABASE"))
        database.delete_container(settings.get("COSMOS_CONTAINER"))
        return True
    except CosmosResourceNotFoundError:
        return False
    finally:
        client.close()


# --- the shim: ContainerProxy on the npm server, with its gaps filled (development and tests only) ---------

_PREDICATE = re.compile(r"^\s*FROM\s+([A-Za-z_][A-Za-z0-9_]*)\s+WHERE\s+(.+)$", re.IGNORECASE | re.DOTALL)


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class ServerShimContainer:
    """A ContainerProxy stand-in for ``@vercel/cosmosdb-server`` (see the module docstring for what it
    fills in and what it therefore cannot verify). Anything not overridden goes to the real proxy."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.RLock()
        self._pk_field = inner.read()["partitionKey"]["paths"][0].lstrip("/")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # Every operation holds the lock, so a shimmed batch is isolated from them (within this process).

    def read_item(self, item: str, partition_key: Any, **kwargs: Any) -> Any:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        with self._lock:
            # Ask first: the server's 500 would also make the SDK retry with backoff (~0.2 s per read).
            if not self._exists(item, partition_key):
                raise CosmosResourceNotFoundError(
                    status_code=404, message=f"item {item!r} not found (server shim: the npm server answers 500)")
            return self._inner.read_item(item, partition_key=partition_key, **kwargs)

    def create_item(self, body: dict[str, Any], **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.create_item(body, **kwargs)

    def upsert_item(self, body: dict[str, Any], **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.upsert_item(body, **kwargs)

    def replace_item(self, item: str, body: dict[str, Any], **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.replace_item(item, body, **kwargs)

    def delete_item(self, item: str, partition_key: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.delete_item(item, partition_key=partition_key, **kwargs)

    def patch_item(self, item: str, partition_key: Any, patch_operations: list[dict[str, Any]],
                   filter_predicate: str | None = None, **kwargs: Any) -> Any:
        with self._lock:
            if filter_predicate is not None:
                filter_predicate = self._full_condition(item, partition_key, filter_predicate)
            return self._inner.patch_item(item, partition_key=partition_key, patch_operations=patch_operations,
                                          filter_predicate=filter_predicate, **kwargs)

    def query_items(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        with self._lock:
            return iter(list(self._inner.query_items(*args, **kwargs)))

    def execute_item_batch(self, batch_operations: list[tuple[Any, ...]], partition_key: Any,
                           **kwargs: Any) -> list[dict[str, Any]]:
        """The operations one by one, all-or-nothing: on the first failure, undo the ones done (newest
        first) and raise ``CosmosBatchOperationError`` as the SDK does for a failed transactional batch."""
        from azure.cosmos import CosmosList
        from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

        with self._lock:
            undo: list[Callable[[], None]] = []
            results: list[dict[str, Any]] = []
            before = self._items(partition_key, [op[1][0] for op in batch_operations
                                                 if op[0].lower() in ("replace", "patch", "delete")]
                                 + [op[1][0]["id"] for op in batch_operations if op[0].lower() == "upsert"])
            for index, operation in enumerate(batch_operations):
                try:
                    status, body = self._run(operation, partition_key, undo, before)
                except CosmosHttpResponseError as exc:
                    for step in reversed(undo):
                        step()
                    responses: list[dict[str, Any]] = [{"statusCode": 424} for _ in batch_operations]
                    responses[index] = {"statusCode": exc.status_code}
                    raise CosmosBatchOperationError(
                        error_index=index, headers={}, status_code=exc.status_code,
                        message=f"(server shim) operation {index} ({operation[0]}) failed: {exc.http_error_message}",
                        operation_responses=responses) from exc
                results.append({"statusCode": status, "resourceBody": body,
                                "eTag": body.get("_etag") if isinstance(body, dict) else None})
            return CosmosList(results, response_headers={})

    # --- helpers

    def _exists(self, item: str, partition_key: Any) -> bool:
        rows = self._inner.query_items(
            f"SELECT c.id FROM c WHERE c.id = @id AND c.{self._pk_field} = @pk",
            parameters=[{"name": "@id", "value": item}, {"name": "@pk", "value": partition_key}],
            enable_cross_partition_query=True)
        return any(True for _ in rows)

    def _items(self, partition_key: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The items a batch will change, as they are before it (to undo it): one query."""
        if not ids:
            return {}
        rows = self._inner.query_items(
            f"SELECT * FROM c WHERE c.{self._pk_field} = @pk AND ARRAY_CONTAINS(@ids, c.id)",
            parameters=[{"name": "@pk", "value": partition_key}, {"name": "@ids", "value": sorted(set(ids))}],
            enable_cross_partition_query=True)
        return {row["id"]: row for row in rows}

    def _full_condition(self, item: str, partition_key: Any, predicate: str) -> str:
        """``FROM c WHERE <cond>`` as a full query the server runs verbatim (it lower-cases a bare
        condition), limited to this item: the server checks the condition across the whole container."""
        match = _PREDICATE.match(predicate)
        if match is None:
            raise ValueError(f"(server shim) unsupported filter predicate {predicate!r}")
        alias, condition = match.groups()
        return (f"SELECT * FROM {alias} WHERE {alias}.id = @id AND {alias}.{self._pk_field} = "
                f"{json.dumps(partition_key)} AND ({condition})")

    def _run(self, operation: tuple[Any, ...], pk: Any, undo: list[Callable[[], None]],
             current: dict[str, dict[str, Any]]) -> tuple[int, Any]:
        """One batch operation with its preconditions; pushes how to undo it onto ``undo`` and keeps
        ``current`` (id -> item as it is now) up to date for the operations after it."""
        from azure.core import MatchConditions

        kind, args = operation[0].lower(), operation[1]
        options = dict(operation[2]) if len(operation) > 2 else {}
        conditions: dict[str, Any] = {}
        if options.get("if_match_etag") is not None:
            conditions = {"etag": options.pop("if_match_etag"), "match_condition": MatchConditions.IfNotModified}
        elif options.get("if_none_match_etag") is not None:
            conditions = {"etag": options.pop("if_none_match_etag"), "match_condition": MatchConditions.IfModified}
        predicate = options.pop("filter_predicate", None)
        if options:
            raise ValueError(f"(server shim) unsupported batch operation options {sorted(options)}")

        def restore(before: dict[str, Any] | None, item_id: str) -> Callable[[], None]:
            if before is None:
                return lambda: self._inner.delete_item(item_id, partition_key=pk)
            return lambda: self._inner.upsert_item(_body(before))

        if kind == "read":
            return 200, self.read_item(args[0], partition_key=pk)
        if kind == "create":
            body = self._inner.create_item(args[0], **conditions)
            undo.append(restore(None, body["id"]))
            current[body["id"]] = body
            return 201, body
        if kind == "upsert":
            before = current.get(args[0]["id"])
            body = self._inner.upsert_item(args[0], **conditions)
            undo.append(restore(before, body["id"]))
            current[body["id"]] = body
            return (200 if before else 201), body
        if kind in ("replace", "patch", "delete"):
            item_id = args[0]
            before = current.get(item_id)
            if kind == "replace":
                body = self._inner.replace_item(item_id, args[1], **conditions)
            elif kind == "patch":
                body = self.patch_item(item_id, partition_key=pk, patch_operations=args[1],
                                       filter_predicate=predicate, **conditions)
            else:
                self._inner.delete_item(item_id, partition_key=pk, **conditions)
                body = None
            if before is not None:  # (when it was missing, the write failed with 404: nothing to undo)
                undo.append(restore(before, item_id) if kind != "delete" else
                            (lambda b=before: self._inner.create_item(_body(b))))
            if body is None:
                current.pop(item_id, None)
            else:
                current[item_id] = body
            return (204 if kind == "delete" else 200), body
        raise ValueError(f"(server shim) unknown batch operation {kind!r}")


def build_on_dev_server(env: dict[str, str] | None, endpoint: str) -> Container:
    """The app's container with its stock store on the npm server at ``endpoint`` (``""``: the settings'
    choice). The endpoint is checked now (loopback only); the store is reached at its first use."""
    from functools import partial

    from shared.bootstrap import build

    if not endpoint:
        return build(env)
    return build(env, stock_factory=partial(dev_server_stock_store, check_loopback(endpoint)))
