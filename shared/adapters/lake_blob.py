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

This module holds :class:`BlobLake` and its object operations. What it stands on is next to it:
:mod:`~shared.adapters.lake_blob_client` (building the SDK client, blob metadata and etags, delta-rs's
access, SDK errors turned into LakeErrors), :mod:`~shared.adapters.lake_blob_transfers` (block uploads,
parallel transfers, progress) and :mod:`~shared.adapters.lake_blob_lock` (the leases behind
:meth:`BlobLake.lock`).

These modules import the Azure SDK at module level; :mod:`shared.bootstrap` imports this one lazily, only
when a Blob lake is configured, so the local default never pays for it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, ContainerClient, StorageStreamDownloader

from shared.adapters.lake_blob_client import (
    SDK_ERRORS,
    check_metadata,
    container_from_connection_string,
    container_from_service_uri,
    container_missing,
    delta_location,
    describe,
    ensure_container,
    fail,
    http_etag,
    is_folder,
    retry_policy,
)
from shared.adapters.lake_blob_lock import LOCK_LEASE_S, BlobLock, hold_lock
from shared.adapters.lake_blob_transfers import MAX_BLOCK_SIZE, MAX_BLOCKS, delta_progress, run_each, stage_blocks
from shared.ports.lake import DEFAULT_LOCK_WAIT_S, LakeError, LakeObject, Progress, check_lake_path

DEFAULT_BLOCK_SIZE = 8 << 20
"""Bytes per staged block. Above 4 MiB, Azure uses high-throughput block blobs; 8 MiB × the default
concurrency of 4 keeps at most ~40 MiB of a file in memory while uploading."""

DEFAULT_MAX_CONCURRENCY = 4
"""Blocks in flight at once (upload) and parallel range reads (download)."""

DEFAULT_PARALLEL_FILES = 8
"""Objects moved at once by :meth:`BlobLake.local_copy`, :meth:`BlobLake.put_files` and
:meth:`BlobLake.delete_many`. Their files are small (a store's daily Parquet): one request each, so one at
a time the round trip, not the bandwidth, sets the pace (``bench/lake_transfers.py`` measures it)."""


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
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
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
            ensure_container(container)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_connection_string(cls, conn: str, container: str) -> BlobLake:
        """A lake on ``container`` from a storage connection string.

        For development: ``UseDevelopmentStorage=true`` (Azurite on 127.0.0.1:10000) or a full string
        with ``BlobEndpoint=``. Production uses :meth:`from_service_uri` and a managed identity instead.
        """
        return cls(container_from_connection_string(conn, container))

    @classmethod
    def from_service_uri(cls, uri: str, container: str, credential: TokenCredential) -> BlobLake:
        """A lake on ``container`` at the account's Blob endpoint (``https://<acct>.blob.core.windows.net``),
        authenticated with a token credential (DefaultAzureCredential / managed identity); never keys."""
        return cls(container_from_service_uri(uri, container, credential))

    @property
    def container(self) -> ContainerClient:
        """The underlying client, for callers that need a Blob feature the Lake port does not offer."""
        return self._container

    def describe(self) -> str:
        """The container's URL (without any SAS token), e.g. ``http://127.0.0.1:10000/devstoreaccount1/lake``."""
        return describe(self._container)

    def delta_location(self, path: str) -> tuple[str, dict[str, str]]:
        """``az://<container>/<path>`` and delta-rs's options for this account (see
        :func:`~shared.adapters.lake_blob_client.delta_location`: Azurite, an identity's token, or a key)."""
        check_lake_path(path)
        return delta_location(self._container, path)

    def _fail(self, exc: Exception, path: str, action: str) -> NoReturn:
        """Turn an SDK exception into a LakeError that names the object, the problem and what to check."""
        fail(exc, action, f"{path!r} in {self.describe()}" if path else self.describe())

    # -- writes ------------------------------------------------------------------------------------
    def put_bytes(
        self, path: str, data: bytes, *, metadata: dict[str, str] | None = None, overwrite: bool = True
    ) -> bool:
        """Write a small object in one Put Blob request (atomic, metadata included)."""
        check_lake_path(path)
        check_metadata(path, metadata)
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
        except SDK_ERRORS as exc:
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
        check_metadata(path, metadata)
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

    def _put_blocks(self, path: str, source: Path, size: int, metadata: dict[str, str] | None, overwrite: bool,
                    progress: Progress | None) -> bool:
        """Stage the file as blocks, then commit them with the metadata in one Put Block List (see put_file)."""
        blob = self._container.get_blob_client(path)
        try:
            block_ids = stage_blocks(blob, source, size, block_size=self.block_size,
                                     max_concurrency=self.max_concurrency, progress=progress)
            if len(block_ids) > MAX_BLOCKS:
                raise LakeError(
                    f"cannot upload {source} to {path!r}: it grew to more than {MAX_BLOCKS} blocks while "
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
        except SDK_ERRORS as exc:
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
        hook = delta_progress(progress) if progress else None
        downloader = self._download(path, max_concurrency=max_concurrency, progress_hook=hook)
        try:
            with open(target, "wb") as out:
                downloader.readinto(out)
        except BaseException as exc:
            target.unlink(missing_ok=True)  # never leave a partial file that looks complete
            if isinstance(exc, SDK_ERRORS):
                self._fail(exc, path, "read")
            raise

    def get_bytes(self, path: str) -> bytes:
        """Read a small object whole; FileNotFoundError if missing."""
        downloader = self._download(path)
        try:
            return downloader.readall()
        except SDK_ERRORS as exc:
            self._fail(exc, path, "read")

    def _download(self, path: str, **kwargs: object) -> StorageStreamDownloader:
        """Start a download; a missing object or a folder is FileNotFoundError, other failures LakeError."""
        check_lake_path(path)
        blob = self._container.get_blob_client(path)
        try:
            downloader = blob.download_blob(**kwargs)
        except ResourceNotFoundError as exc:
            if container_missing(exc):
                self._fail(exc, path, "read")
            raise FileNotFoundError(f"no object {path!r} in the lake at {self.describe()}") from None
        except SDK_ERRORS as exc:
            self._fail(exc, path, "read")
        if is_folder(downloader.properties):
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

        run_each(put, files, parallel=self.parallel_files, name="lake-put")

    def delete_many(self, paths: list[str]) -> list[str]:
        for p in paths:
            check_lake_path(p)
        gone = run_each(self.delete, [(p,) for p in paths], parallel=self.parallel_files, name="lake-delete")
        return [p for p, g in zip(paths, gone, strict=True) if g]

    def delete(self, path: str) -> bool:
        """Delete a blob; False when there was none (an ADLS Gen2 folder is not an object: False too)."""
        check_lake_path(path)
        if self.head(path) is None:
            return False
        try:
            self._container.get_blob_client(path).delete_blob()
        except ResourceNotFoundError as exc:
            if container_missing(exc):
                self._fail(exc, path, "delete")
            return False  # deleted meanwhile by another holder
        except SDK_ERRORS as exc:
            self._fail(exc, path, "delete")
        return True

    def head(self, path: str) -> LakeObject | None:
        """Size, metadata and etag, or None when there is no such object (ADLS Gen2 folders included)."""
        check_lake_path(path)
        try:
            props = self._container.get_blob_client(path).get_blob_properties()
        except ResourceNotFoundError as exc:
            if container_missing(exc):
                self._fail(exc, path, "read the properties of")
            return None
        except SDK_ERRORS as exc:
            self._fail(exc, path, "read the properties of")
        if is_folder(props):
            return None
        return LakeObject(path, props.size, dict(props.metadata or {}), etag=http_etag(props),
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
                if is_folder(props):
                    continue
                yield LakeObject(props.name, props.size, dict(props.metadata or {}), etag=http_etag(props),
                                 last_modified=props.last_modified)
        except SDK_ERRORS as exc:
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
                run_each(lambda p: self._get_to_file(p, root / p, progress=None, max_concurrency=1),
                         [(p,) for p in unique], parallel=self.parallel_files, name="lake-get")
            yield [root / p for p in paths]

    # -- locks -------------------------------------------------------------------------------------
    def lock(
        self, name: str, *, timeout_s: float = DEFAULT_LOCK_WAIT_S, lease_s: int = LOCK_LEASE_S
    ) -> contextlib.AbstractContextManager[BlobLock]:
        """Hold the lock ``name``: a lease of ``lease_s`` seconds on the blob ``locks/<name>``, renewed in the
        background until the block ends, then released. Waits with backoff while another lease is active."""
        return hold_lock(self._container, name, timeout_s=timeout_s, lease_s=lease_s)

    def delete_container(self) -> None:
        """Delete the whole container (tests' clean-up only)."""
        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_container()


__all__ = ["DEFAULT_BLOCK_SIZE", "LOCK_LEASE_S", "BlobLake", "BlobLock", "retry_policy"]
