"""The Blob lake: the lake container on Azure Blob storage / ADLS Gen2, or on Azurite for development.

Everything goes through the Blob API (``azure-storage-blob``), which works on plain Blob accounts, on
ADLS Gen2 (hierarchical namespace) accounts and on Azurite alike; Azurite has no DFS endpoint.

Semantics mirror :class:`shared.adapters.lake_folder.FolderLake`:

- Writes are atomic. Large files are staged as blocks and made visible by one Put Block List that also
  sets the metadata, so a reader sees the old object or the whole new one with its metadata, never a
  half-written object or one without metadata.
- ``overwrite=False`` is a conditional create (``If-None-Match: *``): when two writers race, exactly one
  wins and the other gets False, with no window between a check and the write.
- Reads stream to disk in chunks; a download pins the blob's etag so a concurrent overwrite is reported
  rather than mixed into the file.
- Locks are blob leases on ``locks/<name>`` (an empty blob), finite (30 s by default) and renewed by a
  background thread while held: a holder that crashes frees the lock when its lease lapses.

This module imports the Azure SDK at module level; :mod:`shared.bootstrap` imports the module lazily, only
when a Blob lake is configured, so the local default never pays for it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
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
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobLeaseClient,
    BlobProperties,
    ContainerClient,
    ExponentialRetry,
    StorageStreamDownloader,
)

from shared.adapters.lake_locks import wait_for_lock
from shared.ports.lake import (
    DEFAULT_LOCK_WAIT_S,
    LakeError,
    LakeObject,
    Progress,
    check_lake_path,
    check_lock_name,
)
from shared.settings import export_to_libraries

DEFAULT_BLOCK_SIZE = 8 << 20
"""Bytes per staged block. Above 4 MiB, Azure uses high-throughput block blobs; 8 MiB × the default
concurrency of 4 keeps at most ~40 MiB of a file in memory while uploading."""

DEFAULT_MAX_CONCURRENCY = 4
"""Blocks in flight at once (upload) and parallel range reads (download)."""

DEFAULT_PARALLEL_FILES = 8
"""Objects moved at once by :meth:`BlobLake.local_copy`, :meth:`BlobLake.put_files` and
:meth:`BlobLake.delete_many`. Their files are small (a store's daily Parquet): one request each, so one at
a time the round trip, not the bandwidth, sets the pace (``bench/lake_transfers.py`` measures it)."""

_MAX_BLOCKS = 50_000  # the service's limit on blocks per blob
_MAX_BLOCK_SIZE = 4000 << 20  # the service's limit on one block

_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")

# ADLS Gen2 accounts list their directories through the Blob API as empty blobs with this metadata.
_FOLDER_MARKER = "hdi_isfolder"

LOCK_LEASE_S = 30
"""Lease of a held lock, renewed every third of it. The service allows 15-60 s (or infinite, which a crashed
holder would keep forever): 30 s frees a dead holder's lock soon, and leaves two renewals to fail before
the lease lapses."""

log = logging.getLogger(__name__)


def retry_policy() -> ExponentialRetry:
    """The retry policy every Blob lake client uses, set explicitly rather than left to SDK defaults.

    Up to 4 retries, waiting about 3, 5, 9 and 17 s (1 + 2^n, ±1 s jitter; ~34 s in all). The SDK's
    default (15 + 3^n s) waits over two minutes; this is long enough to ride out a store's flaky uplink
    or a throttled (503) account, short enough that a function invocation fails within a minute and the
    trigger's own retry takes over. Each block is its own request, so a retry re-sends at most one block.
    Connection errors, timeouts, 408, 429 and 5xx are retried; 4xx answers are not.
    """
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=4, random_jitter_range=1)


HTTP_POOL_SIZE = 32
"""Connections to the storage account kept open per lake. urllib3's default of 10 is below what runs at once
in one worker: two ingests publishing 8 files each, the aggregates' uploads, ``local_copy``'s downloads.
Past the pool, each extra connection is opened, then dropped with a "Connection pool is full" warning."""


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


def _block_id(upload_id: str, index: int) -> str:
    # Block ids must have the same length within a blob. The per-upload prefix keeps two writers racing
    # on the same path from committing each other's uncommitted blocks.
    return base64.b64encode(f"{upload_id}-{index:06d}".encode()).decode()


def _without_query(url: str) -> str:
    """A URL without its query string, so a SAS token never ends up in messages or logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _check_metadata(path: str, metadata: dict[str, str] | None) -> dict[str, str] | None:
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


def _etag(props: BlobProperties) -> str:
    """The etag in its HTTP form (quoted), as usable in If-Match. Properties from a GET carry the quotes,
    list results do not: normalise so head() and list() agree."""
    etag = props.etag or ""
    return etag if not etag or etag.startswith(('"', 'W/"')) else f'"{etag}"'


def _refused(exc: Exception) -> bool:
    """Authentication or authorisation failed (the SDK raises 403s as either of two types)."""
    return isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
    )


def _is_folder(props: BlobProperties) -> bool:
    return (props.metadata or {}).get(_FOLDER_MARKER, "").lower() == "true"


class BlobLake:
    """The lake on one Blob container. Build it with :meth:`from_connection_string` (Azurite, development)
    or :meth:`from_service_uri` (Azure, managed identity)."""

    def __init__(
        self,
        container: ContainerClient,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        parallel_files: int = DEFAULT_PARALLEL_FILES,
        create_container: bool = True,
    ) -> None:
        """Wrap a ``ContainerClient`` (configured by the caller, retry policy included).

        With ``create_container`` the container is created if missing; one that exists already is fine,
        so any number of instances and function workers may start at once.
        """
        if not 1 <= block_size <= _MAX_BLOCK_SIZE:
            raise ValueError(f"block_size {block_size} out of range: use 1 byte to 4000 MiB (e.g. 8 MiB)")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency {max_concurrency} out of range: use 1 or more")
        if parallel_files < 1:
            raise ValueError(f"parallel_files {parallel_files} out of range: use 1 or more")
        self._container = container
        self.block_size = block_size
        self.max_concurrency = max_concurrency
        self.parallel_files = parallel_files
        if create_container:
            self._ensure_container()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_connection_string(cls, conn: str, container: str) -> BlobLake:
        """A lake on ``container`` from a storage connection string.

        For development: ``UseDevelopmentStorage=true`` (Azurite on 127.0.0.1:10000) or a full string
        with ``BlobEndpoint=``. Production uses :meth:`from_service_uri` and a managed identity instead.
        """
        _check_container_name(container)
        try:
            client = ContainerClient.from_connection_string(conn, container, **_client_options())
        except ValueError as exc:
            # The connection string may carry a key: never repeat it in the message.
            raise LakeError(
                f"the lake connection string (setting LAKE) is not usable: {str(exc).rstrip('.')}. Use "
                "UseDevelopmentStorage=true for Azurite, or DefaultEndpointsProtocol=...;AccountName=...;"
                "AccountKey=...;BlobEndpoint=..."
            ) from None
        return cls(client)

    @classmethod
    def from_service_uri(cls, uri: str, container: str, credential: TokenCredential) -> BlobLake:
        """A lake on ``container`` at the account's Blob endpoint (``https://<acct>.blob.core.windows.net``),
        authenticated with a token credential (DefaultAzureCredential / managed identity); never keys."""
        _check_container_name(container)
        if not uri.startswith("https://"):
            raise LakeError(
                f"the lake service URI {uri!r} (setting LAKE__blobServiceUri) must start with https:// "
                "(Azure only accepts identity-based access over HTTPS); e.g. "
                "https://<account>.blob.core.windows.net"
            )
        try:
            client = ContainerClient(uri, container, credential=credential, **_client_options())
        except ValueError as exc:
            raise LakeError(f"the lake service URI {uri!r} is not usable: {exc}") from None
        return cls(client)

    def _ensure_container(self) -> None:
        try:
            self._container.create_container()
        except ResourceExistsError:
            return  # 409: already there, the normal case
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            if not _refused(exc):
                self._fail(exc, "", "create the container")
            # An identity with data-plane rights only may be refused container creation; that is fine
            # as long as the container was provisioned (the infrastructure creates it).
            try:
                exists = self._container.exists()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as again:
                self._fail(again, "", "open the container")
            if not exists:
                raise LakeError(
                    f"the lake container {self.describe()} does not exist and this identity may not "
                    "create it: create it in the infrastructure, or grant the identity 'Storage Blob Data "
                    "Contributor' on the storage account"
                ) from None

    @property
    def container(self) -> ContainerClient:
        """The underlying client, for callers that need a Blob feature the Lake port does not offer."""
        return self._container

    def describe(self) -> str:
        """The container's URL (without any SAS token), e.g. ``http://127.0.0.1:10000/devstoreaccount1/lake``."""
        return _without_query(self._container.url)

    def delta_location(self, path: str) -> tuple[str, dict[str, str]]:
        """``az://<container>/<path>`` and delta-rs's options for this account.

        - Azurite (an endpoint on this machine): ``azure_storage_use_emulator`` plus the process environment
          variable ``AZURITE_BLOB_STORAGE_URL`` naming its endpoint, the one setup that commits reliably there
          (an account key with ``endpoint=`` failed from the third commit on with "Invalid table version").
        - Azure with the app's identity: an Entra token for Storage from the same credential as the Blob
          client (``bearer_token``); azure-identity caches and renews it, so each call gets a valid one.
        - A connection string with an account key (not recommended; shared-key access is off in our infra).
        """
        check_lake_path(path)
        c = self._container
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
        raise LakeError(f"the lake {self.describe()} has no identity or key that delta-rs can use for "
                        f"the Delta table {path!r}: use LAKE__blobServiceUri with a managed identity")

    # -- errors ------------------------------------------------------------------------------------
    def _fail(self, exc: Exception, path: str, action: str) -> NoReturn:
        """Turn an SDK exception into a LakeError that names the object, the problem and what to check."""
        where = f"{path!r} in {self.describe()}" if path else self.describe()
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            hint = (
                "the storage endpoint did not answer (after retries): check the network, the account URL, "
                "and for Azurite that it is running (scripts/devservers.sh start)"
            )
        elif _refused(exc):
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            hint = (
                f"access was refused ({detail}): check the account key or, with a managed identity, that "
                "it can get a token and has 'Storage Blob Data Contributor' on the account"
            )
        elif (
            isinstance(exc, ResourceNotFoundError) and getattr(exc, "error_code", None) == "ContainerNotFound"
        ):
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

    # -- writes ------------------------------------------------------------------------------------
    def put_bytes(
        self, path: str, data: bytes, *, metadata: dict[str, str] | None = None, overwrite: bool = True
    ) -> bool:
        """Write a small object in one Put Blob request (atomic, metadata included)."""
        check_lake_path(path)
        _check_metadata(path, metadata)
        return self._put_single(path, data, metadata, overwrite)

    def _put_single(self, path: str, data: bytes, metadata: dict[str, str] | None, overwrite: bool) -> bool:
        blob = self._container.get_blob_client(path)
        # Up to the SDK's max_single_put_size (64 MiB) this is one Put Blob; beyond, the SDK stages blocks
        # and commits them with the same condition, which is atomic too.
        kwargs: dict[str, Any] = {"metadata": metadata or {}, "validate_content": True}
        if overwrite:
            kwargs["overwrite"] = True
        else:
            # Conditional create (If-None-Match: *). No etag with IfMissing: the SDK rejects it.
            kwargs["match_condition"] = MatchConditions.IfMissing
        try:
            blob.upload_blob(data, length=len(data), **kwargs)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            if overwrite:
                self._fail(exc, path, "write")
            return False  # 409 BlobAlreadyExists (or 412): the object exists, left as it was
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, "write")
        return True

    def put_file(
        self,
        path: str,
        source: Path,
        *,
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
        progress: Progress | None = None,
    ) -> bool:
        """Upload a local file, streaming it in blocks; returns False (nothing written) when
        ``overwrite=False`` and the object exists.

        Why explicit Put Block / Put Block List rather than ``upload_blob(max_block_size=...)``: the
        commit is one request that carries the metadata and the If-None-Match condition, so the object
        and its metadata appear together and a lost race costs nothing but unreferenced blocks (the
        service drops them after a week); block ids are unique per upload so racing writers never mix
        blocks; ``progress`` is called once per block from the calling thread; and memory stays at
        ``max_concurrency`` blocks. Files no bigger than one block go up in a single Put Blob.
        """
        check_lake_path(path)
        _check_metadata(path, metadata)
        source = Path(source)
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cannot upload {source} to lake path {path!r}: the file does not exist"
            ) from None
        if not overwrite and self.head(path) is not None:
            return False  # cheap check first: do not send a large file just to lose the race
        if size <= self.block_size:
            data = source.read_bytes()
            created = self._put_single(path, data, metadata, overwrite)
            if created and progress:
                progress(len(data))
            return created
        return self._put_blocks(path, source, size, metadata, overwrite, progress)

    def _put_blocks(
        self,
        path: str,
        source: Path,
        size: int,
        metadata: dict[str, str] | None,
        overwrite: bool,
        progress: Progress | None,
    ) -> bool:
        blob = self._container.get_blob_client(path)
        # Grow blocks for very large files so they stay under the service's 50,000-block limit.
        block_size = max(self.block_size, -(-size // _MAX_BLOCKS))
        upload_id = uuid.uuid4().hex
        block_ids: list[str] = []
        pending: set[Future[int]] = set()

        def stage(block_id: str, chunk: bytes) -> int:
            blob.stage_block(block_id, chunk, length=len(chunk), validate_content=True)
            return len(chunk)

        def settle(done: set[Future[int]]) -> None:
            for fut in done:
                sent = fut.result()  # re-raises the SDK error of a failed block
                if progress:
                    progress(sent)

        try:
            with (
                ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="lake-put") as pool,
                open(source, "rb") as src,
            ):
                while chunk := src.read(block_size):
                    block_id = _block_id(upload_id, len(block_ids))
                    block_ids.append(block_id)
                    pending.add(pool.submit(stage, block_id, chunk))
                    if len(pending) >= self.max_concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        settle(done)
                done, pending = wait(pending)
                settle(done)
            if len(block_ids) > _MAX_BLOCKS:
                raise LakeError(
                    f"cannot upload {source} to {path!r}: it grew to more than {_MAX_BLOCKS} blocks while "
                    "being read; upload a file that is not being written to"
                )
            commit: dict[str, Any] = {"metadata": metadata or {}}
            if not overwrite:
                commit["match_condition"] = MatchConditions.IfMissing
            blob.commit_block_list([BlobBlock(block_id=b) for b in block_ids], **commit)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            if overwrite:
                self._fail(exc, path, f"upload {source} to")
            return False  # another writer created it between our check and our commit
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, f"upload {source} to")
        return True

    # -- reads -------------------------------------------------------------------------------------
    def get_to_file(self, path: str, target: Path, *, progress: Progress | None = None) -> None:
        """Stream an object to ``target`` in ranges (never whole in memory); FileNotFoundError if missing.

        The SDK pins the etag of the first response for the later ranges, so an object overwritten
        mid-download fails (LakeError) instead of producing a file that mixes two versions. A failed
        download leaves no partial file behind.
        """
        self._get_to_file(path, Path(target), progress=progress, max_concurrency=self.max_concurrency)

    def _get_to_file(self, path: str, target: Path, *, progress: Progress | None, max_concurrency: int) -> None:
        hook = _delta_progress(progress) if progress else None
        downloader = self._download(path, max_concurrency=max_concurrency, progress_hook=hook)
        try:
            with open(target, "wb") as out:
                downloader.readinto(out)
        except BaseException as exc:
            target.unlink(missing_ok=True)  # never leave a partial file that looks complete
            if isinstance(exc, HttpResponseError | ServiceRequestError | ServiceResponseError):
                self._fail(exc, path, "read")
            raise

    def get_bytes(self, path: str) -> bytes:
        """Read a small object whole; FileNotFoundError if missing."""
        downloader = self._download(path)
        try:
            return downloader.readall()
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, "read")

    def _download(self, path: str, **kwargs: object) -> StorageStreamDownloader:
        """Start a download; a missing object or a folder is FileNotFoundError, other failures LakeError."""
        check_lake_path(path)
        blob = self._container.get_blob_client(path)
        try:
            downloader = blob.download_blob(**kwargs)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                self._fail(exc, path, "read")
            raise FileNotFoundError(f"no object {path!r} in the lake at {self.describe()}") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, "read")
        if _is_folder(downloader.properties):
            raise FileNotFoundError(f"no object {path!r} in the lake at {self.describe()} (it is a folder)")
        return downloader

    def put_files(self, files: list[tuple[str, Path]], *, consume: bool = False) -> None:
        """Upload each local file to its lake path, ``parallel_files`` at once (each in one request when it
        fits a block); with ``consume`` each local file is removed once it is in the lake."""
        for path, _ in files:
            check_lake_path(path)

        def put(path: str, source: Path) -> None:
            self.put_file(path, source)
            if consume:
                Path(source).unlink(missing_ok=True)

        self._each(put, files, name="lake-put")

    def delete_many(self, paths: list[str]) -> list[str]:
        for p in paths:
            check_lake_path(p)
        gone = self._each(self.delete, [(p,) for p in paths], name="lake-delete")
        return [p for p, g in zip(paths, gone, strict=True) if g]

    def _each(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], *, name: str) -> list[Any]:
        """``fn(*args)`` for each of ``calls``, up to ``parallel_files`` at once; the results in order. On the
        first failure the calls already started end, the others are not started, and that error is raised."""
        if len(calls) < 2 or self.parallel_files < 2:
            return [fn(*args) for args in calls]
        pool = ThreadPoolExecutor(min(self.parallel_files, len(calls)), thread_name_prefix=name)
        try:
            futures = [pool.submit(fn, *args) for args in calls]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def delete(self, path: str) -> bool:
        """Delete a blob; False when there was none (an ADLS Gen2 folder is not an object: False too)."""
        check_lake_path(path)
        if self.head(path) is None:
            return False
        try:
            self._container.get_blob_client(path).delete_blob()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                self._fail(exc, path, "delete")
            return False  # deleted meanwhile by another holder
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, "delete")
        return True

    def head(self, path: str) -> LakeObject | None:
        """Size, metadata and etag, or None when there is no such object (ADLS Gen2 folders included)."""
        check_lake_path(path)
        try:
            props = self._container.get_blob_client(path).get_blob_properties()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                self._fail(exc, path, "read the properties of")
            return None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, path, "read the properties of")
        if _is_folder(props):
            return None
        return LakeObject(path, props.size, dict(props.metadata or {}), etag=_etag(props),
                          last_modified=props.last_modified)

    def list(self, prefix: str) -> Iterator[LakeObject]:
        """Objects whose path starts with ``prefix``, in path order, with their metadata.

        The service returns names in lexicographic order. ADLS Gen2 folder entries are skipped, as the
        folder lake lists files only.
        """
        if prefix:
            folder = prefix.rstrip("/")
            if prefix.startswith("/") or not folder:
                raise LakeError(
                    f"invalid lake prefix {prefix!r}: use a relative POSIX prefix such as raw/store=S1/"
                )
            check_lake_path(folder)
        try:
            for props in self._container.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                if _is_folder(props):
                    continue
                yield LakeObject(props.name, props.size, dict(props.metadata or {}), etag=_etag(props),
                                 last_modified=props.last_modified)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            self._fail(exc, prefix, "list")

    @contextlib.contextmanager
    def local_copy(self, paths: list[str], *, into: Path | None = None) -> Iterator[list[Path]]:
        """Download ``paths`` into a temporary folder (removed on exit; inside ``into`` when given); yield local
        files in the same order.

        The copies keep their lake paths under the folder (``<tmp>/raw/store=S1/date=.../x``), so engines
        that read Hive-style partitions from paths (DuckDB, pyarrow) see the same columns as on the lake.
        Up to ``parallel_files`` objects download at once (each in one stream); the first failure is raised
        once the downloads already started have ended, and the rest are not started.
        """
        for p in paths:
            check_lake_path(p)
        if into is not None:
            Path(into).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lake-copy-", dir=into) as tmp:
            root = Path(tmp)
            unique = list(dict.fromkeys(paths))
            for p in unique:
                (root / p).parent.mkdir(parents=True, exist_ok=True)
            if len(unique) < 2 or self.parallel_files < 2:  # a lone file may use parallel range reads
                for p in unique:
                    self.get_to_file(p, root / p)
            else:
                self._each(lambda p: self._get_to_file(p, root / p, progress=None, max_concurrency=1),
                           [(p,) for p in unique], name="lake-get")
            yield [root / p for p in paths]

    # -- locks -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, name: str, *, timeout_s: float = DEFAULT_LOCK_WAIT_S, lease_s: int = LOCK_LEASE_S
    ) -> Iterator[BlobLock]:
        """Hold the lock ``name``: a lease of ``lease_s`` seconds on the blob ``locks/<name>``, renewed in the
        background until the block ends, then released. Waits with backoff while another lease is active."""
        if not 15 <= lease_s <= 60:
            raise ValueError(f"lease_s {lease_s} out of range: the service allows leases of 15 to 60 s")
        path = f"locks/{check_lock_name(name)}"
        blob = self._container.get_blob_client(path)
        lease = BlobLeaseClient(blob)  # a fresh lease id per holder
        held = BlobLock(name, lease, lease_s, describe=f"{path!r} in {self.describe()}")

        def attempt() -> bool:
            for _ in range(2):
                sent = time.monotonic()
                try:
                    lease.acquire(lease_duration=lease_s)
                except ResourceNotFoundError as exc:
                    if getattr(exc, "error_code", None) == "ContainerNotFound":
                        self._fail(exc, path, "lock")
                    self._create_lock_blob(blob, path)  # the first use of this lock: create it, try again
                    continue
                except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                    if isinstance(exc, HttpResponseError) and exc.status_code == 409:
                        return False  # LeaseAlreadyPresent: another holder
                    self._fail(exc, path, "lock")
                held.acquired_at = sent
                return True
            return False

        def holder() -> str:
            try:
                props = blob.get_blob_properties()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError):
                return "holder unknown"
            return f"{(props.metadata or {}).get('holder', 'holder unknown')}; lease {props.lease.state}"

        wait_for_lock(attempt, name=name, where=self.describe(), timeout_s=timeout_s, holder=holder,
                      frees="a worker that died frees it when its lease lapses (15 to 60 s)")
        held.start()
        try:
            with contextlib.suppress(HttpResponseError, ServiceRequestError, ServiceResponseError):
                # Who holds it, for the message of a worker that gives up waiting (informational only).
                holder_text = f"held by pid {os.getpid()} on {socket.gethostname()} with a {lease_s} s lease"
                blob.set_blob_metadata({"holder": holder_text}, lease=lease, retry_total=0)
            yield held
        finally:
            held.stop()
            try:
                lease.release()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                # Harmless: the lease lapses by itself within lease_s.
                log.warning("could not release the lock %s (it frees itself within %d s): %s", path, lease_s,
                            (str(exc).splitlines() or [""])[0])

    def _create_lock_blob(self, blob: BlobClient, path: str) -> None:
        try:
            blob.upload_blob(b"", length=0, match_condition=MatchConditions.IfMissing)
        except (ResourceExistsError, ResourceModifiedError):
            return  # created meanwhile by another worker
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            if isinstance(exc, HttpResponseError) and exc.status_code in (409, 412):
                return  # exists (and leased) already
            self._fail(exc, path, "create the lock")

    def delete_container(self) -> None:
        """Delete the whole container (tests' clean-up only)."""
        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_container()


class BlobLock:
    """A held Blob lock: its lease, and the thread that renews it every third of the lease.

    A renewal that fails is retried every second; if none succeeds before the lease would lapse, the lock
    is lost (another worker may take it) and :meth:`check` says so.
    """

    def __init__(self, name: str, lease: BlobLeaseClient, lease_s: int, *, describe: str) -> None:
        self.name = name
        self.lease_s = lease_s
        self.acquired_at = time.monotonic()
        self.renewals = 0
        self._lease = lease
        self._describe = describe
        self._renewed_at = self.acquired_at  # when the last successful acquire/renew was *sent*
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lake-lock-{name}", daemon=True)

    def start(self) -> None:
        self._renewed_at = self.acquired_at
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _keep(self) -> None:
        every = self.lease_s / 3
        while not self._stop.wait(every if self._error is None else 1.0):
            sent = time.monotonic()
            if sent - self._renewed_at >= self.lease_s:
                return  # lapsed: renewing now could not undo it (check() reports it)
            try:
                # One try, short timeouts: this loop retries itself, well inside the lease.
                self._lease.renew(retry_total=0, connection_timeout=5, read_timeout=every)
            except Exception as exc:  # any failure: retried (below) until the lease would lapse
                self._error = exc
                continue
            self._renewed_at = sent
            self._error = None
            self.renewals += 1

    def check(self) -> None:
        """Raise LakeError if the lease may have lapsed (no renewal went through in time)."""
        if time.monotonic() - self._renewed_at >= self.lease_s:
            reason = f": {(str(self._error).splitlines() or [''])[0]}" if self._error else ""
            raise LakeError(
                f"lost the lock {self.name!r} ({self._describe}): its {self.lease_s} s lease could not be "
                f"renewed in time{reason}; another worker may hold it now. Stop before committing "
                "anything that relies on the lock, and retry the operation"
            )


def _check_container_name(container: str) -> None:
    if not _CONTAINER_NAME.fullmatch(container or ""):
        raise LakeError(
            f"invalid lake container name {container!r} (setting LAKE_CONTAINER): use 3-63 lowercase "
            "letters, digits and single hyphens, starting and ending with a letter or digit"
        )


def _delta_progress(progress: Progress) -> Callable[[int, int | None], None]:
    """Adapt the SDK's cumulative ``(current, total)`` hook, called from download threads in any order,
    to the lake's per-transfer byte counts (which add up to the object's size)."""
    lock = threading.Lock()
    seen = 0

    def hook(current: int, _total: int | None) -> None:
        nonlocal seen
        with lock:
            delta = current - seen
            if delta <= 0:
                return
            seen = current
            progress(delta)

    return hook


__all__ = ["DEFAULT_BLOCK_SIZE", "LOCK_LEASE_S", "BlobLake", "BlobLock", "retry_policy"]
