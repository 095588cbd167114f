"""The agent's working folders (``agent-upload-*``) and the file locks that keep a sweep off a live one.

A run copies the database into a new folder under the scratch folder, marks it in use for as long as it
runs, and removes it at the end. A run that was killed (power cut, Task Scheduler's time limit, SIGKILL)
leaves its folder behind, about the database's size; a later run sweeps folders that nobody holds and
that nothing changed in for :data:`STALE_SCRATCH_S`.

"In use" is an OS file lock, which the OS drops when its process dies, however it dies:

- POSIX (Linux, macOS): a shared ``flock`` on the folder itself. That is also what the pipeline's ingest
  takes and checks in ``$INVENTORY_HOME/tmp`` (``shared/services/ingest_dump.py``), so the dev command and
  the demo, which put the agent's folders there, and the ingest's sweep, which removes stale
  ``agent-upload-*`` folders there too, respect each other's locks.
- Windows: a folder cannot be opened as a file, so the lock is on ``.in-use`` inside the folder
  (``msvcrt.locking``, which has no shared mode: one holder, the run that made the folder). Windows also
  refuses to delete a file that a process has open, which protects a live run a second time.

The Windows code path is tested here (Linux) with ``msvcrt`` replaced by a stand-in built on ``flock``
(tests/unit/test_agent_scratch.py); it has not run on Windows itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STALE_SCRATCH_S = 6 * 3600
"""A working folder untouched for this long, and held by nobody, is a killed run's (a run takes minutes)."""

PREFIX = "agent-upload-"
_IN_USE = ".in-use"  # the lock file inside a working folder, on Windows


def _windows() -> bool:
    return sys.platform == "win32"


# -- file locks ---------------------------------------------------------------------------------------


def lock_fd(fd: int, *, exclusive: bool = True, wait: bool = True) -> None:
    """Lock the open file ``fd``; raise BlockingIOError when ``wait`` is false and another holder has it.

    POSIX: ``flock`` (shared or exclusive). Windows: ``msvcrt.locking`` on the first byte, always exclusive;
    its own blocking mode gives up after 10 s, so waiting is a loop of non-blocking attempts.
    """
    if not _windows():
        import fcntl

        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
        return
    import msvcrt

    while True:
        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks from the current position
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return
        except OSError as exc:
            if not wait:
                raise BlockingIOError(f"locked by another process: {exc}") from None
        time.sleep(0.05)


def unlock_fd(fd: int) -> None:
    if not _windows():
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    import msvcrt

    os.lseek(fd, 0, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block, waiting for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        lock_fd(fd)
        try:
            yield
        finally:
            unlock_fd(fd)
    finally:
        os.close(fd)


# -- working folders ----------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_in_use(folder: Path) -> Iterator[None]:
    """Mark ``folder`` as in use for the block (see the module's docstring for how, per platform)."""
    if _windows():
        fd = os.open(Path(folder) / _IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
    else:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lock_fd(fd, exclusive=_windows())  # POSIX: shared, as the ingest's scratch_in_use
        yield
    finally:
        os.close(fd)  # releases the lock (flock and msvcrt alike)


@contextlib.contextmanager
def scratch_folder(scratch: Path) -> Iterator[Path]:
    """A new working folder ``agent-upload-*`` under ``scratch``, in use while the block runs, removed after."""
    Path(scratch).mkdir(parents=True, exist_ok=True)
    # ignore_cleanup_errors: on Windows a file still open (an antivirus scanner) must not hide the real error;
    # the folder is then swept by a later run.
    with (tempfile.TemporaryDirectory(prefix=PREFIX, dir=scratch, ignore_cleanup_errors=True) as name,
          scratch_in_use(Path(name))):
        yield Path(name)


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of the folder and of every file in it (a folder's own mtime does not
    change while a file in it is being written)."""
    newest = folder.lstat().st_mtime
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _is_plain_folder(folder: Path) -> bool:
    """A real folder: not a symlink, nor a Windows junction (a reparse point), which a sweep must not follow."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not getattr(st, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT


def _remove_if_stale(folder: Path, cutoff: float) -> bool:
    if not _is_plain_folder(folder):
        return False
    try:
        if _windows():
            # No O_CREAT: adding the file would make the folder look recent. Missing means never locked (a
            # run killed between making the folder and taking the lock): the age alone decides.
            try:
                fd: int | None = os.open(folder / _IN_USE, os.O_RDWR)
            except FileNotFoundError:
                fd = None
        else:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile, or not ours to open
        return False
    try:
        if fd is not None:
            try:
                lock_fd(fd, wait=False)
            except BlockingIOError:
                return False  # held by a live run
        if _newest_mtime(folder) > cutoff:
            return False  # recent: a run that has not taken its lock yet, or has just finished
    except FileNotFoundError:
        return False
    finally:
        if fd is not None:
            os.close(fd)  # before removing: Windows does not delete a file that is open
    shutil.rmtree(folder, ignore_errors=True)
    return True


def sweep_stale_scratch(scratch: Path, max_age_s: float = STALE_SCRATCH_S) -> int:
    """Remove ``agent-upload-*`` folders under ``scratch`` left by killed runs: nobody holds them and nothing
    in them changed for ``max_age_s``. Returns how many were removed."""
    cutoff = time.time() - max_age_s
    return sum(_remove_if_stale(folder, cutoff) for folder in sorted(Path(scratch).glob(f"{PREFIX}*")))
