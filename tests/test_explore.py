"""SQL over the case (issue 5): every named query runs on the demo case, parameters are checked
against each query's own, `sql -c` and the prompt answer, and `schema` documents every table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from forensics.casefile import load_case
from forensics.errors import QueryError
from forensics.explore import list_queries, run_query, schema_doc, sql_prompt
from forensics.pipeline import run_case
from forensics.schema import ALL_TABLES

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
# Example values for the queries' parameters: an address from the demo incident (SCENARIO.md).
EXAMPLES = {"client_ip": "65.108.75.12"}
REQUIRED_QUERIES = {
    "downloaders", "client_activity", "requests_per_minute", "referrers", "near_misses", "coverage_gaps",
    "rejects_by_reason", "crawlers", "countries", "networks",
}


def _app():
    from forensics.cli import app

    return app


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_case(load_case(REPO / "sample_logs" / "case.toml"), out)
    return out


def test_the_issue_s_queries_are_all_there() -> None:
    names = {q.name for q in list_queries()}
    assert REQUIRED_QUERIES <= names
    assert not any(n.startswith("stage_") for n in names)


@pytest.mark.parametrize("query", list_queries(), ids=lambda q: q.name)
def test_every_named_query_runs_on_the_demo_case(demo_case: Path, query) -> None:
    assert query.purpose and query.path.read_text().startswith("-- name: ")
    params = {p: EXAMPLES[p] for p in query.params if p not in query.optional}
    frame = run_query(demo_case, query.name, params)
    assert frame.width > 0
    res = runner.invoke(_app(), ["query", query.name, "--case", str(demo_case), "--format", "json",
                                 *[x for p, v in params.items() for x in ("-p", p, v)]])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == frame.height


def test_queries_command_lists_every_query(demo_case: Path) -> None:
    res = runner.invoke(_app(), ["queries"])
    assert res.exit_code == 0
    for q in list_queries():
        assert q.name in res.output
    assert "client_ip" in res.output


def test_known_answers(demo_case: Path) -> None:
    assert run_query(demo_case, "downloaders", {"outcome": "partial"}).height == 3
    activity = run_query(demo_case, "client_activity", {"client_ip": "65.108.75.12"})
    # The scraper: folder listing, three similar names, then the file (SCENARIO.md).
    paths = activity.filter(pl.col("role") == "cdn")["path"].to_list()
    assert paths[-1].endswith("detention-roster.xlsx") and len(paths) == 6
    assert activity["is_resource"].any()
    per_minute = run_query(demo_case, "requests_per_minute", {"start": "2022-11-28T19:02:00Z",
                                                              "end": "2022-11-29T00:05:00Z"})
    assert per_minute["resource_requests"].sum() > 0
    countries = run_query(demo_case, "countries")
    assert countries["clients"].sum() == 28  # every downloader, 'unknown' without IP databases


def test_missing_parameter_is_a_clear_error(demo_case: Path) -> None:
    with pytest.raises(QueryError, match="needs 'client_ip'"):
        run_query(demo_case, "client_activity", {})
    res = runner.invoke(_app(), ["query", "client_activity", "--case", str(demo_case)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "needs 'client_ip'" in res.output and "-p NAME VALUE" in res.output


def test_unknown_parameter_is_a_clear_error(demo_case: Path) -> None:
    with pytest.raises(QueryError, match=r"no parameter 'colour'.*it takes: outcome \(optional\)"):
        run_query(demo_case, "downloaders", {"colour": "red"})
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(demo_case), "-p", "colour", "red"])
    assert res.exit_code == 1 and "no parameter 'colour'" in res.output and "outcome" in res.output


def test_unknown_query_and_bad_case(demo_case: Path, tmp_path: Path) -> None:
    res = runner.invoke(_app(), ["query", "who_done_it", "--case", str(demo_case)])
    assert res.exit_code == 1 and "no named query 'who_done_it'" in res.output and "client_activity" in res.output
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(tmp_path)])
    assert res.exit_code == 1 and "no case database" in res.output


def test_query_formats(demo_case: Path, tmp_path: Path) -> None:
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(demo_case), "-f", "csv"])
    assert res.exit_code == 0 and res.output.startswith("resource_path,client_ip,outcome")
    assert "2022-11-28T" in res.output and "Z," in res.output  # times in UTC with a Z
    out = tmp_path / "d.parquet"
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(demo_case), "-f", "parquet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(out).height == 28
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(demo_case), "-f", "parquet"])
    assert res.exit_code == 1 and "--output" in res.output


def test_sql_c_runs_one_statement(demo_case: Path) -> None:
    res = runner.invoke(_app(), ["sql", str(demo_case), "-c",
                                 "SELECT outcome, count(*) AS n FROM downloaders GROUP BY ALL ORDER BY n DESC"])
    assert res.exit_code == 0, res.output
    assert "complete" in res.output and "19" in res.output
    res = runner.invoke(_app(), ["sql", str(demo_case), "-c", "SELECT nope FROM downloaders"])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output


def test_sql_prompt_multiline_and_errors(demo_case: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(demo_case, case)
    lines = iter(["SELECT count(*) AS n", "FROM downloaders;", "SELECT oops;", ".tables",
                  "CREATE TEMP TABLE mine AS SELECT 1 AS x;", "SELECT x FROM mine;"])
    shown: list[str] = []

    def read(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    sql_prompt(case, read_line=read, write=shown.append)
    text = "\n".join(shown)
    assert "28" in text  # the multi-line statement ran
    assert "Error:" in text and "oops" in text  # the error is shown and the prompt went on
    assert "downloaders" in text and "requests" in text  # .tables
    assert "│ x │" in text  # a TEMP table the analyst made
    # The case database is evidence: the prompt opened it read-only.
    con = duckdb.connect(str(case / "case.duckdb"), read_only=True)
    try:
        assert "mine" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()


def test_schema_lists_every_table(demo_case: Path) -> None:
    docs = {t.name: t for t in schema_doc(demo_case)}
    for table in ALL_TABLES:
        assert table.name in docs
        assert [c.name for c in docs[table.name].columns][: len(table.columns)] == table.column_names
    assert docs["downloaders"].rows == 28
    res = runner.invoke(_app(), ["schema", str(demo_case)])
    assert res.exit_code == 0
    for table in ALL_TABLES:
        assert f"{table.name} (" in res.output
    assert "The resolved client address" in res.output


def test_queries_run_on_a_case_without_enrichment_tables(demo_case: Path, tmp_path: Path) -> None:
    case = tmp_path / "old"
    shutil.copytree(demo_case, case)
    con = duckdb.connect(str(case / "case.duckdb"))
    try:
        con.execute("DROP TABLE IF EXISTS ip_enrichment")
    finally:
        con.close()
    for name in ("countries", "networks", "crawlers"):
        frame = run_query(case, name)
        assert frame.width > 0
    assert run_query(case, "crawlers").height == 0
