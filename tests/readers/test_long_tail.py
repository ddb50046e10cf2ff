"""Logs as they really are: the shapes real files take beyond a format's textbook lines.

One test (or a few) per class, on lines shaped like the real ones: nginx upstream lists after a
retry, a last line without a newline, W3C files that lost their #Fields header, JSON files that
are one pretty-printed entry or mix requests with WAF and health records, Fastly's JSON logging,
Azure's timestamp spellings, a CloudFront X-Forwarded-For with a raw space, and a Traefik router
name with an unbalanced quote. Lines marked "doc" are the vendors' own documentation examples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forensics.casefile import load_case
from forensics.cli import app
from forensics.detect import detect_lines
from forensics.errors import DetectionError
from forensics.formats import get_format
from forensics.ingest import ingest
from forensics.inputs import ReadState, head_lines, read_chunks
from forensics.readers import make_reader
from forensics.readers.jsonl import SKIP_NON_ACCESS


def read(fmt_name: str, lines: list[str], fields: str | None = None):
    res = make_reader(get_format(fmt_name), "UTC", fields).read_lines(1, lines)
    return res, res.requests.to_dicts()


def extra(row: dict) -> dict:
    return json.loads(row["extra"] or "{}")


# --- nginx upstream lists ------------------------------------------------------------------------

# ingress-nginx's documented default (kubernetes.github.io/ingress-nginx, log-format page).
INGRESS_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id"
)
INGRESS_LINES = [
    # One upstream: the controller's default backend answering a host it does not route.
    '198.51.100.64 - - [28/Nov/2022:19:05:51 +0000] "GET /files/old-roster.xlsx HTTP/1.1" 404 146 "-" "curl/8.4.0" 78 0.005 '
    "[upstream-default-backend] [] 127.0.0.1:8181 146 0.005 404 4d2f0e6b8a1c9e7f3b5a2d4c6e8f0a1b",
    # A retry: the first pod answered 502, the second served the file.
    '203.0.113.7 - - [28/Nov/2022:14:10:00 -0500] "GET /files/roster.xlsx HTTP/1.1" 200 1572864 "-" '
    '"Mozilla/5.0" 512 0.305 [default-web-80] [] 10.244.1.6:8080, 10.244.2.9:8080 0, 1572864 '
    "0.004, 0.300 502, 200 8f3a1e2b4c5d6e7f8a9b0c1d2e3f4a5b",
    # Three tries, one of them a timeout ("-" for its status and length).
    '203.0.113.8 - alice [28/Nov/2022:14:10:02 -0500] "GET /files/roster.xlsx HTTP/2.0" 206 1024 '
    '"https://www.agency.gov/" "Mozilla/5.0 (X11)" 90 5.012 [default-web-80] [] '
    "10.244.1.6:8080, 10.244.2.9:8080, 10.244.3.3:8080 0, 0, 1024 5.000, 0.004, 0.008 504, 502, 206 "
    "0c5e9f",
    # An internal redirect between upstream groups: " : " between the groups.
    '198.51.100.20 - - [28/Nov/2022:14:11:00 -0500] "GET /files/roster.xlsx HTTP/1.1" 200 10 "-" "curl/8" '
    "61 0.010 [default-web-80] [default-web-canary-80] 10.244.1.6:8080 : 10.244.3.3:8080 0 : 10 "
    "0.001 : 0.009 404 : 200 0c5ea0",
]


@pytest.mark.parametrize("fmt_name", [f"nginx:{INGRESS_LOG_FORMAT}", "ingress_nginx"])
def test_upstream_lists_read_with_the_sites_log_format_and_the_builtin(fmt_name):
    res, rows = read(fmt_name, INGRESS_LINES)
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert [r["status"] for r in rows] == [404, 200, 206, 200]
    retry = extra(rows[1])
    assert retry["upstream_addr"] == "10.244.1.6:8080, 10.244.2.9:8080"
    assert retry["upstream_status"] == "502, 200"
    assert retry["upstream_response_time"] == "0.004, 0.300"
    assert retry["upstream_response_length"] == "0, 1572864"
    assert extra(rows[2])["upstream_status"] == "504, 502, 206"
    assert extra(rows[3])["upstream_addr"] == "10.244.1.6:8080 : 10.244.3.3:8080"
    assert rows[2]["remote_user"] == "alice" and rows[2]["body_bytes"] == 1024


def test_upstream_lists_fast_path_agrees_with_the_exact_path():
    reader = make_reader(get_format("ingress_nginx"), "UTC")
    chunk = ("\n".join(INGRESS_LINES) + "\n").encode()
    fast = reader.read_chunk(1, chunk)
    reader.fast_enabled = False
    exact = reader.read_chunk(1, chunk)
    assert fast.requests.to_dicts() == exact.requests.to_dicts()
    assert fast.rejects.height == exact.rejects.height == 0


def test_ingress_nginx_is_detected_as_itself():
    assert detect_lines(INGRESS_LINES).format.name == "ingress_nginx"


def test_main_layout_with_an_upstream_list_named_as_the_sites_log_format():
    layout = (
        'nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" $upstream_addr $upstream_status'
    )
    line = (
        '10.0.0.9 - - [28/Nov/2022:14:10:00 -0500] "GET /a HTTP/1.1" 200 5 "-" "curl/8" '
        "unix:/run/app.sock, 10.0.0.2:80 502, 200"
    )
    _, (row,) = read(layout, [line])
    assert extra(row) == {"upstream_addr": "unix:/run/app.sock, 10.0.0.2:80", "upstream_status": "502, 200"}


# --- a last line without a newline ----------------------------------------------------------------

IIS_HEADER = [
    "#Software: Microsoft Internet Information Services 10.0",
    "#Version: 1.0",
    "#Date: 2022-11-28 19:00:00",
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
]
IIS_LINE = "2022-11-28 19:10:00 10.0.0.5 GET /docs/roster.xlsx - 443 - 203.0.113.77 Mozilla/5.0 - 200 0 0 31"


def test_w3c_file_without_final_newline_reads_with_its_format_named(tmp_path, write_case):
    body = "\r\n".join([*IIS_HEADER, IIS_LINE])  # IIS writes CRLF; no newline after the last line
    case = write_case([{"path": "u_ex221128.log", "format": "iis"}], files={"u_ex221128.log": body})
    rep = ingest(load_case(case), tmp_path / "out")
    (loaded,) = rep.loaded
    assert (loaded.lines_read, loaded.lines_parsed, loaded.lines_rejected, loaded.lines_skipped) == (5, 1, 0, 4)
    res = CliRunner().invoke(app, ["detect", "--format", "iis", str(tmp_path / "u_ex221128.log")])
    assert res.exit_code == 0 and "1 of the first 5 lines read" in res.output


def test_last_line_without_newline_is_in_the_head_detection_reads(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\nthree")
    assert head_lines(path, "none") == [b"one", b"two", b"three"]


def test_one_pretty_printed_entry_without_final_newline_is_read(tmp_path, write_case):
    entry = {
        "httpRequest": {"requestMethod": "GET", "requestUrl": "https://files.agency.gov/docs/roster.xlsx",
                        "status": 200, "responseSize": "1573200", "remoteIp": "203.0.113.77"},
        "insertId": "1oek5rg3l3fxj7", "logName": "projects/agency-web/logs/requests",
        "timestamp": "2022-11-28T19:10:00.078651Z",
    }
    text = json.dumps(entry, indent=2)
    case = write_case([{"path": "entry.json"}], files={"entry.json": text})
    rep = ingest(load_case(case), tmp_path / "out")
    (loaded,) = rep.loaded
    assert loaded.planned.fmt.name == "gcp_lb"
    assert (loaded.lines_parsed, loaded.lines_rejected, loaded.lines_read) == (1, 0, len(text.split("\n")))


# --- W3C files without a #Fields header -----------------------------------------------------------

# The same request as IIS writes it with each version's default field set.
HEADERLESS_IIS = {
    "IIS 8.5+ default": IIS_LINE,
    "IIS 7 default": "2022-11-28 19:10:00 10.0.0.5 GET /docs/roster.xlsx - 443 - 203.0.113.77 Mozilla/5.0 200 0 0 31",
    "IIS 6 default": "2022-11-28 19:10:00 10.0.0.5 GET /docs/roster.xlsx - 443 - 203.0.113.77 Mozilla/5.0 200 0 0",
    "IIS 6 with site": "2022-11-28 19:10:00 W3SVC1 10.0.0.5 GET /docs/roster.xlsx - 443 - 203.0.113.77 Mozilla/5.0 "
    "200 0 0",
    "default with bytes": "2022-11-28 19:10:00 10.0.0.5 GET /docs/roster.xlsx - 443 - 203.0.113.77 Mozilla/5.0 - 200 0 0 "
    "1573200 402 31",
    "every field + X-Forwarded-For": "2022-11-28 19:10:00 W3SVC1 WEB01 10.0.0.5 GET /docs/roster.xlsx - 443 - "
    "203.0.113.77 HTTP/1.1 Mozilla/5.0 - - www.agency.gov 200 0 0 1573200 402 31 198.51.100.4",
}


@pytest.mark.parametrize("name", sorted(HEADERLESS_IIS))
def test_headerless_iis_is_detected_and_read_with_the_fitting_default_fields(name):
    lines = [HEADERLESS_IIS[name]] * 3
    found = detect_lines(lines)
    assert found.format.name == "iis"
    reader = make_reader(found.format, "UTC")
    res = reader.read_lines(1, lines)
    assert res.rejects.height == 0
    row = res.requests.row(0, named=True)
    assert (row["client_addr"], row["path"], row["status"]) == ("203.0.113.77", "/docs/roster.xlsx", 200)
    assert row["ts"].isoformat() == "2022-11-28T19:10:00+00:00"
    assert "no #Fields header" in reader.notes[0]
    if name.startswith("every field"):
        assert extra(row)["x-unnamed-1"] == "198.51.100.4"
        assert "1 unnamed trailing field" in reader.notes[0]


CLOUDFRONT_FIELDS = get_format("cloudfront").default_fields or ""


def cloudfront_line(n_fields: int) -> str:
    values = {
        "date": "2022-11-28", "time": "19:10:00", "x-edge-location": "IAD89-C1", "sc-bytes": "1573200",
        "c-ip": "203.0.113.77", "cs-method": "GET", "cs(Host)": "d3abc.cloudfront.net",
        "cs-uri-stem": "/docs/roster.xlsx", "sc-status": "200", "x-edge-request-id": "SOX4xwn4XV6Q4rgb7XiVGOH==",
        "x-host-header": "www.agency.gov", "cs-protocol": "https", "time-taken": "0.120",
    }
    return "\t".join(values.get(f, "-") for f in CLOUDFRONT_FIELDS.split()[:n_fields])


@pytest.mark.parametrize("n_fields", [33, 26, 24])
def test_headerless_cloudfront_is_detected_also_with_older_shorter_lines(n_fields):
    lines = [cloudfront_line(n_fields)] * 3
    found = detect_lines(lines)
    assert found.format.name == "cloudfront"
    res, rows = read("cloudfront", lines)
    assert res.rejects.height == 0 and rows[0]["host"] == "www.agency.gov" and rows[0]["total_bytes"] == 1573200


def test_forensics_detect_names_a_headerless_file_and_says_how_it_read_it(tmp_path):
    path = tmp_path / "u_ex221128.log"
    path.write_text("\r\n".join([HEADERLESS_IIS["IIS 7 default"]] * 4) + "\r\n")
    res = CliRunner().invoke(app, ["detect", str(path)])
    assert res.exit_code == 0, res.output
    assert "iis (detected" in res.output and "4 of the first 4 lines read" in res.output
    assert "no #Fields header" in res.output and "14 fields" in res.output


def test_headerless_lines_no_default_list_fits_ask_for_fields_not_a_layout():
    line = "2022-11-28 19:10:00 GET /docs/roster.xlsx 203.0.113.77 200 31"
    with pytest.raises(DetectionError) as exc:
        detect_lines([line] * 3)
    text = str(exc.value)
    assert "without a #Fields header" in text and "fields = " in text
    assert "apache:" not in text and "LogFormat" not in text


# --- JSON shapes ------------------------------------------------------------------------------------

# Microsoft's documentation examples (learn.microsoft.com, application-gateway-diagnostics):
# an access record (v2, timeStamp), an access record (v1, time), a performance record and a
# firewall record.
APPGW_V2 = {
    "timeStamp": "2021-10-14T22:17:11+00:00", "operationName": "ApplicationGatewayAccess",
    "category": "ApplicationGatewayAccessLog",
    "properties": {"instanceId": "appgw_2", "clientIP": "185.42.129.24", "clientPort": 45057, "httpMethod": "GET",
                   "originalRequestUriWithArgs": "/", "requestUri": "/", "requestQuery": "",
                   "httpStatus": 200, "httpVersion": "HTTP/1.1", "receivedBytes": 184, "sentBytes": 466,
                   "timeTaken": 0.034, "transactionId": "592d1649f75a8d480a3c4dc6a975309d",
                   "originalHost": "20.110.30.194", "host": "20.110.30.194"},
}
APPGW_V1 = {
    "operationName": "ApplicationGatewayAccess", "time": "2017-04-26T19:27:38Z",
    "category": "ApplicationGatewayAccessLog",
    "properties": {"instanceId": "ApplicationGatewayRole_IN_0", "clientIP": "191.96.249.97", "clientPort": 46886,
                   "httpMethod": "GET", "requestUri": "/phpmyadmin/scripts/setup.php", "userAgent": "-",
                   "httpStatus": 404, "httpVersion": "HTTP/1.0", "receivedBytes": 65, "sentBytes": 553,
                   "timeTaken": 205, "sslEnabled": "off", "host": "www.contoso.com", "originalHost": "www.contoso.com"},
}
APPGW_PERFORMANCE = {
    "operationName": "ApplicationGatewayPerformance", "time": "2016-04-09T00:00:00Z",
    "category": "ApplicationGatewayPerformanceLog",
    "properties": {"instanceId": "ApplicationGatewayRole_IN_1", "healthyHostCount": "4", "unHealthyHostCount": "0",
                   "requestCount": "185", "latency": "0", "failedRequestCount": "0", "throughput": "119427"},
}
APPGW_FIREWALL = {
    "timeStamp": "2021-10-14T22:17:11+00:00", "operationName": "ApplicationGatewayFirewall",
    "category": "ApplicationGatewayFirewallLog",
    "properties": {"instanceId": "appgw_2", "clientIp": "185.42.129.24", "clientPort": "", "requestUri": "/",
                   "ruleSetType": "OWASP_CRS", "ruleSetVersion": "3.0.0", "ruleId": "920350",
                   "message": "Host header is a numeric IP address", "action": "Matched", "site": "Global",
                   "hostname": "20.110.30.194:80", "transactionId": "592d1649f75a8d480a3c4dc6a975309d"},
}


@pytest.mark.parametrize("time_key", ["timeStamp", "timestamp", "time"])
def test_app_gateway_time_under_any_of_its_spellings(time_key):
    record = {k: v for k, v in APPGW_V2.items() if k != "timeStamp"} | {time_key: "2021-10-14T22:17:11+00:00"}
    _, (row,) = read("azure_appgw", [json.dumps(record)])
    assert row["ts"].isoformat() == "2021-10-14T22:17:11+00:00" and row["client_addr"] == "185.42.129.24"


def test_app_gateway_stream_with_firewall_and_performance_records_reads_the_requests():
    records = [APPGW_FIREWALL, APPGW_V2, APPGW_PERFORMANCE, APPGW_FIREWALL,
               {**{k: v for k, v in APPGW_V2.items() if k != "timeStamp"}, "timestamp": "2021-10-14T22:18:00Z"},
               APPGW_PERFORMANCE, APPGW_V1, APPGW_FIREWALL]
    lines = [json.dumps(r) for r in records]
    assert detect_lines(lines).format.name == "azure_appgw"
    res, rows = read("azure_appgw", lines)
    assert [r["line_no"] for r in rows] == [2, 5, 7] and res.rejects.height == 0
    assert res.skipped == {
        f"{SKIP_NON_ACCESS} (category ApplicationGatewayFirewallLog)": 3,
        f"{SKIP_NON_ACCESS} (category ApplicationGatewayPerformanceLog)": 2,
    }


GCP_REQUEST = {
    "insertId": "1oek5rg3l3fxj7",
    "jsonPayload": {"@type": "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",
                    "statusDetails": "response_sent_by_backend"},
    "httpRequest": {"requestMethod": "GET", "requestUrl": "https://files.agency.gov/docs/roster.xlsx",
                    "status": 200, "responseSize": "1573200", "remoteIp": "203.0.113.77", "latency": "0.012s"},
    "logName": "projects/agency-web/logs/requests", "timestamp": "2022-11-28T19:10:00.078651Z",
}
GCP_HEALTH_CHECK = {
    "insertId": "abc123",
    "jsonPayload": {"healthCheckProbeResult": {"healthState": "HEALTHY", "ipAddress": "10.128.0.5",
                                               "previousHealthState": "UNHEALTHY", "responseLatency": "0.001s"}},
    "resource": {"type": "gce_instance_group", "labels": {"instance_group_name": "web"}},
    "logName": "projects/agency-web/logs/compute.googleapis.com%2Fhealthchecks",
    "timestamp": "2022-11-28T19:09:59.600Z",
}
GCP_ARMOR_DENY = {
    "insertId": "def456",
    "jsonPayload": {"enforcedSecurityPolicy": {"name": "waf", "outcome": "DENY"},
                    "statusDetails": "denied_by_security_policy"},
    "httpRequest": {"requestMethod": "GET", "requestUrl": "https://files.agency.gov/docs/roster.xlsx",
                    "status": 403, "responseSize": "200", "remoteIp": "198.51.100.9"},
    "logName": "projects/agency-web/logs/requests", "timestamp": "2022-11-28T19:10:05Z",
}


def test_gcloud_export_mixing_requests_and_health_checks_reads_the_requests():
    # `gcloud logging read --format=json`: an array of pretty-printed entries.
    lines = json.dumps([GCP_HEALTH_CHECK, GCP_REQUEST, GCP_HEALTH_CHECK, GCP_ARMOR_DENY], indent=2).split("\n")
    assert detect_lines(lines).format.name == "gcp_lb"
    res, rows = read("gcp_lb", lines)
    assert [(r["client_addr"], r["status"]) for r in rows] == [("203.0.113.77", 200), ("198.51.100.9", 403)]
    assert res.rejects.height == 0
    assert res.skipped[f"{SKIP_NON_ACCESS} (logName {GCP_HEALTH_CHECK['logName']})"] == 2
    assert len(rows) + sum(res.skipped.values()) == len(lines)


def test_one_pretty_printed_entry_is_detected_and_read():
    lines = json.dumps(GCP_REQUEST, indent=2).split("\n")
    assert detect_lines(lines).format.name == "gcp_lb"
    _, (row,) = read("gcp_lb", lines)
    assert row["line_no"] == 1 and row["path"] == "/docs/roster.xlsx" and row["time_taken_ms"] == 12.0


def test_fastly_json_logging_is_detected_and_read():
    fmt = get_format("fastly_json")
    lines = [s.line for s in fmt.samples]
    assert detect_lines(lines).format.name == "fastly_json"
    res, rows = read("fastly_json", lines)
    assert res.rejects.height == 0
    assert [r["status"] for r in rows] == [None, 206, 200]
    assert [r["cache_status"] for r in rows] == ["hit", "miss", "pass"]
    assert all(r["ts"].utcoffset().total_seconds() == 0 for r in rows)
    # Fastly's "request" key is the method (req.request), not an nginx request line.
    assert rows[0]["method"] == "GET" and rows[0]["path"] == "/docs/2022/roster.xlsx"


# --- CloudFront: X-Forwarded-For with a raw space ---------------------------------------------------

CLOUDFRONT_HEADER = ["#Version: 1.0", f"#Fields: {CLOUDFRONT_FIELDS}"]


def test_cloudfront_space_separated_line_with_a_raw_space_in_the_forwarded_list():
    fields = CLOUDFRONT_FIELDS.split()
    values = cloudfront_line(33).split("\t")
    values[fields.index("x-forwarded-for")] = "81.2.69.142, 216.160.83.56"
    spaced = " ".join(values)  # a copy whose tabs became spaces
    escaped = "\t".join(values).replace(", ", ",\\x20")  # as CloudFront writes it
    res, rows = read("cloudfront", [*CLOUDFRONT_HEADER, spaced, escaped])
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert [r["xff"] for r in rows] == ["81.2.69.142, 216.160.83.56"] * 2
    assert [r["client_addr"] for r in rows] == ["203.0.113.77"] * 2
    assert "field_repair" in extra(rows[0]) and "field_repair" not in extra(rows[1])


def test_a_space_separated_line_that_cannot_be_realigned_is_still_rejected():
    fields = CLOUDFRONT_FIELDS.split()
    values = cloudfront_line(33).split("\t")
    values[fields.index("cs-uri-query")] = "a=b c=d"  # a raw space that is not after a comma
    res, rows = read("cloudfront", [*CLOUDFRONT_HEADER, " ".join(values)])
    assert not rows and "has 34 fields" in res.rejects.get_column("reason")[0]


# --- Traefik: an unbalanced quote in the router name ------------------------------------------------

TRAEFIK_LINES = [
    '203.0.113.5 - - [28/Nov/2022:19:10:00 +0000] "GET /docs/roster.xlsx HTTP/2.0" 200 1572864 "-" "Mozilla/5.0" '
    '1207 "web-"secure@docker" "http://10.0.0.3:80" 5ms',
    '203.0.113.6 - - [28/Nov/2022:19:10:01 +0000] "GET /docs/roster.xlsx HTTP/2.0" 200 1572864 - "Mozilla/5.0" '
    '1208 "Host(`a.gov`) && Path(`/x"y`) "http://10.0.0.3:80" 7ms',
    '203.0.113.7 - - [28/Nov/2022:19:10:02 +0000] "GET /docs/roster.xlsx HTTP/1.1" 206 1024 "-" "curl/8.0" '
    '1209 "websecure-files@file "http://10.0.0.3:80" 1ms',
]


def test_traefik_router_name_with_an_unbalanced_quote_reads_the_request():
    res, rows = read("traefik_clf", TRAEFIK_LINES)
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert [(r["client_addr"], r["status"], r["body_bytes"], r["time_taken_ms"]) for r in rows] == [
        ("203.0.113.5", 200, 1572864, 5.0), ("203.0.113.6", 200, 1572864, 7.0), ("203.0.113.7", 206, 1024, 1.0)
    ]
    assert extra(rows[2])["traefik_router_and_backend"] == '"websecure-files@file "http://10.0.0.3:80"'
    assert detect_lines(TRAEFIK_LINES).format.name == "traefik_clf"


def test_traefik_line_with_a_broken_request_part_is_still_rejected():
    line = '203.0.113.5 - - [28/Nov/2022:19:10:00 +0000] "GET /a HTTP/2.0 200 5 "-" "x" 1 "r" "http://b" 5ms'
    res, rows = read("traefik_clf", [line])
    assert not rows and res.rejects.height == 1


def test_sample_sources_are_recorded():
    # Every sample added for these classes says where it comes from and under which licence.
    for name in ("ingress_nginx", "fastly_json"):
        for sample in get_format(name).samples:
            assert sample.source and sample.license, (name, sample.line[:40])


def test_chunked_reading_and_whole_reading_agree_for_a_document(tmp_path: Path):
    lines = json.dumps([GCP_REQUEST, GCP_HEALTH_CHECK], indent=2).split("\n")
    path = tmp_path / "export.json"
    path.write_text("\n".join(lines))  # no final newline
    reader = make_reader(get_format("gcp_lb"), "UTC")
    state = ReadState()
    results = [reader.read_chunk(start, chunk) for start, chunk, _ in read_chunks(path, "none", state)]
    results.append(reader.finish())
    assert sum(r.requests.height for r in results) == 1
    assert sum(r.rejects.height for r in results) == 0
    assert state.lines == len(lines)


def test_forensics_detect_on_a_long_export_does_not_call_its_head_cut_short(tmp_path):
    # 20 pretty-printed entries are longer than the 200 lines `forensics detect` reads.
    path = tmp_path / "export.json"
    path.write_text(json.dumps([GCP_REQUEST] * 20, indent=2) + "\n")
    res = CliRunner().invoke(app, ["detect", str(path)])
    assert res.exit_code == 0, res.output
    assert "gcp_lb (detected" in res.output and "rejected" not in res.output
