"""The demo's data without its servers: the stores' history ends yesterday (UTC) and is counted that night, and
after the demo's POS traffic only a few percent of the (store, sku) counts are low on stock and hardly any
below zero. The traffic is applied to the dumps' counts the way the stock store does (distinct valid events,
skus normalised); "low" is the alerts' rule (``shared.core.alerts.is_low_stock``)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from shared.core.alerts import ItemStock, is_low_stock
from shared.local.demo import demo_traffic, generate_demo_stores, most_stocked_first, yesterday_utc
from shared.local.pos_traffic import expected_deltas

VALID_TS = "datetime(julianday(sold_at)) IS sold_at"


def last_sale_day_and_count(path: Path) -> tuple[str, str]:
    with sqlite3.connect(path) as con:
        return (con.execute(f"SELECT max(date(sold_at)) FROM sales WHERE {VALID_TS}").fetchone()[0],
                con.execute("SELECT max(counted_at) FROM stock").fetchone()[0])


def test_yesterday_is_the_utc_day_before() -> None:
    assert yesterday_utc(datetime(2026, 12, 7, 8, 55, tzinfo=UTC)) == date(2026, 12, 6)
    assert yesterday_utc(datetime(2026, 12, 7, 0, 0, tzinfo=UTC)) == date(2026, 12, 6)
    # 00:30 in UTC+2 is still 6 December in UTC: yesterday is the 5th.
    assert yesterday_utc(datetime(2026, 12, 7, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == date(2026, 12, 5)
    assert yesterday_utc(datetime(2027, 1, 1, 12, tzinfo=UTC)) == date(2026, 12, 31)


def test_the_demo_history_ends_yesterday(tmp_path: Path) -> None:
    before = yesterday_utc()
    truths = generate_demo_stores(tmp_path, 2, sales_lines=2_000, days=14)
    ends = {before, yesterday_utc()}  # the same day unless the test ran across midnight
    for t in truths:
        last_sale, last_count = last_sale_day_and_count(t.path)
        assert date.fromisoformat(last_sale) in ends
        # The nightly dump: counted at 23:00 UTC after the last day's sales, and before now.
        assert t.snapshot_at == datetime.combine(date.fromisoformat(last_sale), time(23, 0), tzinfo=UTC)
        assert last_count == t.snapshot_at.strftime("%Y-%m-%d %H:%M:%S")
        assert t.snapshot_at < datetime.now(UTC)


def test_the_demo_history_end_can_be_pinned(tmp_path: Path) -> None:
    truths = generate_demo_stores(tmp_path, 1, sales_lines=1_000, days=7, end=date(2027, 1, 3))
    assert last_sale_day_and_count(truths[0].path) == ("2027-01-03", "2027-01-03 23:00:00")
    with sqlite3.connect(truths[0].path) as con:
        assert con.execute(f"SELECT min(date(sold_at)) FROM sales WHERE {VALID_TS}").fetchone()[0] == "2026-12-28"


def test_most_stocked_first() -> None:
    assert most_stocked_first({"S1": {"A": 3, "B": 10, "C": -4}, "S2": {"A": 9, "D": 0}}) == ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def after_the_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The demo's defaults (3 stores × 20,000 sale lines over 56 days, 2,000 POS messages): the counts the dumps
    bring, the items, and the counts after the traffic."""
    truths = generate_demo_stores(tmp_path_factory.mktemp("demo"), 3, sales_lines=20_000, days=56,
                                  end=date(2026, 12, 6))
    on_hand: dict[str, dict[str, int]] = {}
    items: dict[str, tuple[bool, int]] = {}
    for t in truths:
        with sqlite3.connect(t.path) as con:
            counts = on_hand.setdefault(t.store_id, {})
            for sku, n in con.execute("SELECT sku, on_hand FROM stock"):
                counts[sku.strip().upper()] = counts.get(sku.strip().upper(), 0) + n
            items = {sku: (bool(a), rp) for sku, a, rp in con.execute("SELECT sku, active, reorder_point FROM items")}
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    deltas = expected_deltas(demo_traffic(on_hand, count=2000, start=start), now=start)
    after = {(s, k): n + deltas.get((s, k), 0) for s, counts in on_hand.items() for k, n in counts.items()}
    before = {(s, k): n for s, counts in on_hand.items() for k, n in counts.items()}
    return {"before": before, "after": after, "items": items, "deltas": deltas}


def low_share(counts: dict[tuple[str, str], int], items: dict[str, tuple[bool, int]]) -> float:
    low = [k for k, n in counts.items()
           if is_low_stock(ItemStock(k[0], k[1], k[1], active=items[k[1]][0], on_hand=n,
                                        reorder_point=items[k[1]][1]))]
    return len(low) / len(counts)


def test_after_the_demo_a_few_percent_are_low_on_stock(after_the_demo: dict) -> None:
    assert len(after_the_demo["after"]) == 900
    assert 0.04 <= low_share(after_the_demo["before"], after_the_demo["items"]) <= 0.06
    assert 0.02 <= low_share(after_the_demo["after"], after_the_demo["items"]) <= 0.06
    assert sum(-d for d in after_the_demo["deltas"].values() if d < 0) > 3000, "the traffic does sell"


def test_after_the_demo_hardly_any_count_is_below_zero(after_the_demo: dict) -> None:
    before, after = after_the_demo["before"], after_the_demo["after"]
    # The dumps' own negative counts (dirty rows, about 1 %) stay; the traffic adds at most a few.
    assert sum(n < 0 for n in before.values()) <= 0.011 * len(before)
    made_negative = [k for k, n in after.items() if n < 0 <= before[k]]
    assert len(made_negative) <= 0.01 * len(after)
    assert sum(n < 0 for n in after.values()) <= 0.02 * len(after)
