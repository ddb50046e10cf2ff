"""`run_case` with MaxMind's official test databases (../shared/geoip/maxmind-test): the
downloader list carries the values those databases must return (their MANIFEST)."""

from __future__ import annotations

import csv

from forensics.casefile import load_case
from forensics.pipeline import run_case
from tests.conftest import shared_path

ROSTER = "/files/roster.xlsx"
LINE = '{ip} - - [28/Nov/2022:14:{m:02d}:00 -0500] "GET {path} HTTP/1.1" 200 1000 "-" "{ua}"\n'

CASE = f"""
[case]
name = "enrichment"
[[sources]]
path = "access.log"
format = "combined"
[exposure]
start = "2022-11-28T14:00:00-05:00"
end = "2022-11-28T15:00:00-05:00"
[[resources]]
path = "{ROSTER}"
size = 1000
"""


def test_run_fills_enrichment_columns_from_maxmind_test_databases(tmp_path):
    data = shared_path("geoip", "maxmind-test", "test-data")
    lines = [
        LINE.format(ip="81.2.69.142", m=5, path=ROSTER, ua="Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:107.0) Gecko/20100101 Firefox/107.0"),
        LINE.format(ip="1.0.0.1", m=6, path=ROSTER, ua="curl/7.86.0"),
        LINE.format(ip="81.2.69.1", m=7, path=ROSTER, ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ]
    (tmp_path / "access.log").write_text("".join(lines))
    (tmp_path / "case.toml").write_text(CASE)
    out = tmp_path / "out"
    dbs = [data / "GeoIP2-City-Test.mmdb", data / "GeoLite2-ASN-Test.mmdb", data / "GeoIP2-Anonymous-IP-Test.mmdb"]
    report = run_case(load_case(tmp_path / "case.toml"), out, databases=dbs)
    assert report.headline["complete"] == 3
    with (out / "downloaders.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["client_ip"]: r for r in csv.DictReader(fh)}
    london = rows["81.2.69.142"]
    assert (london["country"], london["city"]) == ("GB", "London")
    assert london["client_kind"] == "browser"
    google_dns = rows["1.0.0.1"]
    assert google_dns["asn"] == "15169" and google_dns["client_kind"] == "tool"
    # 81.2.69.0/24 carries every anonymity flag in the Anonymous-IP test database, and the
    # Googlebot claim is not verified (no published list given).
    anon = rows["81.2.69.1"]
    assert anon["vpn"] == "true" and anon["hosting"] == "true"
    assert "claimed_crawler" in anon["flags"] and "tor_exit" not in anon["flags"]
    assert "demo_geography" not in anon["flags"]
