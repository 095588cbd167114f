"""The telemetry port: business events and metrics (Application Insights in Azure, JSON lines locally)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def event(self, name: str, **properties: object) -> None:
        """A named business event (DumpIngested, DumpQuarantined, ...) with custom dimensions."""
        ...

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        """A measurement, e.g. rows_ingested=1200 for store=S001."""
        ...
