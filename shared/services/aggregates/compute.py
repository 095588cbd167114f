"""The entry point :func:`compute_aggregates`: discover the dumps and the stores, then each store in turn (its
new manifests, the days to recompute, then stock, demand and forecast), the last commits, and the state."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from shared.ports.lake import Lake
from shared.ports.stock import StockStore
from shared.ports.tables import OpenTables
from shared.ports.telemetry import Telemetry
from shared.services import engines
from shared.services.aggregates.daily import compute_days
from shared.services.aggregates.data_quality import add_manifests
from shared.services.aggregates.days import history_start
from shared.services.aggregates.result import AggregateResult, ProgressFn, report
from shared.services.aggregates.run import Run
from shared.services.aggregates.state import StoreState, load_state, save_state
from shared.services.aggregates.stock_counts import StockCounts
from shared.services.aggregates.stock_current import stock_current
from shared.services.scratch import scratch_folder

DEFAULT_BATCH_LINES = 8_000_000
DEFAULT_FLUSH_BYTES = 16 << 20

Lap = Callable[[str], None]


class Laps:
    """Seconds per step of a run (summed over the stores), and its total."""

    def __init__(self) -> None:
        self.started = self.clock = time.monotonic()
        self.timings: dict[str, float] = {}

    def __call__(self, step: str) -> None:
        """Add the time since the last lap to ``step``."""
        self.timings[step] = round(self.timings.get(step, 0.0) + time.monotonic() - self.clock, 3)
        self.clock = time.monotonic()

    def total(self) -> dict[str, float]:
        self.timings["total"] = round(time.monotonic() - self.started, 3)
        return self.timings


def compute_aggregates(
    *,
    lake: Lake,
    stock: StockStore,
    telemetry: Telemetry,
    scratch: Path,
    now: datetime | None = None,
    memory_limit: str = "512MB",
    threads: int = 2,
    batch_lines: int = DEFAULT_BATCH_LINES,
    flush_bytes: int = DEFAULT_FLUSH_BYTES,
    progress: ProgressFn | None = None,
    open_tables: OpenTables = engines.open_snapshots,
) -> AggregateResult:
    """Bring ``aggregates/`` up to date with the curated zone, the manifests and the stock store (see the
    package's docstring). ``open_tables`` gives the lake's tables as the run sees them (each kept as first
    opened)."""
    laps = Laps()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    with scratch_folder("aggregates-", scratch) as work:  # removed at the end
        run = Run(lake=lake, stock=stock, tables=open_tables(lake), work=work, now=now, memory_limit=memory_limit,
                  threads=threads, batch_lines=batch_lines, flush_bytes=flush_bytes, progress=progress)
        try:
            _update(run, laps)
        finally:
            run.close()
    run.result.timings_s = laps.total()
    report(telemetry, run.result)
    return run.result


def _update(run: Run, lap: Lap) -> None:
    """Every store brought up to date, then the last commits, then the state (last: a crash before it only
    means the next run redoes the work)."""
    state, usable, cursor = load_state(run.lake)
    run.full = not usable or bool(run.writer.replace_whole)
    if run.full:
        state, cursor = {}, None
    run.stock_counts = StockCounts(run.stock, cursor)
    committed = run.committed_dumps()
    present = {} if run.full else run.output_days()
    stores = sorted(set(committed) | set(run.stock.stores()))
    run.result.stores, run.result.full_rebuild = stores, run.full
    lap("discover")
    for store in stores:
        _store(run, state.setdefault(store, StoreState()), store, committed.get(store, set()),
               present.get(store, set()), lap)
    run.writer.drain()
    lap("write")
    run.result.stock_docs_read = run.stock_counts.docs_read
    run.result.stock_stores_read_whole = run.stock_counts.stores_read
    save_state(run.lake, state, run.now, run.stock_counts.cursor)
    lap("state")


def _store(run: Run, st: StoreState, store: str, committed: set[str], present: set[str], lap: Lap) -> None:
    """One store: its new manifests, the days to recompute, then stock, demand and forecast."""
    new_days = add_manifests(run, store, st, committed)
    lap("data_quality")
    lines = st.sales_days()
    days = sorted(lines)
    todo = sorted(set(new_days) | (set(lines) - present)) if not run.full else days
    run.result.skipped_unchanged += len(days) - len(todo)
    if todo:
        run.say(f"{store}: {len(todo)} day(s) to recompute, {len(days) - len(todo)} unchanged")
    history_from = history_start(days).isoformat() if days else ""
    fresh = compute_days(run, store, st, todo, history_from)
    lap("sales_daily")
    stock_current(run, store, st, days, fresh, set(todo))
    lap("stock_forecast")


__all__ = ["DEFAULT_BATCH_LINES", "DEFAULT_FLUSH_BYTES", "compute_aggregates"]
