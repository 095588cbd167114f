"""Identifiers that end up in lake paths. Every path built from outside input goes through here."""

from __future__ import annotations

import re
from datetime import datetime

STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidStoreId(ValueError):
    """A store id that would be unsafe or ambiguous in a lake path."""

    def __init__(self, store_id: object) -> None:
        super().__init__(
            f"invalid store id {store_id!r}: a store id is 1-64 characters of letters, digits, "
            "'_' or '-' (it becomes part of lake paths such as raw/store=<id>/)"
        )
        self.store_id = store_id


def validate_store_id(store_id: object) -> str:
    """Return ``store_id`` if it matches ``^[A-Za-z0-9_-]{1,64}$``; raise :class:`InvalidStoreId` if not."""
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.fullmatch(store_id):
        raise InvalidStoreId(store_id)
    return store_id


def dump_id_from_sha256(sha256_hex: str) -> str:
    """The dump id: the first 24 hex digits of the SQLite file's sha256 (96 bits, per-store unique)."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256_hex):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    return sha256_hex[:24]



def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, seconds precision or better; naive datetimes are taken as UTC."""
    from datetime import UTC

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset) as an aware UTC datetime; a naive one is taken as UTC, as
    :func:`utc_iso` writes it. Raises ValueError naming the text."""
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not an ISO-8601 time such as 2026-11-27T22:00:00Z") from None
