"""Small formatting helpers for the page: escaping, numbers, times, SVG coordinates, names of things."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

from shared.core.alerts import SEVERITY_NAMES
from shared.services.dashboard.read_model import parse_time

SEVERITY_COLOURS = {"critical": "#7a0010", "error": "#d62728", "warning": "#e08a00", "informational": "#4a78b0"}


def esc(value: object) -> str:
    """Escape text for HTML content and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals; ``–`` for None."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if digits else f"{round(value):,}"


def coord(x: float) -> str:
    """An SVG coordinate: one decimal, no trailing zeros (the charts are most of the page's bytes)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def stamp(text: object) -> str:
    """A UTC timestamp from the lake's JSON as ``YYYY-MM-DD HH:MM``; anything unparsable as it is (escaped)."""
    moment = parse_time(str(text)) if text else None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else esc(text)


def age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "no dump yet"
    hours = (now - moment).total_seconds() / 3600
    return f"{hours:.0f} h ago" if hours < 72 else f"{hours / 24:.0f} days ago"


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def anchor(store_id: str) -> str:
    """An element id for a store (store ids are validated to [A-Za-z0-9_-], but be safe anyway)."""
    return "store-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in store_id)


def nice_max(value: float) -> float:
    """The smallest 1/2/5 × 10^k at or above ``value``: a round top for a chart's axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def severity(alert: dict) -> str:
    """The alert's severity name (one of SEVERITY_COLOURS), from its name or else its level."""
    sev = alert.get("severity")
    if sev in SEVERITY_COLOURS:
        return str(sev)
    level = alert.get("severityLevel")
    return SEVERITY_NAMES.get(level, "informational") if isinstance(level, int) else "informational"


__all__ = ["SEVERITY_COLOURS", "age", "anchor", "coord", "esc", "nice_max", "num", "severity", "short", "stamp",
           "when"]
