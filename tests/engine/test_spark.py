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
from forensics.schema import (
    COVERAGE,
    DOWNLOADERS,
    HITS,
    NEAR_MISSES,
    REJECTS,
    REQUEST_TIMELINE,
    REQUESTS,
    SKIPPED,
    SOURCES,
    Table,
)
from tests.test_investigate import CF_FIELDS

REPO = Path(__file__).resolve().parents[2]
COMPARED = (HITS, DOWNLOADERS, NEAR_MISSES, COVERAGE, REQUEST_TIMELINE)
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
    return con.sql(f"SELECT {', '.join(table.column_names)} FROM {table.name}").to_arrow_table()


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


def _run_spark(spark: Any, case_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import forensics.engine.spark_run as spark_run
    from forensics.pipeline import run_case

    monkeypatch.setattr(spark_run, "spark_session", lambda master=None: spark)
    run_case(load_case(case_path), out, engine="spark")
    return out


def _run_both(spark: Any, case_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    from forensics.pipeline import run_case

    local = tmp_path / "duckdb-out"
    run_case(load_case(case_path), local)
    return local, _run_spark(spark, case_path, tmp_path / "spark-out", monkeypatch)


def _database_tables(out: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = connect(out / "case.duckdb", read_only=True)
    try:
        return local_tables(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo case (`case/`) and its run on the default engine (`duckdb-out/`), made
    once for the tests that compare a Spark run with it."""
    from forensics.pipeline import run_case

    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "sample_logs", root / "case")
    run_case(load_case(root / "case" / "case.toml"), root / "duckdb-out")
    return root


_ACCOUNTING = ("sha256", "size_bytes", "lines_read", "lines_parsed", "lines_rejected", "lines_skipped", "requests",
               "status")


def _same_run(local: Path, other: Path) -> None:
    """Two runs of the demo case gave the same answer: the same downloader list, tables and line
    accounting of every file."""
    assert (other / "downloaders.csv").read_text() == (local / "downloaders.csv").read_text()
    tables = _database_tables(local)
    assert len(tables["downloaders"]) >= 30
    assert_same(tables, _database_tables(other))
    manifest_local = json.loads((local / "manifest.json").read_text())
    manifest_spark = json.loads((other / "manifest.json").read_text())
    assert [{k: s[k] for k in _ACCOUNTING} for s in manifest_spark["sources"]] == [
        {k: s[k] for k in _ACCOUNTING} for s in manifest_local["sources"]
    ]


def test_demo_case_gives_the_same_answers_on_spark(spark: Any, demo: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    other = _run_spark(spark, demo / "case" / "case.toml", tmp_path / "spark-out", monkeypatch)
    _same_run(demo / "duckdb-out", other)
    paths = [s["path"] for s in json.loads((other / "manifest.json").read_text())["sources"]]
    assert paths == [s["path"] for s in json.loads((demo / "duckdb-out" / "manifest.json").read_text())["sources"]]
    assert (other / "report.html").stat().st_size > 0


def test_sources_named_by_uri_give_the_same_answers_as_local_paths(
    spark: Any, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """file:// URIs take the path s3:// takes: listed by Spark's Hadoop FileSystem, read by its
    binaryFile source. A glob and a folder (every file below it) give what the local paths give.
    The warehouse is treated as remote (no local view of `requests`, as with s3://): the report
    still shows the same timeline and referrers."""
    import forensics.engine.spark_run as spark_run
    from forensics.report import gather

    case_dir = demo / "case"
    text = (case_dir / "case.toml").read_text()
    text = text.replace('path = "cdn/*.gz"', f'path = "{(case_dir / "cdn").as_uri()}/*.gz"')
    text = text.replace('path = "origin/access.log*"', f'path = "{(case_dir / "origin").as_uri()}/"')
    assert text.count('path = "file:///') == 2
    uri_case = case_dir / "case-uri.toml"
    uri_case.write_text(text)
    monkeypatch.setattr(spark_run, "_requests_view", lambda con, engine: None)
    other = _run_spark(spark, uri_case, tmp_path / "uri-out", monkeypatch)
    local = demo / "duckdb-out"
    _same_run(local, other)
    # Custody names each file by the URI it was read from.
    local_paths = [s["path"] for s in json.loads((local / "manifest.json").read_text())["sources"]]
    uri_paths = [s["path"] for s in json.loads((other / "manifest.json").read_text())["sources"]]
    assert uri_paths == ["file:" + (case_dir / p).as_posix() for p in local_paths]
    # The report reads no `requests` row (there is none here) and shows the same numbers.
    con = connect(other / "case.duckdb", read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (0,)
    finally:
        con.close()
    report_local, report_remote = gather(local), gather(other)
    assert report_local["timeline"]["total_requests"] > 1000 and report_local["timeline"]["total_resource"] > 30
    for key in ("timeline", "referrers"):
        assert report_remote[key] == report_local[key], key


def _combined(n: int) -> str:
    return "".join(
        f'198.51.100.{i % 250} - - [28/Nov/2022:20:{i % 60:02d}:00 +0000] "GET /a HTTP/1.1" 200 {i} "-" "curl/8"\n'
        for i in range(n)
    )


def test_uri_files_that_cannot_be_read_stop_the_run_with_their_name(
    spark: Any, write_case: Any, tmp_path: Path
) -> None:
    from forensics.engine.spark_inputs import examine_sources, list_source
    from forensics.engine.spark_run import load
    from forensics.errors import InputError
    from forensics.ingest import plan_files

    logs = tmp_path / "logs"

    def planned(source: Path | str) -> Any:
        uri = source.as_uri() if isinstance(source, Path) else source
        case = load_case(write_case([{"path": uri, "format": "combined"}]))
        return plan_files(case, examine_sources(spark, case))

    # Names Spark takes for its own bookkeeping ("_" first) are read like any other ...
    write_case([], files={"logs/a.log": _combined(3), "logs/_b.log": _combined(2), "logs/.c.log": _combined(1)})
    plan, _warnings = planned(logs)
    assert [pf.display_path.rsplit("/", 1)[1] for pf in plan] == ["_b.log", "a.log"]  # a folder's ".": left out
    # ... and a file Spark's reader does not hand over (a copy in progress) stops the run rather
    # than go missing.
    (logs / "b.log._COPYING_").write_text(_combined(1))
    with pytest.raises(InputError, match="did not hand over") as caught:
        planned(logs)
    assert caught.value.path == "file:" + (logs / "b.log._COPYING_").as_posix()
    for name in ("_b.log", "b.log._COPYING_"):
        (logs / name).unlink()
    # A file of another format is named by its URI, not by the task's copy.
    (logs / "c.log").write_text("this is not an access log\n" * 3)
    with pytest.raises(InputError, match="reads as format 'combined'") as caught:
        planned(logs / "c.log")
    assert caught.value.path == "file:" + (logs / "c.log").as_posix()
    # ... also when the load finds it (a named format is checked at planning on a source's first
    # file only, the others as they are read).
    case = load_case(write_case([{"path": logs.as_uri(), "format": "combined"}]))
    with pytest.raises(InputError, match="reads as format 'combined'") as caught:
        load(spark, case, tmp_path / "out", (tmp_path / "warehouse").as_uri())
    assert caught.value.path == "file:" + (logs / "c.log").as_posix()
    # A file larger than binaryFile reads is refused before anything is read.
    spark.conf.set("spark.sql.sources.binaryFile.maxLength", "100")
    try:
        with pytest.raises(InputError, match="at most 100 bytes") as caught:
            list_source(spark, logs.as_uri())
    finally:
        spark.conf.unset("spark.sql.sources.binaryFile.maxLength")
    assert caught.value.path == "file:" + (logs / "a.log").as_posix()
    # No file system for the scheme (s3:// is EMRFS on EMR; s3a:// needs hadoop-aws): said, no traceback.
    with pytest.raises(InputError, match="No FileSystem for scheme"):
        list_source(spark, "s3://forensics-test-bucket/logs/*.gz")
    with pytest.raises(InputError, match="matches no file"):
        list_source(spark, (logs / "*.gz").as_uri().replace("%2A", "*"))


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


def test_uri_files_are_planned_as_the_same_files_on_paths(spark: Any, write_case: Any, tmp_path: Path) -> None:
    """Planning a URI source (its files examined in Spark tasks) gives what planning the same
    folder as a local path gives: detected formats, compression, sizes, hashes, empty files,
    duplicates and warnings."""
    from forensics.engine.spark_inputs import examine_sources
    from forensics.ingest import plan_files, reconcile

    edge = "#Version: 1.0\n#Fields: " + CF_FIELDS + "\n" + _edge("2022-11-28 20:00:05", "198.51.100.7", "idA==") + "\n"
    files = {
        "logs/a.log": _combined(5),
        "logs/b/edge.gz": gzip.compress(edge.encode(), mtime=0),
        "logs/b/copy.log": _combined(5),  # the same bytes as a.log: a duplicate
        "logs/empty.log": "",
        "logs/blank.log": "\n\n",
        "logs/nginx.json": _origin("2022-11-28 20:00:04", "198.51.100.7", "idA==") + "\n",
    }
    local_case = load_case(write_case([{"path": "logs", "format": "auto"}], files=files))
    uri_case = load_case(write_case([{"path": (tmp_path / "logs").as_uri(), "format": "auto"}]))

    def name(pf: Any) -> str:
        return str(pf.display_path).rsplit("logs/", 1)[1]

    def facts(case: Any, listed: Any) -> tuple[list[tuple[Any, ...]], list[str], list[tuple[str, Any]]]:
        planned, warnings = plan_files(case, listed)
        if listed is None:
            from forensics.ingest import sha256_prefix

            for pf in planned:
                pf.sha256 = sha256_prefix(pf.path)
        plan = reconcile(planned, {}, prune=False, replace=False)
        return (
            [(name(pf), pf.fmt.name, pf.detected, pf.compression, pf.size, pf.sha256, pf.empty) for pf in planned],
            [w.rsplit("logs/", 1)[1] for w in warnings],
            sorted((name(c.planned), c.status) for c in plan.custody),
        )

    local = facts(local_case, None)
    assert {f[1] for f in local[0]} >= {"combined", "cloudfront", "nginx_json"}
    assert facts(uri_case, examine_sources(spark, uri_case)) == local


def test_a_large_table_comes_home_in_bounded_batches(spark: Any, tmp_path: Path) -> None:
    """A Spark run brings `rejects` (as large as the logs are bad) into the local case database a
    bounded batch at a time, never whole."""
    from forensics.engine.spark import SparkEngine

    n = 3000
    rejects = pa.table({
        "source_id": pa.array([1 + i % 3 for i in range(n)], pa.int32()),
        "line_no": pa.array(range(1, n + 1), pa.int64()),
        "reason": ["unparseable"] * n,
        "line": [f"{i} " + "x" * 200 for i in range(n)],
    })
    engine = SparkEngine(spark, tmp_path.as_uri())
    engine.write_arrow(REJECTS, rejects)
    batches = list(engine.collect_batches(REJECTS, max_bytes=60_000))
    assert len(batches) >= n * 200 // 60_000
    assert all(b.nbytes <= 2 * 60_000 for b in batches)
    assert _sorted_rows(pa.concat_tables(batches), REJECTS.column_names) == _sorted_rows(rejects, REJECTS.column_names)


def test_a_spark_run_killed_during_the_load_then_run_again_gives_the_same_list(
    spark: Any, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL `forensics run --engine spark` while Spark writes the load, run the same command
    again: the downloader list is byte for byte a clean run's."""
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    command = [sys.executable, "-m", "forensics", "run", str(demo / "case" / "case.toml"), "--out", str(out),
               "--engine", "spark", "--master", "local[2]", "-q"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "warehouse" / "load").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before its load began"
        os.killpg(process.pid, signal.SIGKILL)  # the run and the JVM it started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "downloaders.csv").exists(), "killed after the load, not during it"
    _run_spark(spark, demo / "case" / "case.toml", out, monkeypatch)  # the same command again
    assert (out / "downloaders.csv").read_bytes() == (demo / "duckdb-out" / "downloaders.csv").read_bytes()


def test_engine_choice_is_checked_before_anything_runs(tmp_path: Path) -> None:
    from forensics.errors import InputError
    from forensics.pipeline import run_case

    case = load_case(REPO / "sample_logs" / "case.toml")
    with pytest.raises(InputError, match="no engine named 'hadoop'"):
        run_case(case, tmp_path / "out", engine="hadoop")
    with pytest.raises(InputError, match="for the Spark engine"):
        run_case(case, tmp_path / "out", master="local[2]")
    assert not (tmp_path / "out").exists()
