"""Published network lists: fixtures in each owner's exact format, written here; matching in DuckDB;
Tor exits matched to the time of the request; downloading without touching the network."""

from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.error
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forensics.enrich.lists import (
    LISTS_RECORD,
    TOR_MATCH_WINDOW,
    address_number,
    match_lists,
    read_list,
    read_lists,
    update_lists,
)
from forensics.errors import EnrichmentError

T0 = datetime(2022, 11, 28, 23, 57, 41, tzinfo=UTC)

GOOGLE_STYLE = {
    "creationTime": "2022-11-27T23:00:02.000000",
    "prefixes": [
        {"ipv6Prefix": "2001:4860:4801:10::/64"},
        {"ipv4Prefix": "66.249.64.0/19"},
        {"ipv4Prefix": "66.249.66.64/27"},
    ],
}
AWS = {
    "syncToken": "1669597987",
    "createDate": "2022-11-28-01-13-07",
    "prefixes": [
        {"ip_prefix": "3.80.0.0/12", "region": "us-east-1", "service": "AMAZON", "network_border_group": "us-east-1"},
        {"ip_prefix": "3.80.0.0/12", "region": "us-east-1", "service": "EC2", "network_border_group": "us-east-1"},
        {"ip_prefix": "3.89.0.0/16", "region": "us-east-1", "service": "EC2", "network_border_group": "us-east-1"},
    ],
    "ipv6_prefixes": [
        {"ipv6_prefix": "2600:1f18::/33", "region": "us-east-1", "service": "EC2", "network_border_group": "us-east-1"},
    ],
}
GCP = {
    "syncToken": "1669601234567",
    "creationTime": "2022-11-27T22:01:12.434598",
    "prefixes": [
        {"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"},
        {"ipv6Prefix": "2600:1900:4000::/44", "service": "Google Cloud", "scope": "us-central1"},
    ],
}
AZURE = {
    "changeNumber": 235,
    "cloud": "Public",
    "values": [
        {"name": "AzureCloud", "id": "AzureCloud", "properties": {
            "changeNumber": 200, "region": "", "regionId": 0, "platform": "Azure", "systemService": "",
            "addressPrefixes": ["13.64.0.0/11", "2603:1000::/24"], "networkFeatures": ["API", "NSG"]}},
        {"name": "AzureCloud.westus", "id": "AzureCloud.westus", "properties": {
            "changeNumber": 40, "region": "westus", "regionId": 1, "platform": "Azure", "systemService": "",
            "addressPrefixes": ["13.64.0.0/16"], "networkFeatures": ["API"]}},
    ],
}
ORACLE = {
    "last_updated_timestamp": "2022-11-25T21:14:47.683249",
    "regions": [{"region": "eu-frankfurt-1", "cidrs": [{"cidr": "130.61.0.0/16", "tags": ["OCI"]}]}],
}
EXIT_LIST = """@type tor-exit-list 1.0
Downloaded 2022-11-29 00:02:00
ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E
Published 2022-11-28 20:47:43
LastStatus 2022-11-28 23:00:00
ExitAddress 185.220.101.47 2022-11-28 22:12:31
ExitNode 01A9258A46E97FF8B2CAC7910577862C14F2C524
Published 2022-11-20 18:12:10
LastStatus 2022-11-20 23:00:00
ExitAddress 185.220.101.48 2022-11-20 22:19:52
"""


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.write_text(json.dumps(content, indent=2) if isinstance(content, dict) else content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "fmt", "owner"),
    [
        ("googlebot.json", "google-common-crawlers", "google"),
        ("common-crawlers.json", "google-common-crawlers", "google"),
        ("special-crawlers.json", "google-special-crawlers", "google"),
        ("user-triggered-fetchers-google.json", "google-user-triggered-fetchers", "google"),
        ("bingbot.json", "bingbot", "bing"),
        ("applebot.json", "applebot", "apple"),
        ("gptbot.json", "openai-gptbot", "openai"),
        ("ccbot.json", "commoncrawl-ccbot", "commoncrawl"),
    ],
)
def test_crawler_lists_in_googles_shape(tmp_path, name, fmt, owner):
    pub = read_list(write(tmp_path, name, GOOGLE_STYLE))
    assert pub is not None
    assert (pub.format, pub.category, pub.owner) == (fmt, "crawler", owner)
    assert (pub.date, pub.date_basis) == (datetime(2022, 11, 27, 23, 0, 2, tzinfo=UTC), "creationTime")
    assert [p.network for p in pub.prefixes] == ["2001:4860:4801:10::/64", "66.249.64.0/19", "66.249.66.64/27"]


@pytest.mark.parametrize(
    ("name", "content", "fmt", "date", "basis", "count"),
    [
        ("ip-ranges.json", AWS, "aws-ip-ranges", datetime(2022, 11, 28, 1, 13, 7, tzinfo=UTC), "createDate", 4),
        ("cloud.json", GCP, "gcp-cloud", datetime(2022, 11, 27, 22, 1, 12, 434598, tzinfo=UTC), "creationTime", 2),
        ("ServiceTags_Public_20221128.json", AZURE, "azure-service-tags", datetime(2022, 11, 28, tzinfo=UTC),
         "file name", 3),
        ("public_ip_ranges.json", ORACLE, "oracle-public-ip-ranges", datetime(2022, 11, 25, 21, 14, 47, 683249, tzinfo=UTC),
         "last_updated_timestamp", 1),
        # Renamed files are still recognised by their shape.
        ("aws.json", AWS, "aws-ip-ranges", datetime(2022, 11, 28, 1, 13, 7, tzinfo=UTC), "createDate", 4),
        ("azure.json", AZURE, "azure-service-tags", None, "file mtime", 3),
        ("oci.json", ORACLE, "oracle-public-ip-ranges", datetime(2022, 11, 25, 21, 14, 47, 683249, tzinfo=UTC),
         "last_updated_timestamp", 1),
        ("gcp.json", GCP, "gcp-cloud", datetime(2022, 11, 27, 22, 1, 12, 434598, tzinfo=UTC), "creationTime", 2),
    ],
)
def test_cloud_lists_and_their_dates(tmp_path, name, content, fmt, date, basis, count):
    path = write(tmp_path, name, content)
    pub = read_list(path)
    assert pub is not None and pub.format == fmt and pub.category == "cloud"
    assert pub.date_basis == basis
    if date is not None:
        assert pub.date == date
    else:
        assert pub.date == datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert len(pub.prefixes) == count


def test_gcp_sync_token_when_no_creation_time(tmp_path):
    pub = read_list(write(tmp_path, "cloud.json", {k: v for k, v in GCP.items() if k != "creationTime"}))
    assert pub is not None and pub.date_basis == "syncToken"
    assert pub.date == datetime.fromtimestamp(1669601234.567, UTC)


def test_digitalocean_geofeed_and_cloudflare_text(tmp_path):
    write(tmp_path, "google.csv", "# DigitalOcean geofeed\n159.203.0.0/18,US,US-NY,New York,10118\n"
                                  "2604:a880::/32,US,US-NY,New York,10118\n")
    write(tmp_path, "ips-v4", "173.245.48.0/20\n103.21.244.0/22\n")
    write(tmp_path, "ips-v6", "2400:cb00::/32\n2606:4700::/32\n")
    os.utime(tmp_path / "ips-v4", (1669600000, 1669600000))
    lists, notes = read_lists(tmp_path)
    by = {p.format: p for p in lists}
    assert notes == []
    assert [p.service for p in by["digitalocean-geofeed"].prefixes] == ["New York, US", "New York, US"]
    assert by["cloudflare-ips-v4"].owner == "cloudflare" and by["cloudflare-ips-v4"].category == "cdn"
    assert by["cloudflare-ips-v4"].date == datetime.fromtimestamp(1669600000, UTC)
    assert by["cloudflare-ips-v4"].date_basis == "file mtime"
    assert len(by["cloudflare-ips-v6"].prefixes) == 2


def test_date_from_lists_json_when_the_file_has_none(tmp_path):
    write(tmp_path, "ips-v4", "173.245.48.0/20\n")
    write(tmp_path, LISTS_RECORD, {"files": {"ips-v4": {"url": "https://www.cloudflare.com/ips-v4",
                                                         "fetched_at": "2022-11-28T10:00:00Z"}}})
    (pub,), _ = read_lists(tmp_path)
    assert (pub.date, pub.date_basis) == (datetime(2022, 11, 28, 10, tzinfo=UTC), "lists.json fetched_at")
    assert pub.fetched_from == "https://www.cloudflare.com/ips-v4"


def test_unknown_files_are_noted_and_bad_lists_are_clean_errors(tmp_path):
    write(tmp_path, "notes.json", {"hello": 1})
    write(tmp_path, "README.md", "# lists\n")
    lists, notes = read_lists(tmp_path)
    assert lists == [] and notes == ["notes.json: not a published list this tool knows; ignored"]
    write(tmp_path, "ip-ranges.json", {"createDate": "2022-11-28-01-13-07", "prefixes": [{"prefix": "1.2.3.0/24"}]})
    with pytest.raises(EnrichmentError) as info:
        read_lists(tmp_path)
    assert "ip-ranges.json" in str(info.value) and "aws-ip-ranges" in str(info.value)
    with pytest.raises(EnrichmentError, match="does not exist"):
        read_lists(tmp_path / "missing")


def _match(tmp_path, seen):
    lists, _ = read_lists(tmp_path)
    con = duckdb.connect()
    return lists, match_lists(con, seen, lists)


def test_overlapping_prefixes_and_ipv6_matched_in_duckdb(tmp_path):
    write(tmp_path, "ip-ranges.json", AWS)
    write(tmp_path, "googlebot.json", GOOGLE_STYLE)
    seen = [(a, T0) for a in ("3.89.217.64", "3.95.0.1", "3.96.0.0", "2600:1f18::1", "2600:1f18:8000::1",
                              "::ffff:3.89.217.64", "66.249.66.83", "2001:4860:4801:10::5", "bogus")]
    _, m = _match(tmp_path, seen)
    services = sorted((m_.network, m_.service) for m_ in m.networks["3.89.217.64"])
    assert services == [("3.80.0.0/12", "AMAZON us-east-1"), ("3.80.0.0/12", "EC2 us-east-1"),
                        ("3.89.0.0/16", "EC2 us-east-1")]
    assert len(m.networks["3.95.0.1"]) == 2  # the /12 twice, not the /16
    assert "3.96.0.0" not in m.networks  # first address after 3.80.0.0/12
    assert [x.network for x in m.networks["2600:1f18::1"]] == ["2600:1f18::/33"]
    assert "2600:1f18:8000::1" not in m.networks
    assert len(m.networks["::ffff:3.89.217.64"]) == 3
    assert sorted(x.network for x in m.networks["66.249.66.83"]) == ["66.249.64.0/19", "66.249.66.64/27"]
    assert {x.owner for x in m.networks["2001:4860:4801:10::5"]} == {"google"}
    assert "bogus" not in m.networks


def test_tor_exit_matched_only_within_its_time(tmp_path):
    write(tmp_path, "2022-11-29-00-02-00", EXIT_LIST)
    seen = [
        ("185.220.101.47", T0),  # 1 h 45 min after the ExitAddress observation
        ("185.220.101.48", T0),  # 8 days after
        ("185.220.101.49", T0),  # never an exit
    ]
    lists, m = _match(tmp_path, seen)
    assert lists[0].format == "tor-exit-list"
    assert (lists[0].date, lists[0].date_basis) == (datetime(2022, 11, 29, 0, 2, tzinfo=UTC), "Downloaded")
    assert m.tor["185.220.101.47"] == (0, datetime(2022, 11, 28, 22, 12, 31, tzinfo=UTC), True)
    assert m.tor["185.220.101.48"][2] is False
    assert "185.220.101.49" not in m.tor


def test_tor_window_edges(tmp_path):
    write(tmp_path, "2022-11-29-00-02-00", EXIT_LIST)
    observed = datetime(2022, 11, 28, 22, 12, 31, tzinfo=UTC)
    inside = observed - TOR_MATCH_WINDOW
    outside = observed + TOR_MATCH_WINDOW + timedelta(seconds=1)
    _, m = _match(tmp_path, [("185.220.101.47", inside)])
    assert m.tor["185.220.101.47"][2] is True
    _, m = _match(tmp_path, [("185.220.101.47", outside)])
    assert m.tor["185.220.101.47"][2] is False
    # One address seen at two times: the nearer one decides.
    _, m = _match(tmp_path, [("185.220.101.47", outside), ("185.220.101.47", T0)])
    assert m.tor["185.220.101.47"][2] is True


def test_collector_monthly_archive(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in (("exit-list-2022-11/28/2022-11-28-23-02-00", EXIT_LIST),):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "exit-list-2022-11.tar.xz").write_bytes(buf.getvalue())
    lists, m = _match(tmp_path, [("185.220.101.47", T0)])
    assert lists[0].format == "tor-exit-list" and len(lists[0].tor_observations) == 2
    assert m.tor["185.220.101.47"][2] is True


def test_bulk_exit_list_is_an_observation_at_its_date(tmp_path):
    write(tmp_path, "torbulkexitlist", "185.220.101.47\n2001:db8::47\n")
    write(tmp_path, LISTS_RECORD, {"files": {"torbulkexitlist": {
        "url": "https://check.torproject.org/torbulkexitlist", "fetched_at": "2022-11-28T12:00:00Z"}}})
    lists, m = _match(tmp_path, [("185.220.101.47", T0), ("2001:db8::47", T0 + timedelta(days=30))])
    assert lists[0].date_basis == "lists.json fetched_at"
    assert m.tor["185.220.101.47"][2] is True
    assert m.tor["2001:db8::47"][2] is False


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_update_lists_offline_is_a_clean_error(tmp_path):
    def offline(request, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(EnrichmentError) as info:
        update_lists(tmp_path / "lists", opener=offline)
    assert "could not download any published list" in str(info.value)
    assert "network" in str(info.value)
    assert not (tmp_path / "lists" / LISTS_RECORD).exists()


def test_update_lists_records_when_and_from_where(tmp_path):
    asked = []

    def fake(request, timeout):
        asked.append(request.full_url)
        if request.full_url.endswith("ip-ranges.json"):
            return FakeResponse(json.dumps(AWS).encode())
        if "exit-list-2022-11" in request.full_url:
            raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)  # type: ignore[arg-type]
        raise urllib.error.URLError("unreachable")

    report = update_lists(tmp_path, tor_months=["2022-11"], opener=fake)
    assert report.fetched == {"ip-ranges.json": "https://ip-ranges.amazonaws.com/ip-ranges.json"}
    assert "exit-list-2022-11.tar.xz" in report.failed
    record = json.loads((tmp_path / LISTS_RECORD).read_text())
    entry = record["files"]["ip-ranges.json"]
    assert entry["url"] == "https://ip-ranges.amazonaws.com/ip-ranges.json"
    assert datetime.fromisoformat(entry["fetched_at"].replace("Z", "+00:00")).tzinfo is not None
    assert "https://collector.torproject.org/archive/exit-lists/exit-list-2022-11.tar.xz" in asked
    (pub,), _ = read_lists(tmp_path)
    assert pub.fetched_from == "https://ip-ranges.amazonaws.com/ip-ranges.json"
    assert pub.date_basis == "createDate"


def test_update_lists_rejects_a_bad_month(tmp_path):
    with pytest.raises(EnrichmentError, match="not a month"):
        update_lists(tmp_path, tor_months=["November"], opener=lambda r, timeout: None)


@given(st.lists(st.sampled_from(["0", "00", "1", "01", "9", "99", "099", "100", "199", "249", "250", "255", "256", "300"]),
                min_size=3, max_size=5).map(".".join))
def test_a_plain_dotted_quad_is_told_an_address_as_parsing_tells_it(text: str) -> None:
    from forensics.enrich import _is_address

    assert _is_address(text) == (address_number(text) is not None)
