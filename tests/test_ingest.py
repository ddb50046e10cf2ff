"""Ingest end to end on hand-made files: accounting, compression, encodings, provenance."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import threading
from pathlib import Path

import duckdb
import pytest
import zstandard

from forensics.casefile import load_case
from forensics.db import request_parts
from forensics.errors import CaseFileError, ForensicsError, InputError
from forensics.ingest import ingest
from forensics.readers.jsonl import JsonReader
from forensics.readers.text import TextReader
from forensics.readers.w3c import W3CReader
from forensics.schema import REQUESTS, REQUESTS_ALL

LINE = '198.51.100.{n} - - [28/Nov/2022:14:{m:02d}:00 -0500] "GET /p{n} HTTP/1.1" 200 {n} "-" "ua {n}"\n'


def lines(count: int, start: int = 1) -> str:
    return "".join(LINE.format(n=i, m=i % 60) for i in range(start, start + count))


def db(out: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(out / "case.duckdb"), read_only=True)
    con.execute("SET TimeZone='UTC'")
    return con


def test_every_line_accounted_for(tmp_path, write_case):
    body = lines(5) + "\n" + "this is not a log line\n" + lines(2, 10)
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": body})
    rep = ingest(load_case(case), tmp_path / "out")
    r = rep.loaded[0]
    assert (r.lines_read, r.lines_parsed, r.lines_rejected, r.lines_skipped) == (9, 7, 1, 1)
    con = db(tmp_path / "out")
    assert con.execute("SELECT line_no, reason FROM rejects").fetchall() == [
        (7, "does not match the combined layout")
    ]
    assert con.execute("SELECT list(line_no ORDER BY line_no) FROM requests").fetchone()[0] == [1, 2, 3, 4, 5, 8, 9]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    src = manifest["sources"][0]
    assert src["lines_read"] == src["lines_parsed"] + src["lines_rejected"] + src["lines_skipped"]
    assert src["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert src["skipped"] == {"blank": 1}


def test_offsets_are_applied_and_stored_as_utc(tmp_path, write_case):
    case = write_case([{"path": "a.log"}], files={"a.log": lines(1)})
    ingest(load_case(case), tmp_path / "out")
    con = db(tmp_path / "out")
    ts = con.execute("SELECT ts FROM requests").fetchone()[0]
    assert ts.utcoffset().total_seconds() == 0
    assert ts.isoformat() == "2022-11-28T19:01:00+00:00"
    assert con.execute("SELECT typeof(ts) FROM requests").fetchone()[0] == "TIMESTAMP WITH TIME ZONE"


@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("a.log.gz", gzip.compress),
        ("a.log.bz2", bz2.compress),
        ("a.log.xz", lzma.compress),
        ("a.log.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("a.log", lambda b: b),
    ],
)
def test_compressions(tmp_path, write_case, name, pack):
    raw = lines(300).encode()
    case = write_case([{"path": name}], files={name: pack(raw)})
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded[0].lines_parsed == 300
    assert rep.loaded[0].planned.compression == ("none" if name == "a.log" else rep.loaded[0].planned.compression)


def test_mixed_compressions_in_one_folder(tmp_path, write_case):
    files = {
        "logs/a.log.gz": gzip.compress(lines(10).encode()),
        "logs/b.log": lines(10, 20),
        "logs/c.log.zst": zstandard.ZstdCompressor().compress(lines(10, 40).encode()),
    }
    case = write_case([{"path": "logs", "format": "combined"}], files=files)
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.totals["lines_parsed"] == 30
    assert sorted(r.planned.compression for r in rep.loaded) == ["gzip", "none", "zstd"]


def test_crlf_non_utf8_and_long_lines_are_kept(tmp_path, write_case):
    long_agent = "x" * (1 << 19)
    body = (
        lines(1).replace("\n", "\r\n").encode()
        + b'198.51.100.7 - - [28/Nov/2022:14:00:00 -0500] "GET /caf\xe9 HTTP/1.1" 200 1 "-" "\xff\xfe"\r\n'
        + f'198.51.100.8 - - [28/Nov/2022:14:00:00 -0500] "GET / HTTP/1.1" 200 1 "-" "{long_agent}"\n'.encode()
    )
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": body})
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded[0].lines_parsed == 3 and rep.loaded[0].lines_rejected == 0
    con = db(tmp_path / "out")
    rows = con.execute("SELECT path, user_agent, length(user_agent) FROM requests ORDER BY line_no").fetchall()
    assert rows[0][1] == "ua 1"  # no stray \r
    assert rows[1][0] == "/caf\\xe9" and rows[1][1] == "\\xff\\xfe"
    assert rows[2][2] == 1 << 19


def test_a_line_over_the_limit_is_a_reject_and_reading_goes_on(tmp_path, write_case):
    over = b'198.51.100.8 - - [28/Nov/2022:14:00:00 -0500] "GET / HTTP/1.1" 200 1 "-" "' + b"y" * 5000 + b'"\n'
    body = lines(2).encode() + over + lines(3).encode() + b"z" * 9000
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": body})
    rep = ingest(load_case(case), tmp_path / "out", max_line_bytes=4096)
    r = rep.loaded[0]
    assert (r.lines_read, r.lines_parsed, r.lines_rejected) == (7, 5, 2)
    rejects = db(tmp_path / "out").execute("SELECT line_no, reason, line FROM rejects ORDER BY line_no").fetchall()
    assert [x[0] for x in rejects] == [3, 7]
    assert rejects[0][1].startswith(f"line too long ({len(over) - 1} bytes, over the limit of 4096)")
    assert rejects[0][2].startswith("198.51.100.8 - - [28/Nov") and len(rejects[0][2]) == 200
    assert rejects[1][1].startswith("line too long (9000 bytes") and rejects[1][2] == "z" * 200


def test_the_line_limit_is_set_in_the_case_file(tmp_path, write_case):
    over = b'198.51.100.8 - - [28/Nov/2022:14:00:00 -0500] "GET / HTTP/1.1" 200 1 "-" "' + b"y" * 5000 + b'"\n'
    files = {"a.log": lines(2).encode() + over}
    case = write_case([{"path": "a.log", "format": "combined"}], files=files, extra="")
    text = case.read_text().replace('[case]\n', '[case]\nmax_line_bytes = 4096\n', 1)
    case.write_text(text)
    r = ingest(load_case(case), tmp_path / "out").loaded[0]
    assert (r.lines_read, r.lines_parsed, r.lines_rejected) == (3, 2, 1)
    case.write_text(text.replace("max_line_bytes = 4096", "max_line_bytes = 10"))
    with pytest.raises(CaseFileError, match="max_line_bytes"):
        load_case(case)


def test_truncated_gzip_keeps_what_was_readable(tmp_path, write_case):
    full = gzip.compress(lines(2000).encode())
    case = write_case([{"path": "a.log.gz"}], files={"a.log.gz": full[: len(full) * 2 // 3]})
    rep = ingest(load_case(case), tmp_path / "out")
    r = rep.loaded[0]
    assert r.truncated
    assert 0 < r.lines_parsed < 2000
    assert r.lines_read == r.lines_parsed + r.lines_rejected + r.lines_skipped
    assert "truncated" in (r.note or "")
    con = db(tmp_path / "out")
    assert con.execute("SELECT truncated, note IS NOT NULL FROM sources").fetchone() == (True, True)


def test_reingest_adds_nothing_and_new_sources_are_added(tmp_path, write_case):
    case = write_case([{"path": "a.log"}], files={"a.log": lines(5)})
    ingest(load_case(case), tmp_path / "out")
    rep = ingest(load_case(case), tmp_path / "out")
    assert rep.loaded == [] and rep.already_loaded == ["a.log"]
    case = write_case([{"path": "a.log"}, {"path": "b.log"}], files={"b.log": lines(3, 50)})
    rep = ingest(load_case(case), tmp_path / "out")
    assert [r.planned.display_path for r in rep.loaded] == ["b.log"]
    con = db(tmp_path / "out")
    assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM requests").fetchone() == (8, 2)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["path"] for s in manifest["sources"]] == ["a.log", "b.log"]


def test_input_files_are_not_modified(tmp_path, write_case):
    case = write_case([{"path": "a.log.gz"}], files={"a.log.gz": gzip.compress(lines(10).encode())})
    p = tmp_path / "a.log.gz"
    before = (p.read_bytes(), p.stat().st_mtime_ns)
    ingest(load_case(case), tmp_path / "out")
    assert (p.read_bytes(), p.stat().st_mtime_ns) == before


def test_zone_less_format_needs_the_source_timezone(tmp_path, write_case):
    layout = 'apache:%h %{%Y-%m-%d %H:%M:%S}t "%r" %>s %b'
    body = '198.51.100.1 2022-11-28 14:00:00 "GET / HTTP/1.1" 200 5\n'
    case = write_case([{"path": "a.log", "format": layout}], files={"a.log": body})
    with pytest.raises(InputError, match="without a zone"):
        ingest(load_case(case), tmp_path / "out")
    case = write_case([{"path": "a.log", "format": layout, "timezone": "America/New_York"}])
    ingest(load_case(case), tmp_path / "out")
    ts = db(tmp_path / "out").execute("SELECT ts FROM requests").fetchone()[0]
    assert ts.isoformat() == "2022-11-28T19:00:00+00:00"


def test_nginx_log_format_directive_as_format(tmp_path, write_case):
    layout = 'nginx:$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent $request_time "$http_user_agent" $upstream_cache_status'
    body = '2001:db8::5 [2022-11-28T14:00:00-05:00] "GET /f.xlsx?a=1 HTTP/2.0" 206 1000 0.250 "curl/8" HIT\n'
    case = write_case([{"path": "a.log", "format": layout}], files={"a.log": body})
    ingest(load_case(case), tmp_path / "out")
    row = db(tmp_path / "out").execute(
        "SELECT client_addr, ts, path, query, status, body_bytes, time_taken_ms, cache_status_raw FROM requests"
    ).fetchone()
    assert row[0] == "2001:db8::5"
    assert row[1].isoformat() == "2022-11-28T19:00:00+00:00"
    assert row[2:] == ("/f.xlsx", "a=1", 206, 1000, 250.0, "HIT")


def test_unknown_fields_go_to_extra(tmp_path, write_case):
    layout = 'nginx:$remote_addr [$time_local] "$request" $status $body_bytes_sent $ssl_protocol "$http_x_custom"'
    body = '192.0.2.1 [28/Nov/2022:14:00:00 -0500] "GET / HTTP/1.1" 200 5 TLSv1.3 "hello \\x22x\\x22"\n'
    case = write_case([{"path": "a.log", "format": layout}], files={"a.log": body})
    ingest(load_case(case), tmp_path / "out")
    extra = db(tmp_path / "out").execute("SELECT extra FROM requests").fetchone()[0]
    assert json.loads(extra) == {"ssl_protocol": "TLSv1.3", "req_x-custom": "hello \\x22x\\x22"}


@pytest.mark.parametrize(
    ("files", "path", "needle"),
    [
        ({}, "missing.log", "no such file"),
        ({}, "logs/*.gz", "matches no file"),
        ({"bin.log": bytes(range(256)) * 40}, "bin.log", "binary file"),
        ({"a.log": "2022-11-28 14:00:00 x\n"}, "a.log", "cannot tell the format"),
        ({"a.log": "\n"}, "a.log", "is empty"),
        ({"a.log": ""}, "a.log", "is empty"),
    ],
)
def test_bad_inputs_are_clear_errors(tmp_path, write_case, files, path, needle):
    case = write_case([{"path": path}], files=files)
    with pytest.raises(ForensicsError) as exc:
        ingest(load_case(case), tmp_path / "out")
    assert needle in str(exc.value)


def test_wrong_forced_format_names_what_it_looks_like(tmp_path, write_case):
    case = write_case([{"path": "a.log", "format": "iis"}], files={"a.log": lines(5)})
    with pytest.raises(InputError) as exc:
        ingest(load_case(case), tmp_path / "out")
    assert "as format 'iis'" in str(exc.value) and "'combined'" in str(exc.value)


def test_empty_file_beside_others_is_recorded(tmp_path, write_case):
    case = write_case([{"path": "logs"}], files={"logs/a.log": lines(3), "logs/b.log": ""})
    rep = ingest(load_case(case), tmp_path / "out")
    assert any("empty file" in w for w in rep.warnings)
    con = db(tmp_path / "out")
    assert con.execute("SELECT path, lines_read FROM sources ORDER BY path").fetchall() == [
        ("logs/a.log", 3), ("logs/b.log", 0)
    ]


def test_a_line_with_several_json_records_counts_once(tmp_path, write_case):
    record = {
        "time": "2022-11-28T19:00:00.0000000Z",
        "category": "FrontDoorAccessLog",
        "properties": {"clientIp": "198.51.100.1", "httpMethod": "GET", "requestUri": "https://www.agency.gov/a.xlsx",
                       "httpStatusCode": "200", "responseBytes": "100", "userAgent": "x"},
    }
    body = json.dumps({"records": [record, record]}) + "\n"
    case = write_case([{"path": "a.json", "format": "azure_frontdoor"}], files={"a.json": body})
    rep = ingest(load_case(case), tmp_path / "out")
    r = rep.loaded[0]
    assert (r.lines_read, r.lines_parsed, r.lines_rejected, r.lines_skipped, r.requests) == (1, 1, 0, 0, 2)
    con = db(tmp_path / "out")
    assert con.execute("SELECT lines_read, lines_parsed, requests FROM sources").fetchone() == (1, 1, 2)
    assert con.execute("SELECT count(*), count(DISTINCT line_no) FROM requests").fetchone() == (2, 1)


CF_FIELDS = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent)"


def cloudfront_lines(count: int, start: int) -> str:
    return "".join(
        f"2022-11-28\t14:{i % 60:02d}:00\tHEL51-P1\t{i}\t198.51.100.{i % 250}\tGET\td.cloudfront.net\t/p{i}\t200\t-\tua%20{i}\n"
        for i in range(start, start + count)
    )


def many_chunks(family: str) -> tuple[str, str, tuple[int, int, int, int]]:
    """A file of many small chunks for each reader family, with lines for the exact path, rejects,
    blank and long lines among them (and, for W3C, directives that change the fields and the
    day mid-file); the format, and the expected line accounting."""
    parts = []
    if family == "text":
        for k in range(40):
            parts.append(lines(30, 30 * k + 1))
            parts.append(["\n", "not a log line\n", 'x - - [28/Nov/2022:14:00:00 -0500] "GET /q\\"x HTTP/1.1" 200 1 "-" "-"\n',
                          "y" * 5000 + "\n"][k % 4])
        return "".join(parts), "combined", (1240, 1210, 20, 10)
    if family == "json":
        # Keys that first appear mid-file (learnt by the twin that meets them), and NaN, which
        # only the exact path reads.
        for k in range(40):
            for i in range(30 * k + 1, 30 * k + 31):
                record = {"ClientIP": f"198.51.100.{i % 250}", "EdgeStartTimestamp": 1669611600 + i,
                          "ClientRequestURI": f"/p{i}", "EdgeResponseStatus": 200, f"Field{k // 10}": i}
                parts.append(json.dumps(record, separators=(",", ":")) + "\n")
            parts.append(["\n", "not json\n", '{"ClientIP":"a","EdgeStartTimestamp":1,"ClientRequestURI":"/n","n":NaN}\n',
                          "y" * 5000 + "\n"][k % 4])
        return "".join(parts), "cloudflare_logpush", (1240, 1210, 20, 10)
    for k in range(40):
        if k % 10 == 0:
            parts.append(f"#Version: 1.0\n#Fields: {CF_FIELDS}{' cs-uri-query' if k % 20 else ''}\n")
        body = cloudfront_lines(30, 30 * k + 1)
        parts.append(body.replace("\n", "\t-\n") if k % 20 >= 10 else body)
        parts.append(["\n", "not a log line\n", "y" * 5000 + "\n", ""][k % 4])
    return "".join(parts), "cloudfront", (1238, 1200, 20, 18)


@pytest.mark.parametrize("family", ["text", "w3c", "json"])
def test_a_large_file_parsed_by_several_readers_gives_what_one_reader_gives(tmp_path, write_case, monkeypatch, family):
    """Chunks of one file parsed at once, on several threads, come back in line order: the same
    rows, rejects, skips, line accounting and slow-line counts as one reader reading them in
    turn."""
    import forensics.inputs as inputs_module

    monkeypatch.setattr(inputs_module, "CHUNK_BYTES", 8 << 10)
    body, fmt, accounting = many_chunks(family)
    case = write_case([{"path": "a.log", "format": fmt}], files={"a.log": body})
    seen: dict[int, list[tuple[int, int]]] = {}
    threads: set[str] = set()
    read_chunk = {"text": TextReader, "w3c": W3CReader, "json": JsonReader}[family].read_chunk

    def recording(self, *args):
        threads.add(threading.current_thread().name)
        return read_chunk(self, *args)

    monkeypatch.setattr({"text": TextReader, "w3c": W3CReader, "json": JsonReader}[family], "read_chunk", recording)

    def load(workers: int) -> dict[str, list[tuple]]:
        chunks: list[tuple[int, int]] = seen.setdefault(workers, [])

        def progress(event: str, data: dict) -> None:
            if event == "chunk":
                chunks.append((data["lines"], data["slow"]))

        out = tmp_path / f"out{workers}"
        ingest(load_case(case), out, progress=progress, workers=workers, max_line_bytes=4096)
        con = db(out)
        return {
            t: con.execute(f"SELECT * EXCLUDE (source_id) FROM {t} ORDER BY ALL").fetchall()
            for t in ("requests", "rejects", "skipped_lines")
        } | {"sources": con.execute("SELECT lines_read, lines_parsed, lines_rejected, lines_skipped, note FROM sources").fetchall()}

    one = load(1)
    assert not any(t.startswith("forensics-parse") for t in threads)
    two = load(2)
    assert one == two
    assert len({t for t in threads if t.startswith("forensics-parse")}) == 2  # two chunks at once
    assert seen[1] == seen[2] and len(seen[2]) > 10
    assert one["sources"][0][:4] == (body.count("\n"), *accounting[1:])


def test_a_large_file_is_stored_in_whole_row_groups(tmp_path, write_case, monkeypatch):
    """Each write of a large file ends on a whole DuckDB row group, so that closing the case
    has no part-filled row groups to merge and rewrite: only the file's last one is part-filled,
    and every line is stored once."""
    import forensics.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "FLUSH_ROWS", 130_000)
    count = 2 * ingest_module.ROW_GROUP_ROWS + 1234
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": lines(count)})
    ingest(load_case(case), tmp_path / "out")
    con = db(tmp_path / "out")
    (part,) = (name for name in request_parts(con) if name != REQUESTS_ALL)
    sizes = [r[0] for r in con.execute(
        "SELECT sum(count) FROM pragma_storage_info($part) WHERE column_name = 'line_no' "
        "AND segment_type <> 'VALIDITY' GROUP BY row_group_id ORDER BY row_group_id", {"part": part}
    ).fetchall()]
    assert sizes == [ingest_module.ROW_GROUP_ROWS] * 2 + [1234]
    assert con.execute("SELECT count(*), count(DISTINCT line_no), max(line_no) FROM requests").fetchone() == (
        count, count, count
    )


def test_rows_are_not_held_back_when_their_bytes_call_for_the_write(tmp_path, write_case, monkeypatch):
    """Holding rows back for whole row groups must not let long rows pile up: when FLUSH_BYTES
    calls for a write, everything pending is written."""
    import forensics.ingest as ingest_module
    import forensics.inputs as inputs_module

    monkeypatch.setattr(inputs_module, "CHUNK_BYTES", 64 << 20)  # the whole file in one chunk
    monkeypatch.setattr(ingest_module, "FLUSH_BYTES", 1 << 20)
    held: list[int] = []
    insert = ingest_module._Writer._insert

    def recording(self, cur, frames, *rest, **kw):
        kept = insert(self, cur, frames, *rest, **kw)
        held.append(kept.height)
        return kept

    monkeypatch.setattr(ingest_module._Writer, "_insert", recording)
    count = ingest_module.ROW_GROUP_ROWS + 1234
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": lines(count)})
    ingest(load_case(case), tmp_path / "out")
    assert held and set(held) == {0}
    assert db(tmp_path / "out").execute("SELECT count(DISTINCT line_no) FROM requests").fetchone()[0] == count


def test_rows_are_stored_in_a_part_of_the_columns_they_fill(tmp_path, write_case):
    """`requests` is a view over parts: a file's rows are kept in a table of the columns they
    fill (a column NULL on every row costs DuckDB as much to store as one with values), and the
    view gives every row every column."""
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": lines(50)})
    ingest(load_case(case), tmp_path / "out")
    con = db(tmp_path / "out")
    parts = request_parts(con)
    (part,) = (name for name in parts if name != REQUESTS_ALL)
    filled = {c for c in REQUESTS.column_names
              if con.execute(f"SELECT count({c}) FROM requests").fetchone()[0]}  # our column names
    assert parts[part] == filled and len(filled) < len(REQUESTS.column_names)
    assert parts[REQUESTS_ALL] == set(REQUESTS.column_names)
    assert con.execute(f"SELECT count(*) FROM {part}").fetchone()[0] == 50
    assert con.execute("SELECT count(*) FROM requests_all").fetchone()[0] == 0
    assert [d[0] for d in con.execute("SELECT * FROM requests LIMIT 0").description] == REQUESTS.column_names


def test_rows_filling_a_column_their_part_lacks_keep_every_value(tmp_path, write_case, monkeypatch):
    """A large file's transaction sees only the parts that existed when it began: rows written
    later that fill another column go to `requests_all`, with every value, and a reload of the
    file removes its rows from every part."""
    import forensics.ingest as ingest_module
    import forensics.inputs as inputs_module

    monkeypatch.setattr(inputs_module, "CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(ingest_module, "FLUSH_ROWS", 500)
    body = lines(3000) + lines(2000, 3001).replace(" - - [", " - alice [")
    case = write_case([{"path": "a.log", "format": "combined"}], files={"a.log": body})
    ingest(load_case(case), tmp_path / "out")
    con = db(tmp_path / "out")
    assert con.execute("SELECT count(*), count(DISTINCT line_no), count(remote_user) FROM requests").fetchone() == (
        5000, 5000, 2000
    )
    assert con.execute("SELECT min(line_no) FROM requests WHERE remote_user = 'alice'").fetchone()[0] == 3001
    assert con.execute("SELECT count(*) FROM requests_all").fetchone()[0] >= 2000
    con.close()
    case = write_case([{"path": "a.log", "format": "combined", "role": "cdn"}])
    ingest(load_case(case), tmp_path / "out")
    con = db(tmp_path / "out")
    assert con.execute("SELECT count(*), count(DISTINCT line_no), count(remote_user) FROM requests").fetchone() == (
        5000, 5000, 2000
    )
