"""End to end into DuckDB: MaxMind test databases + published lists + user agents -> ip_enrichment."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.db import connect, create_tables
from forensics.enrich import enrich
from forensics.errors import EnrichmentError
from tests.conftest import shared_path

T0 = datetime(2022, 11, 28, 21, 0, tzinfo=UTC)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def databases():
    folder = shared_path("geoip", "maxmind-test", "test-data")
    return [folder / "GeoLite2-City-Test.mmdb", folder / "GeoLite2-ASN-Test.mmdb",
            folder / "GeoIP2-Anonymous-IP-Test.mmdb"]


@pytest.fixture
def lists_dir(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "googlebot.json").write_text(json.dumps(
        {"creationTime": "2022-11-27T23:00:02.000000", "prefixes": [{"ipv4Prefix": "66.249.64.0/19"}]}))
    (folder / "ip-ranges.json").write_text(json.dumps({
        "syncToken": "1669597987", "createDate": "2022-11-28-01-13-07",
        "prefixes": [{"ip_prefix": "1.0.0.0/24", "region": "us-east-1", "service": "EC2",
                      "network_border_group": "us-east-1"}],
        "ipv6_prefixes": [{"ipv6_prefix": "2001:480::/32", "region": "us-west-1", "service": "EC2",
                           "network_border_group": "us-west-1"}],
    }))
    (folder / "2022-11-29-00-02-00").write_text(
        "@type tor-exit-list 1.0\nDownloaded 2022-11-29 00:02:00\nExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n"
        "Published 2022-11-28 20:47:43\nLastStatus 2022-11-28 23:00:00\nExitAddress 81.2.69.142 2022-11-28 22:12:31\n"
    )
    return folder


def rows(con):
    cur = con.execute("SELECT * FROM ip_enrichment ORDER BY address")
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_enrich_end_to_end(tmp_path, lists_dir):
    con = connect(tmp_path / "case.duckdb")
    create_tables(con)
    addresses = [("81.2.69.142", T0), ("66.249.66.1", T0), ("51.178.93.214", T0), ("1.0.0.1", T0),
                 ("2001:480::1", T0), ("8.8.8.8", T0), ("::ffff:81.2.69.142", T0 + 40 * (T0 - T0.replace(hour=20)))]
    agents = {"81.2.69.142": ["Mozilla/5.0 (Windows NT 10.0; rv:102.0) Gecko/20100101 Firefox/102.0"],
              "66.249.66.1": [GOOGLEBOT], "51.178.93.214": [GOOGLEBOT], "1.0.0.1": ["python-requests/2.28.1"],
              "8.8.8.8": ["-"]}
    report = enrich(con, addresses, agents, databases(), lists_dir)
    got = rows(con)
    assert report.addresses == 7 and len(got) == 7

    london = got["81.2.69.142"]
    assert (london["country"], london["country_name"], london["subdivision"], london["city"]) == (
        "GB", "United Kingdom", "England", "London")
    assert (london["latitude"], london["longitude"]) == (51.5142, -0.0931)
    assert all(london[c] is True for c in ("anonymous", "vpn", "hosting", "tor", "public_proxy", "residential_proxy"))
    assert london["tor_exit"] is True and london["tor_exit_observed"] == datetime(2022, 11, 28, 22, 12, 31, tzinfo=UTC)
    assert london["client_kind"] == "browser"
    assert {"tor_exit", "vpn", "hosting", "tor_database", "public_proxy", "residential_proxy"} <= set(london["flags"])
    sources = json.loads(london["value_sources"])
    assert sources["city"].startswith("GeoLite2-City-Test.mmdb (GeoLite2-City, built 2026-")
    assert sources["tor_exit"] == "2022-11-29-00-02-00 (tor-exit-list, 2022-11-29)"
    assert sources["client_kind"] == "user agent"

    # Seen 40 h later through its IPv4-mapped form: same place, but not a Tor exit at that time.
    mapped = got["::ffff:81.2.69.142"]
    assert mapped["city"] == "London" and mapped["tor_exit"] is False
    assert "tor_exit_other_time" in mapped["flags"] and mapped["client_kind"] is None

    real = got["66.249.66.1"]
    assert (real["crawler"], real["crawler_verified"]) == ("googlebot", True)
    assert real["crawler_verified_by"] == "googlebot.json (google-common-crawlers, 2022-11-27) 66.249.64.0/19"
    assert "verified_crawler:googlebot" in real["flags"] and "claimed_crawler" not in real["flags"]
    fake = got["51.178.93.214"]
    assert (fake["crawler"], fake["crawler_verified"]) == ("googlebot", False)
    assert "claimed_crawler" in fake["flags"]

    aws = got["1.0.0.1"]
    assert (aws["asn"], aws["as_org"], aws["cloud_provider"], aws["cloud_service"]) == (
        15169, "Google Inc.", "aws", "EC2 us-east-1")
    assert {"cloud:aws", "tool:python-requests"} <= set(aws["flags"])
    assert got["2001:480::1"]["cloud_provider"] == "aws" and got["2001:480::1"]["city"] == "San Diego"

    nothing = got["8.8.8.8"]
    assert nothing["country"] is None and nothing["asn"] is None and nothing["client_kind"] == "empty"
    assert nothing["tor"] is False  # the anonymity file answers {} = no flags

    used = con.execute("SELECT source, name, type, built, date_basis, sha256, path FROM enrichment_sources "
                       "ORDER BY source, name").fetchall()
    assert [u[1] for u in used] == ["GeoIP2-Anonymous-IP-Test.mmdb", "GeoLite2-ASN-Test.mmdb", "GeoLite2-City-Test.mmdb",
                                    "2022-11-29-00-02-00", "googlebot.json", "ip-ranges.json"]
    city = next(u for u in used if u[1] == "GeoLite2-City-Test.mmdb")
    assert city[2] == "GeoLite2-City" and city[4] == "build_epoch"
    assert city[5] == hashlib.sha256((databases()[0]).read_bytes()).hexdigest()
    manifest = report.manifest()
    assert {d["name"] for d in manifest["databases"]} == {"GeoLite2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb",
                                                         "GeoIP2-Anonymous-IP-Test.mmdb"}
    assert next(x for x in manifest["lists"] if x["name"] == "ip-ranges.json")["built"] == "2022-11-28T01:13:07Z"
    assert manifest["flags"]["verified_crawler:googlebot"] == 1 and "demo" not in manifest

    # A second run replaces the rows instead of adding to them.
    enrich(con, addresses[:2], agents, databases(), None)
    assert con.execute("SELECT count(*) FROM ip_enrichment").fetchone() == (2,)
    con.close()


class FakeResolver:
    def __init__(self, names: dict[str, str], forward: dict[str, list[str]]):
        self.names, self.forwards, self.asked = names, forward, []

    def reverse(self, address):
        self.asked.append(address)
        return self.names.get(address)

    def forward(self, hostname):
        return self.forwards.get(hostname, [])


def test_rdns_verifies_a_crawler_and_is_cached(tmp_path):
    con = connect(tmp_path / "case.duckdb")
    resolver = FakeResolver(
        {"66.249.90.77": "rate-limited-proxy-66-249-90-77.google.com", "51.178.93.214": "crawl-fake.googlebot.com"},
        {"rate-limited-proxy-66-249-90-77.google.com": ["66.249.90.77"], "crawl-fake.googlebot.com": ["192.0.2.1"]},
    )
    agents = {"66.249.90.77": [GOOGLEBOT], "51.178.93.214": [GOOGLEBOT], "4.31.166.20": ["curl/7.86.0"]}
    addresses = [(a, T0) for a in agents]
    enrich(con, addresses, agents, [], None, rdns=True, resolver=resolver)
    got = rows(con)
    assert got["66.249.90.77"]["crawler_verified"] is True
    assert got["66.249.90.77"]["rdns_hostname"] == "rate-limited-proxy-66-249-90-77.google.com"
    assert "forward-confirmed reverse DNS" in got["66.249.90.77"]["crawler_verified_by"]
    assert got["51.178.93.214"]["crawler_verified"] is False  # name does not resolve back
    assert sorted(resolver.asked) == ["51.178.93.214", "66.249.90.77"]  # only crawler claims are looked up
    again = FakeResolver({}, {})
    enrich(con, addresses, agents, [], None, rdns=True, resolver=again)
    assert again.asked == [] and rows(con)["66.249.90.77"]["crawler_verified"] is True
    assert con.execute("SELECT count(*) FROM rdns_cache").fetchone() == (2,)


def test_rdns_off_by_default_never_calls_the_resolver(tmp_path):
    con = connect(tmp_path / "case.duckdb")
    resolver = FakeResolver({}, {})
    enrich(con, [("66.249.90.77", T0)], {"66.249.90.77": [GOOGLEBOT]}, [], None, resolver=resolver)
    assert resolver.asked == []


def test_a_corrupt_database_stops_the_enrichment_with_its_name(tmp_path):
    bad = shared_path("geoip", "maxmind-test", "bad-data", "libmaxminddb", "libmaxminddb-corrupt-search-tree.mmdb")
    con = connect(tmp_path / "case.duckdb")
    with pytest.raises(EnrichmentError, match=r"libmaxminddb-corrupt-search-tree\.mmdb"):
        enrich(con, [("81.2.69.142", T0)], None, [*databases(), bad], None)


def test_naive_times_are_refused(tmp_path):
    con = connect(tmp_path / "case.duckdb")
    with pytest.raises(ValueError, match="naive"):
        enrich(con, [("81.2.69.142", datetime(2022, 11, 28, 21, 0))], None, [], None)


def test_no_sources_still_writes_one_row_per_address(tmp_path):
    con = connect(tmp_path / "case.duckdb")
    report = enrich(con, [("81.2.69.142", T0), ("not-an-ip", T0)], None, [], None)
    got = rows(con)
    assert report.sources == [] and set(got) == {"81.2.69.142", "not-an-ip"}
    assert got["not-an-ip"]["flags"] == ["not_an_ip_address"]
    assert got["81.2.69.142"]["tor_exit"] is None and got["81.2.69.142"]["flags"] == []


AGENT_POOL = [
    None, "", "-", " ", GOOGLEBOT, "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/7.86.0", "python-requests/2.28.1", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:107.0) Gecko/20100101 Firefox/107.0", "something else", "my crawler",
]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.sampled_from([f"192.0.2.{i}" for i in range(12)]),
    st.lists(st.one_of(st.sampled_from(AGENT_POOL), st.text(max_size=12)), max_size=6),
    max_size=10,
), st.sets(st.sampled_from([f"192.0.2.{i}" for i in range(14)]), min_size=1))
def test_client_kinds_of_all_addresses_at_once_are_each_address_classified_alone(agents, addresses) -> None:
    """The kinds are worked out for every address at once (each distinct agent classified once);
    per address they are classify_many's: the most telling kind, the first of them on a tie,
    several kinds or not, and no kind for an address whose agents are not known."""
    import polars as pl

    from forensics.enrich import _client_kinds
    from forensics.enrich.useragent import classify_many

    order = sorted(addresses)
    got = _client_kinds(pl.Series(order), agents).rows(named=True)
    as_frame = pl.DataFrame(
        {"address": list(agents), "user_agents": [list(v) for v in agents.values()]},
        schema={"address": pl.String, "user_agents": pl.List(pl.String)},
    )
    assert _client_kinds(pl.Series(order), as_frame).rows(named=True) == got
    for address, row in zip(order, got, strict=True):
        assert row["address"] == address
        if address not in agents:
            assert (row["known"], row["kind"], row["several"]) == (False, None, False)
            continue
        best, kinds = classify_many(agents[address])
        assert row["known"] is True
        assert (row["kind"], row["name"], row["owner"]) == (best.kind, best.name, best.owner)
        assert row["several"] == (len({k.kind for k in kinds}) > 1)


ADDRESS_POOL = ["81.2.69.142", "81.2.69.160", "66.249.66.1", "66.249.66.2", "51.178.93.214", "1.0.0.1", "1.0.0.2",
                "2001:480::1", "8.8.8.8", "8.8.4.4", "::ffff:81.2.69.142", "unknown via 10.0.0.1", "216.160.83.56"]
AGENT_POOL = [[GOOGLEBOT], ["python-requests/2.28.1"], ["-"], [],
              ["Mozilla/5.0 (Windows NT 10.0; rv:102.0) Gecko/20100101 Firefox/102.0", "curl/7.88.1"]]


@settings(max_examples=10, deadline=None)
@given(chosen=st.lists(st.tuples(st.sampled_from(ADDRESS_POOL), st.integers(0, len(AGENT_POOL) - 1),
                                 st.sampled_from([0, 1, 40])), min_size=1, max_size=10, unique_by=lambda c: c[0]))
def test_addresses_sharing_a_row_get_the_row_each_would_get_alone(tmp_path_factory, chosen) -> None:
    """Addresses whose values are the same (the same databases' answers, kind of client, no list
    entry) share one row of values: each address still gets exactly what it gets enriched alone,
    with list entries, Tor observations and databases in play, and the flags are counted per address."""
    folder = tmp_path_factory.mktemp("lists")
    (folder / "googlebot.json").write_text(json.dumps(
        {"creationTime": "2022-11-27T23:00:02.000000", "prefixes": [{"ipv4Prefix": "66.249.64.0/19"}]}))
    (folder / "2022-11-29-00-02-00").write_text(
        "@type tor-exit-list 1.0\nDownloaded 2022-11-29 00:02:00\nExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n"
        "Published 2022-11-28 20:47:43\nLastStatus 2022-11-28 23:00:00\nExitAddress 81.2.69.142 2022-11-28 22:12:31\n"
    )
    con = connect(tmp_path_factory.mktemp("case") / "case.duckdb")
    create_tables(con)
    seen = [(a, T0 + (T0 - T0.replace(hour=20)) * hours) for a, _, hours in chosen]
    agents = {a: AGENT_POOL[k] for a, k, _ in chosen}
    together = enrich(con, seen, agents, databases(), folder)
    all_rows = rows(con)
    flags: dict[str, int] = {}
    for address, when in seen:
        enrich(con, [(address, when)], {address: agents[address]}, databases(), folder)
        alone = rows(con)[address]
        assert all_rows[address] == alone, address
        for flag in alone["flags"]:
            flags[flag] = flags.get(flag, 0) + 1
    assert together.manifest()["flags"] == flags
    con.close()
