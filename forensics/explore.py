"""Exploring a case with SQL: the named queries, an interactive prompt and the documented schema.

`forensics queries`, `query`, `sql` and `schema` are thin commands over this module. The case
database is opened read-only: it is evidence, and the prompt must not change it by accident.
Analysts can still create TEMP tables and views, which live only as long as the prompt.

A case written before a table existed (an older tool, or no enrichment run) still answers every
named query: the missing schema tables are created empty as TEMP tables with their canonical
columns, so a query returns the right columns and no rows instead of failing.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.db import NamedQuery, connect, named_queries
from forensics.errors import InputError, QueryError
from forensics.pipeline import iso_utc, neutralise_formula
from forensics.schema import ALL_TABLES

FORMATS = ("table", "csv", "json", "parquet")
HISTORY_NAME = ".forensics_sql_history"
PROMPT = "forensics> "
CONTINUE_PROMPT = "      ...> "


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


@contextmanager
def open_case(case_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the case, with any schema table it lacks added empty (TEMP)."""
    con = connect(case_database(case_dir), read_only=True)
    try:
        have = existing_tables(con)
        for table in ALL_TABLES:
            if table.name not in have:
                con.execute(table.ddl().replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
        yield con
    finally:
        con.close()


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
            cur = con.execute(q.sql, bound)
        except duckdb.Error as exc:
            raise QueryError(f"query {name!r} failed: {exc}", hint="check the parameter values", path=q.path) from None
        return _frame(cur)


def _frame(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    # Through Arrow, so an empty answer keeps its columns and types.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "an extra copy of the rows": results here are small
        frame = pl.from_arrow(cur.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


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


def _records(frame: pl.DataFrame) -> str:
    """Rows too wide for a table, one field per line (like psql's expanded display)."""
    name_width = max((len(c) for c in frame.columns), default=0)
    out = []
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        out.append(f"-[ row {i} ]" + "-" * max(0, name_width - 6))
        for name, value in row.items():
            shown = _flat_cell(value)
            out.append(f"{name:<{name_width}} | {'' if shown is None else shown}")
    out.append(f"({frame.height} rows)")
    return "\n".join(out)


def render_text(frame: pl.DataFrame, fmt: str) -> str:
    """The frame as a readable table, CSV (lists joined with ' | ', formulas neutralised) or JSON."""
    if fmt == "table":
        width = max(shutil.get_terminal_size().columns, 100)
        if len(frame.columns) > width // 14:
            return _records(frame)
        with pl.Config(
            tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=40, fmt_table_cell_list_len=3,
            tbl_width_chars=max(shutil.get_terminal_size().columns, 100),
            tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
        ):
            return f"{frame}\n({frame.height} rows)"
    if fmt == "csv":
        if not frame.height:
            return pl.DataFrame(schema={c: pl.String for c in frame.columns}).write_csv()
        flat = pl.DataFrame(
            [[_flat_cell(v) for v in row] for row in frame.iter_rows()],
            schema=frame.columns, orient="row", infer_schema_length=None,
        )
        return flat.write_csv()
    if fmt == "json":
        records = [{k: _json_cell(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
        return json.dumps(records, indent=2, ensure_ascii=False, default=str) + "\n"
    raise QueryError(f"unknown format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))


def write_result(frame: pl.DataFrame, fmt: str, output: Path | None) -> str | None:
    """Write the result to `output` (or return it as text when no file is given)."""
    if fmt not in FORMATS:
        raise QueryError(f"unknown format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))
    if fmt == "parquet":
        if output is None:
            raise QueryError("parquet needs a file", hint="add --output result.parquet")
        frame.write_parquet(output)
        return None
    text = render_text(frame, fmt)
    if output is None:
        return text
    output.write_text(text if fmt != "table" else text + "\n", encoding="utf-8")
    return None


# --- the SQL prompt -----------------------------------------------------------------------------


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Run one statement and return what to print: a table, or 'OK' for a statement without rows."""
    cur = con.execute(sql)
    if cur.description is None:
        return "OK"
    return render_text(_frame(cur), "table")


def sql_once(case_dir: Path, sql: str) -> str:
    """`forensics sql DIR -c SQL`: one statement (or several, separated by ';'; the last is shown)."""
    with open_case(case_dir) as con:
        try:
            return run_sql(con, sql)
        except duckdb.Error as exc:
            raise QueryError(f"the SQL failed: {exc}", hint="`forensics schema DIR` lists the tables") from None


def _history_file(case_dir: Path) -> Path:
    db = case_database(case_dir)
    folder = db.parent
    return folder / HISTORY_NAME if os.access(folder, os.W_OK) else Path.home() / HISTORY_NAME


def _dot_command(con: duckdb.DuckDBPyConnection, line: str) -> str | None:
    """.tables, .schema TABLE, .queries, .help; None means quit."""
    word, _, rest = line.partition(" ")
    if word in (".quit", ".exit", ".q"):
        return None
    if word == ".tables":
        return "\n".join(sorted(existing_tables(con)))
    if word == ".schema":
        return "\n".join(describe_table(t) for t in schema_doc_con(con) if not rest or t.name == rest.strip())
    if word == ".queries":
        return "\n".join(f"{q.name}: {q.purpose}" for q in list_queries())
    return (
        "End a statement with ';' (it may span lines). .tables lists tables, .schema [TABLE] documents "
        "them, .queries lists the named queries (their SQL is in queries/), .quit leaves."
    )


def sql_prompt(
    case_dir: Path,
    read_line: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    """The interactive prompt: statements end with ';' and may span lines; errors are printed and
    the prompt goes on; history is kept in the case folder (or the home folder if it is read-only)."""
    history = _history_file(case_dir)
    readline: Any = None
    if read_line is input:
        with suppress(ImportError):
            import readline  # only for the interactive prompt; absent on some systems
        if readline is not None:
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
                if not line.rstrip().endswith(";"):
                    continue
                statement = "\n".join(buffer)
                buffer = []
                try:
                    write(run_sql(con, statement))
                except duckdb.Error as exc:
                    write(f"Error: {exc}")
        finally:
            if readline is not None:
                with suppress(OSError):
                    readline.write_history_file(str(history))


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
    for name in sorted(main - documented):
        rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
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
