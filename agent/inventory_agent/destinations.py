"""Where the agent uploads to: a Blob container (Azure, or Azurite for tests), or a folder (local demo/tests).

Both have ``put_file(path, file, *, metadata, overwrite, progress) -> bool``, the :class:`~inventory_agent.
upload.Destination` protocol, which the pipeline's own lakes (``shared/adapters/lake_folder.py``,
``lake_blob.py``) have as well, so the pipeline's dev tools hand their lake to the same upload code.

The same semantics as the pipeline's lakes:

- ``overwrite=False`` is a conditional create: when the object exists nothing is written and False is
  returned. The agent names each dump after its content's hash, so "exists" means "this content is there".
- The object appears whole, with its metadata, or not at all. On Blob storage, large files are staged as
  blocks (each retried on its own) and committed by one Put Block List that carries the metadata and the
  ``If-None-Match: *`` condition. The folder destination writes a hidden temporary file and links it in.
- The folder destination lays files out as the pipeline's folder lake does (metadata in ``.meta/<path>.json``),
  so the pipeline reads what it wrote.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, ContainerClient, ExponentialRetry

from inventory_agent.errors import ConfigError, UploadFailed
from inventory_agent.scratch import locked_file

Progress = Callable[[int], None]
"""Called with the number of bytes just sent."""

BLOCK_SIZE = 8 << 20
"""Bytes per staged block: a retry re-sends at most this much; 4 in flight keep ~32 MiB in memory."""
MAX_CONCURRENCY = 4
_MAX_BLOCKS = 50_000  # the service's limit on blocks per blob
_CHUNK = 1 << 20
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_METADATA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_path(path: str) -> str:
    """A relative POSIX object path with no empty, ``.`` or ``..`` part."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object path {path!r}: use a relative POSIX path such as raw/store=S1/...")
    return path


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Blob metadata travels as HTTP headers: keys must be identifiers, values printable ASCII."""
    for key, value in (metadata or {}).items():
        if not _METADATA_KEY.fullmatch(key) or not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise ValueError(f"invalid metadata {key!r}: {value!r} (keys are identifiers, values printable ASCII)")
    return dict(metadata or {})


# -- a folder -----------------------------------------------------------------------------------------


class FolderDestination:
    """Objects as files under ``root``; metadata beside the tree in ``.meta/<path>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        """Nothing to check before the snapshot: the folder exists (made by the constructor)."""

    def put_file(self, path: str, source: Path, *, metadata: dict[str, str] | None = None, overwrite: bool = True,
                 progress: Progress | None = None) -> bool:
        target = self.root / check_path(path)
        meta = self.root / ".meta" / (path + ".json")
        metadata = check_metadata(metadata)
        meta.parent.mkdir(parents=True, exist_ok=True)
        # One lock for check, metadata and link, as the pipeline's folder lake (same lock file): a writer that
        # loses a race never replaces the winner's metadata.
        with locked_file(self.root / ".meta" / ".create.lock"):
            if not overwrite and target.exists():
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            tmp = Path(name)
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        if progress:
                            progress(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                _write_json(meta, metadata)  # first: an object is never visible without its metadata
                if overwrite:
                    os.replace(tmp, target)
                else:
                    try:
                        os.link(tmp, target)  # create-if-missing, atomic (NTFS and POSIX file systems)
                    except FileExistsError:  # a writer that does not take the lock got there first
                        return False
            finally:
                tmp.unlink(missing_ok=True)
        return True


def _write_json(path: Path, data: dict[str, str]) -> None:
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, sort_keys=True)
    os.replace(name, path)


# -- Azure Blob storage -------------------------------------------------------------------------------


class RetryPolicy(ExponentialRetry):
    """Up to 4 retries of each request, waiting about 5, 11, 29 and 83 s (2 + 3^n, ±1 s; ~2 minutes in all): a
    store's uplink that drops for a minute costs one slow block, not the night's dump. Connection errors,
    timeouts, 408, 429 and 5xx are retried; other 4xx answers are not, nor is a credential that gives no token
    (a setting to fix, not a blip; azure-identity has retried its own requests by then)."""

    def __init__(self) -> None:
        super().__init__(initial_backoff=2, increment_base=3, retry_total=4, random_jitter_range=1)

    def increment(self, settings: dict[str, Any], request: Any, response: Any = None,
                  error: AzureError | None = None) -> bool:
        if isinstance(error, ClientAuthenticationError) and error.response is None:
            return False
        return super().increment(settings, request, response=response, error=error)


def _client_options() -> dict[str, Any]:
    return {"retry_policy": RetryPolicy(), "connection_timeout": 20, "read_timeout": 120}


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _check_container_name(name: str) -> None:
    if not _CONTAINER_NAME.fullmatch(name):
        raise ConfigError(f"invalid container name {name!r}: 3-63 lowercase letters, digits and single '-'")


class BlobDestination:
    """One Blob container. Build it with :meth:`from_account_url` (Azure, an Entra ID credential) or
    :meth:`from_connection_string` (Azurite in tests; a key in the string). It never creates the container:
    the agent's identity may only write blobs under ``raw/`` (infra/modules/rbac.bicep)."""

    def __init__(self, container: ContainerClient, *, block_size: int = BLOCK_SIZE,
                 max_concurrency: int = MAX_CONCURRENCY) -> None:
        if block_size < 1 or max_concurrency < 1:
            raise ValueError("block_size and max_concurrency must be positive")
        self._container = container
        self.block_size = block_size
        self.max_concurrency = max_concurrency

    @classmethod
    def from_account_url(cls, account_url: str, container: str, credential: Any, **kwargs: Any) -> BlobDestination:
        _check_container_name(container)
        if not account_url.startswith("https://"):
            raise ConfigError(f"the account URL {account_url!r} must start with https:// (Entra ID tokens are only "
                              "sent over HTTPS), e.g. https://<account>.blob.core.windows.net")
        try:
            client = ContainerClient(account_url, container, credential=credential, **_client_options())
        except ValueError as exc:
            raise ConfigError(f"the account URL {account_url!r} is not usable: {exc}") from None
        return cls(client, **kwargs)

    @classmethod
    def from_connection_string(cls, conn: str, container: str, **kwargs: Any) -> BlobDestination:
        _check_container_name(container)
        try:
            client = ContainerClient.from_connection_string(conn, container, **_client_options())
        except ValueError as exc:  # the string may carry a key: never repeat it
            raise ConfigError(f"the connection string is not usable: {str(exc).rstrip('.')}") from None
        return cls(client, **kwargs)

    def describe(self) -> str:
        """The container's URL (never a SAS token or key)."""
        return _without_query(self._container.url)

    def check(self) -> None:
        """Get a token for the store's identity now, before minutes of snapshot: a wrong identity setting is
        reported at once. The credential keeps the token for the upload's requests."""
        credential = self._container.credential
        if not hasattr(credential, "get_token"):
            return  # a connection string's key (Azurite, tests)
        try:
            credential.get_token("https://storage.azure.com/.default")
        except ClientAuthenticationError as exc:  # what azure-identity raises, the sign-in's answer included
            raise UploadFailed(f"could not upload to {self.describe()}: {_no_token(exc)}") from exc

    def put_file(self, path: str, source: Path, *, metadata: dict[str, str] | None = None, overwrite: bool = True,
                 progress: Progress | None = None) -> bool:
        check_path(path)
        metadata = check_metadata(metadata)
        size = Path(source).stat().st_size
        blob = self._container.get_blob_client(path)
        try:
            if not overwrite and self._exists(blob):
                return False  # cheap check first: do not send a large file to lose at the commit
            if size <= self.block_size:
                data = Path(source).read_bytes()
                condition = self._condition(overwrite)
                blob.upload_blob(data, length=len(data), metadata=metadata, validate_content=True, **condition)
                if progress:
                    progress(len(data))
            else:
                self._put_blocks(blob, Path(source), size, metadata, overwrite, progress)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            if overwrite:
                self._fail(exc, path)
            return False  # 409 BlobAlreadyExists / 412: created meanwhile by another run, left as it was
        except AzureError as exc:  # HTTP errors, connection errors after retries, token errors
            self._fail(exc, path)
        return True

    @staticmethod
    def _condition(overwrite: bool) -> dict[str, Any]:
        # If-None-Match: * (no etag with IfMissing: the SDK rejects it)
        return {"overwrite": True} if overwrite else {"match_condition": MatchConditions.IfMissing}

    @staticmethod
    def _exists(blob: Any) -> bool:
        try:
            blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise
            return False
        except HttpResponseError as exc:
            if exc.status_code == 403 and getattr(exc, "error_code", None) == "AuthorizationPermissionMismatch":
                return False  # an identity allowed to write but not read: the conditional commit still decides
            raise
        return True

    def _put_blocks(self, blob: Any, source: Path, size: int, metadata: dict[str, str], overwrite: bool,
                    progress: Progress | None) -> None:
        """Stage blocks ``max_concurrency`` at a time, then commit them in one request that carries the metadata
        and the condition. Block ids are unique to this upload, so two runs racing on one path never commit
        each other's blocks; uncommitted blocks are dropped by the service after a week."""
        block_size = max(self.block_size, -(-size // _MAX_BLOCKS))
        upload_id = uuid.uuid4().hex
        block_ids: list[str] = []
        pending: set[Future[int]] = set()

        def stage(block_id: str, chunk: bytes) -> int:
            blob.stage_block(block_id, chunk, length=len(chunk), validate_content=True)
            return len(chunk)

        def settle(done: set[Future[int]]) -> None:
            for fut in done:
                sent = fut.result()  # re-raises a failed block's error
                if progress:
                    progress(sent)

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="agent-put") as pool, \
                open(source, "rb") as src:
            while chunk := src.read(block_size):
                block_id = base64.b64encode(f"{upload_id}-{len(block_ids):06d}".encode()).decode()
                block_ids.append(block_id)
                pending.add(pool.submit(stage, block_id, chunk))
                if len(pending) >= self.max_concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
            done, pending = wait(pending)
            settle(done)
        commit: dict[str, Any] = {"metadata": metadata}
        if not overwrite:
            commit.update(self._condition(False))
        blob.commit_block_list([BlobBlock(block_id=b) for b in block_ids], **commit)

    def _fail(self, exc: Exception, path: str) -> NoReturn:
        """An SDK error as an :class:`UploadFailed` naming the object, the problem and what to check."""
        where = f"{path!r} to {self.describe()}"
        code = getattr(exc, "error_code", None)
        code = getattr(code, "value", code)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            hint = ("the storage endpoint did not answer (after retries, about 2 minutes): check this PC's internet "
                    "connection, proxy and firewall (HTTPS to the account URL), and the account URL itself")
        elif isinstance(exc, ClientAuthenticationError) and exc.response is None:  # not the storage's answer
            hint = _no_token(exc)
        elif isinstance(exc, HttpResponseError) and exc.status_code in (401, 403):
            hint = (f"access was refused ({code or exc.status_code}): the store's identity may not write there; "
                    "give it the store agents' role on the container, for raw/store=<id>/ (infra/scripts/"
                    "store_access.py onboard). With a connection string: check its account key")
        elif isinstance(exc, ResourceNotFoundError) and code == "ContainerNotFound":
            hint = "the container does not exist: check the container name (the pipeline's is 'lake')"
        elif isinstance(exc, HttpResponseError):
            hint = f"the service answered {exc.status_code} ({code or exc.reason}): {first_line}"
        else:
            hint = first_line or type(exc).__name__
        raise UploadFailed(f"could not upload {where}: {hint}") from exc


def _no_token(exc: Exception) -> str:
    detail = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f"no token for the store's identity ({detail}): check the identity settings (tenant_id, client_id, "
            "certificate_path, or the managed identity) as docs/agent.md, 'Authenticate', says")
