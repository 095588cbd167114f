"""How the Blob lake moves bytes: a large file staged as blocks several at a time, several small objects moved
at once, and the SDK's download progress turned into the lake's per-transfer byte counts.

These functions let the SDK's exceptions through; :class:`shared.adapters.lake_blob.BlobLake` turns them
into LakeErrors that name the object.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient

from shared.ports.lake import Progress

MAX_BLOCKS = 50_000  # the service's limit on blocks per blob
MAX_BLOCK_SIZE = 4000 << 20  # the service's limit on one block


def _block_id(upload_id: str, index: int) -> str:
    # Block ids must have the same length within a blob. The per-upload prefix keeps two writers racing
    # on the same path from committing each other's uncommitted blocks.
    return base64.b64encode(f"{upload_id}-{index:06d}".encode()).decode()


def stage_blocks(blob: BlobClient, source: Path, size: int, *, block_size: int, max_concurrency: int,
                 progress: Progress | None) -> list[str]:
    """Stage ``source`` (``size`` bytes) as uncommitted blocks of ``blob``, ``max_concurrency`` in flight;
    return their ids in file order, for the Put Block List that makes them the blob.

    Blocks grow past ``block_size`` for very large files, to stay under the service's 50,000-block limit.
    ``progress`` gets each block's size once it is staged, from the calling thread. The first failed
    block's error is raised once the blocks in flight have ended.
    """
    block_size = max(block_size, -(-size // MAX_BLOCKS))
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

    with (
        ThreadPoolExecutor(max_concurrency, thread_name_prefix="lake-put") as pool,
        open(source, "rb") as src,
    ):
        while chunk := src.read(block_size):
            block_id = _block_id(upload_id, len(block_ids))
            block_ids.append(block_id)
            pending.add(pool.submit(stage, block_id, chunk))
            if len(pending) >= max_concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                settle(done)
        done, pending = wait(pending)
        settle(done)
    return block_ids


def run_each(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], *, parallel: int, name: str) -> list[Any]:
    """``fn(*args)`` for each of ``calls``, up to ``parallel`` at once (threads named ``name``); the results
    in order. On the first failure the calls already started end, the others are not started, and that
    error is raised."""
    if len(calls) < 2 or parallel < 2:
        return [fn(*args) for args in calls]
    pool = ThreadPoolExecutor(min(parallel, len(calls)), thread_name_prefix=name)
    try:
        futures = [pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def delta_progress(progress: Progress) -> Callable[[int, int | None], None]:
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


__all__ = ["MAX_BLOCKS", "MAX_BLOCK_SIZE", "delta_progress", "run_each", "stage_blocks"]
