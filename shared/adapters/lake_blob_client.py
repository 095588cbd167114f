"""The Blob API as the Blob lake (:class:`shared.adapters.lake_blob.BlobLake`) uses it:

- building the ``ContainerClient``: an explicit retry policy, a sized connection pool, timeouts, and the
  container created if missing;
- what blobs look like through the SDK: metadata rules (they travel as HTTP headers), etags, and the
  ADLS Gen2 folder entries that are not objects of the lake;
- how delta-rs reaches the same account (:func:`delta_location`);
- the SDK's exceptions turned into LakeErrors that name the object, the problem and what to check
  (:func:`fail`).
"""

from __future__ import annotations

import re
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobProperties, ContainerClient, ExponentialRetry

from shared.ports.lake import LakeError
from shared.settings import export_to_libraries

SDK_ERRORS = (HttpResponseError, ServiceRequestError, ServiceResponseError)
"""What a request of the storage SDK raises when it fails: the service answered with an error, or the request
did not reach it (or its answer did not come back). :func:`fail` turns each into a :class:`LakeError`."""

HTTP_POOL_SIZE = 32
"""Connections to the storage account kept open per lake. urllib3's default of 10 is below what runs at once
in one worker: two ingests publishing 8 files each, the aggregates' uploads, ``local_copy``'s downloads.
Past the pool, each extra connection is opened, then dropped with a "Connection pool is full" warning."""

_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")


# -- building the client ----------------------------------------------------------------------------
def retry_policy() -> ExponentialRetry:
    """The retry policy every Blob lake client uses, set explicitly rather than left to SDK defaults.

    Up to 4 retries, waiting about 3, 5, 9 and 17 s (1 + 2^n, ±1 s jitter; ~34 s in all). The SDK's
    default (15 + 3^n s) waits over two minutes; this is long enough to ride out a store's flaky uplink
    or a throttled (503) account, short enough that a function invocation fails within a minute and the
    trigger's own retry takes over. Each block is its own request, so a retry re-sends at most one block.
    Connection errors, timeouts, 408, 429 and 5xx are retried; 4xx answers are not.
    """
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=4, random_jitter_range=1)


def _http_session() -> Any:
    """A requests session as the SDK builds its own (its adapter, urllib3 retries off: the pipeline's retry
    policy retries), with a pool of :data:`HTTP_POOL_SIZE` connections. The storage SDK's documented way to
    size the pool is to hand it such a session."""
    import requests
    from urllib3.util.retry import Retry

    try:  # the SDK's adapter reads responses in bigger blocks; private, hence the fallback
        from azure.core.pipeline.transport._bigger_block_size_http_adapters import (
            BiggerBlockSizeHTTPAdapter as Adapter,
        )
    except ImportError:  # pragma: no cover - a future azure-core
        from requests.adapters import HTTPAdapter as Adapter
    session = requests.Session()
    adapter = Adapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False),
                      pool_maxsize=HTTP_POOL_SIZE)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return session


def _client_options() -> dict[str, Any]:
    return {
        "session": _http_session(),
        "retry_policy": retry_policy(),
        # Download in 4 MiB ranges after an 8 MiB first request: bounded memory, frequent progress.
        "max_single_get_size": 8 << 20,
        "max_chunk_get_size": 4 << 20,
        "connection_timeout": 20,
        "read_timeout": 120,
    }


def _check_container_name(container: str) -> None:
    if not _CONTAINER_NAME.fullmatch(container or ""):
        raise LakeError(
            f"invalid lake container name {container!r} (setting LAKE_CONTAINER): use 3-63 lowercase "
            "letters, digits and single hyphens, starting and ending with a letter or digit"
        )


def container_from_connection_string(conn: str, container: str) -> ContainerClient:
    """The client of ``container`` from a storage connection string (development: Azurite)."""
    _check_container_name(container)
    try:
        return ContainerClient.from_connection_string(conn, container, **_client_options())
    except ValueError as exc:
        # The connection string may carry a key: never repeat it in the message.
        raise LakeError(
            f"the lake connection string (setting LAKE) is not usable: {str(exc).rstrip('.')}. Use "
            "UseDevelopmentStorage=true for Azurite, or DefaultEndpointsProtocol=...;AccountName=...;"
            "AccountKey=...;BlobEndpoint=..."
        ) from None


def container_from_service_uri(uri: str, container: str, credential: TokenCredential) -> ContainerClient:
    """The client of ``container`` at the account's Blob endpoint, authenticated with a token credential."""
    _check_container_name(container)
    if not uri.startswith("https://"):
        raise LakeError(
            f"the lake service URI {uri!r} (setting LAKE__blobServiceUri) must start with https:// "
            "(Azure only accepts identity-based access over HTTPS); e.g. "
            "https://<account>.blob.core.windows.net"
        )
    try:
        return ContainerClient(uri, container, credential=credential, **_client_options())
    except ValueError as exc:
        raise LakeError(f"the lake service URI {uri!r} is not usable: {exc}") from None


def ensure_container(container: ContainerClient) -> None:
    """Create the container if missing; one that exists already is fine (any number of workers may start
    at once), and so is an identity refused creation as long as the container exists."""
    try:
        container.create_container()
    except ResourceExistsError:
        return  # 409: already there, the normal case
    except SDK_ERRORS as exc:
        if not refused(exc):
            fail(exc, "create the container", describe(container))
        # An identity with data-plane rights only may be refused container creation; that is fine
        # as long as the container was provisioned (the infrastructure creates it).
        try:
            exists = container.exists()
        except SDK_ERRORS as again:
            fail(again, "open the container", describe(container))
        if not exists:
            raise LakeError(
                f"the lake container {describe(container)} does not exist and this identity may not "
                "create it: create it in the infrastructure, or grant the identity 'Storage Blob Data "
                "Contributor' on the storage account"
            ) from None


def describe(container: ContainerClient) -> str:
    """The container's URL without its query string, so a SAS token never ends up in messages or logs."""
    parts = urlsplit(container.url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# -- blobs as the SDK gives and takes them -----------------------------------------------------------
# ADLS Gen2 accounts list their directories through the Blob API as empty blobs with this metadata.
_FOLDER_MARKER = "hdi_isfolder"


def check_metadata(path: str, metadata: dict[str, str] | None) -> dict[str, str] | None:
    """Blob metadata travels as HTTP headers: keys must be identifiers, values printable ASCII."""
    if metadata is None:
        return None
    for key, value in metadata.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise LakeError(
                f"invalid metadata key {key!r} for {path!r}: blob metadata keys must be identifiers "
                "(letters, digits, '_'; not starting with a digit)"
            )
        if not isinstance(value, str) or not all(" " <= ch <= "~" for ch in value):
            raise LakeError(
                f"invalid metadata value for {key!r} on {path!r}: blob metadata values must be printable "
                f"ASCII; percent-encode other text (urllib.parse.quote) before storing it. Got {value!r}"
            )
    return metadata


def http_etag(props: BlobProperties) -> str:
    """The etag in its HTTP form (quoted), as usable in If-Match. Properties from a GET carry the quotes,
    list results do not: normalise so head() and list() agree."""
    etag = props.etag or ""
    return etag if not etag or etag.startswith(('"', 'W/"')) else f'"{etag}"'


def is_folder(props: BlobProperties) -> bool:
    """An ADLS Gen2 directory: listed through the Blob API as an empty blob, not an object of the lake."""
    return (props.metadata or {}).get(_FOLDER_MARKER, "").lower() == "true"


# -- delta-rs -----------------------------------------------------------------------------------------
def delta_location(container: ContainerClient, path: str) -> tuple[str, dict[str, str]]:
    """``az://<container>/<path>`` and delta-rs's options for this account.

    - Azurite (an endpoint on this machine): ``azure_storage_use_emulator`` plus the process environment
      variable ``AZURITE_BLOB_STORAGE_URL`` naming its endpoint, the one setup that commits reliably there
      (an account key with ``endpoint=`` failed from the third commit on with "Invalid table version").
    - Azure with the app's identity: an Entra token for Storage from the same credential as the Blob
      client (``bearer_token``); azure-identity caches and renews it, so each call gets a valid one.
    - A connection string with an account key (not recommended; shared-key access is off in our infra).
    """
    c = container
    uri = f"az://{c.container_name}/{path}"
    parts = urlsplit(c.url)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        export_to_libraries("AZURITE_BLOB_STORAGE_URL", f"{parts.scheme}://{parts.netloc}")
        return uri, {"azure_storage_use_emulator": "true", "azure_storage_account_name": c.account_name}
    cred = c.credential
    if hasattr(cred, "get_token"):
        token = cred.get_token("https://storage.azure.com/.default").token
        return uri, {"azure_storage_account_name": c.account_name, "bearer_token": token}
    if getattr(cred, "account_key", None):
        return uri, {"azure_storage_account_name": c.account_name, "azure_storage_account_key": cred.account_key}
    raise LakeError(f"the lake {describe(c)} has no identity or key that delta-rs can use for "
                    f"the Delta table {path!r}: use LAKE__blobServiceUri with a managed identity")


# -- errors ------------------------------------------------------------------------------------------
def refused(exc: Exception) -> bool:
    """Authentication or authorisation failed (the SDK raises 403s as either of two types)."""
    return isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
    )


def container_missing(exc: Exception) -> bool:
    """A 404 about the container itself, not about the object asked for."""
    return isinstance(exc, ResourceNotFoundError) and getattr(exc, "error_code", None) == "ContainerNotFound"


def fail(exc: Exception, action: str, where: str) -> NoReturn:
    """Raise the SDK exception ``exc`` as a LakeError: could not ``action`` ``where``, why, and what to check."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        hint = (
            "the storage endpoint did not answer (after retries): check the network, the account URL, "
            "and for Azurite that it is running (scripts/devservers.sh start)"
        )
    elif refused(exc):
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        hint = (
            f"access was refused ({detail}): check the account key or, with a managed identity, that "
            "it can get a token and has 'Storage Blob Data Contributor' on the account"
        )
    elif container_missing(exc):
        hint = "the container does not exist: it is created when the lake is opened; was it deleted?"
    elif isinstance(exc, ResourceModifiedError):
        hint = "the object changed while it was being read: retry the operation"
    elif isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or exc.status_code
        code = getattr(code, "value", code)  # the SDK gives StorageErrorCode enums or plain strings
        hint = f"the service answered {exc.status_code} ({code}): {exc.reason or 'see the service log'}"
    else:
        hint = str(exc)
    raise LakeError(f"could not {action} {where}: {hint}") from exc


__all__ = ["HTTP_POOL_SIZE", "check_metadata", "container_from_connection_string", "container_from_service_uri",
           "container_missing", "delta_location", "describe", "ensure_container", "fail", "http_etag", "is_folder",
           "refused", "retry_policy"]
