"""`forensics run --engine spark`: the load and the investigation on Spark, the answer written locally.

1. Plan on the driver as a local run does (forensics.ingest.plan_files: every file checked, its
   format detected from its first lines). Files on local paths are examined here and hashed in
   Spark, one task per file; files named by URIs are listed through Spark's file system layer and
   examined and hashed in Spark tasks (forensics.engine.spark_inputs). Empty and duplicate files
   are decided exactly as locally (forensics.ingest.reconcile).
2. Load in Spark (mapInArrow): each task reads a file with the project's own readers
   (forensics.ingest's reading loop: the same decompression, line counting, rejects with
   reasons, SHA-256 of the bytes read), a file on a path where it is, a file named by a URI from
   the bytes Spark's binaryFile source hands over; it gives Arrow batches of requests, rejects and
   one row with the file's accounting (or the error the investigator must act on). They are
   written once as Parquet, partitioned by kind of record, so `requests` and `rejects` are folders
   of Parquet files.
3. The stages run on Spark SQL (forensics.engine.spark). Every table after the hits is small.
4. The result tables (sources, rejects, hits, hit_requests, downloaders, near_misses, coverage,
   request_timeline) come into a local DuckDB case database a bounded batch at a time, `requests`
   there is a view over the Parquet files when the warehouse is on this machine, and the run goes
   on as a local run does: enrichment, follow-up, downloader files, manifest and report are
   written by the same code (the report needs no `requests` row).

A Spark run always loads every file again into a fresh warehouse (no resume or growth: a cluster
job is rerun whole).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from forensics.casefile import Case
from forensics.db import connect, create_tables, drop_requests
from forensics.engine.spark import SPARK_TYPES, SparkEngine, arrow_rows
from forensics.engine.spark_inputs import (
    binary_files,
    error_json,
    examine_sources,
    local_copy,
    raise_error,
    rows_of,
)
from forensics.errors import ForensicsError, InputError
from forensics.inputs import ReadState
from forensics.investigate import Investigation, investigate
from forensics.schema import (
    COVERAGE,
    DOWNLOADERS,
    HIT_REQUESTS,
    HITS,
    NEAR_MISSES,
    REJECTS,
    REQUEST_TIMELINE,
    REQUESTS,
    SKIPPED,
    SOURCES,
    Table,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The tables a Spark run brings back into the local case database, a bounded batch at a time (all
# small but rejects, which is as large as the logs are bad).
COLLECTED = (SOURCES, SKIPPED, REJECTS, HITS, HIT_REQUESTS, DOWNLOADERS, NEAR_MISSES, COVERAGE, REQUEST_TIMELINE)

# One record of the load job: a request, a reject, or the accounting of one file.
_EXTRA_COLUMNS = (("reason", "STRING"), ("line", "STRING"), ("file_result", "STRING"), ("record_kind", "STRING"))


def load_schema() -> str:
    """The load job's output: the requests columns, the reject columns and the file's accounting."""
    cols = [f"`{c.name}` {SPARK_TYPES[c.sql_type]}" for c in REQUESTS.columns]
    cols += [f"`{name}` {kind}" for name, kind in _EXTRA_COLUMNS]
    return ", ".join(cols)


def _arrow_schema() -> pa.Schema:
    types = {
        "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
        "VARCHAR": pa.string(), "JSON": pa.string(), "BOOLEAN": pa.bool_(), "TIMESTAMPTZ": pa.timestamp("us", "UTC"),
    }
    fields = [pa.field(c.name, types[c.sql_type]) for c in REQUESTS.columns]
    fields += [pa.field(name, pa.string()) for name, _ in _EXTRA_COLUMNS]
    return pa.schema(fields)


def spark_session(master: str | None = None) -> SparkSession:
    """A SparkSession for the run: UTC, no UI; the cluster's own settings where spark-submit gave them.

    Without a master from the command line or spark-submit, Spark runs here (local[*]); its Python
    workers then use this interpreter, so they import the same forensics."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "the Spark engine needs pyspark, which is not installed",
            hint="install the spark extra: pip install 'forensics[spark]' (make install-spark in a clone)",
        ) from None
    if master is None or master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("forensics")
    if master:
        builder = builder.master(master)
    try:
        session = (
            builder.config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
    except Exception as exc:  # Spark's own start-up failures (no Java, a bad master URL) are the user's to fix
        raise InputError(
            f"Spark did not start: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
            hint="the Spark engine needs Java 17 (java on PATH or JAVA_HOME) and a reachable --master",
        ) from None
    session.sparkContext.setLogLevel("ERROR")  # the terminal shows forensics' own report, not Spark's log
    return session


# --- the load --------------------------------------------------------------------------------


class _QueueWriter:
    """Takes what forensics.ingest's reading loop hands its writer, for the task to yield."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=4)  # bounded: memory stays flat

    def put(self, kind: str, payload: Any) -> None:
        self.items.put((kind, payload))


def _batch(frame: pl.DataFrame, kind: str, schema: pa.Schema) -> pa.RecordBatch:
    n = frame.height
    columns = []
    for field in schema:
        if field.name == "record_kind":
            columns.append(pa.array([kind] * n, pa.string()))
        elif field.name in frame.columns:
            columns.append(frame.get_column(field.name).to_arrow().cast(field.type))
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _file_batch(result: Any, schema: pa.Schema) -> pa.RecordBatch:
    accounting = {
        "source_id": result.source_id, "lines_read": result.lines_read, "lines_parsed": result.lines_parsed,
        "lines_rejected": result.lines_rejected, "requests": result.requests, "skipped": dict(result.skipped),
        "first_ts": result.first_ts.isoformat() if result.first_ts else None,
        "last_ts": result.last_ts.isoformat() if result.last_ts else None,
        "truncated": result.truncated, "note": result.note, "last_line_complete": result.last_line_complete,
        "sha256": result.sha256, "size": result.size,
    }
    frame = pl.DataFrame({"source_id": [result.source_id], "file_result": [json.dumps(accounting)]},
                         schema={"source_id": pl.Int32, "file_result": pl.String})
    return _batch(frame, "file", schema)


def read_file_records(result: Any) -> Iterator[pa.RecordBatch]:
    """One file's requests, rejects and accounting as Arrow batches, read by forensics.ingest's own
    reading loop (in a thread, through a bounded queue, so a large file never sits in memory)."""
    from forensics.ingest import _read_into

    schema = _arrow_schema()
    writer = _QueueWriter()
    failure: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            _read_into(writer, result, ReadState(), stop, None)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the task, which raises it
            failure.append(exc)
        finally:
            writer.put("end", None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = writer.items.get()
            if kind == "end":
                break
            if kind == "rows":
                _sid, table, frame = payload
                yield _batch(frame, "request" if table == "requests" else "reject", schema)
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]
    yield _file_batch(result, schema)


def _read_task(results: dict[int, Any]) -> Any:
    """The load of files on paths every executor sees: one task per file, read where it is."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for sid in batch.column("source_id").to_pylist():
                yield from _records_or_error(results[sid])
    return task


def _read_uri_task(results: dict[str, Any]) -> Any:
    """The load of files named by URIs: Spark's binaryFile hands each file's bytes to the task,
    which reads a local copy of them (forensics.engine.spark_inputs.local_copy) with the same code
    as a local file; the case records the URI, and the size and SHA-256 of the bytes read."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for uri, content in rows_of(batch):
                result = copy.copy(results[uri])
                with local_copy(content) as local:
                    # The copy is the file as read: its time is the copy's, so a change while
                    # reading is told by the SHA-256 alone.
                    result.planned = dataclasses.replace(result.planned, path=local,
                                                         mtime_ns=local.stat().st_mtime_ns)
                    yield from _records_or_error(result)
    return task


def _records_or_error(result: Any) -> Iterator[pa.RecordBatch]:
    """read_file_records, with an error the investigator can act on (a file of another format
    than the case file names) handed to the driver as the file's record instead of failing the
    job, so the driver raises it naming the file."""
    try:
        yield from read_file_records(result)
    except ForensicsError as exc:
        frame = pl.DataFrame(
            {"source_id": [result.source_id],
             "file_result": [json.dumps({"source_id": result.source_id, "error": error_json(exc)})]},
            schema={"source_id": pl.Int32, "file_result": pl.String},
        )
        yield _batch(frame, "file", _arrow_schema())


def _hash_task(paths: dict[int, str]) -> Any:
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from forensics.ingest import sha256_prefix

        for batch in batches:
            ids = batch.column("index").to_pylist()
            yield pa.RecordBatch.from_pydict(
                {"index": ids, "sha256": [sha256_prefix(Path(paths[i])) for i in ids]},
                schema=pa.schema([("index", pa.int32()), ("sha256", pa.string())]),
            )
    return task


def _one_task_each(spark: SparkSession, column: str, ids: list[int]) -> Any:
    """A DataFrame of ids, one partition (so one task) per id."""
    rdd = spark.sparkContext.parallelize([(i,) for i in ids], max(1, len(ids)))
    return spark.createDataFrame(rdd, f"`{column}` INT")


@dataclass
class SparkLoad:
    report: Any  # forensics.ingest.IngestReport
    engine: SparkEngine


def load(spark: SparkSession, case: Case, out_dir: Path, warehouse: str) -> SparkLoad:
    """Load the case's logs into Parquet tables under `warehouse`, reading in Spark tasks."""
    from forensics.ingest import (
        IngestReport,
        _custody_values,
        _source_values,
        plan_files,
        reconcile,
    )

    started = datetime.now(UTC)
    planned, warnings = plan_files(case, examine_sources(spark, case))
    for pf in planned:
        pf.max_line_bytes = case.max_line_bytes
    # Files on paths are hashed here, one task each; files named by URIs were hashed when examined.
    paths = {i: str(pf.path) for i, pf in enumerate(planned) if pf.uri is None}
    if paths:
        hashed = _one_task_each(spark, "index", list(paths)).mapInArrow(
            _hash_task(paths), "`index` INT, `sha256` STRING")
        # One short row per file, collected at once (an iterator would run a job per file).
        for index, sha in arrow_rows(hashed.toArrow()):
            planned[index].sha256 = sha
    plan = reconcile(planned, {}, prune=False, replace=False)
    results = {r.source_id: r for r in plan.load}
    engine = SparkEngine(spark, warehouse)
    staging = f"{engine.warehouse}/load"
    on_paths = sorted(sid for sid, r in results.items() if r.planned.uri is None)
    by_uri = {r.planned.uri: r for r in results.values() if r.planned.uri is not None}
    jobs = []
    if on_paths:
        jobs.append(_one_task_each(spark, "source_id", on_paths).mapInArrow(_read_task(results), load_schema()))
    if by_uri:
        wanted = [(spec.path, [u for u in by_uri if by_uri[u].planned.spec is spec]) for spec in case.sources]
        jobs.append(binary_files(spark, wanted).mapInArrow(_read_uri_task(by_uri), load_schema()))
    if jobs:
        records = jobs[0] if len(jobs) == 1 else jobs[0].unionByName(jobs[1])
        records.write.mode("overwrite").partitionBy("record_kind").parquet(staging)
    ingested_at = datetime.now(UTC)
    source_rows: list[dict[str, Any]] = [_custody_values(row, ingested_at) for row in plan.custody]
    skipped_rows: list[dict[str, Any]] = []
    accounts = [json.loads(text) for (text,) in _read_kind(engine, staging, "file", "`file_result` STRING")]
    accounts.sort(key=lambda acc: acc["source_id"])
    for acc in accounts:
        if "error" in acc:
            raise_error(acc["error"], results[acc["source_id"]].planned.display_path)
    missing = sorted(set(results) - {acc["source_id"] for acc in accounts})
    if missing:
        # Every file to load gives one accounting record; a file without one would vanish.
        raise InputError("Spark's load gave no record of this file",
                         hint="run the same command again", path=results[missing[0]].planned.display_path)
    for acc in accounts:
        r = results[acc["source_id"]]
        r.lines_read, r.lines_parsed, r.lines_rejected = acc["lines_read"], acc["lines_parsed"], acc["lines_rejected"]
        r.requests, r.skipped = acc["requests"], Counter(acc["skipped"])
        r.first_ts = datetime.fromisoformat(acc["first_ts"]) if acc["first_ts"] else None
        r.last_ts = datetime.fromisoformat(acc["last_ts"]) if acc["last_ts"] else None
        r.truncated, r.note, r.last_line_complete = acc["truncated"], acc["note"], acc["last_line_complete"]
        r.sha256, r.size = acc["sha256"], acc["size"]
        source_rows.append(_source_values(r, ingested_at))
        skipped_rows.extend({"source_id": r.source_id, "kind": k, "lines": n} for k, n in sorted(r.skipped.items()))
    engine.write_arrow(SOURCES, _arrow(SOURCES, source_rows))
    engine.write_arrow(SKIPPED, _arrow(SKIPPED, skipped_rows))
    for table, kind in ((REQUESTS, "request"), (REJECTS, "reject")):
        location = f"{staging}/record_kind={kind}"
        if _exists(spark, location):
            engine.attach(table, location)
        else:
            engine.reset(table)
    report = IngestReport(
        out_dir / "case.duckdb", out_dir / "manifest.json", list(results.values()), [], warnings,
        custody=plan.custody, seconds=(datetime.now(UTC) - started).total_seconds(),
    )
    return SparkLoad(report, engine)


def _read_kind(engine: SparkEngine, staging: str, kind: str, ddl: str) -> list[tuple[Any, ...]]:
    location = f"{staging}/record_kind={kind}"
    if not _exists(engine.spark, location):
        return []
    # One short row per file (its accounting), collected at once like the file plan.
    return arrow_rows(engine.spark.read.schema(ddl).parquet(location).toArrow())


def _exists(spark: SparkSession, location: str) -> bool:
    """Whether a folder exists, asked of Spark's own filesystem layer (local, HDFS, S3)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)  # type: ignore[union-attr]
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    return bool(fs.exists(path))


def _arrow(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    return pl.DataFrame(rows, schema=table.polars_schema(), orient="row").to_arrow() if rows else (
        pl.DataFrame(schema=table.polars_schema()).to_arrow()
    )


# --- the whole run ---------------------------------------------------------------------------


def ingest_and_investigate(
    case: Case, out_dir: Path, master: str | None = None, warehouse: str | None = None,
    spark: SparkSession | None = None,
) -> tuple[Any, Investigation]:
    """Load and investigate on Spark; leave the local case database ready for the rest of `run`.

    Returns the ingest report and the investigation, as a local run has them after its own."""
    from forensics.coverage import store_gaps
    from forensics.ingest import _write_case_info, write_manifest

    session = spark or spark_session(master)
    location = warehouse or (out_dir / "warehouse").resolve().as_uri()
    loaded = load(session, case, out_dir, location)
    result = investigate(loaded.engine, case)
    database = out_dir / "case.duckdb"
    for stale in (database, out_dir / "case.duckdb.wal"):
        stale.unlink(missing_ok=True)  # a Spark run rebuilds the whole case
    con = connect(database)
    try:
        create_tables(con)
        con.execute("INSERT INTO case_info VALUES ('engine', 'spark')")
        for table in COLLECTED:
            cols = ", ".join(table.column_names)
            for data in loaded.engine.collect_batches(table):
                con.register("collected", data)
                con.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM collected")  # schema's names
                con.unregister("collected")
        _requests_view(con, loaded.engine)
        store_gaps(con, result.log_gaps)
        _write_case_info(con, case)
        write_manifest(con, out_dir, case)
    finally:
        con.close()
    return loaded.report, result


def _requests_view(con: Any, engine: SparkEngine) -> None:
    """`requests` in the local case database: a view over the Parquet files when they are on this
    machine (the report's timeline and `forensics sql` read it), else empty."""
    location = engine.locations.get(REQUESTS.name, "")
    if not location.startswith("file:"):
        return
    folder = Path(location.removeprefix("file://"))
    if not any(folder.glob("*.parquet")):
        return
    cols = ", ".join(REQUESTS.column_names)
    drop_requests(con)
    # The folder's absolute path is the one thing written into the SQL; it is ours, not input.
    glob = str(folder / "*.parquet").replace("'", "''")
    con.execute(f"CREATE VIEW requests AS SELECT {cols} FROM read_parquet('{glob}')")
