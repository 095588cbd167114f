"""The store id rule and the raw dump path: the agent's copy of ``shared/core/ids.py``.

Written twice on purpose: the store PC must not need the pipeline, and the deployed app must not depend on
the agent. ``tests/unit/test_agent_ids.py`` checks that both copies accept the same ids and build the same
paths. Change both, or neither.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from inventory_agent.errors import InvalidStoreId

STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DUMP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def validate_store_id(store_id: object) -> str:
    """Return ``store_id`` if it matches ``^[A-Za-z0-9_-]{1,64}$``; raise :class:`InvalidStoreId` if not."""
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.fullmatch(store_id):
        raise InvalidStoreId(store_id)
    return store_id


def raw_dump_path(store_id: str, day: date, name: str) -> str:
    """``raw/store=<id>/date=<YYYY-MM-DD>/<name>``, the place the agent uploads a dump to."""
    validate_store_id(store_id)
    if not _DUMP_NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(f"invalid dump file name {name!r}: use letters, digits, '_', '-' and '.'")
    return f"raw/store={store_id}/date={day.isoformat()}/{name}"


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` (what the pipeline's ``parse_utc`` reads); naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
