"""The naive path of bench/ingest.py: what a typical engineer would write, run in its own process.

    python bench/ingest_naive.py DUMP OUT

``pandas.read_sql("SELECT * FROM t")`` per table over a stdlib ``sqlite3`` connection, the rules of
shared/core/rules.py in plain pandas, then ``DataFrame.to_parquet`` of the curated and the rejected rows (one
file per table and kind, pandas' defaults, not partitioned by date). Prints the per-step timings and the
per-table counts as JSON on stdout; bench/ingest.py measures the process and checks the counts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import harness

STORE = "B001"  # bench/ingest.py's store

def naive_ingest(dump: Path, out: Path, store_id: str = STORE) -> dict:
    """pandas.read_sql each table, the rules in plain pandas, to_parquet curated and rejected rows."""
    import sqlite3

    import pandas as pd

    from shared.core.schema import READ_ORDER, TABLES

    out.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
    present = {r[0].lower() for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    step = harness.Steps(digits=3)
    tables: dict[str, dict] = {}
    item_skus = vendor_ids = None
    for name in READ_ORDER:
        if name not in present:
            continue
        table = TABLES[name]
        with step(f"read_{name}"):
            raw = pd.read_sql(f"SELECT * FROM {name}", con)

        with step(f"clean_{name}"):
            curated, rejected, stats = _naive_clean(table, raw, item_skus, vendor_ids)
            if name == "items":
                item_skus = pd.Index(curated["sku"].unique())
            if name == "vendors":
                vendor_ids = pd.Index(curated["vendor_id"].unique())

        with step(f"write_{name}"):
            curated.insert(0, "store_id", store_id)
            curated.to_parquet(out / f"curated_{name}.parquet", index=False)
            if len(rejected):
                rejected.insert(0, "store_id", store_id)
                rejected.to_parquet(out / f"rejected_{name}.parquet", index=False)
        tables[name] = stats
        del raw, curated, rejected
    con.close()
    return {"timings_s": step.timings, "tables": tables}


def _naive_clean(table, raw, item_skus, vendor_ids):
    """(curated, rejected, counts) for one table; the rules of shared/core/rules.py, in their order."""
    import numpy as np
    import pandas as pd

    n = len(raw)
    raw = raw.rename(columns=str.lower).reindex(columns=list(table.column_names))  # absent optional -> NaN
    parsed: dict[str, pd.Series] = {}
    given: dict[str, np.ndarray] = {}  # the raw value is there and not blank
    for col in table.columns:
        s = raw[col.name]
        numeric = pd.api.types.is_numeric_dtype(s)
        text = None if numeric else s.astype("string").str.strip()
        given[col.name] = s.notna().to_numpy() if numeric else text.fillna("").ne("").to_numpy(bool)
        if col.kind in ("key", "text"):
            v = s.astype("string").str.strip() if numeric else text
            if col.name == "sku":
                v = v.str.upper().str.replace(r"\s+", " ", regex=True)
            parsed[col.name] = v.mask(v == "")
        elif col.kind == "int":
            num = s.astype("float64") if numeric else pd.to_numeric(text, errors="coerce")
            whole = (num % 1 == 0) & (num.abs() < 1e18)
            parsed[col.name] = num.where(whole).astype("Int64")
        elif col.kind == "decimal":
            parsed[col.name] = s.astype("float64") if numeric else pd.to_numeric(text, errors="coerce")
        elif col.kind == "timestamp":
            parsed[col.name] = pd.to_datetime(text if text is not None else s, errors="coerce", format="ISO8601",
                                              utc=True)
        elif col.kind == "bool":
            low = (s.astype("string") if numeric else text).str.lower()
            parsed[col.name] = low.map({"1": True, "true": True, "t": True, "yes": True, "y": True,
                                        "0": False, "false": False, "f": False, "no": False, "n": False})
    p = pd.DataFrame(parsed)

    reason = np.full(n, None, dtype=object)
    free = np.ones(n, dtype=bool)

    def reject(mask, code: str) -> None:
        nonlocal free
        hit = free & np.asarray(mask, dtype=bool)
        reason[hit] = code
        free &= ~hit

    def isna(name: str) -> np.ndarray:
        return p[name].isna().to_numpy()

    required = [c.name for c in table.columns if c.required]
    if required:
        reject(np.logical_or.reduce([isna(c) & ~given[c] for c in required]), "missing_required")
    for kinds, code in ((("int", "decimal"), "bad_number"), (("timestamp",), "bad_timestamp"),
                        (("bool",), "bad_boolean")):
        cols = [c.name for c in table.columns if c.kind in kinds]
        if cols:
            reject(np.logical_or.reduce([given[c] & isna(c) for c in cols]), code)
    if table.fact:
        reject(p["qty"].le(0).fillna(False).to_numpy(bool), "non_positive_qty")
    if table.name in ("items", "sales"):
        prices = [c for c in ("unit_cost", "unit_price") if c in p]
        reject(np.logical_or.reduce([p[c].lt(0).fillna(False).to_numpy(bool) for c in prices]), "negative_price")
    if "sku" in p and table.name != "items" and item_skus is not None:
        reject(p["sku"].notna().to_numpy() & ~p["sku"].isin(item_skus).to_numpy(bool), "unknown_sku")

    # Defaults, then duplicates among the rows that passed the row rules.
    for col in table.columns:
        if col.default_sql == "1":
            p[col.name] = p[col.name].fillna(1)
        elif col.default_sql == "TRUE":
            p[col.name] = p[col.name].fillna(True).astype(bool)
    ok = np.flatnonzero(free)
    cand = p.iloc[ok]
    key, values = list(table.key), list(table.column_names)
    later_copy = cand.duplicated(subset=values, keep="first").to_numpy()
    versions = cand[~later_copy]
    multi = versions.duplicated(subset=key, keep=False)
    conflict = np.zeros(len(cand), dtype=bool)
    if multi.any():
        bad_keys = versions.loc[multi, key].drop_duplicates().assign(_conflict=True)
        conflict = cand[key].merge(bad_keys, on=key, how="left")["_conflict"].fillna(False).to_numpy(bool)
    reason[ok[conflict]] = "conflicting_duplicate"
    reason[ok[later_copy & ~conflict]] = "duplicate"

    keep = pd.isna(reason)
    curated = p[keep].reset_index(drop=True)
    flags = pd.Series("", index=curated.index, dtype="string")
    if table.name == "items" and vendor_ids is not None:
        unknown = curated["vendor_id"].notna() & ~curated["vendor_id"].isin(vendor_ids)
        flags = flags.mask(unknown, "unknown_vendor")
    if table.name == "stock":
        flags = flags.mask(curated["on_hand"].lt(0).fillna(False), "negative_on_hand")
    curated["flags"] = flags.mask(flags == "")

    rejected = raw[~keep].astype("string")
    rejected.insert(0, "row_number", np.flatnonzero(~keep) + 1)
    rejected["reason_code"] = reason[~keep]

    by_rule = pd.Series(reason[~keep]).value_counts().to_dict()
    for code in ("unknown_vendor", "negative_on_hand"):
        if (n_flag := int((curated["flags"] == code).sum())):
            by_rule[code] = n_flag
    if "sku" in p:
        raw_sku = raw.loc[keep, "sku"].astype("string").reset_index(drop=True)
        if (n_norm := int((raw_sku.notna() & (raw_sku != curated["sku"])).sum())):
            by_rule["sku_normalised"] = n_norm
    stats = {"input": n, "curated": int(keep.sum()), "rejected": int((~keep).sum()),
             "by_rule": {k: int(v) for k, v in sorted(by_rule.items())}}
    return curated, rejected, stats


if __name__ == "__main__":
    json.dump(naive_ingest(Path(sys.argv[1]), Path(sys.argv[2])), sys.stdout)
