"""Where the investigation's stages run: DuckDB (embedded, the default) or Spark (a cluster).

A stage is one SELECT in forensics/queries/stage_*.sql, written in a portable subset of DuckDB SQL,
with its parameters bound by the engine. Its `-- writes:` header says which table its rows go to
and whether they are added (append) or are the table's new content (replace); the engine writes
them its own way (DuckDB: INSERT into the case database; Spark: a table in the warehouse). Python
steps between the stages compute small tables over distinct values and register them by name on
the engine, so the stages read them like any table.

`forensics.engine.portable` checks a stage against the portable subset and turns it into Spark SQL.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import pyarrow as pa

from forensics.db import NamedQuery, named_queries
from forensics.errors import QueryError
from forensics.schema import Table


class Engine(Protocol):
    """What the investigation needs from an engine."""

    name: str

    def rows(self, query: NamedQuery, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a query that writes nothing."""
        ...

    def write(self, query: NamedQuery, params: dict[str, Any]) -> None:
        """Run a stage and write its rows to the table its header names, as it says."""
        ...

    def reset(self, table: Table) -> None:
        """Make one of the schema's tables empty, with the schema's columns."""
        ...

    def register(self, name: str, table: pa.Table) -> None:
        """Make a small table computed in Python readable by name."""
        ...

    def unregister(self, name: str) -> None: ...

    def sql_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a fixed query in the portable subset, its `$name` parameters bound."""
        ...


@functools.lru_cache(maxsize=1)
def _queries() -> dict[str, NamedQuery]:
    return named_queries()


def named(name: str, **params: Any) -> tuple[NamedQuery, dict[str, Any]]:
    """One named query and the parameters it uses, checked (every one it names is given)."""
    try:
        query = _queries()[name]
    except KeyError:
        raise QueryError(f"no query named {name!r} in queries/", hint="reinstall forensics") from None
    missing = [p for p in query.params if p not in params]
    if missing:
        raise QueryError(f"query {name!r} needs {', '.join(missing)}", path=query.path)
    return query, {p: params[p] for p in query.params}


def run_stage(engine: Engine, name: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one named query: a stage with `-- writes:` writes its table (and gives no rows), any
    other query gives its rows."""
    query, bound = named(name, **params)
    if query.writes is None:
        return engine.rows(query, bound)
    engine.write(query, bound)
    return []
