"""The local telemetry adapter (JSON lines under $INVENTORY_HOME + readable console lines).

The Application Insights adapter (azure-monitor-opentelemetry) implements the same two calls.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO


class JsonLinesTelemetry:
    """Appends one JSON object per line to ``path``; optionally echoes a readable line to ``console``."""

    def __init__(self, path: Path, console: TextIO | None = sys.stderr) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.console = console
        self._lock = threading.Lock()

    def _emit(self, record: dict) -> None:
        line = json.dumps(record, default=str, sort_keys=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    def event(self, name: str, **properties: object) -> None:
        now = datetime.now(UTC).isoformat()
        self._emit({"type": "event", "name": name, "time": now, "properties": properties})
        if self.console is not None:
            dims = " ".join(f"{k}={v}" for k, v in properties.items() if not isinstance(v, dict | list))
            print(f"[telemetry] {name} {dims}", file=self.console)

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        now = datetime.now(UTC).isoformat()
        self._emit({"type": "metric", "name": name, "value": value, "time": now, "dimensions": dimensions})


class MemoryTelemetry:
    """Keeps records in a list; for tests that assert on what was emitted."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.metrics: list[tuple[str, float, dict]] = []

    def event(self, name: str, **properties: object) -> None:
        self.events.append((name, properties))

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        self.metrics.append((name, value, dimensions))
