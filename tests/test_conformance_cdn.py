"""CDN, cloud and proxy logs written by other projects (../shared/samples, see its MANIFEST.md):
every sample file is read with only the rejects listed here, each with its reason; where the
sample comes with expected parsed output (Elastic's tests for Google Cloud and ALB lines 1-2),
the client address, time, method, path, status, bytes, agent and referer agree. Detection names
every sample file of every format as its own format only. A case mixing an S3 bucket's logs,
Cloudflare and an nginx origin runs end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forensics.casefile import load_case
from forensics.detect import detect_lines
from forensics.errors import DetectionError
from forensics.pipeline import run_case
from tests.conftest import shared_path
from tests.formats.test_cdn_formats import FIXTURES
from tests.test_conformance import CASES as EXISTING_CASES
from tests.test_conformance import read_file

NLB = "NLB TLS listener log line (a connection, not an HTTP request)"
CONNECTION = "ALB connection log line (a TLS connection, not an HTTP request)"

# file -> (format or "auto", SourceSpec extras, {line: reason} of expected rejects)
CASES: dict[str, tuple[str, dict, dict[int, str]]] = {
    # plaso's ALB file ends with two NLB TLS lines (same bucket, another log).
    # Line 14 is a classic ELB TCP listener entry: no request, and -1 for the byte counts, which
    # a byte count cannot be.
    "aws_alb/aws_elb_access.log": ("auto", {}, {14: "total_bytes is negative", 15: NLB, 16: NLB}),
    "aws_alb/lnav_src_formats_alb_log.samples.txt": ("auto", {}, {}),
    "aws_alb/lnav_src_formats_elb_log.samples.txt": ("auto", {}, {}),
    # Elastic's file: 2 ALB lines, 4 NLB TLS lines and 3 ALB connection-log lines.
    "aws_alb/test-alb.log": (
        "auto", {}, {3: NLB, 4: NLB, 5: NLB, 6: NLB, 7: CONNECTION, 8: CONNECTION, 9: CONNECTION}
    ),
    "aws_s3_access/lnav_src_formats_s3_log.samples.txt": ("auto", {}, {}),
    "aws_s3_access/test-s3-server-access.log": ("auto", {}, {}),
    "cloudflare_logpush/logfile_cloudflare.1": ("auto", {}, {}),
    "cloudflare_logpush/logfile_cloudflare.json": ("auto", {}, {}),
    "cloudflare_logpush/test-pipeline-http-request.log": ("auto", {}, {}),
    # MANIFEST: "last line intentionally malformed" ({''"records"'': ...}).
    "azure_frontdoor/test-fdaccess.log": (
        "auto", {}, {7: "not valid JSON (Expecting property name enclosed in double quotes"}
    ),
    "azure_appgw/azure_application_gateway_access.json": ("auto", {}, {}),
    "gcp_lb/test-load-balancer.log": ("auto", {}, {}),
    "caddy_json/logfile_caddy_log.0": ("auto", {}, {}),
    "caddy_json/logfile_caddy_log.1": ("auto", {}, {}),
    "traefik/test-format-common.log": ("auto", {}, {}),
    "traefik/test-format-json.log": ("auto", {}, {}),
}

# What each sample folder's files must be detected as.
FOLDER_FORMAT = {
    "apache_combined": "combined",
    "apache_common_vhost_ssl": None,  # per file, below
    "nginx": "nginx_combined",
    "iis_w3c": "iis",
    "cloudfront_standard": "cloudfront",
    "aws_alb": "aws_alb",
    "aws_s3_access": "aws_s3",
    "cloudflare_logpush": "cloudflare_logpush",
    "azure_frontdoor": "azure_frontdoor",
    "azure_appgw": "azure_appgw",
    "gcp_lb": "gcp_lb",
    "caddy_json": "caddy",
    "traefik": None,
}
FILE_FORMAT = {
    "apache_combined/logfile_shop_access_log.0": "nginx_main",  # combined + "$http_x_forwarded_for"
    "apache_common_vhost_ssl/ssl-request.log": "apache_ssl_request",
    "apache_common_vhost_ssl/test-vhost.log": "vhost_combined",
    "apache_common_vhost_ssl/test.log": "combined",
    "traefik/test-format-common.log": "traefik_clf",
    "traefik/test-format-json.log": "traefik_json",
}
# Files whose first lines cannot name one format: detection must refuse (and ask for the format)
# rather than pick a wrong one. The conformance tests read them with the format named.
UNDECIDABLE = {
    "apache_combined/lnav_src_formats_access_log.samples.txt": "lnav's list mixes five layouts",
    "apache_combined/logfile_bad_access_log.0": "a 3-line file with a malformed line",
}


def sample_files() -> list[str]:
    root = shared_path("samples")
    out = []
    for path in sorted(root.glob("*/*")):
        name = str(path.relative_to(root))
        if "-expected" in path.name or path.name.endswith(".out"):
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_cdn_sample_file_reads_with_only_known_rejects(name):
    path = shared_path("samples", name)
    fmt_name, extras, expected_rejects = CASES[name]
    fmt, state, requests, rejects, skipped = read_file(path, fmt_name, extras)
    assert state.lines == len(requests) + len(rejects) + skipped
    assert sorted(rejects) == sorted(expected_rejects), rejects
    for line, needle in expected_rejects.items():
        assert needle in rejects[line]
    for r in requests:
        assert r["ts"] is not None and r["ts"].utcoffset().total_seconds() == 0
        assert r["status"] is not None or fmt.name in ("aws_alb", "traefik_clf"), r
    assert requests, name


def test_every_cdn_sample_file_is_covered():
    root = shared_path("samples")
    folders = ("aws_alb", "aws_s3_access", "cloudflare_logpush", "azure_frontdoor", "azure_appgw",
               "gcp_lb", "caddy_json", "traefik")
    on_disk = {
        str(p.relative_to(root)) for f in folders for p in (root / f).iterdir() if "-expected" not in p.name
    }
    assert on_disk == set(CASES)


def test_caddy_counts_its_non_access_lines():
    _, state, requests, rejects, skipped = read_file(shared_path("samples", "caddy_json", "logfile_caddy_log.0"), "auto", {})
    assert (state.lines, len(requests), len(rejects), skipped) == (39, 4, 0, 35)
    assert all(r["client_addr"] == "172.19.0.1" for r in requests)


def test_s3_batch_operation_with_bare_dashes_and_unauthenticated_fields():
    _, _, requests, _, _ = read_file(shared_path("samples", "aws_s3_access", "test-s3-server-access.log"), "auto", {})
    batch = next(r for r in requests if r["line_no"] == 5)
    assert (batch["status"], batch["method"], batch["body_bytes"], batch["object_size"]) == (204, None, 0, 344017)
    service = next(r for r in requests if r["line_no"] == 7)
    assert service["client_addr"] is None and service["host"] == "flow-log-test.s3.us-gov-west-1.amazonaws.com"


def _flat(obj: Any, prefix: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, obj


def _ms(ts) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def test_gcp_lb_agrees_with_elastic_expected_output():
    log = shared_path("samples", "gcp_lb", "test-load-balancer.log")
    expected = json.loads(shared_path("samples", "gcp_lb", "test-load-balancer.log-expected.json").read_text())["expected"]
    _, _, requests, _, _ = read_file(log, "gcp_lb", {})
    assert len(requests) == len(expected) == 3
    for r, event in zip(requests, expected, strict=True):
        e = dict(_flat(event))
        assert r["client_addr"] == e["source.address"]
        assert r["client_port"] == e.get("source.port")
        assert _ms(r["ts"]) == e["@timestamp"]
        assert r["method"] == e["http.request.method"]
        assert r["path"] == e["url.path"]
        assert r["status"] == e["http.response.status_code"]
        # Google's responseSize counts headers and body: our total_bytes.
        assert r["total_bytes"] == e["http.response.bytes"]
        assert r["user_agent"] == e.get("user_agent.original")
        assert r["referer"] == e.get("http.request.referrer")


def test_alb_agrees_with_elastic_expected_output_for_lines_1_and_2():
    log = shared_path("samples", "aws_alb", "test-alb.log")
    expected = json.loads(
        shared_path("samples", "aws_alb", "test-alb.log-expected.OLDER-fe9303c7.lines1-2.json").read_text()
    )["expected"]
    _, _, requests, _, _ = read_file(log, "aws_alb", {})
    by_line = {r["line_no"]: r for r in requests}
    for line_no, event in enumerate(expected, 1):
        e = dict(_flat(event))
        r = by_line[line_no]
        assert r["client_addr"] == e["source.address"] and r["client_port"] == e["source.port"]
        assert _ms(r["ts"]) == e["@timestamp"]
        assert r["method"] == e["http.request.method"]
        assert r["path"] == e["url.path"] and r["query"] == e.get("url.query")
        assert r["status"] == e["http.response.status_code"]
        # Elastic files ALB sent_bytes as body bytes; AWS documents it as including headers.
        assert r["total_bytes"] == e["http.response.body.bytes"]
        assert r["user_agent"] == e.get("user_agent.original")
        assert r["referer"] == e.get("http.request.referrer")
        assert r["protocol"] == "HTTP/" + e["http.version"]


def _head(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "backslashreplace").split("\n")[:200]


def test_detection_confusion_every_sample_file_is_its_own_format_only():
    """Every sample file of every format (../shared samples, and the documented-field fixtures for
    formats with no public sample) is detected as its own format; files that cannot name one
    format are refused, never given a wrong one."""
    wrong: dict[str, str] = {}
    for name in sample_files():
        folder = name.split("/")[0]
        want = FILE_FORMAT.get(name) or FOLDER_FORMAT[folder]
        try:
            got = detect_lines(_head(shared_path("samples", name)), name).format.name
        except DetectionError:
            got = "refused"
        if name in UNDECIDABLE:
            want = "refused"
        if got != want:
            wrong[name] = f"{got} (want {want})"
    for fmt_name, lines in FIXTURES.items():
        got = detect_lines(lines, fmt_name).format.name
        if got != fmt_name:
            wrong[f"fixture:{fmt_name}"] = got
    assert not wrong, wrong
    assert set(EXISTING_CASES) | set(CASES) <= set(sample_files())


# --- end to end: an S3 bucket, Cloudflare and an nginx origin -----------------------------------

FILE = "/docs/2022/detention-roster.xlsx"
SIZE = 1_000_000
CF_EDGE = "172.70.100.20"  # a Cloudflare address, trusted below


def cloudflare_line(ts_ns: int, viewer: str, status: int, body: int, cache: str, ray: str) -> str:
    return json.dumps({
        "ClientIP": viewer, "ClientRequestHost": "www.agency.gov", "ClientRequestMethod": "GET",
        "ClientRequestURI": FILE, "ClientRequestUserAgent": "Mozilla/5.0", "ClientRequestReferer": "",
        "EdgeStartTimestamp": ts_ns, "EdgeResponseBytes": body + 400, "EdgeResponseBodyBytes": body,
        "EdgeResponseStatus": status, "RayID": ray, "CacheCacheStatus": cache, "EdgeColoCode": "IAD",
    })


def s3_line(clf_time: str, ip: str, status: int, sent: int | str, req_id: str) -> str:
    return (
        f"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be agency-files [{clf_time}] {ip} - "
        f"{req_id} REST.GET.OBJECT docs/2022/detention-roster.xlsx \"GET {FILE} HTTP/1.1\" {status} - "
        f"{sent} {SIZE} 120 15 \"-\" \"aws-cli/2.15\" - host/id= SigV4 ECDHE-RSA-AES128-GCM-SHA256 "
        "AuthHeader agency-files.s3.us-east-1.amazonaws.com TLSv1.3 - -"
    )


def test_s3_cloudflare_and_origin_case_runs_end_to_end(write_case, tmp_path):
    cloudflare = [
        # 2022-11-28T20:00:00Z, a cache miss the origin served to Cloudflare.
        cloudflare_line(1669665600_000000000, "198.51.100.7", 200, SIZE, "miss", "7a1b2c3d4e5f0001"),
        cloudflare_line(1669665900_000000000, "203.0.113.200", 200, 250_000, "hit", "7a1b2c3d4e5f0002"),
    ]
    origin = [
        f'{CF_EDGE} - - [28/Nov/2022:15:00:00 -0500] "GET {FILE} HTTP/1.1" 200 {SIZE} "-" "Mozilla/5.0" "198.51.100.7"',
    ]
    s3 = [
        s3_line("28/Nov/2022:20:10:00 +0000", "192.0.2.44", 200, SIZE, "3E57427F3EXAMPLE"),
        s3_line("28/Nov/2022:20:11:00 +0000", "203.0.113.9", 200, 400_000, "3E57427F3EXAMPL2"),
    ]
    sources = [
        {"path": "s3/", "role": "origin"},
        {"path": "cloudflare/", "role": "cdn"},
        {"path": "nginx/access.log", "role": "origin"},
    ]
    case = (
        '[exposure]\nstart = "2022-11-28T19:00:00Z"\nend = "2022-11-28T23:00:00Z"\nmargin = "30m"\n\n'
        f'[[resources]]\npath = "{FILE}"\nhosts = ["www.agency.gov", "agency-files.s3.us-east-1.amazonaws.com"]\n'
        f"size = {SIZE}\n\n"
        '[proxies]\ntrusted = ["172.64.0.0/13"]\n'
    )
    files = {
        "s3/2022-11-28-20-15-00-ABCDEF": "\n".join(s3) + "\n",
        "cloudflare/20221128T200000Z_20221128T203000Z_a1b2.log": "\n".join(cloudflare) + "\n",
        "nginx/access.log": "\n".join(origin) + "\n",
    }
    report = run_case(load_case(write_case(sources, extra=case, files=files)), tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    formats = {Path(s["path"]).parts[0]: s["format"] for s in manifest["sources"]}
    assert formats == {"s3": "aws_s3", "cloudflare": "cloudflare_logpush", "nginx": "nginx_main"}
    assert all(s["lines_rejected"] == 0 for s in manifest["sources"])
    rows = {r["client_ip"]: r for r in json.loads((tmp_path / "out" / "downloaders.json").read_text())}
    assert set(rows) == {"198.51.100.7", "203.0.113.200", "192.0.2.44", "203.0.113.9"}
    assert rows["198.51.100.7"]["outcome"] == "complete"
    assert rows["198.51.100.7"]["requests"] == 1, "the Cloudflare row and its origin fetch are one request"
    assert rows["192.0.2.44"]["outcome"] == "complete"
    # S3 logs bytes_sent below object_size: a partial download, told by the log itself.
    assert rows["203.0.113.9"]["outcome"] == "partial"
    assert rows["203.0.113.200"]["outcome"] == "partial"
    assert report.headline["complete"] == 2 and report.headline["partial"] == 2
