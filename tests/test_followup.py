"""Beyond the downloader list: requests to network operators, likely the same downloader, how the
link spread. Each rule on hand-made log lines read through the real ingest and investigation."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.casefile import load_case
from forensics.db import connect
from forensics.followup import format_logs_port, formats_logging_ports, ipv6_prefix, stage_query
from forensics.formats import get_format
from forensics.pipeline import run_case
from forensics.schema import SOURCES, SPREAD_REQUESTS
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


APACHE_WITH_PORT = '%h %{remote}p %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'


def test_an_apache_layout_with_the_remote_port_fills_it(write_case: Any, tmp_path: Path) -> None:
    assert format_logs_port(get_format("apache:" + APACHE_WITH_PORT))
    line = f'172.58.1.10 51234 - - [28/Nov/2022:15:10:05 -0500] "GET {FILE} HTTP/1.1" 200 {SIZE} "-" "curl/8.0"'
    files = {"seed.csv": SEED, "origin/access.log": line + "\n"}
    sources = [{"path": "origin/access.log", "format": "apache:" + APACHE_WITH_PORT, "role": "origin",
                "timezone": "UTC"}]
    case_path = write_case(sources, extra=case_toml() + '\n[enrich]\ndemo_seed = "seed.csv"\n', files=files)
    run_case(load_case(case_path), tmp_path / "out")
    (row,) = csv_rows(tmp_path / "out" / "operator_requests.csv")
    assert (row["client_ip"], row["client_port"], row["utc_time"], row["port_logged"]) == (
        "172.58.1.10", "51234", "2022-11-28T20:10:05Z", "true")


def test_ipv6_prefixes() -> None:
    assert ipv6_prefix("2601:14d:8300:7a20:d4c3:91ff:2b17:6e05", 64) == "2601:14d:8300:7a20::/64"
    assert ipv6_prefix("2601:14d:8300:7a20:d4c3:91ff:2b17:6e05", 56) == "2601:14d:8300:7a00::/56"
    assert ipv6_prefix("172.58.1.10", 64) is None
    assert ipv6_prefix("not an address", 64) is None
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


# --- likely the same downloader ------------------------------------------------------------------

V6_A = "2601:14d:8300:7a20:d4c3:91ff:2b17:6e05"
V6_B = "2601:14d:8300:7a20:8e1:5ab2:7f40:c39d"
V6_OTHER = "2601:14d:8300:7b00::9"  # same /48, another /64
PHONE = "Mozilla/5.0 (Linux; Android 13; SM-S901U) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
LAPTOP = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:107.0) Gecko/20100101 Firefox/107.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HALF = SIZE // 2


def with_referer(line: str, referer: str) -> str:
    fields = line.split("\t")
    fields[9] = referer
    return "\t".join(fields)


def links(out: Path) -> set[tuple[str, str, str]]:
    return {(r["client_a"], r["client_b"], r["rule"]) for r in table(out, "SELECT * FROM downloader_links")}


def groups(out: Path) -> dict[str, dict[str, Any]]:
    rows = table(out, "SELECT * FROM downloader_groups ORDER BY group_id, client_ip")
    out_groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = out_groups.setdefault(r["group_id"], {**r, "addresses": set(), "outcomes": {}})
        g["addresses"].add(r["client_ip"])
        g["outcomes"][r["client_ip"]] = r["outcome"]
    return out_groups


def test_same_ipv6_prefix_joins_rotating_privacy_addresses(write_case: Any, tmp_path: Path) -> None:
    cdn = [
        cf_line("2022-11-28 20:10:00", V6_A, 0, 300_000, result="Error", ua=LAPTOP),
        cf_line("2022-11-28 21:50:00", V6_B, 200, SIZE + 400, ua="another browser"),
        cf_line("2022-11-28 20:30:00", V6_OTHER, 200, SIZE + 400, ua="a third browser"),
        cf_line("2022-11-28 20:31:00", "172.58.1.10", 200, SIZE + 400, ua="a fourth"),
    ]
    out = run_follow_up_case(write_case, tmp_path / "a", cdn=cdn)
    # Rotation can take hours: the prefix rule has no time limit inside the examined period.
    assert links(out) == {(V6_B, V6_A, "same_ipv6_prefix")}
    (g,) = groups(out).values()
    assert g["addresses"] == {V6_A, V6_B}
    assert g["outcomes"] == {V6_A: "partial", V6_B: "complete"}  # each keeps its own outcome
    assert (g["group_outcome"], g["group_complete_by"]) == ("complete", "member")
    evidence = table(out, "SELECT evidence FROM downloader_links")[0]["evidence"]
    assert evidence == "both in 2601:14d:8300:7a20::/64"
    # The prefix length is the case file's: at /48 the third address joins too.
    wide = run_follow_up_case(write_case, tmp_path / "b", cdn=cdn, extra="[same_downloader]\nipv6_prefix = 48\n")
    (g,) = groups(wide).values()
    assert g["addresses"] == {V6_A, V6_B, V6_OTHER}


def test_seconds_apart_is_the_nearest_requests_of_the_two_addresses(write_case: Any, tmp_path: Path) -> None:
    # Interleaved requests: the nearest two of different addresses are 21:40 and 21:52 (12 min),
    # not the first or last of either, and not two requests of the same address (20:10 and 20:11).
    a_times = ("20:10:00", "20:11:00", "20:50:00", "21:40:00")
    b_times = ("20:30:00", "21:52:00", "22:40:00")
    cdn = [cf_line(f"2022-11-28 {t}", V6_A, 200, SIZE + 400, ua=LAPTOP) for t in a_times]
    cdn += [cf_line(f"2022-11-28 {t}", V6_B, 200, SIZE + 400, ua=PHONE) for t in b_times]
    out = run_follow_up_case(write_case, tmp_path / "a", cdn=cdn)
    (link,) = table(out, "SELECT * FROM downloader_links")
    assert (link["client_a"], link["client_b"], link["seconds_apart"]) == (V6_B, V6_A, 720)
    # A request of each at the same moment: no time apart.
    same = run_follow_up_case(
        write_case, tmp_path / "b", cdn=[*cdn, cf_line("2022-11-28 23:05:00", V6_B, 200, SIZE + 400, ua=PHONE),
                                         cf_line("2022-11-28 23:05:00", V6_A, 200, SIZE + 400, ua=LAPTOP)],
    )
    assert table(same, "SELECT seconds_apart FROM downloader_links")[0]["seconds_apart"] == 0


def test_same_agent_and_network_within_the_interval(write_case: Any, tmp_path: Path) -> None:
    cdn = [
        cf_line("2022-11-28 20:10:00", "172.56.21.7", 0, 200_000, result="Error", ua=PHONE),
        cf_line("2022-11-28 20:14:00", "172.58.97.140", 200, SIZE + 400, ua=PHONE),  # 4 min later: joined
        cf_line("2022-11-28 20:34:00", "172.58.5.5", 200, SIZE + 400, ua=PHONE),  # 20 min after the last
        cf_line("2022-11-28 20:14:30", "172.58.8.8", 200, SIZE + 400, ua=LAPTOP),  # other user agent
        cf_line("2022-11-28 20:15:00", "31.94.7.201", 200, SIZE + 400, ua=PHONE),  # other network
        # A crawler fleet shares agent and network by design: never joined by this rule.
        cf_line("2022-11-28 21:00:00", "172.58.9.1", 200, SIZE + 400, ua=GOOGLEBOT),
        cf_line("2022-11-28 21:01:00", "172.58.9.2", 200, SIZE + 400, ua=GOOGLEBOT),
    ]
    out = run_follow_up_case(write_case, tmp_path / "a", cdn=cdn)
    assert links(out) == {("172.56.21.7", "172.58.97.140", "same_agent_and_network")}
    link = table(out, "SELECT * FROM downloader_links")[0]
    assert link["seconds_apart"] == 240
    assert link["evidence"].startswith("AS21928 T-Mobile USA (test), user agent Mozilla/5.0 (Linux; Android 13")
    # The interval is the case file's.
    wide = run_follow_up_case(write_case, tmp_path / "b", cdn=cdn, extra='[same_downloader]\nagent_network_within = "30m"\n')
    assert {g_["addresses"].__len__() for g_ in groups(wide).values()} == {3}
    assert ("172.58.5.5", "172.58.97.140", "same_agent_and_network") in links(wide)


def test_complementary_ranges_make_a_complete_copy_for_the_group_only(write_case: Any, tmp_path: Path) -> None:
    first = cf_line("2022-11-28 20:40:05", "90.214.17.88", 206, HALF + 400, content_len=HALF,
                    ranges=(0, HALF - 1), ua="aria2/1.36.0")
    second = cf_line("2022-11-28 20:46:31", "31.94.7.201", 206, HALF + 400, content_len=HALF,
                     ranges=(HALF, SIZE - 1), ua="aria2/1.36.0")
    out = run_follow_up_case(write_case, tmp_path / "a", cdn=[first, second])
    assert links(out) == {("31.94.7.201", "90.214.17.88", "complementary_ranges")}
    (g,) = groups(out).values()
    assert g["outcomes"] == {"90.214.17.88": "partial", "31.94.7.201": "partial"}
    assert (g["group_outcome"], g["group_complete_by"], g["group_coverage_pct"]) == ("complete", "ranges_together", 100.0)
    assert table(out, "SELECT evidence FROM downloader_links")[0]["evidence"] == (
        f"bytes 0-{HALF - 1} from 90.214.17.88, then {HALF}-{SIZE - 1} from 31.94.7.201, same user agent"
    )
    # The downloader list is unchanged: both addresses stay partial.
    assert {r["outcome"] for r in table(out, "SELECT outcome FROM downloaders")} == {"partial"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["follow_up"]["same_downloader"] == {"links": 1, "groups": 1, "complete_only_together": 1}


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (dict(ranges=(HALF - 100, SIZE - 1), content_len=SIZE - HALF + 100), "overlapping ranges"),
        (dict(ranges=(HALF, SIZE - 1), content_len=SIZE - HALF, ua="another downloader"), "another user agent"),
        (dict(ranges=(HALF, SIZE - 1), content_len=SIZE - HALF, ts="2022-11-28 22:50:00"), "two hours later"),
    ],
)
def test_ranges_that_do_not_complement(write_case: Any, tmp_path: Path, second: dict[str, Any], why: str) -> None:
    first = cf_line("2022-11-28 20:40:05", "90.214.17.88", 206, HALF + 400, content_len=HALF,
                    ranges=(0, HALF - 1), ua="aria2/1.36.0")
    ts = second.pop("ts", "2022-11-28 20:46:31")
    ua = second.pop("ua", "aria2/1.36.0")
    other = cf_line(ts, "31.94.7.201", 206, second["content_len"] + 400, ua=ua, **second)
    out = run_follow_up_case(write_case, tmp_path, cdn=[first, other])
    assert links(out) == set(), why


def test_a_full_copy_never_complements_a_range(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(write_case, tmp_path, cdn=[
        cf_line("2022-11-28 20:40:05", "90.214.17.88", 206, HALF + 400, content_len=HALF,
                ranges=(0, HALF - 1), ua="aria2/1.36.0"),
        cf_line("2022-11-28 20:41:00", "31.94.7.201", 200, SIZE + 400, ua="aria2/1.36.0"),
        cf_line("2022-11-28 20:46:31", "31.94.7.201", 206, HALF + 400, content_len=HALF,
                ranges=(HALF, SIZE - 1), ua="aria2/1.36.0"),
    ])
    assert links(out) == set()


def test_groups_are_transitive_and_numbered_by_first_request(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(write_case, tmp_path, cdn=[
        # G2: a /64 pair, then the same phone agent on its carrier
        cf_line("2022-11-28 21:00:00", V6_A, 200, SIZE + 400, ua=LAPTOP),
        cf_line("2022-11-28 21:30:00", V6_B, 200, SIZE + 400, ua=LAPTOP),
        # G1: earlier, two carrier addresses of one phone
        cf_line("2022-11-28 20:10:00", "172.56.21.7", 0, 200_000, result="Error", ua=PHONE),
        cf_line("2022-11-28 20:12:00", "172.58.97.140", 200, SIZE + 400, ua=PHONE),
        cf_line("2022-11-28 20:16:00", "172.58.97.141", 200, SIZE + 400, ua=PHONE),
    ])
    got = groups(out)
    assert got["G1"]["addresses"] == {"172.56.21.7", "172.58.97.140", "172.58.97.141"}
    assert got["G2"]["addresses"] == {V6_A, V6_B}
    assert got["G1"]["members"] == 3
    # A rerun numbers them the same.
    again = run_follow_up_case(write_case, tmp_path / "again", cdn=[
        cf_line("2022-11-28 20:12:00", "172.58.97.140", 200, SIZE + 400, ua=PHONE),
        cf_line("2022-11-28 21:30:00", V6_B, 200, SIZE + 400, ua=LAPTOP),
        cf_line("2022-11-28 20:16:00", "172.58.97.141", 200, SIZE + 400, ua=PHONE),
        cf_line("2022-11-28 20:10:00", "172.56.21.7", 0, 200_000, result="Error", ua=PHONE),
        cf_line("2022-11-28 21:00:00", V6_A, 200, SIZE + 400, ua=LAPTOP),
    ])
    assert {k: v["addresses"] for k, v in groups(again).items()} == {k: v["addresses"] for k, v in got.items()}


# --- how the link spread -------------------------------------------------------------------------

AGENCY = '[agency]\nnetworks = ["4.31.166.0/24"]\nsites = ["intranet.agency.gov"]\n'


def test_spread_referrers_milestones_and_hours(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(write_case, tmp_path, extra=AGENCY, cdn=[
        # the agency's own: an editor from its egress, a page on its intranet
        with_referer(cf_line("2022-11-28 19:05:00", "4.31.166.20", 200, SIZE + 400), "https://intranet.agency.gov/x"),
        # a crawler fetches it before any outsider
        cf_line("2022-11-28 19:20:00", "66.249.66.83", 200, SIZE + 400, ua=GOOGLEBOT),
        # an outsider asks for headers, then the first outsider download, from a forum
        cf_line("2022-11-28 19:30:00", "172.58.1.1", 200, 400, method="HEAD"),
        with_referer(cf_line("2022-11-28 19:45:00", "172.58.1.2", 200, SIZE + 400), "https://www.reddit.com/r/x"),
        with_referer(cf_line("2022-11-28 20:05:00", "172.58.1.3", 200, SIZE + 400), "https://www.reddit.com/r/x"),
        with_referer(cf_line("2022-11-28 20:10:00", "172.58.1.4", 404, 500, content_len=153),
                     "https://www.agency.gov/news"),
    ])
    milestones = {r["milestone"]: r for r in table(out, "SELECT * FROM spread_milestones")}
    assert milestones["first_request"]["client_ip"] == "4.31.166.20"
    assert milestones["first_download"]["client_ip"] == "4.31.166.20"
    assert milestones["first_crawler_fetch"]["client_ip"] == "66.249.66.83"
    assert milestones["first_external_request"]["client_ip"] == "172.58.1.1"
    first = milestones["first_external_download"]
    assert (first["client_ip"], first["referer"], first["status"]) == ("172.58.1.2", "https://www.reddit.com/r/x", 200)
    assert first["source_file"] == "cdn/E1.2022-11-28-20.a.gz" and first["line_no"] == 6
    assert milestones["last_download"]["client_ip"] == "172.58.1.3"
    referrers = table(out, "SELECT * FROM referrer_spread ORDER BY appearance")
    assert [(r["referer"], r["referer_site"], r["referer_kind"], r["requests"], r["deliveries"]) for r in referrers] == [
        ("https://intranet.agency.gov/x", "intranet.agency.gov", "agency", 1, 1),
        ("(none)", "(none)", "none", 2, 1),
        ("https://www.reddit.com/r/x", "reddit.com", "external", 2, 2),
        ("https://www.agency.gov/news", "agency.gov", "agency", 1, 0),
    ]
    assert referrers[2]["first_client"] == "172.58.1.2"
    hourly = {(r["hour_start"].hour, r["referer_site"]): r["deliveries"] for r in table(out, "SELECT * FROM spread_hourly")}
    assert hourly == {(19, "intranet.agency.gov"): 1, (19, "(none)"): 1, (19, "reddit.com"): 1,
                      (20, "reddit.com"): 1, (20, "agency.gov"): 0}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["follow_up"]["spread"]["first_external_download"]["client_ip"] == "172.58.1.2"


def test_a_referrers_first_client_is_the_first_line_among_requests_at_its_first_time(
    write_case: Any, tmp_path: Path
) -> None:
    forum = "https://www.reddit.com/r/x"
    out = run_follow_up_case(write_case, tmp_path, cdn=[
        with_referer(cf_line("2022-11-28 19:50:00", "172.58.1.1", 200, SIZE + 400), forum),
        with_referer(cf_line("2022-11-28 19:45:00", "172.58.1.9", 200, SIZE + 400), forum),
        with_referer(cf_line("2022-11-28 19:45:00", "172.58.1.2", 200, SIZE + 400), forum),
    ])
    (referrer,) = table(out, "SELECT * FROM referrer_spread")
    assert (referrer["first_client"], referrer["requests"], referrer["clients"]) == ("172.58.1.9", 3, 3)


def test_without_agency_networks_the_agency_counts_as_an_outsider_and_the_run_says_so(
    write_case: Any, tmp_path: Path
) -> None:
    out = run_follow_up_case(write_case, tmp_path, cdn=[cf_line("2022-11-28 19:05:00", "4.31.166.20", 200, SIZE + 400)])
    milestones = {r["milestone"]: r for r in table(out, "SELECT * FROM spread_milestones")}
    assert milestones["first_external_download"]["client_ip"] == "4.31.166.20"
    notes = json.loads((out / "manifest.json").read_text())["follow_up"]["notes"]
    assert any("no [agency] networks" in n for n in notes)


def test_crawlers_with_their_operators_removal_pages(write_case: Any, tmp_path: Path) -> None:
    out = run_follow_up_case(write_case, tmp_path, cdn=[
        cf_line("2022-11-28 19:20:00", "172.58.9.1", 200, SIZE + 400, ua=GOOGLEBOT),  # a claim from a phone network
        cf_line("2022-11-28 19:21:00", "95.216.1.1", 200, 400, method="HEAD",
                ua="Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
        cf_line("2022-11-28 19:22:00", "95.216.1.2", 200, SIZE + 400,
                ua="Mozilla/5.0 (compatible; archive.org_bot; Wayback Machine Live Record; "
                   "+http://archive.org/details/archive.org_bot)"),
        cf_line("2022-11-28 19:23:00", "172.58.1.1", 200, SIZE + 400, ua=PHONE),
    ])
    got = {r["client_ip"]: r for r in table(out, "SELECT * FROM crawler_fetches")}
    assert set(got) == {"172.58.9.1", "95.216.1.1", "95.216.1.2"}
    fake = got["172.58.9.1"]
    assert fake["verified"] is False and fake["operator"] is None and fake["removal_url"] is None
    assert "not in Google LLC's published ranges" in fake["removal_note"] and "T-Mobile USA (test)" in fake["removal_note"]
    slack = got["95.216.1.1"]
    assert (slack["client_kind"], slack["crawler"], slack["verified"], slack["outcome"]) == (
        "link_preview", "slackbot", None, "headers_only")
    archive = got["95.216.1.2"]
    assert (archive["crawler"], archive["operator"], archive["removal_url"]) == (
        "archive.org_bot", "Internet Archive", "mailto:info@archive.org")
    assert archive["removal_source"].startswith("https://")


def test_every_crawler_operator_entry_names_a_known_bot_and_a_source() -> None:
    from forensics.enrich import useragent
    from forensics.followup import crawler_operators

    names = {r.name for r in useragent.CLIENT_RULES}
    entries = [e for e in crawler_operators() if e["operator"]]
    assert entries
    for e in entries:
        assert e["crawler"] in names, e["crawler"]
        assert str(e["removal_source"]).startswith("https://"), e["crawler"]
        assert e["removal_url"] is None or str(e["removal_url"]).startswith(("https://", "mailto:"))


# --- the demo incident (sample_logs/SCENARIO.md, "Beyond the list") --------------------------------

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_case(load_case(REPO / "sample_logs" / "case.toml"), out)
    return out


def test_demo_groups_are_the_scenario_s_persons(demo: Path) -> None:
    intended = csv_rows(REPO / "sample_logs" / "expected_downloaders.csv")
    persons: dict[str, set[str]] = {}
    for r in intended:
        if r["person"]:
            persons.setdefault(r["person"], set()).add(r["client"])
    got = groups(demo)
    assert sorted(map(sorted, (g["addresses"] for g in got.values()))) == sorted(map(sorted, persons.values()))
    by_members = {frozenset(g["addresses"]): g for g in got.values()}
    # The split download: neither address has the whole file, the two ranges together do.
    split = by_members[frozenset(persons["aria2_laptop"])]
    assert (split["group_outcome"], split["group_complete_by"]) == ("complete", "ranges_together")
    assert set(split["outcomes"].values()) == {"partial"}
    rotating = by_members[frozenset(persons["comcast_laptop"])]
    assert (rotating["group_outcome"], rotating["group_complete_by"]) == ("complete", "member")
    rules = {r["rule"] for r in table(demo, "SELECT rule FROM downloader_links")}
    assert rules == {"same_ipv6_prefix", "same_agent_and_network", "complementary_ranges"}


def test_demo_spread_and_operators_follow_from_the_scenario(demo: Path) -> None:
    milestones = {r["milestone"]: r for r in table(demo, "SELECT * FROM spread_milestones")}
    # SCENARIO.md: the reddit reader at 15:12:40 local is the first outsider to download it.
    first = milestones["first_external_download"]
    assert (first["client_ip"], first["referer"]) == ("2a02:908:1a3:4e00:9c1d:7f2b:33e1:5a02", "https://www.reddit.com/")
    assert first["ts"].isoformat() == "2022-11-28T20:12:40+00:00"
    order = [r["referer"] for r in table(demo, "SELECT referer FROM referrer_spread ORDER BY appearance")]
    assert order == [
        "https://www.agency.gov/node/4812/edit", "https://www.agency.gov/news/2022/11/detention-oversight-report-released",
        "(none)", "https://www.reddit.com/", "https://www.google.fr/", "https://t.co/Xk3mQ9vR2L",
        "https://www.google.com/", "https://yandex.ru/", "https://news.ycombinator.com/", "https://lm.facebook.com/",
    ]
    bots = {r["client_ip"]: r for r in table(demo, "SELECT * FROM crawler_fetches")}
    assert set(bots) == {"66.249.66.83", "54.209.87.143", "207.241.225.14", "51.178.93.214"}
    assert bots["66.249.66.83"]["verified"] is True and bots["51.178.93.214"]["verified"] is False
    intended = csv_rows(REPO / "sample_logs" / "expected_downloaders.csv")
    rows = csv_rows(demo / "operator_requests.csv")
    assert len(rows) == sum(int(r["requests"]) for r in intended)
    assert {r["client_ip"] for r in rows if not r["client_port"]} == {"95.216.142.33", "3.89.217.64"}
    page = (demo / "report.html").read_text(encoding="utf-8")
    for section in ("operators", "same-downloader", "spread"):
        assert f'id="{section}"' in page, section
    assert "may not identify a subscriber" in page and "suggestions for the investigator" in page


# --- the stages are single SELECTs in a portable subset -------------------------------------------

FOLLOW_UP_STAGES = (
    "stage_operator_requests", "stage_downloader_links", "stage_downloader_groups", "stage_spread_requests",
    "stage_referrer_spread", "stage_spread_hourly", "stage_spread_milestones", "stage_crawler_fetches",
)
# DuckDB-only syntax another engine (Spark SQL) would not run, and statements that change tables.
NOT_PORTABLE = re.compile(
    r"::|\blist_\w+|->>|\bFILTER\s*\(|GROUP BY ALL|\bBY NAME\b|\bINSERT\b|\bUPDATE\b|\bDELETE\b|;|\bstring_agg\b|\bQUALIFY\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("stage", FOLLOW_UP_STAGES)
def test_each_follow_up_stage_is_one_portable_select(stage: str) -> None:
    from forensics.db import named_queries

    query = named_queries()[stage]
    body = "\n".join(line for line in query.sql.splitlines() if not line.strip().startswith("--"))
    assert re.match(r"\s*(SELECT|WITH)\b", body, re.IGNORECASE), stage
    assert not NOT_PORTABLE.findall(body), (stage, NOT_PORTABLE.findall(body))


def test_a_crowd_sharing_an_agent_and_network_is_not_one_person(write_case: Any, tmp_path: Path) -> None:
    """More addresses than CROWD_SIZE sending one agent from one network are left out of the
    agent rule (and of the range rule): a common phone browser on a large carrier says nothing of
    who is who, and pairing a crowd would grow with its square."""
    from forensics.followup import CROWD_SIZE

    cdn = [cf_line(f"2022-11-28 20:{i // 10:02d}:{i % 10 * 5:02d}", f"172.58.7.{i + 1}", 200, SIZE + 400, ua=PHONE)
           for i in range(CROWD_SIZE + 1)]
    out = run_follow_up_case(write_case, tmp_path, cdn=cdn)
    con = connect(out / "case.duckdb", read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM downloader_links").fetchone()[0] == 0
    finally:
        con.close()
    few = [cf_line(f"2022-11-28 20:00:{i * 5:02d}", f"172.58.7.{i + 1}", 200, SIZE + 400, ua=PHONE)
           for i in range(CROWD_SIZE)]
    out = run_follow_up_case(write_case, tmp_path / "few", cdn=few)
    con = connect(out / "case.duckdb", read_only=True)
    try:
        pairs = con.execute("SELECT count(*) FROM downloader_links WHERE rule = 'same_agent_and_network'").fetchone()[0]
    finally:
        con.close()
    assert pairs == CROWD_SIZE * (CROWD_SIZE - 1) // 2


def test_a_large_group_is_flagged_and_the_report_shows_its_first_rows(write_case: Any, tmp_path: Path) -> None:
    from forensics.followup import REPORT_GROUP_ROWS, report_context

    # Many privacy addresses of one IPv6 prefix: one group by the prefix rule.
    cdn = [cf_line(f"2022-11-28 20:{i // 10:02d}:{i % 10 * 5:02d}", f"2607:fb90:7:1::{i + 1:x}", 200, SIZE + 400,
                   ua=PHONE)
           for i in range(REPORT_GROUP_ROWS + 10)]
    out = run_follow_up_case(write_case, tmp_path, cdn=cdn)
    con = connect(out / "case.duckdb", read_only=True)
    try:
        (g,) = report_context(con)["groups"]
    finally:
        con.close()
    assert g["member_count"] == REPORT_GROUP_ROWS + 10 and len(g["members"]) == REPORT_GROUP_ROWS
    assert g["link_count"] > REPORT_GROUP_ROWS and len(g["links"]) == REPORT_GROUP_ROWS
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "A large group:" in page and "lists them all" in page


# --- spread milestones against the rule, on generated requests -------------------------------------

_MILESTONE_RULES = {
    "first_request": lambda r: True,
    "first_download": lambda r: r["delivered"],
    "first_external_request": lambda r: r["client_party"] == "outsider",
    "first_external_download": lambda r: r["client_party"] == "outsider" and r["delivered"],
    "first_crawler_fetch": lambda r: r["client_party"] == "crawler",
}


def _expected_milestones(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Each milestone's request by the rule: the earliest (ties: lowest file, then line) of the
    requests it applies to; the last download the latest (ties: highest file, then line)."""
    out = set()
    for resource in {r["resource_path"] for r in rows}:
        mine = [r for r in rows if r["resource_path"] == resource]
        chosen = {name: min((r for r in mine if rule(r)), key=lambda r: (r["ts"], r["source_id"], r["line_no"]),
                            default=None) for name, rule in _MILESTONE_RULES.items()}
        chosen["last_download"] = max((r for r in mine if r["delivered"]),
                                      key=lambda r: (r["ts"], r["source_id"], r["line_no"]), default=None)
        out |= {(resource, name, r["ts"], r["client_ip"], r["source_id"], r["line_no"])
                for name, r in chosen.items() if r is not None}
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_spread_milestones_follow_the_rule_with_ties(data: st.DataObject) -> None:
    start = datetime(2022, 11, 28, 20, 0, tzinfo=UTC)
    keys = data.draw(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 40)), min_size=1, max_size=40, unique=True))
    rows = [
        {"resource_path": data.draw(st.sampled_from(["/a.xlsx", "/b.pdf"])),
         "ts": start + timedelta(seconds=data.draw(st.integers(0, 4))),  # few moments: many ties
         "client_ip": f"192.0.2.{i}", "source_id": source_id, "line_no": line_no,
         "delivered": data.draw(st.booleans()),
         "client_party": data.draw(st.sampled_from(["outsider", "crawler", "agency"]))}
        for i, (source_id, line_no) in enumerate(keys)
    ]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(SPREAD_REQUESTS.ddl())
    con.execute(SOURCES.ddl())
    con.executemany("INSERT INTO sources (source_id, path) VALUES (?, ?)", [(i, f"log{i}.gz") for i in (1, 2, 3)])
    con.executemany(
        "INSERT INTO spread_requests (resource_path, ts, client_ip, source_id, line_no, delivered, client_party, "
        "referer, status) VALUES (?, ?, ?, ?, ?, ?, ?, '(none)', 200)",
        [(r["resource_path"], r["ts"], r["client_ip"], r["source_id"], r["line_no"], r["delivered"],
          r["client_party"]) for r in rows],
    )
    sql, bound = stage_query("stage_spread_milestones")
    got = {(p, m, ts, ip, int(f[3:-3]), n)
           for p, m, ts, ip, _ref, _status, f, n in con.execute(sql, bound).fetchall()}
    assert got == _expected_milestones(rows)


def test_groups_are_numbered_by_their_first_request_not_by_their_addresses() -> None:
    from datetime import UTC, datetime

    from forensics.followup import group_map

    links = [("/f", "203.0.113.1", "203.0.113.2"), ("/f", "198.51.100.1", "198.51.100.2")]
    first_seen = {
        ("/f", "203.0.113.1"): datetime(2022, 11, 28, 14, 5, tzinfo=UTC),
        ("/f", "203.0.113.2"): datetime(2022, 11, 28, 16, 0, tzinfo=UTC),
        ("/f", "198.51.100.1"): datetime(2022, 11, 28, 15, 0, tzinfo=UTC),
        ("/f", "198.51.100.2"): datetime(2022, 11, 28, 15, 30, tzinfo=UTC),
        ("/f", "192.0.2.9"): datetime(2022, 11, 28, 14, 0, tzinfo=UTC),  # not linked: no group
    }
    groups = {r["client_ip"]: r["group_id"] for r in group_map(links, first_seen).iter_rows(named=True)}
    assert groups == {"203.0.113.1": "G1", "203.0.113.2": "G1", "198.51.100.1": "G2", "198.51.100.2": "G2"}
    # Without times the smaller address comes first.
    groups = {r["client_ip"]: r["group_id"] for r in group_map(links, {}).iter_rows(named=True)}
    assert groups["198.51.100.1"] == "G1"
