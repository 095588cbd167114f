"""The stock half of the alerts: NegativeStock and LowStock per (store, sku), kept from one run of the alert timer
to the next so that a run reads from the stock store only what changed since the last one.

A sku's stock alerts depend on its on-hand count, the item master and vendors of the store's baseline dump,
and the store's demand forecast. So a run (:func:`stock_alerts_now`):

- asks the stock store for the documents written since its cursor (:meth:`StockStore.changes`) and
  re-evaluates only those skus, keeping the previous run's alerts for the others;
- evaluates a whole store again when its baseline dump moved (its point read, once per store with changes) or
  its forecast did (the aggregates' demand key for the store, from their state object): about once a day;
- evaluates every store whole when it has no cursor (the first run, a lost state) or too much changed since
  (more than :data:`~shared.ports.stock.MAX_CHANGES` documents: the timer was off for a long time).

Costs, at 1,000 stores × 5,000 skus: the whole stock is 5M documents; a 15-minute run after this change reads
the documents the sales of those 15 minutes touched, one baseline document per store with changes, and the
5,000 documents of each store whose forecast changed since (docs/cost.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.core import layout
from shared.core.aggregates import DEFAULT_LEAD_TIME_DAYS, OUTPUTS
from shared.core.alerts import Alert, ItemStock, stock_alerts
from shared.core.sql import literal
from shared.ports.lake import Lake
from shared.ports.stock import BaselineInfo, StockDoc, StockStore
from shared.ports.tables import Tables
from shared.services.aggregates.state import load_state
from shared.services.engines import open_snapshots
from shared.services.lake_tables import dump_rows
from shared.services.stock_changes import changes_by_store

_KIND_ORDER = {"NegativeStock": 0, "LowStock": 1}  # the order stock_alerts gives a sku's alerts


@dataclass
class StockAlerts:
    """The stock alerts true now, the state to keep for the next run, and what the stock store was asked."""

    alerts: list[Alert]
    state: dict[str, Any]
    docs_read: int = 0  # stock documents read (the changes, plus whole stores evaluated again)
    stores_read: int = 0  # stores whose every document was read


def stock_alerts_now(lake: Lake, stock: StockStore, tables: Tables, stores: Sequence[str],
                     previous: dict[str, Any] | None) -> StockAlerts:
    """The stock alerts of ``stores`` now, from the previous run's state (``previous``, None: none)."""
    previous = previous or {}
    found = changes_by_store(stock, previous.get("cursor"))
    changed = found.by_store or {}
    # No state, a foreign cursor, or too much changed (by_store None): no record is kept, every store is whole.
    kept = previous.get("stores", {}) if found.by_store is not None else {}
    demand_keys = _demand_keys(lake)
    out = StockAlerts([], {"cursor": found.cursor, "stores": {}}, docs_read=found.docs_read)
    for store_id in stores:
        record = _store_alerts(lake, stock, tables, store_id, changed.get(store_id, []), kept.get(store_id),
                               demand_keys.get(store_id, ""), out)
        out.state["stores"][store_id] = record
        out.alerts += [_from_json(store_id, a) for a in record["alerts"]]
    return out


def _store_alerts(lake: Lake, stock: StockStore, tables: Tables, store_id: str, docs: list[StockDoc],
                  record: dict[str, Any] | None, demand_key: str, out: StockAlerts) -> dict[str, Any]:
    """One store's record for the state: its baseline dump, its demand key and its stock alerts (as JSON)."""
    if record is not None and not docs and record.get("demand") == demand_key:
        return record  # nothing changed
    base = stock.baseline(store_id)
    dump_id = base.dump_id if base else None
    whole = record is None or record.get("dump") != dump_id or record.get("demand") != demand_key
    if whole:  # evaluate the whole store again
        docs = stock.stock(store_id)
        out.docs_read += len(docs)
        out.stores_read += 1
    alerts = stock_alerts(item_stock(lake, stock, store_id, tables, docs=docs, base=base))
    if not whole:
        again = {d.sku for d in docs}
        alerts += [_from_json(store_id, a) for a in record["alerts"] if a["sku"] not in again]  # type: ignore[index]
        alerts.sort(key=lambda a: (a.sku or "", _KIND_ORDER.get(a.kind, 9)))
    return {"dump": dump_id, "demand": demand_key, "alerts": [_to_json(a) for a in alerts]}


def _demand_keys(lake: Lake) -> dict[str, str]:
    """Per store, what its forecast was computed from (the aggregates' state; empty before their first run)."""
    stores, usable, _cursor = load_state(lake)
    return {s: st.demand_key for s, st in stores.items()} if usable else {}


def _to_json(a: Alert) -> dict[str, Any]:
    return {"kind": a.kind, "severity": a.severity, "sku": a.sku, "reason": a.reason, "dims": dict(a.dimensions)}


def _from_json(store_id: str, j: dict[str, Any]) -> Alert:
    return Alert(j["kind"], j["severity"], store_id, j["reason"], j["sku"], j["sku"], j["dims"])


# --- one store's items, counts and demand ------------------------------------------------------------------

def _baseline_rows(tables: Tables, table: str, store_id: str, dump_id: str, columns: str) -> list[dict]:
    """The rows of ``curated/<table>`` that the store's baseline dump committed (none: an empty list)."""
    found = dump_rows(tables, layout.curated(table), store_id, dump_id, [c.strip() for c in columns.split(",")])
    return found.to_pylist() if found is not None else []


def _mean_demand(tables: Tables, store_id: str) -> dict[str, float]:
    """sku -> the forecast's mean daily units over its horizon (empty before the first aggregates run)."""
    found = tables.read(f"SELECT sku, avg(mean) AS mean FROM f WHERE store_id = {literal(store_id)} GROUP BY sku",
                        f=OUTPUTS["forecast"].path)
    if found is None:
        return {}
    return {sku: float(m) for sku, m in zip(found.column("sku").to_pylist(), found.column("mean").to_pylist(),
                                            strict=True) if m is not None}


def item_stock(lake: Lake, stock: StockStore, store_id: str, tables: Tables | None = None, *,
               docs: Iterable[StockDoc] | None = None, base: BaselineInfo | None = None) -> list[ItemStock]:
    """Live on-hand per sku joined with the item master of the store's baseline dump (name, active, reorder
    point and quantity, vendor and lead time) and, when aggregates exist, the demand forecast. ``tables``: the
    run's snapshots of the Delta tables (a fresh one by default); ``docs`` and ``base``: the stock documents to
    evaluate and the store's baseline, when the caller has read them (by default every document is read)."""
    tables = tables or open_snapshots(lake)
    if docs is None:
        docs, base = stock.stock(store_id), stock.baseline(store_id)
    items: dict[str, dict] = {}
    lead: dict[str, int] = {}
    if base is not None:
        items = {r["sku"]: r for r in _baseline_rows(tables, "items", store_id, base.dump_id,
                                                     "sku, name, active, reorder_point, reorder_qty, vendor_id")}
        lead = {r["vendor_id"]: int(r["lead_time_days"])
                for r in _baseline_rows(tables, "vendors", store_id, base.dump_id, "vendor_id, lead_time_days")
                if r["lead_time_days"] is not None}
    demand = _mean_demand(tables, store_id)
    rows = []
    for d in docs:
        it = items.get(d.sku)
        if it is None:  # sold or received but not in the item master: no reorder point to compare with
            rows.append(ItemStock(store_id, d.sku, "", True, d.on_hand, 0))
            continue
        rows.append(ItemStock(store_id, d.sku, it["name"] or "", it["active"] is not False, d.on_hand,
                              int(it["reorder_point"] or 0), int(it["reorder_qty"] or 0), it["vendor_id"] or "",
                              lead.get(it["vendor_id"], DEFAULT_LEAD_TIME_DAYS), demand.get(d.sku)))
    return _with_suggested_orders(rows)


def _with_suggested_orders(rows: list[ItemStock]) -> list[ItemStock]:
    """Demand over lead time + safety days, less what is on hand, in whole cases (vectorised)."""
    forecasted = [i for i, r in enumerate(rows) if r.mean_daily_demand is not None]
    if not forecasted:
        return rows
    import numpy as np

    from shared.core.forecast import cover_and_reorder

    pick = [rows[i] for i in forecasted]
    _cover, orders = cover_and_reorder(np.array([r.on_hand for r in pick]),
                                       np.array([r.mean_daily_demand for r in pick]),
                                       np.array([r.lead_time_days for r in pick]),
                                       np.array([r.reorder_qty for r in pick]))
    for i, order in zip(forecasted, orders.tolist(), strict=True):
        rows[i] = replace(rows[i], suggested_order=int(order))
    return rows


__all__ = ["StockAlerts", "item_stock", "stock_alerts_now"]
