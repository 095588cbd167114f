"""The agent's working folders: a live run's folder is never swept, a killed run's is once stale; on POSIX
(tested here for real) and on Windows (the msvcrt code path, run here with msvcrt replaced by a stand-in on
flock, which like msvcrt refuses a second lock through another open file: not a test on Windows itself)."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
from inventory_agent import scratch
from inventory_agent.destinations import FolderDestination
from inventory_agent.scratch import (
    PREFIX,
    lock_fd,
    locked_file,
    scratch_folder,
    sweep_stale_scratch,
    unlock_fd,
)

OLD = time.time() - 7 * 3600


def age(folder: Path, when: float = OLD) -> None:
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (when, when), follow_symlinks=False)


def left_by_a_killed_run(scratch_dir: Path, name: str = "killed") -> Path:
    folder = scratch_dir / f"{PREFIX}{name}"
    folder.mkdir(parents=True)
    (folder / "snapshot.sqlite").write_bytes(b"x" * 1000)
    age(folder)
    return folder


class FakeMsvcrt:
    """``msvcrt.locking`` on the first byte, played by flock: exclusive, per open file."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4
    calls: ClassVar[list[int]] = []

    @classmethod
    def locking(cls, fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1 and os.lseek(fd, 0, os.SEEK_CUR) == 0, "the lock is on the first byte"
        cls.calls.append(mode)
        if mode == cls.LK_UNLCK:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        assert mode == cls.LK_NBLCK, "the agent loops on non-blocking attempts (LK_LOCK gives up after 10 s)"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(errno.EACCES, "Permission denied") from None  # what msvcrt raises


@pytest.fixture(params=["posix", "windows"])
def platform(request, monkeypatch):
    if request.param == "windows":
        FakeMsvcrt.calls = []
        monkeypatch.setattr(scratch, "_windows", lambda: True)
        monkeypatch.setitem(sys.modules, "msvcrt", FakeMsvcrt)
    return request.param


def test_a_killed_runs_folder_is_swept_once_stale(platform, tmp_path):
    left = left_by_a_killed_run(tmp_path)
    recent = tmp_path / f"{PREFIX}recent"
    recent.mkdir()
    (recent / "snapshot.sqlite").write_bytes(b"x")
    other = tmp_path / "ingest-old"  # not the agent's
    other.mkdir()
    age(other)

    assert sweep_stale_scratch(tmp_path) == 1
    assert not left.exists() and recent.exists() and other.exists()


def test_a_live_runs_folder_is_never_swept_however_old(platform, tmp_path):
    with scratch_folder(tmp_path) as live:
        (live / "snapshot.sqlite").write_bytes(b"x" * 1000)
        age(live)
        assert sweep_stale_scratch(tmp_path) == 0
        assert (live / "snapshot.sqlite").exists()
        if platform == "windows":
            assert (live / ".in-use").exists() and FakeMsvcrt.LK_NBLCK in FakeMsvcrt.calls
    assert not live.exists(), "removed at the end of the run"
    if platform == "windows":
        assert sweep_stale_scratch(tmp_path) == 0


def test_a_windows_folder_killed_before_its_lock_is_swept_and_not_touched_first(monkeypatch, tmp_path):
    monkeypatch.setattr(scratch, "_windows", lambda: True)
    monkeypatch.setitem(sys.modules, "msvcrt", FakeMsvcrt)
    left = left_by_a_killed_run(tmp_path)  # no .in-use: killed between making the folder and locking it
    kept = left_by_a_killed_run(tmp_path, "kept")
    age(kept, time.time())
    assert sweep_stale_scratch(tmp_path) == 1
    assert not left.exists()
    assert not (kept / ".in-use").exists(), "the sweep must not create the lock file (it would look recent)"


def test_a_folder_held_by_another_process_is_kept(platform, tmp_path):
    folder = left_by_a_killed_run(tmp_path)
    holder = os.open(folder / ".in-use", os.O_RDWR | os.O_CREAT) if platform == "windows" else os.open(
        folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lock_fd(holder, exclusive=platform == "windows")
        age(folder)
        assert sweep_stale_scratch(tmp_path) == 0
    finally:
        os.close(holder)
    assert sweep_stale_scratch(tmp_path) == 1


def test_a_symlink_is_not_followed(tmp_path):
    target = left_by_a_killed_run(tmp_path / "elsewhere", "target")
    (tmp_path / "scratch").mkdir()
    os.symlink(target, tmp_path / "scratch" / f"{PREFIX}link")
    assert sweep_stale_scratch(tmp_path / "scratch") == 0
    assert target.exists()


def test_locks_exclude_other_open_files_until_released(platform, tmp_path):
    a = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT)
    b = os.open(tmp_path / "lock", os.O_RDWR)
    try:
        lock_fd(a)
        with pytest.raises(BlockingIOError):
            lock_fd(b, wait=False)
        unlock_fd(a)
        lock_fd(b, wait=False)
    finally:
        os.close(a)
        os.close(b)
    with locked_file(tmp_path / "lock"), locked_file(tmp_path / "other"):
        pass


def test_the_pipelines_sweep_respects_a_live_agent_run_in_a_shared_scratch(tmp_path):
    # The dev command and the demo put the agent's folders in $INVENTORY_HOME/tmp, which the ingest sweeps too.
    from shared.services.scratch import sweep_stale_scratch as pipeline_sweep

    with scratch_folder(tmp_path) as live:
        (live / "snapshot.sqlite").write_bytes(b"x")
        age(live)
        pipeline_sweep(tmp_path)
        assert live.exists()
    left = left_by_a_killed_run(tmp_path)
    pipeline_sweep(tmp_path)
    assert not left.exists()


def test_the_folder_destination_writes_with_either_lock(platform, tmp_path):
    source = tmp_path / "dump.gz"
    source.write_bytes(b"dump")
    destination = FolderDestination(tmp_path / "lake")
    assert destination.put_file("raw/store=S1/date=2026-11-27/a.gz", source, metadata={"store_id": "S1"},
                                overwrite=False)
    assert not destination.put_file("raw/store=S1/date=2026-11-27/a.gz", source, overwrite=False)
    assert (tmp_path / "lake" / "raw/store=S1/date=2026-11-27/a.gz").read_bytes() == b"dump"
