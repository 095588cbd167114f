"""The lake port: the few operations the pipeline needs from ADLS Gen2 / Blob storage or a folder.

Paths are POSIX-style and relative to the container root (``raw/store=S001/...``); adapters never accept
``..`` or absolute paths. Every write is atomic: a reader sees the old object, or the whole new one.
"""

from __future__ import annotations

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

    def local_copy(self, paths: list[str]) -> AbstractContextManager[list[Path]]:
        """Local files with the contents of ``paths`` for engines that read files (DuckDB, pyarrow).

        The folder lake yields its own files; remote lakes download to a temporary folder removed on exit.
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
