"""Every stage is one SELECT in the portable subset, writes a table the schema owns, and translates
to Spark SQL; the checks themselves catch the known traps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forensics.db import named_queries
from forensics.engine.portable import problems, to_spark
from forensics.schema import ALL_TABLES

STAGES = {name: q for name, q in named_queries().items() if name.startswith("stage_")}
TABLES = {t.name: t for t in ALL_TABLES}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_is_one_portable_select(name: str) -> None:
    query = STAGES[name]
    assert problems(query.sql) == []
    head = query.sql.upper()
    for word in ("INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE "):
        body = "\n".join(line for line in head.splitlines() if not line.lstrip().startswith("--"))
        assert word not in body, f"{name} is not a plain SELECT: {word.strip()}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_says_what_it_writes(name: str) -> None:
    headers = [line for line in STAGES[name].sql.splitlines() if line.startswith("-- writes:")]
    assert len(headers) == 1, f"{name}: one '-- writes: TABLE (append|replace)' or '-- writes: none (...)' line"


@pytest.mark.parametrize("name", sorted(q.name for q in STAGES.values() if q.writes))
def test_a_writing_stage_names_a_table_of_the_schema(name: str) -> None:
    query = STAGES[name]
    assert query.writes in TABLES
    assert query.mode in ("append", "replace")


@pytest.mark.parametrize(
    ("sql", "trap"),
    [
        ("SELECT len(l) FROM t", "len()"),
        ("SELECT epoch(a) - epoch(b) FROM t", "epoch()"),
        ("SELECT ts - to_seconds(2.5) FROM t", "to_seconds()"),
        ("SELECT epoch_ms(ts) FROM t", "epoch_ms()"),
        ("SELECT url_decode(q) FROM t", "url_decode()"),
        ("SELECT list_distinct(list(x)) FROM t", "list_distinct() must be sorted"),
        ("UPDATE hits SET counts = FALSE", "one SELECT"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT md5(x) FROM t", "MD5"),
    ],
)
def test_the_traps_are_refused(sql: str, trap: str) -> None:
    assert any(trap in p for p in problems(sql)), problems(sql)


def test_parameters_are_typed_literals_never_pasted_text() -> None:
    sql = "SELECT * FROM t WHERE a = $text AND b = $n AND c = $at AND list_contains($hosts::VARCHAR[], d)"
    hostile = "x' OR '1'='1"
    spark = to_spark(sql, {"text": hostile, "n": 3, "at": datetime(2022, 11, 28, 18, 0, tzinfo=UTC),
                           "hosts": ["a\\b", "it's"]})
    assert "a = 'x\\' OR \\'1\\'=\\'1'" in spark
    assert "CAST(3 AS BIGINT)" in spark
    assert "CAST('2022-11-28 18:00:00.000000' AS TIMESTAMP)" in spark
    assert "ARRAY('a\\\\b', 'it\\'s')" in spark
    with pytest.raises(ValueError, match="zone"):
        to_spark("SELECT $at", {"at": datetime(2022, 11, 28)})


def test_parameters_inside_translated_functions_are_bound() -> None:
    spark = to_spark("SELECT epoch_us($at::TIMESTAMPTZ), list_reverse($hosts::VARCHAR[])",
                     {"at": datetime(2022, 11, 28, tzinfo=UTC), "hosts": ["a"]})
    assert "UNIX_MICROS(CAST(CAST('2022-11-28 00:00:00.000000' AS TIMESTAMP) AS TIMESTAMP))" in spark.upper()
    assert ":" not in spark.replace("00:00:00", "")
