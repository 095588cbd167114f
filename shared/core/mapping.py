"""Mapping files: how a store whose software uses another schema is read (docs/ingestion.md).

A TOML file with an optional top-level ``timezone`` and, per canonical table, a ``query``: one read-only
SELECT over the dump whose result columns carry the canonical names. Tables it does not name are read as
``SELECT * FROM <canonical name>``.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Iterable
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
_TOP_KEYS = ("timezone", "tables")
_TABLE_KEYS = ("query",)


@functools.cache
def _duckdb_zones() -> frozenset[str]:
    """The time zones DuckDB's ``SET TimeZone`` accepts (it matches them case-insensitively), read once.

    Python's zoneinfo also accepts names DuckDB does not (``posix/...``, ``right/...``, ``localtime``): the
    ingest sets the mapping's zone on its DuckDB connection, so DuckDB's list is the one that counts.
    """
    import duckdb

    with duckdb.connect() as con:
        return frozenset(r[0].lower() for r in con.execute("SELECT name FROM pg_timezone_names()").fetchall())


def _kind(value: object) -> str:
    """What a TOML value is, in TOML's words, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _unknown_keys(keys: Iterable[str], known: tuple[str, ...]) -> str:
    unknown = sorted(set(keys) - set(known))
    hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, known, 1)) else repr(k)
             for k in unknown]
    return ", ".join(hints)


def _check_timezone(tz: object, source: str) -> str:
    if not isinstance(tz, str):
        raise MappingError(f'{source}: timezone must be a string such as "Europe/Lisbon", not {_kind(tz)}')
    unknown = MappingError(f"{source}: unknown time zone {tz!r}; use an IANA name such as Europe/Lisbon")
    if tz != "UTC" and tz.lower() not in _duckdb_zones():
        raise unknown
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the zone database, ...
        raise unknown from None
    return tz


def parse_mapping(text: str | bytes, source: str = "mapping") -> Mapping:
    """Parse and check a mapping file (its text, or its bytes: UTF-8). Raises :class:`MappingError` naming the
    problem, whatever is wrong with the file."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MappingError(f"{source}: not UTF-8 text (byte {exc.start} is {text[exc.start]:#04x}); "
                               "save the mapping file as UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{source}: not valid TOML: {exc}") from None
    if set(doc) - set(_TOP_KEYS):
        raise MappingError(f"{source}: unknown top-level key(s) {_unknown_keys(doc, _TOP_KEYS)}; "
                           "use timezone and [tables.*]")
    tz = _check_timezone(doc.get("timezone", "UTC"), source)
    tables = doc.get("tables", {})
    if not isinstance(tables, dict):
        raise MappingError(f"{source}: tables must be [tables.<name>] sections (one per canonical table: "
                           f"{', '.join(TABLES)}), not {_kind(tables)}")
    queries: dict[str, str] = {}
    for table, spec in tables.items():
        if table not in TABLES:
            raise MappingError(f"{source}: [tables.{table}] is not a canonical table ({', '.join(TABLES)})")
        if not isinstance(spec, dict):
            raise MappingError(f'{source}: tables.{table} must be a [tables.{table}] section with query = '
                               f'"SELECT ...", not {_kind(spec)}')
        if set(spec) - set(_TABLE_KEYS):
            raise MappingError(f"{source}: [tables.{table}] has unknown key(s) {_unknown_keys(spec, _TABLE_KEYS)}; "
                               "it takes only query")
        if not isinstance(spec.get("query"), str):
            raise MappingError(f'{source}: [tables.{table}] needs query = "SELECT ..."'
                               + (f", not {_kind(spec['query'])}" if "query" in spec else ""))
        query = spec["query"].strip().rstrip(";").strip()
        if not _SELECT.match(query) or ";" in query:
            raise MappingError(f"{source}: [tables.{table}] query must be one SELECT (or WITH ... SELECT)")
        queries[table] = query
    return Mapping(timezone=tz, queries=queries, source=source)
