"""Use case: compute the aggregates under ``aggregates/`` (what the timer and ``inventory aggregate`` do).

    curated/sales + items (changed days only) ──DuckDB──▶ sales_daily_sku, sales_daily_category   (store × day)
    manifests (not seen before)               ─────────▶ data_quality                            (per dump)
    sales_daily_sku (16 weeks) + forecast     ─────────▶ forecast, sales_check                   (per store)
    latest items/vendors + the stock store    ─────────▶ stock_current                           (per store, each run)

Every input and output is a Delta Lake table. Inputs are read with delta-rs's engine (the engines' keep-open
tables, :func:`~shared.services.engines.open_snapshots`: each table opened once per run), naming the store (and
the months) as literals so only their files are read; outputs are Delta tables ``aggregates/<name>`` partitioned
by ``store_id``, whose rows a run **replaces** (``Tables.replace``: Delta's replaceWhere): a store's recomputed
days, a store's rows, a dump's data-quality rows. Readers (Synapse, Power BI, the alerts, the dashboard) see the
old rows or the new ones, never a half-written run.

**Incremental.** Sale lines are only ever added, and only by dumps: each manifest lists the UTC days in which
its dump added lines (``tables.sales.days_written``). The state object ``aggregates/_state/sales_inputs.json``
remembers, per store, the dumps whose manifests were processed (with those days). A run recomputes the days
written by dumps it has not seen, and the days with sales that are missing from the daily outputs; the
others are left alone (no commit at all when nothing changed). Only committed dumps count: lines are read
only for dumps that have a manifest (the ingest writes it after its Delta commits), so an ingest still
running, or one that died before its manifest, waits for a later run. The state is written last: a crash
before it only means the next run redoes the work, and replacing rows is idempotent.

**Few commits.** Replacements are collected per output and committed together (the predicates OR-ed) once
they reach ``flush_bytes`` or at the end, by one background thread while DuckDB computes the next batch: a
run over 50 stores makes a handful of commits per output, not one per store or day.

**Bounded.** Store by store, days in batches of at most ``batch_lines`` sale lines (counted from the
manifests); the batch's lines stream from delta-rs into DuckDB, which runs with ``memory_limit``, 2 threads
and a spill folder under ``scratch``; at most ``flush_bytes`` of results wait per output.

**Demand.** The forecast and the demand columns of stock_current use the last 16 weeks of sales_daily_sku:
the days recomputed in this run from memory, the others read back from the table. A store whose dumps and
skus (the latest items and the skus the stock store counts) did not change keeps its forecast, and
stock_current reuses the demand columns of its previous rows; the stock columns are refreshed from the stock
store on every run.

The modules, in the order a run meets them:

- ``compute.py``       the entry point :func:`compute_aggregates`: discovery, each store in turn, the state
- ``run.py``           what the steps share (tables, DuckDB, writer, result) and the discovery of the work
- ``state.py``         the state object: per store, the dumps seen and the days they wrote
- ``data_quality.py``  new manifests -> data_quality rows, and the days their dumps wrote
- ``daily.py``         sales_daily_sku and sales_daily_category, in batches of days
- ``stock_current.py`` stock_current, reusing or recomputing the demand columns
- ``demand.py``        the 16 weeks of history, the forecast and the sales check
- ``writer.py``        the background writer: replacements collected per output, few commits
- ``result.py``, ``days.py``, ``schemas.py``: the run's result and event; days and times; Arrow schemas
"""

from shared.services.aggregates.compute import DEFAULT_BATCH_LINES, DEFAULT_FLUSH_BYTES, compute_aggregates
from shared.services.aggregates.days import days_clause
from shared.services.aggregates.result import AggregateResult
from shared.services.aggregates.state import StoreState, aggregated_stores, load_state

__all__ = ["DEFAULT_BATCH_LINES", "DEFAULT_FLUSH_BYTES", "AggregateResult", "StoreState", "aggregated_stores",
           "compute_aggregates", "days_clause", "load_state"]
