"""Opening the case database and running the named queries in queries/*.sql.

Each query file starts with a header:

    -- name: downloaders
    -- purpose: One row per client that requested the leaked resource.
    -- params: outcome (optional)

A pipeline stage (`stage_*.sql`) is one SELECT and says in a fourth header line which table its rows
go to and how, so that any engine can run it and write the result its own way:

    -- writes: hits (append)        rows added to the table
    -- writes: hits (replace)       the table's new content (the SELECT may read the table itself)

A stage that writes no table (`-- writes: none (...)`) returns its rows to the caller. Parameters
are written `$name` in the SQL and always bound by the engine, never pasted in.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from forensics.errors import InputError, QueryError, ResourceError
from forensics.schema import (
    ALL_TABLES,
    REQUEST_PART_PREFIX,
    REQUESTS,
    REQUESTS_ALL,
    Table,
    request_part_ddl,
    request_part_name,
    requests_view_ddl,
)

QUERY_DIR = Path(__file__).resolve().parent / "queries"


# DuckDB's buffer pool where Python holds much beside it (enrichment's frames of addresses, the
# report beside the workbook written on a thread), and in the follow-up: joins, sorts and lists over
# millions of requests spill to temporary files instead of taking gigabytes.
ANALYSIS_MEMORY_LIMIT = "1GB"
# DuckDB's buffer pool where DuckDB does the work and Python holds little: the investigation and
# writing the lists. At 1 GB the investigation's joins of ten million hits to their requests rows
# spill, and take longer (the clients' values and the downloaders, measured alone: 43.5 s at
# 1 GB, 36.2 and 38.5 s at 2 GB), as did sorting a million downloaders with their lists
# (13.5 -> 4.4 s) and the operators' requests (27 -> 15 s). The follow-up stays at 1 GB: with it at
# 2 GB too, two runs of 20,000,000 requests peaked at 3.06 and 3.01 GB (sampled highest in the
# follow-up), where the target is 3 GB; with it at 1 GB, 2.49 and 2.51 GB.
WORKING_MEMORY_LIMIT = "2GB"


def _no_space(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        isinstance(exc, duckdb.IOException) and "No space left on device" in str(exc)
    )


@contextmanager
def machine_limits(folder: Path, doing: str) -> Iterator[None]:
    """DuckDB running out of the memory it may use, or the disk filling up, while `doing`, as a
    ResourceError that says what happened and what to do: neither is a bug of the case or of
    forensics, and neither leaves an output half-written."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        detail = str(exc).splitlines()[0]
        where = "".join(f", {note}" for note in getattr(exc, "__notes__", []))
        raise ResourceError(
            f"{doing}{where}: DuckDB ran out of the memory it may use ({detail})",
            hint="close other programs or use a machine with more memory, then run the same command again; "
            "if it happens again on this case, report it with this message",
            path=folder,
        ) from None
    except (OSError, duckdb.IOException) as exc:
        if not _no_space(exc):
            raise
        raise ResourceError(
            f"{doing}: the disk is full",
            hint="free space on the disk of the output folder (DuckDB spills to case.duckdb.tmp there), "
            "then run the same command again",
            path=folder,
        ) from None


def connect(
    path: Path, read_only: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config or {})
    except duckdb.Error as exc:
        raise InputError(
            f"cannot open the case database: {exc}",
            hint="give the folder written by `forensics ingest` or `forensics run`",
            path=path,
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    return con


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table in ALL_TABLES:
        if table is REQUESTS:
            if not request_parts(con):
                con.execute(request_part_ddl(REQUESTS_ALL, REQUESTS.column_names))
                con.execute(requests_view_ddl({REQUESTS_ALL: REQUESTS.column_names}))
        else:
            con.execute(table.ddl())


def empty_table(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Empty a table by making it anew: rows deleted in a transaction are rewritten when it
    commits (10,000,000 hits deleted and written again: a 7 s commit), a dropped table's cost
    nothing."""
    con.execute(f"DROP TABLE IF EXISTS {table.name}")  # names from forensics.schema, never input
    con.execute(table.ddl())


def request_parts(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    """The tables `requests` is stored in (see forensics.schema), with their columns, as the
    connection's transaction sees them."""
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal "
        "AND regexp_full_match(table_name, $pattern) AND table_name IN "
        "(SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT temporary)",
        {"pattern": f"{REQUEST_PART_PREFIX}(all|[0-9a-f]{{10}})"},
    ).fetchall()
    parts: dict[str, set[str]] = {}
    for name, column in rows:
        parts.setdefault(name, set()).add(column)
    return {name: frozenset(cols) for name, cols in parts.items()}


def add_request_part(con: duckdb.DuckDBPyConnection, columns: frozenset[str]) -> str:
    """Create the part for rows filling `columns` and put it in the `requests` view; its name."""
    name = request_part_name(columns)
    con.execute(request_part_ddl(name, columns))
    parts = request_parts(con)
    con.execute(requests_view_ddl(parts))
    return name


def drop_requests(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the `requests` view and its parts (to put another `requests` in their place)."""
    con.execute(f"DROP VIEW IF EXISTS {REQUESTS.name}")
    for name in request_parts(con):
        con.execute(f"DROP TABLE {name}")  # our names (forensics.schema), never input


@dataclass(frozen=True)
class NamedQuery:
    name: str
    purpose: str
    params: tuple[str, ...]
    optional: tuple[str, ...]
    sql: str
    path: Path
    writes: str | None = None  # the table a stage's rows go to
    mode: str | None = None  # append or replace


_HEADER = re.compile(r"^--\s*(name|purpose|params|writes):\s*(.*)$")
_WRITES = re.compile(r"^([a-z_]+)\s+\((append|replace)\)$")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_query_file(path: Path) -> NamedQuery:
    text = path.read_text(encoding="utf-8")
    meta: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            meta[m.group(1)] = m.group(2).strip()
        elif line.strip() and not line.strip().startswith("--"):
            break
    if "name" not in meta or "purpose" not in meta:
        raise QueryError("query file has no '-- name:' or '-- purpose:' header", path=path)
    used = tuple(dict.fromkeys(_PARAM.findall(text)))
    optional = tuple(
        p.strip().split()[0]
        for p in meta.get("params", "").split(",")
        if "optional" in p and p.strip()
    )
    writes = mode = None
    if "writes" in meta and not meta["writes"].startswith("none"):
        m = _WRITES.match(meta["writes"])
        if m is None:
            raise QueryError("'-- writes:' must name a table and (append) or (replace)", path=path)
        writes, mode = m.group(1), m.group(2)
    return NamedQuery(meta["name"], meta["purpose"], used, optional, text, path, writes, mode)


def named_queries(folder: Path = QUERY_DIR) -> dict[str, NamedQuery]:
    out: dict[str, NamedQuery] = {}
    for p in sorted(folder.glob("*.sql")):
        q = parse_query_file(p)
        out[q.name] = q
    return out
