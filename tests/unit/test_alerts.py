"""Each alert rule, and de-duplication: raised once, again only after the cool-down or when worse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.alerts import (
    ALERT_KINDS,
    CRITICAL,
    ERROR,
    WARNING,
    Alert,
    DaySales,
    ItemStock,
    StoreDumps,
    deduplicate,
    dump_alerts,
    is_low_stock,
    stock_alerts,
    unusual_sales_alerts,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STALE, GRACE, COOL = timedelta(hours=26), timedelta(minutes=60), timedelta(hours=24)


def item(on_hand: int, rp: int = 5, active: bool = True, **kw: object) -> ItemStock:
    return ItemStock("S1", kw.pop("sku", "A-1"), "Milk", active, on_hand, rp, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("on_hand", "rp", "active", "low"), [
    (5, 5, True, True), (6, 5, True, False), (0, 5, True, True), (-2, 5, True, True),
    (0, 0, True, False),  # no reorder point: ordered by hand
    (1, 5, False, False),  # discontinued
])
def test_low_stock_is_the_documented_definition(on_hand: int, rp: int, active: bool, low: bool) -> None:
    assert is_low_stock(item(on_hand, rp, active)) is low
    kinds = [a.kind for a in stock_alerts([item(on_hand, rp, active)])]
    assert ("LowStock" in kinds) is low


def test_low_stock_reason_is_actionable() -> None:
    [a] = stock_alerts([item(2, 5, mean_daily_demand=1.0, lead_time_days=4, vendor_id="V1", suggested_order=12)])
    assert (a.kind, a.severity, a.store_id, a.sku) == ("LowStock", WARNING, "S1", "A-1")
    assert "2 on hand" in a.reason and "reorder point 5" in a.reason and "2.0 days of cover" in a.reason
    assert "4-day lead time" in a.reason and "order 12 from V1" in a.reason
    assert a.to_json()["daysOfCover"] == 2.0


def test_out_of_stock_is_an_error_and_negative_stock_its_own_alert() -> None:
    alerts = {a.kind: a for a in stock_alerts([item(-3)])}
    assert alerts["LowStock"].severity == ERROR
    assert alerts["NegativeStock"].severity == ERROR and "-3 on hand" in alerts["NegativeStock"].reason


def test_stale_dump_after_threshold_and_critical_at_twice() -> None:
    def one(hours: float) -> list[Alert]:
        return dump_alerts([StoreDumps("S1", NOW - timedelta(hours=hours))], now=NOW, stale_after=STALE,
                           ingest_grace=GRACE)

    assert one(25) == []
    [a] = one(30)
    assert (a.kind, a.severity) == ("StaleDump", ERROR) and "30 h ago" in a.reason
    assert one(53)[0].severity == CRITICAL


def test_quarantine_and_ingest_failure() -> None:
    s = StoreDumps("S1", NOW - timedelta(hours=1), quarantined=(("k1", "not_sqlite", "not a database"),),
                   unprocessed=(("raw/store=S1/date=2026-11-27/a.sqlite.gz", NOW - timedelta(minutes=90)),
                                ("raw/store=S1/date=2026-11-27/b.sqlite.gz", NOW - timedelta(minutes=10))))
    alerts = dump_alerts([s], now=NOW, stale_after=STALE, ingest_grace=GRACE)
    assert [(a.kind, a.subject) for a in alerts] == [("DumpQuarantined", "k1"),
                                                     ("IngestFailure", "raw/store=S1/date=2026-11-27/a.sqlite.gz")]
    assert alerts[1].severity == CRITICAL and "90 min ago" in alerts[1].reason


def test_unusual_sales_needs_the_interval_and_a_real_difference() -> None:
    days = [DaySales("S1", "A", "2026-11-26", 30, 8.0, 2.0, 14.0),  # far above
            DaySales("S1", "B", "2026-11-26", 4, 1.0, 0.0, 3.0),  # above, but 3 units: not worth a page
            DaySales("S1", "C", "2026-11-26", 0, 20.0, 9.0, 31.0),  # a busy item sold nothing
            DaySales("S1", "D", "2026-11-26", 10, 9.0, 3.0, 16.0)]
    alerts = unusual_sales_alerts(days)
    assert [(a.sku, "above" in a.reason) for a in alerts] == [("A", True), ("C", False)]
    assert alerts[0].subject == "A@2026-11-26"


def test_every_kind_has_a_rule_that_emits_it() -> None:
    emitted = {a.kind for a in stock_alerts([item(-1)])}
    emitted |= {a.kind for a in dump_alerts(
        [StoreDumps("S", NOW - timedelta(days=3), (("k", "c", "r"),), (("raw/x", NOW - timedelta(hours=2)),),
                    (("d1", (("sales", 2),)),))],
        now=NOW, stale_after=STALE, ingest_grace=GRACE)}
    emitted |= {a.kind for a in unusual_sales_alerts([DaySales("S", "A", "d", 50, 5, 1, 9)])}
    assert emitted == {k.name for k in ALERT_KINDS}


def test_a_dump_that_changed_history_raises_one_alert_naming_it_and_its_counts() -> None:
    (alert,) = dump_alerts([StoreDumps("S1", NOW, history_changed=(("d1", (("receipts", 1), ("sales", 3))),))],
                           now=NOW, stale_after=STALE, ingest_grace=GRACE)
    assert (alert.kind, alert.store_id, alert.subject, alert.severity) == ("DumpHistoryChanged", "S1", "d1", 2)
    assert alert.to_json()["linesChanged"] == 4 and alert.to_json()["salesChanged"] == 3
    assert "3 sales line(s)" in alert.reason and "1 receipts line(s)" in alert.reason
    assert dump_alerts([StoreDumps("S1", NOW)], now=NOW, stale_after=STALE, ingest_grace=GRACE) == []


def low(on_hand: int, sku: str = "A-1") -> Alert:
    return stock_alerts([item(on_hand, sku=sku)])[0]


def test_dedup_raises_once_within_the_cooldown_then_again() -> None:
    raised, state = deduplicate([low(3)], {}, now=NOW, cooldown=COOL)
    assert len(raised) == 1
    raised, state = deduplicate([low(2)], state, now=NOW + timedelta(hours=1), cooldown=COOL)
    assert raised == [], "still low, not worse in severity: quiet"
    raised, state = deduplicate([low(2)], state, now=NOW + timedelta(hours=25), cooldown=COOL)
    assert len(raised) == 1, "cool-down over: raised again"


def test_dedup_raises_again_at_once_when_worse_and_forgets_resolved() -> None:
    _, state = deduplicate([low(3)], {}, now=NOW, cooldown=COOL)
    raised, state = deduplicate([low(0)], state, now=NOW + timedelta(minutes=15), cooldown=COOL)
    assert [a.severity for a in raised] == [ERROR], "ran out: worse, raised at once"
    raised, state = deduplicate([], state, now=NOW + timedelta(minutes=30), cooldown=COOL)
    assert raised == [] and state == {}, "restocked: forgotten"
    raised, _ = deduplicate([low(4)], state, now=NOW + timedelta(minutes=45), cooldown=COOL)
    assert len(raised) == 1, "low again later: a new alert"


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(-2, 6)), max_size=12),
       st.lists(st.integers(1, 120), min_size=1, max_size=8))
def test_dedup_never_repeats_within_cooldown_unless_worse(items: list[tuple[str, int]], gaps: list[int]) -> None:
    state: dict = {}
    now = NOW
    last: dict[str, tuple[datetime, int]] = {}
    for gap in gaps:
        now += timedelta(minutes=gap)
        candidates = [a for sku, oh in items for a in stock_alerts([item(oh, sku=sku)])]
        candidates = list({a.key: a for a in candidates}.values())
        raised, state = deduplicate(candidates, state, now=now, cooldown=COOL)
        for a in raised:
            if a.key in last:
                when, severity = last[a.key]
                assert now - when >= COOL or a.severity < severity
            last[a.key] = (now, a.severity)
        assert set(state) == {a.key for a in candidates}


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert("Oops", WARNING, "S1", "x")
