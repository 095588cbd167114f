"""SQL text for the engines the services query (DuckDB over Delta tables): literals, built in one place."""


def literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: list[str]) -> str:
    """``('a', 'b')``: string literals for an ``IN`` list (never empty: ``('')`` matches no store or dump)."""
    return "(" + ", ".join(literal(v) for v in values or [""]) + ")"
