"""IP databases: MaxMind's official test databases and IPinfo's samples (read from ../shared/geoip)
must give the values their MANIFEST, expected_values.txt and JSON twins list."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import maxminddb
import pytest

from forensics.enrich.mmdb import (
    COLUMNS,
    KIND_BY_NAME,
    find_default_databases,
    lookup,
    open_database,
    recognise_kind,
)
from forensics.errors import EnrichmentError
from tests.conftest import SHARED, shared_path


def maxmind(name: str):
    return open_database(shared_path("geoip", "maxmind-test", "test-data", f"{name}.mmdb"))


def one(db_names: list[str], address: str) -> dict:
    dbs = [maxmind(n) for n in db_names]
    try:
        return lookup(dbs, [address])[address]
    finally:
        for db in dbs:
            db.close()


@pytest.mark.parametrize(
    ("address", "country", "subdivision", "city", "lat", "lon"),
    [
        ("81.2.69.142", "GB", "England", "London", 51.5142, -0.0931),
        ("2.125.160.216", "GB", "England", "Boxford", 51.75, -1.25),
        ("89.160.20.112", "SE", "Östergötland County", "Linköping", 58.4167, 15.6167),
        ("216.160.83.56", "US", "Washington", "Milton", 47.2513, -122.3149),
        ("175.16.199.0", "CN", "Jilin Sheng", "Changchun", 43.88, 125.3228),
        ("202.196.224.0", "PH", None, None, 13.0, 122.0),
        ("2001:480::1", "US", "California", "San Diego", 32.7203, -117.1552),
    ],
)
def test_city_probe_values(address, country, subdivision, city, lat, lon):
    row = one(["GeoLite2-City-Test"], address)
    assert (row["country"], row["city"], row["latitude"], row["longitude"]) == (country, city, lat, lon)
    if subdivision is not None:
        assert row["subdivision"] == subdivision
    assert row["_sources"]["country"].startswith("GeoLite2-City-Test.mmdb (GeoLite2-City, built 2026-")


def _expected_sections() -> dict[str, list[str]]:
    text = shared_path("geoip", "expected_values.txt").read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        elif line.strip():
            sections[current].append(line.strip())
    return sections


def _first_address(network: str) -> str:
    return network.split("/")[0]


@pytest.mark.parametrize(
    ("section", "database"),
    [("GeoLite2-City-Test entries WITH city", "GeoLite2-City-Test"),
     ("GeoIP2-City-Test entries WITH city/traits/represented", "GeoIP2-City-Test")],
)
def test_every_city_network_in_expected_values(section, database):
    pattern = re.compile(r"^(\S+) country=(\S+) reg=\S+ city=(.+?) subdiv=.* lat/lon=(\S+),(\S+) tz=")
    lines = _expected_sections()[section]
    assert lines
    dbs = [maxmind(database)]
    for line in lines:
        m = pattern.match(line)
        assert m, line
        network, country, city, lat, lon = m.groups()
        row = lookup(dbs, [_first_address(network)])[_first_address(network)]
        assert row["country"] == (None if country == "None" else country), line
        assert row["city"] == (None if city == "None" else city), line
        assert row["latitude"] == (None if lat == "None" else float(lat)), line
        assert row["longitude"] == (None if lon == "None" else float(lon)), line


_FLAG_KEYS = {
    "is_anonymous": "anonymous", "is_anonymous_vpn": "vpn", "is_hosting_provider": "hosting",
    "is_tor_exit_node": "tor", "is_public_proxy": "public_proxy", "is_residential_proxy": "residential_proxy",
}


@pytest.mark.parametrize(
    ("section", "database"),
    [("GeoIP2-Anonymous-IP-Test", "GeoIP2-Anonymous-IP-Test"), ("GeoIP-Anonymous-Plus-Test", "GeoIP-Anonymous-Plus-Test")],
)
def test_every_anonymity_network_in_expected_values(section, database):
    lines = _expected_sections()[section]
    assert len(lines) >= 12
    dbs = [maxmind(database)]
    for line in lines:
        network, _, record = line.partition(" ")
        flags = ast.literal_eval(record)
        address = _first_address(network)
        row = lookup(dbs, [address])[address]
        want = {column: bool(flags.get(key, False)) for key, column in _FLAG_KEYS.items()}
        assert {c: row[c] for c in want} == want, line


def test_81_2_69_0_24_carries_every_anonymity_flag():
    for address in ("81.2.69.0", "81.2.69.142", "81.2.69.255"):
        row = one(["GeoIP2-Anonymous-IP-Test"], address)
        assert all(row[c] is True for c in _FLAG_KEYS.values()), address


def test_empty_anonymity_record_means_no_flags_not_unknown():
    row = one(["GeoIP2-Anonymous-IP-Test"], "1.1.1.1")  # the file answers {} here
    assert all(row[c] is False for c in _FLAG_KEYS.values())


@pytest.mark.parametrize(
    ("address", "asn", "org"),
    [
        ("1.0.0.1", 15169, "Google Inc."),
        ("1.128.0.0", 1221, "Telstra Pty Ltd"),
        ("12.81.92.0", 7018, "AT&T Services"),
        ("89.160.20.128", 29518, None),
        ("149.101.100.0", 6167, "CELLCO-PART"),
        ("2600:6000::1", 237, "Merit Network Inc."),
    ],
)
def test_asn_probe_values(address, asn, org):
    row = one(["GeoLite2-ASN-Test"], address)
    assert row["asn"] == asn
    if org is not None:
        assert row["as_org"] == org


def test_isp_enterprise_residential_and_anonymous_plus():
    assert one(["GeoIP2-ISP-Test"], "1.128.0.0")["asn"] == 1221
    enterprise = one(["GeoIP2-Enterprise-Test"], "81.2.69.160")
    assert (enterprise["country"], enterprise["city"]) == ("GB", "London")
    assert one(["GeoIP-Residential-Proxy-Test"], "1.2.0.4")["residential_proxy"] is True
    plus = one(["GeoIP-Anonymous-Plus-Test"], "1.2.0.1")
    assert plus["anonymous"] is True and plus["vpn"] is True and plus["tor"] is False


@pytest.mark.parametrize("alias", ["::ffff:81.2.69.142", "2002:5102:458e::"])
def test_ipv4_mapped_and_6to4_give_the_ipv4_answer(alias):
    row = one(["GeoLite2-City-Test"], alias)
    assert (row["country"], row["city"]) == ("GB", "London")


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "66.249.66.1", "not an address", "", "10.0.0.1"])
def test_addresses_not_in_a_file_give_empty_values(address):
    row = one(["GeoLite2-City-Test", "GeoLite2-Country-Test", "GeoLite2-ASN-Test"], address)
    assert all(row[c] is None for c in COLUMNS)
    assert row["_sources"] == {}


def test_precedence_city_before_country_and_flags_any_true():
    row = one(["GeoLite2-Country-Test", "GeoIP2-Anonymous-IP-Test", "GeoLite2-City-Test"], "81.2.69.142")
    assert row["_sources"]["country"].startswith("GeoLite2-City-Test.mmdb")
    assert row["_sources"]["tor"].startswith("GeoIP2-Anonymous-IP-Test.mmdb")


@pytest.mark.parametrize(
    ("file", "kind"),
    [
        ("maxmind-test/test-data/GeoLite2-City-Test.mmdb", "maxmind-city"),
        ("maxmind-test/test-data/GeoIP2-City-Test.mmdb", "maxmind-city"),
        ("maxmind-test/test-data/GeoLite2-Country-Test.mmdb", "maxmind-country"),
        ("maxmind-test/test-data/GeoIP2-Country-Test.mmdb", "maxmind-country"),
        ("maxmind-test/test-data/GeoLite2-ASN-Test.mmdb", "maxmind-asn"),
        ("maxmind-test/test-data/GeoIP2-ISP-Test.mmdb", "maxmind-isp"),
        ("maxmind-test/test-data/GeoIP2-Enterprise-Test.mmdb", "maxmind-enterprise"),
        ("maxmind-test/test-data/GeoIP2-Anonymous-IP-Test.mmdb", "maxmind-anonymous-ip"),
        ("maxmind-test/test-data/GeoIP-Anonymous-Plus-Test.mmdb", "maxmind-anonymous-plus"),
        ("ipinfo-sample/ipinfo_lite/ipinfo_lite_sample.mmdb", "ipinfo-lite"),
        ("ipinfo-sample/ipinfo_core/ipinfo_core_sample.mmdb", "ipinfo-core"),
        ("ipinfo-sample/ip_to_country_asn/ip_country_asn_sample.mmdb", "ipinfo-country-asn"),
        ("ipinfo-sample/ip_to_country/ip_country_sample.mmdb", "ipinfo-country"),
        ("ipinfo-sample/ip_to_asn/ip_asn_sample.mmdb", "ipinfo-asn"),
        ("ipinfo-sample/asn_database/asn_sample.mmdb", "ipinfo-asn"),
        ("ipinfo-sample/privacy_detection/ipinfo_privacy_sample.mmdb", "ipinfo-privacy"),
        ("ipinfo-sample/privacy_detection/privacy_detection_sample.mmdb", "ipinfo-privacy"),
    ],
    ids=lambda v: Path(v).stem if "/" in v else v,
)
def test_kind_recognised_from_database_type(file, kind):
    db = open_database(shared_path("geoip", *file.split("/")))
    assert db.kind.name == kind
    assert db.build_date.year >= 2025
    assert len(db.sha256) == 64


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ({"city": {}, "location": {}, "country": {}}, "maxmind-city"),
        ({"country": {"iso_code": "DE"}, "continent": {"code": "EU"}}, "maxmind-country"),
        ({"autonomous_system_number": 1, "autonomous_system_organization": "x"}, "maxmind-asn"),
        ({"is_anonymous": True, "is_anonymous_vpn": True}, "maxmind-anonymous-ip"),
        ({"country_code": "AU", "continent_code": "OC", "asn": "AS1"}, "ipinfo-lite"),
        ({"vpn": True, "proxy": False, "tor": False, "hosting": True}, "ipinfo-privacy"),
        ({"asn": "AS1", "name": "x", "domain": "x.example"}, "ipinfo-asn"),
    ],
)
def test_kind_recognised_from_record_shape(record, kind):
    recognised = recognise_kind("some renamed database", [record])
    assert recognised is not None and recognised.name == kind


def test_c_extension_reader_in_use():
    pytest.importorskip("maxminddb.extension")
    db = maxmind("GeoLite2-City-Test")
    assert type(db.reader).__module__ == "maxminddb.extension"
    assert maxminddb.MODE_AUTO == 0


# ---- IPinfo: the .mmdb gives the values of the JSON rows beside it --------------------------------


def _asn(text):
    return int(text[2:]) if text else None


def _t(value) -> bool:
    return value is True or value == "true"


def _expected_ipinfo(stem: str, row: dict) -> dict:
    if stem == "ipinfo_lite_sample":
        return {"country": row["country_code"], "country_name": row["country"], "asn": _asn(row["asn"]),
                "as_org": row["as_name"] or None}
    if stem == "ip_country_asn_sample":
        return {"country": row["country"], "country_name": row["country_name"], "asn": _asn(row["asn"]),
                "as_org": row["as_name"] or None}
    if stem == "ip_country_sample":
        return {"country": row["country"], "country_name": row["country_name"]}
    if stem in ("asn_sample", "ipinfo_asn_sample", "ip_asn_sample"):
        return {"asn": _asn(row["asn"]), "as_org": row["name"] or None}
    if stem == "ipinfo_core_sample":
        return {"country": row["country_code"], "country_name": row["country"], "subdivision": row["region"],
                "city": row["city"], "latitude": row["latitude"], "longitude": row["longitude"],
                "asn": _asn(row["asn"]), "as_org": row["as_name"] or None,
                "anonymous": row["is_anonymous"], "hosting": row["is_hosting"]}
    assert "privacy" in stem
    return {"vpn": _t(row["vpn"]), "public_proxy": _t(row["proxy"]), "tor": _t(row["tor"]),
            "hosting": _t(row["hosting"])}


# asn_sample.mmdb ("generic_asn_mmdb_v4_sample") holds other rows than asn_sample.json (no address
# of the JSON is in it), so it is checked against its own records below instead.
IPINFO_STEMS = ["ipinfo_lite_sample", "ip_country_asn_sample", "ip_country_sample", "ipinfo_asn_sample",
                "ip_asn_sample", "ipinfo_core_sample", "ipinfo_privacy_sample", "privacy_detection_sample"]


@pytest.mark.parametrize("stem", IPINFO_STEMS)
def test_ipinfo_mmdb_matches_its_json_twin(stem):
    folder = shared_path("geoip", "ipinfo-sample")
    mmdb_path = next(folder.rglob(f"{stem}.mmdb"))
    rows = [json.loads(line) for line in mmdb_path.with_suffix(".json").read_text().splitlines() if line.strip()]
    assert len(rows) == 100
    db = open_database(mmdb_path)
    probes: dict[str, dict] = {}
    for row in rows:
        first = row["network"].split("/")[0] if "network" in row else row["start_ip"]
        probes[first] = _expected_ipinfo(stem, row)
        if "end_ip" in row:
            probes[row["end_ip"]] = _expected_ipinfo(stem, row)
    got = lookup([db], probes)
    for address, want in probes.items():
        assert {c: got[address][c] for c in want} == want, address


def test_ipinfo_asn_mmdb_v4_sample_against_its_own_records():
    db = open_database(shared_path("geoip", "ipinfo-sample", "asn_database", "asn_sample.mmdb"))
    records = list(db.reader)
    assert len(records) == 97
    got = lookup([db], [str(net.network_address) for net, _ in records])
    for net, record in records:
        row = got[str(net.network_address)]
        assert (row["asn"], row["as_org"]) == (int(record["asn"][2:]), record["name"]), net


# ---- corrupt files: a clean error naming the file ------------------------------------------------

_BAD_DIR = SHARED / "geoip" / "maxmind-test" / "bad-data"
BAD_FILES = sorted(str(p.relative_to(_BAD_DIR)) for p in _BAD_DIR.rglob("*.mmdb")) if _BAD_DIR.is_dir() else []


def test_bad_data_folder_is_there():
    assert len(list(shared_path("geoip", "maxmind-test", "bad-data").rglob("*.mmdb"))) >= 21


@pytest.mark.parametrize("name", BAD_FILES)
def test_every_bad_data_file_is_a_clean_error_naming_it(name):
    path = shared_path("geoip", "maxmind-test", "bad-data", *name.split("/"))
    with pytest.raises(EnrichmentError) as info:
        db = open_database(path)
        lookup([db], ["1.1.1.1", "81.2.69.142", "::1"])
    assert info.value.path == str(path)
    assert Path(name).name in str(info.value)


def test_missing_file_is_a_clean_error(tmp_path):
    with pytest.raises(EnrichmentError, match="cannot read"):
        open_database(tmp_path / "GeoLite2-City.mmdb")


def test_text_file_is_a_clean_error(tmp_path):
    path = tmp_path / "GeoLite2-City.mmdb"
    path.write_text("not a database\n")
    with pytest.raises(EnrichmentError, match="not a readable IP database"):
        open_database(path)


def test_find_default_databases(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "GeoLite2-City.mmdb").write_bytes(b"")
    (tmp_path / "a" / "GeoLite2-ASN.mmdb").write_bytes(b"")
    (tmp_path / "a" / "README").write_text("")
    found = find_default_databases([tmp_path / "a", tmp_path / "missing"])
    assert [p.name for p in found] == ["GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"]
    assert KIND_BY_NAME["maxmind-city"].columns[0] == "country"
