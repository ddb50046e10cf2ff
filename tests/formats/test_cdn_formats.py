"""CDN, cloud and proxy formats: the JSON family reader, the new kinds, and fixtures for the
formats that have no public sample.

FIXTURES BELOW ARE NOT REAL LOGS. Akamai DataStream 2, Fastly, CloudFront standard logging v2 and
CloudFront real-time logs have no public sample file; these lines were written for this test
from the vendors' documented field lists:
- Akamai: https://techdocs.akamai.com/datastream2/docs/data-set-parameters (JSON, every value a
  string, empty fields left out, UA/referer percent-encoded);
- Fastly: https://docs.fastly.com/en/guides/useful-log-formats and its syslog endpoint's
  "<134>time cache-node service[pid]: " prefix before the default CLF;
- CloudFront v2: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logging.html
  (JSON output, the legacy W3C field names as keys; key spelling unconfirmed by a real file);
- CloudFront real-time: ../shared/specs/cf_realtime.md (fields in their fixed order, tab-separated).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forensics.cli import app
from forensics.detect import detect_lines
from forensics.formats import builtin_formats, get_format
from forensics.readers import make_reader
from forensics.readers.jsonl import SKIP_CONTINUATION, SKIP_NON_ACCESS

AKAMAI_FIXTURE = [
    json.dumps(r, separators=(",", ":"))
    for r in (
        {"version": "1", "cp": "123456", "reqId": "1239f220", "reqTimeSec": "1669662000.120",
         "bytes": "1572864", "totalBytes": "1573300", "objSize": "1572864", "cliIP": "198.51.100.31",
         "statusCode": "200", "proto": "HTTPS", "reqHost": "www.agency.gov", "reqMethod": "GET",
         "reqPath": "/docs/2022/detention-roster.xlsx", "reqPort": "443",
         "UA": "Mozilla%2F5.0%20(Windows%20NT%2010.0)", "cacheStatus": "1", "edgeIP": "23.50.51.173",
         "lastByte": "1"},
        {"version": "1", "cp": "123456", "reqId": "1239f221", "reqTimeSec": "1669662060",
         "bytes": "4096", "totalBytes": "4500", "objSize": "1572864", "cliIP": "2001:db8::44",
         "statusCode": "206", "reqHost": "www.agency.gov", "reqMethod": "GET",
         "reqPath": "/docs/2022/detention-roster.xlsx", "queryStr": "dl=1", "range": "bytes=0-4095",
         "referer": "https%3A%2F%2Fexample.org%2F", "xForwardedFor": "10.1.2.3", "cacheStatus": "0"},
    )
]

FASTLY_FIXTURE = [
    '<134>2022-11-28T20:00:00Z cache-iad2120 agency-www[363624]: 198.51.100.40 - - '
    '[28/Nov/2022:20:00:00 +0000] "GET /docs/2022/detention-roster.xlsx HTTP/1.1" 200 1572864',
    '<134>2022-11-28T20:00:05Z cache-iad2120 agency-www[363624]: 198.51.100.41 - - '
    '[28/Nov/2022:20:00:05 +0000] "HEAD /docs/2022/detention-roster.xlsx HTTP/1.1" 200 -',
    '2022-11-28T20:00:09Z cache-iad2121 agency-www[363625]: 2001:db8::9 - - '
    '[28/Nov/2022:20:00:09 +0000] "GET / HTTP/2.0" 304 - "https://www.agency.gov/" "curl/8.4.0"',
]

CLOUDFRONT_V2_FIXTURE = [
    json.dumps(r, separators=(",", ":"))
    for r in (
        {"date": "2022-11-28", "time": "20:00:00", "x-edge-location": "IAD89-C1", "sc-bytes": "1573300",
         "c-ip": "198.51.100.50", "cs-method": "GET", "cs(Host)": "d3abc.cloudfront.net",
         "cs-uri-stem": "/docs/2022/detention-roster.xlsx", "sc-status": "200", "cs(Referer)": "-",
         "cs(User-Agent)": "Mozilla/5.0%20(X11)", "cs-uri-query": "-", "x-edge-result-type": "Hit",
         "x-edge-request-id": "aaa111==", "x-host-header": "www.agency.gov", "cs-protocol": "https",
         "time-taken": "0.500", "x-forwarded-for": "-", "sc-content-len": "1572864",
         "sc-range-start": "-", "sc-range-end": "-", "c-port": "50000"},
        {"timestamp": "1669665601", "c-ip": "198.51.100.51", "cs-method": "GET",
         "cs-uri-stem": "/docs/2022/detention-roster.xlsx", "sc-status": "206", "sc-bytes": "1400",
         "x-edge-result-type": "Miss", "x-edge-request-id": "bbb222==", "sc-range-start": "0",
         "sc-range-end": "1023", "sc-content-len": "1024"},
    )
]

REALTIME_FIELDS = get_format("cloudfront_realtime").default_fields or ""


def realtime_line(values: dict[str, str]) -> str:
    return "\t".join(values.get(f, "-") for f in REALTIME_FIELDS.split())


CLOUDFRONT_REALTIME_FIXTURE = [
    realtime_line({
        "timestamp": "1669665600.123", "c-ip": "198.51.100.60", "sc-status": "200", "sc-bytes": "1573300",
        "cs-method": "GET", "cs-protocol": "https", "cs-host": "www.agency.gov",
        "cs-uri-stem": "/docs/2022/detention-roster.xlsx?v=2", "x-edge-location": "IAD89-C1",
        "x-edge-request-id": "ccc333==", "x-host-header": "d3abc.cloudfront.net", "time-taken": "0.250",
        "cs-protocol-version": "HTTP/2.0", "c-ip-version": "IPv4", "cs-user-agent": "curl/8.4.0",
        "cs-uri-query": "v=2", "x-edge-result-type": "Hit", "sc-content-len": "1572864",
        "c-port": "51000", "c-country": "US", "asn": "64500",
    }),
    realtime_line({
        "timestamp": "1669665610.500", "c-ip": "2001:db8::61", "sc-status": "206", "sc-bytes": "4400",
        "cs-method": "GET", "cs-uri-stem": "/docs/2022/detention-roster.xlsx",
        "x-edge-request-id": "ddd444==", "c-ip-version": "IPv6", "x-edge-result-type": "Miss",
        "sc-range-start": "0", "sc-range-end": "4095", "sc-content-len": "4096",
    }),
]

# format name -> fixture lines (used here and by the detection confusion test).
FIXTURES: dict[str, list[str]] = {
    "akamai_datastream2": AKAMAI_FIXTURE,
    "fastly": FASTLY_FIXTURE,
    "cloudfront_v2": CLOUDFRONT_V2_FIXTURE,
    "cloudfront_realtime": CLOUDFRONT_REALTIME_FIXTURE,
}


def read(name: str, lines: list[str], fields: str | None = None):
    res = make_reader(get_format(name), "UTC", fields).read_lines(1, lines)
    return res, res.requests.to_dicts()


# --- fixtures of formats without a public sample ------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_reads_completely_and_is_detected(name):
    res, rows = read(name, FIXTURES[name])
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert len(rows) == len(FIXTURES[name])
    assert all(r["ts"].utcoffset().total_seconds() == 0 for r in rows)
    assert detect_lines(FIXTURES[name]).format.name == name


def test_akamai_strings_and_percent_encoded_agent():
    _, (full, part) = read("akamai_datastream2", AKAMAI_FIXTURE)
    assert full["ts"].isoformat() == "2022-11-28T19:00:00.120000+00:00"
    assert (full["body_bytes"], full["total_bytes"], full["object_size"]) == (1572864, 1573300, 1572864)
    assert full["user_agent"] == "Mozilla/5.0 (Windows NT 10.0)"
    assert full["cache_status"] == "hit" and part["cache_status"] == "miss"
    assert part["client_addr"] == "2001:db8::44" and part["query"] == "dl=1"
    assert part["referer"] == "https://example.org/" and part["xff"] == "10.1.2.3"
    assert json.loads(part["extra"])["range"] == "bytes=0-4095"


def test_fastly_syslog_prefix_is_kept_in_extra():
    _, rows = read("fastly", FASTLY_FIXTURE)
    assert [r["client_addr"] for r in rows] == ["198.51.100.40", "198.51.100.41", "2001:db8::9"]
    assert rows[1]["body_bytes"] == 0 and rows[2]["user_agent"] == "curl/8.4.0"
    extra = json.loads(rows[0]["extra"])
    assert extra["n_fastly_cache_node"] == "cache-iad2120" and extra["n_syslog_priority"] == "134"


def test_cloudfront_v2_date_time_and_epoch_timestamps():
    _, (a, b) = read("cloudfront_v2", CLOUDFRONT_V2_FIXTURE)
    assert a["ts"].isoformat() == "2022-11-28T20:00:00+00:00"
    assert b["ts"].isoformat() == "2022-11-28T20:00:01+00:00"
    assert (a["host"], a["user_agent"], a["cache_status"]) == ("www.agency.gov", "Mozilla/5.0 (X11)", "hit")
    assert json.loads(a["extra"])["cdn_host"] == "d3abc.cloudfront.net"
    assert (b["range_start"], b["range_end"], b["content_length"]) == (0, 1023, 1024)


def test_cloudfront_realtime_query_in_the_stem_and_chosen_fields():
    _, (a, b) = read("cloudfront_realtime", CLOUDFRONT_REALTIME_FIXTURE)
    assert a["ts"].isoformat() == "2022-11-28T20:00:00.123000+00:00"
    assert (a["path"], a["query"], a["host"]) == ("/docs/2022/detention-roster.xlsx", "v=2", "www.agency.gov")
    assert (a["client_port"], a["content_length"], a["cache_status"]) == (51000, 1572864, "hit")
    assert (b["client_addr"], b["range_start"], b["range_end"]) == ("2001:db8::61", 0, 4095)
    # A configuration that chose only some fields: named, in order, in the case file.
    fields = "timestamp c-ip sc-status sc-bytes cs-method cs-uri-stem x-edge-request-id"
    line = "\t".join(["1669665600.123", "198.51.100.62", "200", "99", "GET", "/a?b=c", "eee==="])
    _, (row,) = read("cloudfront_realtime", [line], fields)
    assert (row["client_addr"], row["path"], row["query"], row["request_id"]) == ("198.51.100.62", "/a", "b=c", "eee===")


# --- the JSON family reader ------------------------------------------------------------------------

FD_RECORD = {
    "time": "2024-03-01T10:00:00.1234567Z", "category": "FrontDoorAccessLog",
    "properties": {"httpMethod": "GET", "requestUri": "https://www.agency.gov:443/a.pdf", "httpStatusCode": "200",
                   "responseBytes": "100", "clientIp": "203.0.113.5", "socketIp": "203.0.113.5",
                   "cacheStatus": "REMOTE_HIT"},
}
WAF_RECORD = {"time": "2024-03-01T10:00:01Z", "category": "FrontDoorWebApplicationFirewallLog",
              "properties": {"clientIP": "203.0.113.6", "action": "Block"}}


def test_records_document_over_many_lines_gives_each_record_its_first_line():
    doc = json.dumps({"records": [FD_RECORD, WAF_RECORD, FD_RECORD]}, indent=2).split("\n")
    res, rows = read("azure_frontdoor", doc)
    starts = [i for i, ln in enumerate(doc, 1) if ln.strip() == "{" and i > 1]
    assert [r["line_no"] for r in rows] == [starts[0], starts[2]]
    assert res.skipped[f"{SKIP_NON_ACCESS} (category FrontDoorWebApplicationFirewallLog)"] == 1
    assert len(rows) + res.rejects.height + sum(res.skipped.values()) == len(doc)
    assert rows[0]["cache_status"] == "hit" and rows[0]["ts"].isoformat() == "2024-03-01T10:00:00.123456+00:00"


def test_records_document_split_across_chunks_is_read_as_one():
    doc = json.dumps({"records": [FD_RECORD] * 5}, indent=2) + "\n"
    lines = doc.splitlines(keepends=True)
    reader = make_reader(get_format("azure_frontdoor"), "UTC")
    rows, accounted, start = 0, 0, 1
    for cut in (0, 7, 20, 41, len(lines)):
        chunk = "".join(lines[start - 1 : cut]).encode()
        if not chunk:
            continue
        res = reader.read_chunk(start, chunk)
        rows += res.requests.height
        accounted += res.requests.height + res.rejects.height + sum(res.skipped.values())
        start = cut + 1
    res = reader.finish()
    accounted += res.requests.height + res.rejects.height + sum(res.skipped.values())
    assert rows == 5 and accounted == len(lines)


def test_document_cut_short_rejects_the_lines_of_the_open_record():
    doc = json.dumps({"records": [FD_RECORD, FD_RECORD]}, indent=2).split("\n")[:-8]
    res, rows = read("azure_frontdoor", doc)
    assert len(rows) == 1
    assert res.rejects.height > 0 and "cut short" in res.rejects.get_column("reason")[0]
    assert len(rows) + res.rejects.height + sum(res.skipped.values()) == len(doc)
    assert res.skipped[SKIP_CONTINUATION] > 0


def test_pretty_printed_records_one_after_another():
    text = "\n".join(json.dumps(FD_RECORD, indent=1) for _ in range(3)).split("\n")
    res, rows = read("azure_frontdoor", text)
    assert len(rows) == 3 and res.rejects.height == 0


def test_caddy_non_access_lines_are_skipped_and_counted():
    lines = [
        'caddy  | {"level":"info","ts":1761019822.3,"msg":"serving initial configuration"}',
        'caddy  | {"level":"info","ts":1761019828.6,"logger":"http.log.access","msg":"handled request",'
        '"request":{"remote_ip":"172.19.0.1","remote_port":"1","client_ip":"172.19.0.1","method":"GET",'
        '"host":"localhost","uri":"/"},"status":200,"size":5}',
        "",
    ]
    res, rows = read("caddy", lines)
    assert len(rows) == 1 and res.rejects.height == 0
    assert res.skipped == {f"{SKIP_NON_ACCESS} (no logger)": 1, "blank": 1}


def test_nginx_json_repairs_unquoted_dash_and_says_so():
    line = ('{"time_iso8601":"2022-11-28T14:10:00-05:00","remote_addr":"10.0.0.1","request":"GET /a HTTP/1.1",'
            '"status": 200,"body_bytes_sent": 10,"upstream_response_time": -,"upstream_status": 502 : 200}')
    _, (row,) = read("nginx_json", [line])
    extra = json.loads(row["extra"])
    assert extra["upstream_status"] == "502 : 200" and "upstream_response_time" not in extra
    assert "unquoted" in extra["json_repair"]


def test_nginx_json_that_cannot_be_repaired_is_rejected_with_the_parser_message():
    res, rows = read("nginx_json", ['{"remote_addr":"10.0.0.1","status": 200, "request": "GET / HTTP/1.1" "x"}'])
    assert not rows and res.rejects.get_column("reason")[0].startswith("not valid JSON (")


def test_non_utf8_bytes_in_json_are_kept_as_text():
    chunk = b'{"remote_addr":"10.0.0.1","status":"200","request":"GET /\xff HTTP/1.1","time_iso8601":"2022-11-28T14:10:00Z"}\n'
    res = make_reader(get_format("nginx_json"), "UTC").read_chunk(1, chunk)
    assert res.requests.get_column("path").to_list() == ["/\\xff"]


def test_a_record_of_another_format_is_rejected_naming_the_missing_key():
    res, _ = read("caddy", ['{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1}'])
    assert res.rejects.get_column("reason")[0] == "not a caddy record: no key ts"


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("1712790000100000000", "2024-04-10T23:00:00.100000+00:00"),
        ("1712790000100", "2024-04-10T23:00:00.100000+00:00"),
        ("1712790000.1", "2024-04-10T23:00:00.100000+00:00"),
        ("2024-04-10T23:00:00.1Z", "2024-04-10T23:00:00.100000+00:00"),
        ("2024-04-11T01:00:00.100000000+02:00", "2024-04-10T23:00:00.100000+00:00"),
    ],
)
def test_cloudflare_timestamp_encodings(value, iso):
    line = json.dumps({"ClientIP": "1.2.3.4", "ClientRequestURI": "/", "EdgeStartTimestamp": value})
    _, (row,) = read("cloudflare_logpush", [line])
    assert row["ts"].isoformat() == iso


def test_cloudflare_forwarded_for_from_a_custom_field_and_body_bytes():
    line = json.dumps({"ClientIP": "104.28.1.1", "ClientRequestURI": "/f", "EdgeStartTimestamp": 1712790000,
                       "EdgeResponseBytes": 1200, "EdgeResponseBodyBytes": 1000, "CacheCacheStatus": "bypass",
                       "RequestHeaders": {"x-forwarded-for": "198.51.100.9"}})
    _, (row,) = read("cloudflare_logpush", [line])
    assert (row["xff"], row["body_bytes"], row["total_bytes"], row["cache_status"]) == ("198.51.100.9", 1000, 1200, "pass")


def test_alb_ipv6_client_is_split_on_the_last_colon():
    line = ('https 2024-03-01T10:00:00.123456Z app/lb/1 2001:db8:85a3::8a2e:370:7334:443 10.0.0.1:80 0.001 0.002 '
            '0.000 200 200 100 2000 "GET https://www.agency.gov:443/a.pdf HTTP/1.1" "curl/8" - - arn "Root=1" '
            '"www.agency.gov" "-" 0 2024-03-01T10:00:00.120000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" '
            '"TID_1" "new field"')
    _, (row,) = read("aws_alb", [line])
    assert (row["client_addr"], row["client_port"]) == ("2001:db8:85a3::8a2e:370:7334", 443)
    assert json.loads(row["extra"])["trailing"] == '"TID_1" "new field"'


def test_s3_partial_download_shows_in_bytes_beside_object_size():
    line = ('owner bucket [28/Nov/2022:20:00:00 +0000] 203.0.113.9 - REQ1 REST.GET.OBJECT docs/a.xlsx '
            '"GET /docs/a.xlsx HTTP/1.1" 200 - 400000 1572864 900 20 "-" "curl/8" - HOSTID SigV4 '
            'ECDHE-RSA-AES128-GCM-SHA256 - bucket.s3.amazonaws.com TLSv1.3 - -')
    _, (row,) = read("aws_s3", [line])
    assert (row["body_bytes"], row["object_size"], row["request_id"]) == (400000, 1572864, "REQ1")


def test_every_format_is_listed_with_its_documentation_link():
    res = CliRunner().invoke(app, ["formats"])
    assert res.exit_code == 0
    for fmt in builtin_formats().values():
        line = next(ln for ln in res.output.splitlines() if ln.split()[:1] == [fmt.name])
        assert f"<{fmt.spec}>" in line


def test_json_field_maps_feed_each_target_with_one_kind():
    for fmt in builtin_formats().values():
        if fmt.family != "json":
            continue
        kinds: dict[str, str] = {}
        for spec in fmt.fields.values():
            target, _, kind = spec.partition(":")
            assert kinds.setdefault(target, kind or "str") == (kind or "str"), (fmt.name, target)


def test_records_document_ingests_with_every_line_accounted(tmp_path, write_case):
    from forensics.casefile import load_case
    from forensics.ingest import ingest

    whole = json.dumps({"records": [FD_RECORD, WAF_RECORD, FD_RECORD]}, indent=2) + "\n"
    cut = "\n".join(whole.split("\n")[:-8]) + "\n"
    case = write_case(
        [{"path": "fd/"}],
        files={"fd/PT1H.json": whole, "fd/cut.json": cut},
    )
    rep = ingest(load_case(case), tmp_path / "out")
    by_name = {Path(r.planned.display_path).name: r for r in rep.loaded}
    assert all(r.planned.fmt.name == "azure_frontdoor" for r in rep.loaded)
    assert (by_name["PT1H.json"].lines_parsed, by_name["PT1H.json"].lines_rejected) == (2, 0)
    assert by_name["PT1H.json"].skipped[f"{SKIP_NON_ACCESS} (category FrontDoorWebApplicationFirewallLog)"] == 1
    assert by_name["cut.json"].lines_parsed == 1 and by_name["cut.json"].lines_rejected > 0
    assert "cut short" in by_name["cut.json"].reject_examples[0][1]
