"""The aggregates timer end to end: two generated stores ingested into a lake, their stock store rebased, then
`compute_aggregates`. Every output is checked against sums computed here independently, in pandas, from the
curated Delta tables (not with the service's DuckDB SQL); then incrementality: a second run commits nothing
but the stock, a new dump recomputes only the days it touched (the commit's predicate names them), days
missing from the outputs are recomputed, and lines of a dump without a manifest wait for it."""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shared.adapters.delta_tables import DeltaTables
from shared.adapters.lake_folder import FolderLake
from shared.adapters.stock_sqlite import SqliteStockStore
from shared.adapters.telemetry import MemoryTelemetry
from shared.core.aggregates import OUTPUTS, STATE_PATH, arrow_schema, schemas_markdown, synapse_views_sql
from shared.core.events import parse_event
from shared.core.forecast import HORIZON, cover_and_reorder, forecast_demand
from shared.local.generator import generate_store
from shared.ports.lake import Lake
from shared.services.aggregates import compute_aggregates
from shared.services.ingest import ingest_dump
from shared.services.reconcile_stock import reconcile_after_ingest
from tests.support.delta import delta_rows

ROOT = Path(__file__).resolve().parents[2]
STORES = ("S001", "S002")
DAYS = 42
END = date(2026, 11, 26)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NO_COST_SKUS = 5  # items whose unit_cost is NULL in the dumps


def _prepare_dump(path: Path) -> list[str]:
    """Make the generated dump exercise the definitions: items without a cost, sale lines without a price."""
    con = sqlite3.connect(path)
    try:
        skus = [r[0] for r in con.execute("SELECT sku FROM items WHERE sku IN (SELECT sku FROM sales) ORDER BY sku "
                                          f"LIMIT {NO_COST_SKUS}")]
        con.executemany("UPDATE items SET unit_cost = NULL WHERE sku = ?", [(s,) for s in skus])
        con.execute("UPDATE sales SET unit_price = NULL WHERE rowid % 9 = 0")
        con.commit()
    finally:
        con.close()
    return skus


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A folder lake with both stores ingested and a stock store rebased on them, plus a few later sales."""
    root = tmp_path_factory.mktemp("aggregates")
    lake = FolderLake(root / "lake")
    stock = SqliteStockStore(root / "stock.sqlite")
    no_cost = {}
    for n, store in enumerate(STORES, start=1):
        truth = generate_store(root / f"{store}.sqlite", store, sales_lines=5000, days=DAYS, end=END, seed=n,
                               dirty_rate=0.02)
        no_cost[store] = _prepare_dump(truth.path)
        result = ingest_dump(truth.path, store, lake=lake, telemetry=MemoryTelemetry(), scratch=root)
        assert result.status == "ingested"
        reconcile_after_ingest(result, lake=lake, stock=stock, telemetry=MemoryTelemetry())
    # Sales after the snapshot move the stock store away from the dump's counts.
    sku = stock.stock("S001")[0].sku
    event = parse_event(f'{{"eventId": "pos-1", "storeId": "S001", "type": "sale", "occurredAt": '
                        f'"2026-11-27T09:00:00Z", "lines": [{{"sku": "{sku}", "qty": 3}}]}}', now=NOW)
    assert stock.apply("S001", [event]).applied == ["pos-1"]
    stock.close()
    return {"root": root, "no_cost": no_cost}


@pytest.fixture
def env(base, tmp_path):
    """A private copy of the base lake and stock store for one test."""
    shutil.copytree(base["root"] / "lake", tmp_path / "lake")
    shutil.copy(base["root"] / "stock.sqlite", tmp_path / "stock.sqlite")
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    yield {"lake": FolderLake(tmp_path / "lake"), "stock": stock, "tmp": tmp_path, "no_cost": base["no_cost"],
           "sources": base["root"]}
    stock.close()


def run(env, **kw):
    telemetry = MemoryTelemetry()
    result = compute_aggregates(lake=env["lake"], stock=env["stock"], telemetry=telemetry,
                                scratch=env["tmp"] / "scratch", now=kw.pop("now", NOW), **kw)
    return result, telemetry


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with delta-rs's string_view columns as plain strings (what the writer's schemas say)."""
    return table.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type)
                                 for f in table.schema]))


def read_output(lake: Lake, name: str) -> pd.DataFrame:
    """Every row of the Delta table ``aggregates/<name>``, which has exactly the documented schema and is
    partitioned by store."""
    table = DeltaTables(lake).open(f"aggregates/{name}")
    assert table is not None, f"no {name} table"
    assert pa.schema(table.schema().to_arrow()) == arrow_schema(name), name
    assert table.metadata().partition_columns == ["store_id"]
    return _plain(delta_rows(lake, f"aggregates/{name}")).to_pandas()


def curated(lake: Lake, table: str) -> pd.DataFrame:
    return _plain(delta_rows(lake, f"curated/{table}")).to_pandas()


def sorted_rows(lake: Lake, *names: str) -> dict[str, list[dict]]:
    """Each output's rows in a fixed order: what a rebuild or another batching must reproduce exactly."""
    out = {}
    for name in names:
        df = read_output(lake, name)
        keys = list(OUTPUTS[name].grain)
        out[name] = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()}
                     for r in df.sort_values(keys, ignore_index=True, na_position="first").to_dict("records")]
    return out


def versions(lake: Lake, *names: str) -> dict[str, int | None]:
    """The current version of each output's Delta table (None: no table)."""
    tables = DeltaTables(lake)
    return {name: (t.version() if (t := tables.open(f"aggregates/{name}")) is not None else None)
            for name in names}


def last_predicate(lake: Lake, name: str) -> str:
    """The predicate of the latest commit to ``aggregates/<name>`` (what it replaced)."""
    (entry,) = DeltaTables(lake).open(f"aggregates/{name}").history(1)
    return entry["operationParameters"]["predicate"]


def expected_daily_sku(lake: Lake) -> pd.DataFrame:
    """sales_daily_sku computed in pandas with Decimal arithmetic, from the curated files."""
    sales = curated(lake, "sales")
    items = curated(lake, "items")[["dump_id", "sku", "category", "unit_price", "unit_cost"]]
    df = sales.merge(items.rename(columns={"unit_price": "item_price"}), on=["dump_id", "sku"], how="left")
    df["price"] = [p if p is not None and not pd.isna(p) else ip for p, ip in zip(df["unit_price"], df["item_price"],
                                                                                  strict=True)]
    df["revenue"] = [Decimal(q) * p for q, p in zip(df["qty"], df["price"], strict=True)]
    df["cost_line"] = [Decimal(q) * c if c is not None and not pd.isna(c) else None
                       for q, c in zip(df["qty"], df["unit_cost"], strict=True)]
    rows = []
    for (store, day, sku), g in df.groupby(["store_id", "date", "sku"]):
        costs = list(g["cost_line"])
        cost = sum(costs, Decimal(0)) if all(c is not None for c in costs) else None
        revenue = sum(g["revenue"], Decimal(0))
        rows.append({"store_id": store, "date": day, "sku": sku, "category": g["category"].iloc[0],
                     "units": int(g["qty"].sum()), "lines": len(g), "revenue": revenue, "cost": cost,
                     "margin": None if cost is None else revenue - cost})
    return pd.DataFrame(rows)


def _records(df: pd.DataFrame, keys: list[str]) -> dict:
    out = {}
    for r in df.to_dict("records"):
        out[tuple(r[k] for k in keys)] = {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                                          for k, v in r.items() if k not in keys}
    return out


# --- the outputs, against independent sums --------------------------------------------------------------------

def test_sales_daily_sku_and_category_match_independent_sums(env):
    result, telemetry = run(env)
    lake = env["lake"]
    expected = expected_daily_sku(lake)
    got = read_output(lake, "sales_daily_sku")
    keys = ["store_id", "date", "sku"]
    assert _records(got, keys) == _records(expected, keys)
    assert result.sales_lines == int(expected["lines"].sum()) == len(curated(lake, "sales"))
    assert result.full_rebuild and result.skipped_unchanged == 0
    assert result.partitions_recomputed == expected.groupby(["store_id", "date"]).ngroups

    # Category level, from the expected sku rows.
    rows = []
    for (store, day, category), g in expected.groupby(["store_id", "date", "category"], dropna=False):
        costed = g[g["cost"].notna()]
        rows.append({"store_id": store, "date": day, "category": category, "units": int(g["units"].sum()),
                     "lines": int(g["lines"].sum()), "skus": len(g), "revenue": sum(g["revenue"], Decimal(0)),
                     "cost": sum(costed["cost"], Decimal(0)) if len(costed) else None,
                     "margin": sum(costed["margin"], Decimal(0)) if len(costed) else None,
                     "revenue_with_cost": sum(costed["revenue"], Decimal(0)) if len(costed) else None})
    got_cat = read_output(lake, "sales_daily_category")
    keys = ["store_id", "date", "category"]
    assert _records(got_cat, keys) == _records(pd.DataFrame(rows), keys)

    # One commit per output for both stores (a run does not make a commit per store or day).
    assert result.commits == {name: 1 for name in OUTPUTS}
    assert result.rows_written["sales_daily_sku"] == len(got)
    event = next(p for name, p in telemetry.events if name == "AggregatesComputed")
    assert event["partitionsRecomputed"] == result.partitions_recomputed and event["stores"] == 2
    assert event["commits"] == len(OUTPUTS)


def test_margin_is_null_exactly_where_the_cost_is_unknown(env):
    run(env)
    got = read_output(env["lake"], "sales_daily_sku")
    no_cost = {(s, k) for s, skus in env["no_cost"].items() for k in skus}
    unknown = np.array([(s, k) in no_cost for s, k in zip(got["store_id"], got["sku"], strict=True)])
    assert unknown.any() and (~unknown).any()
    assert got.loc[unknown, "cost"].isna().all() and got.loc[unknown, "margin"].isna().all()
    assert got.loc[~unknown, "cost"].notna().all() and got.loc[~unknown, "margin"].notna().all()
    assert got.loc[unknown, "revenue"].notna().all()  # revenue does not depend on the cost


def test_data_quality_repeats_the_manifests(env):
    import json

    run(env)
    got = read_output(env["lake"], "data_quality")
    for store in STORES:
        (manifest_file,) = (env["lake"].root / f"manifests/store={store}").glob("*.json")
        manifest = json.loads(manifest_file.read_text())
        rows = got[got["dump_id"] == manifest["dump_id"]]
        assert set(rows["store_id"]) == {store}
        assert set(rows["date"].astype(str)) == {manifest["snapshot_at"][:10]}
        for table, t in manifest["tables"].items():
            mine = rows[rows["table_name"] == table]
            total = mine[mine["rule"] == ""].iloc[0]
            assert (total["rows_in"], total["curated"], total["rejected"], total["rule_count"]) == (
                t["input"], t["curated"], t["rejected"], t["rejected"])
            assert dict(zip(mine[mine["rule"] != ""]["rule"], mine[mine["rule"] != ""]["rule_count"],
                            strict=True)) == t["by_rule"]
            assert (mine["action"] == "total").sum() == 1
        sales = rows[(rows["table_name"] == "sales") & (rows["rule"] == "unknown_sku")]
        assert list(sales["action"]) == ["reject"]


def _history(lake: FolderLake, store: str) -> tuple[list[str], np.ndarray, date, date]:
    sales = curated(lake, "sales")
    sales = sales[sales["store_id"] == store]
    items = curated(lake, "items")
    items = items[items["store_id"] == store]
    last = max(sales["date"])
    first = max(min(sales["date"]), last - timedelta(days=16 * 7 - 1))
    skus = sorted(set(items["sku"]) | set(sales["sku"]))
    hist = np.zeros((len(skus), (last - first).days + 1))
    index = {s: i for i, s in enumerate(skus)}
    for (sku, day), units in sales.groupby(["sku", "date"])["qty"].sum().items():
        if day >= first:
            hist[index[sku], (day - first).days] += units
    return skus, hist, first, last


def test_stock_current_and_forecast_follow_the_definitions(env):
    run(env)
    lake, stock = env["lake"], env["stock"]
    got = read_output(lake, "stock_current")
    fc = read_output(lake, "forecast")
    items_all = curated(lake, "items")
    vendors_all = curated(lake, "vendors")
    for store in STORES:
        mine = got[got["store_id"] == store].set_index("sku")
        docs = {d.sku: d.on_hand for d in stock.stock(store)}
        items = items_all[items_all["store_id"] == store].set_index("sku")
        assert set(mine.index) == set(items.index) | set(docs)
        # on_hand is the stock store's count (the S001 sale after the snapshot included), not the dump's.
        for sku, row in mine.iterrows():
            assert (None if pd.isna(row["on_hand"]) else int(row["on_hand"])) == docs.get(sku), sku
        # low_stock: exactly the rule of docs/ingestion.md.
        for sku, row in mine.iterrows():
            it = items.loc[sku]
            on_hand = docs.get(sku)
            want = bool(it["active"]) and it["reorder_point"] > 0 and on_hand is not None and \
                on_hand <= it["reorder_point"]
            assert bool(row["low_stock"]) == want, sku
        assert mine["low_stock"].any()
        # Lead times from the vendors snapshot, 7 for items whose vendor is unknown (flagged unknown_vendor).
        lead = dict(zip(vendors_all[vendors_all["store_id"] == store]["vendor_id"],
                        vendors_all[vendors_all["store_id"] == store]["lead_time_days"], strict=True))
        for sku, row in mine.iterrows():
            assert row["lead_time_days"] == lead.get(items.loc[sku, "vendor_id"], 7)
        assert (mine["lead_time_days"] == 7).any()
        # Demand: the last 28 days of curated sales, and the forecast on the last 16 weeks.
        skus, hist, first, last = _history(lake, store)
        assert list(mine.index) == sorted(mine.index)
        units_28d = dict(zip(skus, hist[:, -28:].sum(axis=1), strict=True))
        for sku, row in mine.iterrows():
            assert row["units_28d"] == units_28d.get(sku, 0)
            assert row["avg_daily_units_28d"] == pytest.approx(units_28d.get(sku, 0) / 28)
            assert row["turnover_28d"] == pytest.approx(units_28d.get(sku, 0) / max(docs[sku], 1))
            assert row["sales_through"] == last
            assert row["as_of"] == pd.Timestamp(NOW)
        f = forecast_demand(hist, first)
        mean = dict(zip(skus, f.mean.mean(axis=1), strict=True))
        total14 = dict(zip(skus, f.mean[:, :14].sum(axis=1), strict=True))
        sku_list = list(mine.index)
        assert mine["forecast_daily"].to_numpy() == pytest.approx([mean[s] for s in sku_list])
        assert mine["forecast_14d"].to_numpy() == pytest.approx([total14[s] for s in sku_list])
        cover, order = cover_and_reorder(np.array([docs[s] for s in sku_list]), np.array([mean[s] for s in sku_list]),
                                         mine["lead_time_days"].to_numpy(), mine["reorder_qty"].to_numpy())
        want_cover = [c if np.isfinite(c) else None for c in cover]
        got_cover = [None if pd.isna(c) else c for c in mine["days_of_cover"]]
        assert got_cover == pytest.approx(want_cover)
        assert list(mine["suggested_order_qty"]) == list(order)
        # The forecast file: every sku, HORIZON days from the day after the last day of sales.
        mine_fc = fc[fc["store_id"] == store]
        assert len(mine_fc) == len(skus) * HORIZON
        assert sorted(set(mine_fc["date"])) == [last + timedelta(days=h) for h in range(1, HORIZON + 1)]
        by = mine_fc.set_index(["sku", "date"])
        assert by.loc[(skus[0], last + timedelta(days=1)), "mean"] == pytest.approx(f.mean[0, 0])
        assert (mine_fc["lower"] <= mine_fc["mean"] + 1e-9).all() and (mine_fc["mean"] <= mine_fc["upper"]).all()


# --- incrementality ---------------------------------------------------------------------------------------

KEPT = ("sales_daily_sku", "sales_daily_category", "forecast", "sales_check", "data_quality")  # not the stock


def test_a_second_run_commits_only_the_stock_and_a_lost_state_rebuilds_the_same_rows(env):
    first, _ = run(env)
    lake = env["lake"]
    before, rows_before = versions(lake, *OUTPUTS), sorted_rows(lake, *KEPT)
    stock_before = read_output(lake, "stock_current")
    second, _ = run(env, now=NOW + timedelta(hours=1))
    assert second.partitions_recomputed == 0 and second.forecasts_recomputed == 0 and second.manifests_added == 0
    assert second.skipped_unchanged == first.partitions_recomputed and not second.full_rebuild
    assert second.commits == {"stock_current": 1}  # the stock is read again every run: both stores, one commit
    after = versions(lake, *OUTPUTS)
    assert {n: after[n] for n in KEPT} == {n: before[n] for n in KEPT}, "no commit to the other tables"
    assert after["stock_current"] == before["stock_current"] + 1
    assert last_predicate(lake, "stock_current") == "store_id = 'S001' OR store_id = 'S002'"
    stock_after = read_output(lake, "stock_current")
    key = ["store_id", "sku"]
    pd.testing.assert_frame_equal(stock_before.drop(columns="as_of").sort_values(key, ignore_index=True),
                                  stock_after.drop(columns="as_of").sort_values(key, ignore_index=True))
    assert set(stock_after["as_of"]) == {pd.Timestamp(NOW + timedelta(hours=1))}

    # Without its state, a run recomputes everything, replacing each store's rows with the same rows.
    (lake.root / STATE_PATH).unlink()
    third, _ = run(env)
    assert third.full_rebuild and third.partitions_recomputed == first.partitions_recomputed
    assert sorted_rows(lake, *KEPT) == rows_before
    assert last_predicate(lake, "sales_daily_sku") == "store_id = 'S001' OR store_id = 'S002'"


def test_stock_current_reads_only_the_stock_documents_written_since_the_last_run(env):
    """The first run reads each store whole; the next reads the documents sales wrote since, laid over the
    store's rows; the counts are the stock store's either way."""
    first, _ = run(env)
    stock = env["stock"]
    every = sum(len(stock.stock(s)) for s in STORES)
    assert first.stock_docs_read == every and first.stock_stores_read_whole == len(STORES)
    skus = [d.sku for d in stock.stock("S002")[:3]]
    lines = ", ".join(f'{{"sku": "{k}", "qty": 2}}' for k in skus)
    event = parse_event(f'{{"eventId": "pos-2", "storeId": "S002", "type": "sale", "occurredAt": '
                        f'"2026-11-27T10:00:00Z", "lines": [{lines}]}}', now=NOW)
    assert stock.apply("S002", [event]).applied == ["pos-2"]
    second, _ = run(env, now=NOW + timedelta(hours=1))
    assert second.stock_docs_read == 3 and second.stock_stores_read_whole == 0
    counted = read_output(env["lake"], "stock_current").dropna(subset=["on_hand"])
    got = {(r.store_id, r.sku): int(r.on_hand) for r in counted.itertuples()}
    assert got == {(s, d.sku): d.on_hand for s in STORES for d in stock.stock(s)}
    third, _ = run(env, now=NOW + timedelta(hours=2))
    assert third.stock_docs_read == 0


def test_small_batches_write_the_same_rows(env):
    """Memory is bounded by computing a store's days in batches and committing when enough rows wait; neither
    shows in the outputs."""
    run(env)
    whole = sorted_rows(env["lake"], *KEPT)
    shutil.rmtree(env["lake"].root / "aggregates")
    batched, _ = run(env, batch_lines=1, flush_bytes=1)  # every day its own batch, every replacement a commit
    assert batched.full_rebuild and batched.commits["sales_daily_sku"] == batched.partitions_recomputed
    assert sorted_rows(env["lake"], *KEPT) == whole


def _next_dump(source: Path, target: Path) -> tuple[list[str], str]:
    """The store's next nightly dump: the same rows plus two new days of sales and one late line for an older
    day; counted two days later. Returns the days it adds sales to, and the sku sold."""
    shutil.copy(source, target)
    con = sqlite3.connect(target)
    try:
        sku = con.execute("SELECT sku FROM items WHERE active = 1 ORDER BY sku LIMIT 1").fetchone()[0]
        rows = [(f"NEW-{n}", 1, sku, 2, 1.5, f"{day} 10:0{n}:00")
                for n, day in enumerate(["2026-11-27", "2026-11-28", "2026-11-28", "2026-11-20"])]
        con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.execute("UPDATE stock SET counted_at = '2026-11-28 23:00:00'")
        con.commit()
    finally:
        con.close()
    return ["2026-11-20", "2026-11-27", "2026-11-28"], sku


def _without_days(df: pd.DataFrame, store: str, days: list[str]) -> pd.DataFrame:
    drop = (df["store_id"] == store) & df["date"].astype(str).isin(days)
    return df[~drop].sort_values(["store_id", "date", "sku"], ignore_index=True)


def test_a_new_dump_recomputes_only_the_days_it_touched(env):
    run(env)
    lake = env["lake"]
    before = versions(lake, *OUTPUTS)
    old = read_output(lake, "sales_daily_sku")
    days, sku = _next_dump(env["sources"] / "S001.sqlite", env["tmp"] / "S001-next.sqlite")
    result = ingest_dump(env["tmp"] / "S001-next.sqlite", "S001", lake=lake, telemetry=MemoryTelemetry(),
                         scratch=env["tmp"])
    assert result.manifest["tables"]["sales"]["written"] == 4
    assert set(result.manifest["tables"]["sales"]["days_written"]) == set(days)

    again, _ = run(env, now=NOW + timedelta(days=2))
    assert again.partitions_recomputed == len(days) and again.skipped_unchanged == 2 * DAYS - 1
    assert again.manifests_added == 1 and again.forecasts_recomputed == 1  # S001 only
    assert {n: v - before[n] for n, v in versions(lake, *OUTPUTS).items()} == {n: 1 for n in OUTPUTS}
    # What each commit replaced: S001's three days (two runs of consecutive days), S001's forecast, the dump.
    replaced = last_predicate(lake, "sales_daily_sku")  # as delta-rs records it, e.g. date >= '...'::date
    assert replaced.startswith("store_id = 'S001' AND (") and "S002" not in replaced
    assert set(re.findall(r"\d{4}-\d\d-\d\d", replaced)) == {"2026-11-20", "2026-11-27", "2026-11-28"}
    assert last_predicate(lake, "forecast") == "store_id = 'S001'"
    replaced = last_predicate(lake, "data_quality")
    assert replaced.startswith("store_id = 'S001' AND dump_id") and replaced.endswith(f"'{result.dump_id}'")

    # The recomputed days hold both dumps' lines, priced with their own dump's items; the other days are as
    # they were.
    got = read_output(lake, "sales_daily_sku")
    keys = ["store_id", "date", "sku"]
    assert _records(got, keys) == _records(expected_daily_sku(lake), keys)
    pd.testing.assert_frame_equal(_without_days(got, "S001", days), _without_days(old, "S001", days))
    new_day = got[(got["store_id"] == "S001") & (got["date"] == date(2026, 11, 28))]
    assert list(new_day["sku"]) == [sku] and list(new_day["units"]) == [4] and list(new_day["lines"]) == [2]
    # Demand now runs to the new last day, for S001.
    stock_current = read_output(lake, "stock_current")
    assert set(stock_current[stock_current["store_id"] == "S001"]["sales_through"]) == {date(2026, 11, 28)}
    assert set(stock_current[stock_current["store_id"] == "S002"]["sales_through"]) == {END}


def test_a_sku_new_to_the_stock_store_gets_what_a_full_run_gives_it(env):
    """A receipt for a sku that no dump has (nor any sale) adds it to the stock store between two runs: the
    incremental run must give it the demand and forecast rows a full recompute gives, not reuse the old demand."""
    run(env)
    event = parse_event('{"eventId": "rcv-new", "storeId": "S001", "type": "receipt", "occurredAt": '
                        '"2026-11-27T10:00:00Z", "lines": [{"sku": "NEW-1", "qty": 5}]}', now=NOW)
    assert env["stock"].apply("S001", [event]).applied == ["rcv-new"]
    incremental, _ = run(env)
    assert incremental.partitions_recomputed == 0 and incremental.forecasts_recomputed == 1  # S001 only
    lake = env["lake"]
    stock_inc = read_output(lake, "stock_current").sort_values(["store_id", "sku"], ignore_index=True)
    forecast_inc = sorted_rows(lake, "forecast")
    new = stock_inc[stock_inc["sku"] == "NEW-1"].iloc[0]
    assert (new["on_hand"], new["units_28d"], new["forecast_daily"], new["forecast_14d"],
            new["suggested_order_qty"]) == (5, 0, 0.0, 0.0, 0)
    assert sum(r["sku"] == "NEW-1" for r in forecast_inc["forecast"]) == HORIZON

    shutil.rmtree(lake.root / "aggregates")  # the state too: a full recompute
    full, _ = run(env)
    assert full.full_rebuild
    pd.testing.assert_frame_equal(
        stock_inc, read_output(lake, "stock_current").sort_values(["store_id", "sku"], ignore_index=True))
    assert sorted_rows(lake, "forecast") == forecast_inc


def test_a_category_removed_in_the_latest_dump_is_null_on_days_of_both_dumps(env):
    """sales_daily_sku takes the category of the latest dump, NULL included: a day whose lines came with both
    dumps must not keep the older dump's category because arg_max skips NULLs."""
    run(env)
    lake = env["lake"]
    target = env["tmp"] / "S001-next.sqlite"
    shutil.copy(env["sources"] / "S001.sqlite", target)
    con = sqlite3.connect(target)
    try:
        sku, day = con.execute("SELECT s.sku, max(date(s.sold_at)) FROM sales s JOIN items i ON i.sku = s.sku "
                               "WHERE i.category IS NOT NULL AND i.active = 1 GROUP BY s.sku ORDER BY s.sku "
                               "LIMIT 1").fetchone()
        old_days = [r[0] for r in con.execute("SELECT DISTINCT date(sold_at) FROM sales WHERE sku = ? AND "
                                              "date(sold_at) < ?", (sku, day))]
        con.execute("UPDATE items SET category = NULL WHERE sku = ?", (sku,))
        con.execute("INSERT INTO sales VALUES ('CAT-1', 1, ?, 1, 1.5, ?)", (sku, f"{day} 22:59:00"))
        con.execute("UPDATE stock SET counted_at = '2026-11-27 23:00:00'")  # a later snapshot: the latest dump
        con.commit()
    finally:
        con.close()
    result = ingest_dump(target, "S001", lake=lake, telemetry=MemoryTelemetry(), scratch=env["tmp"])
    assert result.status == "ingested" and result.manifest["tables"]["sales"]["written"] == 1
    again, _ = run(env)
    assert again.partitions_recomputed == 1
    got = read_output(lake, "sales_daily_sku")
    mine = got[(got["store_id"] == "S001") & (got["sku"] == sku)].set_index("date")
    assert pd.isna(mine.loc[date.fromisoformat(day), "category"]), "the latest dump's category (NULL) wins"
    assert old_days and not mine.loc[[date.fromisoformat(d) for d in old_days], "category"].isna().any()
    cat = read_output(lake, "sales_daily_category")
    on_day = cat[(cat["store_id"] == "S001") & (cat["date"] == date.fromisoformat(day))]
    assert on_day["category"].isna().any(), "the sku's units count under the NULL category"


def test_missing_days_are_recomputed_and_lines_of_uncommitted_dumps_wait(env):
    run(env)
    lake = env["lake"]
    full = read_output(lake, "sales_daily_sku")
    # The next dump is ingested, but its manifest (the commit marker the aggregates follow) is not there yet:
    # its lines are in curated/sales, its days are not recomputed.
    days, _ = _next_dump(env["sources"] / "S001.sqlite", env["tmp"] / "S001-next.sqlite")
    ingested = ingest_dump(env["tmp"] / "S001-next.sqlite", "S001", lake=lake, telemetry=MemoryTelemetry(),
                           scratch=env["tmp"])
    manifest = lake.root / f"manifests/store=S001/{ingested.dump_id}.json"
    hidden = manifest.with_suffix(".hidden")
    manifest.rename(hidden)
    # Meanwhile S002's rows of two days, and S001's of the day the new dump also wrote to, went missing from
    # the outputs (e.g. deleted by hand): those days are recomputed, from the committed dumps' lines only.
    gone = {"S002": ["2026-11-01", "2026-11-02"], "S001": ["2026-11-20"]}
    for output in ("sales_daily_sku", "sales_daily_category"):
        table = DeltaTables(lake).open(f"aggregates/{output}")
        table.delete(" OR ".join(f"(store_id = '{s}' AND date IN ({', '.join(f'DATE {d!r}' for d in ds)}))"
                                 for s, ds in gone.items()))
    waiting, _ = run(env)
    assert waiting.partitions_recomputed == 3 and waiting.manifests_added == 0
    got = read_output(lake, "sales_daily_sku")
    key = ["store_id", "date", "sku"]
    pd.testing.assert_frame_equal(got.sort_values(key, ignore_index=True), full.sort_values(key, ignore_index=True))

    hidden.rename(manifest)
    committed, _ = run(env)
    assert committed.partitions_recomputed == len(days) and committed.manifests_added == 1
    assert _records(read_output(lake, "sales_daily_sku"), key) == _records(expected_daily_sku(lake), key)


def test_synapse_views_file_is_generated_from_the_schemas():
    text = (ROOT / "infra/synapse/02_views.sql").read_text()
    assert text == synapse_views_sql(), ("infra/synapse/02_views.sql is stale: regenerate it with python -c \"from "
                                         "shared.core.aggregates import synapse_views_sql as s; print(s(), end='')\" "
                                         "> infra/synapse/02_views.sql")
    for name, o in OUTPUTS.items():
        assert f"CREATE OR ALTER VIEW agg.{name} AS" in text
        assert f"BULK '{o.path}/'" in text
    readme = (ROOT / "infra/synapse/README.md").read_text()
    assert schemas_markdown() in readme, "infra/synapse/README.md is stale: paste schemas_markdown() into it"


# --- the Blob lake --------------------------------------------------------------------------------------------

@pytest.mark.azurite
def test_the_same_run_on_the_blob_lake(blob_lake, base, tmp_path):
    """Ingest one store into Azurite, aggregate twice: same numbers as in pandas, the second run commits only
    the stock."""
    stock = SqliteStockStore(tmp_path / "stock.sqlite")
    try:
        result = ingest_dump(base["root"] / "S002.sqlite", "S002", lake=blob_lake, telemetry=MemoryTelemetry(),
                             scratch=tmp_path)
        reconcile_after_ingest(result, lake=blob_lake, stock=stock, telemetry=MemoryTelemetry())
        first = compute_aggregates(lake=blob_lake, stock=stock, telemetry=MemoryTelemetry(), scratch=tmp_path / "s",
                                   now=NOW)
        assert first.partitions_recomputed == DAYS and first.stores == ["S002"]
        assert first.commits == {name: 1 for name in OUTPUTS}
        keys = ["store_id", "date", "sku"]
        assert _records(read_output(blob_lake, "sales_daily_sku"), keys) == \
            _records(expected_daily_sku(blob_lake), keys)
        assert len(read_output(blob_lake, "stock_current")) == len(stock.stock("S002"))
        before = versions(blob_lake, *OUTPUTS)
        second = compute_aggregates(lake=blob_lake, stock=stock, telemetry=MemoryTelemetry(), scratch=tmp_path / "s",
                                    now=NOW)
        assert second.partitions_recomputed == 0 and second.skipped_unchanged == DAYS
        assert second.commits == {"stock_current": 1}
        assert versions(blob_lake, *OUTPUTS) == {**before, "stock_current": before["stock_current"] + 1}
    finally:
        stock.close()
