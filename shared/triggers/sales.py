"""Real-time sales: the Event Hub trigger ``apply_sales`` and the HTTP ingress ``POST /api/sales``.

Thin: translate the bindings, call the use cases (``shared.use_cases``), translate the result back.
"""

import logging
from typing import List  # noqa: UP035 - the worker expects typing.List for cardinality=many (docs/platform-notes.md)

import azure.functions as func

from shared.triggers.failures import reports_failure

bp = func.Blueprint()
log = logging.getLogger("inventory.sales")

MAX_RETRIES = 5  # the retry policy below; the last attempt sets a failing batch aside instead of losing it


@bp.function_name("apply_sales")
@bp.retry(strategy="exponential_backoff", max_retry_count=str(MAX_RETRIES), minimum_interval="00:00:02",
          maximum_interval="00:01:00")
@bp.event_hub_message_trigger(
    arg_name="events",
    connection="EVENTS",
    event_hub_name="%EVENTHUB_NAME%",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
)
@reports_failure
def apply_sales(events: List[func.EventHubEvent], context: func.Context) -> None:  # noqa: UP006
    """A batch of POS events: validate, dead-letter the bad ones, apply the rest once each.

    The host checkpoints after this returns *or raises*; so a failure is retried by the retry policy, and on
    the last attempt the batch is written to ``deadletter/failed-batches/`` rather than dropped."""
    from shared.bootstrap import use_cases
    from shared.core.events import RawEvent

    raw = [RawEvent(e.get_body(), f"eventhub:seq={e.sequence_number}") for e in events]
    retry = getattr(context, "retry_context", None)
    last = retry is None or retry.retry_count >= retry.max_retry_count
    outcome = use_cases().apply_delivered_batch(raw, last_attempt=last)
    if isinstance(outcome, str):
        log.error("batch of %d events set aside after %d retries: %s", len(raw), MAX_RETRIES, outcome)
    else:
        log.info("events: %s", outcome.to_json())


@bp.function_name("post_sales")
@bp.route(route="sales", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@reports_failure
def post_sales(req: func.HttpRequest) -> func.HttpResponse:
    """POS systems without AMQP: one event, a JSON array, or JSON lines; 202 with per-event results."""
    import json

    from shared.bootstrap import default_container, use_cases

    c = default_container()
    limit = c.settings.int("SALES_HTTP_MAX_BYTES")
    declared = req.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refuse before touching a huge body
        body = {"error": "payload_too_large", "message": f"the body is {int(declared):,} bytes; the limit is "
                                                         f"{limit:,}. Split the events over several requests."}
        return func.HttpResponse(json.dumps(body), status_code=413, mimetype="application/json")
    resp = use_cases(c).accept_sales(req.get_body() or b"")
    return func.HttpResponse(resp.json(), status_code=resp.status, mimetype="application/json", headers=resp.headers)
