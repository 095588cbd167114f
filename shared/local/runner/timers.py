"""The timer trigger: the decorators' NCRONTAB schedules (6 fields, seconds first). With ``useMonitor`` the
schedule status is kept in ``$INVENTORY_HOME/runner/timers.json``: an occurrence missed while the runner was
down runs at start-up with ``past_due`` set."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.local.runner.functions import Function, Invoke, RunnerError, resolve


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


class Timers:
    """Plans and runs the timer functions; the schedule status lives in ``state_dir``."""

    def __init__(self, container: Any, state_dir: Path, invoke: Invoke) -> None:
        self.c, self.invoke = container, invoke
        self.status_file = state_dir / "timers.json"
        self._next: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def schedule(self, f: Function) -> str:
        """``f``'s NCRONTAB expression, its ``%SETTING%`` references resolved."""
        return resolve(f.trigger["schedule"], self.c.settings)

    def _status(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.status_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save(self, f: Function, schedule: str, last: datetime, next_: datetime) -> None:
        with self._lock:
            status = self._status()
            status[f.name] = {"schedule": schedule, "last": last.isoformat(), "next": next_.isoformat()}
            tmp = self.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=2))
            os.replace(tmp, self.status_file)

    def start(self, functions: list[Function], now: datetime) -> list[Function]:
        """Plan each timer's next occurrence; return those past due (missed while the runner was down)."""
        past_due, status = [], self._status()
        for f in functions:
            schedule = self.schedule(f)
            s = status.get(f.name)
            if f.trigger.get("useMonitor", True) and s and s.get("schedule") == schedule \
                    and datetime.fromisoformat(s["next"]) <= now:
                past_due.append(f)
            self._next[f.name] = _cron(schedule).next_after(now)
            if not s or s.get("schedule") != schedule:
                self._save(f, schedule, now, self._next[f.name])
        return past_due

    def run(self, f: Function, *, past_due: bool = False, why: str = "") -> None:
        """One run of a timer function; the next occurrence is planned from now (and kept, with useMonitor)."""
        from azure.functions.timer import TimerRequest

        schedule = self.schedule(f)
        now = datetime.now(UTC)
        try:
            self.invoke(f, TimerRequest(past_due=past_due),
                        why or f"schedule {schedule}" + (" (past due: missed while the runner was down)"
                                                         if past_due else ""))
        except Exception:
            pass  # logged by invoke; a timer has no retry policy: the next occurrence runs as planned
        finally:
            nxt = _cron(schedule).next_after(now)
            self._next[f.name] = nxt
            if f.trigger.get("useMonitor", True):
                self._save(f, schedule, now, nxt)

    def due(self, functions: list[Function], now: datetime) -> list[Function]:
        return [f for f in functions if self._next.get(f.name, now) <= now]
