"""The lake port: the few operations the pipeline needs from ADLS Gen2 / Blob storage or a folder.

Paths are POSIX-style and relative to the container root (``raw/store=S001/...``); adapters never accept
``..`` or absolute paths. Every write is atomic: a reader sees the old object, or the whole new one.

The port also offers named locks (:meth:`Lake.lock`), exclusive across threads, processes and machines that
share the lake: the folder lake uses an OS file lock under its hidden ``.locks/`` folder, the Blob lake a
lease on ``locks/<name>``. A holder that dies frees its lock by itself (the OS drops the file lock; a lease
that is no longer renewed lapses).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

Progress = Callable[[int], None]
"""Called with the number of bytes just transferred."""


class LakeError(RuntimeError):
    """A lake operation failed; the message names the path and what to check."""


class LockTimeout(LakeError):
    """Another holder kept a lake lock for longer than the caller was willing to wait."""


DEFAULT_LOCK_WAIT_S = 600.0
"""How long :meth:`Lake.lock` waits for another holder by default: far longer than one store's locked
section (seconds to a few minutes), well inside the function timeout (30 min)."""


class HeldLock(Protocol):
    """A lock while it is held (what :meth:`Lake.lock` yields)."""

    @property
    def name(self) -> str:
        """The lock's name, as given to :meth:`Lake.lock` (read-only: a held lock is not renamed)."""
        ...

    def check(self) -> None:
        """Raise :class:`LakeError` if the lock can no longer be trusted to be held (a Blob lease that could
        not be renewed in time). Call it before a step that relies on the exclusion, e.g. a commit."""
        ...


@dataclass(frozen=True)
class LakeObject:
    path: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: datetime | None = None  # aware UTC; when the object was last written


class Lake(Protocol):
    """Storage for dumps, curated Parquet, manifests and everything else under the lake container."""

    def describe(self) -> str:
        """A human-readable location, e.g. ``/home/me/.inventory/lake`` or ``https://acct.blob…/lake``."""
        ...

    def put_file(
        self,
        path: str,
        source: Path,
        *,
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
        progress: Progress | None = None,
    ) -> bool:
        """Upload a local file. With ``overwrite=False`` an existing object is left alone and False returned."""
        ...

    def put_bytes(
        self, path: str, data: bytes, *, metadata: dict[str, str] | None = None, overwrite: bool = True
    ) -> bool:
        """Write a small object; same semantics as :meth:`put_file`."""
        ...

    def put_files(self, files: list[tuple[str, Path]], *, consume: bool = False) -> None:
        """Write many local files, each to its lake path (a ``put_file`` each, without metadata).

        A remote lake keeps several uploads in flight: the outputs of an ingest or of the aggregates are
        hundreds of small files, one request each, so round trips set the pace. On the first failure the
        uploads already started end, the rest are not started, and that error is raised. With ``consume``
        the local files are the lake's to take (the folder lake renames them in): do not use them after.
        """
        ...

    def delete(self, path: str) -> bool:
        """Remove an object (and its metadata); False when there was none. Used by the ingest to remove the
        files of an attempt that never committed (see ``ingest_dump``)."""
        ...

    def delete_many(self, paths: list[str]) -> list[str]:
        """``delete`` each of ``paths`` (several at once on a remote lake); the ones that were there, in the
        order given. The first failure is raised once the deletes already started have ended."""
        ...

    def get_to_file(self, path: str, target: Path, *, progress: Progress | None = None) -> None:
        """Stream an object to a local file (never whole in memory). Raises FileNotFoundError if missing."""
        ...

    def get_bytes(self, path: str) -> bytes:
        """Read a small object whole. Raises FileNotFoundError if missing."""
        ...

    def head(self, path: str) -> LakeObject | None:
        """Size, metadata and etag of an object, or None when it does not exist."""
        ...

    def list(self, prefix: str) -> Iterator[LakeObject]:
        """Objects whose path starts with ``prefix``, in path order (metadata not necessarily filled)."""
        ...

    def local_copy(self, paths: list[str], *, into: Path | None = None) -> AbstractContextManager[list[Path]]:
        """Local files with the contents of ``paths`` for engines that read files (DuckDB, pyarrow).

        The folder lake yields its own files; remote lakes download to a temporary folder removed on exit,
        made inside ``into`` when given (the caller's scratch folder, which a sweep cleans after a crash),
        else in the system's temporary folder.
        """
        ...

    def delta_location(self, path: str) -> tuple[str, dict[str, str]]:
        """Where the Delta table at lake path ``path`` (``curated/sales``) lives for delta-rs: its URI and
        storage options (credentials included, fresh on each call)."""
        ...

    def lock(self, name: str, *, timeout_s: float = DEFAULT_LOCK_WAIT_S) -> AbstractContextManager[HeldLock]:
        """Hold the lock ``name`` (e.g. ``store=S001``; see :func:`check_lock_name`) for the ``with`` block.

        Exclusive across threads, processes and machines using the same lake. Waits, with backoff, while
        another holder has it; after ``timeout_s`` raises :class:`LockTimeout` naming the lock. Released on
        exit, exception or not. A holder that dies without releasing frees the lock by itself.
        """
        ...


def check_lake_path(path: str) -> str:
    """Reject paths that could escape the container or are ambiguous."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise LakeError(f"invalid lake path {path!r}: use a relative POSIX path such as raw/store=S1/...")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise LakeError(f"invalid lake path {path!r}: empty, '.' and '..' segments are not allowed")
    return path


_LOCK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_=.-]{0,99}$")


def check_lock_name(name: str) -> str:
    """A lock name is one path segment: letters, digits, ``_ = . -`` (up to 100; not starting with a dot)."""
    if not isinstance(name, str) or not _LOCK_NAME.fullmatch(name):
        raise LakeError(f"invalid lock name {name!r}: use letters, digits, '_', '=', '.', '-' (e.g. store=S001)")
    return name
