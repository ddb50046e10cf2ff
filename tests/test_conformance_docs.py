"""Conformance on the vendors' own documentation examples (tests/data/vendor_docs, see its
README for the source and licence of each file; CloudFront's example from ../shared/specs).

Each example file is detected as its format, every line is a request, a skipped non-request
record counted by kind, or nothing else; and the values the documentation shows are the values
read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forensics.detect import detect_lines
from forensics.formats import get_format
from forensics.readers import make_reader
from forensics.readers.jsonl import SKIP_CONTINUATION, SKIP_NON_ACCESS
from tests.conftest import shared_path

DOCS = Path(__file__).parent / "data" / "vendor_docs"

# file -> (format, requests, skipped lines by kind)
FILES: dict[str, tuple[str, int, dict[str, int]]] = {
    "apache_httpd.log": ("combined", 2, {}),
    "aws_alb.log": ("aws_alb", 7, {}),
    "aws_s3.log": ("aws_s3", 5, {}),
    "azure_appgw.json": (
        "azure_appgw", 2,
        {f"{SKIP_NON_ACCESS} (category ApplicationGatewayPerformanceLog)": 1,
         f"{SKIP_NON_ACCESS} (category ApplicationGatewayFirewallLog)": 1},
    ),
    "azure_frontdoor_waf.json": (
        "azure_frontdoor", 1,
        {f"{SKIP_NON_ACCESS} (category FrontdoorWebApplicationFirewallLog)": 1, SKIP_CONTINUATION: 52},
    ),
    "caddy.json": ("caddy", 1, {}),
}


def lines_of(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def rows_of(fmt_name: str, lines: list[str]):
    res = make_reader(get_format(fmt_name), "UTC").read_lines(1, lines)
    return res, {r["line_no"]: r for r in res.requests.to_dicts()}


def test_every_example_file_is_listed_with_its_source():
    listed = set(FILES)
    on_disk = {p.name for p in DOCS.iterdir() if p.name != "README.md"}
    assert on_disk == listed
    readme = (DOCS / "README.md").read_text()
    for name in listed:
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `{name}`"))
        assert "https://" in row and row.count("|") >= 6, name


@pytest.mark.parametrize("name", sorted(FILES))
def test_documentation_example_is_detected_and_read_completely(name):
    fmt_name, n_requests, skipped = FILES[name]
    lines = lines_of(DOCS / name)
    assert detect_lines(lines, name).format.name == fmt_name
    res, rows = rows_of(fmt_name, lines)
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert len(rows) == n_requests
    assert dict(res.skipped) == skipped
    assert len(rows) + sum(res.skipped.values()) == len(lines)
    for r in rows.values():
        assert r["ts"].utcoffset().total_seconds() == 0 and r["status"] is not None


def test_apache_documentation_lines():
    _, rows = rows_of("combined", lines_of(DOCS / "apache_httpd.log"))
    common, combined = rows[1], rows[2]
    for r in (common, combined):
        assert (r["client_addr"], r["remote_user"], r["method"], r["path"], r["status"], r["body_bytes"]) == (
            "127.0.0.1", "frank", "GET", "/apache_pb.gif", 200, 2326
        )
        assert r["ts"].isoformat() == "2000-10-10T20:55:36+00:00"
    assert combined["referer"] == "http://www.example.com/start.html"
    assert combined["user_agent"] == "Mozilla/4.08 [en] (Win98; I ;Nav)"
    _, common_only = rows_of("common", lines_of(DOCS / "apache_httpd.log")[:1])
    assert common_only[1]["status"] == 200 and common_only[1]["body_bytes"] == 2326


def test_alb_documentation_entries():
    _, rows = rows_of("aws_alb", lines_of(DOCS / "aws_alb.log"))
    https = rows[2]
    assert (https["client_addr"], https["client_port"], https["scheme"], https["host"]) == (
        "192.168.131.39", 2817, "https", "www.example.com:443"
    )
    assert https["ts"].isoformat() == "2018-07-02T22:23:00.186641+00:00"
    assert (https["status"], https["total_bytes"], https["user_agent"]) == (200, 57, "curl/7.46.0")
    assert [rows[i]["status"] for i in (4, 5)] == [101, 101]  # WebSockets
    assert rows[7]["status"] == 502 and rows[7]["client_addr"] == "192.168.131.39"  # Lambda failure


def test_s3_documentation_records():
    _, rows = rows_of("aws_s3", lines_of(DOCS / "aws_s3.log"))
    assert [rows[i]["status"] for i in range(1, 6)] == [200, 200, 404, 200, 200]
    put = rows[5]
    assert (put["method"], put["path"], put["client_addr"], put["body_bytes"], put["object_size"]) == (
        "PUT", "/awsexamplebucket1/s3-dg.pdf", "192.0.2.3", 0, 4406583
    )
    assert put["ts"].isoformat() == "2019-02-06T00:01:57+00:00"
    assert rows[3]["body_bytes"] == 297


def test_app_gateway_documentation_records():
    _, rows = rows_of("azure_appgw", lines_of(DOCS / "azure_appgw.json"))
    v2, v1 = rows[1], rows[2]
    assert (v2["client_addr"], v2["client_port"], v2["status"], v2["total_bytes"]) == ("185.42.129.24", 45057, 200, 466)
    assert v2["ts"].isoformat() == "2021-10-14T22:17:11+00:00" and v2["time_taken_ms"] == 34.0
    assert v2["request_id"] == "592d1649f75a8d480a3c4dc6a975309d"
    assert (v1["client_addr"], v1["path"], v1["status"], v1["host"]) == (
        "191.96.249.97", "/phpmyadmin/scripts/setup.php", 404, "www.contoso.com"
    )
    assert v1["ts"].isoformat() == "2017-04-26T19:27:38+00:00"


def test_front_door_documentation_waf_and_access_records():
    _, rows = rows_of("azure_frontdoor", lines_of(DOCS / "azure_frontdoor_waf.json"))
    (access,) = rows.values()
    assert (access["method"], access["path"], access["query"], access["status"]) == ("GET", "/", "q=%27%20or%201=1", 403)
    assert (access["total_bytes"], access["edge_location"], access["cache_status"]) == (380, "SJC", "pass")
    assert access["ts"].isoformat() == "2020-06-09T22:32:17.838342+00:00"


def test_caddy_documentation_record():
    _, rows = rows_of("caddy", lines_of(DOCS / "caddy.json"))
    (row,) = rows.values()
    assert (row["client_addr"], row["host"], row["status"], row["body_bytes"], row["protocol"]) == (
        "127.0.0.1", "localhost", 200, 10900, "HTTP/2.0"
    )
    assert row["user_agent"] == "curl/7.82.0"


def cloudfront_documentation_example() -> list[str]:
    text = shared_path("specs", "cf_AccessLogs.md").read_text(encoding="utf-8")
    block = text.split("The following is an example log file for a distribution:", 1)[1]
    body = re.search(r"```\n(.*?)```", block, re.S)
    assert body is not None
    return [ln for ln in body.group(1).split("\n") if ln]


def test_cloudfront_documentation_example_file():
    lines = cloudfront_documentation_example()
    assert lines[0].startswith("#Version") and lines[1].startswith("#Fields")
    assert detect_lines(lines).format.name == "cloudfront"
    res, rows = rows_of("cloudfront", lines)
    assert res.rejects.height == 0 and len(rows) == len(lines) - 2
    first, error = rows[3], rows[6]
    assert (first["client_addr"], first["path"], first["status"], first["total_bytes"]) == ("192.0.2.100", "/index.html", 200, 392)
    assert first["ts"].isoformat() == "2019-12-04T21:02:31+00:00" and first["cache_status"] == "hit"
    assert (error["status"], error["host"], error["referer"]) == (502, "www.example.com", "http://www.example.com/")
    # The same lines without their header are still named CloudFront (a file whose #Fields was lost).
    assert detect_lines(lines[2:]).format.name == "cloudfront"


def test_readme_says_what_every_format_was_checked_against():
    from forensics.formats import builtin_formats

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("| format | checked against |", 1)[1].split("\n\n", 1)[0]
    named = {m.group(1) for m in re.finditer(r"^\| `([a-z0-9_]+)` \|", table, re.M)}
    assert named == set(builtin_formats())
