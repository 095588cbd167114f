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
    """The truth from the raw JSON alone, without parse_event: signs from the contract (handbook §4)."""
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
