"""The lake's layout: every path the pipeline reads or writes is built here, from validated ids.

Zones (docs/lake.md): ``raw/`` dumps as the agents upload them; ``curated/<table>`` and ``rejected/<table>``
Delta tables; ``manifests/store=<id>/<dump id>.json`` one per committed dump; ``quarantine/store=<id>/<key>/``
dumps refused whole; ``deadletter/`` events set aside; ``aggregates/<name>`` the analysts' Delta tables;
``state/`` the pipeline's own bookkeeping.
"""

from __future__ import annotations

import re
from datetime import date

from shared.core.ids import validate_store_id

RAW = "raw/"
CURATED = "curated/"
REJECTED = "rejected/"
MANIFESTS = "manifests/"
QUARANTINE = "quarantine/"
DEADLETTER = "deadletter/"
AGGREGATES = "aggregates/"


def curated(table: str) -> str:
    """``curated/<table>``: the Delta table of a canonical table's clean rows."""
    return f"{CURATED}{table}"


def rejected(table: str) -> str:
    """``rejected/<table>``: the Delta table of a canonical table's rejected rows, with their reasons."""
    return f"{REJECTED}{table}"


def aggregate(name: str) -> str:
    """``aggregates/<name>``: one of the Delta tables the aggregates timer writes."""
    return f"{AGGREGATES}{name}"


def manifests(store_id: str | None = None) -> str:
    """The prefix of every manifest, or of one store's."""
    return MANIFESTS if store_id is None else f"{MANIFESTS}store={validate_store_id(store_id)}/"


def manifest(store_id: str, dump_id: str) -> str:
    """``manifests/store=<id>/<dump id>.json``: written last, it is the dump's commit record."""
    return f"{manifests(store_id)}{dump_id}.json"


def quarantine(store_id: str, key: str) -> str:
    """``quarantine/store=<id>/<key>``: the folder of a dump refused whole (the dump and its reason)."""
    return f"{QUARANTINE}store={validate_store_id(store_id)}/{key}"


def dead_lettered_events(day: date, name: str) -> str:
    """``deadletter/events/date=<day>/<name>.jsonl``: invalid or conflicting events, exactly as received."""
    return f"{DEADLETTER}events/date={day.isoformat()}/{name}.jsonl"


def failed_batch(day: date, name: str) -> str:
    """``deadletter/failed-batches/date=<day>/<name>.jsonl``: a batch that failed its last retry."""
    return f"{DEADLETTER}failed-batches/date={day.isoformat()}/{name}.jsonl"


def ingest_state(store_id: str) -> str:
    """``state/ingest/store=<id>.json``: what the last ingests of a store saw (the nightly window)."""
    return f"state/ingest/store={validate_store_id(store_id)}.json"


def store_in(path: str, zone: str) -> str | None:
    """The store id of ``<zone>/store=<id>/…`` (``zone`` without its slash), or None for another path."""
    parts = path.split("/")
    if len(parts) > 1 and parts[0] == zone and parts[1].startswith("store="):
        return parts[1][len("store="):]
    return None


_DUMP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def raw_dump_path(store_id: str, day: date, name: str) -> str:
    """``raw/store=<id>/date=<YYYY-MM-DD>/<name>``, the place a store agent uploads a dump to."""
    validate_store_id(store_id)
    if not _DUMP_NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(f"invalid dump file name {name!r}: use letters, digits, '_', '-' and '.'")
    return f"{RAW}store={store_id}/date={day.isoformat()}/{name}"


_RAW_PATH = re.compile(r"^(?:lake/)?raw/store=(?P<store>[^/]*)/date=(?P<date>[^/]*)/(?P<name>[^/]+)$")


def parse_raw_dump_path(path: str) -> tuple[str, date, str]:
    """Split ``raw/store=<id>/date=<date>/<name>`` (optionally prefixed by the container) into parts.

    Raises :class:`InvalidStoreId` for an unsafe store id and ``ValueError`` for any other shape.
    """
    m = _RAW_PATH.match(path)
    if not m:
        raise ValueError(
            f"unexpected raw dump path {path!r}: expected raw/store=<id>/date=<YYYY-MM-DD>/<file>"
        )
    store = validate_store_id(m["store"])
    try:
        day = date.fromisoformat(m["date"])
    except ValueError:
        raise ValueError(f"unexpected date {m['date']!r} in raw dump path {path!r}") from None
    return store, day, m["name"]
