"""Reference points for `make bench`: what DuckDB alone needs for parts of the ingest.

Run by bench_ingest.py in a fresh process: `python floor.py GZIP WORKDIR`. Prints two lines,
`raw_strings SECONDS` and `store_only SECONDS`:

  raw_strings  DuckDB's own CSV reader reads the gzip's ten space-separated fields as text into a
               table of a new database file: no types, no line numbers, no checks, no rejects.
               The closest thing to the prototype the ingest issue cites.
  store_only   The same lines, already parsed and typed in memory (untimed), stored into a
               table of the `requests` columns they fill in a new database file: the storage
               cost alone, which every ingest of the case database pays whatever parses the
               lines.

Neither is an ingest: they bound what any ingest into this schema on this machine can reach.

`python floor.py store CASE_DB WORKDIR` prints `store SECONDS`: the rows an ingest put into
CASE_DB's `requests`, held in memory (untimed), stored again into a new database file as the
ingest stores them (a table of the columns they fill). make bench prints it beside each family's
ingest as the share of the time its target allows. Like the ingest, it stores on one DuckDB
thread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb

from forensics.schema import REQUESTS, request_part_ddl

FIELDS = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(10))


# The file is a bound parameter ($gz), never pasted into the SQL.
CSV = (
    f"read_csv($gz, delim=' ', quote='\"', escape='\"', header=false, columns={{{FIELDS}}}, "
    "auto_detect=false, strict_mode=false, null_padding=true, allow_quoted_nulls=false)"
)


def _fresh(path: Path) -> duckdb.DuckDBPyConnection:
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = false")
    return con


def store(case_db: Path, work: Path) -> None:
    db = work / "store.duckdb"
    con = _fresh(db)
    con.execute("SET threads = 1")
    con.execute("ATTACH $db AS ingested (READ_ONLY)", {"db": str(case_db)})
    con.execute("CREATE TEMP TABLE typed AS SELECT * FROM ingested.requests")
    con.execute("DETACH ingested")
    # Stored as the ingest stores them: the columns the rows fill, in a table of those columns.
    filled = [c for c in REQUESTS.column_names if con.execute(f"SELECT count({c}) FROM typed").fetchone()[0]]
    con.execute(request_part_ddl("stored", filled))
    start = time.perf_counter()
    con.execute(f"INSERT INTO stored SELECT {', '.join(filled)} FROM typed")
    con.execute("CHECKPOINT")
    print(f"store {time.perf_counter() - start:.3f}")
    con.close()
    db.unlink(missing_ok=True)


def main() -> None:
    if sys.argv[1] == "store":
        store(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    gz, work = Path(sys.argv[1]), Path(sys.argv[2])
    db = work / "floor.duckdb"

    con = _fresh(db)
    start = time.perf_counter()
    con.execute(f"CREATE TABLE raw AS SELECT * FROM {CSV}", {"gz": str(gz)})
    con.execute("CHECKPOINT")
    print(f"raw_strings {time.perf_counter() - start:.3f}")
    con.close()

    con = _fresh(db)
    con.execute(
        f"""CREATE TEMP TABLE typed AS SELECT
              1::INTEGER AS source_id, ordinality::BIGINT AS line_no,
              strptime(substr(c3, 2) || ' ' || substr(c4, 1, 5), '%d/%b/%Y:%H:%M:%S %z') AS ts,
              c0 AS client_addr, c0 AS peer_addr, nullif(c2, '-') AS remote_user,
              split_part(c5, ' ', 1) AS method, split_part(split_part(c5, ' ', 2), '?', 1) AS path,
              nullif(split_part(split_part(c5, ' ', 2), '?', 2), '') AS query,
              split_part(c5, ' ', 3) AS protocol, try_cast(c6 AS SMALLINT) AS status,
              try_cast(nullif(c7, '-') AS BIGINT) AS body_bytes, nullif(c8, '-') AS referer,
              nullif(c9, '-') AS user_agent
            FROM {CSV} WITH ORDINALITY""",
        {"gz": str(gz)},
    )
    # A table of the columns these rows fill, as the ingest stores them.
    con.execute(request_part_ddl("requests", [d[0] for d in con.execute("SELECT * FROM typed LIMIT 0").description]))
    start = time.perf_counter()
    con.execute("INSERT INTO requests BY NAME SELECT * FROM typed")
    con.execute("CHECKPOINT")
    print(f"store_only {time.perf_counter() - start:.3f}")
    con.close()
    db.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
