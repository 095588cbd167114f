"""The folder lake: the local default. A directory laid out exactly like the Azure container.

Blob metadata is kept beside the tree in ``.meta/<path>.json`` (dot-folders are ignored by Hive-style
readers such as DuckDB and Synapse). Writes go to a hidden temporary file in the target folder and are
renamed into place, so a crash never leaves a half-written object visible. Locks (:meth:`FolderLake.lock`)
are OS file locks (``flock``) on ``.locks/<name>.lock``: the kernel drops them when the holder exits,
however it exits. They exclude other threads and processes on this machine (and other machines only on
a file system that carries ``flock`` across them, which a local folder lake never needs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.adapters.lake_locks import wait_for_lock
from shared.ports.lake import (
    DEFAULT_LOCK_WAIT_S,
    LakeError,
    LakeObject,
    Progress,
    check_lake_path,
    check_lock_name,
)

_CHUNK = 1 << 20


class FolderLake:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    # -- paths -------------------------------------------------------------------------------------
    def delta_location(self, path: str) -> tuple[str, dict[str, str]]:
        return str(self._file(path)), {}

    def _file(self, path: str) -> Path:
        return self.root / check_lake_path(path)

    def _meta_file(self, path: str) -> Path:
        return self.root / ".meta" / (check_lake_path(path) + ".json")

    # -- writes ------------------------------------------------------------------------------------
    def _commit(self, tmp: Path, target: Path, overwrite: bool) -> bool:
        if overwrite:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)  # atomic create-if-missing
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _write(self, path: str, fill, metadata: dict[str, str] | None, overwrite: bool) -> bool:  # noqa: ANN001
        if overwrite:
            return self._write_unlocked(path, fill, metadata, overwrite)
        # Create-if-missing: the check, the metadata and the link happen under one lock, so a writer that
        # loses a race never replaces the winner's metadata.
        lock = self.root / ".meta" / ".create.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return self._write_unlocked(path, fill, metadata, overwrite)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_unlocked(self, path: str, fill, metadata: dict[str, str] | None, overwrite: bool) -> bool:  # noqa: ANN001
        target = self._file(path)
        if not overwrite and target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            # Metadata first: an object is never visible without its metadata.
            if metadata:
                self._write_meta(path, metadata)
            elif overwrite:
                self._meta_file(path).unlink(missing_ok=True)
            created = self._commit(tmp, target, overwrite)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return created

    def _write_meta(self, path: str, metadata: dict[str, str]) -> None:
        meta = self._meta_file(path)
        meta.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=meta.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(metadata, out, sort_keys=True)
        os.replace(name, meta)

    def put_file(
        self,
        path: str,
        source: Path,
        *,
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
        progress: Progress | None = None,
    ) -> bool:
        def fill(out) -> None:  # noqa: ANN001
            with open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))

        return self._write(path, fill, metadata, overwrite)

    def put_bytes(
        self, path: str, data: bytes, *, metadata: dict[str, str] | None = None, overwrite: bool = True
    ) -> bool:
        return self._write(path, lambda out: out.write(data), metadata, overwrite)

    def put_files(self, files: list[tuple[str, Path]], *, consume: bool = False) -> None:
        """Write each local file to its lake path, one after the other (nothing to wait for here: more
        threads would only compete for the GIL). With ``consume`` each is renamed in, not copied."""
        for path, source in files:
            if consume:
                self._move_in(path, source)
            else:
                self.put_file(path, source)

    def _move_in(self, path: str, source: Path) -> None:
        """Rename a local file into the lake (same filesystem: no copy)."""
        target = self._file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError:  # another filesystem: copy, then the usual atomic rename
            self.put_file(path, source)
            Path(source).unlink(missing_ok=True)

    def delete(self, path: str) -> bool:
        target = self._file(path)
        if not target.is_file():
            return False
        try:
            target.unlink()
        except FileNotFoundError:  # removed meanwhile by another process
            return False
        self._meta_file(path).unlink(missing_ok=True)
        return True

    def delete_many(self, paths: list[str]) -> list[str]:
        return [p for p in paths if self.delete(p)]

    # -- reads -------------------------------------------------------------------------------------
    def get_to_file(self, path: str, target: Path, *, progress: Progress | None = None) -> None:
        src = self._file(path)
        if not src.is_file():
            raise FileNotFoundError(f"no object {path!r} in the lake at {self.root}")
        with open(src, "rb") as inp, open(target, "wb") as out:
            while chunk := inp.read(_CHUNK):
                out.write(chunk)
                if progress:
                    progress(len(chunk))

    def get_bytes(self, path: str) -> bytes:
        src = self._file(path)
        if not src.is_file():
            raise FileNotFoundError(f"no object {path!r} in the lake at {self.root}")
        return src.read_bytes()

    def head(self, path: str) -> LakeObject | None:
        src = self._file(path)
        try:
            st = src.stat()
        except FileNotFoundError:
            return None
        if not src.is_file():
            return None
        return LakeObject(path, st.st_size, self._read_meta(path), etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                          last_modified=_mtime(st))

    def _read_meta(self, path: str) -> dict[str, str]:
        try:
            return json.loads(self._meta_file(path).read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise LakeError(f"corrupt metadata for {path!r} in {self._meta_file(path)}: {exc}") from exc

    def list(self, prefix: str) -> Iterator[LakeObject]:
        # Walk only the deepest folder the prefix names, not the whole lake.
        folder, _, _ = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        if folder:
            check_lake_path(folder)
        if not base.is_dir():
            return
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if rel.startswith(prefix):
                    found.append(rel)
        for rel in sorted(found):
            st = (self.root / rel).stat()
            yield LakeObject(rel, st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}", last_modified=_mtime(st))

    @contextlib.contextmanager
    def local_copy(self, paths: list[str], *, into: Path | None = None) -> Iterator[list[Path]]:
        """The lake's own files (no copy); FileNotFoundError, as on the Blob lake, when one is missing."""
        files = [self._file(p) for p in paths]
        missing = [p for p, f in zip(paths, files, strict=True) if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"no object {missing[0]!r} in the lake at {self.root}"
                                    + (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""))
        yield files

    # -- locks -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, *, timeout_s: float = DEFAULT_LOCK_WAIT_S) -> Iterator[FolderLock]:
        """Hold the lock ``name``: ``flock`` on ``.locks/<name>.lock`` (hidden: not a lake object).

        Each call opens the file anew, so two threads of one process exclude each other too (flock locks
        belong to the open file, not the process). The file stays; only the lock on it comes and goes.
        """
        path = self.root / ".locks" / f"{check_lock_name(name)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            def attempt() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            def holder() -> str:
                try:
                    return path.read_text().strip() or "holder unknown"
                except OSError:
                    return "holder unknown"

            wait_for_lock(attempt, name=name, where=str(self.root), timeout_s=timeout_s, holder=holder,
                          frees="a worker that died frees it at once")
            try:
                # Who holds it, for the message of a worker that gives up waiting.
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"held by pid {os.getpid()} on {socket.gethostname()} since "
                              f"{datetime.now(UTC).isoformat(timespec='seconds')}\n".encode(), 0)
                yield FolderLock(name)
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class FolderLock:
    """A held folder-lake lock. The OS keeps it for as long as the process lives: it cannot be lost."""

    name: str

    def check(self) -> None:
        return None


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)
