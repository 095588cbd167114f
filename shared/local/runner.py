"""The local runner (``inventory serve``): the functions registered in ``function_app.py`` on the local
defaults, with the bindings' semantics, for a machine without the Functions host.

The functions are found through ``app.get_functions()`` and their bindings read from the same function JSON
the worker sends to the host; there is no second list. Per trigger type:

* **blob trigger** — objects under the trigger path's prefix in the lake (the folder lake, or Azurite when
  ``LAKE`` is set) invoke the function with what the SDK-type binding passes (a ``BlobClient``). Each
  (path, etag) once: receipts are kept under ``$INVENTORY_HOME/runner/``, like the host's blob receipts;
  a failing blob is retried up to 5 times, then set aside as poisoned (the host's ``maxDequeueCount``).
* **Event Hub trigger** — the embedded durable queue delivers batches per partition, sized and timed by
  ``host.json`` (``maxEventBatchSize``, ``minEventBatchSize``, ``maxWaitTime``), as ``func.EventHubEvent``
  lists. The checkpoint moves after the call returns — or after the retry policy's last attempt failed, as
  with Event Hubs — so a crash redelivers the batch (at-least-once).
* **timer trigger** — the decorators' NCRONTAB schedules (6 fields, seconds first). With ``useMonitor`` the
  schedule status is kept under ``$INVENTORY_HOME/runner/``: an occurrence missed while the runner was down
  runs at start-up with ``past_due`` set.
* **HTTP trigger** — the routes on ``127.0.0.1:7071/api/…`` with the auth level checked against the keys in
  ``$INVENTORY_HOME/runner/host_keys.json`` (``x-functions-key`` header or ``?code=``); plus the host's
  admin endpoints ``POST /admin/functions/<name>`` (run a timer now) and ``GET /admin/host/status``.

One readable log line per invocation. ``once=True`` (``--once``) delivers what is pending — blobs, queued
events, past-due timers — and returns.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.local import bindings

log = logging.getLogger("inventory.runner")

APP_ROOT = Path(__file__).resolve().parents[2]  # where function_app.py and host.json live
BLOB_MAX_ATTEMPTS = 5  # the host's blob trigger: maxDequeueCount, then the poison queue
HTTP_MAX_BODY = 100 * 1024 * 1024  # the Functions host's request body limit (100 MB)


class RunnerError(RuntimeError):
    """The app cannot be run locally as configured; the message says what to change."""


@functools.cache
def app_functions() -> tuple[Any, ...]:
    """``function_app.app.get_functions()``, once per process (a second call raises in azure-functions).
    The app is imported from the project root, as the host does, whatever the current directory."""
    import sys

    if not (APP_ROOT / "function_app.py").is_file():
        raise RunnerError(f"no function_app.py in {APP_ROOT}: run the runner from a checkout of the project")
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    import function_app

    return tuple(function_app.app.get_functions())


# -- what the app registers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    strategy: str  # fixed_delay | exponential_backoff
    max_retry_count: int
    delay_s: float = 0.0
    minimum_s: float = 0.0
    maximum_s: float = 0.0

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 = the first retry)."""
        if self.strategy == "fixed_delay":
            return self.delay_s
        return min(self.maximum_s, self.minimum_s * 2 ** (retry - 1))

    @classmethod
    def from_setting(cls, d: dict[str, str]) -> RetryPolicy:
        return cls(d["strategy"], int(d["max_retry_count"]), _seconds(d.get("delay_interval")),
                   _seconds(d.get("minimum_interval")), _seconds(d.get("maximum_interval")))


def _seconds(span: str | None) -> float:
    """``hh:mm:ss`` (the host's TimeSpan) as seconds."""
    if not span:
        return 0.0
    h, m, s = span.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass(frozen=True)
class Function:
    """One registered function: its trigger binding and how to call it."""

    name: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    retry: RetryPolicy | None

    @property
    def kind(self) -> str:
        return self.trigger["type"]

    def call(self, arg: object, context: func.Context | None = None) -> object:
        params = inspect.signature(self.user_function).parameters
        kwargs: dict[str, object] = {self.trigger["name"]: arg}
        for name, p in params.items():
            if name == "context" or p.annotation in (func.Context, "func.Context"):
                kwargs[name] = context or bindings.LocalContext(self.name)
        result = self.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
        return result


SUPPORTED = ("blobTrigger", "eventHubTrigger", "timerTrigger", "httpTrigger")


def discover(functions: tuple[Any, ...] | None = None) -> list[Function]:
    """The app's functions with their trigger bindings; refuses bindings the runner cannot honour."""
    found = []
    for fn in functions if functions is not None else app_functions():
        name = fn.get_function_name()
        bindings_ = json.loads(fn.get_function_json())["bindings"]
        triggers = [b for b in bindings_ if b["type"].endswith("Trigger")]
        others = [b for b in bindings_ if not b["type"].endswith("Trigger") and b["type"] != "http"]
        if len(triggers) != 1 or triggers[0]["type"] not in SUPPORTED:
            raise RunnerError(f"function {name}: trigger {[b['type'] for b in triggers]} is not supported by the "
                              f"local runner (it runs {', '.join(SUPPORTED)}); use `func start` for it")
        if others:
            raise RunnerError(f"function {name}: {others[0]['type']} bindings are not supported by the local "
                              "runner; use the SDK through the composition root (shared/bootstrap.py) instead")
        setting = fn.get_setting("retry_policy")
        retry = RetryPolicy.from_setting(setting.get_dict_repr()) if setting is not None else None
        found.append(Function(name, triggers[0], fn.get_user_function(), retry))
    return found


def resolve(value: str, settings: Any) -> str:
    """``%NAME%`` app-setting references resolved the way the host does; an unknown name is an error."""
    def one(part: str) -> str:
        try:
            return settings.get(part)
        except KeyError:
            raise RunnerError(f"binding expression %{part}% names no setting; declare it in shared/settings.py") \
                from None
    parts = value.split("%")
    if len(parts) % 2 == 0:
        raise RunnerError(f"unbalanced % in binding expression {value!r}")
    return "".join(one(p) if i % 2 else p for i, p in enumerate(parts))


# -- invocations -----------------------------------------------------------------------------------------

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


class _Stopping(Exception):
    """The runner is stopping: leave the work undelivered (it is delivered again on the next start)."""


# -- the runner ------------------------------------------------------------------------------------------

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
        self.eventhubs = extensions.get("eventHubs", {})
        self.blob_parallelism = int(extensions.get("blobs", {}).get("maxDegreeOfParallelism", 1))
        self.state_dir = self.c.settings.home / "runner"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.stop = threading.Event()
        self.keys = host_keys(self.state_dir / "host_keys.json")
        self._receipts = Receipts(self.state_dir / "blob_receipts.sqlite")
        self._partial_since: dict[tuple[str, int], float] = {}
        self._timer_next: dict[str, datetime] = {}
        self._timer_lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        for f in self.of("timerTrigger"):  # a bad schedule fails at start-up, not at the first tick
            _cron(resolve(f.trigger["schedule"], self.c.settings))
        for f in self.of("blobTrigger"):
            self._blob_prefix(f)
        # With EVENTS set, producers send to Event Hubs, which nothing local can read: the trigger is left off.
        self.events_on = not self.c.uses_event_hubs
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

    # one invocation, logged and counted
    def invoke(self, f: Function, arg: object, detail: str, context: func.Context | None = None) -> object:
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

    # -- blob trigger ------------------------------------------------------------------------------------
    def _blob_prefix(self, f: Function) -> str:
        path = resolve(f.trigger["path"], self.c.settings)
        container, _, rest = path.partition("/")
        if container != self.c.settings.get("LAKE_CONTAINER"):
            raise RunnerError(f"function {f.name} watches container {container!r}; the lake is "
                              f"{self.c.settings.get('LAKE_CONTAINER')!r}")
        return rest.split("{", 1)[0]

    def pending_blobs(self, f: Function) -> list[tuple[Any, int]]:
        """(blob, attempts so far) for each blob due now; one receipts query per poll, not one per blob."""
        prefix = self._blob_prefix(f)
        known, now = self._receipts.of(f.name), time.time()
        return [(o, known[(o.path, o.etag)][1] if (o.path, o.etag) in known else 0)
                for o in self.c.lake.list(prefix) if Receipts.is_due(known.get((o.path, o.etag)), now)]

    def unsettled_blobs(self) -> list[Any]:
        """Blobs under the blob triggers' paths not yet ingested or poisoned (new, running, or awaiting a retry)."""
        out = []
        for f in self.of("blobTrigger"):
            known = self._receipts.of(f.name)
            out += [o for o in self.c.lake.list(self._blob_prefix(f))
                    if known.get((o.path, o.etag), ("new",))[0] not in ("done", "poisoned")]
        return out

    def poll_blobs(self) -> int:
        """Invoke each blob-triggered function for every new or changed blob under its path; how many ran."""
        done = 0
        for f in self.of("blobTrigger"):
            todo = self.pending_blobs(f)
            if not todo:
                continue
            with ThreadPoolExecutor(max_workers=max(1, self.blob_parallelism)) as pool:
                done += sum(pool.map(functools.partial(self._one_blob, f), todo))
        return done

    def _one_blob(self, f: Function, pending: tuple[Any, int]) -> int:
        obj, attempt = pending[0], pending[1] + 1
        if self.stop.is_set():
            return 0
        try:
            self.invoke(f, bindings.blob_client(self.c.lake, obj.path), f"{obj.path} ({obj.size:,} bytes)"
                        + (f" attempt {attempt}/{BLOB_MAX_ATTEMPTS}" if attempt > 1 else ""))
        except Exception as exc:
            poisoned = attempt >= BLOB_MAX_ATTEMPTS
            delay = 0.0 if poisoned else min(60.0, 2.0 ** attempt) * self.retry_scale
            self._receipts.failed(f.name, obj.path, obj.etag, attempt, f"{type(exc).__name__}: {exc}", poisoned,
                                  delay)
            if poisoned:
                log.error("%s: %s failed %d times; set aside as poisoned (see %s). Fix the cause and run "
                          "`inventory serve --retry-poisoned`.", f.name, obj.path, attempt, self._receipts.path)
            return 1
        self._receipts.done(f.name, obj.path, obj.etag, attempt)
        return 1

    # -- Event Hub trigger -------------------------------------------------------------------------------
    def poll_events(self, *, drain: bool = False) -> int:
        """Deliver the embedded queue's ready batches; with ``drain``, every pending event without waiting
        for a fuller batch. Returns how many events were delivered."""
        delivered = 0
        for f in self.of("eventHubTrigger") if self.events_on else []:
            group = resolve(f.trigger["consumerGroup"], self.c.settings)
            max_n = int(self.eventhubs.get("maxEventBatchSize", 100))
            min_n = min(int(self.eventhubs.get("minEventBatchSize", 1)), max_n)
            wait = _seconds(self.eventhubs.get("maxWaitTime", "00:01:00"))
            queue = self.c.queue
            for p in range(queue.partitions):
                if self.stop.is_set():
                    return delivered
                batch = queue.receive(group, p, max_n)
                key = (f.name, p)
                if not batch:
                    self._partial_since.pop(key, None)
                    continue
                if not drain and len(batch) < min_n:
                    since = self._partial_since.setdefault(key, time.monotonic())
                    if time.monotonic() - since < wait:
                        continue  # a partial batch waits up to maxWaitTime for more events
                self._partial_since.pop(key, None)
                self._deliver(f, p, batch)
                queue.checkpoint(group, p, batch[-1].sequence)
                delivered += len(batch)
        return delivered

    def _deliver(self, f: Function, partition: int, batch: list[Any]) -> None:
        many = str(f.trigger.get("cardinality", "ONE")).upper() == "MANY"
        items = [bindings.eventhub_events(batch)] if many else [[e] for e in bindings.eventhub_events(batch)]
        for item in items:
            arg = item if many else item[0]
            detail = (f"partition {partition} seq {item[0].sequence_number}..{item[-1].sequence_number} "
                      f"({len(item)} events)")
            self._with_retries(f, arg, detail)

    def _with_retries(self, f: Function, arg: object, detail: str) -> None:
        """The trigger's retry policy; after the last attempt the batch counts as delivered (the checkpoint
        moves on, as with Event Hubs). A stop during a retry wait leaves it undelivered."""
        policy = f.retry
        max_retries = policy.max_retry_count if policy else 0
        for retry in range(max_retries + 1):
            ctx = bindings.LocalContext(f.name, bindings.LocalRetryContext(retry, max_retries))
            try:
                self.invoke(f, arg, detail + (f" retry {retry}/{max_retries}" if retry else ""), ctx)
                return
            except Exception:
                if retry == max_retries:
                    log.error("%s: giving up on %s after %d retries; the checkpoint moves on", f.name, detail,
                              max_retries)
                    return
                if self.stop.wait(policy.delay(retry + 1) * self.retry_scale):  # type: ignore[union-attr]
                    raise _Stopping from None

    # -- timers ------------------------------------------------------------------------------------------
    def _timer_status_file(self) -> Path:
        return self.state_dir / "timers.json"

    def _timer_status(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self._timer_status_file().read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_timer(self, f: Function, schedule: str, last: datetime, next_: datetime) -> None:
        with self._timer_lock:
            status = self._timer_status()
            status[f.name] = {"schedule": schedule, "last": last.isoformat(), "next": next_.isoformat()}
            tmp = self._timer_status_file().with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=2))
            os.replace(tmp, self._timer_status_file())

    def start_timers(self, now: datetime) -> list[Function]:
        """Plan each timer's next occurrence; return those past due (missed while the runner was down)."""
        past_due, status = [], self._timer_status()
        for f in self.of("timerTrigger"):
            schedule = resolve(f.trigger["schedule"], self.c.settings)
            s = status.get(f.name)
            if f.trigger.get("useMonitor", True) and s and s.get("schedule") == schedule \
                    and datetime.fromisoformat(s["next"]) <= now:
                past_due.append(f)
            self._timer_next[f.name] = _cron(schedule).next_after(now)
            if not s or s.get("schedule") != schedule:
                self._save_timer(f, schedule, now, self._timer_next[f.name])
        return past_due

    def run_timer(self, f: Function, *, past_due: bool = False, why: str = "") -> None:
        """One run of a timer function; the next occurrence is planned from now (and kept, with useMonitor)."""
        from azure.functions.timer import TimerRequest

        schedule = resolve(f.trigger["schedule"], self.c.settings)
        now = datetime.now(UTC)
        try:
            self.invoke(f, TimerRequest(past_due=past_due),
                        why or f"schedule {schedule}" + (" (past due: missed while the runner was down)"
                                                         if past_due else ""))
        except Exception:
            pass  # logged by invoke; a timer has no retry policy: the next occurrence runs as planned
        finally:
            nxt = _cron(schedule).next_after(now)
            self._timer_next[f.name] = nxt
            if f.trigger.get("useMonitor", True):
                self._save_timer(f, schedule, now, nxt)

    def due_timers(self, now: datetime) -> list[Function]:
        return [f for f in self.of("timerTrigger") if self._timer_next.get(f.name, now) <= now]

    # -- HTTP --------------------------------------------------------------------------------------------
    def start_http(self) -> ThreadingHTTPServer:
        routes = [(f, bindings.route_pattern(f.trigger.get("route") or f.name)) for f in self.of("httpTrigger")]
        server = ThreadingHTTPServer((self.host, self.port), functools.partial(_HttpHandler, self, routes))
        server.daemon_threads = True
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
            t = f.trigger
            if f.kind == "httpTrigger":
                where = (f"{','.join(t.get('methods') or ['*'])} {self.base_url}/api/{t.get('route') or f.name} "
                         f"(auth {t.get('authLevel', 'FUNCTION').lower()})") if http else "HTTP off"
            elif f.kind == "blobTrigger":
                where = f"blobs under {self._blob_prefix(f)} in {self.c.lake.describe()}"
            elif f.kind == "eventHubTrigger":
                where = self.c.queue.describe() if self.events_on else "off (EVENTS is set)"
            else:
                schedule = resolve(t["schedule"], self.c.settings)
                where = f"schedule {schedule}" if self.schedules else \
                    f"schedule {schedule} off: run it with POST {self.base_url}/admin/functions/{f.name}"
            log.info("  %-20s %-16s %s", f.name, f.kind, where)
        if http:
            log.info("function keys: %s (send as x-functions-key or ?code=)", self.state_dir / "host_keys.json")


# -- HTTP handler ----------------------------------------------------------------------------------------

class _BadFraming(ValueError):
    """A request whose body cannot be delimited (a Content-Length or chunk size that is not a number)."""


class _HttpHandler(BaseHTTPRequestHandler):
    server_version = "inventory-runner"
    protocol_version = "HTTP/1.1"

    def __init__(self, runner: Runner, routes: list[tuple[Function, Any]], *args: Any) -> None:
        self.runner, self.routes = runner, routes
        super().__init__(*args)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None,
              mimetype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for k, v in (headers or {}).items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        if "content-type" not in sent:
            self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"error": code, "message": message}))

    def _key(self, params: dict[str, str]) -> str:
        return self.headers.get("x-functions-key") or params.get("code", "")

    def _body(self) -> bytes | None:
        """The request's body; None when it is larger than the host accepts. Raises :class:`_BadFraming` for a
        Content-Length or chunk size that is not a non-negative number (the connection cannot be read on)."""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks, total = [], 0
                while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) != 0:
                    if size < 0:
                        raise ValueError(size)
                    total += size
                    if total > HTTP_MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            raise _BadFraming("the request's Content-Length or chunk size is not a number") from None
        if length < 0:
            raise _BadFraming(f"the request's Content-Length is negative ({length})")
        if length > HTTP_MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _read_body(self) -> bytes | None:
        """:meth:`_body`, answering 413 or 400 (and closing the connection) when it cannot be had: then None."""
        try:
            body = self._body()
        except _BadFraming as exc:
            self.close_connection = True
            self._error(400, "bad_request", str(exc))
            return None
        if body is None:
            self.close_connection = True
            self._error(413, "payload_too_large", f"the host accepts bodies up to {HTTP_MAX_BODY:,} bytes")
        return body

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path
        if path.startswith("/admin/"):
            return self._admin(path, params)
        if not path.startswith("/api/"):
            return self._error(404, "not_found", f"no route {path}; the app's routes are under /api/")
        rest = path[len("/api/"):]
        for f, pattern in self.routes:
            m = pattern.fullmatch(rest)
            if m is None:
                continue
            methods = [x.upper() for x in f.trigger.get("methods") or []]
            if methods and self.command not in methods:
                return self._error(405, "method_not_allowed", f"{f.name} accepts {', '.join(methods)}")
            level = str(f.trigger.get("authLevel", "FUNCTION")).upper()
            if level != "ANONYMOUS" and not self.runner.keys.accepts(self._key(params), admin=level == "ADMIN"):
                return self._send(401, b"", mimetype="text/plain")
            body = self._read_body()
            if body is None:
                return None
            req = bindings.http_request(self.command, f"{self.runner.base_url}{self.path}", dict(self.headers),
                                        params, m.groupdict(), body)
            try:
                resp = self.runner.invoke(f, req, f"{self.command} {url.path}")
            except Exception:
                return self._send(500, b"", mimetype="text/plain")
            if isinstance(resp, func.HttpResponse):
                return self._send(resp.status_code, resp.get_body(), dict(resp.headers),
                                  resp.mimetype or "text/plain")
            return self._send(200 if resp is not None else 204, str(resp or ""), mimetype="text/plain")
        return self._error(404, "not_found", f"no function at {path}")

    def _admin(self, path: str, params: dict[str, str]) -> None:
        if not self.runner.keys.accepts(self._key(params), admin=True):
            return self._send(401, b"", mimetype="text/plain")
        if path == "/admin/host/status" and self.command == "GET":
            return self._send(200, json.dumps({"state": "Running", "functions": [f.name for f in
                                                                                  self.runner.functions]}))
        name = path[len("/admin/functions/"):] if path.startswith("/admin/functions/") else ""
        if not name or self.command != "POST":
            return self._error(404, "not_found", "admin endpoints: GET /admin/host/status, "
                                                 "POST /admin/functions/<name>")
        if self._read_body() is None:
            return None
        try:
            f = self.runner.function(name)
        except RunnerError as exc:
            return self._error(404, "not_found", str(exc))
        if f.kind != "timerTrigger":
            return self._error(400, "not_supported", f"{name} is a {f.kind}: upload a blob or send events to "
                                                     "trigger it")
        # The host answers 202 at once and runs the function; here the reply waits, so a script knows when
        # the run is over (the status code says whether it succeeded).
        before = self.runner.stats.failed.get(name, 0)
        self.runner.run_timer(f, why="run on demand (POST /admin/functions)")
        failed = self.runner.stats.failed.get(name, 0) > before
        return self._send(500 if failed else 202, b"", mimetype="text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


# -- keys, receipts, schedules ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HostKeys:
    master: str
    default: str

    def accepts(self, key: str, *, admin: bool) -> bool:
        ok = secrets.compare_digest(key.encode(), self.master.encode())
        return ok or (not admin and secrets.compare_digest(key.encode(), self.default.encode()))


def host_keys(path: Path) -> HostKeys:
    """The runner's master and default function key, made on first use and kept readable by the user only."""
    try:
        d = json.loads(path.read_text())
        return HostKeys(d["masterKey"], d["functionKeys"]["default"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        keys = HostKeys(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"masterKey": keys.master, "functionKeys": {"default": keys.default}}, out, indent=2)
        os.replace(tmp, path)
        return keys


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


@dataclass(frozen=True)
class _Schedule:
    expression: str

    def next_after(self, moment: datetime) -> datetime:
        from croniter import croniter

        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)


def _cron(expression: str) -> _Schedule:
    """An NCRONTAB expression (``{second} {minute} {hour} {day} {month} {day-of-week}``), validated."""
    from croniter import croniter

    if len(expression.split()) != 6 or not croniter.is_valid(expression, second_at_beginning=True):
        raise RunnerError(f"timer schedule {expression!r} is not a 6-field NCRONTAB expression "
                          "({second} {minute} {hour} {day} {month} {day-of-week}), e.g. '0 */15 * * * *'")
    return _Schedule(expression)
