"""Beyond the downloader list: requests to network operators, likely the same downloader, how the
link spread. Each rule on hand-made log lines read through the real ingest and investigation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.casefile import load_case
from forensics.db import connect
from forensics.followup import format_logs_port, formats_logging_ports, ipv6_prefix
from forensics.formats import get_format
from forensics.pipeline import run_case
from tests.test_investigate import CF_PROXY, FILE, SIZE, case_toml, cf_file, cf_line, nginx_line

# Made-up networks for the enrichment (the demo's seed format): which operator holds which address.
SEED = """network,country,country_name,subdivision,city,latitude,longitude,asn,as_org,hosting,tor
172.32.0.0/11,US,United States,New York,New York,40.71,-74.01,21928,T-Mobile USA (test),false,false
2601::/20,US,United States,Illinois,Chicago,41.88,-87.63,7922,Comcast Cable (test),false,false
95.216.0.0/16,FI,Finland,Uusimaa,Helsinki,60.17,24.94,24940,Hetzner Online (test),true,false
90.192.0.0/11,GB,United Kingdom,England,London,51.51,-0.13,5607,Sky Broadband (test),false,false
31.94.0.0/16,GB,United Kingdom,England,London,51.51,-0.13,12576,EE Mobile (test),false,false
"""

ALB_LINE = (
    'https 2022-11-28T20:05:00.186641Z app/lb/50dc6c495c0c9188 {client}:{port} 10.0.0.1:80 0.000 0.001 0.000 '
    '{status} {status} 34 {size} "GET https://www.agency.gov:443' + FILE + ' HTTP/1.1" "curl/7.86.0" '
    'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/t/1 '
    '"Root=1-58337262-36d228ad5d99923122bbe354" "www.agency.gov" "-" 0 2022-11-28T20:04:59.900000Z '
    '"forward" "-" "-" "10.0.0.1:80" "200" "-" "-" "TID_1" "-"'
)


def with_port(line: str, port: int) -> str:
    """A CloudFront record with its c-port field set."""
    fields = line.split("\t")
    fields[26] = str(port)
    return "\t".join(fields)


def run_follow_up_case(
    write_case: Any,
    tmp_path: Path,
    cdn: list[str] | None = None,
    origin: list[str] | None = None,
    alb: list[str] | None = None,
    extra: str = "",
    **case_args: Any,
) -> Path:
    files: dict[str, bytes | str] = {"seed.csv": SEED}
    sources = []
    if cdn is not None:
        files["cdn/E1.2022-11-28-20.a.gz"] = cf_file(*cdn)
        sources.append({"path": "cdn/*.gz", "format": "cloudfront", "role": "cdn"})
    if origin is not None:
        files["origin/access.log"] = "\n".join(origin) + "\n"
        sources.append({"path": "origin/access.log", "format": "nginx_main", "role": "origin"})
    if alb is not None:
        files["alb/a.log"] = "\n".join(alb) + "\n"
        sources.append({"path": "alb/a.log", "format": "aws_alb", "role": "cdn"})
    toml = case_toml(**case_args) + '\n[enrich]\ndemo_seed = "seed.csv"\n' + extra
    case_path = write_case(sources, extra=toml, files=files)
    out = tmp_path / "out"
    run_case(load_case(case_path), out)
    return out


def table(out: Path, sql: str) -> list[dict[str, Any]]:
    con = connect(out / "case.duckdb", read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- requests to network operators ---------------------------------------------------------------


def test_operator_rows_carry_port_time_outcome_and_log_line(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(
        write_case, tmp_path,
        cdn=[
            with_port(cf_line("2022-11-28 20:10:05", "172.58.1.10", 200, SIZE + 400), 40001),
            with_port(cf_line("2022-11-28 20:12:00", "172.58.1.10", 304, 250, content_len="-"), 40002),
            with_port(cf_line("2022-11-28 20:15:00", "172.56.9.9", 0, 5000, result="Error"), 51515),
        ],
        origin=[
            nginx_line("2022-11-28 20:20:00", "95.216.142.33", 200, SIZE),  # went around the CDN
            # relayed by the CDN with no edge record: the peer's port would be the proxy's
            nginx_line("2022-11-28 20:30:00", CF_PROXY, 200, SIZE, xff="90.200.1.1"),
        ],
    )
    rows = csv_rows(out / "operator_requests.csv")
    assert (out / "operator_requests.xlsx").stat().st_size > 0
    by_ip: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_ip.setdefault(r["client_ip"], []).append(r)
    tmobile = by_ip["172.58.1.10"]
    assert [(r["client_port"], r["utc_time"], r["status"], r["outcome"]) for r in tmobile] == [
        ("40001", "2022-11-28T20:10:05Z", "200", "complete"),
        ("40002", "2022-11-28T20:12:00Z", "304", "complete"),
    ]
    assert all(r["operator"] == "T-Mobile USA (test)" and r["asn"] == "21928" for r in tmobile)
    assert all(r["time_zone"] == "UTC" and r["port_logged"] == "true" for r in tmobile)
    first = tmobile[0]
    assert first["source_file"] == "cdn/E1.2022-11-28-20.a.gz" and first["line_no"] == "3"
    sha = table(out, "SELECT sha256 FROM sources WHERE path = 'cdn/E1.2022-11-28-20.a.gz'")[0]["sha256"]
    assert first["source_sha256"] == sha and len(sha) == 64
    # The viewer that hung up (000) is partial, with its own port.
    assert [(r["client_port"], r["outcome"], r["status"]) for r in by_ip["172.56.9.9"]] == [("51515", "partial", "0")]
    # nginx main logs no port: a direct client has none, and the format says so.
    direct = by_ip["95.216.142.33"][0]
    assert direct["client_port"] == "" and direct["port_logged"] == "false" and direct["operator"] == "Hetzner Online (test)"
    # The client behind the trusted proxy: an address, but never the proxy's port.
    behind = by_ip["90.200.1.1"][0]
    assert behind["client_port"] == "" and behind["role"] == "origin"
    # Grouped by operator: every operator's rows are together, in the order of the names.
    operators = [r["operator"] for r in rows]
    assert operators == sorted(operators, key=lambda o: (o == "unknown network", o))
    assert set(by_ip) == {r["client_ip"] for r in table(out, "SELECT client_ip FROM downloaders")}


def test_times_keep_milliseconds_where_the_log_has_them(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(
        write_case, tmp_path,
        cdn=[with_port(cf_line("2022-11-28 20:10:05", "172.58.1.10", 200, SIZE + 400), 40001)],
        alb=[ALB_LINE.format(client="2601:14d:8300:7a20::5", port=61000, status=200, size=SIZE + 300)],
        hosts="[]",
    )
    rows = {r["client_ip"]: r for r in csv_rows(out / "operator_requests.csv")}
    assert rows["2601:14d:8300:7a20::5"]["utc_time"] == "2022-11-28T20:05:00.186Z"
    assert rows["2601:14d:8300:7a20::5"]["client_port"] == "61000"
    assert rows["172.58.1.10"]["utc_time"] == "2022-11-28T20:10:05Z"  # CloudFront logs whole seconds
    precision = {r["format"]: r["time_precision"] for r in table(out, "SELECT * FROM operator_requests")}
    assert precision == {"aws_alb": "millisecond", "cloudfront": "second"}


def test_which_formats_log_the_client_port() -> None:
    with_port, without = formats_logging_ports()
    for name in ("cloudfront", "aws_alb", "cloudflare_logpush", "cloudfront_realtime", "gcp_lb"):
        assert name in with_port
    for name in ("nginx_main", "combined", "common", "aws_s3"):
        assert name in without
    assert not set(with_port) & set(without)
    assert format_logs_port(get_format("nginx:$remote_addr:$remote_port [$time_local] \"$request\" $status"))


def test_ipv6_prefixes() -> None:
    assert ipv6_prefix("2601:14d:8300:7a20:d4c3:91ff:2b17:6e05", 64) == "2601:14d:8300:7a20::/64"
    assert ipv6_prefix("2601:14d:8300:7a20:d4c3:91ff:2b17:6e05", 56) == "2601:14d:8300:7a00::/56"
    assert ipv6_prefix("172.58.1.10", 64) is None
    assert ipv6_prefix("::ffff:172.58.1.10", 64) is None


def test_an_old_case_without_follow_up_tables_still_reports(tmp_path: Path) -> None:
    from forensics.followup import report_context

    con = duckdb.connect()
    from forensics.db import create_tables

    create_tables(con)
    ctx = report_context(con)
    assert ctx["operators"] == [] and ctx["operator_rows"] == 0


@pytest.mark.parametrize("name", ["cloudfront", "aws_alb", "cloudflare_logpush"])
def test_port_formats_have_a_port_in_their_samples(name: str) -> None:
    fmt = get_format(name)
    assert format_logs_port(fmt)
    assert any("client_port" in s.expect for s in fmt.samples)
