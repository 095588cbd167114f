"""Simulated POS traffic with ground truth: the sale events stores would send, for the demo and the tests.

Pure (no I/O) and deterministic: the same arguments give the same bodies, byte for byte. What makes the
traffic realistic enough to find bugs with:

* arrivals are a Poisson process (exponential gaps at ``rate_per_s``) over stores of different sizes, each
  store with 1-4 tills numbering their own events (``S001-pos2-00000042``);
* times carry the till's UTC offset: a store's local offset, or ``Z`` for tills that send UTC;
* skus follow a Zipf law (popularity ~ rank^-1.1 in the order given), baskets hold 1-5 lines, a sku may
  appear twice in one basket, quantities are mostly 1; about 90 % sales, 3 % returns, 5 % receipts (case
  quantities) and 2 % signed stock adjustments (mostly shrinkage);
* resends: a till that timed out sends a recent event again, byte for byte (same ``eventId``);
* with ``on_hand`` (the stores' counts), a store sells what it has: each store's stock is tracked through
  its valid events, a sale line wanting an item the shelf no longer holds goes to another item (drawn by
  demand again), its quantity is cut to what is left, and shrinkage never takes more than is there. Only
  about ``oversell_share`` of the lines that find the shelf short are sold anyway (the count was wrong):
  stock rarely goes below zero;
* malformed events, each built to fail :func:`~shared.core.events.parse_event` with exactly one reason code
  (truncated or concatenated JSON, a missing field, a bad store id, an unknown type, a zero or fractional
  qty, too many lines, a line without sku).

:func:`expected_deltas` gives the ground truth: what the distinct valid events change, per (store, sku).

Event times must not be more than 24 h ahead of the clock that checks them (``future_timestamp``), so pass
a ``start`` in the past, or the present. Every body is one line of ASCII, so items can be written out as
JSON lines (``inventory events apply``) as they are.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from typing import ClassVar

from shared.core.events import EVENT_TYPES, MAX_LINES, SaleEvent, parse_event
from shared.core.ids import validate_store_id

VALID = "valid"
DUPLICATE = "duplicate"
# The reason codes the generator builds bodies for (a subset of shared.core.events.REASON_CODES).
MALFORMED_KINDS = ("bad_json", "missing_field", "bad_store_id", "unknown_type", "bad_qty", "too_many_lines",
                   "missing_sku")

EVENT_TYPE_WEIGHTS = {"sale": 0.90, "return": 0.03, "receipt": 0.05, "adjustment": 0.02}
LINES_P = (0.40, 0.25, 0.17, 0.11, 0.07)  # 1..5 lines per event
SALE_QTY = ((1, 2, 3, 4, 5, 6), (0.72, 0.17, 0.06, 0.03, 0.01, 0.01))  # also returns
RECEIPT_QTY = ((6, 12, 24, 48), (0.35, 0.35, 0.20, 0.10))  # deliveries come in cases
ADJUSTMENT_QTY = ((-3, -2, -1, 1, 2, 3), (0.10, 0.20, 0.40, 0.20, 0.07, 0.03))  # counts mostly find less
ZIPF_A = 1.1
MAX_TILLS = 4
UTC_SHARE = 0.3  # tills that send UTC ("Z") rather than the store's local offset
STORE_OFFSETS = (timedelta(0), timedelta(hours=1), timedelta(hours=1), timedelta(hours=2), timedelta(hours=-5),
                 timedelta(hours=5, minutes=30))
RESEND_WINDOW = 100  # a resend repeats one of the last valid events (a retry after a timeout, not days later)
OVERSELL_SHARE = 0.02  # with on_hand: lines finding the shelf short that are sold anyway (a miscounted shelf)
MAX_DRAWS = 12  # with on_hand: draws for an item in stock before a line is sold anyway


@dataclass(frozen=True)
class TrafficItem:
    body: bytes  # what a POS would send (JSON, one event)
    store_id: str  # the intended store (also for malformed ones, as partition key)
    kind: str  # "valid", "duplicate" (an exact resend of an earlier valid body) or the reason code it fails with


@dataclass
class _Till:
    store: str
    number: int
    offset: timedelta | None  # None: the till sends UTC with a "Z"
    seq: int = 0


def pos_traffic(
    stores: Sequence[str],
    skus: Sequence[str],
    *,
    count: int,
    seed: int = 0,
    start: datetime,
    rate_per_s: float = 50.0,
    duplicate_share: float = 0.02,
    malformed_share: float = 0.01,
    on_hand: Mapping[str, Mapping[str, int]] | None = None,
    oversell_share: float = OVERSELL_SHARE,
) -> Iterator[TrafficItem]:
    """``count`` POS messages from ``start`` on; about ``duplicate_share`` resends and ``malformed_share``
    malformed events (the malformed kinds take turns, shuffled, so every kind shows up early).

    ``on_hand`` maps a store to its counts per sku (skus spelled as in ``skus``; one the map lacks counts 0):
    that store then sells what it has (see the module's notes), with ``oversell_share`` of the short lines
    sold anyway. Stores the map lacks, and every store without it, sell regardless of stock."""
    for store in stores:
        validate_store_id(store)
    if not stores:
        raise ValueError("pos_traffic needs at least one store")
    if not skus or any(not isinstance(s, str) or not s.strip() for s in skus):
        raise ValueError("pos_traffic needs at least one sku, and no blank ones")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, not {count!r}")
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime (e.g. datetime(2026, 11, 27, 8, tzinfo=UTC))")
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ValueError(f"rate_per_s must be a positive number, not {rate_per_s!r}")
    if not (0 <= duplicate_share <= 1 and 0 <= malformed_share <= 1 and duplicate_share + malformed_share <= 1):
        raise ValueError("duplicate_share and malformed_share must be between 0 and 1 and add up to at most 1")
    if not 0 <= oversell_share <= 1:
        raise ValueError(f"oversell_share must be between 0 and 1, not {oversell_share!r}")
    stock = None
    if on_hand is not None:
        stock = {store: {sku: int(n) for sku, n in on_hand[store].items()} for store in stores if store in on_hand}
    return _traffic(list(stores), list(skus), count, random.Random(seed), start, rate_per_s, duplicate_share,
                    malformed_share, stock, oversell_share)


def _traffic(stores: list[str], skus: list[str], count: int, rng: random.Random, start: datetime,
             rate: float, duplicate_share: float, malformed_share: float, stock: dict[str, dict[str, int]] | None,
             oversell_share: float) -> Iterator[TrafficItem]:
    gen = _Builder(stores, skus, rng, stock, oversell_share)
    recent: deque[TrafficItem] = deque(maxlen=RESEND_WINDOW)
    malformed_turns: list[str] = []
    elapsed = 0.0
    for _ in range(count):
        elapsed += rng.expovariate(rate)
        moment = start + timedelta(seconds=elapsed)
        draw = rng.random()
        if draw < duplicate_share and recent:
            original = rng.choice(recent)
            yield TrafficItem(original.body, original.store_id, DUPLICATE)
        elif duplicate_share <= draw < duplicate_share + malformed_share:
            if not malformed_turns:
                malformed_turns = list(MALFORMED_KINDS)
                rng.shuffle(malformed_turns)
            kind = malformed_turns.pop()
            till = gen.till()
            yield TrafficItem(gen.malformed(kind, till, moment), till.store, kind)
        else:  # valid; also a "duplicate" drawn before anything valid exists
            till = gen.till()
            item = TrafficItem(_dumps(gen.event(till, moment, sell=True)), till.store, VALID)
            recent.append(item)
            yield item


def _dumps(doc: object) -> bytes:
    # Compact and ASCII (non-ASCII escaped): one line per body, whatever the skus.
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _price(sku: str) -> float:
    """A shelf price that depends only on the sku (the chain's stores sell at the same prices)."""
    h = zlib.crc32(sku.encode("utf-8"))
    return (h % 40) + (0.49 if h >> 8 & 1 else 0.99)


class _Builder:
    """Tills, ids and event documents; all randomness comes from the one ``rng``."""

    def __init__(self, stores: list[str], skus: list[str], rng: random.Random,
                 stock: dict[str, dict[str, int]] | None = None, oversell_share: float = OVERSELL_SHARE) -> None:
        self.rng = rng
        self.skus = skus
        self.stock = stock or {}  # store -> sku -> units on hand, updated by the valid events built
        self.oversell_share = oversell_share
        self.sku_cum = list(accumulate((rank + 1) ** -ZIPF_A for rank in range(len(skus))))
        self.tills: list[_Till] = []
        self.till_cum: list[float] = []
        for store in stores:
            offset = rng.choice(STORE_OFFSETS)
            size = rng.uniform(0.5, 2.0)  # busier and quieter stores
            n_tills = rng.randint(1, MAX_TILLS)
            for n in range(1, n_tills + 1):
                self.tills.append(_Till(store, n, None if rng.random() < UTC_SHARE else offset))
                self.till_cum.append((self.till_cum[-1] if self.till_cum else 0.0) + size / n_tills)

    def till(self) -> _Till:
        return self.rng.choices(self.tills, cum_weights=self.till_cum)[0]

    def _header(self, till: _Till, kind: str, moment: datetime) -> dict:
        till.seq += 1
        if till.offset is None:
            stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        else:
            stamp = moment.astimezone(timezone(till.offset)).isoformat(timespec="milliseconds")
        return {"eventId": f"{till.store}-pos{till.number}-{till.seq:08d}", "storeId": till.store, "type": kind,
                "occurredAt": stamp}

    def _lines(self, kind: str, n: int) -> list[dict]:
        qtys, weights = {"receipt": RECEIPT_QTY, "adjustment": ADJUSTMENT_QTY}.get(kind, SALE_QTY)
        lines = []
        for sku in self.rng.choices(self.skus, cum_weights=self.sku_cum, k=n):
            line: dict = {"sku": sku, "qty": self.rng.choices(qtys, weights)[0]}
            if kind in ("sale", "return"):
                line["unitPrice"] = _price(sku)
            lines.append(line)
        return lines

    def _stocked_lines(self, kind: str, n: int, stock: dict[str, int]) -> list[dict]:
        """Like :meth:`_lines`, for a store that sells what it has; ``stock`` is updated line by line."""
        rng = self.rng
        qtys, weights = {"receipt": RECEIPT_QTY, "adjustment": ADJUSTMENT_QTY}.get(kind, SALE_QTY)
        sign = EVENT_TYPES[kind]
        lines = []
        for _ in range(n):
            qty = rng.choices(qtys, weights)[0]
            taking = sign * qty < 0  # a sale, or shrinkage
            for _ in range(MAX_DRAWS):  # the customer takes another item when the shelf is empty
                sku = rng.choices(self.skus, cum_weights=self.sku_cum)[0]
                if not taking or stock.get(sku, 0) > 0 or rng.random() < self.oversell_share:
                    break
            else:  # the popular items are gone: one of those left, by demand (or, if nothing is left, this one)
                sku = self._in_stock(stock) or sku
            left = stock.get(sku, 0)
            if taking and 0 < left < -sign * qty and rng.random() >= self.oversell_share:
                qty = -left * sign  # what is left on the shelf
            line: dict = {"sku": sku, "qty": qty}
            if kind in ("sale", "return"):
                line["unitPrice"] = _price(sku)
            stock[sku] = left + sign * qty
            lines.append(line)
        return lines

    def _in_stock(self, stock: dict[str, int]) -> str | None:
        """A sku the store still has, drawn by demand; None when it has nothing left."""
        ranks = [r for r, sku in enumerate(self.skus) if stock.get(sku, 0) > 0]
        if not ranks:
            return None
        return self.skus[self.rng.choices(ranks, [(r + 1) ** -ZIPF_A for r in ranks])[0]]

    def event(self, till: _Till, moment: datetime, kind: str | None = None, *, sell: bool = False) -> dict:
        """An event document; ``sell``: it will be sent as valid, so it moves the store's tracked stock."""
        kind = kind or self.rng.choices(list(EVENT_TYPE_WEIGHTS), list(EVENT_TYPE_WEIGHTS.values()))[0]
        doc = self._header(till, kind, moment)
        n = self.rng.choices(range(1, len(LINES_P) + 1), LINES_P)[0]
        stock = self.stock.get(till.store) if sell else None
        doc["lines"] = self._lines(kind, n) if stock is None else self._stocked_lines(kind, n, stock)
        return doc

    def malformed(self, reason: str, till: _Till, moment: datetime) -> bytes:
        """A body that fails ``parse_event`` with ``reason`` and nothing before it: everything checked
        earlier (size, JSON, id, store, type, time) stays valid."""
        doc = self.event(till, moment)
        if reason == "bad_json":
            return self._bad_json(doc, till, moment)
        spoil = self._SPOILERS.get(reason)
        if spoil is None:
            raise ValueError(f"no malformed body for reason {reason!r}")
        return _dumps(spoil(self, doc, till, moment))

    def _bad_json(self, doc: dict, till: _Till, moment: datetime) -> bytes:
        rng = self.rng
        body = _dumps(doc)
        variant = rng.randrange(3)
        if variant == 0:  # the connection dropped mid-message: any strict prefix lacks the final "}"
            return body[: rng.randrange(1, len(body))]
        if variant == 1:  # two events glued together by a buggy sender
            return body + _dumps(self.event(till, moment))
        return _dumps([doc])  # a batch sent as one event: JSON, but not an object

    # The other reasons: the event document spoilt (in place, or replaced), to be sent as JSON.

    def _missing_field(self, doc: dict, till: _Till, moment: datetime) -> dict:
        field = self.rng.choice(("eventId", "storeId", "type", "occurredAt", "lines"))
        if self.rng.random() < 0.5:
            del doc[field]
        else:
            doc[field] = None
        return doc

    def _bad_store_id(self, doc: dict, till: _Till, moment: datetime) -> dict:
        doc["storeId"] = self.rng.choice((f"{till.store} ", f"{till.store}/till{till.number}", "",
                                          f"store #{till.store}"))
        return doc

    def _unknown_type(self, doc: dict, till: _Till, moment: datetime) -> dict:
        doc["type"] = self.rng.choice(("void", "refund", "Sale", "SALE", "transfer", "layaway"))
        return doc

    def _bad_qty(self, doc: dict, till: _Till, moment: datetime) -> dict:
        rng = self.rng
        line = rng.choice(doc["lines"])
        line["qty"] = 0 if rng.random() < 0.5 else rng.randint(0, 3) + 0.5  # e.g. weighed goods
        return doc

    def _too_many_lines(self, doc: dict, till: _Till, moment: datetime) -> dict:
        """A delivery not split into events of at most MAX_LINES lines (replaces ``doc``)."""
        doc = self.event(till, moment, "receipt")
        doc["lines"] = self._lines("receipt", MAX_LINES + self.rng.randint(1, 40))
        return doc

    def _missing_sku(self, doc: dict, till: _Till, moment: datetime) -> dict:
        line = self.rng.choice(doc["lines"])
        variant = self.rng.randrange(3)
        if variant == 0:
            del line["sku"]
        else:
            line["sku"] = "" if variant == 1 else "   "
        return doc

    _SPOILERS: ClassVar[dict[str, Callable[[_Builder, dict, _Till, datetime], dict]]] = {
        "missing_field": _missing_field, "bad_store_id": _bad_store_id, "unknown_type": _unknown_type,
        "bad_qty": _bad_qty, "too_many_lines": _too_many_lines, "missing_sku": _missing_sku,
    }


def expected_deltas(items: Iterable[TrafficItem], *, now: datetime | None = None) -> dict[tuple[str, str], int]:
    """The true stock change per (store, normalised sku): the deltas of the distinct valid events.

    Distinct by (storeId, eventId), as the stock invariant counts them (docs/stock-and-events.md); resends count once,
    malformed events not at all. Zero sums are kept (the sku was touched). ``now`` is passed to
    ``parse_event`` (for the future-timestamp check). Raises ValueError if a valid or duplicate item does not
    parse, since the truth would then be wrong.
    """
    seen: set[tuple[str, str]] = set()
    out: dict[tuple[str, str], int] = {}
    for item in items:
        if item.kind not in (VALID, DUPLICATE):
            continue
        event = parse_event(item.body, now=now)
        if not isinstance(event, SaleEvent):
            raise ValueError(f"a {item.kind} item of store {item.store_id} does not parse ({event.reason}: "
                             f"{event.detail}); is start more than 24 h ahead of now?")
        key = (event.store_id, event.event_id)
        if key in seen:
            continue
        seen.add(key)
        for sku, delta in event.deltas:
            out[(event.store_id, sku)] = out.get((event.store_id, sku), 0) + delta
    return out
