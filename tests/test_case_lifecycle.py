"""A case stays right through interruptions, reruns and growing logs.

The kill tests run the real command in a subprocess and stop it at chosen points (SIGKILL inside a
file's transaction, between commits, inside a group commit, during the investigation; SIGINT while
reading; an exception in a reader). The faults are injected from the outside, by a wrapper that
patches the library before running the CLI, so the product has no test hooks. After each, the
same command is run again and its tables and outputs are compared with a clean run's, row for row
and byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from forensics.casefile import load_case
from forensics.errors import CaseStateError, OutputError
from forensics.ingest import ingest

REPO = Path(__file__).resolve().parent.parent
LINE = '198.51.100.{a} - - [28/Nov/2022:14:{m:02d}:{s:02d} -0500] "GET /p{n} HTTP/1.1" 200 {n} "-" "ua {n}"\n'


def lines(count: int, start: int = 1) -> str:
    return "".join(LINE.format(a=i % 250, m=(i // 60) % 60, s=i % 60, n=i) for i in range(start, start + count))


def snapshot(out: Path) -> dict[str, list[tuple]]:
    """Every ingest table, in a stable order, with the columns that describe the evidence (not
    when it was loaded)."""
    con = duckdb.connect(str(out / "case.duckdb"), read_only=True)
    con.execute("SET TimeZone='UTC'")
    try:
        return {
            "sources": con.execute(
                "SELECT * EXCLUDE (ingested_at) FROM sources ORDER BY source_id"
            ).fetchall(),
            "requests": con.execute("SELECT * FROM requests ORDER BY source_id, line_no, ts, path").fetchall(),
            "rejects": con.execute("SELECT * FROM rejects ORDER BY source_id, line_no").fetchall(),
            "skipped_lines": con.execute("SELECT * FROM skipped_lines ORDER BY source_id, kind").fetchall(),
        }
    finally:
        con.close()


def by_path(snap: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The same snapshot with source ids replaced by paths (ids may differ when the case file did)."""
    con = duckdb.connect()
    paths = {r[0]: r[1] for r in snap["sources"]}
    out = {"sources": sorted((r[1], *r[2:]) for r in snap["sources"])}
    for table in ("requests", "rejects", "skipped_lines"):
        out[table] = sorted(((paths[r[0]], *r[1:]) for r in snap[table]), key=repr)
    con.close()
    return out


# ---------------------------------------------------------------------------------------------
# Faults injected from outside: a wrapper that patches the library, then runs the CLI.

WRAPPER = textwrap.dedent(
    """
    import os, signal, sys, time
    import forensics.ingest as ingest

    fault = os.environ.get("FAULT", "")
    ingest.FLUSH_ROWS = int(os.environ.get("FLUSH_ROWS", ingest.FLUSH_ROWS))
    ingest.GROUP_FILES = int(os.environ.get("GROUP_FILES", ingest.GROUP_FILES))
    import forensics.inputs as inputs
    inputs.CHUNK_BYTES = int(os.environ.get("CHUNK_BYTES", inputs.CHUNK_BYTES))
    calls = {"n": 0}

    def nth(n):
        calls["n"] += 1
        return calls["n"] == n

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if fault.startswith("kill_in_insert:"):
        n = int(fault.split(":")[1]); orig = ingest._Writer._insert
        def patched(self, cur, frames, *rest, **kw):
            held = orig(self, cur, frames, *rest, **kw)
            if nth(n):
                die()
            return held
        ingest._Writer._insert = patched
    elif fault.startswith("kill_after_commit:"):
        n = int(fault.split(":")[1]); orig_done = ingest._Writer._done
        def patched_done(self, result):
            orig_done(self, result)
            if nth(n):
                die()
        ingest._Writer._done = patched_done
    elif fault.startswith("kill_in_group:"):
        # Killed after the nth group's sources rows are written, before its COMMIT.
        n = int(fault.split(":")[1]); orig_rows = ingest._write_source_rows
        def patched_rows(cur, results, at):
            orig_rows(cur, results, at)
            if nth(n):
                die()
        ingest._write_source_rows = patched_rows
    elif fault.startswith("kill_in_stage:"):
        import forensics.investigate as inv
        n = int(fault.split(":")[1]); orig_stage = inv.run_stage
        def patched_stage(con, name, **params):
            if nth(n):
                die()
            return orig_stage(con, name, **params)
        inv.run_stage = patched_stage
    elif fault.startswith("raise_in_reader:"):
        target = fault.split(":")[1]; orig_results = ingest._results
        def patched_results(reader, pf, state, *rest):
            for i, chunk in enumerate(orig_results(reader, pf, state, *rest)):
                if pf.display_path == target and i == 1:
                    raise RuntimeError("injected reader failure")
                yield chunk
        ingest._results = patched_results
    elif fault == "slow_reader":
        orig_results = ingest._results
        def slow_results(reader, pf, state, *rest):
            for chunk in orig_results(reader, pf, state, *rest):
                open(os.environ["MARKER"], "a").close()
                time.sleep(0.2)
                yield chunk
        ingest._results = slow_results

    from forensics.cli import main
    sys.argv = ["forensics", *sys.argv[1:]]
    main()
    """
)


def forensics(args: list[str], fault: str = "", env: dict[str, str] | None = None, **kw):
    full_env = {**os.environ, "FAULT": fault, **(env or {})}
    full_env.pop("FORENSICS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=full_env, timeout=300, check=False, **kw
    )


@pytest.fixture
def big_case(tmp_path: Path) -> Path:
    """Four plain and gzip files, one with a bad line and a blank line; small reads so a file
    spans many chunks and transactions."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(lines(3000))
    (logs / "b.log.gz").write_bytes(gzip.compress(lines(2500, 5000).encode()))
    (logs / "c.log").write_text(lines(100, 9000) + "not a log line\n\n" + lines(50, 9200))
    (logs / "d.log").write_text(lines(1200, 12000))
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n[[sources]]\npath = "logs"\nformat = "combined"\n')
    return case


def clean_snapshot(case: Path, tmp_path: Path) -> dict[str, list[tuple]]:
    out = tmp_path / "clean"
    rep = ingest(load_case(case), out)
    assert len(rep.loaded) == 4
    return snapshot(out)


# Small reads and small flushes, so that each file spans many chunks and inserts.
SMALL = {"FLUSH_ROWS": "400", "CHUNK_BYTES": "16384"}


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("kill_in_insert:1", id="sigkill-inside-first-file-transaction"),
        pytest.param("kill_in_insert:7", id="sigkill-inside-a-later-transaction"),
        pytest.param("kill_after_commit:2", id="sigkill-between-file-commits"),
    ],
)
def test_killed_ingest_resumes_to_the_clean_answer(tmp_path, big_case, fault):
    expected = clean_snapshot(big_case, tmp_path)
    out = tmp_path / "out"
    args = ["ingest", str(big_case), "--out", str(out), "--quiet", "--workers", "1"]
    first = forensics(args, fault, env=SMALL)
    assert first.returncode == -signal.SIGKILL, first.stderr
    # Whatever was committed is whole: no row without its source, no source without its rows.
    con = duckdb.connect(str(out / "case.duckdb"))
    orphans = con.execute(
        "SELECT count(*) FROM requests WHERE source_id NOT IN (SELECT source_id FROM sources)"
    ).fetchone()[0]
    partial = con.execute(
        "SELECT count(*) FROM sources s WHERE status = 'loaded' AND requests <> "
        "(SELECT count(*) FROM requests r WHERE r.source_id = s.source_id)"
    ).fetchone()[0]
    loaded_before = con.execute("SELECT count(*) FROM sources").fetchone()[0]
    con.close()
    assert (orphans, partial) == (0, 0)
    assert loaded_before < 4
    again = forensics(args)
    assert again.returncode == 0, again.stderr
    assert f"Loaded {4 - loaded_before} file" in again.stdout
    assert snapshot(out) == expected


def test_sigkill_inside_a_group_commit_of_small_files(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(30):
        (logs / f"part-{i:03d}.log").write_text(lines(20, 1 + 100 * i))
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n[[sources]]\npath = "logs"\nformat = "combined"\n')
    ingest(load_case(case), tmp_path / "clean")
    expected = snapshot(tmp_path / "clean")
    out = tmp_path / "out"
    args = ["ingest", str(case), "--out", str(out), "--quiet"]
    first = forensics(args, "kill_in_group:2", env={"GROUP_FILES": "10"})
    assert first.returncode == -signal.SIGKILL
    con = duckdb.connect(str(out / "case.duckdb"))
    committed = con.execute("SELECT count(*) FROM sources").fetchone()[0]
    assert con.execute("SELECT count(DISTINCT source_id) FROM requests").fetchone()[0] == committed
    con.close()
    assert committed == 10  # the first group of ten, whole; none of the second
    assert forensics(args).returncode == 0
    assert snapshot(out) == expected


def test_an_exception_in_a_reader_loads_nothing_of_that_file(tmp_path, big_case):
    expected = clean_snapshot(big_case, tmp_path)
    out = tmp_path / "out"
    args = ["ingest", str(big_case), "--out", str(out), "--quiet", "--workers", "1"]
    first = forensics(args, "raise_in_reader:logs/b.log.gz", env=SMALL)
    assert first.returncode == 70 and "injected reader failure" in first.stderr
    assert "Traceback" not in first.stderr
    con = duckdb.connect(str(out / "case.duckdb"))
    assert con.execute("SELECT count(*) FROM sources WHERE path = 'logs/b.log.gz'").fetchone()[0] == 0
    assert con.execute(
        "SELECT count(*) FROM requests WHERE source_id NOT IN (SELECT source_id FROM sources)"
    ).fetchone()[0] == 0
    con.close()
    assert forensics(args).returncode == 0
    assert snapshot(out) == expected


def test_ctrl_c_stops_at_once_rolls_back_and_the_rerun_finishes(tmp_path, big_case):
    expected = clean_snapshot(big_case, tmp_path)
    out = tmp_path / "out"
    marker = tmp_path / "reading"
    args = ["ingest", str(big_case), "--out", str(out), "--quiet", "--workers", "1"]
    env = {**os.environ, "FAULT": "slow_reader", "MARKER": str(marker), **SMALL}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Interrupted:" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr
    assert "not loaded" in stderr
    again = forensics(args)
    assert again.returncode == 0, again.stderr
    assert snapshot(out) == expected


def test_sigterm_is_handled_like_ctrl_c(tmp_path, big_case):
    out = tmp_path / "out"
    marker = tmp_path / "reading"
    args = ["ingest", str(big_case), "--out", str(out), "--quiet", "--workers", "1"]
    env = {**os.environ, "FAULT": "slow_reader", "MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Interrupted:" in stderr


@pytest.fixture
def demo_case(tmp_path: Path) -> Path:
    dest = tmp_path / "demo"
    shutil.copytree(REPO / "sample_logs", dest, ignore=shutil.ignore_patterns("generate.py", "*.md"))
    return dest / "case.toml"


OUTPUTS = ("downloaders.csv", "downloaders.json", "downloaders.parquet")


def test_run_killed_during_the_investigation_reruns_to_identical_outputs(tmp_path, demo_case):
    clean = forensics(["run", str(demo_case), "--out", str(tmp_path / "clean"), "--quiet"])
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "out"
    args = ["run", str(demo_case), "--out", str(out), "--quiet"]
    # Several points: inside the load (first insert), the first stage, a stage in the middle.
    for fault in ("kill_in_insert:1", "kill_in_stage:1", "kill_in_stage:6"):
        killed = forensics(args, fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr)
    again = forensics(args)
    assert again.returncode == 0, again.stderr
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert snapshot(out) == snapshot(tmp_path / "clean")
    headline = [ln for ln in again.stdout.splitlines() if ln.startswith("Who obtained")]
    assert headline == [ln for ln in clean.stdout.splitlines() if ln.startswith("Who obtained")]


# ---------------------------------------------------------------------------------------------
# The case file and the database agree, or the run says why not.


def write_case(tmp_path: Path, sources: str) -> Path:
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n' + textwrap.dedent(sources))
    return case


def test_a_log_that_grew_loads_only_its_new_lines(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(lines(50))
    case = write_case(tmp_path, '[[sources]]\npath = "access.log"\nformat = "combined"\n')
    out = tmp_path / "out"
    ingest(load_case(case), out)
    with log.open("a") as fh:
        fh.write(lines(20, 51) + "garbage\n")
    rep = ingest(load_case(case), out)
    [r] = rep.loaded
    assert (r.action, r.start_line, r.lines_read, r.lines_parsed, r.lines_rejected) == ("append", 51, 71, 20, 1)
    grown = snapshot(out)
    ingest(load_case(case), tmp_path / "clean")
    clean = snapshot(tmp_path / "clean")
    for table in ("requests", "rejects", "skipped_lines"):
        assert grown[table] == clean[table]
    con = duckdb.connect(str(out / "case.duckdb"), read_only=True)
    row = con.execute("SELECT lines_read, lines_parsed, lines_rejected, size_bytes, note FROM sources").fetchone()
    assert row[:4] == (71, 70, 1, log.stat().st_size)
    assert "lines 51 to 71 added when the file grew" in row[4]
    assert con.execute("SELECT min(line_no), max(line_no), count(*) FROM requests").fetchone() == (1, 70, 70)


def test_a_w3c_log_that_grew_keeps_reading_with_its_fields_header(tmp_path):
    header = "#Version: 1.0\n#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes\n"
    row = "2022-11-28 19:{m:02d}:00 198.51.100.{n} GET /f{n} 200 {n}\n"
    log = tmp_path / "u_ex221128.log"
    log.write_text(header + "".join(row.format(m=i, n=i) for i in range(10)))
    case = write_case(tmp_path, '[[sources]]\npath = "u_ex221128.log"\nformat = "iis"\n')
    ingest(load_case(case), tmp_path / "out")
    with log.open("a") as fh:
        fh.write("".join(row.format(m=i, n=i) for i in range(10, 15)))
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded[0].action == "append" and rep.loaded[0].lines_parsed == 5
    ingest(load_case(case), tmp_path / "clean")
    assert by_path(snapshot(tmp_path / "out"))["requests"] == by_path(snapshot(tmp_path / "clean"))["requests"]


def test_a_gzip_log_that_grew_by_a_member_loads_only_the_new_member(tmp_path):
    log = tmp_path / "access.log.gz"
    log.write_bytes(gzip.compress(lines(30).encode()))
    case = write_case(tmp_path, '[[sources]]\npath = "access.log.gz"\nformat = "combined"\n')
    ingest(load_case(case), tmp_path / "out")
    with log.open("ab") as fh:
        fh.write(gzip.compress(lines(10, 31).encode()))
    rep = ingest(load_case(case), tmp_path / "out")
    assert (rep.loaded[0].action, rep.loaded[0].lines_parsed) == ("append", 10)
    ingest(load_case(case), tmp_path / "clean")
    assert snapshot(tmp_path / "out")["requests"] == snapshot(tmp_path / "clean")["requests"]


def test_a_grown_log_whose_last_line_was_cut_is_reloaded_whole(tmp_path):
    log = tmp_path / "access.log"
    text = lines(10)
    log.write_text(text[:-30])  # the last line is cut mid-way, as a log being written is
    case = write_case(tmp_path, '[[sources]]\npath = "access.log"\nformat = "combined"\n')
    ingest(load_case(case), tmp_path / "out")
    log.write_text(text + lines(5, 11))
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded[0].action == "reload"
    ingest(load_case(case), tmp_path / "clean")
    assert snapshot(tmp_path / "out")["requests"] == snapshot(tmp_path / "clean")["requests"]
    assert len(snapshot(tmp_path / "out")["requests"]) == 15


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param('format = "combined"\nrole = "origin"', 'format = "combined"\nrole = "cdn"', id="role"),
        pytest.param('format = "combined"', 'format = "nginx_combined"', id="format"),
        pytest.param(
            "format = 'apache:%h %{%Y-%m-%d %H:%M:%S}t \"%r\" %>s %b'\ntimezone = \"UTC\"",
            "format = 'apache:%h %{%Y-%m-%d %H:%M:%S}t \"%r\" %>s %b'\ntimezone = \"America/New_York\"",
            id="timezone",
        ),
    ],
)
def test_a_changed_setting_reloads_the_file(tmp_path, before, after):
    body = (
        lines(5) if "apache" not in before
        else "".join(f'198.51.100.{i} 2022-11-28 14:00:0{i} "GET /x HTTP/1.1" 200 5\n' for i in range(5))
    )
    (tmp_path / "a.log").write_text(body)
    case = write_case(tmp_path, f'[[sources]]\npath = "a.log"\n{before}\n')
    ingest(load_case(case), tmp_path / "out")
    case = write_case(tmp_path, f'[[sources]]\npath = "a.log"\n{after}\n')
    rep = ingest(load_case(case), tmp_path / "out")
    [r] = rep.loaded
    assert r.action == "reload" and "settings changed" in r.reason
    ingest(load_case(case), tmp_path / "clean")
    got, want = snapshot(tmp_path / "out"), snapshot(tmp_path / "clean")
    assert got["requests"] == want["requests"]
    assert [s[1:] for s in got["sources"]] != []
    con = duckdb.connect(str(tmp_path / "out" / "case.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM sources").fetchone()[0] == 1
    assert con.execute("SELECT settings FROM sources").fetchone()[0] == duckdb.connect(
        str(tmp_path / "clean" / "case.duckdb"), read_only=True
    ).execute("SELECT settings FROM sources").fetchone()[0]


def test_a_removed_source_stops_the_run_until_pruned(tmp_path):
    (tmp_path / "a.log").write_text(lines(5))
    (tmp_path / "b.log").write_text(lines(5, 100))
    both = write_case(tmp_path, '[[sources]]\npath = "a.log"\n\n[[sources]]\npath = "b.log"\n')
    ingest(load_case(both), tmp_path / "out")
    only_a = write_case(tmp_path, '[[sources]]\npath = "a.log"\n')
    with pytest.raises(CaseStateError) as exc:
        ingest(load_case(only_a), tmp_path / "out")
    assert "b.log" in str(exc.value) and "--prune" in str(exc.value)
    rep = ingest(load_case(only_a), tmp_path / "out", prune=True)
    assert rep.pruned == ["b.log"]
    ingest(load_case(only_a), tmp_path / "clean")
    assert by_path(snapshot(tmp_path / "out")) == by_path(snapshot(tmp_path / "clean"))


def test_a_replaced_file_stops_the_run_until_replace_is_given(tmp_path):
    log = tmp_path / "a.log"
    log.write_text(lines(5))
    case = write_case(tmp_path, '[[sources]]\npath = "a.log"\n')
    ingest(load_case(case), tmp_path / "out")
    log.write_text(lines(7, 300))
    with pytest.raises(CaseStateError) as exc:
        ingest(load_case(case), tmp_path / "out")
    assert "a.log" in str(exc.value) and "--replace" in str(exc.value)
    rep = ingest(load_case(case), tmp_path / "out", replace=True)
    assert rep.loaded[0].action == "replace"
    ingest(load_case(case), tmp_path / "clean")
    assert snapshot(tmp_path / "out")["requests"] == snapshot(tmp_path / "clean")["requests"]


def test_a_renamed_file_is_recorded_not_reloaded(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(lines(5))
    case = write_case(tmp_path, '[[sources]]\npath = "logs"\nformat = "combined"\n')
    ingest(load_case(case), tmp_path / "out")
    (tmp_path / "logs" / "a.log").rename(tmp_path / "logs" / "a.log.1")
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.renamed == [("logs/a.log", "logs/a.log.1")] and rep.loaded == []
    con = duckdb.connect(str(tmp_path / "out" / "case.duckdb"), read_only=True)
    assert con.execute("SELECT path, requests FROM sources").fetchall() == [("logs/a.log.1", 5)]


def test_every_file_seen_is_in_sources_and_the_manifest(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(lines(5))
    (tmp_path / "logs" / "copy-of-a.log").write_text(lines(5))
    (tmp_path / "logs" / "empty.log").write_text("")
    case = write_case(tmp_path, '[[sources]]\npath = "logs"\nformat = "combined"\n')
    rep = ingest(load_case(case), tmp_path / "out")
    assert [(c.planned.display_path, c.status) for c in rep.custody] == [
        ("logs/copy-of-a.log", "duplicate"), ("logs/empty.log", "empty")
    ]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rows = {s["path"]: s for s in manifest["sources"]}
    assert set(rows) == {"logs/a.log", "logs/copy-of-a.log", "logs/empty.log"}
    assert rows["logs/copy-of-a.log"]["status"] == "duplicate"
    assert rows["logs/copy-of-a.log"]["duplicate_of"] == rows["logs/a.log"]["source_id"]
    assert rows["logs/copy-of-a.log"]["sha256"] == rows["logs/a.log"]["sha256"]
    assert rows["logs/empty.log"]["status"] == "empty"
    assert manifest["totals"]["files"] == 3 and manifest["totals"]["files_duplicate"] == 1
    # Nothing absolute of the investigator's machine in the paths of the case.
    assert all(not s["path"].startswith("/") for s in manifest["sources"])
    assert manifest["case"]["file"] == "case.toml"
    # A rerun changes nothing.
    before = snapshot(tmp_path / "out")
    rep = ingest(load_case(case), tmp_path / "out")
    assert not rep.changed and snapshot(tmp_path / "out") == before


def test_a_file_that_changes_while_it_is_read_says_so(tmp_path):
    log = tmp_path / "a.log"
    log.write_text(lines(50))
    case = write_case(tmp_path, '[[sources]]\npath = "a.log"\nformat = "combined"\n')
    wrapper = textwrap.dedent(
        """
        import sys
        import forensics.ingest as ingest
        orig = ingest.read_chunks
        added = [sys.argv[-1]]
        def appending(path, *args, **kw):
            for chunk in orig(path, *args, **kw):
                if added:  # once, while the file is open for reading
                    with open(path, "a") as fh:
                        fh.write(added.pop())
                yield chunk
        ingest.read_chunks = appending
        from forensics.cli import main
        sys.argv = ["forensics", *sys.argv[1:-1]]
        main()
        """
    )
    extra = lines(1, 900)
    res = subprocess.run(
        [sys.executable, "-c", wrapper, "ingest", str(case), "--out", str(tmp_path / "out"), "-q", extra],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "changed while it was read" in res.stderr
    con = duckdb.connect(str(tmp_path / "out" / "case.duckdb"), read_only=True)
    assert "changed while it was read" in con.execute("SELECT note FROM sources").fetchone()[0]
    con.close()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "changed while it was read" in manifest["sources"][0]["note"]
    # The hash and size describe exactly the bytes read, here the file with its added line, so
    # the next run finds it unchanged and every line is in the case once.
    assert manifest["sources"][0]["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    assert manifest["sources"][0]["size_bytes"] == log.stat().st_size
    assert manifest["sources"][0]["lines_read"] == 51
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded == [] and not rep.changed


# ---------------------------------------------------------------------------------------------
# The output folder.


def test_output_folder_problems_are_clear_errors(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(lines(3))
    case = write_case(tmp_path, '[[sources]]\npath = "logs"\n')
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="existing file"):
        ingest(load_case(case), tmp_path / "file")
    with pytest.raises(OutputError, match="among the logs"):
        ingest(load_case(case), tmp_path / "logs" / "out")
    glob_case = write_case(tmp_path, '[[sources]]\npath = "**/*.json"\nformat = "cloudflare_logpush"\n')
    with pytest.raises(OutputError, match="among the logs"):
        ingest(load_case(glob_case), tmp_path / "case-out")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="cannot be written"):
            ingest(load_case(case), ro / "out")


def test_a_case_folder_of_another_schema_version_is_refused(tmp_path):
    (tmp_path / "a.log").write_text(lines(3))
    case = write_case(tmp_path, '[[sources]]\npath = "a.log"\n')
    ingest(load_case(case), tmp_path / "out")
    con = duckdb.connect(str(tmp_path / "out" / "case.duckdb"))
    con.execute("UPDATE case_info SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(CaseStateError, match="another version"):
        ingest(load_case(case), tmp_path / "out")


def test_cli_names_removed_sources_and_exits_1(tmp_path):
    (tmp_path / "a.log").write_text(lines(3))
    (tmp_path / "b.log").write_text(lines(3, 10))
    case = write_case(tmp_path, '[[sources]]\npath = "a.log"\n\n[[sources]]\npath = "b.log"\n')
    out = tmp_path / "out"
    assert forensics(["ingest", str(case), "--out", str(out), "-q"]).returncode == 0
    case = write_case(tmp_path, '[[sources]]\npath = "a.log"\n')
    res = forensics(["ingest", str(case), "--out", str(out), "-q"])
    assert res.returncode == 1 and "b.log" in res.stderr and "--prune" in res.stderr
    assert "Traceback" not in res.stderr
    res = forensics(["ingest", str(case), "--out", str(out), "-q", "--prune"])
    assert res.returncode == 0 and "Pruned:" in res.stderr


def test_no_path_of_the_investigators_machine_in_the_case(tmp_path, demo_case):
    """The case folder can be moved and shared: the database, the report and the manifest name
    files relative to the case file (the manifest records the case folder once)."""
    out = tmp_path / "out"
    res = forensics(["run", str(demo_case), "--out", str(out), "--quiet"])
    assert res.returncode == 0, res.stderr
    machine = str(tmp_path.resolve())
    con = duckdb.connect(str(out / "case.duckdb"), read_only=True)
    columns = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE data_type IN ('VARCHAR', 'JSON')"
    ).fetchall()
    found = {
        (t, c) for t, c in columns
        if con.execute(f'SELECT count(*) FROM "{t}" WHERE contains("{c}"::VARCHAR, $1)', [machine]).fetchone()[0]
    }
    con.close()
    assert found == set()
    assert machine not in (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["case"]["folder"] == str(demo_case.parent.resolve())
    manifest["case"].pop("folder")
    assert machine not in json.dumps(manifest)
