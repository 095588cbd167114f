"""Simulated POS traffic: deterministic, shaped as asked, and every body is what its kind says it is — checked
with the real ``parse_event`` and, for the ground truth, an independent recomputation from the raw JSON."""

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.events import EVENT_TYPES, MAX_LINES, REASON_CODES, InvalidEvent, SaleEvent, parse_event
from shared.local.pos_traffic import DUPLICATE, MALFORMED_KINDS, VALID, TrafficItem, expected_deltas, pos_traffic

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, tzinfo=UTC)  # the clock parse_event checks future timestamps against
STORES = ["S001", "S002", "S003", "store_north-7"]
SKUS = [f"A-{i:04d}" for i in range(300)]


def traffic(count=4000, **kw) -> list[TrafficItem]:
    kw.setdefault("seed", 7)
    return list(pos_traffic(STORES, SKUS, count=count, start=START, **kw))


@pytest.fixture(scope="module")
def big() -> list[TrafficItem]:
    return traffic(20_000, seed=3, duplicate_share=0.02, malformed_share=0.01)


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert traffic(500) == traffic(500)
    assert [i.body for i in traffic(500)] != [i.body for i in traffic(500, seed=8)]
    # A prefix of a longer run is the shorter run: count does not change what comes first.
    assert traffic(800)[:500] == traffic(500)


def test_every_kind_is_produced_and_each_body_is_judged_as_its_kind(big):
    kinds = Counter(i.kind for i in big)
    assert set(kinds) == {VALID, DUPLICATE, *MALFORMED_KINDS}
    assert set(MALFORMED_KINDS) <= REASON_CODES
    for item in big:
        result = parse_event(item.body, now=NOW)
        if item.kind in (VALID, DUPLICATE):
            assert isinstance(result, SaleEvent), (item, result)
            assert result.store_id == item.store_id
        else:
            assert isinstance(result, InvalidEvent), item
            assert result.reason == item.kind, (item.body[:300], result.detail)


def test_malformed_variants_cover_the_realistic_failures():
    items = traffic(6000, malformed_share=0.2, duplicate_share=0.0)
    details = {}
    for item in items:
        if item.kind not in (VALID, DUPLICATE):
            details.setdefault(item.kind, []).append(parse_event(item.body, now=NOW).detail)
    qty = " ".join(details["bad_qty"])
    assert "qty '0' " in qty and re.search(r"qty '\d\.5' ", qty), "both zero and fractional quantities"
    bad_json = " ".join(details["bad_json"])
    assert "expected a JSON object" in bad_json and "not UTF-8 JSON" in bad_json, "broken text and a non-object"
    too_many = [int(d.split()[0]) for d in details["too_many_lines"]]
    assert min(too_many) > MAX_LINES


def test_duplicates_are_byte_identical_resends_of_earlier_valid_bodies(big):
    earlier_valid: set[bytes] = set()
    for item in big:
        if item.kind == DUPLICATE:
            assert item.body in earlier_valid
            assert json.loads(item.body)["storeId"] == item.store_id
        elif item.kind == VALID:
            earlier_valid.add(item.body)
    valid_ids = [json.loads(i.body)["eventId"] for i in big if i.kind == VALID]
    assert len(valid_ids) == len(set(valid_ids)), "every valid event has its own eventId"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+-pos[1-4]-\d{8}", e) for e in valid_ids)


def test_shares_are_roughly_as_asked(big):
    kinds = Counter(i.kind for i in big)
    n = len(big)
    assert kinds[DUPLICATE] / n == pytest.approx(0.02, abs=0.006)
    assert sum(kinds[k] for k in MALFORMED_KINDS) / n == pytest.approx(0.01, abs=0.004)
    none = traffic(1000, duplicate_share=0.0, malformed_share=0.0)
    assert {i.kind for i in none} == {VALID}


def test_event_mix_lines_quantities_and_prices(big):
    docs = [json.loads(i.body) for i in big if i.kind == VALID]
    types = Counter(d["type"] for d in docs)
    n = len(docs)
    for kind, share in {"sale": 0.90, "return": 0.03, "receipt": 0.05, "adjustment": 0.02}.items():
        assert types[kind] / n == pytest.approx(share, abs=0.012), kind
    lines = Counter(len(d["lines"]) for d in docs)
    assert set(lines) == {1, 2, 3, 4, 5}
    assert lines[1] / n == pytest.approx(0.40, abs=0.02)
    assert lines[5] / n == pytest.approx(0.07, abs=0.01)
    sale_qty = Counter(ln["qty"] for d in docs if d["type"] == "sale" for ln in d["lines"])
    assert sale_qty.most_common(1)[0][0] == 1 and min(sale_qty) >= 1
    assert all("unitPrice" in ln and ln["unitPrice"] > 0 for d in docs if d["type"] == "sale" for ln in d["lines"])
    receipt_qty = [ln["qty"] for d in docs if d["type"] == "receipt" for ln in d["lines"]]
    assert sum(receipt_qty) / len(receipt_qty) > 5, "deliveries come in cases"
    adjust_qty = [ln["qty"] for d in docs if d["type"] == "adjustment" for ln in d["lines"]]
    assert 0 not in adjust_qty and min(adjust_qty) < 0 < max(adjust_qty)


def test_times_advance_at_the_rate_with_varied_offsets(big):
    docs = [json.loads(i.body) for i in big if i.kind == VALID]
    stamps = [d["occurredAt"] for d in docs]
    assert any(s.endswith("Z") for s in stamps) and any(re.search(r"[+-]\d\d:\d\d$", s) for s in stamps)
    assert len({s[-6:] for s in stamps if not s.endswith("Z")}) >= 2
    times = [datetime.fromisoformat(s) for s in stamps]
    assert times == sorted(times), "valid events are emitted in time order"
    assert times[0] >= START
    # 20 000 messages at 50/s: about 400 s (the sum of exponential gaps; its sd is ~3 s).
    assert (times[-1] - START).total_seconds() == pytest.approx(len(big) / 50.0, rel=0.05)
    assert all(b"\n" not in i.body for i in big), "one line per body, so items can be written as JSON lines"


def test_skus_follow_a_zipf_law(big):
    counts = Counter(ln["sku"] for i in big if i.kind == VALID for ln in json.loads(i.body)["lines"])
    ranked = [c for _, c in counts.most_common()]
    assert counts.most_common(1)[0][0] == SKUS[0], "popularity follows the order given"
    median = ranked[len(ranked) // 2]
    assert ranked[0] > 20 * median
    # rank^-1.1: the first sku sells about 2^1.1 ≈ 2.1 times the second.
    assert counts[SKUS[0]] / counts[SKUS[1]] == pytest.approx(2 ** 1.1, rel=0.15)


def independent_deltas(items):
    """The truth from the raw JSON alone, without parse_event: signs from the contract (docs/stock-and-events.md)."""
    sign = {"sale": -1, "return": 1, "receipt": 1, "adjustment": 1}
    assert sign == EVENT_TYPES
    seen, out = set(), Counter()
    for item in items:
        if item.kind not in (VALID, DUPLICATE):
            continue
        doc = json.loads(item.body)
        if (doc["storeId"], doc["eventId"]) in seen:
            continue
        seen.add((doc["storeId"], doc["eventId"]))
        for line in doc["lines"]:
            out[(doc["storeId"], line["sku"].strip().upper())] += sign[doc["type"]] * line["qty"]
    return dict(out)


def test_expected_deltas_matches_an_independent_recomputation(big):
    truth = expected_deltas(big, now=NOW)
    assert truth == independent_deltas(big)
    # Resends never count twice: dropping every duplicate changes nothing.
    assert expected_deltas([i for i in big if i.kind != DUPLICATE], now=NOW) == truth
    # A resend whose original is not in the slice still counts, once.
    dup = next(i for i in big if i.kind == DUPLICATE)
    alone = expected_deltas([dup, dup], now=NOW)
    assert alone == {(dup.store_id, s): d for s, d in parse_event(dup.body, now=NOW).sku_deltas().items()}


def test_expected_deltas_refuses_a_valid_item_that_does_not_parse():
    late = list(pos_traffic(["S1"], ["X"], count=3, start=datetime.now(UTC) + timedelta(days=3),
                            duplicate_share=0, malformed_share=0))
    with pytest.raises(ValueError, match="future_timestamp"):
        expected_deltas(late)


@pytest.mark.parametrize("kwargs, message", [
    ({"stores": []}, "at least one store"),
    ({"stores": ["bad store"]}, "invalid store id"),
    ({"skus": ["A", " "]}, "no blank"),
    ({"count": -1}, "count"),
    ({"start": datetime(2026, 1, 1)}, "aware"),
    ({"rate_per_s": 0}, "rate_per_s"),
    ({"duplicate_share": 0.6, "malformed_share": 0.5}, "add up"),
])
def test_bad_arguments_fail_before_anything_is_generated(kwargs, message):
    args = {"stores": STORES, "skus": SKUS, "count": 10, "start": START, **kwargs}
    with pytest.raises(ValueError, match=message):
        pos_traffic(args.pop("stores"), args.pop("skus"), **args)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 150),
    stores=st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), min_size=1, max_size=4, unique=True),
    n_skus=st.integers(1, 40),
    duplicate_share=st.floats(0, 0.5),
    malformed_share=st.floats(0, 0.5),
    rate=st.floats(0.01, 5000),
)
def test_any_traffic_is_judged_as_its_kind(seed, count, stores, n_skus, duplicate_share, malformed_share, rate):
    skus = [f"sku {i}" if i % 7 == 3 else f"K{i}" for i in range(n_skus)]  # some need normalising
    items = list(pos_traffic(stores, skus, count=count, seed=seed, start=START, rate_per_s=rate,
                             duplicate_share=duplicate_share, malformed_share=malformed_share))
    assert len(items) == count
    for item in items:
        assert item.store_id in stores
        result = parse_event(item.body, now=NOW + timedelta(days=400))
        expected = "ok" if item.kind in (VALID, DUPLICATE) else item.kind
        assert (result.reason if isinstance(result, InvalidEvent) else "ok") == expected, item
    assert expected_deltas(items, now=NOW + timedelta(days=400)) == independent_deltas(items)


# --- stores that sell what they have (on_hand) -------------------------------------------------------------

HARMONIC = sum((r + 1) ** -1.1 for r in range(len(SKUS)))
# Stock that follows demand (the order of SKUS), as the generator's: ~3,000 units a store, a few of everything.
STOCKED = {store: {sku: 5 + int(3000 * (r + 1) ** -1.1 / HARMONIC) for r, sku in enumerate(SKUS)} for store in STORES}


def replay(items: list[TrafficItem], on_hand: dict[str, dict[str, int]]) -> tuple[dict, int, int]:
    """(stock per (store, sku) after the valid events, lines that took more than was left, lines that took)."""
    stock = {(s, k): n for s, counts in on_hand.items() for k, n in counts.items()}
    short = taking = 0
    for item in items:
        if item.kind != VALID:  # resends and malformed events move nothing
            continue
        doc = json.loads(item.body)
        for line in doc["lines"]:
            key = (doc["storeId"], line["sku"])
            delta = EVENT_TYPES[doc["type"]] * line["qty"]
            if delta < 0:
                taking += 1
                short += stock.get(key, 0) + delta < 0
            stock[key] = stock.get(key, 0) + delta
    return stock, short, taking


@pytest.fixture(scope="module")
def stocked() -> list[TrafficItem]:
    return traffic(4000, seed=5, on_hand=STOCKED)


def test_with_on_hand_stores_sell_what_they_have(stocked):
    stock, short, taking = replay(stocked, STOCKED)
    deltas = expected_deltas(stocked, now=NOW)
    assert stock == {(s, k): n + deltas.get((s, k), 0) for s, counts in STOCKED.items() for k, n in counts.items()}
    assert taking > 5000
    assert short <= 0.005 * taking, "a very few lines sell more than the shelf holds (a miscounted shelf)"
    negative = sum(n < 0 for n in stock.values())
    assert negative <= 0.01 * len(stock)
    # The same traffic regardless of stock takes several best sellers below zero.
    blind, _, _ = replay(traffic(4000, seed=5), STOCKED)
    assert sum(n < 0 for n in blind.values()) > 3 * max(negative, 1)
    # Shelves that run empty send customers to other items: the sales still follow demand, and happen.
    sold = Counter()
    for item in stocked:
        if item.kind == VALID and json.loads(item.body)["type"] == "sale":
            for line in json.loads(item.body)["lines"]:
                sold[line["sku"]] += line["qty"]
    assert sold.most_common(1)[0][0] in SKUS[:5]
    assert sum(sold.values()) > 0.6 * sum(-d for d in expected_deltas(traffic(4000, seed=5), now=NOW).values() if d < 0)


def test_with_on_hand_every_body_is_still_judged_as_its_kind(stocked):
    kinds = Counter(i.kind for i in stocked)
    assert set(kinds) == {VALID, DUPLICATE, *MALFORMED_KINDS}
    for item in stocked:
        result = parse_event(item.body, now=NOW)
        expected = "ok" if item.kind in (VALID, DUPLICATE) else item.kind
        assert (result.reason if isinstance(result, InvalidEvent) else "ok") == expected, item
    assert expected_deltas(stocked, now=NOW) == independent_deltas(stocked)


def test_with_on_hand_same_seed_same_bytes_and_the_counts_given_are_not_changed(stocked):
    before = json.dumps(STOCKED, sort_keys=True)
    assert traffic(4000, seed=5, on_hand=STOCKED) == stocked
    assert json.dumps(STOCKED, sort_keys=True) == before
    assert traffic(500, seed=6, on_hand=STOCKED) != traffic(500, seed=6)


def test_without_oversells_stock_never_goes_below_zero():
    # The 30 best sellers are out: most draws find an empty shelf, and some lines find every shelf they try empty
    # (then an item still in stock is taken).
    on_hand = {store: {sku: 0 if r < 30 else 12 for r, sku in enumerate(SKUS)} for store in STORES}
    items = traffic(3000, seed=2, on_hand=on_hand, oversell_share=0.0)
    stock, short, taking = replay(items, on_hand)
    assert taking > 3000 and short == 0
    assert min(stock.values()) >= 0
    sold = {k for k, d in expected_deltas(items, now=NOW).items() if d < 0}
    assert sold and all(k[1] not in SKUS[:30] for k in sold if stock[k] < on_hand[k[0]][k[1]])


def test_an_empty_on_hand_or_other_stores_change_nothing():
    assert traffic(800, on_hand={}) == traffic(800)
    assert traffic(800, on_hand={"S999": {"A-0000": 0}}) == traffic(800)


def test_oversell_share_must_be_a_share():
    with pytest.raises(ValueError, match="oversell_share"):
        pos_traffic(STORES, SKUS, count=1, start=START, on_hand=STOCKED, oversell_share=1.5)
