"""The blob trigger over the lake's trigger path (``raw/``): each (path, etag) is delivered once, with blob
receipts kept like the host's; a failing blob is retried with a growing delay up to
:data:`BLOB_MAX_ATTEMPTS` times, then set aside as poisoned until ``inventory serve --retry-poisoned``."""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.local.runner import bindings
from shared.local.runner.functions import Function, Invoke, RunnerError, resolve

log = logging.getLogger("inventory.runner")

BLOB_MAX_ATTEMPTS = 5  # the host's blob trigger: maxDequeueCount, then the poison queue


class Receipts:
    """Blob receipts: which (function, path, etag) ran to completion, failed how often, or were poisoned."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("CREATE TABLE IF NOT EXISTS receipts (function TEXT, path TEXT, etag TEXT, "
                          "status TEXT NOT NULL, attempts INTEGER NOT NULL, next_try REAL NOT NULL, "
                          "error TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (function, path, etag))")

    def _row(self, function: str, path: str, etag: str) -> tuple[str, int, float] | None:
        with self._lock:
            return self._con.execute("SELECT status, attempts, next_try FROM receipts WHERE function=? AND path=? "
                                     "AND etag=?", (function, path, etag)).fetchone()

    def of(self, function: str) -> dict[tuple[str, str], tuple[str, int, float]]:
        """Every receipt of ``function``: (path, etag) -> (status, attempts, next_try)."""
        with self._lock:
            return {(p, e): (st, n, t) for p, e, st, n, t in self._con.execute(
                "SELECT path, etag, status, attempts, next_try FROM receipts WHERE function = ?", (function,))}

    def due(self, function: str, path: str, etag: str) -> bool:
        """Whether the blob would be delivered now (see :meth:`is_due`)."""
        return self.is_due(self._row(function, path, etag), time.time())

    @staticmethod
    def is_due(row: tuple[str, int, float] | None, now: float) -> bool:
        """New (no receipt), or failed and its retry time has come; never done or poisoned ones."""
        return row is None or (row[0] == "failed" and row[2] <= now)

    def _put(self, function: str, path: str, etag: str, status: str, attempts: int, next_try: float,
             error: str | None) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                              (function, path, etag, status, attempts, next_try, error,
                               datetime.now(UTC).isoformat()))

    def done(self, function: str, path: str, etag: str, attempts: int) -> None:
        """Ran to completion on attempt number ``attempts``."""
        self._put(function, path, etag, "done", attempts, 0.0, None)

    def failed(self, function: str, path: str, etag: str, attempts: int, error: str, poisoned: bool,
               delay_s: float) -> None:
        """Attempt number ``attempts`` failed: try again after ``delay_s``, or never (poisoned)."""
        self._put(function, path, etag, "poisoned" if poisoned else "failed", attempts, time.time() + delay_s, error)

    def poisoned(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._con.execute("SELECT function, path, error FROM receipts WHERE status='poisoned' "
                                     "ORDER BY path").fetchall()

    def retry_poisoned(self) -> int:
        with self._lock:
            return self._con.execute("DELETE FROM receipts WHERE status='poisoned'").rowcount


class BlobTrigger:
    """Delivers the blobs under each blob-triggered function's path, ``parallelism`` at a time (host.json's
    ``maxDegreeOfParallelism``); ``retry_scale`` multiplies the retry delays."""

    def __init__(self, container: Any, receipts: Receipts, invoke: Invoke, stop: threading.Event, *,
                 parallelism: int, retry_scale: float) -> None:
        self.c, self.receipts, self.invoke, self.stop = container, receipts, invoke, stop
        self.parallelism, self.retry_scale = parallelism, retry_scale

    def prefix(self, f: Function) -> str:
        """The lake prefix ``f`` watches; a trigger path in another container than the lake's is an error."""
        path = resolve(f.trigger["path"], self.c.settings)
        container, _, rest = path.partition("/")
        if container != self.c.settings.get("LAKE_CONTAINER"):
            raise RunnerError(f"function {f.name} watches container {container!r}; the lake is "
                              f"{self.c.settings.get('LAKE_CONTAINER')!r}")
        return rest.split("{", 1)[0]

    def pending(self, f: Function) -> list[tuple[Any, int]]:
        """(blob, attempts so far) for each blob due now; one receipts query per poll, not one per blob."""
        prefix = self.prefix(f)
        known, now = self.receipts.of(f.name), time.time()
        return [(o, known[(o.path, o.etag)][1] if (o.path, o.etag) in known else 0)
                for o in self.c.lake.list(prefix) if Receipts.is_due(known.get((o.path, o.etag)), now)]

    def unsettled(self, functions: list[Function]) -> list[Any]:
        """Blobs under the functions' paths not yet ingested or poisoned (new, running, or awaiting a retry)."""
        out = []
        for f in functions:
            known = self.receipts.of(f.name)
            out += [o for o in self.c.lake.list(self.prefix(f))
                    if known.get((o.path, o.etag), ("new",))[0] not in ("done", "poisoned")]
        return out

    def poll(self, functions: list[Function]) -> int:
        """Invoke each function for every new or changed blob under its path; how many ran."""
        done = 0
        for f in functions:
            todo = self.pending(f)
            if not todo:
                continue
            with ThreadPoolExecutor(max_workers=max(1, self.parallelism)) as pool:
                done += sum(pool.map(functools.partial(self._one, f), todo))
        return done

    def _one(self, f: Function, pending: tuple[Any, int]) -> int:
        obj, attempt = pending[0], pending[1] + 1
        if self.stop.is_set():
            return 0
        try:
            self.invoke(f, bindings.blob_client(self.c.lake, obj.path), f"{obj.path} ({obj.size:,} bytes)"
                        + (f" attempt {attempt}/{BLOB_MAX_ATTEMPTS}" if attempt > 1 else ""))
        except Exception as exc:
            self._failed(f, obj, attempt, exc)
            return 1
        self.receipts.done(f.name, obj.path, obj.etag, attempt)
        return 1

    def _failed(self, f: Function, obj: Any, attempt: int, exc: Exception) -> None:
        """Attempt ``attempt`` on ``obj`` raised ``exc``: a retry after a growing delay, or poisoned."""
        poisoned = attempt >= BLOB_MAX_ATTEMPTS
        delay = 0.0 if poisoned else min(60.0, 2.0 ** attempt) * self.retry_scale
        self.receipts.failed(f.name, obj.path, obj.etag, attempt, f"{type(exc).__name__}: {exc}", poisoned, delay)
        if poisoned:
            log.error("%s: %s failed %d times; set aside as poisoned (see %s). Fix the cause and run "
                      "`inventory serve --retry-poisoned`.", f.name, obj.path, attempt, self.receipts.path)
