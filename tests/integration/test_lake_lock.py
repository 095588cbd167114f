"""The lake port's named locks (``Lake.lock``), on the folder lake and on the Blob lake (leases, on Azurite):
exclusive across threads and processes, released on exit or error, waited for with a timeout that names the
lock, and freed by themselves when their holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.ports.lake import LakeError, LockTimeout


def _try_lock(lake, name, timeout_s):
    """Try to take ``name`` from another thread; return the exception raised, or None if it was taken."""
    outcome: list[BaseException | None] = []

    def attempt():
        try:
            with lake.lock(name, timeout_s=timeout_s):
                outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    t = threading.Thread(target=attempt)
    t.start()
    t.join(timeout=timeout_s + 30)
    assert outcome, "the attempt did not finish"
    return outcome[0]


def test_a_held_lock_keeps_others_out_and_the_timeout_names_it(lake):
    with lake.lock("store=S1") as held:
        held.check()
        t0 = time.monotonic()
        err = _try_lock(lake, "store=S1", timeout_s=0.5)
        assert isinstance(err, LockTimeout) and isinstance(err, LakeError)
        assert time.monotonic() - t0 >= 0.5
        assert "'store=S1'" in str(err) and "another worker" in str(err) and "pid" in str(err)
    assert _try_lock(lake, "store=S1", timeout_s=5) is None  # released on exit


def test_locks_of_different_names_are_independent(lake):
    with lake.lock("store=S1"):
        assert _try_lock(lake, "store=S2", timeout_s=5) is None


def test_the_lock_is_released_when_the_block_raises(lake):
    with pytest.raises(RuntimeError, match="boom"), lake.lock("store=S1"):
        raise RuntimeError("boom")
    assert _try_lock(lake, "store=S1", timeout_s=5) is None


def test_waiting_workers_take_turns(lake):
    holders, most, done = 0, 0, []
    guard = threading.Lock()

    def worker(n):
        nonlocal holders, most
        with lake.lock("store=S1", timeout_s=60):
            with guard:
                holders += 1
                most = max(most, holders)
            time.sleep(0.05)
            with guard:
                holders -= 1
            done.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert sorted(done) == list(range(5)) and most == 1


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "store S1", "x" * 101])
def test_unsafe_lock_names_are_refused(lake, bad):
    with pytest.raises(LakeError, match="invalid lock name"), lake.lock(bad):
        pass


def test_the_folder_lock_is_hidden_from_the_lake(tmp_path):
    lake = FolderLake(tmp_path / "lake")
    with lake.lock("store=S1"):
        assert (tmp_path / "lake" / ".locks" / "store=S1.lock").is_file()
    assert list(lake.list("")) == []


def _hold_in_child(code: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Run ``code`` (which takes a lock, prints 'held' and sleeps) in a child; return once it holds."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = child.stdout.readline()
    assert line.strip() == "held", child.stderr.read()
    return child


def test_the_folder_lock_excludes_another_process_and_frees_itself_when_it_is_killed(tmp_path):
    lake = FolderLake(tmp_path / "lake")
    child = _hold_in_child(f"""
        import time
        from shared.adapters.lake_folder import FolderLake
        with FolderLake({str(tmp_path / "lake")!r}).lock("store=S1"):
            print("held", flush=True)
            time.sleep(600)
    """)
    try:
        err = _try_lock(lake, "store=S1", timeout_s=0.5)
        assert isinstance(err, LockTimeout) and f"pid {child.pid}" in str(err)
        child.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops the lock
        child.wait()
        t0 = time.monotonic()
        assert _try_lock(lake, "store=S1", timeout_s=10) is None
        assert time.monotonic() - t0 < 3
    finally:
        child.kill()
        child.wait()


# -- the Blob lake: leases ----------------------------------------------------------------------------------

@pytest.mark.azurite
def test_a_blob_lock_is_a_lease_on_a_lock_blob(blob_lake):
    blob = blob_lake.container.get_blob_client("locks/store=S1")
    with blob_lake.lock("store=S1"):
        props = blob.get_blob_properties()
        assert props.lease.state == "leased" and props.lease.duration == "fixed"  # finite: a dead holder's lapses
    assert blob.get_blob_properties().lease.state == "available"  # released, not left to lapse


@pytest.mark.azurite
@pytest.mark.slow
def test_a_blob_lock_is_renewed_while_held(blob_lake):
    with blob_lake.lock("store=S1", lease_s=15) as held:
        time.sleep(17)  # longer than the lease: only the renewals keep it
        err = _try_lock(blob_lake, "store=S1", timeout_s=0.5)
        assert isinstance(err, LockTimeout)
        held.check()
        assert held.renewals >= 2


@pytest.mark.azurite
@pytest.mark.slow
def test_a_killed_holders_blob_lock_frees_itself_when_its_lease_lapses(blob_lake, azurite_conn):
    child = _hold_in_child("""
        import os, time
        from shared.adapters.lake_blob import BlobLake
        lake = BlobLake.from_connection_string(os.environ["TEST_LAKE_CONN"], os.environ["TEST_LAKE_CONTAINER"])
        with lake.lock("store=S1", lease_s=15):
            print("held", flush=True)
            time.sleep(600)
    """, env={"TEST_LAKE_CONN": azurite_conn, "TEST_LAKE_CONTAINER": blob_lake.container.container_name})
    try:
        err = _try_lock(blob_lake, "store=S1", timeout_s=0.5)
        assert isinstance(err, LockTimeout) and f"pid {child.pid}" in str(err) and "15 s lease" in str(err)
        child.send_signal(signal.SIGKILL)  # dies holding it, without releasing
        child.wait()
        t0 = time.monotonic()
        assert _try_lock(blob_lake, "store=S1", timeout_s=40) is None
        assert time.monotonic() - t0 < 20  # within the lease (15 s) plus a backoff step
    finally:
        child.kill()
        child.wait()


@pytest.mark.azurite
def test_a_blob_lock_whose_lease_could_not_be_renewed_says_it_is_lost(blob_lake):
    with blob_lake.lock("store=S1", lease_s=15) as held:
        held._renewed_at -= 16  # as if every renewal had failed for longer than the lease
        with pytest.raises(LakeError, match=r"lost the lock 'store=S1'.*15 s lease"):
            held.check()


def test_blob_lease_lengths_outside_the_services_range_are_refused():
    pytest.importorskip("azure.storage.blob")
    from azure.storage.blob import ContainerClient

    from shared.adapters.lake_blob import BlobLake

    lake = BlobLake(ContainerClient("http://127.0.0.1:9/acct", "lake"), create_container=False)
    for bad in (10, 61):
        with pytest.raises(ValueError, match="15 to 60"), lake.lock("store=S1", lease_s=bad):
            pass
