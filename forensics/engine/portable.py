"""The portable subset of DuckDB SQL the stages are written in, and its translation to Spark SQL.

A stage is one SELECT. It may call only the functions in ALLOWED_FUNCTIONS (sqlglot's names), each
of which means the same on DuckDB and on Spark once sqlglot has translated it, plus two spellings
this module translates itself (SPARK_NAMES). Functions whose translation changes the answer are
refused by name (REFUSED): `len` of a list becomes Spark's string LENGTH, `epoch` differences lose
the fractions of a second, `to_seconds` has no Spark equivalent, `epoch_ms` is mistranslated,
`url_decode` decodes '+' and malformed escapes differently, and the order `list_distinct` returns
differs between engines (so it must be sorted: list_sort(list_distinct(...))).

Parameters are bound on Spark as typed literals built by sqlglot from the values (never by pasting
text into the SQL): text is quoted by the generator, numbers are BIGINT or DOUBLE, times are UTC
TIMESTAMPs, lists are ARRAY<STRING>.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlglot
from sqlglot import exp

ALLOWED_FUNCTIONS = frozenset({
    "ABS", "AND", "ANY_VALUE", "ARRAY", "ARRAY_AGG", "ARRAY_CONCAT", "ARRAY_CONTAINS", "ARRAY_DISTINCT",
    "ARRAY_SORT", "AVG", "CASE", "CAST", "COALESCE", "CONTAINS", "COUNT", "EXISTS", "EXPLODE", "FLATTEN",
    "FLOOR", "GENERATE_SERIES", "GREATEST", "IF", "INT_DIV", "JSON_EXTRACT_SCALAR", "LEAST", "LENGTH",
    "LOGICAL_AND", "LOGICAL_OR", "LOWER", "MAX", "MEDIAN", "MIN", "OR", "REGEXP_EXTRACT", "REGEXP_LIKE",
    "REGEXP_REPLACE", "ROUND", "ROW_NUMBER", "SUM", "TIMESTAMP_TRUNC", "UNIX_TO_TIME", "UPPER",
})

# Functions sqlglot leaves by name, with the Spark function of the same meaning.
SPARK_NAMES = {"epoch_us": "unix_micros", "list_reverse": "reverse"}

REFUSED = {
    "len": "Spark reads it as the length of a string: use array_length of a list, or a parameter",
    "epoch": "Spark's unix_timestamp drops the fractions of a second: use epoch_us",
    "epoch_ms": "mistranslated to Spark: use epoch_us",
    "to_seconds": "no Spark equivalent: compare epoch_us values with microseconds",
    "url_decode": "'+' and malformed escapes decode differently: decode the distinct values in Python",
    "strftime": "format strings differ between engines",
    "to_timestamp": "Spark's from_unixtime drops the fractions of a second: use make_timestamp of epoch_us",
    "list_filter": "lambda syntax differs between engines",
    "list_transform": "lambda syntax differs between engines",
}

_COMMENT = re.compile(r"--[^\n]*")


def parse(sql: str) -> exp.Expr:
    """The one statement of a stage, parsed as DuckDB SQL."""
    statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    if len(statements) != 1:
        raise ValueError(f"a stage is one statement, this has {len(statements)}")
    return statements[0]


def problems(sql: str) -> list[str]:
    """What keeps a stage out of the portable subset (empty when it is in)."""
    found: list[str] = []
    text = _COMMENT.sub("", sql)
    for name, why in REFUSED.items():
        if re.search(rf"\b{name}\s*\(", text, flags=re.IGNORECASE):
            found.append(f"{name}(): {why}")
    try:
        tree = parse(sql)
    except (ValueError, sqlglot.errors.ParseError) as exc:
        return [*found, str(exc)]
    if not isinstance(tree, exp.Query):
        found.append(f"a stage is one SELECT, not {type(tree).__name__.upper()}")
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            if node.name.lower() not in SPARK_NAMES:
                found.append(f"{node.name}(): not in the portable subset")
        elif isinstance(node, exp.Func) and node.sql_name() not in ALLOWED_FUNCTIONS:
            found.append(f"{node.sql_name()}: not in the portable subset")
        if isinstance(node, exp.ArrayDistinct) and not isinstance(node.parent, exp.ArraySort):
            found.append("list_distinct() must be sorted (list_sort): its order differs between engines")
    try:
        to_spark(sql, {})
    except Exception as exc:
        found.append(f"does not translate to Spark SQL: {exc}")
    return list(dict.fromkeys(found))


def literal(value: Any) -> exp.Expression:
    """A bound value as a typed SQL literal (sqlglot quotes and escapes it)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.cast(exp.Literal.number(value), "BIGINT")
    if isinstance(value, float):
        return exp.cast(exp.Literal.number(repr(value)), "DOUBLE")
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time parameter must carry its zone")
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return exp.cast(exp.Literal.string(text), "TIMESTAMP")
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("a list parameter holds text only")
        return exp.cast(exp.Array(expressions=[exp.Literal.string(v) for v in value]), "ARRAY<STRING>", dialect="spark")
    raise ValueError(f"no literal for a parameter of type {type(value).__name__}")


def to_spark(sql: str, params: dict[str, Any]) -> str:
    """The stage as Spark SQL with its parameters bound as literals (session time zone UTC)."""
    tree = parse(sql)

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            name = str(node.this)
            return literal(params[name]) if name in params else exp.Null()
        if isinstance(node, exp.Anonymous) and node.name.lower() in SPARK_NAMES:
            node.set("this", SPARK_NAMES[node.name.lower()])  # in place, so its arguments are bound too
        return node

    return tree.transform(bind).sql(dialect="spark")
