"""Mapping files: how a store whose software uses another schema is read (handbook §2).

A TOML file with an optional top-level ``timezone`` and, per canonical table, a ``query``: one read-only
SELECT over the dump whose result columns carry the canonical names. Tables it does not name are read as
``SELECT * FROM <canonical name>``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.core.schema import TABLES


class MappingError(ValueError):
    """The mapping file itself is wrong (a configuration error, not the dump's fault)."""


@dataclass(frozen=True)
class Mapping:
    timezone: str = "UTC"
    queries: dict[str, str] = field(default_factory=dict)
    source: str = "default"

    def query_for(self, table: str) -> str | None:
        return self.queries.get(table)


DEFAULT_MAPPING = Mapping()

_SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


def parse_mapping(text: str, source: str = "mapping") -> Mapping:
    """Parse and check a mapping file's text. Raises :class:`MappingError` naming the problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"timezone", "tables"}
    if unknown:
        raise MappingError(f"{source}: unknown top-level key(s) {sorted(unknown)}; use timezone and [tables.*]")
    tz = doc.get("timezone", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"{source}: unknown time zone {tz!r}; use an IANA name such as Europe/Lisbon") from None
    queries: dict[str, str] = {}
    for table, spec in (doc.get("tables") or {}).items():
        if table not in TABLES:
            raise MappingError(f"{source}: [tables.{table}] is not a canonical table ({', '.join(TABLES)})")
        if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
            raise MappingError(f'{source}: [tables.{table}] needs query = "SELECT ..."')
        query = spec["query"].strip().rstrip(";").strip()
        if not _SELECT.match(query) or ";" in query:
            raise MappingError(f"{source}: [tables.{table}] query must be one SELECT (or WITH ... SELECT)")
        queries[table] = query
    return Mapping(timezone=str(tz), queries=queries, source=source)
