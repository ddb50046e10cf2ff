"""Exploring a case with SQL: the named queries, an interactive prompt and the documented schema.

`forensics queries`, `query`, `sql` and `schema` are thin commands over this module. The case
database is evidence, and SQL typed at the prompt must not change it, nor anything else: the
connection is read-only, cannot read or write files or reach the network, cannot install or load
extensions, and its configuration is locked so no statement can undo that. Analysts can still
create TEMP tables and views, which live only as long as the prompt.

A case written before a table existed (an older tool, or no enrichment run) still answers every
named query: the missing schema tables are created empty as TEMP tables with their canonical
columns, so a query returns the right columns and no rows instead of failing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from forensics.db import NamedQuery, connect, named_queries, request_parts
from forensics.errors import InputError, QueryCancelled, QueryError
from forensics.listfiles import iso_utc, neutralise_formula
from forensics.schema import ALL_TABLES, REQUESTS
from forensics.terminal import printable, printable_json

FORMATS = ("table", "csv", "json", "parquet")
PROMPT = "forensics> "
CONTINUE_PROMPT = "      ...> "
HISTORY_LINES = 2000


def case_database(case_dir: Path) -> Path:
    """The case database inside a folder written by `forensics run` (or the file itself)."""
    case_dir = Path(case_dir)
    db = case_dir if case_dir.suffix == ".duckdb" else case_dir / "case.duckdb"
    if not db.exists():
        raise InputError(
            "no case database here",
            hint="give the folder written by `forensics run` or `forensics ingest` (it holds case.duckdb)",
            path=db,
        )
    return db


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    return {r[0] for r in rows}


# Off from the start: a query that names an extension's function must fail, not fetch and load
# the extension from the network.
_EXTENSIONS_OFF: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def _lock_down(con: duckdb.DuckDBPyConnection, folder: Path, spill: Path) -> None:
    """No files, no network, no extensions, and a locked configuration (the last SET).

    DuckDB spills large TEMP tables and sorts to a folder beside the database by default, which is
    the evidence folder; a private temporary folder is used instead. A view in the case database
    may read files kept beside it (the Parquet files of a case run on Spark), so when a view of
    the case reads Parquet its folder is allowed for reading. DuckDB's allowed_directories would
    also let COPY, EXPORT and ATTACH write there, so statements that write files are refused
    before they run (`check_statement`).
    """
    con.execute("SET temp_directory = $dir", {"dir": str(spill)})
    views = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary AND sql ILIKE '%read_parquet%'"
    ).fetchone()
    if views and views[0]:
        # As given and with links resolved: DuckDB compares the paths as text.
        folders = sorted({str(folder.absolute()) + os.sep, str(folder.resolve()) + os.sep})
        con.execute("SET allowed_directories = $dirs", {"dirs": folders})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


@contextmanager
def open_case(case_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only, locked-down connection to the case (see `_lock_down`), with any schema table
    it lacks added empty (TEMP)."""
    db = case_database(case_dir)
    con = connect(db, read_only=True, config=_EXTENSIONS_OFF)
    spill = Path(tempfile.mkdtemp(prefix="forensics-sql-"))
    try:
        _lock_down(con, db.parent, spill)
        have = existing_tables(con)
        for table in ALL_TABLES:
            if table.name not in have:
                con.execute(table.ddl().replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


# --- named queries ------------------------------------------------------------------------------


def list_queries() -> list[NamedQuery]:
    """The queries for investigators, without the pipeline's own stages (queries/stage_*.sql)."""
    return [q for q in named_queries().values() if not q.path.name.startswith("stage_")]


def _expected(q: NamedQuery) -> str:
    if not q.params:
        return "it takes no parameters"
    parts = [f"{p} (optional)" if p in q.optional else p for p in q.params]
    return "it takes: " + ", ".join(parts)


def bind_parameters(q: NamedQuery, given: dict[str, str]) -> dict[str, Any]:
    """Check the given parameters against the query's own and fill optional ones with NULL."""
    unknown = [k for k in given if k not in q.params]
    if unknown:
        raise QueryError(
            f"query {q.name!r} has no parameter {', '.join(repr(u) for u in unknown)}",
            hint=_expected(q),
        )
    missing = [p for p in q.params if p not in given and p not in q.optional]
    if missing:
        raise QueryError(
            f"query {q.name!r} needs {', '.join(repr(m) for m in missing)}",
            hint=f"{_expected(q)}; give each as -p NAME VALUE",
        )
    return {p: given.get(p) for p in q.params}


def find_query(name: str) -> NamedQuery:
    queries = {q.name: q for q in list_queries()}
    if name not in queries:
        raise QueryError(
            f"no named query {name!r}",
            hint="`forensics queries` lists them: " + ", ".join(sorted(queries)),
        )
    return queries[name]


def run_query(case_dir: Path, name: str, params: dict[str, str] | None = None) -> pl.DataFrame:
    """Run one named query on the case with its parameters bound by DuckDB."""
    q = find_query(name)
    bound = bind_parameters(q, params or {})
    with open_case(case_dir) as con:
        try:
            return cancellable(con, lambda: _frame(con.execute(q.sql, bound)))
        except duckdb.Error as exc:
            raise QueryError(f"query {name!r} failed: {exc}", hint="check the parameter values", path=q.path) from None


def _frame(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    # Through Arrow, so an empty answer keeps its columns and types.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "an extra copy of the rows": results here are small
        frame = pl.from_arrow(cur.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


T = TypeVar("T")


def cancellable(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """Run `work` (DuckDB calls on `con`) so that Ctrl-C stops it at once.

    DuckDB only looks at Python's signals when a query ends, so a Ctrl-C during a long query would
    wait for it. The query runs in a worker thread instead; Ctrl-C in the main thread calls
    `con.interrupt()`, waits for DuckDB to stop, and raises QueryCancelled. The connection stays
    usable for the next statement.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the main thread, which raises it
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, name="forensics-query", daemon=True)
    try:
        # Started inside the try: start() waits for the thread, and a Ctrl-C during that wait
        # (a loaded machine) must stop the query it starts, not leave it running.
        worker.start()
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        if worker.ident is None:  # pressed before the thread existed: nothing runs
            raise QueryCancelled("the query was cancelled (Ctrl-C); nothing was changed") from None
        con.interrupt()
        while True:
            try:
                # Interrupted again until it stops: a Ctrl-C pressed as the worker starts the
                # query reaches DuckDB before the query does and would be lost.
                if done.wait(0.2):
                    break
                con.interrupt()
            except KeyboardInterrupt:  # pressed again while DuckDB stops
                con.interrupt()
        raise QueryCancelled("the query was cancelled (Ctrl-C); nothing was changed") from None
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --- rendering a result -------------------------------------------------------------------------


def _flat_cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return neutralise_formula(" | ".join("" if v is None else str(v) for v in value))
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str):
        return neutralise_formula(value)
    return value


def _json_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, list):
        return [_json_cell(v) for v in value]
    return value


def _shown_cell(value: Any, newlines: bool) -> Any:
    """A cell for the screen: strings with control characters escaped, nested values as text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return printable(value, newlines=newlines)
    if isinstance(value, list):
        return [_shown_cell(v, newlines) for v in value]
    return printable(str(value), newlines=newlines)


def _escaped(frame: pl.DataFrame, newlines: bool = False) -> pl.DataFrame:
    """The frame with every text cell and column name safe for a terminal (forensics.terminal);
    `newlines` keeps line breaks, which a drawn table shows inside the cell's borders.

    Numbers, dates and times keep their types, so the table still aligns and formats them."""
    columns = []
    for name, series in frame.to_dict().items():
        dtype = series.dtype
        if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean or dtype == pl.Null:
            columns.append(series.alias(printable(name)))
            continue
        values = [_shown_cell(v, newlines) for v in series.to_list()]
        target = pl.List(pl.String) if isinstance(dtype, pl.List) else pl.String
        try:
            shown = pl.Series(printable(name), values, dtype=target, strict=False)
        except (TypeError, pl.exceptions.PolarsError):
            shown = pl.Series(
                printable(name), [None if v is None else printable(str(v), newlines=newlines) for v in values],
                dtype=pl.String,
            )
        columns.append(shown)
    return pl.DataFrame(columns) if columns else frame


def _records(frame: pl.DataFrame) -> str:
    """Rows too wide for a table, one field per line (like psql's expanded display)."""
    name_width = max((len(c) for c in frame.columns), default=0)
    out = []
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        out.append(f"-[ row {i} ]" + "-" * max(0, name_width - 6))
        for name, value in row.items():
            shown = _flat_cell(value)
            out.append(f"{name:<{name_width}} | {'' if shown is None else shown}")
    out.append(_row_count(frame.height))
    return "\n".join(out)


def _row_count(n: int) -> str:
    return "(1 row)" if n == 1 else f"({n:,} rows)"


def render_text(frame: pl.DataFrame, fmt: str, terminal: bool = True) -> str:
    """The frame as a readable table, CSV (lists joined with ' | ', formulas neutralised) or JSON.

    For the terminal (the default), control characters in the data are shown escaped; text for a
    file (`terminal=False`) keeps the exact values.
    """
    if fmt == "table":
        width = max(shutil.get_terminal_size().columns, 100)
        if len(frame.columns) > width // 14:
            return _records(_escaped(frame) if terminal else frame)
        shown = _escaped(frame, newlines=True) if terminal else frame
        with pl.Config(
            tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=40, fmt_table_cell_list_len=3,
            tbl_width_chars=width,
            tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
        ):
            return f"{shown}\n{_row_count(shown.height)}"
    if fmt == "csv":
        if not frame.height:
            return pl.DataFrame(schema={c: pl.String for c in frame.columns}).write_csv()
        flat = pl.DataFrame(
            [[_flat_cell(v) for v in row] for row in frame.iter_rows()],
            schema=frame.columns, orient="row", infer_schema_length=None,
        )
        return (_escaped(flat) if terminal else flat).write_csv()
    if fmt == "json":
        records = [{k: _json_cell(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
        text = json.dumps(records, indent=2, ensure_ascii=False, default=str) + "\n"
        return printable_json(text) if terminal else text
    raise QueryError(f"unknown format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))


def check_output(case_dir: Path, output: Path) -> None:
    """Refuse, before the query runs, a result file that cannot be written or that would replace
    a file of the case: the case folder is evidence (its database, manifest and outputs)."""
    if output.is_dir():
        raise QueryError("this is a folder", hint="give a file name for the result", path=output)
    if not output.parent.is_dir():
        raise QueryError("its folder does not exist", hint="create the folder first or give another path",
                         path=output)
    folder = case_database(case_dir).parent.resolve()
    if output.exists() and output.resolve().is_relative_to(folder):
        raise QueryError(
            "this file is in the case folder, which is evidence: it is not replaced",
            hint="write the result outside the case folder, or under a new name", path=output,
        )


def write_result(frame: pl.DataFrame, fmt: str, output: Path | None) -> str | None:
    """Write the result to `output` with the exact values, or return it as text for the terminal
    (control characters escaped) when no file is given."""
    if fmt not in FORMATS:
        raise QueryError(f"unknown format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))
    if output is None:
        if fmt == "parquet":
            raise QueryError("parquet needs a file", hint="add --out result.parquet")
        return render_text(frame, fmt)
    try:
        if fmt == "parquet":
            frame.write_parquet(output)
        else:
            text = render_text(frame, fmt, terminal=False)
            output.write_text(text if fmt != "table" else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise QueryError(f"cannot write the result: {exc.strerror or exc}", hint="give a path you can write to",
                         path=output) from None
    return None


# --- the SQL prompt -----------------------------------------------------------------------------

# What the prompt will not run, and why. The connection itself already refuses files outside the
# case, the network and extensions; these are refused by statement type (read by DuckDB's own
# parser) so that the message is clear, and because a case with views may read files in its own
# folder, where DuckDB would otherwise also let these write.
_NOTHING_ELSE = "the case prompt reads the case database and nothing else: no other files, no network"
_REFUSED = {
    duckdb.StatementType.COPY: (
        "COPY is not allowed here: it reads or writes files",
        f"{_NOTHING_ELSE}; to save a result use `forensics query NAME --format csv --out FILE`",
    ),
    duckdb.StatementType.EXPORT: ("EXPORT DATABASE is not allowed here: it writes files", _NOTHING_ELSE),
    duckdb.StatementType.ATTACH: (
        "ATTACH is not allowed here: the prompt works on this case's database only, read-only",
        "open another case with its own `forensics sql`",
    ),
    duckdb.StatementType.DETACH: (
        "DETACH is not allowed here: the prompt works on this case's database only", None,
    ),
    duckdb.StatementType.LOAD: (
        "INSTALL and LOAD are not allowed here: extensions are off",
        "the case prompt does not reach the network or load code",
    ),
    duckdb.StatementType.PREPARE: ("PREPARE is not allowed here", "write the statement itself"),
    duckdb.StatementType.EXECUTE: ("EXECUTE is not allowed here", "write the statement itself"),
}
_ALLOWED = {
    duckdb.StatementType.SELECT, duckdb.StatementType.CREATE, duckdb.StatementType.CREATE_FUNC,
    duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE,
    duckdb.StatementType.MERGE_INTO, duckdb.StatementType.DROP, duckdb.StatementType.ALTER,
    duckdb.StatementType.TRANSACTION, duckdb.StatementType.SET, duckdb.StatementType.VARIABLE_SET,
    duckdb.StatementType.CALL, duckdb.StatementType.PRAGMA, duckdb.StatementType.VACUUM,
    duckdb.StatementType.ANALYZE, duckdb.StatementType.EXPLAIN,
}
_EXPLAIN_WORDS = {"explain", "analyze", "analyse"}


def _explained(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    """The statement an EXPLAIN [ANALYZE] [(options)] wraps: EXPLAIN ANALYZE runs it."""
    tokens = [t for t in duckdb.tokenize(sql) if t[1] != duckdb.token_type.comment]
    depth = 0
    for i, (pos, kind) in enumerate(tokens):
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
        word = sql[pos:end].strip().lower()
        if depth == 0 and kind == duckdb.token_type.keyword and word in _EXPLAIN_WORDS:
            continue
        if word == "(":
            depth += 1
        elif word == ")" and depth:
            depth -= 1
        elif depth == 0:
            return list(con.extract_statements(sql[pos:]))
    return []


def parse_statements(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    """The statements in `sql`, split by DuckDB's parser; refuses the whole text before anything
    runs when one statement would write files, attach databases or load extensions."""
    try:
        statements = list(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise QueryError(f"the SQL does not parse: {exc}") from None
    for statement in statements:
        check_statement(con, statement)
    return statements


def check_statement(con: duckdb.DuckDBPyConnection, statement: Any) -> None:
    """Refuse a statement that would write files, attach databases or load extensions."""
    try:
        kind = statement.type
    except ValueError:  # a statement type this DuckDB build has no Python name for
        raise QueryError("this kind of statement is not allowed here", hint=_NOTHING_ELSE) from None
    if kind in _REFUSED:
        message, hint = _REFUSED[kind]
        raise QueryError(message, hint=hint)
    if kind not in _ALLOWED:
        raise QueryError(f"{kind.name} statements are not allowed here", hint=_NOTHING_ELSE)
    if kind == duckdb.StatementType.EXPLAIN:
        try:
            inner = _explained(con, statement.query)
        except duckdb.Error:
            inner = []
        if not inner:
            raise QueryError("this EXPLAIN is not allowed here", hint="EXPLAIN a SELECT")
        for wrapped in inner:
            check_statement(con, wrapped)


def _sql_error(exc: duckdb.Error) -> QueryError:
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(f"refused: {exc}", hint=_NOTHING_ELSE)
    if "configuration has been locked" in str(exc):
        return QueryError(f"refused: {exc}", hint="settings are locked in the case prompt")
    return QueryError(f"{exc}", hint="`.tables` and `.schema TABLE` at the prompt, or `forensics schema DIR`, "
                      "document the tables")


def run_statements(con: duckdb.DuckDBPyConnection, sql: str, write: Callable[[str], None]) -> None:
    """Run every statement in `sql` in order and write each one's result: a table, or 'OK' for a
    statement without rows. Stops at the first failure (QueryError) or Ctrl-C (QueryCancelled)."""

    def run_one(statement: Any) -> pl.DataFrame | None:
        cur = con.execute(statement)
        return None if cur.description is None else _frame(cur)

    for statement in parse_statements(con, sql):
        try:
            frame = cancellable(con, partial(run_one, statement))
        except duckdb.Error as exc:
            raise _sql_error(exc) from None
        write("OK" if frame is None else render_text(frame, "table"))


def sql_once(case_dir: Path, sql: str, write: Callable[[str], None]) -> None:
    """`forensics sql DIR -e SQL`: every statement (separated by ';') runs and shows its result."""
    with open_case(case_dir) as con:
        run_statements(con, sql, write)


def history_file() -> Path:
    """Where the prompt keeps its history: `$XDG_STATE_HOME/forensics/sql_history` (by default
    ~/.local/state/forensics/sql_history). It is the investigator's own state, and the case
    folder is evidence, so the history never goes there."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "forensics" / "sql_history"


DOT_COMMANDS = {
    ".tables": "list the tables",
    ".schema [TABLE]": "document the tables and their columns",
    ".queries": "list the named queries (run them with `forensics query`)",
    ".help": "this help",
    ".quit": "leave (also .exit or Ctrl-D)",
}


def _help() -> str:
    width = max(len(k) for k in DOT_COMMANDS)
    lines = [
        "End each statement with ';' (it may span lines); every statement's result is shown.",
        "Ctrl-C stops a running query; Ctrl-D leaves. The case is read-only: TEMP tables are allowed,",
        "files, other databases, extensions and settings are not.",
    ]
    return "\n".join(lines + [f"  {k:<{width}}  {v}" for k, v in DOT_COMMANDS.items()])


def _dot_command(con: duckdb.DuckDBPyConnection, line: str) -> str | None:
    """.tables, .schema [TABLE], .queries, .help; None means quit."""
    word, _, rest = line.partition(" ")
    if word in (".quit", ".exit", ".q"):
        return None
    if word == ".tables":
        return "\n".join(sorted(existing_tables(con)))
    if word == ".schema":
        wanted = rest.strip()
        tables = [t for t in schema_doc_con(con) if not wanted or t.name == wanted]
        if not tables:
            return f"No table {wanted!r}; .tables lists them."
        return "\n\n".join(describe_table(t) for t in tables)
    if word == ".queries":
        return "\n".join(f"{q.name}: {q.purpose}" for q in list_queries())
    if word == ".help":
        return _help()
    known = ", ".join(k.split()[0] for k in DOT_COMMANDS)
    return f"Unknown command {word!r}. The commands are: {known}."


def statement_complete(text: str) -> bool:
    """Whether typed text ends with a ';' that ends a statement, not one inside a string, a quoted
    name or a comment (read by DuckDB's tokenizer), so `SELECT 'a;` waits for the rest."""
    if not text.rstrip().endswith(";"):
        return False
    tokens = duckdb.tokenize(text)
    if not tokens:
        return False
    pos, kind = tokens[-1]
    return kind == duckdb.token_type.operator and text[pos:].strip().endswith(";")


def sql_prompt(
    case_dir: Path,
    read_line: Callable[[str], str] | None = None,
    write: Callable[[str], None] = print,
) -> None:
    """The interactive prompt: statements end with ';' and may span lines; errors are printed and
    the prompt goes on; Ctrl-C stops a running query or clears a half-typed one. With the default
    `read_line` (the terminal), history is kept in `history_file()`."""
    readline: Any = None
    history = history_file()
    if read_line is None:
        read_line = input
        with suppress(ImportError):
            import readline  # only for the interactive prompt; absent on some systems
        if readline is not None:
            readline.set_history_length(HISTORY_LINES)
            with suppress(OSError):
                readline.read_history_file(str(history))
    with open_case(case_dir) as con:
        write(f"Case database {case_database(case_dir)} (read-only). End statements with ';', .help for help.")
        buffer: list[str] = []
        try:
            while True:
                try:
                    line = read_line(CONTINUE_PROMPT if buffer else PROMPT)
                except EOFError:
                    if readline is not None:
                        write("")  # Ctrl-D: the shell's prompt starts on a line of its own
                    break
                except KeyboardInterrupt:
                    buffer = []
                    write("")
                    continue
                if not buffer and line.strip().startswith("."):
                    answer = _dot_command(con, line.strip())
                    if answer is None:
                        break
                    write(answer)
                    continue
                buffer.append(line)
                if not statement_complete("\n".join(buffer)):
                    continue
                statements = "\n".join(buffer)
                buffer = []
                try:
                    run_statements(con, statements, write)
                except (QueryCancelled, KeyboardInterrupt):  # also a Ctrl-C while a result is drawn
                    write("Cancelled.")
                except QueryError as exc:
                    write(f"Error: {exc.render()}")
        finally:
            if readline is not None:
                _save_history(readline, history)


def _save_history(readline: Any, history: Path) -> None:
    with suppress(OSError):
        history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        readline.write_history_file(str(history))
        history.chmod(0o600)  # statements name clients and addresses from the case


# --- the documented schema ----------------------------------------------------------------------


@dataclass
class ColumnDoc:
    name: str
    sql_type: str
    doc: str


@dataclass
class TableDoc:
    name: str
    doc: str
    rows: int | None  # None: the case has no such table yet
    columns: list[ColumnDoc]


def schema_doc_con(con: duckdb.DuckDBPyConnection) -> list[TableDoc]:
    main = existing_tables(con)
    actual: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        actual.setdefault(table, []).append((column, dtype))
    out: list[TableDoc] = []
    for t in ALL_TABLES:
        rows = con.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] if t.name in main else None  # type: ignore[index]
        cols = [ColumnDoc(c.name, c.sql_type, c.doc) for c in t.columns]
        known = {c.name for c in t.columns}
        # Columns added to a table by a later stage (e.g. enrichment joined into downloaders).
        undocumented = "(not documented in forensics/schema.py)"
        cols += [ColumnDoc(n, d, undocumented) for n, d in actual.get(t.name, []) if n not in known]
        out.append(TableDoc(t.name, t.doc, rows, cols))
    documented = {t.name for t in ALL_TABLES}
    parts = request_parts(con)
    part_doc = (
        f"Where rows of {REQUESTS.name} are stored: the rows that fill these of its columns "
        f"(query {REQUESTS.name}, a view over these tables)."
    )
    for name in sorted(main - documented):
        rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
        if name in parts:
            doc = {c.name: c.doc for c in REQUESTS.columns}
            cols = [ColumnDoc(n, d, doc.get(n, "")) for n, d in actual.get(name, [])]
            out.append(TableDoc(name, part_doc, rows, cols))
            continue
        cols = [ColumnDoc(n, d, "") for n, d in actual.get(name, [])]
        out.append(TableDoc(name, "(not documented in forensics/schema.py)", rows, cols))
    return out


def schema_doc(case_dir: Path) -> list[TableDoc]:
    """Every table of the case with its columns, their documentation and its row count."""
    con = connect(case_database(case_dir), read_only=True)
    try:
        return schema_doc_con(con)
    finally:
        con.close()


def describe_table(t: TableDoc) -> str:
    count = "not in this case" if t.rows is None else f"{t.rows:,} rows"
    lines = [f"{t.name} ({count}): {t.doc}"]
    width = max((len(c.name) for c in t.columns), default=0)
    for c in t.columns:
        lines.append(f"  {c.name:<{width}}  {c.sql_type:<11}  {c.doc}")
    return "\n".join(lines)
