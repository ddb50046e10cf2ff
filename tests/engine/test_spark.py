"""The same investigation on Spark: identical hits, downloaders, near misses and coverage on both
engines, for the demo case, a case linked by request id and every investigation scenario of
tests/test_investigate.py.

One SparkSession for the whole test session (local[2], one shuffle partition, no UI). Without
pyspark or Java the tests skip with the reason, except under CI, where they fail.
"""

from __future__ import annotations

import gzip
import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from forensics.casefile import load_case
from forensics.db import connect
from forensics.schema import COVERAGE, DOWNLOADERS, HITS, NEAR_MISSES, REJECTS, REQUESTS, SKIPPED, SOURCES, Table
from tests.test_investigate import CF_FIELDS

REPO = Path(__file__).resolve().parents[2]
COMPARED = (HITS, DOWNLOADERS, NEAR_MISSES, COVERAGE)
INPUTS = (SOURCES, REQUESTS, REJECTS, SKIPPED)


def _unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (make install-spark)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java for Spark (java on PATH or JAVA_HOME)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the Spark tests must run under CI: {reason}")
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]").appName("forensics-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _sorted_rows(table: pa.Table, columns: list[str]) -> list[tuple[Any, ...]]:
    data = [col.to_pylist() for col in table.select(columns).columns]
    rows = list(zip(*data, strict=True)) if data else []
    return sorted(rows, key=repr)


def local_tables(con: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: _sorted_rows(_arrow(con, t), t.column_names) for t in COMPARED}


def spark_tables(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: _sorted_rows(engine.collect(t), t.column_names) for t in COMPARED}


def _arrow(con: Any, table: Table) -> pa.Table:
    return con.execute(f"SELECT {', '.join(table.column_names)} FROM {table.name}").to_arrow_table()


def investigate_on_spark(spark: Any, con: Any, case: Any, warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The investigation on Spark over the very tables the local ingest wrote."""
    from forensics.engine.spark import SparkEngine
    from forensics.investigate import investigate

    engine = SparkEngine(spark, warehouse.as_uri())
    for table in INPUTS:
        engine.write_arrow(table, _arrow(con, table))
    investigate(engine, case)
    return spark_tables(engine)


def assert_same(local: dict[str, list[tuple[Any, ...]]], other: dict[str, list[tuple[Any, ...]]]) -> None:
    for name in local:
        assert other[name] == local[name], f"{name} differs between DuckDB and Spark"


# --- the investigation scenarios -----------------------------------------------------------------


def _scenarios() -> list[Any]:
    import tests.test_investigate as scenarios

    return [
        pytest.param(fn, id=name)
        for name, fn in inspect.getmembers(scenarios, inspect.isfunction)
        if name.startswith("test_") and list(inspect.signature(fn).parameters) == ["write_case", "tmp_path"]
    ]


@pytest.mark.parametrize("scenario", _scenarios())
def test_investigation_scenarios_give_the_same_answers_on_spark(
    scenario: Callable[..., None], spark: Any, write_case: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forensics.pipeline as pipeline

    real = pipeline.investigate
    compared: list[str] = []

    def both(con: Any, case: Any) -> Any:
        result = real(con, case)
        local = local_tables(con)
        assert_same(local, investigate_on_spark(spark, con, case, tmp_path / f"warehouse{len(compared)}"))
        compared.append(f"{sum(len(v) for v in local.values())} rows")
        return result

    monkeypatch.setattr(pipeline, "investigate", both)
    scenario(write_case, tmp_path)
    assert compared, "the scenario ran no investigation"


# --- whole runs: the demo case and a case linked by request id ----------------------------------


def _run_both(spark: Any, case_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    import forensics.engine.spark_run as spark_run
    from forensics.pipeline import run_case

    monkeypatch.setattr(spark_run, "spark_session", lambda master=None: spark)
    local, other = tmp_path / "duckdb-out", tmp_path / "spark-out"
    run_case(load_case(case_path), local)
    run_case(load_case(case_path), other, engine="spark")
    return local, other


def _database_tables(out: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = connect(out / "case.duckdb", read_only=True)
    try:
        return local_tables(con)
    finally:
        con.close()


def test_demo_case_gives_the_same_answers_on_spark(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = tmp_path / "case"
    shutil.copytree(REPO / "sample_logs", case)
    local, other = _run_both(spark, case / "case.toml", tmp_path, monkeypatch)
    assert (other / "downloaders.csv").read_text() == (local / "downloaders.csv").read_text()
    tables = _database_tables(local)
    assert len(tables["downloaders"]) >= 30
    assert_same(tables, _database_tables(other))
    # The load inside Spark accounts for every line as the local load does.
    manifest_local = json.loads((local / "manifest.json").read_text())
    manifest_spark = json.loads((other / "manifest.json").read_text())
    keys = ("path", "sha256", "lines_read", "lines_parsed", "lines_rejected", "lines_skipped", "requests", "status")
    assert [{k: s[k] for k in keys} for s in manifest_spark["sources"]] == [
        {k: s[k] for k in keys} for s in manifest_local["sources"]
    ]
    assert (other / "report.html").stat().st_size > 0


FILE = "/files/roster.xlsx"


def _edge(ts: str, viewer: str, request_id: str, result: str = "Miss", status: int = 200, sent: int = 1000) -> str:
    date, time = ts.split(" ")
    return "\t".join([
        date, time, "IAD89-C1", str(sent + 300), viewer, "GET", "d3abc.cloudfront.net", FILE, f"{status:03d}", "-",
        "Mozilla/5.0", "-", "-", result, request_id, "www.agency.gov", "https", "200", "2.500", "-", "TLSv1.3",
        "TLS_AES_128_GCM_SHA256", result, "HTTP/1.1", "-", "-", "50000", "0.010", result,
        "application/octet-stream", "1000", "-", "-",
    ])


def _origin(ts: str, viewer: str, request_id: str, status: int = 200, sent: int = 1000) -> str:
    return json.dumps({
        "time_iso8601": ts.replace(" ", "T") + "+00:00", "remote_addr": "130.176.10.20",
        "request": f"GET {FILE} HTTP/1.1", "status": status, "body_bytes_sent": sent,
        "http_x_forwarded_for": viewer, "http_x_amz_cf_id": request_id, "http_user_agent": "Amazon CloudFront",
    })


def test_case_linked_by_request_id_gives_the_same_answers_on_spark(
    spark: Any, write_case: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edges = [
        _edge("2022-11-28 20:00:05", "198.51.100.7", "idA=="),
        _edge("2022-11-28 20:10:00", "198.51.100.8", "idB=="),
        # a retry under the same id: two origin lines, two edge lines, paired one to one by time
        _edge("2022-11-28 20:20:01", "203.0.113.9", "idC=="),
        _edge("2022-11-28 20:20:09", "203.0.113.9", "idC==", status=0, sent=400),
        _edge("2022-11-28 20:30:00", "192.0.2.44", "idD==", result="Hit"),
    ]
    origins = [
        _origin("2022-11-28 20:00:04", "198.51.100.7", "idA=="),
        _origin("2022-11-28 20:09:59", "198.51.100.8", "idB=="),
        _origin("2022-11-28 20:20:00", "203.0.113.9", "idC=="),
        _origin("2022-11-28 20:20:08", "203.0.113.9", "idC==", sent=400),
        # an origin line whose id no edge line has: counted on its own
        _origin("2022-11-28 20:40:00", "192.0.2.99", "idZ=="),
    ]
    text = "#Version: 1.0\n#Fields: " + CF_FIELDS + "\n" + "\n".join(edges) + "\n"
    files = {"cdn/E1.2022-11-28-20.a.gz": gzip.compress(text.encode(), mtime=0),
             "origin/access.json": "\n".join(origins) + "\n"}
    case_path = write_case(
        [{"path": "cdn/*.gz", "format": "cloudfront", "role": "cdn"},
         {"path": "origin/access.json", "format": "nginx_json", "role": "origin"}],
        extra=(
            '[exposure]\nstart = "2022-11-28T19:00:00Z"\nend = "2022-11-28T23:00:00Z"\nmargin = "30m"\n\n'
            f'[[resources]]\npath = "{FILE}"\nsize = 1000\n\n'
            '[proxies]\ntrusted = ["130.176.0.0/16"]\n'
        ),
        files=files,
    )
    local, other = _run_both(spark, case_path, tmp_path, monkeypatch)
    tables = _database_tables(local)
    con = connect(local / "case.duckdb", read_only=True)
    try:
        linked = con.execute("SELECT count(*) FROM hits WHERE linked_by = 'request_id'").fetchone()
    finally:
        con.close()
    assert linked == (4,), "the case must exercise linking by request id"
    assert (other / "downloaders.csv").read_text() == (local / "downloaders.csv").read_text()
    assert_same(tables, _database_tables(other))


def test_engine_choice_is_checked_before_anything_runs(tmp_path: Path) -> None:
    from forensics.errors import InputError
    from forensics.pipeline import run_case

    case = load_case(REPO / "sample_logs" / "case.toml")
    with pytest.raises(InputError, match="no engine named 'hadoop'"):
        run_case(case, tmp_path / "out", engine="hadoop")
    with pytest.raises(InputError, match="for the Spark engine"):
        run_case(case, tmp_path / "out", master="local[2]")
    assert not (tmp_path / "out").exists()
