"""The Runner: the app's functions on a bootstrap Container, each trigger delivered by its part (blobs,
events, timers, HTTP), every invocation logged on one line and counted; ``run_once`` delivers what is
pending and returns, ``serve`` runs one loop per trigger until stopped."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import azure.functions as func

from shared.local.runner.blobs import BlobTrigger, Receipts
from shared.local.runner.events import EventHubTrigger, _Stopping
from shared.local.runner.functions import APP_ROOT, Function, RunnerError, discover
from shared.local.runner.http import host_keys, http_server
from shared.local.runner.timers import Timers, _cron

log = logging.getLogger("inventory.runner")


@dataclass
class Invocation:
    function: str
    detail: str
    started: datetime
    seconds: float = 0.0
    ok: bool = True
    error: str = ""


@dataclass
class Stats:
    """What the runner did: counts per function and outcome, and the last invocations (for waiting on)."""

    ok: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    last: list[Invocation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, inv: Invocation) -> None:
        with self.lock:
            bucket = self.ok if inv.ok else self.failed
            bucket[inv.function] = bucket.get(inv.function, 0) + 1
            self.last = [*self.last[-999:], inv]

    def count(self, function: str, *, since: datetime | None = None) -> int:
        with self.lock:
            return sum(1 for i in self.last if i.function == function and i.ok and (since is None or
                                                                                  i.started >= since))


class Runner:
    """Runs the app's triggers on a bootstrap Container (``shared.bootstrap.default_container()`` unless
    given). ``retry_scale`` multiplies retry delays (tests use 0). ``schedules=False`` leaves the timers to the
    admin endpoint only (the demo runs them once, in order, so its figures do not depend on the clock)."""

    def __init__(self, container: Any = None, *, functions: list[Function] | None = None,
                 host: str = "127.0.0.1", port: int = 7071, poll_s: float = 1.0, retry_scale: float = 1.0,
                 host_json: Path = APP_ROOT / "host.json", schedules: bool = True) -> None:
        if container is None:
            from shared.bootstrap import default_container

            container = default_container()
        self.c = container
        self.functions = functions if functions is not None else discover()
        self.host, self.port, self.poll_s, self.retry_scale = host, port, poll_s, retry_scale
        self.schedules = schedules
        extensions = json.loads(host_json.read_text()).get("extensions", {})
        self.state_dir = self.c.settings.home / "runner"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.stop = threading.Event()
        self.keys = host_keys(self.state_dir / "host_keys.json")
        self._receipts = Receipts(self.state_dir / "blob_receipts.sqlite")
        self.blobs = BlobTrigger(self.c, self._receipts, self.invoke, self.stop, retry_scale=retry_scale,
                                 parallelism=int(extensions.get("blobs", {}).get("maxDegreeOfParallelism", 1)))
        self.events = EventHubTrigger(self.c, extensions.get("eventHubs", {}), self.invoke, self.stop,
                                      retry_scale=retry_scale)
        self.timers = Timers(self.c, self.state_dir, self.invoke)
        self._http: ThreadingHTTPServer | None = None
        # With EVENTS set, producers send to Event Hubs, which nothing local can read: the trigger is left off.
        self.events_on = not self.c.uses_event_hubs
        self._check()

    def _check(self) -> None:
        """Fail at start-up, not at the first tick, on a bad schedule or blob path; warn when the Event Hub
        trigger is off."""
        for f in self.of("timerTrigger"):
            _cron(self.timers.schedule(f))
        for f in self.of("blobTrigger"):
            self.blobs.prefix(f)
        if not self.events_on and self.of("eventHubTrigger"):
            log.warning("EVENTS is set: events go to Event Hubs, which the local runner cannot read; the Event Hub "
                        "trigger is off (unset EVENTS and EVENTS__fullyQualifiedNamespace to use the embedded queue)")

    def retry_poisoned(self) -> int:
        """Forget the poisoned blob receipts, so those blobs are tried again."""
        return self._receipts.retry_poisoned()

    def of(self, kind: str) -> list[Function]:
        return [f for f in self.functions if f.kind == kind]

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise RunnerError(f"no function {name!r}; the app has {', '.join(f.name for f in self.functions)}")

    def invoke(self, f: Function, arg: object, detail: str, context: func.Context | None = None) -> object:
        """One invocation, logged on one line and counted in :attr:`stats`; the function's error is re-raised."""
        inv = Invocation(f.name, detail, datetime.now(UTC))
        t0 = time.perf_counter()
        try:
            return f.call(arg, context)
        except Exception as exc:
            inv.ok, inv.error = False, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            inv.seconds = time.perf_counter() - t0
            self.stats.record(inv)
            took = f"{inv.seconds:7.2f} s" if inv.seconds >= 1 else f"{inv.seconds * 1000:6.0f} ms"
            line = f"{f.name:<20} {'ok' if inv.ok else 'FAILED':<6} {took}  {detail}"
            (log.info if inv.ok else log.error)(line + (f"  -- {inv.error}" if inv.error else ""))

    # -- the triggers (each in its module) ---------------------------------------------------------------
    def pending_blobs(self, f: Function) -> list[tuple[Any, int]]:
        """(blob, attempts so far) for each blob due now for ``f``."""
        return self.blobs.pending(f)

    def unsettled_blobs(self) -> list[Any]:
        """Blobs under the blob triggers' paths not yet ingested or poisoned (new, running, or awaiting a retry)."""
        return self.blobs.unsettled(self.of("blobTrigger"))

    def poll_blobs(self) -> int:
        """Invoke each blob-triggered function for every new or changed blob under its path; how many ran."""
        return self.blobs.poll(self.of("blobTrigger"))

    def poll_events(self, *, drain: bool = False) -> int:
        """Deliver the embedded queue's ready batches; with ``drain``, every pending event without waiting
        for a fuller batch. Returns how many events were delivered."""
        return self.events.poll(self.of("eventHubTrigger") if self.events_on else [], drain=drain)

    def start_timers(self, now: datetime) -> list[Function]:
        """Plan each timer's next occurrence; return those past due (missed while the runner was down)."""
        return self.timers.start(self.of("timerTrigger"), now)

    def run_timer(self, f: Function, *, past_due: bool = False, why: str = "") -> None:
        """One run of a timer function; the next occurrence is planned from now (and kept, with useMonitor)."""
        self.timers.run(f, past_due=past_due, why=why)

    def due_timers(self, now: datetime) -> list[Function]:
        return self.timers.due(self.of("timerTrigger"), now)

    def start_http(self) -> ThreadingHTTPServer:
        server = http_server(self, self.host, self.port)
        self.port = server.server_address[1]
        self._http = server
        threading.Thread(target=server.serve_forever, name="runner-http", daemon=True).start()
        return server

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- the loops -------------------------------------------------------------------------------------
    def run_once(self) -> dict[str, int]:
        """Deliver what is pending — blobs, queued events, past-due timers — and return the counts, with
        ``failed``: the invocations of this run that failed (a blob is retried by a later run, up to its
        last attempt)."""
        failed_before = sum(self.stats.failed.values())
        past_due = self.start_timers(datetime.now(UTC))
        blobs = self.poll_blobs()
        events = 0
        while (n := self.poll_events(drain=True)) and not self.stop.is_set():
            events += n
        for f in past_due:
            self.run_timer(f, past_due=True)
        return {"blobs": blobs, "events": events, "timers": len(past_due),
                "failed": sum(self.stats.failed.values()) - failed_before}

    def serve(self, *, http: bool = True) -> None:
        """Run until :attr:`stop` is set: HTTP in its threads, blobs, events and timers in one loop each."""
        if http and self.of("httpTrigger"):
            self.start_http()
        self._banner(http)
        bodies: list[tuple[str, Callable[[], int]]] = [("blobs", self.poll_blobs), ("events", self.poll_events)]
        if self.schedules:
            bodies.append(("timers", functools.partial(self._timer_tick, self.start_timers(datetime.now(UTC)))))
        loops = [threading.Thread(target=self._loop, args=(name, body), name=f"runner-{name}", daemon=True)
                 for name, body in bodies]
        for t in loops:
            t.start()
        try:
            while not self.stop.wait(0.2):
                pass
        finally:
            log.info("stopping: waiting for the invocations in progress to finish ...")
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
            for t in loops:
                t.join()
            log.info("stopped")

    def _timer_tick(self, past_due: list[Function]) -> int:
        while past_due:
            self.run_timer(past_due.pop(0), past_due=True)
        ran = 0
        for f in self.due_timers(datetime.now(UTC)):
            self.run_timer(f)
            ran += 1
        return ran

    def _loop(self, name: str, body: Callable[[], int]) -> None:
        while not self.stop.is_set():
            try:
                busy = body()
            except _Stopping:
                return
            except Exception:
                log.exception("runner %s loop failed; trying again in %.0f s", name, max(self.poll_s, 1))
                busy = 0
            if not busy:
                self.stop.wait(self.poll_s if name != "timers" else min(self.poll_s, 0.5))

    def _banner(self, http: bool) -> None:
        log.info("local runner: %d functions; lake %s; stock %s", len(self.functions), self.c.lake.describe(),
                 self.c.stock.describe())
        for f in self.functions:
            log.info("  %-20s %-16s %s", f.name, f.kind, self._where(f, http))
        if http:
            log.info("function keys: %s (send as x-functions-key or ?code=)", self.state_dir / "host_keys.json")

    def _where(self, f: Function, http: bool) -> str:
        """What ``f`` listens to, for the banner."""
        t = f.trigger
        if f.kind == "httpTrigger":
            return (f"{','.join(t.get('methods') or ['*'])} {self.base_url}/api/{t.get('route') or f.name} "
                    f"(auth {t.get('authLevel', 'FUNCTION').lower()})") if http else "HTTP off"
        if f.kind == "blobTrigger":
            return f"blobs under {self.blobs.prefix(f)} in {self.c.lake.describe()}"
        if f.kind == "eventHubTrigger":
            return self.c.queue.describe() if self.events_on else "off (EVENTS is set)"
        schedule = self.timers.schedule(f)
        return f"schedule {schedule}" if self.schedules else \
            f"schedule {schedule} off: run it with POST {self.base_url}/admin/functions/{f.name}"
