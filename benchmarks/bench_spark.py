"""`make bench-spark`: what the Spark engine costs per log line, for the plan of a large case.

Generates the seeded combined-format log of bench_ingest.py (BENCH_LINES lines, default 300,000)
split into BENCH_FILES gzip files (default 4), with a leaked file no line requests (the common
shape: hits are few beside the lines, so the cost per line is what is measured), and runs on
Spark local[2]:
  1. the load (one task per file, the project's readers in mapInArrow, Parquet out),
  2. the investigation's stages over the loaded tables,
and prints wall time, core-seconds (wall x the 2 local cores: an upper bound, as the cores also
wait) and core-microseconds per line for each, then the same for the DuckDB engine's ingest and
investigation on this machine. Not a test: numbers vary by machine and load.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_ingest import generate, split  # noqa: E402

WORK = Path(os.environ.get("BENCH_DIR", HERE.parent / "bench-out")) / "spark"
LINES = int(os.environ.get("BENCH_LINES", "300000"))
FILES = int(os.environ.get("BENCH_FILES", "4"))
CORES = 2

CASE = """[case]
name = "bench"
[[sources]]
path = "logs/*.log.gz"
format = "combined"
[exposure]
start = "2022-11-28T00:00:00-05:00"
end = "2022-11-28T23:59:59-05:00"
margin = "30m"
[[resources]]
path = "/sites/default/files/documents/2022/detention-roster.xlsx"
size = 1572864
"""


def main() -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from forensics.casefile import load_case
    from forensics.db import connect
    from forensics.engine.spark_run import load
    from forensics.ingest import ingest
    from forensics.investigate import investigate

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    whole = WORK / "whole.log.gz"
    generate(whole, LINES)
    split(whole, WORK / "logs", FILES)
    whole.unlink()
    (WORK / "case.toml").write_text(CASE)
    case = load_case(WORK / "case.toml")

    spark = (
        SparkSession.builder.master(f"local[{CORES}]").config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(CORES)).getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    loaded = load(spark, case, WORK / "spark-out", (WORK / "warehouse").as_uri())
    t1 = time.perf_counter()
    investigate(loaded.engine, case)
    t2 = time.perf_counter()
    spark.stop()
    t3 = time.perf_counter()
    report = ingest(case, WORK / "duckdb-out", workers=CORES)
    t4 = time.perf_counter()
    con = connect(report.database)
    investigate(con, case)
    con.close()
    t5 = time.perf_counter()

    def row(what: str, seconds: float) -> None:
        core_s = seconds * CORES
        print(f"{what:<34} {seconds:8.1f} s wall {core_s:8.1f} core-s {core_s / LINES * 1e6:8.1f} core-us/line")

    print(f"{LINES:,} lines in {FILES} files, local[{CORES}]")
    row("spark: load (mapInArrow, Parquet)", t1 - t0)
    row("spark: stages", t2 - t1)
    row("duckdb: ingest (2 workers)", t4 - t3)
    row("duckdb: stages", t5 - t4)


if __name__ == "__main__":
    main()
