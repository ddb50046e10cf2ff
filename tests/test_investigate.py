"""The investigation rules of issue 3, each on hand-made log lines written to files and read
through the real ingest (nothing mocked)."""

from __future__ import annotations

import csv
import gzip
import ipaddress
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics import investigate
from forensics.casefile import load_case
from forensics.db import connect
from forensics.investigate import (
    TrustedProxies,
    match_path,
    normalise_address,
    relate_path,
    remove_dot_segments,
    resolve_client,
)
from forensics.listfiles import neutralise_formula
from forensics.pipeline import run_case

FILE = "/docs/2022/detention-roster.xlsx"
SIZE = 1_000_000
CF_PROXY = "130.176.10.20"  # inside the trusted 130.176.0.0/16

CF_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header "
    "cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start "
    "sc-range-end"
)

_request_ids = iter(range(1, 10_000))


def cf_line(
    ts: str,
    viewer: str,
    status: int | str,
    sc_bytes: int,
    *,
    path: str = FILE,
    method: str = "GET",
    content_len: int | str = SIZE,
    result: str = "Hit",
    query: str = "-",
    xff: str = "-",
    ranges: tuple[int, int] | None = None,
    host: str = "www.agency.gov",
    ua: str = "Mozilla/5.0",
) -> str:
    """One CloudFront standard log record; ts is 'YYYY-MM-DD HH:MM:SS' UTC."""
    date, time = ts.split(" ")
    start, end = (str(ranges[0]), str(ranges[1])) if ranges else ("-", "-")
    fields = [
        date, time, "IAD89-C1", str(sc_bytes), viewer, method, "d3abc.cloudfront.net", path,
        f"{int(status):03d}", "-", ua, query, "-", result, f"req{next(_request_ids)}==", host,
        "https", "200", "0.500", xff, "TLSv1.3", "TLS_AES_128_GCM_SHA256", result, "HTTP/1.1",
        "-", "-", "50000", "0.010", result, "application/octet-stream", str(content_len), start, end,
    ]
    return "\t".join(fields)


def cf_file(*lines: str) -> bytes:
    text = "#Version: 1.0\n#Fields: " + CF_FIELDS + "\n" + "\n".join(lines) + "\n"
    return gzip.compress(text.encode(), mtime=0)


def nginx_line(
    ts: str,
    peer: str,
    status: int,
    body: int,
    *,
    path: str = FILE,
    method: str = "GET",
    xff: str = "-",
    ua: str = "Mozilla/5.0",
    referer: str = "-",
) -> str:
    """One nginx `main` line; ts is 'YYYY-MM-DD HH:MM:SS' UTC (written with a -0500 offset)."""
    utc = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    local = utc - timedelta(hours=5)
    clf = local.strftime("%d/%b/%Y:%H:%M:%S -0500")
    return f'{peer} - - [{clf}] "{method} {path} HTTP/1.1" {status} {body} "{referer}" "{ua}" "{xff}"'


def case_toml(
    start: str = "2022-11-28T19:00:00Z",
    end: str = "2022-11-28T23:00:00Z",
    margin: str = "30m",
    size: int | None = SIZE,
    hosts: str = '["www.agency.gov", "d3abc.cloudfront.net"]',
) -> str:
    size_line = f"size = {size}\n" if size is not None else ""
    return (
        f'[exposure]\nstart = "{start}"\nend = "{end}"\nmargin = "{margin}"\n\n'
        f'[[resources]]\npath = "{FILE}"\nhosts = {hosts}\n{size_line}\n'
        '[proxies]\ntrusted = ["130.176.0.0/16", "64.252.64.0/18"]\n'
    )


def run(
    write_case: Any,
    tmp_path: Path,
    cdn: list[str] | None = None,
    origin: list[str] | None = None,
    **case_args: Any,
) -> tuple[Any, dict[str, dict[str, Any]]]:
    files: dict[str, bytes | str] = {}
    sources = []
    if cdn is not None:
        files["cdn/E1.2022-11-28-20.a.gz"] = cf_file(*cdn)
        sources.append({"path": "cdn/*.gz", "format": "cloudfront", "role": "cdn"})
    if origin is not None:
        files["origin/access.log"] = "\n".join(origin) + "\n"
        sources.append({"path": "origin/access.log", "format": "nginx_main", "role": "origin"})
    case_path = write_case(sources, extra=case_toml(**case_args), files=files)
    report = run_case(load_case(case_path), tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "downloaders.json").read_text())
    return report, {r["client_ip"]: r for r in rows}


# --- pure rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("2A02:0908:01A3:0000:0000:0000:0000:0001", "2a02:908:1a3::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("198.51.100.7:51234", "198.51.100.7"),
        (' "203.0.113.9" ', "203.0.113.9"),
        ("unknown", None),
        ("-", None),
        ("not-an-ip", None),
    ],
)
def test_addresses_are_normalised(logged: str, expected: str | None) -> None:
    assert normalise_address(logged) == expected


def test_dot_segments_and_duplicate_slashes_are_resolved() -> None:
    assert remove_dot_segments("/docs//2022/./x/../detention-roster.xlsx") == FILE
    assert remove_dot_segments("/../docs/2022/") == "/docs/2022/"


@pytest.mark.parametrize(
    ("as_sent", "how"),
    [
        (FILE, "exact"),
        ("/docs/2022/detention%2Droster.xlsx", "decoded"),
        ("/docs/2022/detention%2droster.xlsx", "decoded"),
        ("/docs//2022/./detention-roster.xlsx", "normalised"),
        ("/docs/2022/detention%252Droster.xlsx", "double_decoded"),
        ("/docs/2022/Detention-Roster.XLSX", "case_folded"),
        ("/docs/2022/detention-roster.xls", None),
    ],
)
def test_path_matching(as_sent: str, how: str | None) -> None:
    assert match_path(as_sent, FILE) == how


def test_near_paths_are_related_to_the_resource() -> None:
    assert relate_path("/docs/2022/detention_roster.csv", FILE) == (None, "similar_name")
    assert relate_path("/other/detention-roster-v2.xlsx", FILE) == (None, "similar_name")
    assert relate_path("/docs/2022/annual-report.pdf", FILE) == (None, "same_folder")
    assert relate_path("/docs/2022/", FILE) == (None, "same_folder")
    assert relate_path("/news/roster.html", FILE) == (None, None)


def test_forged_forwarded_for_is_never_the_client() -> None:
    trusted = TrustedProxies(["130.176.0.0/16"])
    res = resolve_client("origin", CF_PROXY, CF_PROXY, "203.0.113.77, 159.203.88.24", trusted, True)
    assert res.client_ip == "159.203.88.24"
    assert res.client_basis == "forwarded_for"
    assert res.claimed_forwarded_for == "203.0.113.77"
    assert "forwarded_for_claimed" in res.client_flags
    # A chain of trusted hops is skipped from the right.
    res = resolve_client("origin", CF_PROXY, CF_PROXY, "203.0.113.77, 159.203.88.24, 130.176.9.9", trusted, True)
    assert res.client_ip == "159.203.88.24"
    # Every entry trusted, or none: the client is unknown, never the proxy.
    res = resolve_client("origin", CF_PROXY, CF_PROXY, "130.176.9.9", trusted, True)
    assert res.client_ip is None and "client_unknown" in res.client_flags
    res = resolve_client("origin", CF_PROXY, CF_PROXY, None, trusted, True)
    assert res.client_ip is None
    # At the edge the viewer is the client, whatever it claims.
    res = resolve_client("cdn", "159.203.88.24", None, "203.0.113.77", trusted, True)
    assert res.client_ip == "159.203.88.24" and res.claimed_forwarded_for == "203.0.113.77"


@pytest.mark.parametrize("value", ["=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_formulas_are_neutralised(value: str) -> None:
    assert neutralise_formula(value) == "'" + value


# --- through ingest and the whole run ------------------------------------------------------


def test_forged_forwarded_for_through_cdn_and_origin(write_case: Any, tmp_path: Path) -> None:
    cdn = [cf_line("2022-11-28 20:00:00", "159.203.88.24", 200, SIZE + 400, result="Miss", xff="203.0.113.77")]
    origin = [nginx_line("2022-11-28 20:00:00", CF_PROXY, 200, SIZE, xff="203.0.113.77, 159.203.88.24")]
    report, rows = run(write_case, tmp_path, cdn=cdn, origin=origin)
    assert set(rows) == {"159.203.88.24"}
    row = rows["159.203.88.24"]
    assert row["outcome"] == "complete" and row["confidence"] == "confirmed"
    assert row["requests"] == 1, "the edge row and the origin fetch it caused are one request"
    assert row["sources"] == ["cdn", "origin"]
    assert row["claimed_forwarded_for"] == ["203.0.113.77"]
    assert "forwarded_for_claimed" in row["flags"]
    assert report.headline == {"complete": 1, "partial": 0, "undetermined": 0, "failed": 0, "headers_only": 0}


def test_ipv6_client_behind_the_cdn(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", CF_PROXY, 200, SIZE, xff="2A02:908:1A3:0:0:0:0:5A02")]
    _, rows = run(write_case, tmp_path, origin=origin)
    assert list(rows) == ["2a02:908:1a3::5a02"]
    assert rows["2a02:908:1a3::5a02"]["outcome"] == "complete"


def test_download_split_into_three_ranges_is_complete(write_case: Any, tmp_path: Path) -> None:
    third = SIZE // 3
    cdn = [
        cf_line("2022-11-28 20:00:00", "99.231.84.160", 206, third + 300, content_len=third,
                ranges=(0, third - 1), result="Miss"),
        cf_line("2022-11-28 20:00:01", "99.231.84.160", 206, third + 300, content_len=third,
                ranges=(third, 2 * third - 1)),
        cf_line("2022-11-28 20:00:01", "99.231.84.160", 206, SIZE - 2 * third + 300,
                content_len=SIZE - 2 * third, ranges=(2 * third, SIZE - 1)),
    ]
    # The cache miss made CloudFront fetch the whole object: not what the viewer got.
    origin = [nginx_line("2022-11-28 20:00:00", CF_PROXY, 200, SIZE, xff="99.231.84.160")]
    _, rows = run(write_case, tmp_path, cdn=cdn, origin=origin)
    row = rows["99.231.84.160"]
    assert (row["outcome"], row["confidence"], row["requests"]) == ("complete", "confirmed", 3)
    assert row["coverage_pct"] == 100.0
    assert row["bytes_received"] == SIZE


def test_overlapping_ranges_that_do_not_cover_are_partial(write_case: Any, tmp_path: Path) -> None:
    cdn = [
        cf_line("2022-11-28 20:00:00", "102.89.34.118", 206, 600_300, content_len=600_000,
                ranges=(0, 599_999)),
        cf_line("2022-11-28 20:03:00", "102.89.34.118", 206, 300_301, content_len=300_001,
                ranges=(500_000, 800_000)),
    ]
    _, rows = run(write_case, tmp_path, cdn=cdn)
    row = rows["102.89.34.118"]
    assert row["outcome"] == "partial"
    assert row["coverage_pct"] == pytest.approx(80.0001, abs=0.01)


def test_viewer_that_aborted_while_origin_sent_everything_is_partial(
    write_case: Any, tmp_path: Path
) -> None:
    cdn = [cf_line("2022-11-28 20:00:00", "177.38.212.90", 0, 400_300, result="Error")]
    origin = [nginx_line("2022-11-28 20:00:01", CF_PROXY, 200, SIZE, xff="177.38.212.90")]
    report, rows = run(write_case, tmp_path, cdn=cdn, origin=origin)
    row = rows["177.38.212.90"]
    assert row["outcome"] == "partial"
    assert row["requests"] == 1
    assert row["bytes_received"] <= 400_300
    con = connect(report.outputs["case.duckdb"])
    linked = con.execute("SELECT count(*) FROM hits WHERE role = 'origin' AND NOT counts").fetchone()
    con.close()
    assert linked == (1,)


def test_percent_encoded_path_and_tracking_query(write_case: Any, tmp_path: Path) -> None:
    # CloudFront logs the client's %2D as %252D (it encodes '%'); nginx logs it as sent.
    cdn = [
        cf_line("2022-11-28 20:00:00", "83.45.120.77", 200, SIZE + 300,
                path="/docs/2022/detention%252Droster.xlsx", result="Miss"),
        cf_line("2022-11-28 20:10:00", "172.58.143.206", 200, SIZE + 300,
                query="utm_source=twitter&utm_medium=social"),
    ]
    origin = [
        nginx_line("2022-11-28 20:00:00", CF_PROXY, 200, SIZE, path="/docs/2022/detention%2Droster.xlsx",
                   xff="83.45.120.77"),
    ]
    _, rows = run(write_case, tmp_path, cdn=cdn, origin=origin)
    assert rows["83.45.120.77"]["outcome"] == "complete"
    assert rows["83.45.120.77"]["requests"] == 1
    assert "encoded_path" in rows["83.45.120.77"]["flags"]
    assert rows["172.58.143.206"]["outcome"] == "complete"


def test_double_encoded_request_the_server_did_not_serve_is_a_near_miss(
    write_case: Any, tmp_path: Path
) -> None:
    origin = [
        nginx_line("2022-11-28 20:00:00", "46.211.77.5", 404, 146, path="/docs/2022/detention%252Droster.xlsx"),
    ]
    report, rows = run(write_case, tmp_path, origin=origin)
    assert rows == {}
    con = connect(report.outputs["case.duckdb"])
    kinds = con.execute("SELECT kind, requests FROM near_misses").fetchall()
    con.close()
    assert kinds == [("double_encoded", 1)]


def test_window_that_crosses_midnight_utc(write_case: Any, tmp_path: Path) -> None:
    origin = [
        nginx_line("2022-11-28 23:50:00", "198.51.100.1", 200, SIZE),
        nginx_line("2022-11-29 00:20:00", "198.51.100.2", 200, SIZE // 2),
        nginx_line("2022-11-29 01:10:00", "198.51.100.3", 404, 146),
    ]
    report, rows = run(
        write_case, tmp_path, origin=origin,
        start="2022-11-28T18:40:00-05:00", end="2022-11-28T19:30:00-05:00", margin="10m",
    )
    assert rows["198.51.100.1"]["outcome"] == "complete"
    assert rows["198.51.100.1"]["first_seen"] == "2022-11-28T23:50:00Z"
    assert rows["198.51.100.2"]["outcome"] == "partial"
    assert rows["198.51.100.2"]["first_seen"] == "2022-11-29T00:20:00Z"
    assert "198.51.100.3" not in rows
    con = connect(report.outputs["case.duckdb"])
    hours = [r[0] for r in con.execute("SELECT hour_start FROM coverage ORDER BY hour_start").fetchall()]
    con.close()
    assert all(h.tzinfo is not None and h.utcoffset() == timedelta(0) for h in hours)
    assert [h.strftime("%d %H") for h in hours] == ["28 23", "29 00"]


def test_margin_edges(write_case: Any, tmp_path: Path) -> None:
    # Exposure 20:00-21:00Z, margin 30m: examined 19:30:00-21:30:00 inclusive.
    origin = [
        nginx_line("2022-11-28 19:29:59", "198.51.100.10", 404, 146),  # one second before: excluded
        nginx_line("2022-11-28 19:30:00", "198.51.100.11", 404, 146),  # exactly at the edge: included
        nginx_line("2022-11-28 21:30:00", "198.51.100.12", 404, 146),  # exactly at the far edge
        nginx_line("2022-11-28 21:30:01", "198.51.100.13", 404, 146),  # one second after: excluded
    ]
    report, rows = run(write_case, tmp_path, origin=origin, start="2022-11-28T20:00:00Z",
                       end="2022-11-28T21:00:00Z", margin="30m")
    assert sorted(rows) == ["198.51.100.11", "198.51.100.12"]
    assert all(r["outcome"] == "failed" and "only_in_margin" in r["flags"] for r in rows.values())
    con = connect(report.outputs["case.duckdb"])
    outside = con.execute(
        "SELECT kind, window_position, requests FROM near_misses"
    ).fetchall()
    con.close()
    assert outside == [("resource_outside_window", "outside", 2)]


def test_case_folded_path(write_case: Any, tmp_path: Path) -> None:
    # A server that ignores case (IIS) served this spelling: it is the file, flagged.
    served = [nginx_line("2022-11-28 20:00:00", "198.51.100.20", 200, SIZE, path="/DOCS/2022/Detention-Roster.xlsx")]
    _, rows = run(write_case, tmp_path, origin=served)
    assert rows["198.51.100.20"]["outcome"] == "complete"
    assert "case_folded_path" in rows["198.51.100.20"]["flags"]


def test_case_variant_a_case_sensitive_server_refused_is_a_near_miss(
    write_case: Any, tmp_path: Path
) -> None:
    refused = [nginx_line("2022-11-28 20:00:00", "198.51.100.21", 404, 146, path="/docs/2022/Detention-Roster.xlsx")]
    report, rows = run(write_case, tmp_path, origin=refused)
    assert rows == {}
    con = connect(report.outputs["case.duckdb"])
    assert con.execute("SELECT kind FROM near_misses").fetchall() == [("case_variant",)]
    con.close()


def test_origin_only_case(write_case: Any, tmp_path: Path) -> None:
    origin = [
        nginx_line("2022-11-28 20:00:00", "198.51.100.30", 200, SIZE),
        nginx_line("2022-11-28 20:05:00", "198.51.100.31", 499, 312_000),
        nginx_line("2022-11-28 20:06:00", "198.51.100.32", 503, 190),
        nginx_line("2022-11-28 20:07:00", "198.51.100.33", 200, 0, method="HEAD"),
        nginx_line("2022-11-28 20:08:00", "198.51.100.34", 304, 0),
    ]
    report, rows = run(write_case, tmp_path, origin=origin)
    outcomes = {ip: r["outcome"] for ip, r in rows.items()}
    assert outcomes == {
        "198.51.100.30": "complete",
        "198.51.100.31": "partial",
        "198.51.100.32": "failed",
        "198.51.100.33": "headers_only",
        "198.51.100.34": "headers_only",
    }
    # With only origin logs nothing went "around" a CDN.
    assert not any("went_around_cdn" in r["flags"] for r in rows.values())
    assert report.headline == {"complete": 1, "partial": 1, "undetermined": 0, "failed": 1, "headers_only": 2}
    order = list(csv.DictReader((tmp_path / "out" / "downloaders.csv").open()))
    assert [r["outcome"] for r in order] == ["complete", "partial", "failed", "headers_only", "headers_only"]


def test_request_around_the_cdn_counts_on_its_own(write_case: Any, tmp_path: Path) -> None:
    cdn = [cf_line("2022-11-28 20:00:00", "198.51.100.40", 200, SIZE + 300)]
    origin = [nginx_line("2022-11-28 20:30:00", "95.216.142.33", 200, SIZE, ua="curl/7.86.0")]
    _, rows = run(write_case, tmp_path, cdn=cdn, origin=origin)
    row = rows["95.216.142.33"]
    assert row["outcome"] == "complete" and row["sources"] == ["origin"]
    assert "went_around_cdn" in row["flags"]


def test_ranges_without_logged_bounds_are_probable(write_case: Any, tmp_path: Path) -> None:
    half = SIZE // 2
    origin = [
        nginx_line("2022-11-28 20:00:00", "198.51.100.50", 206, half),
        nginx_line("2022-11-28 20:00:02", "198.51.100.50", 206, SIZE - half),
    ]
    _, rows = run(write_case, tmp_path, origin=origin)
    row = rows["198.51.100.50"]
    assert (row["outcome"], row["confidence"]) == ("complete", "probable")


def test_size_is_inferred_and_flagged(write_case: Any, tmp_path: Path) -> None:
    origin = [
        nginx_line("2022-11-28 20:00:00", "198.51.100.60", 200, 777_777),
        nginx_line("2022-11-28 20:01:00", "198.51.100.61", 200, 777_777),
        nginx_line("2022-11-28 20:02:00", "198.51.100.62", 200, 100_000),
    ]
    report, rows = run(write_case, tmp_path, origin=origin, size=None)
    assert rows["198.51.100.60"]["outcome"] == "complete"
    assert rows["198.51.100.62"]["outcome"] == "partial"
    assert all("size_inferred" in r["flags"] for r in rows.values())
    assert any(lim.kind == "size_inferred" and "777,777 bytes" in lim.message for lim in report.limits)
    manifest = json.loads(report.outputs["manifest.json"].read_text())
    assert manifest["investigation"]["resources"][0]["size_inferred"] is True


def test_host_filter(write_case: Any, tmp_path: Path) -> None:
    cdn = [
        cf_line("2022-11-28 20:00:00", "198.51.100.70", 200, SIZE + 300),
        cf_line("2022-11-28 20:00:05", "198.51.100.71", 200, SIZE + 300, host="staging.agency.gov"),
    ]
    _, rows = run(write_case, tmp_path, cdn=cdn, hosts='["www.agency.gov"]')
    assert list(rows) == ["198.51.100.70"]


def test_csv_neutralises_a_formula_in_a_user_agent(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", "198.51.100.80", 200, SIZE, ua="=HYPERLINK(1)")]
    run(write_case, tmp_path, origin=origin)
    row = next(csv.DictReader((tmp_path / "out" / "downloaders.csv").open()))
    assert row["user_agents"] == "'=HYPERLINK(1)"


def test_lists_of_a_client_hold_each_value_once_sorted_without_missing_ones(
    write_case: Any, tmp_path: Path
) -> None:
    many, none = "198.51.100.110", "198.51.100.111"
    origin = [
        nginx_line("2022-11-28 20:00:00", many, 200, SIZE, ua="b-agent", referer="https://x.example/"),
        nginx_line("2022-11-28 20:01:00", many, 304, 0, ua="-", referer="-"),
        nginx_line("2022-11-28 20:02:00", many, 200, SIZE, ua="a-agent", referer="https://a.example/"),
        nginx_line("2022-11-28 20:03:00", many, 200, SIZE, ua="b-agent", referer="https://x.example/"),
        nginx_line("2022-11-28 20:04:00", many, 206, 10, ua="a-agent", referer="-"),
        nginx_line("2022-11-28 20:05:00", none, 200, SIZE, ua="-", referer="-"),
        nginx_line("2022-11-28 20:06:00", none, 200, SIZE, ua="-", referer="-"),
    ]
    _, rows = run(write_case, tmp_path, origin=origin)
    assert rows[many]["requests"] == 5
    assert rows[many]["statuses"] == ["200", "206", "304"]
    assert rows[many]["user_agents"] == ["a-agent", "b-agent"]
    assert rows[many]["referers"] == ["https://a.example/", "https://x.example/"]
    assert (rows[none]["requests"], rows[none]["user_agents"], rows[none]["referers"]) == (2, [], [])
    assert rows[many]["sources"] == rows[none]["sources"] == ["origin"]
    assert rows[many]["claimed_forwarded_for"] == rows[none]["claimed_forwarded_for"] == []


def test_lists_built_a_few_clients_at_a_time_are_the_lists_built_at_once(
    write_case: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = [
        nginx_line(f"2022-11-28 20:{i % 60:02d}:00", f"198.51.100.{i % 7 + 1}", (200, 206, 304)[i % 3],
                   SIZE if i % 3 == 0 else 10 * i, ua=("-", f"agent {i % 5}", f"bot {i % 2}")[i % 3],
                   referer=("-", f"https://r{i % 4}.example/")[i % 2], xff=("-", "203.0.113.9")[i % 4 == 1])
        for i in range(40)
    ]
    cdn = [cf_line(f"2022-11-28 21:0{i}:00", f"2001:db8::{i % 3}", 200, SIZE + 400, ua=f"edge {i}")
           for i in range(6)]
    passes: list[int] = []
    real = investigate.client_lists

    def counted(engine: Any, resource_path: str) -> int:
        passes.append(real(engine, resource_path))
        return passes[-1]

    monkeypatch.setattr(investigate, "client_lists", counted)
    _, at_once = run(write_case, tmp_path / "once", cdn=cdn, origin=origin)
    monkeypatch.setattr(investigate, "LIST_PASS_BYTES", 1)  # one client a pass
    _, in_passes = run(write_case, tmp_path / "passes", cdn=cdn, origin=origin)
    assert passes[0] == 1 and passes[1] > len(in_passes) > 5  # each bound starts a pass
    assert in_passes == at_once
    assert any(len(r["user_agents"]) > 1 for r in at_once.values())
    with connect(tmp_path / "passes" / "out" / "case.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM client_values").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM client_lists").fetchone() == (0,)


def test_a_missing_hour_of_logs_is_a_coverage_gap(write_case: Any, tmp_path: Path) -> None:
    origin = [
        nginx_line("2022-11-28 18:50:00", "198.51.100.90", 200, 10),
        nginx_line("2022-11-28 19:10:00", "198.51.100.90", 200, 10),
        nginx_line("2022-11-28 20:10:00", "198.51.100.90", 200, 10),
        # nothing from 21:00 to 22:00
        nginx_line("2022-11-28 22:10:00", "198.51.100.90", 200, 10),
        nginx_line("2022-11-28 23:40:00", "198.51.100.90", 200, 10),
    ]
    report, _ = run(write_case, tmp_path, origin=origin, start="2022-11-28T19:30:00Z",
                    end="2022-11-28T23:00:00Z", margin="30m")
    assert len(report.gaps) == 1
    assert "no origin log lines from 2022-11-28 21:00 UTC to 2022-11-28 22:00 UTC" in report.gaps[0]
    manifest = json.loads(report.outputs["manifest.json"].read_text())
    assert manifest["investigation"]["coverage_gaps"] == report.gaps


def test_outputs_have_utc_times_and_every_outcome(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", "198.51.100.100", 200, SIZE)]
    report, rows = run(write_case, tmp_path, origin=origin)
    assert set(report.headline) == {"complete", "partial", "undetermined", "failed", "headers_only"}
    for name in ("downloaders.csv", "downloaders.parquet", "downloaders.json", "case.duckdb", "manifest.json"):
        assert report.outputs[name].exists()
    assert rows["198.51.100.100"]["last_seen"].endswith("Z")
    import polars as pl

    frame = pl.read_parquet(report.outputs["downloaders.parquet"])
    assert str(frame.schema["first_seen"].time_zone) in ("UTC", "Etc/UTC")  # type: ignore[attr-defined]


_ADDRESS_LIKE = st.one_of(
    st.text(alphabet="0123456789.:abcdef%[]", max_size=24),
    st.ip_addresses().map(str),
    st.lists(st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "007", "٣", "", "1e2"]),
             min_size=3, max_size=5).map(".".join),
)


@settings(max_examples=400, deadline=None)
@given(t=_ADDRESS_LIKE)
def test_an_address_reads_as_ipaddress_reads_it(t: str) -> None:
    """The shortcut for IPv4 addresses already written canonically gives what parsing gives."""
    with mock.patch.object(investigate, "CANONICAL_IPV4", re.compile(r"(?!)")):  # never matches
        parsed = normalise_address(t)
    assert normalise_address(t) == parsed
    if parsed is not None and "." in parsed and ":" not in parsed:
        assert parsed == str(ipaddress.ip_address(parsed))


_LOGGED_ADDRESS = st.one_of(
    st.none(), st.just(""), st.just("-"), _ADDRESS_LIKE,
    st.sampled_from([" 192.0.2.1", "192.0.2.1 ", '"192.0.2.1"', "192.0.2.1:443", "[2001:db8::1]:443", "::ffff:192.0.2.7",
                     "10.0.0.1", "130.176.9.9", "unknown", "192.0.2.001"]),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["cdn", "origin"]), _LOGGED_ADDRESS, _LOGGED_ADDRESS,
                            st.one_of(st.none(), st.just(""), st.just("-"), _ADDRESS_LIKE,
                                      st.lists(_ADDRESS_LIKE, max_size=3).map(", ".join))),
                  max_size=12, unique=True),
    networks=st.sampled_from([(), ("130.176.0.0/16",), ("10.0.0.0/8", "2001:db8::/32")]),
    has_cdn_logs=st.booleans(),
)
def test_the_client_map_of_all_rows_at_once_is_each_row_resolved_alone(rows, networks, has_cdn_logs) -> None:
    """Rows resolved together by polars (the common ones) and the rest one by one give, row for
    row, what resolve_client gives each."""
    from forensics.investigate import client_map_frame

    trusted = TrustedProxies(networks)
    got = {r[:4]: r[4:] for r in client_map_frame(rows, trusted, has_cdn_logs).iter_rows()}
    assert len(got) == len(rows)
    for role, client_addr, peer_addr, xff in rows:
        res = resolve_client(role, client_addr, peer_addr, xff, trusted, has_cdn_logs)
        expected = (res.peer_ip, res.client_ip, res.client_basis, res.claimed_forwarded_for, list(res.client_flags))
        assert got[(role, client_addr, peer_addr, xff)] == expected
