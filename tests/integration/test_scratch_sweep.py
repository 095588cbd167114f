"""The scratch sweep: what killed workers leave behind (the ingest's ``ingest-*`` working folders, the blob
trigger's ``blob-*`` downloads) goes; what a live worker uses stays, however old it looks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from shared.adapters.lake_folder import FolderLake
from shared.adapters.telemetry import MemoryTelemetry
from shared.services.ingest import ingest_dump
from shared.services.scratch import STALE_SCRATCH_S, scratch_folder, sweep_stale_scratch
from tests.support.dumps import make_dump


def age(folder: Path, seconds: float = STALE_SCRATCH_S + 3600) -> None:
    """Make a folder and everything in it look untouched for ``seconds``."""
    then = time.time() - seconds
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (then, then), follow_symlinks=False)


def leftover(scratch: Path, name: str) -> Path:
    """A folder as a killed worker leaves it: the blob trigger's download, or an ingest's working files."""
    folder = scratch / name
    (folder / "stage").mkdir(parents=True)
    (folder / "dump").write_bytes(b"x" * 4096)
    return folder


def test_downloads_and_working_folders_of_killed_workers_are_swept(tmp_path):
    old_blob, old_ingest = leftover(tmp_path, "blob-k1ll3d"), leftover(tmp_path, "ingest-k1ll3d")
    fresh_blob, fresh_ingest = leftover(tmp_path, "blob-running"), leftover(tmp_path, "ingest-running")
    other = leftover(tmp_path, "lake-copy-not-ours")
    for folder in (old_blob, old_ingest, other):
        age(folder)
    assert sweep_stale_scratch(tmp_path) == 2
    assert not old_blob.exists() and not old_ingest.exists()
    assert fresh_blob.exists() and fresh_ingest.exists() and other.exists()


def test_every_kind_of_scratch_folder_a_killed_worker_leaves_is_swept(tmp_path):
    """Each prefix the app makes folders with (the aggregates' and the migration's too) is swept."""
    from shared.services.scratch import SCRATCH_KINDS

    for kind in SCRATCH_KINDS:
        age(leftover(tmp_path, f"{kind}k1ll3d"))
    assert sweep_stale_scratch(tmp_path) == len(SCRATCH_KINDS) >= 4
    assert list(tmp_path.iterdir()) == []


def test_a_scratch_folder_of_an_unlisted_kind_cannot_be_made(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="SCRATCH_KINDS"), scratch_folder("report-", tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_aggregates_working_folder_is_a_listed_kind_removed_after_the_run(tmp_path):
    """compute_aggregates makes its folder with scratch_folder: marked in use while it runs, gone after."""
    from shared.adapters.stock_sqlite import SqliteStockStore
    from shared.services.aggregates import compute_aggregates

    lake, scratch = FolderLake(tmp_path / "lake"), tmp_path / "scratch"
    compute_aggregates(lake=lake, stock=SqliteStockStore(tmp_path / "stock.sqlite"), telemetry=MemoryTelemetry(),
                       scratch=scratch)
    assert list(scratch.iterdir()) == []


def test_a_folder_with_a_file_still_being_written_is_kept(tmp_path):
    download = leftover(tmp_path, "blob-downloading")
    age(download)
    (download / "dump").write_bytes(b"x" * 8192)  # the folder's own mtime stays old; the file's does not
    assert os.stat(download).st_mtime < time.time() - STALE_SCRATCH_S
    assert sweep_stale_scratch(tmp_path) == 0 and download.exists()


def test_a_symlink_is_never_followed(tmp_path):
    scratch, elsewhere = tmp_path / "scratch", leftover(tmp_path, "precious")
    scratch.mkdir()
    (scratch / "blob-link").symlink_to(elsewhere, target_is_directory=True)
    age(elsewhere)
    assert sweep_stale_scratch(scratch) == 0
    assert (elsewhere / "dump").exists()


def test_a_folder_in_use_is_kept_however_old_it_looks(tmp_path):
    with scratch_folder("ingest-", tmp_path) as folder:
        (folder / "work").mkdir()
        age(folder)
        assert sweep_stale_scratch(tmp_path, max_age_s=0) == 0 and folder.exists()
    assert not folder.exists()  # removed by its owner on exit


def test_a_folder_whose_worker_was_killed_is_swept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from shared.services.scratch import scratch_folder
        with scratch_folder("ingest-", {str(tmp_path)!r}) as folder:
            print(folder, flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(child.stdout.readline().strip())
        age(folder)
        assert sweep_stale_scratch(tmp_path) == 0  # its worker lives
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert folder.exists()  # a killed worker cleans nothing up...
        assert sweep_stale_scratch(tmp_path) == 1 and not folder.exists()  # ...the next sweep does
    finally:
        child.kill()
        child.wait()


def test_a_running_ingest_keeps_its_folders_even_from_an_eager_sweep(tmp_path):
    """An ingest that runs for longer than the staleness age (a huge dump; here: an age of 0) keeps its
    working folder, and the blob trigger's download folder it reads the dump from."""
    scratch = tmp_path / "scratch"
    download = scratch / "blob-abc123"
    download.mkdir(parents=True)
    source = make_dump(download / "dump")
    age(download)
    swept = []

    def progress(message):
        if not swept and message.startswith("sales:"):  # mid-ingest
            swept.append(sweep_stale_scratch(scratch, max_age_s=0))

    result = ingest_dump(source, "S1", lake=FolderLake(tmp_path / "lake"), telemetry=MemoryTelemetry(),
                         scratch=scratch, progress=progress)
    assert result.status == "ingested" and swept == [0]
    assert source.exists()  # the download is the trigger's to remove
    assert [p.name for p in scratch.iterdir()] == ["blob-abc123"]


def test_the_next_ingest_sweeps_what_a_killed_trigger_left(tmp_path):
    scratch = tmp_path / "scratch"
    killed = leftover(scratch, "blob-k1ll3d")
    age(killed)
    result = ingest_dump(make_dump(tmp_path / "d.sqlite"), "S1", lake=FolderLake(tmp_path / "lake"),
                         telemetry=MemoryTelemetry(), scratch=scratch)
    assert result.status == "ingested"
    assert list(scratch.iterdir()) == []
