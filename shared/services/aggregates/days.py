"""Days and times as a run handles them: SQL conditions on days, batches of days, the forecast's history."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from shared.core.aggregates import HISTORY_DAYS


def parse_ts(text: str | None) -> datetime | None:
    """A manifest's ISO time (``...Z``) as an aware UTC datetime; None for none."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def history_start(days: list[str]) -> date:
    """The first day of the forecast's history: 16 weeks back from the last day with sales, or the first."""
    last = date.fromisoformat(days[-1])
    return max(date.fromisoformat(days[0]), last - timedelta(days=HISTORY_DAYS - 1))


def days_clause(days: Iterable[str]) -> str:
    """SQL true for the rows whose ``date`` is one of ``days`` (ISO): runs of consecutive days as one BETWEEN,
    so a year of days is one short condition (for delta-rs's predicates and DataFusion's filters alike)."""
    runs: list[list[date]] = []
    for d in sorted({date.fromisoformat(x) for x in days}):
        if runs and d - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    parts = [f"date = DATE '{a}'" if a == b else f"date BETWEEN DATE '{a}' AND DATE '{b}'" for a, b in runs]
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def batches(days: list[str], lines: dict[str, int], limit: int) -> Iterator[list[str]]:
    """``days`` in order, in batches of at most ``limit`` sale lines (a day larger than that alone)."""
    batch: list[str] = []
    size = 0
    for d in days:
        if batch and size + lines.get(d, 0) > limit:
            yield batch
            batch, size = [], 0
        batch.append(d)
        size += lines.get(d, 0)
    if batch:
        yield batch


__all__ = ["batches", "days_clause", "history_start", "parse_ts"]
