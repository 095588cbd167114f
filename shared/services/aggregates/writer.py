"""The background committing writer: replaces rows of the aggregates' Delta tables in few commits."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from shared.core.aggregates import AGGREGATES_VERSION, OUTPUTS, PARTITION_BY, arrow_schema
from shared.ports.tables import Tables
from shared.services.aggregates.result import AggregateResult

if TYPE_CHECKING:
    import pyarrow as pa


class Writer:
    """Replaces rows of the aggregates' Delta tables, in few commits, in the background.

    :meth:`replace` collects (rows, predicate) per output; when an output's rows reach ``flush_bytes`` (and at
    :meth:`drain`) they become one commit whose predicate is the collected predicates OR-ed. One thread
    commits, so commits to a table never race each other (and delta-rs releases the GIL while it writes, so
    DuckDB computes the next batch meanwhile); at most two commits wait for it. An output listed in
    ``replace_whole`` (its table's columns changed) is replaced whole by its first commit.
    """

    def __init__(self, tables: Tables, result: AggregateResult, *, flush_bytes: int,
                 replace_whole: set[str]) -> None:
        self.tables, self.result, self.flush_bytes = tables, result, flush_bytes
        self.replace_whole = set(replace_whole)
        self.pending: dict[str, tuple[list[pa.Table], list[str]]] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggregates-write")
        self.running: list[Future] = []
        self.lock = threading.Lock()

    def replace(self, output: str, table: pa.Table, where: str) -> None:
        """Replace the rows of ``output`` matching ``where`` by ``table`` (every row of which matches it)."""
        schema = arrow_schema(output)
        tables, clauses = self.pending.setdefault(output, ([], []))
        tables.append(table.select(schema.names).cast(schema))
        clauses.append(where)
        if sum(t.nbytes for t in tables) >= self.flush_bytes:
            self.flush(output)

    def flush(self, output: str) -> None:
        import pyarrow as pa

        tables, clauses = self.pending.pop(output, ([], []))
        if not clauses:
            return
        predicate: str | None = clauses[0] if len(clauses) == 1 else " OR ".join(f"({c})" for c in clauses)
        if output in self.replace_whole:
            predicate = None
            self.replace_whole.discard(output)
        while len(self.running) >= 2:
            self.running.pop(0).result()  # re-raises a failed commit
        self.running.append(self.pool.submit(self._commit, output, pa.concat_tables(tables), predicate))

    def _commit(self, output: str, table: pa.Table, predicate: str | None) -> None:
        self.tables.replace(OUTPUTS[output].path, table, predicate, partition_by=PARTITION_BY,
                            metadata={"writer": "compute_aggregates", "aggregates_version": str(AGGREGATES_VERSION)})
        with self.lock:
            self.result.commits[output] = self.result.commits.get(output, 0) + 1
            self.result.rows_written[output] = self.result.rows_written.get(output, 0) + table.num_rows

    def drain(self) -> None:
        """Commit everything collected and wait for every commit (the end of a run)."""
        for output in list(self.pending):
            self.flush(output)
        running, self.running = self.running, []
        for f in running:
            f.result()

    def close(self) -> None:
        try:
            for f in self.running:  # what is under way ends; what was not flushed is dropped (a failed run)
                f.result()
        finally:
            self.pool.shutdown(wait=True)


__all__ = ["Writer"]
