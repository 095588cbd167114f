"""The aggregates' state object (``aggregates/_state/sales_inputs.json``): per store, the dumps whose manifests a
run has processed (with the UTC days each added sale lines to), and what its demand columns were computed from;
and the stock store's cursor the run read its changes up to (``stock_counts.py``).

Written last by a run: a crash before it only means the next run redoes the work (replacing rows is idempotent).
A missing, unreadable or outdated state means a full rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.aggregates import AGGREGATES_VERSION, STATE_PATH
from shared.core.ids import utc_iso
from shared.ports.lake import Lake

STATE_VERSION = 2  # 2: dumps and the days they wrote (Delta tables), instead of the curated files per day


@dataclass
class StoreState:
    dumps: dict[str, dict] = field(default_factory=dict)  # dump id -> {snapshot_at, days, items, vendors}
    demand_key: str = ""  # what the store's forecast and demand columns were computed from

    def to_json(self) -> dict:
        return {"dumps": self.dumps, "demand_key": self.demand_key}

    def sales_days(self) -> dict[str, int]:
        """UTC day -> sale lines the store has on it (every line was added by exactly one dump)."""
        out: dict[str, int] = {}
        for info in self.dumps.values():
            for day, n in info.get("days", {}).items():
                out[day] = out.get(day, 0) + int(n)
        return out

    def dumps_on(self, days: Iterable[str]) -> list[str]:
        """The dumps that added lines to any of ``days`` (the only ones whose lines those days hold)."""
        wanted = set(days)
        return sorted(d for d, info in self.dumps.items() if wanted.intersection(info.get("days", {})))

    def latest(self, table: str | None = None) -> str | None:
        """The latest dump (snapshot time, then id); with ``table``, the latest whose curated ``table`` has rows."""
        found = [(info["snapshot_at"], d) for d, info in self.dumps.items() if table is None or info.get(table)]
        return max(found)[1] if found else None


def load_state(lake: Lake) -> tuple[dict[str, StoreState], bool, str | None]:
    """(state per store, usable, the stock store's cursor of the last run). A missing, unreadable or outdated
    state means a full rebuild."""
    try:
        raw = json.loads(lake.get_bytes(STATE_PATH))
    except (FileNotFoundError, ValueError):
        return {}, False, None
    if raw.get("version") != STATE_VERSION or raw.get("aggregates_version") != AGGREGATES_VERSION:
        return {}, False, None
    stores = {s: StoreState(v.get("dumps", {}), v.get("demand_key", "")) for s, v in raw.get("stores", {}).items()}
    return stores, True, raw.get("stock_cursor")


def aggregated_stores(lake: Lake) -> set[str]:
    """The stores the last aggregates run covered (its state), whether or not they had sales or skus."""
    try:
        return set(json.loads(lake.get_bytes(STATE_PATH)).get("stores", {}))
    except (FileNotFoundError, ValueError, AttributeError):
        return set()


def save_state(lake: Lake, stores: dict[str, StoreState], now: datetime, stock_cursor: str | None = None) -> None:
    body = {"version": STATE_VERSION, "aggregates_version": AGGREGATES_VERSION, "updated_at": utc_iso(now),
            "stock_cursor": stock_cursor, "stores": {s: stores[s].to_json() for s in sorted(stores)}}
    lake.put_bytes(STATE_PATH, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


__all__ = ["STATE_VERSION", "StoreState", "aggregated_stores", "load_state", "save_state"]
