"""The stages on Spark SQL, over Parquet tables in a warehouse folder (local, HDFS or S3).

Each stage file is translated from the portable subset of DuckDB SQL to Spark SQL by
forensics.engine.portable, with its parameters bound as typed literals. A table is a folder of
Parquet files; `replace` writes the table's new content into a new version folder (the SELECT may
read the old one) and the table's name then points at it; `append` adds files to the current one.
Small tables computed in Python (candidate paths, the client map) are registered as temporary
views. The session's time zone is UTC, so timestamps read and written are UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from forensics.db import NamedQuery
from forensics.engine.duckdb import table_of
from forensics.engine.portable import to_spark
from forensics.errors import QueryError
from forensics.schema import Table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The schema module's SQL types as Spark SQL types.
SPARK_TYPES = {
    "INTEGER": "INT",
    "SMALLINT": "SMALLINT",
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "VARCHAR": "STRING",
    "JSON": "STRING",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMPTZ": "TIMESTAMP",
    "VARCHAR[]": "ARRAY<STRING>",
}


# Bytes of rows in one batch a Spark run brings home (forensics.engine.spark_run), and the size
# (as Spark estimates it: Parquet bytes on storage) of the partitions the driver fetches one at a time.
COLLECT_BATCH_BYTES = 16 << 20
HOME_PARTITION_BYTES = 32 << 20


def spark_ddl(table: Table) -> str:
    """The table's columns as a Spark schema string (`name TYPE, ...`)."""
    return ", ".join(f"`{c.name}` {SPARK_TYPES[c.sql_type]}" for c in table.columns)


def arrow_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """An Arrow table's rows as tuples (columns by position: names may repeat in a SELECT)."""
    columns = [col.to_pylist() for col in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


class SparkEngine:
    """Runs stages on a SparkSession over Parquet tables under `warehouse`."""

    name = "spark"

    def __init__(self, spark: SparkSession, warehouse: str) -> None:
        self.spark = spark
        self.warehouse = warehouse.rstrip("/")
        self.locations: dict[str, str] = {}
        self._versions: dict[str, int] = {}

    # --- tables --------------------------------------------------------------------------------

    def _new_location(self, table: Table) -> str:
        version = self._versions.get(table.name, 0) + 1
        self._versions[table.name] = version
        return f"{self.warehouse}/{table.name}/v{version}"

    def attach(self, table: Table, location: str) -> None:
        """Name Parquet files written elsewhere (the ingest's) as one of the schema's tables."""
        self.locations[table.name] = location
        self._read(table).createOrReplaceTempView(table.name)

    def _read(self, table: Table) -> DataFrame:
        return self.spark.read.schema(spark_ddl(table)).parquet(self.locations[table.name])

    def _write(self, table: Table, frame: DataFrame, mode: str) -> None:
        if mode == "append" and table.name in self.locations:
            frame.write.mode("append").parquet(self.locations[table.name])
        else:
            location = self._new_location(table)
            frame.write.mode("overwrite").parquet(location)
            self.locations[table.name] = location
        self._read(table).createOrReplaceTempView(table.name)

    def reset(self, table: Table) -> None:
        """An empty table: a view of no rows until a stage writes it (nothing written to storage)."""
        self.locations.pop(table.name, None)
        self.spark.createDataFrame([], spark_ddl(table)).createOrReplaceTempView(table.name)

    def write_arrow(self, table: Table, data: pa.Table) -> None:
        """A small table's whole content from rows built on the driver (sources, skipped_lines): held
        by the session, not written to storage."""
        self.locations.pop(table.name, None)
        frame = self.spark.createDataFrame(data.select(table.column_names)) if data.num_rows else (
            self.spark.createDataFrame([], spark_ddl(table)))
        self._typed(table, frame, frame.columns).createOrReplaceTempView(table.name)

    def collect(self, table: Table) -> pa.Table:
        """The table's rows on the driver, as Arrow with UTC timestamps."""
        return self.spark.table(table.name).toArrow()

    def collect_batches(self, table: Table, max_bytes: int = COLLECT_BATCH_BYTES) -> Iterator[pa.Table]:
        """The table's rows on the driver a bounded batch at a time (Arrow, UTC timestamps), so that
        a large table (`rejects` of a case with many bad lines) never sits whole in the driver's
        memory. The executors cut their rows into Arrow IPC messages of about `max_bytes`; the
        driver fetches one partition at a time, each about HOME_PARTITION_BYTES of Parquet."""
        frame = _for_the_trip_home(self.spark.table(table.name).select(*[f"`{c}`" for c in table.column_names]))
        for (message,) in frame.mapInArrow(_ipc_messages(max_bytes), "`message` BINARY").toLocalIterator():
            yield pa.ipc.open_stream(message).read_all()

    # --- stages --------------------------------------------------------------------------------

    def _typed(self, table: Table, frame: DataFrame, produced: list[str]) -> DataFrame:
        exprs = [
            f"CAST(`{c.name}` AS {SPARK_TYPES[c.sql_type]}) AS `{c.name}`" if c.name in produced
            else f"CAST(NULL AS {SPARK_TYPES[c.sql_type]}) AS `{c.name}`"
            for c in table.columns
        ]
        return frame.selectExpr(*exprs)

    def rows(self, query: NamedQuery, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return arrow_rows(self.spark.sql(to_spark(query.sql, params)).toArrow())

    def write(self, query: NamedQuery, params: dict[str, Any]) -> None:
        table = table_of(query)
        frame = self.spark.sql(to_spark(query.sql, params))
        produced = frame.columns
        unknown = [c for c in produced if c not in table.column_names]
        missing = [c for c in table.column_names if c not in produced]
        if unknown:
            raise QueryError(f"stage {query.name!r} gives columns {table.name} has not: {', '.join(unknown)}",
                             path=query.path)
        if query.mode == "replace" and missing:
            raise QueryError(f"stage {query.name!r} replaces {table.name} without {', '.join(missing)}",
                             path=query.path)
        self._write(table, self._typed(table, frame, produced), query.mode or "append")

    def register(self, name: str, table: pa.Table) -> None:
        frame = self.spark.createDataFrame(table) if table.num_rows else self.spark.createDataFrame(
            [], _arrow_ddl(table.schema)
        )
        frame.createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def sql_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return arrow_rows(self.spark.sql(to_spark(sql, params or {})).toArrow())


def _for_the_trip_home(frame: DataFrame) -> DataFrame:
    """The frame in partitions of about HOME_PARTITION_BYTES (merged, never shuffled): the driver
    fetches a partition per job, and a table written by 100,000 tasks has as many small files
    (as many jobs, one after the other, if each were fetched on its own)."""
    size = int(str(frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    wanted = max(1, -(-size // HOME_PARTITION_BYTES))
    return frame.coalesce(wanted) if frame.rdd.getNumPartitions() > wanted else frame


def _ipc_messages(max_bytes: int) -> Any:
    """A mapInArrow task that gives its rows as Arrow IPC messages of about `max_bytes` each."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = pa.schema([("message", pa.binary())])
        for batch in batches:
            if not batch.num_rows:
                continue
            rows = max(1, batch.num_rows * max_bytes // max(batch.nbytes, 1))
            for offset in range(0, batch.num_rows, rows):
                part = batch.slice(offset, rows)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, part.schema) as writer:
                    writer.write_batch(part)
                yield pa.RecordBatch.from_pydict({"message": [sink.getvalue().to_pybytes()]}, schema=schema)
    return task


def _arrow_ddl(schema: pa.Schema) -> str:
    """A Spark schema string for an Arrow schema of the types the Python steps build."""
    def spark_type(t: pa.DataType) -> str:
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return f"ARRAY<{spark_type(t.value_type)}>"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "STRING"
        if pa.types.is_boolean(t):
            return "BOOLEAN"
        if pa.types.is_integer(t):
            return "BIGINT"
        if pa.types.is_floating(t):
            return "DOUBLE"
        if pa.types.is_timestamp(t):
            return "TIMESTAMP"
        raise TypeError(f"no Spark type for {t}")
    return ", ".join(f"`{f.name}` {spark_type(f.type)}" for f in schema)
