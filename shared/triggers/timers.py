"""Timers: ``compute_aggregates`` (aggregates and forecasts for Synapse / Power BI), ``raise_alerts``
(low-stock and pipeline-health alerts through telemetry) and ``maintain_lake`` (compaction, vacuum and
checkpoints of the Delta tables). Thin: the schedule, then the use case.

Schedules come from app settings (``%AGGREGATES_SCHEDULE%``, ``%ALERTS_SCHEDULE%``, ``%MAINTAIN_SCHEDULE%``,
NCRONTAB with seconds).
``use_monitor`` keeps the schedule's state in storage, so a run missed while the app was down happens at
start-up with ``past_due`` set; both services catch up by design (they look at the lake, not at the clock).
"""

import logging

import azure.functions as func

from shared.triggers.failures import reports_failure

bp = func.Blueprint()
log = logging.getLogger("inventory.timers")


@bp.function_name("compute_aggregates")
@bp.timer_trigger(arg_name="timer", schedule="%AGGREGATES_SCHEDULE%", use_monitor=True)
@reports_failure
def compute_aggregates(timer: func.TimerRequest) -> None:
    """Recompute the aggregates whose inputs changed since the last run; forecasts and current stock."""
    from shared.bootstrap import use_cases

    if timer.past_due:
        log.warning("compute_aggregates is past due: catching up")
    result = use_cases().compute_aggregates()
    log.info("aggregates: %s", result.to_json())


@bp.function_name("raise_alerts")
@bp.timer_trigger(arg_name="timer", schedule="%ALERTS_SCHEDULE%", use_monitor=True)
@reports_failure
def raise_alerts(timer: func.TimerRequest) -> None:
    """Evaluate every alert rule; raise (as telemetry) the alerts on-call has not been told about."""
    from shared.bootstrap import use_cases

    if timer.past_due:
        log.warning("raise_alerts is past due: evaluating now")
    result = use_cases().raise_alerts()
    log.info("alerts: %d raised, %d true now (%s)", len(result.raised), result.true_now, result.by_kind)


@bp.function_name("maintain_lake")
@bp.timer_trigger(arg_name="timer", schedule="%MAINTAIN_SCHEDULE%", use_monitor=True)
@reports_failure
def maintain_lake(timer: func.TimerRequest) -> None:
    """Compact, vacuum and checkpoint every Delta table of the lake; the figures go to telemetry."""
    from shared.bootstrap import use_cases

    result = use_cases().maintain_lake()
    log.info("lake maintained: %s", result.to_json())
