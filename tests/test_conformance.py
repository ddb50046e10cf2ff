"""Conformance on log lines written by other projects (../shared/samples, see its MANIFEST.md).

Every sample file of the formats read here is ingested; the only rejects allowed are the ones
listed below, each with the reason it must carry. Where the sample comes with expected parsed
output (Elastic's and lnav's tests), client address, time, method, path, status, bytes, referer
and user agent must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.casefile import SourceSpec
from forensics.detect import detect_lines
from forensics.formats import get_format
from forensics.inputs import ReadState, read_chunks, sniff_compression
from forensics.readers import make_reader
from tests.conftest import shared_path

IIS_EXTENDED_FIELDS = (
    "date time s-sitename s-computername s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username "
    "c-ip cs-version cs(User-Agent) cs(Cookie) cs(Referer) cs-host sc-status sc-substatus "
    "sc-win32-status sc-bytes cs-bytes time-taken X-Forwarded-For"
)

# file -> (format or "auto", SourceSpec extras, {line: reason substring} of expected rejects)
CASES: dict[str, tuple[str, dict, dict[int, str]]] = {
    "apache_combined/apache_access.log": ("auto", {}, {}),
    "apache_combined/apache_logs": ("auto", {}, {}),
    "apache_combined/logfile_access_log.0": ("auto", {}, {}),
    "apache_combined/logfile_access_log.1": ("auto", {}, {}),
    # MANIFEST: line 2 is malformed (ident and user fields missing).
    "apache_combined/logfile_bad_access_log.0": ("combined", {}, {2: "does not match"}),
    "apache_combined/logfile_shop_access_log.0": ("auto", {}, {}),
    # lnav's sample list mixes its own variants: ISO-time lines (3, 4), double spaces with a
    # trailing number (5), vhost without port (6) and Python http.server's zone-less time (8).
    "apache_combined/lnav_src_formats_access_log.samples.txt": (
        "combined",
        {},
        {3: "does not match", 4: "does not match", 5: "does not match", 6: "does not match", 8: "timestamp"},
    ),
    "apache_common_vhost_ssl/ssl-request.log": ("auto", {}, {}),
    "apache_common_vhost_ssl/test-vhost.log": ("auto", {}, {}),
    "apache_common_vhost_ssl/test.log": ("auto", {}, {}),
    "nginx/test.log": ("auto", {}, {}),
    "iis_w3c/iis10.log": ("auto", {}, {}),
    "iis_w3c/iis10_cookies.log": ("auto", {}, {}),
    "iis_w3c/iis10_edge_cases.log": ("auto", {}, {}),
    "iis_w3c/iis6.log": ("auto", {}, {}),
    "iis_w3c/iis7_owa.log": ("auto", {}, {}),
    "iis_w3c/iis7_sqli.log": ("auto", {}, {}),
    "iis_w3c/iis_without_date.log": ("auto", {}, {}),
    "iis_w3c/logfile_w3c.0": ("auto", {}, {}),
    "iis_w3c/logfile_w3c.1": ("auto", {}, {}),
    "iis_w3c/logfile_w3c.2": ("auto", {}, {}),
    "iis_w3c/logfile_w3c.3": ("auto", {"timezone": "UTC"}, {}),
    "iis_w3c/logfile_w3c.4": ("auto", {}, {}),
    # lnav's test of a #Fields header that names fewer fields than the lines have.
    "iis_w3c/logfile_w3c.5": ("auto", {}, {2: "has 17 fields where the #Fields header names 6"}),
    "iis_w3c/logfile_w3c.6": ("auto", {}, {}),
    "iis_w3c/logfile_w3c_big.0": ("auto", {}, {}),
    "iis_w3c/test-ipv6zone.log": ("auto", {}, {}),
    "iis_w3c/test-x-forward-for-extended.log": ("iis", {"fields": IIS_EXTENDED_FIELDS}, {}),
    "iis_w3c/test.log": ("auto", {}, {}),
    # Line 12 is a space-separated copy whose X-Forwarded-For holds ", " (34 fields for the
    # header's 33): read with the list kept as one field (see the test below).
    "cloudfront_standard/test-cloudfront.log": ("auto", {}, {}),
    "cloudfront_standard/test-cloudfront.log.OLDER-0ad96f51.log": ("auto", {}, {}),
}


def read_file(path: Path, fmt_name: str, extras: dict):
    spec = SourceSpec(path=str(path), format=fmt_name, **extras)
    head = path.read_bytes().decode("utf-8", "backslashreplace").split("\n")[:200]
    fmt = detect_lines(head, str(path)).format if fmt_name == "auto" else get_format(fmt_name)
    reader = make_reader(fmt, spec.timezone, spec.fields)
    state = ReadState()
    requests, rejects, skipped = [], [], 0
    for start, chunk, _ in read_chunks(path, sniff_compression(path), state):
        res = reader.read_chunk(start, chunk)
        requests.extend(res.requests.to_dicts())
        rejects.extend(res.rejects.select("line_no", "reason").rows())
        skipped += sum(res.skipped.values())
    return fmt, state, requests, dict(rejects), skipped


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_sample_file_reads_with_only_known_rejects(name):
    path = shared_path("samples", name)
    fmt_name, extras, expected_rejects = CASES[name]
    _, state, requests, rejects, skipped = read_file(path, fmt_name, extras)
    assert state.lines == len(requests) + len(rejects) + skipped
    assert sorted(rejects) == sorted(expected_rejects), rejects
    for line, needle in expected_rejects.items():
        assert needle in rejects[line]
    assert len(requests) == state.lines - skipped - len(expected_rejects)
    for r in requests:
        assert r["ts"] is not None and r["ts"].utcoffset().total_seconds() == 0


def test_detection_names_the_right_format():
    expected = {
        "apache_combined/apache_logs": "combined",
        "apache_combined/logfile_shop_access_log.0": "nginx_main",
        "apache_common_vhost_ssl/ssl-request.log": "apache_ssl_request",
        "apache_common_vhost_ssl/test-vhost.log": "vhost_combined",
        "nginx/test.log": "nginx_combined",
        "iis_w3c/iis10.log": "iis",
        "cloudfront_standard/test-cloudfront.log": "cloudfront",
    }
    for name, want in expected.items():
        path = shared_path("samples", name)
        head = path.read_bytes().decode("utf-8", "backslashreplace").split("\n")[:200]
        assert detect_lines(head, name).format.name == want, name


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, obj


def test_cloudfront_agrees_with_elastic_expected_output():
    log = shared_path("samples", "cloudfront_standard", "test-cloudfront.log")
    expected = json.loads(
        shared_path("samples", "cloudfront_standard", "test-cloudfront.log-expected.json").read_text()
    )["expected"]
    _, _, requests, _, _ = read_file(log, "cloudfront", {})
    by_line = {r["line_no"]: r for r in requests}
    checked = 0
    for line_no, event in enumerate(expected, 1):
        if event is None:
            continue
        e = dict(_flat(event))
        r = by_line[line_no]
        assert r["client_addr"] == e["source.address"]
        assert r["ts"].isoformat().replace("+00:00", ".000Z") == e["@timestamp"]
        assert r["method"] == e["http.request.method"]
        assert r["path"] == e.get("url.path", r["path"])
        assert r["status"] == e["http.response.status_code"]
        assert r["total_bytes"] == e["http.response.bytes"]
        assert r["user_agent"] == e.get("user_agent.original")
        assert r["referer"] == e.get("http.request.referrer")
        checked += 1
    assert checked == 9


def test_nginx_agrees_with_beats_expected_output():
    log = shared_path("samples", "nginx", "test.log")
    expected = json.loads(shared_path("samples", "nginx", "test.log-expected.json").read_text())
    _, _, requests, _, _ = read_file(log, "nginx_combined", {})
    assert len(requests) == len(expected) == 10
    for r, e in zip(requests, expected, strict=True):
        # Beats picks the first public address of a proxy list as the source; we never take the
        # client's own (forgeable) leftmost entry: the last address is the peer, the rest is
        # X-Forwarded-For, and the investigation resolves the client from trusted proxies.
        addresses = [r["client_addr"], *[a.strip() for a in (r["xff"] or "").split(",") if a.strip()]]
        assert e["source.address"] in addresses
        assert r["ts"].isoformat().replace("+00:00", ".000Z") == e["@timestamp"]
        assert r["method"] == e.get("http.request.method")
        assert r["path"] == e.get("url.path")
        assert r["query"] == e.get("url.query")
        assert r["status"] == e["http.response.status_code"]
        assert r["body_bytes"] == e["http.response.body.bytes"]
        assert r["user_agent"] == e.get("user_agent.original", r["user_agent"])


def test_apache_agrees_with_lnav_expected_output():
    log = shared_path("samples", "apache_combined", "logfile_access_log.0")
    expected = json.loads(
        shared_path("samples", "apache_combined", "test_cmds.sh_1d92c5bc12f5e7aaa6d84c5ed47f0b9f96e36c6a.out").read_text()
    )
    _, _, requests, _, _ = read_file(log, "combined", {})
    assert len(requests) == len(expected)
    for r, e in zip(requests, expected, strict=True):
        assert r["client_addr"] == e["c_ip"]
        assert r["ts"].strftime("%Y-%m-%d %H:%M:%S.000000") == e["log_time"]
        assert (r["method"], r["path"], r["query"]) == (e["cs_method"], e["cs_uri_stem"], e["cs_uri_query"])
        assert (r["status"], r["body_bytes"]) == (e["sc_status"], e["sc_bytes"])
        assert (r["referer"], r["user_agent"], r["protocol"]) == (e["cs_referer"], e["cs_user_agent"], e["cs_version"])
