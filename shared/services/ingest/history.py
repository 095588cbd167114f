"""A night costs what the night brought: which lines of a store's fact tables an ingest reads.

A store's dump is a full snapshot of its database, so each night's dump holds every earlier night's lines
again. Reading, checking and comparing all of them with the lake each night made a night cost as much as
the store's whole history. Instead, per store and fact table (``sales``, ``receipts``):

- **The window.** A *high-water mark* ``hwm`` splits the table by its event time *as the dump stores it*
  (text): lines with ``event_time > hwm`` are the window, read and ingested as always; the others are the
  history. ``hwm`` is a date two days before the snapshot (``YYYY-MM-DD``: every ISO time of that day and
  later compares greater), so late lines of the last days still go through the rules.
- **The check.** The history is summarised inside SQLite, without leaving the reader: the row count, the
  sums of the numeric columns, of the event times (``unixepoch``) and of the lengths of the text columns
  (:func:`digest_sql`). A *full* night reads everything and records the digest of its history in the
  lake's state object (``state/ingest/store=<id>.json``). On the following nights the same digest of the
  same history is computed; when it matches, the history is the one already ingested and only the window
  is read. When it differs (a line edited, added or removed below the mark), the night falls back to the
  full read and comparison for that table (:func:`plan_reads`).
- **A full night** also comes every ``INGEST_FULL_CHECK_DAYS`` (7), or when the state is missing or from
  another version of the digest; it resets the mark (so the window stays a few days long) and it is the
  night on which changes the digest cannot see are found and reported as ``changed_since_ingested``.

Failure modes, and what bounds them:

- An edit that keeps every summed quantity equal (e.g. one sku swapped for another of the same length, or
  two quantities edited by +1 and -1) passes the check: it is found by the next full night, at most
  ``INGEST_FULL_CHECK_DAYS`` later, reported then like any changed line.
- A line whose stored time is not ISO text (a number, a malformed value) sorts by SQLite's rules; it is in
  the history or in the window consistently, so it is either checked or read, never missed.
- A store that rewrites its history every night (a POS that reorders or reformats old lines) gets a full
  night each night: correct, at the old cost. The manifest says which kind of night it was, and why.
- Stock, items and vendors are snapshots and are always read whole (they are small).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.core import layout
from shared.core.ids import utc_iso
from shared.core.schema import Table
from shared.core.sql import literal
from shared.ports.dumps import OpenDump, ReadLimits
from shared.ports.lake import Lake

STATE_VERSION = 2  # of the digest: a state of another version means a full night
WINDOW_LAG_DAYS = 2  # the mark: this many days before the snapshot's day


@dataclass(frozen=True)
class ReadPlan:
    """How tonight's ingest reads one fact table."""

    table: str
    hwm: str  # the window: lines whose event time (as stored) compares greater
    expected: list[str] | None  # the history's digest recorded by the last full night; None: a full read
    reason: str  # why this kind of night, for the manifest

    @property
    def incremental(self) -> bool:
        return self.expected is not None


def state_path(store_id: str) -> str:
    return layout.ingest_state(store_id)


def load_state(lake: Lake, store_id: str) -> dict:
    """The store's history state, or an empty one (missing, unreadable or of another digest version)."""
    try:
        state = json.loads(lake.get_bytes(state_path(store_id)))
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def save_state(lake: Lake, store_id: str, state: dict) -> None:
    lake.put_bytes(state_path(store_id), json.dumps({**state, "version": STATE_VERSION}, indent=2).encode())


def window_mark(snapshot_at: datetime) -> str:
    """The mark for a full night: the day ``WINDOW_LAG_DAYS`` before the snapshot's (UTC) day."""
    return (snapshot_at.astimezone(UTC).date() - timedelta(days=WINDOW_LAG_DAYS)).isoformat()


def plan_reads(state: dict, tables: list[Table], *, snapshot_at: datetime, now: datetime,
               full_check_days: float) -> dict[str, ReadPlan]:
    """Per fact table: read the window only (the state's mark and digest, recorded by a full night less than
    ``full_check_days`` ago), or everything (a full night, with a new mark)."""
    plans = {}
    for table in tables:
        recorded = state.get("tables", {}).get(table.name)
        mark = window_mark(snapshot_at)
        if not recorded:
            plans[table.name] = ReadPlan(table.name, mark, None, "no history recorded for this store yet")
            continue
        full_at = datetime.fromisoformat(recorded["full_at"].replace("Z", "+00:00"))
        if now - full_at >= timedelta(days=full_check_days):
            plans[table.name] = ReadPlan(table.name, mark, None, f"the last full read was on {recorded['full_at']} "
                                         f"(INGEST_FULL_CHECK_DAYS={full_check_days:g})")
            continue
        plans[table.name] = ReadPlan(table.name, recorded["hwm"], list(recorded["digest"]),
                                     f"history up to {recorded['hwm']} as recorded on {recorded['full_at']}")
    return plans


def history_filter(table: Table, hwm: str) -> str:
    """The history's rows: NOT in the window (NULL event times included)."""
    return f"({table.event_time} <= {literal(hwm)} OR {table.event_time} IS NULL)"


def window_sql(table: Table, query: str, hwm: str) -> str:
    """The table's query narrowed to the window."""
    return f"SELECT * FROM ({query}\n) WHERE {table.event_time} > {literal(hwm)}"


def digest_columns(table: Table, present: set[str] | None) -> list[str]:
    """The digest's SQL expressions: the row count; the sums of the numeric columns that are not keys (the
    quantities and prices: ``line_no`` left out), of the lengths of the required text columns (ids, skus)
    and of the event times (``unixepoch``). Only columns the query is sure to have: the required ones, and
    the others ``present`` names (the dump's own columns, when no mapping query is used). Each term was
    weighed by its cost: the digest of 2M sale lines takes ~0.45 s in SQLite (a bare scan 0.13 s)."""
    have = [c for c in table.columns if c.required or (present is not None and c.name in present)]
    parts = ["count(*)"]
    parts += [f"total({c.name})" for c in have if c.numeric and c.name not in table.key]
    texts = [c.name for c in have if c.required and not c.numeric and c.name != table.event_time]
    if texts:
        parts.append("total(" + " + ".join(f"length({t})" for t in texts) + ")")
    parts.append(f"total(unixepoch({table.event_time}))")
    return parts


def digest_sql(table: Table, query: str, hwm: str, present: set[str] | None) -> str:
    """One row: the digest of the history (``d0``, ``d1``, ...), computed by SQLite in one scan."""
    cols = ", ".join(f"{expr} AS d{i}" for i, expr in enumerate(digest_columns(table, present)))
    return f"SELECT {cols} FROM ({query}\n) WHERE {history_filter(table, hwm)}"


def digest_job(table: Table, query: str, hwm: str, present: set[str] | None) -> dict:
    """A reader job (see ``DumpReader.read``) returning the digest row as text."""
    n = len(digest_columns(table, present))
    return {"table": f"{table.name}#history", "sql": digest_sql(table, query, hwm, present),
            "want": [f"d{i}" for i in range(n)], "required": [], "numeric": []}


def digest_of(batches) -> list[str]:  # noqa: ANN001 - the reader's batches of a digest job
    """The digest row as a list of text values ("" for NULL)."""
    rows = [row for batch in batches for row in batch.to_pylist()]
    if len(rows) != 1:
        raise RuntimeError(f"a history digest returned {len(rows)} rows")
    return ["" if v is None else str(v) for v in rows[0].values()]


def recorded(plan: ReadPlan, digest: list[str], *, dump_id: str, now: datetime) -> dict:
    """The state entry a full night leaves for its table."""
    return {"hwm": plan.hwm, "digest": digest, "full_at": utc_iso(now), "dump_id": dump_id}


def history_rows(digest: list[str]) -> int:
    """The history's row count (the digest's first value)."""
    return int(float(digest[0] or 0))


class HistoryCheck:
    """History digests computed by a reader child of their own, in a thread, while the ingest does other
    work: on a window night while the window is read (the digest is a scan of the whole table, the window's
    read another: they overlap), on a full night while the tables are committed (the second core is idle
    then). A digest that could not be computed (the child failed, timed out) is simply missing: the window is
    then not trusted, and a full night records no history (the next night reads whole)."""

    NICE = 10

    def __init__(self, db: Path, limits: ReadLimits, jobs: Callable[[Callable[[str], dict | None]], list[dict]],
                 *, open_dump: OpenDump) -> None:
        """Start at once; ``jobs`` builds the digest jobs from the dump's tables (``DumpInfo.find``)."""
        from dataclasses import replace

        self.digests: dict[str, list[str]] = {}
        self.error: str | None = None
        # The ingest's own reader runs quick_check; this one yields the CPU to the ingest when both want it.
        self._reader = open_dump(db, replace(limits, quick_check=False, nice=self.NICE))
        self._thread = threading.Thread(target=self._run, args=(jobs,), daemon=True, name="history-check")
        self._thread.start()

    def _run(self, jobs: Callable[[Callable[[str], dict | None]], list[dict]]) -> None:
        try:
            with self._reader as reader:
                for name, _schema, batches in reader.read(jobs(reader.info.find)):
                    self.digests[name.split("#")[0]] = digest_of(batches)
        except Exception as exc:
            self.error = str(exc)

    def result(self) -> dict[str, list[str]]:
        """The digests by table (waits for the child)."""
        self._thread.join()
        return dict(self.digests)

    def close(self) -> None:
        """Stop the child if it still runs (the ingest failed or was quarantined meanwhile)."""
        self._reader.__exit__(None, None, None)
        self._thread.join(timeout=10)


def history_note(plan: ReadPlan, digest: list[str] | None) -> dict:
    """The manifest's account of how a fact table was read tonight."""
    note = {"read": "window" if plan.incremental else "whole", "mark": plan.hwm, "reason": plan.reason}
    if plan.incremental and digest is not None:
        note["history_rows_checked"] = history_rows(digest)  # not read: summed in SQLite, equal to the record
    return note


def record_history(lake: Lake, store_id: str, plans: dict[str, ReadPlan], digests: dict[str, list[str]], *,
                   dump_id: str) -> None:
    """After a dump's commits: the tables read whole leave their mark and history digest for the next nights
    (called under the store's lock)."""
    state = load_state(lake, store_id)
    full = {name: plan for name, plan in plans.items() if not plan.incremental and name in digests}
    if not full:
        return
    now = datetime.now(UTC)
    state["tables"] = {**state.get("tables", {}),
                       **{name: recorded(plan, digests[name], dump_id=dump_id, now=now) for name, plan in full.items()}}
    save_state(lake, store_id, state)


def history_changed(plans: dict[str, ReadPlan], digests: dict[str, list[str]]) -> list[str]:
    """The tables read as a window whose history digest is not the one the last full read recorded (or could
    not be computed)."""
    return [name for name, plan in plans.items() if plan.incremental and digests.get(name) != plan.expected]


def read_whole_plan(plan: ReadPlan, digest: list[str] | None, snapshot_at: datetime) -> ReadPlan:
    """The plan for a table whose history differs from the one recorded: read whole after all, with a new mark."""
    return ReadPlan(plan.table, window_mark(snapshot_at), None, f"the history up to {plan.hwm} differs from the "
                    f"one recorded on the last full read ({_differs(plan, digest)})")


def _differs(plan: ReadPlan, digest: list[str] | None) -> str:
    """What differs, for the manifest: e.g. ``rows 1,999,980 -> 1,999,978``."""
    if digest is None:
        return "the check could not be computed"
    was, now = history_rows(plan.expected or ["0"]), history_rows(digest)
    return f"rows {was:,} -> {now:,}" if was != now else "same row count, other values"


__all__ = ["HistoryCheck", "ReadPlan", "digest_job", "digest_of", "history_changed", "history_note", "history_rows",
           "load_state", "plan_reads", "read_whole_plan", "record_history", "recorded", "save_state", "state_path",
           "window_mark", "window_sql"]
