"""A run's snapshots of the lake's Delta tables (aggregates, alerts, dashboard): each table opened once per
run and queried with delta-rs's engine (see :class:`~shared.adapters.delta_tables.DeltaTables`).

Never read a Delta table through ``DeltaTable.to_pyarrow_dataset()`` / ``to_pyarrow_table()``: in this
environment most processes that did aborted at exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.delta_tables import DeltaTables
from shared.ports.lake import Lake

if TYPE_CHECKING:
    from deltalake import DeltaTable


class Snapshots(DeltaTables):
    """The lake's Delta tables as one run sees them: each opened when first used, then kept."""

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake, keep_open=True)

    def table(self, path: str) -> DeltaTable | None:
        """The table at lake path ``path`` as first opened in this run; None when there was no table."""
        return self.open(path)


__all__ = ["Snapshots"]
