"""SQL over the case (issue 5): every named query runs on the demo case, parameters are checked
against each query's own, `sql -c` and the prompt answer, and `schema` documents every table."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from forensics import explore
from forensics.casefile import load_case
from forensics.errors import QueryError
from forensics.explore import (
    history_file,
    list_queries,
    open_case,
    run_query,
    schema_doc,
    sql_prompt,
    statement_complete,
)
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
    assert run_query(demo_case, "downloaders", {"outcome": "partial"}).height == 7
    activity = run_query(demo_case, "client_activity", {"client_ip": "65.108.75.12"})
    # The scraper: folder listing, three similar names, then the file (SCENARIO.md).
    paths = activity.filter(pl.col("role") == "cdn")["path"].to_list()
    assert paths[-1].endswith("detention-roster.xlsx") and len(paths) == 6
    assert activity["is_resource"].any()
    per_minute = run_query(demo_case, "requests_per_minute", {"start": "2022-11-28T19:02:00Z",
                                                              "end": "2022-11-29T00:05:00Z"})
    assert per_minute["resource_requests"].sum() > 0
    countries = run_query(demo_case, "countries")
    assert countries["clients"].sum() == 35  # every downloader, 'unknown' without IP databases


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
    assert pl.read_parquet(out).height == 35
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(demo_case), "-f", "parquet"])
    assert res.exit_code == 1 and "--out result.parquet" in res.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_query_output_that_cannot_be_written_or_would_replace_case_files(
    case_copy: Path, tmp_path: Path, fmt: str
) -> None:
    before = _files(case_copy)
    for target, words in [
        (tmp_path, "this is a folder"),
        (tmp_path / "no" / "such" / "folder" / "x.csv", "its folder does not exist"),
        (case_copy / "manifest.json", "in the case folder, which is evidence"),
        (case_copy / "case.duckdb", "in the case folder, which is evidence"),
    ]:
        res = runner.invoke(_app(), ["query", "downloaders", "--case", str(case_copy), "-f", fmt, "-o", str(target)])
        assert res.exit_code == 1 and words in res.output, (target, res.output)
        assert "Internal error" not in res.output
    assert _files(case_copy) == before
    # A new file beside the case is the investigator's to make.
    res = runner.invoke(_app(), ["query", "downloaders", "--case", str(case_copy), "-f", fmt,
                                 "-o", str(case_copy / f"mine.{fmt}")])
    assert res.exit_code == 0 and (case_copy / f"mine.{fmt}").is_file()


def test_sql_c_runs_one_statement(demo_case: Path) -> None:
    res = runner.invoke(_app(), ["sql", str(demo_case), "-e",
                                 "SELECT outcome, count(*) AS n FROM downloaders GROUP BY ALL ORDER BY n DESC"])
    assert res.exit_code == 0, res.output
    assert "complete" in res.output and "22" in res.output
    res = runner.invoke(_app(), ["sql", str(demo_case), "-e", "SELECT nope FROM downloaders"])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output


def _typed(lines: list[str]) -> Callable[..., str]:
    """What the investigator types at the prompt, then Ctrl-D."""
    feed = iter(lines)

    def read(prompt: str = "") -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    return read


def _prompt(case: Path, lines: list[str]) -> str:
    shown: list[str] = []
    sql_prompt(case, read_line=_typed(lines), write=shown.append)
    return "\n".join(shown)


def test_sql_prompt_multiline_and_errors(demo_case: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(demo_case, case)
    text = _prompt(case, ["SELECT count(*) AS n", "FROM downloaders;", "SELECT oops;", ".tables",
                          "CREATE TEMP TABLE mine AS SELECT 1 AS x;", "SELECT x FROM mine;"])
    assert "35" in text  # the multi-line statement ran
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
    assert docs["downloaders"].rows == 35
    res = runner.invoke(_app(), ["schema", str(demo_case)])
    assert res.exit_code == 0
    for table in ALL_TABLES:
        assert f"{table.name} (" in res.output
    assert "The resolved client address" in res.output
    # The tables `requests` is stored in are documented as such, with its columns' meaning.
    assert docs["requests_all"].doc.startswith("Where rows of requests are stored")
    assert "(not documented" not in res.output


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


# --- the prompt cannot write, read outside the case, or load code ---------------------------------


def _sql(case: Path, sql: str):
    return runner.invoke(_app(), ["sql", str(case), "-e", sql])


def _files(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256: the case folder is evidence."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def case_copy(demo_case: Path, tmp_path: Path) -> Path:
    case = tmp_path / "case"
    shutil.copytree(demo_case, case)
    return case


# Each statement, and the words the refusal must contain. {case} is the case folder, {outside} a
# folder beside it holding secret.txt and other.duckdb.
REFUSED = {
    "copy_to_outside": ("COPY (SELECT 1) TO '{outside}/x.csv'", "COPY is not allowed"),
    "copy_over_manifest": ("COPY (SELECT 1 AS x) TO '{case}/manifest.json' (FORMAT json)", "COPY is not allowed"),
    "copy_from_file": ("CREATE TEMP TABLE t (x VARCHAR); COPY t FROM '/etc/passwd'", "COPY is not allowed"),
    "attach_case_rw": ("ATTACH '{case}/case.duckdb' AS rw", "ATTACH is not allowed"),
    "attach_other_ro": ("ATTACH '{outside}/other.duckdb' AS o (READ_ONLY)", "ATTACH is not allowed"),
    "read_csv_passwd": ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    "read_duckdb_other": ("SELECT * FROM read_duckdb('{outside}/other.duckdb', table_name='t')",
                          "file system operations are disabled"),
    "read_text_outside": ("SELECT * FROM read_text('{outside}/secret.txt')", "file system operations are disabled"),
    "read_text_in_case": ("SELECT * FROM read_text('{case}/manifest.json')", "file system operations are disabled"),
    "glob": ("SELECT * FROM glob('/etc/*')", "file system operations are disabled"),
    "https": ("SELECT * FROM read_csv('https://example.com/x.csv')", "file system operations are disabled"),
    "install_httpfs": ("INSTALL httpfs", "INSTALL and LOAD are not allowed"),
    "load_httpfs": ("LOAD httpfs", "INSTALL and LOAD are not allowed"),
    "export": ("EXPORT DATABASE '{outside}/dump'", "EXPORT DATABASE is not allowed"),
    "explain_analyze_copy": ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{case}/x.csv'", "COPY is not allowed"),
    "prepare_copy": ("PREPARE p AS COPY (SELECT 1) TO '{case}/x.csv'", "PREPARE is not allowed"),
    "unlock_files": ("SET enable_external_access = true", "locked"),
    "unlock_settings": ("RESET lock_configuration", "locked"),
    "autoinstall": ("SELECT * FROM sqlite_scan('{outside}/other.duckdb', 't')", "sqlite"),
    "delete_evidence": ("DELETE FROM downloaders", "read-only"),
    "copy_after_select": ("SELECT 1; COPY (SELECT 1) TO '{outside}/y.csv'", "COPY is not allowed"),
}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not part of the case\n")
    con = duckdb.connect(str(folder / "other.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.close()
    return folder


@pytest.mark.parametrize("name", REFUSED)
def test_sql_refuses_files_other_databases_extensions_and_settings(
    case_copy: Path, outside: Path, name: str
) -> None:
    statement, words = REFUSED[name]
    before, before_outside = _files(case_copy), _files(outside)
    res = _sql(case_copy, statement.format(case=case_copy, outside=outside))
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and words in res.output
    assert "Traceback" not in res.output and "Internal error" not in res.output
    assert _files(case_copy) == before  # nothing written in the evidence folder
    assert _files(outside) == before_outside  # nor anywhere else


def test_the_prompt_refuses_them_too_and_goes_on(case_copy: Path, outside: Path) -> None:
    before = _files(case_copy)
    lines = [REFUSED[n][0].format(case=case_copy, outside=outside) + ";" for n in REFUSED]
    lines += [".tables", ".queries", ".schema downloaders", "SELECT count(*) AS n FROM downloaders;"]
    shown = _prompt(case_copy, lines)
    assert sum(line.startswith("Error: ") for line in shown.splitlines()) == len(REFUSED)
    assert "client_activity" in shown  # .queries
    assert "downloaders (35 rows)" in shown  # .schema
    assert "│ 35 │" in shown  # and exploring still works afterwards
    assert _files(case_copy) == before


def test_named_queries_run_on_the_locked_connection(case_copy: Path) -> None:
    with open_case(case_copy) as con:
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions', "
            "'allowed_directories', 'temp_directory')").fetchall())
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["autoinstall_known_extensions"] == settings["autoload_known_extensions"] == "false"
    # Spills go to a private temporary folder (DuckDB allows its own), never to the evidence; this
    # case has no views, so its folder is not readable either.
    spill = Path(settings["temp_directory"])
    assert not spill.is_relative_to(case_copy) and spill.name.startswith("forensics-sql-")
    assert settings["allowed_directories"] == f"[{spill}/]"
    assert not spill.exists()  # removed when the prompt ends
    res = runner.invoke(_app(), ["query", "client_activity", "--case", str(case_copy), "-p", "client_ip",
                                 "65.108.75.12", "-f", "csv"])
    assert res.exit_code == 0 and "detention-roster.xlsx" in res.output


def test_a_case_whose_views_read_parquet_in_its_folder(case_copy: Path, outside: Path) -> None:
    """Views may read files kept beside the database: the case folder is then readable, and still
    nothing can be written to it."""
    extra = case_copy / "extra.parquet"
    con = duckdb.connect(str(case_copy / "case.duckdb"))
    con.execute(f"COPY (SELECT 42 AS answer) TO '{extra}' (FORMAT parquet)")
    con.execute(f"CREATE VIEW extra AS SELECT * FROM read_parquet('{extra}')")
    con.close()
    before = _files(case_copy)
    res = _sql(case_copy, "SELECT answer FROM extra")
    assert res.exit_code == 0 and "42" in res.output, res.output
    for name in ("copy_over_manifest", "attach_case_rw", "explain_analyze_copy", "prepare_copy",
                 "read_text_outside", "read_csv_passwd", "install_httpfs"):
        statement, words = REFUSED[name]
        res = _sql(case_copy, statement.format(case=case_copy, outside=outside))
        assert res.exit_code == 1 and words in res.output, (name, res.output)
    res = _sql(case_copy, f"EXPORT DATABASE '{case_copy}/dump'")
    assert res.exit_code == 1 and "EXPORT DATABASE is not allowed" in res.output
    assert _files(case_copy) == before


# --- the prompt: every result, dot commands, Ctrl-C, history --------------------------------------


def test_every_statement_shows_its_result(demo_case: Path) -> None:
    res = _sql(demo_case, "SELECT 'first' AS a; SELECT 'second' AS b;")
    assert res.exit_code == 0, res.output
    assert "first" in res.output and "second" in res.output
    shown = _prompt(demo_case, ["SELECT 'first' AS a; SELECT 'second' AS b;"])
    assert "first" in shown and "second" in shown
    # A failing statement stops the rest and says why.
    res = _sql(demo_case, "SELECT 'first' AS a; SELECT nope; SELECT 'third' AS c")
    assert res.exit_code == 1 and "first" in res.output and "nope" in res.output and "third" not in res.output


def test_a_semicolon_inside_a_string_does_not_end_the_statement(demo_case: Path) -> None:
    shown = _prompt(demo_case, ["SELECT 'one;", "two' AS s;"])
    assert "│ one; │\n│ two  │" in shown and "Error" not in shown  # one statement, one two-line cell
    assert statement_complete("SELECT count(*) FROM downloaders;")
    for typed in ("SELECT 'a;", 'SELECT "a;', "SELECT 1 /* a;", "SELECT 1"):
        assert not statement_complete(typed)


def test_unknown_dot_commands_list_the_known_ones(demo_case: Path) -> None:
    shown = _prompt(demo_case, [".tabels", ".schema no_such_table", ".help"])
    assert "Unknown command '.tabels'" in shown
    for known in (".tables", ".schema", ".queries", ".help", ".quit"):
        assert known in shown.splitlines()[1]
    assert "No table 'no_such_table'" in shown
    assert "Ctrl-C stops a running query" in shown  # .help


LONG_QUERY = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"


@pytest.fixture
def ctrl_c_during_the_query(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Press Ctrl-C (SIGINT to this process) half a second into the first query."""
    original = explore.cancellable
    pressed: list[bool] = []

    def with_ctrl_c(con, work):
        if not pressed:
            pressed.append(True)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        return original(con, work)

    monkeypatch.setattr(explore, "cancellable", with_ctrl_c)
    # SIGINT raises KeyboardInterrupt, as at a terminal: a process started in the background by
    # a non-interactive shell inherits SIGINT ignored, and Python leaves it so.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_cancels_the_query_and_the_prompt_goes_on(demo_case: Path, ctrl_c_during_the_query) -> None:
    started = time.monotonic()
    shown = _prompt(demo_case, [LONG_QUERY + ";", "SELECT 'still here' AS s;"])
    # The query would run for minutes: it was stopped, not waited for.
    assert time.monotonic() - started < 60
    assert "Cancelled." in shown and "still here" in shown
    assert "Internal error" not in shown


def test_ctrl_c_cancels_sql_c(demo_case: Path, ctrl_c_during_the_query) -> None:
    res = _sql(demo_case, LONG_QUERY)
    assert res.exit_code == 130, res.output
    assert "cancelled (Ctrl-C)" in res.output and "Internal error" not in res.output


def test_history_lives_in_the_state_folder_not_the_case(
    case_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    assert history_file() == state / "forensics" / "sql_history"
    monkeypatch.setattr("builtins.input", _typed(["SELECT 1 AS one;"]))
    before = _files(case_copy)
    shown: list[str] = []
    sql_prompt(case_copy, write=shown.append)  # the terminal prompt, with readline history
    assert "one" in "\n".join(shown)
    assert history_file().is_file() and history_file().stat().st_mode & 0o077 == 0
    assert _files(case_copy) == before
    # Without XDG_STATE_HOME (or with a relative one, which the spec says to ignore): ~/.local/state.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in (None, "relative/state"):
        if value is None:
            monkeypatch.delenv("XDG_STATE_HOME")
        else:
            monkeypatch.setenv("XDG_STATE_HOME", value)
        assert history_file() == tmp_path / "home" / ".local" / "state" / "forensics" / "sql_history"


class _Terminal:
    """`forensics sql` run on a pseudo-terminal, as an investigator runs it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import pty

        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes forensics
            os.environ.update(env)
            # A shell gives its foreground job Ctrl-C as SIGINT, whatever this process inherited.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execv(sys.executable, [sys.executable, "-m", "forensics", *args])

    def read_until(self, text: bytes, timeout: float = 60) -> bool:
        end = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:  # the child has gone
                    break
        return text in self.output

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_code(self, timeout: float = 60) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            self.read_until(b"\0never\0", 0.1)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX pseudo-terminal")
def test_ctrl_c_in_a_real_terminal(demo_case: Path, tmp_path: Path) -> None:
    term = _Terminal(["sql", str(demo_case)], {"XDG_STATE_HOME": str(tmp_path / "state")})
    assert term.read_until(b"forensics> "), term.output
    term.type(LONG_QUERY.encode() + b";\r")
    time.sleep(1.5)  # the query is running
    term.type(b"\x03")  # Ctrl-C, sent by the terminal as SIGINT
    assert term.read_until(b"Cancelled.\r\nforensics> "), term.output
    term.type(b"SELECT 40 + 2 AS answer;\r")
    assert term.read_until(b"42"), term.output
    assert term.read_until(b"(1 row)\r\nforensics> "), term.output
    term.type(b"\x04")  # Ctrl-D leaves
    assert term.exit_code() == 0, term.output
    assert b"Internal error" not in term.output and b"Traceback" not in term.output
    history = (tmp_path / "state" / "forensics" / "sql_history").read_text()
    assert "SELECT 40 + 2 AS answer;" in history
