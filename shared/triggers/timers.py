"""Timers: ``compute_aggregates`` (aggregates and forecasts for Synapse / Power BI), ``raise_alerts``
(low-stock and pipeline-health alerts through telemetry) and ``maintain_lake`` (compaction, vacuum and
checkpoints of the Delta tables). Thin: the schedule, then the service call.

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
    from shared.bootstrap import default_container
    from shared.services.compute_aggregates import compute_aggregates as run

    c = default_container()
    if timer.past_due:
        log.warning("compute_aggregates is past due: catching up")
    result = run(lake=c.lake, stock=c.stock, telemetry=c.telemetry, scratch=c.scratch_dir,
                 memory_limit=c.settings.get("INGEST_MEMORY_LIMIT"))
    log.info("aggregates: %s", result.to_json())


@bp.function_name("raise_alerts")
@bp.timer_trigger(arg_name="timer", schedule="%ALERTS_SCHEDULE%", use_monitor=True)
@reports_failure
def raise_alerts(timer: func.TimerRequest) -> None:
    """Evaluate every alert rule; raise (as telemetry) the alerts on-call has not been told about."""
    from shared.bootstrap import default_container
    from shared.services.raise_alerts import AlertSettings
    from shared.services.raise_alerts import raise_alerts as run

    c = default_container()
    if timer.past_due:
        log.warning("raise_alerts is past due: evaluating now")
    result = run(lake=c.lake, stock=c.stock, telemetry=c.telemetry, settings=AlertSettings.from_settings(c.settings))
    log.info("alerts: %d raised, %d true now (%s)", len(result.raised), result.true_now, result.by_kind)


@bp.function_name("maintain_lake")
@bp.timer_trigger(arg_name="timer", schedule="%MAINTAIN_SCHEDULE%", use_monitor=True)
@reports_failure
def maintain_lake(timer: func.TimerRequest) -> None:
    """Compact, vacuum and checkpoint every Delta table of the lake; the figures go to telemetry."""
    from shared.bootstrap import default_container
    from shared.services.maintain_lake import maintain_lake as run

    c = default_container()
    result = run(lake=c.lake, telemetry=c.telemetry, retention_hours=c.settings.int("LAKE_VACUUM_RETENTION_HOURS"))
    log.info("lake maintained: %s", result.to_json())
