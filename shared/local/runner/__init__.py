"""The local runner (``inventory serve``): the functions registered in ``function_app.py`` on the local
defaults, with the bindings' semantics, for a machine without the Functions host (``docs/local-runner.md``).

The functions are found through ``app.get_functions()`` and their bindings read from the same function JSON
the worker sends to the host; there is no second list (:mod:`.functions`). Per trigger type:

* **blob trigger** (:mod:`.blobs`) — objects under the trigger path's prefix in the lake (the folder lake, or
  Azurite when ``LAKE`` is set) invoke the function with what the SDK-type binding passes (a ``BlobClient``).
  Each (path, etag) once: receipts are kept under ``$INVENTORY_HOME/runner/``, like the host's blob receipts;
  a failing blob is retried up to 5 times, then set aside as poisoned (the host's ``maxDequeueCount``).
* **Event Hub trigger** (:mod:`.events`) — the embedded durable queue delivers batches per partition, sized
  and timed by ``host.json`` (``maxEventBatchSize``, ``minEventBatchSize``, ``maxWaitTime``), as
  ``func.EventHubEvent`` lists. The checkpoint moves after the call returns — or after the retry policy's
  last attempt failed, as with Event Hubs — so a crash redelivers the batch (at-least-once).
* **timer trigger** (:mod:`.timers`) — the decorators' NCRONTAB schedules (6 fields, seconds first). With
  ``useMonitor`` the schedule status is kept under ``$INVENTORY_HOME/runner/``: an occurrence missed while
  the runner was down runs at start-up with ``past_due`` set.
* **HTTP trigger** (:mod:`.http`) — the routes on ``127.0.0.1:7071/api/…`` with the auth level checked
  against the keys in ``$INVENTORY_HOME/runner/host_keys.json`` (``x-functions-key`` header or ``?code=``);
  plus the host's admin endpoints ``POST /admin/functions/<name>`` (run a timer now) and
  ``GET /admin/host/status``.

The binding objects handed to the functions are built in :mod:`.bindings`; the :class:`Runner` that drives
the triggers, logs one readable line per invocation and counts them is in :mod:`.core`. ``once=True``
(``--once``) delivers what is pending — blobs, queued events, past-due timers — and returns.
"""

from shared.local.runner.blobs import BLOB_MAX_ATTEMPTS, Receipts
from shared.local.runner.core import Invocation, Runner, Stats
from shared.local.runner.events import _Stopping
from shared.local.runner.functions import (
    APP_ROOT,
    Function,
    RetryPolicy,
    RunnerError,
    app_functions,
    discover,
    resolve,
)
from shared.local.runner.http import HTTP_MAX_BODY, HostKeys, host_keys

__all__ = [
    "APP_ROOT",
    "BLOB_MAX_ATTEMPTS",
    "HTTP_MAX_BODY",
    "Function",
    "HostKeys",
    "Invocation",
    "Receipts",
    "RetryPolicy",
    "Runner",
    "RunnerError",
    "Stats",
    "_Stopping",
    "app_functions",
    "discover",
    "host_keys",
    "resolve",
]
