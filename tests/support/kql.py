"""Run the alert rules' KQL (infra/alerts/*.kql) over telemetry the app emitted, to check a rule selects it.

Only the subset our rules use, with Kusto's semantics for it: a table, then ``where`` (``==``, ``!=``, ``>``,
``<`` joined by ``and``), ``extend`` / ``project`` (``tostring()``, ``toint()``, ``customDimensions.x``,
columns), ``summarize`` (``count()``, ``sum()``, ``min()``, ``max()``, ``any()``, ``make_set(x, n)``) ``by``
columns. Anything else raises, so a rule that outgrows this evaluator fails its test instead of passing
untested. Rows are dicts; ``customDimensions`` is a dict of strings, as Application Insights stores it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def custom_events(records: Iterable[dict]) -> list[Row]:
    """The ``customEvents`` rows for the local telemetry's JSON lines (``type == "event"``)."""
    return [{"name": r["name"], "timestamp": r["time"], "customDimensions": _dimensions(r["properties"])}
            for r in records if r.get("type") == "event"]


def custom_metrics(records: Iterable[dict]) -> list[Row]:
    """The ``customMetrics`` rows (one per recorded value) for the local telemetry's JSON lines."""
    return [{"name": r["name"], "timestamp": r["time"], "value": r["value"], "valueSum": r["value"],
             "valueCount": 1, "customDimensions": _dimensions(r["dimensions"])}
            for r in records if r.get("type") == "metric"]


def _dimensions(props: dict) -> dict[str, str]:
    # What the exporter does with attributes: primitives as text, nested values as JSON text.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items() if v is not None}


def run_rule(path: Path, tables: dict[str, list[Row]]) -> list[Row]:
    """The rows the rule at ``path`` returns over ``tables`` (name -> rows)."""
    return run(path.read_text(), tables)


def run(query: str, tables: dict[str, list[Row]]) -> list[Row]:
    text = "\n".join(line.split("//", 1)[0] for line in query.splitlines())
    source, *stages = [part.strip() for part in text.split("|")]
    rows = [dict(r) for r in tables[source]]
    for stage in stages:
        verb, _, rest = stage.partition(" ")
        rows = _STAGES[verb](rows, " ".join(rest.split()))
    return rows


def _where(rows: list[Row], cond: str) -> list[Row]:
    tests = []
    for clause in re.split(r"\s+and\s+", cond):
        m = re.fullmatch(r"(.+?)\s*(==|!=|>|<)\s*(.+)", clause.strip())
        if not m:
            raise NotImplementedError(f"where {clause!r}")
        tests.append((m[1], m[2], m[3]))
    ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b,
           "<": lambda a, b: a is not None and a < b, ">": lambda a, b: a is not None and a > b}
    return [r for r in rows if all(ops[op](_value(r, left), _value(r, right)) for left, op, right in tests)]


def _extend(rows: list[Row], assignments: str) -> list[Row]:
    for row in rows:
        for item in _split(assignments):
            name, expr = (part.strip() for part in item.split("=", 1))
            row[name] = _value(row, expr)
    return rows


def _project(rows: list[Row], columns: str) -> list[Row]:
    out = []
    for row in rows:
        new = {}
        for item in _split(columns):
            name, _, expr = item.partition("=")
            new[name.strip()] = _value(row, (expr or name).strip())
        out.append(new)
    return out


def _summarize(rows: list[Row], spec: str) -> list[Row]:
    aggs, _, by = spec.partition(" by ")
    keys = [k.strip() for k in _split(by)] if by else []
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        result = dict(zip(keys, key, strict=True))
        for item in _split(aggs):
            name, expr = (part.strip() for part in item.split("=", 1))
            result[name] = _aggregate(expr, members)
        out.append(result)
    return out


def _aggregate(expr: str, rows: list[Row]) -> Any:
    m = re.fullmatch(r"(\w+)\((.*)\)", expr)
    if not m:
        raise NotImplementedError(f"aggregate {expr!r}")
    fn, args = m[1], [a.strip() for a in _split(m[2])] if m[2] else []
    values = [_value(r, args[0]) for r in rows] if args else []
    if fn == "count":
        return len(rows)
    if fn == "make_set":
        limit = int(args[1]) if len(args) > 1 else 1_048_576
        return list(dict.fromkeys(v for v in values if v not in (None, "")))[:limit]
    present = [v for v in values if v is not None]
    funcs = {"sum": sum, "min": min, "max": max, "any": lambda vs: vs[0]}
    if fn not in funcs:
        raise NotImplementedError(f"aggregate {fn}()")
    return funcs[fn](present) if present else None


def _value(row: Row, expr: str) -> Any:
    expr = expr.strip()
    if m := re.fullmatch(r"(tostring|toint)\((.*)\)", expr):
        raw = _value(row, m[2])
        if m[1] == "tostring":
            return "" if raw is None else str(raw)
        try:
            return int(float(raw))
        except (TypeError, ValueError):
            return None
    if expr.startswith('"') and expr.endswith('"'):
        return expr[1:-1]
    if re.fullmatch(r"-?\d+(\.\d+)?", expr):
        return float(expr) if "." in expr else int(expr)
    if expr in ("true", "false"):
        return expr == "true"
    if m := re.fullmatch(r"customDimensions\.(\w+)", expr):
        return row.get("customDimensions", {}).get(m[1])
    if re.fullmatch(r"\w+", expr):
        return row.get(expr)
    raise NotImplementedError(f"expression {expr!r}")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in (*parts, current) if p.strip()]


_STAGES = {"where": _where, "extend": _extend, "project": _project, "summarize": _summarize}
