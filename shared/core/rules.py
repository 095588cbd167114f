"""The business rules for dump rows, as data, and the SQL that applies them.

One table of rules (code, tables, action, description) is shared by the cleaning, the manifest, the README
(``inventory rules`` prints it) and the tests. Rules are evaluated in the order listed; a rejected row
carries the code of the first rule it breaks. Every input row ends up either curated or rejected:
``curated + rejected = input`` for every table.

The SQL is DuckDB's dialect and runs over plain relations: no I/O happens here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from shared.core.schema import TABLES, Column, Table

if TYPE_CHECKING:
    import pyarrow as pa

Action = Literal["fix", "reject", "flag"]

FUTURE_TOLERANCE = timedelta(hours=24)
"""Clock skew accepted on a sale's time (dump lines and events alike); later times are sender bugs."""


@dataclass(frozen=True)
class Rule:
    code: str
    tables: tuple[str, ...]
    action: Action  # fix: value corrected, row kept; reject: row set aside; flag: row kept with a flag
    description: str


ALL = tuple(TABLES)
FACTS = ("sales", "receipts")
RULES: tuple[Rule, ...] = (
    Rule("sku_normalised", ("items", "stock", "sales", "receipts"), "fix",
         "sku trimmed, upper-cased and inner whitespace collapsed to one space"),
    Rule("missing_required", ALL, "reject",
         "a required field is NULL or blank (after trimming)"),
    Rule("bad_number", ALL, "reject",
         "a numeric field is not a number, or a count/quantity is not a whole number"),
    Rule("bad_timestamp", ALL, "reject",
         "a timestamp is not a valid ISO-8601 date/time (e.g. 2026-02-30 or 'yesterday')"),
    Rule("future_timestamp", FACTS, "reject",
         "a sale or receipt is dated more than a day after the ingest (a till clock set ahead): kept, it would "
         "end the store's sales history in the future and empty its forecast"),
    Rule("bad_boolean", ("items",), "reject",
         "active is not one of 1/0, true/false, t/f, yes/no, y/n"),
    Rule("non_positive_qty", FACTS, "reject",
         "a sale or receipt quantity is zero or negative"),
    Rule("negative_price", ("items", "sales"), "reject",
         "a unit price or unit cost is negative"),
    Rule("unknown_sku", ("stock", "sales", "receipts"), "reject",
         "the sku is not among the dump's curated items"),
    Rule("duplicate", ALL, "reject",
         "the same key with the same values appeared earlier in the dump; the first copy is kept"),
    Rule("conflicting_duplicate", ALL, "reject",
         "the same key appears with different values; every version is set aside, none is trusted"),
    Rule("changed_since_ingested", FACTS, "reject",
         "a line already in the lake came again with other values (an edited quantity, price, sku or time): the "
         "lake keeps the first version (facts are immutable); this one is set aside and reported"),
    Rule("unknown_vendor", ("items",), "flag",
         "the item's vendor_id is not in the dump's vendors table (kept)"),
    Rule("negative_on_hand", ("stock",), "flag",
         "the on-hand count is negative (kept: it happens when sales outrun counted receipts)"),
)
REJECT_CODES = tuple(r.code for r in RULES if r.action == "reject")
FLAG_CODES = tuple(r.code for r in RULES if r.action == "flag")


def rules_for(table: str) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if table in r.tables)


# --- parsing: text in, typed value out (NULL when unparseable) ------------------------------------------
#
# Cleaning runs in two stages so that big tables stream:
#   1. the row stage, per batch as it is read: trim once, parse, row-level rules, reference rules, flags;
#   2. the duplicate stage, once over the rows that passed: a GROUP BY on the key finds the (few) keys
#      seen more than once, and a join marks `duplicate` / `conflicting_duplicate`.

def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


# The whitespace trimmed from every text value: space, tab, LF, VT, FF, CR (the regex class [[:space:]]).
WHITESPACE = " \t\n\v\f\r"

# How a column can arrive in a batch (see ``prepare_batch``): text, a number SQLite stored as one, or (a
# timestamp column, naive values being UTC) text with its plain values already parsed in ``_utc_<column>``.
Arrival = Literal["text", "int", "float", "utc"]


def _arrival(arrow_type: pa.DataType) -> Arrival:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    return "text"


def prepare_batch(batch: pa.RecordBatch, table: Table, first_row: int, *, naive_utc: bool = False) -> pa.RecordBatch:
    """The row stage's input relation for one batch as read: ``_row`` (1-based position in the dump), each
    column of ``table`` (text trimmed of :data:`WHITESPACE`; a number SQLite stored as a number passes as
    int64/float64, only for int and decimal columns) and ``_raw_sku`` (the sku as read, to tell whether
    normalisation changed it). Columns absent from the batch arrive as NULL text. With ``naive_utc`` (the
    store's time zone is UTC), each timestamp column also arrives as ``_utc_<column>``: its plain values
    parsed (:func:`~shared.core.arrow_values.plain_timestamps_utc`), the row stage casting only the others.

    Text is trimmed and blank text turned into NULL here, and skus normalised (upper case, inner whitespace
    collapsed), with Arrow's vectorised kernels: ~10x cheaper than DuckDB's trim over a character set, which
    copies every value, and it lets the row stage pass these columns through without a round trip. A
    timestamp that is not ISO-8601 (:data:`ISO_TIMESTAMP`) is replaced by a text no cast accepts, so the row
    stage rejects it as ``bad_timestamp`` (the rejected file keeps the value as read): Arrow's RE2 takes
    ~0.08 s per million values, DuckDB's regexp_full_match ~0.16 s, and only values that are not of the
    plain form are checked. (Done in the dump reader's process instead, it made no difference beyond the noise
    in interleaved runs at 5M lines: the two CPUs are busy.)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from shared.core.arrow_values import null_scalar, plain_timestamps_utc, row_numbers, string_scalar

    n = batch.num_rows
    arrays = [row_numbers(first_row, n)]
    names = ["_row"]
    present = set(batch.schema.names)
    parsed: list[tuple[str, pa.Array]] = []
    for col in table.columns:
        arr = batch.column(col.name) if col.name in present else pa.nulls(n, pa.string())
        if not col.numeric or _arrival(arr.type) == "text":
            if not pa.types.is_string(arr.type):
                arr = pc.cast(arr, pa.string())
            arr = pc.utf8_trim(arr, WHITESPACE)
            blank = pc.equal(arr, string_scalar(""))
            if pc.any(blank).as_py():
                arr = pc.if_else(blank, null_scalar(pa.string()), arr)
            if col.name == "sku":
                arr = normalise_skus(arr)
            elif col.kind == "timestamp":
                plain = plain_timestamps_utc(arr)
                if plain.null_count > arr.null_count:
                    arr = _iso_or_marked(arr, plain)
                if naive_utc:
                    parsed.append((f"_utc_{col.name}", plain))
        elif pa.types.is_integer(arr.type) and arr.type != pa.int64():
            arr = pc.cast(arr, pa.int64())
        elif pa.types.is_floating(arr.type) and arr.type != pa.float64():
            arr = pc.cast(arr, pa.float64())
        arrays.append(arr)
        names.append(col.name)
    if "sku" in table.column_names:
        raw = batch.column("sku") if "sku" in present else pa.nulls(n, pa.string())
        arrays.append(raw if pa.types.is_string(raw.type) else pc.cast(raw, pa.string()))
        names.append("_raw_sku")
    for name, arr in parsed:
        arrays.append(arr)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _iso_or_marked(arr: pa.Array, plain: pa.Array) -> pa.Array:
    """``arr`` (trimmed timestamp text) with each value that is not ISO-8601 replaced by NOT_A_TIMESTAMP and a
    trailing ``z`` made ``Z`` (which DuckDB's cast refuses); only the values ``plain`` did not parse are
    checked. NULL stays NULL (missing, not bad)."""
    import numpy as np
    import pyarrow.compute as pc

    from shared.core.arrow_values import bool_array, bool_numpy, string_array

    todo = bool_numpy(pc.and_(pc.is_valid(arr), pc.is_null(plain)))
    rest = arr.filter(bool_array(todo))
    iso = bool_numpy(pc.match_substring_regex(rest, ISO_TIMESTAMP))
    if not iso.all():
        bad = np.zeros(len(arr), dtype=bool)
        bad[np.flatnonzero(todo)[~iso]] = True
        arr = pc.replace_with_mask(arr, bool_array(bad), string_array([NOT_A_TIMESTAMP] * int(bad.sum())))
    if pc.any(pc.ends_with(rest, "z")).as_py():
        arr = pc.replace_substring_regex(arr, "z$", "Z")
    return arr


INNER_WHITESPACE = "[" + WHITESPACE + "]+"  # a run of it, as a regex (Arrow RE2 and Python re alike)


def normalise_skus(trimmed: pa.Array) -> pa.Array:
    """Rule ``sku_normalised`` on trimmed skus: upper-cased, each run of inner whitespace one space."""
    import pyarrow.compute as pc

    upper = pc.utf8_upper(trimmed)
    spaced = pc.match_substring_regex(upper, INNER_WHITESPACE)
    if not pc.any(spaced).as_py():
        return upper
    return pc.if_else(spaced, pc.replace_substring_regex(upper, INNER_WHITESPACE, " "), upper)


def is_utc(timezone: str) -> bool:
    """Whether a store's time zone (a mapping's ``timezone``) is UTC: its naive times need no conversion."""
    return timezone in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu")


def passes_through(col: Column) -> bool:
    """Whether the row stage's value for ``col`` is the prepared text itself (keys and free text without a
    default): the ingest takes these from the prepared batch instead of from DuckDB's output."""
    return col.kind in ("key", "text") and col.default_sql is None


def has_flags(table: Table) -> bool:
    return any(r.action == "flag" and table.name in r.tables for r in RULES)


def arrivals(batch: pa.RecordBatch, table: Table) -> tuple[Arrival, ...]:
    """How each column of ``table`` arrives in a prepared batch: the key of :func:`row_stage_sql`'s SQL."""
    names = set(batch.schema.names)
    return tuple("utc" if f"_utc_{c}" in names else _arrival(batch.schema.field(c).type)
                 for c in table.column_names)


ISO_TIMESTAMP = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
                 r"([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$")
"""ISO-8601 as the rules take it: YYYY-MM-DD, optionally a time (T or space, HH:MM[:SS[.fraction]]) and then Z/z
or an offset ±HH:MM, ±HHMM, ±HH. DuckDB's cast alone is lenient: 'epoch' (1970!), 'infinity', '2026/11/25',
year 10000, single-digit fields, zone names and abbreviations ('IST': which one?)."""
NOT_A_TIMESTAMP = "not ISO-8601"  # what prepare_batch puts in place of a timestamp ISO_TIMESTAMP refuses

# The limits are on the value: leading zeros are not digits (a till padding 3 to 19 characters wrote a 3).
_INT = r"'[+-]?0*[0-9]{1,18}(\.0*)?'"
_DEC = r"'[+-]?(0*[0-9]{1,14}(\.[0-9]*)?|\.[0-9]+)'"
# The instants a curated timestamp may hold: UTC years 1..9999, what Python's datetime (and date32) can hold.
_TS_RANGE = "BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"


def parse_expr(col: Column, t: str, arrival: Arrival = "text") -> str:
    """SQL turning ``t`` (the value trimmed, NULL when blank) into the column's curated type.

    NULL when unparseable. Strict on purpose: DuckDB's own casts accept '0x10', '1_000' and round '2.5'
    to 3 for integers; quantities and prices from a till must be plain decimal numbers. A number SQLite
    stored as a number (``arrival`` int/float) obeys the same limits as its text would: whole and below
    10^18 for int columns, below 10^14 for decimals.
    """
    if arrival == "int":  # (abs() of the smallest BIGINT overflows: BETWEEN instead)
        if col.kind == "int":
            return f"CASE WHEN {t} BETWEEN -999999999999999999 AND 999999999999999999 THEN {t} END"
        return f"CASE WHEN {t} BETWEEN -99999999999999 AND 99999999999999 THEN CAST({t} AS DECIMAL(18,4)) END"
    if arrival == "float":
        if col.kind == "int":  # from 1e15 SQLite writes a REAL in exponent form (1.0e+15), which is refused
            return f"CASE WHEN {t} = trunc({t}) AND abs({t}) < 1e15 THEN CAST({t} AS BIGINT) END"
        # A direct cast is exact for a value of at most 4 decimals below 5e11 and 5x cheaper: below 2^39
        # (~5.5e11) a double is within 2^-15 (~3.1e-5, under half a ten-thousandth) of the decimal it was
        # written from, and x * 10^4 stays within the double's integer precision. From 2^39 it can be 6.1e-5
        # away, and the cast rounded 702102749366.56 to 702102749366.5601. Others go through the shortest
        # text that reads back as the same double: a direct cast would turn 3556874280959.97 into
        # 3556874280959.9704. A non-zero value below 1e-4 is refused, as its text is: SQLite writes it in
        # exponent form (1.0e-05), which the text rule does not take, and a price that small is no till's.
        return (f"CASE WHEN {t} <> 0 AND abs({t}) < 0.0001 THEN NULL "
                f"WHEN abs({t}) < 5e11 AND abs({t} * 10000 - round({t} * 10000)) < 0.001 "
                f"THEN CAST({t} AS DECIMAL(18,4)) "
                f"WHEN abs({t}) < 1e14 THEN TRY_CAST(CAST({t} AS VARCHAR) AS DECIMAL(18,4)) END")
    if col.kind == "key":  # (skus arrive normalised: prepare_batch)
        return t
    if col.kind == "text":
        return t
    if col.kind == "int":  # whole numbers only: '3' and '3.0' (a SQLite REAL) parse; '2.5', '1e3' do not
        return f"CASE WHEN regexp_full_match({t}, {_INT}) THEN TRY_CAST({t} AS BIGINT) END"
    if col.kind == "decimal":
        # As for a REAL (above): a non-zero value below 1e-4 is refused, not rounded to 0.0000 or 0.0001; more
        # decimals are rounded alike (1.23456 -> 1.2346). Only a text holding '.0000' can be below 1e-4: only
        # those (rare) are parsed a second time, as the double a REAL would be.
        return (f"CASE WHEN regexp_full_match({t}, {_DEC}) THEN CASE WHEN contains({t}, '.0000') "
                f"AND TRY_CAST({t} AS DOUBLE) <> 0 AND abs(TRY_CAST({t} AS DOUBLE)) < 0.0001 THEN NULL "
                f"ELSE TRY_CAST({t} AS DECIMAL(18,4)) END END")
    if col.kind == "timestamp":
        # The text is ISO-8601 or NOT_A_TIMESTAMP (prepare_batch checked it: DuckDB's cast alone is lenient).
        # Naive values are read in the session's TimeZone (the store's); offsets are honoured. The UTC value
        # must fall in years 1..9999 (an offset or the store's zone can move 0001-01-01 or 9999-12-31 out):
        # a comparison of the cast value, which DuckDB computes once.
        cast = f"TRY_CAST({t} AS TIMESTAMPTZ)"
        return f"CASE WHEN {cast} {_TS_RANGE} THEN {cast} END"
    if col.kind == "bool":  # '1.0'/'0.0': a SQLite REAL 1.0/0.0, read as text
        return (f"CASE WHEN lower({t}) IN ('1','1.0','true','t','yes','y') THEN TRUE "
                f"WHEN lower({t}) IN ('0','0.0','false','f','no','n') THEN FALSE END")
    raise ValueError(f"unknown column kind {col.kind!r}")


def _row_reason_sql(table: Table, not_after: datetime | None = None) -> str:
    """CASE naming the first row-level rule the row breaks (NULL: none).

    Reads ``t_<col>`` (trimmed text, NULL when blank) and ``x_<col>`` (parsed, before defaults). A fact
    table's event time later than ``not_after`` (when given) is ``future_timestamp``.
    """
    whens: list[str] = []
    required = [c for c in table.columns if c.required]
    if required:
        missing = " OR ".join(f"{q('t_' + c.name)} IS NULL" for c in required)
        whens.append(f"WHEN {missing} THEN 'missing_required'")
    for kind, code in (("int", "bad_number"), ("decimal", "bad_number"), ("timestamp", "bad_timestamp"),
                       ("bool", "bad_boolean")):
        cols = [c for c in table.columns if c.kind == kind]
        if cols:
            bad = " OR ".join(f"({q('t_' + c.name)} IS NOT NULL AND {q('x_' + c.name)} IS NULL)" for c in cols)
            whens.append(f"WHEN {bad} THEN '{code}'")
    if table.name in FACTS and not_after is not None and table.event_time:
        limit = not_after.astimezone(UTC).isoformat()
        whens.append(f"WHEN {q('x_' + table.event_time)} > TIMESTAMPTZ '{limit}' THEN 'future_timestamp'")
    if table.name in FACTS:
        whens.append("WHEN x_qty <= 0 THEN 'non_positive_qty'")
    price_cols = [c.name for c in table.columns if c.name in ("unit_price", "unit_cost")]
    if price_cols and "negative_price" in {r.code for r in rules_for(table.name)}:
        whens.append("WHEN " + " OR ".join(f"x_{c} < 0" for c in price_cols) + " THEN 'negative_price'")
    return "CASE " + " ".join(whens) + " END" if whens else "NULL"


def row_stage_sql(table: Table, raw: str, *, items: str | None, vendors: str | None,
                  arrived: tuple[Arrival, ...] | None = None, not_after: datetime | None = None) -> str:
    """Stage 1: a SELECT over relation ``raw``, a batch made by :func:`prepare_batch` (``_row``, the columns
    trimmed, ``_raw_sku``); ``arrived`` says how each column arrived (default: all text).

    Output: ``_row``, ``p_<col>`` (parsed, defaults applied), ``reason_code`` (the row-level rule broken,
    NULL when the row passed), ``flags`` (comma-separated flag codes, '' when none) and ``sku_normalised``.
    ``items``/``vendors`` name relations of curated keys (``sku`` / ``vendor_id``) for the reference
    rules; None skips those rules (e.g. the dump has no vendors table). ``not_after`` (aware) is the latest
    event time a fact table may hold (see ``future_timestamp``); None skips that rule.
    """
    cols = table.columns
    arrived = arrived or ("text",) * len(cols)
    has_sku = "sku" in table.column_names
    trimmed = ", ".join(f"{q(c.name)} AS {q('t_' + c.name)}" for c in cols)  # trimmed, blanks NULL already
    fast = "".join(f", {q('_utc_' + c.name)} AS {q('f_' + c.name)}"
                   for c, a in zip(cols, arrived, strict=True) if a == "utc")
    stage_t = f"SELECT _row, {trimmed}{fast}{', _raw_sku AS r_sku' if has_sku else ''} FROM {raw}"

    def parsed_expr(c: Column, a: Arrival) -> str:
        if a == "utc":  # the plain values parsed already (prepare_batch); the cast decides the others
            f = q("f_" + c.name)
            return f"CASE WHEN {f} IS NOT NULL THEN {f} ELSE {parse_expr(c, q('t_' + c.name))} END"
        return parse_expr(c, q("t_" + c.name), a)

    parsed = ", ".join(f"{parsed_expr(c, a)} AS {q('x_' + c.name)}" for c, a in zip(cols, arrived, strict=True))
    stage_x = f"SELECT *, {parsed} FROM ({stage_t})"
    defaulted = ", ".join(
        f"coalesce({q('x_' + c.name)}, {c.default_sql}) AS {q('p_' + c.name)}" if c.default_sql
        else f"{q('x_' + c.name)} AS {q('p_' + c.name)}" for c in cols)
    ref = "NULL"
    if has_sku and table.name != "items" and items is not None:
        ref = f"CASE WHEN x_sku NOT IN (SELECT sku FROM {items}) THEN 'unknown_sku' END"
    flag_parts: list[str] = []
    if table.name == "items" and vendors is not None:
        flag_parts.append(
            f"CASE WHEN x_vendor_id IS NOT NULL AND x_vendor_id NOT IN (SELECT vendor_id FROM {vendors}) "
            "THEN 'unknown_vendor' END")
    if table.name == "stock":
        flag_parts.append("CASE WHEN x_on_hand < 0 THEN 'negative_on_hand' END")
    flags = f"concat_ws(',', {', '.join(flag_parts)})" if flag_parts else "''"
    normalised = "(r_sku IS NOT NULL AND r_sku <> x_sku)" if has_sku else "FALSE"
    return (f"SELECT _row, {defaulted}, coalesce({_row_reason_sql(table, not_after)}, {ref}) AS reason_code, "
            f"{flags} AS flags, {normalised} AS sku_normalised FROM ({stage_x})")


def values_hash_sql(table: Table) -> str:
    """A 64-bit hash of a row's parsed values: two copies of a key with equal hashes are the same line."""
    return "hash(" + ", ".join(f"p_{c}" for c in table.column_names) + ")"


def key_hash_sql(table: Table) -> str:
    """A 64-bit hash of a row's parsed key: rows with different hashes have different keys."""
    return "hash(" + ", ".join(f"p_{k}" for k in table.key) + ")"


def duplicate_keys_sql(table: Table, passed: str, *, values_hash: str | None = None, key_hash: str | None = None,
                       repeated: str | None = None) -> str:
    """Stage 2a: the keys seen more than once among ``passed`` (rows with no row-level reason).

    Output: the key columns ``p_<key>``, ``conflict`` (the copies' values differ) and ``first_row``.
    Grouping millions of text keys is the costly part, so the rows are first grouped by a 64-bit hash of
    the key (cheap), and only the rows whose key hash repeats (duplicates, and the rare collision) are
    grouped by the key itself. ``values_hash`` / ``key_hash`` name columns of ``passed`` already holding
    :func:`values_hash_sql` / :func:`key_hash_sql`; without them, they are computed. ``repeated`` names a
    relation of the key hashes that repeat (column ``kh``), found beforehand (the ingest sorts them with
    numpy: 0.1 s for 5M rows, where DuckDB's grouping took 0.7 s); without it, DuckDB groups them.
    """
    key = ", ".join(f"p_{k}" for k in table.key)
    values = values_hash or values_hash_sql(table)
    kh = key_hash or key_hash_sql(table)
    repeats = (f"SELECT kh FROM {repeated}" if repeated is not None
               else f"SELECT {kh} AS kh FROM {passed} GROUP BY kh HAVING count(*) > 1")
    return (f"SELECT {key}, min({values}) <> max({values}) AS conflict, min(_row) AS first_row "
            f"FROM {passed} WHERE {kh} IN ({repeats}) GROUP BY {key} HAVING count(*) > 1")


def duplicate_reason_sql(table: Table, passed: str, dups: str) -> str:
    """Stage 2b: ``passed`` with ``reason_code`` set for duplicates (NULL: the row is curated).

    The first copy of a key with identical values is kept; when copies differ, none is trusted.
    """
    on = " AND ".join(f"d.p_{k} = s.p_{k}" for k in table.key)
    return (f"SELECT s.*, CASE WHEN d.conflict THEN 'conflicting_duplicate' "
            f"WHEN d.first_row IS NOT NULL AND s._row <> d.first_row THEN 'duplicate' END AS reason_code "
            f"FROM {passed} s LEFT JOIN {dups} d ON {on}")


def clean_arrow(table: str, rows: pa.Table, *, items: list[str] | None = None,
                vendors: list[str] | None = None, timezone: str = "UTC", not_after: datetime | None = None) -> pa.Table:
    """Apply both stages to an Arrow table of columns as read (text; int/float for numbers SQLite stored as
    numbers); ``_row`` added if absent. Returns Arrow.

    The small, in-memory form of what ingestion does in bulk (same SQL), for tests and one-off checks.
    """
    import duckdb
    import pyarrow as pa

    spec = TABLES[table]
    batch = rows.combine_chunks().to_batches()[0] if rows.num_rows else pa.RecordBatch.from_pylist(
        [], schema=rows.schema)
    raw = prepare_batch(batch, spec, 1, naive_utc=is_utc(timezone))
    if "_row" in rows.column_names:
        raw = raw.set_column(0, "_row", rows.column("_row").combine_chunks())
    con = duckdb.connect()
    try:
        con.execute(f"SET TimeZone = '{timezone}'")
        con.register("raw", raw)
        if items is not None:
            con.register("items_keys", pa.table({"sku": pa.array(items, pa.string())}))
        if vendors is not None:
            con.register("vendors_keys", pa.table({"vendor_id": pa.array(vendors, pa.string())}))
        con.execute("CREATE TABLE staged AS " + row_stage_sql(
            spec, "raw", items="items_keys" if items is not None else None,
            vendors="vendors_keys" if vendors is not None else None, arrived=arrivals(raw, spec),
            not_after=not_after))
        con.execute("CREATE VIEW passed AS SELECT * EXCLUDE (reason_code) FROM staged WHERE reason_code IS NULL")
        con.execute("CREATE TABLE dups AS " + duplicate_keys_sql(spec, "passed"))
        return con.sql(f"SELECT * FROM staged WHERE reason_code IS NOT NULL UNION ALL BY NAME "
                       f"{duplicate_reason_sql(spec, 'passed', 'dups')} ORDER BY _row").to_arrow_table()
    finally:
        con.close()
