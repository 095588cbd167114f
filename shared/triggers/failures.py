"""Every function's failure reaches on-call: a ``FunctionFailed`` custom event, then the exception goes on.

Under ``telemetryMode: OpenTelemetry`` the Functions host writes request telemetry only for HTTP, Service Bus
and Event Hubs triggers, so a failing blob or timer function leaves no failed ``requests`` row to alert on.
:func:`reports_failure` wraps each function body: an exception that escapes it is reported once per failed
invocation as the custom event ``FunctionFailed`` (``infra/alerts/FunctionFailures.kql`` selects exactly
those), logged with its traceback on the ``inventory.functions`` logger (an ``exceptions`` record), and
re-raised unchanged, so the host's retries, poison queues and checkpoints behave as before.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("inventory.functions")

FAILURE_EVENT = "FunctionFailed"
MESSAGE_CHARS = 500  # enough for the cause; a custom dimension is no place for a whole traceback

F = TypeVar("F", bound=Callable[..., Any])


def failure_properties(function: str, error: BaseException, bindings: dict[str, Any]) -> dict[str, object]:
    """The custom dimensions of ``FunctionFailed``: which function, what went wrong, on what input."""
    props: dict[str, object] = {
        "functionName": function,
        "error": type(error).__name__,
        "message": str(error)[:MESSAGE_CHARS],
        "subject": _subject(bindings),
    }
    retry = getattr(bindings.get("context"), "retry_context", None)
    if retry is not None:
        props["attempt"] = f"{retry.retry_count}/{retry.max_retry_count}"
    return props


def _subject(bindings: dict[str, Any]) -> str:
    """What the invocation was working on, as on-call would look it up: a blob path, a batch, a route."""
    for value in bindings.values():
        if isinstance(getattr(value, "blob_name", None), str):
            return value.blob_name
        if isinstance(value, list):
            return f"{len(value)} events"
        if isinstance(getattr(value, "url", None), str) and hasattr(value, "method"):
            return f"{value.method} {value.url.split('?', 1)[0]}"
        if hasattr(value, "past_due"):
            return "timer (past due)" if value.past_due else "timer"
    return ""


def reports_failure(body: F) -> F:
    """Wrap a function body (the innermost decorator, right on the ``def``) so its failure is reported."""

    @functools.wraps(body)
    def reported(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exception as error:
            _report(body.__name__, error, kwargs or dict(enumerate(args)))
            raise

    return reported  # type: ignore[return-value]


def _report(function: str, error: Exception, bindings: dict[Any, Any]) -> None:
    props = failure_properties(function, error, {str(k): v for k, v in bindings.items()})
    log.exception("function %s failed: %s: %s", function, props["error"], props["message"])
    try:
        from shared.bootstrap import failure_telemetry

        failure_telemetry().event(FAILURE_EVENT, **props)
    except Exception:  # the report must never hide the failure it reports
        log.exception("could not report the failure of %s as %s", function, FAILURE_EVENT)
