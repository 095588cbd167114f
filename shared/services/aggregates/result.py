"""What an aggregates run reports: :class:`AggregateResult` (returned, and the ``AggregatesComputed`` event)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.core.aggregates import STATE_PATH
from shared.ports.telemetry import Telemetry

ProgressFn = Callable[[str], None]


@dataclass
class AggregateResult:
    stores: list[str] = field(default_factory=list)
    partitions_recomputed: int = 0  # (store, day) pairs of the daily sales outputs rewritten
    skipped_unchanged: int = 0  # (store, day) pairs with sales whose outputs were already up to date
    sales_lines: int = 0  # curated sale lines read
    forecasts_recomputed: int = 0  # stores whose forecast (and demand columns) were recomputed
    stock_rows: int = 0  # stock_current rows written
    stock_docs_read: int = 0  # stock documents read from the stock store (the changes, and stores read whole)
    stock_stores_read_whole: int = 0  # stores whose every stock document was read (no previous rows or cursor)
    manifests_added: int = 0  # dumps added to data_quality
    rows_written: dict[str, int] = field(default_factory=dict)  # output -> rows written
    commits: dict[str, int] = field(default_factory=dict)  # output -> Delta commits made
    timings_s: dict[str, float] = field(default_factory=dict)
    full_rebuild: bool = False  # no usable state (first run, the definitions changed, or a table's columns)

    def to_json(self) -> dict:
        return {"stores": self.stores, "partitions_recomputed": self.partitions_recomputed,
                "skipped_unchanged": self.skipped_unchanged, "sales_lines": self.sales_lines,
                "forecasts_recomputed": self.forecasts_recomputed, "stock_rows": self.stock_rows,
                "stock_docs_read": self.stock_docs_read, "stock_stores_read_whole": self.stock_stores_read_whole,
                "manifests_added": self.manifests_added, "rows_written": dict(sorted(self.rows_written.items())),
                "commits": dict(sorted(self.commits.items())), "full_rebuild": self.full_rebuild,
                "state": STATE_PATH, "timings_s": self.timings_s}


def report(telemetry: Telemetry, result: AggregateResult) -> None:
    """The run's ``AggregatesComputed`` event and its metrics."""
    telemetry.event("AggregatesComputed", stores=len(result.stores),
                    partitionsRecomputed=result.partitions_recomputed, skippedUnchanged=result.skipped_unchanged,
                    salesLines=result.sales_lines, forecastsRecomputed=result.forecasts_recomputed,
                    stockRows=result.stock_rows, stockDocsRead=result.stock_docs_read,
                    manifestsAdded=result.manifests_added,
                    commits=sum(result.commits.values()), fullRebuild=result.full_rebuild,
                    durationS=result.timings_s["total"])
    telemetry.metric("aggregates_partitions_recomputed", result.partitions_recomputed)
    telemetry.metric("aggregates_sales_lines", result.sales_lines)
    telemetry.metric("aggregates_duration_s", result.timings_s["total"])


__all__ = ["AggregateResult", "ProgressFn", "report"]
